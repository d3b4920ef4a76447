//! A bound on every single call the engine makes to a site's services.
//!
//! Real clients time out a request that gets no answer, but a port implementation is
//! free not to (the simulator's hung service never answers). The engine therefore
//! reaches each site through [`DeadlineConnector`], which gives every call to Keystone,
//! Nova, Cinder and Neutron a deadline: a call that does not answer in time fails with
//! a `Transient` [`BackendError`] naming the service and the call, so a hung service
//! turns into a clear error everywhere (pre-flight checks and management calls as well
//! as steps, which have their own, longer, step timeouts).
//!
//! Waits (`wait_for_status`, `delete_volume_and_wait`, ...) are the ports' provided
//! methods built on the bounded calls, so each poll is bounded and the wait keeps its
//! own timeout.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::context::RequestContext;
use crate::error::{BackendError, BackendErrorKind, Service};
use crate::ids::{GroupId, NetworkId, ServerId, VolumeId};
use crate::ports::{
    BlockStorage, Compute, Flavor, GroupCreate, ManageVolume, Network, Networking, Server,
    ServerCreate, ServerState, SiteClients, SiteConnector, Volume, VolumeGroup, VolumeService,
    VolumeType,
};

/// Runs `call` within `limit`; on expiry a `Transient` error of `service` naming `what`
/// (marked possibly applied when the call changes state). `what` is only written out
/// when the call times out.
async fn within<T>(
    limit: Duration,
    service: Service,
    what: impl FnOnce() -> String,
    mutating: bool,
    call: impl Future<Output = Result<T, BackendError>>,
) -> Result<T, BackendError> {
    match tokio::time::timeout(limit, call).await {
        Ok(result) => result,
        Err(_) => {
            let e = BackendError::new(
                BackendErrorKind::Transient,
                service,
                format!("{} did not answer within {}s", what(), limit.as_secs_f64()),
            );
            Err(if mutating { e.maybe_applied() } else { e })
        }
    }
}

/// A [`SiteConnector`] whose probe, connect and every call of the clients it hands out
/// are bounded by one per-call deadline.
#[derive(Clone)]
pub struct DeadlineConnector {
    inner: Arc<dyn SiteConnector>,
    limit: Duration,
}

impl std::fmt::Debug for DeadlineConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadlineConnector")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl DeadlineConnector {
    /// Wraps `inner`, bounding each call by `limit`.
    pub fn new(inner: Arc<dyn SiteConnector>, limit: Duration) -> Self {
        Self { inner, limit }
    }

    /// The per-call deadline.
    pub fn limit(&self) -> Duration {
        self.limit
    }
}

/// Wraps each client of `clients` so every call is bounded by `limit`.
pub fn bounded_clients(clients: SiteClients, limit: Duration) -> SiteClients {
    SiteClients {
        compute: Arc::new(DeadlineCompute {
            inner: clients.compute,
            limit,
        }),
        block_storage: Arc::new(DeadlineBlockStorage {
            inner: clients.block_storage,
            limit,
        }),
        networking: Arc::new(DeadlineNetworking {
            inner: clients.networking,
            limit,
        }),
    }
}

#[async_trait]
impl SiteConnector for DeadlineConnector {
    async fn connect(&self, ctx: &RequestContext) -> Result<SiteClients, BackendError> {
        let clients = within(
            self.limit,
            Service::Identity,
            || "authentication".to_owned(),
            false,
            self.inner.connect(ctx),
        )
        .await?;
        Ok(bounded_clients(clients, self.limit))
    }

    async fn probe(&self) -> Result<(), BackendError> {
        within(
            self.limit,
            Service::Identity,
            || "reachability probe".to_owned(),
            false,
            self.inner.probe(),
        )
        .await
    }
}

struct DeadlineCompute {
    inner: Arc<dyn Compute>,
    limit: Duration,
}

#[async_trait]
impl Compute for DeadlineCompute {
    async fn get_server(&self, id: &ServerId) -> Result<Server, BackendError> {
        within(
            self.limit,
            Service::Compute,
            || format!("GET server {id}"),
            false,
            self.inner.get_server(id),
        )
        .await
    }
    async fn get_server_state(&self, id: &ServerId) -> Result<ServerState, BackendError> {
        within(
            self.limit,
            Service::Compute,
            || format!("GET server {id}"),
            false,
            self.inner.get_server_state(id),
        )
        .await
    }
    async fn list_servers(&self) -> Result<Vec<Server>, BackendError> {
        within(
            self.limit,
            Service::Compute,
            || "list servers".to_owned(),
            false,
            self.inner.list_servers(),
        )
        .await
    }
    async fn create_server(&self, request: &ServerCreate) -> Result<Server, BackendError> {
        within(
            self.limit,
            Service::Compute,
            || format!("create server {}", request.name),
            true,
            self.inner.create_server(request),
        )
        .await
    }
    async fn stop_server(&self, id: &ServerId) -> Result<(), BackendError> {
        within(
            self.limit,
            Service::Compute,
            || format!("stop server {id}"),
            true,
            self.inner.stop_server(id),
        )
        .await
    }
    async fn start_server(&self, id: &ServerId) -> Result<(), BackendError> {
        within(
            self.limit,
            Service::Compute,
            || format!("start server {id}"),
            true,
            self.inner.start_server(id),
        )
        .await
    }
    async fn delete_server(&self, id: &ServerId) -> Result<(), BackendError> {
        within(
            self.limit,
            Service::Compute,
            || format!("delete server {id}"),
            true,
            self.inner.delete_server(id),
        )
        .await
    }
    async fn list_flavors(&self) -> Result<Vec<Flavor>, BackendError> {
        within(
            self.limit,
            Service::Compute,
            || "list flavors".to_owned(),
            false,
            self.inner.list_flavors(),
        )
        .await
    }
}

