//! Ports: the traits through which the engine reaches clouds, arrays and time.
//! Real clients and the simulator implement the same traits and pass the same contract
//! tests.

pub mod block_storage;
pub use block_storage::{
    BlockStorage, GroupCreate, ManageVolume, TypeReplication, Volume, VolumeAttachment,
    VolumeGroup, VolumeService, VolumeStatus, VolumeType, USER_VISIBLE_EXTRA_SPECS,
};
pub mod compute;
pub use compute::{
    default_server_wait, BlockDevice, Compute, Flavor, NetworkAttachment, Server, ServerAddress,
    ServerCreate, ServerState, ServerStatus,
};
pub mod networking;
pub use networking::{Network, Networking};
pub mod storage;
pub use storage::{
    ArraySide, LinkHealth, PromotedVolume, ReplicaPoint, ReplicationGroupSpec, StorageDriver,
    StorageDriverFactory, VolumeReplica,
};
pub mod wait;
pub use wait::{poll_until, WaitOutcome, WaitPolicy};

use std::sync::Arc;

/// The three OpenStack services of one site, as the engine reaches them.
#[derive(Clone)]
pub struct SiteClients {
    /// Nova.
    pub compute: Arc<dyn Compute>,
    /// Cinder.
    pub block_storage: Arc<dyn BlockStorage>,
    /// Neutron.
    pub networking: Arc<dyn Networking>,
}

impl std::fmt::Debug for SiteClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SiteClients").finish_non_exhaustive()
    }
}

pub mod hooks;
pub use hooks::{HookVerdict, StepBoundary, StepHook};
pub mod connector;
pub use connector::SiteConnector;
pub mod deadline;
pub use deadline::DeadlineConnector;
pub mod contract;
