//! Sites, protection groups, members, policies, mappings and metadata sync.

use std::collections::BTreeMap;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::context::RequestContext;
use crate::engine::Protector;
use crate::error::Error;
use crate::ids::{ProtectionGroupId, ServerId, SiteId};
use crate::messages::Refusal;
use crate::model::{
    MaskedPolicy, Member, MemberNetwork, MemberStatus, MemberVolume, Members, OperationStatus,
    PgStatus, ProtectionGroup, ReplicationPolicy, ReplicationType, ResourceMappings, SiteBinding,
    SyncState, SyncStatus, SyncStatusValue,
};
use crate::policy::{rules, Target};
use crate::ports::{
    ArraySide, GroupCreate, ReplicationGroupSpec, SiteClients, TypeReplication, VolumeType,
};

/// What `site validate` checked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteCheck {
    /// `keystone`, `nova`, `cinder`, `neutron`, `replication volume types`.
    pub check: String,
    /// Whether it passed.
    pub ok: bool,
    /// What was found, or why it failed.
    pub detail: String,
}

/// The report of `site validate`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteValidation {
    /// The site.
    pub site: String,
    /// Every check, in order.
    pub checks: Vec<SiteCheck>,
}

impl SiteValidation {
    /// Whether every check passed.
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }
}

/// `site register`.
#[derive(Clone, Debug)]
pub struct SiteRegistration {
    /// Name of an already configured site of this handle (local or peer) to (re)register.
    pub name: String,
    /// Description.
    pub description: String,
}

/// `protection-group create`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateProtectionGroup {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// `async` or `sync`.
    pub replication_type: ReplicationType,
    /// Primary site (name or id); the local site when `None`.
    pub primary_site: Option<String>,
    /// Secondary site (name or id); the peer when `None`.
    pub secondary_site: Option<String>,
    /// Volume type on the primary (name or id); the first replication-enabled type of the
    /// right replication type when `None`.
    pub volume_type: Option<String>,
    /// Volume type on the secondary.
    pub secondary_volume_type: Option<String>,
}

/// `protection-group policy-create`.
#[derive(Clone, Debug)]
pub struct CreatePolicy {
    /// Primary FlashArray URL.
    pub primary_fa_url: String,
    /// Primary FlashArray API token.
    pub primary_fa_api_token: SecretString,
    /// Secondary FlashArray URL.
    pub secondary_fa_url: String,
    /// Secondary FlashArray API token.
    pub secondary_fa_api_token: SecretString,
    /// Array-side group name (defaults to `pg-<name>`).
    pub pure_pg_name: Option<String>,
    /// RPO in minutes (default 15).
    pub rpo_minutes: Option<u32>,
    /// Replication interval in seconds (defaults to the RPO).
    pub replication_interval_seconds: Option<u64>,
}

/// Volumes per Cinder group update and array-side add when members join in a batch.
const ATTACH_CHUNK: usize = 500;

fn sanitize_array_name(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    out.truncate(63);
    out
}

impl Protector {
    fn site_by_ref(&self, r: &str) -> Result<&crate::model::Site, Error> {
        [&self.inner.local.site, &self.inner.peer.site]
            .into_iter()
            .find(|s| s.name == r || s.id.as_str() == r)
            .ok_or_else(|| Error::NotFound {
                kind: "site",
                name: r.to_owned(),
            })
    }

    /// Registers (or re-registers) one of the handle's sites in both sites' stores.
    /// Admin only (`protector:sites:create`).
    ///
    /// # Errors
    /// Forbidden, unknown site, store errors.
    pub async fn register_site(
        &self,
        ctx: &RequestContext,
        reg: &SiteRegistration,
    ) -> Result<crate::model::Site, Error> {
        self.inner
            .policy
            .enforce(rules::SITES_CREATE, ctx, &Target::project(&ctx.project_id))?;
        let mut site = self.site_by_ref(&reg.name)?.clone();
        site.description.clone_from(&reg.description);
        for rt in [&self.inner.local, &self.inner.peer] {
            rt.metadata.put_site(&site).await?;
        }
        Ok(site)
    }

    /// Registered sites, by name.
    ///
    /// # Errors
    /// Forbidden, store errors.
    pub async fn list_sites(&self, ctx: &RequestContext) -> Result<Vec<crate::model::Site>, Error> {
        self.inner
            .policy
            .enforce(rules::SITES_INDEX, ctx, &Target::project(&ctx.project_id))?;
        Ok(self.inner.local.metadata.list_sites().await?)
    }

    /// One registered site by name or id.
    ///
    /// # Errors
    /// Forbidden, not found.
    pub async fn show_site(
        &self,
        ctx: &RequestContext,
        name_or_id: &str,
    ) -> Result<crate::model::Site, Error> {
        self.inner
            .policy
            .enforce(rules::SITES_SHOW, ctx, &Target::project(&ctx.project_id))?;
        self.inner
            .local
            .metadata
            .list_sites()
            .await?
            .into_iter()
            .find(|s| s.name == name_or_id || s.id.as_str() == name_or_id)
            .ok_or_else(|| Error::NotFound {
                kind: "site",
                name: name_or_id.to_owned(),
            })
    }

