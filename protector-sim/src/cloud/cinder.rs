//! Cinder as a tenant sees it: the [`BlockStorage`] port over a site's cloud state.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use protector_core::ids::{GroupId, VolumeId};
use protector_core::ports::{
    BlockStorage, GroupCreate, ManageVolume, Volume, VolumeGroup, VolumeService, VolumeType,
};
use protector_core::{BackendError, RequestContext};

use crate::call::CallKind;
use crate::site::SimSite;
use crate::world::WorldInner;

/// The simulated Cinder of one site, scoped to one request context.
#[derive(Clone)]
pub struct SimBlockStorage {
    world: Arc<WorldInner>,
    site: SimSite,
    ctx: RequestContext,
}

impl fmt::Debug for SimBlockStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimBlockStorage")
            .field("site", &self.site)
            .field("project", &self.ctx.project_id)
            .finish()
    }
}

impl SimBlockStorage {
    pub(crate) fn new(world: Arc<WorldInner>, site: SimSite, ctx: RequestContext) -> Self {
        Self { world, site, ctx }
    }

    async fn read<T>(
        &self,
        kind: CallKind,
        f: impl FnOnce(
            &mut crate::cloud::state::CloudState,
            &crate::cloud::state::Caller,
        ) -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        self.world.read_cloud(self.site, &self.ctx, kind, f).await
    }
}

#[async_trait]
impl BlockStorage for SimBlockStorage {
    async fn get_volume(&self, id: &VolumeId) -> Result<Volume, BackendError> {
        self.read(CallKind::GetVolume, |c, caller| c.get_volume(caller, id))
            .await
    }

    async fn list_volumes(&self) -> Result<Vec<Volume>, BackendError> {
        self.read(
            CallKind::ListVolumes,
            |c, caller| Ok(c.list_volumes(caller)),
        )
        .await
    }

    async fn manage_volume(&self, request: &ManageVolume) -> Result<Volume, BackendError> {
        let site = self.site;
        let adm = self.world.gate.admit(site, CallKind::ManageVolume).await?;
        let r = self.world.with_cloud(site, |c| {
            let caller = c.caller(&self.ctx.user_id, &self.ctx.project_id)?;
            c.request_manage(&caller, request)
        });
        match &r {
            Ok(v) => {
                self.world.log_parts(
                    site,
                    &["volume ", v.id.as_str(), " managing ", &request.source_name],
                );
                let world = Arc::clone(&self.world);
                let id = v.id.clone();
                let source = request.source_name.clone();
                self.world
                    .gate
                    .background(site, CallKind::ManageVolume, async move {
                        let lookup = world.manage_lookup(site, &source);
                        let (effects, failure) = world
                            .with_cloud(site, |c| c.finish_manage(&id, site.array_name(), lookup));
                        match failure {
                            Some(reason) => world.log_parts(
                                site,
                                &["volume ", id.as_str(), " error_managing: ", &reason],
                            ),
                            None => world.log_parts(
                                site,
                                &["volume ", id.as_str(), " available (managed ", &source, ")"],
                            ),
                        }
                        world.apply_array_effects(site, effects);
                    });
            }
            Err(e) => self.world.log(
                site,
                format_args!("manage {} refused: {}", request.source_name, e.message),
            ),
        }
        adm.finish(r)
    }

    async fn unmanage_volume(&self, id: &VolumeId) -> Result<(), BackendError> {
        let site = self.site;
        let adm = self
            .world
            .gate
            .admit(site, CallKind::UnmanageVolume)
            .await?;
        let r = self.world.with_cloud(site, |c| {
            let caller = c.caller(&self.ctx.user_id, &self.ctx.project_id)?;
            c.request_unmanage(&caller, id)
        });
        if r.is_ok() {
            self.world
                .log_parts(site, &["volume ", id.as_str(), " unmanaging"]);
            let world = Arc::clone(&self.world);
            let id = id.clone();
            self.world
                .gate
                .background(site, CallKind::UnmanageVolume, async move {
                    let effects = world.with_cloud(site, |c| c.finish_unmanage(&id));
                    world.log_parts(site, &["volume ", id.as_str(), " unmanaged"]);
                    world.apply_array_effects(site, effects);
                });
        }
        adm.finish(r)
    }

    async fn delete_volume(&self, id: &VolumeId) -> Result<(), BackendError> {
        let site = self.site;
        let adm = self.world.gate.admit(site, CallKind::DeleteVolume).await?;
        let r = self.world.with_cloud(site, |c| {
            let caller = c.caller(&self.ctx.user_id, &self.ctx.project_id)?;
            c.request_delete_volume(&caller, id)
        });
        if let Ok(true) = r {
            self.world
                .log_parts(site, &["volume ", id.as_str(), " deleting"]);
            let world = Arc::clone(&self.world);
            let id = id.clone();
            self.world
                .gate
                .background(site, CallKind::DeleteVolume, async move {
                    let effects = world.with_cloud(site, |c| c.finish_delete_volume(&id));
                    world.log_parts(site, &["volume ", id.as_str(), " deleted"]);
                    world.apply_array_effects(site, effects);
                });
        }
        adm.finish(r.map(|_| ()))
    }

    async fn list_volume_types(&self) -> Result<Vec<VolumeType>, BackendError> {
        self.read(CallKind::ListVolumeTypes, |c, caller| {
            Ok(c.list_volume_types(caller))
        })
        .await
    }

    async fn list_volume_services(&self) -> Result<Vec<VolumeService>, BackendError> {
        self.read(CallKind::ListVolumeServices, |c, caller| {
            c.list_volume_services(caller)
        })
        .await
    }

    async fn create_group(&self, request: &GroupCreate) -> Result<VolumeGroup, BackendError> {
        let r = self
            .read(CallKind::CreateGroup, |c, caller| {
                c.create_group(caller, request)
            })
            .await;
        if let Ok(g) = &r {
            self.world
                .log(self.site, format_args!("group {} created", g.id));
        }
        r
    }

    async fn get_group(&self, id: &GroupId) -> Result<VolumeGroup, BackendError> {
        self.read(CallKind::GetGroup, |c, caller| c.get_group(caller, id))
            .await
    }

    async fn update_group(
        &self,
        id: &GroupId,
        add: &[VolumeId],
        remove: &[VolumeId],
    ) -> Result<(), BackendError> {
        let r = self
            .read(CallKind::UpdateGroup, |c, caller| {
                c.update_group(caller, id, add, remove)
            })
            .await;
        if r.is_ok() {
            self.world.log(
                self.site,
                format_args!("group {id} updated +{} -{}", add.len(), remove.len()),
            );
        }
        r
    }

    async fn delete_group(&self, id: &GroupId, delete_volumes: bool) -> Result<(), BackendError> {
        let adm = self
            .world
            .gate
            .foreground(self.site, CallKind::DeleteGroup)
            .await?;
        let r = self.world.with_cloud(self.site, |c| {
            let caller = c.caller(&self.ctx.user_id, &self.ctx.project_id)?;
            c.delete_group(&caller, id, delete_volumes)
        });
        if let Ok(effects) = &r {
            self.world.log(
                self.site,
                format_args!("group {id} deleted (delete-volumes {delete_volumes})"),
            );
            self.world.apply_array_effects(self.site, effects.clone());
        }
        adm.finish(r.map(|_| ()))
    }
}
