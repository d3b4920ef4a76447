//! The bodies of the steps. Each step is idempotent: it consults the run state rebuilt
//! from the journal and the resources tagged with the operation id before acting, so a
//! resumed step never repeats a side effect.

use std::collections::BTreeMap;

use futures::stream::{self, StreamExt};
use serde_json::json;

use crate::engine::operations::{mapped_flavor, mapped_network};
use crate::engine::runner::{
    IdMap, Run, RunNote, StepError, StepResult, TAG_MEMBER, TAG_OPERATION, TAG_SOURCE_VOLUME,
    TAG_TEST_PG,
};
use crate::error::{BackendErrorKind, Service};
use crate::ids::{MemberId, ServerId, SiteId, VolumeId};
use crate::messages;
use crate::model::{
    FailoverType, JournalEvent, Member, MemberNetwork, MemberStatus, MemberVolume, OperationType,
    PgStatus, ProtectionGroup, ReplicationType, ResourceRef, StaleResources, TestResources,
};
use crate::ports::{
    BlockDevice, ManageVolume, NetworkAttachment, ServerCreate, ServerStatus, SiteClients,
};
use crate::progress::StepId;
use crate::state::{apply_success, pg_transition, PgEvent};

fn during(op: OperationType) -> Option<PgStatus> {
    match op {
        OperationType::Failover => Some(PgStatus::FailingOver),
        OperationType::Failback => Some(PgStatus::FailingBack),
        _ => None,
    }
}

/// The server name prefix of test-failover instances.
const TEST_PREFIX: &str = "drtest";

impl Run {
    pub(crate) async fn execute(&self, step: StepId) -> StepResult {
        let op_type = self.op.lock().await.operation_type;
        match (op_type, step) {
            (_, StepId::Prepare) => self.prepare().await,
            (_, StepId::ValidateTarget) => self.validate_target().await,
            (_, StepId::GetSnapshot) => self.get_snapshot().await,
            (_, StepId::PromoteVolumes | StepId::CloneVolumes) => self.promote_volumes(step).await,
            (_, StepId::RecreateInstances) => self.recreate_instances().await,
            (OperationType::TestCleanup, StepId::DeleteInstances) => self.cleanup_instances().await,
            (OperationType::TestCleanup, StepId::DeleteVolumes) => self.cleanup_volumes().await,
            (OperationType::TestCleanup, StepId::Finalize) => self.cleanup_finalize().await,
            (OperationType::SyncVolumes, StepId::ReconcileMembers) => {
                self.reconcile_members().await
            }
            (OperationType::SyncVolumes, StepId::Replicate) => self.replicate().await,
            (OperationType::SyncVolumes, StepId::Finalize) => self.sync_finalize().await,
            (OperationType::TestFailover, StepId::Finalize) => self.test_finalize().await,
            (_, StepId::Finalize) => self.failover_finalize().await,
            (t, s) => Err(StepError::Failed(format!(
                "step {s} is not part of a {t} operation"
            ))),
        }
    }

    async fn sites(&self) -> (SiteId, SiteId) {
        let op = self.op.lock().await;
        (op.source_site_id.clone(), op.target_site_id.clone())
    }

    async fn is_planned(&self) -> bool {
        let op = self.op.lock().await;
        matches!(
            op.operation_type,
            OperationType::Failover | OperationType::Failback
        ) && op.failover_type != Some(FailoverType::Unplanned)
    }

    fn limit_compute(&self) -> usize {
        self.p.inner.config.concurrency.compute
    }

    fn limit_block(&self) -> usize {
        self.p.inner.config.concurrency.block_storage
    }

    // ---- prepare ------------------------------------------------------------------

    async fn prepare(&self) -> StepResult {
        let op = self.snapshot().await;
        let pg = self.pg_shared().await?;
        if self.state().previous_status.is_none() {
            self.note(RunNote::PreviousStatus { status: pg.status })
                .await?;
        }
        match op.operation_type {
            OperationType::Failover | OperationType::Failback => {
                let target_status = during(op.operation_type);
                if Some(pg.status) != target_status {
                    let force = op.parameters.force;
                    let kind = op.operation_type;
                    self.update_pg(|pg| {
                        pg.status = pg_transition(
                            pg.status,
                            PgEvent::Start {
                                operation: kind,
                                force,
                            },
                        )
                        .map_err(|e| StepError::Failed(e.to_string()))?;
                        Ok(())
                    })
                    .await?;
                }
            }
            OperationType::TestFailover => {
                let (_, target) = self.sites().await;
                let op_id = op.id.clone();
                if pg
                    .test_resources
                    .as_ref()
                    .and_then(|t| t.operation_id.as_ref())
                    != Some(&op_id)
                {
                    self.update_pg(|pg| {
                        pg.test_resources = Some(TestResources {
                            operation_id: Some(op_id),
                            site_id: Some(target),
                            ..TestResources::default()
                        });
                        Ok(())
                    })
                    .await?;
                }
            }
            OperationType::TestCleanup => self.plan_cleanup(&pg).await?,
            OperationType::SyncVolumes => {}
        }
        if self.is_planned().await {
            self.quiesce(&pg).await?;
        }
        Ok(())
    }

    /// Stops the members' servers on the source and waits for SHUTOFF.
    async fn quiesce(&self, pg: &ProtectionGroup) -> StepResult {
        let (source, _) = self.sites().await;
        let c = self.clients(&source).await?;
        let total = pg.members.len();
        let done = std::sync::atomic::AtomicUsize::new(0);
        let results: Vec<StepResult> = stream::iter(0..pg.members.len())
            .map(|i| {
                let m = &pg.members[i];
                let c = c.clone();
                let source = source.clone();
                let done = &done;
                async move {
                    self.on(Service::Compute);
                    let status = match c.compute.get_server_state(&m.instance_id).await {
                        Ok(s) => s.status,
                        // A server left running loses writes: believe a 404 only when
                        // the project's server list agrees.
                        Err(e) if e.kind == BackendErrorKind::NotFound => {
                            match c
                                .compute
                                .list_servers()
                                .await?
                                .into_iter()
                                .find(|s| s.id == m.instance_id)
                            {
                                Some(s) => s.status,
                                None => return Ok(()),
                            }
                        }
                        Err(e) => return Err(e.into()),
                    };
                    if status != ServerStatus::Shutoff {
                        self.journal(JournalEvent::Intent {
                            resource: ResourceRef::StoppedServer {
                                site_id: source.clone(),
                                id: m.instance_id.clone(),
                            },
                        })
                        .await?;
                        c.compute.stop_server(&m.instance_id).await?;
                        c.compute
                            .wait_for_status(
                                &m.instance_id,
                                ServerStatus::Shutoff,
                                &self.p.inner.config.server_wait,
                            )
                            .await?;
                    }
                    let n = done.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                    self.advance(StepId::Prepare, n, total).await
                }
            })
            .buffer_unordered(self.limit_compute())
            .collect()
            .await;
        results.into_iter().collect()
    }

