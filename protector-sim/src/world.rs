//! The simulated world: two OpenStack sites, two FlashArrays, one seed.
//!
//! # Expected flow
//! Build a world ([`SimWorld::builder`]), create a workload
//! ([`SimWorld::create_workload`]), hand the engine per-site clients
//! ([`SimWorld::clients`]), the arrays ([`SimWorld::array`]) and the step hook
//! ([`SimWorld::step_hook`]); inject faults with the verbs; let virtual time run; check
//! [`SimWorld::check_invariants`] and compare [`SimWorld::digest`]s.
//!
//! # Guarantees
//! - Every id, token and probability derives from the seed; both inventories are
//!   identical for a seed whatever the scenario does.
//! - State changes happen either inside a call or in a background completion after the
//!   profile's latency; both are logged with their virtual time.
//! - No lock is held across an `.await`.
//!
//! # Assumptions
//! - Calls run on a tokio runtime; simulations use paused time on the current-thread
//!   runtime, where task scheduling (and so the digest) is reproducible.
//!
//! # Caveats
//! - Tenants `tenant-a` (user `alice`) and `tenant-b` (`bob`) and the `admin` user map
//!   to the same project and user ids on both sites; networks, flavors, images and
//!   volume types have the same names and different ids.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use protector_core::ids::{FlavorId, ImageId, NetworkId, ProjectId, SiteId, UserId, VolumeTypeId};
use protector_core::model::OperationType;
use protector_core::ports::{
    Flavor, Network, SiteClients, StepBoundary, StepHook, VolumeService, VolumeType,
};
use protector_core::{BackendError, Clock, IdGenerator, RequestContext, TokioClock};
use protector_purestorage::FlashArray;

use crate::call::CallKind;
use crate::cloud::state::{Caller, CloudState, ImageInfo, NetworkRec, ProjectInfo, UserInfo};
use crate::cloud::{SimBlockStorage, SimCompute, SimNetworking};
use crate::crash::{CrashGuard, CrashHook};
use crate::error::SimError;
use crate::events::{EventLog, LineDigest, SimEvent};
use crate::fault::{FaultGuard, FaultRule, FaultTable};
use crate::flasharray::ArrayFabric;
use crate::gate::Gate;
use crate::profile::LatencyProfile;
use crate::seed::derive_seed;
use crate::site::SimSite;
use crate::stats::CallStats;
use crate::workload::Workload;

/// Name of the admin project and user on both sites.
pub const ADMIN: &str = "admin";
/// The tenant projects every world has, with their member users.
pub const TENANTS: [(&str, &str); 2] = [("tenant-a", "alice"), ("tenant-b", "bob")];
/// Flavors every site has: name, vCPUs, RAM (MiB), disk (GiB).
pub const FLAVORS: [(&str, u32, u64, u64); 4] = [
    ("m1.tiny", 1, 512, 1),
    ("m1.small", 1, 2048, 20),
    ("m1.medium", 2, 4096, 40),
    ("m1.large", 4, 8192, 80),
];
/// Images every site has.
pub const IMAGES: [&str; 2] = ["cirros-0.6.2", "ubuntu-22.04"];
/// The async-replicated volume type.
pub const TYPE_ASYNC: &str = "replicated-async";
/// The sync-replicated volume type.
pub const TYPE_SYNC: &str = "replicated-sync";
/// The non-replicated volume type.
pub const TYPE_PLAIN: &str = "standard";
/// The generic group type whose groups are consistency groups.
pub const GROUP_TYPE_CG: &str = "consistency-group";
/// The Cinder backend name of the Pure driver on both sites.
pub const BACKEND: &str = "pure";

/// What the world knows about one site: ids, names, endpoints and credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiteInfo {
    /// Which site.
    pub site: SimSite,
    /// The id to register the site under.
    pub site_id: SiteId,
    /// `site-a` / `site-b`.
    pub name: String,
    /// Keystone URL (`https://keystone.site-a.sim.invalid/v3`).
    pub auth_url: String,
    /// Region.
    pub region_name: String,
    /// The site's FlashArray name (`array-a`).
    pub array_name: String,
    /// Its management URL (`https://array-a.sim.invalid`).
    pub array_url: String,
    /// Its API token.
    pub array_token: String,
    /// The `cinder-volume` service host (`site-a@pure`).
    pub service_host: String,
    /// The host manage targets (`site-a@pure#pure`).
    pub volume_host: String,
    /// Project ids by name.
    pub projects: BTreeMap<String, ProjectId>,
    /// User ids by name.
    pub users: BTreeMap<String, UserId>,
    /// Network ids by name.
    pub networks: BTreeMap<String, NetworkId>,
    /// Flavor ids by name.
    pub flavors: BTreeMap<String, FlavorId>,
    /// Image ids by name.
    pub images: BTreeMap<String, ImageId>,
    /// Volume type ids by name.
    pub volume_types: BTreeMap<String, VolumeTypeId>,
}

