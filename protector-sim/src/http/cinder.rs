//! Cinder v3: volumes, manage/unmanage, types, services and generic groups.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use protector_core::ids::{GroupId, VolumeId, VolumeTypeId};
use protector_core::ports::{
    BlockStorage, GroupCreate, ManageVolume, Volume, VolumeGroup, VolumeStatus,
};
use protector_core::RequestContext;
use serde_json::{json, Value};

use super::common::{
    fault, iso_naive, next_link, paginate, parse_limit, status_of, unauthorized, with_headers,
    Refusal, SiteState,
};

type St = Arc<SiteState>;
type Q = Query<BTreeMap<String, String>>;

const MAX_MINOR: u32 = 71;

pub(crate) fn router(state: St) -> Router {
    Router::new()
        .route("/", get(versions))
        .route("/v3", get(v3_versions))
        .route("/v3/", get(v3_versions))
        .route(
            "/v3/{project}/volumes",
            get(list_volumes).post(create_volume),
        )
        .route("/v3/{project}/volumes/detail", get(list_volumes_detail))
        .route(
            "/v3/{project}/volumes/{id}",
            get(get_volume).delete(delete_volume),
        )
        .route("/v3/{project}/volumes/{id}/action", post(volume_action))
        .route("/v3/{project}/manageable_volumes", post(manage))
        .route("/v3/{project}/os-volume-manage", post(manage))
        .route("/v3/{project}/types", get(list_types))
        .route("/v3/{project}/types/{id}", get(get_type))
        .route(
            "/v3/{project}/types/{id}/extra_specs",
            get(type_extra_specs),
        )
        .route("/v3/{project}/os-services", get(services))
        .route("/v3/{project}/groups", post(create_group))
        .route(
            "/v3/{project}/groups/{id}",
            get(get_group).put(update_group),
        )
        .route("/v3/{project}/groups/{id}/action", post(group_action))
        .with_state(state)
}

fn versions_doc(s: &SiteState) -> Value {
    json!({"versions": [{
        "id": "v3.0", "status": "CURRENT", "version": format!("3.{MAX_MINOR}"), "min_version": "3.0",
        "updated": "2023-08-31T00:00:00Z",
        "links": [
            {"rel": "describedby", "type": "text/html", "href": "https://docs.openstack.org/"},
            {"rel": "self", "href": format!("{}/v3/", s.endpoints.block_storage)},
        ],
        "media-types": [{
            "base": "application/json",
            "type": "application/vnd.openstack.volume+json;version=3",
        }],
    }]})
}

/// The unversioned root: every API version, `300 Multiple Choices`.
async fn versions(State(s): State<St>) -> Response {
    reply(&s, 0, StatusCode::MULTIPLE_CHOICES, versions_doc(&s))
}

/// `/v3/`: the same list with a 200, where version discovery looks first.
async fn v3_versions(State(s): State<St>) -> Response {
    reply(&s, 0, StatusCode::OK, versions_doc(&s))
}

/// The requested microversion's minor number (`3.0` when absent).
fn microversion(headers: &HeaderMap) -> Result<u32, String> {
    let Some(v) = headers
        .get("openstack-api-version")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("volume "))
        .map(str::trim)
    else {
        return Ok(0);
    };
    if v == "latest" {
        return Ok(MAX_MINOR);
    }
    match v
        .split_once('.')
        .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)))
    {
        Some((3, m)) if m <= MAX_MINOR => Ok(m),
        _ => Err(format!(
            "Version {v} is not supported by the API. Minimum is 3.0 and maximum is 3.{MAX_MINOR}."
        )),
    }
}

fn decorate(s: &SiteState, minor: u32, resp: Response) -> Response {
    with_headers(
        resp,
        &[
            ("x-openstack-request-id", s.request_id()),
            ("openstack-api-version", format!("volume 3.{minor}")),
            ("vary", "OpenStack-API-Version".to_owned()),
        ],
    )
}

fn reply(s: &SiteState, minor: u32, status: StatusCode, body: Value) -> Response {
    decorate(s, minor, (status, Json(body)).into_response())
}

