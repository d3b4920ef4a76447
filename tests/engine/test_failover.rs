//! Test failover (DR drill) and test cleanup.

use std::time::Duration;

use protector::core::engine::TestFailoverRequest;
use protector::core::model::{OperationStatus, PgStatus};
use protector::core::ports::{BlockStorage, Compute, ServerStatus};
use protector::sim::SimSite;

use super::fixture::{assert_completed, seed, Fx, Setup, PG};

async fn drill(fx: &Fx) -> protector::core::model::Operation {
    let op =
        fx.a.test_failover(
            &fx.ctx,
            PG,
            TestFailoverRequest {
                mappings: fx.mappings_a_to_b(),
            },
        )
        .await
        .expect("test failover starts");
    fx.finish(&fx.a, op).await
}

async fn drtest_resources(fx: &Fx) -> (usize, usize) {
    let compute = fx.world.compute(SimSite::B, &fx.ctx);
    let cinder = fx.world.block_storage(SimSite::B, &fx.ctx);
    let servers = compute
        .list_servers()
        .await
        .expect("servers")
        .into_iter()
        .filter(|s| s.name.starts_with("drtest-"))
        .count();
    let volumes = cinder
        .list_volumes()
        .await
        .expect("volumes")
        .into_iter()
        .filter(|v| v.name.starts_with("drtest-"))
        .count();
    (servers, volumes)
}

#[tokio::test(start_paused = true)]
async fn test_failover_boots_clones_on_site_b_and_leaves_production_untouched() {
    let fx = Setup::new(seed(21)).build().await;
    fx.let_time_pass(Duration::from_secs(400)).await;
    let op = drill(&fx).await;
    assert_completed(&op);
    let steps: Vec<&str> = op.steps_completed.iter().map(|s| s.as_str()).collect();
    assert_eq!(
        steps,
        [
            "prepare",
            "validate_target",
            "get_snapshot",
            "clone_volumes",
            "recreate_instances",
            "finalize"
        ]
    );
    let checks = op.result_data["health_checks"]
        .as_array()
        .expect("health checks");
    assert_eq!(checks.len(), 2);
    assert!(checks.iter().all(|c| c["passed"] == true), "{checks:?}");
    assert!(op.result_data["rto_seconds"].as_i64().is_some());
    let created = op.result_data["instances_created"]
        .as_array()
        .expect("instances");
    assert_eq!(created.len(), 2);

    // Production is untouched: the group is active on site A and its servers run.
    let pg = fx.pg(SimSite::A).await;
    assert_eq!(pg.status, PgStatus::Active);
    assert_eq!(pg.current_primary_site_id, pg.primary_site_id);
    assert_eq!(pg.failover_count, 0);
    assert!(pg.test_resources.is_some());
    let compute_a = fx.world.compute(SimSite::A, &fx.ctx);
    for s in &fx.workload.servers {
        assert_eq!(
            compute_a.get_server(&s.id).await.expect("prod").status,
            ServerStatus::Active
        );
    }
    // The clones run on site B under test names.
    let compute_b = fx.world.compute(SimSite::B, &fx.ctx);
    for c in created {
        let s = compute_b
            .get_server(&c["id"].as_str().expect("id").into())
            .await
            .expect("test server");
        assert!(s.name.starts_with("drtest-prod-web-app-"), "{}", s.name);
        assert_eq!(s.status, ServerStatus::Active);
    }
    assert_eq!(drtest_resources(&fx).await, (2, 4));
    fx.check().await;
}

#[tokio::test(start_paused = true)]
async fn test_cleanup_removes_every_test_resource_and_running_it_twice_is_fine() {
    let fx = Setup::new(seed(22)).build().await;
    fx.let_time_pass(Duration::from_secs(400)).await;
    assert_completed(&drill(&fx).await);
    let op =
        fx.a.test_cleanup(&fx.ctx, PG)
            .await
            .expect("cleanup starts");
    let op = fx.finish(&fx.a, op).await;
    assert_completed(&op);
    assert_eq!(op.result_data["servers_deleted"], 2);
    assert_eq!(op.result_data["volumes_deleted"], 4);
    assert_eq!(drtest_resources(&fx).await, (0, 0));
    assert!(fx.pg(SimSite::A).await.test_resources.is_none());
    assert!(fx.pg(SimSite::B).await.test_resources.is_none());
    fx.check().await;

    let again =
        fx.a.test_cleanup(&fx.ctx, PG)
            .await
            .expect("second cleanup starts");
    let again = fx.finish(&fx.a, again).await;
    assert_completed(&again);
    assert_eq!(again.result_data["servers_deleted"], 0);
    fx.check().await;
    // A new drill is possible afterwards.
    assert_completed(&drill(&fx).await);
}

