//! The `Compute` port (Nova).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::{BackendError, Service};
use crate::ids::{FlavorId, ImageId, NetworkId, PortId, ProjectId, ServerId, VolumeId};
use crate::ports::wait::{poll_until, WaitOutcome, WaitPolicy};

/// Nova server status (the values the engine cares about, anything else kept verbatim).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ServerStatus {
    /// Being built.
    #[serde(rename = "BUILD")]
    Build,
    /// Running.
    #[serde(rename = "ACTIVE")]
    Active,
    /// Stopped.
    #[serde(rename = "SHUTOFF")]
    Shutoff,
    /// Failed; see the fault.
    #[serde(rename = "ERROR")]
    Error,
    /// Deleted (soft).
    #[serde(rename = "DELETED")]
    Deleted,
    /// Any other Nova status (`REBOOT`, `PAUSED`, …).
    #[serde(untagged)]
    Other(String),
}

impl ServerStatus {
    /// Nova's spelling.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Build => "BUILD",
            Self::Active => "ACTIVE",
            Self::Shutoff => "SHUTOFF",
            Self::Error => "ERROR",
            Self::Deleted => "DELETED",
            Self::Other(s) => s,
        }
    }

    /// Parses Nova's spelling.
    pub fn parse(s: &str) -> Self {
        match s {
            "BUILD" => Self::Build,
            "ACTIVE" => Self::Active,
            "SHUTOFF" => Self::Shutoff,
            "ERROR" => Self::Error,
            "DELETED" => Self::Deleted,
            other => Self::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for ServerStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A server's address on one network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerAddress {
    /// The network's id.
    pub network_id: NetworkId,
    /// The network's name (Nova keys addresses by name).
    pub network_name: String,
    /// The fixed IP.
    pub fixed_ip: Option<String>,
    /// The port, if known.
    pub port_id: Option<PortId>,
}

/// A Nova server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Server {
    /// Id.
    pub id: ServerId,
    /// Name.
    pub name: String,
    /// Status.
    pub status: ServerStatus,
    /// Owning project.
    pub project_id: ProjectId,
    /// Flavor id.
    pub flavor_id: FlavorId,
    /// Flavor name (`original_name` with microversion ≥ 2.47).
    pub flavor_name: Option<String>,
    /// Image (empty for boot-from-volume).
    pub image_id: Option<ImageId>,
    /// Addresses in NIC order.
    pub addresses: Vec<ServerAddress>,
    /// Security group names.
    pub security_groups: Vec<String>,
    /// Key pair.
    pub key_name: Option<String>,
    /// Metadata.
    pub metadata: BTreeMap<String, String>,
    /// Availability zone.
    pub availability_zone: Option<String>,
    /// Attached volumes in attachment order.
    pub volumes_attached: Vec<VolumeId>,
    /// The fault message when `ERROR`.
    pub fault: Option<String>,
}

/// The part of a [`Server`] a status wait reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerState {
    /// Id.
    pub id: ServerId,
    /// Name.
    pub name: String,
    /// Status.
    pub status: ServerStatus,
    /// The fault message when `ERROR`.
    pub fault: Option<String>,
}

impl From<Server> for ServerState {
    fn from(s: Server) -> Self {
        Self {
            id: s.id,
            name: s.name,
            status: s.status,
            fault: s.fault,
        }
    }
}

impl From<&Server> for ServerState {
    fn from(s: &Server) -> Self {
        Self {
            id: s.id.clone(),
            name: s.name.clone(),
            status: s.status.clone(),
            fault: s.fault.clone(),
        }
    }
}

/// A block device of a new server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockDevice {
    /// The Cinder volume.
    pub volume_id: VolumeId,
    /// 0 for the boot volume, `None` for data volumes.
    pub boot_index: Option<u32>,
    /// Delete the volume with the server.
    pub delete_on_termination: bool,
}

/// A NIC of a new server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkAttachment {
    /// The network.
    pub network_id: NetworkId,
    /// Requested fixed IP.
    pub fixed_ip: Option<String>,
}

/// What to boot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerCreate {
    /// Name.
    pub name: String,
    /// Flavor id on this site.
    pub flavor_id: FlavorId,
    /// Volumes (boot volume with `boot_index` 0).
    pub block_devices: Vec<BlockDevice>,
    /// NICs.
    pub networks: Vec<NetworkAttachment>,
    /// Key pair.
    pub key_name: Option<String>,
    /// Security group names.
    pub security_groups: Vec<String>,
    /// Metadata.
    pub metadata: BTreeMap<String, String>,
    /// Availability zone.
    pub availability_zone: Option<String>,
}

