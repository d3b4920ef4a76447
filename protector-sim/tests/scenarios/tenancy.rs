//! What each caller sees: tenants their own project, admins everything; two sites
//! with the same names and different ids.

use protector_core::ports::Compute;
use protector_core::{BackendErrorKind, RequestContext};
use protector_sim::{LatencyProfile, SimSite, WorkloadSpec};

use super::common::world;

#[tokio::test(start_paused = true)]
async fn tenants_list_only_their_own_servers_and_volumes_and_admins_list_all() {
    let (w, _seed) = world(41, LatencyProfile::zero());
    let a = w
        .create_workload(&WorkloadSpec::new(SimSite::A, "tenant-a").servers(2))
        .unwrap();
    let b = w
        .create_workload(
            &WorkloadSpec::new(SimSite::A, "tenant-b")
                .servers(3)
                .data_volumes(0),
        )
        .unwrap();
    let alice = w.clients(
        SimSite::A,
        &w.tenant_context(SimSite::A, "tenant-a").unwrap(),
    );
    let bob = w.clients(
        SimSite::A,
        &w.tenant_context(SimSite::A, "tenant-b").unwrap(),
    );
    let admin = w.clients(SimSite::A, &w.admin_context(SimSite::A).unwrap());

    let ids =
        |v: Vec<protector_core::ports::Server>| v.into_iter().map(|s| s.id).collect::<Vec<_>>();
    let mut alice_servers = ids(alice.compute.list_servers().await.unwrap());
    alice_servers.sort();
    let mut expected = a.server_ids();
    expected.sort();
    assert_eq!(alice_servers, expected);
    assert_eq!(bob.compute.list_servers().await.unwrap().len(), 3);
    assert_eq!(admin.compute.list_servers().await.unwrap().len(), 5);
    assert_eq!(alice.block_storage.list_volumes().await.unwrap().len(), 4);
    assert_eq!(bob.block_storage.list_volumes().await.unwrap().len(), 3);
    assert_eq!(admin.block_storage.list_volumes().await.unwrap().len(), 7);
    // Site B has none of them.
    let alice_b = w.clients(
        SimSite::B,
        &w.tenant_context(SimSite::B, "tenant-a").unwrap(),
    );
    assert!(alice_b.compute.list_servers().await.unwrap().is_empty());

    let err = alice
        .compute
        .get_server(&b.servers[0].id)
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind, err.status),
        (BackendErrorKind::NotFound, Some(404))
    );
    let err = alice
        .block_storage
        .get_volume(&b.servers[0].boot_volume.id)
        .await
        .unwrap_err();
    assert_eq!(err.kind, BackendErrorKind::NotFound);
    // Tenants do not see the backend host or provider id; admins do.
    let v = alice
        .block_storage
        .get_volume(&a.servers[0].boot_volume.id)
        .await
        .unwrap();
    assert_eq!(v.host, None);
    assert_eq!(
        v.array_volume_name(),
        Some(a.servers[0].boot_volume.array_volume.as_str())
    );
    let v = admin
        .block_storage
        .get_volume(&a.servers[0].boot_volume.id)
        .await
        .unwrap();
    assert_eq!(v.host.as_deref(), Some("site-a@pure#pure"));
    assert_eq!(
        v.provider_id.as_deref(),
        Some(a.servers[0].boot_volume.array_volume.as_str())
    );
}

#[tokio::test(start_paused = true)]
async fn tenants_see_their_networks_and_the_shared_one_but_not_other_tenants() {
    let (w, _seed) = world(42, LatencyProfile::zero());
    let alice = w.clients(
        SimSite::B,
        &w.tenant_context(SimSite::B, "tenant-a").unwrap(),
    );
    let mut names: Vec<String> = alice
        .networking
        .list_networks()
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.name)
        .collect();
    names.sort();
    assert_eq!(names, ["shared-net", "tenant-a-db", "tenant-a-web"]);
    let bobs = w.site(SimSite::B).network_id("tenant-b-web").unwrap();
    let err = alice.networking.get_network(&bobs).await.unwrap_err();
    assert_eq!(err.message, format!("Network {bobs} could not be found."));
}

#[tokio::test(start_paused = true)]
async fn both_sites_share_names_but_not_ids() {
    let (w, _seed) = world(43, LatencyProfile::zero());
    let (a, b) = (w.site(SimSite::A), w.site(SimSite::B));
    for name in ["m1.small", "m1.large"] {
        assert_ne!(a.flavor_id(name).unwrap(), b.flavor_id(name).unwrap());
    }
    assert_ne!(
        a.network_id("tenant-a-web").unwrap(),
        b.network_id("tenant-a-web").unwrap()
    );
    // Tenants are mapped to the same project ids on both sites.
    assert_eq!(
        a.project_id("tenant-a").unwrap(),
        b.project_id("tenant-a").unwrap()
    );
    assert_ne!(a.site_id, b.site_id);
    assert_eq!(a.array_url, "https://array-a.sim.invalid");
    assert_ne!(a.array_token, b.array_token);
    let nova = w.compute(
        SimSite::A,
        &w.tenant_context(SimSite::A, "tenant-a").unwrap(),
    );
    let flavors = nova.list_flavors().await.unwrap();
    assert_eq!(
        nova.find_flavor("m1.small").await.unwrap().unwrap().id,
        a.flavor_id("m1.small").unwrap()
    );
    assert_eq!(flavors.len(), 4);
}

#[tokio::test(start_paused = true)]
async fn unknown_users_and_users_without_a_role_on_the_project_are_not_authenticated() {
    let (w, _seed) = world(44, LatencyProfile::zero());
    let alice = w.tenant_context(SimSite::A, "tenant-a").unwrap();
    assert!(w.issue_token(SimSite::A, &alice).await.is_ok());
    assert!(
        w.issue_token(SimSite::B, &alice).await.is_ok(),
        "tenants are mapped on both sites"
    );
    let stranger = RequestContext::new("nobody", alice.project_id.clone(), &["member"]);
    let err = w
        .compute(SimSite::A, &stranger)
        .list_servers()
        .await
        .unwrap_err();
    assert_eq!((err.kind, err.status), (BackendErrorKind::Auth, Some(401)));
    let mut trespasser = alice.clone();
    trespasser.project_id = w.site(SimSite::A).project_id("tenant-b").unwrap();
    assert!(w.issue_token(SimSite::A, &trespasser).await.is_err());
}