    // ---- validate_target ------------------------------------------------------------

    async fn validate_target(&self) -> StepResult {
        let op = self.snapshot().await;
        let (_, target) = self.sites().await;
        let pg = self.pg_shared().await?;
        self.on(Service::Identity);
        self.p.runtime(&target)?.connector.probe().await?;
        let c = self.clients(&target).await?;
        let mappings = &op.parameters.mappings;
        self.on(Service::Network);
        for m in &pg.members {
            for n in &m.networks {
                let dst = mapped_network(mappings, n).ok_or_else(|| {
                    StepError::Failed(
                        messages::Refusal::NoNetworkMapping {
                            network: n.network_id.to_string(),
                        }
                        .to_string(),
                    )
                })?;
                self.resolve_network(&c, &target, dst).await?;
            }
        }
        self.on(Service::BlockStorage);
        let vt = pg
            .sites
            .get(&target)
            .and_then(|b| b.volume_type_name.clone())
            .ok_or_else(|| {
                StepError::Failed(format!(
                    "protection group {} has no volume type on the target site",
                    pg.name
                ))
            })?;
        if c.block_storage.find_volume_type(&vt).await?.is_none() {
            return Err(StepError::Failed(format!(
                "volume type {vt} does not exist on the target site"
            )));
        }
        self.manage_host(&c, &pg, &target).await?;
        let (driver, _) = self.driver().await?;
        self.on(Service::FlashArray);
        driver.array_name(self.p.side_of(&pg, &target)).await?;
        Ok(())
    }

    /// Removes the stale resources an earlier failover left on the target, alongside
    /// the steps after `validate_target` (the runner drives it and waits for it before
    /// `finalize`). Stale servers must go: if they cannot be deleted, the runner fails
    /// the operation at its next step boundary. Stale volumes that cannot be deleted do
    /// not fail it: the group keeps recording them, the next failover or failback to the
    /// site removes them, and the operation's result says so.
    pub(crate) async fn remove_stale_deferred(&self) -> StepResult {
        let (_, target) = self.sites().await;
        let pg = self.pg_shared().await?;
        let Some(stale) = pg.stale.get(&target).cloned() else {
            return Ok(());
        };
        let c = self.clients(&target).await?;
        self.delete_stale_servers(&c, &stale.servers)
            .await
            .map_err(|StepError::Failed(e)| {
                StepError::Failed(format!(
                    "stale servers of an earlier failover on site {target} could not be deleted: {e}"
                ))
            })?;
        if let Err(StepError::Failed(e)) = self.remove_stale_volumes(&pg, &target, &c, &stale).await
        {
            tracing::warn!(operation = %self.id, site = %target, error = %e, "stale volumes were not removed");
            *self
                .stale_warning
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = Some(format!(
                "stale volumes of an earlier failover on site {target} were not removed ({e}); the next failover or failback to the site removes them"
            ));
        }
        Ok(())
    }

    /// Deletes the stale servers concurrently (within the compute fan-out limit): one
    /// after the other, the waits for each server's deletion add up.
    async fn delete_stale_servers(&self, c: &SiteClients, servers: &[ServerId]) -> StepResult {
        let wait = &self.p.inner.config;
        self.on(Service::Compute);
        let deleted: Vec<Result<(), _>> = stream::iter(servers.iter().cloned())
            .map(|s| {
                let c = c.clone();
                async move {
                    c.compute
                        .delete_server_and_wait(&s, &wait.server_wait)
                        .await
                }
            })
            .buffer_unordered(self.limit_compute().max(1))
            .collect()
            .await;
        deleted.into_iter().collect::<Result<(), _>>()?;
        Ok(())
    }

