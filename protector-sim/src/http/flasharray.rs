//! FlashArray REST 2.x: version list, login, and the resources the Pure driver uses.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use protector_core::BackendError;
use protector_purestorage::array::{
    ArrayConnection, ArrayProtectionGroup, ArrayVolume, NameRef, PgSnapshot, PgSnapshotOptions,
    PgSnapshotQuery, PgSnapshotTransfer, Pod, PromotionState, ProtectionGroupTarget,
    ReplicationSchedule, SnapshotOrder, TargetRetention, VolumeQuery, VolumeSnapshot,
    VolumeSnapshotQuery,
};
use serde_json::{json, Value};

use super::common::{status_of, with_headers};
use crate::site::SimSite;
use crate::world::SimWorld;

/// REST versions the simulated arrays offer.
const MINORS: std::ops::RangeInclusive<u32> = 0..=38;

pub(crate) struct ArrayState {
    world: SimWorld,
    site: SimSite,
    sessions: Mutex<BTreeSet<String>>,
    counter: AtomicU64,
}

type St = Arc<ArrayState>;
type Q = Query<BTreeMap<String, String>>;

impl ArrayState {
    pub(crate) fn new(world: SimWorld, site: SimSite) -> Self {
        Self {
            world,
            site,
            sessions: Mutex::new(BTreeSet::new()),
            counter: AtomicU64::new(0),
        }
    }

    fn next(&self) -> u64 {
        self.counter.fetch_add(1, Ordering::Relaxed) + 1
    }
}

pub(crate) fn router(state: St) -> Router {
    Router::new()
        .route("/api/api_version", get(api_version))
        .route("/api/{version}/login", post(login))
        .route("/api/{version}/{*resource}", any(dispatch))
        .with_state(state)
}

fn reply(s: &ArrayState, status: StatusCode, body: Value) -> Response {
    with_headers(
        (status, Json(body)).into_response(),
        &[("x-request-id", format!("{:016x}", s.next()))],
    )
}

fn errors(s: &ArrayState, status: StatusCode, message: &str, context: Option<&str>) -> Response {
    let mut item = json!({ "message": message });
    if let Some(c) = context {
        item["context"] = json!(c);
    }
    reply(s, status, json!({ "errors": [item] }))
}

fn backend(s: &ArrayState, e: &BackendError) -> Response {
    let status = status_of(e);
    // The array answers "does not exist" and "already exists" with a 400.
    let status = if matches!(status.as_u16(), 404 | 409) {
        StatusCode::BAD_REQUEST
    } else {
        status
    };
    errors(s, status, &e.message, None)
}

async fn api_version(State(s): State<St>) -> Response {
    let versions: Vec<String> = std::iter::once("1.19".to_owned())
        .chain(MINORS.map(|m| format!("2.{m}")))
        .collect();
    reply(&s, StatusCode::OK, json!({ "version": versions }))
}

fn version_ok(version: &str) -> bool {
    version
        .strip_prefix("2.")
        .and_then(|m| m.parse::<u32>().ok())
        .is_some_and(|m| MINORS.contains(&m))
}

async fn login(State(s): State<St>, Path(version): Path<String>, headers: HeaderMap) -> Response {
    if !version_ok(&version) {
        return errors(
            &s,
            StatusCode::NOT_FOUND,
            "Unsupported REST version.",
            Some(&version),
        );
    }
    let given = headers.get("api-token").and_then(|v| v.to_str().ok());
    if given != Some(s.world.site(s.site).array_token.as_str()) {
        return errors(&s, StatusCode::UNAUTHORIZED, "Invalid API token.", None);
    }
    let session = format!("sim-session-{}-{:012x}", s.site.name(), s.next());
    if let Ok(mut sessions) = s.sessions.lock() {
        sessions.insert(session.clone());
    }
    with_headers(
        reply(
            &s,
            StatusCode::OK,
            json!({"items": [{"username": "pureuser"}]}),
        ),
        &[("x-auth-token", session)],
    )
}

