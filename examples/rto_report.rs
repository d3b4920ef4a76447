//! Performance report of DESIGN §8: RTO efficiency on the `realistic` profile, engine
//! overhead on the `zero` profile with SQLite stores, and simulation throughput.
//!
//! ```text
//! cargo run --release --example rto_report            # N = 10, 100, 1000
//! cargo run --release --example rto_report -- --quick # N = 10 only (CI smoke)
//! cargo run --release --example rto_report -- --steps # also the calls of every step
//! cargo run --release --example rto_report -- --only=overhead --n=1000 # one part, one N
//! cargo run --release --example rto_report -- --only=overhead --n=10000 --runs=7
//! ```
//!
//! `--only=rto|overhead|throughput` runs one part of the report and `--n=N` one size
//! (for profiling). `--runs=K` measures each engine-overhead size K times (default 3,
//! 1 with `--quick`) and gives the median and the range: wall times on a shared
//! machine vary from run to run. `--stores=memory` measures the engine overhead with
//! in-memory stores instead of SQLite files (the targets are for SQLite; the
//! difference is the stores' share).
//!
//! With `PROTECTOR_PERF_CTL=<fifo>`, the report writes `enable` and `disable` to that
//! `perf record --control=fifo:<fifo> -D -1` control file around each measured
//! operation, so a profile covers the operations alone.
//!
//! Prints markdown tables on stdout.

#[path = "../benches/support/mod.rs"]
mod support;

use std::alloc::{GlobalAlloc, Layout};

use mimalloc::MiMalloc;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use protector::core::model::FailoverType;
use protector::sim::{LatencyProfile, SimSite};
use support::{Run, Setup, SERVICES};

/// Counts live heap bytes and their peak, so the report can give the memory an
/// operation needs (peak during the operation minus live bytes before it), and the
/// allocations (and growing reallocations) it makes. Allocates with mimalloc, as the
/// `protector` binary does.
///
/// The counters are updated with plain loads and stores, not locked read-modify-write
/// instructions, which would add about a tenth to the very time the report measures.
/// The measured operations run on one thread, where the counts are exact; while
/// several threads allocate at once (the throughput part, which reports no memory)
/// updates may be lost, which shifts the live count but not a difference taken on one
/// thread afterwards.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);
static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded to mimalloc unchanged; the counters are only
// bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { MiMalloc.alloc(layout) };
        if !p.is_null() {
            grow(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { MiMalloc.dealloc(ptr, layout) };
        shrink(layout.size());
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { MiMalloc.alloc_zeroed(layout) };
        if !p.is_null() {
            grow(layout.size());
        }
        p
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { MiMalloc.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                grow(new_size - layout.size());
            } else {
                shrink(layout.size() - new_size);
            }
        }
        p
    }
}

