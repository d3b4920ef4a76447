//! Invariants checked after a scenario.
//!
//! [`crate::SimWorld::check_invariants`] looks at both clouds and both arrays and
//! reports, as sentences, everything that breaks the simulator's invariants:
//!
//! - **No leaks.** Every server, Cinder volume and (not destroyed) array volume must be
//!   owned: by a protection group (its members on the site it runs on, its stale and
//!   test resources), by a workload made with [`crate::SimWorld::create_workload`], by
//!   an operation (a `created` journal entry, an array volume's `intent` entry or a
//!   `managed` or `booted` note naming its site, not followed by `released`, or
//!   `result_data.instances_created`), by the allow-list, or — for an array volume —
//!   by backing a Cinder volume of that site.
//! - **Status matches placement.** `active` groups run on their primary site,
//!   `failed_over` ones on their secondary; every protected member's server is
//!   `ACTIVE` on `current_primary_site_id`, and no stale server of the group runs.
//! - **Operations match their journals.** Every step an operation record lists as
//!   completed or failed has the matching journal entry (when its journal is given).
//! - **Bounded data loss.** For each stated pair, writes on the source not present on
//!   the target are within the stated bound.
//!
//! Sites in protection groups and journals are matched by [`crate::SiteInfo::site_id`]
//! or by site name.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use protector_core::ids::{ServerId, SiteId, VolumeId};
use protector_core::model::{
    JournalEntry, JournalEvent, Operation, PgStatus, ProtectionGroup, ResourceRef,
};
use protector_core::ports::ServerStatus;

use crate::error::SimError;
use crate::site::SimSite;
use crate::world::SimWorld;

/// A source/target pair whose lost writes are bounded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataLossCheck {
    /// Site of the source array.
    pub source_site: SimSite,
    /// Source array volume.
    pub source_volume: String,
    /// The source's write sequence at the moment of failover, if the caller captured
    /// it; otherwise the source volume's sequence now.
    pub source_seq: Option<u64>,
    /// Site of the target array.
    pub target_site: SimSite,
    /// Target array volume or volume snapshot.
    pub target: String,
    /// At most this many writes may be missing on the target.
    pub max_writes_lost: u64,
}

/// What the checker needs to know besides the world.
#[derive(Clone, Debug, Default)]
pub struct InvariantInput {
    /// The protection groups (either site's copy; the highest `version` of an id wins).
    pub protection_groups: Vec<ProtectionGroup>,
    /// Journal entries of the operations of both sites.
    pub journals: Vec<JournalEntry>,
    /// Operation records of both sites (for `result_data.instances_created`).
    pub operations: Vec<Operation>,
    /// Resources that may exist without an owner (test fixtures).
    pub allow: Vec<ResourceRef>,
    /// Pairs whose data loss is bounded.
    pub data_loss: Vec<DataLossCheck>,
}

/// One broken invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Violation {
    /// A server nobody owns.
    LeakedServer {
        /// Site.
        site: SimSite,
        /// Server id.
        id: ServerId,
        /// Name.
        name: String,
        /// Status.
        status: String,
    },
    /// A Cinder volume nobody owns.
    LeakedVolume {
        /// Site.
        site: SimSite,
        /// Volume id.
        id: VolumeId,
        /// Name.
        name: String,
        /// Status.
        status: String,
    },
    /// An array volume nobody owns.
    LeakedArrayVolume {
        /// Site of the array.
        site: SimSite,
        /// Array name.
        array: String,
        /// Volume name.
        name: String,
    },
    /// A protection group whose status does not match where its workload runs.
    StatusMismatch {
        /// Group name.
        group: String,
        /// The explanation.
        detail: String,
    },
    /// More writes lost than allowed.
    DataLoss {
        /// Source volume.
        source: String,
        /// Target volume or snapshot.
        target: String,
        /// Writes lost.
        lost: u64,
        /// The bound.
        allowed: u64,
    },
    /// An operation record that its journal does not back.
    OperationJournal {
        /// The operation.
        operation: String,
        /// The explanation.
        detail: String,
    },
    /// The checker could not read something it needed.
    Unreadable {
        /// What and why.
        detail: String,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LeakedServer { site, id, name, status } => write!(
                f,
                "server {name} ({id}, {status}) on {site} is leaked: no protection group, workload, operation or allow-list owns it"
            ),
            Self::LeakedVolume { site, id, name, status } => write!(
                f,
                "Cinder volume {name} ({id}, {status}) on {site} is leaked: no protection group, workload, operation or allow-list owns it"
            ),
            Self::LeakedArrayVolume { site, array, name } => write!(
                f,
                "array volume {name} on {array} ({site}) is leaked: it backs no Cinder volume and nothing else owns it"
            ),
            Self::StatusMismatch { group, detail } => write!(f, "protection group {group}: {detail}"),
            Self::DataLoss { source, target, lost, allowed } => write!(
                f,
                "{lost} writes of {source} are missing on {target}, more than the {allowed} allowed"
            ),
            Self::OperationJournal { operation, detail } => write!(f, "operation {operation}: {detail}"),
            Self::Unreadable { detail } => write!(f, "cannot check invariants: {detail}"),
        }
    }
}

