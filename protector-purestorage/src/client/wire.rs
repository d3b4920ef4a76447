//! Private serde shapes of FlashArray REST 2.x bodies, and the parsers that turn raw
//! response bytes into the public [`crate::array`] types.
//!
//! Every parser is a plain function over `&[u8]` that never panics: unknown fields are
//! ignored, absent or `null` fields take defaults, and anything that is not the
//! expected JSON is a [`ParseError`].

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;

use protector_core::{Applied, BackendError, BackendErrorKind, Service};

use crate::array::{
    ArrayConnection, ArrayInfo, ArrayProtectionGroup, ArrayVolume, NameRef, PgSnapshot,
    PgSnapshotTransfer, Pod, PodArray, ProtectionGroupTarget, ReplicationSchedule, TargetRetention,
    VolumeSnapshot,
};
use crate::error::ParseError;

/// One page of a collection: its items and the token of the next page, if any.
#[derive(Clone, Debug, PartialEq)]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Pass as `continuation_token` to get the next page; `None` on the last page.
    pub continuation_token: Option<String>,
}

#[derive(Deserialize)]
struct Envelope<T> {
    #[serde(default = "Option::default")]
    items: Option<Vec<T>>,
    #[serde(default)]
    continuation_token: Option<String>,
}

fn page<W, T>(
    body: &[u8],
    what: &'static str,
    convert: impl Fn(W) -> T,
) -> Result<Page<T>, ParseError>
where
    W: DeserializeOwned,
{
    let env: Envelope<W> =
        serde_json::from_slice(body).map_err(|source| ParseError::Json { what, source })?;
    Ok(Page {
        items: env
            .items
            .unwrap_or_default()
            .into_iter()
            .map(convert)
            .collect(),
        // An empty token is the same as none: the array has nothing more to give.
        continuation_token: env.continuation_token.filter(|t| !t.is_empty()),
    })
}

#[derive(Deserialize, Default)]
struct NameRefW {
    #[serde(default)]
    name: Option<String>,
}

/// `{"name": null}` and `{"name": ""}` (how the array spells "no pod") become `None`.
fn name_ref(r: Option<NameRefW>) -> Option<NameRef> {
    r.and_then(|r| r.name)
        .filter(|n| !n.is_empty())
        .map(|name| NameRef { name })
}

fn name_or_empty(r: Option<NameRefW>) -> NameRef {
    name_ref(r).unwrap_or(NameRef {
        name: String::new(),
    })
}

// ---- versions -------------------------------------------------------------------------

#[derive(Deserialize)]
struct ApiVersionsW {
    #[serde(default)]
    version: Vec<String>,
}

/// Parses `GET /api/api_version`: the list of REST versions the array speaks.
///
/// # Errors
/// [`ParseError`] when the body is not the expected JSON.
pub fn api_versions(body: &[u8]) -> Result<Vec<String>, ParseError> {
    let v: ApiVersionsW = serde_json::from_slice(body).map_err(|source| ParseError::Json {
        what: "api versions",
        source,
    })?;
    Ok(v.version)
}

/// Parses a `"2.N"` version string into its minor number; `None` for 1.x, 3.x or junk.
pub fn minor_of_v2(version: &str) -> Option<u32> {
    let (major, minor) = version.trim().split_once('.')?;
    if major != "2" {
        return None;
    }
    minor.parse().ok()
}

/// The highest `2.N` in `offered` with `min <= N <= max`.
pub fn pick_v2(offered: &[String], min: u32, max: u32) -> Option<u32> {
    offered
        .iter()
        .filter_map(|v| minor_of_v2(v))
        .filter(|n| (min..=max).contains(n))
        .max()
}

// ---- arrays ---------------------------------------------------------------------------

#[derive(Deserialize)]
struct ArrayW {
    #[serde(default)]
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    version: Option<String>,
}

