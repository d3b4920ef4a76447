//! Errors of the simulator's own API (building worlds, creating workloads, looking up
//! names). Errors of simulated services are [`protector_core::BackendError`]s.

use protector_core::BackendError;

/// A failure of the simulator's API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// No such name in the simulated inventory.
    #[error("{kind} '{name}' does not exist on {site}")]
    Unknown {
        /// What kind of thing ("project", "user", "network", "flavor", "volume type").
        kind: &'static str,
        /// The name asked for.
        name: String,
        /// The site.
        site: &'static str,
    },
    /// The request was inconsistent.
    #[error("invalid simulator request: {0}")]
    Invalid(String),
    /// A simulated service or array refused.
    #[error("simulated backend refused: {0}")]
    Backend(#[from] BackendError),
}
