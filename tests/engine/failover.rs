//! Planned and unplanned failover, failback, partial results.

use std::collections::BTreeMap;
use std::time::Duration;

use protector::core::engine::ConcurrencyLimits;
use protector::core::model::{OperationStatus, PgStatus};
use protector::core::ports::ServerStatus;
use protector::core::progress::StepId;
use protector::sim::{LatencyProfile, SimSite};

use super::fixture::{assert_completed, seed, Setup, PG};

fn step_ids(steps: &[StepId]) -> Vec<&'static str> {
    steps.iter().map(|s| s.as_str()).collect()
}

#[tokio::test(start_paused = true)]
async fn planned_failover_moves_the_workload_to_site_b_without_losing_a_write() {
    let fx = Setup::new(seed(11)).build().await;
    fx.let_time_pass(Duration::from_secs(120)).await;
    let source: BTreeMap<String, String> = fx
        .pg
        .members
        .iter()
        .flat_map(|m| {
            m.volumes
                .iter()
                .map(|v| (v.volume_id.to_string(), v.array_volume_name.clone()))
        })
        .collect();
    let mut events = fx.a.subscribe();
    let op =
        fx.a.failover(&fx.ctx, PG, fx.planned())
            .await
            .expect("failover starts");
    assert_eq!(op.operation_type.as_str(), "failover");
    let op = fx.finish(&fx.a, op).await;
    assert_completed(&op);
    assert_eq!(
        step_ids(&op.steps_completed),
        [
            "prepare",
            "validate_target",
            "get_snapshot",
            "promote_volumes",
            "recreate_instances",
            "finalize"
        ]
    );
    assert!(op.steps_failed.is_empty());
    let created = op.result_data["instances_created"]
        .as_array()
        .expect("instances_created");
    assert_eq!(created.len(), 2);

    // Progress events are monotonic and end at 100.
    let mut last = 0u8;
    let mut saw = Vec::new();
    while let Ok(ev) = events.try_recv() {
        if ev.operation_id != op.id {
            continue;
        }
        assert!(
            ev.progress >= last,
            "progress went back from {last} to {}",
            ev.progress
        );
        last = ev.progress;
        saw.push((ev.phase, ev.step, ev.progress));
    }
    assert_eq!(last, 100, "events: {saw:?}");

    for site in [SimSite::A, SimSite::B] {
        let pg = fx.pg(site).await;
        assert_eq!(pg.status, PgStatus::FailedOver);
        assert_eq!(
            pg.current_primary_site_id,
            fx.world.site(SimSite::B).site_id
        );
        assert_eq!(pg.failover_count, 1);
        assert!(pg.last_failover_at.is_some());
    }
    let pg = fx.pg(SimSite::B).await;
    let compute_b = fx.world.compute(SimSite::B, &fx.ctx);
    for m in &pg.members {
        let s = protector::core::ports::Compute::get_server(&compute_b, &m.instance_id)
            .await
            .expect("server on site b");
        assert_eq!(s.status, ServerStatus::Active);
        assert!(created
            .iter()
            .any(|c| c["id"] == s.id.as_str() && c["name"] == s.name.as_str()));
        for v in &m.volumes {
            // Zero writes lost: the promoted copy carries every write of the quiesced source.
            let original = fx
                .pg
                .members
                .iter()
                .flat_map(|om| om.volumes.iter())
                .find(|ov| ov.name == v.name && ov.bootable == v.bootable)
                .expect("original volume");
            let lost = fx
                .world
                .writes_lost(
                    SimSite::A,
                    &source[original.volume_id.as_str()],
                    SimSite::B,
                    &v.array_volume_name,
                )
                .expect("write sequences");
            assert_eq!(lost, 0, "planned failover lost {lost} writes of {}", v.name);
        }
    }
    // The quiesced source servers stay SHUTOFF.
    let compute_a = fx.world.compute(SimSite::A, &fx.ctx);
    for s in &fx.workload.servers {
        let srv = protector::core::ports::Compute::get_server(&compute_a, &s.id)
            .await
            .expect("source");
        assert_eq!(srv.status, ServerStatus::Shutoff);
    }
    fx.check().await;
}

