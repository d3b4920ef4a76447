//! Errors of the core layer.
//!
//! [`BackendError`] is the one error that crosses a port: every client (real or
//! simulated) maps its service's failures into a [`BackendErrorKind`] plus whether the
//! request may have been applied, and the engine decides retries from those two facts
//! alone. [`Error`] is what the core's public API returns.

use std::fmt;
use std::time::Duration;

use crate::messages::Refusal;

/// The classes of backend failure the engine distinguishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum BackendErrorKind {
    /// The resource does not exist (Nova/Cinder 404, FlashArray 400 "does not exist").
    NotFound,
    /// The request conflicts with the resource's state (409, "already exists").
    Conflict,
    /// Authentication failed or the token expired (401).
    Auth,
    /// Authenticated but not allowed (403, e.g. `PolicyNotAuthorized`).
    Forbidden,
    /// Rate limited or over a limit (429, 413 `overLimit`); retry after a delay.
    Throttled,
    /// A transient failure: 5xx, connection refused, timeout, unreachable service.
    Transient,
    /// The request was malformed or refused as invalid (400).
    Invalid,
}

impl fmt::Display for BackendErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotFound => "not found",
            Self::Conflict => "conflict",
            Self::Auth => "authentication failed",
            Self::Forbidden => "forbidden",
            Self::Throttled => "throttled",
            Self::Transient => "transient failure",
            Self::Invalid => "invalid request",
        })
    }
}

/// Which backend a failure came from.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Service {
    /// Keystone (identity).
    Identity,
    /// Nova (compute).
    Compute,
    /// Cinder (block storage).
    BlockStorage,
    /// Neutron (networking).
    Network,
    /// A FlashArray's REST API.
    FlashArray,
    /// The protector service of the peer site (metadata sync).
    Protector,
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Identity => "keystone",
            Self::Compute => "nova",
            Self::BlockStorage => "cinder",
            Self::Network => "neutron",
            Self::FlashArray => "flasharray",
            Self::Protector => "protector",
        })
    }
}

/// Whether a failed request may have taken effect on the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Applied {
    /// The request never reached the service, or the service refused it before acting.
    No,
    /// The request was sent and the answer was lost or ambiguous (timeout, 5xx after
    /// sending): the effect may or may not exist.
    Maybe,
}

/// A failure reported by (or on the way to) a backend service.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BackendError {
    /// The class of failure.
    pub kind: BackendErrorKind,
    /// The backend that failed.
    pub service: Service,
    /// The service's own message, as it sent it (never a credential).
    pub message: String,
    /// The service's request id (`x-openstack-request-id`, `X-Request-ID`), if any.
    pub request_id: Option<String>,
    /// HTTP status, if the failure came with one.
    pub status: Option<u16>,
    /// How long the service asked us to wait (`Retry-After`, rate-limit headers).
    pub retry_after: Option<Duration>,
    /// Whether the request may have been applied.
    pub applied: Applied,
}

impl BackendError {
    /// A new error of `kind` from `service`, not applied.
    pub fn new(kind: BackendErrorKind, service: Service, message: impl Into<String>) -> Self {
        Self {
            kind,
            service,
            message: message.into(),
            request_id: None,
            status: None,
            retry_after: None,
            applied: Applied::No,
        }
    }

    /// Shorthand for a [`BackendErrorKind::NotFound`] error.
    pub fn not_found(service: Service, message: impl Into<String>) -> Self {
        Self::new(BackendErrorKind::NotFound, service, message)
    }

    /// Shorthand for a [`BackendErrorKind::Conflict`] error.
    pub fn conflict(service: Service, message: impl Into<String>) -> Self {
        Self::new(BackendErrorKind::Conflict, service, message)
    }

    /// Shorthand for a [`BackendErrorKind::Invalid`] error.
    pub fn invalid(service: Service, message: impl Into<String>) -> Self {
        Self::new(BackendErrorKind::Invalid, service, message)
    }

    /// Shorthand for a [`BackendErrorKind::Forbidden`] error.
    pub fn forbidden(service: Service, message: impl Into<String>) -> Self {
        Self::new(BackendErrorKind::Forbidden, service, message)
    }

