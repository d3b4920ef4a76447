//! The deterministic simulation campaign: one seed draws a world, a sequence of
//! operations and the faults hitting them, runs them through the real engine on the
//! simulator, and checks the invariants after every operation.
//!
//! Shared by `tests/simulation.rs` (a fixed set of seeds) and `examples/simulate.rs`
//! (`--seeds A..B`). A failure names its seed; `PROTECTOR_SIM_SEED=<n>` replays it.

#![allow(dead_code)]

use std::fmt::Write as _;
use std::time::Duration;

use protector::core::engine::{
    CreatePolicy, CreateProtectionGroup, EngineConfig, FailbackRequest, FailoverRequest,
    TestFailoverRequest,
};
use protector::core::model::{
    FailoverType, Operation, OperationFilter, OperationStatus, OperationType, PgStatus,
    ProtectionGroup, ReplicationType, ResourceMappings,
};
use protector::core::ports::{StepBoundary, WaitPolicy};
use protector::core::progress::{plan, StepId};
use protector::core::secrecy::SecretString;
use protector::core::{BackendErrorKind, Protector, RequestContext, Service};
use protector::sim::world::{TYPE_ASYNC, TYPE_SYNC};
use protector::sim::{
    CallKind, DataLossCheck, DrStores, FaultGuard, FaultRule, InvariantInput, SimSite, SimWorld,
    Workload, WorkloadSpec,
};

/// The protection group every seed protects.
pub const PG: &str = "sim-app";

/// Set to print the state the invariants see after every operation.
pub const DUMP_ENV: &str = "PROTECTOR_SIM_DUMP";

/// How long one operation may take in virtual time before the run calls it hung.
const OPERATION_BOUND: Duration = Duration::from_secs(6 * 3600);

/// A small deterministic generator (SplitMix64) for the scenario's choices.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x005e_ed0f_5eed_u64)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 > 1.0 - p
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.range(0, items.len() as u64 - 1) as usize]
    }
}

/// What one seed did.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub seed: u64,
    /// One line per operation: what ran, under which faults, and how it ended.
    pub log: Vec<String>,
    /// The world's fingerprint at the end.
    pub digest: String,
    pub operations: usize,
    pub completed: usize,
    pub failed: usize,
    pub refused: usize,
    pub crashes: usize,
}

/// A broken invariant or expectation, with the seed that replays it.
#[derive(Clone, Debug)]
pub struct Failure {
    pub seed: u64,
    pub message: String,
    pub log: Vec<String>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "PROTECTOR_SIM_SEED={}: {}", self.seed, self.message)?;
        for line in &self.log {
            writeln!(f, "    {line}")?;
        }
        Ok(())
    }
}

/// Short step timeouts, so a hung call fails its step instead of the run.
pub fn engine_config() -> EngineConfig {
    EngineConfig::builder()
        .default_step_timeout(Duration::from_secs(1800))
        .step_timeout(StepId::Prepare, Duration::from_secs(900))
        .server_wait(WaitPolicy::new(Duration::from_secs(600)))
        .volume_wait(WaitPolicy::new(Duration::from_secs(600)))
        .replication_timeout(Duration::from_secs(900))
        .rollback_timeout(Duration::from_secs(300))
        .build()
        .expect("valid engine configuration")
}

/// A paused-clock runtime, as the engine tests use.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime")
}

struct Run {
    seed: u64,
    world: SimWorld,
    dir: Option<tempfile::TempDir>,
    stores: DrStores,
    a: Protector,
    b: Protector,
    ctx: RequestContext,
    spare: Workload,
    log: Vec<String>,
    /// After an unplanned failover the old site's servers may still run until
    /// `sync-force` fences them (the documented operator step).
    fence_pending: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    PlannedFailover,
    UnplannedFailover,
    FailbackReverse,
    FailbackNoReverse,
    TestFailover,
    TestCleanup,
    SyncVolumes,
    AddMember,
    RemoveMember,
    SyncForce,
}