impl SiteInfo {
    fn lookup<T: Clone>(
        map: &BTreeMap<String, T>,
        kind: &'static str,
        name: &str,
        site: SimSite,
    ) -> Result<T, SimError> {
        map.get(name).cloned().ok_or_else(|| SimError::Unknown {
            kind,
            name: name.to_owned(),
            site: site.name(),
        })
    }

    /// A project id by name.
    ///
    /// # Errors
    /// [`SimError::Unknown`].
    pub fn project_id(&self, name: &str) -> Result<ProjectId, SimError> {
        Self::lookup(&self.projects, "project", name, self.site)
    }

    /// A network id by name.
    ///
    /// # Errors
    /// [`SimError::Unknown`].
    pub fn network_id(&self, name: &str) -> Result<NetworkId, SimError> {
        Self::lookup(&self.networks, "network", name, self.site)
    }

    /// A flavor id by name.
    ///
    /// # Errors
    /// [`SimError::Unknown`].
    pub fn flavor_id(&self, name: &str) -> Result<FlavorId, SimError> {
        Self::lookup(&self.flavors, "flavor", name, self.site)
    }

    /// A volume type id by name.
    ///
    /// # Errors
    /// [`SimError::Unknown`].
    pub fn volume_type_id(&self, name: &str) -> Result<VolumeTypeId, SimError> {
        Self::lookup(&self.volume_types, "volume type", name, self.site)
    }
}

/// Builds a [`SimWorld`].
#[derive(Clone, Debug)]
pub struct SimWorldBuilder {
    seed: u64,
    profile: LatencyProfile,
}

impl SimWorldBuilder {
    /// The world seed (default 0): every id, token and probability derives from it.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The latency profile (default [`LatencyProfile::zero`]).
    pub fn profile(mut self, profile: LatencyProfile) -> Self {
        self.profile = profile;
        self
    }

    /// Builds the world: both clouds populated, both arrays added and connected, the
    /// fabric's transfer time and call gate set from the profile. Call it inside a
    /// tokio runtime (with paused time for simulations).
    ///
    /// # Errors
    /// [`SimError::Backend`] if the fabric refuses to set up the arrays.
    pub fn build(self) -> Result<SimWorld, SimError> {
        SimWorld::build(self)
    }
}

pub(crate) struct WorldInner {
    pub(crate) seed: u64,
    pub(crate) clock: Arc<TokioClock>,
    pub(crate) log: Arc<EventLog>,
    pub(crate) gate: Arc<Gate>,
    pub(crate) faults: Arc<FaultTable>,
    pub(crate) hook: Arc<CrashHook>,
    pub(crate) clouds: [Mutex<CloudState>; 2],
    pub(crate) sites: [SiteInfo; 2],
    pub(crate) fabric: ArrayFabric,
    pub(crate) arrays: [Arc<dyn FlashArray>; 2],
    pub(crate) workloads: Mutex<Vec<Workload>>,
}

impl WorldInner {
    pub(crate) fn with_cloud<R>(&self, site: SimSite, f: impl FnOnce(&mut CloudState) -> R) -> R {
        let mut g = self.clouds[site.index()]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }

    /// A tenant's read of `site`'s cloud: admitted by the gate as a `kind` call, then
    /// `f` on the cloud state with the caller `ctx` names.
    pub(crate) async fn read_cloud<T>(
        &self,
        site: SimSite,
        ctx: &RequestContext,
        kind: CallKind,
        f: impl FnOnce(&mut CloudState, &Caller) -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        let adm = self.gate.foreground(site, kind).await?;
        let r = self.with_cloud(site, |c| {
            let caller = c.caller(&ctx.user_id, &ctx.project_id)?;
            f(c, &caller)
        });
        adm.finish(r)
    }