#[tokio::test(start_paused = true)]
async fn failback_with_reverse_replication_returns_home_and_counts_two_failovers() {
    let fx = Setup::new(seed(12)).build().await;
    fx.let_time_pass(Duration::from_secs(60)).await;
    let op =
        fx.a.failover(&fx.ctx, PG, fx.planned())
            .await
            .expect("failover");
    assert_completed(&fx.finish(&fx.a, op).await);
    fx.check().await;

    let op =
        fx.b.failback(&fx.ctx, PG, fx.failback(true))
            .await
            .expect("failback starts");
    assert_eq!(op.source_site_id, fx.world.site(SimSite::B).site_id);
    assert_eq!(op.target_site_id, fx.world.site(SimSite::A).site_id);
    let op = fx.finish(&fx.b, op).await;
    assert_completed(&op);
    let pg = fx.pg(SimSite::A).await;
    assert_eq!(pg.status, PgStatus::Active);
    assert_eq!(pg.current_primary_site_id, pg.primary_site_id);
    assert_eq!(pg.failover_count, 2);
    assert_eq!(
        pg.replication_source_site_id.as_ref(),
        Some(&pg.primary_site_id)
    );
    // Servers run on site A again; nothing stale is left on site B afterwards except
    // what the group records for the next failover to clean.
    let compute_a = fx.world.compute(SimSite::A, &fx.ctx);
    for m in &pg.members {
        let s = protector::core::ports::Compute::get_server(&compute_a, &m.instance_id)
            .await
            .expect("server");
        assert_eq!(s.status, ServerStatus::Active);
    }
    // The original, stale servers on site A were removed, not reused.
    for s in &fx.workload.servers {
        assert!(
            protector::core::ports::Compute::get_server(&compute_a, &s.id)
                .await
                .is_err()
        );
    }
    fx.check().await;

    // With replication restored A → B, a new test failover finds fresh replicas.
    fx.let_time_pass(Duration::from_secs(600)).await;
    let op =
        fx.a.failover(&fx.ctx, PG, fx.planned())
            .await
            .expect("second failover");
    assert_completed(&fx.finish(&fx.a, op).await);
    assert_eq!(fx.pg(SimSite::B).await.failover_count, 3);
    fx.check().await;
}

#[tokio::test(start_paused = true)]
async fn unplanned_failover_from_site_b_recovers_within_one_replication_interval() {
    let fx = Setup::new(seed(13)).build().await;
    // Scheduled replication runs every 300 s; let a few intervals pass, then lose site A.
    fx.let_time_pass(Duration::from_secs(1000)).await;
    fx.world.take_site_down(SimSite::A);
    fx.world.take_array_down(SimSite::A).expect("array down");
    let op =
        fx.b.failover(&fx.ctx, PG, fx.unplanned())
            .await
            .expect("unplanned failover starts");
    let op = fx.finish(&fx.b, op).await;
    assert_completed(&op);
    let status = fx.b.sync_status(&fx.ctx, PG).await.expect("sync status");
    assert_eq!(status.status.as_str(), "UNREACHABLE");
    let pg = fx.pg(SimSite::B).await;
    assert_eq!(pg.status, PgStatus::FailedOver);
    assert_eq!(
        pg.current_primary_site_id,
        fx.world.site(SimSite::B).site_id
    );
    // Data loss is bounded by one replication interval (300 writes at one write/s).
    fx.world.bring_array_up(SimSite::A).expect("array up");
    for (orig, now) in fx.pg.members.iter().zip(pg.members.iter()) {
        for (ov, nv) in orig.volumes.iter().zip(now.volumes.iter()) {
            let lost = fx
                .world
                .writes_lost(
                    SimSite::A,
                    &ov.array_volume_name,
                    SimSite::B,
                    &nv.array_volume_name,
                )
                .expect("seq");
            assert!(
                lost <= 300 + 15,
                "lost {lost} writes, more than one interval"
            );
        }
    }
    fx.world.bring_site_up(SimSite::A);
    // Site A is back with its old servers running: sync-force fences them and pushes
    // the metadata, after which the sites agree again.
    let status = fx.b.sync_force(&fx.ctx, PG).await.expect("sync-force");
    assert_eq!(status.status.as_str(), "IN SYNC");
    assert_eq!(status.remote_version, Some(status.local_version));
    fx.check().await;
}

