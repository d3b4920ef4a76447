//! The `BlockStorage` port (Cinder).

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::{BackendError, BackendErrorKind, Service};
use crate::ids::{GroupId, ProjectId, ServerId, VolumeId, VolumeTypeId};
use crate::model::ReplicationType;
use crate::ports::wait::{poll_until, WaitOutcome, WaitPolicy};

/// Cinder volume status (the documented values; anything else kept verbatim).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum VolumeStatus {
    /// `creating`.
    #[serde(rename = "creating")]
    Creating,
    /// `available`: ready, not attached.
    #[serde(rename = "available")]
    Available,
    /// `in-use`: attached.
    #[serde(rename = "in-use")]
    InUse,
    /// `deleting`.
    #[serde(rename = "deleting")]
    Deleting,
    /// `error`.
    #[serde(rename = "error")]
    Error,
    /// `error_deleting`.
    #[serde(rename = "error_deleting")]
    ErrorDeleting,
    /// `error_managing`: manage failed.
    #[serde(rename = "error_managing")]
    ErrorManaging,
    /// `managing`.
    #[serde(rename = "managing")]
    Managing,
    /// Any other status (`attaching`, `reserved`, `maintenance`, …).
    #[serde(untagged)]
    Other(String),
}

impl VolumeStatus {
    /// Cinder's spelling.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Creating => "creating",
            Self::Available => "available",
            Self::InUse => "in-use",
            Self::Deleting => "deleting",
            Self::Error => "error",
            Self::ErrorDeleting => "error_deleting",
            Self::ErrorManaging => "error_managing",
            Self::Managing => "managing",
            Self::Other(s) => s,
        }
    }

    /// Parses Cinder's spelling.
    pub fn parse(s: &str) -> Self {
        match s {
            "creating" => Self::Creating,
            "available" => Self::Available,
            "in-use" => Self::InUse,
            "deleting" => Self::Deleting,
            "error" => Self::Error,
            "error_deleting" => Self::ErrorDeleting,
            "error_managing" => Self::ErrorManaging,
            "managing" => Self::Managing,
            other => Self::Other(other.to_owned()),
        }
    }

    /// Whether the status is one of Cinder's error states.
    pub fn is_error(&self) -> bool {
        matches!(
            self,
            Self::Error | Self::ErrorDeleting | Self::ErrorManaging
        )
    }
}

impl fmt::Display for VolumeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An attachment of a volume to a server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeAttachment {
    /// The server.
    pub server_id: ServerId,
    /// Device name.
    pub device: Option<String>,
}

/// A Cinder volume.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    /// Id.
    pub id: VolumeId,
    /// Name.
    pub name: String,
    /// Status.
    pub status: VolumeStatus,
    /// Size in GiB.
    pub size_gb: u64,
    /// Volume type name.
    pub volume_type: Option<String>,
    /// Bootable flag.
    pub bootable: bool,
    /// Attachments.
    pub attachments: Vec<VolumeAttachment>,
    /// Metadata (the Pure driver reports `array_volume_name` and `array_name` here).
    pub metadata: BTreeMap<String, String>,
    /// Backend host (`os-vol-host-attr:host`, admin only).
    pub host: Option<String>,
    /// The driver's id for the volume (for Pure: the array-side name).
    pub provider_id: Option<String>,
    /// Generic group membership.
    pub group_id: Option<GroupId>,
    /// Owning project.
    pub project_id: Option<ProjectId>,
}

impl Volume {
    /// The array-side name as Cinder reports it: metadata `array_volume_name`, else
    /// `provider_id`. Never derived from the volume id.
    pub fn array_volume_name(&self) -> Option<&str> {
        self.metadata
            .get("array_volume_name")
            .map(String::as_str)
            .or(self.provider_id.as_deref())
    }
}

/// Request to bring an existing backend volume under Cinder's management.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManageVolume {
    /// The array-side name (`ref: {"source-name": …}`).
    pub source_name: String,
    /// Backend host (`host@backend#pool`).
    pub host: String,
    /// Name of the new Cinder volume.
    pub name: String,
    /// Volume type (name or id).
    pub volume_type: Option<String>,
    /// Mark bootable.
    pub bootable: bool,
    /// Description.
    pub description: Option<String>,
    /// Metadata to set.
    pub metadata: BTreeMap<String, String>,
}

