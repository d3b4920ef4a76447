//! Neutron as a tenant sees it: the [`Networking`] port over a site's cloud state.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use protector_core::ids::NetworkId;
use protector_core::ports::{Network, Networking};
use protector_core::{BackendError, RequestContext};

use crate::call::CallKind;
use crate::site::SimSite;
use crate::world::WorldInner;

/// The simulated Neutron of one site, scoped to one request context.
#[derive(Clone)]
pub struct SimNetworking {
    world: Arc<WorldInner>,
    site: SimSite,
    ctx: RequestContext,
}

impl fmt::Debug for SimNetworking {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimNetworking")
            .field("site", &self.site)
            .field("project", &self.ctx.project_id)
            .finish()
    }
}

impl SimNetworking {
    pub(crate) fn new(world: Arc<WorldInner>, site: SimSite, ctx: RequestContext) -> Self {
        Self { world, site, ctx }
    }
}

#[async_trait]
impl Networking for SimNetworking {
    async fn get_network(&self, id: &NetworkId) -> Result<Network, BackendError> {
        self.world
            .read_cloud(self.site, &self.ctx, CallKind::GetNetwork, |c, caller| {
                c.get_network(caller, id)
            })
            .await
    }

    async fn list_networks(&self) -> Result<Vec<Network>, BackendError> {
        self.world
            .read_cloud(self.site, &self.ctx, CallKind::ListNetworks, |c, caller| {
                Ok(c.list_networks(caller))
            })
            .await
    }
}
