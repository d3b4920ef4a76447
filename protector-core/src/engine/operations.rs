//! Starting DR operations: pre-flight checks, then the record, then the background run.

use crate::context::RequestContext;
use crate::engine::Protector;
use crate::error::{BackendErrorKind, Error};
use crate::ids::{NetworkId, OperationId, SiteId};
use crate::messages::Refusal;
use crate::model::{
    FailoverType, Operation, OperationParameters, OperationType, ProtectionGroup, ResourceMappings,
    SyncStatusValue,
};
use crate::policy::rules;
use crate::ports::SiteClients;
use crate::state::check_start;

/// `protection-group failover`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailoverRequest {
    /// Planned or unplanned.
    pub failover_type: FailoverType,
    /// Mappings given with the command (on top of the stored ones).
    pub mappings: ResourceMappings,
    /// `--force`: start from `error`, skip the stale-sync check.
    pub force: bool,
}

/// `protection-group failback`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FailbackRequest {
    /// Mappings given with the command (reverse of the failover's).
    pub mappings: ResourceMappings,
    /// `--reverse-replication`: restore the original replication direction afterwards.
    pub reverse_replication: bool,
    /// `--force`.
    pub force: bool,
}

/// `protection-group test-failover`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TestFailoverRequest {
    /// Mappings given with the command.
    pub mappings: ResourceMappings,
}

impl Protector {
    /// Starts a failover of the group to the other site.
    ///
    /// Refused before any record exists when: the group is not `active` (or `error`
    /// with `force`); a planned failover cannot reach both sites (`remote site
    /// unreachable`); an unplanned one is not started on the site that receives the
    /// workload; metadata is out of sync (unless `force`); the policy is missing; a
    /// network the members use has no mapping; test resources exist.
    ///
    /// # Errors
    /// The refusal, or forbidden / not found.
    pub async fn failover(
        &self,
        ctx: &RequestContext,
        pg_ref: &str,
        req: FailoverRequest,
    ) -> Result<Operation, Error> {
        let pg = self.find_pg_shared(ctx, pg_ref).await?;
        self.authorize(rules::PROTECTION_GROUPS_FAILOVER, ctx, &pg)?;
        check_start(&pg.name, pg.status, OperationType::Failover, req.force)?;
        let source = pg.current_primary_site_id.clone();
        let target = pg.current_target_site_id().clone();
        match req.failover_type {
            FailoverType::Planned => {
                self.ensure_both_reachable().await?;
                if !req.force {
                    self.ensure_in_sync(&pg).await?;
                }
            }
            FailoverType::Unplanned => {
                if self.inner.local.site.id != target {
                    return Err(Refusal::UnplannedFromSource {
                        target: self.runtime(&target)?.site.name.clone(),
                    }
                    .into());
                }
                self.inner.local.connector.probe().await?;
            }
        }
        let mappings = pg
            .stored_mappings(&source, &target)
            .overlaid_with(&req.mappings);
        self.common_preflight(ctx, &pg, &target, &mappings).await?;
        let params = OperationParameters {
            mappings,
            force: req.force,
            reverse_replication: false,
            requested_by: Some(ctx.clone()),
        };
        self.start(
            ctx,
            &pg,
            OperationType::Failover,
            Some(req.failover_type),
            source,
            target,
            params,
        )
        .await
    }

    /// Starts a failback of a failed-over group to its original primary.
    ///
    /// # Errors
    /// "Protection Group is not in failed_over state" unless `failed_over` /
    /// `failed_over_partial` (or `error` with `force`); `remote site unreachable`; out of
    /// sync; no policy; unmapped networks.
    pub async fn failback(
        &self,
        ctx: &RequestContext,
        pg_ref: &str,
        req: FailbackRequest,
    ) -> Result<Operation, Error> {
        let pg = self.find_pg_shared(ctx, pg_ref).await?;
        self.authorize(rules::PROTECTION_GROUPS_FAILBACK, ctx, &pg)?;
        check_start(&pg.name, pg.status, OperationType::Failback, req.force)?;
        let source = pg.current_primary_site_id.clone();
        let target = pg.current_target_site_id().clone();
        self.ensure_both_reachable().await?;
        if !req.force {
            self.ensure_in_sync(&pg).await?;
        }
        // Default to the reverse of the mappings the failover used.
        let mappings = pg
            .stored_mappings(&target, &source)
            .reversed()
            .overlaid_with(&pg.stored_mappings(&source, &target))
            .overlaid_with(&req.mappings);
        self.common_preflight(ctx, &pg, &target, &mappings).await?;
        let params = OperationParameters {
            mappings,
            force: req.force,
            reverse_replication: req.reverse_replication,
            requested_by: Some(ctx.clone()),
        };
        self.start(
            ctx,
            &pg,
            OperationType::Failback,
            Some(FailoverType::Planned),
            source,
            target,
            params,
        )
        .await
    }

