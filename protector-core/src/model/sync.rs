//! Metadata sync status between the two sites.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{ProtectionGroupId, SiteId};

/// The documented sync status values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SyncStatusValue {
    /// Both sites hold the same version.
    #[serde(rename = "IN SYNC")]
    InSync,
    /// Both reachable, versions differ.
    #[serde(rename = "OUT OF SYNC")]
    OutOfSync,
    /// The peer cannot be reached.
    #[serde(rename = "UNREACHABLE")]
    Unreachable,
    /// The last push to the peer failed.
    #[serde(rename = "FAILED")]
    Failed,
}

impl SyncStatusValue {
    /// The documented upper-case form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InSync => "IN SYNC",
            Self::OutOfSync => "OUT OF SYNC",
            Self::Unreachable => "UNREACHABLE",
            Self::Failed => "FAILED",
        }
    }
}

impl fmt::Display for SyncStatusValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a site remembers about syncing one protection group to its peer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncState {
    /// The protection group.
    pub protection_group_id: ProtectionGroupId,
    /// The version last pushed to (and acknowledged by) the peer.
    pub remote_version: Option<u64>,
    /// The status recorded by the last sync attempt.
    pub status: SyncStatusValue,
    /// When the last sync attempt ran.
    pub last_sync_at: Option<DateTime<Utc>>,
    /// Why the last sync failed.
    pub last_sync_error: Option<String>,
}

/// The `sync-status` report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncStatus {
    /// The protection group.
    pub protection_group_id: ProtectionGroupId,
    /// The site asked.
    pub local_site_id: SiteId,
    /// Its version.
    pub local_version: u64,
    /// The peer.
    pub remote_site_id: SiteId,
    /// The peer's version, if it could be read.
    pub remote_version: Option<u64>,
    /// The verdict.
    pub status: SyncStatusValue,
    /// Time of the last sync.
    pub last_sync_at: Option<DateTime<Utc>>,
}

impl SyncStatus {
    /// The verdict for two versions when both sites answered.
    pub fn compare(local: u64, remote: u64) -> SyncStatusValue {
        if local == remote {
            SyncStatusValue::InSync
        } else {
            SyncStatusValue::OutOfSync
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_values_serialise_upper_case_with_spaces() {
        assert_eq!(
            serde_json::to_string(&SyncStatusValue::InSync).unwrap(),
            "\"IN SYNC\""
        );
        assert_eq!(
            serde_json::to_string(&SyncStatusValue::OutOfSync).unwrap(),
            "\"OUT OF SYNC\""
        );
        assert_eq!(SyncStatus::compare(3, 3), SyncStatusValue::InSync);
        assert_eq!(SyncStatus::compare(3, 2), SyncStatusValue::OutOfSync);
    }
}