/// Parses `GET /arrays`.
///
/// # Errors
/// [`ParseError`] when the body is not the expected JSON.
pub fn arrays(body: &[u8]) -> Result<Page<ArrayInfo>, ParseError> {
    page(body, "arrays", |a: ArrayW| ArrayInfo {
        id: a.id,
        name: a.name,
        version: a.version.unwrap_or_default(),
    })
}

#[derive(Deserialize)]
struct ConnectionW {
    #[serde(default)]
    name: String,
    #[serde(default)]
    id: String,
    #[serde(default)]
    remote: Option<RemoteW>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default, rename = "type")]
    connection_type: Option<String>,
    #[serde(default)]
    management_address: Option<String>,
}

#[derive(Deserialize)]
struct RemoteW {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    id: Option<String>,
}

/// Parses `GET /array-connections`.
///
/// # Errors
/// [`ParseError`] when the body is not the expected JSON.
pub fn array_connections(body: &[u8]) -> Result<Page<ArrayConnection>, ParseError> {
    page(body, "array connections", |c: ConnectionW| {
        let (remote_name, remote_id) = c.remote.map(|r| (r.name, r.id)).unwrap_or((None, None));
        ArrayConnection {
            name: remote_name.filter(|n| !n.is_empty()).unwrap_or(c.name),
            id: remote_id.filter(|i| !i.is_empty()).unwrap_or(c.id),
            status: c.status.unwrap_or_default(),
            connection_type: c.connection_type.unwrap_or_default(),
            management_address: c.management_address,
        }
    })
}

// ---- volumes --------------------------------------------------------------------------

#[derive(Deserialize)]
struct VolumeW {
    #[serde(default)]
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    serial: Option<String>,
    #[serde(default)]
    provisioned: Option<u64>,
    #[serde(default)]
    created: Option<i64>,
    #[serde(default)]
    destroyed: Option<bool>,
    #[serde(default)]
    connection_count: Option<u32>,
    #[serde(default)]
    pod: Option<NameRefW>,
    #[serde(default)]
    source: Option<NameRefW>,
}

/// Parses `GET/POST/PATCH /volumes`.
///
/// # Errors
/// [`ParseError`] when the body is not the expected JSON.
pub fn volumes(body: &[u8]) -> Result<Page<ArrayVolume>, ParseError> {
    page(body, "volumes", |v: VolumeW| ArrayVolume {
        id: v.id,
        name: v.name,
        serial: v.serial.unwrap_or_default(),
        provisioned: v.provisioned.unwrap_or_default(),
        created: v.created.unwrap_or_default(),
        destroyed: v.destroyed.unwrap_or_default(),
        connection_count: v.connection_count.unwrap_or_default(),
        pod: name_ref(v.pod),
        source: name_ref(v.source),
    })
}

#[derive(Deserialize)]
struct VolumeSnapshotW {
    #[serde(default)]
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    source: Option<NameRefW>,
    #[serde(default)]
    created: Option<i64>,
    #[serde(default)]
    provisioned: Option<u64>,
    #[serde(default)]
    destroyed: Option<bool>,
    #[serde(default)]
    suffix: Option<String>,
}

/// Parses `GET /volume-snapshots`.
///
/// # Errors
/// [`ParseError`] when the body is not the expected JSON.
pub fn volume_snapshots(body: &[u8]) -> Result<Page<VolumeSnapshot>, ParseError> {
    page(body, "volume snapshots", |s: VolumeSnapshotW| {
        VolumeSnapshot {
            id: s.id,
            source: name_or_empty(s.source),
            created: s.created.unwrap_or_default(),
            provisioned: s.provisioned.unwrap_or_default(),
            destroyed: s.destroyed.unwrap_or_default(),
            suffix: s.suffix.unwrap_or_else(|| {
                s.name
                    .rsplit_once('.')
                    .map(|(_, suffix)| suffix.to_owned())
                    .unwrap_or_default()
            }),
            name: s.name,
        }
    })
}

// ---- protection groups ----------------------------------------------------------------

#[derive(Deserialize, Default)]
struct ScheduleW {
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    frequency: Option<u64>,
}

