//! The DR engine and its coordination handle.
//!
//! A [`Protector`] sees the world from one site (the *local* site, where the caller is
//! authenticated, the `--os-cloud` of the command line) and its peer (the
//! `--secondary-cloud`). It manages sites, protection groups, members, policies and
//! mappings, keeps the two sites' metadata in sync, and runs DR operations, recording
//! each on the local site.
//!
//! # Expected flow
//! 1. Build a [`Protector`] with [`Protector::builder`]: both sites' connectors and
//!    stores, a storage-driver factory, clock and id generator.
//! 2. Call [`Protector::recover`] once: operations that a previous process left
//!    `pending`, `running` or `rolling_back` are resumed from their journals.
//! 3. Start operations ([`Protector::failover`], [`Protector::failback`], …): the
//!    pre-flight checks run first and refuse with the product's texts before any record
//!    exists; then the record is written, the group's status moves, and the operation
//!    runs in a background task. Follow it with [`Protector::subscribe`] or
//!    [`Protector::wait`].
//!
//! # Guarantees
//! - Every step is journaled before and after its side effects, and every resource is
//!   recorded (as an intent, then as created) before the next call, so rollback and
//!   resume know exactly what exists. Resources are tagged with the operation id, so a
//!   call whose answer was lost is found again instead of repeated.
//! - A failure after the first side effect rolls back in reverse order (`rolling_back`
//!   then `failed`, group `error` for failover/failback); nothing is leaked.
//! - Operations on one protection group are serialised (a second one is refused while
//!   one is unfinished); operations on different groups run concurrently.
//! - Tenants never see or touch each other's groups or operations; admins see all.
//!
//! # Caveats
//! - Metadata is pushed to the peer on every change; while the peer is unreachable
//!   modifications are refused, and after an unplanned failover they stay refused until
//!   `sync_force`.

pub mod config;
pub use config::{ConcurrencyLimits, ConfigError, EngineConfig, EngineConfigBuilder};
pub mod events;
pub use events::ProgressEvent;
mod management;
pub use management::{
    CreatePolicy, CreateProtectionGroup, SiteCheck, SiteRegistration, SiteValidation,
};
mod operations;
pub use operations::{FailbackRequest, FailoverRequest, TestFailoverRequest};
mod runner;
mod steps;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use crate::clock::Clock;
use crate::context::RequestContext;
use crate::error::Error;
use crate::ids::{IdGenerator, OperationId, ProtectionGroupId, SiteId};
use crate::messages::Refusal;
use crate::model::{
    Operation, OperationFilter, PgRef, ProtectionGroup, Site, SyncState, SyncStatusValue,
};
use crate::policy::{rules, PolicyEngine, Target};
use crate::ports::{
    DeadlineConnector, HookVerdict, SiteClients, SiteConnector, StepBoundary, StepHook,
    StorageDriverFactory,
};
use crate::store::{MetadataStore, OperationStore};

/// One site as the engine reaches it: its record, connector and stores.
#[derive(Clone)]
pub struct SiteRuntime {
    /// The registered site.
    pub site: Site,
    /// Its services.
    pub connector: Arc<dyn SiteConnector>,
    /// Its metadata store.
    pub metadata: Arc<dyn MetadataStore>,
    /// Its operation store.
    pub operations: Arc<dyn OperationStore>,
}

impl fmt::Debug for SiteRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SiteRuntime")
            .field("site", &self.site.name)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub(crate) local: SiteRuntime,
    pub(crate) peer: SiteRuntime,
    pub(crate) storage: Arc<dyn StorageDriverFactory>,
    pub(crate) policy: PolicyEngine,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) ids: Arc<IdGenerator>,
    pub(crate) config: EngineConfig,
    pub(crate) hook: Option<Arc<dyn StepHook>>,
    pub(crate) events: broadcast::Sender<ProgressEvent>,
    pub(crate) tasks: Mutex<BTreeMap<OperationId, tokio::task::JoinHandle<()>>>,
    pub(crate) start_lock: tokio::sync::Mutex<()>,
}