    /// Starts a test failover: clones of the newest replicated snapshots booted on the
    /// other site, production and replication untouched.
    ///
    /// # Errors
    /// Not `active`; no members; test resources already exist; target unreachable; out
    /// of sync; no policy; unmapped networks.
    pub async fn test_failover(
        &self,
        ctx: &RequestContext,
        pg_ref: &str,
        req: TestFailoverRequest,
    ) -> Result<Operation, Error> {
        let pg = self.find_pg_shared(ctx, pg_ref).await?;
        self.authorize(rules::PROTECTION_GROUPS_TEST_FAILOVER, ctx, &pg)?;
        check_start(&pg.name, pg.status, OperationType::TestFailover, false)?;
        let source = pg.current_primary_site_id.clone();
        let target = pg.current_target_site_id().clone();
        self.ensure_both_reachable().await?;
        self.ensure_in_sync(&pg).await?;
        let mappings = pg
            .stored_mappings(&source, &target)
            .overlaid_with(&req.mappings);
        self.common_preflight(ctx, &pg, &target, &mappings).await?;
        let params = OperationParameters {
            mappings,
            force: false,
            reverse_replication: false,
            requested_by: Some(ctx.clone()),
        };
        self.start(
            ctx,
            &pg,
            OperationType::TestFailover,
            None,
            source,
            target,
            params,
        )
        .await
    }

    /// Starts a test cleanup: removes everything the group's test failover created.
    /// Idempotent: with nothing to remove it completes without changes.
    ///
    /// # Errors
    /// Not `active`; another operation unfinished; the test site unreachable.
    pub async fn test_cleanup(
        &self,
        ctx: &RequestContext,
        pg_ref: &str,
    ) -> Result<Operation, Error> {
        let pg = self.find_pg_shared(ctx, pg_ref).await?;
        self.authorize(rules::PROTECTION_GROUPS_TEST_CLEANUP, ctx, &pg)?;
        check_start(&pg.name, pg.status, OperationType::TestCleanup, false)?;
        let source = pg.current_primary_site_id.clone();
        let target = pg
            .test_resources
            .as_ref()
            .and_then(|t| t.site_id.clone())
            .unwrap_or_else(|| pg.current_target_site_id().clone());
        self.runtime(&target)?.connector.probe().await?;
        let params = OperationParameters {
            requested_by: Some(ctx.clone()),
            ..OperationParameters::default()
        };
        self.start(
            ctx,
            &pg,
            OperationType::TestCleanup,
            None,
            source,
            target,
            params,
        )
        .await
    }

    /// Starts a consistency-group sync (`sync_volumes`): reconciles the volumes attached
    /// to the members with the Cinder and array groups, then replicates now.
    ///
    /// # Errors
    /// Wrong status; peer unreachable or out of sync; no policy.
    pub async fn sync_volumes(
        &self,
        ctx: &RequestContext,
        pg_ref: &str,
    ) -> Result<Operation, Error> {
        let pg = self.find_pg_shared(ctx, pg_ref).await?;
        self.authorize(rules::PROTECTION_GROUPS_SYNC_VOLUMES, ctx, &pg)?;
        check_start(&pg.name, pg.status, OperationType::SyncVolumes, false)?;
        self.ensure_modifiable(&pg).await?;
        if self
            .inner
            .local
            .metadata
            .get_policy(&pg.id)
            .await?
            .is_none()
        {
            return Err(Refusal::NoPolicy {
                pg: pg.name.clone(),
            }
            .into());
        }
        let source = pg.current_primary_site_id.clone();
        let target = pg.current_target_site_id().clone();
        let params = OperationParameters {
            requested_by: Some(ctx.clone()),
            ..OperationParameters::default()
        };
        self.start(
            ctx,
            &pg,
            OperationType::SyncVolumes,
            None,
            source,
            target,
            params,
        )
        .await
    }

    async fn ensure_both_reachable(&self) -> Result<(), Error> {
        for rt in [&self.inner.local, &self.inner.peer] {
            if rt.connector.probe().await.is_err() {
                return Err(Refusal::PlannedRemoteUnreachable.into());
            }
        }
        Ok(())
    }

    async fn ensure_in_sync(&self, pg: &crate::model::ProtectionGroup) -> Result<(), Error> {
        if let Some(state) = self.inner.local.metadata.get_sync_state(&pg.id).await? {
            match state.status {
                SyncStatusValue::Failed => {
                    return Err(Refusal::SyncFailed {
                        pg: pg.name.clone(),
                    }
                    .into())
                }
                SyncStatusValue::Unreachable => {
                    return Err(Refusal::OutOfSync {
                        pg: pg.name.clone(),
                        local: pg.version,
                        remote: state.remote_version,
                    }
                    .into())
                }
                _ => {}
            }
        }
        self.ensure_same_version(pg).await
    }