struct DeadlineBlockStorage {
    inner: Arc<dyn BlockStorage>,
    limit: Duration,
}

#[async_trait]
impl BlockStorage for DeadlineBlockStorage {
    async fn get_volume(&self, id: &VolumeId) -> Result<Volume, BackendError> {
        within(
            self.limit,
            Service::BlockStorage,
            || format!("GET volume {id}"),
            false,
            self.inner.get_volume(id),
        )
        .await
    }
    async fn list_volumes(&self) -> Result<Vec<Volume>, BackendError> {
        within(
            self.limit,
            Service::BlockStorage,
            || "list volumes".to_owned(),
            false,
            self.inner.list_volumes(),
        )
        .await
    }
    async fn manage_volume(&self, request: &ManageVolume) -> Result<Volume, BackendError> {
        within(
            self.limit,
            Service::BlockStorage,
            || format!("manage volume {}", request.name),
            true,
            self.inner.manage_volume(request),
        )
        .await
    }
    async fn unmanage_volume(&self, id: &VolumeId) -> Result<(), BackendError> {
        within(
            self.limit,
            Service::BlockStorage,
            || format!("unmanage volume {id}"),
            true,
            self.inner.unmanage_volume(id),
        )
        .await
    }
    async fn delete_volume(&self, id: &VolumeId) -> Result<(), BackendError> {
        within(
            self.limit,
            Service::BlockStorage,
            || format!("delete volume {id}"),
            true,
            self.inner.delete_volume(id),
        )
        .await
    }
    async fn list_volume_types(&self) -> Result<Vec<VolumeType>, BackendError> {
        within(
            self.limit,
            Service::BlockStorage,
            || "list volume types".to_owned(),
            false,
            self.inner.list_volume_types(),
        )
        .await
    }
    async fn list_volume_services(&self) -> Result<Vec<VolumeService>, BackendError> {
        within(
            self.limit,
            Service::BlockStorage,
            || "list volume services".to_owned(),
            false,
            self.inner.list_volume_services(),
        )
        .await
    }
    async fn create_group(&self, request: &GroupCreate) -> Result<VolumeGroup, BackendError> {
        within(
            self.limit,
            Service::BlockStorage,
            || format!("create group {}", request.name),
            true,
            self.inner.create_group(request),
        )
        .await
    }
    async fn get_group(&self, id: &GroupId) -> Result<VolumeGroup, BackendError> {
        within(
            self.limit,
            Service::BlockStorage,
            || format!("GET group {id}"),
            false,
            self.inner.get_group(id),
        )
        .await
    }
    async fn update_group(
        &self,
        id: &GroupId,
        add: &[VolumeId],
        remove: &[VolumeId],
    ) -> Result<(), BackendError> {
        within(
            self.limit,
            Service::BlockStorage,
            || format!("update group {id}"),
            true,
            self.inner.update_group(id, add, remove),
        )
        .await
    }
    async fn delete_group(&self, id: &GroupId, delete_volumes: bool) -> Result<(), BackendError> {
        within(
            self.limit,
            Service::BlockStorage,
            || format!("delete group {id}"),
            true,
            self.inner.delete_group(id, delete_volumes),
        )
        .await
    }
}

struct DeadlineNetworking {
    inner: Arc<dyn Networking>,
    limit: Duration,
}

