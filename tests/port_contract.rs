//! The simulator passes the same port conformance checks as the real OpenStack clients
//! (`protector_core::ports::contract`).

use std::collections::BTreeMap;
use std::time::Duration;

use protector::core::ports::contract::{
    get_missing_server_is_not_found, list_servers_returns_everything,
    list_volumes_returns_everything, managed_volume_appears, server_state_agrees_with_the_server,
};
use protector::core::ports::ManageVolume;
use protector::sim::world::TYPE_ASYNC;
use protector::sim::{SimSite, SimWorld, WorkloadSpec};

#[tokio::test(start_paused = true)]
async fn simulated_nova_and_cinder_pass_the_port_contract() {
    let world = SimWorld::builder()
        .seed(protector::sim::seed_from_env(3))
        .build()
        .expect("world");
    let ctx = world.tenant_context(SimSite::B, "tenant-a").expect("ctx");
    let clients = world.clients(SimSite::B, &ctx);
    let workload = world
        .create_workload(
            &WorkloadSpec::new(SimSite::B, "tenant-a")
                .servers(5)
                .data_volumes(0),
        )
        .expect("workload");
    get_missing_server_is_not_found(clients.compute.as_ref(), &"missing".into())
        .await
        .expect("contract");
    list_servers_returns_everything(clients.compute.as_ref(), 5)
        .await
        .expect("contract");
    server_state_agrees_with_the_server(
        clients.compute.as_ref(),
        &workload.servers[0].id,
        &"missing".into(),
    )
    .await
    .expect("contract");
    list_volumes_returns_everything(clients.block_storage.as_ref(), 5)
        .await
        .expect("contract");

    world
        .create_array_volume(SimSite::B, "restored-db-boot", 10)
        .expect("array volume");
    let request = ManageVolume {
        source_name: "restored-db-boot".into(),
        host: world.site(SimSite::B).volume_host.clone(),
        name: "db-boot-dr".into(),
        volume_type: Some(TYPE_ASYNC.into()),
        bootable: true,
        description: None,
        metadata: BTreeMap::new(),
    };
    managed_volume_appears(
        clients.block_storage.as_ref(),
        &request,
        Duration::from_secs(60),
    )
    .await
    .expect("contract");
    list_volumes_returns_everything(clients.block_storage.as_ref(), 6)
        .await
        .expect("contract");
}