fn failure(s: &SiteState, minor: u32, status: StatusCode, message: &str) -> Response {
    decorate(s, minor, fault(status, message))
}

fn backend(s: &SiteState, minor: u32, e: &protector_core::BackendError) -> Response {
    failure(s, minor, status_of(e), &e.message)
}

/// The caller and microversion, refusing a URL for another project.
fn begin(
    s: &SiteState,
    headers: &HeaderMap,
    project: &str,
    needs: u32,
) -> Result<(RequestContext, u32), Refusal> {
    let minor = microversion(headers)
        .map_err(|m| Box::new(failure(s, 0, StatusCode::NOT_ACCEPTABLE, &m)))?;
    let token = s
        .authenticate(headers)
        .ok_or_else(|| Box::new(unauthorized(&s.endpoints.auth_url)))?;
    if token.ctx.project_id.as_str() != project {
        return Err(Box::new(failure(
            s,
            minor,
            StatusCode::BAD_REQUEST,
            "Malformed request url",
        )));
    }
    if minor < needs {
        return Err(Box::new(failure(
            s,
            minor,
            StatusCode::NOT_FOUND,
            "The resource could not be found.",
        )));
    }
    Ok((token.ctx, minor))
}

/// The status as the API shows it: the managing states are hidden.
fn api_status(status: &str) -> &str {
    match status {
        "managing" => "creating",
        "error_managing" => "error",
        "error_managing_deleting" => "deleting",
        other => other,
    }
}

fn volume_view(s: &SiteState, v: &Volume, minor: u32, admin: bool) -> Value {
    let href = format!("{}/v3/volumes/{}", s.endpoints.block_storage, v.id);
    let info = s.world.site(s.site);
    let mut out = json!({
        "id": v.id.as_str(),
        "name": v.name,
        "description": null,
        "status": api_status(v.status.as_str()),
        "size": v.size_gb,
        "availability_zone": "nova",
        "bootable": if v.bootable { "true" } else { "false" },
        "volume_type": v.volume_type,
        "snapshot_id": null, "source_volid": null,
        "metadata": v.metadata,
        "attachments": v.attachments.iter().map(|a| json!({
            "server_id": a.server_id.as_str(), "attachment_id": format!("att-{}", v.id),
            "volume_id": v.id.as_str(), "device": a.device, "host_name": null, "id": v.id.as_str(),
        })).collect::<Vec<_>>(),
        "multiattach": false,
        "replication_status": null,
        "migration_status": null,
        "encrypted": false,
        "consistencygroup_id": null,
        "created_at": iso_naive(s.sim_now()),
        "updated_at": null,
        "os-vol-tenant-attr:tenant_id": v.project_id.as_ref().map(|p| p.as_str()),
        "links": [{"rel": "self", "href": href}, {"rel": "bookmark", "href": href}],
    });
    if let Some(t) = &v.volume_type {
        if minor >= 63 {
            out["volume_type_id"] = json!(info.volume_types.get(t).map(|i| i.as_str()));
        }
    }
    if minor >= 13 {
        out["group_id"] = json!(v.group_id.as_ref().map(|g| g.as_str()));
    }
    if minor >= 48 {
        out["shared_targets"] = json!(false);
        out["service_uuid"] = json!(service_uuid(s));
    }
    if minor >= 65 {
        out["consumes_quota"] = json!(true);
    }
    if admin {
        out["os-vol-host-attr:host"] = json!(v.host);
        out["os-vol-mig-status-attr:migstat"] = Value::Null;
        out["os-vol-mig-status-attr:name_id"] = Value::Null;
        if minor >= 21 {
            out["provider_id"] = json!(v.provider_id);
        }
        if minor >= 61 {
            out["cluster_name"] = Value::Null;
        }
    }
    out
}

