//! Fault rules, site and array verbs, and crash points.

use std::time::Duration;

use protector_core::model::{Operation, OperationParameters, OperationType};
use protector_core::ports::{BlockStorage, Compute, HookVerdict, StepBoundary};
use protector_core::progress::StepId;
use protector_core::{Applied, BackendErrorKind, Service};
use protector_sim::{CallKind, FaultRule, LatencyProfile, SimSite, SimWorld, WorkloadSpec};

use super::common::{after, alice, manage_request, world};

fn nova(w: &SimWorld) -> protector_sim::SimCompute {
    w.compute(SimSite::A, &alice(w, SimSite::A))
}

#[tokio::test(start_paused = true)]
async fn fail_rules_answer_with_each_error_kind_and_its_status() {
    let (w, _seed) = world(61, LatencyProfile::zero());
    let cases = [
        (BackendErrorKind::NotFound, 404),
        (BackendErrorKind::Conflict, 409),
        (BackendErrorKind::Auth, 401),
        (BackendErrorKind::Forbidden, 403),
        (BackendErrorKind::Throttled, 429),
        (BackendErrorKind::Transient, 503),
        (BackendErrorKind::Invalid, 400),
    ];
    for (kind, status) in cases {
        let _guard = w.fault(FaultRule::fail(kind, "injected").on_call(CallKind::ListServers));
        let err = nova(&w).list_servers().await.unwrap_err();
        assert_eq!(
            (err.kind, err.status, err.service),
            (kind, Some(status), Service::Compute)
        );
        assert_eq!(err.message, "injected");
        assert_eq!(err.applied, Applied::No);
    }
    assert!(nova(&w).list_servers().await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn delay_rules_add_their_delay_to_the_call() {
    let (w, _seed) = world(62, LatencyProfile::realistic());
    let _guard = w.fault(
        FaultRule::delay(Duration::from_secs(7))
            .on_site(SimSite::A)
            .on_service(Service::Compute),
    );
    let start = tokio::time::Instant::now();
    nova(&w).list_servers().await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_millis(7_050));
    let start = tokio::time::Instant::now();
    w.compute(SimSite::B, &alice(&w, SimSite::B))
        .list_servers()
        .await
        .unwrap();
    assert_eq!(start.elapsed(), Duration::from_millis(50));
}

#[tokio::test(start_paused = true)]
async fn hang_rules_never_answer_so_the_callers_timeout_fires() {
    let (w, _seed) = world(63, LatencyProfile::zero());
    let _guard = w.fault(FaultRule::hang().on_call(CallKind::GetVolume));
    let cinder = w.block_storage(SimSite::A, &alice(&w, SimSite::A));
    let id = protector_core::ids::VolumeId::new("anything");
    let r = tokio::time::timeout(Duration::from_secs(300), cinder.get_volume(&id)).await;
    assert!(r.is_err(), "the call answered: {r:?}");
}

#[tokio::test(start_paused = true)]
async fn nth_rules_fail_only_the_nth_matching_call() {
    let (w, _seed) = world(64, LatencyProfile::zero());
    let guard = w.fault(
        FaultRule::fail(BackendErrorKind::Transient, "boom")
            .on_call(CallKind::ListServers)
            .nth(3),
    );
    let results: Vec<bool> = {
        let mut v = Vec::new();
        for _ in 0..5 {
            v.push(nova(&w).list_servers().await.is_ok());
        }
        v
    };
    assert_eq!(results, [true, true, false, true, true]);
    assert_eq!(guard.fired(), 1);
}

async fn probability_pattern(seed: u64) -> Vec<bool> {
    let w = SimWorld::builder().seed(seed).build().unwrap();
    let _guard =
        w.fault(FaultRule::fail(BackendErrorKind::Throttled, "slow down").with_probability(0.3));
    let mut v = Vec::new();
    for _ in 0..64 {
        v.push(nova(&w).list_servers().await.is_err());
    }
    v
}

#[tokio::test(start_paused = true)]
async fn probability_rules_are_seeded_and_reproducible() {
    let seed = protector_sim::seed_from_env(65);
    let _report = super::common::SeedReport(seed);
    let first = probability_pattern(seed).await;
    assert_eq!(first, probability_pattern(seed).await);
    assert_ne!(first, probability_pattern(seed + 1).await);
    let failures = first.iter().filter(|f| **f).count();
    assert!((5..=35).contains(&failures), "{failures} of 64 failed");
}

#[tokio::test(start_paused = true)]
async fn dropping_the_guard_removes_the_rule() {
    let (w, _seed) = world(66, LatencyProfile::zero());
    let guard = w.fault(FaultRule::fail(BackendErrorKind::Transient, "down"));
    assert!(nova(&w).list_servers().await.is_err());
    drop(guard);
    assert!(nova(&w).list_servers().await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_failure_after_applying_takes_effect_and_says_it_may_have_been_applied() {
    let (w, _seed) = world(67, LatencyProfile::zero());
    let workload = w
        .create_workload(&WorkloadSpec::new(SimSite::A, "tenant-a"))
        .unwrap();
    let _guard = w.fault(
        FaultRule::fail(BackendErrorKind::Transient, "gateway timeout")
            .on_call(CallKind::StopServer)
            .after_applying(),
    );
    let id = &workload.servers[0].id;
    let err = nova(&w).stop_server(id).await.unwrap_err();
    assert_eq!(err.applied, Applied::Maybe);
    after(Duration::ZERO).await;
    assert_eq!(
        nova(&w).get_server(id).await.unwrap().status,
        protector_core::ports::ServerStatus::Shutoff
    );
}

#[tokio::test(start_paused = true)]
async fn array_calls_pass_through_the_same_rules() {
    let (w, _seed) = world(68, LatencyProfile::zero());
    let _guard = w.fault(
        FaultRule::fail(BackendErrorKind::Conflict, "Volume already exists.")
            .on_site(SimSite::B)
            .on_call(CallKind::Array("create_volume")),
    );
    assert!(w
        .array(SimSite::A)
        .create_volume("v1", 1 << 30)
        .await
        .is_ok());
    let err = w
        .array(SimSite::B)
        .create_volume("v1", 1 << 30)
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind, err.service),
        (BackendErrorKind::Conflict, Service::FlashArray)
    );
    assert!(w.array(SimSite::B).list_array_connections().await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_downed_site_refuses_every_openstack_call_until_it_is_brought_up() {
    let (w, _seed) = world(69, LatencyProfile::zero());
    w.take_site_down(SimSite::A);
    let err = nova(&w).list_servers().await.unwrap_err();
    assert_eq!(
        (err.kind, err.applied),
        (BackendErrorKind::Transient, Applied::No)
    );
    let cinder = w.block_storage(SimSite::A, &alice(&w, SimSite::A));
    assert_eq!(
        cinder.list_volumes().await.unwrap_err().kind,
        BackendErrorKind::Transient
    );
    assert!(w
        .issue_token(SimSite::A, &alice(&w, SimSite::A))
        .await
        .is_err());
    // The other site and the site's array still answer.
    assert!(w
        .compute(SimSite::B, &alice(&w, SimSite::B))
        .list_servers()
        .await
        .is_ok());
    assert!(w.array(SimSite::A).list_array_connections().await.is_ok());
    w.bring_site_up(SimSite::A);
    assert!(nova(&w).list_servers().await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_downed_array_refuses_calls_and_manage_from_it_fails() {
    let (w, _seed) = world(70, LatencyProfile::zero());
    w.create_array_volume(SimSite::B, "src", 1).unwrap();
    w.take_array_down(SimSite::B).unwrap();
    let err = w
        .array(SimSite::B)
        .list_array_connections()
        .await
        .unwrap_err();
    assert_eq!(err.kind, BackendErrorKind::Transient);
    let cinder = w.block_storage(SimSite::B, &alice(&w, SimSite::B));
    let v = cinder
        .manage_volume(&manage_request(&w, SimSite::B, "src", false))
        .await
        .unwrap();
    after(Duration::ZERO).await;
    assert!(cinder.get_volume(&v.id).await.unwrap().status.is_error());
    w.bring_array_up(SimSite::B).unwrap();
    assert!(w.array(SimSite::B).list_array_connections().await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn the_crash_hook_fires_once_at_the_chosen_boundary() {
    let (w, _seed) = world(71, LatencyProfile::zero());
    let hook = w.step_hook();
    let op = Operation::new(
        protector_core::ids::OperationId::new("op-1"),
        protector_core::ids::ProtectionGroupId::new("pg-1"),
        protector_core::ids::ProjectId::new("p"),
        OperationType::Failover,
        None,
        w.site(SimSite::A).site_id.clone(),
        w.site(SimSite::B).site_id.clone(),
        OperationParameters::default(),
        w.clock().now(),
    );
    let guard = w.crash_at(
        OperationType::Failover,
        StepBoundary::After(StepId::PromoteVolumes),
    );
    assert_eq!(
        hook.at_boundary(&op, StepBoundary::Before(StepId::PromoteVolumes)),
        HookVerdict::Continue
    );
    assert!(!guard.fired());
    assert_eq!(
        hook.at_boundary(&op, StepBoundary::After(StepId::PromoteVolumes)),
        HookVerdict::Crash
    );
    assert!(guard.fired());
    assert_eq!(
        hook.at_boundary(&op, StepBoundary::After(StepId::PromoteVolumes)),
        HookVerdict::Continue
    );
    let mut failback = op.clone();
    failback.operation_type = OperationType::Failback;
    let _other = w.crash_at(
        OperationType::Failover,
        StepBoundary::Before(StepId::Finalize),
    );
    assert_eq!(
        hook.at_boundary(&failback, StepBoundary::Before(StepId::Finalize)),
        HookVerdict::Continue
    );
    drop(_other);
    assert_eq!(
        hook.at_boundary(&op, StepBoundary::Before(StepId::Finalize)),
        HookVerdict::Continue
    );
}
