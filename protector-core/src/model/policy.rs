//! Replication policies: FlashArray endpoints, tokens and RPO of a protection group.

use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::ids::ProtectionGroupId;

/// What API-token fields show instead of the token.
pub const MASKED: &str = "******";

/// The replication policy of one protection group (1:1).
///
/// The API tokens are secrets: not in `Debug`, skipped when serialised. Use
/// [`ReplicationPolicy::masked`] for display.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReplicationPolicy {
    /// The protection group the policy belongs to.
    pub protection_group_id: ProtectionGroupId,
    /// Management URL of the primary site's FlashArray.
    pub primary_fa_url: String,
    /// API token of the primary FlashArray.
    #[serde(skip, default = "empty_secret")]
    pub primary_fa_api_token: SecretString,
    /// Management URL of the secondary site's FlashArray.
    pub secondary_fa_url: String,
    /// API token of the secondary FlashArray.
    #[serde(skip, default = "empty_secret")]
    pub secondary_fa_api_token: SecretString,
    /// Name of the array-side replication group (Pure protection group, or pod for sync).
    pub pure_pg_name: String,
    /// Recovery point objective in minutes.
    pub rpo_minutes: u32,
    /// Replication interval in seconds (async); defaults to the RPO.
    pub replication_interval_seconds: u64,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

fn empty_secret() -> SecretString {
    SecretString::from(String::new())
}

impl ReplicationPolicy {
    /// The RPO as a duration.
    pub fn rpo(&self) -> Duration {
        Duration::from_secs(u64::from(self.rpo_minutes) * 60)
    }

    /// The replication interval as a duration.
    pub fn replication_interval(&self) -> Duration {
        Duration::from_secs(self.replication_interval_seconds)
    }

    /// A display view with both tokens masked.
    pub fn masked(&self) -> MaskedPolicy {
        MaskedPolicy {
            protection_group_id: self.protection_group_id.clone(),
            primary_fa_url: self.primary_fa_url.clone(),
            primary_fa_api_token: MASKED.to_owned(),
            secondary_fa_url: self.secondary_fa_url.clone(),
            secondary_fa_api_token: MASKED.to_owned(),
            pure_pg_name: self.pure_pg_name.clone(),
            rpo_minutes: self.rpo_minutes,
            replication_interval_seconds: self.replication_interval_seconds,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// A replication policy as shown to users: tokens replaced by [`MASKED`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaskedPolicy {
    /// The protection group the policy belongs to.
    pub protection_group_id: ProtectionGroupId,
    /// Management URL of the primary FlashArray.
    pub primary_fa_url: String,
    /// Always [`MASKED`].
    pub primary_fa_api_token: String,
    /// Management URL of the secondary FlashArray.
    pub secondary_fa_url: String,
    /// Always [`MASKED`].
    pub secondary_fa_api_token: String,
    /// Array-side replication group name.
    pub pure_pg_name: String,
    /// RPO in minutes.
    pub rpo_minutes: u32,
    /// Replication interval in seconds.
    pub replication_interval_seconds: u64,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}
