//! One cloud's connection settings, validated.
//!
//! A [`CloudConfig`] is what a [`crate::Session`] needs: where Keystone is, how to
//! authenticate (password or application credential), which project to scope to,
//! which region and interface to pick endpoints from, TLS, timeouts, the token refresh
//! margin and the retry policy. Build one with [`CloudConfig::builder`] or load one from
//! `clouds.yaml` / `OS_*` variables with [`crate::ConfigLoader`].
//!
//! # Guarantees
//! - [`CloudConfigBuilder::build`] checks every combination the Keystone v3 API would
//!   reject (a user name without a domain, a scope together with an application
//!   credential, …) and names the missing or invalid key.
//! - Passwords and application-credential secrets are [`SecretString`]s: `Debug` shows
//!   `[REDACTED]` and nothing here serialises them.
//!
//! # Defaults
//! `auth_type` `password`; interface `public`; `verify` true; connect timeout 10 s;
//! request timeout 60 s; token refresh margin 120 s (keystoneauth's
//! `MIN_TOKEN_LIFE_SECONDS`); page size 1000; [`RetryPolicy::default`]; the system
//! clock.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use protector_core::{Clock, SystemClock};
use secrecy::SecretString;
use url::Url;

use crate::error::{ConfigError, ConfigOrigin};
use crate::retry::RetryPolicy;

/// Which endpoint of a service to use (`interface` in the catalog).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Interface {
    /// `public` (the default).
    #[default]
    Public,
    /// `internal`.
    Internal,
    /// `admin`.
    Admin,
}

impl Interface {
    /// The catalog's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Internal => "internal",
            Self::Admin => "admin",
        }
    }

    /// Parses `public`/`internal`/`admin` and the legacy `publicURL`-style spellings.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().trim_end_matches("url") {
            "public" => Some(Self::Public),
            "internal" => Some(Self::Internal),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }
}

impl std::fmt::Display for Interface {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A Keystone domain, by id or by name.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DomainRef {
    /// `{"id": …}`.
    Id(String),
    /// `{"name": …}`.
    Name(String),
}

/// A Keystone user, by id or by name within a domain.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UserRef {
    /// `{"id": …}`.
    Id(String),
    /// `{"name": …, "domain": …}`.
    Name {
        /// The user name.
        name: String,
        /// The user's domain.
        domain: DomainRef,
    },
}

/// The project a password token is scoped to.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProjectScope {
    /// `{"id": …}`.
    Id(String),
    /// `{"name": …, "domain": …}`.
    Name {
        /// The project name.
        name: String,
        /// The project's domain.
        domain: DomainRef,
    },
}

/// How to authenticate.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum AuthMethod {
    /// `password`, scoped to a project.
    Password {
        /// The user.
        user: UserRef,
        /// The password.
        password: SecretString,
        /// The project.
        project: ProjectScope,
    },
    /// `application_credential`; the credential carries its own project scope.
    ApplicationCredential {
        /// The credential's id, or its name (then `user` is required).
        id_or_name: ApplicationCredentialRef,
        /// The secret.
        secret: SecretString,
    },
}

/// An application credential, by id or by name plus its owner.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ApplicationCredentialRef {
    /// `{"id": …}`.
    Id(String),
    /// `{"name": …, "user": …}`.
    Name {
        /// The credential name.
        name: String,
        /// Its owner.
        user: UserRef,
    },
}

/// A validated cloud configuration. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct CloudConfig {
    pub(crate) cloud_name: String,
    pub(crate) auth_url: Url,
    pub(crate) auth: AuthMethod,
    pub(crate) region_name: Option<String>,
    pub(crate) interface: Interface,
    pub(crate) verify: bool,
    pub(crate) cacert: Option<PathBuf>,
    pub(crate) connect_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) token_refresh_margin: Duration,
    pub(crate) page_size: u32,
    pub(crate) retry: RetryPolicy,
    pub(crate) clock: Arc<dyn Clock>,
}

impl CloudConfig {
    /// A builder with the documented defaults.
    pub fn builder() -> CloudConfigBuilder {
        CloudConfigBuilder::default()
    }

    /// The cloud's name (`envvars` for one built from `OS_*`, `cloud` when unnamed).
    pub fn cloud_name(&self) -> &str {
        &self.cloud_name
    }

    /// Keystone's v3 root, normalised to end in `/v3` with no trailing slash.
    pub fn identity_url(&self) -> &Url {
        &self.auth_url
    }

    /// How the session authenticates.
    pub fn auth(&self) -> &AuthMethod {
        &self.auth
    }

    /// The region endpoints are picked from, if restricted.
    pub fn region_name(&self) -> Option<&str> {
        self.region_name.as_deref()
    }

