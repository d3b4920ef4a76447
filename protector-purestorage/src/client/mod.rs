//! The FlashArray REST 2.x client.
//!
//! # Expected flow
//! 1. [`FlashArrayClient::builder`] with the array's management URL and API token;
//!    nothing is sent until the first call.
//! 2. The first call negotiates the REST version (`GET /api/api_version`, the highest
//!    2.x both sides know) and logs in (`POST /api/2.N/login` with `api-token`); the
//!    session token from `x-auth-token` goes on every later call.
//! 3. Each [`crate::FlashArray`] method is one REST call (lists: every page, following
//!    `continuation_token`).
//!
//! # Guarantees
//! - A 401 triggers exactly one new login and one new attempt of the call.
//! - GET, state-setting PATCH and DELETE are retried on throttling and transient
//!   failures (never on HTTP 500) under the [`RetryPolicy`] and its budget; a POST is
//!   retried only when it certainly did not reach the array (connection refused, 429).
//! - The API token and the session token are [`SecretString`]s: they appear in no
//!   `Debug`, `Display`, log line or error.
//!
//! # Caveats
//! Many arrays present self-signed certificates: either add their CA
//! ([`FlashArrayClientBuilder::add_root_certificate_pem`]) or, knowingly,
//! [`FlashArrayClientBuilder::accept_invalid_certs`].

mod api;
pub(crate) mod wire;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Mutex;
use url::Url;

use protector_core::{Applied, BackendError, BackendErrorKind, IdGenerator, Service};

use crate::error::{ConfigError, ParseError};
use crate::retry::{RetryBudget, RetryPolicy};
use wire::{ErrorMeta, Page};

/// The oldest REST 2.x minor version the client accepts.
pub const MIN_REST_MINOR: u32 = 2;
/// The newest REST 2.x minor version the client knows.
pub const MAX_REST_MINOR: u32 = 36;

const AUTH_TOKEN_HEADER: &str = "x-auth-token";
const API_TOKEN_HEADER: &str = "api-token";
const REQUEST_ID_HEADER: &str = "x-request-id";

/// Builder of a [`FlashArrayClient`]; settings are checked in [`Self::build`].
pub struct FlashArrayClientBuilder {
    url: String,
    api_token: SecretString,
    accept_invalid_certs: bool,
    root_certificates: Vec<Vec<u8>>,
    connect_timeout: Duration,
    request_timeout: Duration,
    retry: RetryPolicy,
    ids: Option<Arc<IdGenerator>>,
}

