//! The authenticated session that Nova, Cinder and Neutron clients share.
//!
//! # Expected flow
//! [`Session::connect`] builds the HTTP client (rustls; `verify: false` accepts any
//! certificate, `cacert` adds trusted roots) and authenticates. Every call then asks
//! for the cached token, resolves its service's endpoint from the token's catalog,
//! and goes through the one retry loop.
//!
//! # Guarantees
//! - A token is replaced when less than the configured margin remains before its
//!   `expires_at`, judged by the injected [`protector_core::Clock`]; concurrent callers
//!   share one re-authentication.
//! - A 401 from any service drops the token and repeats the call once with a new one.
//! - Tokens travel only in `X-Auth-Token` headers marked sensitive; they never appear
//!   in `Debug`, logs or errors.
//!
//! # Caveats
//! A token whose whole lifetime is shorter than the margin is still used once per
//! call (re-authenticating before every call), rather than failing.

use std::sync::Arc;

use protector_core::{BackendError, RequestContext, Service};
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::config::CloudConfig;
use crate::error::{ConfigError, Error, ParseError};
use crate::http::{is_idempotent, status_error, transport_error};
use crate::keystone::{self, ServiceType, Token};
use crate::retry::Retrier;

/// One HTTP request of a service client. Its body may hold a password, so it has no
/// `Debug` that shows the body.
pub(crate) struct Request {
    pub(crate) method: Method,
    pub(crate) url: Url,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: Option<serde_json::Value>,
    pub(crate) idempotent: bool,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("url", &self.url.as_str())
            .field("has_body", &self.body.is_some())
            .finish_non_exhaustive()
    }
}

impl Request {
    pub(crate) fn new(method: Method, url: Url) -> Self {
        let idempotent = is_idempotent(&method);
        Self {
            method,
            url,
            headers: Vec::new(),
            body: None,
            idempotent,
        }
    }

    pub(crate) fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub(crate) fn json(mut self, body: serde_json::Value) -> Self {
        self.body = Some(body);
        self
    }
}

/// A successful response.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

struct Inner {
    config: CloudConfig,
    http: reqwest::Client,
    retrier: Retrier,
    token: tokio::sync::Mutex<Option<Arc<Token>>>,
}

