//! Executes an operation's steps: journal, progress, timeouts, rollback and resume.
//!
//! The runner is the only writer of an operation's record while it runs. Everything it
//! learns (the group's previous status, replicas chosen, volumes managed, servers
//! booted, members that failed) is written to the journal as a [`RunNote`] before it is
//! used, so a restarted engine rebuilds the same [`RunState`] and continues where the
//! journal ends.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex as StdMutex;

use serde::{Deserialize, Serialize};

use crate::context::RequestContext;
use crate::engine::Protector;
use crate::error::{BackendErrorKind, Error, Service};
use crate::ids::{MemberId, OperationId, ServerId, SiteId, VolumeId};
use crate::messages;
use crate::model::{
    JournalEntry, JournalEvent, NoteData, Operation, OperationStatus, OperationType, PgStatus,
    ProtectionGroup, ResourceRef,
};
use crate::ports::{
    HookVerdict, ReplicaPoint, ReplicationGroupSpec, SiteClients, StepBoundary, StorageDriver,
    VolumeReplica,
};
use crate::progress::{self, StepId};
use crate::state::{op_transition, pg_transition, OpEvent, PgEvent};

/// Facts an operation learns, journaled as `note` entries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "note", rename_all = "snake_case")]
pub(crate) enum RunNote {
    /// The group's status before the operation started.
    PreviousStatus { status: PgStatus },
    /// The forced replication that landed on the target.
    ReplicaPoint { point: ReplicaPoint },
    /// The replica chosen for a source volume (one note per volume, as earlier versions
    /// wrote them; [`RunNote::Replicas`] now).
    Replica {
        source_volume: VolumeId,
        replica: VolumeReplica,
    },
    /// The replicas chosen for source volumes, one note for all the lookups of a step:
    /// choosing a replica changes nothing anywhere, so a resumed step simply looks up
    /// again the ones this note does not name.
    Replicas {
        replicas: Vec<(VolumeId, VolumeReplica)>,
    },
    /// A source volume's copy is managed into Cinder on the target. With `site` (the
    /// target), the note also records the Cinder volume as created, as a `created`
    /// entry does (earlier versions wrote one before the note and no `site`).
    Managed {
        source_volume: VolumeId,
        target_volume: VolumeId,
        array_name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        site: Option<SiteId>,
    },
    /// A member's server is about to be created. Written by earlier versions only:
    /// neither resume nor rollback needs it (the server is tagged with its operation and
    /// member, which is how a resumed run or a rollback finds one whose create was not
    /// journaled).
    Booting { member: MemberId },
    /// A member's server exists. With `site` (the target), the note also records the
    /// server as created, as a `created` entry does (earlier versions wrote one before
    /// the note and no `site`).
    Booted {
        member: MemberId,
        server: ServerId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        site: Option<SiteId>,
    },
    /// A member's server is ACTIVE (one note per member, as earlier versions wrote them;
    /// [`RunNote::HealthyMembers`] now).
    Healthy { member: MemberId, seconds: i64 },
    /// Members whose servers are ACTIVE, with the seconds from the operation's start,
    /// one note for all the members a step found so.
    HealthyMembers { members: Vec<(MemberId, i64)> },
    /// A member could not be recreated.
    MemberFailed { member: MemberId, reason: String },
    /// What a test cleanup will remove.
    CleanupPlan {
        servers: Vec<ServerId>,
        volumes: Vec<VolumeId>,
        array_volumes: Vec<String>,
    },
    /// Stale resources of an earlier operation removed from the target.
    StaleRemoved {
        site: SiteId,
        servers: usize,
        volumes: usize,
    },
}

/// Live resources in the order they first became live, with constant-time membership:
/// an operation over thousands of volumes journals thousands of them.
#[derive(Clone, Debug, Default)]
pub(crate) struct LiveResources {
    /// Resources by position; a released one leaves `None`.
    order: Vec<Option<std::sync::Arc<ResourceRef>>>,
    /// Each live resource with its hash and position. The table rehashes by the stored
    /// hash as it grows, without reading the resources again.
    index: hashbrown::HashTable<Indexed>,
}

/// An entry of [`LiveResources::index`].
#[derive(Clone, Debug)]
struct Indexed {
    hash: u64,
    position: usize,
    resource: std::sync::Arc<ResourceRef>,
}

impl LiveResources {
    fn hash(r: &ResourceRef) -> u64 {
        use std::hash::BuildHasher as _;
        FixedState::default().hash_one(r)
    }

    /// Adds `r` at the end unless it is already live (then it keeps its place).
    fn insert(&mut self, r: ResourceRef) {
        let hash = Self::hash(&r);
        let position = self.order.len();
        if let hashbrown::hash_table::Entry::Vacant(e) =
            self.index
                .entry(hash, |e| *e.resource == r, |e: &Indexed| e.hash)
        {
            let resource = std::sync::Arc::new(r);
            self.order.push(Some(resource.clone()));
            e.insert(Indexed {
                hash,
                position,
                resource,
            });
        }
    }

    /// Whether `r` is live.
    pub(crate) fn contains(&self, r: &ResourceRef) -> bool {
        self.index
            .find(Self::hash(r), |e| *e.resource == *r)
            .is_some()
    }

    fn remove(&mut self, r: &ResourceRef) {
        let found = self.index.find_entry(Self::hash(r), |e| *e.resource == *r);
        if let Ok(entry) = found {
            let (removed, _) = entry.remove();
            self.order[removed.position] = None;
        }
    }

