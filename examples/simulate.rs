//! Runs the deterministic simulation over a range of seeds.
//!
//! ```text
//! cargo run --release --example simulate -- --seeds 0..100000
//! PROTECTOR_SIM_SEED=42 cargo run --release --example simulate   # replay one seed
//! RUST_LOG=protector_core=debug PROTECTOR_SIM_SEED=42 cargo run --release --example simulate
//! ```
//!
//! With `RUST_LOG` set, the engine's log goes to stderr at that level.
//!
//! Prints one line per failing seed (with its replay command) and the totals.

#[path = "../tests/simulation/runner.rs"]
mod runner;

use std::time::Instant;

fn parse_range(arg: &str) -> Option<(u64, u64)> {
    let (a, b) = arg.split_once("..")?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut range = (0, 1000);
    let mut verbose = false;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--seeds" => {
                range = args
                    .get(i + 1)
                    .and_then(|a| parse_range(a))
                    .unwrap_or_else(|| {
                        eprintln!("usage: simulate [--seeds A..B] [--verbose]");
                        std::process::exit(2)
                    });
                i += 1;
            }
            "--verbose" | "-v" => verbose = true,
            other => {
                eprintln!("unknown argument {other}; usage: simulate [--seeds A..B] [--verbose]");
                std::process::exit(2)
            }
        }
        i += 1;
    }
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
    if std::env::var(protector::sim::SEED_ENV).is_ok() {
        let s = protector::sim::seed_from_env(0);
        range = (s, s + 1);
        verbose = true;
    }
    // Failures are reported per seed; keep panics from other seeds' output quiet.
    std::panic::set_hook(Box::new(|_| {}));
    // Wall-clock throughput of the campaign itself (seeds/s), not simulated time.
    #[allow(clippy::disallowed_methods)]
    let start = Instant::now();
    let (mut ok, mut failed) = (0u64, 0u64);
    let (mut ops, mut completed, mut op_failed, mut refused, mut crashes) = (0, 0, 0, 0, 0);
    for seed in range.0..range.1 {
        match runner::run_seed_blocking(seed) {
            Ok(o) => {
                ok += 1;
                ops += o.operations;
                completed += o.completed;
                op_failed += o.failed;
                refused += o.refused;
                crashes += o.crashes;
                if verbose {
                    println!("seed {seed} ok digest={}", o.digest);
                    for l in &o.log {
                        println!("    {l}");
                    }
                }
            }
            Err(f) => {
                failed += 1;
                println!(
                    "FAIL PROTECTOR_SIM_SEED={seed} {}",
                    f.message.lines().next().unwrap_or("")
                );
                if verbose {
                    println!("{f}");
                }
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "seeds {}..{}: {ok} passed, {failed} failed; {ops} operations ({completed} completed, {op_failed} failed, {refused} refused), {crashes} crash-restarts; {:.1}s, {:.1} seeds/s",
        range.0,
        range.1,
        secs,
        (ok + failed) as f64 / secs.max(1e-9)
    );
    if failed > 0 {
        std::process::exit(1);
    }
}
