//! Every user-facing text the product's documentation spells out, in one place.
//!
//! The documented wording is kept verbatim; where the documentation names a condition
//! without its exact text, the wording here is the product's reference and nothing else
//! in the code base composes its own variant.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The command prefix users type (`protector protection-group …`).
pub const COMMAND: &str = "protector";

/// Why a request was refused before anything was changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Refusal {
    /// A modification while the peer site cannot be reached.
    ModifyRemoteUnreachable,
    /// A planned operation while either site cannot be reached.
    PlannedRemoteUnreachable,
    /// Failback from a status other than `failed_over` / `failed_over_partial`.
    NotFailedOver {
        /// The status the protection group is in.
        status: String,
    },
    /// An operation that requires `active`.
    NotActive {
        /// The protection group's name.
        pg: String,
        /// The operation type asked for.
        operation: String,
        /// The status the protection group is in.
        status: String,
    },
    /// The protection group is busy with another operation or a rollback.
    Busy {
        /// The protection group's name.
        pg: String,
        /// The status the protection group is in.
        status: String,
    },
    /// Another operation on this protection group has not finished.
    OperationInProgress {
        /// The protection group's name.
        pg: String,
        /// The unfinished operation.
        operation_id: String,
    },
    /// Metadata versions differ between the sites.
    OutOfSync {
        /// The protection group's name.
        pg: String,
        /// Version on the local site.
        local: u64,
        /// Version on the peer site, if known.
        remote: Option<u64>,
    },
    /// The last metadata push failed.
    SyncFailed {
        /// The protection group's name.
        pg: String,
    },
    /// No replication policy on the protection group.
    NoPolicy {
        /// The protection group's name.
        pg: String,
    },
    /// A network used by a member has no mapping to the target site.
    NoNetworkMapping {
        /// The source network id.
        network: String,
    },
    /// A flavor mapping targets a flavor that does not exist.
    NoFlavorMapping {
        /// The source flavor.
        flavor: String,
    },
    /// The protection group has no members.
    NoMembers {
        /// The protection group's name.
        pg: String,
    },
    /// Test-failover resources exist and must be cleaned up first.
    TestResourcesExist {
        /// The protection group's name.
        pg: String,
    },
    /// No test-failover resources to clean up.
    NoTestResources {
        /// The protection group's name.
        pg: String,
    },
    /// A volume is on a type that is not replication-enabled.
    VolumeNotReplicated {
        /// The Cinder volume id.
        volume: String,
        /// The volume type.
        volume_type: String,
    },
    /// A volume's replication type differs from the protection group's.
    ReplicationTypeMismatch {
        /// The Cinder volume id.
        volume: String,
        /// The volume's replication type.
        volume_type: String,
        /// The volume's replication type value.
        found: String,
        /// The protection group's replication type.
        expected: String,
    },
    /// A name is taken.
    DuplicateName {
        /// The kind of resource.
        kind: String,
        /// The name.
        name: String,
    },
    /// `--type unplanned` is not accepted for failback.
    UnplannedFailback,
    /// Unplanned failover must be started on the site that receives the workload.
    UnplannedFromSource {
        /// The target (secondary) site's name.
        target: String,
    },
    /// The server is already a member.
    AlreadyMember {
        /// The server.
        server: String,
    },
    /// The server is not a member.
    NotAMember {
        /// The server.
        server: String,
    },
    /// Protection group deletion while it is not `active`.
    CannotDelete {
        /// The protection group's name.
        pg: String,
        /// The status.
        status: String,
    },
    /// A site is still referenced by protection groups.
    SiteInUse {
        /// The site's name.
        site: String,
    },
    /// A state-machine event that is not defined for the current status.
    IllegalTransition {
        /// What the event applies to ("operation", "protection group").
        subject: String,
        /// The current status.
        from: String,
        /// The event.
        event: String,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ModifyRemoteUnreachable => {
                f.write_str("Cannot modify protection group - remote site unreachable")
            }
            Self::PlannedRemoteUnreachable => {
                f.write_str("Cannot start planned operation - remote site unreachable")
            }
            Self::NotFailedOver { status } => write!(
                f,
                "Protection Group is not in failed_over state (current status: {status})"
            ),
            Self::NotActive {
                pg,
                operation,
                status,
            } => write!(
                f,
                "Protection group {pg} is in status {status}; {operation} requires status active"
            ),
            Self::Busy { pg, status } => write!(
                f,
                "Protection group {pg} is in status {status}; resolve it before starting new operations"
            ),
            Self::OperationInProgress { pg, operation_id } => write!(
                f,
                "Protection group {pg} has operation {operation_id} in progress; wait for it to finish"
            ),
            Self::OutOfSync { pg, local, remote } => {
                let remote = remote.map_or_else(|| "unknown".to_owned(), |v| v.to_string());
                write!(
                    f,
                    "Protection group metadata is out of sync (local version {local}, remote version {remote}); run '{COMMAND} protection-group sync-force {pg}'"
                )
            }
            Self::SyncFailed { pg } => write!(
                f,
                "The last metadata sync of protection group {pg} failed; run '{COMMAND} protection-group sync-force {pg}'"
            ),
            Self::NoPolicy { pg } => write!(f, "Protection group {pg} has no replication policy"),
            Self::NoNetworkMapping { network } => {
                write!(f, "No network mapping for source network {network}")
            }
            Self::NoFlavorMapping { flavor } => write!(
                f,
                "No flavor mapping for source flavor {flavor} and no flavor of the same name on the target site"
            ),
            Self::NoMembers { pg } => write!(f, "Protection group {pg} has no members"),
            Self::TestResourcesExist { pg } => write!(
                f,
                "Protection group {pg} has test failover resources; run '{COMMAND} protection-group test-cleanup {pg}' first"
            ),
            Self::NoTestResources { pg } => {
                write!(f, "Protection group {pg} has no test failover resources")
            }
            Self::VolumeNotReplicated {
                volume,
                volume_type,
            } => write!(
                f,
                "Volume {volume} uses volume type {volume_type}, which is not replication-enabled"
            ),
            Self::ReplicationTypeMismatch {
                volume,
                volume_type,
                found,
                expected,
            } => write!(
                f,
                "Volume {volume} (volume type {volume_type}) replication_type {found} does not match protection group replication_type {expected}"
            ),
            Self::DuplicateName { kind, name } => write!(f, "A {kind} named {name} already exists"),
            Self::UnplannedFailback => f.write_str("Failback supports only --type planned"),
            Self::UnplannedFromSource { target } => write!(
                f,
                "Unplanned failover must be started on the site that receives the workload ({target})"
            ),
            Self::AlreadyMember { server } => {
                write!(f, "Server {server} is already a member of a protection group")
            }
            Self::NotAMember { server } => {
                write!(f, "Server {server} is not a member of this protection group")
            }
            Self::CannotDelete { pg, status } => write!(
                f,
                "Protection group {pg} is in status {status}; only an active protection group without test resources can be deleted"
            ),
            Self::IllegalTransition {
                subject,
                from,
                event,
            } => write!(f, "Cannot {event}: {subject} is in status {from}"),
            Self::SiteInUse { site } => {
                write!(f, "Site {site} is used by protection groups and cannot be deleted")
            }
        }
    }
}

