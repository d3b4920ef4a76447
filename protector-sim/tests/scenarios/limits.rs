//! Latency, concurrency limits and call accounting.

use std::time::Duration;

use protector_core::ports::{BlockStorage, Compute, ServerStatus};
use protector_core::Service;
use protector_purestorage::PgSnapshotOptions;
use protector_sim::{CallKind, LatencyClass, LatencyProfile, SimSite, WorkloadSpec};

use super::common::{after, alice, boot_request, manage_request, world};

#[tokio::test(start_paused = true)]
async fn forty_boots_with_a_limit_of_twenty_take_two_boot_latencies() {
    let (w, _seed) = world(51, LatencyProfile::realistic());
    let ctx = alice(&w, SimSite::B);
    let cinder = w.block_storage(SimSite::B, &ctx);
    let mut boots = Vec::new();
    for i in 0..40 {
        let name = format!("src-{i}");
        w.create_array_volume(SimSite::B, &name, 1).unwrap();
        boots.push(
            cinder
                .manage_volume(&manage_request(&w, SimSite::B, &name, true))
                .await
                .unwrap()
                .id,
        );
    }
    // 40 manages with a limit of 10: four waves of 3 s.
    tokio::time::sleep(Duration::from_millis(11_900)).await;
    assert!(cinder
        .list_volumes()
        .await
        .unwrap()
        .iter()
        .any(|v| v.status != protector_core::ports::VolumeStatus::Available));
    after(Duration::from_millis(100)).await;
    assert!(cinder
        .list_volumes()
        .await
        .unwrap()
        .iter()
        .all(|v| v.status == protector_core::ports::VolumeStatus::Available));

    let nova = w.compute(SimSite::B, &ctx);
    let start = tokio::time::Instant::now();
    let mut servers = Vec::new();
    for (i, v) in boots.iter().enumerate() {
        servers.push(
            nova.create_server(&boot_request(
                &w,
                SimSite::B,
                &format!("vm-{i}"),
                std::slice::from_ref(v),
            ))
            .await
            .unwrap()
            .id,
        );
    }
    after(Duration::from_secs(30)).await;
    let active = |list: Vec<protector_core::ports::Server>| {
        list.iter()
            .filter(|s| s.status == ServerStatus::Active)
            .count()
    };
    assert_eq!(active(nova.list_servers().await.unwrap()), 20);
    tokio::time::sleep_until(start + Duration::from_secs(60) + Duration::from_millis(1)).await;
    assert_eq!(active(nova.list_servers().await.unwrap()), 40);
}

#[tokio::test(start_paused = true)]
async fn realistic_gets_take_fifty_milliseconds_and_queue_beyond_fifty() {
    let (w, _seed) = world(52, LatencyProfile::realistic());
    let nova = w.compute(SimSite::A, &alice(&w, SimSite::A));
    let start = tokio::time::Instant::now();
    nova.list_servers().await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_millis(50));
    let start = tokio::time::Instant::now();
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let nova = nova.clone();
        calls.spawn(async move {
            nova.list_servers()
                .await
                .map(|_| tokio::time::Instant::now())
        });
    }
    let mut finished = Vec::new();
    while let Some(r) = calls.join_next().await {
        finished.push(r.unwrap().unwrap() - start);
    }
    finished.sort();
    assert_eq!(finished[49], Duration::from_millis(50));
    assert_eq!(finished[50], Duration::from_millis(100));
    assert_eq!(start.elapsed(), Duration::from_millis(100));
}

#[tokio::test(start_paused = true)]
async fn replicate_now_holds_one_of_four_replication_slots_for_the_transfer_time() {
    let (w, _seed) = world(53, LatencyProfile::realistic());
    assert_eq!(w.fabric().transfer_time(), Duration::from_secs(15));
    let a = w.array(SimSite::A);
    for i in 0..5 {
        a.create_protection_group(&format!("pg{i}")).await.unwrap();
    }
    let opts = PgSnapshotOptions {
        replicate_now: true,
        ..Default::default()
    };
    let start = tokio::time::Instant::now();
    for i in 0..4 {
        a.create_pg_snapshot(&format!("pg{i}"), &opts)
            .await
            .unwrap();
    }
    assert!(start.elapsed() < Duration::from_secs(1));
    a.create_pg_snapshot("pg4", &opts).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(15));
}