/// The coordination handle: both sites, the engine of the local one.
#[derive(Clone)]
pub struct Protector {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for Protector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Protector")
            .field("local", &self.inner.local.site.name)
            .field("peer", &self.inner.peer.site.name)
            .finish_non_exhaustive()
    }
}

/// Builder of [`Protector`].
#[derive(Default)]
pub struct ProtectorBuilder {
    local: Option<SiteRuntime>,
    peer: Option<SiteRuntime>,
    storage: Option<Arc<dyn StorageDriverFactory>>,
    policy: Option<PolicyEngine>,
    clock: Option<Arc<dyn Clock>>,
    ids: Option<Arc<IdGenerator>>,
    config: EngineConfig,
    hook: Option<Arc<dyn StepHook>>,
}

impl fmt::Debug for ProtectorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProtectorBuilder").finish_non_exhaustive()
    }
}

impl ProtectorBuilder {
    /// The site the caller is authenticated to; operations are recorded here.
    pub fn local(mut self, site: SiteRuntime) -> Self {
        self.local = Some(site);
        self
    }

    /// The other site.
    pub fn peer(mut self, site: SiteRuntime) -> Self {
        self.peer = Some(site);
        self
    }

    /// Builds storage drivers from replication policies.
    pub fn storage(mut self, factory: Arc<dyn StorageDriverFactory>) -> Self {
        self.storage = Some(factory);
        self
    }

    /// The policy engine (defaults when not set).
    pub fn policy(mut self, policy: PolicyEngine) -> Self {
        self.policy = Some(policy);
        self
    }

    /// The clock (required).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The id generator (required).
    pub fn ids(mut self, ids: Arc<IdGenerator>) -> Self {
        self.ids = Some(ids);
        self
    }

    /// Engine configuration.
    pub fn config(mut self, config: EngineConfig) -> Self {
        self.config = config;
        self
    }

    /// A hook consulted at every step boundary.
    pub fn step_hook(mut self, hook: Arc<dyn StepHook>) -> Self {
        self.hook = Some(hook);
        self
    }

    /// Builds the handle and registers both sites in both sites' metadata stores.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming a missing part; store errors.
    pub async fn build(self) -> Result<Protector, Error> {
        let missing = |what: &str| Error::Invalid(format!("protector builder: {what} is required"));
        let local = self.local.ok_or_else(|| missing("the local site"))?;
        let peer = self.peer.ok_or_else(|| missing("the peer site"))?;
        if local.site.id == peer.site.id {
            return Err(Error::Invalid(
                "protector builder: the local and peer sites must differ".into(),
            ));
        }
        let storage = self
            .storage
            .ok_or_else(|| missing("a storage driver factory"))?;
        let clock = self.clock.ok_or_else(|| missing("a clock"))?;
        let ids = self.ids.ok_or_else(|| missing("an id generator"))?;
        for rt in [&local, &peer] {
            for site in [&local.site, &peer.site] {
                if rt.metadata.get_site(&site.id).await?.is_none() {
                    rt.metadata.put_site(site).await?;
                }
            }
        }
        // Every call to a site's services gets a deadline, so a service that never
        // answers fails the call instead of hanging the caller.
        let bound = |mut rt: SiteRuntime| {
            rt.connector = Arc::new(DeadlineConnector::new(
                rt.connector,
                self.config.call_timeout,
            ));
            rt
        };
        let (local, peer) = (bound(local), bound(peer));
        let (events, _) = broadcast::channel(4096);
        Ok(Protector {
            inner: Arc::new(Inner {
                local,
                peer,
                storage,
                policy: self.policy.unwrap_or_else(PolicyEngine::with_defaults),
                clock,
                ids,
                config: self.config,
                hook: self.hook,
                events,
                tasks: Mutex::new(BTreeMap::new()),
                start_lock: tokio::sync::Mutex::new(()),
            }),
        })
    }
}

