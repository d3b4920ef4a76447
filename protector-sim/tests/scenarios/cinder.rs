//! Cinder: manage, unmanage, delete, groups, types and services, with the Pure
//! driver's array-side names.

use std::time::Duration;

use protector_core::ports::{BlockStorage, Compute, GroupCreate, VolumeStatus};
use protector_core::BackendErrorKind;
use protector_sim::{LatencyClass, LatencyProfile, SimSite, WorkloadSpec};

use super::common::{
    after, alice, boot_request, delete_and_wait, live_array_volumes, manage_request, world,
};

#[tokio::test(start_paused = true)]
async fn manage_renames_the_array_volume_after_the_manage_latency_and_records_its_names() {
    let (w, _seed) = world(21, LatencyProfile::realistic());
    w.create_array_volume(SimSite::A, "restored-db-1", 15)
        .unwrap();
    let cinder = w.block_storage(SimSite::A, &alice(&w, SimSite::A));
    let v = cinder
        .manage_volume(&manage_request(&w, SimSite::A, "restored-db-1", false))
        .await
        .unwrap();
    assert_eq!(v.status, VolumeStatus::Creating);
    tokio::time::sleep(Duration::from_millis(2900)).await;
    assert_eq!(
        cinder.get_volume(&v.id).await.unwrap().status,
        VolumeStatus::Creating
    );
    after(Duration::from_millis(100)).await;
    let managed = cinder.get_volume(&v.id).await.unwrap();
    let expected = format!("volume-{}-cinder", v.id);
    assert_eq!(managed.status, VolumeStatus::Available);
    assert_eq!(managed.size_gb, 15);
    assert!(!managed.bootable);
    assert_eq!(managed.array_volume_name(), Some(expected.as_str()));
    assert_eq!(
        managed.metadata.get("array_name").map(String::as_str),
        Some("array-a")
    );
    let names = live_array_volumes(&w, SimSite::A).await;
    assert!(names.contains(&expected), "{names:?}");
    assert!(!names.contains(&"restored-db-1".to_owned()));
}

#[tokio::test(start_paused = true)]
async fn manage_with_bootable_gives_a_volume_nova_can_boot() {
    let (w, _seed) = world(22, LatencyProfile::zero());
    w.create_array_volume(SimSite::B, "restored-boot", 10)
        .unwrap();
    let ctx = alice(&w, SimSite::B);
    let cinder = w.block_storage(SimSite::B, &ctx);
    let v = cinder
        .manage_volume(&manage_request(&w, SimSite::B, "restored-boot", true))
        .await
        .unwrap();
    after(Duration::ZERO).await;
    assert!(cinder.get_volume(&v.id).await.unwrap().bootable);
    let nova = w.compute(SimSite::B, &ctx);
    let s = nova
        .create_server(&boot_request(
            &w,
            SimSite::B,
            "dr-web-1",
            std::slice::from_ref(&v.id),
        ))
        .await
        .unwrap();
    after(Duration::ZERO).await;
    assert_eq!(
        nova.get_server(&s.id).await.unwrap().status,
        protector_core::ports::ServerStatus::Active
    );
}

#[tokio::test(start_paused = true)]
async fn manage_of_a_missing_source_ends_in_error() {
    let (w, _seed) = world(23, LatencyProfile::zero());
    let cinder = w.block_storage(SimSite::A, &alice(&w, SimSite::A));
    let v = cinder
        .manage_volume(&manage_request(&w, SimSite::A, "no-such-volume", false))
        .await
        .unwrap();
    after(Duration::ZERO).await;
    assert_eq!(
        cinder.get_volume(&v.id).await.unwrap().status,
        VolumeStatus::Error
    );
    let err = cinder
        .wait_for_available(
            &v.id,
            &protector_core::ports::WaitPolicy::new(Duration::from_secs(10)),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind, BackendErrorKind::Conflict);
    // A failed manage can be deleted, as Cinder allows for error_managing.
    cinder.delete_volume(&v.id).await.unwrap();
    after(Duration::ZERO).await;
    assert_eq!(
        cinder.get_volume(&v.id).await.unwrap_err().kind,
        BackendErrorKind::NotFound
    );
}