impl fmt::Debug for FlashArrayClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlashArrayClientBuilder")
            .field("url", &self.url)
            .field("accept_invalid_certs", &self.accept_invalid_certs)
            .field("root_certificates", &self.root_certificates.len())
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl FlashArrayClientBuilder {
    /// Accepts any certificate (default `false`). Arrays commonly present self-signed
    /// certificates; prefer [`Self::add_root_certificate_pem`] where the CA is known.
    pub fn accept_invalid_certs(mut self, accept: bool) -> Self {
        self.accept_invalid_certs = accept;
        self
    }

    /// Trusts an additional CA (PEM).
    pub fn add_root_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_certificates.push(pem.into());
        self
    }

    /// Time allowed to open a connection (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Time allowed for a whole request (default 60 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The retry policy (default [`RetryPolicy::default`]).
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// The source of `X-Request-ID` values; pass a seeded generator for reproducible
    /// runs (default: seeded from the operating system's entropy).
    pub fn id_generator(mut self, ids: Arc<IdGenerator>) -> Self {
        self.ids = Some(ids);
        self
    }

    /// Builds the client.
    ///
    /// # Errors
    /// [`ConfigError`] for a URL that is not http(s), a CA that is not PEM, a retry
    /// policy without attempts, or a TLS set-up failure.
    pub fn build(self) -> Result<FlashArrayClient, ConfigError> {
        let base = Url::parse(self.url.trim()).map_err(|e| ConfigError::InvalidUrl {
            url: self.url.clone(),
            reason: e.to_string(),
        })?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(ConfigError::InvalidUrl {
                url: self.url.clone(),
                reason: "expected http(s)://host".into(),
            });
        }
        if self.retry.max_attempts == 0 {
            return Err(ConfigError::InvalidSetting {
                name: "retry.max_attempts",
                reason: "must be at least 1".into(),
            });
        }
        let mut http = reqwest::Client::builder()
            .use_rustls_tls()
            .danger_accept_invalid_certs(self.accept_invalid_certs)
            .connect_timeout(self.connect_timeout)
            .timeout(self.request_timeout);
        for pem in &self.root_certificates {
            let cert = reqwest::Certificate::from_pem(pem)
                .map_err(|e| ConfigError::InvalidCertificate(e.to_string()))?;
            http = http.add_root_certificate(cert);
        }
        let http = http.build().map_err(|e| ConfigError::Http(e.to_string()))?;
        let budget = RetryBudget::new(self.retry.budget_capacity);
        Ok(FlashArrayClient {
            inner: Arc::new(Inner {
                http,
                base,
                api_token: self.api_token,
                retry: self.retry,
                budget,
                ids: self
                    .ids
                    .unwrap_or_else(|| Arc::new(IdGenerator::from_entropy())),
                state: Mutex::new(SessionState::default()),
            }),
        })
    }
}

/// A FlashArray REST 2.x client; cheap to clone (clones share the session).
#[derive(Clone)]
pub struct FlashArrayClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base: Url,
    api_token: SecretString,
    retry: RetryPolicy,
    budget: RetryBudget,
    ids: Arc<IdGenerator>,
    state: Mutex<SessionState>,
}

#[derive(Default)]
struct SessionState {
    minor: Option<u32>,
    session: Option<Arc<Session>>,
    generation: u64,
}

struct Session {
    minor: u32,
    token: SecretString,
    generation: u64,
}

impl fmt::Debug for FlashArrayClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlashArrayClient")
            .field("url", &self.inner.base.as_str())
            .field("retry", &self.inner.retry)
            .finish_non_exhaustive()
    }
}

/// One REST call, before it is sent.
pub(crate) struct Call<'a> {
    pub(crate) method: Method,
    /// Path below `/api/2.N/`.
    pub(crate) path: &'a str,
    pub(crate) query: Vec<(&'static str, String)>,
    pub(crate) body: Option<serde_json::Value>,
    /// Safe to repeat after it may have been applied.
    pub(crate) idempotent: bool,
}

impl<'a> Call<'a> {
    pub(crate) fn new(method: Method, path: &'a str) -> Self {
        let idempotent =
            method == Method::GET || method == Method::PATCH || method == Method::DELETE;
        Self {
            method,
            path,
            query: Vec::new(),
            body: None,
            idempotent,
        }
    }

    pub(crate) fn param(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.query.push((key, value.into()));
        self
    }

    pub(crate) fn list(self, key: &'static str, values: &[String]) -> Self {
        if values.is_empty() {
            self
        } else {
            self.param(key, values.join(","))
        }
    }

    pub(crate) fn flag(self, key: &'static str, value: Option<bool>) -> Self {
        match value {
            Some(v) => self.param(key, v.to_string()),
            None => self,
        }
    }

    pub(crate) fn body(mut self, body: serde_json::Value) -> Self {
        self.body = Some(body);
        self
    }

    /// Marks a call that must not be repeated once it may have been applied.
    pub(crate) fn not_idempotent(mut self) -> Self {
        self.idempotent = false;
        self
    }
}

struct Response {
    headers: HeaderMap,
    body: Vec<u8>,
}