const OPS: [Op; 10] = [
    Op::PlannedFailover,
    Op::UnplannedFailover,
    Op::FailbackReverse,
    Op::FailbackNoReverse,
    Op::TestFailover,
    Op::TestCleanup,
    Op::SyncVolumes,
    Op::AddMember,
    Op::RemoveMember,
    Op::SyncForce,
];

/// A fault active during one operation; physical events are undone when it ends.
enum Fault {
    Rule(FaultGuard),
    SiteDown(SimSite),
    ArrayDown(SimSite),
    LinkCut,
    Stalled,
    ManageDenied(SimSite),
}

/// Error kinds a fault may answer with; `NotFound` first (service-wide rules skip it).
const KINDS: [BackendErrorKind; 7] = [
    BackendErrorKind::NotFound,
    BackendErrorKind::Conflict,
    BackendErrorKind::Auth,
    BackendErrorKind::Forbidden,
    BackendErrorKind::Throttled,
    BackendErrorKind::Transient,
    BackendErrorKind::Invalid,
];

const SERVICES: [Service; 5] = [
    Service::Identity,
    Service::Compute,
    Service::BlockStorage,
    Service::Network,
    Service::FlashArray,
];

const CALLS: [CallKind; 14] = [
    CallKind::GetServer,
    CallKind::ListServers,
    CallKind::CreateServer,
    CallKind::StopServer,
    CallKind::StartServer,
    CallKind::DeleteServer,
    CallKind::GetVolume,
    CallKind::ManageVolume,
    CallKind::UnmanageVolume,
    CallKind::DeleteVolume,
    CallKind::GetNetwork,
    CallKind::Array("copy_volume"),
    CallKind::Array("create_pg_snapshot"),
    CallKind::Array("list_volumes"),
];

fn site_of(world: &SimWorld, pg: &ProtectionGroup) -> SimSite {
    world
        .site_by_id(&pg.current_primary_site_id)
        .unwrap_or(SimSite::A)
}

fn mappings(world: &SimWorld, from: SimSite, to: SimSite) -> ResourceMappings {
    let (s, t) = (world.site(from), world.site(to));
    let mut m = ResourceMappings::default();
    for net in ["tenant-a-web", "tenant-a-db"] {
        m.networks.insert(
            s.network_id(net).expect("net").to_string(),
            t.network_id(net).expect("net").to_string(),
        );
    }
    m
}

impl Run {
    fn fail(&self, message: impl Into<String>) -> Failure {
        Failure {
            seed: self.seed,
            message: message.into(),
            log: self.log.clone(),
        }
    }

    fn on(&self, site: SimSite) -> &Protector {
        match site {
            SimSite::A => &self.a,
            SimSite::B => &self.b,
        }
    }

    /// The newest copy of the group across both sites' stores.
    async fn pg(&self) -> Result<ProtectionGroup, Failure> {
        let mut best: Option<ProtectionGroup> = None;
        for site in SimSite::BOTH {
            let pgs = self
                .stores
                .metadata(site)
                .list_protection_groups(None)
                .await
                .map_err(|e| self.fail(format!("store: {e}")))?;
            for pg in pgs.into_iter().filter(|p| p.name == PG) {
                if best.as_ref().is_none_or(|b| pg.version > b.version) {
                    best = Some(pg);
                }
            }
        }
        best.ok_or_else(|| self.fail("the protection group vanished"))
    }

    async fn operation_count(&self) -> Result<usize, Failure> {
        let mut n = 0;
        for site in SimSite::BOTH {
            n += self
                .stores
                .operations(site)
                .list_operations(&OperationFilter::default())
                .await
                .map_err(|e| self.fail(format!("store: {e}")))?
                .len();
        }
        Ok(n)
    }