#[tokio::test(start_paused = true)]
async fn manage_of_an_already_managed_source_ends_in_error_and_leaves_it_alone() {
    let (w, _seed) = world(24, LatencyProfile::zero());
    let workload = w
        .create_workload(&WorkloadSpec::new(SimSite::A, "tenant-a"))
        .unwrap();
    let taken = workload.servers[0].data_volumes[0].array_volume.clone();
    let cinder = w.block_storage(SimSite::A, &alice(&w, SimSite::A));
    let v = cinder
        .manage_volume(&manage_request(&w, SimSite::A, &taken, false))
        .await
        .unwrap();
    after(Duration::ZERO).await;
    assert_eq!(
        cinder.get_volume(&v.id).await.unwrap().status,
        VolumeStatus::Error
    );
    assert!(live_array_volumes(&w, SimSite::A).await.contains(&taken));
}

#[tokio::test(start_paused = true)]
async fn manage_to_an_unknown_host_is_a_bad_request() {
    let (w, _seed) = world(25, LatencyProfile::zero());
    w.create_array_volume(SimSite::A, "src", 1).unwrap();
    let cinder = w.block_storage(SimSite::A, &alice(&w, SimSite::A));
    let mut req = manage_request(&w, SimSite::A, "src", false);
    req.host = w.site(SimSite::B).volume_host.clone();
    let err = cinder.manage_volume(&req).await.unwrap_err();
    assert_eq!(
        (err.kind, err.status),
        (BackendErrorKind::Invalid, Some(400))
    );
}

#[tokio::test(start_paused = true)]
async fn manage_is_refused_with_policy_not_authorized_while_denied() {
    let (w, _seed) = world(26, LatencyProfile::zero());
    w.create_array_volume(SimSite::B, "src", 1).unwrap();
    let cinder = w.block_storage(SimSite::B, &alice(&w, SimSite::B));
    w.deny_volume_manage(SimSite::B);
    let err = cinder
        .manage_volume(&manage_request(&w, SimSite::B, "src", false))
        .await
        .unwrap_err();
    assert_eq!(err.kind, BackendErrorKind::Forbidden);
    assert_eq!(err.status, Some(403));
    assert_eq!(
        err.message,
        "Policy doesn't allow volume_extension:volume_manage to be performed."
    );
    w.allow_volume_manage(SimSite::B);
    assert!(cinder
        .manage_volume(&manage_request(&w, SimSite::B, "src", false))
        .await
        .is_ok());
}

#[tokio::test(start_paused = true)]
async fn unmanage_makes_cinder_forget_the_volume_and_renames_it_unmanaged() {
    let (w, _seed) = world(27, LatencyProfile::realistic());
    w.create_array_volume(SimSite::A, "src", 1).unwrap();
    let cinder = w.block_storage(SimSite::A, &alice(&w, SimSite::A));
    let v = cinder
        .manage_volume(&manage_request(&w, SimSite::A, "src", false))
        .await
        .unwrap();
    after(w.profile().latency(LatencyClass::Manage)).await;
    cinder.unmanage_volume(&v.id).await.unwrap();
    after(w.profile().latency(LatencyClass::UnmanageDelete)).await;
    assert_eq!(
        cinder.get_volume(&v.id).await.unwrap_err().kind,
        BackendErrorKind::NotFound
    );
    let names = live_array_volumes(&w, SimSite::A).await;
    assert!(
        names.contains(&format!("volume-{}-cinder-unmanaged", v.id)),
        "{names:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn unmanage_and_delete_are_refused_while_the_volume_is_in_use() {
    let (w, _seed) = world(28, LatencyProfile::zero());
    let workload = w
        .create_workload(&WorkloadSpec::new(SimSite::A, "tenant-a"))
        .unwrap();
    let id = workload.servers[0].boot_volume.id.clone();
    let cinder = w.block_storage(SimSite::A, &alice(&w, SimSite::A));
    let err = cinder.delete_volume(&id).await.unwrap_err();
    assert_eq!(
        (err.kind, err.status),
        (BackendErrorKind::Invalid, Some(400))
    );
    assert!(err
        .message
        .starts_with("Invalid volume: Volume status must be available"));
    assert_eq!(
        cinder.unmanage_volume(&id).await.unwrap_err().kind,
        BackendErrorKind::Invalid
    );
}

#[tokio::test(start_paused = true)]
async fn delete_destroys_the_array_volume_after_the_delete_latency() {
    let (w, _seed) = world(29, LatencyProfile::realistic());
    let workload = w
        .create_workload(&WorkloadSpec::new(SimSite::A, "tenant-a"))
        .unwrap();
    let server = &workload.servers[0];
    delete_and_wait(&w, SimSite::A, &server.id).await;
    let cinder = w.block_storage(SimSite::A, &alice(&w, SimSite::A));
    let data = &server.data_volumes[0];
    cinder.delete_volume(&data.id).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1900)).await;
    assert!(live_array_volumes(&w, SimSite::A)
        .await
        .contains(&data.array_volume));
    after(Duration::from_millis(100)).await;
    assert_eq!(
        cinder.get_volume(&data.id).await.unwrap_err().kind,
        BackendErrorKind::NotFound
    );
    let names = live_array_volumes(&w, SimSite::A).await;
    assert!(!names.contains(&data.array_volume));
    assert!(names.contains(&server.boot_volume.array_volume));
}