    /// The endpoint interface.
    pub fn interface(&self) -> Interface {
        self.interface
    }

    /// How long before a token's `expires_at` it is replaced.
    pub fn token_refresh_margin(&self) -> Duration {
        self.token_refresh_margin
    }

    /// The retry policy shared by every call of a session.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }
}

/// Builds a [`CloudConfig`]; keys mirror `clouds.yaml`. Validation happens in
/// [`CloudConfigBuilder::build`].
#[derive(Clone, Debug, Default)]
pub struct CloudConfigBuilder {
    pub(crate) origin: Option<ConfigOrigin>,
    pub(crate) cloud_name: Option<String>,
    pub(crate) auth_type: Option<String>,
    pub(crate) auth_url: Option<String>,
    pub(crate) username: Option<String>,
    pub(crate) user_id: Option<String>,
    pub(crate) password: Option<SecretString>,
    pub(crate) project_name: Option<String>,
    pub(crate) project_id: Option<String>,
    pub(crate) user_domain_name: Option<String>,
    pub(crate) user_domain_id: Option<String>,
    pub(crate) project_domain_name: Option<String>,
    pub(crate) project_domain_id: Option<String>,
    pub(crate) domain_name: Option<String>,
    pub(crate) domain_id: Option<String>,
    pub(crate) application_credential_id: Option<String>,
    pub(crate) application_credential_name: Option<String>,
    pub(crate) application_credential_secret: Option<SecretString>,
    pub(crate) region_name: Option<String>,
    pub(crate) interface: Option<String>,
    pub(crate) verify: Option<bool>,
    pub(crate) cacert: Option<PathBuf>,
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) request_timeout: Option<Duration>,
    pub(crate) token_refresh_margin: Option<Duration>,
    pub(crate) page_size: Option<u32>,
    pub(crate) retry: Option<RetryPolicy>,
    pub(crate) clock: Option<Arc<dyn Clock>>,
}

macro_rules! string_setter {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        pub fn $name(mut self, value: impl Into<String>) -> Self {
            self.$name = Some(value.into());
            self
        }
    };
}

impl CloudConfigBuilder {
    string_setter!(
        /// The cloud's name, used in error messages.
        cloud_name
    );
    string_setter!(
        /// `password` (default) or `v3applicationcredential`.
        auth_type
    );
    string_setter!(
        /// Keystone's URL, with or without `/v3`.
        auth_url
    );
    string_setter!(
        /// User name (needs a user domain).
        username
    );
    string_setter!(
        /// User id.
        user_id
    );
    string_setter!(
        /// Project name (needs a project domain).
        project_name
    );
    string_setter!(
        /// Project id.
        project_id
    );
    string_setter!(
        /// The user's domain name.
        user_domain_name
    );
    string_setter!(
        /// The user's domain id.
        user_domain_id
    );
    string_setter!(
        /// The project's domain name.
        project_domain_name
    );
    string_setter!(
        /// The project's domain id.
        project_domain_id
    );
    string_setter!(
        /// Fallback domain name for both user and project.
        domain_name
    );
    string_setter!(
        /// Fallback domain id for both user and project.
        domain_id
    );
    string_setter!(
        /// Application credential id.
        application_credential_id
    );
    string_setter!(
        /// Application credential name (needs the owning user).
        application_credential_name
    );
    string_setter!(
        /// Region to pick endpoints from.
        region_name
    );
    string_setter!(
        /// `public` (default), `internal` or `admin`.
        interface
    );