fn list(q: &BTreeMap<String, String>, key: &str) -> Vec<String> {
    q.get(key)
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn flag(q: &BTreeMap<String, String>, key: &str) -> Option<bool> {
    q.get(key).map(|v| v.eq_ignore_ascii_case("true"))
}

/// `field='value'` from a filter (quotes and escapes removed).
fn filter_value(q: &BTreeMap<String, String>, field: &str) -> Option<String> {
    let f = q.get("filter")?;
    let rest = f
        .trim()
        .strip_prefix(field)?
        .trim_start()
        .strip_prefix('=')?;
    let v = rest.trim().trim_matches(|c| c == '\'' || c == '"');
    Some(v.replace("\\'", "'").replace("\\\\", "\\"))
}

fn single(names: &[String], what: &str) -> Result<String, String> {
    match names {
        [one] => Ok(one.clone()),
        _ => Err(format!("Exactly one {what} name must be given.")),
    }
}

fn name_ref(n: &Option<NameRef>) -> Value {
    match n {
        Some(r) => json!({"name": r.name}),
        None => Value::Null,
    }
}

fn volume_json(v: &ArrayVolume) -> Value {
    json!({
        "id": v.id, "name": v.name, "serial": v.serial, "provisioned": v.provisioned,
        "created": v.created, "destroyed": v.destroyed, "connection_count": v.connection_count,
        "pod": name_ref(&v.pod), "source": name_ref(&v.source),
    })
}

fn snapshot_json(v: &VolumeSnapshot) -> Value {
    json!({
        "id": v.id, "name": v.name, "source": {"name": v.source.name}, "created": v.created,
        "provisioned": v.provisioned, "destroyed": v.destroyed, "suffix": v.suffix,
    })
}

fn pg_json(g: &ArrayProtectionGroup) -> Value {
    json!({
        "id": g.id, "name": g.name, "is_local": g.is_local, "source": {"name": g.source.name},
        "destroyed": g.destroyed,
        "replication_schedule": {"enabled": g.replication_schedule.enabled, "frequency": g.replication_schedule.frequency_ms},
        "target_retention": {"all_for_sec": g.target_retention.all_for_sec, "per_day": g.target_retention.per_day, "days": g.target_retention.days},
        "target_count": g.target_count, "volume_count": g.volume_count,
    })
}

fn target_json(t: &ProtectionGroupTarget) -> Value {
    json!({"group": {"name": t.group.name}, "member": {"name": t.member.name}, "allowed": t.allowed, "status": t.status})
}

fn pg_snapshot_json(p: &PgSnapshot) -> Value {
    json!({"id": p.id, "name": p.name, "source": {"name": p.source.name}, "suffix": p.suffix, "created": p.created, "destroyed": p.destroyed})
}

fn transfer_json(t: &PgSnapshotTransfer) -> Value {
    json!({"name": t.name, "destroyed": t.destroyed, "started": t.started, "completed": t.completed, "progress": t.progress, "data_transferred": t.data_transferred})
}

fn pod_json(p: &Pod) -> Value {
    json!({
        "id": p.id, "name": p.name, "promotion_status": p.promotion_status, "destroyed": p.destroyed,
        "arrays": p.arrays.iter().map(|a| json!({"name": a.name, "status": a.status, "frozen_at": a.frozen_at})).collect::<Vec<_>>(),
    })
}

fn connection_json(c: &ArrayConnection) -> Value {
    json!({
        "id": c.id, "name": c.name, "remote": {"id": c.id, "name": c.name}, "status": c.status,
        "type": c.connection_type, "management_address": c.management_address,
    })
}

/// The order `sort=` asks of a volume snapshot listing: by name (the default), or
/// newest first as `created-,name-`.
fn snapshot_order(q: &BTreeMap<String, String>) -> Result<SnapshotOrder, Failure> {
    match q.get("sort").map(|s| s.trim()) {
        None | Some("name") => Ok(SnapshotOrder::Name),
        Some(sort) if Some(sort) == SnapshotOrder::NewestFirst.sort_param() => {
            Ok(SnapshotOrder::NewestFirst)
        }
        Some(sort) => Err(Failure::Bad(format!("Unsupported sort: {sort}."))),
    }
}

/// One page of items, honouring `limit` and `continuation_token` (an offset). As on
/// an array, a listing with `sort=` comes without a continuation token: its `limit`
/// first items are all there is to read.
fn items_page(s: &ArrayState, items: Vec<Value>, q: &BTreeMap<String, String>) -> Response {
    let start: usize = q
        .get("continuation_token")
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let limit: Option<usize> = q.get("limit").and_then(|l| l.parse().ok());
    let total = items.len();
    let page: Vec<Value> = items
        .into_iter()
        .skip(start)
        .take(limit.unwrap_or(usize::MAX))
        .collect();
    let end = start + page.len();
    let token = (end < total && !q.contains_key("sort")).then(|| end.to_string());
    reply(
        s,
        StatusCode::OK,
        json!({"items": page, "continuation_token": token, "total_item_count": total, "more_items_remaining": end < total}),
    )
}

fn written(s: &ArrayState, items: Vec<Value>) -> Response {
    reply(s, StatusCode::OK, json!({ "items": items }))
}

fn empty(s: &ArrayState) -> Response {
    reply(s, StatusCode::OK, json!({}))
}

async fn dispatch(
    State(s): State<St>,
    method: Method,
    Path((version, resource)): Path<(String, String)>,
    headers: HeaderMap,
    Query(q): Q,
    body: axum::body::Bytes,
) -> Response {
    if !version_ok(&version) {
        return errors(
            &s,
            StatusCode::NOT_FOUND,
            "Unsupported REST version.",
            Some(&version),
        );
    }
    let authed = headers
        .get("x-auth-token")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| s.sessions.lock().map(|ss| ss.contains(t)).unwrap_or(false));
    if !authed {
        return errors(
            &s,
            StatusCode::UNAUTHORIZED,
            "Session token is missing or invalid.",
            None,
        );
    }
    let body: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return errors(
                    &s,
                    StatusCode::BAD_REQUEST,
                    &format!("Invalid JSON body: {e}"),
                    None,
                )
            }
        }
    };
    match route(&s, &method, &resource, &q, &body).await {
        Ok(resp) => resp,
        Err(Failure::Backend(e)) => backend(&s, &e),
        Err(Failure::Bad(m)) => errors(&s, StatusCode::BAD_REQUEST, &m, None),
        Err(Failure::NoRoute) => errors(&s, StatusCode::NOT_FOUND, "Not found.", Some(&resource)),
    }
}

