//! The simulated array's error answers, in the array's own words.
//!
//! Purity answers a bad request with HTTP 400 and `{"errors": [{"message", "context"}]}`;
//! the message texts below carry the substrings clients match on ("does not exist",
//! "already exists", "already includes", "already allowed on", "has been destroyed",
//! "cannot be deleted due to existing connections"). The context (the object's name)
//! is put in front, as the array's CLI prints it: `vol1: Volume does not exist.`

use protector_core::{BackendError, BackendErrorKind, Service};

const SERVICE: Service = Service::FlashArray;

fn with_context(kind: BackendErrorKind, context: &str, text: &str, status: u16) -> BackendError {
    BackendError::new(kind, SERVICE, format!("{context}: {text}")).with_status(status)
}

/// 400, "does not exist": looking up or patching a name the array does not hold.
pub(crate) fn does_not_exist(what: &str, context: &str) -> BackendError {
    with_context(
        BackendErrorKind::NotFound,
        context,
        &format!("{what} does not exist."),
        400,
    )
}

/// 400, "already exists".
pub(crate) fn already_exists(what: &str, context: &str) -> BackendError {
    with_context(
        BackendErrorKind::Conflict,
        context,
        &format!("{what} already exists."),
        400,
    )
}

/// 400, "has been destroyed": the object is soft-deleted.
pub(crate) fn destroyed(what: &str, context: &str) -> BackendError {
    with_context(
        BackendErrorKind::Conflict,
        context,
        &format!("{what} has been destroyed."),
        400,
    )
}

/// 400: eradication of an object that was not destroyed first.
pub(crate) fn not_destroyed(what: &str, context: &str) -> BackendError {
    with_context(
        BackendErrorKind::Conflict,
        context,
        &format!("{what} has not been destroyed. Destroy it before eradicating it."),
        400,
    )
}

/// 400 with a state-conflict message (already includes, already allowed on, ...).
pub(crate) fn conflict(context: &str, text: &str) -> BackendError {
    with_context(BackendErrorKind::Conflict, context, text, 400)
}

/// 400 with an invalid-request message (bad name, bad size, bad values).
pub(crate) fn invalid(context: &str, text: &str) -> BackendError {
    with_context(BackendErrorKind::Invalid, context, text, 400)
}

/// The array does not answer: connection refused, never applied.
pub(crate) fn unreachable(array: &str) -> BackendError {
    BackendError::unreachable(
        SERVICE,
        format!("connection refused: array {array} is unreachable"),
    )
}

/// 401: the API token (or the session made from it) is not valid.
pub(crate) fn bad_token(array: &str) -> BackendError {
    BackendError::new(
        BackendErrorKind::Auth,
        SERVICE,
        format!("{array}: Invalid credentials. The API token is not valid."),
    )
    .with_status(401)
}