    pub(crate) fn log(&self, site: SimSite, text: impl fmt::Display) {
        self.log.record(Some(site), text);
    }

    /// Logs on `site` the line made of `parts` back to back (the cheap way for the
    /// lines every call writes).
    pub(crate) fn log_parts(&self, site: SimSite, parts: &[&str]) {
        self.log.record_parts(Some(site), parts);
    }
}

/// Two OpenStack sites with a FlashArray each, replicating to each other; cheap to
/// clone (every clone shares the same world).
#[derive(Clone)]
pub struct SimWorld {
    pub(crate) inner: Arc<WorldInner>,
}

impl fmt::Debug for SimWorld {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimWorld")
            .field("seed", &self.inner.seed)
            .finish_non_exhaustive()
    }
}

/// Builds a site's inventory with ids from `ids`; the cloud's later ids come from
/// `runtime_ids`, so adding to the inventory never shifts the ids of a scenario.
///
/// Projects and users get their ids from `identities`, seeded alike for both sites: the
/// two Keystones are independent, but a tenant is mapped to the same project and user ids
/// on both (the product's tenant mapping), so one request context is valid on either.
fn populate(
    site: SimSite,
    ids: &IdGenerator,
    identities: &IdGenerator,
    runtime_ids: IdGenerator,
) -> (CloudState, SiteInfo) {
    let mut c = CloudState::new(runtime_ids);
    let mut info = SiteInfo {
        site,
        site_id: ids.next(),
        name: site.name().to_owned(),
        auth_url: format!("https://keystone.{}.sim.invalid/v3", site.name()),
        region_name: "RegionOne".to_owned(),
        array_name: site.array_name().to_owned(),
        array_url: format!("https://{}.sim.invalid", site.array_name()),
        array_token: ids.uuid().to_string(),
        service_host: format!("{}@{BACKEND}", site.name()),
        volume_host: format!("{}@{BACKEND}#{BACKEND}", site.name()),
        projects: BTreeMap::new(),
        users: BTreeMap::new(),
        networks: BTreeMap::new(),
        flavors: BTreeMap::new(),
        images: BTreeMap::new(),
        volume_types: BTreeMap::new(),
    };
    let add_project = |c: &mut CloudState, info: &mut SiteInfo, name: &str| -> ProjectId {
        let id: ProjectId = identities.next();
        c.projects.insert(
            id.clone(),
            ProjectInfo {
                id: id.clone(),
                name: name.to_owned(),
            },
        );
        info.projects.insert(name.to_owned(), id.clone());
        id
    };
    let admin_project = add_project(&mut c, &mut info, ADMIN);
    let tenant_projects: Vec<(String, String, ProjectId)> = TENANTS
        .iter()
        .map(|(p, u)| {
            (
                (*p).to_owned(),
                (*u).to_owned(),
                add_project(&mut c, &mut info, p),
            )
        })
        .collect();
    let add_user = |c: &mut CloudState,
                    info: &mut SiteInfo,
                    name: &str,
                    roles: BTreeMap<ProjectId, Vec<String>>| {
        let id: UserId = identities.next();
        c.users.insert(
            id.clone(),
            UserInfo {
                id: id.clone(),
                name: name.to_owned(),
                roles,
            },
        );
        info.users.insert(name.to_owned(), id);
    };
    let mut admin_roles = BTreeMap::new();
    admin_roles.insert(
        admin_project.clone(),
        vec!["admin".to_owned(), "member".to_owned()],
    );
    for (_, _, pid) in &tenant_projects {
        admin_roles.insert(pid.clone(), vec!["admin".to_owned(), "member".to_owned()]);
    }
    add_user(&mut c, &mut info, ADMIN, admin_roles);
    for (_, user, pid) in &tenant_projects {
        let mut roles = BTreeMap::new();
        roles.insert(pid.clone(), vec!["member".to_owned(), "reader".to_owned()]);
        add_user(&mut c, &mut info, user, roles);
    }

    let mut net_index = 0u32;
    let mut add_network =
        |c: &mut CloudState, info: &mut SiteInfo, name: &str, owner: &ProjectId, shared: bool| {
            net_index += 1;
            let id: NetworkId = ids.next();
            let subnet = ids.uuid().to_string();
            let octet = if site == SimSite::A { 10 } else { 20 };
            c.networks.insert(
                id.clone(),
                NetworkRec {
                    network: Network {
                        id: id.clone(),
                        name: name.to_owned(),
                        status: "ACTIVE".to_owned(),
                        admin_state_up: true,
                        shared,
                        project_id: Some(owner.clone()),
                        subnets: vec![subnet],
                    },
                    cidr_prefix: format!("{octet}.{net_index}.0"),
                    next_host: 9,
                },
            );
            info.networks.insert(name.to_owned(), id);
        };
    add_network(&mut c, &mut info, "shared-net", &admin_project, true);
    for (project, _, pid) in &tenant_projects {
        add_network(&mut c, &mut info, &format!("{project}-web"), pid, false);
        add_network(&mut c, &mut info, &format!("{project}-db"), pid, false);
    }

    for (name, vcpus, ram_mb, disk_gb) in FLAVORS {
        let id: FlavorId = ids.next();
        c.flavors.insert(
            id.clone(),
            Flavor {
                id: id.clone(),
                name: name.to_owned(),
                vcpus,
                ram_mb,
                disk_gb,
            },
        );
        info.flavors.insert(name.to_owned(), id);
    }
    for name in IMAGES {
        let id: ImageId = ids.next();
        c.images.insert(
            id.clone(),
            ImageInfo {
                id: id.clone(),
                name: name.to_owned(),
            },
        );
        info.images.insert(name.to_owned(), id);
    }

    let spec = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    let types = [
        ("__DEFAULT__", spec(&[])),
        (TYPE_PLAIN, spec(&[("volume_backend_name", BACKEND)])),
        (
            TYPE_ASYNC,
            spec(&[
                ("volume_backend_name", BACKEND),
                ("replication_enabled", "<is> True"),
                ("replication_type", "<in> async"),
            ]),
        ),
        (
            TYPE_SYNC,
            spec(&[
                ("volume_backend_name", BACKEND),
                ("replication_enabled", "<is> True"),
                ("replication_type", "<in> sync"),
            ]),
        ),
    ];
    for (name, extra_specs) in types {
        let id: VolumeTypeId = ids.next();
        c.volume_types.insert(
            id.clone(),
            VolumeType {
                id: id.clone(),
                name: name.to_owned(),
                extra_specs,
            },
        );
        info.volume_types.insert(name.to_owned(), id);
    }
    for name in ["default", GROUP_TYPE_CG] {
        c.group_types
            .insert(name.to_owned(), ids.uuid().to_string());
    }
    c.services.push(VolumeService {
        host: info.service_host.clone(),
        status: "enabled".to_owned(),
        state: "up".to_owned(),
        zone: Some("nova".to_owned()),
    });
    c.backend_host = info.volume_host.clone();
    (c, info)
}