    /// The live resources, oldest first.
    pub(crate) fn in_order(&self) -> Vec<ResourceRef> {
        let mut out = Vec::with_capacity(self.index.len());
        out.extend(self.order.iter().flatten().map(|r| ResourceRef::clone(r)));
        out
    }
}

/// Hashes without keys: the same run after run. Keys are ids and names the services
/// handed out, not input an adversary picks.
type FixedState = rustc_hash::FxBuildHasher;

/// A map looked up by id many times per operation: hashed with fixed keys, so lookups
/// stay constant-time at thousands of members and any iteration is the same run after
/// run.
pub(crate) type IdMap<K, V> = std::collections::HashMap<K, V, FixedState>;

/// What the journal says so far.
#[derive(Clone, Debug, Default)]
pub(crate) struct RunState {
    pub completed: BTreeSet<StepId>,
    pub previous_status: Option<PgStatus>,
    pub point: Option<ReplicaPoint>,
    pub replicas: IdMap<VolumeId, VolumeReplica>,
    pub managed: IdMap<VolumeId, (VolumeId, String)>,
    pub booted: IdMap<MemberId, ServerId>,
    pub healthy: IdMap<MemberId, i64>,
    pub member_failed: IdMap<MemberId, String>,
    pub cleanup: Option<(Vec<ServerId>, Vec<VolumeId>, Vec<String>)>,
    /// Resources created (or about to be) and not released, in journal order.
    pub live: LiveResources,
    pub side_effects: bool,
}

impl RunState {
    pub(crate) fn from_journal(journal: &[JournalEntry]) -> Self {
        let mut s = RunState::default();
        for e in journal {
            s.apply(&e.event);
        }
        s
    }

    pub(crate) fn apply(&mut self, event: &JournalEvent) {
        match event {
            JournalEvent::StepCompleted { step } => {
                self.completed.insert(*step);
            }
            JournalEvent::Intent { resource } | JournalEvent::Created { resource } => {
                self.side_effects = true;
                if !self.live.contains(resource) {
                    self.live.insert(resource.clone());
                }
            }
            JournalEvent::Released { resource } => {
                self.live.remove(resource);
            }
            JournalEvent::Note { data } => {
                if let Ok(note) = data.decode::<RunNote>() {
                    self.apply_note(note);
                }
            }
            _ => {}
        }
    }

    /// [`Self::apply`] of an event the caller no longer needs.
    fn apply_owned(&mut self, event: JournalEvent) {
        match event {
            JournalEvent::Intent { resource } | JournalEvent::Created { resource } => {
                self.created(resource);
            }
            other => self.apply(&other),
        }
    }

    /// Records `resource` as live (what an `intent` or `created` entry does).
    fn created(&mut self, resource: ResourceRef) {
        self.side_effects = true;
        self.live.insert(resource);
    }

    /// Folds a note into the state (what [`Self::apply`] does with its journal entry).
    fn apply_note(&mut self, note: RunNote) {
        match note {
            RunNote::PreviousStatus { status } => {
                self.previous_status.get_or_insert(status);
            }
            RunNote::ReplicaPoint { point } => self.point = Some(point),
            RunNote::Replica {
                source_volume,
                replica,
            } => {
                self.replicas.insert(source_volume, replica);
            }
            RunNote::Replicas { replicas } => self.replicas.extend(replicas),
            RunNote::Managed {
                source_volume,
                target_volume,
                array_name,
                site,
            } => {
                if let Some(site_id) = site {
                    self.created(ResourceRef::Volume {
                        site_id,
                        id: target_volume.clone(),
                    });
                }
                self.managed
                    .insert(source_volume, (target_volume, array_name));
            }
            RunNote::Booting { .. } => {}
            RunNote::Booted {
                member,
                server,
                site,
            } => {
                if let Some(site_id) = site {
                    self.created(ResourceRef::Server {
                        site_id,
                        id: server.clone(),
                    });
                }
                self.booted.insert(member, server);
            }
            RunNote::Healthy { member, seconds } => {
                self.member_failed.remove(&member);
                self.healthy.insert(member, seconds);
            }
            RunNote::HealthyMembers { members } => {
                for (member, seconds) in members {
                    self.member_failed.remove(&member);
                    self.healthy.insert(member, seconds);
                }
            }
            RunNote::MemberFailed { member, reason } => {
                self.member_failed.insert(member, reason);
            }
            RunNote::CleanupPlan {
                servers,
                volumes,
                array_volumes,
            } => self.cleanup = Some((servers, volumes, array_volumes)),
            RunNote::StaleRemoved { .. } => self.side_effects = true,
        }
    }
}

/// A queued journal event: when, what (with the note it encodes, if it is one), and
/// who waits for it to be stored.
type QueuedEvent = (
    chrono::DateTime<chrono::Utc>,
    JournalEvent,
    Option<RunNote>,
    tokio::sync::oneshot::Sender<Result<(), String>>,
);

/// Journal events waiting for the next group commit.
#[derive(Default)]
pub(crate) struct JournalQueue {
    pending: Vec<QueuedEvent>,
    /// A writer is committing (or about to).
    leading: bool,
}

/// Gives up the lead of the journal queue if the leading writer is dropped before it
/// finished (a step timeout cancels it): the events it had not stored fail, and the
/// next writer leads.
struct LeaderGuard<'a> {
    run: &'a Run,
    done: bool,
}

