//! State and helpers shared by the simulated services.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use protector_core::{BackendError, BackendErrorKind, Clock, RequestContext, SystemClock};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::SiteEndpoints;
use crate::site::SimSite;
use crate::world::{SimWorld, ADMIN, TENANTS};

/// An application credential Keystone accepts.
#[derive(Clone, PartialEq, Eq)]
pub struct ApplicationCredential {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its secret.
    pub secret: String,
    /// The owning user's name.
    pub user: String,
    /// The project it is scoped to.
    pub project: String,
}

impl std::fmt::Debug for ApplicationCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApplicationCredential")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("user", &self.user)
            .field("project", &self.project)
            .finish_non_exhaustive()
    }
}

/// The secrets one site's Keystone accepts, derived from the world's seed.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    passwords: BTreeMap<String, String>,
    app_credentials: Vec<ApplicationCredential>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("users", &self.passwords.keys().collect::<Vec<_>>())
            .field("app_credentials", &self.app_credentials)
            .finish()
    }
}

fn derive(seed: u64, site: SimSite, what: &str, len: usize) -> String {
    let digest = Sha256::digest(format!("{seed}/{}/{what}", site.name()).as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    hex.chars().take(len).collect()
}

impl Credentials {
    pub(crate) fn derive(world: &SimWorld, site: SimSite) -> Self {
        let seed = world.seed();
        let passwords = world
            .site(site)
            .users
            .keys()
            .map(|u| (u.clone(), derive(seed, site, &format!("password/{u}"), 24)))
            .collect();
        let mut owners: Vec<(&str, &str)> = TENANTS.to_vec();
        owners.push((ADMIN, ADMIN));
        let app_credentials = owners
            .into_iter()
            .map(|(project, user)| ApplicationCredential {
                id: derive(seed, site, &format!("app-cred-id/{user}"), 32),
                name: format!("{user}-dr"),
                secret: derive(seed, site, &format!("app-cred-secret/{user}"), 40),
                user: user.to_owned(),
                project: project.to_owned(),
            })
            .collect();
        Self {
            passwords,
            app_credentials,
        }
    }

    /// The password of `user`.
    pub fn password(&self, user: &str) -> Option<&str> {
        self.passwords.get(user).map(String::as_str)
    }

    /// The application credential owned by `user`.
    pub fn application_credential(&self, user: &str) -> Option<&ApplicationCredential> {
        self.app_credentials.iter().find(|a| a.user == user)
    }

    pub(crate) fn app_credential_by_id(&self, id: &str) -> Option<&ApplicationCredential> {
        self.app_credentials.iter().find(|a| a.id == id)
    }

    pub(crate) fn app_credential_by_name(
        &self,
        name: &str,
        user: &str,
    ) -> Option<&ApplicationCredential> {
        self.app_credentials
            .iter()
            .find(|a| a.name == name && a.user == user)
    }
}

/// An issued token.
#[derive(Clone, Debug)]
pub(crate) struct IssuedToken {
    pub(crate) ctx: RequestContext,
    pub(crate) body: Value,
    pub(crate) expires_at: DateTime<Utc>,
}

/// What every service of one site shares.
pub(crate) struct SiteState {
    pub(crate) world: SimWorld,
    pub(crate) site: SimSite,
    pub(crate) endpoints: SiteEndpoints,
    pub(crate) credentials: Arc<Credentials>,
    /// Wall-clock time for token lifetimes: the clients judge expiry by their own
    /// system clock, not the world's simulated one.
    pub(crate) wall: Arc<dyn Clock>,
    tokens: Mutex<BTreeMap<String, IssuedToken>>,
    counter: AtomicU64,
}

impl SiteState {
    pub(crate) fn new(
        world: SimWorld,
        site: SimSite,
        endpoints: SiteEndpoints,
        credentials: Arc<Credentials>,
    ) -> Self {
        Self {
            world,
            site,
            endpoints,
            credentials,
            wall: Arc::new(SystemClock),
            tokens: Mutex::new(BTreeMap::new()),
            counter: AtomicU64::new(0),
        }
    }

    fn next(&self) -> u64 {
        self.counter.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// A fresh `req-<uuid>` request id.
    pub(crate) fn request_id(&self) -> String {
        let n = self.next();
        format!(
            "req-{:08x}-0000-4000-8000-{n:012x}",
            self.site.index() as u32 + 0x5107_0000
        )
    }

    /// Stores a token and returns its id.
    pub(crate) fn store_token(&self, token: IssuedToken) -> String {
        let n = self.next();
        let id = format!(
            "gAAAAA{}",
            derive(self.world.seed(), self.site, &format!("token/{n}"), 48)
        );
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.insert(id.clone(), token);
        }
        id
    }

    /// The live token with id `id`.
    pub(crate) fn token(&self, id: &str) -> Option<IssuedToken> {
        let tokens = self.tokens.lock().ok()?;
        tokens
            .get(id)
            .filter(|t| t.expires_at > self.wall.now())
            .cloned()
    }

    /// Revokes a token.
    pub(crate) fn revoke(&self, id: &str) -> bool {
        self.tokens
            .lock()
            .map(|mut t| t.remove(id).is_some())
            .unwrap_or(false)
    }

    /// The caller of a service request, from `X-Auth-Token`.
    /// The world's current (simulated) time, for timestamps in bodies.
    pub(crate) fn sim_now(&self) -> DateTime<Utc> {
        self.world.clock().now()
    }

    pub(crate) fn authenticate(&self, headers: &HeaderMap) -> Option<IssuedToken> {
        let id = headers.get("x-auth-token")?.to_str().ok()?;
        self.token(id)
    }
}

/// A refusal built before a handler's work starts (boxed: responses are large).
pub(crate) type Refusal = Box<Response>;

/// The status a simulator error stands for.
pub(crate) fn status_of(e: &BackendError) -> StatusCode {
    if let Some(s) = e.status.and_then(|s| StatusCode::from_u16(s).ok()) {
        if s.is_client_error() || s.is_server_error() {
            return s;
        }
    }
    match e.kind {
        BackendErrorKind::NotFound => StatusCode::NOT_FOUND,
        BackendErrorKind::Conflict => StatusCode::CONFLICT,
        BackendErrorKind::Auth => StatusCode::UNAUTHORIZED,
        BackendErrorKind::Forbidden => StatusCode::FORBIDDEN,
        BackendErrorKind::Throttled => StatusCode::TOO_MANY_REQUESTS,
        BackendErrorKind::Transient => StatusCode::SERVICE_UNAVAILABLE,
        BackendErrorKind::Invalid => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The Nova/Cinder fault name for a status.
pub(crate) fn fault_name(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "badRequest",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "itemNotFound",
        405 => "badMethod",
        409 => "conflictingRequest",
        413 | 429 => "overLimit",
        415 => "badMediaType",
        501 => "notImplemented",
        503 => "serviceUnavailable",
        _ => "computeFault",
    }
}

/// A Nova/Cinder fault response.
pub(crate) fn fault(status: StatusCode, message: &str) -> Response {
    let mut resp = (
        status,
        axum::Json(json!({ fault_name(status): { "code": status.as_u16(), "message": message } })),
    )
        .into_response();
    if matches!(status.as_u16(), 413 | 429 | 503) {
        resp.headers_mut()
            .insert("retry-after", HeaderValue::from_static("0"));
    }
    resp
}

/// The Keystone-style 401 a service answers a missing or stale token with.
pub(crate) fn unauthorized(auth_url: &str) -> Response {
    let mut resp = (
        StatusCode::UNAUTHORIZED,
        axum::Json(json!({"error": {
            "code": 401,
            "title": "Unauthorized",
            "message": "The request you have made requires authentication."
        }})),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("Keystone uri=\"{auth_url}\"")) {
        resp.headers_mut().insert("www-authenticate", v);
    }
    resp
}

/// Adds `x-openstack-request-id` (and extra headers) to a response.
pub(crate) fn with_headers(mut resp: Response, headers: &[(&'static str, String)]) -> Response {
    for (k, v) in headers {
        if let Ok(v) = HeaderValue::from_str(v) {
            resp.headers_mut().insert(HeaderName::from_static(k), v);
        }
    }
    resp
}

/// One page of `items` after `marker` (by `id_of`), at most `limit` long.
///
/// # Errors
/// A marker that names no item (the services answer 400).
pub(crate) fn paginate<T>(
    items: Vec<T>,
    marker: Option<&str>,
    limit: Option<usize>,
    id_of: impl Fn(&T) -> String,
) -> Result<(Vec<T>, Option<String>), String> {
    let start = match marker {
        None => 0,
        Some(m) => {
            items
                .iter()
                .position(|i| id_of(i) == m)
                .ok_or_else(|| format!("marker [{m}] not found"))?
                + 1
        }
    };
    let rest: Vec<T> = items.into_iter().skip(start).collect();
    match limit {
        Some(l) if rest.len() > l || (l > 0 && rest.len() == l) => {
            let page: Vec<T> = rest.into_iter().take(l).collect();
            let next = page.last().map(&id_of);
            Ok((page, next))
        }
        _ => Ok((rest, None)),
    }
}

/// `limit` from a query, refusing non-numbers.
pub(crate) fn parse_limit(query: &BTreeMap<String, String>) -> Result<Option<usize>, String> {
    query
        .get("limit")
        .map(|l| {
            l.parse::<usize>()
                .map_err(|_| format!("limit param must be an integer, got {l}"))
        })
        .transpose()
}

/// A `next` link to `base` with `limit` and `marker`.
pub(crate) fn next_link(base: &str, limit: Option<usize>, marker: &str) -> Value {
    let limit = limit.map(|l| format!("limit={l}&")).unwrap_or_default();
    json!([{ "rel": "next", "href": format!("{base}?{limit}marker={marker}") }])
}

/// Now as Nova/Keystone print it.
pub(crate) fn iso_z(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// Now as Cinder prints it (naive UTC).
pub(crate) fn iso_naive(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
}
