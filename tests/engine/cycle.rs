//! The whole life of a protection group, for async and sync replication:
//! test failover → test cleanup → planned failover → failback → unplanned failover →
//! sync-force → failback, with the simulator's invariants after every step.

use std::time::Duration;

use protector::core::engine::TestFailoverRequest;
use protector::core::model::{OperationFilter, PgStatus, ReplicationType};
use protector::sim::SimSite;

use super::fixture::{assert_completed, seed, Setup, PG};

async fn full_cycle(replication: ReplicationType, seed_value: u64) {
    let mut setup = Setup::new(seed_value);
    if replication == ReplicationType::Sync {
        setup = setup.sync();
    }
    let fx = setup.build().await;
    fx.let_time_pass(Duration::from_secs(400)).await;
    fx.check().await;

    let op =
        fx.a.test_failover(
            &fx.ctx,
            PG,
            TestFailoverRequest {
                mappings: fx.mappings_a_to_b(),
            },
        )
        .await
        .expect("test failover");
    assert_completed(&fx.finish(&fx.a, op).await);
    fx.check().await;

    let op = fx.a.test_cleanup(&fx.ctx, PG).await.expect("test cleanup");
    assert_completed(&fx.finish(&fx.a, op).await);
    fx.check().await;

    let op =
        fx.a.failover(&fx.ctx, PG, fx.planned())
            .await
            .expect("planned failover");
    assert_completed(&fx.finish(&fx.a, op).await);
    assert_eq!(fx.pg(SimSite::B).await.status, PgStatus::FailedOver);
    fx.check().await;

    let op =
        fx.b.failback(&fx.ctx, PG, fx.failback(true))
            .await
            .expect("failback");
    assert_completed(&fx.finish(&fx.b, op).await);
    assert_eq!(fx.pg(SimSite::A).await.status, PgStatus::Active);
    fx.check().await;

    fx.let_time_pass(Duration::from_secs(700)).await;
    fx.world.take_site_down(SimSite::A);
    let op =
        fx.b.failover(&fx.ctx, PG, fx.unplanned())
            .await
            .expect("unplanned failover");
    assert_completed(&fx.finish(&fx.b, op).await);
    fx.world.bring_site_up(SimSite::A);
    let status = fx.b.sync_force(&fx.ctx, PG).await.expect("sync-force");
    assert_eq!(status.status.as_str(), "IN SYNC");
    fx.check().await;

    let op =
        fx.b.failback(&fx.ctx, PG, fx.failback(true))
            .await
            .expect("second failback");
    assert_completed(&fx.finish(&fx.b, op).await);
    let pg = fx.pg(SimSite::A).await;
    assert_eq!(pg.status, PgStatus::Active);
    assert_eq!(pg.current_primary_site_id, pg.primary_site_id);
    assert_eq!(pg.failover_count, 4);
    fx.check().await;

    // Operations are recorded on the site that ran them, newest first.
    let on_b =
        fx.b.list_operations(&fx.ctx, &OperationFilter::default())
            .await
            .expect("ops");
    let kinds: Vec<&str> = on_b.iter().map(|o| o.operation_type.as_str()).collect();
    assert_eq!(kinds, ["failback", "failover", "failback"]);
}

#[tokio::test(start_paused = true)]
async fn full_cycle_with_async_replication_keeps_every_invariant() {
    full_cycle(ReplicationType::Async, seed(51)).await;
}

#[tokio::test(start_paused = true)]
async fn full_cycle_with_sync_replication_keeps_every_invariant() {
    full_cycle(ReplicationType::Sync, seed(52)).await;
}

/// Sync replication, failback without reverse replication, then a planned failover
/// back to site B: the stale volumes left on B have copies in the pod. While the pod
/// is split (array B down) they are kept, recorded as stale; once it is whole the next
/// failover destroys the copies with the volumes, and nothing is left behind.
#[tokio::test(start_paused = true)]
async fn stale_volumes_of_a_sync_group_are_removed_with_their_pod_copies_only_when_the_pod_is_whole(
) {
    let fx = Setup::new(seed(53)).sync().build().await;
    fx.let_time_pass(Duration::from_secs(400)).await;
    let op =
        fx.a.failover(&fx.ctx, PG, fx.planned())
            .await
            .expect("planned failover");
    assert_completed(&fx.finish(&fx.a, op).await);
    let op =
        fx.b.failback(&fx.ctx, PG, fx.failback(false))
            .await
            .expect("failback");
    assert_completed(&fx.finish(&fx.b, op).await);
    fx.check().await;
    let b = fx.pg(SimSite::A).await.secondary_site_id.clone();
    let stale = fx.pg(SimSite::A).await.stale.get(&b).cloned();
    assert!(
        stale.as_ref().is_some_and(|s| !s.volumes.is_empty()),
        "the failback leaves the failed-over volumes on B as stale: {stale:?}"
    );

    // Array B is down: the pod is split, the failover fails, the stale volumes stay
    // recorded (their pod copies would come back when the pod heals).
    fx.world.take_array_down(SimSite::B).expect("array down");
    let op =
        fx.a.failover(&fx.ctx, PG, fx.planned())
            .await
            .expect("failover starts");
    let op = fx.finish(&fx.a, op).await;
    assert_eq!(op.status, protector::core::model::OperationStatus::Failed);
    let pg = fx.pg(SimSite::A).await;
    assert!(
        pg.stale.get(&b).is_some_and(|s| !s.volumes.is_empty()),
        "stale volumes kept while the pod is split: {:?}",
        pg.stale
    );
    fx.check().await;

    // Whole again: a forced failover (the group is in error) removes them for good.
    fx.world.bring_array_up(SimSite::B).expect("array up");
    fx.let_time_pass(Duration::from_secs(120)).await;
    let mut req = fx.planned();
    req.force = true;
    let op = fx.a.failover(&fx.ctx, PG, req).await.expect("failover");
    assert_completed(&fx.finish(&fx.a, op).await);
    assert!(!fx.pg(SimSite::B).await.stale.contains_key(&b));
    fx.check().await;
}