/// The error of a failover that found no replicated snapshot for a volume.
pub fn no_replicated_snapshot(volume: &str, array: &str) -> String {
    format!(
        "Volume manage failed: no replicated snapshot found for volume {volume} on {array}. Verify replication policy and RPO."
    )
}

/// The reason recorded on operations that a restart could not resume.
pub const INTERRUPTED_BY_RESTART: &str = "Operation interrupted by protector-engine restart";

/// The warning printed after starting an unplanned failover, verbatim from the
/// product's documentation (three lines).
pub fn unplanned_failover_warning(source_site: &str, pg: &str) -> String {
    format!(
        "WARNING: Unplanned failover initiated. Source site ({source_site}) is unreachable.\n\
         Metadata sync to {source_site} will be deferred until it recovers.\n\
         Run '{COMMAND} protection-group sync-force {pg}' after {source_site} is restored."
    )
}

/// The message of a step that exceeded its timeout, naming the service and step.
pub fn step_timed_out(step: &str, service: &str, seconds: u64) -> String {
    format!("Step {step} timed out after {seconds}s waiting for {service}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_texts_are_verbatim() {
        assert_eq!(
            Refusal::ModifyRemoteUnreachable.to_string(),
            "Cannot modify protection group - remote site unreachable"
        );
        assert!(Refusal::PlannedRemoteUnreachable
            .to_string()
            .contains("remote site unreachable"));
        assert!(Refusal::NotFailedOver {
            status: "active".into()
        }
        .to_string()
        .starts_with("Protection Group is not in failed_over state"));
        assert_eq!(
            no_replicated_snapshot("vol-abcdef", "FlashArray B"),
            "Volume manage failed: no replicated snapshot found for volume vol-abcdef on FlashArray B. Verify replication policy and RPO."
        );
    }

    #[test]
    fn unplanned_warning_has_the_three_documented_lines() {
        let w = unplanned_failover_warning("site-a", "prod-web-app");
        let lines: Vec<&str> = w.lines().collect();
        assert_eq!(
            lines,
            [
                "WARNING: Unplanned failover initiated. Source site (site-a) is unreachable.",
                "Metadata sync to site-a will be deferred until it recovers.",
                "Run 'protector protection-group sync-force prod-web-app' after site-a is restored.",
            ]
        );
    }
}