#[derive(Default)]
struct Owned {
    servers: BTreeSet<ServerId>,
    volumes: BTreeSet<VolumeId>,
    array_volumes: BTreeSet<String>,
}

impl SimWorld {
    fn sim_site(&self, id: &SiteId) -> Option<SimSite> {
        self.site_by_id(id)
    }

    fn own(&self, owned: &mut [Owned; 2], r: &ResourceRef) {
        match r {
            ResourceRef::Server { site_id, id } | ResourceRef::StoppedServer { site_id, id } => {
                if let Some(s) = self.sim_site(site_id) {
                    owned[s.index()].servers.insert(id.clone());
                }
            }
            ResourceRef::Volume { site_id, id } => {
                if let Some(s) = self.sim_site(site_id) {
                    owned[s.index()].volumes.insert(id.clone());
                }
            }
            ResourceRef::ArrayVolume { site_id, name } => {
                if let Some(s) = self.sim_site(site_id) {
                    owned[s.index()].array_volumes.insert(name.clone());
                }
            }
            _ => {}
        }
    }

    fn disown(&self, owned: &mut [Owned; 2], r: &ResourceRef) {
        match r {
            // Releasing a stopped server means restarting it, not deleting it.
            ResourceRef::Server { site_id, id } => {
                if let Some(s) = self.sim_site(site_id) {
                    owned[s.index()].servers.remove(id);
                }
            }
            ResourceRef::Volume { site_id, id } => {
                if let Some(s) = self.sim_site(site_id) {
                    owned[s.index()].volumes.remove(id);
                }
            }
            ResourceRef::ArrayVolume { site_id, name } => {
                if let Some(s) = self.sim_site(site_id) {
                    owned[s.index()].array_volumes.remove(name);
                }
            }
            _ => {}
        }
    }

    fn latest_groups(input: &InvariantInput) -> Vec<ProtectionGroup> {
        let mut by_id: BTreeMap<String, ProtectionGroup> = BTreeMap::new();
        for pg in &input.protection_groups {
            let newer = by_id
                .get(pg.id.as_str())
                .is_none_or(|old| pg.version > old.version);
            if newer {
                by_id.insert(pg.id.as_str().to_owned(), pg.clone());
            }
        }
        by_id.into_values().collect()
    }