#[tokio::test(start_paused = true)]
async fn failover_with_a_member_that_cannot_boot_ends_failed_over_partial() {
    let fx = Setup::new(seed(14)).servers(3).build().await;
    fx.let_time_pass(Duration::from_secs(60)).await;
    let mut req = fx.planned();
    req.mappings
        .flavors
        .insert("m1.small".into(), "m1.small".into());
    // Fail exactly the boot of the second member.
    let _guard = fx.world.fault(
        protector::sim::FaultRule::fail(
            protector::core::BackendErrorKind::Conflict,
            "No valid host was found.",
        )
        .on_call(protector::sim::CallKind::CreateServer)
        .on_site(SimSite::B)
        .nth(2),
    );
    let op = fx.a.failover(&fx.ctx, PG, req).await.expect("failover");
    let op = fx.finish(&fx.a, op).await;
    assert_eq!(
        op.status,
        OperationStatus::Completed,
        "{:?}",
        op.error_message
    );
    assert_eq!(step_ids(&op.steps_failed), ["recreate_instances"]);
    let failed = op.result_data["members_failed"]
        .as_array()
        .expect("members_failed");
    assert_eq!(failed.len(), 1);
    assert!(failed[0]["reason"]
        .as_str()
        .unwrap_or("")
        .contains("No valid host"));
    let pg = fx.pg(SimSite::B).await;
    assert_eq!(pg.status, PgStatus::FailedOverPartial);
    fx.check().await;
    // Failback accepts a partially failed-over group.
    drop(_guard);
    let op = fx.b.failback(&fx.ctx, PG, fx.failback(true)).await;
    assert!(op.is_ok(), "failback refused: {:?}", op.err());
}

#[tokio::test(start_paused = true)]
async fn a_member_whose_boot_answer_was_lost_leaves_no_server_when_it_is_listed_failed() {
    let fx = Setup::new(seed(16)).servers(2).build().await;
    fx.let_time_pass(Duration::from_secs(60)).await;
    let before = fx.world.servers(SimSite::B).len();
    // Nova boots the first member's server but the answer is a 404: the engine cannot
    // know the server exists and lists the member as failed.
    let _guard = fx.world.fault(
        protector::sim::FaultRule::fail(protector::core::BackendErrorKind::NotFound, "lost")
            .on_call(protector::sim::CallKind::CreateServer)
            .on_site(SimSite::B)
            .nth(1)
            .after_applying(),
    );
    let op =
        fx.a.failover(&fx.ctx, PG, fx.planned())
            .await
            .expect("failover");
    let op = fx.finish(&fx.a, op).await;
    assert_eq!(
        op.status,
        OperationStatus::Completed,
        "{:?}",
        op.error_message
    );
    assert_eq!(step_ids(&op.steps_failed), ["recreate_instances"]);
    assert_eq!(fx.pg(SimSite::B).await.status, PgStatus::FailedOverPartial);
    // One server per recreated member on site B, none for the failed one.
    let servers = fx.world.servers(SimSite::B);
    assert_eq!(servers.len(), before + 1, "{servers:?}");
    fx.check().await;
}