#[derive(Deserialize, Default)]
struct RetentionW {
    #[serde(default)]
    all_for_sec: Option<u64>,
    #[serde(default)]
    per_day: Option<u32>,
    #[serde(default)]
    days: Option<u32>,
}

#[derive(Deserialize)]
struct ProtectionGroupW {
    #[serde(default)]
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    is_local: Option<bool>,
    #[serde(default)]
    source: Option<NameRefW>,
    #[serde(default)]
    destroyed: Option<bool>,
    #[serde(default)]
    replication_schedule: Option<ScheduleW>,
    #[serde(default)]
    target_retention: Option<RetentionW>,
    #[serde(default)]
    target_count: Option<u32>,
    #[serde(default)]
    volume_count: Option<u32>,
}

/// Parses `GET/POST /protection-groups`.
///
/// # Errors
/// [`ParseError`] when the body is not the expected JSON.
pub fn protection_groups(body: &[u8]) -> Result<Page<ArrayProtectionGroup>, ParseError> {
    page(body, "protection groups", |g: ProtectionGroupW| {
        let schedule = g.replication_schedule.unwrap_or_default();
        let retention = g.target_retention.unwrap_or_default();
        ArrayProtectionGroup {
            id: g.id,
            // A replicated-in group carries the source array's prefix.
            is_local: g.is_local.unwrap_or(!g.name.contains(':')),
            name: g.name,
            source: name_or_empty(g.source),
            destroyed: g.destroyed.unwrap_or_default(),
            replication_schedule: ReplicationSchedule {
                enabled: schedule.enabled.unwrap_or_default(),
                frequency_ms: schedule.frequency.unwrap_or_default(),
            },
            target_retention: TargetRetention {
                all_for_sec: retention.all_for_sec.unwrap_or_default(),
                per_day: retention.per_day.unwrap_or_default(),
                days: retention.days.unwrap_or_default(),
            },
            target_count: g.target_count.unwrap_or_default(),
            volume_count: g.volume_count.unwrap_or_default(),
        }
    })
}

#[derive(Deserialize)]
struct MemberW {
    #[serde(default)]
    group: Option<NameRefW>,
    #[serde(default)]
    member: Option<NameRefW>,
    #[serde(default)]
    allowed: Option<bool>,
    #[serde(default)]
    status: Option<String>,
}

/// Parses `GET /protection-groups/volumes`: the member volume names.
///
/// # Errors
/// [`ParseError`] when the body is not the expected JSON.
pub fn group_members(body: &[u8]) -> Result<Page<String>, ParseError> {
    let p = page(body, "protection group members", |m: MemberW| {
        name_ref(m.member).map(|n| n.name)
    })?;
    Ok(Page {
        items: p.items.into_iter().flatten().collect(),
        continuation_token: p.continuation_token,
    })
}

/// Parses `GET /protection-groups/targets`.
///
/// # Errors
/// [`ParseError`] when the body is not the expected JSON.
pub fn group_targets(body: &[u8]) -> Result<Page<ProtectionGroupTarget>, ParseError> {
    page(body, "protection group targets", |m: MemberW| {
        ProtectionGroupTarget {
            group: name_or_empty(m.group),
            member: name_or_empty(m.member),
            allowed: m.allowed.unwrap_or_default(),
            status: m.status.unwrap_or_default(),
        }
    })
}

#[derive(Deserialize)]
struct PgSnapshotW {
    #[serde(default)]
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    source: Option<NameRefW>,
    #[serde(default)]
    suffix: Option<String>,
    #[serde(default)]
    created: Option<i64>,
    #[serde(default)]
    destroyed: Option<bool>,
}

