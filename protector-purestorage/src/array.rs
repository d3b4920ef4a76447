//! The resource-level `FlashArray` trait: what protector needs of one array's REST 2.x
//! API, in domain types. The REST client implements it against a real array; the
//! simulator implements it against a simulated one, so the Pure driver runs unchanged on
//! both.
//!
//! Names follow Purity: volumes `[A-Za-z0-9-]` (pod members `pod::vol`), protection-group
//! snapshots `<pg>.<suffix>`, and on a replication target every replicated object is
//! prefixed with the source array's name (`array-a:pg1.42.volume-…-cinder`). Times are
//! milliseconds since the epoch, as the array reports them.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use protector_core::BackendError;

/// `GET /arrays`: identity of the array.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArrayInfo {
    /// Array id.
    pub id: String,
    /// Array name (prefix of replicated objects on peers).
    pub name: String,
    /// Purity version.
    pub version: String,
}

/// A reference to another object by name (`{"name": …}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameRef {
    /// The name.
    pub name: String,
}

/// A volume.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArrayVolume {
    /// Id.
    pub id: String,
    /// Name (`pod::vol` inside a pod).
    pub name: String,
    /// Serial number.
    pub serial: String,
    /// Provisioned size in bytes.
    pub provisioned: u64,
    /// Creation time (ms since epoch).
    pub created: i64,
    /// Soft-deleted (pending eradication).
    pub destroyed: bool,
    /// Host connections; manage refuses connected volumes.
    pub connection_count: u32,
    /// The pod, if the volume is in one.
    pub pod: Option<NameRef>,
    /// What it was copied from (snapshot or volume), if anything.
    pub source: Option<NameRef>,
}

/// Selects volumes; empty fields match everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VolumeQuery {
    /// Exact names (`names=`).
    pub names: Vec<String>,
    /// `destroyed=` filter.
    pub destroyed: Option<bool>,
    /// Only volumes in this pod (`filter=pod.name='…'`).
    pub pod: Option<String>,
}

/// A volume snapshot (members of a protection-group snapshot are volume snapshots named
/// `<pg>.<suffix>.<volume>`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeSnapshot {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// The volume it captures (`array-a:volume-…` on a target).
    pub source: NameRef,
    /// Creation time (ms).
    pub created: i64,
    /// Provisioned size in bytes.
    pub provisioned: u64,
    /// Soft-deleted.
    pub destroyed: bool,
    /// Suffix part of the name.
    pub suffix: String,
}

/// Selects volume snapshots; empty fields match everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VolumeSnapshotQuery {
    /// Exact names.
    pub names: Vec<String>,
    /// Snapshots of these volumes (`source_names=`).
    pub source_names: Vec<String>,
    /// Names starting with this prefix (`filter=name='<prefix>*'`).
    pub name_prefix: Option<String>,
    /// `destroyed=` filter.
    pub destroyed: Option<bool>,
    /// Order of the listing (`sort=`).
    pub order: SnapshotOrder,
    /// At most this many snapshots, in `order` (`limit=`): the first page only, where
    /// `None` reads every page.
    pub limit: Option<u32>,
}

/// Order of a volume snapshot listing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SnapshotOrder {
    /// The array's own order, by name (no `sort=`).
    #[default]
    Name,
    /// Newest first: by creation time, then by name, both descending
    /// (`sort=created-,name-`).
    NewestFirst,
}

impl SnapshotOrder {
    /// The `sort=` value asking the array for this order (`None` for its own).
    pub fn sort_param(self) -> Option<&'static str> {
        match self {
            Self::Name => None,
            Self::NewestFirst => Some("created-,name-"),
        }
    }
}

/// Replication schedule of a protection group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicationSchedule {
    /// Scheduled replication enabled.
    pub enabled: bool,
    /// Interval in milliseconds.
    pub frequency_ms: u64,
}

/// Retention of replicated snapshots on the target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetRetention {
    /// Keep every snapshot for this many seconds.
    pub all_for_sec: u64,
    /// Then keep this many per day.
    pub per_day: u32,
    /// For this many days.
    pub days: u32,
}

impl Default for TargetRetention {
    /// The Pure Cinder driver's defaults: all for 4 h, then 3 a day for 7 days.
    fn default() -> Self {
        Self {
            all_for_sec: 14_400,
            per_day: 3,
            days: 7,
        }
    }
}

/// A protection group (async replication unit). On a target array the replicated group
/// appears as `<source-array>:<pg>` with `is_local == false`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArrayProtectionGroup {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Whether it is a local group (false for a replicated-in group).
    pub is_local: bool,
    /// The array it comes from.
    pub source: NameRef,
    /// Soft-deleted.
    pub destroyed: bool,
    /// Replication schedule.
    pub replication_schedule: ReplicationSchedule,
    /// Target retention.
    pub target_retention: TargetRetention,
    /// Number of targets.
    pub target_count: u32,
    /// Number of member volumes.
    pub volume_count: u32,
}