    /// Deletes the stale volumes of the site the workload now comes back to (its stale
    /// servers are gone): stale volumes are never reused.
    async fn remove_stale_volumes(
        &self,
        pg: &ProtectionGroup,
        target: &SiteId,
        c: &SiteClients,
        stale: &StaleResources,
    ) -> StepResult {
        let wait = &self.p.inner.config;
        if pg.replication_type == ReplicationType::Sync && !stale.volumes.is_empty() {
            if !self.pod_in_sync(pg, target).await {
                // A split pod resyncs from one side when it heals, which would bring
                // back copies destroyed now: keep the stale volumes recorded until a
                // later operation finds the pod whole.
                let t = target.clone();
                let servers = stale.servers.len();
                self.update_pg(move |pg| {
                    if let Some(st) = pg.stale.get_mut(&t) {
                        st.servers.clear();
                    }
                    Ok(())
                })
                .await?;
                return self
                    .note(RunNote::StaleRemoved {
                        site: target.clone(),
                        servers,
                        volumes: 0,
                    })
                    .await;
            }
            self.destroy_pod_copies(pg, target, c, &stale.volumes)
                .await?;
        }
        self.on(Service::BlockStorage);
        // Volumes in a consistency group cannot be deleted: take them out first.
        if let Some(gid) = pg
            .sites
            .get(target)
            .and_then(|b| b.consistency_group_id.clone())
        {
            match c
                .block_storage
                .update_group(&gid, &[], &stale.volumes)
                .await
            {
                Ok(()) => {}
                Err(e)
                    if matches!(
                        e.kind,
                        BackendErrorKind::NotFound | BackendErrorKind::Invalid
                    ) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let deleted: Vec<Result<(), _>> = stream::iter(stale.volumes.iter().cloned())
            .map(|v| {
                let c = c.clone();
                async move {
                    c.block_storage
                        .delete_volume_and_wait(&v, &wait.volume_wait)
                        .await
                }
            })
            .buffer_unordered(self.limit_block().max(1))
            .collect()
            .await;
        deleted.into_iter().collect::<Result<(), _>>()?;
        self.note(RunNote::StaleRemoved {
            site: target.clone(),
            servers: stale.servers.len(),
            volumes: stale.volumes.len(),
        })
        .await?;
        let t = target.clone();
        self.update_pg(move |pg| {
            pg.stale.remove(&t);
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// Whether the group's pod is online on both arrays (a failed check counts as no).
    async fn pod_in_sync(&self, pg: &ProtectionGroup, target: &SiteId) -> bool {
        let Ok((driver, spec)) = self.driver().await else {
            return false;
        };
        self.on(Service::FlashArray);
        driver
            .health(&spec, self.p.side_of(pg, target))
            .await
            .is_ok_and(|h| h.link_up)
    }

    /// With sync replication, a stale volume may have a copy in the pod (made when
    /// replication was re-established from it). Cinder only knows the volume it
    /// manages, so deleting that leaves the copy: destroy it on the array first, while
    /// the stale volume still records its name. Copies of current members are never
    /// touched.
    async fn destroy_pod_copies(
        &self,
        pg: &ProtectionGroup,
        target: &SiteId,
        c: &SiteClients,
        stale: &[VolumeId],
    ) -> StepResult {
        let current: std::collections::BTreeSet<&str> = pg
            .members
            .iter()
            .flat_map(|m| m.volumes.iter())
            .map(|v| base_volume_name(&v.array_volume_name))
            .collect();
        // One list rather than a read per stale volume.
        let stale: std::collections::BTreeSet<&VolumeId> = stale.iter().collect();
        self.on(Service::BlockStorage);
        let names: Vec<String> = c
            .block_storage
            .list_volumes()
            .await?
            .iter()
            .filter(|v| stale.contains(&v.id))
            .filter_map(|v| v.array_volume_name().map(base_volume_name))
            .filter(|base| !current.contains(base))
            .map(str::to_owned)
            .collect();
        if names.is_empty() {
            return Ok(());
        }
        let (driver, spec) = self.driver().await?;
        let side = self.p.side_of(pg, target);
        self.on(Service::FlashArray);
        for base in names {
            driver
                .destroy_volume(side, &format!("{}::{base}", spec.name))
                .await?;
        }
        Ok(())
    }

    async fn manage_host(
        &self,
        c: &SiteClients,
        pg: &ProtectionGroup,
        target: &SiteId,
    ) -> StepResult<String> {
        let services = c.block_storage.list_volume_services().await?;
        let svc = services
            .iter()
            .find(|s| s.state == "up" && s.status == "enabled")
            .ok_or_else(|| {
                StepError::Failed("no cinder-volume service is up on the target site".into())
            })?;
        if svc.host.contains('#') {
            return Ok(svc.host.clone());
        }
        let backend = match pg
            .sites
            .get(target)
            .and_then(|b| b.volume_type_name.clone())
        {
            Some(t) => c
                .block_storage
                .find_volume_type(&t)
                .await?
                .and_then(|vt| vt.backend_name().map(str::to_owned)),
            None => None,
        };
        let pool =
            backend.unwrap_or_else(|| svc.host.split('@').nth(1).unwrap_or("pool").to_owned());
        Ok(format!("{}#{pool}", svc.host))
    }

    // ---- get_snapshot ---------------------------------------------------------------

    async fn get_snapshot(&self) -> StepResult {
        let (source, target) = self.sites().await;
        let pg = self.pg_shared().await?;
        let (driver, spec) = self.driver().await?;
        let source_side = self.p.side_of(&pg, &source);
        let volumes: Vec<&MemberVolume> =
            pg.members.iter().flat_map(|m| m.volumes.iter()).collect();
        self.on(Service::FlashArray);
        if self.is_planned().await && self.state().point.is_none() {
            let names: Vec<String> = volumes
                .iter()
                .map(|v| v.array_volume_name.clone())
                .collect();
            if pg.replication_source_site_id.as_ref() == Some(&source) {
                driver.ensure_replication_group(&spec, source_side).await?;
                driver.add_volumes(&spec, source_side, &names).await?;
            } else {
                driver
                    .reverse_replication(&spec, source_side, &names)
                    .await?;
                let s = source.clone();
                self.update_pg(move |pg| {
                    pg.replication_source_site_id = Some(s);
                    Ok(())
                })
                .await?;
            }
            let point = driver
                .replicate_now(&spec, source_side, self.p.inner.config.replication_timeout)
                .await?;
            self.note(RunNote::ReplicaPoint { point }).await?;
        }
        let array = driver.array_name(self.p.side_of(&pg, &target)).await?;
        let total = volumes.len();
        let done = std::sync::atomic::AtomicUsize::new(0);
        // Choosing a replica changes nothing, so the choices are journaled together,
        // in one note once the lookups are over (a resumed step looks up again the
        // volumes it does not name).
        let chosen = std::sync::Mutex::new(Vec::new());
        // One lookup per volume, concurrently within the array fan-out limit: one
        // after the other, their round trips add up.
        let results: Vec<StepResult> = stream::iter(0..volumes.len())
            .map(|i| {
                let v: &MemberVolume = volumes[i];
                let driver = driver.clone();
                let spec = &spec;
                let array = &array;
                let done = &done;
                let chosen = &chosen;
                async move {
                    if !self.state().replicas.contains_key(&v.volume_id) {
                        let replica = driver
                            .newest_replica(spec, source_side, &v.array_volume_name)
                            .await?
                            .ok_or_else(|| {
                                StepError::Failed(messages::no_replicated_snapshot(
                                    v.volume_id.as_str(),
                                    &format!("FlashArray {array}"),
                                ))
                            })?;
                        chosen.lock().unwrap_or_else(|p| p.into_inner()).push((
                            i,
                            v.volume_id.clone(),
                            replica,
                        ));
                    }
                    let n = done.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                    self.advance(StepId::GetSnapshot, n, total).await
                }
            })
            .buffer_unordered(self.p.inner.config.concurrency.storage.max(1))
            .collect()
            .await;
        // In the group's order, not the order the lookups ended in.
        let mut replicas = chosen.into_inner().unwrap_or_else(|p| p.into_inner());
        replicas.sort_unstable_by_key(|(i, _, _)| *i);
        let replicas: Vec<_> = replicas.into_iter().map(|(_, v, r)| (v, r)).collect();
        if !replicas.is_empty() {
            self.note(RunNote::Replicas { replicas }).await?;
        }
        results.into_iter().collect()
    }

    // ---- promote_volumes / clone_volumes --------------------------------------------

    async fn promote_volumes(&self, step: StepId) -> StepResult {
        let op = self.snapshot().await;
        let (_, target) = self.sites().await;
        let pg = self.pg_shared().await?;
        let c = self.clients(&target).await?;
        let (driver, _) = self.driver().await?;
        let test = op.operation_type == OperationType::TestFailover;
        let host = self.manage_host(&c, &pg, &target).await?;
        let vt = pg
            .sites
            .get(&target)
            .and_then(|b| b.volume_type_name.clone());
        // Volumes this operation managed before a restart, found by their tags.
        let op_id = op.id.to_string();
        self.on(Service::BlockStorage);
        let tagged: BTreeMap<String, crate::ports::Volume> = c
            .block_storage
            .list_volumes()
            .await?
            .into_iter()
            .filter(|v| v.metadata.get(TAG_OPERATION) == Some(&op_id))
            .filter_map(|v| v.metadata.get(TAG_SOURCE_VOLUME).cloned().map(|s| (s, v)))
            .collect();
        let volumes: Vec<&MemberVolume> =
            pg.members.iter().flat_map(|m| m.volumes.iter()).collect();
        let total = volumes.len();
        let done = std::sync::atomic::AtomicUsize::new(0);
        let short = op
            .id
            .as_str()
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(8)
            .collect::<String>();
        // A member boots as soon as its own volumes are managed, while the others are
        // still being promoted.
        let early = EarlyBoot::prepare(self, &c, &pg, &op).await?;
        // The limits bound calls to the services, not journal writes: a volume holds a
        // Cinder slot from its promote to its manage's end and a Nova slot for its
        // member's boot, so more volumes than the limits are in flight and their
        // journal entries share group commits.
        let cinder = tokio::sync::Semaphore::new(self.limit_block());
        let nova = tokio::sync::Semaphore::new(self.limit_compute());
        let (cinder, nova) = (&cinder, &nova);
        let results: Vec<StepResult> = stream::iter(0..volumes.len())
            .map(|i| {
                let v: &MemberVolume = volumes[i];
                let c = c.clone();
                let driver = driver.clone();
                let target = target.clone();
                let host = host.clone();
                let vt = vt.clone();
                let tagged = &tagged;
                let done = &done;
                let short = &short;
                let op_id = &op_id;
                let early = &early;
                let pg = &pg;
                let op = &op;
                let pg_id = pg.id.to_string();
                async move {
                    if !self.state().managed.contains_key(&v.volume_id) {
                        if let Some(existing) = tagged.get(v.volume_id.as_str()) {
                            let slot = acquire(cinder).await?;
                            let existing = c
                                .block_storage
                                .wait_for_available(&existing.id, &self.p.inner.config.volume_wait)
                                .await?;
                            drop(slot);
                            self.record_managed(&target, v, &existing).await?;
                        } else {
                            let replica = self
                                .state()
                                .replicas
                                .get(&v.volume_id)
                                .cloned()
                                .ok_or_else(|| {
                                    StepError::Failed(format!(
                                        "no replica chosen for volume {}",
                                        v.volume_id
                                    ))
                                })?;
                            let prefix = if test { "test" } else { "dr" };
                            let new_name = format!("{prefix}-{short}-{}", v.volume_id)
                                .chars()
                                .map(|ch| {
                                    if ch.is_ascii_alphanumeric() || ch == '-' {
                                        ch
                                    } else {
                                        '-'
                                    }
                                })
                                .take(63)
                                .collect::<String>();
                            let array_ref = ResourceRef::ArrayVolume {
                                site_id: target.clone(),
                                name: new_name.clone(),
                            };
                            self.journal(JournalEvent::Intent {
                                resource: array_ref,
                            })
                            .await?;
                            let slot = acquire(cinder).await?;
                            self.on(Service::FlashArray);
                            // The intent is what a rollback needs to destroy the copy;
                            // its result is journaled with the Cinder volume managed
                            // from it (`Created` below), and a resumed step promotes
                            // again what it did not manage.
                            driver.promote(&replica, &new_name).await?;
                            let mut metadata = BTreeMap::new();
                            metadata.insert(TAG_OPERATION.to_owned(), op_id.clone());
                            metadata.insert(TAG_SOURCE_VOLUME.to_owned(), v.volume_id.to_string());
                            if test {
                                metadata.insert(TAG_TEST_PG.to_owned(), pg_id.clone());
                            }
                            let name = if test {
                                format!("{TEST_PREFIX}-{}", v.name)
                            } else {
                                v.name.clone()
                            };
                            self.on(Service::BlockStorage);
                            let managed = c
                                .block_storage
                                .manage_volume(&ManageVolume {
                                    source_name: new_name.clone(),
                                    host: host.clone(),
                                    name,
                                    volume_type: vt.clone(),
                                    bootable: v.bootable,
                                    description: Some(format!(
                                        "recovered from volume {} by operation {op_id}",
                                        v.volume_id
                                    )),
                                    metadata,
                                })
                                .await
                                .map_err(|e| {
                                    StepError::Failed(format!(
                                        "Volume manage failed for volume {} ({new_name}): {e}",
                                        v.volume_id
                                    ))
                                })?;
                            self.journal(JournalEvent::Created {
                                resource: ResourceRef::Volume {
                                    site_id: target.clone(),
                                    id: managed.id.clone(),
                                },
                            })
                            .await?;
                            let managed = c
                                .block_storage
                                .wait_for_available(&managed.id, &self.p.inner.config.volume_wait)
                                .await
                                .map_err(|e| {
                                    StepError::Failed(format!(
                                        "Volume manage failed for volume {}: {e}",
                                        v.volume_id
                                    ))
                                })?;
                            drop(slot);
                            self.record_managed(&target, v, &managed).await?;
                        }
                    }
                    early
                        .volume_ready(self, &c, &target, pg, op, &v.volume_id, test, nova)
                        .await?;
                    let n = done.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                    self.advance(step, n, total).await
                }
            })
            .buffer_unordered(self.limit_block() * VOLUMES_IN_FLIGHT_PER_SLOT)
            .collect()
            .await;
        results.into_iter().collect()
    }

    /// Servers on the target that this operation created, by member id (found by their
    /// tags, so a create whose answer was lost is not repeated).
    async fn tagged_servers(
        &self,
        c: &SiteClients,
        op_id: &str,
    ) -> StepResult<BTreeMap<String, ServerId>> {
        self.on(Service::Compute);
        Ok(c.compute
            .list_servers()
            .await?
            .into_iter()
            .filter(|s| s.metadata.get(TAG_OPERATION).map(String::as_str) == Some(op_id))
            .filter_map(|s| s.metadata.get(TAG_MEMBER).cloned().map(|m| (m, s.id)))
            .collect())
    }

    async fn record_managed(
        &self,
        target: &SiteId,
        v: &MemberVolume,
        managed: &crate::ports::Volume,
    ) -> StepResult {
        let array_name = managed
            .array_volume_name()
            .ok_or_else(|| {
                StepError::Failed(format!(
                    "cinder did not report the array volume name of volume {} on the target site",
                    managed.id
                ))
            })?
            .to_owned();
        // The note also records the volume as created: this run journaled a volume it
        // just managed already, but not one found by its tags after a restart.
        self.note(RunNote::Managed {
            source_volume: v.volume_id.clone(),
            target_volume: managed.id.clone(),
            array_name,
            site: Some(target.clone()),
        })
        .await
    }

    // ---- recreate_instances -----------------------------------------------------------

    async fn recreate_instances(&self) -> StepResult {
        let op = self.snapshot().await;
        let (_, target) = self.sites().await;
        let pg = self.pg_shared().await?;
        let c = self.clients(&target).await?;
        let test = op.operation_type == OperationType::TestFailover;
        let op_id = op.id.to_string();
        // The tags are only asked for a member with neither a journaled server nor a
        // failure: usually every member booted as soon as its volumes were managed,
        // and listing every server of the target would find nothing new.
        let unresolved = {
            let state = self.state();
            pg.members.iter().any(|m| {
                !state.booted.contains_key(&m.id) && !state.member_failed.contains_key(&m.id)
            })
        };
        let tagged = if unresolved {
            self.tagged_servers(&c, &op_id).await?
        } else {
            BTreeMap::new()
        };
        let flavors = c.compute.list_flavors().await?;
        let mut members: Vec<&Member> = pg.members.iter().collect();
        members.sort_by_key(|m| m.boot_order);
        let total = members.len();
        let done = std::sync::atomic::AtomicUsize::new(0);
        let started = op.started_at.unwrap_or(op.created_at);
        // Members found ACTIVE are journaled together, in one note once the waits are
        // over: nothing follows from them but the report, and a resumed step only
        // checks again the members the note does not name.
        let healthy = std::sync::Mutex::new(Vec::new());
        let results: Vec<StepResult> = stream::iter(0..members.len())
            .map(|i| {
                let m: &Member = members[i];
                let c = c.clone();
                let target = target.clone();
                let tagged = &tagged;
                let flavors = &flavors;
                let done = &done;
                let op = &op;
                let pg = &pg;
                let healthy = &healthy;
                async move {
                    let failed_early = self.state().member_failed.get(&m.id).cloned();
                    let outcome = if let Some(reason) = failed_early {
                        Err(StepError::Failed(reason))
                    } else {
                        self.boot_member(&c, &target, pg, m, op, tagged, flavors, test).await
                    };
                    match outcome {
                        Ok(()) => {
                            let secs = (self.p.inner.clock.now() - started).num_seconds();
                            if !self.state().healthy.contains_key(&m.id) {
                                healthy.lock().unwrap_or_else(|p| p.into_inner()).push((i, m.id.clone(), secs));
                            }
                        }
                        Err(StepError::Failed(reason)) => {
                            if !self.state().member_failed.contains_key(&m.id) {
                                tracing::warn!(member = %m.instance_name, reason = %reason, "member could not be recreated");
                                self.note(RunNote::MemberFailed {
                                    member: m.id.clone(),
                                    reason,
                                })
                                .await?;
                            }
                        }
                    }
                    let n = done.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                    self.advance(StepId::RecreateInstances, n, total).await
                }
            })
            .buffer_unordered(self.limit_compute())
            .collect()
            .await;
        // In boot order, not the order the waits ended in.
        let mut healthy = healthy.into_inner().unwrap_or_else(|p| p.into_inner());
        healthy.sort_unstable_by_key(|(i, _, _)| *i);
        let healthy: Vec<_> = healthy.into_iter().map(|(_, m, s)| (m, s)).collect();
        if !healthy.is_empty() {
            self.note(RunNote::HealthyMembers { members: healthy })
                .await?;
        }
        results.into_iter().collect::<StepResult>()?;
        let failed = self.state().member_failed.clone();
        if !failed.is_empty() {
            self.remove_unrecorded_servers(&c, &target, &op_id, &failed)
                .await?;
            let names: Vec<String> = pg
                .members
                .iter()
                .filter_map(|m| {
                    failed
                        .get(&m.id)
                        .map(|r| format!("{}: {r}", m.instance_name))
                })
                .collect();
            if failed.len() == pg.members.len() && !test {
                return Err(StepError::Failed(format!(
                    "no member could be recreated: {}",
                    names.join("; ")
                )));
            }
            let summary = format!(
                "{} of {} members could not be recreated: {}",
                failed.len(),
                pg.members.len(),
                names.join("; ")
            );
            self.mark_step_failed(StepId::RecreateInstances, summary.clone())
                .await?;
            let mut o = self.op.lock().await;
            o.error_message.get_or_insert(summary);
        }
        Ok(())
    }

    /// A create whose answer was lost (an error after Nova acted) may have booted a
    /// server that no journal line names. For members listed as failed, find such
    /// servers by this operation's tags and delete them, journaled, so a failed member
    /// leaves nothing behind on the target.
    async fn remove_unrecorded_servers(
        &self,
        c: &SiteClients,
        target: &SiteId,
        op_id: &str,
        failed: &IdMap<MemberId, String>,
    ) -> StepResult {
        let booted = self.state().booted.clone();
        let strays: Vec<ServerId> = self
            .tagged_servers(c, op_id)
            .await?
            .into_iter()
            .filter(|(member, _)| {
                failed.contains_key(member.as_str()) && !booted.contains_key(member.as_str())
            })
            .map(|(_, server)| server)
            .collect();
        for id in strays {
            let resource = ResourceRef::Server {
                site_id: target.clone(),
                id: id.clone(),
            };
            self.journal(JournalEvent::Created {
                resource: resource.clone(),
            })
            .await?;
            self.on(Service::Compute);
            c.compute
                .delete_server_and_wait(&id, &self.p.inner.config.server_wait)
                .await?;
            self.journal(JournalEvent::Released { resource }).await?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn boot_member(
        &self,
        c: &SiteClients,
        target: &SiteId,
        pg: &ProtectionGroup,
        m: &Member,
        op: &crate::model::Operation,
        tagged: &BTreeMap<String, ServerId>,
        flavors: &[crate::ports::Flavor],
        test: bool,
    ) -> StepResult {
        let server_id = self
            .create_member_server(c, target, pg, m, op, tagged, flavors, test)
            .await?;
        if self.state().healthy.contains_key(&m.id) {
            return Ok(());
        }
        self.on(Service::Compute);
        c.compute
            .wait_for_status(
                &server_id,
                ServerStatus::Active,
                &self.p.inner.config.server_wait,
            )
            .await?;
        Ok(())
    }

    /// Creates the member's server on the target unless the journal or the target's
    /// tags show it exists already. Idempotent.
    #[allow(clippy::too_many_arguments)]
    async fn create_member_server(
        &self,
        c: &SiteClients,
        target: &SiteId,
        pg: &ProtectionGroup,
        m: &Member,
        op: &crate::model::Operation,
        tagged: &BTreeMap<String, ServerId>,
        flavors: &[crate::ports::Flavor],
        test: bool,
    ) -> StepResult<ServerId> {
        let _serial = self.boot_lock(&m.id).await;
        self.create_member_server_locked(c, target, pg, m, op, tagged, flavors, test)
            .await
    }

    /// [`Self::create_member_server`] for a caller holding the member's boot lock.
    #[allow(clippy::too_many_arguments)]
    async fn create_member_server_locked(
        &self,
        c: &SiteClients,
        target: &SiteId,
        pg: &ProtectionGroup,
        m: &Member,
        op: &crate::model::Operation,
        tagged: &BTreeMap<String, ServerId>,
        flavors: &[crate::ports::Flavor],
        test: bool,
    ) -> StepResult<ServerId> {
        let known = self.state().booted.get(&m.id).cloned();
        let server_id = match known.or_else(|| tagged.get(m.id.as_str()).cloned()) {
            Some(id) => {
                if !self.state().booted.contains_key(&m.id) {
                    self.note(RunNote::Booted {
                        member: m.id.clone(),
                        server: id.clone(),
                        site: Some(target.clone()),
                    })
                    .await?;
                }
                id
            }
            None => {
                let wanted = mapped_flavor(&op.parameters.mappings, m);
                let flavor = flavors
                    .iter()
                    .find(|f| f.id.as_str() == wanted || f.name == wanted)
                    .ok_or_else(|| {
                        StepError::Failed(format!(
                            "flavor {wanted} does not exist on the target site"
                        ))
                    })?;
                let mut networks = Vec::new();
                for n in &m.networks {
                    let dst = mapped_network(&op.parameters.mappings, n).ok_or_else(|| {
                        StepError::Failed(format!("no network mapping for {}", n.network_id))
                    })?;
                    let net = self.resolve_network(c, target, dst).await?;
                    networks.push(NetworkAttachment {
                        network_id: net.id.clone(),
                        fixed_ip: None,
                    });
                }
                let mut block_devices = Vec::new();
                let mut ordered: Vec<&MemberVolume> = m.volumes.iter().collect();
                ordered.sort_by_key(|v| (v.boot_index.is_none(), v.boot_index));
                {
                    // Only this member's volumes, under the lock: the map holds every
                    // volume of the group.
                    let state = self.state();
                    for v in ordered {
                        let (id, _) = state.managed.get(&v.volume_id).ok_or_else(|| {
                            StepError::Failed(format!("volume {} was not recovered", v.volume_id))
                        })?;
                        block_devices.push(BlockDevice {
                            volume_id: id.clone(),
                            boot_index: v.boot_index,
                            delete_on_termination: false,
                        });
                    }
                }
                let mut metadata: BTreeMap<String, String> = m
                    .metadata
                    .iter()
                    .filter(|(k, _)| !k.starts_with("protector_"))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                metadata.insert(TAG_OPERATION.to_owned(), op.id.to_string());
                metadata.insert(TAG_MEMBER.to_owned(), m.id.to_string());
                if test {
                    metadata.insert(TAG_TEST_PG.to_owned(), pg.id.to_string());
                }
                let name = if test {
                    format!("{TEST_PREFIX}-{}-{}", pg.name, m.instance_name)
                } else {
                    m.instance_name.clone()
                };
                // No journal entry before the create: the server is tagged with this
                // operation and its member, which is how a resumed run
                // (`tagged_servers`) or a rollback (`sweep_tagged`) finds it when its
                // create was not journaled.
                self.on(Service::Compute);
                let server = c
                    .compute
                    .create_server(&ServerCreate {
                        name,
                        flavor_id: flavor.id.clone(),
                        block_devices,
                        networks,
                        key_name: m.key_name.clone(),
                        security_groups: m.security_groups.clone(),
                        metadata,
                        availability_zone: None,
                    })
                    .await?;
                // The note also records the server as created.
                self.note(RunNote::Booted {
                    member: m.id.clone(),
                    server: server.id.clone(),
                    site: Some(target.clone()),
                })
                .await?;
                server.id
            }
        };
        Ok(server_id)
    }

    // ---- finalize (failover, failback) ------------------------------------------------

    async fn failover_finalize(&self) -> StepResult {
        let op = self.snapshot().await;
        let (source, target) = self.sites().await;
        let pg = self.pg_shared().await?;
        // Only what finalize needs: the whole state also holds every replica and every
        // live resource of the operation.
        let (managed, booted, member_failed, replica_time) = {
            let state = self.state();
            (
                state.managed.clone(),
                state.booted.clone(),
                state.member_failed.clone(),
                state.replicas.values().map(|r| r.created_at).max(),
            )
        };
        let partial = !member_failed.is_empty();
        let already = match op.operation_type {
            OperationType::Failover => {
                matches!(
                    pg.status,
                    PgStatus::FailedOver | PgStatus::FailedOverPartial
                ) && pg.current_primary_site_id == target
            }
            _ => pg.current_primary_site_id == target && pg.status != PgStatus::FailingBack,
        };
        let c = self.clients(&target).await?;
        let mut warnings: Vec<String> = self
            .stale_warning
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .into_iter()
            .collect();
        let pg = if already {
            pg
        } else {
            // Put the recovered volumes into the target site's consistency group.
            if let Some(gid) = pg
                .sites
                .get(&target)
                .and_then(|b| b.consistency_group_id.clone())
            {
                let ids: Vec<VolumeId> = managed.values().map(|(id, _)| id.clone()).collect();
                self.on(Service::BlockStorage);
                if let Err(e) = c.block_storage.update_group(&gid, &ids, &[]).await {
                    warnings.push(format!(
                        "could not add the recovered volumes to consistency group {gid}: {e}"
                    ));
                }
            }
            let mut new_source = None;
            if op.operation_type == OperationType::Failback && op.parameters.reverse_replication {
                let (driver, spec) = self.driver().await?;
                let names: Vec<String> = managed.values().map(|(_, n)| n.clone()).collect();
                self.on(Service::FlashArray);
                match driver
                    .reverse_replication(&spec, self.p.side_of(&pg, &target), &names)
                    .await
                {
                    Ok(()) => new_source = Some(target.clone()),
                    Err(e) => warnings.push(format!("replication direction was not reversed: {e}")),
                }
            }
            let networks: BTreeMap<String, (String, String)> = {
                let mut out = BTreeMap::new();
                for m in &pg.members {
                    for n in &m.networks {
                        // Members share networks: resolve each one once.
                        if out.contains_key(n.network_id.as_str()) {
                            continue;
                        }
                        if let Some(dst) = mapped_network(&op.parameters.mappings, n) {
                            if let Ok(net) = self.resolve_network(&c, &target, dst).await {
                                out.insert(
                                    n.network_id.to_string(),
                                    (net.id.to_string(), net.name.clone()),
                                );
                            }
                        }
                    }
                }
                out
            };
            let flavors = c.compute.list_flavors().await?;
            let now = self.p.inner.clock.now();
            let kind = op.operation_type;
            let mappings = op.parameters.mappings.clone();
            let (s2, t2) = (source.clone(), target.clone());
            let (managed, booted, member_failed) = (&managed, &booted, &member_failed);
            // The group as it was is not needed any more: let it go before the updated
            // copy is made (for thousands of members, megabytes each).
            drop(pg);
            self.update_pg(move |pg| {
                let mut stale = StaleResources::default();
                for m in &mut pg.members {
                    stale.servers.push(m.instance_id.clone());
                    for v in &mut m.volumes {
                        stale.volumes.push(v.volume_id.clone());
                        if let Some((id, name)) = managed.get(&v.volume_id) {
                            v.volume_id = id.clone();
                            v.array_volume_name = name.clone();
                        }
                    }
                    if let Some(sid) = booted.get(&m.id) {
                        m.instance_id = sid.clone();
                    }
                    m.status = if member_failed.contains_key(&m.id) {
                        MemberStatus::Failed
                    } else {
                        MemberStatus::Protected
                    };
                    for n in &mut m.networks {
                        if let Some((id, name)) = networks.get(n.network_id.as_str()) {
                            *n = MemberNetwork {
                                network_id: id.as_str().into(),
                                network_name: Some(name.clone()),
                                fixed_ip: None,
                            };
                        }
                    }
                    let wanted = mapped_flavor(&mappings, m);
                    if let Some(f) = flavors
                        .iter()
                        .find(|f| f.id.as_str() == wanted || f.name == wanted)
                    {
                        m.flavor_id = f.id.clone();
                        m.flavor_name = Some(f.name.clone());
                    }
                }
                let entry = pg.stale.entry(s2.clone()).or_default();
                entry.servers.extend(stale.servers);
                entry.volumes.extend(stale.volumes);
                pg.set_mappings(s2, t2, mappings);
                if let Some(t) = replica_time {
                    pg.last_replication_at =
                        Some(pg.last_replication_at.map_or(t, |old| old.max(t)));
                }
                if let Some(ns) = new_source {
                    pg.replication_source_site_id = Some(ns);
                }
                apply_success(pg, kind, partial, now)
                    .map_err(|e| StepError::Failed(e.to_string()))?;
                // `update_pg` bumps the version once more; `apply_success` already did.
                pg.version -= 1;
                Ok(())
            })
            .await?;
            self.pg_shared().await?
        };
        drop(managed);
        // Members keep their ids and names through the update.
        let result = self.result_data(&pg, &booted, &member_failed, warnings);
        drop(pg);
        self.set_result(result).await
    }

    fn result_data(
        &self,
        pg: &ProtectionGroup,
        booted: &IdMap<MemberId, ServerId>,
        member_failed: &IdMap<MemberId, String>,
        warnings: Vec<String>,
    ) -> serde_json::Value {
        let created: Vec<serde_json::Value> = pg
            .members
            .iter()
            .filter_map(|m| {
                let id = booted.get(&m.id)?;
                (!member_failed.contains_key(&m.id))
                    .then(|| json!({"name": m.instance_name, "id": id}))
            })
            .collect();
        let mut out = json!({ "instances_created": created });
        if !member_failed.is_empty() {
            out["members_failed"] = pg
                .members
                .iter()
                .filter_map(|m| {
                    member_failed
                        .get(&m.id)
                        .map(|r| json!({"name": m.instance_name, "id": m.id, "reason": r}))
                })
                .collect::<Vec<_>>()
                .into();
        }
        if !warnings.is_empty() {
            out["warnings"] = warnings.into();
        }
        out
    }

    // ---- test failover ----------------------------------------------------------------

    async fn test_finalize(&self) -> StepResult {
        let op = self.snapshot().await;
        let (_, target) = self.sites().await;
        let pg = self.pg_shared().await?;
        let state = self.state().clone();
        let op_id = op.id.clone();
        // Sorted, so the record reads the same run after run.
        let mut servers: Vec<ServerId> = state.booted.values().cloned().collect();
        servers.sort();
        let mut volumes: Vec<VolumeId> = state.managed.values().map(|(id, _)| id.clone()).collect();
        volumes.sort();
        self.update_pg(move |pg| {
            pg.test_resources = Some(TestResources {
                operation_id: Some(op_id),
                site_id: Some(target),
                servers,
                volumes,
                array_volumes: Vec::new(),
            });
            Ok(())
        })
        .await?;
        let mut result = self.result_data(&pg, &state.booted, &state.member_failed, Vec::new());
        let checks: Vec<serde_json::Value> = pg
            .members
            .iter()
            .map(|m| {
                let passed = state.healthy.contains_key(&m.id) && !state.member_failed.contains_key(&m.id);
                json!({
                    "name": m.instance_name,
                    "check": "ACTIVE",
                    "passed": passed,
                    "detail": state.member_failed.get(&m.id).cloned().unwrap_or_else(|| "server is ACTIVE".into()),
                })
            })
            .collect();
        result["health_checks"] = checks.into();
        if state.member_failed.is_empty() {
            result["rto_seconds"] = state.healthy.values().copied().max().unwrap_or(0).into();
        }
        self.set_result(result).await
    }

    /// Collects what a test cleanup removes: the group's recorded test resources and
    /// anything on the test site tagged as this group's test resources.
    async fn plan_cleanup(&self, pg: &ProtectionGroup) -> StepResult {
        if self.state().cleanup.is_some() {
            return Ok(());
        }
        let (_, target) = self.sites().await;
        let c = self.clients(&target).await?;
        let mut servers: Vec<ServerId> = Vec::new();
        let mut volumes: Vec<VolumeId> = Vec::new();
        if let Some(t) = &pg.test_resources {
            servers.extend(t.servers.iter().cloned());
            volumes.extend(t.volumes.iter().cloned());
        }
        let pg_id = pg.id.to_string();
        self.on(Service::Compute);
        for s in c.compute.list_servers().await? {
            if s.metadata.get(TAG_TEST_PG) == Some(&pg_id) && !servers.contains(&s.id) {
                servers.push(s.id);
            }
        }
        self.on(Service::BlockStorage);
        for v in c.block_storage.list_volumes().await? {
            if v.metadata.get(TAG_TEST_PG) == Some(&pg_id) && !volumes.contains(&v.id) {
                volumes.push(v.id);
            }
        }
        let array_volumes = pg
            .test_resources
            .as_ref()
            .map(|t| t.array_volumes.clone())
            .unwrap_or_default();
        self.note(RunNote::CleanupPlan {
            servers,
            volumes,
            array_volumes,
        })
        .await
    }

    async fn cleanup_instances(&self) -> StepResult {
        let (_, target) = self.sites().await;
        let c = self.clients(&target).await?;
        let servers = self
            .state()
            .cleanup
            .clone()
            .map(|p| p.0)
            .unwrap_or_default();
        let total = servers.len();
        for (i, s) in servers.iter().enumerate() {
            self.on(Service::Compute);
            c.compute
                .delete_server_and_wait(s, &self.p.inner.config.server_wait)
                .await?;
            self.advance(StepId::DeleteInstances, i + 1, total).await?;
        }
        Ok(())
    }

    async fn cleanup_volumes(&self) -> StepResult {
        let (_, target) = self.sites().await;
        let c = self.clients(&target).await?;
        let (_, volumes, arrays) = self.state().cleanup.clone().unwrap_or_default();
        let total = volumes.len() + arrays.len();
        for (i, v) in volumes.iter().enumerate() {
            self.on(Service::BlockStorage);
            c.block_storage
                .delete_volume_and_wait(v, &self.p.inner.config.volume_wait)
                .await?;
            self.advance(StepId::DeleteVolumes, i + 1, total).await?;
        }
        if !arrays.is_empty() {
            let (driver, _) = self.driver().await?;
            let pg = self.pg_shared().await?;
            let side = self.p.side_of(&pg, &target);
            for (i, name) in arrays.iter().enumerate() {
                self.on(Service::FlashArray);
                driver.destroy_volume(side, name).await?;
                self.advance(StepId::DeleteVolumes, volumes.len() + i + 1, total)
                    .await?;
            }
        }
        Ok(())
    }

    async fn cleanup_finalize(&self) -> StepResult {
        let (servers, volumes, arrays) = self.state().cleanup.clone().unwrap_or_default();
        let pg = self.pg_shared().await?;
        if pg.test_resources.is_some() {
            self.update_pg(|pg| {
                pg.test_resources = None;
                Ok(())
            })
            .await?;
        }
        self.set_result(json!({
            "servers_deleted": servers.len(),
            "volumes_deleted": volumes.len(),
            "array_volumes_deleted": arrays.len(),
        }))
        .await
    }

    // ---- sync_volumes -----------------------------------------------------------------

    async fn reconcile_members(&self) -> StepResult {
        let (source, _) = self.sites().await;
        let pg = self.pg_shared().await?;
        let c = self.clients(&source).await?;
        let mut added_total = 0usize;
        let mut removed_total = 0usize;
        let mut new_members: BTreeMap<MemberId, Vec<MemberVolume>> = BTreeMap::new();
        let total = pg.members.len();
        for (i, m) in pg.members.iter().enumerate() {
            self.on(Service::Compute);
            let server = c.compute.get_server(&m.instance_id).await?;
            let known: Vec<VolumeId> = m.volumes.iter().map(|v| v.volume_id.clone()).collect();
            let added: Vec<VolumeId> = server
                .volumes_attached
                .iter()
                .filter(|v| !known.contains(v))
                .cloned()
                .collect();
            let removed: Vec<MemberVolume> = m
                .volumes
                .iter()
                .filter(|v| !server.volumes_attached.contains(&v.volume_id))
                .cloned()
                .collect();
            if added.is_empty() && removed.is_empty() {
                self.advance(StepId::ReconcileMembers, i + 1, total).await?;
                continue;
            }
            self.on(Service::BlockStorage);
            let mut captured = self.p.capture_volumes(&c, &pg, &added).await?;
            for v in &mut captured {
                // Only the root volume found at add time boots the server.
                v.bootable = false;
                v.boot_index = None;
            }
            self.p
                .attach_member_volumes(&self.ctx, &pg, &captured, true)
                .await?;
            self.p
                .attach_member_volumes(&self.ctx, &pg, &removed, false)
                .await?;
            added_total += captured.len();
            removed_total += removed.len();
            let mut volumes: Vec<MemberVolume> = m
                .volumes
                .iter()
                .filter(|v| server.volumes_attached.contains(&v.volume_id))
                .cloned()
                .collect();
            volumes.extend(captured);
            new_members.insert(m.id.clone(), volumes);
            self.advance(StepId::ReconcileMembers, i + 1, total).await?;
        }
        if !new_members.is_empty() {
            self.update_pg(move |pg| {
                for m in &mut pg.members {
                    if let Some(v) = new_members.remove(&m.id) {
                        m.volumes = v;
                    }
                }
                Ok(())
            })
            .await?;
        }
        self.set_result(json!({"volumes_added": added_total, "volumes_removed": removed_total}))
            .await
    }

    async fn replicate(&self) -> StepResult {
        let (source, _) = self.sites().await;
        let pg = self.pg_shared().await?;
        let (driver, spec) = self.driver().await?;
        let side = self.p.side_of(&pg, &source);
        self.on(Service::FlashArray);
        driver.ensure_replication_group(&spec, side).await?;
        let point = driver
            .replicate_now(&spec, side, self.p.inner.config.replication_timeout)
            .await?;
        self.note(RunNote::ReplicaPoint { point }).await
    }

    async fn sync_finalize(&self) -> StepResult {
        let point = self.state().point.clone();
        let at = point
            .as_ref()
            .map(|p| p.completed_at.unwrap_or(p.created_at));
        self.update_pg(move |pg| {
            if let Some(t) = at {
                pg.last_replication_at = Some(t);
            }
            Ok(())
        })
        .await?;
        let mut result = self.snapshot().await.result_data;
        if let Some(p) = point {
            result["replicated_snapshot"] = p.name.into();
            result["replicated_at"] = p.created_at.to_rfc3339().into();
        }
        self.set_result(result).await
    }
}

/// Starts members' boots from inside the volume step, as soon as each member's volumes
/// are all managed.
struct EarlyBoot {
    /// Volume → index of its member in the group's member list.
    member_of: IdMap<VolumeId, usize>,
    tagged: BTreeMap<String, ServerId>,
    flavors: Vec<crate::ports::Flavor>,
}

impl EarlyBoot {
    async fn prepare(
        run: &Run,
        c: &SiteClients,
        pg: &ProtectionGroup,
        op: &crate::model::Operation,
    ) -> StepResult<Self> {
        let op_id = op.id.to_string();
        let tagged = run.tagged_servers(c, &op_id).await?;
        let flavors = c.compute.list_flavors().await?;
        let member_of = pg
            .members
            .iter()
            .enumerate()
            .flat_map(|(i, m)| m.volumes.iter().map(move |v| (v.volume_id.clone(), i)))
            .collect();
        Ok(Self {
            member_of,
            tagged,
            flavors,
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn volume_ready(
        &self,
        run: &Run,
        c: &SiteClients,
        target: &SiteId,
        pg: &ProtectionGroup,
        op: &crate::model::Operation,
        volume: &VolumeId,
        test: bool,
        nova: &tokio::sync::Semaphore,
    ) -> StepResult {
        let Some(m) = self.member_of.get(volume).and_then(|&i| pg.members.get(i)) else {
            return Ok(());
        };
        // The check, the boot and the failure note happen under the member's boot lock:
        // the futures of its other volumes wait here and then see the outcome (a
        // journal write may let them run in between).
        let _serial = run.boot_lock(&m.id).await;
        let ready = {
            let state = run.state();
            !state.booted.contains_key(&m.id)
                && !state.member_failed.contains_key(&m.id)
                && m.volumes
                    .iter()
                    .all(|v| state.managed.contains_key(&v.volume_id))
        };
        if !ready {
            return Ok(());
        }
        let slot = acquire(nova).await?;
        let created = run
            .create_member_server_locked(c, target, pg, m, op, &self.tagged, &self.flavors, test)
            .await;
        drop(slot);
        match created {
            Ok(_) => Ok(()),
            Err(StepError::Failed(reason)) => {
                tracing::warn!(member = %m.instance_name, reason = %reason, "member could not be booted");
                run.note(RunNote::MemberFailed {
                    member: m.id.clone(),
                    reason,
                })
                .await
            }
        }
    }
}

/// Volumes in flight in the volume step per Cinder slot: the others wait for their
/// journal writes or for a Nova slot.
const VOLUMES_IN_FLIGHT_PER_SLOT: usize = 4;

/// A slot of `limit` (its semaphore is never closed while a step runs).
async fn acquire(limit: &tokio::sync::Semaphore) -> StepResult<tokio::sync::SemaphorePermit<'_>> {
    limit
        .acquire()
        .await
        .map_err(|_| StepError::Failed("a concurrency limit was closed".into()))
}

/// An array volume's name without its pod prefix (`pod::vol` → `vol`).
fn base_volume_name(name: &str) -> &str {
    name.rsplit("::").next().unwrap_or(name)
}