#[allow(clippy::cast_possible_wrap)]
fn grow(n: usize) {
    ALLOCS.store(ALLOCS.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    let live = LIVE.load(Ordering::Relaxed).wrapping_add(n as isize);
    LIVE.store(live, Ordering::Relaxed);
    if live > PEAK.load(Ordering::Relaxed) {
        PEAK.store(live, Ordering::Relaxed);
    }
}

#[allow(clippy::cast_possible_wrap)]
fn shrink(n: usize) {
    let live = LIVE.load(Ordering::Relaxed).wrapping_sub(n as isize);
    LIVE.store(live, Ordering::Relaxed);
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Resets the peak to the live bytes; returns them.
fn reset_peak() -> isize {
    let live = LIVE.load(Ordering::Relaxed);
    PEAK.store(live, Ordering::Relaxed);
    live
}

struct Args {
    quick: bool,
    steps: bool,
    only: Option<String>,
    n: Option<usize>,
    /// Engine-overhead measurements per size.
    repeats: usize,
    /// The engine-overhead part's stores: SQLite files (the default) or in memory.
    memory_stores: bool,
}

impl Args {
    /// Reads the command line's arguments (without the program name).
    fn parse(args: impl Iterator<Item = String>) -> Result<Self, String> {
        let (mut quick, mut steps, mut memory_stores) = (false, false, false);
        let (mut only, mut n, mut repeats) = (None, None, None);
        let number = |flag: &str, v: &str| {
            v.parse::<usize>()
                .ok()
                .filter(|k| *k > 0)
                .ok_or_else(|| format!("{flag} takes a whole number of at least 1, not '{v}'"))
        };
        for a in args {
            if a == "--quick" {
                quick = true;
            } else if a == "--steps" {
                steps = true;
            } else if let Some(part) = a.strip_prefix("--only=") {
                if !["rto", "overhead", "throughput"].contains(&part) {
                    return Err(format!(
                        "--only= takes rto, overhead or throughput, not '{part}'"
                    ));
                }
                only = Some(part.to_owned());
            } else if let Some(v) = a.strip_prefix("--n=") {
                n = Some(number("--n=", v)?);
            } else if let Some(v) = a.strip_prefix("--runs=") {
                repeats = Some(number("--runs=", v)?);
            } else if let Some(v) = a.strip_prefix("--stores=") {
                memory_stores = match v {
                    "sqlite" => false,
                    "memory" => true,
                    _ => return Err(format!("--stores= takes sqlite or memory, not '{v}'")),
                };
            } else {
                return Err(format!("unknown argument '{a}'"));
            }
        }
        Ok(Self {
            quick,
            steps,
            only,
            n,
            repeats: repeats.unwrap_or(if quick { 1 } else { 3 }),
            memory_stores,
        })
    }

    fn runs(&self, part: &str) -> bool {
        self.only.as_deref().is_none_or(|o| o == part)
    }

    fn sizes(&self, quick: &[usize], full: &[usize]) -> Vec<usize> {
        match self.n {
            Some(n) => vec![n],
            None if self.quick => quick.to_vec(),
            None => full.to_vec(),
        }
    }
}

fn main() {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("rto_report: {e}");
            eprintln!("usage: rto_report [--quick] [--steps] [--only=rto|overhead|throughput] [--n=N] [--runs=K] [--stores=sqlite|memory]");
            std::process::exit(2);
        }
    };
    install_hooks();
    let started = support::wall_clock();
    if args.runs("rto") {
        rto_table(&args);
    }
    if args.runs("overhead") {
        overhead_table(&args);
    }
    if args.runs("throughput") {
        throughput_line(&args);
    }
    println!();
    println!(
        "Total wall time of the report: {:.1} s.",
        started.elapsed().as_secs_f64()
    );
}

// ---------------------------------------------------------------------------------------
// RTO efficiency

fn rto_table(args: &Args) {
    let sizes = args.sizes(&[10], &[10, 100, 1000]);
    let profile = LatencyProfile::realistic();
    println!("### RTO efficiency (`realistic` profile, 2 volumes per VM)");
    println!();
    println!(
        "Bound = Σ_steps max_(site, class) ceil(calls / limit) × latency, with the calls \
         each step of the operation issued (counted by the simulator between the engine's \
         step boundaries; work before, between and after steps counts as its own step) and \
         the latency and per-site limit of each class from the profile table. \
         Ratio = virtual RTO / bound."
    );
    println!();
    let mut header = String::from("| N | operation | virtual RTO | bound | ratio |");
    let mut rule = String::from("|---:|---|---:|---:|---:|");
    for s in SERVICES {
        header.push_str(&format!(" {s}/VM |"));
        rule.push_str("---:|");
    }
    header.push_str(" writes lost (sum / max) | wall |");
    rule.push_str("---:|---:|");
    println!("{header}");
    println!("{rule}");
    for n in sizes {
        let rt = support::paused_runtime();
        rt.block_on(async {
            let bench = Setup::new(42 + n as u64, n, profile.clone()).build().await;
            bench.let_time_pass(Duration::from_secs(600)).await;
            let t = support::wall_clock();
            let fo = bench.failover(SimSite::A, FailoverType::Planned).await;
            let fo_wall = t.elapsed();
            let t = support::wall_clock();
            let fb = bench.failback(SimSite::B).await;
            let fb_wall = t.elapsed();
            row(args, &profile, n, "planned failover", &fo, fo_wall);
            row(args, &profile, n, "failback (after planned)", &fb, fb_wall);
            bench.let_time_pass(Duration::from_secs(700)).await;
            bench.take_site_down(SimSite::A);
            let t = support::wall_clock();
            let ufo = bench.failover(SimSite::A, FailoverType::Unplanned).await;
            let ufo_wall = t.elapsed();
            bench.world.bring_site_up(SimSite::A);
            bench
                .b
                .sync_force(&bench.ctx, support::PG)
                .await
                .expect("sync-force");
            let t = support::wall_clock();
            let ufb = bench.failback(SimSite::B).await;
            let ufb_wall = t.elapsed();
            row(args, &profile, n, "unplanned failover", &ufo, ufo_wall);
            row(
                args,
                &profile,
                n,
                "failback (after unplanned)",
                &ufb,
                ufb_wall,
            );
        });
    }
    println!();
}