    async fn check(&self, data_loss: Vec<DataLossCheck>) -> Result<(), Failure> {
        let mut input = InvariantInput {
            data_loss,
            ..InvariantInput::default()
        };
        for site in SimSite::BOTH {
            let meta = self.stores.metadata(site);
            let ops = self.stores.operations(site);
            input.protection_groups.extend(
                meta.list_protection_groups(None)
                    .await
                    .map_err(|e| self.fail(format!("store: {e}")))?,
            );
            for op in ops
                .list_operations(&OperationFilter::default())
                .await
                .map_err(|e| self.fail(format!("store: {e}")))?
            {
                if !op.status.is_terminal() {
                    return Err(self.fail(format!(
                        "operation {} ({}) left {} with no process running it",
                        op.id, op.operation_type, op.status
                    )));
                }
                input.journals.extend(
                    ops.journal(&op.id)
                        .await
                        .map_err(|e| self.fail(format!("journal: {e}")))?,
                );
                input.operations.push(op);
            }
        }
        if std::env::var_os(DUMP_ENV).is_some() {
            self.dump(&input);
        }
        if let Err(v) = self.world.check_invariants(&input) {
            let v: Vec<_> = v
                .into_iter()
                .filter(|v| !(self.fence_pending && v.to_string().contains("its stale server")))
                .collect();
            if v.is_empty() {
                return Ok(());
            }
            let mut msg = String::from("invariants violated:");
            for v in v {
                let _ = write!(msg, "\n  - {v}");
            }
            return Err(self.fail(msg));
        }
        Ok(())
    }

    /// Prints what the invariants are checked against: every group record, Cinder
    /// volume and array volume (with `PROTECTOR_SIM_DUMP` set).
    fn dump(&self, input: &InvariantInput) {
        for pg in &input.protection_groups {
            eprintln!(
                "  pg v{} {} primary={} current={}",
                pg.version, pg.status, pg.primary_site_id, pg.current_primary_site_id
            );
            for m in &pg.members {
                let vols: Vec<&str> = m
                    .volumes
                    .iter()
                    .map(|v| v.array_volume_name.as_str())
                    .collect();
                eprintln!(
                    "    member {} {} {:?}",
                    m.instance_name, m.instance_id, vols
                );
            }
        }
        for site in SimSite::BOTH {
            for v in self.world.volumes(site) {
                eprintln!(
                    "  {site:?} cinder {} {} {} -> {:?}",
                    v.id,
                    v.name,
                    v.status,
                    v.array_volume_name()
                );
            }
            eprintln!("  {site:?} array {:?}", self.world.array_volumes(site));
        }
        for e in self.world.events() {
            eprintln!("  event {e:?}");
        }
    }

