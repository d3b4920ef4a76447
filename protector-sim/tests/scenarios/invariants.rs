//! The invariant checker: leaks, placement and data loss.

use std::time::Duration;

use protector_core::model::{JournalEntry, JournalEvent, ProtectionGroup, ResourceRef};
use protector_core::ports::Compute;
use protector_purestorage::PgSnapshotOptions;
use protector_sim::{
    DataLossCheck, InvariantInput, LatencyProfile, SimSite, SimWorld, Violation, Workload,
    WorkloadSpec,
};

use super::common::{after, alice, boot_request, world};

/// A protection group over a workload, as the engine would record it.
fn group(w: &SimWorld, workload: &Workload, status: &str, current: SimSite) -> ProtectionGroup {
    let (a, b) = (
        w.site(SimSite::A).site_id.clone(),
        w.site(SimSite::B).site_id.clone(),
    );
    let members: Vec<serde_json::Value> = workload
        .servers
        .iter()
        .enumerate()
        .map(|(i, s)| {
            serde_json::json!({
                "id": format!("member-{i}"),
                "instance_id": s.id,
                "instance_name": s.name,
                "status": "protected",
                "flavor_id": w.site(workload.site).flavor_id("m1.small").unwrap(),
                "created_at": "2025-03-15T09:00:00Z",
                "volumes": s.volumes().enumerate().map(|(j, v)| serde_json::json!({
                    "volume_id": v.id,
                    "size_gb": v.size_gb,
                    "bootable": j == 0,
                    "array_volume_name": v.array_volume,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({
        "id": "pg-1",
        "name": "web",
        "project_id": workload.project_id,
        "status": status,
        "replication_type": "async",
        "primary_site_id": a,
        "secondary_site_id": b,
        "current_primary_site_id": w.site(current).site_id,
        "failover_count": 0,
        "last_failover_at": null,
        "last_replication_at": null,
        "version": 1,
        "members": members,
        "created_at": "2025-03-15T09:00:00Z",
        "updated_at": "2025-03-15T09:00:00Z",
    }))
    .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_world_with_only_workloads_and_owned_resources_passes() {
    let (w, _seed) = world(91, LatencyProfile::zero());
    let workload = w
        .create_workload(&WorkloadSpec::new(SimSite::A, "tenant-a").servers(2))
        .unwrap();
    let input = InvariantInput {
        protection_groups: vec![group(&w, &workload, "active", SimSite::A)],
        ..Default::default()
    };
    assert_eq!(w.check_invariants(&input), Ok(()));
    assert_eq!(w.check_invariants(&InvariantInput::default()), Ok(()));
}

#[tokio::test(start_paused = true)]
async fn the_checker_flags_a_server_nobody_owns_until_a_journal_records_it() {
    let (w, _seed) = world(92, LatencyProfile::zero());
    w.create_array_volume(SimSite::B, "restored", 1).unwrap();
    let ctx = alice(&w, SimSite::B);
    let cinder = w.block_storage(SimSite::B, &ctx);
    let v = protector_core::ports::BlockStorage::manage_volume(
        &cinder,
        &super::common::manage_request(&w, SimSite::B, "restored", true),
    )
    .await
    .unwrap();
    after(Duration::ZERO).await;
    let server = w
        .compute(SimSite::B, &ctx)
        .create_server(&boot_request(
            &w,
            SimSite::B,
            "orphan",
            std::slice::from_ref(&v.id),
        ))
        .await
        .unwrap();
    after(Duration::ZERO).await;

    let violations = w.check_invariants(&InvariantInput::default()).unwrap_err();
    assert!(
        violations
            .iter()
            .any(|x| matches!(x, Violation::LeakedServer { id, .. } if *id == server.id)),
        "{violations:?}"
    );
    assert!(violations
        .iter()
        .any(|x| matches!(x, Violation::LeakedVolume { id, .. } if *id == v.id)));
    let text = violations
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        text.contains(&format!(
            "server orphan ({}, ACTIVE) on site-b is leaked",
            server.id
        )),
        "{text}"
    );

    let site_b = w.site(SimSite::B).site_id.clone();
    let entry = |seq, resource| JournalEntry {
        operation_id: protector_core::ids::OperationId::new("op-1"),
        seq,
        at: w.clock().now(),
        event: JournalEvent::Created { resource },
    };
    let input = InvariantInput {
        journals: vec![
            entry(
                0,
                ResourceRef::Volume {
                    site_id: site_b.clone(),
                    id: v.id.clone(),
                },
            ),
            entry(
                1,
                ResourceRef::Server {
                    site_id: site_b.clone(),
                    id: server.id.clone(),
                },
            ),
        ],
        ..Default::default()
    };
    assert_eq!(w.check_invariants(&input), Ok(()));
    let mut released = input.clone();
    released.journals.push(JournalEntry {
        operation_id: protector_core::ids::OperationId::new("op-1"),
        seq: 2,
        at: w.clock().now(),
        event: JournalEvent::Released {
            resource: ResourceRef::Server {
                site_id: site_b,
                id: server.id.clone(),
            },
        },
    });
    assert_eq!(w.check_invariants(&released).unwrap_err().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_checker_flags_an_array_volume_that_backs_nothing() {
    let (w, _seed) = world(93, LatencyProfile::zero());
    w.create_workload(&WorkloadSpec::new(SimSite::A, "tenant-a"))
        .unwrap();
    w.create_array_volume(SimSite::B, "restored-from-db-1", 10)
        .unwrap();
    assert!(w
        .array_volumes(SimSite::B)
        .contains(&"restored-from-db-1".to_owned()));
    assert_eq!(w.servers(SimSite::A).len(), 1);
    assert_eq!(w.volumes(SimSite::A).len(), 2);
    assert_eq!(w.stats().total(), 0, "inspection is not counted");
    let violations = w.check_invariants(&InvariantInput::default()).unwrap_err();
    assert_eq!(
        violations,
        vec![Violation::LeakedArrayVolume {
            site: SimSite::B,
            array: "array-b".to_owned(),
            name: "restored-from-db-1".to_owned()
        }]
    );
    assert_eq!(
        violations[0].to_string(),
        "array volume restored-from-db-1 on array-b (site-b) is leaked: it backs no Cinder volume and nothing else owns it"
    );
    let allowed = InvariantInput {
        allow: vec![ResourceRef::ArrayVolume {
            site_id: w.site(SimSite::B).site_id.clone(),
            name: "restored-from-db-1".to_owned(),
        }],
        ..Default::default()
    };
    assert_eq!(w.check_invariants(&allowed), Ok(()));
}

#[tokio::test(start_paused = true)]
async fn the_checker_flags_a_group_whose_status_does_not_match_where_it_runs() {
    let (w, _seed) = world(94, LatencyProfile::zero());
    let workload = w
        .create_workload(&WorkloadSpec::new(SimSite::A, "tenant-a"))
        .unwrap();
    // Claims to be failed over to site-b while its servers run on site-a.
    let lying = group(&w, &workload, "failed_over", SimSite::A);
    let violations = w
        .check_invariants(&InvariantInput {
            protection_groups: vec![lying],
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert!(matches!(&violations[0], Violation::StatusMismatch { group, .. } if group == "web"));
    assert!(violations[0]
        .to_string()
        .contains("status is failed_over but current_primary_site_id is"));

    // Active on site-a, but its server is stopped.
    let nova = w.compute(SimSite::A, &alice(&w, SimSite::A));
    nova.stop_server(&workload.servers[0].id).await.unwrap();
    after(Duration::ZERO).await;
    let pg = group(&w, &workload, "active", SimSite::A);
    let violations = w
        .check_invariants(&InvariantInput {
            protection_groups: vec![pg],
            ..Default::default()
        })
        .unwrap_err();
    assert!(
        violations[0]
            .to_string()
            .contains("is SHUTOFF on site-a, not ACTIVE"),
        "{violations:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn writes_lost_measures_the_writes_missing_from_a_replicated_snapshot() {
    let (w, _seed) = world(95, LatencyProfile::realistic());
    let workload = w
        .create_workload(&WorkloadSpec::new(SimSite::A, "tenant-a").data_volumes(0))
        .unwrap();
    let vol = workload.servers[0].boot_volume.array_volume.clone();
    let (a, b) = (w.array(SimSite::A), w.array(SimSite::B));
    a.create_protection_group("cinder-group").await.unwrap();
    a.add_protection_group_volumes("cinder-group", std::slice::from_ref(&vol))
        .await
        .unwrap();
    a.add_protection_group_targets("cinder-group", &["array-b".to_owned()])
        .await
        .unwrap();
    b.allow_protection_group("array-a:cinder-group")
        .await
        .unwrap();

    tokio::time::sleep_until(tokio::time::Instant::now() + Duration::from_secs(100)).await;
    let opts = PgSnapshotOptions {
        replicate_now: true,
        ..Default::default()
    };
    let snap = a.create_pg_snapshot("cinder-group", &opts).await.unwrap();
    let captured = w.write_seq(SimSite::A, &vol).unwrap();
    after(w.fabric().transfer_time()).await;
    let replica = format!("array-a:{}.{vol}", snap.name);
    assert_eq!(w.write_seq(SimSite::B, &replica).unwrap(), captured);

    // The server keeps writing for another minute after the snapshot: an unplanned
    // failover now loses those writes.
    tokio::time::sleep(Duration::from_secs(60)).await;
    let lost = w
        .writes_lost(SimSite::A, &vol, SimSite::B, &replica)
        .unwrap();
    assert!((74..=76).contains(&lost), "lost {lost}");
    let check = |bound| InvariantInput {
        data_loss: vec![DataLossCheck {
            source_site: SimSite::A,
            source_volume: vol.clone(),
            source_seq: None,
            target_site: SimSite::B,
            target: replica.clone(),
            max_writes_lost: bound,
        }],
        ..Default::default()
    };
    assert_eq!(w.check_invariants(&check(3600)), Ok(()));
    let violations = w.check_invariants(&check(10)).unwrap_err();
    assert!(matches!(violations[0], Violation::DataLoss { lost: l, allowed: 10, .. } if l == lost));
}

#[tokio::test(start_paused = true)]
async fn the_checker_flags_an_operation_whose_steps_its_journal_does_not_back() {
    let (w, _seed) = world(96, LatencyProfile::zero());
    let mut op = protector_core::model::Operation::new(
        protector_core::ids::OperationId::new("op-7"),
        protector_core::ids::ProtectionGroupId::new("pg-1"),
        protector_core::ids::ProjectId::new("p"),
        protector_core::model::OperationType::Failover,
        None,
        w.site(SimSite::A).site_id.clone(),
        w.site(SimSite::B).site_id.clone(),
        protector_core::model::OperationParameters::default(),
        w.clock().now(),
    );
    op.steps_completed = vec![protector_core::progress::StepId::Prepare];
    let entry = |seq, event| JournalEntry {
        operation_id: op.id.clone(),
        seq,
        at: w.clock().now(),
        event,
    };
    let step = protector_core::progress::StepId::Prepare;
    let mut input = InvariantInput {
        operations: vec![op.clone()],
        journals: vec![entry(0, JournalEvent::StepStarted { step })],
        ..Default::default()
    };
    let violations = w.check_invariants(&input).unwrap_err();
    assert_eq!(
        violations[0].to_string(),
        "operation op-7: records step prepare as completed but its journal has no step_completed entry for it"
    );
    input
        .journals
        .push(entry(1, JournalEvent::StepCompleted { step }));
    assert_eq!(w.check_invariants(&input), Ok(()));
}