/// The id of the site's one `cinder-volume` service (stable per site and seed).
fn service_uuid(s: &SiteState) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(
        format!("{}/{}/cinder-volume", s.world.seed(), s.site.name()).as_bytes(),
    );
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-4{}-8{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

fn is_admin(ctx: &RequestContext) -> bool {
    ctx.roles.iter().any(|r| r == "admin")
}

async fn list_volumes(state: State<St>, headers: HeaderMap, path: Path<String>, q: Q) -> Response {
    list(state, headers, path, q, false).await
}

async fn list_volumes_detail(
    state: State<St>,
    headers: HeaderMap,
    path: Path<String>,
    q: Q,
) -> Response {
    list(state, headers, path, q, true).await
}

async fn list(
    State(s): State<St>,
    headers: HeaderMap,
    Path(project): Path<String>,
    Query(q): Q,
    detail: bool,
) -> Response {
    let (ctx, minor) = match begin(&s, &headers, &project, 0) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let limit = match parse_limit(&q) {
        Ok(l) => l,
        Err(m) => return failure(&s, minor, StatusCode::BAD_REQUEST, &m),
    };
    let volumes = match s.world.block_storage(s.site, &ctx).list_volumes().await {
        Ok(v) => v,
        Err(e) => return backend(&s, minor, &e),
    };
    let volumes: Vec<Volume> = volumes
        .into_iter()
        .filter(|v| q.get("name").is_none_or(|n| &v.name == n))
        .filter(|v| {
            q.get("status")
                .is_none_or(|st| api_status(v.status.as_str()) == st)
        })
        .collect();
    let (page, next) = match paginate(volumes, q.get("marker").map(String::as_str), limit, |v| {
        v.id.to_string()
    }) {
        Ok(p) => p,
        Err(m) => return failure(&s, minor, StatusCode::BAD_REQUEST, &m),
    };
    let admin = is_admin(&ctx);
    let items: Vec<Value> = page
        .iter()
        .map(|v| {
            if detail {
                volume_view(&s, v, minor, admin)
            } else {
                json!({"id": v.id.as_str(), "name": v.name, "links": []})
            }
        })
        .collect();
    let mut body = json!({"volumes": items});
    if let Some(m) = next {
        let base = format!(
            "{}/v3/{project}/volumes{}",
            s.endpoints.block_storage,
            if detail { "/detail" } else { "" }
        );
        body["volumes_links"] = next_link(&base, limit, &m);
    }
    reply(&s, minor, StatusCode::OK, body)
}

async fn get_volume(
    State(s): State<St>,
    headers: HeaderMap,
    Path((project, id)): Path<(String, String)>,
) -> Response {
    let (ctx, minor) = match begin(&s, &headers, &project, 0) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    match s
        .world
        .block_storage(s.site, &ctx)
        .get_volume(&VolumeId::from(id))
        .await
    {
        Ok(v) => reply(
            &s,
            minor,
            StatusCode::OK,
            json!({"volume": volume_view(&s, &v, minor, is_admin(&ctx))}),
        ),
        Err(e) => backend(&s, minor, &e),
    }
}

async fn delete_volume(
    State(s): State<St>,
    headers: HeaderMap,
    Path((project, id)): Path<(String, String)>,
) -> Response {
    let (ctx, minor) = match begin(&s, &headers, &project, 0) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    match s
        .world
        .block_storage(s.site, &ctx)
        .delete_volume(&VolumeId::from(id))
        .await
    {
        Ok(()) => decorate(&s, minor, StatusCode::ACCEPTED.into_response()),
        Err(e) => backend(&s, minor, &e),
    }
}

async fn volume_action(
    State(s): State<St>,
    headers: HeaderMap,
    Path((project, id)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let (ctx, minor) = match begin(&s, &headers, &project, 0) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let Ok(Value::Object(action)) = serde_json::from_slice::<Value>(&body) else {
        return failure(&s, minor, StatusCode::BAD_REQUEST, "Malformed request body");
    };
    match action.keys().next().map(String::as_str) {
        Some("os-unmanage") => {}
        Some(other) => {
            return failure(
                &s,
                minor,
                StatusCode::BAD_REQUEST,
                &format!("There is no such action: {other}"),
            )
        }
        None => return failure(&s, minor, StatusCode::BAD_REQUEST, "Malformed request body"),
    }
    match s
        .world
        .block_storage(s.site, &ctx)
        .unmanage_volume(&VolumeId::from(id))
        .await
    {
        Ok(()) => decorate(&s, minor, StatusCode::ACCEPTED.into_response()),
        Err(e) => backend(&s, minor, &e),
    }
}

/// What `POST /volumes` asks for (an empty volume).
struct CreateRequest {
    name: String,
    size_gb: u64,
    volume_type: Option<String>,
    metadata: BTreeMap<String, String>,
}

fn parse_create(body: &Value) -> Result<CreateRequest, String> {
    let v = body
        .get("volume")
        .and_then(Value::as_object)
        .ok_or("Missing required element 'volume' in request body.")?;
    for source in [
        "snapshot_id",
        "source_volid",
        "imageRef",
        "backup_id",
        "source_replica",
    ] {
        if v.get(source).is_some_and(|x| !x.is_null()) {
            return Err(format!(
                "Invalid input for field/attribute {source}: this cloud creates empty volumes only."
            ));
        }
    }
    let size = match v.get("size") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(t)) => t.trim().parse::<u64>().ok(),
        _ => None,
    }
    .filter(|n| *n > 0)
    .ok_or("Invalid input for field/attribute size. Value: must be an integer greater than 0.")?;
    if let Some(zone) = v.get("availability_zone").and_then(Value::as_str) {
        if zone != "nova" {
            return Err(format!("Availability zone '{zone}' is invalid."));
        }
    }
    let mut metadata = BTreeMap::new();
    match v.get("metadata") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, val) in m {
                let Some(val) = val.as_str() else {
                    return Err(format!(
                        "Invalid input for field/attribute metadata. Value of {k} is not a string."
                    ));
                };
                metadata.insert(k.clone(), val.to_owned());
            }
        }
        Some(_) => {
            return Err(
                "Invalid input for field/attribute metadata. Value: not an object.".to_owned(),
            )
        }
    }
    Ok(CreateRequest {
        name: v
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        size_gb: size,
        volume_type: v
            .get("volume_type")
            .and_then(Value::as_str)
            .map(str::to_owned),
        metadata,
    })
}

