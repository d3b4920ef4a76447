//! The Pure driver on the simulator's arrays (paused time): the same driver code that
//! runs against real arrays, asserted on the resources left in the simulated arrays.

use std::sync::Arc;
use std::time::Duration;

use protector_core::model::ReplicationType;
use protector_core::ports::{ArraySide, ReplicationGroupSpec, StorageDriver};
use protector_core::{BackendErrorKind, TokioClock};
use protector_purestorage::{
    FlashArray, PureDriver, PureDriverOptions, ReplicationSchedule, SnapshotOrder, TargetRetention,
    VolumeQuery,
};
use protector_sim::flasharray::ArrayFabric;

const VOL: &str = "volume-7f3c9a10-1111-4c2d-9e8f-000000000001-cinder";
const VOL2: &str = "volume-7f3c9a10-1111-4c2d-9e8f-000000000002-cinder";
const RESTORED: &str = "volume-0b8e2d4c-2222-4f1a-8c3d-000000000101-cinder";
const GIB: u64 = 1 << 30;

struct Env {
    fabric: ArrayFabric,
    a: Arc<dyn FlashArray>,
    b: Arc<dyn FlashArray>,
    driver: PureDriver,
}

impl Env {
    /// A driver with this environment's array A as its primary and `secondary` (array B
    /// as a test observes or alters it) as its secondary.
    fn driver_towards(&self, secondary: Arc<dyn FlashArray>) -> PureDriver {
        PureDriver::new(
            self.a.clone(),
            secondary,
            Arc::new(TokioClock::default_epoch()),
            PureDriverOptions::default(),
        )
    }
}

fn env(seed: u64) -> Env {
    let clock = Arc::new(TokioClock::default_epoch());
    let fabric = ArrayFabric::new(seed, clock.clone());
    fabric.add_array("array-a", "token-a").unwrap();
    fabric.add_array("array-b", "token-b").unwrap();
    fabric.connect("array-a", "array-b").unwrap();
    fabric.set_transfer_time(Duration::from_secs(15));
    let a = fabric.client("array-a", "token-a").unwrap();
    let b = fabric.client("array-b", "token-b").unwrap();
    let driver = PureDriver::new(a.clone(), b.clone(), clock, PureDriverOptions::default());
    Env {
        fabric,
        a,
        b,
        driver,
    }
}

fn spec(kind: ReplicationType) -> ReplicationGroupSpec {
    ReplicationGroupSpec {
        name: match kind {
            ReplicationType::Async => "cinder-group".into(),
            ReplicationType::Sync => "cinder-pod".into(),
        },
        replication_type: kind,
        interval: Duration::from_secs(900),
        rpo: Duration::from_secs(900),
    }
}

/// An async group on array-a replicating `VOL` to array-b.
async fn protected(seed: u64) -> (Env, ReplicationGroupSpec) {
    let e = env(seed);
    let s = spec(ReplicationType::Async);
    e.a.create_volume(VOL, 10 * GIB).await.unwrap();
    e.driver
        .ensure_replication_group(&s, ArraySide::Primary)
        .await
        .unwrap();
    e.driver
        .add_volumes(&s, ArraySide::Primary, &[VOL.to_owned()])
        .await
        .unwrap();
    (e, s)
}

fn volume_named(name: &str) -> VolumeQuery {
    VolumeQuery {
        names: vec![name.to_owned()],
        ..VolumeQuery::default()
    }
}

#[tokio::test(start_paused = true)]
async fn ensure_sets_up_the_group_towards_the_peer_and_a_rerun_changes_nothing() {
    let (e, s) = protected(1).await;
    let pg =
        &e.a.list_protection_groups(&["cinder-group".into()])
            .await
            .unwrap()[0];
    assert!(pg.is_local);
    assert_eq!(
        pg.replication_schedule,
        ReplicationSchedule {
            enabled: true,
            frequency_ms: 900_000
        }
    );
    assert_eq!(pg.target_retention, TargetRetention::default());
    let targets =
        e.a.list_protection_group_targets("cinder-group")
            .await
            .unwrap();
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0].member.name, "array-b");
    assert!(targets[0].allowed);
    assert_eq!(targets[0].status, "replicating");
    assert_eq!(
        e.a.list_protection_group_volumes("cinder-group")
            .await
            .unwrap(),
        [VOL]
    );

    let before = e.fabric.events();
    e.driver
        .ensure_replication_group(&s, ArraySide::Primary)
        .await
        .unwrap();
    e.driver
        .add_volumes(&s, ArraySide::Primary, &[VOL.to_owned()])
        .await
        .unwrap();
    assert_eq!(e.fabric.events(), before, "a re-run changed the arrays");
}