/// An authenticated connection to one cloud. Cheap to clone; clones share the token.
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("cloud", &self.inner.config.cloud_name)
            .field("identity_url", &self.inner.config.auth_url.as_str())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A session that has not authenticated yet (the first call will).
    ///
    /// # Errors
    /// [`ConfigError::CaCert`] or [`ConfigError::HttpClient`] when TLS cannot be set up.
    pub fn new(config: CloudConfig) -> Result<Self, ConfigError> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .user_agent(concat!("protector-openstack/", env!("CARGO_PKG_VERSION")));
        if !config.verify {
            builder = builder.danger_accept_invalid_certs(true);
        } else if let Some(path) = &config.cacert {
            let pem = std::fs::read(path).map_err(|e| ConfigError::CaCert {
                file: path.clone(),
                reason: e.to_string(),
            })?;
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ConfigError::CaCert {
                    file: path.clone(),
                    reason: e.to_string(),
                })?;
            if certs.is_empty() {
                return Err(ConfigError::CaCert {
                    file: path.clone(),
                    reason: "no PEM certificate in the file".to_owned(),
                });
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder.build().map_err(|e| ConfigError::HttpClient {
            reason: e.to_string(),
        })?;
        let retrier = Retrier::new(config.retry.clone());
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                http,
                retrier,
                token: tokio::sync::Mutex::new(None),
            }),
        })
    }

    /// A session that has authenticated once.
    ///
    /// # Errors
    /// [`Error::Config`] for TLS set-up, [`Error::Backend`] when Keystone refuses
    /// (`Auth` for bad credentials or an unknown project) or cannot be reached.
    pub async fn connect(config: CloudConfig) -> Result<Self, Error> {
        let session = Self::new(config)?;
        session.token().await?;
        Ok(session)
    }

    /// The configuration.
    pub fn config(&self) -> &CloudConfig {
        &self.inner.config
    }

    /// A valid token: the cached one, or a new one when it is within the refresh
    /// margin of expiring.
    ///
    /// # Errors
    /// Keystone's refusal or a transport failure.
    pub async fn token(&self) -> Result<Arc<Token>, BackendError> {
        let mut slot = self.inner.token.lock().await;
        let now = self.inner.config.clock.now();
        if let Some(token) = slot.as_ref() {
            if !token.needs_refresh(now, self.inner.config.token_refresh_margin) {
                return Ok(Arc::clone(token));
            }
            tracing::debug!(cloud = %self.inner.config.cloud_name, "token near expiry, re-authenticating");
        }
        let token = Arc::new(self.authenticate().await?);
        *slot = Some(Arc::clone(&token));
        Ok(token)
    }

    /// Confirms that Keystone answers now and still honours the session's token: a
    /// cached token alone says nothing about whether the site is up. Sends
    /// `HEAD /v3/auth/tokens` with the token validating itself (Keystone lets a token's
    /// owner validate it); a token Keystone no longer knows (401 or 404) is replaced by
    /// a new one.
    ///
    /// # Errors
    /// Keystone's refusal or a transport failure.
    pub async fn verify(&self) -> Result<(), BackendError> {
        let token = self.token().await?;
        let url = crate::url_join(
            &self.inner.config.auth_url,
            &["auth", "tokens"],
            Service::Identity,
        )?;
        let mut req = Request::new(Method::HEAD, url);
        req.headers
            .push(("X-Subject-Token", token.id.expose_secret().to_owned()));
        match self.execute(Service::Identity, &req, Some(&token.id)).await {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.status, Some(401 | 404)) => {
                tracing::debug!(cloud = %self.inner.config.cloud_name, "token no longer valid, re-authenticating");
                self.invalidate(&token).await;
                self.token().await.map(|_| ())
            }
            Err(e) => Err(e),
        }
    }

    /// Drops the cached token and authenticates again.
    ///
    /// # Errors
    /// As [`Session::token`].
    pub async fn reauthenticate(&self) -> Result<Arc<Token>, BackendError> {
        let mut slot = self.inner.token.lock().await;
        let token = Arc::new(self.authenticate().await?);
        *slot = Some(Arc::clone(&token));
        Ok(token)
    }

    /// The caller's identity (user, project, role names) from the current token.
    ///
    /// # Errors
    /// As [`Session::token`].
    pub async fn request_context(&self) -> Result<RequestContext, BackendError> {
        Ok(self.token().await?.request_context())
    }

    /// The endpoint of `service` for the configured interface and region.
    ///
    /// # Errors
    /// `NotFound` naming what was asked when the catalog has no such endpoint.
    pub async fn endpoint(&self, service: ServiceType) -> Result<Url, BackendError> {
        let token = self.token().await?;
        token.catalog.endpoint(
            service,
            self.inner.config.interface,
            self.inner.config.region_name.as_deref(),
        )
    }

    /// `GET {endpoint of service}/{segments…}` with the session's token, retries and
    /// 401 handling; the JSON body as is. For calls the typed clients do not cover.
    ///
    /// # Errors
    /// The service's error, or `Transient` when the body is not JSON.
    pub async fn get_json(
        &self,
        service: ServiceType,
        segments: &[&str],
    ) -> Result<serde_json::Value, BackendError> {
        let base = self.endpoint(service).await?;
        let url = crate::url_join(&base, segments, service.service())?;
        let resp = self
            .send(service.service(), Request::new(Method::GET, url))
            .await?;
        serde_json::from_slice(&resp.body)
            .map_err(|e| parse_failure(service.service(), &ParseError::json("JSON", &e)))
    }

    pub(crate) fn page_size(&self) -> u32 {
        self.inner.config.page_size
    }

    async fn invalidate(&self, used: &Arc<Token>) {
        let mut slot = self.inner.token.lock().await;
        if slot.as_ref().is_some_and(|t| Arc::ptr_eq(t, used)) {
            *slot = None;
        }
    }

    async fn authenticate(&self) -> Result<Token, BackendError> {
        let config = &self.inner.config;
        let url = crate::url_join(&config.auth_url, &["auth", "tokens"], Service::Identity)?;
        let mut req = Request::new(Method::POST, url).json(keystone::api::auth_body(&config.auth));
        // Issuing a token changes nothing on the server: safe to resend.
        req.idempotent = true;
        let resp = self.execute(Service::Identity, &req, None).await?;
        let id = resp
            .headers
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                BackendError::invalid(
                    Service::Identity,
                    "keystone answered without an X-Subject-Token header",
                )
            })?
            .to_owned();
        let mut token = keystone::wire::parse_token(&resp.body)
            .map_err(|e| parse_failure(Service::Identity, &e))?;
        token.id = SecretString::from(id);
        tracing::debug!(
            cloud = %config.cloud_name,
            user = %token.user_id,
            project = %token.project_id,
            expires_at = %token.expires_at,
            "authenticated"
        );
        Ok(token)
    }

    /// Sends an authenticated request; re-authenticates once on a 401.
    pub(crate) async fn send(
        &self,
        service: Service,
        req: Request,
    ) -> Result<Response, BackendError> {
        let mut token = self.token().await?;
        let mut reauthenticated = false;
        loop {
            match self.execute(service, &req, Some(&token.id)).await {
                Err(e) if e.status == Some(401) && !reauthenticated => {
                    tracing::debug!(%service, "401: re-authenticating once");
                    reauthenticated = true;
                    self.invalidate(&token).await;
                    token = self.token().await?;
                }
                other => return other,
            }
        }
    }

    /// One logical call: attempts with the retry policy.
    async fn execute(
        &self,
        service: Service,
        req: &Request,
        token: Option<&SecretString>,
    ) -> Result<Response, BackendError> {
        let retrier = &self.inner.retrier;
        let mut attempt = 1;
        loop {
            match self.attempt(service, req, token).await {
                Ok(resp) => {
                    retrier.on_success();
                    return Ok(resp);
                }
                Err(e) => match retrier.next_delay(&e, req.idempotent, attempt) {
                    Some(delay) => {
                        tracing::debug!(
                            %service,
                            method = %req.method,
                            url = %req.url,
                            attempt,
                            max_attempts = retrier.policy().max_attempts,
                            delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                            error = %e,
                            "retrying"
                        );
                        tokio::time::sleep(delay).await;
                        attempt += 1;
                    }
                    None => return Err(e),
                },
            }
        }
    }

    async fn attempt(
        &self,
        service: Service,
        req: &Request,
        token: Option<&SecretString>,
    ) -> Result<Response, BackendError> {
        let mut builder = self
            .inner
            .http
            .request(req.method.clone(), req.url.clone())
            .header("Accept", "application/json");
        if let Some(token) = token {
            let mut value = HeaderValue::from_str(token.expose_secret()).map_err(|_| {
                BackendError::new(
                    protector_core::BackendErrorKind::Auth,
                    Service::Identity,
                    "keystone issued a token that is not a valid header value",
                )
            })?;
            value.set_sensitive(true);
            builder = builder.header("X-Auth-Token", value);
        }
        for (name, value) in &req.headers {
            let mut value = HeaderValue::from_str(value).map_err(|_| {
                BackendError::invalid(service, format!("header {name} is not a valid value"))
            })?;
            // The only headers set here carry microversions or a token to validate.
            value.set_sensitive(name.eq_ignore_ascii_case("x-subject-token"));
            builder = builder.header(*name, value);
        }
        if let Some(body) = &req.body {
            let bytes = serde_json::to_vec(body).map_err(|e| {
                BackendError::invalid(service, format!("cannot encode the request: {e}"))
            })?;
            builder = builder
                .header("Content-Type", "application/json")
                .body(bytes);
        }
        let resp = builder
            .send()
            .await
            .map_err(|e| transport_error(service, redacted(&req.url).as_str(), &e))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .bytes()
            .await
            .map_err(|e| transport_error(service, redacted(&req.url).as_str(), &e))?
            .to_vec();
        tracing::debug!(%service, method = %req.method, url = %redacted(&req.url), status, "response");
        if (200..300).contains(&status) {
            Ok(Response { headers, body })
        } else {
            let now = self.inner.config.clock.now();
            Err(status_error(
                service,
                &req.method,
                status,
                &headers,
                &body,
                now,
            ))
        }
    }
}

/// The URL without user info, for messages.
fn redacted(url: &Url) -> Url {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u
}

/// A success response whose body does not parse.
pub(crate) fn parse_failure(service: Service, e: &ParseError) -> BackendError {
    BackendError::new(
        protector_core::BackendErrorKind::Transient,
        service,
        e.to_string(),
    )
    .maybe_applied()
}

/// Longest a list may take in pages before the client refuses to follow more.
pub(crate) const MAX_PAGES: usize = 100_000;