impl SimWorld {
    /// A builder with seed 0 and the `zero` profile.
    pub fn builder() -> SimWorldBuilder {
        SimWorldBuilder {
            seed: 0,
            profile: LatencyProfile::zero(),
        }
    }

    fn build(b: SimWorldBuilder) -> Result<Self, SimError> {
        let seed = b.seed;
        let log = Arc::new(EventLog::new());
        let faults = Arc::new(FaultTable::new(derive_seed(seed, "faults")));
        let gate = Arc::new(Gate::new(
            b.profile.clone(),
            Arc::clone(&faults),
            Arc::clone(&log),
        ));
        let clock = Arc::new(TokioClock::default_epoch());
        let [(cloud_a, info_a), (cloud_b, info_b)] = SimSite::BOTH.map(|site| {
            let inventory = IdGenerator::seeded(derive_seed(seed, &format!("{site}/inventory")));
            let identities = IdGenerator::seeded(derive_seed(seed, "identities"));
            populate(
                site,
                &inventory,
                &identities,
                IdGenerator::seeded(derive_seed(seed, &format!("{site}/ids"))),
            )
        });

        let fabric = crate::bridge::new_fabric(derive_seed(seed, "fabric"), Arc::clone(&clock));
        for info in [&info_a, &info_b] {
            fabric.add_array(&info.array_name, &info.array_token)?;
        }
        fabric.connect(&info_a.array_name, &info_b.array_name)?;
        fabric.set_transfer_time(b.profile.latency(crate::call::LatencyClass::Replicate));
        fabric.set_gate(Arc::new(crate::bridge::ArrayGate::new(Arc::clone(&gate))));
        let arrays = [
            fabric.client(&info_a.array_name, &info_a.array_token)?,
            fabric.client(&info_b.array_name, &info_b.array_token)?,
        ];
        let hook = Arc::new(CrashHook::new(Arc::clone(&log)));
        log.record(
            None,
            format_args!("world built seed={seed} profile={}", b.profile.name()),
        );
        Ok(Self {
            inner: Arc::new(WorldInner {
                seed,
                clock,
                log,
                gate,
                faults,
                hook,
                clouds: [Mutex::new(cloud_a), Mutex::new(cloud_b)],
                sites: [info_a, info_b],
                fabric,
                arrays,
                workloads: Mutex::new(Vec::new()),
            }),
        })
    }

