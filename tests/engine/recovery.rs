//! Restart reconciliation: the engine crashes at every step boundary of every operation
//! type (SQLite stores), a new process resumes from the journal, and the world ends in
//! the same state as an uninterrupted run — no duplicate servers, nothing leaked.

use std::time::Duration;

use protector::core::engine::TestFailoverRequest;
use protector::core::model::{Operation, OperationStatus, OperationType, PgStatus};
use protector::core::ports::{Compute, StepBoundary};
use protector::core::progress::plan;
use protector::core::Protector;
use protector::sim::{DrStores, SimSite};

use super::fixture::{assert_completed, config, seed, Fx, Setup, PG};

fn boundaries(t: OperationType) -> Vec<StepBoundary> {
    plan(t)
        .iter()
        .flat_map(|s| [StepBoundary::Before(s.step), StepBoundary::After(s.step)])
        .collect()
}

/// Starts an operation with a crash point installed, then restarts the engine over the
/// same SQLite files and lets it resume. Returns the final record.
async fn crash_and_resume<F, Fut>(
    fx: &Fx,
    dir: &std::path::Path,
    local: SimSite,
    kind: OperationType,
    boundary: StepBoundary,
    start: F,
) -> Operation
where
    F: FnOnce(Protector) -> Fut,
    Fut: std::future::Future<Output = Operation>,
{
    let guard = fx.world.crash_at(kind, boundary);
    let p = match local {
        SimSite::A => fx.a.clone(),
        SimSite::B => fx.b.clone(),
    };
    let op = start(p.clone()).await;
    let crashed = p.wait(&op.id).await.expect("record");
    assert!(
        !crashed.status.is_terminal(),
        "{kind} crashed at {boundary:?} but ended {}",
        crashed.status
    );
    drop(guard);
    // A new process: fresh handles on the same files.
    let stores = DrStores::sqlite(dir).expect("reopen stores");
    let restarted = fx
        .world
        .protector(local, &stores, config())
        .await
        .expect("restart");
    let resumed = restarted.recover().await.expect("recover");
    assert_eq!(resumed, vec![op.id.clone()]);
    restarted.wait(&op.id).await.expect("resumed record")
}

async fn sqlite_fixture(seed_value: u64, dir: &std::path::Path) -> Fx {
    let stores = DrStores::sqlite(dir).expect("stores");
    let fx = Setup::new(seed_value).stores(stores).build().await;
    fx.let_time_pass(Duration::from_secs(400)).await;
    fx
}

async fn servers_named(fx: &Fx, site: SimSite, name: &str) -> usize {
    fx.world
        .compute(site, &fx.ctx)
        .list_servers()
        .await
        .expect("servers")
        .into_iter()
        .filter(|s| s.name == name)
        .count()
}

#[tokio::test(start_paused = true)]
async fn failover_resumes_after_a_crash_at_every_step_boundary() {
    for (i, boundary) in boundaries(OperationType::Failover).into_iter().enumerate() {
        let dir = tempfile::tempdir().expect("dir");
        let fx = sqlite_fixture(seed(500 + i as u64), dir.path()).await;
        let req = fx.planned();
        let op = crash_and_resume(
            &fx,
            dir.path(),
            SimSite::A,
            OperationType::Failover,
            boundary,
            |p| {
                let ctx = fx.ctx.clone();
                async move { p.failover(&ctx, PG, req).await.expect("start") }
            },
        )
        .await;
        assert_completed(&op);
        let pg = fx.pg(SimSite::B).await;
        assert_eq!(pg.status, PgStatus::FailedOver, "crash at {boundary:?}");
        assert_eq!(pg.failover_count, 1);
        for m in &pg.members {
            assert_eq!(
                servers_named(&fx, SimSite::B, &m.instance_name).await,
                1,
                "duplicate after {boundary:?}"
            );
        }
        fx.check().await;
    }
}

#[tokio::test(start_paused = true)]
async fn failback_resumes_after_a_crash_at_every_step_boundary() {
    for (i, boundary) in boundaries(OperationType::Failback).into_iter().enumerate() {
        let dir = tempfile::tempdir().expect("dir");
        let fx = sqlite_fixture(seed(600 + i as u64), dir.path()).await;
        let op =
            fx.a.failover(&fx.ctx, PG, fx.planned())
                .await
                .expect("failover");
        assert_completed(&fx.finish(&fx.a, op).await);
        let req = fx.failback(true);
        let op = crash_and_resume(
            &fx,
            dir.path(),
            SimSite::B,
            OperationType::Failback,
            boundary,
            |p| {
                let ctx = fx.ctx.clone();
                async move { p.failback(&ctx, PG, req).await.expect("start") }
            },
        )
        .await;
        assert_completed(&op);
        let pg = fx.pg(SimSite::A).await;
        assert_eq!(pg.status, PgStatus::Active, "crash at {boundary:?}");
        assert_eq!(pg.failover_count, 2);
        for m in &pg.members {
            assert_eq!(
                servers_named(&fx, SimSite::A, &m.instance_name).await,
                1,
                "duplicate after {boundary:?}"
            );
        }
        fx.check().await;
    }
}