impl Drop for LeaderGuard<'_> {
    fn drop(&mut self) {
        if !self.done {
            let mut q = self.run.journal_queue();
            q.leading = false;
            for (_, _, _, tx) in q.pending.drain(..) {
                let _ = tx.send(Err(
                    "the journal write this event waited for was cancelled".to_owned()
                ));
            }
        }
    }
}

/// Why a step stopped.
#[derive(Debug)]
pub(crate) enum StepError {
    /// The step failed; the message goes to `error_message`.
    Failed(String),
}

impl From<Error> for StepError {
    fn from(e: Error) -> Self {
        StepError::Failed(e.to_string())
    }
}

impl From<crate::error::BackendError> for StepError {
    fn from(e: crate::error::BackendError) -> Self {
        StepError::Failed(e.to_string())
    }
}

impl From<crate::error::StoreError> for StepError {
    fn from(e: crate::error::StoreError) -> Self {
        StepError::Failed(e.to_string())
    }
}

pub(crate) type StepResult<T = ()> = Result<T, StepError>;

/// Networks resolved by id or name, by site.
pub(crate) type NetworksBySite =
    BTreeMap<SiteId, BTreeMap<String, std::sync::Arc<crate::ports::Network>>>;

/// One running operation.
pub(crate) struct Run {
    pub p: Protector,
    pub id: OperationId,
    pub op: tokio::sync::Mutex<Operation>,
    pub state: StdMutex<RunState>,
    pub ctx: RequestContext,
    pub pg_id: crate::ids::ProtectionGroupId,
    pub waiting_on: StdMutex<Option<Service>>,
    pub driver: StdMutex<Option<(std::sync::Arc<dyn StorageDriver>, ReplicationGroupSpec)>>,
    pub clients: tokio::sync::Mutex<BTreeMap<SiteId, SiteClients>>,
    /// One creation at a time per member, so an early boot and the recreate step never
    /// both create a server.
    pub boot_locks: StdMutex<IdMap<MemberId, std::sync::Arc<tokio::sync::Mutex<()>>>>,
    /// Networks resolved on a site by id or name: members share networks, so each is
    /// looked up once per operation.
    pub networks: StdMutex<NetworksBySite>,
    /// Journal events waiting for the next group commit ([`Run::journal`]).
    pub journal_queue: StdMutex<JournalQueue>,
    /// Serialises [`Run::update_pg`]: the deferred stale cleanup updates the group
    /// while steps run.
    pub pg_lock: tokio::sync::Mutex<()>,
    /// Why the deferred stale cleanup left stale volumes, reported by the finalize step.
    pub stale_warning: StdMutex<Option<String>>,
}

tokio::task_local! {
    /// Set while the deferred stale cleanup is polled: its calls must not change the
    /// service a step's timeout message names.
    static BACKGROUND: ();
}

