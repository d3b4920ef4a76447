//! Shared setup of the performance example (`examples/rto_report.rs`) and the criterion
//! benches: a two-site simulated world with a workload of N VMs (a boot volume and
//! `data_volumes` data volumes each), one protection group with a replication policy and
//! every VM as a member, and helpers to run planned/unplanned failover and failback while
//! recording the calls each step issues.
//!
//! Each target uses a different part of this module.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use protector::core::engine::{
    CreatePolicy, CreateProtectionGroup, EngineConfig, FailbackRequest, FailoverRequest,
};
use protector::core::ids::OperationId;
use protector::core::model::{
    FailoverType, Operation, OperationStatus, ProtectionGroup, ReplicationType, ResourceMappings,
};
use protector::core::ports::{HookVerdict, StepBoundary, StepHook, WaitPolicy};
use protector::core::progress::StepId;
use protector::core::secrecy::SecretString;
use protector::core::{Protector, RequestContext, Service};
use protector::purestorage::PureDriverOptions;
use protector::sim::world::TYPE_ASYNC;
use protector::sim::{
    CallStats, DrStores, LatencyClass, LatencyProfile, SimSite, SimStorageFactory, SimWorld,
    WorkloadSpec,
};

/// The protection group's name.
pub const PG: &str = "perf-app";

/// The services whose calls are reported per VM, in report order.
pub const SERVICES: [Service; 5] = [
    Service::Identity,
    Service::Compute,
    Service::BlockStorage,
    Service::Network,
    Service::FlashArray,
];

/// How to build a [`Bench`].
#[derive(Clone, Debug)]
pub struct Setup {
    /// World seed.
    pub seed: u64,
    /// Number of VMs in the protection group.
    pub servers: usize,
    /// Data volumes per VM (besides the boot volume).
    pub data_volumes: usize,
    /// The latency profile.
    pub profile: LatencyProfile,
}

impl Setup {
    /// `servers` VMs with one data volume each on `profile`.
    pub fn new(seed: u64, servers: usize, profile: LatencyProfile) -> Self {
        Self {
            seed,
            servers,
            data_volumes: 1,
            profile,
        }
    }

    /// Builds the world and the protected group with in-memory stores.
    pub async fn build(self) -> Bench {
        self.build_with(DrStores::memory()).await
    }

    /// Builds the world and the protected group with SQLite stores in `dir`.
    pub async fn build_sqlite(self, dir: &Path) -> Bench {
        let stores = DrStores::sqlite(dir).expect("open SQLite stores");
        self.build_with(stores).await
    }

    /// Builds the world and the protected group over `stores`.
    pub async fn build_with(self, stores: DrStores) -> Bench {
        let world = SimWorld::builder()
            .seed(self.seed)
            .profile(self.profile)
            .build()
            .expect("world");
        let recorder = Arc::new(StepRecorder::new(world.clone()));
        let a = protector_for(&world, SimSite::A, &stores, recorder.clone()).await;
        let b = protector_for(&world, SimSite::B, &stores, recorder.clone()).await;
        let ctx = world
            .tenant_context(SimSite::A, "tenant-a")
            .expect("tenant context");
        let workload = world
            .create_workload(
                &WorkloadSpec::new(SimSite::A, "tenant-a")
                    .servers(self.servers)
                    .data_volumes(self.data_volumes)
                    .volume_type(TYPE_ASYNC)
                    .networks(&["tenant-a-web", "tenant-a-db"])
                    .named("vm"),
            )
            .expect("workload");
        a.create_protection_group(
            &ctx,
            &CreateProtectionGroup {
                name: PG.into(),
                description: "performance measurement".into(),
                replication_type: ReplicationType::Async,
                primary_site: None,
                secondary_site: None,
                volume_type: None,
                secondary_volume_type: None,
            },
        )
        .await
        .expect("create protection group");
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
        .expect("create policy");
        let ids: Vec<&str> = workload.servers.iter().map(|s| s.id.as_str()).collect();
        a.add_members(&ctx, PG, &ids).await.expect("add members");
        Bench {
            world,
            stores,
            a,
            b,
            ctx,
            servers: self.servers,
            recorder,
            outage: Mutex::new(None),
        }
    }
}