/// The extra specs Cinder (Xena and later) shows users who are not admins.
pub const USER_VISIBLE_EXTRA_SPECS: [&str; 3] = [
    "RESKEY:availability_zones",
    "multiattach",
    "replication_enabled",
];

/// What a caller can tell about a volume type's replication from its extra specs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TypeReplication {
    /// `replication_enabled` is not `<is> True` (or `replication_type` is unreadable).
    Disabled,
    /// Replicated in this mode.
    Enabled(ReplicationType),
    /// Replicated, in a mode the caller's view of the extra specs does not show.
    Undisclosed,
}

/// A Cinder volume type with its extra specs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeType {
    /// Id.
    pub id: VolumeTypeId,
    /// Name.
    pub name: String,
    /// Extra specs (`replication_enabled`, `replication_type`, `volume_backend_name`).
    pub extra_specs: BTreeMap<String, String>,
}

impl VolumeType {
    /// `replication_enabled='<is> True'`.
    pub fn replication_enabled(&self) -> bool {
        self.extra_specs
            .get("replication_enabled")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("<is> true"))
    }

    /// The `replication_type` spec, when replication is enabled (`<in> async` is the
    /// Pure driver's default when the spec is absent). `None` also when the caller
    /// cannot see the spec (see [`Self::replication`]).
    pub fn replication_type(&self) -> Option<ReplicationType> {
        match self.replication() {
            TypeReplication::Enabled(rt) => Some(rt),
            TypeReplication::Disabled | TypeReplication::Undisclosed => None,
        }
    }

    /// What these extra specs tell about replication. Cinder shows users who are not
    /// admins only [`USER_VISIBLE_EXTRA_SPECS`]: when nothing else is visible and
    /// `replication_type` is absent, the type replicates in a mode the caller cannot
    /// see ([`TypeReplication::Undisclosed`]) rather than in the driver's default.
    pub fn replication(&self) -> TypeReplication {
        if !self.replication_enabled() {
            return TypeReplication::Disabled;
        }
        match self.extra_specs.get("replication_type") {
            Some(spec) => ReplicationType::from_extra_spec(spec)
                .map_or(TypeReplication::Disabled, TypeReplication::Enabled),
            None if self.specs_filtered() => TypeReplication::Undisclosed,
            None => TypeReplication::Enabled(ReplicationType::Async),
        }
    }

    /// Whether only the specs Cinder shows every user are present (the caller is not
    /// an admin, or the type has nothing else).
    pub fn specs_filtered(&self) -> bool {
        self.extra_specs
            .keys()
            .all(|k| USER_VISIBLE_EXTRA_SPECS.contains(&k.as_str()))
    }

    /// `volume_backend_name`, if set.
    pub fn backend_name(&self) -> Option<&str> {
        self.extra_specs
            .get("volume_backend_name")
            .map(String::as_str)
    }
}

/// A Cinder generic volume group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeGroup {
    /// Id.
    pub id: GroupId,
    /// Name.
    pub name: String,
    /// Status (`available`, `error`, …).
    pub status: String,
    /// Group type id.
    pub group_type: String,
    /// Volume type ids.
    pub volume_types: Vec<VolumeTypeId>,
    /// Member volumes (from `list_volume=True`).
    pub volumes: Vec<VolumeId>,
}

/// Request to create a generic group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupCreate {
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Group type (name or id).
    pub group_type: String,
    /// Volume types (ids).
    pub volume_types: Vec<VolumeTypeId>,
}

/// A `cinder-volume` service (from `os-services`), giving the hosts manage can target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeService {
    /// `host@backend`.
    pub host: String,
    /// `enabled` / `disabled`.
    pub status: String,
    /// `up` / `down`.
    pub state: String,
    /// Availability zone.
    pub zone: Option<String>,
}