impl FlashArrayClient {
    /// A builder for the array at `url` (`https://array.example.com`) with its API token.
    pub fn builder(url: impl Into<String>, api_token: SecretString) -> FlashArrayClientBuilder {
        FlashArrayClientBuilder {
            url: url.into(),
            api_token,
            accept_invalid_certs: false,
            root_certificates: Vec::new(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
            ids: None,
        }
    }

    /// The management URL.
    pub fn url(&self) -> &str {
        self.inner.base.as_str()
    }

    /// The negotiated REST version (`"2.N"`), negotiating it if needed.
    ///
    /// # Errors
    /// A [`BackendError`] if the array cannot be reached or speaks no common 2.x version.
    pub async fn api_version(&self) -> Result<String, BackendError> {
        let mut state = self.inner.state.lock().await;
        let minor = self.negotiated(&mut state).await?;
        Ok(format!("2.{minor}"))
    }

    /// Logs in now (otherwise the first call does).
    ///
    /// # Errors
    /// [`BackendErrorKind::Auth`] for a rejected API token; transport failures.
    pub async fn login(&self) -> Result<(), BackendError> {
        self.session().await.map(|_| ())
    }

    /// Ends the session (`POST /api/2.N/logout`); a later call logs in again.
    ///
    /// # Errors
    /// A [`BackendError`] if the array refuses; the local session is dropped anyway.
    pub async fn logout(&self) -> Result<(), BackendError> {
        let session = {
            let mut state = self.inner.state.lock().await;
            state.session.take()
        };
        let Some(session) = session else {
            return Ok(());
        };
        let call = Call::new(Method::POST, "logout");
        self.send_once(Some(session.as_ref()), &call, session.minor)
            .await
            .map(|_| ())
    }

    async fn negotiated(&self, state: &mut SessionState) -> Result<u32, BackendError> {
        if let Some(m) = state.minor {
            return Ok(m);
        }
        let url = self.url_for("api/api_version", &[])?;
        let resp = self
            .retrying(true, || {
                self.send_raw(Method::GET, url.clone(), None, None, None)
            })
            .await?;
        let offered = wire::api_versions(&resp.body).map_err(|e| parse_failure(&e, false))?;
        let minor = wire::pick_v2(&offered, MIN_REST_MINOR, MAX_REST_MINOR).ok_or_else(|| {
            BackendError::invalid(
                Service::FlashArray,
                format!(
                    "the array at {} offers REST versions [{}] but protector needs one of 2.{MIN_REST_MINOR}…2.{MAX_REST_MINOR}",
                    self.inner.base,
                    offered.join(", ")
                ),
            )
        })?;
        state.minor = Some(minor);
        Ok(minor)
    }

    async fn session(&self) -> Result<Arc<Session>, BackendError> {
        let mut state = self.inner.state.lock().await;
        if let Some(s) = &state.session {
            return Ok(s.clone());
        }
        let minor = self.negotiated(&mut state).await?;
        let url = self.url_for(&format!("api/2.{minor}/login"), &[])?;
        let resp = self
            .retrying(true, || {
                self.send_raw(
                    Method::POST,
                    url.clone(),
                    None,
                    None,
                    Some(&self.inner.api_token),
                )
            })
            .await?;
        let token = resp
            .headers
            .get(AUTH_TOKEN_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                BackendError::new(
                    BackendErrorKind::Auth,
                    Service::FlashArray,
                    format!(
                        "login to {} returned no {AUTH_TOKEN_HEADER} header",
                        self.inner.base
                    ),
                )
            })?;
        let user = wire::login_user(&resp.body).ok().flatten();
        tracing::debug!(array = %self.inner.base, user = user.as_deref().unwrap_or("?"), version = minor, "logged in");
        state.generation += 1;
        let session = Arc::new(Session {
            minor,
            token: SecretString::from(token.to_owned()),
            generation: state.generation,
        });
        state.session = Some(session.clone());
        Ok(session)
    }