#[tokio::test(start_paused = true)]
async fn test_failover_and_cleanup_resume_after_a_crash_at_every_step_boundary() {
    for (i, boundary) in boundaries(OperationType::TestFailover)
        .into_iter()
        .enumerate()
    {
        let dir = tempfile::tempdir().expect("dir");
        let fx = sqlite_fixture(seed(700 + i as u64), dir.path()).await;
        let req = TestFailoverRequest {
            mappings: fx.mappings_a_to_b(),
        };
        let op = crash_and_resume(
            &fx,
            dir.path(),
            SimSite::A,
            OperationType::TestFailover,
            boundary,
            |p| {
                let ctx = fx.ctx.clone();
                async move { p.test_failover(&ctx, PG, req).await.expect("start") }
            },
        )
        .await;
        assert_completed(&op);
        assert_eq!(
            op.result_data["instances_created"].as_array().map(Vec::len),
            Some(2)
        );
        fx.check().await;
    }
    for (i, boundary) in boundaries(OperationType::TestCleanup)
        .into_iter()
        .enumerate()
    {
        let dir = tempfile::tempdir().expect("dir");
        let fx = sqlite_fixture(seed(800 + i as u64), dir.path()).await;
        let op =
            fx.a.test_failover(
                &fx.ctx,
                PG,
                TestFailoverRequest {
                    mappings: fx.mappings_a_to_b(),
                },
            )
            .await
            .expect("drill");
        assert_completed(&fx.finish(&fx.a, op).await);
        let op = crash_and_resume(
            &fx,
            dir.path(),
            SimSite::A,
            OperationType::TestCleanup,
            boundary,
            |p| {
                let ctx = fx.ctx.clone();
                async move { p.test_cleanup(&ctx, PG).await.expect("start") }
            },
        )
        .await;
        assert_completed(&op);
        assert!(fx.pg(SimSite::A).await.test_resources.is_none());
        fx.check().await;
    }
}

#[tokio::test(start_paused = true)]
async fn consistency_group_sync_resumes_after_a_crash_at_every_step_boundary() {
    for (i, boundary) in boundaries(OperationType::SyncVolumes)
        .into_iter()
        .enumerate()
    {
        let dir = tempfile::tempdir().expect("dir");
        let fx = sqlite_fixture(seed(900 + i as u64), dir.path()).await;
        let op = crash_and_resume(
            &fx,
            dir.path(),
            SimSite::A,
            OperationType::SyncVolumes,
            boundary,
            |p| {
                let ctx = fx.ctx.clone();
                async move { p.sync_volumes(&ctx, PG).await.expect("start") }
            },
        )
        .await;
        assert_completed(&op);
        assert!(
            op.result_data["replicated_snapshot"].is_string(),
            "{}",
            op.result_data
        );
        fx.check().await;
    }
}

#[tokio::test(start_paused = true)]
async fn an_operation_whose_group_vanished_is_failed_with_a_reason_on_restart() {
    let dir = tempfile::tempdir().expect("dir");
    let fx = sqlite_fixture(seed(950), dir.path()).await;
    let guard = fx.world.crash_at(
        OperationType::SyncVolumes,
        StepBoundary::Before(protector::core::progress::StepId::Prepare),
    );
    let op = fx.a.sync_volumes(&fx.ctx, PG).await.expect("start");
    fx.a.wait(&op.id).await.expect("crashed");
    drop(guard);
    for site in SimSite::BOTH {
        fx.stores
            .metadata(site)
            .delete_protection_group(&fx.pg.id)
            .await
            .expect("delete");
    }
    let stores = DrStores::sqlite(dir.path()).expect("stores");
    let restarted = fx
        .world
        .protector(SimSite::A, &stores, config())
        .await
        .expect("restart");
    restarted.recover().await.expect("recover");
    let op = restarted.wait(&op.id).await.expect("record");
    assert_eq!(op.status, OperationStatus::Failed);
    assert!(op
        .error_message
        .unwrap_or_default()
        .starts_with("Operation interrupted by protector-engine restart"),);
}