    /// Checks that a site's Keystone, Nova, Cinder and Neutron answer and that it has
    /// replication-enabled volume types; records the site's status.
    ///
    /// # Errors
    /// Forbidden, unknown site. A failing check is not an error: it is in the report.
    pub async fn validate_site(
        &self,
        ctx: &RequestContext,
        name_or_id: &str,
    ) -> Result<SiteValidation, Error> {
        self.inner.policy.enforce(
            rules::SITES_VALIDATE,
            ctx,
            &Target::project(&ctx.project_id),
        )?;
        let site = self.site_by_ref(name_or_id)?.clone();
        let rt = self.runtime(&site.id)?;
        let mut checks = Vec::new();
        let mut push = |check: &str, r: Result<String, String>| {
            let (ok, detail) = match r {
                Ok(d) => (true, d),
                Err(d) => (false, d),
            };
            checks.push(SiteCheck {
                check: check.to_owned(),
                ok,
                detail,
            });
        };
        let probe = rt.connector.probe().await;
        push(
            "keystone",
            probe
                .as_ref()
                .map(|()| "authenticated".to_owned())
                .map_err(ToString::to_string),
        );
        let clients = match rt.connector.connect(ctx).await {
            Ok(c) => Some(c),
            Err(e) => {
                push("nova", Err(e.to_string()));
                push("cinder", Err(e.to_string()));
                push("neutron", Err(e.to_string()));
                push(
                    "replication volume types",
                    Err("cinder not reachable".into()),
                );
                None
            }
        };
        if let Some(c) = clients {
            push(
                "nova",
                c.compute
                    .list_flavors()
                    .await
                    .map(|f| format!("{} flavors", f.len()))
                    .map_err(|e| e.to_string()),
            );
            let types = c.block_storage.list_volume_types().await;
            push(
                "cinder",
                types
                    .as_ref()
                    .map(|t| format!("{} volume types", t.len()))
                    .map_err(ToString::to_string),
            );
            push(
                "neutron",
                c.networking
                    .list_networks()
                    .await
                    .map(|n| format!("{} networks", n.len()))
                    .map_err(|e| e.to_string()),
            );
            push(
                "replication volume types",
                match types {
                    Ok(t) => {
                        let names: Vec<String> = t
                            .iter()
                            .filter_map(|t| match t.replication() {
                                TypeReplication::Enabled(r) => Some(format!("{} ({r})", t.name)),
                                TypeReplication::Undisclosed => Some(t.name.clone()),
                                TypeReplication::Disabled => None,
                            })
                            .collect();
                        if names.is_empty() {
                            Err("no volume type has replication_enabled='<is> True'".into())
                        } else {
                            Ok(names.join(", "))
                        }
                    }
                    Err(e) => Err(e.to_string()),
                },
            );
        }
        let report = SiteValidation {
            site: site.name.clone(),
            checks,
        };
        let mut updated = site.clone();
        updated.status = if report.checks.first().is_some_and(|c| !c.ok) {
            crate::model::SiteStatus::Unreachable
        } else if report.ok() {
            crate::model::SiteStatus::Active
        } else {
            crate::model::SiteStatus::Error
        };
        updated.last_validated_at = Some(self.inner.clock.now());
        self.inner.local.metadata.put_site(&updated).await?;
        Ok(report)
    }

