//! SQLite store writes per engine step: `append_journal(step_started)`,
//! `update_operation`, `append_journal(step_completed)`, `update_operation` — what the
//! runner writes around every step — on a file-backed store holding a real operation
//! record (from a failover of 10 VMs on the `zero` profile); and journal appends one
//! per transaction against eight per transaction.

mod support;

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use protector::core::model::{FailoverType, JournalEvent};
use protector::core::progress::StepId;
use protector::sim::{LatencyProfile, SimSite};
use support::Setup;

/// The allocator the `protector` binary ships with, so the numbers are the product's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn store_writes(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let rt = support::paused_runtime();
    let (store, mut op, clock) = rt.block_on(async {
        let bench = Setup::new(3, 10, LatencyProfile::zero())
            .build_sqlite(dir.path())
            .await;
        bench.let_time_pass(Duration::from_secs(600)).await;
        let run = bench.failover(SimSite::A, FailoverType::Planned).await;
        (
            bench.stores.operations(SimSite::A),
            run.op,
            bench.world.clock(),
        )
    });
    c.bench_function("store/sqlite_step_writes", |b| {
        b.iter(|| {
            rt.block_on(async {
                let step = StepId::RecreateInstances;
                store
                    .append_journal(&op.id, clock.now(), JournalEvent::StepStarted { step })
                    .await
                    .expect("journal");
                op.progress = op.progress.saturating_add(1) % 100;
                store.update_operation(&op).await.expect("update");
                store
                    .append_journal(&op.id, clock.now(), JournalEvent::StepCompleted { step })
                    .await
                    .expect("journal");
                store.update_operation(&op).await.expect("update");
            })
        })
    });
}

/// One journal event per transaction against eight in one (the runner's group commit
/// when the members of a step journal at the same moment), per event.
fn journal_batches(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let rt = support::paused_runtime();
    let (store, op, clock) = rt.block_on(async {
        let bench = Setup::new(4, 10, LatencyProfile::zero())
            .build_sqlite(dir.path())
            .await;
        bench.let_time_pass(Duration::from_secs(600)).await;
        let run = bench.failover(SimSite::A, FailoverType::Planned).await;
        (
            bench.stores.operations(SimSite::A),
            run.op,
            bench.world.clock(),
        )
    });
    let event = JournalEvent::StepStarted {
        step: StepId::PromoteVolumes,
    };
    let mut group = c.benchmark_group("store/sqlite_journal_per_event");
    group.throughput(criterion::Throughput::Elements(8));
    group.bench_function("one_per_transaction", |b| {
        b.iter(|| {
            rt.block_on(async {
                for _ in 0..8 {
                    store
                        .append_journal(&op.id, clock.now(), event.clone())
                        .await
                        .expect("journal");
                }
            })
        })
    });
    group.bench_function("eight_per_transaction", |b| {
        b.iter(|| {
            rt.block_on(async {
                let events = (0..8).map(|_| (clock.now(), event.clone())).collect();
                store
                    .append_journal_batch(&op.id, events)
                    .await
                    .expect("journal");
            })
        })
    });
    group.finish();
}

criterion_group!(benches, store_writes, journal_batches);
criterion_main!(benches);