#[tokio::test(start_paused = true)]
async fn a_failover_whose_members_booted_with_their_volumes_lists_the_targets_servers_once() {
    let fx = Setup::new(seed(17)).servers(3).build().await;
    fx.let_time_pass(Duration::from_secs(60)).await;
    fx.world.reset_stats();
    let op =
        fx.a.failover(&fx.ctx, PG, fx.planned())
            .await
            .expect("failover");
    let op = fx.finish(&fx.a, op).await;
    assert_completed(&op);
    // The volume step looks for servers this operation tagged once, before its first
    // boot; every member then boots there, so recreating the instances finds each one
    // in the journal and lists nothing.
    let stats = fx.world.stats();
    assert_eq!(
        stats.count(SimSite::B, protector::sim::CallKind::ListServers),
        1
    );
    assert_eq!(
        stats.count(SimSite::B, protector::sim::CallKind::CreateServer),
        3
    );
    fx.check().await;
}

#[tokio::test(start_paused = true)]
async fn a_forced_failover_from_error_back_onto_the_primary_site_leaves_the_group_active() {
    let fx = Setup::new(seed(15)).build().await;
    fx.let_time_pass(Duration::from_secs(60)).await;
    let op =
        fx.a.failover(&fx.ctx, PG, fx.planned())
            .await
            .expect("failover");
    super::fixture::assert_completed(&fx.finish(&fx.a, op).await);
    // The failback fails on site A and leaves the group in error, still running on B.
    fx.world.deny_volume_manage(SimSite::A);
    let op =
        fx.b.failback(&fx.ctx, PG, fx.failback(true))
            .await
            .expect("failback");
    assert_eq!(fx.finish(&fx.b, op).await.status, OperationStatus::Failed);
    assert_eq!(fx.pg(SimSite::B).await.status, PgStatus::Error);
    fx.world.allow_volume_manage(SimSite::A);
    // Site B is lost; the operator forces an unplanned failover onto site A.
    fx.let_time_pass(Duration::from_secs(700)).await;
    fx.world.take_site_down(SimSite::B);
    let req = protector::core::engine::FailoverRequest {
        failover_type: protector::core::model::FailoverType::Unplanned,
        mappings: fx.mappings(SimSite::B, SimSite::A),
        force: true,
    };
    let op =
        fx.a.failover(&fx.ctx, PG, req)
            .await
            .expect("forced failover");
    super::fixture::assert_completed(&fx.finish(&fx.a, op).await);
    let pg = fx.pg(SimSite::A).await;
    assert_eq!(pg.current_primary_site_id, pg.primary_site_id);
    assert_eq!(pg.status, PgStatus::Active);
}

/// Nova answers 404 for a source server that is running: a planned failover must not
/// take it as gone and leave it writing.
#[tokio::test(start_paused = true)]
async fn a_spurious_not_found_for_a_running_source_server_does_not_skip_its_quiesce() {
    let fx = Setup::new(seed(17)).build().await;
    fx.let_time_pass(Duration::from_secs(60)).await;
    let _guard = fx.world.fault(
        protector::sim::FaultRule::fail(protector::core::BackendErrorKind::NotFound, "gone?")
            .on_call(protector::sim::CallKind::GetServer)
            .on_site(SimSite::A)
            .nth(1),
    );
    let op =
        fx.a.failover(&fx.ctx, PG, fx.planned())
            .await
            .expect("failover");
    assert_completed(&fx.finish(&fx.a, op).await);
    for m in &fx.pg.members {
        let s = fx
            .world
            .servers(SimSite::A)
            .into_iter()
            .find(|s| s.id == m.instance_id)
            .expect("source server");
        assert_eq!(s.status, ServerStatus::Shutoff, "{}", m.instance_name);
    }
    fx.check().await;
}