/// `POST /volumes`: an empty volume on the site's array, as the Pure driver makes
/// it (`volume-<id>-cinder`). An unknown type is a 404, as in Cinder; when the
/// array refuses, the volume is kept in `error`.
async fn create_volume(
    State(s): State<St>,
    headers: HeaderMap,
    Path(project): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let (ctx, minor) = match begin(&s, &headers, &project, 0) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let request = serde_json::from_slice::<Value>(&body)
        .map_err(|e| format!("Malformed request body: {e}"))
        .and_then(|b| parse_create(&b));
    let request = match request {
        Ok(r) => r,
        Err(m) => return failure(&s, minor, StatusCode::BAD_REQUEST, &m),
    };
    let site = s.site;
    let info = s.world.site(site);
    let inner = &s.world.inner;
    let prepared = inner.with_cloud(site, |c| {
        c.caller(&ctx.user_id, &ctx.project_id)?;
        let vtype = match &request.volume_type {
            Some(t) => c
                .find_volume_type(t)
                .map(|t| t.name.clone())
                .ok_or_else(|| {
                    protector_core::BackendError::not_found(
                        protector_core::Service::BlockStorage,
                        format!("Volume type with name {t} could not be found."),
                    )
                    .with_status(404)
                })?,
            None => "__DEFAULT__".to_owned(),
        };
        let id: VolumeId = c.ids.next();
        Ok::<_, protector_core::BackendError>((id, vtype))
    });
    let (id, vtype) = match prepared {
        Ok(p) => p,
        Err(e) => return backend(&s, minor, &e),
    };
    let array_volume = crate::cloud::state::pure_volume_name(&id);
    let made =
        inner.bridge_create_volume(site, &array_volume, request.size_gb.saturating_mul(1 << 30));
    let mut metadata = request.metadata;
    let status = match &made {
        Ok(()) => {
            metadata.insert("array_volume_name".to_owned(), array_volume.clone());
            metadata.insert("array_name".to_owned(), info.array_name.clone());
            VolumeStatus::Available
        }
        Err(_) => VolumeStatus::Error,
    };
    let volume = Volume {
        id: id.clone(),
        name: request.name,
        status,
        size_gb: request.size_gb,
        volume_type: Some(vtype),
        bootable: false,
        attachments: Vec::new(),
        metadata,
        host: Some(info.volume_host.clone()),
        provider_id: made.is_ok().then(|| array_volume.clone()),
        group_id: None,
        project_id: Some(ctx.project_id.clone()),
    };
    inner.with_cloud(site, |c| c.remember_volume(volume.clone()));
    match &made {
        Ok(()) => inner.log(site, format!("volume {id} created on {array_volume}")),
        Err(e) => inner.log(site, format!("volume {id} error: {}", e.message)),
    }
    // Cinder answers before the driver has run: the caller sees `creating`.
    let mut shown = volume;
    shown.status = VolumeStatus::Creating;
    reply(
        &s,
        minor,
        StatusCode::ACCEPTED,
        json!({"volume": volume_view(&s, &shown, minor, is_admin(&ctx))}),
    )
}