    fn draw_fault(&self, rng: &mut Rng) -> (Fault, String) {
        let site = *rng.pick(&SimSite::BOTH);
        match rng.range(0, 9) {
            0..=2 => {
                // A service does not answer 404 at random for resources that exist:
                // `NotFound` comes only as a single call's answer (below), where it
                // models a retried request whose first attempt already took effect.
                let kind = *rng.pick(&KINDS[1..]);
                let svc = *rng.pick(&SERVICES);
                let p = *rng.pick(&[0.02, 0.1, 0.3, 0.7]);
                let rule = FaultRule::fail(kind, format!("simulated {kind}"))
                    .on_site(site)
                    .on_service(svc)
                    .with_probability(p);
                (
                    Fault::Rule(self.world.fault(rule)),
                    format!("fail({kind}) {svc:?}@{} p={p}", site.name()),
                )
            }
            3..=4 => {
                let call = *rng.pick(&CALLS);
                let read = call.name().starts_with("get_") || call.name().starts_with("list_");
                let kind = if read {
                    *rng.pick(&KINDS[1..])
                } else {
                    *rng.pick(&KINDS)
                };
                let n = rng.range(1, 4);
                let mut rule = FaultRule::fail(kind, format!("simulated {kind}"))
                    .on_site(site)
                    .on_call(call)
                    .nth(n);
                let lost_answer = !matches!(call, CallKind::Array(_)) && rng.chance(0.3);
                if lost_answer {
                    rule = rule.after_applying();
                }
                (
                    Fault::Rule(self.world.fault(rule)),
                    format!(
                        "fail({kind}) {call:?}@{} nth={n}{}",
                        site.name(),
                        if lost_answer { " after_applying" } else { "" }
                    ),
                )
            }
            5 => {
                let call = *rng.pick(&CALLS);
                let n = rng.range(1, 3);
                let rule = FaultRule::hang().on_site(site).on_call(call).nth(n);
                (
                    Fault::Rule(self.world.fault(rule)),
                    format!("hang {call:?}@{} nth={n}", site.name()),
                )
            }
            6 => {
                self.world.take_site_down(site);
                (Fault::SiteDown(site), format!("site {} down", site.name()))
            }
            7 => {
                let _ = self.world.take_array_down(site);
                (
                    Fault::ArrayDown(site),
                    format!("array {} down", site.name()),
                )
            }
            8 => {
                if rng.chance(0.5) {
                    let _ = self.world.cut_replication_link();
                    (Fault::LinkCut, "replication link cut".into())
                } else {
                    let _ = self.world.stall_replication();
                    (Fault::Stalled, "replication stalled".into())
                }
            }
            _ => {
                self.world.deny_volume_manage(site);
                (
                    Fault::ManageDenied(site),
                    format!("volume manage denied@{}", site.name()),
                )
            }
        }
    }

    fn heal(&self, fault: Fault) {
        match fault {
            Fault::Rule(g) => drop(g),
            Fault::SiteDown(s) => self.world.bring_site_up(s),
            Fault::ArrayDown(s) => {
                let _ = self.world.bring_array_up(s);
            }
            Fault::LinkCut => {
                let _ = self.world.repair_replication_link();
            }
            Fault::Stalled => {
                let _ = self.world.release_replication();
            }
            Fault::ManageDenied(s) => self.world.allow_volume_manage(s),
        }
    }

    /// Starts `op` from `site`; `Ok(None)` for operations without a record.
    async fn start(
        &self,
        op: Op,
        site: SimSite,
        force: bool,
        rng: &mut Rng,
    ) -> Result<Option<Operation>, protector::core::Error> {
        let p = self.on(site);
        let ctx = &self.ctx;
        let peer = site.peer();
        match op {
            Op::PlannedFailover | Op::UnplannedFailover => p
                .failover(
                    ctx,
                    PG,
                    FailoverRequest {
                        failover_type: if op == Op::PlannedFailover {
                            FailoverType::Planned
                        } else {
                            FailoverType::Unplanned
                        },
                        mappings: mappings(&self.world, peer, site),
                        force,
                    },
                )
                .await
                .map(Some),
            Op::FailbackReverse | Op::FailbackNoReverse => p
                .failback(
                    ctx,
                    PG,
                    FailbackRequest {
                        mappings: mappings(&self.world, site, peer),
                        reverse_replication: op == Op::FailbackReverse,
                        force,
                    },
                )
                .await
                .map(Some),
            Op::TestFailover => p
                .test_failover(
                    ctx,
                    PG,
                    TestFailoverRequest {
                        mappings: mappings(&self.world, site, peer),
                    },
                )
                .await
                .map(Some),
            Op::TestCleanup => p.test_cleanup(ctx, PG).await.map(Some),
            Op::SyncVolumes => p.sync_volumes(ctx, PG).await.map(Some),
            Op::AddMember => {
                let s = rng.pick(&self.spare.servers).id.to_string();
                p.add_member(ctx, PG, &s).await.map(|_| None)
            }
            Op::RemoveMember => {
                let pg = self.pg().await.map_err(|f| {
                    protector::core::Error::from(protector::core::BackendError::invalid(
                        Service::Protector,
                        f.message,
                    ))
                })?;
                if pg.members.is_empty() {
                    return Ok(None);
                }
                let name = rng.pick(&pg.members).instance_name.clone();
                p.remove_member(ctx, PG, &name).await.map(|_| None)
            }
            Op::SyncForce => p.sync_force(ctx, PG).await.map(|_| None),
        }
    }