/// After an unplanned failover, the old primary's copy is stale. A sync-force run there
/// must adopt the peer's newer record, never push the stale copy over it.
#[tokio::test(start_paused = true)]
async fn sync_force_on_the_stale_site_adopts_the_newer_copy_of_its_peer() {
    let fx = Setup::new(seed(18)).build().await;
    fx.let_time_pass(Duration::from_secs(700)).await;
    fx.world.take_site_down(SimSite::A);
    let op =
        fx.b.failover(&fx.ctx, PG, fx.unplanned())
            .await
            .expect("unplanned failover");
    assert_completed(&fx.finish(&fx.b, op).await);
    fx.world.bring_site_up(SimSite::A);
    let newer = fx.pg(SimSite::B).await;
    assert_eq!(
        fx.pg(SimSite::A).await.status,
        PgStatus::Active,
        "stale copy"
    );
    let status = fx.a.sync_force(&fx.ctx, PG).await.expect("sync-force");
    assert_eq!(status.status.as_str(), "IN SYNC");
    for site in SimSite::BOTH {
        let pg = fx.pg(site).await;
        assert_eq!(pg.status, PgStatus::FailedOver, "{site:?}'s copy");
        assert_eq!(pg.current_primary_site_id, newer.current_primary_site_id);
        assert_eq!(pg.version, newer.version);
    }
    fx.check().await;
}

/// A protected group failed over from A to B (planned), and site A's id: the failover
/// leaves the original servers and volumes on A as stale.
async fn failed_over_to_b(seed_value: u64) -> (super::fixture::Fx, protector::core::ids::SiteId) {
    let fx = Setup::new(seed_value).build().await;
    fx.let_time_pass(Duration::from_secs(60)).await;
    let op =
        fx.a.failover(&fx.ctx, PG, fx.planned())
            .await
            .expect("failover");
    assert_completed(&fx.finish(&fx.a, op).await);
    let a = fx.world.site(SimSite::A).site_id.clone();
    (fx, a)
}

/// The stale servers a failover left on site A are deleted alongside the failback's
/// later steps. When they cannot be, the failback fails and rolls back rather than run
/// the recovered servers beside them; the group still records them for the next try.
#[tokio::test(start_paused = true)]
async fn a_failback_whose_stale_servers_cannot_be_deleted_fails_and_keeps_them_recorded() {
    let (fx, a) = failed_over_to_b(seed(61)).await;
    let stale = fx.pg(SimSite::B).await.stale.get(&a).cloned();
    assert!(
        stale.as_ref().is_some_and(|s| !s.servers.is_empty()),
        "the failover leaves the original servers on A as stale: {stale:?}"
    );

    let guard = fx.world.fault(
        protector::sim::FaultRule::fail(protector::core::BackendErrorKind::Forbidden, "policy")
            .on_call(protector::sim::CallKind::DeleteServer)
            .on_site(SimSite::A),
    );
    let op =
        fx.b.failback(&fx.ctx, PG, fx.failback(true))
            .await
            .expect("failback starts");
    let op = fx.finish(&fx.b, op).await;
    assert_eq!(op.status, OperationStatus::Failed);
    let message = op.error_message.clone().unwrap_or_default();
    assert!(
        message.contains("stale servers of an earlier failover"),
        "{message}"
    );
    // The failback had stopped the servers on B: the group is in error, recovered by
    // a forced failback.
    let pg = fx.pg(SimSite::B).await;
    assert_eq!(pg.status, PgStatus::Error);
    assert_eq!(pg.stale.get(&a), stale.as_ref());
    fx.check().await;

    // Once the servers can be deleted, the next failback removes them and succeeds.
    drop(guard);
    let mut req = fx.failback(true);
    req.force = true;
    let op =
        fx.b.failback(&fx.ctx, PG, req)
            .await
            .expect("failback starts");
    assert_completed(&fx.finish(&fx.b, op).await);
    assert!(!fx.pg(SimSite::A).await.stale.contains_key(&a));
    fx.check().await;
}

