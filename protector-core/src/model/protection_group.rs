//! Protection groups and their members.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{
    FlavorId, GroupId, ImageId, MemberId, NetworkId, OperationId, ProjectId, ProtectionGroupId,
    ServerId, SiteId, VolumeId, VolumeTypeId,
};
use crate::model::mappings::{DirectionalMappings, ResourceMappings};

/// Status of a protection group (the product's documented values plus `failing_back`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PgStatus {
    /// Protected and running on `current_primary_site_id`; the normal state.
    Active,
    /// A failover is running.
    FailingOver,
    /// Failed over: running on the secondary.
    FailedOver,
    /// Failed over, but some members could not be recreated.
    FailedOverPartial,
    /// A failback is running.
    FailingBack,
    /// An operation failed after changing something; needs attention (or `--force`).
    Error,
}

impl PgStatus {
    /// Every status, for exhaustive tests and parsers.
    pub const ALL: [PgStatus; 6] = [
        Self::Active,
        Self::FailingOver,
        Self::FailedOver,
        Self::FailedOverPartial,
        Self::FailingBack,
        Self::Error,
    ];

    /// The string the API and CLI show.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::FailingOver => "failing_over",
            Self::FailedOver => "failed_over",
            Self::FailedOverPartial => "failed_over_partial",
            Self::FailingBack => "failing_back",
            Self::Error => "error",
        }
    }
}

impl fmt::Display for PgStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PgStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| format!("unknown protection group status '{s}'"))
    }
}

/// Replication mode of a protection group, fixed at creation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplicationType {
    /// Snapshot-based replication through a Pure protection group (RPO > 0).
    Async,
    /// ActiveCluster pod replication (RPO 0).
    Sync,
}

impl ReplicationType {
    /// `async` or `sync`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Async => "async",
            Self::Sync => "sync",
        }
    }

    /// Parses a Cinder `replication_type` extra spec (`<in> async`, `async`).
    pub fn from_extra_spec(spec: &str) -> Option<Self> {
        let v = spec.trim();
        let v = v.strip_prefix("<in>").map_or(v, str::trim);
        match v {
            "async" => Some(Self::Async),
            "sync" => Some(Self::Sync),
            _ => None,
        }
    }
}

impl fmt::Display for ReplicationType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ReplicationType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_extra_spec(s)
            .ok_or_else(|| format!("invalid replication type '{s}': expected async or sync"))
    }
}

/// What a protection group uses on one site.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteBinding {
    /// Replication-enabled Cinder volume type on that site.
    pub volume_type_id: Option<VolumeTypeId>,
    /// Its name.
    #[serde(default)]
    pub volume_type_name: Option<String>,
    /// Cinder generic volume group (consistency group) on that site.
    #[serde(default)]
    pub consistency_group_id: Option<GroupId>,
}

/// Status of a member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberStatus {
    /// Protected: its volumes replicate.
    Protected,
    /// Could not be recreated by the last failover or failback.
    Failed,
}

/// A network a member is attached to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberNetwork {
    /// Network id on the site the member currently runs on.
    pub network_id: NetworkId,
    /// Network name (Nova reports addresses by name).
    #[serde(default)]
    pub network_name: Option<String>,
    /// Fixed IP, if the member had one.
    #[serde(default)]
    pub fixed_ip: Option<String>,
}

/// A volume of a member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberVolume {
    /// Cinder volume id on the site the member currently runs on.
    pub volume_id: VolumeId,
    /// Cinder volume name.
    #[serde(default)]
    pub name: String,
    /// Size in GiB.
    pub size_gb: u64,
    /// Whether it is the boot volume.
    pub bootable: bool,
    /// Boot index in the block-device mapping (0 for the boot volume).
    #[serde(default)]
    pub boot_index: Option<u32>,
    /// Device name (`/dev/vdb`).
    #[serde(default)]
    pub device: Option<String>,
    /// Volume type name.
    #[serde(default)]
    pub volume_type: String,
    /// Name of the volume on the array it currently lives on (read from Cinder).
    pub array_volume_name: String,
}