fn parse_manage(body: &Value) -> Result<ManageVolume, String> {
    let v = body
        .get("volume")
        .ok_or("Missing required element 'volume' in request body.")?;
    let source = v
        .pointer("/ref/source-name")
        .and_then(Value::as_str)
        .ok_or("Invalid input for field/attribute ref.")?;
    let host = v
        .get("host")
        .and_then(Value::as_str)
        .ok_or("Either 'host' or 'cluster' must be specified.")?;
    Ok(ManageVolume {
        source_name: source.to_owned(),
        host: host.to_owned(),
        name: v
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        volume_type: v
            .get("volume_type")
            .and_then(Value::as_str)
            .map(str::to_owned),
        bootable: v.get("bootable").and_then(Value::as_bool).unwrap_or(false),
        description: v
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_owned),
        metadata: v
            .get("metadata")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                    .collect()
            })
            .unwrap_or_default(),
    })
}

async fn manage(
    State(s): State<St>,
    headers: HeaderMap,
    Path(project): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let (ctx, minor) = match begin(&s, &headers, &project, 0) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let request = serde_json::from_slice::<Value>(&body)
        .map_err(|e| format!("Malformed request body: {e}"))
        .and_then(|b| parse_manage(&b));
    let request = match request {
        Ok(r) => r,
        Err(m) => return failure(&s, minor, StatusCode::BAD_REQUEST, &m),
    };
    match s
        .world
        .block_storage(s.site, &ctx)
        .manage_volume(&request)
        .await
    {
        Ok(v) => reply(
            &s,
            minor,
            StatusCode::ACCEPTED,
            json!({"volume": volume_view(&s, &v, minor, is_admin(&ctx))}),
        ),
        Err(e) => backend(&s, minor, &e),
    }
}

fn type_view(t: &protector_core::ports::VolumeType, admin: bool) -> Value {
    let mut v = json!({
        "id": t.id.as_str(), "name": t.name, "description": null,
        "is_public": true, "os-volume-type-access:is_public": true, "qos_specs_id": null,
    });
    if admin {
        v["extra_specs"] = json!(t.extra_specs);
    } else {
        // Cinder (Xena on) shows non-admins its fixed list of user-visible extra specs.
        let visible: BTreeMap<&String, &String> = t
            .extra_specs
            .iter()
            .filter(|(k, _)| USER_VISIBLE_EXTRA_SPECS.contains(&k.as_str()))
            .collect();
        v["extra_specs"] = json!(visible);
    }
    v
}

/// The extra specs Cinder shows to every user.
const USER_VISIBLE_EXTRA_SPECS: [&str; 3] = [
    "RESKEY:availability_zones",
    "multiattach",
    "replication_enabled",
];