    /// Checks shared by failover, failback and test failover.
    async fn common_preflight(
        &self,
        ctx: &RequestContext,
        pg: &ProtectionGroup,
        target: &SiteId,
        mappings: &ResourceMappings,
    ) -> Result<(), Error> {
        if pg.has_test_resources() {
            return Err(Refusal::TestResourcesExist {
                pg: pg.name.clone(),
            }
            .into());
        }
        if pg.members.is_empty() {
            return Err(Refusal::NoMembers {
                pg: pg.name.clone(),
            }
            .into());
        }
        if self
            .inner
            .local
            .metadata
            .get_policy(&pg.id)
            .await?
            .is_none()
        {
            return Err(Refusal::NoPolicy {
                pg: pg.name.clone(),
            }
            .into());
        }
        self.ensure_no_running_operation(pg).await?;
        let clients = self.clients(target, ctx).await?;
        // Members share networks: check each mapped network once.
        let mut checked = std::collections::BTreeSet::new();
        for member in &pg.members {
            for net in &member.networks {
                let mapped = mapped_network(mappings, net);
                let Some(dst) = mapped else {
                    return Err(Refusal::NoNetworkMapping {
                        network: net.network_name.as_ref().map_or_else(
                            || net.network_id.to_string(),
                            |n| format!("{} ({n})", net.network_id),
                        ),
                    }
                    .into());
                };
                if checked.insert(dst) {
                    resolve_network(&clients, dst).await?;
                }
            }
        }
        let flavors = clients.compute.list_flavors().await?;
        for member in &pg.members {
            let wanted = mapped_flavor(mappings, member);
            if !flavors
                .iter()
                .any(|f| f.id.as_str() == wanted || f.name == wanted)
            {
                return Err(Refusal::NoFlavorMapping {
                    flavor: member
                        .flavor_name
                        .clone()
                        .unwrap_or_else(|| member.flavor_id.to_string()),
                }
                .into());
            }
        }
        Ok(())
    }

    /// Writes the `pending` record and starts the run.
    #[allow(clippy::too_many_arguments)]
    async fn start(
        &self,
        ctx: &RequestContext,
        pg: &ProtectionGroup,
        operation_type: OperationType,
        failover_type: Option<FailoverType>,
        source: SiteId,
        target: SiteId,
        params: OperationParameters,
    ) -> Result<Operation, Error> {
        let _guard = self.inner.start_lock.lock().await;
        // Re-check under the lock: two starts racing on one group must not both pass.
        self.ensure_no_running_operation(pg).await?;
        let id: OperationId = self.inner.ids.next();
        let op = Operation::new(
            id.clone(),
            pg.id.clone(),
            pg.project_id.clone(),
            operation_type,
            failover_type,
            source,
            target,
            params,
            self.inner.clock.now(),
        );
        self.inner.local.operations.insert_operation(&op).await?;
        self.publish(&op);
        tracing::info!(operation = %op.id, pg = %pg.name, kind = %operation_type, user = %ctx.user_id, "operation recorded");
        self.spawn_run(id);
        Ok(op)
    }
}

/// The target network a member network maps to (by id, then by name).
pub(crate) fn mapped_network<'a>(
    mappings: &'a ResourceMappings,
    net: &crate::model::MemberNetwork,
) -> Option<&'a str> {
    mappings
        .networks
        .get(net.network_id.as_str())
        .or_else(|| {
            net.network_name
                .as_ref()
                .and_then(|n| mappings.networks.get(n))
        })
        .map(String::as_str)
}

/// The target flavor (id or name) a member maps to: its mapping by id or name, else its
/// own name.
pub(crate) fn mapped_flavor(mappings: &ResourceMappings, member: &crate::model::Member) -> String {
    mappings
        .flavors
        .get(member.flavor_id.as_str())
        .or_else(|| {
            member
                .flavor_name
                .as_ref()
                .and_then(|n| mappings.flavors.get(n))
        })
        .cloned()
        .or_else(|| member.flavor_name.clone())
        .unwrap_or_else(|| member.flavor_id.to_string())
}

/// A target network by id or name.
pub(crate) async fn resolve_network(
    clients: &SiteClients,
    id_or_name: &str,
) -> Result<crate::ports::Network, Error> {
    match clients
        .networking
        .get_network(&NetworkId::new(id_or_name))
        .await
    {
        Ok(n) => return Ok(n),
        Err(e) if e.kind == BackendErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    clients
        .networking
        .list_networks()
        .await?
        .into_iter()
        .find(|n| n.name == id_or_name)
        .ok_or_else(|| {
            Error::Invalid(format!(
                "mapped network {id_or_name} does not exist on the target site"
            ))
        })
}
