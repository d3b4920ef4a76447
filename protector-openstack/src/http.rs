//! Mapping HTTP outcomes to [`BackendError`]s.
//!
//! # Guarantees
//! - The service's own message is kept: the Nova/Cinder fault envelope
//!   (`{"itemNotFound": {"code", "message"}}` and its siblings), Neutron's
//!   `{"NeutronError": {"type", "message"}}` and Keystone's `{"error": {"message"}}`.
//! - The request id (`x-openstack-request-id`, else `x-compute-request-id`) is kept.
//! - 404 `NotFound`, 400 `Invalid`, 401 `Auth`, 403 `Forbidden`, 409 `Conflict`,
//!   413/429 `Throttled` (with `Retry-After`), 5xx `Transient` (`applied: Maybe` unless
//!   the method was a GET/HEAD), connection refused `Transient` (`applied: No`),
//!   timeouts `Transient` (`applied: Maybe`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use protector_core::{BackendError, BackendErrorKind, Service};
use reqwest::header::HeaderMap;
use reqwest::Method;

/// Longest error text kept from a body that is not a known envelope.
const MAX_RAW_MESSAGE: usize = 300;

/// The message of an OpenStack error body, if it has one of the known envelopes.
pub fn parse_error_message(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let obj = value.as_object()?;
    // Keystone: {"error": {"code", "title", "message"}}.
    // Nova/Cinder: {"<faultName>": {"code", "message"}}, one key.
    // Neutron: {"NeutronError": {"type", "message", "detail"}} or a bare string.
    for (key, inner) in obj {
        match inner {
            serde_json::Value::Object(fields) => {
                if let Some(msg) = fields.get("message").and_then(|m| m.as_str()) {
                    return Some(msg.to_owned());
                }
                if let Some(title) = fields.get("title").and_then(|m| m.as_str()) {
                    return Some(title.to_owned());
                }
            }
            serde_json::Value::String(s) if key == "NeutronError" || key == "message" => {
                return Some(s.clone());
            }
            _ => {}
        }
    }
    None
}

/// The `x-openstack-request-id` (or Nova's legacy `x-compute-request-id`).
pub(crate) fn request_id(headers: &HeaderMap) -> Option<String> {
    [
        "x-openstack-request-id",
        "x-compute-request-id",
        "x-request-id",
    ]
    .iter()
    .find_map(|h| headers.get(*h))
    .and_then(|v| v.to_str().ok())
    .map(str::to_owned)
}

/// `Retry-After` as seconds or an HTTP date (judged against `now`).
pub(crate) fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let raw = headers.get("retry-after")?.to_str().ok()?.trim();
    if let Ok(secs) = raw.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = raw.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Duration::try_from_secs_f64(secs).ok();
        }
    }
    let at = DateTime::parse_from_rfc2822(raw).ok()?.with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

fn fallback_message(status: u16, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let reason = reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("error");
    if text.is_empty() || text.starts_with('<') {
        return format!("HTTP {status} {reason}");
    }
    let mut cut: String = text.chars().take(MAX_RAW_MESSAGE).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    cut
}

/// Whether a method is idempotent by HTTP's definition (safe to resend).
pub(crate) fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS
    )
}

/// The error for a non-success response.
pub(crate) fn status_error(
    service: Service,
    method: &Method,
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    now: DateTime<Utc>,
) -> BackendError {
    let message = parse_error_message(body).unwrap_or_else(|| fallback_message(status, body));
    let kind = match status {
        400 | 405 | 406 | 415 | 422 => BackendErrorKind::Invalid,
        401 => BackendErrorKind::Auth,
        403 => BackendErrorKind::Forbidden,
        404 => BackendErrorKind::NotFound,
        409 => BackendErrorKind::Conflict,
        413 | 429 => BackendErrorKind::Throttled,
        408 | 500..=599 => BackendErrorKind::Transient,
        _ => BackendErrorKind::Invalid,
    };
    let mut err = BackendError::new(kind, service, message).with_status(status);
    if let Some(id) = request_id(headers) {
        err = err.with_request_id(id);
    }
    if let Some(after) = retry_after(headers, now) {
        err = err.with_retry_after(after);
    }
    let safe = matches!(*method, Method::GET | Method::HEAD);
    if kind == BackendErrorKind::Transient && !safe {
        err = err.maybe_applied();
    }
    err
}

/// The causes below a reqwest error, outermost first, joined with `: ` (a TLS or DNS
/// failure is only named deep in the chain). They carry URLs and socket errors, never
/// headers or bodies.
fn cause_chain(e: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = std::error::Error::source(e);
    while let Some(cause) = next {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = cause.source();
    }
    if parts.is_empty() {
        e.to_string()
    } else {
        parts.join(": ")
    }
}

/// The error for a request that got no response.
pub(crate) fn transport_error(service: Service, url: &str, e: &reqwest::Error) -> BackendError {
    let detail = cause_chain(e);
    if e.is_connect() {
        BackendError::unreachable(service, format!("cannot connect to {url}: {detail}"))
    } else if e.is_timeout() {
        BackendError::new(
            BackendErrorKind::Transient,
            service,
            format!("no answer from {url} before the timeout"),
        )
        .maybe_applied()
    } else {
        BackendError::new(
            BackendErrorKind::Transient,
            service,
            format!("request to {url} failed: {detail}"),
        )
        .maybe_applied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nova_fault_envelope_message_is_kept() {
        let body =
            br#"{"itemNotFound": {"code": 404, "message": "Instance abc could not be found."}}"#;
        assert_eq!(
            parse_error_message(body).as_deref(),
            Some("Instance abc could not be found.")
        );
    }

    #[test]
    fn neutron_and_keystone_envelopes_are_understood() {
        let n = br#"{"NeutronError": {"type": "NetworkNotFound", "message": "Network n1 could not be found.", "detail": ""}}"#;
        assert_eq!(
            parse_error_message(n).as_deref(),
            Some("Network n1 could not be found.")
        );
        let k = br#"{"error": {"code": 401, "title": "Unauthorized", "message": "The request you have made requires authentication."}}"#;
        assert_eq!(
            parse_error_message(k).as_deref(),
            Some("The request you have made requires authentication.")
        );
    }

    #[test]
    fn a_post_that_got_a_5xx_may_have_been_applied_but_a_get_not() {
        let h = HeaderMap::new();
        let now = fixed_now();
        let post = status_error(Service::Compute, &Method::POST, 502, &h, b"", now);
        assert_eq!(post.applied, protector_core::Applied::Maybe);
        assert_eq!(post.message, "HTTP 502 Bad Gateway");
        let get = status_error(Service::Compute, &Method::GET, 502, &h, b"", now);
        assert_eq!(get.applied, protector_core::Applied::No);
    }

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:27:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut h = HeaderMap::new();
        h.insert("retry-after", "7".parse().unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(7)));
        h.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(60)));
    }

    fn fixed_now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2025-03-15T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }
}