    fn operation_type(op: Op) -> Option<OperationType> {
        Some(match op {
            Op::PlannedFailover | Op::UnplannedFailover => OperationType::Failover,
            Op::FailbackReverse | Op::FailbackNoReverse => OperationType::Failback,
            Op::TestFailover => OperationType::TestFailover,
            Op::TestCleanup => OperationType::TestCleanup,
            Op::SyncVolumes => OperationType::SyncVolumes,
            _ => return None,
        })
    }

    /// A new process over the same stores (SQLite files reopened).
    async fn restart(&mut self) -> Result<(), Failure> {
        if let Some(dir) = &self.dir {
            self.stores = DrStores::sqlite(dir.path())
                .map_err(|e| self.fail(format!("reopen stores: {e}")))?;
        }
        self.a = self
            .world
            .protector(SimSite::A, &self.stores, engine_config())
            .await
            .map_err(|e| self.fail(format!("restart site-a: {e}")))?;
        self.b = self
            .world
            .protector(SimSite::B, &self.stores, engine_config())
            .await
            .map_err(|e| self.fail(format!("restart site-b: {e}")))?;
        Ok(())
    }

    async fn wait(&self, site: SimSite, op: &Operation) -> Result<Operation, Failure> {
        match tokio::time::timeout(OPERATION_BOUND, self.on(site).wait(&op.id)).await {
            Ok(Ok(op)) => Ok(op),
            Ok(Err(e)) => Err(self.fail(format!("wait {}: {e}", op.id))),
            Err(_) => Err(self.fail(format!(
                "{} {} still running after {OPERATION_BOUND:?} of virtual time",
                op.operation_type, op.id
            ))),
        }
    }