    /// The password.
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(SecretString::from(password.into()));
        self
    }

    /// The application credential secret.
    pub fn application_credential_secret(mut self, secret: impl Into<String>) -> Self {
        self.application_credential_secret = Some(SecretString::from(secret.into()));
        self
    }

    /// `false` accepts any TLS certificate (and wins over `cacert`).
    pub fn verify(mut self, verify: bool) -> Self {
        self.verify = Some(verify);
        self
    }

    /// A PEM bundle of extra trusted roots.
    pub fn cacert(mut self, path: impl Into<PathBuf>) -> Self {
        self.cacert = Some(path.into());
        self
    }

    /// TCP/TLS connect timeout (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// Whole-request timeout (default 60 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = Some(timeout);
        self
    }

    /// Replace a token when less than this remains before `expires_at` (default 120 s).
    pub fn token_refresh_margin(mut self, margin: Duration) -> Self {
        self.token_refresh_margin = Some(margin);
        self
    }

    /// `limit` asked for on every list page (default 1000).
    pub fn page_size(mut self, size: u32) -> Self {
        self.page_size = Some(size);
        self
    }

    /// The retry policy (default [`RetryPolicy::default`]).
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// The clock token expiry is judged by (default the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Validates and builds the configuration.
    ///
    /// # Errors
    /// [`ConfigError::MissingKey`] or [`ConfigError::InvalidValue`] naming the origin,
    /// the cloud and the key.
    pub fn build(self) -> Result<CloudConfig, ConfigError> {
        let origin = self.origin.clone().unwrap_or(ConfigOrigin::Builder);
        let cloud = self
            .cloud_name
            .clone()
            .unwrap_or_else(|| "cloud".to_owned());
        let missing = |key: &str| ConfigError::MissingKey {
            origin: origin.clone(),
            cloud: cloud.clone(),
            key: key.to_owned(),
        };
        let invalid = |key: &str, reason: &str| ConfigError::InvalidValue {
            origin: origin.clone(),
            cloud: cloud.clone(),
            key: key.to_owned(),
            reason: reason.to_owned(),
        };

        let raw_url = non_empty(&self.auth_url).ok_or_else(|| missing("auth_url"))?;
        let auth_url = normalise_auth_url(raw_url).map_err(|r| invalid("auth_url", &r))?;

        let user_domain = domain(
            &self.user_domain_id,
            &self.user_domain_name,
            &self.domain_id,
            &self.domain_name,
        );
        let user = match (non_empty(&self.user_id), non_empty(&self.username)) {
            (Some(id), _) => Some(UserRef::Id(id.to_owned())),
            (None, Some(name)) => Some(UserRef::Name {
                name: name.to_owned(),
                domain: user_domain
                    .clone()
                    .ok_or_else(|| missing("user_domain_name or user_domain_id"))?,
            }),
            (None, None) => None,
        };

        let auth_type = self
            .auth_type
            .as_deref()
            .map(|t| t.trim().to_ascii_lowercase())
            .unwrap_or_else(|| {
                if self.application_credential_id.is_some()
                    || self.application_credential_secret.is_some()
                {
                    "v3applicationcredential".to_owned()
                } else {
                    "password".to_owned()
                }
            });
        let auth = match auth_type.as_str() {
            "password" | "v3password" => {
                let user = user.ok_or_else(|| missing("username or user_id"))?;
                let password = self.password.clone().ok_or_else(|| missing("password"))?;
                let project = match (non_empty(&self.project_id), non_empty(&self.project_name)) {
                    (Some(id), _) => ProjectScope::Id(id.to_owned()),
                    (None, Some(name)) => ProjectScope::Name {
                        name: name.to_owned(),
                        domain: domain(
                            &self.project_domain_id,
                            &self.project_domain_name,
                            &self.domain_id,
                            &self.domain_name,
                        )
                        .ok_or_else(|| missing("project_domain_name or project_domain_id"))?,
                    },
                    (None, None) => return Err(missing("project_name or project_id")),
                };
                AuthMethod::Password {
                    user,
                    password,
                    project,
                }
            }
            "v3applicationcredential" | "applicationcredential" | "application_credential" => {
                if non_empty(&self.project_id).is_some() || non_empty(&self.project_name).is_some()
                {
                    return Err(invalid(
                        "project_name",
                        "an application credential carries its own project scope; remove the project",
                    ));
                }
                let secret = self
                    .application_credential_secret
                    .clone()
                    .ok_or_else(|| missing("application_credential_secret"))?;
                let id_or_name = match (
                    non_empty(&self.application_credential_id),
                    non_empty(&self.application_credential_name),
                ) {
                    (Some(id), _) => ApplicationCredentialRef::Id(id.to_owned()),
                    (None, Some(name)) => ApplicationCredentialRef::Name {
                        name: name.to_owned(),
                        user: user.ok_or_else(|| missing("username or user_id"))?,
                    },
                    (None, None) => {
                        return Err(missing(
                            "application_credential_id or application_credential_name",
                        ))
                    }
                };
                AuthMethod::ApplicationCredential { id_or_name, secret }
            }
            _ => {
                return Err(invalid(
                    "auth_type",
                    "supported: password, v3password, v3applicationcredential",
                ))
            }
        };

        let interface = match non_empty(&self.interface) {
            None => Interface::Public,
            Some(s) => Interface::parse(s)
                .ok_or_else(|| invalid("interface", "expected public, internal or admin"))?,
        };
        let page_size = self.page_size.unwrap_or(1000);
        if page_size == 0 {
            return Err(invalid("page_size", "must be at least 1"));
        }
        let retry = self.retry.clone().unwrap_or_default();
        if retry.max_attempts == 0 {
            return Err(invalid("retry max_attempts", "must be at least 1"));
        }
        Ok(CloudConfig {
            cloud_name: cloud,
            auth_url,
            auth,
            region_name: non_empty(&self.region_name).map(str::to_owned),
            interface,
            verify: self.verify.unwrap_or(true),
            cacert: self.cacert.clone(),
            connect_timeout: self.connect_timeout.unwrap_or(Duration::from_secs(10)),
            request_timeout: self.request_timeout.unwrap_or(Duration::from_secs(60)),
            token_refresh_margin: self
                .token_refresh_margin
                .unwrap_or(Duration::from_secs(120)),
            page_size,
            retry,
            clock: self.clock.clone().unwrap_or_else(|| Arc::new(SystemClock)),
        })
    }
}