#[tokio::test(start_paused = true)]
async fn accounting_counts_calls_per_site_service_and_kind_and_resets() {
    let (w, _seed) = world(54, LatencyProfile::realistic());
    let workload = w
        .create_workload(&WorkloadSpec::new(SimSite::A, "tenant-a"))
        .unwrap();
    assert_eq!(w.stats().total(), 0, "set-up is not counted");
    let ctx = alice(&w, SimSite::A);
    let nova = w.compute(SimSite::A, &ctx);
    for _ in 0..3 {
        nova.get_server(&workload.servers[0].id).await.unwrap();
    }
    nova.stop_server(&workload.servers[0].id).await.unwrap();
    w.block_storage(SimSite::A, &ctx)
        .list_volumes()
        .await
        .unwrap();
    w.array(SimSite::A).list_array_connections().await.unwrap();
    let stats = w.stats();
    assert_eq!(stats.count(SimSite::A, CallKind::GetServer), 3);
    assert_eq!(stats.count(SimSite::A, CallKind::StopServer), 1);
    assert_eq!(stats.service_total(SimSite::A, Service::Compute), 4);
    assert_eq!(stats.service_total(SimSite::A, Service::BlockStorage), 1);
    assert_eq!(
        stats.count(SimSite::A, CallKind::Array("list_array_connections")),
        1
    );
    assert_eq!(stats.service_total(SimSite::B, Service::Compute), 0);
    assert_eq!(stats.total(), 6);
    assert_eq!(stats.elapsed, Duration::from_millis(3 * 50 + 50 + 20));
    w.reset_stats();
    let stats = w.stats();
    assert_eq!((stats.total(), stats.elapsed), (0, Duration::ZERO));
}

#[test]
fn the_profile_table_gives_the_step_barrier_bound_of_a_failover() {
    let p = LatencyProfile::realistic();
    let n = 100u64;
    let bound = p.step_barrier_bound(&[
        vec![(LatencyClass::Power, n)],
        vec![(LatencyClass::Replicate, 1)],
        vec![
            (LatencyClass::ArrayRest, 2 * n),
            (LatencyClass::Manage, 2 * n),
        ],
        vec![(LatencyClass::Boot, n)],
    ]);
    // 100 stops in two waves of 50, one transfer, 200 manages in 20 waves of 10, 100 boots in 5 waves of 20.
    assert_eq!(bound, Duration::from_secs(20 + 15 + 60 + 150));
    assert_eq!(
        p.table()
            .iter()
            .find(|r| r.class == LatencyClass::Token)
            .unwrap()
            .latency,
        Duration::from_millis(100)
    );
}

/// The connector keeps one token per caller, as the real one does: a second connection
/// issues none. Its probe still asks Keystone every time, so a site that went down is
/// seen as down although a token is cached; a token near expiry is replaced.
#[tokio::test(start_paused = true)]
async fn the_connector_reuses_its_token_and_its_probe_still_reaches_keystone() {
    use protector_core::ports::SiteConnector;
    let (w, _seed) = world(52, LatencyProfile::realistic());
    let ctx = alice(&w, SimSite::A);
    let connector = protector_sim::SimConnector::new(w.clone(), SimSite::A);
    let issued = |w: &protector_sim::SimWorld| w.stats().count(SimSite::A, CallKind::IssueToken);
    let validated =
        |w: &protector_sim::SimWorld| w.stats().count(SimSite::A, CallKind::ValidateToken);

    connector.connect(&ctx).await.unwrap();
    connector.connect(&ctx).await.unwrap();
    assert_eq!(issued(&w), 1);
    connector.probe().await.unwrap();
    connector.probe().await.unwrap();
    // One token for the caller, one for the probe's admin; the second probe validates.
    assert_eq!((issued(&w), validated(&w)), (2, 1));

    w.take_site_down(SimSite::A);
    let down = connector.probe().await.unwrap_err();
    assert_eq!(down.service, Service::Identity);
    w.bring_site_up(SimSite::A);
    connector.probe().await.unwrap();

    // 59 minutes later the tokens are within the refresh margin: new ones are issued.
    tokio::time::sleep(Duration::from_secs(59 * 60)).await;
    connector.connect(&ctx).await.unwrap();
    assert_eq!(issued(&w), 3);
}