    fn owned_resources(&self, input: &InvariantInput, groups: &[ProtectionGroup]) -> [Owned; 2] {
        let mut owned = [Owned::default(), Owned::default()];
        for w in self.workloads() {
            let o = &mut owned[w.site.index()];
            for s in &w.servers {
                o.servers.insert(s.id.clone());
                for v in s.volumes() {
                    o.volumes.insert(v.id.clone());
                    o.array_volumes.insert(v.array_volume.clone());
                }
            }
        }
        for pg in groups {
            if let Some(site) = self.sim_site(&pg.current_primary_site_id) {
                let o = &mut owned[site.index()];
                for m in &pg.members {
                    o.servers.insert(m.instance_id.clone());
                    for v in &m.volumes {
                        o.volumes.insert(v.volume_id.clone());
                    }
                }
            }
            // A member's array volume is owned on both arrays: a stretched pod holds
            // the same volume on each.
            for o in owned.iter_mut() {
                for v in pg.members.iter().flat_map(|m| m.volumes.iter()) {
                    o.array_volumes
                        .insert(base_name(&v.array_volume_name).to_owned());
                }
            }
            for (site_id, stale) in &pg.stale {
                if let Some(site) = self.sim_site(site_id) {
                    let o = &mut owned[site.index()];
                    o.servers.extend(stale.servers.iter().cloned());
                    o.volumes.extend(stale.volumes.iter().cloned());
                }
            }
            if let Some(t) = &pg.test_resources {
                if let Some(site) = t.site_id.as_ref().and_then(|s| self.sim_site(s)) {
                    let o = &mut owned[site.index()];
                    o.servers.extend(t.servers.iter().cloned());
                    o.volumes.extend(t.volumes.iter().cloned());
                    o.array_volumes.extend(t.array_volumes.iter().cloned());
                }
            }
        }
        let mut journal: Vec<&JournalEntry> = input.journals.iter().collect();
        journal.sort_by(|a, b| {
            (a.operation_id.as_str(), a.seq).cmp(&(b.operation_id.as_str(), b.seq))
        });
        for e in journal {
            match &e.event {
                JournalEvent::Created { resource } => self.own(&mut owned, resource),
                // The engine journals an array copy's intent only (the Cinder volume
                // managed from it gets the `created` entry): until released, the
                // operation owns it.
                JournalEvent::Intent {
                    resource: resource @ ResourceRef::ArrayVolume { .. },
                } => self.own(&mut owned, resource),
                // A `managed` or `booted` note naming its site records the volume or
                // server as created, as a `created` entry does.
                JournalEvent::Note { data } => {
                    if let Some(resource) = created_by_note(&data.to_value()) {
                        self.own(&mut owned, &resource);
                    }
                }
                JournalEvent::Released { resource } => self.disown(&mut owned, resource),
                _ => {}
            }
        }
        for op in &input.operations {
            let Some(site) = self.sim_site(&op.target_site_id) else {
                continue;
            };
            if let Some(list) = op
                .result_data
                .get("instances_created")
                .and_then(|v| v.as_array())
            {
                for inst in list {
                    if let Some(id) = inst.get("id").and_then(|v| v.as_str()) {
                        owned[site.index()].servers.insert(ServerId::new(id));
                    }
                }
            }
        }
        for r in &input.allow {
            self.own(&mut owned, r);
        }
        owned
    }