impl Protector {
    /// A builder.
    pub fn builder() -> ProtectorBuilder {
        ProtectorBuilder::default()
    }

    /// The local site.
    pub fn local_site(&self) -> &Site {
        &self.inner.local.site
    }

    /// The peer site.
    pub fn peer_site(&self) -> &Site {
        &self.inner.peer.site
    }

    /// Progress events of every operation this handle runs.
    pub fn subscribe(&self) -> broadcast::Receiver<ProgressEvent> {
        self.inner.events.subscribe()
    }

    /// Waits until the background task of `id` (started or resumed by this handle) has
    /// ended, then returns the record.
    ///
    /// # Errors
    /// [`Error::NotFound`] when there is no such operation.
    pub async fn wait(&self, id: &OperationId) -> Result<Operation, Error> {
        let handle = self
            .inner
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        if let Some(h) = handle {
            // A panicking or crashed task still leaves a record; read it below.
            let _ = h.await;
        }
        self.inner
            .local
            .operations
            .get_operation(id)
            .await?
            .ok_or_else(|| Error::NotFound {
                kind: "operation",
                name: id.to_string(),
            })
    }

    /// Operations visible to the caller, newest first.
    ///
    /// # Errors
    /// [`Error::Forbidden`] when `protector:operations:index` denies.
    pub async fn list_operations(
        &self,
        ctx: &RequestContext,
        filter: &OperationFilter,
    ) -> Result<Vec<Operation>, Error> {
        self.inner.policy.enforce(
            rules::OPERATIONS_INDEX,
            ctx,
            &Target::project(&ctx.project_id),
        )?;
        let mut f = filter.clone();
        if !ctx.is_admin() {
            f.project_id = Some(ctx.project_id.clone());
        }
        if let Some(PgRef::Name(name)) = &f.protection_group {
            // Resolve the name within the caller's view so two tenants' groups of the
            // same name never mix.
            match self.find_pg(ctx, name).await {
                Ok(pg) => f.protection_group = Some(PgRef::Id(pg.id)),
                Err(Error::NotFound { .. }) => return Ok(Vec::new()),
                Err(e) => return Err(e),
            }
        }
        Ok(self.inner.local.operations.list_operations(&f).await?)
    }

    /// One operation.
    ///
    /// # Errors
    /// [`Error::NotFound`] when unknown; [`Error::Forbidden`] when it belongs to another
    /// project and the policy denies.
    pub async fn get_operation(
        &self,
        ctx: &RequestContext,
        id: &OperationId,
    ) -> Result<Operation, Error> {
        let op = self
            .inner
            .local
            .operations
            .get_operation(id)
            .await?
            .ok_or_else(|| Error::NotFound {
                kind: "operation",
                name: id.to_string(),
            })?;
        self.inner.policy.enforce(
            rules::OPERATIONS_SHOW,
            ctx,
            &Target::project(&op.project_id),
        )?;
        Ok(op)
    }

    /// The journal of an operation (for audits and the invariant checker).
    ///
    /// # Errors
    /// As [`Protector::get_operation`].
    pub async fn operation_journal(
        &self,
        ctx: &RequestContext,
        id: &OperationId,
    ) -> Result<Vec<crate::model::JournalEntry>, Error> {
        self.get_operation(ctx, id).await?;
        Ok(self.inner.local.operations.journal(id).await?)
    }

    // ---- shared helpers -------------------------------------------------------------

    pub(crate) fn runtime(&self, site: &SiteId) -> Result<&SiteRuntime, Error> {
        if site == &self.inner.local.site.id {
            Ok(&self.inner.local)
        } else if site == &self.inner.peer.site.id {
            Ok(&self.inner.peer)
        } else {
            Err(Error::NotFound {
                kind: "site",
                name: site.to_string(),
            })
        }
    }

    pub(crate) async fn clients(
        &self,
        site: &SiteId,
        ctx: &RequestContext,
    ) -> Result<SiteClients, Error> {
        Ok(self.runtime(site)?.connector.connect(ctx).await?)
    }