impl Run {
    pub(crate) async fn boot_lock(&self, member: &MemberId) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = self
            .boot_locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(member.clone())
            .or_default()
            .clone();
        lock.lock_owned().await
    }

    /// [`crate::engine::operations::resolve_network`] on `site`, remembering what it
    /// found for the rest of the operation.
    pub(crate) async fn resolve_network(
        &self,
        c: &SiteClients,
        site: &SiteId,
        id_or_name: &str,
    ) -> Result<std::sync::Arc<crate::ports::Network>, Error> {
        if let Some(n) = self
            .networks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(site)
            .and_then(|on_site| on_site.get(id_or_name))
        {
            return Ok(n.clone());
        }
        let n =
            std::sync::Arc::new(crate::engine::operations::resolve_network(c, id_or_name).await?);
        self.networks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(site.clone())
            .or_default()
            .insert(id_or_name.to_owned(), n.clone());
        Ok(n)
    }

    pub(crate) fn state(&self) -> std::sync::MutexGuard<'_, RunState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) async fn snapshot(&self) -> Operation {
        self.op.lock().await.clone()
    }

    /// Appends to the journal and folds the event into the state. Returns once the
    /// event is stored.
    ///
    /// Group commit: the members of a step run concurrently and journal at the same
    /// moments. The first writer to find no commit under way leads: it lets the other
    /// ready tasks run once, then stores everything queued so far in one store
    /// transaction, and repeats while events keep arriving. Every writer still waits
    /// for its own event to be stored before it goes on, so each side effect stays
    /// journaled before and after it happens.
    pub(crate) async fn journal(&self, event: JournalEvent) -> StepResult {
        self.enqueue(event, None).await
    }

    /// [`Self::journal`] of `event`; `note` is the note it encodes, if it is one (folded
    /// into the state as it is, rather than decoded again from the event).
    async fn enqueue(&self, event: JournalEvent, note: Option<RunNote>) -> StepResult {
        let now = self.p.inner.clock.now();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let lead = {
            let mut q = self.journal_queue();
            q.pending.push((now, event, note, tx));
            !std::mem::replace(&mut q.leading, true)
        };
        if lead {
            let mut guard = LeaderGuard {
                run: self,
                done: false,
            };
            tokio::task::yield_now().await;
            self.commit_queued().await;
            guard.done = true;
        }
        match rx.await {
            Ok(result) => result.map_err(StepError::Failed),
            Err(_) => Err(StepError::Failed(
                "a journal write was abandoned before it was stored".into(),
            )),
        }
    }

    fn journal_queue(&self) -> std::sync::MutexGuard<'_, JournalQueue> {
        self.journal_queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores queued events batch by batch until the queue is empty, then gives up
    /// the lead (under the queue's lock, so no event is left without a leader).
    async fn commit_queued(&self) {
        loop {
            let batch = {
                let mut q = self.journal_queue();
                if q.pending.is_empty() {
                    q.leading = false;
                    return;
                }
                std::mem::take(&mut q.pending)
            };
            let mut events = Vec::with_capacity(batch.len());
            let mut notes = Vec::with_capacity(batch.len());
            let mut waiters = Vec::with_capacity(batch.len());
            for (at, event, note, tx) in batch {
                events.push((at, event));
                notes.push(note);
                waiters.push(tx);
            }
            let stored = self
                .p
                .inner
                .local
                .operations
                .append_journal_batch(&self.id, events)
                .await;
            match stored {
                Ok(entries) => {
                    {
                        let mut state = self.state();
                        for (entry, note) in entries.into_iter().zip(notes) {
                            match note {
                                Some(note) => state.apply_note(note),
                                None => state.apply_owned(entry.event),
                            }
                        }
                    }
                    for tx in waiters {
                        // A writer that stopped waiting needs no answer.
                        let _ = tx.send(Ok(()));
                    }
                }
                Err(e) => {
                    let message = e.to_string();
                    for tx in waiters {
                        let _ = tx.send(Err(message.clone()));
                    }
                }
            }
        }
    }

    pub(crate) async fn note(&self, note: RunNote) -> StepResult {
        let data = NoteData::encode(&note)
            .map_err(|e| StepError::Failed(format!("cannot encode a journal note: {e}")))?;
        self.enqueue(JournalEvent::Note { data }, Some(note)).await
    }

    pub(crate) fn on(&self, service: Service) {
        if BACKGROUND.try_with(|()| ()).is_ok() {
            return;
        }
        *self.waiting_on.lock().unwrap_or_else(|p| p.into_inner()) = Some(service);
    }

    /// Writes the record and publishes it.
    async fn persist(&self, op: &mut Operation) -> Result<(), Error> {
        op.updated_at = Some(self.p.inner.clock.now());
        self.p.inner.local.operations.update_operation(op).await?;
        self.p.publish(op);
        Ok(())
    }

    /// Moves progress inside `step` to `done` of `total` items. Progress never goes
    /// backwards; the record is written only when the percentage changes.
    pub(crate) async fn advance(&self, step: StepId, done: usize, total: usize) -> StepResult {
        #[allow(clippy::cast_precision_loss)]
        let fraction = if total == 0 {
            1.0
        } else {
            done as f64 / total as f64
        };
        let mut op = self.op.lock().await;
        if let Some((phase, pct)) = progress::progress(op.operation_type, step, fraction) {
            if pct > op.progress {
                op.progress = pct;
                op.phase = Some(phase);
                self.persist(&mut op).await?;
            }
        }
        Ok(())
    }

    pub(crate) async fn clients(&self, site: &SiteId) -> StepResult<SiteClients> {
        let mut cache = self.clients.lock().await;
        if let Some(c) = cache.get(site) {
            return Ok(c.clone());
        }
        let c = self.p.clients(site, &self.ctx).await?;
        cache.insert(site.clone(), c.clone());
        Ok(c)
    }

    pub(crate) async fn driver(
        &self,
    ) -> StepResult<(std::sync::Arc<dyn StorageDriver>, ReplicationGroupSpec)> {
        if let Some(d) = self
            .driver
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            return Ok(d);
        }
        let pg = self.pg_shared().await?;
        let policy = self
            .p
            .inner
            .local
            .metadata
            .get_policy(&pg.id)
            .await?
            .ok_or_else(|| {
                StepError::Failed(
                    messages::Refusal::NoPolicy {
                        pg: pg.name.clone(),
                    }
                    .to_string(),
                )
            })?;
        let driver = self.p.inner.storage.driver(&policy)?;
        let spec = ReplicationGroupSpec::from_policy(&policy, pg.replication_type);
        *self.driver.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((driver.clone(), spec.clone()));
        Ok((driver, spec))
    }

    /// The group as stored now.
    pub(crate) async fn pg(&self) -> StepResult<ProtectionGroup> {
        self.p
            .inner
            .local
            .metadata
            .get_protection_group(&self.pg_id)
            .await?
            .ok_or_else(|| {
                StepError::Failed(format!("protection group {} no longer exists", self.pg_id))
            })
    }

    /// The group as stored now, shared with the store's copy: for reading only.
    pub(crate) async fn pg_shared(&self) -> StepResult<std::sync::Arc<ProtectionGroup>> {
        self.p
            .inner
            .local
            .metadata
            .get_protection_group_shared(&self.pg_id)
            .await?
            .ok_or_else(|| {
                StepError::Failed(format!("protection group {} no longer exists", self.pg_id))
            })
    }

    /// Reads the group, applies `f`, bumps its version, saves it locally and pushes it
    /// to the peer (both stores keep the one copy saved).
    pub(crate) async fn update_pg<F>(&self, f: F) -> StepResult
    where
        F: FnOnce(&mut ProtectionGroup) -> StepResult,
    {
        let _serial = self.pg_lock.lock().await;
        let mut pg = self.pg().await?;
        f(&mut pg)?;
        pg.version += 1;
        pg.updated_at = self.p.inner.clock.now();
        self.p.save_pg_shared(std::sync::Arc::new(pg)).await?;
        Ok(())
    }

    pub(crate) async fn set_result(&self, data: serde_json::Value) -> StepResult {
        let mut op = self.op.lock().await;
        op.result_data = data;
        self.persist(&mut op).await?;
        Ok(())
    }

    /// Records `step` as failed (journal and record) without stopping the operation:
    /// for members that could not be recreated.
    pub(crate) async fn mark_step_failed(&self, step: StepId, error: String) -> StepResult {
        self.journal(JournalEvent::StepFailed { step, error })
            .await?;
        let mut op = self.op.lock().await;
        if !op.steps_failed.contains(&step) {
            op.steps_failed.push(step);
            self.persist(&mut op).await?;
        }
        Ok(())
    }
}

