//! Shared set-up: seeded worlds that print their seed when a test fails.

use std::collections::BTreeMap;

use protector_core::ids::{ServerId, VolumeId};
use protector_core::ports::{BlockDevice, ManageVolume, NetworkAttachment, ServerCreate};
use protector_core::RequestContext;
use protector_sim::{seed_from_env, LatencyProfile, SimSite, SimWorld, SEED_ENV};

/// Prints the seed if the test panics, so the run can be replayed.
pub struct SeedReport(pub u64);

impl Drop for SeedReport {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{SEED_ENV}={}", self.0);
        }
    }
}

/// A world with the test's seed (or `PROTECTOR_SIM_SEED`) and the given profile.
pub fn world(default_seed: u64, profile: LatencyProfile) -> (SimWorld, SeedReport) {
    let seed = seed_from_env(default_seed);
    let world = SimWorld::builder()
        .seed(seed)
        .profile(profile)
        .build()
        .unwrap();
    (world, SeedReport(seed))
}

/// The member of `tenant-a` on `site`.
pub fn alice(world: &SimWorld, site: SimSite) -> RequestContext {
    world.tenant_context(site, "tenant-a").unwrap()
}

/// A boot request for existing volumes (first one boots) on the `tenant-a-web` network.
pub fn boot_request(
    world: &SimWorld,
    site: SimSite,
    name: &str,
    volumes: &[VolumeId],
) -> ServerCreate {
    let info = world.site(site);
    ServerCreate {
        name: name.to_owned(),
        flavor_id: info.flavor_id("m1.small").unwrap(),
        block_devices: volumes
            .iter()
            .enumerate()
            .map(|(i, v)| BlockDevice {
                volume_id: v.clone(),
                boot_index: (i == 0).then_some(0),
                delete_on_termination: false,
            })
            .collect(),
        networks: vec![NetworkAttachment {
            network_id: info.network_id("tenant-a-web").unwrap(),
            fixed_ip: None,
        }],
        key_name: None,
        security_groups: Vec::new(),
        metadata: BTreeMap::new(),
        availability_zone: None,
    }
}

/// A manage request for `source` on the site's Pure backend, type `replicated-async`.
pub fn manage_request(
    world: &SimWorld,
    site: SimSite,
    source: &str,
    bootable: bool,
) -> ManageVolume {
    ManageVolume {
        source_name: source.to_owned(),
        host: world.site(site).volume_host.clone(),
        name: format!("managed-{source}"),
        volume_type: Some("replicated-async".to_owned()),
        bootable,
        description: None,
        metadata: BTreeMap::new(),
    }
}

/// The array volume names of a site, not destroyed.
pub async fn live_array_volumes(world: &SimWorld, site: SimSite) -> Vec<String> {
    let q = protector_purestorage::VolumeQuery {
        destroyed: Some(false),
        ..Default::default()
    };
    world
        .array(site)
        .list_volumes(&q)
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.name)
        .collect()
}

/// Deletes a workload server as alice and waits until it is gone.
pub async fn delete_and_wait(world: &SimWorld, site: SimSite, id: &ServerId) {
    let nova = world.compute(site, &alice(world, site));
    protector_core::ports::Compute::delete_server(&nova, id)
        .await
        .unwrap();
    after(
        world
            .profile()
            .latency(protector_sim::LatencyClass::ServerDelete),
    )
    .await;
}

/// Sleeps `d` and one millisecond more, so every background completion due at `d` has
/// run.
pub async fn after(d: std::time::Duration) {
    tokio::time::sleep(d + std::time::Duration::from_millis(1)).await;
}
