//! Pre-flight refusals and the troubleshooting cases of the product's documentation.

use std::time::Duration;

use protector::core::engine::{EngineConfig, FailbackRequest};
use protector::core::model::{OperationFilter, OperationStatus, PgStatus};
use protector::core::ports::{Compute, ServerStatus};
use protector::core::progress::StepId;
use protector::core::BackendErrorKind;
use protector::sim::{CallKind, FaultRule, SimSite};

use super::fixture::{assert_completed, seed, Setup, PG};

async fn operation_count(fx: &super::fixture::Fx, site: SimSite) -> usize {
    fx.stores
        .operations(site)
        .list_operations(&OperationFilter::default())
        .await
        .expect("ops")
        .len()
}

#[tokio::test(start_paused = true)]
async fn planned_failover_is_refused_before_any_record_when_the_peer_is_unreachable() {
    let fx = Setup::new(seed(31)).build().await;
    fx.world.take_site_down(SimSite::B);
    let err =
        fx.a.failover(&fx.ctx, PG, fx.planned())
            .await
            .expect_err("refused");
    assert!(err.to_string().contains("remote site unreachable"), "{err}");
    assert_eq!(operation_count(&fx, SimSite::A).await, 0);
    assert_eq!(fx.pg(SimSite::A).await.status, PgStatus::Active);
}

#[tokio::test(start_paused = true)]
async fn failback_of_an_active_group_is_refused_with_the_documented_text() {
    let fx = Setup::new(seed(32)).build().await;
    let err =
        fx.a.failback(&fx.ctx, PG, FailbackRequest::default())
            .await
            .expect_err("refused");
    assert!(
        err.to_string()
            .starts_with("Protection Group is not in failed_over state"),
        "{err}"
    );
    assert_eq!(operation_count(&fx, SimSite::A).await, 0);
}

#[tokio::test(start_paused = true)]
async fn failover_naming_no_mapping_for_a_used_network_is_refused_and_names_it() {
    let fx = Setup::new(seed(33)).build().await;
    let mut req = fx.planned();
    let db = fx
        .world
        .site(SimSite::A)
        .network_id("tenant-a-db")
        .expect("net");
    req.mappings.networks.remove(db.as_str());
    let err = fx.a.failover(&fx.ctx, PG, req).await.expect_err("refused");
    let text = err.to_string();
    assert!(
        text.starts_with("No network mapping for source network"),
        "{text}"
    );
    assert!(
        text.contains(db.as_str()) && text.contains("tenant-a-db"),
        "{text}"
    );
    assert_eq!(operation_count(&fx, SimSite::A).await, 0);
}

#[tokio::test(start_paused = true)]
async fn failover_is_refused_while_metadata_is_out_of_sync_unless_forced() {
    let fx = Setup::new(seed(34)).build().await;
    fx.let_time_pass(Duration::from_secs(60)).await;
    // The peer holds an older copy.
    let mut stale = fx.pg(SimSite::B).await;
    stale.version -= 1;
    fx.stores
        .metadata(SimSite::B)
        .put_protection_group(&stale)
        .await
        .expect("put");
    let err =
        fx.a.failover(&fx.ctx, PG, fx.planned())
            .await
            .expect_err("refused");
    assert!(err.to_string().contains("out of sync"), "{err}");
    let status = fx.a.sync_status(&fx.ctx, PG).await.expect("status");
    assert_eq!(status.status.as_str(), "OUT OF SYNC");
    let mut forced = fx.planned();
    forced.force = true;
    let op =
        fx.a.failover(&fx.ctx, PG, forced)
            .await
            .expect("forced failover starts");
    assert_completed(&fx.finish(&fx.a, op).await);
}