fn row(args: &Args, profile: &LatencyProfile, n: usize, what: &str, run: &Run, wall: Duration) {
    let bound = support::step_barrier_bound(profile, &run.segments);
    let rto = run.virtual_rto;
    let ratio = rto.as_secs_f64() / bound.as_secs_f64().max(f64::MIN_POSITIVE);
    let mut line = format!(
        "| {n} | {what} | {} | {} | {ratio:.3} |",
        fmt_secs(rto),
        fmt_secs(bound)
    );
    for s in SERVICES {
        let per_vm = support::service_calls(&run.calls, s) as f64 / n as f64;
        line.push_str(&format!(" {per_vm:.2} |"));
    }
    let sum: u64 = run.writes_lost.iter().sum();
    let max = run.writes_lost.iter().copied().max().unwrap_or(0);
    line.push_str(&format!(
        " {sum} / {max} ({} volumes) | {:.2} s |",
        run.writes_lost.len(),
        wall.as_secs_f64()
    ));
    println!("{line}");
    if args.steps {
        for seg in &run.segments {
            let b = support::step_barrier_bound(profile, std::slice::from_ref(seg));
            let calls: Vec<String> = seg
                .calls
                .iter()
                .map(|((site, class), c)| format!("{}:{class:?}={c}", site.name()))
                .collect();
            eprintln!(
                "  N={n} {what}: {:<20} took {:>9} bound {:>9}  {}",
                seg.name,
                fmt_secs(seg.took),
                fmt_secs(b),
                calls.join(" ")
            );
        }
    }
}

fn fmt_secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

// ---------------------------------------------------------------------------------------
// Engine overhead

fn overhead_table(args: &Args) {
    let sizes = args.sizes(&[100], &[100, 1000, 10_000]);
    let stores = if args.memory_stores {
        "in-memory stores"
    } else {
        "SQLite stores"
    };
    println!("### Engine overhead (`zero` profile, {stores}, planned failover)");
    println!();
    println!("| N | runs | wall (median) | wall per VM (median) | wall per VM (range) | peak heap per VM | VmHWM growth per VM | allocations per VM | setup wall (median) |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for n in sizes {
        let runs: Vec<OverheadRun> = (0..args.repeats)
            .map(|_| overhead_run(n, args.memory_stores))
            .collect();
        let wall = median(runs.iter().map(|r| r.wall).collect());
        let setup = median(runs.iter().map(|r| r.setup).collect());
        let fastest = runs.iter().map(|r| r.wall).min().unwrap_or_default();
        let slowest = runs.iter().map(|r| r.wall).max().unwrap_or_default();
        let per_vm = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
        let most = |f: fn(&OverheadRun) -> u64| runs.iter().map(f).max().unwrap_or(0);
        println!(
            "| {n} | {} | {:.3} s | {:.1} µs | {:.1}–{:.1} µs | {:.1} KB | {:.1} KB | {:.0} | {:.1} s |",
            runs.len(),
            wall.as_secs_f64(),
            per_vm(wall),
            per_vm(fastest),
            per_vm(slowest),
            most(|r| r.peak_bytes) as f64 / 1000.0 / n as f64,
            most(|r| r.hwm_growth_kib) as f64 * 1.024 / n as f64,
            most(|r| r.allocations) as f64 / n as f64,
            setup.as_secs_f64()
        );
    }
    println!();
    println!(
        "Each size is measured `runs` times (`--runs=K`), each time on a new world and new \
         stores. Wall: real time from the failover request to the operation's end (the \
         bench's own checks before and after are not timed); the median and the range \
         (fastest–slowest) of the runs. Peak heap per VM: the highest live heap during the \
         failover minus the live heap before it (counting allocator), over N. VmHWM growth: \
         growth of the process's peak resident set during the failover, over N (0 when an \
         earlier run or the setup already peaked higher). Allocations per VM: heap \
         allocations and growing reallocations during the failover, over N (deterministic \
         for a given build, unlike the wall time). Memory and allocations are the largest \
         of the runs."
    );
    println!();
}