/// Parses `GET/POST /protection-group-snapshots`.
///
/// # Errors
/// [`ParseError`] when the body is not the expected JSON.
pub fn pg_snapshots(body: &[u8]) -> Result<Page<PgSnapshot>, ParseError> {
    page(body, "protection group snapshots", |s: PgSnapshotW| {
        PgSnapshot {
            id: s.id,
            source: name_or_empty(s.source),
            suffix: s.suffix.unwrap_or_else(|| {
                s.name
                    .rsplit_once('.')
                    .map(|(_, suffix)| suffix.to_owned())
                    .unwrap_or_default()
            }),
            created: s.created.unwrap_or_default(),
            destroyed: s.destroyed.unwrap_or_default(),
            name: s.name,
        }
    })
}

#[derive(Deserialize)]
struct TransferW {
    #[serde(default)]
    name: String,
    #[serde(default)]
    destroyed: Option<bool>,
    #[serde(default)]
    started: Option<i64>,
    #[serde(default)]
    completed: Option<i64>,
    #[serde(default)]
    progress: Option<f64>,
    #[serde(default)]
    data_transferred: Option<u64>,
}

/// Parses `GET /protection-group-snapshots/transfer`.
///
/// # Errors
/// [`ParseError`] when the body is not the expected JSON.
pub fn pg_snapshot_transfers(body: &[u8]) -> Result<Page<PgSnapshotTransfer>, ParseError> {
    page(
        body,
        "protection group snapshot transfers",
        |t: TransferW| PgSnapshotTransfer {
            name: t.name,
            destroyed: t.destroyed.unwrap_or_default(),
            started: t.started,
            completed: t.completed,
            progress: t.progress.unwrap_or_default().clamp(0.0, 1.0),
            data_transferred: t.data_transferred.unwrap_or_default(),
        },
    )
}

// ---- pods -----------------------------------------------------------------------------

#[derive(Deserialize)]
struct PodArrayW {
    #[serde(default)]
    name: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    frozen_at: Option<i64>,
}

#[derive(Deserialize)]
struct PodW {
    #[serde(default)]
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    arrays: Option<Vec<PodArrayW>>,
    #[serde(default)]
    promotion_status: Option<String>,
    #[serde(default)]
    destroyed: Option<bool>,
}

/// Parses `GET/POST/PATCH /pods`.
///
/// # Errors
/// [`ParseError`] when the body is not the expected JSON.
pub fn pods(body: &[u8]) -> Result<Page<Pod>, ParseError> {
    page(body, "pods", |p: PodW| Pod {
        id: p.id,
        name: p.name,
        arrays: p
            .arrays
            .unwrap_or_default()
            .into_iter()
            .map(|a| PodArray {
                name: a.name,
                status: a.status.unwrap_or_default(),
                frozen_at: a.frozen_at,
            })
            .collect(),
        promotion_status: p.promotion_status.unwrap_or_default(),
        destroyed: p.destroyed.unwrap_or_default(),
    })
}

// ---- login ----------------------------------------------------------------------------

#[derive(Deserialize)]
struct LoginItemW {
    #[serde(default)]
    username: Option<String>,
}

/// Parses the body of `POST /login`: the user the token belongs to.
///
/// # Errors
/// [`ParseError`] when the body is not the expected JSON.
pub fn login_user(body: &[u8]) -> Result<Option<String>, ParseError> {
    let p = page(body, "login", |i: LoginItemW| i.username)?;
    Ok(p.items.into_iter().flatten().next())
}

// ---- errors ---------------------------------------------------------------------------

#[derive(Deserialize)]
struct ErrorsW {
    #[serde(default)]
    errors: Option<Vec<ErrorItemW>>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
struct ErrorItemW {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    context: Option<String>,
}

/// One entry of an error body: the array's message and the object it is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorItem {
    /// The array's message (`Volume does not exist.`).
    pub message: String,
    /// The object it concerns (`vol1`), when given.
    pub context: Option<String>,
}

/// The longest piece of a non-JSON error body kept in a message.
const RAW_BODY_LIMIT: usize = 200;