async fn protector_for(
    world: &SimWorld,
    site: SimSite,
    stores: &DrStores,
    hook: Arc<StepRecorder>,
) -> Protector {
    world
        .protector_builder(site, stores)
        .await
        .expect("protector builder")
        .config(config())
        .storage(Arc::new(SimStorageFactory::new(
            world.clone(),
            driver_options(),
        )))
        .step_hook(hook)
        .build()
        .await
        .expect("protector")
}

/// The engine configuration of every run.
pub fn config() -> EngineConfig {
    // Status polling: 1 s, backing off to at most 2 s (the default backs off to 10 s,
    // which adds up to ~5 s after every boot, stop or replication a member waits for).
    let wait = |timeout| {
        WaitPolicy::new(timeout).with_intervals(Duration::from_secs(1), Duration::from_secs(2))
    };
    EngineConfig::builder()
        .replication_timeout(Duration::from_secs(3600))
        .default_step_timeout(Duration::from_secs(4 * 3600))
        .server_wait(wait(Duration::from_secs(7200)))
        .volume_wait(wait(Duration::from_secs(3600)))
        .build()
        .expect("valid engine config")
}

/// The array driver's settings: replication transfers are polled like the servers
/// and volumes of [`config`] (1 s, backing off to at most 2 s; the default backs off
/// to 5 s, which adds up to ~3 s to every forced replication).
pub fn driver_options() -> PureDriverOptions {
    PureDriverOptions {
        poll_interval: Duration::from_secs(1),
        max_poll_interval: Duration::from_secs(2),
        ..PureDriverOptions::default()
    }
}

/// A built world with its protected group.
pub struct Bench {
    /// The simulated world.
    pub world: SimWorld,
    /// Both sites' stores.
    pub stores: DrStores,
    /// The engine as seen from site A.
    pub a: Protector,
    /// The engine as seen from site B.
    pub b: Protector,
    /// The tenant's context.
    pub ctx: RequestContext,
    /// Number of VMs.
    pub servers: usize,
    /// Records calls per step.
    pub recorder: Arc<StepRecorder>,
    /// Write sequences of the array volumes of the site taken down by
    /// [`Bench::take_site_down`], at that moment: the data an unplanned failover can
    /// at best recover (the array keeps accruing writes while the site's APIs are down).
    outage: Mutex<Option<(SimSite, BTreeMap<String, u64>)>>,
}

/// One measured operation.
#[derive(Clone, Debug)]
pub struct Run {
    /// The final operation record.
    pub op: Operation,
    /// Virtual time from the request to the end of the operation.
    pub virtual_rto: Duration,
    /// Real time from the request to the end of the operation: the engine's and the
    /// simulator's work, without the bench's own checks before and after.
    pub wall: Duration,
    /// Calls per barrier segment (a step, or the engine's work before, between or after
    /// steps), in order.
    pub segments: Vec<Segment>,
    /// All calls of the operation.
    pub calls: CallStats,
    /// Writes lost per recovered volume: the source volume's write sequence (at the
    /// moment its site went down for an unplanned failover, at the end otherwise) minus
    /// the sequence of the data its recovered copy started from.
    pub writes_lost: Vec<u64>,
}

/// Calls issued in one barrier segment.
#[derive(Clone, Debug)]
pub struct Segment {
    /// The step's id, or `start` / `between` / `end`.
    pub name: String,
    /// Calls per site and latency class.
    pub calls: BTreeMap<(SimSite, LatencyClass), u64>,
    /// Virtual time the segment took.
    pub took: Duration,
}

impl Bench {
    fn engine(&self, site: SimSite) -> &Protector {
        match site {
            SimSite::A => &self.a,
            SimSite::B => &self.b,
        }
    }

    /// Network mappings `from` → `to`.
    pub fn mappings(&self, from: SimSite, to: SimSite) -> ResourceMappings {
        let (s, t) = (self.world.site(from), self.world.site(to));
        let mut m = ResourceMappings::default();
        for net in ["tenant-a-web", "tenant-a-db"] {
            m.networks.insert(
                s.network_id(net).expect("network").to_string(),
                t.network_id(net).expect("network").to_string(),
            );
        }
        m
    }

    /// The protection group as `site` records it.
    pub async fn pg(&self, site: SimSite) -> ProtectionGroup {
        self.engine(site)
            .get_protection_group(&self.ctx, PG)
            .await
            .expect("protection group")
    }

