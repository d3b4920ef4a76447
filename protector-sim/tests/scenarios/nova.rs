//! Nova: boot, stop, start and delete as the real service behaves.

use std::time::Duration;

use protector_core::ports::{BlockStorage, Compute, ServerStatus, VolumeStatus};
use protector_sim::{LatencyProfile, SimSite, WorkloadSpec};

use super::common::{after, alice, boot_request, manage_request, world};

/// Two available volumes of tenant-a on site-a: a managed bootable one and a data one.
async fn managed_volumes(
    w: &protector_sim::SimWorld,
    bootable: bool,
) -> (protector_core::ids::VolumeId, protector_core::ids::VolumeId) {
    let cinder = w.block_storage(SimSite::A, &alice(w, SimSite::A));
    w.create_array_volume(SimSite::A, "boot-src", 10).unwrap();
    w.create_array_volume(SimSite::A, "data-src", 20).unwrap();
    let boot = cinder
        .manage_volume(&manage_request(w, SimSite::A, "boot-src", bootable))
        .await
        .unwrap();
    let data = cinder
        .manage_volume(&manage_request(w, SimSite::A, "data-src", false))
        .await
        .unwrap();
    after(w.profile().latency(protector_sim::LatencyClass::Manage)).await;
    (boot.id, data.id)
}

#[tokio::test(start_paused = true)]
async fn boot_takes_the_profile_boot_latency_and_ends_active() {
    let (w, _seed) = world(11, LatencyProfile::realistic());
    let (boot, data) = managed_volumes(&w, true).await;
    let nova = w.compute(SimSite::A, &alice(&w, SimSite::A));
    let start = tokio::time::Instant::now();
    let server = nova
        .create_server(&boot_request(
            &w,
            SimSite::A,
            "web-1",
            &[boot.clone(), data.clone()],
        ))
        .await
        .unwrap();
    assert_eq!(server.status, ServerStatus::Build);

    tokio::time::sleep(Duration::from_secs(29)).await;
    assert_eq!(
        nova.get_server(&server.id).await.unwrap().status,
        ServerStatus::Build
    );
    let active = nova
        .wait_for_status(
            &server.id,
            ServerStatus::Active,
            &protector_core::ports::WaitPolicy::new(Duration::from_secs(120))
                .with_intervals(Duration::from_millis(100), Duration::from_millis(100)),
        )
        .await
        .unwrap();
    let took = start.elapsed();
    assert!(
        took >= Duration::from_secs(30) && took < Duration::from_secs(31),
        "boot took {took:?}"
    );
    assert_eq!(active.status, ServerStatus::Active);
    assert_eq!(
        nova.get_server(&server.id).await.unwrap().volumes_attached,
        vec![boot.clone(), data.clone()]
    );
    let cinder = w.block_storage(SimSite::A, &alice(&w, SimSite::A));
    assert_eq!(
        cinder.get_volume(&boot).await.unwrap().status,
        VolumeStatus::InUse
    );
    assert_eq!(
        cinder.get_volume(&data).await.unwrap().status,
        VolumeStatus::InUse
    );
}

#[tokio::test(start_paused = true)]
async fn boot_errors_with_a_fault_when_the_flavor_is_missing() {
    let (w, _seed) = world(12, LatencyProfile::zero());
    let (boot, _) = managed_volumes(&w, true).await;
    let nova = w.compute(SimSite::A, &alice(&w, SimSite::A));
    let mut req = boot_request(&w, SimSite::A, "web-1", std::slice::from_ref(&boot));
    // A flavor id of the other site: names match, ids do not.
    req.flavor_id = w.site(SimSite::B).flavor_id("m1.small").unwrap();
    let server = nova.create_server(&req).await.unwrap();
    let got = nova.get_server(&server.id).await.unwrap();
    assert_eq!(got.status, ServerStatus::Error);
    assert_eq!(
        got.fault.unwrap(),
        format!("Flavor {} could not be found.", req.flavor_id)
    );
    let cinder = w.block_storage(SimSite::A, &alice(&w, SimSite::A));
    assert_eq!(
        cinder.get_volume(&boot).await.unwrap().status,
        VolumeStatus::Available
    );
}

#[tokio::test(start_paused = true)]
async fn boot_errors_with_a_fault_when_the_network_is_missing() {
    let (w, _seed) = world(13, LatencyProfile::zero());
    let (boot, _) = managed_volumes(&w, true).await;
    let nova = w.compute(SimSite::A, &alice(&w, SimSite::A));
    let mut req = boot_request(&w, SimSite::A, "web-1", &[boot]);
    req.networks[0].network_id = w.site(SimSite::B).network_id("tenant-a-web").unwrap();
    let server = nova.create_server(&req).await.unwrap();
    assert_eq!(server.status, ServerStatus::Error);
    assert!(server.fault.unwrap().contains("could not be found"));
}

#[tokio::test(start_paused = true)]
async fn boot_errors_with_a_fault_when_the_boot_volume_is_not_bootable() {
    let (w, _seed) = world(14, LatencyProfile::zero());
    let (boot, _) = managed_volumes(&w, false).await;
    let nova = w.compute(SimSite::A, &alice(&w, SimSite::A));
    let server = nova
        .create_server(&boot_request(
            &w,
            SimSite::A,
            "web-1",
            std::slice::from_ref(&boot),
        ))
        .await
        .unwrap();
    let got = nova.get_server(&server.id).await.unwrap();
    assert_eq!(got.status, ServerStatus::Error);
    assert_eq!(
        got.fault.unwrap(),
        format!("Block Device {boot} is not bootable.")
    );
}