    /// Creates a protection group: a Cinder generic group on both sites, version 1,
    /// pushed to the peer. The array-side group is created with the replication policy.
    ///
    /// # Errors
    /// Forbidden; the peer unreachable; a duplicate name; no suitable volume type.
    pub async fn create_protection_group(
        &self,
        ctx: &RequestContext,
        req: &CreateProtectionGroup,
    ) -> Result<ProtectionGroup, Error> {
        self.inner.policy.enforce(
            rules::PROTECTION_GROUPS_CREATE,
            ctx,
            &Target::project(&ctx.project_id),
        )?;
        if req.name.trim().is_empty() {
            return Err(Error::Invalid("a protection group needs a name".into()));
        }
        let primary = match &req.primary_site {
            Some(r) => self.site_by_ref(r)?.id.clone(),
            None => self.inner.local.site.id.clone(),
        };
        let secondary = match &req.secondary_site {
            Some(r) => self.site_by_ref(r)?.id.clone(),
            None => self.inner.peer.site.id.clone(),
        };
        if primary == secondary {
            return Err(Error::Invalid(
                "the primary and secondary sites must differ".into(),
            ));
        }
        if !self.peer_reachable().await {
            return Err(Refusal::ModifyRemoteUnreachable.into());
        }
        let existing = self
            .inner
            .local
            .metadata
            .list_protection_groups(Some(&ctx.project_id))
            .await?;
        if existing.iter().any(|p| p.name == req.name) {
            return Err(Refusal::DuplicateName {
                kind: "protection group".into(),
                name: req.name.clone(),
            }
            .into());
        }
        let id: ProtectionGroupId = self.inner.ids.next();
        let mut sites = BTreeMap::new();
        let mut created_groups = Vec::new();
        for (site, wanted) in [
            (&primary, &req.volume_type),
            (&secondary, &req.secondary_volume_type),
        ] {
            let clients = self.clients(site, ctx).await?;
            let types = clients.block_storage.list_volume_types().await?;
            let vt = match wanted {
                Some(w) => types
                    .into_iter()
                    .find(|t| &t.name == w || t.id.as_str() == w)
                    .ok_or_else(|| Error::NotFound {
                        kind: "volume type",
                        name: w.clone(),
                    })?,
                None => pick_volume_type(types, req.replication_type, site)?,
            };
            match vt.replication() {
                TypeReplication::Disabled => {
                    return Err(Refusal::VolumeNotReplicated {
                        volume: "(protection group volume type)".into(),
                        volume_type: vt.name.clone(),
                    }
                    .into())
                }
                TypeReplication::Enabled(rt) if rt != req.replication_type => {
                    return Err(Error::Invalid(format!(
                        "volume type {} has replication_type {rt}, the protection group needs {}",
                        vt.name, req.replication_type
                    )))
                }
                // A named type whose mode the caller cannot see is taken at its word.
                TypeReplication::Enabled(_) | TypeReplication::Undisclosed => {}
            }
            let group = clients
                .block_storage
                .create_group(&GroupCreate {
                    name: format!("protector-{}", req.name),
                    description: Some(format!(
                        "consistency group of protection group {}",
                        req.name
                    )),
                    group_type: "default".into(),
                    volume_types: vec![vt.id.clone()],
                })
                .await;
            let group = match group {
                Ok(g) => g,
                Err(e) => {
                    self.undo_groups(ctx, &created_groups).await;
                    return Err(e.into());
                }
            };
            created_groups.push((site.clone(), group.id.clone()));
            sites.insert(
                site.clone(),
                SiteBinding {
                    volume_type_id: Some(vt.id.clone()),
                    volume_type_name: Some(vt.name.clone()),
                    consistency_group_id: Some(group.id),
                },
            );
        }
        let now = self.inner.clock.now();
        let pg = ProtectionGroup {
            id,
            name: req.name.clone(),
            description: req.description.clone(),
            project_id: ctx.project_id.clone(),
            status: PgStatus::Active,
            replication_type: req.replication_type,
            primary_site_id: primary.clone(),
            secondary_site_id: secondary,
            current_primary_site_id: primary,
            failover_count: 0,
            last_failover_at: None,
            last_replication_at: None,
            version: 1,
            replication_source_site_id: None,
            sites,
            members: Members::default(),
            mappings: Vec::new(),
            stale: BTreeMap::new(),
            test_resources: None,
            created_at: now,
            updated_at: now,
        };
        if let Err(e) = self.inner.local.metadata.put_protection_group(&pg).await {
            self.undo_groups(ctx, &created_groups).await;
            return Err(e.into());
        }
        self.push_pg(&pg).await?;
        Ok(pg)
    }

    async fn undo_groups(&self, ctx: &RequestContext, groups: &[(SiteId, crate::ids::GroupId)]) {
        for (site, gid) in groups.iter().rev() {
            if let Ok(c) = self.clients(site, ctx).await {
                if let Err(e) = c.block_storage.delete_group(gid, false).await {
                    tracing::warn!(site = %site, group = %gid, error = %e, "could not remove a consistency group while undoing a failed create");
                }
            }
        }
    }

    /// Protection groups visible to the caller, by name.
    ///
    /// # Errors
    /// Forbidden, store errors.
    pub async fn list_protection_groups(
        &self,
        ctx: &RequestContext,
    ) -> Result<Vec<ProtectionGroup>, Error> {
        self.inner.policy.enforce(
            rules::PROTECTION_GROUPS_INDEX,
            ctx,
            &Target::project(&ctx.project_id),
        )?;
        let scope = if ctx.is_admin() {
            None
        } else {
            Some(&ctx.project_id)
        };
        Ok(self
            .inner
            .local
            .metadata
            .list_protection_groups(scope)
            .await?)
    }

    /// One protection group by id or name.
    ///
    /// # Errors
    /// Not found (also for another tenant's group), forbidden.
    pub async fn get_protection_group(
        &self,
        ctx: &RequestContext,
        id_or_name: &str,
    ) -> Result<ProtectionGroup, Error> {
        let pg = self.find_pg(ctx, id_or_name).await?;
        self.authorize(rules::PROTECTION_GROUPS_SHOW, ctx, &pg)?;
        Ok(pg)
    }