/// Cinder, as the engine uses it.
#[async_trait]
pub trait BlockStorage: Send + Sync {
    /// One volume; `NotFound` when missing.
    async fn get_volume(&self, id: &VolumeId) -> Result<Volume, BackendError>;
    /// All volumes of the project (every page).
    async fn list_volumes(&self) -> Result<Vec<Volume>, BackendError>;
    /// `POST /manageable_volumes`: returns the new volume (usually `creating`/`managing`).
    async fn manage_volume(&self, request: &ManageVolume) -> Result<Volume, BackendError>;
    /// `os-unmanage`: Cinder forgets the volume; it stays on the backend.
    async fn unmanage_volume(&self, id: &VolumeId) -> Result<(), BackendError>;
    /// Deletes the volume (and its backend volume).
    async fn delete_volume(&self, id: &VolumeId) -> Result<(), BackendError>;
    /// All volume types with their extra specs.
    async fn list_volume_types(&self) -> Result<Vec<VolumeType>, BackendError>;
    /// The `cinder-volume` services.
    async fn list_volume_services(&self) -> Result<Vec<VolumeService>, BackendError>;
    /// Creates a generic group.
    async fn create_group(&self, request: &GroupCreate) -> Result<VolumeGroup, BackendError>;
    /// One group with its volumes.
    async fn get_group(&self, id: &GroupId) -> Result<VolumeGroup, BackendError>;
    /// Adds and removes volumes.
    async fn update_group(
        &self,
        id: &GroupId,
        add: &[VolumeId],
        remove: &[VolumeId],
    ) -> Result<(), BackendError>;
    /// Deletes a group (`delete_volumes` false keeps the volumes).
    async fn delete_group(&self, id: &GroupId, delete_volumes: bool) -> Result<(), BackendError>;

    /// One volume type by id or name.
    async fn find_volume_type(&self, id_or_name: &str) -> Result<Option<VolumeType>, BackendError> {
        Ok(self
            .list_volume_types()
            .await?
            .into_iter()
            .find(|t| t.id.as_str() == id_or_name || t.name == id_or_name))
    }

    /// Polls until the volume is `available` or `in-use`; fails on an error status.
    async fn wait_for_available(
        &self,
        id: &VolumeId,
        policy: &WaitPolicy,
    ) -> Result<Volume, BackendError> {
        let what = || format!("volume {id} to become available");
        poll_until(Service::BlockStorage, what, policy, || async {
            let v = self.get_volume(id).await?;
            match &v.status {
                VolumeStatus::Available | VolumeStatus::InUse => Ok(WaitOutcome::Done(v)),
                s if s.is_error() => Err(BackendError::conflict(
                    Service::BlockStorage,
                    format!("volume {} went to {}", v.id, v.status),
                )),
                _ => Ok(WaitOutcome::Pending),
            }
        })
        .await
    }

    /// Deletes a volume and waits until it is gone; a volume that is already gone is not
    /// an error. A 404 from the delete is believed only when a read agrees; if the
    /// volume is still there, the delete is sent once more.
    async fn delete_volume_and_wait(
        &self,
        id: &VolumeId,
        policy: &WaitPolicy,
    ) -> Result<(), BackendError> {
        match self.delete_volume(id).await {
            Ok(()) => self.wait_for_deleted(id, policy).await,
            Err(e) if e.kind == BackendErrorKind::NotFound => match self.get_volume(id).await {
                Err(g) if g.kind == BackendErrorKind::NotFound => Ok(()),
                Ok(v) if v.status == VolumeStatus::Deleting => {
                    self.wait_for_deleted(id, policy).await
                }
                Ok(_) => {
                    self.delete_volume(id).await?;
                    self.wait_for_deleted(id, policy).await
                }
                Err(g) => Err(g),
            },
            Err(e) => Err(e),
        }
    }

    /// Polls until the volume is gone.
    async fn wait_for_deleted(
        &self,
        id: &VolumeId,
        policy: &WaitPolicy,
    ) -> Result<(), BackendError> {
        let what = || format!("volume {id} to be deleted");
        poll_until(Service::BlockStorage, what, policy, || async {
            match self.get_volume(id).await {
                Err(e) if e.kind == BackendErrorKind::NotFound => Ok(WaitOutcome::Done(())),
                Ok(v) if v.status == VolumeStatus::ErrorDeleting => Err(BackendError::conflict(
                    Service::BlockStorage,
                    format!("volume {} went to error_deleting", v.id),
                )),
                Ok(_) => Ok(WaitOutcome::Pending),
                Err(e) => Err(e),
            }
        })
        .await
    }
}