    /// Finds a group by id or name in the caller's view of the local store.
    pub(crate) async fn find_pg(
        &self,
        ctx: &RequestContext,
        id_or_name: &str,
    ) -> Result<ProtectionGroup, Error> {
        self.find_pg_shared(ctx, id_or_name)
            .await
            .map(std::sync::Arc::unwrap_or_clone)
    }

    /// [`Self::find_pg`] as the store shares it, for callers that only read the group.
    pub(crate) async fn find_pg_shared(
        &self,
        ctx: &RequestContext,
        id_or_name: &str,
    ) -> Result<std::sync::Arc<ProtectionGroup>, Error> {
        let store = &self.inner.local.metadata;
        let not_found = || Error::NotFound {
            kind: "protection group",
            name: id_or_name.to_owned(),
        };
        if let Some(pg) = store
            .get_protection_group_shared(&ProtectionGroupId::new(id_or_name))
            .await?
        {
            if ctx.is_admin() || pg.project_id == ctx.project_id {
                return Ok(pg);
            }
            // Another tenant's group: the policy decides (admin_or_owner denies).
            self.inner.policy.enforce(
                rules::PROTECTION_GROUPS_SHOW,
                ctx,
                &Target::project(&pg.project_id),
            )?;
            return Ok(pg);
        }
        let scope = if ctx.is_admin() {
            None
        } else {
            Some(&ctx.project_id)
        };
        let ids = store.protection_group_ids_named(scope, id_or_name).await?;
        let mut matches = Vec::with_capacity(ids.len());
        for id in &ids {
            // A group deleted since the names were read is not a match.
            if let Some(pg) = store.get_protection_group_shared(id).await? {
                matches.push(pg);
            }
        }
        if matches.len() > 1 {
            // An admin naming a group that exists in several projects: prefer their own.
            if let Some(pos) = matches.iter().position(|p| p.project_id == ctx.project_id) {
                return Ok(matches.swap_remove(pos));
            }
            return Err(Error::Invalid(format!(
                "more than one protection group is named {id_or_name}; use its id"
            )));
        }
        matches.pop().ok_or_else(not_found)
    }

    pub(crate) fn authorize(
        &self,
        rule: &str,
        ctx: &RequestContext,
        pg: &ProtectionGroup,
    ) -> Result<(), Error> {
        self.inner
            .policy
            .enforce(rule, ctx, &Target::project(&pg.project_id))
    }

    /// Whether the peer answers.
    pub(crate) async fn peer_reachable(&self) -> bool {
        self.inner.peer.connector.probe().await.is_ok()
    }

    /// Refuses a modification unless the peer is reachable and both sites agree on the
    /// group's metadata.
    pub(crate) async fn ensure_modifiable(&self, pg: &ProtectionGroup) -> Result<(), Error> {
        if !self.peer_reachable().await {
            return Err(Refusal::ModifyRemoteUnreachable.into());
        }
        if let Some(state) = self.inner.local.metadata.get_sync_state(&pg.id).await? {
            if matches!(
                state.status,
                SyncStatusValue::Unreachable | SyncStatusValue::Failed
            ) {
                return Err(Refusal::ModifyRemoteUnreachable.into());
            }
        }
        self.ensure_same_version(pg).await
    }

    /// Refuses unless the peer's copy of the group has the same metadata version.
    pub(crate) async fn ensure_same_version(&self, pg: &ProtectionGroup) -> Result<(), Error> {
        let remote = self
            .inner
            .peer
            .metadata
            .get_protection_group_shared(&pg.id)
            .await?;
        match remote {
            Some(r) if r.version == pg.version => Ok(()),
            other => Err(Refusal::OutOfSync {
                pg: pg.name.clone(),
                local: pg.version,
                remote: other.map(|r| r.version),
            }
            .into()),
        }
    }