/// Stale volumes that cannot be deleted do not fail the failback: the group keeps them
/// recorded for the next failover or failback to the site, and the result says so.
#[tokio::test(start_paused = true)]
async fn stale_volumes_that_cannot_be_deleted_leave_a_warning_and_stay_recorded() {
    let (fx, a) = failed_over_to_b(seed(62)).await;

    let _guard = fx.world.fault(
        protector::sim::FaultRule::fail(protector::core::BackendErrorKind::Conflict, "in use")
            .on_call(protector::sim::CallKind::DeleteVolume)
            .on_site(SimSite::A),
    );
    let op =
        fx.b.failback(&fx.ctx, PG, fx.failback(true))
            .await
            .expect("failback starts");
    let op = fx.finish(&fx.b, op).await;
    assert_completed(&op);
    let warnings = op.result_data["warnings"].to_string();
    assert!(warnings.contains("stale volumes"), "{warnings}");
    let pg = fx.pg(SimSite::A).await;
    assert_eq!(pg.status, PgStatus::Active);
    let stale = pg.stale.get(&a).expect("stale volumes still recorded");
    assert!(!stale.volumes.is_empty());
    // The stale servers themselves are gone.
    let compute_a = fx.world.compute(SimSite::A, &fx.ctx);
    for s in &fx.workload.servers {
        assert!(
            protector::core::ports::Compute::get_server(&compute_a, &s.id)
                .await
                .is_err()
        );
    }
    fx.check().await;
}

/// A step fails while the stale servers are still being deleted (their deletion hangs):
/// the cleanup is stopped, the failback ends failed and rolled back instead of waiting
/// on it, and the group still records the stale resources.
#[tokio::test(start_paused = true)]
async fn a_failback_whose_step_fails_during_the_stale_cleanup_ends_and_keeps_them_recorded() {
    let (fx, a) = failed_over_to_b(seed(63)).await;
    let stale = fx.pg(SimSite::B).await.stale.get(&a).cloned();

    let _hang = fx.world.fault(
        protector::sim::FaultRule::hang()
            .on_call(protector::sim::CallKind::DeleteServer)
            .on_site(SimSite::A),
    );
    let _copy = fx.world.fault(
        protector::sim::FaultRule::fail(protector::core::BackendErrorKind::Conflict, "busy")
            .on_call(protector::sim::CallKind::Array("copy_volume"))
            .on_site(SimSite::A),
    );
    let op =
        fx.b.failback(&fx.ctx, PG, fx.failback(true))
            .await
            .expect("failback starts");
    let op = fx.finish(&fx.b, op).await;
    assert_eq!(op.status, OperationStatus::Failed, "{:?}", op.error_message);
    assert_eq!(step_ids(&op.steps_failed), ["promote_volumes"]);
    assert_eq!(fx.pg(SimSite::B).await.stale.get(&a), stale.as_ref());
    fx.check().await;
}

/// The volume step has more volumes in flight than Cinder's limit (so their journal
/// entries share writes), but never more manages at once than the limit allows.
#[tokio::test(start_paused = true)]
async fn the_volume_step_keeps_to_the_cinder_limit_with_more_volumes_in_flight() {
    let limits = ConcurrencyLimits {
        compute: 3,
        block_storage: 2,
        storage: 20,
    };
    let fx = Setup::new(seed(61))
        .servers(5)
        .profile(LatencyProfile::realistic())
        .limits(limits.clone())
        .build()
        .await;
    fx.let_time_pass(Duration::from_secs(900)).await;
    let op =
        fx.a.failover(&fx.ctx, PG, fx.planned())
            .await
            .expect("failover starts");
    let op = fx.finish(&fx.a, op).await;
    assert_completed(&op);

    // Replay site B's log: a volume is being managed from its `managing` line to its
    // `available` line.
    let mut managing = std::collections::BTreeSet::new();
    let (mut most, mut managed) = (0, 0);
    for e in fx.world.events() {
        if e.site != Some("site-b") {
            continue;
        }
        let words: Vec<&str> = e.text.split_whitespace().collect();
        match words.as_slice() {
            ["volume", id, "managing", ..] => {
                managing.insert(id.to_string());
                most = most.max(managing.len());
            }
            ["volume", id, "available", ..] if managing.remove(*id) => managed += 1,
            _ => {}
        }
    }
    // 5 servers with a boot and a data volume each.
    assert_eq!(managed, 10);
    assert!(managing.is_empty(), "still managing: {managing:?}");
    assert_eq!(most, limits.block_storage, "most manages at once");
}
