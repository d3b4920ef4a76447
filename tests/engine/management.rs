//! Protection-group management: members, policies, mappings, deletion, concurrency.

use std::time::Duration;

use protector::core::engine::{CreatePolicy, CreateProtectionGroup};
use protector::core::model::{PgStatus, ReplicationType};
use protector::core::ports::Compute;
use protector::core::secrecy::SecretString;
use protector::sim::world::{TYPE_ASYNC, TYPE_PLAIN, TYPE_SYNC};
use protector::sim::{SimSite, WorkloadSpec};

use super::fixture::{assert_completed, seed, Setup, PG};

#[tokio::test(start_paused = true)]
async fn a_server_with_a_volume_on_a_non_replicated_type_is_refused_naming_volume_and_type() {
    let fx = Setup::new(seed(61)).build().await;
    let plain = fx
        .world
        .create_workload(
            &WorkloadSpec::new(SimSite::A, "tenant-a")
                .volume_type(TYPE_PLAIN)
                .named("batch"),
        )
        .expect("workload");
    let server = &plain.servers[0];
    let err =
        fx.a.add_member(&fx.ctx, PG, server.id.as_str())
            .await
            .expect_err("refused");
    assert_eq!(
        err.to_string(),
        format!(
            "Volume {} uses volume type standard, which is not replication-enabled",
            server.boot_volume.id
        )
    );
    let sync = fx
        .world
        .create_workload(
            &WorkloadSpec::new(SimSite::A, "tenant-a")
                .volume_type(TYPE_SYNC)
                .named("db"),
        )
        .expect("workload");
    let err =
        fx.a.add_member(&fx.ctx, PG, "db-1")
            .await
            .expect_err("refused");
    let text = err.to_string();
    assert!(
        text.contains(sync.servers[0].boot_volume.id.as_str()),
        "{text}"
    );
    assert!(
        text.contains("replicated-sync") && text.contains("does not match"),
        "{text}"
    );
    // Nothing changed.
    assert_eq!(fx.pg(SimSite::A).await.members.len(), 2);
    assert_eq!(
        fx.pg(SimSite::B).await.version,
        fx.pg(SimSite::A).await.version
    );
}

/// Cinder shows tenants `replication_enabled` but not `replication_type`: a group
/// created without a named type cannot guess among several replicated types, a named
/// sync type is taken at its word, and only volumes of the group's own type join it.
#[tokio::test(start_paused = true)]
async fn a_tenant_who_cannot_see_replication_type_names_the_type_and_adds_only_its_volumes() {
    let fx = Setup::new(seed(62)).build().await;
    for site in SimSite::BOTH {
        fx.world.filter_member_extra_specs(site, true);
    }
    let mut req = CreateProtectionGroup {
        name: "db-pg".into(),
        description: String::new(),
        replication_type: ReplicationType::Sync,
        primary_site: None,
        secondary_site: None,
        volume_type: None,
        secondary_volume_type: None,
    };
    let err =
        fx.a.create_protection_group(&fx.ctx, &req)
            .await
            .expect_err("ambiguous");
    let text = err.to_string();
    assert!(
        text.contains("cannot see") && text.contains("--volume-type"),
        "{text}"
    );
    req.volume_type = Some(TYPE_SYNC.into());
    req.secondary_volume_type = Some(TYPE_SYNC.into());
    let pg =
        fx.a.create_protection_group(&fx.ctx, &req)
            .await
            .expect("named sync type");
    assert_eq!(pg.replication_type, ReplicationType::Sync);

    fx.world
        .create_workload(
            &WorkloadSpec::new(SimSite::A, "tenant-a")
                .volume_type(TYPE_SYNC)
                .named("db"),
        )
        .expect("workload");
    fx.a.add_member(&fx.ctx, "db-pg", "db-1")
        .await
        .expect("a volume of the group's type joins");
    // An async volume: its mode cannot be seen, and it is not the group's type.
    fx.world
        .create_workload(
            &WorkloadSpec::new(SimSite::A, "tenant-a")
                .volume_type(TYPE_ASYNC)
                .named("batch"),
        )
        .expect("workload");
    let err =
        fx.a.add_member(&fx.ctx, "db-pg", "batch-1")
            .await
            .expect_err("refused");
    let text = err.to_string();
    assert!(
        text.contains("replicated-async") && text.contains("not visible to this user"),
        "{text}"
    );
    assert_eq!(
        fx.pg(SimSite::B).await.members.len(),
        2,
        "{PG} is untouched"
    );
}