/// A Nova flavor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flavor {
    /// Id.
    pub id: FlavorId,
    /// Name.
    pub name: String,
    /// vCPUs.
    pub vcpus: u32,
    /// RAM in MiB.
    pub ram_mb: u64,
    /// Root disk in GiB.
    pub disk_gb: u64,
}

/// Nova, as the engine uses it.
#[async_trait]
pub trait Compute: Send + Sync {
    /// One server; `NotFound` when it does not exist.
    async fn get_server(&self, id: &ServerId) -> Result<Server, BackendError>;
    /// What a status wait reads of a server: its id, name, status and fault. The
    /// same call as [`Compute::get_server`] (the default reads the whole server);
    /// an implementation that holds its servers may answer without copying them.
    async fn get_server_state(&self, id: &ServerId) -> Result<ServerState, BackendError> {
        self.get_server(id).await.map(ServerState::from)
    }
    /// All servers of the caller's project (every page).
    async fn list_servers(&self) -> Result<Vec<Server>, BackendError>;
    /// Boots a server; returns it in `BUILD` (or whatever Nova answers).
    async fn create_server(&self, request: &ServerCreate) -> Result<Server, BackendError>;
    /// Requests a stop (`os-stop`); idempotent on a stopped server.
    async fn stop_server(&self, id: &ServerId) -> Result<(), BackendError>;
    /// Requests a start (`os-start`); idempotent on a running server.
    async fn start_server(&self, id: &ServerId) -> Result<(), BackendError>;
    /// Deletes a server; `NotFound` if it is already gone.
    async fn delete_server(&self, id: &ServerId) -> Result<(), BackendError>;
    /// All flavors.
    async fn list_flavors(&self) -> Result<Vec<Flavor>, BackendError>;

    /// One flavor by id or name.
    async fn find_flavor(&self, id_or_name: &str) -> Result<Option<Flavor>, BackendError> {
        Ok(self
            .list_flavors()
            .await?
            .into_iter()
            .find(|f| f.id.as_str() == id_or_name || f.name == id_or_name))
    }

    /// Polls until the server reaches `target`, fails on `ERROR` (with Nova's fault),
    /// and gives up after the policy's timeout. Reads the server with
    /// [`Compute::get_server_state`].
    async fn wait_for_status(
        &self,
        id: &ServerId,
        target: ServerStatus,
        policy: &WaitPolicy,
    ) -> Result<ServerState, BackendError> {
        let what = || format!("server {id} to become {target}");
        poll_until(Service::Compute, what, policy, || async {
            let s = self.get_server_state(id).await?;
            if s.status == target {
                return Ok(WaitOutcome::Done(s));
            }
            if s.status == ServerStatus::Error && target != ServerStatus::Error {
                return Err(BackendError::conflict(
                    Service::Compute,
                    format!(
                        "server {} ({}) went to ERROR: {}",
                        s.name,
                        s.id,
                        s.fault.as_deref().unwrap_or("no fault recorded")
                    ),
                ));
            }
            Ok(WaitOutcome::Pending)
        })
        .await
    }

    /// Deletes a server and waits until it is gone; a server that is already gone is
    /// not an error. A 404 from the delete is believed only when a read agrees (a
    /// server wrongly taken for gone would be left running); if the server is still
    /// there, the delete is sent once more.
    async fn delete_server_and_wait(
        &self,
        id: &ServerId,
        policy: &WaitPolicy,
    ) -> Result<(), BackendError> {
        use crate::error::BackendErrorKind::NotFound;
        match self.delete_server(id).await {
            Ok(()) => self.wait_for_deleted(id, policy).await,
            Err(e) if e.kind == NotFound => match self.get_server(id).await {
                Err(g) if g.kind == NotFound => Ok(()),
                Ok(s) if s.status == ServerStatus::Deleted => Ok(()),
                Ok(_) => {
                    self.delete_server(id).await?;
                    self.wait_for_deleted(id, policy).await
                }
                Err(g) => Err(g),
            },
            Err(e) => Err(e),
        }
    }

    /// Polls until the server is gone.
    async fn wait_for_deleted(
        &self,
        id: &ServerId,
        policy: &WaitPolicy,
    ) -> Result<(), BackendError> {
        let what = || format!("server {id} to be deleted");
        poll_until(Service::Compute, what, policy, || async {
            match self.get_server(id).await {
                Err(e) if e.kind == crate::error::BackendErrorKind::NotFound => {
                    Ok(WaitOutcome::Done(()))
                }
                Ok(s) if s.status == ServerStatus::Deleted => Ok(WaitOutcome::Done(())),
                Ok(_) => Ok(WaitOutcome::Pending),
                Err(e) => Err(e),
            }
        })
        .await
    }
}

/// Default polling for server waits: start at 1 s, back off to 10 s, give up at 600 s.
pub fn default_server_wait() -> WaitPolicy {
    WaitPolicy::new(Duration::from_secs(600))
}