    /// One step of the scenario: faults, an operation, its checks.
    async fn step(&mut self, rng: &mut Rng, counts: &mut Outcome) -> Result<(), Failure> {
        let before = self.pg().await?;
        let primary = site_of(&self.world, &before);
        let op = *rng.pick(&OPS);
        // Mostly from the site the workload runs on (or its peer for an unplanned
        // failover), sometimes from the other one.
        let natural = match op {
            Op::UnplannedFailover | Op::PlannedFailover => primary.peer(),
            _ => primary,
        };
        let site = if rng.chance(0.85) {
            natural
        } else {
            natural.peer()
        };
        let site = if matches!(op, Op::PlannedFailover) && rng.chance(0.85) {
            primary
        } else {
            site
        };
        let force = before.status == PgStatus::Error && rng.chance(0.8) || rng.chance(0.05);
        let mut faults = Vec::new();
        let mut described = Vec::new();
        if op == Op::UnplannedFailover && rng.chance(0.7) && site != primary {
            self.world.take_site_down(primary);
            faults.push(Fault::SiteDown(primary));
            described.push(format!("site {} down", primary.name()));
        }
        let nfaults = *rng.pick(&[0, 0, 1, 1, 1, 2, 3]);
        for _ in 0..nfaults {
            let (f, d) = self.draw_fault(rng);
            faults.push(f);
            described.push(d);
        }
        let crash = match (Self::operation_type(op), &self.dir) {
            (Some(t), Some(_)) if rng.chance(0.3) => {
                let steps = plan(t);
                let s = rng.pick(steps).step;
                let b = if rng.chance(0.5) {
                    StepBoundary::Before(s)
                } else {
                    StepBoundary::After(s)
                };
                Some((self.world.crash_at(t, b), b))
            }
            _ => None,
        };
        // Source array volumes before a planned failover, for the zero-loss check.
        let sources: Vec<(String, bool, String)> = before
            .members
            .iter()
            .flat_map(|m| {
                m.volumes
                    .iter()
                    .map(|v| (v.name.clone(), v.bootable, v.array_volume_name.clone()))
            })
            .collect();
        let ops_before = self.operation_count().await?;
        let mut line = format!(
            "{op:?} from {}{} [{}] pg={} v{}",
            site.name(),
            if force { " force" } else { "" },
            described.join("; "),
            before.status,
            before.version
        );
        if let Some((_, b)) = &crash {
            let _ = write!(line, " crash_at {b:?}");
        }
        self.log.push(line);
        let started =
            match tokio::time::timeout(OPERATION_BOUND, self.start(op, site, force, rng)).await {
                Ok(r) => r,
                Err(_) => {
                    return Err(self.fail(format!(
                        "{op:?} did not answer within {OPERATION_BOUND:?} of virtual time"
                    )))
                }
            };
        counts.operations += 1;
        let mut data_loss = Vec::new();
        let result = match started {
            Err(e) => {
                counts.refused += 1;
                let text = e.to_string();
                if text.is_empty() {
                    return Err(self.fail(format!("{op:?} refused with an empty message")));
                }
                self.log.push(format!("  refused: {text}"));
                if Self::operation_type(op).is_some() {
                    let after = self.operation_count().await?;
                    if after != ops_before {
                        // A refusal may come after the record exists only if it names
                        // the failure on that record; the record must then be terminal.
                        self.log
                            .push(format!("  (records {ops_before} -> {after} on refusal)"));
                    }
                }
                let after = self.pg().await?;
                if after.status != before.status && op != Op::SyncForce {
                    return Err(self.fail(format!(
                        "{op:?} was refused ({text}) but the group went {} -> {}",
                        before.status, after.status
                    )));
                }
                if matches!(op, Op::AddMember | Op::RemoveMember)
                    && after.members.len() != before.members.len()
                {
                    return Err(self.fail(format!(
                        "{op:?} was refused ({text}) but the members changed"
                    )));
                }
                None
            }
            Ok(None) => {
                counts.completed += 1;
                if op == Op::SyncForce {
                    self.fence_pending = false;
                }
                self.log.push("  done".into());
                None
            }
            Ok(Some(record)) => {
                let mut done = self.wait(site, &record).await?;
                if let Some((guard, b)) = crash {
                    let fired = guard.fired();
                    drop(guard);
                    if fired {
                        if done.status.is_terminal() {
                            return Err(self.fail(format!(
                                "{} crashed at {b:?} but its record ended {}",
                                done.operation_type, done.status
                            )));
                        }
                        counts.crashes += 1;
                        self.log.push(format!("  crashed at {b:?}; restarting"));
                        // Heal the world before the new process resumes half the time.
                        if rng.chance(0.5) {
                            for f in faults.drain(..) {
                                self.heal(f);
                            }
                        }
                        self.restart().await?;
                        let resumed = self
                            .on(site)
                            .recover()
                            .await
                            .map_err(|e| self.fail(format!("recover: {e}")))?;
                        if !resumed.contains(&done.id) {
                            return Err(self.fail(format!(
                                "recover() did not pick up {} (resumed {resumed:?})",
                                done.id
                            )));
                        }
                        done = self.wait(site, &done).await?;
                    }
                }
                Some(done)
            }
        };
        for f in faults.drain(..) {
            self.heal(f);
        }
        if let Some(done) = result {
            if !done.status.is_terminal() {
                return Err(self.fail(format!(
                    "{} ended {} without a crash",
                    done.operation_type, done.status
                )));
            }
            let after = self.pg().await?;
            self.log.push(format!(
                "  {} progress={} failed={:?} pg={} {}",
                done.status,
                done.progress,
                done.steps_failed,
                after.status,
                done.error_message.clone().unwrap_or_default()
            ));
            match done.status {
                OperationStatus::Completed => {
                    counts.completed += 1;
                    if done.progress != 100 {
                        return Err(self.fail(format!(
                            "{} completed at progress {}",
                            done.operation_type, done.progress
                        )));
                    }
                    // Where the workload lands decides the status: on the primary site the
                    // group is active, on the secondary failed over; members that could
                    // not be recreated leave it partial.
                    let expect = match done.operation_type {
                        OperationType::Failover | OperationType::Failback => {
                            if after.current_primary_site_id == after.primary_site_id {
                                vec![PgStatus::Active, PgStatus::FailedOverPartial]
                            } else {
                                vec![PgStatus::FailedOver, PgStatus::FailedOverPartial]
                            }
                        }
                        _ => vec![before.status],
                    };
                    if !expect.contains(&after.status) {
                        return Err(self.fail(format!(
                            "{} completed but the group is {} (expected {expect:?})",
                            done.operation_type, after.status
                        )));
                    }
                    if op == Op::UnplannedFailover {
                        self.fence_pending = true;
                    }
                    if op == Op::PlannedFailover && after.status == PgStatus::FailedOver {
                        let target = site_of(&self.world, &after);
                        for m in &after.members {
                            for v in &m.volumes {
                                if let Some((_, _, src)) = sources
                                    .iter()
                                    .find(|(n, b, _)| *n == v.name && *b == v.bootable)
                                {
                                    data_loss.push(DataLossCheck {
                                        source_site: target.peer(),
                                        source_volume: src.clone(),
                                        source_seq: None,
                                        target_site: target,
                                        target: v.array_volume_name.clone(),
                                        max_writes_lost: 0,
                                    });
                                }
                            }
                        }
                    }
                }
                OperationStatus::Failed => {
                    counts.failed += 1;
                    let ok = match done.operation_type {
                        OperationType::Failover | OperationType::Failback => {
                            after.status == PgStatus::Error || after.status == before.status
                        }
                        _ => after.status == before.status,
                    };
                    if !ok {
                        return Err(self.fail(format!(
                            "{} failed but the group went {} -> {}",
                            done.operation_type, before.status, after.status
                        )));
                    }
                    if done.error_message.as_deref().unwrap_or("").is_empty() {
                        return Err(self.fail(format!(
                            "{} failed without an error message",
                            done.operation_type
                        )));
                    }
                }
                other => {
                    return Err(self.fail(format!(
                        "{} ended in non-terminal {other}",
                        done.operation_type
                    )))
                }
            }
        }
        self.check(data_loss).await
    }
}