/// One measured failover of the engine-overhead table.
struct OverheadRun {
    wall: Duration,
    setup: Duration,
    peak_bytes: u64,
    hwm_growth_kib: u64,
    allocations: u64,
}

/// Builds a world of `n` VMs with SQLite stores in a new directory (in-memory stores
/// with `memory_stores`) and measures its planned failover.
fn overhead_run(n: usize, memory_stores: bool) -> OverheadRun {
    let dir = (!memory_stores).then(|| tempfile::tempdir().expect("temporary directory"));
    let rt = support::paused_runtime();
    rt.block_on(async {
        let t = support::wall_clock();
        let world = Setup::new(7 + n as u64, n, LatencyProfile::zero());
        let bench = match &dir {
            Some(dir) => world.build_sqlite(dir.path()).await,
            None => world.build().await,
        };
        bench.let_time_pass(Duration::from_secs(600)).await;
        let setup = t.elapsed();
        let run = bench.failover(SimSite::A, FailoverType::Planned).await;
        assert!(run.writes_lost.iter().all(|l| *l == 0));
        let m = *MEASURED.lock().unwrap_or_else(|p| p.into_inner());
        OverheadRun {
            wall: run.wall,
            setup,
            peak_bytes: u64::try_from(m.peak.saturating_sub(m.live_before)).unwrap_or(0),
            hwm_growth_kib: m.hwm_after.saturating_sub(m.hwm_before),
            allocations: m.allocs_after.saturating_sub(m.allocs_before),
        }
    })
}

/// The median of `values` (the mean of the middle two for an even count); zero for
/// none.
fn median(mut values: Vec<Duration>) -> Duration {
    values.sort_unstable();
    match values.len() {
        0 => Duration::ZERO,
        k if k % 2 == 1 => values[k / 2],
        k => (values[k / 2 - 1] + values[k / 2]) / 2,
    }
}

/// Memory counters around the last measured operation.
#[derive(Clone, Copy)]
struct Measured {
    live_before: isize,
    peak: isize,
    hwm_before: u64,
    hwm_after: u64,
    allocs_before: u64,
    allocs_after: u64,
}

static MEASURED: std::sync::Mutex<Measured> = std::sync::Mutex::new(Measured {
    live_before: 0,
    peak: 0,
    hwm_before: 0,
    hwm_after: 0,
    allocs_before: 0,
    allocs_after: 0,
});

/// [`support::OperationHooks`] of the report: memory counters and profiler control
/// around each measured operation.
fn install_hooks() {
    fn before() {
        let mut m = MEASURED.lock().unwrap_or_else(|p| p.into_inner());
        m.hwm_before = support::vm_hwm_kib().unwrap_or(0);
        m.live_before = reset_peak();
        m.allocs_before = ALLOCS.load(Ordering::Relaxed);
        perf_control("enable");
    }
    fn after() {
        perf_control("disable");
        let mut m = MEASURED.lock().unwrap_or_else(|p| p.into_inner());
        m.peak = PEAK.load(Ordering::Relaxed);
        m.allocs_after = ALLOCS.load(Ordering::Relaxed);
        m.hwm_after = support::vm_hwm_kib().unwrap_or(0);
    }
    support::set_operation_hooks(support::OperationHooks { before, after });
}