#[tokio::test(start_paused = true)]
async fn boot_errors_with_a_fault_when_a_volume_is_not_available() {
    let (w, _seed) = world(15, LatencyProfile::zero());
    let workload = w
        .create_workload(&WorkloadSpec::new(SimSite::A, "tenant-a"))
        .unwrap();
    let in_use = workload.servers[0].boot_volume.id.clone();
    let nova = w.compute(SimSite::A, &alice(&w, SimSite::A));
    let server = nova
        .create_server(&boot_request(&w, SimSite::A, "thief", &[in_use]))
        .await
        .unwrap();
    assert_eq!(server.status, ServerStatus::Error);
    assert!(server.fault.unwrap().contains("current status is in-use"));
}

#[tokio::test(start_paused = true)]
async fn stop_moves_an_active_server_to_shutoff_after_the_stop_latency_and_start_brings_it_back() {
    let (w, _seed) = world(16, LatencyProfile::realistic());
    let workload = w
        .create_workload(&WorkloadSpec::new(SimSite::A, "tenant-a"))
        .unwrap();
    let id = workload.servers[0].id.clone();
    let nova = w.compute(SimSite::A, &alice(&w, SimSite::A));
    nova.stop_server(&id).await.unwrap();
    tokio::time::sleep(Duration::from_secs(9)).await;
    assert_eq!(
        nova.get_server(&id).await.unwrap().status,
        ServerStatus::Active
    );
    after(Duration::from_secs(1)).await;
    assert_eq!(
        nova.get_server(&id).await.unwrap().status,
        ServerStatus::Shutoff
    );
    // Stopping a stopped server is accepted and changes nothing.
    nova.stop_server(&id).await.unwrap();
    nova.start_server(&id).await.unwrap();
    after(Duration::from_secs(10)).await;
    assert_eq!(
        nova.get_server(&id).await.unwrap().status,
        ServerStatus::Active
    );
}

#[tokio::test(start_paused = true)]
async fn stopped_servers_stop_writing_their_volumes() {
    let (w, _seed) = world(17, LatencyProfile::zero());
    let workload = w
        .create_workload(&WorkloadSpec::new(SimSite::A, "tenant-a"))
        .unwrap();
    let vol = workload.servers[0].boot_volume.array_volume.clone();
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(w.write_seq(SimSite::A, &vol).unwrap(), 10);
    let nova = w.compute(SimSite::A, &alice(&w, SimSite::A));
    nova.stop_server(&workload.servers[0].id).await.unwrap();
    after(Duration::ZERO).await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(w.write_seq(SimSite::A, &vol).unwrap(), 10);
}

#[tokio::test(start_paused = true)]
async fn delete_removes_the_server_after_the_delete_latency_and_frees_its_volumes() {
    let (w, _seed) = world(18, LatencyProfile::realistic());
    let workload = w
        .create_workload(&WorkloadSpec::new(SimSite::A, "tenant-a").data_volumes(2))
        .unwrap();
    let server = &workload.servers[0];
    let nova = w.compute(SimSite::A, &alice(&w, SimSite::A));
    nova.delete_server(&server.id).await.unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(nova.get_server(&server.id).await.is_ok());
    after(Duration::from_secs(1)).await;
    let err = nova.get_server(&server.id).await.unwrap_err();
    assert_eq!(err.kind, protector_core::BackendErrorKind::NotFound);
    assert_eq!(err.status, Some(404));
    assert_eq!(
        err.message,
        format!("Instance {} could not be found.", server.id)
    );
    let cinder = w.block_storage(SimSite::A, &alice(&w, SimSite::A));
    for v in server.volumes() {
        let vol = cinder.get_volume(&v.id).await.unwrap();
        assert_eq!(vol.status, VolumeStatus::Available);
        assert!(vol.attachments.is_empty());
    }
}

#[tokio::test(start_paused = true)]
async fn a_volume_moved_into_a_pod_keeps_being_tracked_by_its_server() {
    let (w, _seed) = world(19, LatencyProfile::zero());
    let workload = w
        .create_workload(&WorkloadSpec::new(SimSite::A, "tenant-a").volume_type("replicated-sync"))
        .unwrap();
    let vol = workload.servers[0].boot_volume.array_volume.clone();
    let a = w.array(SimSite::A);
    a.create_pod("cinder-pod").await.unwrap();
    let moved = a.move_volume(&vol, Some("cinder-pod")).await.unwrap();
    assert_eq!(moved.name, format!("cinder-pod::{vol}"));
    tokio::time::sleep(Duration::from_secs(5)).await;
    let nova = w.compute(SimSite::A, &alice(&w, SimSite::A));
    nova.stop_server(&workload.servers[0].id).await.unwrap();
    after(Duration::ZERO).await;
    let frozen = w.write_seq(SimSite::A, &moved.name).unwrap();
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(w.write_seq(SimSite::A, &moved.name).unwrap(), frozen);
    assert!(frozen >= 5);
    assert_eq!(
        w.check_invariants(&protector_sim::InvariantInput::default()),
        Ok(())
    );
}
