//! Pure engine logic: the protection-group and operation state machines over a whole
//! failover/failback cycle, and policy evaluation (oslo.policy rules) for the calls an
//! operation authorizes.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use protector::core::ids::ProjectId;
use protector::core::model::{OperationStatus, OperationType, PgStatus};
use protector::core::policy::{rules, PolicyEngine, Target};
use protector::core::state::{check_start, op_transition, pg_transition, OpEvent, PgEvent};
use protector::core::RequestContext;

/// The allocator the `protector` binary ships with, so the numbers are the product's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Failover then failback: start, complete; returns the final status.
fn pg_cycle(mut status: PgStatus) -> PgStatus {
    for operation in [OperationType::Failover, OperationType::Failback] {
        status = pg_transition(
            status,
            PgEvent::Start {
                operation,
                force: false,
            },
        )
        .expect("start is legal");
        status = pg_transition(
            status,
            PgEvent::Completed {
                operation,
                partial: false,
            },
        )
        .expect("completion is legal");
    }
    status
}

fn op_lifecycle(status: OperationStatus) -> OperationStatus {
    let s = op_transition(status, OpEvent::Start).expect("start");
    op_transition(s, OpEvent::Complete).expect("complete")
}

fn state_machines(c: &mut Criterion) {
    c.bench_function("state/pg_failover_failback_cycle", |b| {
        b.iter(|| pg_cycle(black_box(PgStatus::Active)))
    });
    c.bench_function("state/op_pending_running_completed", |b| {
        b.iter(|| op_lifecycle(black_box(OperationStatus::Pending)))
    });
    c.bench_function("state/check_start_all_statuses", |b| {
        b.iter(|| {
            PgStatus::ALL
                .iter()
                .filter(|s| {
                    check_start("pg", black_box(**s), OperationType::Failover, false).is_ok()
                })
                .count()
        })
    });
}

fn policy(c: &mut Criterion) {
    let engine = PolicyEngine::with_defaults();
    let project = ProjectId::from("tenant-a");
    let owner = RequestContext::new("alice", "tenant-a", &["member"]);
    let stranger = RequestContext::new("mallory", "tenant-b", &["member"]);
    let admin = RequestContext::new("root", "admin", &["admin"]);
    let target = Target::project(&project);
    for (name, ctx) in [
        ("owner", &owner),
        ("other_project", &stranger),
        ("admin", &admin),
    ] {
        c.bench_function(&format!("policy/failover_{name}"), |b| {
            b.iter(|| {
                engine.check(
                    black_box(rules::PROTECTION_GROUPS_FAILOVER),
                    black_box(ctx),
                    black_box(&target),
                )
            })
        });
    }
}

criterion_group!(benches, state_machines, policy);
criterion_main!(benches);