#[tokio::test(start_paused = true)]
async fn modifications_are_blocked_after_an_unplanned_failover_until_sync_force() {
    let fx = Setup::new(seed(35)).servers(3).build().await;
    fx.let_time_pass(Duration::from_secs(700)).await;
    fx.world.take_site_down(SimSite::A);
    let op =
        fx.b.failover(&fx.ctx, PG, fx.unplanned())
            .await
            .expect("unplanned");
    assert_completed(&fx.finish(&fx.b, op).await);
    let member = fx.pg(SimSite::B).await.members[2].instance_name.clone();
    // Site A is still down…
    let err =
        fx.b.remove_member(&fx.ctx, PG, &member)
            .await
            .expect_err("blocked");
    assert_eq!(
        err.to_string(),
        "Cannot modify protection group - remote site unreachable"
    );
    // … and stays blocked after it recovers, until the metadata is pushed.
    fx.world.bring_site_up(SimSite::A);
    let err =
        fx.b.remove_member(&fx.ctx, PG, &member)
            .await
            .expect_err("still blocked");
    assert_eq!(
        err.to_string(),
        "Cannot modify protection group - remote site unreachable"
    );
    // Both sites answer again, but site A still holds the pre-failover version.
    let status = fx.b.sync_status(&fx.ctx, PG).await.expect("status");
    assert_eq!(status.status.as_str(), "OUT OF SYNC");
    assert!(
        status.remote_version < Some(status.local_version),
        "{status:?}"
    );
    let forced = fx.b.sync_force(&fx.ctx, PG).await.expect("sync-force");
    assert_eq!(forced.status.as_str(), "IN SYNC");
    fx.b.remove_member(&fx.ctx, PG, &member)
        .await
        .expect("allowed after sync-force");
    assert_eq!(fx.pg(SimSite::A).await.members.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn volume_manage_denied_fails_in_the_storage_phase_and_rolls_everything_back() {
    let fx = Setup::new(seed(36)).build().await;
    fx.let_time_pass(Duration::from_secs(60)).await;
    fx.world.deny_volume_manage(SimSite::B);
    let mut events = fx.a.subscribe();
    let op =
        fx.a.failover(&fx.ctx, PG, fx.planned())
            .await
            .expect("starts");
    let op = fx.finish(&fx.a, op).await;
    assert_eq!(op.status, OperationStatus::Failed);
    assert_eq!(op.steps_failed, [StepId::PromoteVolumes]);
    assert!((20..60).contains(&op.progress), "progress {}", op.progress);
    let msg = op.error_message.clone().unwrap_or_default();
    assert!(msg.contains("volume_extension:volume_manage"), "{msg}");
    let mut saw_rollback = false;
    while let Ok(ev) = events.try_recv() {
        saw_rollback |= ev.operation_id == op.id && ev.status == OperationStatus::RollingBack;
    }
    assert!(saw_rollback, "the operation never reported rolling_back");
    assert_eq!(fx.pg(SimSite::A).await.status, PgStatus::Error);
    // Production came back: the quiesced servers were restarted.
    let compute_a = fx.world.compute(SimSite::A, &fx.ctx);
    for s in &fx.workload.servers {
        let srv = compute_a.get_server(&s.id).await.expect("source");
        let srv = compute_a
            .wait_for_status(
                &srv.id,
                ServerStatus::Active,
                &protector::core::ports::WaitPolicy::new(Duration::from_secs(120)),
            )
            .await
            .expect("restarted");
        assert_eq!(srv.status, ServerStatus::Active);
    }
    fx.check().await;
    // Once the policy is fixed, --force retries from `error`.
    fx.world.allow_volume_manage(SimSite::B);
    let mut req = fx.planned();
    req.force = true;
    let op = fx.a.failover(&fx.ctx, PG, req).await.expect("forced retry");
    assert_completed(&fx.finish(&fx.a, op).await);
    fx.check().await;
}

#[tokio::test(start_paused = true)]
async fn a_hung_nova_turns_into_a_step_timeout_that_names_the_service_and_step() {
    let config = EngineConfig::builder()
        .step_timeout(StepId::RecreateInstances, Duration::from_secs(300))
        .rollback_timeout(Duration::from_secs(120))
        .build()
        .expect("config");
    let fx = Setup::new(seed(37)).build().await;
    let a = fx
        .world
        .protector(SimSite::A, &fx.stores, config)
        .await
        .expect("protector");
    fx.let_time_pass(Duration::from_secs(60)).await;
    let _hang = fx.world.fault(
        FaultRule::hang()
            .on_call(CallKind::GetServer)
            .on_site(SimSite::B),
    );
    let op = a.failover(&fx.ctx, PG, fx.planned()).await.expect("starts");
    let op = a.wait(&op.id).await.expect("op");
    assert_eq!(op.status, OperationStatus::Failed);
    let msg = op.error_message.clone().unwrap_or_default();
    assert!(
        msg.starts_with("Step recreate_instances timed out after 300s waiting for nova"),
        "{msg}"
    );
    assert_eq!(op.steps_failed, [StepId::RecreateInstances]);
    // With Nova hung, the rollback could not confirm the servers' deletion: it says so
    // rather than hanging, and the operator can see which resources to check.
    assert!(msg.contains("rollback incomplete"), "{msg}");
    assert_eq!(fx.pg(SimSite::A).await.status, PgStatus::Error);
}

#[tokio::test(start_paused = true)]
async fn a_transient_error_on_an_array_call_fails_the_step_and_leaves_nothing_behind() {
    let fx = Setup::new(seed(38)).build().await;
    fx.let_time_pass(Duration::from_secs(60)).await;
    let _f = fx.world.fault(
        FaultRule::fail(BackendErrorKind::Transient, "array busy")
            .on_call(CallKind::Array("copy_volume"))
            .nth(2),
    );
    let op =
        fx.a.failover(&fx.ctx, PG, fx.planned())
            .await
            .expect("starts");
    let op = fx.finish(&fx.a, op).await;
    assert_eq!(op.status, OperationStatus::Failed);
    assert_eq!(fx.pg(SimSite::A).await.status, PgStatus::Error);
    fx.check().await;
}