/// Writes `command` to the `perf record` control file named by `PROTECTOR_PERF_CTL`,
/// if there is one.
fn perf_control(command: &str) {
    use std::io::Write;
    let Some(path) = std::env::var_os("PROTECTOR_PERF_CTL") else {
        return;
    };
    let written = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|mut f| writeln!(f, "{command}"));
    if let Err(e) = written {
        eprintln!("cannot write to the perf control file {path:?}: {e}");
    }
}

// ---------------------------------------------------------------------------------------
// Simulation throughput

fn throughput_line(args: &Args) {
    let window = if args.quick {
        Duration::from_secs(3)
    } else {
        Duration::from_secs(20)
    };
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = support::wall_clock();
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let done = done.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let rt = support::paused_runtime();
                let mut seed = 1_000_000 * (t as u64 + 1);
                while !stop.load(Ordering::Relaxed) {
                    rt.block_on(scenario(seed));
                    seed += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    support::wall_sleep(window);
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().expect("throughput worker");
    }
    let elapsed = started.elapsed();
    let n = done.load(Ordering::Relaxed);
    println!("### Simulation throughput");
    println!();
    println!(
        "{:.0} seeded scenarios per minute ({n} in {:.1} s on {threads} threads): each \
         builds a `realistic` world with 10 VMs, protects them, and runs planned failover \
         and failback under paused tokio time.",
        n as f64 * 60.0 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );
}

async fn scenario(seed: u64) {
    let bench = Setup::new(seed, 10, LatencyProfile::realistic())
        .build()
        .await;
    bench.let_time_pass(Duration::from_secs(120)).await;
    let (fo, fb) = bench.planned_cycle().await;
    assert!(fo.writes_lost.iter().all(|l| *l == 0));
    assert!(fb.writes_lost.iter().all(|l| *l == 0));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, String> {
        Args::parse(args.iter().map(|a| (*a).to_owned()))
    }

    #[test]
    fn runs_default_to_three_and_to_one_when_quick() {
        assert_eq!(parse(&[]).unwrap().repeats, 3);
        assert_eq!(parse(&["--quick"]).unwrap().repeats, 1);
        let args = parse(&["--quick", "--runs=7", "--only=overhead", "--n=10000"]).unwrap();
        assert_eq!(args.repeats, 7);
        assert_eq!(args.n, Some(10_000));
        assert!(args.runs("overhead") && !args.runs("rto"));
        assert!(!args.memory_stores);
        assert!(parse(&["--stores=memory"]).unwrap().memory_stores);
        assert!(!parse(&["--stores=sqlite"]).unwrap().memory_stores);
    }

    #[test]
    fn bad_arguments_are_refused_with_their_flag() {
        for (args, says) in [
            (&["--runs=0"][..], "--runs="),
            (&["--runs=many"][..], "'many'"),
            (&["--n=-3"][..], "--n="),
            (&["--only=memory"][..], "rto, overhead or throughput"),
            (&["--stores=disk"][..], "sqlite or memory, not 'disk'"),
            (&["--runs", "7"][..], "unknown argument '--runs'"),
        ] {
            let e = parse(args)
                .err()
                .unwrap_or_else(|| panic!("{args:?} was accepted"));
            assert!(e.contains(says), "{args:?}: {e}");
        }
    }

    #[test]
    fn the_median_takes_the_middle_run_or_the_mean_of_the_middle_two() {
        let ms = Duration::from_millis;
        assert_eq!(median(vec![ms(9), ms(1), ms(5)]), ms(5));
        assert_eq!(median(vec![ms(8), ms(2), ms(4), ms(100)]), ms(6));
        assert_eq!(median(vec![ms(3)]), ms(3));
        assert_eq!(median(Vec::new()), Duration::ZERO);
    }
}
