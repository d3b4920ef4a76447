//! Errors of the OpenStack layer.
//!
//! Failures of a service call are [`protector_core::BackendError`]s (the one error that
//! crosses a port); this module holds what can go wrong before any call is made:
//! reading `clouds.yaml` and the `OS_*` variables, validating a [`crate::CloudConfig`],
//! and building the HTTP client. Messages name the file, the cloud and the key, and
//! never contain a password, a token or an application-credential secret.

use std::path::PathBuf;

use protector_core::BackendError;

/// Where a configuration value came from, for error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigOrigin {
    /// A `clouds.yaml` or `secure.yaml` file.
    File(PathBuf),
    /// The `OS_*` environment variables.
    Environment,
    /// Values set on a [`crate::CloudConfigBuilder`] directly.
    Builder,
}

impl std::fmt::Display for ConfigOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(path) => write!(f, "{}", path.display()),
            Self::Environment => f.write_str("the OS_* environment variables"),
            Self::Builder => f.write_str("the cloud configuration"),
        }
    }
}

/// A configuration that cannot be loaded or is not valid.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A cloud was named but no `clouds.yaml` exists in any searched place.
    #[error("cloud '{cloud}' was requested but no clouds.yaml was found (searched: {searched})")]
    NoCloudsFile {
        /// The cloud asked for.
        cloud: String,
        /// The files looked at, in order.
        searched: String,
    },
    /// A configuration file exists but cannot be read.
    #[error("cannot read {}", file.display())]
    Io {
        /// The file.
        file: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A configuration file is not valid YAML or not shaped like `clouds.yaml`.
    #[error("{} is malformed: {reason}", file.display())]
    Malformed {
        /// The file.
        file: PathBuf,
        /// What is wrong (a position, never a value).
        reason: String,
    },
    /// The named cloud is not in the file.
    #[error("cloud '{cloud}' not found in {}", file.display())]
    CloudNotFound {
        /// The file searched.
        file: PathBuf,
        /// The cloud asked for.
        cloud: String,
    },
    /// A required key is missing.
    #[error("{origin}: cloud '{cloud}' is missing {key}")]
    MissingKey {
        /// Where the cloud was defined.
        origin: ConfigOrigin,
        /// The cloud's name (`envvars` for the environment).
        cloud: String,
        /// The missing key (or the alternatives, e.g. `project_name or project_id`).
        key: String,
    },
    /// A key has a value that cannot be used.
    #[error("{origin}: cloud '{cloud}' has an invalid {key}: {reason}")]
    InvalidValue {
        /// Where the cloud was defined.
        origin: ConfigOrigin,
        /// The cloud's name.
        cloud: String,
        /// The key.
        key: String,
        /// Why it is invalid (never the value of a secret).
        reason: String,
    },
    /// The CA bundle named by `cacert` cannot be read or parsed.
    #[error("cannot use the CA certificate {}: {reason}", file.display())]
    CaCert {
        /// The file.
        file: PathBuf,
        /// Why.
        reason: String,
    },
    /// The HTTP client cannot be built (TLS backend initialisation).
    #[error("cannot build the HTTP client: {reason}")]
    HttpClient {
        /// Why.
        reason: String,
    },
}

/// Errors of [`crate::OpenStackSite::connect`] and the session constructors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Keystone (or the network on the way to it) refused or failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// A response body that does not have the shape the client expects.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
#[error("unexpected {what} response: {reason}")]
pub struct ParseError {
    /// What was being parsed (`server`, `volume list`, …).
    pub what: &'static str,
    /// Why it did not parse (a position, never a value).
    pub reason: String,
}

impl ParseError {
    pub(crate) fn json(what: &'static str, e: &serde_json::Error) -> Self {
        // serde_json's messages quote unexpected values; keep only the class and the
        // position so a body can never leak into an error message.
        let reason = format!(
            "{} at line {} column {}",
            match e.classify() {
                serde_json::error::Category::Io => "read error",
                serde_json::error::Category::Syntax => "invalid JSON",
                serde_json::error::Category::Data => "unexpected field type or missing field",
                serde_json::error::Category::Eof => "truncated JSON",
            },
            e.line(),
            e.column()
        );
        Self { what, reason }
    }

    pub(crate) fn new(what: &'static str, reason: impl Into<String>) -> Self {
        Self {
            what,
            reason: reason.into(),
        }
    }
}