#[tokio::test(start_paused = true)]
async fn a_real_failover_is_refused_while_test_resources_exist() {
    let fx = Setup::new(seed(23)).build().await;
    fx.let_time_pass(Duration::from_secs(400)).await;
    assert_completed(&drill(&fx).await);
    let err =
        fx.a.failover(&fx.ctx, PG, fx.planned())
            .await
            .expect_err("refused");
    assert!(err.to_string().contains("test-cleanup"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn test_failover_without_a_replicated_snapshot_fails_with_the_documented_message() {
    let fx = Setup::new(seed(24)).build().await;
    // Replication is stalled from the start: no snapshot ever lands on site B.
    fx.world.stall_replication().expect("stall");
    fx.let_time_pass(Duration::from_secs(400)).await;
    let op = drill(&fx).await;
    assert_eq!(op.status, OperationStatus::Failed);
    let msg = op.error_message.clone().unwrap_or_default();
    assert!(
        msg.starts_with("Volume manage failed: no replicated snapshot found for volume "),
        "{msg}"
    );
    assert!(
        msg.ends_with("on FlashArray array-b. Verify replication policy and RPO."),
        "{msg}"
    );
    let pg = fx.pg(SimSite::A).await;
    assert_eq!(pg.status, PgStatus::Active);
    assert!(pg.test_resources.is_none());
    fx.check().await;
}

/// Cinder manages a test volume but answers 429, and then refuses every delete: the
/// rollback finds the volume by its tag, cannot remove it, and keeps it recorded on
/// the operation, so nothing is leaked and a later test cleanup removes it.
#[tokio::test(start_paused = true)]
async fn a_volume_the_rollback_finds_but_cannot_delete_stays_recorded_until_cleanup() {
    let fx = Setup::new(seed(47)).build().await;
    fx.let_time_pass(Duration::from_secs(400)).await;
    let lost_answer = fx.world.fault(
        protector::sim::FaultRule::fail(protector::core::BackendErrorKind::Throttled, "slow down")
            .on_call(protector::sim::CallKind::ManageVolume)
            .on_site(SimSite::B)
            .nth(1)
            .after_applying(),
    );
    let no_delete = fx.world.fault(
        protector::sim::FaultRule::fail(protector::core::BackendErrorKind::Conflict, "busy")
            .on_call(protector::sim::CallKind::DeleteVolume)
            .on_site(SimSite::B),
    );
    let op = drill(&fx).await;
    assert_eq!(op.status, OperationStatus::Failed);
    assert!(
        op.error_message
            .as_deref()
            .is_some_and(|m| m.contains("rollback incomplete")),
        "{:?}",
        op.error_message
    );
    assert!(
        drtest_resources(&fx).await.1 >= 1,
        "the managed volumes are still there"
    );
    fx.check().await;
    drop((lost_answer, no_delete));
    let op = fx.a.test_cleanup(&fx.ctx, PG).await.expect("cleanup");
    assert_completed(&fx.finish(&fx.a, op).await);
    assert_eq!(drtest_resources(&fx).await, (0, 0));
    fx.check().await;
}

/// Nova answers 404 to the delete of a test server that is still there: cleanup must
/// not take it as gone.
#[tokio::test(start_paused = true)]
async fn test_cleanup_does_not_take_a_spurious_404_on_delete_for_a_deleted_server() {
    let fx = Setup::new(seed(48)).build().await;
    fx.let_time_pass(Duration::from_secs(400)).await;
    assert_completed(&drill(&fx).await);
    let _guard = fx.world.fault(
        protector::sim::FaultRule::fail(protector::core::BackendErrorKind::NotFound, "gone?")
            .on_call(protector::sim::CallKind::DeleteServer)
            .on_site(SimSite::B)
            .nth(1),
    );
    let op = fx.a.test_cleanup(&fx.ctx, PG).await.expect("cleanup");
    assert_completed(&fx.finish(&fx.a, op).await);
    assert_eq!(drtest_resources(&fx).await, (0, 0));
    fx.check().await;
}

/// The rollback of a failed test failover cannot list Nova's servers: it must still
/// find, by their tags, the volumes Cinder managed without answering, and record them.
#[tokio::test(start_paused = true)]
async fn a_rollback_that_cannot_list_servers_still_records_the_volumes_it_finds() {
    let fx = Setup::new(seed(49)).build().await;
    fx.let_time_pass(Duration::from_secs(400)).await;
    let lost_answer = fx.world.fault(
        protector::sim::FaultRule::fail(protector::core::BackendErrorKind::Invalid, "odd")
            .on_call(protector::sim::CallKind::ManageVolume)
            .on_site(SimSite::B)
            .nth(1)
            .after_applying(),
    );
    // The first list (before cloning) answers; the rollback's sweep does not.
    let no_list = fx.world.fault(
        protector::sim::FaultRule::fail(protector::core::BackendErrorKind::Transient, "down")
            .on_call(protector::sim::CallKind::ListServers)
            .on_site(SimSite::B)
            .nth(2),
    );
    let op = drill(&fx).await;
    assert_eq!(op.status, OperationStatus::Failed);
    fx.check().await;
    drop((lost_answer, no_list));
    let op = fx.a.test_cleanup(&fx.ctx, PG).await.expect("cleanup");
    assert_completed(&fx.finish(&fx.a, op).await);
    assert_eq!(drtest_resources(&fx).await, (0, 0));
    fx.check().await;
}