    async fn invalidate(&self, generation: u64) {
        let mut state = self.inner.state.lock().await;
        if state.session.as_ref().map(|s| s.generation) == Some(generation) {
            state.session = None;
        }
    }

    /// Sends a call with the session, logging in again once on 401, retrying under the
    /// policy.
    pub(crate) async fn execute(&self, call: &Call<'_>) -> Result<Vec<u8>, BackendError> {
        let mut relogged = false;
        loop {
            let session = self.session().await?;
            match self
                .retrying(call.idempotent, || {
                    self.send_once(Some(session.as_ref()), call, session.minor)
                })
                .await
            {
                Ok(resp) => return Ok(resp.body),
                Err(e) if e.kind == BackendErrorKind::Auth && !relogged => {
                    tracing::debug!(array = %self.inner.base, "session rejected; logging in again");
                    relogged = true;
                    self.invalidate(session.generation).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Every page of a GET, following `continuation_token`.
    pub(crate) async fn get_all<T>(
        &self,
        call: Call<'_>,
        parse: fn(&[u8]) -> Result<Page<T>, ParseError>,
    ) -> Result<Vec<T>, BackendError> {
        let mut items = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut page_call = Call {
                method: call.method.clone(),
                path: call.path,
                query: call.query.clone(),
                body: None,
                idempotent: true,
            };
            if let Some(t) = &token {
                page_call = page_call.param("continuation_token", t.clone());
            }
            let body = self.execute(&page_call).await?;
            let page = parse(&body).map_err(|e| parse_failure(&e, false))?;
            items.extend(page.items);
            match page.continuation_token {
                Some(next) if token.as_ref() == Some(&next) => {
                    return Err(BackendError::new(
                        BackendErrorKind::Transient,
                        Service::FlashArray,
                        format!(
                            "GET {} returned the same continuation token twice",
                            call.path
                        ),
                    ));
                }
                Some(next) => token = Some(next),
                None => return Ok(items),
            }
        }
    }

    /// The first page of a GET only, whatever continuation token comes with it (a
    /// listing asked for its `limit=` first items).
    pub(crate) async fn get_first_page<T>(
        &self,
        call: Call<'_>,
        parse: fn(&[u8]) -> Result<Page<T>, ParseError>,
    ) -> Result<Vec<T>, BackendError> {
        let body = self.execute(&call).await?;
        parse(&body)
            .map(|p| p.items)
            .map_err(|e| parse_failure(&e, false))
    }

    /// A write (POST/PATCH/DELETE) answering `{"items": […]}`.
    pub(crate) async fn write<T>(
        &self,
        call: Call<'_>,
        parse: fn(&[u8]) -> Result<Page<T>, ParseError>,
    ) -> Result<Vec<T>, BackendError> {
        let body = self.execute(&call).await?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Vec::new());
        }
        parse(&body)
            .map(|p| p.items)
            .map_err(|e| parse_failure(&e, true))
    }

    async fn retrying<F, Fut>(
        &self,
        idempotent: bool,
        mut attempt_fn: F,
    ) -> Result<Response, BackendError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Response, BackendError>>,
    {
        let policy = &self.inner.retry;
        let mut attempt = 1u32;
        loop {
            match attempt_fn().await {
                Ok(r) => {
                    self.inner.budget.refund(policy.success_refund);
                    return Ok(r);
                }
                Err(e) => {
                    if !policy.allows(&e, idempotent, attempt)
                        || !self.inner.budget.try_take(policy.retry_cost)
                    {
                        return Err(e);
                    }
                    let delay = policy.delay(&e, attempt);
                    tracing::debug!(array = %self.inner.base, attempt, ?delay, error = %e, "retrying");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
            }
        }
    }

    fn url_for(&self, path: &str, query: &[(&'static str, String)]) -> Result<Url, BackendError> {
        let base = self.inner.base.as_str().trim_end_matches('/');
        let mut url = Url::parse(&format!("{base}/{path}")).map_err(|e| {
            BackendError::invalid(
                Service::FlashArray,
                format!("cannot build a URL for {path}: {e}"),
            )
        })?;
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in query {
                pairs.append_pair(k, v);
            }
        }
        Ok(url)
    }

    async fn send_once(
        &self,
        session: Option<&Session>,
        call: &Call<'_>,
        minor: u32,
    ) -> Result<Response, BackendError> {
        let url = self.url_for(&format!("api/2.{minor}/{}", call.path), &call.query)?;
        self.send_raw(
            call.method.clone(),
            url,
            call.body.as_ref(),
            session.map(|s| &s.token),
            None,
        )
        .await
    }

    async fn send_raw(
        &self,
        method: Method,
        url: Url,
        body: Option<&serde_json::Value>,
        session_token: Option<&SecretString>,
        api_token: Option<&SecretString>,
    ) -> Result<Response, BackendError> {
        let request_id = self.inner.ids.uuid().to_string();
        let what = format!("{method} {}", url.path());
        let mut req = self
            .inner
            .http
            .request(method, url)
            .header(REQUEST_ID_HEADER, &request_id);
        if let Some(t) = session_token {
            req = req.header(AUTH_TOKEN_HEADER, secret_header(t)?);
        }
        if let Some(t) = api_token {
            req = req.header(API_TOKEN_HEADER, secret_header(t)?);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| {
            transport_failure(&what, &self.inner.base, &e).with_request_id(request_id.clone())
        })?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let echoed = headers
            .get(REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .unwrap_or(request_id);
        let bytes = resp.bytes().await.map_err(|e| {
            let mut err =
                transport_failure(&what, &self.inner.base, &e).with_request_id(echoed.clone());
            err.applied = Applied::Maybe;
            err
        })?;
        if (200..300).contains(&status) {
            return Ok(Response {
                headers,
                body: bytes.to_vec(),
            });
        }
        let meta = ErrorMeta {
            request_id: Some(echoed),
            remaining_second: header_str(&headers, "x-ratelimit-remaining-second"),
            remaining_minute: header_str(&headers, "x-ratelimit-remaining-minute"),
        };
        let mut err = wire::error_from_response(status, &bytes, &meta);
        err.message = format!("{what}: {}", err.message);
        Err(err)
    }
}

fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn secret_header(token: &SecretString) -> Result<HeaderValue, BackendError> {
    let mut v = HeaderValue::from_str(token.expose_secret()).map_err(|_| {
        BackendError::new(
            BackendErrorKind::Auth,
            Service::FlashArray,
            "the token contains characters not allowed in an HTTP header",
        )
    })?;
    v.set_sensitive(true);
    Ok(v)
}

fn transport_failure(what: &str, base: &Url, e: &reqwest::Error) -> BackendError {
    let mut chain = Vec::new();
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = source {
        chain.push(s.to_string());
        source = s.source();
    }
    let detail = if chain.is_empty() {
        e.to_string()
    } else {
        chain.join(": ")
    };
    let host = base.host_str().unwrap_or("array");
    if e.is_connect() {
        BackendError::unreachable(
            Service::FlashArray,
            format!("{what}: cannot connect to {host}: {detail}"),
        )
    } else if e.is_timeout() {
        BackendError::unreachable(
            Service::FlashArray,
            format!("{what}: {host} timed out: {detail}"),
        )
        .maybe_applied()
    } else {
        BackendError::unreachable(Service::FlashArray, format!("{what}: {host}: {detail}"))
            .maybe_applied()
    }
}

fn parse_failure(e: &ParseError, write: bool) -> BackendError {
    let mut err = BackendError::new(
        BackendErrorKind::Transient,
        Service::FlashArray,
        match e {
            ParseError::Json { source, .. } => format!("{e}: {source}"),
        },
    );
    if write {
        err.applied = Applied::Maybe;
    }
    err
}