/// An operation store that takes `budget` more writes and then refuses every write, as
/// a full disk would; reads still work.
struct FailingWrites {
    inner: std::sync::Arc<dyn protector::core::store::OperationStore>,
    budget: std::sync::atomic::AtomicI64,
    refused: std::sync::atomic::AtomicUsize,
}

impl FailingWrites {
    fn check(&self) -> Result<(), protector::core::StoreError> {
        if self
            .budget
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst)
            <= 0
        {
            self.refused
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            return Err(protector::core::StoreError::Database(Box::new(
                std::io::Error::other("no space left on device"),
            )));
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl protector::core::store::OperationStore for FailingWrites {
    async fn insert_operation(&self, op: &Operation) -> Result<(), protector::core::StoreError> {
        self.check()?;
        self.inner.insert_operation(op).await
    }
    async fn update_operation(&self, op: &Operation) -> Result<(), protector::core::StoreError> {
        self.check()?;
        self.inner.update_operation(op).await
    }
    async fn get_operation(
        &self,
        id: &protector::core::ids::OperationId,
    ) -> Result<Option<Operation>, protector::core::StoreError> {
        self.inner.get_operation(id).await
    }
    async fn list_operations(
        &self,
        filter: &protector::core::model::OperationFilter,
    ) -> Result<Vec<Operation>, protector::core::StoreError> {
        self.inner.list_operations(filter).await
    }
    async fn append_journal(
        &self,
        id: &protector::core::ids::OperationId,
        at: chrono::DateTime<chrono::Utc>,
        event: protector::core::model::JournalEvent,
    ) -> Result<protector::core::model::JournalEntry, protector::core::StoreError> {
        self.check()?;
        self.inner.append_journal(id, at, event).await
    }
    async fn append_journal_batch(
        &self,
        id: &protector::core::ids::OperationId,
        events: Vec<(
            chrono::DateTime<chrono::Utc>,
            protector::core::model::JournalEvent,
        )>,
    ) -> Result<Vec<protector::core::model::JournalEntry>, protector::core::StoreError> {
        self.check()?;
        self.inner.append_journal_batch(id, events).await
    }
    async fn journal(
        &self,
        id: &protector::core::ids::OperationId,
    ) -> Result<Vec<protector::core::model::JournalEntry>, protector::core::StoreError> {
        self.inner.journal(id).await
    }
}

/// The store fails in the middle of a failover (a full disk): the run stops where a
/// crash would and, once the store takes writes again, resumes from its journal in the
/// same process and completes, with no duplicate server and nothing leaked.
#[tokio::test(start_paused = true)]
async fn a_failover_whose_store_fails_for_a_while_resumes_and_completes() {
    let base = DrStores::memory();
    let flaky = std::sync::Arc::new(FailingWrites {
        inner: base.operations(SimSite::A),
        budget: std::sync::atomic::AtomicI64::new(i64::MAX),
        refused: std::sync::atomic::AtomicUsize::new(0),
    });
    let stores = base.with_operations(SimSite::A, flaky.clone());
    let fx = Setup::new(seed(540)).stores(stores).build().await;
    fx.let_time_pass(Duration::from_secs(400)).await;
    // Twelve writes into the failover (a few steps in), the disk is full for ten
    // minutes.
    flaky.budget.store(13, std::sync::atomic::Ordering::SeqCst);
    let op =
        fx.a.failover(&fx.ctx, PG, fx.planned())
            .await
            .expect("failover starts");
    fx.let_time_pass(Duration::from_secs(600)).await;
    let stuck = fx
        .stores
        .operations(SimSite::A)
        .get_operation(&op.id)
        .await
        .expect("read")
        .expect("record");
    assert_eq!(stuck.status, OperationStatus::Running);
    assert!(
        !stuck.steps_completed.is_empty(),
        "the store failed before any step ended: {:?}",
        stuck.steps_completed
    );
    // Several resumptions were refused by the store.
    assert!(flaky.refused.load(std::sync::atomic::Ordering::SeqCst) > 3);
    flaky
        .budget
        .store(i64::MAX, std::sync::atomic::Ordering::SeqCst);
    let op = fx.finish(&fx.a, op).await;
    assert_completed(&op);
    let pg = fx.pg(SimSite::B).await;
    assert_eq!(pg.status, PgStatus::FailedOver);
    for m in &pg.members {
        assert_eq!(servers_named(&fx, SimSite::B, &m.instance_name).await, 1);
    }
    fx.check().await;
}