async fn build(seed: u64, rng: &mut Rng) -> Result<Run, Failure> {
    let setup = |m: String| Failure {
        seed,
        message: format!("set-up: {m}"),
        log: Vec::new(),
    };
    let world = SimWorld::builder()
        .seed(seed)
        .build()
        .map_err(|e| setup(e.to_string()))?;
    let (dir, stores) = if rng.chance(0.3) {
        let dir = tempfile::tempdir().map_err(|e| setup(e.to_string()))?;
        let stores = DrStores::sqlite(dir.path()).map_err(|e| setup(e.to_string()))?;
        (Some(dir), stores)
    } else {
        (None, DrStores::memory())
    };
    let a = world
        .protector(SimSite::A, &stores, engine_config())
        .await
        .map_err(|e| setup(e.to_string()))?;
    let b = world
        .protector(SimSite::B, &stores, engine_config())
        .await
        .map_err(|e| setup(e.to_string()))?;
    let ctx = world
        .tenant_context(SimSite::A, "tenant-a")
        .map_err(|e| setup(e.to_string()))?;
    let replication = if rng.chance(0.5) {
        ReplicationType::Async
    } else {
        ReplicationType::Sync
    };
    let vt = match replication {
        ReplicationType::Async => TYPE_ASYNC,
        ReplicationType::Sync => TYPE_SYNC,
    };
    let servers = rng.range(1, 6) as usize;
    let data_volumes = rng.range(0, 2) as usize;
    let spec = |n: usize, name: &str| {
        WorkloadSpec::new(SimSite::A, "tenant-a")
            .servers(n)
            .data_volumes(data_volumes)
            .volume_type(vt)
            .networks(&["tenant-a-web", "tenant-a-db"])
            .named(name)
    };
    let workload = world
        .create_workload(&spec(servers, "app"))
        .map_err(|e| setup(e.to_string()))?;
    let spare = world
        .create_workload(&spec(1, "spare"))
        .map_err(|e| setup(e.to_string()))?;
    a.create_protection_group(
        &ctx,
        &CreateProtectionGroup {
            name: PG.into(),
            description: "simulated application".into(),
            replication_type: replication,
            primary_site: None,
            secondary_site: None,
            volume_type: None,
            secondary_volume_type: None,
        },
    )
    .await
    .map_err(|e| setup(e.to_string()))?;
    let (ia, ib) = (world.site(SimSite::A), world.site(SimSite::B));
    a.create_policy(
        &ctx,
        PG,
        CreatePolicy {
            primary_fa_url: ia.array_url.clone(),
            primary_fa_api_token: SecretString::from(ia.array_token.clone()),
            secondary_fa_url: ib.array_url.clone(),
            secondary_fa_api_token: SecretString::from(ib.array_token.clone()),
            pure_pg_name: None,
            rpo_minutes: Some(15),
            replication_interval_seconds: Some(300),
        },
    )
    .await
    .map_err(|e| setup(e.to_string()))?;
    for s in &workload.servers {
        a.add_member(&ctx, PG, s.id.as_str())
            .await
            .map_err(|e| setup(e.to_string()))?;
    }
    let log = vec![format!(
        "world: {servers} VMs x {} volumes, {replication:?}, {} stores",
        data_volumes + 1,
        if dir.is_some() { "sqlite" } else { "memory" }
    )];
    Ok(Run {
        seed,
        world,
        dir,
        stores,
        a,
        b,
        ctx,
        spare,
        log,
        fence_pending: false,
    })
}