/// First pause before a run stopped by a store failure resumes.
const STORE_RETRY_FIRST: std::time::Duration = std::time::Duration::from_secs(1);
/// Longest pause between such resumptions.
const STORE_RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(60);

impl Protector {
    pub(crate) fn spawn_run(&self, id: OperationId) {
        let me = self.clone();
        let task_id = id.clone();
        let handle = tokio::spawn(async move {
            // A store that fails (a full disk, say) stops the run where a crash would;
            // like a restarted process, the run then resumes from its journal, after a
            // pause that grows to at most a minute, until the store works again. The
            // record stays `running` meanwhile: nothing it describes is lost.
            let mut pause = STORE_RETRY_FIRST;
            loop {
                match me.run_operation(&task_id).await {
                    Ok(()) => break,
                    Err(Error::Store(e)) => {
                        tracing::error!(operation = %task_id, error = %e, retry_in_s = pause.as_secs(), "the store failed while the operation ran; resuming it from its journal after a pause");
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(STORE_RETRY_MAX);
                    }
                    Err(e) => {
                        tracing::error!(operation = %task_id, error = %e, "operation could not be driven to an end");
                        break;
                    }
                }
            }
        });
        self.inner
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, handle);
    }

    /// Resumes every operation of the local site that a previous process left
    /// `pending`, `running` or `rolling_back`. Returns their ids; follow them with
    /// [`Protector::wait`].
    ///
    /// # Errors
    /// Store errors.
    pub async fn recover(&self) -> Result<Vec<OperationId>, Error> {
        let ops = self
            .inner
            .local
            .operations
            .list_operations(&crate::model::OperationFilter::default())
            .await?;
        let mut resumed = Vec::new();
        for op in ops.into_iter().rev() {
            if op.status.is_terminal() {
                continue;
            }
            let running = self
                .inner
                .tasks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&op.id)
                .is_some_and(|h| !h.is_finished());
            if running {
                continue;
            }
            tracing::info!(operation = %op.id, status = %op.status, "resuming operation");
            self.spawn_run(op.id.clone());
            resumed.push(op.id);
        }
        Ok(resumed)
    }

    async fn run_operation(&self, id: &OperationId) -> Result<(), Error> {
        let store = &self.inner.local.operations;
        let Some(op) = store.get_operation(id).await? else {
            return Ok(());
        };
        if op.status.is_terminal() {
            return Ok(());
        }
        let journal = store.journal(id).await?;
        let state = RunState::from_journal(&journal);
        let ctx = op
            .parameters
            .requested_by
            .clone()
            .unwrap_or_else(|| RequestContext {
                user_id: crate::ids::UserId::new("protector"),
                project_id: op.project_id.clone(),
                roles: vec!["member".into()],
            });
        let run = std::sync::Arc::new(Run {
            p: self.clone(),
            id: id.clone(),
            pg_id: op.protection_group_id.clone(),
            op: tokio::sync::Mutex::new(op),
            state: StdMutex::new(state),
            ctx,
            waiting_on: StdMutex::new(None),
            driver: StdMutex::new(None),
            clients: tokio::sync::Mutex::new(BTreeMap::new()),
            boot_locks: StdMutex::new(IdMap::default()),
            networks: StdMutex::new(BTreeMap::new()),
            journal_queue: StdMutex::new(JournalQueue::default()),
            pg_lock: tokio::sync::Mutex::new(()),
            stale_warning: StdMutex::new(None),
        });
        if run
            .p
            .inner
            .local
            .metadata
            .get_protection_group_shared(&run.pg_id)
            .await?
            .is_none()
        {
            let mut op = run.op.lock().await;
            op.status = OperationStatus::Failed;
            op.error_message = Some(format!(
                "{}: protection group {} no longer exists",
                messages::INTERRUPTED_BY_RESTART,
                run.pg_id
            ));
            op.completed_at = Some(self.inner.clock.now());
            run.persist(&mut op).await?;
            return Ok(());
        }
        let status = run.op.lock().await.status;
        if status == OperationStatus::RollingBack {
            run.finish_failed(None).await?;
            return Ok(());
        }
        if status == OperationStatus::Pending {
            let mut op = run.op.lock().await;
            op.status = op_transition(op.status, OpEvent::Start)?;
            op.started_at = Some(self.inner.clock.now());
            run.persist(&mut op).await?;
        }
        let op_type = run.op.lock().await.operation_type;
        // A failover or failback removes the stale resources an earlier failover left
        // on its target in a task of its own, alongside the steps after
        // `validate_target` (off the critical path), and waits for it before `finalize`.
        // If it fails, the operation fails at its next step boundary. The task ends with
        // this run, however it ends (a crash included).
        let defers_cleanup = matches!(op_type, OperationType::Failover | OperationType::Failback);
        let mut cleanup: Option<CleanupTask> = None;
        let mut cleanup_started = false;
        for spec in progress::plan(op_type) {
            if defers_cleanup && !cleanup_started {
                let state = run.state();
                if state.completed.contains(&StepId::ValidateTarget)
                    && !state.completed.contains(&StepId::Finalize)
                {
                    drop(state);
                    cleanup_started = true;
                    let r = run.clone();
                    cleanup = Some(CleanupTask(tokio::spawn(
                        BACKGROUND.scope((), async move { r.remove_stale_deferred().await }),
                    )));
                }
            }
            if run.state().completed.contains(&spec.step) {
                continue;
            }
            if self.hook(&run.snapshot().await, StepBoundary::Before(spec.step))
                == HookVerdict::Crash
            {
                return Ok(());
            }
            if let Err(e) = run
                .journal(JournalEvent::StepStarted { step: spec.step })
                .await
            {
                return Err(step_to_error(e));
            }
            {
                let mut op = run.op.lock().await;
                op.current_step = Some(spec.step);
                op.phase = Some(spec.phase);
                op.progress = op.progress.max(spec.start);
                run.persist(&mut op).await?;
            }
            let limit = self.inner.config.step_timeout(spec.step);
            let step = async {
                // A finished cleanup's failure fails this step; `finalize` waits for it.
                let finished = cleanup.as_ref().is_some_and(CleanupTask::is_finished);
                if finished || spec.step == StepId::Finalize {
                    if let Some(task) = cleanup.take() {
                        task.join().await?;
                    }
                }
                run.execute(spec.step).await
            };
            let outcome = match tokio::time::timeout(limit, step).await {
                Ok(r) => r,
                Err(_) => {
                    let service = run
                        .waiting_on
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .map_or_else(|| "a backend".to_owned(), |s| s.to_string());
                    Err(StepError::Failed(messages::step_timed_out(
                        spec.step.as_str(),
                        &service,
                        limit.as_secs(),
                    )))
                }
            };
            match outcome {
                Ok(()) => {
                    if let Err(e) = run
                        .journal(JournalEvent::StepCompleted { step: spec.step })
                        .await
                    {
                        return Err(step_to_error(e));
                    }
                    let mut op = run.op.lock().await;
                    op.steps_completed.push(spec.step);
                    op.progress = op.progress.max(spec.end);
                    run.persist(&mut op).await?;
                    let snapshot = op.clone();
                    drop(op);
                    if self.hook(&snapshot, StepBoundary::After(spec.step)) == HookVerdict::Crash {
                        return Ok(());
                    }
                }
                Err(StepError::Failed(message)) => {
                    tracing::warn!(operation = %id, step = %spec.step, error = %message, "step failed");
                    // An unfinished cleanup stops before anything else is written; the
                    // group keeps recording what is left, and the next failover or
                    // failback to the site removes it.
                    if let Some(task) = cleanup.take() {
                        task.cancel().await;
                    }
                    let _ = run
                        .journal(JournalEvent::StepFailed {
                            step: spec.step,
                            error: message.clone(),
                        })
                        .await;
                    {
                        let mut op = run.op.lock().await;
                        if !op.steps_failed.contains(&spec.step) {
                            op.steps_failed.push(spec.step);
                        }
                        op.error_message.get_or_insert(message.clone());
                        run.persist(&mut op).await?;
                    }
                    run.finish_failed(Some(message)).await?;
                    return Ok(());
                }
            }
        }
        let mut op = run.op.lock().await;
        op.status = op_transition(op.status, OpEvent::Complete)?;
        op.progress = 100;
        op.phase = Some(progress::Phase::Finalization);
        op.current_step = None;
        op.completed_at = Some(self.inner.clock.now());
        run.persist(&mut op).await?;
        tracing::info!(operation = %id, "operation completed");
        Ok(())
    }
}