fn non_empty(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn domain(
    id: &Option<String>,
    name: &Option<String>,
    fallback_id: &Option<String>,
    fallback_name: &Option<String>,
) -> Option<DomainRef> {
    non_empty(id)
        .map(|s| DomainRef::Id(s.to_owned()))
        .or_else(|| non_empty(name).map(|s| DomainRef::Name(s.to_owned())))
        .or_else(|| non_empty(fallback_id).map(|s| DomainRef::Id(s.to_owned())))
        .or_else(|| non_empty(fallback_name).map(|s| DomainRef::Name(s.to_owned())))
}

/// Strips trailing slashes and appends `/v3` unless the path already ends in it.
pub(crate) fn normalise_auth_url(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw.trim()).map_err(|e| format!("not a URL ({e})"))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err("expected an http:// or https:// URL".to_owned());
    }
    if url.cannot_be_a_base() {
        return Err("expected an http:// or https:// URL".to_owned());
    }
    let mut url = url;
    let path = url.path().trim_end_matches('/').to_owned();
    let path = if path.ends_with("/v3") {
        path
    } else {
        format!("{path}/v3")
    };
    url.set_path(&path);
    url.set_query(None);
    url.set_fragment(None);
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn password_builder() -> CloudConfigBuilder {
        CloudConfig::builder()
            .auth_url("https://keystone.example.com:5000")
            .username("dr-bot")
            .password("s3cret")
            .user_domain_name("Default")
            .project_name("dr")
            .project_domain_name("Default")
    }

    #[test]
    fn auth_url_gets_v3_appended_once_whatever_the_trailing_slash() {
        for raw in [
            "https://k.example.com:5000",
            "https://k.example.com:5000/",
            "https://k.example.com:5000/v3",
            "https://k.example.com:5000/v3/",
        ] {
            let url = normalise_auth_url(raw).unwrap();
            assert_eq!(url.as_str(), "https://k.example.com:5000/v3", "{raw}");
        }
        let url = normalise_auth_url("https://cloud.example.com/identity/").unwrap();
        assert_eq!(url.as_str(), "https://cloud.example.com/identity/v3");
    }

    #[test]
    fn build_rejects_a_user_name_without_a_domain() {
        let err = CloudConfig::builder()
            .cloud_name("prod")
            .auth_url("https://k")
            .username("u")
            .password("p")
            .project_id("p1")
            .build()
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("prod") && msg.contains("user_domain_name"),
            "{msg}"
        );
    }

    #[test]
    fn build_rejects_a_missing_project_for_password_auth() {
        let err = CloudConfig::builder()
            .auth_url("https://k")
            .user_id("u")
            .password("p")
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("project_name or project_id"));
    }

    #[test]
    fn build_rejects_a_project_with_an_application_credential() {
        let err = CloudConfig::builder()
            .auth_url("https://k")
            .application_credential_id("ac")
            .application_credential_secret("s")
            .project_id("p")
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("own project scope"));
    }

    #[test]
    fn build_infers_application_credential_auth_from_its_keys() {
        let cfg = CloudConfig::builder()
            .auth_url("https://k/v3")
            .application_credential_id("ac")
            .application_credential_secret("s")
            .build()
            .unwrap();
        assert!(matches!(
            cfg.auth(),
            AuthMethod::ApplicationCredential {
                id_or_name: ApplicationCredentialRef::Id(id),
                ..
            } if id == "ac"
        ));
    }

    #[test]
    fn build_applies_documented_defaults() {
        let cfg = password_builder().build().unwrap();
        assert_eq!(cfg.interface(), Interface::Public);
        assert_eq!(cfg.token_refresh_margin(), Duration::from_secs(120));
        assert!(cfg.verify);
        assert_eq!(cfg.page_size, 1000);
    }

    #[test]
    fn build_rejects_an_unknown_interface_and_auth_type() {
        let err = password_builder()
            .interface("sideways")
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("interface"));
        let err = password_builder().auth_type("token").build().unwrap_err();
        assert!(err.to_string().contains("auth_type"));
    }

    #[test]
    fn legacy_interface_spellings_are_accepted() {
        assert_eq!(Interface::parse("internalURL"), Some(Interface::Internal));
        assert_eq!(Interface::parse("publicURL"), Some(Interface::Public));
    }
}