enum Failure {
    Backend(BackendError),
    Bad(String),
    NoRoute,
}

impl From<BackendError> for Failure {
    fn from(e: BackendError) -> Self {
        Self::Backend(e)
    }
}

impl From<String> for Failure {
    fn from(m: String) -> Self {
        Self::Bad(m)
    }
}

async fn route(
    s: &ArrayState,
    method: &Method,
    resource: &str,
    q: &BTreeMap<String, String>,
    body: &Value,
) -> Result<Response, Failure> {
    let array = s.world.array(s.site);
    let names = list(q, "names");
    let groups = list(q, "group_names");
    let members = list(q, "member_names");
    match (method.as_str(), resource) {
        ("GET", "arrays") => {
            let a = array.array_info().await?;
            Ok(items_page(
                s,
                vec![json!({"id": a.id, "name": a.name, "version": a.version, "os": "Purity//FA"})],
                q,
            ))
        }
        ("GET", "array-connections") => {
            let c = array.list_array_connections().await?;
            Ok(items_page(s, c.iter().map(connection_json).collect(), q))
        }
        ("GET", "volumes") => {
            let query = VolumeQuery {
                names,
                destroyed: flag(q, "destroyed"),
                pod: filter_value(q, "pod.name"),
            };
            let v = array.list_volumes(&query).await?;
            Ok(items_page(s, v.iter().map(volume_json).collect(), q))
        }
        ("POST", "volumes") => {
            let name = single(&names, "volume")?;
            let v = if let Some(src) = body.pointer("/source/name").and_then(Value::as_str) {
                let overwrite = flag(q, "overwrite").unwrap_or(false);
                array.copy_volume(&name, src, overwrite).await?
            } else {
                let size = body
                    .get("provisioned")
                    .and_then(Value::as_u64)
                    .ok_or_else(|| "Missing provisioned.".to_owned())?;
                array.create_volume(&name, size).await?
            };
            Ok(written(s, vec![volume_json(&v)]))
        }
        ("PATCH", "volumes") => {
            let name = single(&names, "volume")?;
            if let Some(new) = body.get("name").and_then(Value::as_str) {
                let v = array.rename_volume(&name, new).await?;
                Ok(written(s, vec![volume_json(&v)]))
            } else if body.get("destroyed").and_then(Value::as_bool) == Some(true) {
                array.destroy_volume(&name).await?;
                let v = array
                    .list_volumes(&VolumeQuery {
                        names: vec![name],
                        destroyed: Some(true),
                        pod: None,
                    })
                    .await
                    .unwrap_or_default();
                Ok(written(s, v.iter().map(volume_json).collect()))
            } else if let Some(pod) = body.pointer("/pod/name").and_then(Value::as_str) {
                let pod = (!pod.is_empty()).then_some(pod);
                let v = array.move_volume(&name, pod).await?;
                Ok(written(s, vec![volume_json(&v)]))
            } else {
                Err(Failure::Bad("Nothing to change.".to_owned()))
            }
        }
        ("DELETE", "volumes") => {
            array.eradicate_volume(&single(&names, "volume")?).await?;
            Ok(empty(s))
        }
        ("GET", "volume-snapshots") => {
            let query = VolumeSnapshotQuery {
                names,
                source_names: list(q, "source_names"),
                name_prefix: filter_value(q, "name").map(|p| p.trim_end_matches('*').to_owned()),
                destroyed: flag(q, "destroyed"),
                order: snapshot_order(q)?,
                // The page below takes `limit` and `continuation_token`.
                limit: None,
            };
            let v = array.list_volume_snapshots(&query).await?;
            Ok(items_page(s, v.iter().map(snapshot_json).collect(), q))
        }
        ("GET", "protection-groups") => {
            let g = array.list_protection_groups(&names).await?;
            Ok(items_page(s, g.iter().map(pg_json).collect(), q))
        }
        ("POST", "protection-groups") => {
            let g = array
                .create_protection_group(&single(&names, "protection group")?)
                .await?;
            Ok(written(s, vec![pg_json(&g)]))
        }
        ("PATCH", "protection-groups") => {
            let name = single(&names, "protection group")?;
            if body.get("destroyed").and_then(Value::as_bool) == Some(true) {
                array.destroy_protection_group(&name).await?;
            } else if let Some(r) = body.get("replication_schedule") {
                let schedule = ReplicationSchedule {
                    enabled: r.get("enabled").and_then(Value::as_bool).unwrap_or(false),
                    frequency_ms: r.get("frequency").and_then(Value::as_u64).unwrap_or(0),
                };
                array.set_replication_schedule(&name, &schedule).await?;
            } else if let Some(r) = body.get("target_retention") {
                let get = |k: &str| r.get(k).and_then(Value::as_u64).unwrap_or(0);
                let retention = TargetRetention {
                    all_for_sec: get("all_for_sec"),
                    per_day: u32::try_from(get("per_day")).unwrap_or(u32::MAX),
                    days: u32::try_from(get("days")).unwrap_or(u32::MAX),
                };
                array.set_target_retention(&name, &retention).await?;
            } else {
                return Err(Failure::Bad("Nothing to change.".to_owned()));
            }
            let g = array
                .list_protection_groups(&[name])
                .await
                .unwrap_or_default();
            Ok(written(s, g.iter().map(pg_json).collect()))
        }
        ("DELETE", "protection-groups") => {
            array
                .eradicate_protection_group(&single(&names, "protection group")?)
                .await?;
            Ok(empty(s))
        }
        ("GET", "protection-groups/volumes") => {
            let group = single(&groups, "protection group")?;
            let v = array.list_protection_group_volumes(&group).await?;
            Ok(items_page(
                s,
                v.iter()
                    .map(|m| json!({"group": {"name": group}, "member": {"name": m}}))
                    .collect(),
                q,
            ))
        }
        ("POST", "protection-groups/volumes") => {
            let group = single(&groups, "protection group")?;
            array.add_protection_group_volumes(&group, &members).await?;
            Ok(written(
                s,
                members
                    .iter()
                    .map(|m| json!({"group": {"name": group}, "member": {"name": m}}))
                    .collect(),
            ))
        }
        ("DELETE", "protection-groups/volumes") => {
            let group = single(&groups, "protection group")?;
            array
                .remove_protection_group_volumes(&group, &members)
                .await?;
            Ok(empty(s))
        }
        ("GET", "protection-groups/targets") => {
            let group = single(&groups, "protection group")?;
            let t = array.list_protection_group_targets(&group).await?;
            Ok(items_page(s, t.iter().map(target_json).collect(), q))
        }
        ("POST", "protection-groups/targets") => {
            let group = single(&groups, "protection group")?;
            array.add_protection_group_targets(&group, &members).await?;
            let t = array.list_protection_group_targets(&group).await?;
            Ok(written(s, t.iter().map(target_json).collect()))
        }
        ("DELETE", "protection-groups/targets") => {
            let group = single(&groups, "protection group")?;
            array
                .remove_protection_group_targets(&group, &members)
                .await?;
            Ok(empty(s))
        }
        ("PATCH", "protection-groups/targets") => {
            let group = single(&groups, "protection group")?;
            if body.get("allowed").and_then(Value::as_bool) != Some(true) {
                return Err(Failure::Bad("Only allowed=true is supported.".to_owned()));
            }
            array.allow_protection_group(&group).await?;
            let t = array.list_protection_group_targets(&group).await?;
            Ok(written(s, t.iter().map(target_json).collect()))
        }
        ("GET", "protection-group-snapshots") => {
            let query = pg_query(q, names);
            let p = array.list_pg_snapshots(&query).await?;
            Ok(items_page(s, p.iter().map(pg_snapshot_json).collect(), q))
        }
        ("GET", "protection-group-snapshots/transfer") => {
            let query = pg_query(q, names);
            let t = array.list_pg_snapshot_transfers(&query).await?;
            Ok(items_page(s, t.iter().map(transfer_json).collect(), q))
        }
        ("POST", "protection-group-snapshots") => {
            let group = single(&list(q, "source_names"), "protection group")?;
            let options = PgSnapshotOptions {
                suffix: body
                    .get("suffix")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                replicate_now: flag(q, "replicate_now").unwrap_or(false),
                apply_retention: flag(q, "apply_retention").unwrap_or(false),
            };
            let p = array.create_pg_snapshot(&group, &options).await?;
            Ok(written(s, vec![pg_snapshot_json(&p)]))
        }
        ("PATCH", "protection-group-snapshots") => {
            let name = single(&names, "protection group snapshot")?;
            if body.get("destroyed").and_then(Value::as_bool) != Some(true) {
                return Err(Failure::Bad("Only destroyed=true is supported.".to_owned()));
            }
            array.destroy_pg_snapshot(&name).await?;
            Ok(empty(s))
        }
        ("DELETE", "protection-group-snapshots") => {
            array
                .eradicate_pg_snapshot(&single(&names, "protection group snapshot")?)
                .await?;
            Ok(empty(s))
        }
        ("GET", "pods") => {
            let p = array.list_pods(&names).await?;
            Ok(items_page(s, p.iter().map(pod_json).collect(), q))
        }
        ("POST", "pods") => {
            let p = array.create_pod(&single(&names, "pod")?).await?;
            Ok(written(s, vec![pod_json(&p)]))
        }
        ("PATCH", "pods") => {
            let name = single(&names, "pod")?;
            if body.get("destroyed").and_then(Value::as_bool) == Some(true) {
                array.destroy_pod(&name).await?;
                return Ok(empty(s));
            }
            let state = match body
                .get("requested_promotion_state")
                .and_then(Value::as_str)
            {
                Some("promoted") => PromotionState::Promoted,
                Some("demoted") => PromotionState::Demoted,
                _ => {
                    return Err(Failure::Bad(
                        "Invalid requested_promotion_state.".to_owned(),
                    ))
                }
            };
            let p = array.set_pod_promotion(&name, state).await?;
            Ok(written(s, vec![pod_json(&p)]))
        }
        ("DELETE", "pods") => {
            array.eradicate_pod(&single(&names, "pod")?).await?;
            Ok(empty(s))
        }
        ("POST", "pods/arrays") => {
            array
                .stretch_pod(&single(&groups, "pod")?, &single(&members, "array")?)
                .await?;
            Ok(empty(s))
        }
        ("DELETE", "pods/arrays") => {
            array
                .unstretch_pod(
                    &single(&groups, "pod")?,
                    &single(&members, "array")?,
                    flag(q, "with_unknown").unwrap_or(false),
                )
                .await?;
            Ok(empty(s))
        }
        _ => Err(Failure::NoRoute),
    }
}

fn pg_query(q: &BTreeMap<String, String>, names: Vec<String>) -> PgSnapshotQuery {
    PgSnapshotQuery {
        names,
        source_names: list(q, "source_names"),
        destroyed: flag(q, "destroyed"),
    }
}
