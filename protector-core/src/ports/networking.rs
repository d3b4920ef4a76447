//! The `Networking` port (Neutron).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::BackendError;
use crate::ids::{NetworkId, ProjectId};

/// A Neutron network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    /// Id.
    pub id: NetworkId,
    /// Name.
    pub name: String,
    /// `ACTIVE`, `DOWN`, `BUILD`, `ERROR`.
    pub status: String,
    /// Administratively up.
    pub admin_state_up: bool,
    /// Shared between projects.
    pub shared: bool,
    /// Owning project.
    pub project_id: Option<ProjectId>,
    /// Subnet ids.
    pub subnets: Vec<String>,
}

/// Neutron, as the engine uses it (mapping validation).
#[async_trait]
pub trait Networking: Send + Sync {
    /// One network; `NotFound` when missing.
    async fn get_network(&self, id: &NetworkId) -> Result<Network, BackendError>;
    /// Networks visible to the project.
    async fn list_networks(&self) -> Result<Vec<Network>, BackendError>;
}