/// Parses an error body: `{"errors": [{"message", "context"}]}`, the API gateway's
/// `{"message"}`, or anything else (kept as text, shortened).
pub fn error_items(body: &[u8]) -> Vec<ErrorItem> {
    if let Ok(e) = serde_json::from_slice::<ErrorsW>(body) {
        let mut items: Vec<ErrorItem> = e
            .errors
            .unwrap_or_default()
            .into_iter()
            .filter_map(|i| {
                let message = i.message.filter(|m| !m.is_empty())?;
                Some(ErrorItem {
                    message,
                    context: i.context.filter(|c| !c.is_empty()),
                })
            })
            .collect();
        if items.is_empty() {
            if let Some(message) = e.message.filter(|m| !m.is_empty()) {
                items.push(ErrorItem {
                    message,
                    context: None,
                });
            }
        }
        return items;
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return Vec::new();
    }
    let short: String = text.chars().take(RAW_BODY_LIMIT).collect();
    vec![ErrorItem {
        message: short,
        context: None,
    }]
}

/// What the array said about a failed request, besides its body.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ErrorMeta {
    /// The request id (echoed `X-Request-ID`).
    pub request_id: Option<String>,
    /// `X-RateLimit-Remaining-second`.
    pub remaining_second: Option<String>,
    /// `X-RateLimit-Remaining-minute`.
    pub remaining_minute: Option<String>,
}

/// How long to wait after a 429: 60 s when the per-minute budget is exhausted, else 1 s.
pub fn throttle_delay(remaining_minute: Option<&str>) -> Duration {
    match remaining_minute.and_then(|v| v.trim().parse::<i64>().ok()) {
        Some(n) if n <= 0 => Duration::from_secs(60),
        _ => Duration::from_secs(1),
    }
}

fn lower_contains_any(text: &str, needles: &[&str]) -> bool {
    let lower = text.to_ascii_lowercase();
    needles.iter().any(|n| lower.contains(n))
}

/// Message substrings of a 400 that mean the named object is missing.
const NOT_FOUND_TEXTS: &[&str] = &[
    "does not exist",
    "no such volume or snapshot",
    "could not be found",
];
/// Message substrings of a 400 that mean the object or relation exists already.
const CONFLICT_TEXTS: &[&str] = &[
    "already exists",
    "already includes",
    "already allowed on",
    "already belongs to",
    "already in use",
];

