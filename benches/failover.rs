//! Failover of 100, 1,000 and 10,000 VMs (2 volumes each) on the `zero` latency profile
//! with SQLite stores: the engine's own cost, without simulated latency. Each sample
//! builds a fresh protected world (not timed) and times one planned failover under
//! paused tokio time, from the request to the operation's end (the bench's checks
//! before and after are not timed).
//! `cargo bench --bench failover -- failover_zero_sqlite/1000` runs one size; the peak
//! memory per VM is in `examples/rto_report.rs`.

mod support;

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode};
use protector::core::model::FailoverType;
use protector::sim::{LatencyProfile, SimSite};
use support::Setup;

/// The allocator the `protector` binary ships with, so the numbers are the product's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn failover(c: &mut Criterion) {
    let mut group = c.benchmark_group("failover_zero_sqlite");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    // `cargo test` runs benches once without `--bench`: keep that run small.
    let sizes: &[usize] = if std::env::args().any(|a| a == "--bench") {
        &[100, 1000, 10_000]
    } else {
        &[10]
    };
    for &n in sizes {
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for i in 0..iters {
                    let dir = tempfile::tempdir().expect("temporary directory");
                    let rt = support::paused_runtime();
                    total += rt.block_on(async {
                        let bench = Setup::new(i, n, LatencyProfile::zero())
                            .build_sqlite(dir.path())
                            .await;
                        bench.let_time_pass(Duration::from_secs(600)).await;
                        let run = bench.failover(SimSite::A, FailoverType::Planned).await;
                        run.wall
                    });
                }
                total
            });
        });
    }
    group.finish();
}

criterion_group!(benches, failover);
criterion_main!(benches);