/// A protected VM, captured when it was added.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Member id.
    pub id: MemberId,
    /// Nova server id on the site the member currently runs on.
    pub instance_id: ServerId,
    /// Server name.
    pub instance_name: String,
    /// Member status.
    pub status: MemberStatus,
    /// Boot order inside the group (lower first).
    #[serde(default)]
    pub boot_order: u32,
    /// Flavor id on the current site.
    pub flavor_id: FlavorId,
    /// Flavor name (used when no flavor mapping is given).
    #[serde(default)]
    pub flavor_name: Option<String>,
    /// Image the server was built from, if any.
    #[serde(default)]
    pub image_id: Option<ImageId>,
    /// Networks, in NIC order.
    #[serde(default)]
    pub networks: Vec<MemberNetwork>,
    /// Security group names.
    #[serde(default)]
    pub security_groups: Vec<String>,
    /// Key pair name.
    #[serde(default)]
    pub key_name: Option<String>,
    /// Server metadata.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Availability zone.
    #[serde(default)]
    pub availability_zone: Option<String>,
    /// Volumes, boot volume first.
    pub volumes: Vec<MemberVolume>,
    /// When it was added.
    #[serde(serialize_with = "crate::model::time::serialize_utc")]
    pub created_at: DateTime<Utc>,
}

impl Member {
    /// The boot volume, if any.
    pub fn boot_volume(&self) -> Option<&MemberVolume> {
        self.volumes.iter().find(|v| v.bootable)
    }
}

/// Resources left on a site the workload moved away from, to be removed (never reused)
/// when the workload comes back.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaleResources {
    /// Servers.
    #[serde(default)]
    pub servers: Vec<ServerId>,
    /// Cinder volumes.
    #[serde(default)]
    pub volumes: Vec<VolumeId>,
}

/// Resources a test failover created, recorded on the group until test cleanup.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestResources {
    /// The test failover that created them.
    pub operation_id: Option<OperationId>,
    /// Site they live on.
    pub site_id: Option<SiteId>,
    /// Test servers.
    #[serde(default)]
    pub servers: Vec<ServerId>,
    /// Test Cinder volumes.
    #[serde(default)]
    pub volumes: Vec<VolumeId>,
    /// Test array volumes (names on the target array).
    #[serde(default)]
    pub array_volumes: Vec<String>,
}

impl TestResources {
    /// Whether nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty() && self.volumes.is_empty() && self.array_volumes.is_empty()
    }
}

/// A group's members: a list that copies of the group share until one of them changes
/// its own (copy on write).
///
/// It reads and writes as a `Vec<Member>` (it dereferences to one). Copying a group —
/// a store's read, an engine step that changes the group's status — then costs the
/// same for ten members as for ten thousand; the members are copied only by the first
/// change to them through a copy that shares them.
///
/// ```
/// use protector_core::model::Members;
///
/// let a = Members::default();
/// let mut b = a.clone();
/// assert!(a.shares_with(&b));
/// b.clear(); // a change through `b` gives `b` its own list
/// assert!(!a.shares_with(&b));
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Members(std::sync::Arc<Vec<Member>>);

impl Members {
    /// Whether `self` and `other` share one list (a change through either would copy
    /// it first).
    pub fn shares_with(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }

    /// The members as an owned list (copied only if another group shares them).
    pub fn into_vec(self) -> Vec<Member> {
        std::sync::Arc::try_unwrap(self.0).unwrap_or_else(|shared| (*shared).clone())
    }
}

impl std::ops::Deref for Members {
    type Target = Vec<Member>;

    fn deref(&self) -> &Vec<Member> {
        &self.0
    }
}

impl std::ops::DerefMut for Members {
    /// The list to change, copied first if another group shares it.
    fn deref_mut(&mut self) -> &mut Vec<Member> {
        std::sync::Arc::make_mut(&mut self.0)
    }
}