    /// Deletes a protection group: its Cinder groups on both sites (volumes kept), the
    /// array-side replication group, the policy, and the peer's copy.
    ///
    /// # Errors
    /// Forbidden; not `active`; test resources exist; peer unreachable.
    pub async fn delete_protection_group(
        &self,
        ctx: &RequestContext,
        id_or_name: &str,
    ) -> Result<(), Error> {
        let pg = self.find_pg(ctx, id_or_name).await?;
        self.authorize(rules::PROTECTION_GROUPS_DELETE, ctx, &pg)?;
        if pg.status != PgStatus::Active || pg.has_test_resources() {
            return Err(Refusal::CannotDelete {
                pg: pg.name.clone(),
                status: pg.status.to_string(),
            }
            .into());
        }
        self.ensure_no_running_operation(&pg).await?;
        self.ensure_modifiable(&pg).await?;
        if let Some(policy) = self.inner.local.metadata.get_policy(&pg.id).await? {
            let driver = self.inner.storage.driver(&policy)?;
            driver
                .delete_replication_group(&ReplicationGroupSpec::from_policy(
                    &policy,
                    pg.replication_type,
                ))
                .await?;
        }
        for (site, binding) in &pg.sites {
            if let Some(gid) = &binding.consistency_group_id {
                let c = self.clients(site, ctx).await?;
                // Cinder deletes only empty groups (without deleting volumes): take the
                // volumes out first; they stay as plain volumes.
                match c.block_storage.get_group(gid).await {
                    Ok(group) if !group.volumes.is_empty() => {
                        c.block_storage
                            .update_group(gid, &[], &group.volumes)
                            .await?;
                    }
                    Ok(_) => {}
                    Err(e) if e.kind == crate::error::BackendErrorKind::NotFound => continue,
                    Err(e) => return Err(e.into()),
                }
                match c.block_storage.delete_group(gid, false).await {
                    Ok(()) => {}
                    Err(e) if e.kind == crate::error::BackendErrorKind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        self.inner
            .peer
            .metadata
            .delete_protection_group(&pg.id)
            .await?;
        self.inner
            .local
            .metadata
            .delete_protection_group(&pg.id)
            .await?;
        Ok(())
    }

    pub(crate) async fn ensure_no_running_operation(
        &self,
        pg: &ProtectionGroup,
    ) -> Result<(), Error> {
        match self.has_unfinished(&pg.id).await? {
            Some(op) => Err(Refusal::OperationInProgress {
                pg: pg.name.clone(),
                operation_id: op.id.to_string(),
            }
            .into()),
            None => Ok(()),
        }
    }

    /// Captures a server and its volumes as a new member. Every volume must be on a
    /// replication-enabled type with the group's replication type.
    ///
    /// # Errors
    /// Forbidden; wrong status; peer unreachable; an ineligible volume (named with its
    /// type); the server already a member.
    pub async fn add_member(
        &self,
        ctx: &RequestContext,
        pg_ref: &str,
        server: &str,
    ) -> Result<Member, Error> {
        let mut added = self.add_members(ctx, pg_ref, &[server]).await?;
        added.pop().ok_or_else(|| Error::NotFound {
            kind: "server",
            name: server.to_owned(),
        })
    }

    /// Captures several servers (ids or names) and their volumes as new members, in the
    /// given order, with the checks of [`Protector::add_member`] for each. All or
    /// nothing as far as the group is concerned: every server is looked up and every
    /// volume checked before anything changes, the volumes join the Cinder and
    /// array-side groups in one update each, and the group's metadata gets one version
    /// bump and one push to the peer for the whole batch.
    ///
    /// # Errors
    /// As [`Protector::add_member`]; a server named twice in `servers` is refused as
    /// already a member.
    pub async fn add_members<S: AsRef<str>>(
        &self,
        ctx: &RequestContext,
        pg_ref: &str,
        servers: &[S],
    ) -> Result<Vec<Member>, Error> {
        let mut pg = self.find_pg(ctx, pg_ref).await?;
        self.authorize(rules::MEMBERS_CREATE, ctx, &pg)?;
        // Peer reachability and agreement come first: after an unplanned failover the
        // documented answer is "remote site unreachable" until sync-force.
        self.ensure_modifiable(&pg).await?;
        if !matches!(
            pg.status,
            PgStatus::Active | PgStatus::FailedOver | PgStatus::FailedOverPartial
        ) {
            return Err(Refusal::Busy {
                pg: pg.name.clone(),
                status: pg.status.to_string(),
            }
            .into());
        }
        if servers.is_empty() {
            return Ok(Vec::new());
        }
        let site = pg.current_primary_site_id.clone();
        let clients = self.clients(&site, ctx).await?;
        let mut found = Vec::with_capacity(servers.len());
        for server in servers {
            found.push(self.find_server(&clients, server.as_ref()).await?);
        }
        // Every server of every group, once for the batch.
        let mut taken: std::collections::HashSet<ServerId> = self
            .inner
            .local
            .metadata
            .list_protection_groups(None)
            .await?
            .iter()
            .flat_map(|p| p.members.iter().map(|m| m.instance_id.clone()))
            .collect();
        for srv in &found {
            if !taken.insert(srv.id.clone()) {
                return Err(Refusal::AlreadyMember {
                    server: srv.name.clone(),
                }
                .into());
            }
        }
        let types = clients.block_storage.list_volume_types().await?;
        let now = self.inner.clock.now();
        let mut members = Vec::with_capacity(found.len());
        for srv in found {
            let volumes = self
                .capture_volumes_with(&clients, &pg, &types, &srv.volumes_attached)
                .await?;
            let boot_order = u32::try_from(pg.members.len() + members.len()).unwrap_or(u32::MAX);
            members.push(Member {
                id: self.inner.ids.next(),
                instance_id: srv.id.clone(),
                instance_name: srv.name.clone(),
                status: MemberStatus::Protected,
                boot_order,
                flavor_id: srv.flavor_id.clone(),
                flavor_name: srv.flavor_name.clone(),
                image_id: srv.image_id.clone(),
                networks: srv
                    .addresses
                    .iter()
                    .map(|a| MemberNetwork {
                        network_id: a.network_id.clone(),
                        network_name: Some(a.network_name.clone()),
                        fixed_ip: a.fixed_ip.clone(),
                    })
                    .collect(),
                security_groups: srv.security_groups.clone(),
                key_name: srv.key_name.clone(),
                metadata: srv.metadata.clone(),
                availability_zone: srv.availability_zone.clone(),
                volumes,
                created_at: now,
            });
        }
        let volumes: Vec<MemberVolume> = members
            .iter()
            .flat_map(|m| m.volumes.iter().cloned())
            .collect();
        // Bounded requests: a Cinder group update and an array-side add per chunk.
        for chunk in volumes.chunks(ATTACH_CHUNK) {
            self.attach_member_volumes(ctx, &pg, chunk, true).await?;
        }
        pg.members.extend(members.iter().cloned());
        pg.version += 1;
        pg.updated_at = self.inner.clock.now();
        self.save_pg(&pg).await?;
        Ok(members)
    }

    async fn find_server(
        &self,
        clients: &SiteClients,
        server: &str,
    ) -> Result<crate::ports::Server, Error> {
        match clients.compute.get_server(&ServerId::new(server)).await {
            Ok(s) => return Ok(s),
            Err(e) if e.kind == crate::error::BackendErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        let mut found: Vec<_> = clients
            .compute
            .list_servers()
            .await?
            .into_iter()
            .filter(|s| s.name == server)
            .collect();
        match found.len() {
            0 => Err(Error::NotFound {
                kind: "server",
                name: server.to_owned(),
            }),
            1 => Ok(found.remove(0)),
            _ => Err(Error::Invalid(format!(
                "more than one server is named {server}; use its id"
            ))),
        }
    }

    /// Reads volumes and checks their eligibility for the group.
    pub(crate) async fn capture_volumes(
        &self,
        clients: &SiteClients,
        pg: &ProtectionGroup,
        ids: &[crate::ids::VolumeId],
    ) -> Result<Vec<MemberVolume>, Error> {
        let types = clients.block_storage.list_volume_types().await?;
        self.capture_volumes_with(clients, pg, &types, ids).await
    }

    /// [`Self::capture_volumes`] with the volume types already listed.
    async fn capture_volumes_with(
        &self,
        clients: &SiteClients,
        pg: &ProtectionGroup,
        types: &[VolumeType],
        ids: &[crate::ids::VolumeId],
    ) -> Result<Vec<MemberVolume>, Error> {
        let mut out = Vec::new();
        for (i, vid) in ids.iter().enumerate() {
            let v = clients.block_storage.get_volume(vid).await?;
            let type_name = v.volume_type.clone().unwrap_or_default();
            let vt = types
                .iter()
                .find(|t| t.name == type_name || t.id.as_str() == type_name);
            let group_type = vt.is_some_and(|t| {
                pg.sites.values().any(|b| {
                    b.volume_type_id.as_ref() == Some(&t.id)
                        || b.volume_type_name.as_deref() == Some(t.name.as_str())
                })
            });
            let replication = match vt.map(crate::ports::VolumeType::replication) {
                // The caller cannot see the mode: the group's own type is known to
                // match; any other type cannot be shown to.
                Some(TypeReplication::Undisclosed) if group_type => Some(pg.replication_type),
                Some(TypeReplication::Undisclosed) => {
                    return Err(Refusal::ReplicationTypeMismatch {
                        volume: v.id.to_string(),
                        volume_type: type_name,
                        found: "not visible to this user".into(),
                        expected: pg.replication_type.to_string(),
                    }
                    .into())
                }
                Some(TypeReplication::Enabled(rt)) => Some(rt),
                Some(TypeReplication::Disabled) | None => None,
            };
            match replication {
                None => {
                    return Err(Refusal::VolumeNotReplicated {
                        volume: v.id.to_string(),
                        volume_type: if type_name.is_empty() {
                            "(none)".into()
                        } else {
                            type_name
                        },
                    }
                    .into())
                }
                Some(rt) if rt != pg.replication_type => {
                    return Err(Refusal::ReplicationTypeMismatch {
                        volume: v.id.to_string(),
                        volume_type: type_name,
                        found: rt.to_string(),
                        expected: pg.replication_type.to_string(),
                    }
                    .into())
                }
                Some(_) => {}
            }
            let array_volume_name = v
                .array_volume_name()
                .ok_or_else(|| {
                    Error::Invalid(format!(
                        "volume {} does not report its array volume name (metadata array_volume_name or provider_id)",
                        v.id
                    ))
                })?
                .to_owned();
            let device = v.attachments.first().and_then(|a| a.device.clone());
            out.push(MemberVolume {
                volume_id: v.id.clone(),
                name: v.name.clone(),
                size_gb: v.size_gb,
                bootable: v.bootable && i == 0,
                boot_index: if v.bootable && i == 0 { Some(0) } else { None },
                device,
                volume_type: v.volume_type.clone().unwrap_or_default(),
                array_volume_name,
            });
        }
        if !out.iter().any(|v| v.bootable) {
            if let Some(first) = out.iter_mut().find(|_| true) {
                // Nova lists the root volume first; mark it the boot volume when Cinder did
                // not flag any as bootable.
                first.boot_index = Some(0);
            }
        }
        Ok(out)
    }

    /// Adds (or removes) volumes to the Cinder group on the current site and to the
    /// array-side replication group when a policy exists.
    pub(crate) async fn attach_member_volumes(
        &self,
        ctx: &RequestContext,
        pg: &ProtectionGroup,
        volumes: &[MemberVolume],
        add: bool,
    ) -> Result<(), Error> {
        if volumes.is_empty() {
            return Ok(());
        }
        let site = &pg.current_primary_site_id;
        if let Some(gid) = pg
            .sites
            .get(site)
            .and_then(|b| b.consistency_group_id.clone())
        {
            let clients = self.clients(site, ctx).await?;
            let ids: Vec<_> = volumes.iter().map(|v| v.volume_id.clone()).collect();
            if add {
                clients.block_storage.update_group(&gid, &ids, &[]).await?;
            } else {
                clients.block_storage.update_group(&gid, &[], &ids).await?;
            }
        }
        if let Some(policy) = self.inner.local.metadata.get_policy(&pg.id).await? {
            let driver = self.inner.storage.driver(&policy)?;
            let spec = ReplicationGroupSpec::from_policy(&policy, pg.replication_type);
            let source = self.side_of(pg, site);
            let names: Vec<String> = volumes
                .iter()
                .map(|v| v.array_volume_name.clone())
                .collect();
            if add {
                driver.ensure_replication_group(&spec, source).await?;
                driver.add_volumes(&spec, source, &names).await?;
            } else {
                driver.remove_volumes(&spec, source, &names).await?;
            }
        }
        Ok(())
    }

    /// The array side of a site for a group.
    pub(crate) fn side_of(&self, pg: &ProtectionGroup, site: &SiteId) -> ArraySide {
        if site == &pg.primary_site_id {
            ArraySide::Primary
        } else {
            ArraySide::Secondary
        }
    }

    /// Removes a member; its volumes leave the groups but stay.
    ///
    /// # Errors
    /// Forbidden; wrong status; peer unreachable; not a member.
    pub async fn remove_member(
        &self,
        ctx: &RequestContext,
        pg_ref: &str,
        server: &str,
    ) -> Result<(), Error> {
        let mut pg = self.find_pg(ctx, pg_ref).await?;
        self.authorize(rules::MEMBERS_DELETE, ctx, &pg)?;
        // Peer reachability and agreement come first: after an unplanned failover the
        // documented answer is "remote site unreachable" until sync-force.
        self.ensure_modifiable(&pg).await?;
        if !matches!(
            pg.status,
            PgStatus::Active | PgStatus::FailedOver | PgStatus::FailedOverPartial
        ) {
            return Err(Refusal::Busy {
                pg: pg.name.clone(),
                status: pg.status.to_string(),
            }
            .into());
        }
        let pos = pg
            .members
            .iter()
            .position(|m| {
                m.instance_id.as_str() == server
                    || m.instance_name == server
                    || m.id.as_str() == server
            })
            .ok_or_else(|| Refusal::NotAMember {
                server: server.to_owned(),
            })?;
        let member = pg.members.remove(pos);
        self.attach_member_volumes(ctx, &pg, &member.volumes, false)
            .await?;
        pg.version += 1;
        pg.updated_at = self.inner.clock.now();
        self.save_pg(&pg).await?;
        Ok(())
    }

    /// Creates or replaces the group's replication policy and sets up the array-side
    /// replication group (protection group or pod) with the members' volumes.
    ///
    /// # Errors
    /// Forbidden; peer unreachable; invalid values; array errors.
    pub async fn create_policy(
        &self,
        ctx: &RequestContext,
        pg_ref: &str,
        req: CreatePolicy,
    ) -> Result<MaskedPolicy, Error> {
        let mut pg = self.find_pg(ctx, pg_ref).await?;
        self.authorize(rules::POLICIES_CREATE, ctx, &pg)?;
        self.ensure_modifiable(&pg).await?;
        let rpo = req.rpo_minutes.unwrap_or(15);
        if rpo == 0 {
            return Err(Error::Invalid("rpo_minutes must be at least 1".into()));
        }
        for (what, url) in [
            ("primary_fa_url", &req.primary_fa_url),
            ("secondary_fa_url", &req.secondary_fa_url),
        ] {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(Error::Invalid(format!(
                    "{what} must be an http(s) URL, got '{url}'"
                )));
            }
        }
        let now = self.inner.clock.now();
        let policy = ReplicationPolicy {
            protection_group_id: pg.id.clone(),
            primary_fa_url: req.primary_fa_url,
            primary_fa_api_token: req.primary_fa_api_token,
            secondary_fa_url: req.secondary_fa_url,
            secondary_fa_api_token: req.secondary_fa_api_token,
            pure_pg_name: req
                .pure_pg_name
                .unwrap_or_else(|| sanitize_array_name(&format!("pg-{}", pg.name))),
            rpo_minutes: rpo,
            replication_interval_seconds: req
                .replication_interval_seconds
                .unwrap_or(u64::from(rpo) * 60),
            created_at: now,
            updated_at: now,
        };
        if policy.replication_interval_seconds == 0 {
            return Err(Error::Invalid(
                "the replication interval must be positive".into(),
            ));
        }
        let driver = self.inner.storage.driver(&policy)?;
        let spec = ReplicationGroupSpec::from_policy(&policy, pg.replication_type);
        let source_site = pg.current_primary_site_id.clone();
        let source = self.side_of(&pg, &source_site);
        driver.ensure_replication_group(&spec, source).await?;
        let names: Vec<String> = pg
            .members
            .iter()
            .flat_map(|m| m.volumes.iter().map(|v| v.array_volume_name.clone()))
            .collect();
        if !names.is_empty() {
            driver.add_volumes(&spec, source, &names).await?;
        }
        self.inner.local.metadata.put_policy(&policy).await?;
        self.inner.peer.metadata.put_policy(&policy).await?;
        pg.replication_source_site_id = Some(source_site);
        pg.version += 1;
        pg.updated_at = now;
        self.save_pg(&pg).await?;
        Ok(policy.masked())
    }

    /// The group's policy with tokens masked.
    ///
    /// # Errors
    /// Forbidden; no policy.
    pub async fn show_policy(
        &self,
        ctx: &RequestContext,
        pg_ref: &str,
    ) -> Result<MaskedPolicy, Error> {
        let pg = self.find_pg(ctx, pg_ref).await?;
        self.authorize(rules::POLICIES_SHOW, ctx, &pg)?;
        self.inner
            .local
            .metadata
            .get_policy(&pg.id)
            .await?
            .map(|p| p.masked())
            .ok_or_else(|| {
                Refusal::NoPolicy {
                    pg: pg.name.clone(),
                }
                .into()
            })
    }

    /// Stores mappings for the direction `source` → `target` (site names or ids).
    ///
    /// # Errors
    /// Forbidden; peer unreachable; unknown sites.
    pub async fn set_mappings(
        &self,
        ctx: &RequestContext,
        pg_ref: &str,
        source: &str,
        target: &str,
        mappings: ResourceMappings,
    ) -> Result<ProtectionGroup, Error> {
        let mut pg = self.find_pg(ctx, pg_ref).await?;
        self.authorize(rules::PROTECTION_GROUPS_UPDATE, ctx, &pg)?;
        self.ensure_modifiable(&pg).await?;
        let s = self.site_by_ref(source)?.id.clone();
        let t = self.site_by_ref(target)?.id.clone();
        if !pg.involves(&s) || !pg.involves(&t) || s == t {
            return Err(Error::Invalid(format!(
                "mappings must go between the group's two sites, got {source} -> {target}"
            )));
        }
        pg.set_mappings(s, t, mappings);
        pg.version += 1;
        pg.updated_at = self.inner.clock.now();
        self.save_pg(&pg).await?;
        Ok(pg)
    }

    /// Compares the group's metadata version on both sites.
    ///
    /// # Errors
    /// Forbidden; not found.
    pub async fn sync_status(
        &self,
        ctx: &RequestContext,
        pg_ref: &str,
    ) -> Result<SyncStatus, Error> {
        let pg = self.find_pg(ctx, pg_ref).await?;
        self.authorize(rules::PROTECTION_GROUPS_SYNC_STATUS, ctx, &pg)?;
        let state = self.inner.local.metadata.get_sync_state(&pg.id).await?;
        let reachable = self.peer_reachable().await;
        let (remote_version, status) = if !reachable {
            (
                state.as_ref().and_then(|s| s.remote_version),
                SyncStatusValue::Unreachable,
            )
        } else {
            let remote = self
                .inner
                .peer
                .metadata
                .get_protection_group(&pg.id)
                .await?;
            let rv = remote.map(|r| r.version);
            let status = match (&state, rv) {
                (Some(s), _) if s.status == SyncStatusValue::Failed => SyncStatusValue::Failed,
                (_, Some(v)) => SyncStatus::compare(pg.version, v),
                (_, None) => SyncStatusValue::OutOfSync,
            };
            (rv, status)
        };
        Ok(SyncStatus {
            protection_group_id: pg.id.clone(),
            local_site_id: self.inner.local.site.id.clone(),
            local_version: pg.version,
            remote_site_id: self.inner.peer.site.id.clone(),
            remote_version,
            status,
            last_sync_at: state.and_then(|s| s.last_sync_at),
        })
    }

    /// Pushes the local copy of the group (and its policy) to the peer, clearing an
    /// `UNREACHABLE`/`FAILED` state.
    ///
    /// # Errors
    /// Forbidden; the peer still unreachable (`Cannot modify protection group - remote
    /// site unreachable`).
    pub async fn sync_force(
        &self,
        ctx: &RequestContext,
        pg_ref: &str,
    ) -> Result<SyncStatus, Error> {
        let mut pg = self.find_pg(ctx, pg_ref).await?;
        self.authorize(rules::PROTECTION_GROUPS_SYNC_FORCE, ctx, &pg)?;
        if !self.peer_reachable().await {
            return Err(Refusal::ModifyRemoteUnreachable.into());
        }
        let remote = self
            .inner
            .peer
            .metadata
            .get_protection_group(&pg.id)
            .await?;
        // The newer copy wins: run on the site that was down during an unplanned
        // failover, sync-force adopts the peer's record of it instead of pushing the
        // stale copy over it. Otherwise the pushed copy must be newer than the peer's.
        let adopted = match remote {
            Some(r) if r.version > pg.version => {
                tracing::info!(
                    local = pg.version,
                    remote = r.version,
                    "sync-force: the peer's copy is newer; adopting it"
                );
                pg = r;
                true
            }
            Some(r) => {
                pg.version = pg.version.max(r.version + 1);
                false
            }
            None => false,
        };
        self.fence_stale_servers(ctx, &pg).await?;
        pg.updated_at = self.inner.clock.now();
        self.inner.local.metadata.put_protection_group(&pg).await?;
        self.inner.peer.metadata.put_protection_group(&pg).await?;
        let (from, to) = if adopted {
            (&self.inner.peer, &self.inner.local)
        } else {
            (&self.inner.local, &self.inner.peer)
        };
        if let Some(policy) = from.metadata.get_policy(&pg.id).await? {
            to.metadata.put_policy(&policy).await?;
        }
        self.inner
            .local
            .metadata
            .put_sync_state(&SyncState {
                protection_group_id: pg.id.clone(),
                remote_version: Some(pg.version),
                status: SyncStatusValue::InSync,
                last_sync_at: Some(self.inner.clock.now()),
                last_sync_error: None,
            })
            .await?;
        self.inner
            .peer
            .metadata
            .put_sync_state(&SyncState {
                protection_group_id: pg.id.clone(),
                remote_version: Some(pg.version),
                status: SyncStatusValue::InSync,
                last_sync_at: Some(self.inner.clock.now()),
                last_sync_error: None,
            })
            .await?;
        self.sync_status(ctx, pg_ref).await
    }

    /// Stops servers an unplanned failover left behind on a site that has come back, so
    /// the old copies never run beside the recovered ones.
    async fn fence_stale_servers(
        &self,
        ctx: &RequestContext,
        pg: &ProtectionGroup,
    ) -> Result<(), Error> {
        for (site, stale) in &pg.stale {
            if site == &pg.current_primary_site_id || stale.servers.is_empty() {
                continue;
            }
            let clients = self.clients(site, ctx).await?;
            for id in &stale.servers {
                match clients.compute.get_server(id).await {
                    Ok(s) if s.status == crate::ports::ServerStatus::Active => {
                        clients.compute.stop_server(id).await?;
                        clients
                            .compute
                            .wait_for_status(
                                id,
                                crate::ports::ServerStatus::Shutoff,
                                &self.inner.config.server_wait,
                            )
                            .await?;
                    }
                    Ok(_) => {}
                    Err(e) if e.kind == crate::error::BackendErrorKind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }

    /// Whether an operation of the group is unfinished on the local site.
    /// An unfinished operation on the group, run by this site or (when the peer
    /// answers) by the peer: operations on one group are serialised across both sites.
    /// A peer that does not answer cannot run anything that matters here (an unplanned
    /// failover is exactly the case where its records are out of reach).
    pub(crate) async fn has_unfinished(
        &self,
        pg: &ProtectionGroupId,
    ) -> Result<Option<crate::model::Operation>, Error> {
        let filter = crate::model::OperationFilter {
            protection_group: Some(crate::model::PgRef::Id(pg.clone())),
            ..Default::default()
        };
        let unfinished = |o: &crate::model::Operation| {
            matches!(
                o.status,
                OperationStatus::Pending | OperationStatus::Running | OperationStatus::RollingBack
            )
        };
        let local = self.inner.local.operations.list_operations(&filter).await?;
        if let Some(op) = local.into_iter().find(unfinished) {
            return Ok(Some(op));
        }
        if !self.peer_reachable().await {
            return Ok(None);
        }
        match self.inner.peer.operations.list_operations(&filter).await {
            Ok(ops) => Ok(ops.into_iter().find(unfinished)),
            Err(e) => {
                tracing::warn!(error = %e, "could not read the peer's operations");
                Ok(None)
            }
        }
    }
}

/// The replication-enabled volume type of `rt` among `types`, for a protection group
/// created without one. Prefers a type whose mode is visible; a single type whose
/// mode the caller cannot see is taken; several such types need the caller to name one.
fn pick_volume_type(
    types: Vec<VolumeType>,
    rt: ReplicationType,
    site: &SiteId,
) -> Result<VolumeType, Error> {
    let mut undisclosed = Vec::new();
    for t in types {
        match t.replication() {
            TypeReplication::Enabled(found) if found == rt => return Ok(t),
            TypeReplication::Undisclosed => undisclosed.push(t),
            _ => {}
        }
    }
    match undisclosed.len() {
        0 => Err(Error::Invalid(format!(
            "site {site} has no replication-enabled volume type with replication_type {rt}"
        ))),
        1 => Ok(undisclosed.remove(0)),
        _ => Err(Error::Invalid(format!(
            "site {site} has several replication-enabled volume types whose replication_type this user cannot see ({}): name the {rt} one with --volume-type (and --secondary-volume-type)",
            undisclosed
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}