/// The deferred stale cleanup of a run, in a task of its own; dropping this cancels the
/// task.
struct CleanupTask(tokio::task::JoinHandle<StepResult>);

impl CleanupTask {
    fn is_finished(&self) -> bool {
        self.0.is_finished()
    }

    /// Waits for the cleanup and returns its outcome.
    async fn join(mut self) -> StepResult {
        match (&mut self.0).await {
            Ok(outcome) => outcome,
            Err(e) => Err(StepError::Failed(format!(
                "the removal of stale resources stopped: {e}"
            ))),
        }
    }

    /// Stops the cleanup and waits until it has let go of everything it held.
    async fn cancel(mut self) {
        self.0.abort();
        let _ = (&mut self.0).await;
    }
}

impl Drop for CleanupTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A step boundary that could not be journaled: only the store fails there.
fn step_to_error(e: StepError) -> Error {
    let StepError::Failed(m) = e;
    Error::Store(crate::error::StoreError::Database(Box::new(
        std::io::Error::other(format!("the journal could not be written: {m}")),
    )))
}

impl Run {
    /// Rolls back what exists (when anything does), marks the operation `failed` and
    /// moves the group accordingly.
    async fn finish_failed(&self, message: Option<String>) -> Result<(), Error> {
        let side_effects = self.state().side_effects;
        if side_effects {
            {
                let mut op = self.op.lock().await;
                if op.status == OperationStatus::Running {
                    op.status = op_transition(op.status, OpEvent::BeginRollback)?;
                    self.persist(&mut op).await?;
                }
            }
            let problems = self.rollback().await;
            if !problems.is_empty() {
                let mut op = self.op.lock().await;
                let base = op
                    .error_message
                    .clone()
                    .or_else(|| message.clone())
                    .unwrap_or_default();
                op.error_message = Some(format!(
                    "{base}; rollback incomplete: {}",
                    problems.join("; ")
                ));
                self.persist(&mut op).await?;
            }
        }
        let op_type = self.op.lock().await.operation_type;
        let previous = self.state().previous_status;
        let pg_result = self
            .update_pg(|pg| {
                let event = if side_effects {
                    PgEvent::Failed { operation: op_type }
                } else {
                    PgEvent::Abandoned {
                        operation: op_type,
                        previous: previous.unwrap_or(pg.status),
                    }
                };
                if let Ok(next) = pg_transition(pg.status, event) {
                    pg.status = next;
                }
                if op_type == OperationType::TestFailover {
                    pg.test_resources = None;
                }
                Ok(())
            })
            .await;
        if let Err(StepError::Failed(m)) = pg_result {
            tracing::error!(operation = %self.id, error = %m, "could not update the protection group after a failure");
        }
        let mut op = self.op.lock().await;
        op.status = op_transition(op.status, OpEvent::Fail)?;
        op.current_step = None;
        op.completed_at = Some(self.p.inner.clock.now());
        if op.error_message.is_none() {
            op.error_message = message;
        }
        self.persist(&mut op).await?;
        Ok(())
    }