    /// Shorthand for a [`BackendErrorKind::Transient`] error that never reached the
    /// service (connection refused, site down).
    pub fn unreachable(service: Service, message: impl Into<String>) -> Self {
        Self::new(BackendErrorKind::Transient, service, message)
    }

    /// Sets the HTTP status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// Sets the request id.
    pub fn with_request_id(mut self, id: impl Into<String>) -> Self {
        self.request_id = Some(id.into());
        self
    }

    /// Sets the delay the service asked for.
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// Marks the request as possibly applied.
    pub fn maybe_applied(mut self) -> Self {
        self.applied = Applied::Maybe;
        self
    }

    /// Whether retrying could help: throttling and transient failures.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind,
            BackendErrorKind::Throttled | BackendErrorKind::Transient
        )
    }

    /// Whether a retry is safe for a call of the given idempotency: an idempotent call
    /// may always be retried on a retryable error; a non-idempotent one only if the
    /// failed attempt certainly did not apply.
    pub fn may_retry(&self, idempotent: bool) -> bool {
        self.is_retryable() && (idempotent || self.applied == Applied::No)
    }
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.service, self.kind)?;
        if let Some(status) = self.status {
            write!(f, " (HTTP {status})")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(id) = &self.request_id {
            write!(f, " [request {id}]")?;
        }
        if self.applied == Applied::Maybe {
            f.write_str(" (the request may have been applied)")?;
        }
        Ok(())
    }
}

impl std::error::Error for BackendError {}