#[tokio::test(start_paused = true)]
async fn members_and_policies_are_synced_to_the_peer_and_tokens_are_masked() {
    let fx = Setup::new(seed(62)).servers(1).build().await;
    let a = fx.pg(SimSite::A).await;
    let b = fx.pg(SimSite::B).await;
    assert_eq!(a, b);
    let status = fx.a.sync_status(&fx.ctx, PG).await.expect("status");
    assert_eq!(status.status.as_str(), "IN SYNC");
    assert_eq!(status.remote_version, Some(a.version));
    let policy =
        fx.b.show_policy(&fx.ctx, PG)
            .await
            .expect("policy on the peer");
    assert_eq!(policy.primary_fa_api_token, "******");
    assert_eq!(policy.secondary_fa_api_token, "******");
    assert_eq!(policy.pure_pg_name, "pg-prod-web-app");
    let shown = format!("{policy:?}");
    assert!(!shown.contains(&fx.world.site(SimSite::A).array_token));

    fx.a.remove_member(&fx.ctx, PG, "web-server-1")
        .await
        .expect("remove");
    let after = fx.pg(SimSite::B).await;
    assert!(after.members.is_empty());
    assert_eq!(after.version, a.version + 1);
    let err =
        fx.a.remove_member(&fx.ctx, PG, "web-server-1")
            .await
            .expect_err("not a member");
    assert!(err.to_string().contains("is not a member"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn modifications_are_refused_while_the_peer_is_down() {
    let fx = Setup::new(seed(63)).build().await;
    fx.world.take_site_down(SimSite::B);
    let err =
        fx.a.remove_member(&fx.ctx, PG, "web-server-1")
            .await
            .expect_err("blocked");
    assert_eq!(
        err.to_string(),
        "Cannot modify protection group - remote site unreachable"
    );
    let err =
        fx.a.create_protection_group(
            &fx.ctx,
            &CreateProtectionGroup {
                name: "other".into(),
                description: String::new(),
                replication_type: ReplicationType::Async,
                primary_site: None,
                secondary_site: None,
                volume_type: None,
                secondary_volume_type: None,
            },
        )
        .await
        .expect_err("blocked");
    assert_eq!(
        err.to_string(),
        "Cannot modify protection group - remote site unreachable"
    );
}

#[tokio::test(start_paused = true)]
async fn a_duplicate_group_name_is_refused_and_deleting_a_group_removes_it_everywhere() {
    let fx = Setup::new(seed(64)).build().await;
    let req = CreateProtectionGroup {
        name: PG.into(),
        description: String::new(),
        replication_type: ReplicationType::Async,
        primary_site: None,
        secondary_site: None,
        volume_type: None,
        secondary_volume_type: None,
    };
    let err =
        fx.a.create_protection_group(&fx.ctx, &req)
            .await
            .expect_err("duplicate");
    assert_eq!(
        err.to_string(),
        "A protection group named prod-web-app already exists"
    );
    fx.a.delete_protection_group(&fx.ctx, PG)
        .await
        .expect("delete");
    assert!(fx.a.get_protection_group(&fx.ctx, PG).await.is_err());
    assert!(fx.b.get_protection_group(&fx.ctx, PG).await.is_err());
    assert!(fx
        .a
        .list_protection_groups(&fx.ctx)
        .await
        .expect("list")
        .is_empty());
    // The workload keeps running; its volumes stay.
    let compute = fx.world.compute(SimSite::A, &fx.ctx);
    assert_eq!(compute.list_servers().await.expect("servers").len(), 2);
}

#[tokio::test(start_paused = true)]
async fn failback_without_reverse_replication_leaves_replication_running_from_site_b() {
    let fx = Setup::new(seed(65)).build().await;
    fx.let_time_pass(Duration::from_secs(60)).await;
    let op =
        fx.a.failover(&fx.ctx, PG, fx.planned())
            .await
            .expect("failover");
    assert_completed(&fx.finish(&fx.a, op).await);
    let op =
        fx.b.failback(&fx.ctx, PG, fx.failback(false))
            .await
            .expect("failback");
    assert_completed(&fx.finish(&fx.b, op).await);
    let pg = fx.pg(SimSite::A).await;
    assert_eq!(pg.status, PgStatus::Active);
    assert_eq!(
        pg.replication_source_site_id.as_ref(),
        Some(&pg.secondary_site_id)
    );
    fx.check().await;
}

#[tokio::test(start_paused = true)]
async fn a_second_operation_on_the_same_group_is_refused_but_other_groups_run_concurrently() {
    let fx = Setup::new(seed(66)).build().await;
    // A second group with its own workload.
    let other = fx
        .world
        .create_workload(&WorkloadSpec::new(SimSite::A, "tenant-a").named("batch"))
        .expect("workload");
    fx.a.create_protection_group(
        &fx.ctx,
        &CreateProtectionGroup {
            name: "batch-jobs-pg".into(),
            description: String::new(),
            replication_type: ReplicationType::Async,
            primary_site: None,
            secondary_site: None,
            volume_type: None,
            secondary_volume_type: None,
        },
    )
    .await
    .expect("second group");
    let (ia, ib) = (fx.world.site(SimSite::A), fx.world.site(SimSite::B));
    fx.a.create_policy(
        &fx.ctx,
        "batch-jobs-pg",
        CreatePolicy {
            primary_fa_url: ia.array_url.clone(),
            primary_fa_api_token: SecretString::from(ia.array_token.clone()),
            secondary_fa_url: ib.array_url.clone(),
            secondary_fa_api_token: SecretString::from(ib.array_token.clone()),
            pure_pg_name: None,
            rpo_minutes: Some(5),
            replication_interval_seconds: None,
        },
    )
    .await
    .expect("policy");
    fx.a.add_member(&fx.ctx, "batch-jobs-pg", other.servers[0].id.as_str())
        .await
        .expect("member");
    fx.let_time_pass(Duration::from_secs(600)).await;

    let first = fx.a.sync_volumes(&fx.ctx, PG).await.expect("sync starts");
    let err =
        fx.a.sync_volumes(&fx.ctx, PG)
            .await
            .expect_err("serialised");
    assert!(err.to_string().contains("in progress"), "{err}");
    let other_op =
        fx.a.failover(&fx.ctx, "batch-jobs-pg", {
            let mut r = fx.planned();
            r.mappings = fx.mappings_a_to_b();
            r
        })
        .await
        .expect("another group runs concurrently");
    assert_completed(&fx.finish(&fx.a, first).await);
    assert_completed(&fx.finish(&fx.a, other_op).await);
    assert_eq!(fx.pg(SimSite::A).await.status, PgStatus::Active);
    let batch =
        fx.a.get_protection_group(&fx.ctx, "batch-jobs-pg")
            .await
            .expect("batch");
    assert_eq!(batch.status, PgStatus::FailedOver);
    fx.check().await;
}

#[tokio::test(start_paused = true)]
async fn an_operation_started_on_one_site_blocks_operations_on_the_same_group_from_the_other() {
    let fx = Setup::new(seed(70)).build().await;
    fx.let_time_pass(Duration::from_secs(600)).await;
    let drill =
        fx.a.test_failover(
            &fx.ctx,
            PG,
            protector::core::engine::TestFailoverRequest {
                mappings: fx.mappings_a_to_b(),
            },
        )
        .await
        .expect("test failover starts on site A");
    let err =
        fx.b.sync_volumes(&fx.ctx, PG)
            .await
            .expect_err("serialised across sites");
    assert!(
        err.to_string().contains(drill.id.as_str()),
        "names the running operation: {err}"
    );
    assert_completed(&fx.finish(&fx.a, drill).await);
    let op = fx.b.sync_volumes(&fx.ctx, PG).await.expect("free again");
    assert_completed(&fx.finish(&fx.b, op).await);
    fx.check().await;
}

#[tokio::test(start_paused = true)]
async fn a_flavor_mapping_boots_members_with_the_mapped_flavor() {
    let fx = Setup::new(seed(67)).build().await;
    fx.let_time_pass(Duration::from_secs(60)).await;
    let mut req = fx.planned();
    req.mappings
        .flavors
        .insert("m1.small".into(), "m1.large".into());
    let op = fx.a.failover(&fx.ctx, PG, req).await.expect("failover");
    assert_completed(&fx.finish(&fx.a, op).await);
    let pg = fx.pg(SimSite::B).await;
    let compute = fx.world.compute(SimSite::B, &fx.ctx);
    let large = fx
        .world
        .site(SimSite::B)
        .flavor_id("m1.large")
        .expect("flavor");
    for m in &pg.members {
        let s = compute.get_server(&m.instance_id).await.expect("server");
        assert_eq!(s.flavor_id, large);
        assert_eq!(m.flavor_name.as_deref(), Some("m1.large"));
    }
    // Failback defaults to the reverse of the failover's mappings: the original flavor
    // comes back (by name; ids differ between the sites).
    let op =
        fx.b.failback(&fx.ctx, PG, fx.failback(true))
            .await
            .expect("failback");
    assert_completed(&fx.finish(&fx.b, op).await);
    let pg = fx.pg(SimSite::A).await;
    let compute = fx.world.compute(SimSite::A, &fx.ctx);
    let small_a = fx
        .world
        .site(SimSite::A)
        .flavor_id("m1.small")
        .expect("flavor");
    for m in &pg.members {
        assert_eq!(
            compute
                .get_server(&m.instance_id)
                .await
                .expect("server")
                .flavor_id,
            small_a
        );
    }
}

#[tokio::test(start_paused = true)]
async fn consistency_group_sync_adopts_a_newly_attached_volume_and_replicates_it() {
    let fx = Setup::new(seed(69)).build().await;
    let server = fx.workload.servers[0].id.clone();
    let added = fx
        .world
        .attach_new_volume(SimSite::A, &server, protector::sim::world::TYPE_ASYNC, 20)
        .expect("attach");
    let op = fx.a.sync_volumes(&fx.ctx, PG).await.expect("sync");
    let op = fx.finish(&fx.a, op).await;
    assert_completed(&op);
    assert_eq!(op.result_data["volumes_added"], 1);
    assert_eq!(op.result_data["volumes_removed"], 0);
    let pg = fx.pg(SimSite::B).await;
    let member = pg
        .members
        .iter()
        .find(|m| m.instance_id == server)
        .expect("member");
    assert!(member.volumes.iter().any(|v| v.volume_id == added.id));
    // The new volume now replicates: a failover recovers it too, without losing a write.
    let op =
        fx.a.failover(&fx.ctx, PG, fx.planned())
            .await
            .expect("failover");
    assert_completed(&fx.finish(&fx.a, op).await);
    let after = fx.pg(SimSite::B).await;
    let m = after
        .members
        .iter()
        .find(|m| m.id == member.id)
        .expect("member");
    assert_eq!(m.volumes.len(), 3);
    let recovered = m
        .volumes
        .iter()
        .find(|v| v.name.ends_with("-data-2"))
        .expect("recovered");
    let lost = fx
        .world
        .writes_lost(
            SimSite::A,
            &added.array_volume,
            SimSite::B,
            &recovered.array_volume_name,
        )
        .expect("seq");
    assert_eq!(lost, 0);
    fx.check().await;
}

#[tokio::test(start_paused = true)]
async fn consistency_group_sync_replicates_now_and_records_the_snapshot() {
    let fx = Setup::new(seed(68)).build().await;
    let op = fx.a.sync_volumes(&fx.ctx, PG).await.expect("sync");
    let op = fx.finish(&fx.a, op).await;
    assert_completed(&op);
    assert_eq!(op.operation_type.as_str(), "sync_volumes");
    assert_eq!(op.result_data["volumes_added"], 0);
    assert!(op.result_data["replicated_snapshot"].as_str().is_some());
    let pg = fx.pg(SimSite::A).await;
    assert!(pg.last_replication_at.is_some());
    fx.check().await;
}

#[tokio::test(start_paused = true)]
async fn a_site_with_stale_metadata_never_overwrites_the_newer_copy_of_its_peer() {
    let fx = Setup::new(seed(70)).build().await;
    fx.let_time_pass(Duration::from_secs(700)).await;
    fx.world.take_site_down(SimSite::A);
    let op =
        fx.b.failover(&fx.ctx, PG, fx.unplanned())
            .await
            .expect("unplanned");
    assert_completed(&fx.finish(&fx.b, op).await);
    fx.world.bring_site_up(SimSite::A);
    // Site A still believes the group is active there. A cleanup it runs fails (site B's
    // Nova errors) and records that on its own copy, but must not push that stale copy
    // over site B's.
    let fault = fx.world.fault(
        protector::sim::FaultRule::fail(protector::core::BackendErrorKind::Transient, "503")
            .on_call(protector::sim::CallKind::ListServers)
            .on_site(SimSite::B),
    );
    let op =
        fx.a.test_cleanup(&fx.ctx, PG)
            .await
            .expect("cleanup starts");
    let op = fx.finish(&fx.a, op).await;
    assert_eq!(op.status, protector::core::model::OperationStatus::Failed);
    drop(fault);
    let b = fx.pg(SimSite::B).await;
    assert_eq!(b.status, PgStatus::FailedOver);
    assert_eq!(b.current_primary_site_id, fx.world.site(SimSite::B).site_id);
    let status = fx.a.sync_status(&fx.ctx, PG).await.expect("status");
    assert_eq!(status.status.as_str(), "FAILED");
    // The site that ran the failover pushes its copy, and both agree again.
    let forced = fx.b.sync_force(&fx.ctx, PG).await.expect("sync-force");
    assert_eq!(forced.status.as_str(), "IN SYNC");
    assert_eq!(fx.pg(SimSite::A).await.status, PgStatus::FailedOver);
}

#[tokio::test(start_paused = true)]
async fn a_batch_of_servers_joins_in_one_version_and_a_refused_batch_changes_nothing() {
    let fx = Setup::new(seed(63)).build().await;
    let before = fx.pg(SimSite::A).await;
    let batch = fx
        .world
        .create_workload(
            &WorkloadSpec::new(SimSite::A, "tenant-a")
                .servers(3)
                .volume_type(TYPE_ASYNC)
                .named("batch"),
        )
        .expect("workload");
    let names: Vec<&str> = batch.servers.iter().map(|s| s.id.as_str()).collect();

    // One ineligible server refuses the whole batch before anything changes.
    let plain = fx
        .world
        .create_workload(
            &WorkloadSpec::new(SimSite::A, "tenant-a")
                .volume_type(TYPE_PLAIN)
                .named("plain"),
        )
        .expect("workload");
    let mut refused = names.clone();
    refused.push(plain.servers[0].id.as_str());
    fx.a.add_members(&fx.ctx, PG, &refused)
        .await
        .expect_err("a non-replicated volume refuses the batch");
    // A server named twice is already a member of the batch.
    let twice = [names[0], names[0]];
    fx.a.add_members(&fx.ctx, PG, &twice)
        .await
        .expect_err("named twice");
    assert_eq!(fx.pg(SimSite::A).await, before);

    let added =
        fx.a.add_members(&fx.ctx, PG, &names)
            .await
            .expect("batch joins");
    assert_eq!(added.len(), 3);
    let a = fx.pg(SimSite::A).await;
    assert_eq!(a.version, before.version + 1, "one version for the batch");
    assert_eq!(a.members.len(), before.members.len() + 3);
    for (i, (m, s)) in added.iter().zip(&batch.servers).enumerate() {
        assert_eq!(m.instance_id, s.id);
        assert_eq!(m.boot_order as usize, before.members.len() + i);
        assert_eq!(m.volumes.len(), 2);
    }
    assert_eq!(fx.pg(SimSite::B).await, a, "pushed to the peer");
    // The batch's servers are members now: adding one again is refused.
    fx.a.add_member(&fx.ctx, PG, names[1])
        .await
        .expect_err("already a member");
    assert!(fx
        .a
        .add_members::<&str>(&fx.ctx, PG, &[])
        .await
        .expect("empty batch")
        .is_empty());
    assert_eq!(fx.pg(SimSite::A).await.version, a.version);

    // The batch fails over with the rest of the group.
    fx.let_time_pass(Duration::from_secs(600)).await;
    let op =
        fx.a.failover(&fx.ctx, PG, fx.planned())
            .await
            .expect("failover starts");
    assert_completed(&fx.finish(&fx.a, op).await);
    assert_eq!(fx.pg(SimSite::B).await.members.len(), a.members.len());
    fx.check().await;
}