    /// Undoes every live resource in reverse order, then sweeps the target for anything
    /// tagged with this operation. Returns the problems it could not fix.
    async fn rollback(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let live: Vec<ResourceRef> = self.state().live.in_order();
        let limit = self.p.inner.config.rollback_timeout;
        for resource in live.iter().rev() {
            let undone = tokio::time::timeout(limit, self.undo(resource))
                .await
                .unwrap_or_else(|_| {
                    Err(format!(
                        "undoing {resource:?} timed out after {}s",
                        limit.as_secs()
                    ))
                });
            match undone {
                Ok(()) => {
                    if let Err(e) = self
                        .journal(JournalEvent::Released {
                            resource: resource.clone(),
                        })
                        .await
                    {
                        problems.push(format!("{e:?}"));
                    }
                }
                Err(e) => problems.push(e),
            }
        }
        let target = self.op.lock().await.target_site_id.clone();
        match tokio::time::timeout(limit, self.sweep_tagged(&target)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => problems.push(e),
            Err(_) => problems.push(format!(
                "sweeping tagged resources timed out after {}s",
                limit.as_secs()
            )),
        }
        problems
    }

    async fn undo(&self, resource: &ResourceRef) -> Result<(), String> {
        let wait_server = self.p.inner.config.server_wait.clone();
        let wait_volume = self.p.inner.config.volume_wait.clone();
        let gone = |e: &crate::error::BackendError| e.kind == BackendErrorKind::NotFound;
        match resource {
            ResourceRef::Server { site_id, id } => {
                let c = self.clients(site_id).await.map_err(|e| format!("{e:?}"))?;
                c.compute
                    .delete_server_and_wait(id, &wait_server)
                    .await
                    .map_err(|e| format!("delete server {id}: {e}"))
            }
            ResourceRef::Volume { site_id, id } => {
                let c = self.clients(site_id).await.map_err(|e| format!("{e:?}"))?;
                c.block_storage
                    .delete_volume_and_wait(id, &wait_volume)
                    .await
                    .map_err(|e| format!("delete volume {id}: {e}"))
            }
            ResourceRef::ArrayVolume { site_id, name } => {
                let (driver, _) = self.driver().await.map_err(|e| format!("{e:?}"))?;
                let pg = self.pg_shared().await.map_err(|e| format!("{e:?}"))?;
                let side = self.p.side_of(&pg, site_id);
                driver
                    .destroy_volume(side, name)
                    .await
                    .map_err(|e| format!("destroy array volume {name}: {e}"))
            }
            ResourceRef::StoppedServer { site_id, id } => {
                let c = self.clients(site_id).await.map_err(|e| format!("{e:?}"))?;
                match c.compute.start_server(id).await {
                    Ok(()) => Ok(()),
                    Err(e) if gone(&e) => Ok(()),
                    Err(e) => Err(format!("restart server {id}: {e}")),
                }
            }
            ResourceRef::Group { site_id, id } => {
                let c = self.clients(site_id).await.map_err(|e| format!("{e:?}"))?;
                match c.block_storage.delete_group(id, false).await {
                    Ok(()) => Ok(()),
                    Err(e) if gone(&e) => Ok(()),
                    Err(e) => Err(format!("delete group {id}: {e}")),
                }
            }
        }
    }