#[async_trait]
impl Networking for DeadlineNetworking {
    async fn get_network(&self, id: &NetworkId) -> Result<Network, BackendError> {
        within(
            self.limit,
            Service::Network,
            || format!("GET network {id}"),
            false,
            self.inner.get_network(id),
        )
        .await
    }
    async fn list_networks(&self) -> Result<Vec<Network>, BackendError> {
        within(
            self.limit,
            Service::Network,
            || "list networks".to_owned(),
            false,
            self.inner.list_networks(),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ProjectId;

    /// A site whose services never answer.
    struct Hung;

    #[async_trait]
    impl SiteConnector for Hung {
        async fn connect(&self, _ctx: &RequestContext) -> Result<SiteClients, BackendError> {
            Ok(SiteClients {
                compute: Arc::new(HungServices),
                block_storage: Arc::new(HungServices),
                networking: Arc::new(HungServices),
            })
        }
        async fn probe(&self) -> Result<(), BackendError> {
            std::future::pending().await
        }
    }

    struct HungServices;

    #[async_trait]
    impl Networking for HungServices {
        async fn get_network(&self, _id: &NetworkId) -> Result<Network, BackendError> {
            std::future::pending().await
        }
        async fn list_networks(&self) -> Result<Vec<Network>, BackendError> {
            Ok(vec![Network {
                id: NetworkId::new("n1"),
                name: "net".into(),
                status: "ACTIVE".into(),
                admin_state_up: true,
                shared: false,
                project_id: Some(ProjectId::new("p")),
                subnets: vec![],
            }])
        }
    }

    #[async_trait]
    impl Compute for HungServices {
        async fn get_server(&self, _id: &ServerId) -> Result<Server, BackendError> {
            std::future::pending().await
        }
        async fn list_servers(&self) -> Result<Vec<Server>, BackendError> {
            std::future::pending().await
        }
        async fn create_server(&self, _r: &ServerCreate) -> Result<Server, BackendError> {
            std::future::pending().await
        }
        async fn stop_server(&self, _id: &ServerId) -> Result<(), BackendError> {
            std::future::pending().await
        }
        async fn start_server(&self, _id: &ServerId) -> Result<(), BackendError> {
            std::future::pending().await
        }
        async fn delete_server(&self, _id: &ServerId) -> Result<(), BackendError> {
            std::future::pending().await
        }
        async fn list_flavors(&self) -> Result<Vec<Flavor>, BackendError> {
            std::future::pending().await
        }
    }

    #[async_trait]
    impl BlockStorage for HungServices {
        async fn get_volume(&self, _id: &VolumeId) -> Result<Volume, BackendError> {
            std::future::pending().await
        }
        async fn list_volumes(&self) -> Result<Vec<Volume>, BackendError> {
            std::future::pending().await
        }
        async fn manage_volume(&self, _r: &ManageVolume) -> Result<Volume, BackendError> {
            std::future::pending().await
        }
        async fn unmanage_volume(&self, _id: &VolumeId) -> Result<(), BackendError> {
            std::future::pending().await
        }
        async fn delete_volume(&self, _id: &VolumeId) -> Result<(), BackendError> {
            std::future::pending().await
        }
        async fn list_volume_types(&self) -> Result<Vec<VolumeType>, BackendError> {
            std::future::pending().await
        }
        async fn list_volume_services(&self) -> Result<Vec<VolumeService>, BackendError> {
            std::future::pending().await
        }
        async fn create_group(&self, _r: &GroupCreate) -> Result<VolumeGroup, BackendError> {
            std::future::pending().await
        }
        async fn get_group(&self, _id: &GroupId) -> Result<VolumeGroup, BackendError> {
            std::future::pending().await
        }
        async fn update_group(
            &self,
            _id: &GroupId,
            _a: &[VolumeId],
            _r: &[VolumeId],
        ) -> Result<(), BackendError> {
            std::future::pending().await
        }
        async fn delete_group(&self, _id: &GroupId, _d: bool) -> Result<(), BackendError> {
            std::future::pending().await
        }
    }

    fn connector() -> DeadlineConnector {
        DeadlineConnector::new(Arc::new(Hung), Duration::from_secs(30))
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_probe_fails_naming_keystone() {
        let e = connector().probe().await.unwrap_err();
        assert_eq!(e.kind, BackendErrorKind::Transient);
        assert_eq!(e.service, Service::Identity);
        assert!(e.message.contains("within 30s"), "{e}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_call_fails_naming_the_service_and_the_call() {
        let ctx = RequestContext::new("u", "p", &["member"]);
        let clients = connector().connect(&ctx).await.unwrap();
        let e = clients
            .block_storage
            .get_volume(&VolumeId::new("v1"))
            .await
            .unwrap_err();
        assert_eq!(e.service, Service::BlockStorage);
        assert_eq!(e.applied, crate::error::Applied::No);
        assert!(e.message.contains("GET volume v1"), "{e}");
        let e = clients
            .compute
            .delete_server(&ServerId::new("s1"))
            .await
            .unwrap_err();
        assert_eq!(e.service, Service::Compute);
        assert_eq!(
            e.applied,
            crate::error::Applied::Maybe,
            "a delete may have applied"
        );
        let e = clients
            .networking
            .get_network(&NetworkId::new("n1"))
            .await
            .unwrap_err();
        assert_eq!(e.service, Service::Network);
    }

    #[tokio::test(start_paused = true)]
    async fn calls_that_answer_pass_through_unchanged() {
        let ctx = RequestContext::new("u", "p", &["member"]);
        let clients = connector().connect(&ctx).await.unwrap();
        let nets = clients.networking.list_networks().await.unwrap();
        assert_eq!(nets.len(), 1);
        assert_eq!(nets[0].name, "net");
    }
}