/// Maps a failed response to a [`BackendError`]: the kind from the status and the
/// array's message, the message and context kept, the request id and the rate-limit
/// delay attached. `applied` is decided from the status: refusals (4xx) were not
/// applied; a 5xx may have been.
pub fn error_from_response(status: u16, body: &[u8], meta: &ErrorMeta) -> BackendError {
    let items = error_items(body);
    let message = if items.is_empty() {
        format!("HTTP {status} with no error message")
    } else {
        items
            .iter()
            .map(|i| match &i.context {
                Some(c) => format!("{} (context: {c})", i.message),
                None => i.message.clone(),
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    let kind = match status {
        400 | 422 => {
            if lower_contains_any(&message, NOT_FOUND_TEXTS) {
                BackendErrorKind::NotFound
            } else if lower_contains_any(&message, CONFLICT_TEXTS) {
                BackendErrorKind::Conflict
            } else {
                BackendErrorKind::Invalid
            }
        }
        401 => BackendErrorKind::Auth,
        403 => BackendErrorKind::Forbidden,
        404 => BackendErrorKind::NotFound,
        409 => BackendErrorKind::Conflict,
        429 => BackendErrorKind::Throttled,
        408 | 500..=599 => BackendErrorKind::Transient,
        _ => BackendErrorKind::Invalid,
    };
    let mut err = BackendError::new(kind, Service::FlashArray, message).with_status(status);
    if let Some(id) = &meta.request_id {
        err = err.with_request_id(id.clone());
    }
    if status == 429 {
        err = err.with_retry_after(throttle_delay(meta.remaining_minute.as_deref()));
    }
    if status >= 500 || status == 408 {
        err.applied = Applied::Maybe;
    }
    err
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn does_not_exist_is_not_found_with_status_400() {
        let body = br#"{"errors":[{"message":"Volume does not exist.","context":"vol1"}]}"#;
        let e = error_from_response(400, body, &ErrorMeta::default());
        assert_eq!(e.kind, BackendErrorKind::NotFound);
        assert_eq!(e.status, Some(400));
        assert_eq!(e.message, "Volume does not exist. (context: vol1)");
    }

    #[test]
    fn already_includes_and_already_allowed_are_conflicts() {
        for text in [
            "Protection group already includes array2.",
            "Protection group already allowed on array2.",
        ] {
            let body = format!(r#"{{"errors":[{{"message":"{text}"}}]}}"#);
            let e = error_from_response(400, body.as_bytes(), &ErrorMeta::default());
            assert_eq!(e.kind, BackendErrorKind::Conflict, "{text}");
        }
    }

    #[test]
    fn other_400s_are_invalid() {
        let body = br#"{"errors":[{"message":"Invalid size."}]}"#;
        assert_eq!(
            error_from_response(400, body, &ErrorMeta::default()).kind,
            BackendErrorKind::Invalid
        );
    }

    #[test]
    fn gateway_message_is_kept_for_403_and_429() {
        let meta = ErrorMeta {
            request_id: Some("r1".into()),
            remaining_second: Some("0".into()),
            remaining_minute: Some("0".into()),
        };
        let e = error_from_response(429, br#"{"message":"Rate limit exceeded"}"#, &meta);
        assert_eq!(e.kind, BackendErrorKind::Throttled);
        assert_eq!(e.message, "Rate limit exceeded");
        assert_eq!(e.retry_after, Some(Duration::from_secs(60)));
        assert_eq!(e.request_id.as_deref(), Some("r1"));
        let f = error_from_response(403, br#"{"message":"Forbidden"}"#, &ErrorMeta::default());
        assert_eq!(f.kind, BackendErrorKind::Forbidden);
    }

    #[test]
    fn throttle_waits_a_second_unless_the_minute_budget_is_spent() {
        assert_eq!(throttle_delay(Some("3")), Duration::from_secs(1));
        assert_eq!(throttle_delay(None), Duration::from_secs(1));
        assert_eq!(throttle_delay(Some("0")), Duration::from_secs(60));
    }

    #[test]
    fn server_errors_may_have_been_applied() {
        let e = error_from_response(503, b"<html>busy</html>", &ErrorMeta::default());
        assert_eq!(e.kind, BackendErrorKind::Transient);
        assert_eq!(e.applied, Applied::Maybe);
        assert_eq!(e.message, "<html>busy</html>");
    }

    #[test]
    fn highest_common_v2_version_is_picked() {
        let offered: Vec<String> = ["1.19", "2.0", "2.4", "2.36", "2.47"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(pick_v2(&offered, 0, 40), Some(36));
        assert_eq!(pick_v2(&offered, 0, 50), Some(47));
        assert_eq!(pick_v2(&["1.19".to_string()], 0, 40), None);
    }

    #[test]
    fn volumes_without_pod_parse_to_none() {
        let body = br#"{"items":[{"id":"1","name":"v","pod":{"name":null,"id":null},"source":{"name":""}}],"continuation_token":""}"#;
        let p = volumes(body).unwrap();
        assert_eq!(p.items[0].pod, None);
        assert_eq!(p.items[0].source, None);
        assert_eq!(p.continuation_token, None);
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic_on_arbitrary_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = api_versions(&bytes);
            let _ = arrays(&bytes);
            let _ = array_connections(&bytes);
            let _ = volumes(&bytes);
            let _ = volume_snapshots(&bytes);
            let _ = protection_groups(&bytes);
            let _ = group_members(&bytes);
            let _ = group_targets(&bytes);
            let _ = pg_snapshots(&bytes);
            let _ = pg_snapshot_transfers(&bytes);
            let _ = pods(&bytes);
            let _ = login_user(&bytes);
            let _ = error_from_response(400, &bytes, &ErrorMeta::default());
        }
    }
}