#[tokio::test(start_paused = true)]
async fn groups_take_and_release_volumes_of_their_types() {
    let (w, _seed) = world(30, LatencyProfile::zero());
    let workload = w
        .create_workload(&WorkloadSpec::new(SimSite::A, "tenant-a").data_volumes(2))
        .unwrap();
    let cinder = w.block_storage(SimSite::A, &alice(&w, SimSite::A));
    let async_type = w
        .site(SimSite::A)
        .volume_type_id("replicated-async")
        .unwrap();
    let g = cinder
        .create_group(&GroupCreate {
            name: "pg-web".to_owned(),
            description: None,
            group_type: "consistency-group".to_owned(),
            volume_types: vec![async_type],
        })
        .await
        .unwrap();
    let vols = workload.volume_ids();
    cinder.update_group(&g.id, &vols, &[]).await.unwrap();
    assert_eq!(cinder.get_group(&g.id).await.unwrap().volumes.len(), 3);
    assert_eq!(
        cinder.get_volume(&vols[0]).await.unwrap().group_id,
        Some(g.id.clone())
    );
    let err = cinder.delete_group(&g.id, false).await.unwrap_err();
    assert_eq!(err.kind, BackendErrorKind::Invalid);
    cinder.update_group(&g.id, &[], &vols).await.unwrap();
    assert!(cinder.get_group(&g.id).await.unwrap().volumes.is_empty());
    cinder.delete_group(&g.id, false).await.unwrap();
    assert_eq!(
        cinder.get_group(&g.id).await.unwrap_err().kind,
        BackendErrorKind::NotFound
    );
}

#[tokio::test(start_paused = true)]
async fn volume_types_carry_the_replication_extra_specs_and_services_name_the_backend_host() {
    let (w, _seed) = world(31, LatencyProfile::zero());
    let cinder = w.block_storage(SimSite::B, &alice(&w, SimSite::B));
    let types = cinder.list_volume_types().await.unwrap();
    let find = |n: &str| types.iter().find(|t| t.name == n).unwrap();
    assert_eq!(
        find("replicated-async").replication_type(),
        Some(protector_core::model::ReplicationType::Async)
    );
    assert_eq!(
        find("replicated-sync").replication_type(),
        Some(protector_core::model::ReplicationType::Sync)
    );
    assert_eq!(find("standard").replication_type(), None);
    assert_eq!(
        find("replicated-async").extra_specs["replication_enabled"],
        "<is> True"
    );
    // Sites prepared for protector let members list the cinder-volume hosts.
    assert_eq!(
        cinder.list_volume_services().await.unwrap()[0].host,
        "site-b@pure"
    );
    let admin = w.block_storage(SimSite::B, &w.admin_context(SimSite::B).unwrap());
    let services = admin.list_volume_services().await.unwrap();
    assert_eq!(services[0].host, "site-b@pure");
    assert_eq!(w.site(SimSite::B).volume_host, "site-b@pure#pure");
}

#[tokio::test(start_paused = true)]
async fn deleting_a_server_with_delete_on_termination_deletes_its_volume() {
    let (w, _seed) = world(32, LatencyProfile::zero());
    w.create_array_volume(SimSite::A, "src", 1).unwrap();
    let ctx = alice(&w, SimSite::A);
    let cinder = w.block_storage(SimSite::A, &ctx);
    let v = cinder
        .manage_volume(&manage_request(&w, SimSite::A, "src", true))
        .await
        .unwrap();
    after(Duration::ZERO).await;
    let nova = w.compute(SimSite::A, &ctx);
    let mut req = boot_request(&w, SimSite::A, "tmp", std::slice::from_ref(&v.id));
    req.block_devices[0].delete_on_termination = true;
    let s = nova.create_server(&req).await.unwrap();
    after(Duration::ZERO).await;
    delete_and_wait(&w, SimSite::A, &s.id).await;
    assert_eq!(
        cinder.get_volume(&v.id).await.unwrap_err().kind,
        BackendErrorKind::NotFound
    );
    assert!(!live_array_volumes(&w, SimSite::A)
        .await
        .contains(&format!("volume-{}-cinder", v.id)));
}