impl fmt::Debug for Members {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl From<Vec<Member>> for Members {
    fn from(members: Vec<Member>) -> Self {
        Self(std::sync::Arc::new(members))
    }
}

impl From<Members> for Vec<Member> {
    fn from(members: Members) -> Self {
        members.into_vec()
    }
}

impl FromIterator<Member> for Members {
    fn from_iter<I: IntoIterator<Item = Member>>(members: I) -> Self {
        Self::from(members.into_iter().collect::<Vec<_>>())
    }
}

impl<'a> IntoIterator for &'a Members {
    type Item = &'a Member;
    type IntoIter = std::slice::Iter<'a, Member>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl<'a> IntoIterator for &'a mut Members {
    type Item = &'a mut Member;
    type IntoIter = std::slice::IterMut<'a, Member>;

    /// Copies the list first if another group shares it.
    fn into_iter(self) -> Self::IntoIter {
        std::sync::Arc::make_mut(&mut self.0).iter_mut()
    }
}

impl IntoIterator for Members {
    type Item = Member;
    type IntoIter = std::vec::IntoIter<Member>;

    fn into_iter(self) -> Self::IntoIter {
        self.into_vec().into_iter()
    }
}

impl Serialize for Members {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<Member>::deserialize(deserializer).map(Self::from)
    }
}