/// Errors of the durable stores.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store file was written by a newer protector (unknown schema version).
    #[error("store {path} has schema version {found}, newer than the {supported} this protector supports; upgrade protector")]
    NewerSchema {
        /// The file.
        path: String,
        /// The version found in the file.
        found: i64,
        /// The newest version this build understands.
        supported: i64,
    },
    /// The file is not a protector store or is damaged.
    #[error("store {path} is corrupt or not a protector store: {reason}")]
    Corrupt {
        /// The file.
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// A record with this key exists already.
    #[error("{what} already exists")]
    AlreadyExists {
        /// Which record.
        what: String,
    },
    /// No record with this key.
    #[error("{what} not found")]
    NotFound {
        /// Which record.
        what: String,
    },
    /// A record could not be (de)serialised.
    #[error("cannot encode or decode {what}")]
    Codec {
        /// Which record.
        what: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// The database failed.
    #[error("database error")]
    Database(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// A malformed `SRC=DST` mapping argument.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MappingError {
    /// No `=` in the argument.
    #[error("malformed mapping '{arg}': expected SRC=DST")]
    MissingSeparator {
        /// The argument as given.
        arg: String,
    },
    /// More than one `=`.
    #[error("malformed mapping '{arg}': expected exactly one '=' in SRC=DST")]
    TooManySeparators {
        /// The argument as given.
        arg: String,
    },
    /// Empty source.
    #[error("malformed mapping '{arg}': the source before '=' is empty")]
    EmptySource {
        /// The argument as given.
        arg: String,
    },
    /// Empty target.
    #[error("malformed mapping '{arg}': the target after '=' is empty")]
    EmptyTarget {
        /// The argument as given.
        arg: String,
    },
    /// The same source mapped to two different targets.
    #[error("conflicting mappings for '{source_name}': '{first}' and '{second}'")]
    Conflict {
        /// The source mapped twice.
        source_name: String,
        /// The first target.
        first: String,
        /// The second target.
        second: String,
    },
}

/// A state-machine transition that is not allowed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{refusal}")]
pub struct TransitionError {
    /// The user-facing reason.
    pub refusal: Refusal,
}

/// Errors of the core public API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request was refused before anything happened (wrong status, unreachable peer,
    /// missing policy, …). The text is one of the product's documented messages.
    #[error("{0}")]
    Refused(Refusal),
    /// The policy engine denied the request.
    #[error("Policy doesn't allow {rule} to be performed.")]
    Forbidden {
        /// The rule that denied it.
        rule: String,
    },
    /// No such resource (or not visible to the caller).
    #[error("{kind} {name} could not be found")]
    NotFound {
        /// The kind of resource ("protection group", "operation", "site").
        kind: &'static str,
        /// The name or id asked for.
        name: String,
    },
    /// Bad input.
    #[error("{0}")]
    Invalid(String),
    /// A malformed mapping argument.
    #[error(transparent)]
    Mapping(#[from] MappingError),
    /// A backend failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The durable store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<TransitionError> for Error {
    fn from(e: TransitionError) -> Self {
        Error::Refused(e.refusal)
    }
}

impl From<Refusal> for Error {
    fn from(r: Refusal) -> Self {
        Error::Refused(r)
    }
}

/// A `policy.yaml` that cannot be used: every variant names the file, and where one
/// rule is at fault, the rule and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The file could not be read.
    #[error("cannot read policy file {path}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not YAML (or has a duplicate rule name).
    #[error("policy file {file} is not valid YAML: {reason}")]
    Yaml {
        /// The file.
        file: String,
        /// What the YAML parser reported, with line and column.
        reason: String,
    },
    /// The document is YAML but not a map of rule name to rule string.
    #[error("policy file {file} must be a map of rule name to rule string, not {found}")]
    NotAMap {
        /// The file.
        file: String,
        /// What the document is instead ("a list", "a string", …).
        found: &'static str,
    },
    /// A rule name that is not a string.
    #[error("policy file {file}: rule name {name} is not a string")]
    NonStringName {
        /// The file.
        file: String,
        /// The name as YAML rendered it.
        name: String,
    },
    /// A rule whose value is not a string.
    #[error("policy file {file}: rule {rule} must be a string, not {found}")]
    NonStringRule {
        /// The file.
        file: String,
        /// The rule.
        rule: String,
        /// What the value is instead ("a number", "a list", …).
        found: &'static str,
    },
    /// A rule string that does not parse.
    #[error("policy file {file}: rule {rule}: {problem}")]
    Syntax {
        /// The file.
        file: String,
        /// The rule.
        rule: String,
        /// What is wrong with it.
        problem: crate::policy::RuleSyntaxError,
    },
    /// `rule:<missing>` where no rule `<missing>` is defined.
    #[error("policy file {file}: rule {rule} references undefined rule {missing}")]
    UnknownRule {
        /// The file.
        file: String,
        /// The rule that holds the reference.
        rule: String,
        /// The name it references.
        missing: String,
    },
    /// Rules that reference each other in a loop.
    #[error("policy file {file}: rule {rule} is part of a reference cycle: {}", .cycle.join(" -> "))]
    Cycle {
        /// The file.
        file: String,
        /// A rule of the file on the cycle.
        rule: String,
        /// The cycle, first rule repeated at the end.
        cycle: Vec<String>,
    },
    /// A chain of `rule:` references longer than the engine follows.
    #[error("policy file {file}: rule {rule} starts a chain of more than {limit} rule references")]
    TooDeep {
        /// The file.
        file: String,
        /// The rule at the start of the chain.
        rule: String,
        /// The longest chain allowed.
        limit: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_error_names_service_status_and_request() {
        let e = BackendError::forbidden(
            Service::BlockStorage,
            "Policy doesn't allow volume_extension:volume_manage to be performed.",
        )
        .with_status(403)
        .with_request_id("req-1");
        assert_eq!(
            e.to_string(),
            "cinder forbidden (HTTP 403): Policy doesn't allow volume_extension:volume_manage to be performed. [request req-1]"
        );
    }

    #[test]
    fn non_idempotent_calls_retry_only_when_not_applied() {
        let e = BackendError::unreachable(Service::Compute, "connection refused");
        assert!(e.may_retry(false));
        let maybe = e.clone().maybe_applied();
        assert!(!maybe.may_retry(false));
        assert!(maybe.may_retry(true));
        let nf = BackendError::not_found(Service::Compute, "gone");
        assert!(!nf.may_retry(true));
    }
}
