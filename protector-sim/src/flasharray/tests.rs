//! Tests of the simulated arrays through the facade and the async shell, on paused
//! tokio time.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use protector_core::{Applied, BackendError, BackendErrorKind, Service, TokioClock};
use protector_purestorage::{
    FlashArray, PgSnapshotOptions, PgSnapshotQuery, VolumeQuery, VolumeSnapshotQuery,
};

use super::{calls, ArrayFabric, CallGate};

const GIB: u64 = 1 << 30;

fn fabric() -> ArrayFabric {
    let f = ArrayFabric::new(42, Arc::new(TokioClock::default_epoch()));
    f.add_array("array-a", "token-a").unwrap();
    f.add_array("array-b", "token-b").unwrap();
    f.connect("array-a", "array-b").unwrap();
    f
}

async fn replicated_group(f: &ArrayFabric) -> (Arc<dyn FlashArray>, Arc<dyn FlashArray>) {
    let a = f.client("array-a", "token-a").unwrap();
    let b = f.client("array-b", "token-b").unwrap();
    a.create_volume("volume-1-cinder", GIB).await.unwrap();
    a.create_protection_group("cinder-group").await.unwrap();
    a.add_protection_group_volumes("cinder-group", &["volume-1-cinder".to_owned()])
        .await
        .unwrap();
    a.add_protection_group_targets("cinder-group", &["array-b".to_owned()])
        .await
        .unwrap();
    b.allow_protection_group("array-a:cinder-group")
        .await
        .unwrap();
    (a, b)
}

fn replicate_now() -> PgSnapshotOptions {
    PgSnapshotOptions {
        replicate_now: true,
        ..Default::default()
    }
}

fn of_source(source: &str) -> VolumeSnapshotQuery {
    VolumeSnapshotQuery {
        source_names: vec![source.to_owned()],
        ..Default::default()
    }
}

#[tokio::test(start_paused = true)]
async fn a_replicate_now_snapshot_lands_after_the_transfer_time_in_virtual_time() {
    let f = fabric();
    f.set_transfer_time(Duration::from_secs(20));
    let (a, b) = replicated_group(&f).await;
    let snap = a
        .create_pg_snapshot("cinder-group", &replicate_now())
        .await
        .unwrap();
    assert_eq!(snap.name, "cinder-group.1");

    tokio::time::sleep(Duration::from_millis(19_999)).await;
    assert!(b
        .list_volume_snapshots(&of_source("array-a:volume-1-cinder"))
        .await
        .unwrap()
        .is_empty());
    let q = PgSnapshotQuery {
        names: vec!["array-a:cinder-group".to_owned()],
        ..Default::default()
    };
    let running = b.list_pg_snapshot_transfers(&q).await.unwrap();
    assert_eq!(running[0].completed, None);
    assert!(running[0].progress < 1.0);

    tokio::time::sleep(Duration::from_millis(1)).await;
    let landed = b
        .list_volume_snapshots(&of_source("array-a:volume-1-cinder"))
        .await
        .unwrap();
    assert_eq!(landed[0].name, "array-a:cinder-group.1.volume-1-cinder");
    let done = b.list_pg_snapshot_transfers(&q).await.unwrap();
    assert_eq!(done[0].progress, 1.0);
    assert_eq!(done[0].completed, Some(f.now_ms()));
}

