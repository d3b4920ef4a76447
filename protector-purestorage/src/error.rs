//! Errors of this crate that are not backend failures: configuration and parsing.

/// A client or driver configuration that cannot work.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The array URL does not parse or is not http(s).
    #[error("invalid FlashArray URL '{url}': {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The CA certificate is not PEM.
    #[error("invalid CA certificate: {0}")]
    InvalidCertificate(String),
    /// The HTTP client could not be built (TLS set-up).
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
    /// A setting is out of range.
    #[error("invalid setting {name}: {reason}")]
    InvalidSetting {
        /// The setting.
        name: &'static str,
        /// Why.
        reason: String,
    },
}

/// A response body that is not what the array sends.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// Not the expected JSON.
    #[error("malformed {what} response from the array")]
    Json {
        /// Which response.
        what: &'static str,
        /// The decoder's complaint.
        #[source]
        source: serde_json::Error,
    },
}