async fn list_types(
    State(s): State<St>,
    headers: HeaderMap,
    Path(project): Path<String>,
    Query(q): Q,
) -> Response {
    let (ctx, minor) = match begin(&s, &headers, &project, 0) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let limit = match parse_limit(&q) {
        Ok(l) => l,
        Err(m) => return failure(&s, minor, StatusCode::BAD_REQUEST, &m),
    };
    let types = match s
        .world
        .block_storage(s.site, &ctx)
        .list_volume_types()
        .await
    {
        Ok(t) => t,
        Err(e) => return backend(&s, minor, &e),
    };
    let (page, next) = match paginate(types, q.get("marker").map(String::as_str), limit, |t| {
        t.id.to_string()
    }) {
        Ok(p) => p,
        Err(m) => return failure(&s, minor, StatusCode::BAD_REQUEST, &m),
    };
    let admin = is_admin(&ctx);
    let mut body =
        json!({"volume_types": page.iter().map(|t| type_view(t, admin)).collect::<Vec<_>>()});
    if let Some(m) = next {
        body["volume_type_links"] = next_link(
            &format!("{}/v3/{project}/types", s.endpoints.block_storage),
            limit,
            &m,
        );
    }
    reply(&s, minor, StatusCode::OK, body)
}

async fn find_type(
    s: &SiteState,
    ctx: &RequestContext,
    id: &str,
) -> Result<Option<protector_core::ports::VolumeType>, protector_core::BackendError> {
    let types = s
        .world
        .block_storage(s.site, ctx)
        .list_volume_types()
        .await?;
    Ok(types.into_iter().find(|t| t.id.as_str() == id))
}

async fn get_type(
    State(s): State<St>,
    headers: HeaderMap,
    Path((project, id)): Path<(String, String)>,
) -> Response {
    let (ctx, minor) = match begin(&s, &headers, &project, 0) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    match find_type(&s, &ctx, &id).await {
        Ok(Some(t)) => reply(
            &s,
            minor,
            StatusCode::OK,
            json!({"volume_type": type_view(&t, is_admin(&ctx))}),
        ),
        Ok(None) => failure(
            &s,
            minor,
            StatusCode::NOT_FOUND,
            &format!("Volume type {id} could not be found."),
        ),
        Err(e) => backend(&s, minor, &e),
    }
}

async fn type_extra_specs(
    State(s): State<St>,
    headers: HeaderMap,
    Path((project, id)): Path<(String, String)>,
) -> Response {
    let (ctx, minor) = match begin(&s, &headers, &project, 0) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    match find_type(&s, &ctx, &id).await {
        // Like the type's own view: members see the user-visible specs only.
        Ok(Some(t)) => reply(
            &s,
            minor,
            StatusCode::OK,
            json!({"extra_specs": type_view(&t, is_admin(&ctx))["extra_specs"]}),
        ),
        Ok(None) => failure(
            &s,
            minor,
            StatusCode::NOT_FOUND,
            &format!("Volume type {id} could not be found."),
        ),
        Err(e) => backend(&s, minor, &e),
    }
}

async fn services(
    State(s): State<St>,
    headers: HeaderMap,
    Path(project): Path<String>,
    Query(q): Q,
) -> Response {
    let (ctx, minor) = match begin(&s, &headers, &project, 0) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let list = match s
        .world
        .block_storage(s.site, &ctx)
        .list_volume_services()
        .await
    {
        Ok(l) => l,
        Err(e) => return backend(&s, minor, &e),
    };
    let now = iso_naive(s.sim_now());
    let items: Vec<Value> = list
        .iter()
        .map(|sv| {
            json!({
                "binary": "cinder-volume", "host": sv.host, "zone": sv.zone,
                "status": sv.status, "state": sv.state, "updated_at": now,
                "disabled_reason": null, "replication_status": "disabled",
                "active_backend_id": null, "frozen": false, "backend_state": "up",
            })
        })
        .filter(|v| {
            q.get("binary").is_none_or(|b| b == "cinder-volume")
                && q.get("host").is_none_or(|h| v["host"] == json!(h))
        })
        .collect();
    reply(&s, minor, StatusCode::OK, json!({"services": items}))
}

fn group_view(s: &SiteState, g: &VolumeGroup, minor: u32) -> Value {
    let mut v = json!({
        "id": g.id.as_str(), "name": g.name, "status": g.status,
        "group_type": g.group_type,
        "volume_types": g.volume_types.iter().map(VolumeTypeId::as_str).collect::<Vec<_>>(),
        "availability_zone": "nova", "description": null,
        "group_snapshot_id": null, "source_group_id": null,
        "created_at": iso_naive(s.sim_now()),
    });
    if minor >= 25 {
        v["volumes"] = json!(g.volumes.iter().map(VolumeId::as_str).collect::<Vec<_>>());
    }
    v
}