    /// Failover from `from` to its peer (planned or unplanned), measured.
    pub async fn failover(&self, from: SimSite, kind: FailoverType) -> Run {
        let to = from.peer();
        let req = FailoverRequest {
            failover_type: kind,
            mappings: self.mappings(from, to),
            force: false,
        };
        let on = if kind == FailoverType::Planned {
            from
        } else {
            to
        };
        self.measure(on, from, to, |p, ctx| {
            Box::pin(async move { p.failover(ctx, PG, req).await })
        })
        .await
    }

    /// Failback run on `from` (the current primary) with reverse replication, measured.
    pub async fn failback(&self, from: SimSite) -> Run {
        let to = from.peer();
        let req = FailbackRequest {
            mappings: self.mappings(from, to),
            reverse_replication: true,
            force: false,
        };
        self.measure(from, from, to, |p, ctx| {
            Box::pin(async move { p.failback(ctx, PG, req).await })
        })
        .await
    }

    async fn measure<F>(&self, on: SimSite, from: SimSite, to: SimSite, start: F) -> Run
    where
        F: for<'a> FnOnce(
            &'a Protector,
            &'a RequestContext,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<Operation, protector::core::Error>> + 'a>,
        >,
    {
        let before = self.pg(on).await;
        self.recorder.start();
        let t0 = tokio::time::Instant::now();
        let first = self.world.stats();
        let engine = self.engine(on);
        let hooks = operation_hooks();
        (hooks.before)();
        let wall = wall_clock();
        let op = start(engine, &self.ctx).await.expect("operation starts");
        let op = engine.wait(&op.id).await.expect("operation record");
        let wall = wall.elapsed();
        (hooks.after)();
        let virtual_rto = t0.elapsed();
        let last = self.world.stats();
        let marks = self.recorder.stop(&op.id);
        assert_eq!(
            op.status,
            OperationStatus::Completed,
            "{} ended {} ({:?})",
            op.operation_type,
            op.status,
            op.error_message
        );
        let segments = segments(&first, &marks, &last);
        let calls = diff(&first, &last);
        let after = self.pg(to).await;
        let writes_lost = self.writes_lost(&before, from, &after, to);
        Run {
            op,
            virtual_rto,
            wall,
            segments,
            calls,
            writes_lost,
        }
    }

    /// Writes lost per volume between the members of `before` on `from` and their
    /// recovered copies in `after` on `to`.
    ///
    /// The source side is the volume's write sequence when `from` went down (see
    /// [`Bench::take_site_down`]), or now when it never did (planned operations stop
    /// the servers, so nothing is written after the final sync). The target side is the
    /// sequence of the snapshot (or volume) the recovered copy was made from: the
    /// recovered servers write to their volumes once booted, which is new data, not
    /// recovered data.
    fn writes_lost(
        &self,
        before: &ProtectionGroup,
        from: SimSite,
        after: &ProtectionGroup,
        to: SimSite,
    ) -> Vec<u64> {
        let outage = self.outage.lock().expect("outage lock").take();
        let at_outage = match outage {
            Some((site, seqs)) if site == from => seqs,
            _ => BTreeMap::new(),
        };
        let source: BTreeMap<(&str, bool), &str> = before
            .members
            .iter()
            .flat_map(|m| m.volumes.iter())
            .map(|v| ((v.name.as_str(), v.bootable), v.array_volume_name.as_str()))
            .collect();
        let copied_from = self.copy_sources(to);
        after
            .members
            .iter()
            .flat_map(|m| m.volumes.iter())
            .map(|v| {
                let original = source
                    .get(&(v.name.as_str(), v.bootable))
                    .expect("original volume");
                let s = match at_outage.get(*original).or_else(|| {
                    at_outage
                        .iter()
                        .find(|(k, _)| base_name(k) == base_name(original))
                        .map(|(_, s)| s)
                }) {
                    Some(s) => *s,
                    None => self.world.write_seq(from, original).expect("source seq"),
                };
                let recovered = base_name(&v.array_volume_name);
                let t = copied_from
                    .get(recovered)
                    .and_then(|src| self.world.write_seq(to, src).ok())
                    .unwrap_or_else(|| {
                        self.world
                            .write_seq(to, &v.array_volume_name)
                            .expect("target seq")
                    });
                s.saturating_sub(t)
            })
            .collect()
    }