#[tokio::test(start_paused = true)]
async fn ensure_completes_a_half_configured_group_without_failing_on_existing_parts() {
    let e = env(2);
    let s = spec(ReplicationType::Async);
    e.a.create_protection_group("cinder-group").await.unwrap();
    e.a.add_protection_group_targets("cinder-group", &["array-b".into()])
        .await
        .unwrap();
    e.driver
        .ensure_replication_group(&s, ArraySide::Primary)
        .await
        .unwrap();
    let targets =
        e.a.list_protection_group_targets("cinder-group")
            .await
            .unwrap();
    assert!(
        targets[0].allowed,
        "the target was not allowed: {targets:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn replicate_now_lands_on_the_target_and_is_the_newest_replica() {
    let (e, s) = protected(3).await;
    let point = e
        .driver
        .replicate_now(&s, ArraySide::Primary, Duration::from_secs(300))
        .await
        .unwrap();
    assert_eq!(point.array, ArraySide::Secondary);
    assert!(
        point.name.starts_with("array-a:cinder-group."),
        "{}",
        point.name
    );
    assert!(point.completed_at.unwrap() > point.created_at);

    let replica = e
        .driver
        .newest_replica(&s, ArraySide::Primary, VOL)
        .await
        .unwrap()
        .expect("a replica");
    assert_eq!(replica.array, ArraySide::Secondary);
    assert_eq!(replica.name, format!("{}.{VOL}", point.name));
    assert_eq!(replica.source_volume, VOL);
    assert_eq!(replica.created_at, point.created_at);
}

#[tokio::test(start_paused = true)]
async fn the_newest_of_several_replicas_is_chosen() {
    let (e, s) = protected(4).await;
    let first = e
        .driver
        .replicate_now(&s, ArraySide::Primary, Duration::from_secs(300))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
    let second = e
        .driver
        .replicate_now(&s, ArraySide::Primary, Duration::from_secs(300))
        .await
        .unwrap();
    assert_ne!(first.name, second.name);
    let replica = e
        .driver
        .newest_replica(&s, ArraySide::Primary, VOL)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(replica.name, format!("{}.{VOL}", second.name));
}

#[tokio::test(start_paused = true)]
async fn replicate_now_times_out_naming_array_group_and_snapshot_when_replication_stalls() {
    let (e, s) = protected(5).await;
    e.fabric.stall_replication("array-a", "array-b").unwrap();
    let err = e
        .driver
        .replicate_now(&s, ArraySide::Primary, Duration::from_secs(120))
        .await
        .unwrap_err();
    assert_eq!(err.kind, BackendErrorKind::Transient);
    assert!(
        err.message.contains("FlashArray array-b"),
        "{}",
        err.message
    );
    assert!(
        err.message.contains("protection group cinder-group"),
        "{}",
        err.message
    );
    assert!(
        err.message.contains("snapshot array-a:cinder-group."),
        "{}",
        err.message
    );
    assert!(err.message.contains("within 120s"), "{}", err.message);
}

#[tokio::test(start_paused = true)]
async fn a_volume_without_a_replicated_snapshot_has_no_replica() {
    let (e, s) = protected(6).await;
    assert_eq!(
        e.driver
            .newest_replica(&s, ArraySide::Primary, VOL)
            .await
            .unwrap(),
        None
    );
    // A volume outside the group stays without a replica after replication too.
    e.a.create_volume(VOL2, GIB).await.unwrap();
    e.driver
        .replicate_now(&s, ArraySide::Primary, Duration::from_secs(300))
        .await
        .unwrap();
    assert_eq!(
        e.driver
            .newest_replica(&s, ArraySide::Primary, VOL2)
            .await
            .unwrap(),
        None
    );
}

#[tokio::test(start_paused = true)]
async fn promote_creates_a_volume_carrying_the_snapshot_data() {
    let (e, s) = protected(7).await;
    e.fabric.set_writing("array-a", VOL, true).unwrap();
    tokio::time::sleep(Duration::from_secs(120)).await;
    e.driver
        .replicate_now(&s, ArraySide::Primary, Duration::from_secs(300))
        .await
        .unwrap();
    let replica = e
        .driver
        .newest_replica(&s, ArraySide::Primary, VOL)
        .await
        .unwrap()
        .unwrap();
    let promoted = e.driver.promote(&replica, RESTORED).await.unwrap();
    assert_eq!(promoted.array, ArraySide::Secondary);
    assert_eq!(promoted.name, RESTORED);
    assert_eq!(promoted.provisioned_bytes, 10 * GIB);

    let snap_seq = e
        .fabric
        .with_state(|st| st.snapshot_write_seq("array-b", &replica.name, st.now_ms()))
        .unwrap();
    assert!(
        snap_seq >= 120,
        "the source was written for 120 s: {snap_seq}"
    );
    assert_eq!(e.fabric.write_seq("array-b", RESTORED).unwrap(), snap_seq);
    // The source keeps writing; the promoted copy is a point in time.
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(e.fabric.write_seq("array-b", RESTORED).unwrap(), snap_seq);
}

#[tokio::test(start_paused = true)]
async fn promote_is_idempotent_for_the_same_replica() {
    let (e, s) = protected(8).await;
    e.driver
        .replicate_now(&s, ArraySide::Primary, Duration::from_secs(300))
        .await
        .unwrap();
    let replica = e
        .driver
        .newest_replica(&s, ArraySide::Primary, VOL)
        .await
        .unwrap()
        .unwrap();
    let first = e.driver.promote(&replica, RESTORED).await.unwrap();
    let again = e.driver.promote(&replica, RESTORED).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(
        e.b.list_volumes(&volume_named(RESTORED))
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn promote_refuses_to_overwrite_a_different_volume() {
    let (e, s) = protected(9).await;
    e.driver
        .replicate_now(&s, ArraySide::Primary, Duration::from_secs(300))
        .await
        .unwrap();
    let replica = e
        .driver
        .newest_replica(&s, ArraySide::Primary, VOL)
        .await
        .unwrap()
        .unwrap();
    e.b.create_volume(RESTORED, GIB).await.unwrap();
    let err = e.driver.promote(&replica, RESTORED).await.unwrap_err();
    assert_eq!(err.kind, BackendErrorKind::Conflict);
    assert!(err.message.contains(RESTORED), "{}", err.message);
    assert!(
        err.message.contains("FlashArray array-b"),
        "{}",
        err.message
    );
    assert!(err.message.contains(&replica.name), "{}", err.message);
    let kept = &e.b.list_volumes(&volume_named(RESTORED)).await.unwrap()[0];
    assert_eq!((kept.provisioned, kept.source.clone()), (GIB, None));
}

#[tokio::test(start_paused = true)]
async fn promoting_a_replica_that_is_gone_names_array_volume_and_snapshot() {
    let (e, s) = protected(10).await;
    e.driver
        .replicate_now(&s, ArraySide::Primary, Duration::from_secs(300))
        .await
        .unwrap();
    let mut replica = e
        .driver
        .newest_replica(&s, ArraySide::Primary, VOL)
        .await
        .unwrap()
        .unwrap();
    replica.name = format!("array-a:cinder-group.999.{VOL}");
    let err = e.driver.promote(&replica, RESTORED).await.unwrap_err();
    assert_eq!(err.kind, BackendErrorKind::NotFound);
    assert!(
        err.message.contains("FlashArray array-b"),
        "{}",
        err.message
    );
    assert!(err.message.contains(VOL), "{}", err.message);
    assert!(err.message.contains("cinder-group.999"), "{}", err.message);
}

#[tokio::test(start_paused = true)]
async fn destroy_volume_eradicates_and_tolerates_a_missing_volume() {
    let e = env(11);
    e.b.create_volume(RESTORED, GIB).await.unwrap();
    e.driver
        .destroy_volume(ArraySide::Secondary, RESTORED)
        .await
        .unwrap();
    let err = e.b.list_volumes(&volume_named(RESTORED)).await.unwrap_err();
    assert_eq!(err.kind, BackendErrorKind::NotFound);
    e.driver
        .destroy_volume(ArraySide::Secondary, RESTORED)
        .await
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn reverse_replication_then_replicate_the_other_way() {
    let (e, s) = protected(12).await;
    e.driver
        .replicate_now(&s, ArraySide::Primary, Duration::from_secs(300))
        .await
        .unwrap();
    let replica = e
        .driver
        .newest_replica(&s, ArraySide::Primary, VOL)
        .await
        .unwrap()
        .unwrap();
    let promoted = e.driver.promote(&replica, RESTORED).await.unwrap();

    e.driver
        .reverse_replication(
            &s,
            ArraySide::Secondary,
            std::slice::from_ref(&promoted.name),
        )
        .await
        .unwrap();
    let old =
        &e.a.list_protection_groups(&["cinder-group".into()])
            .await
            .unwrap()[0];
    assert!(
        !old.replication_schedule.enabled,
        "the old direction still replicates"
    );
    let targets =
        e.b.list_protection_group_targets("cinder-group")
            .await
            .unwrap();
    assert_eq!(targets[0].member.name, "array-a");
    assert!(targets[0].allowed);
    assert_eq!(
        e.b.list_protection_group_volumes("cinder-group")
            .await
            .unwrap(),
        [RESTORED]
    );

    let point = e
        .driver
        .replicate_now(&s, ArraySide::Secondary, Duration::from_secs(300))
        .await
        .unwrap();
    assert_eq!(point.array, ArraySide::Primary);
    assert!(
        point.name.starts_with("array-b:cinder-group."),
        "{}",
        point.name
    );
    let back = e
        .driver
        .newest_replica(&s, ArraySide::Secondary, RESTORED)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back.array, ArraySide::Primary);
    assert_eq!(back.name, format!("{}.{RESTORED}", point.name));

    // Restoring the original direction re-enables it and stops the reverse one.
    e.driver
        .reverse_replication(&s, ArraySide::Primary, &[VOL.to_owned()])
        .await
        .unwrap();
    let a_pg =
        &e.a.list_protection_groups(&["cinder-group".into()])
            .await
            .unwrap()[0];
    let b_pg =
        &e.b.list_protection_groups(&["cinder-group".into()])
            .await
            .unwrap()[0];
    assert!(a_pg.replication_schedule.enabled);
    assert!(!b_pg.replication_schedule.enabled);
}

#[tokio::test(start_paused = true)]
async fn health_reports_lag_against_the_rpo_and_a_cut_link() {
    let (e, s) = protected(13).await;
    e.driver
        .replicate_now(&s, ArraySide::Primary, Duration::from_secs(300))
        .await
        .unwrap();
    let healthy = e.driver.health(&s, ArraySide::Primary).await.unwrap();
    assert!(healthy.link_up, "{}", healthy.detail);
    assert!(healthy.within_rpo);
    assert!(
        healthy.lag.unwrap() < Duration::from_secs(60),
        "{:?}",
        healthy.lag
    );

    e.fabric.cut_link("array-a", "array-b").unwrap();
    tokio::time::sleep(Duration::from_secs(40 * 60)).await;
    let cut = e.driver.health(&s, ArraySide::Primary).await.unwrap();
    assert!(!cut.link_up);
    assert!(!cut.within_rpo);
    assert!(
        cut.lag.unwrap() >= Duration::from_secs(40 * 60),
        "{:?}",
        cut.lag
    );
    assert_eq!(cut.last_replica_at, healthy.last_replica_at);
    assert!(cut.detail.contains("array-b"), "{}", cut.detail);
}

#[tokio::test(start_paused = true)]
async fn the_schedule_keeps_lag_within_the_rpo_while_the_link_is_up() {
    let (e, s) = protected(14).await;
    tokio::time::sleep(Duration::from_secs(50 * 60)).await;
    let h = e.driver.health(&s, ArraySide::Primary).await.unwrap();
    assert!(h.link_up, "{}", h.detail);
    assert!(h.within_rpo, "lag {:?}: {}", h.lag, h.detail);
}

#[tokio::test(start_paused = true)]
async fn delete_replication_group_removes_the_groups_and_keeps_the_volumes() {
    let (e, s) = protected(15).await;
    e.driver
        .replicate_now(&s, ArraySide::Primary, Duration::from_secs(300))
        .await
        .unwrap();
    e.driver.delete_replication_group(&s).await.unwrap();
    let gone = e.a.list_protection_groups(&["cinder-group".into()]).await;
    assert_eq!(gone.unwrap_err().kind, BackendErrorKind::NotFound);
    let gone_b =
        e.b.list_protection_groups(&["array-a:cinder-group".into()])
            .await;
    assert_eq!(gone_b.unwrap_err().kind, BackendErrorKind::NotFound);
    assert_eq!(e.a.list_volumes(&volume_named(VOL)).await.unwrap().len(), 1);
    // Deleting again is not an error.
    e.driver.delete_replication_group(&s).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn sync_pod_is_stretched_takes_volumes_and_clones_the_pod_volume() {
    let e = env(16);
    let s = spec(ReplicationType::Sync);
    e.a.create_volume(VOL, 10 * GIB).await.unwrap();
    e.driver
        .ensure_replication_group(&s, ArraySide::Primary)
        .await
        .unwrap();
    let pod = &e.b.list_pods(&["cinder-pod".into()]).await.unwrap()[0];
    let arrays: Vec<(&str, &str)> = pod
        .arrays
        .iter()
        .map(|a| (a.name.as_str(), a.status.as_str()))
        .collect();
    assert_eq!(arrays, [("array-a", "online"), ("array-b", "online")]);

    let names = e
        .driver
        .add_volumes_with_names(&s, ArraySide::Primary, &[VOL.to_owned()])
        .await
        .unwrap();
    let in_pod = format!("cinder-pod::{VOL}");
    assert_eq!(names, std::slice::from_ref(&in_pod));
    // Idempotent, also when called with the new name.
    assert_eq!(
        e.driver
            .add_volumes_with_names(&s, ArraySide::Primary, std::slice::from_ref(&in_pod))
            .await
            .unwrap(),
        std::slice::from_ref(&in_pod)
    );
    e.fabric.set_writing("array-a", &in_pod, true).unwrap();
    tokio::time::sleep(Duration::from_secs(90)).await;

    let point = e
        .driver
        .replicate_now(&s, ArraySide::Primary, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(point.name, "cinder-pod");
    let replica = e
        .driver
        .newest_replica(&s, ArraySide::Primary, VOL)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (replica.array, replica.name.as_str()),
        (ArraySide::Secondary, in_pod.as_str())
    );

    let seq_at_clone = e.fabric.write_seq("array-b", &in_pod).unwrap();
    let promoted = e.driver.promote(&replica, RESTORED).await.unwrap();
    let clone = &e.b.list_volumes(&volume_named(RESTORED)).await.unwrap()[0];
    assert_eq!(clone.pod, None);
    assert_eq!(promoted.provisioned_bytes, 10 * GIB);
    assert_eq!(
        e.fabric.write_seq("array-b", RESTORED).unwrap(),
        seq_at_clone
    );
    assert!(seq_at_clone >= 90);

    let h = e.driver.health(&s, ArraySide::Primary).await.unwrap();
    assert!(
        h.link_up && h.within_rpo && h.lag == Some(Duration::ZERO),
        "{h:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_split_pod_has_no_replica_refuses_replicate_now_and_reports_the_link_down() {
    let e = env(17);
    let s = spec(ReplicationType::Sync);
    e.a.create_volume(VOL, GIB).await.unwrap();
    e.driver
        .ensure_replication_group(&s, ArraySide::Primary)
        .await
        .unwrap();
    e.driver
        .add_volumes(&s, ArraySide::Primary, &[VOL.to_owned()])
        .await
        .unwrap();
    e.fabric.cut_link("array-a", "array-b").unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;

    let err = e
        .driver
        .replicate_now(&s, ArraySide::Primary, Duration::from_secs(60))
        .await
        .unwrap_err();
    assert_eq!(err.kind, BackendErrorKind::Transient);
    assert!(err.message.contains("pod cinder-pod"), "{}", err.message);
    assert!(
        err.message.contains("FlashArray array-b"),
        "{}",
        err.message
    );
    let h = e.driver.health(&s, ArraySide::Primary).await.unwrap();
    assert!(!h.link_up, "{h:?}");
}

#[tokio::test(start_paused = true)]
async fn the_array_name_comes_from_the_array() {
    let e = env(18);
    assert_eq!(
        e.driver.array_name(ArraySide::Primary).await.unwrap(),
        "array-a"
    );
    assert_eq!(
        e.driver.array_name(ArraySide::Secondary).await.unwrap(),
        "array-b"
    );
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_target_is_a_transient_error_naming_array_and_volume() {
    let (e, s) = protected(19).await;
    e.fabric.take_array_down("array-b").unwrap();
    let err = e
        .driver
        .newest_replica(&s, ArraySide::Primary, VOL)
        .await
        .unwrap_err();
    assert_eq!(err.kind, BackendErrorKind::Transient);
    assert!(
        err.message.contains("FlashArray array-b"),
        "{}",
        err.message
    );
    assert!(err.message.contains(VOL), "{}", err.message);
}

/// A simulated array seen through a wrapper that counts transfer-status queries, keeps
/// the volume snapshot queries it is asked and, when `refuse_lookup_by_source` is set,
/// answers "does not exist" to every snapshot lookup by source (as an array refusing
/// `source_names` for objects it does not hold). A group snapshot named in `landing`
/// reads as still in transfer.
struct Observed {
    inner: Arc<dyn FlashArray>,
    refuse_lookup_by_source: bool,
    transfer_queries: std::sync::atomic::AtomicUsize,
    snapshot_queries: std::sync::Mutex<Vec<protector_purestorage::VolumeSnapshotQuery>>,
    landing: std::sync::Mutex<Option<String>>,
}

impl Observed {
    fn new(inner: Arc<dyn FlashArray>, refuse_lookup_by_source: bool) -> Arc<Self> {
        Arc::new(Self {
            inner,
            refuse_lookup_by_source,
            transfer_queries: std::sync::atomic::AtomicUsize::new(0),
            snapshot_queries: std::sync::Mutex::new(Vec::new()),
            landing: std::sync::Mutex::new(None),
        })
    }

    fn transfer_queries(&self) -> usize {
        self.transfer_queries
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    fn snapshot_queries(&self) -> Vec<protector_purestorage::VolumeSnapshotQuery> {
        self.snapshot_queries.lock().unwrap().clone()
    }

    fn still_landing(&self, pg_snapshot: &str) {
        *self.landing.lock().unwrap() = Some(pg_snapshot.to_owned());
    }
}

mod observed {
    use super::Observed;
    use async_trait::async_trait;
    use protector_core::{BackendError, Service};
    use protector_purestorage::*;

    #[async_trait]
    impl FlashArray for Observed {
        async fn array_info(&self) -> Result<ArrayInfo, BackendError> {
            self.inner.array_info().await
        }
        async fn list_volumes(&self, q: &VolumeQuery) -> Result<Vec<ArrayVolume>, BackendError> {
            self.inner.list_volumes(q).await
        }
        async fn create_volume(&self, n: &str, p: u64) -> Result<ArrayVolume, BackendError> {
            self.inner.create_volume(n, p).await
        }
        async fn copy_volume(
            &self,
            n: &str,
            s: &str,
            o: bool,
        ) -> Result<ArrayVolume, BackendError> {
            self.inner.copy_volume(n, s, o).await
        }
        async fn rename_volume(&self, n: &str, m: &str) -> Result<ArrayVolume, BackendError> {
            self.inner.rename_volume(n, m).await
        }
        async fn destroy_volume(&self, n: &str) -> Result<(), BackendError> {
            self.inner.destroy_volume(n).await
        }
        async fn eradicate_volume(&self, n: &str) -> Result<(), BackendError> {
            self.inner.eradicate_volume(n).await
        }
        async fn list_volume_snapshots(
            &self,
            q: &VolumeSnapshotQuery,
        ) -> Result<Vec<VolumeSnapshot>, BackendError> {
            self.snapshot_queries.lock().unwrap().push(q.clone());
            if let Some(source) = q
                .source_names
                .first()
                .filter(|_| self.refuse_lookup_by_source)
            {
                return Err(
                    BackendError::not_found(Service::FlashArray, "Volume does not exist.")
                        .with_status(400)
                        .with_request_id(source.clone()),
                );
            }
            self.inner.list_volume_snapshots(q).await
        }
        async fn list_protection_groups(
            &self,
            n: &[String],
        ) -> Result<Vec<ArrayProtectionGroup>, BackendError> {
            self.inner.list_protection_groups(n).await
        }
        async fn create_protection_group(
            &self,
            n: &str,
        ) -> Result<ArrayProtectionGroup, BackendError> {
            self.inner.create_protection_group(n).await
        }
        async fn destroy_protection_group(&self, n: &str) -> Result<(), BackendError> {
            self.inner.destroy_protection_group(n).await
        }
        async fn eradicate_protection_group(&self, n: &str) -> Result<(), BackendError> {
            self.inner.eradicate_protection_group(n).await
        }
        async fn list_protection_group_volumes(
            &self,
            g: &str,
        ) -> Result<Vec<String>, BackendError> {
            self.inner.list_protection_group_volumes(g).await
        }
        async fn add_protection_group_volumes(
            &self,
            g: &str,
            v: &[String],
        ) -> Result<(), BackendError> {
            self.inner.add_protection_group_volumes(g, v).await
        }
        async fn remove_protection_group_volumes(
            &self,
            g: &str,
            v: &[String],
        ) -> Result<(), BackendError> {
            self.inner.remove_protection_group_volumes(g, v).await
        }
        async fn list_protection_group_targets(
            &self,
            g: &str,
        ) -> Result<Vec<ProtectionGroupTarget>, BackendError> {
            self.inner.list_protection_group_targets(g).await
        }
        async fn add_protection_group_targets(
            &self,
            g: &str,
            a: &[String],
        ) -> Result<(), BackendError> {
            self.inner.add_protection_group_targets(g, a).await
        }
        async fn remove_protection_group_targets(
            &self,
            g: &str,
            a: &[String],
        ) -> Result<(), BackendError> {
            self.inner.remove_protection_group_targets(g, a).await
        }
        async fn allow_protection_group(&self, g: &str) -> Result<(), BackendError> {
            self.inner.allow_protection_group(g).await
        }
        async fn set_replication_schedule(
            &self,
            g: &str,
            s: &ReplicationSchedule,
        ) -> Result<(), BackendError> {
            self.inner.set_replication_schedule(g, s).await
        }
        async fn set_target_retention(
            &self,
            g: &str,
            r: &TargetRetention,
        ) -> Result<(), BackendError> {
            self.inner.set_target_retention(g, r).await
        }
        async fn create_pg_snapshot(
            &self,
            g: &str,
            o: &PgSnapshotOptions,
        ) -> Result<PgSnapshot, BackendError> {
            self.inner.create_pg_snapshot(g, o).await
        }
        async fn list_pg_snapshots(
            &self,
            q: &PgSnapshotQuery,
        ) -> Result<Vec<PgSnapshot>, BackendError> {
            self.inner.list_pg_snapshots(q).await
        }
        async fn list_pg_snapshot_transfers(
            &self,
            q: &PgSnapshotQuery,
        ) -> Result<Vec<PgSnapshotTransfer>, BackendError> {
            self.transfer_queries
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut transfers = self.inner.list_pg_snapshot_transfers(q).await?;
            let landing = self.landing.lock().unwrap().clone();
            for t in &mut transfers {
                if Some(&t.name) == landing.as_ref() {
                    t.progress = 0.5;
                    t.completed = None;
                }
            }
            Ok(transfers)
        }
        async fn destroy_pg_snapshot(&self, n: &str) -> Result<(), BackendError> {
            self.inner.destroy_pg_snapshot(n).await
        }
        async fn eradicate_pg_snapshot(&self, n: &str) -> Result<(), BackendError> {
            self.inner.eradicate_pg_snapshot(n).await
        }
        async fn list_pods(&self, n: &[String]) -> Result<Vec<Pod>, BackendError> {
            self.inner.list_pods(n).await
        }
        async fn create_pod(&self, n: &str) -> Result<Pod, BackendError> {
            self.inner.create_pod(n).await
        }
        async fn stretch_pod(&self, p: &str, a: &str) -> Result<(), BackendError> {
            self.inner.stretch_pod(p, a).await
        }
        async fn unstretch_pod(&self, p: &str, a: &str, u: bool) -> Result<(), BackendError> {
            self.inner.unstretch_pod(p, a, u).await
        }
        async fn set_pod_promotion(&self, p: &str, s: PromotionState) -> Result<Pod, BackendError> {
            self.inner.set_pod_promotion(p, s).await
        }
        async fn destroy_pod(&self, p: &str) -> Result<(), BackendError> {
            self.inner.destroy_pod(p).await
        }
        async fn eradicate_pod(&self, p: &str) -> Result<(), BackendError> {
            self.inner.eradicate_pod(p).await
        }
        async fn move_volume(&self, n: &str, p: Option<&str>) -> Result<ArrayVolume, BackendError> {
            self.inner.move_volume(n, p).await
        }
        async fn list_array_connections(&self) -> Result<Vec<ArrayConnection>, BackendError> {
            self.inner.list_array_connections().await
        }
    }
}

#[tokio::test(start_paused = true)]
async fn the_newest_replica_is_found_through_the_group_when_the_array_refuses_lookup_by_source() {
    let (e, s) = protected(20).await;
    let first = e
        .driver
        .replicate_now(&s, ArraySide::Primary, Duration::from_secs(300))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
    let second = e
        .driver
        .replicate_now(&s, ArraySide::Primary, Duration::from_secs(300))
        .await
        .unwrap();
    let strict = e.driver_towards(Observed::new(e.b.clone(), true));
    let replica = strict
        .newest_replica(&s, ArraySide::Primary, VOL)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(first.name, second.name);
    assert_eq!(replica.name, format!("{}.{VOL}", second.name));
    assert_eq!(
        strict
            .newest_replica(&s, ArraySide::Primary, VOL2)
            .await
            .unwrap(),
        None
    );
}

#[tokio::test(start_paused = true)]
async fn replicas_that_replicate_now_saw_land_are_found_without_asking_transfer_status_again() {
    let e = env(21);
    let s = spec(ReplicationType::Async);
    let b = Observed::new(e.b.clone(), false);
    let driver = e.driver_towards(b.clone());
    let volumes = [VOL.to_owned(), VOL2.to_owned()];
    for v in &volumes {
        e.a.create_volume(v, GIB).await.unwrap();
    }
    driver
        .ensure_replication_group(&s, ArraySide::Primary)
        .await
        .unwrap();
    driver
        .add_volumes(&s, ArraySide::Primary, &volumes)
        .await
        .unwrap();
    let point = driver
        .replicate_now(&s, ArraySide::Primary, Duration::from_secs(300))
        .await
        .unwrap();
    let polled = b.transfer_queries();
    assert!(polled >= 1);
    for v in &volumes {
        let r = driver
            .newest_replica(&s, ArraySide::Primary, v)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.name, format!("{}.{v}", point.name));
    }
    assert_eq!(b.transfer_queries(), polled);

    // A driver that did not see it land asks once, then remembers.
    let fresh = e.driver_towards(b.clone());
    for v in &volumes {
        assert!(fresh
            .newest_replica(&s, ArraySide::Primary, v)
            .await
            .unwrap()
            .is_some());
    }
    assert_eq!(b.transfer_queries(), polled + 1);
}

/// `VOL` protected and replicated twice, a minute apart: the two replica points.
async fn replicated_twice(seed: u64) -> (Env, ReplicationGroupSpec, [String; 2]) {
    let (e, s) = protected(seed).await;
    let first = e
        .driver
        .replicate_now(&s, ArraySide::Primary, Duration::from_secs(300))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
    let second = e
        .driver
        .replicate_now(&s, ArraySide::Primary, Duration::from_secs(300))
        .await
        .unwrap();
    (e, s, [first.name, second.name])
}

#[tokio::test(start_paused = true)]
async fn the_newest_replica_is_asked_for_as_the_single_newest_snapshot() {
    let (e, s, [_, second]) = replicated_twice(23).await;
    let b = Observed::new(e.b.clone(), false);
    let driver = e.driver_towards(b.clone());
    let replica = driver
        .newest_replica(&s, ArraySide::Primary, VOL)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(replica.name, format!("{second}.{VOL}"));
    let queries = b.snapshot_queries();
    assert_eq!(queries.len(), 1, "{queries:?}");
    assert_eq!(queries[0].source_names, [format!("array-a:{VOL}")]);
    assert_eq!(queries[0].destroyed, Some(false));
    assert_eq!(queries[0].order, SnapshotOrder::NewestFirst);
    assert_eq!(queries[0].limit, Some(1));
}

#[tokio::test(start_paused = true)]
async fn when_the_newest_snapshot_is_still_landing_every_snapshot_is_read_for_an_older_one() {
    let (e, s, [first, second]) = replicated_twice(24).await;
    let b = Observed::new(e.b.clone(), false);
    b.still_landing(&second);
    let driver = e.driver_towards(b.clone());
    let replica = driver
        .newest_replica(&s, ArraySide::Primary, VOL)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(replica.name, format!("{first}.{VOL}"));
    let queries = b.snapshot_queries();
    assert_eq!(queries.len(), 2, "{queries:?}");
    assert_eq!(queries[0].limit, Some(1));
    assert_eq!(queries[1].limit, None);
    assert_eq!(queries[1].order, SnapshotOrder::Name);
    assert_eq!(queries[1].source_names, queries[0].source_names);
    // The group's transfers were read once for both snapshots.
    assert_eq!(b.transfer_queries(), 1);

    // Nothing usable at all: no replica, after the same two listings.
    let (e2, s2) = protected(25).await;
    let point = e2
        .driver
        .replicate_now(&s2, ArraySide::Primary, Duration::from_secs(300))
        .await
        .unwrap();
    let only_b = Observed::new(e2.b.clone(), false);
    only_b.still_landing(&point.name);
    let fresh = e2.driver_towards(only_b.clone());
    assert_eq!(
        fresh
            .newest_replica(&s2, ArraySide::Primary, VOL)
            .await
            .unwrap(),
        None
    );
    assert_eq!(only_b.snapshot_queries().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn deleting_a_sync_group_unstretches_the_pod_and_keeps_the_volumes() {
    let e = env(22);
    let s = spec(ReplicationType::Sync);
    e.a.create_volume(VOL, GIB).await.unwrap();
    e.driver
        .ensure_replication_group(&s, ArraySide::Primary)
        .await
        .unwrap();
    e.driver
        .add_volumes(&s, ArraySide::Primary, &[VOL.to_owned()])
        .await
        .unwrap();
    e.driver.delete_replication_group(&s).await.unwrap();
    for array in [&e.a, &e.b] {
        let err = array.list_pods(&["cinder-pod".into()]).await.unwrap_err();
        assert_eq!(err.kind, BackendErrorKind::NotFound);
    }
    let kept = &e.a.list_volumes(&volume_named(VOL)).await.unwrap()[0];
    assert_eq!(kept.pod, None);
    e.driver.delete_replication_group(&s).await.unwrap();
}
