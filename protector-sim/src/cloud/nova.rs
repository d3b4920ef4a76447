//! Nova as a tenant sees it: the [`Compute`] port over a site's cloud state.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use protector_core::ids::ServerId;
use protector_core::ports::{Compute, Flavor, Server, ServerCreate, ServerState, ServerStatus};
use protector_core::{BackendError, RequestContext};

use crate::call::CallKind;
use crate::site::SimSite;
use crate::world::WorldInner;

/// The simulated Nova of one site, scoped to one request context.
#[derive(Clone)]
pub struct SimCompute {
    world: Arc<WorldInner>,
    site: SimSite,
    ctx: RequestContext,
}

impl fmt::Debug for SimCompute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimCompute")
            .field("site", &self.site)
            .field("project", &self.ctx.project_id)
            .finish()
    }
}

impl SimCompute {
    pub(crate) fn new(world: Arc<WorldInner>, site: SimSite, ctx: RequestContext) -> Self {
        Self { world, site, ctx }
    }
}

#[async_trait]
impl Compute for SimCompute {
    async fn get_server(&self, id: &ServerId) -> Result<Server, BackendError> {
        self.world
            .read_cloud(self.site, &self.ctx, CallKind::GetServer, |c, caller| {
                c.get_server(caller, id)
            })
            .await
    }

    async fn get_server_state(&self, id: &ServerId) -> Result<ServerState, BackendError> {
        self.world
            .read_cloud(self.site, &self.ctx, CallKind::GetServer, |c, caller| {
                c.get_server_state(caller, id)
            })
            .await
    }

    async fn list_servers(&self) -> Result<Vec<Server>, BackendError> {
        self.world
            .read_cloud(self.site, &self.ctx, CallKind::ListServers, |c, caller| {
                Ok(c.list_servers(caller))
            })
            .await
    }

    async fn create_server(&self, request: &ServerCreate) -> Result<Server, BackendError> {
        let site = self.site;
        let adm = self.world.gate.admit(site, CallKind::CreateServer).await?;
        let r = self.world.with_cloud(site, |c| {
            let caller = c.caller(&self.ctx.user_id, &self.ctx.project_id)?;
            Ok(c.create_server(&caller, request))
        });
        if let Ok(server) = &r {
            match &server.status {
                ServerStatus::Error => self.world.log_parts(
                    site,
                    &[
                        "server ",
                        server.id.as_str(),
                        " ERROR: ",
                        server.fault.as_deref().unwrap_or(""),
                    ],
                ),
                _ => {
                    self.world
                        .log_parts(site, &["server ", server.id.as_str(), " BUILD"]);
                    let world = Arc::clone(&self.world);
                    let id = server.id.clone();
                    self.world
                        .gate
                        .background(site, CallKind::CreateServer, async move {
                            if let Some(effects) = world.with_cloud(site, |c| c.finish_boot(&id)) {
                                world.log_parts(site, &["server ", id.as_str(), " ACTIVE"]);
                                world.set_attached(site, &id, true);
                                world.apply_array_effects(site, effects);
                            }
                        });
                }
            }
        }
        adm.finish(r)
    }

    async fn stop_server(&self, id: &ServerId) -> Result<(), BackendError> {
        let site = self.site;
        let adm = self.world.gate.admit(site, CallKind::StopServer).await?;
        let r = self.world.with_cloud(site, |c| {
            let caller = c.caller(&self.ctx.user_id, &self.ctx.project_id)?;
            c.request_stop(&caller, id)
        });
        if let Ok(true) = r {
            self.world
                .log_parts(site, &["server ", id.as_str(), " powering-off"]);
            let world = Arc::clone(&self.world);
            let id = id.clone();
            self.world
                .gate
                .background(site, CallKind::StopServer, async move {
                    let effects = world.with_cloud(site, |c| c.finish_stop(&id));
                    world.log_parts(site, &["server ", id.as_str(), " SHUTOFF"]);
                    world.apply_array_effects(site, effects);
                });
        }
        adm.finish(r.map(|_| ()))
    }

    async fn start_server(&self, id: &ServerId) -> Result<(), BackendError> {
        let site = self.site;
        let adm = self.world.gate.admit(site, CallKind::StartServer).await?;
        let r = self.world.with_cloud(site, |c| {
            let caller = c.caller(&self.ctx.user_id, &self.ctx.project_id)?;
            c.request_start(&caller, id)
        });
        if let Ok(true) = r {
            self.world
                .log_parts(site, &["server ", id.as_str(), " powering-on"]);
            let world = Arc::clone(&self.world);
            let id = id.clone();
            self.world
                .gate
                .background(site, CallKind::StartServer, async move {
                    let effects = world.with_cloud(site, |c| c.finish_start(&id));
                    world.log_parts(site, &["server ", id.as_str(), " ACTIVE"]);
                    world.apply_array_effects(site, effects);
                });
        }
        adm.finish(r.map(|_| ()))
    }

    async fn delete_server(&self, id: &ServerId) -> Result<(), BackendError> {
        let site = self.site;
        let adm = self.world.gate.admit(site, CallKind::DeleteServer).await?;
        let r = self.world.with_cloud(site, |c| {
            let caller = c.caller(&self.ctx.user_id, &self.ctx.project_id)?;
            c.request_delete(&caller, id)
        });
        let r = r.map(|(started, effects)| {
            self.world.apply_array_effects(site, effects);
            started
        });
        if let Ok(true) = r {
            self.world
                .log_parts(site, &["server ", id.as_str(), " deleting"]);
            let world = Arc::clone(&self.world);
            let id = id.clone();
            self.world
                .gate
                .background(site, CallKind::DeleteServer, async move {
                    world.set_attached(site, &id, false);
                    let effects = world.with_cloud(site, |c| c.finish_delete(&id));
                    world.log_parts(site, &["server ", id.as_str(), " deleted"]);
                    world.apply_array_effects(site, effects);
                });
        }
        adm.finish(r.map(|_| ()))
    }

    async fn list_flavors(&self) -> Result<Vec<Flavor>, BackendError> {
        let adm = self
            .world
            .gate
            .foreground(self.site, CallKind::ListFlavors)
            .await?;
        let r = self.world.with_cloud(self.site, |c| {
            c.caller(&self.ctx.user_id, &self.ctx.project_id)?;
            Ok(c.list_flavors())
        });
        adm.finish(r)
    }
}