    /// The copy source (snapshot or volume) of every volume on `site`'s array that has
    /// one, by the volume's name without its pod prefix.
    fn copy_sources(&self, site: SimSite) -> BTreeMap<String, String> {
        let array = site.array_name();
        let fabric = self.world.fabric();
        let now = fabric.now_ms();
        fabric
            .with_state(|s| s.all_volumes(now))
            .into_iter()
            .filter(|(a, v)| a == array && !v.destroyed)
            .filter_map(|(_, v)| Some((base_name(&v.name).to_owned(), v.source?.name)))
            .collect()
    }

    /// Takes `site`'s OpenStack APIs down (its array keeps running) after recording the
    /// write sequence of every volume on its array: the moment the primary is lost.
    pub fn take_site_down(&self, site: SimSite) {
        let seqs = self
            .world
            .array_volumes(site)
            .into_iter()
            .filter_map(|name| {
                let seq = self.world.write_seq(site, &name).ok()?;
                Some((name, seq))
            })
            .collect();
        *self.outage.lock().expect("outage lock") = Some((site, seqs));
        self.world.take_site_down(site);
    }

    /// Lets virtual time pass (scheduled replication runs).
    pub async fn let_time_pass(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }

    /// A whole cycle: planned failover A → B, failback B → A. Returns both runs.
    pub async fn planned_cycle(&self) -> (Run, Run) {
        let fo = self.failover(SimSite::A, FailoverType::Planned).await;
        let fb = self.failback(SimSite::B).await;
        (fo, fb)
    }

    /// Site A fails, unplanned failover to B, site A returns, sync-force, failback.
    pub async fn unplanned_cycle(&self) -> (Run, Run) {
        self.take_site_down(SimSite::A);
        let fo = self.failover(SimSite::A, FailoverType::Unplanned).await;
        self.world.bring_site_up(SimSite::A);
        self.b.sync_force(&self.ctx, PG).await.expect("sync-force");
        let fb = self.failback(SimSite::B).await;
        (fo, fb)
    }
}

/// An array volume's name without its pod prefix (`pod::vol` → `vol`).
fn base_name(name: &str) -> &str {
    name.rsplit("::").next().unwrap_or(name)
}

/// Calls of `last` not yet in `first`.
pub fn diff(first: &CallStats, last: &CallStats) -> CallStats {
    let mut calls = last.calls.clone();
    for (k, n) in &first.calls {
        if let Some(v) = calls.get_mut(k) {
            *v = v.saturating_sub(*n);
        }
    }
    calls.retain(|_, n| *n > 0);
    CallStats {
        calls,
        elapsed: last.elapsed.saturating_sub(first.elapsed),
    }
}

fn by_class(stats: &CallStats) -> BTreeMap<(SimSite, LatencyClass), u64> {
    let mut out = BTreeMap::new();
    for ((site, _, kind), n) in &stats.calls {
        *out.entry((*site, kind.class())).or_insert(0) += n;
    }
    out
}

fn segments(
    first: &CallStats,
    marks: &[(StepBoundary, CallStats)],
    last: &CallStats,
) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut prev = first;
    let mut name = "start".to_owned();
    for (boundary, stats) in marks {
        let d = diff(prev, stats);
        let calls = by_class(&d);
        if !calls.is_empty() || !d.elapsed.is_zero() {
            out.push(Segment {
                name: name.clone(),
                calls,
                took: d.elapsed,
            });
        }
        name = match boundary {
            StepBoundary::Before(step) => step.as_str().to_owned(),
            StepBoundary::After(_) => "between".to_owned(),
        };
        prev = stats;
    }
    let d = diff(prev, last);
    let calls = by_class(&d);
    if !calls.is_empty() || !d.elapsed.is_zero() {
        out.push(Segment {
            name: if name == "between" {
                "end".into()
            } else {
                name
            },
            calls,
            took: d.elapsed,
        });
    }
    attribute_boots(&mut out);
    out
}

/// Booting servers is the work of `recreate_instances`; the engine starts a member's
/// boot as soon as its volumes are managed, so the boot calls reach the simulator during
/// `promote_volumes`. For the bound they count in the step they belong to.
fn attribute_boots(segments: &mut [Segment]) {
    let Some(target) = segments
        .iter()
        .position(|s| s.name == StepId::RecreateInstances.as_str())
    else {
        return;
    };
    let mut moved = Vec::new();
    for (i, seg) in segments.iter_mut().enumerate() {
        if i == target {
            continue;
        }
        let boots: Vec<(SimSite, LatencyClass)> = seg
            .calls
            .keys()
            .filter(|(_, c)| *c == LatencyClass::Boot)
            .copied()
            .collect();
        for key in boots {
            if let Some(n) = seg.calls.remove(&key) {
                moved.push((key, n));
            }
        }
    }
    for (key, n) in moved {
        *segments[target].calls.entry(key).or_insert(0) += n;
    }
}