/// Replication status of a protection group towards one target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtectionGroupTarget {
    /// The group.
    pub group: NameRef,
    /// The target array.
    pub member: NameRef,
    /// Whether the target allows the group.
    pub allowed: bool,
    /// `replicating`, `suspended`, `disallowed`.
    pub status: String,
}

/// Options of a protection-group snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PgSnapshotOptions {
    /// Suffix (`<pg>.<suffix>`); the array numbers it when `None`.
    pub suffix: Option<String>,
    /// Start replication to every allowed target now.
    pub replicate_now: bool,
    /// Apply local and remote retention.
    pub apply_retention: bool,
}

/// A protection-group snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PgSnapshot {
    /// Id.
    pub id: String,
    /// Name (`pg1.42`, or `array-a:pg1.42` on a target).
    pub name: String,
    /// The group (`pg1` or `array-a:pg1`).
    pub source: NameRef,
    /// Suffix.
    pub suffix: String,
    /// Creation time (ms).
    pub created: i64,
    /// Soft-deleted.
    pub destroyed: bool,
}

/// Selects protection-group snapshots; empty fields match everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PgSnapshotQuery {
    /// Exact names.
    pub names: Vec<String>,
    /// Snapshots of these groups (`source_names=`).
    pub source_names: Vec<String>,
    /// `destroyed=` filter.
    pub destroyed: Option<bool>,
}

/// Transfer progress of a replicated protection-group snapshot
/// (`/protection-group-snapshots/transfer`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PgSnapshotTransfer {
    /// Snapshot name.
    pub name: String,
    /// Soft-deleted.
    pub destroyed: bool,
    /// Start of the transfer (ms).
    pub started: Option<i64>,
    /// End of the transfer (ms), `None` while running.
    pub completed: Option<i64>,
    /// 0.0 … 1.0.
    pub progress: f64,
    /// Bytes sent.
    pub data_transferred: u64,
}

/// One array's membership in a pod.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodArray {
    /// Array name.
    pub name: String,
    /// `online`, `offline`, `resyncing`, `suspended`, `unknown`.
    pub status: String,
    /// Time the array's copy was frozen (ms), when not online.
    pub frozen_at: Option<i64>,
}

/// A pod (ActiveCluster).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pod {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Arrays the pod is stretched over.
    pub arrays: Vec<PodArray>,
    /// `promoted`, `demoted`, `promoting`.
    pub promotion_status: String,
    /// Soft-deleted.
    pub destroyed: bool,
}

/// Requested promotion state of a pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromotionState {
    /// Writable.
    Promoted,
    /// Read-only replica.
    Demoted,
}

/// A connection to a peer array.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArrayConnection {
    /// Peer array name.
    pub name: String,
    /// Peer array id.
    pub id: String,
    /// `connected`, `connecting`, `partially_connected`, `unbalanced`.
    pub status: String,
    /// `async-replication` or `sync-replication`.
    pub connection_type: String,
    /// Peer management address.
    pub management_address: Option<String>,
}

/// One FlashArray's REST 2.x API at the resource level.
///
/// Errors are [`BackendError`]s with the array's message (a missing name is
/// `Invalid`/`NotFound` with "does not exist", as the array answers 400).
#[async_trait]
pub trait FlashArray: Send + Sync {
    /// The array's identity.
    async fn array_info(&self) -> Result<ArrayInfo, BackendError>;

    /// Volumes matching the query (every page).
    async fn list_volumes(&self, query: &VolumeQuery) -> Result<Vec<ArrayVolume>, BackendError>;
    /// Creates an empty volume.
    async fn create_volume(
        &self,
        name: &str,
        provisioned: u64,
    ) -> Result<ArrayVolume, BackendError>;
    /// Copies a snapshot or volume into `name`; without `overwrite` an existing `name`
    /// is an "already exists" error.
    async fn copy_volume(
        &self,
        name: &str,
        source: &str,
        overwrite: bool,
    ) -> Result<ArrayVolume, BackendError>;
    /// Renames a volume.
    async fn rename_volume(&self, name: &str, new_name: &str) -> Result<ArrayVolume, BackendError>;
    /// Soft-deletes a volume.
    async fn destroy_volume(&self, name: &str) -> Result<(), BackendError>;
    /// Eradicates a destroyed volume.
    async fn eradicate_volume(&self, name: &str) -> Result<(), BackendError>;