    /// Deletes servers and volumes on `site` tagged with this operation that the journal
    /// does not know about (a create whose answer was lost).
    async fn sweep_tagged(&self, site: &SiteId) -> Result<(), String> {
        let c = self.clients(site).await.map_err(|e| format!("{e:?}"))?;
        let op_id = self.id.to_string();
        let mut found = Vec::new();
        let mut problems = Vec::new();
        // Each list on its own: a failing Nova must not hide the volumes Cinder holds.
        match c.compute.list_servers().await {
            Ok(servers) => found.extend(
                servers
                    .iter()
                    .filter(|s| s.metadata.get(TAG_OPERATION) == Some(&op_id))
                    .map(|s| ResourceRef::Server {
                        site_id: site.clone(),
                        id: s.id.clone(),
                    }),
            ),
            Err(e) => problems.push(format!("listing servers: {e}")),
        }
        match c.block_storage.list_volumes().await {
            Ok(volumes) => found.extend(
                volumes
                    .iter()
                    .filter(|v| v.metadata.get(TAG_OPERATION) == Some(&op_id))
                    .map(|v| ResourceRef::Volume {
                        site_id: site.clone(),
                        id: v.id.clone(),
                    }),
            ),
            Err(e) => problems.push(format!("listing volumes: {e}")),
        }
        for resource in found {
            // A create whose answer was lost left no journal line: record it first, so
            // that if it cannot be removed now the operation still owns it.
            let recorded = self
                .journal(JournalEvent::Created {
                    resource: resource.clone(),
                })
                .await;
            if let Err(e) = recorded {
                problems.push(format!("{e:?}"));
                continue;
            }
            match self.undo(&resource).await {
                Ok(()) => {
                    if let Err(e) = self.journal(JournalEvent::Released { resource }).await {
                        problems.push(format!("{e:?}"));
                    }
                }
                Err(e) => problems.push(e),
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

/// Metadata key tagging servers and volumes with the operation that created them.
pub(crate) const TAG_OPERATION: &str = "protector_operation";
/// Metadata key tagging a server with its member.
pub(crate) const TAG_MEMBER: &str = "protector_member";
/// Metadata key tagging a volume with the source volume it was recovered from.
pub(crate) const TAG_SOURCE_VOLUME: &str = "protector_source_volume";
/// Metadata key tagging test-failover resources with their protection group.
pub(crate) const TAG_TEST_PG: &str = "protector_test_pg";

#[cfg(test)]
mod tests {
    use super::*;

    fn events(json: serde_json::Value) -> Vec<JournalEvent> {
        serde_json::from_value(json).expect("journal events")
    }

    fn volume(id: &str) -> ResourceRef {
        ResourceRef::Volume {
            site_id: SiteId::from("site-b"),
            id: VolumeId::from(id),
        }
    }

    #[test]
    fn live_resources_keep_first_live_order_through_growth_and_releases() {
        let mut live = LiveResources::default();
        // Enough to make the index grow several times.
        for i in 0..5000 {
            live.insert(volume(&format!("v{i}")));
        }
        // Already live: keeps its place.
        live.insert(volume("v0"));
        assert_eq!(live.in_order().len(), 5000);
        assert_eq!(live.in_order()[0], volume("v0"));
        for i in (0..5000).step_by(2) {
            live.remove(&volume(&format!("v{i}")));
        }
        live.remove(&volume("never-live"));
        assert!(!live.contains(&volume("v0")));
        assert!(live.contains(&volume("v1")));
        // Live again after a release: now the newest.
        live.insert(volume("v0"));
        let order = live.in_order();
        assert_eq!(order.len(), 2501);
        assert_eq!(order[0], volume("v1"));
        assert_eq!(order[1], volume("v3"));
        assert_eq!(order[2500], volume("v0"));
        let server = ResourceRef::Server {
            site_id: SiteId::from("site-b"),
            id: ServerId::from("v1"),
        };
        assert!(!live.contains(&server), "same id, other kind");
    }

    #[test]
    fn a_journal_of_earlier_versions_rebuilds_the_same_state_as_the_folded_notes() {
        let replica = serde_json::json!({
            "array": "secondary", "source_volume": "volume-v1-cinder",
            "name": "array-a:pg.1.volume-v1-cinder", "created_at": "2026-01-01T00:00:00Z"
        });
        let old = events(serde_json::json!([
            {"event": "note", "data": {"note": "replica", "source_volume": "v1", "replica": replica}},
            {"event": "created", "resource": {"kind": "volume", "site_id": "b", "id": "t1"}},
            {"event": "note", "data": {"note": "managed", "source_volume": "v1", "target_volume": "t1", "array_name": "a1"}},
            {"event": "note", "data": {"note": "booting", "member": "m1"}},
            {"event": "created", "resource": {"kind": "server", "site_id": "b", "id": "s1"}},
            {"event": "note", "data": {"note": "booted", "member": "m1", "server": "s1"}},
            {"event": "note", "data": {"note": "healthy", "member": "m1", "seconds": 7}},
        ]));
        let new = events(serde_json::json!([
            {"event": "note", "data": {"note": "replicas", "replicas": [["v1", replica]]}},
            {"event": "created", "resource": {"kind": "volume", "site_id": "b", "id": "t1"}},
            {"event": "note", "data": {"note": "managed", "source_volume": "v1", "target_volume": "t1", "array_name": "a1", "site": "b"}},
            {"event": "note", "data": {"note": "booted", "member": "m1", "server": "s1", "site": "b"}},
            {"event": "note", "data": {"note": "healthy_members", "members": [["m1", 7]]}},
        ]));
        let fold = |events: &[JournalEvent]| {
            let mut s = RunState::default();
            for e in events {
                s.apply(e);
            }
            s
        };
        let (old, new) = (fold(&old), fold(&new));
        assert_eq!(old.replicas, new.replicas);
        assert_eq!(old.managed, new.managed);
        assert_eq!(old.booted, new.booted);
        assert_eq!(old.healthy, new.healthy);
        assert!(old.side_effects && new.side_effects);
        assert_eq!(old.live.in_order(), new.live.in_order());
        assert_eq!(new.live.in_order().len(), 2);
    }
}