#[tokio::test(start_paused = true)]
async fn a_snapshot_taken_after_ten_seconds_of_writes_carries_ten_and_so_does_its_copy() {
    let f = fabric();
    let (a, b) = replicated_group(&f).await;
    f.set_writing("array-a", "volume-1-cinder", true).unwrap();
    tokio::time::sleep(Duration::from_secs(10)).await;
    a.create_pg_snapshot("cinder-group", &replicate_now())
        .await
        .unwrap();
    tokio::time::sleep(f.transfer_time()).await;
    b.copy_volume(
        "volume-1-cinder",
        "array-a:cinder-group.1.volume-1-cinder",
        false,
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(f.write_seq("array-b", "volume-1-cinder").unwrap(), 10);
    assert_eq!(f.write_seq("array-a", "volume-1-cinder").unwrap(), 85);
    f.set_writing("array-a", "volume-1-cinder", false).unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(
        f.write_seq("array-a", "volume-1-cinder").unwrap(),
        85,
        "{} writes lost",
        85 - 10
    );
}

#[tokio::test(start_paused = true)]
async fn a_down_array_fails_every_call_as_unreachable_and_coming_up_restores_it() {
    let f = fabric();
    let (a, b) = replicated_group(&f).await;
    f.take_array_down("array-a").unwrap();
    let calls: Vec<BackendError> = vec![
        a.array_info().await.unwrap_err(),
        a.list_volumes(&VolumeQuery::default()).await.unwrap_err(),
        a.create_volume("v2", GIB).await.unwrap_err(),
        a.create_pg_snapshot("cinder-group", &replicate_now())
            .await
            .unwrap_err(),
        a.list_array_connections().await.unwrap_err(),
    ];
    for e in calls {
        assert_eq!(e.kind, BackendErrorKind::Transient);
        assert_eq!(e.applied, Applied::No);
        assert_eq!(e.service, Service::FlashArray);
        assert!(e.message.contains("connection refused"), "{}", e.message);
    }
    assert!(f.client("array-a", "token-a").is_err());
    let seen_from_b = b.list_array_connections().await.unwrap();
    assert_eq!(seen_from_b[0].status, "connecting");

    f.bring_array_up("array-a").unwrap();
    assert_eq!(a.array_info().await.unwrap().name, "array-a");
    assert_eq!(
        b.list_array_connections().await.unwrap()[0].status,
        "connected"
    );
}

#[tokio::test(start_paused = true)]
async fn a_wrong_api_token_is_refused_with_401() {
    let f = fabric();
    let e = f.client("array-a", "token-b").err().unwrap();
    assert_eq!(e.kind, BackendErrorKind::Auth);
    assert_eq!(e.status, Some(401));

    let a = f.client("array-a", "token-a").unwrap();
    f.with_state(|s| s.set_api_token("array-a", "rotated", s.now_ms()))
        .unwrap();
    let e = a.array_info().await.unwrap_err();
    assert_eq!(e.kind, BackendErrorKind::Auth);
}

#[derive(Default)]
struct RecordingGate {
    seen: Mutex<Vec<(String, &'static str)>>,
}

#[async_trait]
impl CallGate for RecordingGate {
    async fn before_call(&self, array: &str, call: &'static str) -> Result<(), BackendError> {
        self.seen.lock().unwrap().push((array.to_owned(), call));
        tokio::time::sleep(Duration::from_millis(20)).await;
        if call == calls::COPY_VOLUME {
            return Err(BackendError::unreachable(Service::FlashArray, "injected"));
        }
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn the_gate_sees_every_call_by_name_delays_it_and_can_fail_it() {
    let f = fabric();
    let gate = Arc::new(RecordingGate::default());
    f.set_gate(gate.clone());
    let a = f.client("array-a", "token-a").unwrap();
    let t0 = f.now_ms();
    let v = a.create_volume("v1", GIB).await.unwrap();
    assert_eq!(v.created, t0 + 20, "applied after the gate's delay");
    let e = a.copy_volume("v2", "v1", false).await.unwrap_err();
    assert_eq!(e.message, "injected");
    assert!(a
        .list_volumes(&VolumeQuery {
            names: vec!["v2".to_owned()],
            ..Default::default()
        })
        .await
        .is_err());
    let seen = gate.seen.lock().unwrap().clone();
    let names: Vec<&str> = seen.iter().map(|(_, c)| *c).collect();
    assert_eq!(
        names,
        vec![
            calls::CREATE_VOLUME,
            calls::COPY_VOLUME,
            calls::LIST_VOLUMES
        ]
    );
    assert!(seen.iter().all(|(array, _)| array == "array-a"));
    assert!(names.iter().all(|n| calls::ALL.contains(n)));
}

#[tokio::test(start_paused = true)]
async fn the_same_seed_and_the_same_calls_give_the_same_event_log() {
    async fn run() -> (Vec<String>, String) {
        let f = fabric();
        let (a, _b) = replicated_group(&f).await;
        f.set_writing("array-a", "volume-1-cinder", true).unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
        a.create_pg_snapshot("cinder-group", &replicate_now())
            .await
            .unwrap();
        f.cut_link("array-a", "array-b").unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
        f.repair_link("array-a", "array-b").unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
        let id = a.array_info().await.unwrap().id;
        (f.events(), id)
    }
    let first = run().await;
    let second = run().await;
    assert_eq!(first, second);
    assert!(first.0.iter().any(|e| e.contains("transfer_landed")));
}

mod state_machine {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::super::state::ArrayFabricState;
    use super::GIB;
    use protector_purestorage::{PgSnapshotQuery, VolumeQuery};

    fn pod_volumes(f: &mut ArrayFabricState, array: &str, t: i64) -> Vec<(String, u64)> {
        let q = VolumeQuery {
            pod: Some("pod1".to_owned()),
            ..Default::default()
        };
        let names: Vec<String> = f
            .list_volumes(array, &q, t)
            .unwrap()
            .into_iter()
            .map(|v| v.name)
            .collect();
        names
            .into_iter()
            .map(|n| {
                let seq = f.write_seq(array, &n, t).unwrap();
                (n, seq)
            })
            .collect()
    }

    /// Random faults, writes and pod volume changes; returns the event log.
    fn random_run(seed: u64) -> Vec<String> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut f = ArrayFabricState::new(seed);
        f.add_array("a", "ta", 0).unwrap();
        f.add_array("b", "tb", 0).unwrap();
        f.connect("a", "b", 0).unwrap();
        f.create_pod("a", "pod1", 0).unwrap();
        f.stretch_pod("a", "pod1", "b", 0).unwrap();
        let mut t = 0i64;
        let mut next_vol = 0u32;
        for _ in 0..300 {
            t += rng.random_range(0..5_000);
            let array = if rng.random_bool(0.5) { "a" } else { "b" };
            let names: Vec<String> = pod_volumes(&mut f, array, t)
                .into_iter()
                .map(|(n, _)| n)
                .collect();
            // Refusals (a down array, a name gone) are part of the game.
            let _ = match rng.random_range(0..8) {
                0 => {
                    next_vol += 1;
                    f.create_volume(array, &format!("pod1::v{next_vol}"), GIB, t)
                        .map(|_| ())
                }
                1 | 2 if !names.is_empty() => {
                    let v = &names[rng.random_range(0..names.len())];
                    f.set_writing(array, v, rng.random_bool(0.7), t)
                }
                3 if !names.is_empty() => {
                    let v = &names[rng.random_range(0..names.len())];
                    next_vol += 1;
                    f.rename_volume(array, v, &format!("pod1::r{next_vol}"), t)
                        .map(|_| ())
                }
                4 => f.cut_link("a", "b", t),
                5 => f.repair_link("a", "b", t),
                6 => f.take_array_down(array, t),
                _ => f.bring_array_up(array, t),
            };
            let synced = f.list_pods("a", &[], t).unwrap()[0]
                .arrays
                .iter()
                .all(|p| p.status == "online");
            let on_a = pod_volumes(&mut f, "a", t);
            let on_b = pod_volumes(&mut f, "b", t);
            if synced {
                assert_eq!(on_a, on_b, "in-sync replicas differ at t={t} (seed {seed})");
            }
            for (_, seq) in on_a.iter().chain(on_b.iter()) {
                assert!(*seq as i64 <= t / 1_000, "more writes than seconds");
            }
        }
        f.events().to_vec()
    }

    #[test]
    fn random_faults_and_writes_keep_in_sync_pod_replicas_identical_and_replay_from_the_seed() {
        for seed in 0..8 {
            let first = random_run(seed);
            assert_eq!(first, random_run(seed), "seed {seed} did not replay");
            assert!(first.iter().any(|e| e.contains("pod_split")));
        }
    }

    #[test]
    fn a_stretched_pod_mirrors_creates_renames_and_eradications_to_its_peer() {
        let mut f = ArrayFabricState::new(5);
        f.add_array("a", "ta", 0).unwrap();
        f.add_array("b", "tb", 0).unwrap();
        f.connect("a", "b", 0).unwrap();
        f.create_pod("a", "pod1", 0).unwrap();
        f.stretch_pod("a", "pod1", "b", 0).unwrap();
        f.create_volume("a", "pod1::v1", GIB, 0).unwrap();
        f.rename_volume("b", "pod1::v1", "pod1::volume-9-cinder", 0)
            .unwrap();
        assert_eq!(
            pod_volumes(&mut f, "a", 0),
            vec![("pod1::volume-9-cinder".to_owned(), 0)]
        );
        f.destroy_volume("a", "pod1::volume-9-cinder", 0).unwrap();
        f.eradicate_volume("a", "pod1::volume-9-cinder", 0).unwrap();
        assert!(pod_volumes(&mut f, "b", 0).is_empty());
        let e = f.destroy_pod("a", "pod1", 0).unwrap_err();
        assert!(e.message.contains("stretched"), "{}", e.message);
        f.unstretch_pod("a", "pod1", "b", false, 0).unwrap();
        f.destroy_pod("a", "pod1", 0).unwrap();
        f.eradicate_pod("a", "pod1", 0).unwrap();
        assert!(f.list_pods("b", &[], 0).unwrap().is_empty());
    }

    #[test]
    fn a_local_snapshot_that_was_never_replicated_shows_no_transfer() {
        let mut f = ArrayFabricState::new(5);
        f.add_array("a", "ta", 0).unwrap();
        f.create_protection_group("a", "pg1", 0).unwrap();
        f.create_pg_snapshot("a", "pg1", &Default::default(), 0)
            .unwrap();
        let q = PgSnapshotQuery {
            source_names: vec!["pg1".to_owned()],
            ..Default::default()
        };
        let t = f.list_pg_snapshot_transfers("a", &q, 0).unwrap();
        assert_eq!((t[0].started, t[0].completed), (None, None));
        assert_eq!(t[0].progress, 0.0);
    }
}