/// The step-barrier bound of DESIGN §8 for the recorded segments: for each segment,
/// the slowest batch over sites and classes (`ceil(calls / limit) × latency`, limits
/// being per site), summed over segments.
pub fn step_barrier_bound(profile: &LatencyProfile, segments: &[Segment]) -> Duration {
    segments
        .iter()
        .map(|seg| {
            SimSite::BOTH
                .into_iter()
                .map(|site| {
                    let step: Vec<(LatencyClass, u64)> = seg
                        .calls
                        .iter()
                        .filter(|((s, _), _)| *s == site)
                        .map(|((_, c), n)| (*c, *n))
                        .collect();
                    profile.step_barrier_bound(&[step])
                })
                .max()
                .unwrap_or(Duration::ZERO)
        })
        .sum()
}

/// A step hook recording the world's call counters at every step boundary of the
/// operation being measured (it never crashes the engine).
pub struct StepRecorder {
    world: SimWorld,
    on: AtomicBool,
    marks: Mutex<Vec<(OperationId, StepBoundary, CallStats)>>,
}

impl StepRecorder {
    fn new(world: SimWorld) -> Self {
        Self {
            world,
            on: AtomicBool::new(false),
            marks: Mutex::new(Vec::new()),
        }
    }

    fn start(&self) {
        self.marks.lock().expect("recorder lock").clear();
        self.on.store(true, Ordering::SeqCst);
    }

    fn stop(&self, id: &OperationId) -> Vec<(StepBoundary, CallStats)> {
        self.on.store(false, Ordering::SeqCst);
        std::mem::take(&mut *self.marks.lock().expect("recorder lock"))
            .into_iter()
            .filter(|(op, _, _)| op == id)
            .map(|(_, b, s)| (b, s))
            .collect()
    }
}

impl StepHook for StepRecorder {
    fn at_boundary(&self, operation: &Operation, boundary: StepBoundary) -> HookVerdict {
        if self.on.load(Ordering::SeqCst) {
            let stats = self.world.stats();
            self.marks
                .lock()
                .expect("recorder lock")
                .push((operation.id.clone(), boundary, stats));
        }
        HookVerdict::Continue
    }
}

/// Calls to `service` on both sites.
pub fn service_calls(stats: &CallStats, service: Service) -> u64 {
    SimSite::BOTH
        .into_iter()
        .map(|s| stats.service_total(s, service))
        .sum()
}

/// A current-thread tokio runtime with paused time (virtual time advances when idle).
pub fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("tokio runtime")
}

/// Peak resident set size of this process (`VmHWM`), in KiB.
pub fn vm_hwm_kib() -> Option<u64> {
    proc_status_kib("VmHWM:")
}

/// Current resident set size of this process (`VmRSS`), in KiB.
pub fn vm_rss_kib() -> Option<u64> {
    proc_status_kib("VmRSS:")
}

fn proc_status_kib(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// The real clock: these targets measure wall time, which the engine never reads.
#[allow(clippy::disallowed_methods)]
pub fn wall_clock() -> std::time::Instant {
    std::time::Instant::now()
}

/// Functions called right before an operation is requested and right after it ended,
/// around the part of [`Bench`]'s measurement that [`Run::wall`] times (the report
/// samples its memory counters and drives a profiler there).
#[derive(Clone, Copy, Debug)]
pub struct OperationHooks {
    /// Called right before the request.
    pub before: fn(),
    /// Called right after the operation ended.
    pub after: fn(),
}

static HOOKS: std::sync::OnceLock<OperationHooks> = std::sync::OnceLock::new();

/// Installs the process's [`OperationHooks`]; only the first call has an effect.
pub fn set_operation_hooks(hooks: OperationHooks) {
    let _ = HOOKS.set(hooks);
}

fn operation_hooks() -> OperationHooks {
    fn nothing() {}
    HOOKS.get().copied().unwrap_or(OperationHooks {
        before: nothing,
        after: nothing,
    })
}

/// Blocks the calling thread for `d` of real time (the throughput window).
#[allow(clippy::disallowed_methods)]
pub fn wall_sleep(d: Duration) {
    std::thread::sleep(d);
}