async fn create_group(
    State(s): State<St>,
    headers: HeaderMap,
    Path(project): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let (ctx, minor) = match begin(&s, &headers, &project, 13) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let parsed = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|b| b.get("group").cloned());
    let Some(g) = parsed else {
        return failure(
            &s,
            minor,
            StatusCode::BAD_REQUEST,
            "Missing required element 'group' in request body.",
        );
    };
    let (Some(name), Some(group_type), Some(types)) = (
        g.get("name").and_then(Value::as_str),
        g.get("group_type").and_then(Value::as_str),
        g.get("volume_types").and_then(Value::as_array),
    ) else {
        return failure(
            &s,
            minor,
            StatusCode::BAD_REQUEST,
            "group_type and volume_types must be provided to create group.",
        );
    };
    let request = GroupCreate {
        name: name.to_owned(),
        description: g
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_owned),
        group_type: group_type.to_owned(),
        volume_types: types
            .iter()
            .filter_map(Value::as_str)
            .map(|t| VolumeTypeId::from(t.to_owned()))
            .collect(),
    };
    match s
        .world
        .block_storage(s.site, &ctx)
        .create_group(&request)
        .await
    {
        Ok(g) => reply(
            &s,
            minor,
            StatusCode::ACCEPTED,
            json!({"group": {"id": g.id.as_str(), "name": g.name}}),
        ),
        Err(e) => backend(&s, minor, &e),
    }
}

async fn get_group(
    State(s): State<St>,
    headers: HeaderMap,
    Path((project, id)): Path<(String, String)>,
) -> Response {
    let (ctx, minor) = match begin(&s, &headers, &project, 13) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    match s
        .world
        .block_storage(s.site, &ctx)
        .get_group(&GroupId::from(id))
        .await
    {
        Ok(g) => reply(
            &s,
            minor,
            StatusCode::OK,
            json!({"group": group_view(&s, &g, minor)}),
        ),
        Err(e) => backend(&s, minor, &e),
    }
}

fn id_list(v: Option<&Value>) -> Vec<VolumeId> {
    v.and_then(Value::as_str)
        .map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .map(|x| VolumeId::from(x.to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

async fn update_group(
    State(s): State<St>,
    headers: HeaderMap,
    Path((project, id)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let (ctx, minor) = match begin(&s, &headers, &project, 13) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let Some(g) = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|b| b.get("group").cloned())
    else {
        return failure(
            &s,
            minor,
            StatusCode::BAD_REQUEST,
            "Missing required element 'group' in request body.",
        );
    };
    let add = id_list(g.get("add_volumes"));
    let remove = id_list(g.get("remove_volumes"));
    if add.is_empty() && remove.is_empty() && g.get("name").is_none() {
        return failure(
            &s,
            minor,
            StatusCode::BAD_REQUEST,
            "Name, description, add_volumes, and remove_volumes can not be all empty in the request body.",
        );
    }
    match s
        .world
        .block_storage(s.site, &ctx)
        .update_group(&GroupId::from(id), &add, &remove)
        .await
    {
        Ok(()) => decorate(&s, minor, StatusCode::ACCEPTED.into_response()),
        Err(e) => backend(&s, minor, &e),
    }
}

async fn group_action(
    State(s): State<St>,
    headers: HeaderMap,
    Path((project, id)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let (ctx, minor) = match begin(&s, &headers, &project, 13) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let Some(delete) = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|b| b.get("delete").cloned())
    else {
        return failure(
            &s,
            minor,
            StatusCode::BAD_REQUEST,
            "Only the delete action is supported.",
        );
    };
    let volumes = delete
        .get("delete-volumes")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    match s
        .world
        .block_storage(s.site, &ctx)
        .delete_group(&GroupId::from(id), volumes)
        .await
    {
        Ok(()) => decorate(&s, minor, StatusCode::ACCEPTED.into_response()),
        Err(e) => backend(&s, minor, &e),
    }
}