/// A named, tenant-owned set of VMs that fail over together.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtectionGroup {
    /// Id.
    pub id: ProtectionGroupId,
    /// Name, unique per project.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Owning project.
    pub project_id: ProjectId,
    /// Status.
    pub status: PgStatus,
    /// `async` or `sync`, fixed at creation.
    pub replication_type: ReplicationType,
    /// The configured primary site.
    pub primary_site_id: SiteId,
    /// The configured secondary site.
    pub secondary_site_id: SiteId,
    /// Where the workload runs now.
    pub current_primary_site_id: SiteId,
    /// Successful failovers and failbacks.
    pub failover_count: u32,
    /// Completion time of the last failover or failback.
    pub last_failover_at: Option<DateTime<Utc>>,
    /// Time of the newest snapshot known to have landed on the target.
    pub last_replication_at: Option<DateTime<Utc>>,
    /// Metadata version; bumped on every change.
    pub version: u64,
    /// The site whose array currently replicates the group's volumes to the other
    /// (`None` before a replication policy exists).
    #[serde(default)]
    pub replication_source_site_id: Option<SiteId>,
    /// Volume type and consistency group per site.
    #[serde(default)]
    pub sites: BTreeMap<SiteId, SiteBinding>,
    /// Members, shared with copies of the group until one of them changes its own.
    #[serde(default)]
    pub members: Members,
    /// Stored mappings per direction.
    #[serde(default)]
    pub mappings: Vec<DirectionalMappings>,
    /// Resources left behind on a site by the last failover, per site.
    #[serde(default)]
    pub stale: BTreeMap<SiteId, StaleResources>,
    /// Resources of an uncleaned test failover.
    #[serde(default)]
    pub test_resources: Option<TestResources>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl ProtectionGroup {
    /// The site the workload would move to: the other of the two.
    pub fn peer_of(&self, site: &SiteId) -> &SiteId {
        if site == &self.primary_site_id {
            &self.secondary_site_id
        } else {
            &self.primary_site_id
        }
    }

    /// Where a failover or failback of the workload would go.
    pub fn current_target_site_id(&self) -> &SiteId {
        self.peer_of(&self.current_primary_site_id)
    }

    /// Whether `site` is one of the group's two sites.
    pub fn involves(&self, site: &SiteId) -> bool {
        site == &self.primary_site_id || site == &self.secondary_site_id
    }

    /// The stored mappings from `source` to `target`, or empty ones.
    pub fn stored_mappings(&self, source: &SiteId, target: &SiteId) -> ResourceMappings {
        self.mappings
            .iter()
            .find(|m| &m.source_site_id == source && &m.target_site_id == target)
            .map(|m| m.mappings.clone())
            .unwrap_or_default()
    }

    /// Stores mappings for a direction, replacing earlier ones.
    pub fn set_mappings(&mut self, source: SiteId, target: SiteId, mappings: ResourceMappings) {
        self.mappings
            .retain(|m| !(m.source_site_id == source && m.target_site_id == target));
        self.mappings.push(DirectionalMappings {
            source_site_id: source,
            target_site_id: target,
            mappings,
        });
    }

    /// Every distinct network the members use, in a stable order.
    pub fn networks_in_use(&self) -> Vec<NetworkId> {
        let mut nets: Vec<NetworkId> = self
            .members
            .iter()
            .flat_map(|m| m.networks.iter().map(|n| n.network_id.clone()))
            .collect();
        nets.sort();
        nets.dedup();
        nets
    }

    /// Whether a test failover has run (or is running) and has not been cleaned up.
    pub fn has_test_resources(&self) -> bool {
        self.test_resources.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_serialise_with_the_documented_strings() {
        let s: Vec<String> = PgStatus::ALL
            .iter()
            .map(|s| {
                serde_json::to_value(s)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(
            s,
            [
                "active",
                "failing_over",
                "failed_over",
                "failed_over_partial",
                "failing_back",
                "error"
            ]
        );
        for st in PgStatus::ALL {
            assert_eq!(st.as_str().parse::<PgStatus>().unwrap(), st);
        }
    }

    fn members(names: &[&str]) -> Members {
        names
            .iter()
            .map(|name| {
                serde_json::from_value(serde_json::json!({
                    "id": format!("m-{name}"),
                    "instance_id": format!("srv-{name}"),
                    "instance_name": name,
                    "status": "protected",
                    "flavor_id": "m1.small",
                    "volumes": [],
                    "created_at": "2026-01-02T03:04:05Z",
                }))
                .unwrap()
            })
            .collect()
    }

    #[test]
    fn copies_of_members_share_them_until_one_changes() {
        let a = members(&["web-1", "web-2"]);
        let mut b = a.clone();
        assert!(a.shares_with(&b));
        assert_eq!(a, b);
        // Reading through either copy keeps them shared.
        assert_eq!(
            b.iter()
                .map(|m| m.instance_name.as_str())
                .collect::<Vec<_>>(),
            ["web-1", "web-2"]
        );
        assert!(a.shares_with(&b));
        for m in &mut b {
            m.status = MemberStatus::Failed;
        }
        assert!(!a.shares_with(&b));
        assert!(a.iter().all(|m| m.status == MemberStatus::Protected));
        assert!(b.iter().all(|m| m.status == MemberStatus::Failed));
        let mut c = a.clone();
        c.push(members(&["db-1"]).into_vec().remove(0));
        assert_eq!((a.len(), c.len()), (2, 3));
        // Equal lists compare equal whether or not they are shared.
        assert_eq!(members(&["web-1"]), members(&["web-1"]));
        assert_ne!(members(&["web-1"]), members(&["web-2"]));
    }

    #[test]
    fn members_read_write_and_print_as_a_list() {
        let m = members(&["web-1", "web-2"]);
        let as_vec: Vec<Member> = m.to_vec();
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            serde_json::to_string(&as_vec).unwrap()
        );
        let back: Members = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(back, m);
        assert_eq!(format!("{m:?}"), format!("{as_vec:?}"));
        // An unshared list is handed over as it is, a shared one copied.
        let first = m.as_ptr();
        let shared = m.clone();
        let copied = shared.into_vec();
        assert_ne!(copied.as_ptr(), first);
        let handed_over = Vec::from(m);
        assert_eq!(handed_over.as_ptr(), first);
        assert_eq!((copied.len(), handed_over.len()), (2, 2));
    }

    #[test]
    fn replication_type_reads_cinder_extra_specs() {
        assert_eq!(
            ReplicationType::from_extra_spec("<in> async"),
            Some(ReplicationType::Async)
        );
        assert_eq!(
            ReplicationType::from_extra_spec("<in> sync"),
            Some(ReplicationType::Sync)
        );
        assert_eq!(ReplicationType::from_extra_spec("<in> trisync"), None);
    }
}