/// Runs one seed to its end (on the caller's paused-clock runtime).
pub async fn run_seed(seed: u64) -> Result<Outcome, Failure> {
    let mut rng = Rng::new(seed);
    let mut run = build(seed, &mut rng).await?;
    let mut counts = Outcome {
        seed,
        log: Vec::new(),
        digest: String::new(),
        operations: 0,
        completed: 0,
        failed: 0,
        refused: 0,
        crashes: 0,
    };
    // Let scheduled replication land a first snapshot.
    tokio::time::sleep(Duration::from_secs(rng.range(0, 900))).await;
    run.check(Vec::new()).await?;
    let steps = rng.range(3, 8);
    for _ in 0..steps {
        run.step(&mut rng, &mut counts).await?;
        tokio::time::sleep(Duration::from_secs(rng.range(0, 600))).await;
    }
    if run.fence_pending {
        // The operator's step after an unplanned failover, once both sites answer.
        let pg = run.pg().await?;
        let site = site_of(&run.world, &pg);
        run.log
            .push(format!("final sync-force from {}", site.name()));
        run.on(site)
            .sync_force(&run.ctx, PG)
            .await
            .map_err(|e| run.fail(format!("final sync-force: {e}")))?;
        run.fence_pending = false;
        run.check(Vec::new()).await?;
    }
    counts.log = run.log.clone();
    counts.digest = run.world.digest();
    Ok(counts)
}

/// Runs one seed on a fresh paused-clock runtime, turning a panic into a failure.
pub fn run_seed_blocking(seed: u64) -> Result<Outcome, Failure> {
    let result = std::panic::catch_unwind(|| runtime().block_on(run_seed(seed)));
    match result {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into());
            Err(Failure {
                seed,
                message: format!("panicked: {msg}"),
                log: Vec::new(),
            })
        }
    }
}