    fn check_leaks(&self, owned: &[Owned; 2], out: &mut Vec<Violation>) {
        // A volume in a stretched pod is one volume on both arrays: a Cinder volume on
        // either site backing it owns both copies.
        let pod_backing: BTreeSet<String> = SimSite::BOTH
            .iter()
            .flat_map(|site| {
                self.inner.with_cloud(*site, |c| {
                    c.volumes
                        .values()
                        .filter_map(|v| v.array_volume_name().map(|n| base_name(n).to_owned()))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for site in SimSite::BOTH {
            let o = &owned[site.index()];
            let (servers, volumes) = self.inner.with_cloud(site, |c| {
                (
                    c.servers
                        .values()
                        .map(|s| s.server.clone())
                        .collect::<Vec<_>>(),
                    c.volumes.values().cloned().collect::<Vec<_>>(),
                )
            });
            for s in servers.into_iter().filter(|s| !o.servers.contains(&s.id)) {
                out.push(Violation::LeakedServer {
                    site,
                    id: s.id,
                    name: s.name,
                    status: s.status.to_string(),
                });
            }
            let backing: BTreeSet<String> = volumes
                .iter()
                .filter_map(|v| v.array_volume_name().map(str::to_owned))
                .collect();
            for v in volumes.into_iter().filter(|v| !o.volumes.contains(&v.id)) {
                out.push(Violation::LeakedVolume {
                    site,
                    id: v.id,
                    name: v.name,
                    status: v.status.to_string(),
                });
            }
            let owns = |name: &str| {
                [name, base_name(name)]
                    .iter()
                    .any(|n| o.array_volumes.contains(*n) || backing.contains(*n))
                    || (name.contains("::") && pod_backing.contains(base_name(name)))
            };
            for name in self.inner.bridge_live_volumes(site) {
                if !owns(&name) {
                    out.push(Violation::LeakedArrayVolume {
                        site,
                        array: site.array_name().to_owned(),
                        name,
                    });
                }
            }
        }
    }

    fn check_placement(&self, groups: &[ProtectionGroup], out: &mut Vec<Violation>) {
        for pg in groups {
            let mismatch = |detail: String| Violation::StatusMismatch {
                group: pg.name.clone(),
                detail,
            };
            // A partial result (of a failover or of a failback) may leave the workload
            // on either site: only its members are checked where it says it runs.
            let expected_primary = match pg.status {
                PgStatus::Active => Some(&pg.primary_site_id),
                PgStatus::FailedOver => Some(&pg.secondary_site_id),
                PgStatus::FailedOverPartial => None,
                _ => continue,
            };
            if let Some(expected) = expected_primary {
                if &pg.current_primary_site_id != expected {
                    out.push(mismatch(format!(
                        "status is {} but current_primary_site_id is {} instead of {}",
                        pg.status, pg.current_primary_site_id, expected
                    )));
                }
            }
            let Some(site) = self.sim_site(&pg.current_primary_site_id) else {
                out.push(mismatch(format!(
                    "current_primary_site_id {} is not a simulated site",
                    pg.current_primary_site_id
                )));
                continue;
            };
            let statuses: BTreeMap<ServerId, ServerStatus> = self.inner.with_cloud(site, |c| {
                c.servers
                    .values()
                    .map(|s| (s.server.id.clone(), s.server.status.clone()))
                    .collect()
            });
            for m in pg
                .members
                .iter()
                .filter(|m| m.status == protector_core::model::MemberStatus::Protected)
            {
                match statuses.get(&m.instance_id) {
                    Some(ServerStatus::Active) => {}
                    Some(other) => out.push(mismatch(format!(
                        "status is {} but member {} (server {}) is {} on {}, not ACTIVE",
                        pg.status, m.instance_name, m.instance_id, other, site
                    ))),
                    None => out.push(mismatch(format!(
                        "status is {} but member {} (server {}) does not exist on {}",
                        pg.status, m.instance_name, m.instance_id, site
                    ))),
                }
            }
            for (stale_site_id, stale) in &pg.stale {
                let Some(stale_site) = self.sim_site(stale_site_id) else {
                    continue;
                };
                let running: Vec<ServerId> = self.inner.with_cloud(stale_site, |c| {
                    stale
                        .servers
                        .iter()
                        .filter(|id| {
                            c.servers
                                .get(*id)
                                .is_some_and(|s| s.server.status == ServerStatus::Active)
                        })
                        .cloned()
                        .collect()
                });
                for id in running {
                    out.push(mismatch(format!(
                        "runs on {site} but its stale server {id} is still ACTIVE on {stale_site}"
                    )));
                }
            }
        }
    }

    fn check_data_loss(&self, input: &InvariantInput, out: &mut Vec<Violation>) {
        for check in &input.data_loss {
            let source = match check.source_seq {
                Some(seq) => Ok(seq),
                None => self
                    .inner
                    .bridge_seq(check.source_site, &check.source_volume),
            };
            let target = self.inner.bridge_seq(check.target_site, &check.target);
            match (source, target) {
                (Ok(s), Ok(t)) => {
                    let lost = s.saturating_sub(t);
                    if lost > check.max_writes_lost {
                        out.push(Violation::DataLoss {
                            source: check.source_volume.clone(),
                            target: check.target.clone(),
                            lost,
                            allowed: check.max_writes_lost,
                        });
                    }
                }
                (Err(e), _) | (_, Err(e)) => out.push(Violation::Unreadable {
                    detail: format!(
                        "write sequence of {} or {}: {e}",
                        check.source_volume, check.target
                    ),
                }),
            }
        }
    }

    fn check_operations(input: &InvariantInput, out: &mut Vec<Violation>) {
        for op in &input.operations {
            let events: Vec<&JournalEvent> = input
                .journals
                .iter()
                .filter(|e| e.operation_id == op.id)
                .map(|e| &e.event)
                .collect();
            if events.is_empty() {
                continue;
            }
            for step in &op.steps_completed {
                let journaled = events
                    .iter()
                    .any(|e| matches!(e, JournalEvent::StepCompleted { step: s } if s == step));
                if !journaled {
                    out.push(Violation::OperationJournal {
                        operation: op.id.to_string(),
                        detail: format!("records step {step} as completed but its journal has no step_completed entry for it"),
                    });
                }
            }
            for step in &op.steps_failed {
                let journaled = events
                    .iter()
                    .any(|e| matches!(e, JournalEvent::StepFailed { step: s, .. } if s == step));
                if !journaled {
                    out.push(Violation::OperationJournal {
                        operation: op.id.to_string(),
                        detail: format!("records step {step} as failed but its journal has no step_failed entry for it"),
                    });
                }
            }
        }
    }

    /// Checks the invariants (see the module docs); every violation is a sentence.
    ///
    /// # Errors
    /// The violations found.
    pub fn check_invariants(&self, input: &InvariantInput) -> Result<(), Vec<Violation>> {
        let groups = Self::latest_groups(input);
        let owned = self.owned_resources(input, &groups);
        let mut out = Vec::new();
        self.check_leaks(&owned, &mut out);
        self.check_placement(&groups, &mut out);
        self.check_data_loss(input, &mut out);
        Self::check_operations(input, &mut out);
        if out.is_empty() {
            Ok(())
        } else {
            Err(out)
        }
    }

    /// Writes present on `source_volume` (now) but missing on `target` (an array volume
    /// or volume snapshot on the other site): the data a failover to `target` loses.
    ///
    /// # Errors
    /// [`SimError::Backend`] when either name does not exist.
    pub fn writes_lost(
        &self,
        source_site: SimSite,
        source_volume: &str,
        target_site: SimSite,
        target: &str,
    ) -> Result<u64, SimError> {
        let s = self.inner.bridge_seq(source_site, source_volume)?;
        let t = self.inner.bridge_seq(target_site, target)?;
        Ok(s.saturating_sub(t))
    }

    /// Every server of a site as an admin sees it, read directly: no call is counted,
    /// no latency or fault applies (for assertions and reports).
    pub fn servers(&self, site: SimSite) -> Vec<protector_core::ports::Server> {
        self.inner.with_cloud(site, |c| {
            c.servers.values().map(|s| s.server.clone()).collect()
        })
    }

    /// Every Cinder volume of a site as an admin sees it, read directly like
    /// [`Self::servers`].
    pub fn volumes(&self, site: SimSite) -> Vec<protector_core::ports::Volume> {
        self.inner
            .with_cloud(site, |c| c.volumes.values().cloned().collect())
    }

    /// Names of the array volumes of a site's array that are not destroyed, read
    /// directly like [`Self::servers`].
    pub fn array_volumes(&self, site: SimSite) -> Vec<String> {
        self.inner.bridge_live_volumes(site)
    }

    /// The write sequence of an array volume or volume snapshot on a site's array.
    ///
    /// # Errors
    /// [`SimError::Backend`] when the name does not exist.
    pub fn write_seq(&self, site: SimSite, name: &str) -> Result<u64, SimError> {
        Ok(self.inner.bridge_seq(site, name)?)
    }
}

/// A volume's name without its pod prefix (`pod::vol` → `vol`).
fn base_name(name: &str) -> &str {
    name.rsplit("::").next().unwrap_or(name)
}

/// The resource a journal note records as created: the Cinder volume of a `managed`
/// note or the server of a `booted` note, when the note names its site.
fn created_by_note(data: &serde_json::Value) -> Option<ResourceRef> {
    let site_id = SiteId::new(data.get("site")?.as_str()?);
    match data.get("note")?.as_str()? {
        "managed" => Some(ResourceRef::Volume {
            site_id,
            id: VolumeId::new(data.get("target_volume")?.as_str()?),
        }),
        "booted" => Some(ResourceRef::Server {
            site_id,
            id: ServerId::new(data.get("server")?.as_str()?),
        }),
        _ => None,
    }
}