    /// The world seed.
    pub fn seed(&self) -> u64 {
        self.inner.seed
    }

    /// The latency profile.
    pub fn profile(&self) -> &LatencyProfile {
        &self.inner.gate.profile
    }

    /// The world's clock: virtual wall time that advances with tokio's clock.
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.inner.clock.clone()
    }

    /// Ids, names, endpoints and credentials of a site.
    pub fn site(&self, site: SimSite) -> &SiteInfo {
        &self.inner.sites[site.index()]
    }

    /// The site registered under `id` (the [`SiteInfo::site_id`]), or named `id`.
    pub fn site_by_id(&self, id: &SiteId) -> Option<SimSite> {
        SimSite::BOTH
            .into_iter()
            .find(|s| &self.site(*s).site_id == id || self.site(*s).name == id.as_str())
    }

    /// A request context for `user` scoped to `project` on `site`, with the roles the
    /// user holds there.
    ///
    /// # Errors
    /// [`SimError::Unknown`] for an unknown project or user, [`SimError::Invalid`] when
    /// the user has no role on the project.
    pub fn context(
        &self,
        site: SimSite,
        project: &str,
        user: &str,
    ) -> Result<RequestContext, SimError> {
        self.inner.with_cloud(site, |c| {
            let p = c
                .project_by_name(project)
                .ok_or_else(|| SimError::Unknown {
                    kind: "project",
                    name: project.to_owned(),
                    site: site.name(),
                })?;
            let u = c.user_by_name(user).ok_or_else(|| SimError::Unknown {
                kind: "user",
                name: user.to_owned(),
                site: site.name(),
            })?;
            let roles = u.roles.get(&p.id).ok_or_else(|| {
                SimError::Invalid(format!(
                    "user {user} has no role on project {project} on {site}"
                ))
            })?;
            Ok(RequestContext {
                user_id: u.id.clone(),
                project_id: p.id.clone(),
                roles: roles.clone(),
            })
        })
    }

    /// The `admin` user in the `admin` project of `site`.
    ///
    /// # Errors
    /// Never for a built world; see [`Self::context`].
    pub fn admin_context(&self, site: SimSite) -> Result<RequestContext, SimError> {
        self.context(site, ADMIN, ADMIN)
    }

    /// The member user of a tenant project (`tenant-a` → `alice`, `tenant-b` → `bob`).
    ///
    /// # Errors
    /// [`SimError::Unknown`] for a project that is not one of [`TENANTS`].
    pub fn tenant_context(&self, site: SimSite, project: &str) -> Result<RequestContext, SimError> {
        let user = TENANTS
            .iter()
            .find(|(p, _)| *p == project)
            .map(|(_, u)| *u)
            .ok_or_else(|| SimError::Unknown {
                kind: "project",
                name: project.to_owned(),
                site: site.name(),
            })?;
        self.context(site, project, user)
    }

    /// Nova, Cinder and Neutron of `site` as the holder of `ctx` sees them: a tenant
    /// sees only its project's servers and volumes, an admin sees all.
    pub fn clients(&self, site: SimSite, ctx: &RequestContext) -> SiteClients {
        SiteClients {
            compute: Arc::new(self.compute(site, ctx)),
            block_storage: Arc::new(self.block_storage(site, ctx)),
            networking: Arc::new(self.networking(site, ctx)),
        }
    }

    /// Nova of `site` for `ctx`.
    pub fn compute(&self, site: SimSite, ctx: &RequestContext) -> SimCompute {
        SimCompute::new(Arc::clone(&self.inner), site, ctx.clone())
    }

    /// Cinder of `site` for `ctx`.
    pub fn block_storage(&self, site: SimSite, ctx: &RequestContext) -> SimBlockStorage {
        SimBlockStorage::new(Arc::clone(&self.inner), site, ctx.clone())
    }

    /// Neutron of `site` for `ctx`.
    pub fn networking(&self, site: SimSite, ctx: &RequestContext) -> SimNetworking {
        SimNetworking::new(Arc::clone(&self.inner), site, ctx.clone())
    }

    /// Authenticates `ctx` against the site's Keystone (one token call, with the
    /// profile's latency and the fault rules).
    ///
    /// # Errors
    /// The Keystone 401 for an unknown user or a user without a role on the project;
    /// injected faults; the site being down.
    pub async fn issue_token(
        &self,
        site: SimSite,
        ctx: &RequestContext,
    ) -> Result<(), protector_core::BackendError> {
        self.keystone_call(site, ctx, crate::call::CallKind::IssueToken)
            .await
    }

    /// The site's Keystone validates a token `ctx`'s caller holds (`HEAD
    /// /v3/auth/tokens`): what a connector's probe does while its token is cached. It
    /// fails like any call of the site's Keystone (site down, fault rules).
    ///
    /// # Errors
    /// As [`Self::issue_token`].
    pub async fn validate_token(
        &self,
        site: SimSite,
        ctx: &RequestContext,
    ) -> Result<(), protector_core::BackendError> {
        self.keystone_call(site, ctx, crate::call::CallKind::ValidateToken)
            .await
    }

    /// One call of the site's Keystone for `ctx`'s caller: admitted by the gate
    /// (latency, limits, faults, site down), answered by whether the caller has a role
    /// on the project.
    async fn keystone_call(
        &self,
        site: SimSite,
        ctx: &RequestContext,
        kind: crate::call::CallKind,
    ) -> Result<(), protector_core::BackendError> {
        let adm = self.inner.gate.foreground(site, kind).await?;
        let r = self.inner.with_cloud(site, |c| {
            c.caller(&ctx.user_id, &ctx.project_id).map(|_| ())
        });
        adm.finish(r)
    }

    /// The site's FlashArray through its REST-level trait, with the array's token.
    pub fn array(&self, site: SimSite) -> Arc<dyn FlashArray> {
        Arc::clone(&self.inner.arrays[site.index()])
    }

    /// The fabric of both arrays and their replication link.
    pub fn fabric(&self) -> &ArrayFabric {
        &self.inner.fabric
    }

    // ------------------------------------------------------------------ faults

    /// Installs a fault rule; it applies until the guard is dropped.
    pub fn fault(&self, rule: FaultRule) -> FaultGuard {
        let id = self.inner.faults.install(rule.clone());
        self.inner
            .log
            .record(None, format_args!("fault rule {id} installed: {rule:?}"));
        FaultGuard::new(Arc::clone(&self.inner.faults), id)
    }

    /// Every OpenStack API of `site` stops answering (connection refused: a transient
    /// error, never applied). Its array is not affected ([`Self::take_array_down`]).
    pub fn take_site_down(&self, site: SimSite) {
        self.inner.gate.set_site_down(site, true);
        self.inner.log(site, "site down");
    }

    /// The site's OpenStack APIs answer again.
    pub fn bring_site_up(&self, site: SimSite) {
        self.inner.gate.set_site_down(site, false);
        self.inner.log(site, "site up");
    }

    /// Whether the site's OpenStack APIs are down.
    pub fn is_site_down(&self, site: SimSite) -> bool {
        self.inner.gate.is_site_down(site)
    }

    /// The site's array stops answering and stops taking writes.
    ///
    /// # Errors
    /// The fabric's refusal (unknown array).
    pub fn take_array_down(&self, site: SimSite) -> Result<(), SimError> {
        self.inner.log(site, "array down");
        Ok(self.inner.fabric.take_array_down(site.array_name())?)
    }

    /// The site's array answers again.
    ///
    /// # Errors
    /// The fabric's refusal (unknown array).
    pub fn bring_array_up(&self, site: SimSite) -> Result<(), SimError> {
        self.inner.log(site, "array up");
        Ok(self.inner.fabric.bring_array_up(site.array_name())?)
    }

    /// Cuts the replication link between the two arrays: transfers hold.
    ///
    /// # Errors
    /// The fabric's refusal.
    pub fn cut_replication_link(&self) -> Result<(), SimError> {
        self.inner.log.record(None, "replication link cut");
        Ok(self
            .inner
            .fabric
            .cut_link(SimSite::A.array_name(), SimSite::B.array_name())?)
    }

    /// Repairs the replication link.
    ///
    /// # Errors
    /// The fabric's refusal.
    pub fn repair_replication_link(&self) -> Result<(), SimError> {
        self.inner.log.record(None, "replication link repaired");
        Ok(self
            .inner
            .fabric
            .repair_link(SimSite::A.array_name(), SimSite::B.array_name())?)
    }

    /// Replication transfers on the link hang part-way until released.
    ///
    /// # Errors
    /// The fabric's refusal.
    pub fn stall_replication(&self) -> Result<(), SimError> {
        self.inner.log.record(None, "replication stalled");
        Ok(self
            .inner
            .fabric
            .stall_replication(SimSite::A.array_name(), SimSite::B.array_name())?)
    }

    /// Stalled transfers flow again.
    ///
    /// # Errors
    /// The fabric's refusal.
    pub fn release_replication(&self) -> Result<(), SimError> {
        self.inner.log.record(None, "replication released");
        Ok(self
            .inner
            .fabric
            .release_replication(SimSite::A.array_name(), SimSite::B.array_name())?)
    }

    /// Cinder on `site` refuses `volume_extension:volume_manage` (403
    /// `PolicyNotAuthorized`).
    pub fn deny_volume_manage(&self, site: SimSite) {
        self.inner.with_cloud(site, |c| c.manage_allowed = false);
        self.inner
            .log(site, "policy volume_extension:volume_manage denied");
    }

    /// Whether Cinder on `site` shows users who are not admins only the extra specs
    /// real Cinder (Xena and later) shows them (`replication_enabled`, `multiattach`,
    /// `RESKEY:availability_zones`), hiding `replication_type` and
    /// `volume_backend_name`. Off by default: the in-process ports then act as a
    /// service account allowed to read every spec.
    pub fn filter_member_extra_specs(&self, site: SimSite, filter: bool) {
        self.inner
            .with_cloud(site, |c| c.filter_member_specs = filter);
    }

    /// Cinder on `site` allows manage again.
    pub fn allow_volume_manage(&self, site: SimSite) {
        self.inner.with_cloud(site, |c| c.manage_allowed = true);
        self.inner
            .log(site, "policy volume_extension:volume_manage allowed");
    }

    // ------------------------------------------------------------------ crash points

    /// The engine's step hook: crash points armed with [`Self::crash_at`] fire through it.
    pub fn step_hook(&self) -> Arc<dyn StepHook> {
        self.inner.hook.clone()
    }

    /// Arms a crash: the first operation of type `operation` to reach `boundary` gets
    /// [`protector_core::ports::HookVerdict::Crash`], once.
    pub fn crash_at(&self, operation: OperationType, boundary: StepBoundary) -> CrashGuard {
        let id = self.inner.hook.arm(operation, boundary);
        self.inner.log.record(
            None,
            format_args!("crash point {id} armed: {operation} {boundary:?}"),
        );
        CrashGuard::new(Arc::clone(&self.inner.hook), id)
    }

    // ------------------------------------------------------------------ accounting, determinism

    /// Calls per site, service and kind, and the virtual time elapsed, since the world
    /// was built or [`Self::reset_stats`].
    pub fn stats(&self) -> CallStats {
        self.inner.gate.stats.snapshot()
    }

    /// Zeroes the call counters and restarts the elapsed-time measurement.
    pub fn reset_stats(&self) {
        self.inner.gate.stats.reset();
    }

    /// Every event of both clouds so far.
    pub fn events(&self) -> Vec<SimEvent> {
        self.inner.log.snapshot()
    }

    /// sha256 (hex) over the clouds' event log followed by the fabric's: the same seed
    /// and scenario give the same digest.
    pub fn digest(&self) -> String {
        let mut d = LineDigest::default();
        self.inner.log.for_each_line(|l| d.line(&[l]));
        self.inner.fabric.with_state(|s| {
            for e in s.event_lines() {
                d.line(&["fabric ", e]);
            }
        });
        d.hex()
    }

    /// Virtual time elapsed since the world was built.
    pub fn elapsed(&self) -> std::time::Duration {
        tokio::time::Instant::now().duration_since(self.inner.log.start())
    }
}