    /// Volume snapshots matching the query (every page).
    async fn list_volume_snapshots(
        &self,
        query: &VolumeSnapshotQuery,
    ) -> Result<Vec<VolumeSnapshot>, BackendError>;

    /// Protection groups by name (all when empty).
    async fn list_protection_groups(
        &self,
        names: &[String],
    ) -> Result<Vec<ArrayProtectionGroup>, BackendError>;
    /// Creates a protection group.
    async fn create_protection_group(
        &self,
        name: &str,
    ) -> Result<ArrayProtectionGroup, BackendError>;
    /// Soft-deletes a protection group.
    async fn destroy_protection_group(&self, name: &str) -> Result<(), BackendError>;
    /// Eradicates a destroyed protection group.
    async fn eradicate_protection_group(&self, name: &str) -> Result<(), BackendError>;
    /// Member volume names of a protection group.
    async fn list_protection_group_volumes(&self, group: &str)
        -> Result<Vec<String>, BackendError>;
    /// Adds volumes to a protection group.
    async fn add_protection_group_volumes(
        &self,
        group: &str,
        volumes: &[String],
    ) -> Result<(), BackendError>;
    /// Removes volumes from a protection group.
    async fn remove_protection_group_volumes(
        &self,
        group: &str,
        volumes: &[String],
    ) -> Result<(), BackendError>;
    /// Targets of a protection group.
    async fn list_protection_group_targets(
        &self,
        group: &str,
    ) -> Result<Vec<ProtectionGroupTarget>, BackendError>;
    /// Adds target arrays to a protection group (on the source).
    async fn add_protection_group_targets(
        &self,
        group: &str,
        arrays: &[String],
    ) -> Result<(), BackendError>;
    /// Removes target arrays.
    async fn remove_protection_group_targets(
        &self,
        group: &str,
        arrays: &[String],
    ) -> Result<(), BackendError>;
    /// Allows a replicated-in group (`<source>:<pg>`) on this (target) array.
    async fn allow_protection_group(&self, group: &str) -> Result<(), BackendError>;
    /// Sets the replication schedule.
    async fn set_replication_schedule(
        &self,
        group: &str,
        schedule: &ReplicationSchedule,
    ) -> Result<(), BackendError>;
    /// Sets the target retention.
    async fn set_target_retention(
        &self,
        group: &str,
        retention: &TargetRetention,
    ) -> Result<(), BackendError>;

    /// Takes a protection-group snapshot.
    async fn create_pg_snapshot(
        &self,
        group: &str,
        options: &PgSnapshotOptions,
    ) -> Result<PgSnapshot, BackendError>;
    /// Protection-group snapshots matching the query.
    async fn list_pg_snapshots(
        &self,
        query: &PgSnapshotQuery,
    ) -> Result<Vec<PgSnapshot>, BackendError>;
    /// Transfer progress of protection-group snapshots matching the query.
    async fn list_pg_snapshot_transfers(
        &self,
        query: &PgSnapshotQuery,
    ) -> Result<Vec<PgSnapshotTransfer>, BackendError>;
    /// Soft-deletes a protection-group snapshot.
    async fn destroy_pg_snapshot(&self, name: &str) -> Result<(), BackendError>;
    /// Eradicates a destroyed protection-group snapshot.
    async fn eradicate_pg_snapshot(&self, name: &str) -> Result<(), BackendError>;

    /// Pods by name (all when empty).
    async fn list_pods(&self, names: &[String]) -> Result<Vec<Pod>, BackendError>;
    /// Creates a pod.
    async fn create_pod(&self, name: &str) -> Result<Pod, BackendError>;
    /// Stretches a pod to another array.
    async fn stretch_pod(&self, pod: &str, array: &str) -> Result<(), BackendError>;
    /// Removes an array from a pod (`with_unknown` when the peer is offline).
    async fn unstretch_pod(
        &self,
        pod: &str,
        array: &str,
        with_unknown: bool,
    ) -> Result<(), BackendError>;
    /// Requests promotion or demotion.
    async fn set_pod_promotion(
        &self,
        pod: &str,
        state: PromotionState,
    ) -> Result<Pod, BackendError>;
    /// Soft-deletes a pod (must be empty).
    async fn destroy_pod(&self, pod: &str) -> Result<(), BackendError>;
    /// Eradicates a destroyed pod.
    async fn eradicate_pod(&self, pod: &str) -> Result<(), BackendError>;
    /// Moves a volume into a pod (`pod = Some`) or out of it (`None`); returns it with its
    /// new name.
    async fn move_volume(&self, name: &str, pod: Option<&str>)
        -> Result<ArrayVolume, BackendError>;

    /// Connections to peer arrays.
    async fn list_array_connections(&self) -> Result<Vec<ArrayConnection>, BackendError>;
}