    /// Writes the group locally and pushes it to the peer, recording the sync state.
    /// Returns whether the push succeeded.
    pub(crate) async fn save_pg(&self, pg: &ProtectionGroup) -> Result<bool, Error> {
        self.save_pg_shared(std::sync::Arc::new(pg.clone())).await
    }

    /// [`Self::save_pg`] of a shared group: both stores keep `pg` itself, and its
    /// document is encoded once for both.
    pub(crate) async fn save_pg_shared(
        &self,
        pg: std::sync::Arc<ProtectionGroup>,
    ) -> Result<bool, Error> {
        let document = crate::store::GroupDocument::default();
        self.inner
            .local
            .metadata
            .put_protection_group_shared(pg.clone(), &document)
            .await?;
        self.push_pg_encoded(pg, &document).await
    }

    pub(crate) async fn push_pg(&self, pg: &ProtectionGroup) -> Result<bool, Error> {
        self.push_pg_encoded(
            std::sync::Arc::new(pg.clone()),
            &crate::store::GroupDocument::default(),
        )
        .await
    }

    /// [`Self::push_pg`] of a shared group whose document may be encoded already.
    async fn push_pg_encoded(
        &self,
        pg: std::sync::Arc<ProtectionGroup>,
        document: &crate::store::GroupDocument,
    ) -> Result<bool, Error> {
        let now = self.inner.clock.now();
        let reachable = self.peer_reachable().await;
        let (status, remote_version, error) = if !reachable {
            (
                SyncStatusValue::Unreachable,
                None,
                Some(format!("site {} is unreachable", self.inner.peer.site.name)),
            )
        } else {
            // Never overwrite a newer copy: the peer moved on (an operation ran there
            // while this site was cut off), and only sync-force may override it.
            // Only the version is kept: the peer's copy is let go before the new one
            // is written.
            let remote = self
                .inner
                .peer
                .metadata
                .get_protection_group_shared(&pg.id)
                .await
                .map(|r| r.map(|r| r.version));
            match remote {
                Ok(Some(remote)) if remote > pg.version => (
                    SyncStatusValue::Failed,
                    Some(remote),
                    Some(format!(
                        "site {} holds version {remote} of the group, newer than version {} here",
                        self.inner.peer.site.name, pg.version
                    )),
                ),
                Ok(_) => match self
                    .inner
                    .peer
                    .metadata
                    .put_protection_group_shared(pg.clone(), document)
                    .await
                {
                    Ok(()) => (SyncStatusValue::InSync, Some(pg.version), None),
                    Err(e) => (SyncStatusValue::Failed, None, Some(e.to_string())),
                },
                Err(e) => (SyncStatusValue::Failed, None, Some(e.to_string())),
            }
        };
        let previous = self.inner.local.metadata.get_sync_state(&pg.id).await?;
        let state = match previous {
            // Once unreachable or failed, the state stays so until a forced sync.
            Some(prev)
                if status == SyncStatusValue::InSync
                    && matches!(
                        prev.status,
                        SyncStatusValue::Unreachable | SyncStatusValue::Failed
                    ) =>
            {
                SyncState {
                    last_sync_at: Some(now),
                    ..prev
                }
            }
            prev => SyncState {
                protection_group_id: pg.id.clone(),
                remote_version: remote_version.or(prev.and_then(|p| p.remote_version)),
                status,
                last_sync_at: Some(now),
                last_sync_error: error,
            },
        };
        self.inner.local.metadata.put_sync_state(&state).await?;
        Ok(status == SyncStatusValue::InSync)
    }

    pub(crate) fn hook(&self, op: &Operation, boundary: StepBoundary) -> HookVerdict {
        self.inner
            .hook
            .as_ref()
            .map_or(HookVerdict::Continue, |h| h.at_boundary(op, boundary))
    }

    pub(crate) fn publish(&self, op: &Operation) {
        // No subscriber is not an error.
        let _ = self.inner.events.send(ProgressEvent::of(op));
    }
}
