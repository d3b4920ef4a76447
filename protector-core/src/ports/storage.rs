//! The `StorageDriver` port: array-side DR semantics, pluggable like the product's
//! storage drivers (the Pure driver in `protector-purestorage` implements it).
//!
//! A driver is built for one replication policy and speaks to its two arrays, named by
//! [`ArraySide`] relative to the protection group's configured primary and secondary
//! sites. Async groups replicate through an array protection group, sync groups through
//! a stretched pod; the engine does not care which.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::BackendError;
use crate::model::{ReplicationPolicy, ReplicationType};

/// One of the two arrays of a replication policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArraySide {
    /// The array of the protection group's primary site (`primary_fa_url`).
    Primary,
    /// The array of the secondary site (`secondary_fa_url`).
    Secondary,
}

impl ArraySide {
    /// The other array.
    pub fn other(self) -> Self {
        match self {
            Self::Primary => Self::Secondary,
            Self::Secondary => Self::Primary,
        }
    }
}

impl fmt::Display for ArraySide {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Primary => "primary",
            Self::Secondary => "secondary",
        })
    }
}

/// The array-side replication unit of a protection group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicationGroupSpec {
    /// Pure protection group name (async) or pod name (sync): the policy's `pure_pg_name`.
    pub name: String,
    /// `async` or `sync`.
    pub replication_type: ReplicationType,
    /// Replication interval (async).
    pub interval: Duration,
    /// The policy's RPO.
    pub rpo: Duration,
}

impl ReplicationGroupSpec {
    /// The spec for a policy and the group's replication type.
    pub fn from_policy(policy: &ReplicationPolicy, replication_type: ReplicationType) -> Self {
        Self {
            name: policy.pure_pg_name.clone(),
            replication_type,
            interval: policy.replication_interval(),
            rpo: policy.rpo(),
        }
    }
}

/// A point-in-time copy of the whole group that has landed on the target array.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaPoint {
    /// The array it is on.
    pub array: ArraySide,
    /// Its name there (`array-a:pg1.42`; the pod name for sync).
    pub name: String,
    /// When the snapshot was taken on the source.
    pub created_at: DateTime<Utc>,
    /// When it finished landing (now, for sync).
    pub completed_at: Option<DateTime<Utc>>,
}

/// The replicated copy of one volume on the target array, ready to promote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeReplica {
    /// The array it is on.
    pub array: ArraySide,
    /// The source volume's array-side name (on the source array).
    pub source_volume: String,
    /// The object to copy: a volume snapshot (`array-a:pg1.42.volume-…-cinder`) for
    /// async, the pod volume (`pod::volume-…-cinder`) for sync.
    pub name: String,
    /// When the copy's data was captured on the source.
    pub created_at: DateTime<Utc>,
}

/// A new, writable volume made from a replica.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromotedVolume {
    /// The array it is on.
    pub array: ArraySide,
    /// Its name.
    pub name: String,
    /// Provisioned size in bytes.
    pub provisioned_bytes: u64,
}

/// Health of the replication link of a group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkHealth {
    /// The arrays are connected and the group replicates.
    pub link_up: bool,
    /// Age of the newest complete replica's data: the clock's now minus the time it was
    /// captured on the source (zero for a healthy sync pod); `None` when there is none.
    pub lag: Option<Duration>,
    /// When the newest replica was taken.
    pub last_replica_at: Option<DateTime<Utc>>,
    /// `lag` is within the policy's RPO.
    pub within_rpo: bool,
    /// Human-readable detail (status of targets, pod array states).
    pub detail: String,
}

/// Array-side DR operations for one replication policy.
#[async_trait]
pub trait StorageDriver: Send + Sync {
    /// The array's name (as used in replicated object names and messages).
    async fn array_name(&self, side: ArraySide) -> Result<String, BackendError>;

    /// Creates the replication group on `source` replicating to the other array, if it
    /// does not exist yet (idempotent): targets, allowance, schedule and retention for
    /// async; a pod stretched to both arrays for sync.
    async fn ensure_replication_group(
        &self,
        spec: &ReplicationGroupSpec,
        source: ArraySide,
    ) -> Result<(), BackendError>;

    /// Adds volumes (array-side names on `source`) to the group (idempotent).
    async fn add_volumes(
        &self,
        spec: &ReplicationGroupSpec,
        source: ArraySide,
        volumes: &[String],
    ) -> Result<(), BackendError>;

    /// Like [`Self::add_volumes`], and returns each volume's array-side name after the
    /// call, in input order. Sync groups move volumes into the pod, which renames them
    /// (`pod::volume-…-cinder`); async groups keep the names. The default calls
    /// [`Self::add_volumes`] and returns the names unchanged.
    async fn add_volumes_with_names(
        &self,
        spec: &ReplicationGroupSpec,
        source: ArraySide,
        volumes: &[String],
    ) -> Result<Vec<String>, BackendError> {
        self.add_volumes(spec, source, volumes).await?;
        Ok(volumes.to_vec())
    }

    /// Removes volumes from the group (idempotent); the volumes stay.
    async fn remove_volumes(
        &self,
        spec: &ReplicationGroupSpec,
        source: ArraySide,
        volumes: &[String],
    ) -> Result<(), BackendError>;

    /// Removes the group's configuration from both arrays; volumes stay.
    async fn delete_replication_group(
        &self,
        spec: &ReplicationGroupSpec,
    ) -> Result<(), BackendError>;

    /// Takes a snapshot of the group on `source`, replicates it now and waits — at most
    /// `timeout` — until it has landed on the other array.
    async fn replicate_now(
        &self,
        spec: &ReplicationGroupSpec,
        source: ArraySide,
        timeout: Duration,
    ) -> Result<ReplicaPoint, BackendError>;

    /// The newest complete replica of `volume` (its name on `source`) on the other array;
    /// `None` when there is none.
    async fn newest_replica(
        &self,
        spec: &ReplicationGroupSpec,
        source: ArraySide,
        volume: &str,
    ) -> Result<Option<VolumeReplica>, BackendError>;

    /// Copies a replica into a new volume `new_name` on the replica's array. Never
    /// overwrites: if `new_name` exists and was made from the same replica the call is
    /// idempotent, otherwise it fails with a conflict.
    async fn promote(
        &self,
        replica: &VolumeReplica,
        new_name: &str,
    ) -> Result<PromotedVolume, BackendError>;

    /// Destroys and eradicates a volume; a volume that does not exist is not an error.
    async fn destroy_volume(&self, side: ArraySide, name: &str) -> Result<(), BackendError>;

    /// Makes `new_source` the replicating side of the group, with `volumes` (names on
    /// `new_source`) as its members: for failback and to restore the original direction.
    async fn reverse_replication(
        &self,
        spec: &ReplicationGroupSpec,
        new_source: ArraySide,
        volumes: &[String],
    ) -> Result<(), BackendError>;

    /// Link health and lag of the group replicating from `source`, against the RPO.
    async fn health(
        &self,
        spec: &ReplicationGroupSpec,
        source: ArraySide,
    ) -> Result<LinkHealth, BackendError>;
}

/// Builds a driver for a replication policy (one per protection group).
pub trait StorageDriverFactory: Send + Sync {
    /// A driver speaking to the policy's two arrays with its tokens.
    ///
    /// # Errors
    /// A [`BackendError`] when the policy's URLs are unusable.
    fn driver(&self, policy: &ReplicationPolicy) -> Result<Arc<dyn StorageDriver>, BackendError>;
}
