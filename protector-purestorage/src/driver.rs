//! The Pure Storage driver: protector's [`StorageDriver`] on two [`FlashArray`]s.
//!
//! # Expected flow
//! - Async groups: one array protection group per protection group, named from the
//!   policy's `pure_pg_name`, on the source array, targeting the other array (by its
//!   `array_info().name`), allowed there as `<source>:<pg>`, with a replication
//!   schedule from the interval and the configured target retention.
//!   [`StorageDriver::replicate_now`] snapshots the group with `replicate_now` and polls
//!   the target's transfer list for `<source>:<pg>.<suffix>`;
//!   [`StorageDriver::newest_replica`] picks the newest complete volume snapshot whose
//!   source is `<source>:<volume>`; [`StorageDriver::promote`] copies it into a new
//!   volume, never overwriting.
//! - Sync groups: a pod named from `pure_pg_name`, stretched to both arrays; member
//!   volumes are `pod::volume`; promotion clones the pod volume into a non-pod volume.
//!
//! # Guarantees
//! - Every set-up call is idempotent: re-running it on a configured pair changes
//!   nothing and tolerates the array's "already exists / includes / allowed on".
//! - Errors name the array (by its name), and the volume, group or snapshot involved.
//! - Array-side volume names are taken as given (Cinder's `volume-<uuid>-cinder`), never
//!   constructed; only replicated-object names (`<array>:<name>`, `pod::<name>`) are
//!   derived, as Purity derives them.
//!
//! # Assumptions
//! The two arrays are connected for replication (`/array-connections`), and the caller
//! serialises set-up calls for one group.
//!
//! # Caveats
//! - Purity refuses to move a volume out of a stretched pod, so `remove_volumes` on a
//!   sync group fails while the pod is stretched; `delete_replication_group` unstretches
//!   the pod first (the peer's copies of its volumes go with it), then moves the
//!   volumes out and removes the pod.
//! - `health` measures lag from when the newest landed snapshot was taken, so it is the
//!   data a failover would lose now, not the time since the transfer ended.
//! - Replicated volume snapshots are looked up by `source_names=<array>:<volume>`, the
//!   newest alone first (`sort=created-,name-&limit=1`), all of them only when that one
//!   has not landed yet; an array that refuses that lookup is answered from the
//!   group's landed snapshots instead (the Cinder driver's way).

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::OnceCell;

use protector_core::model::ReplicationType;
use protector_core::ports::{
    ArraySide, LinkHealth, PromotedVolume, ReplicaPoint, ReplicationGroupSpec, StorageDriver,
    VolumeReplica,
};
use protector_core::{Applied, BackendError, BackendErrorKind, Clock, Service};

use crate::array::{
    ArrayProtectionGroup, ArrayVolume, FlashArray, PgSnapshotOptions, PgSnapshotQuery,
    PgSnapshotTransfer, Pod, ReplicationSchedule, SnapshotOrder, TargetRetention, VolumeQuery,
    VolumeSnapshot, VolumeSnapshotQuery,
};

/// How many landed group snapshots a driver remembers per array.
const LANDED_MEMORY: usize = 4096;

/// How many of a volume's newest replicated snapshots a replica lookup reads first.
const NEWEST_REPLICA_PAGE: u32 = 1;

/// Settings of a [`PureDriver`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PureDriverOptions {
    /// First delay between transfer polls while waiting for a replica (default 1 s).
    pub poll_interval: Duration,
    /// Longest delay between transfer polls (default 5 s).
    pub max_poll_interval: Duration,
    /// Retention of replicated snapshots on the target (default: the Cinder driver's,
    /// all for 4 h, then 3 a day for 7 days).
    pub target_retention: TargetRetention,
    /// Apply the retention policies to snapshots taken by `replicate_now` (default true).
    pub apply_retention: bool,
    /// Replication interval used when the spec has none (default 1 h, the Cinder
    /// driver's `pure_replica_interval_default`).
    pub default_interval: Duration,
}

impl Default for PureDriverOptions {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(1),
            max_poll_interval: Duration::from_secs(5),
            target_retention: TargetRetention::default(),
            apply_retention: true,
            default_interval: Duration::from_secs(3600),
        }
    }
}

/// The Pure Storage [`StorageDriver`] over two arrays.
pub struct PureDriver {
    primary: Arc<dyn FlashArray>,
    secondary: Arc<dyn FlashArray>,
    clock: Arc<dyn Clock>,
    options: PureDriverOptions,
    names: [OnceCell<String>; 2],
    /// Group snapshots known to have landed, per array (landing is final).
    landed: Mutex<[BTreeSet<String>; 2]>,
}

impl fmt::Debug for PureDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PureDriver")
            .field("primary", &self.names[0].get())
            .field("secondary", &self.names[1].get())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// Prefixes an error's message with what was being done and on which array.
fn at(mut e: BackendError, array: &str, what: impl fmt::Display) -> BackendError {
    e.message = format!("{what} on FlashArray {array}: {}", e.message);
    e
}

fn is(e: &BackendError, kind: BackendErrorKind) -> bool {
    e.kind == kind
}

/// `Ok(None)` for a "does not exist" answer.
fn absent_ok<T>(r: Result<T, BackendError>) -> Result<Option<T>, BackendError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if is(&e, BackendErrorKind::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `Ok(())` for an "already exists / includes / allowed on" answer.
fn conflict_ok(r: Result<(), BackendError>) -> Result<(), BackendError> {
    match r {
        Err(e) if is(&e, BackendErrorKind::Conflict) => Ok(()),
        other => other,
    }
}

fn ms_to_utc(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn side_index(side: ArraySide) -> usize {
    match side {
        ArraySide::Primary => 0,
        ArraySide::Secondary => 1,
    }
}

fn transfer_done(t: &PgSnapshotTransfer) -> bool {
    !t.destroyed && (t.progress >= 1.0 || t.completed.is_some())
}

/// The name a replicated object `<array>:<name>` from the array named `array` has
/// there: `array-a:vol1` → `vol1` for `array-a`.
fn replicated_name<'a>(replicated: &'a str, array: &str) -> Option<&'a str> {
    replicated.strip_prefix(array)?.strip_prefix(':')
}

/// The replica of `volume` on `target` that the volume snapshot `s` is.
fn snapshot_replica(target: ArraySide, volume: &str, s: VolumeSnapshot) -> VolumeReplica {
    VolumeReplica {
        array: target,
        source_volume: volume.to_owned(),
        created_at: ms_to_utc(s.created),
        name: s.name,
    }
}

/// The protection-group snapshot a replicated snapshot of `volume` from the array
/// named `array` belongs to: `array-a:pg1.42.vol1` → `array-a:pg1.42`.
fn replicated_pg_snapshot<'a>(snapshot: &'a str, array: &str, volume: &str) -> Option<&'a str> {
    let pg_snapshot = snapshot.strip_suffix(volume)?.strip_suffix('.')?;
    replicated_name(pg_snapshot, array).map(|_| pg_snapshot)
}

/// The group a protection-group snapshot name belongs to: `array-a:pg1.42` → `array-a:pg1`.
fn group_of_snapshot(pg_snapshot: &str) -> &str {
    // Purity names hold no dots; the first dot after the array prefix ends the group.
    let start = pg_snapshot.find(':').map(|i| i + 1).unwrap_or(0);
    match pg_snapshot[start..].find('.') {
        Some(i) => &pg_snapshot[..start + i],
        None => pg_snapshot,
    }
}

impl PureDriver {
    /// A driver over the primary and secondary arrays of one replication policy.
    pub fn new(
        primary: Arc<dyn FlashArray>,
        secondary: Arc<dyn FlashArray>,
        clock: Arc<dyn Clock>,
        options: PureDriverOptions,
    ) -> Self {
        Self {
            primary,
            secondary,
            clock,
            options,
            names: [OnceCell::new(), OnceCell::new()],
            landed: Mutex::new([BTreeSet::new(), BTreeSet::new()]),
        }
    }

    /// The settings.
    pub fn options(&self) -> &PureDriverOptions {
        &self.options
    }

    fn array(&self, side: ArraySide) -> &Arc<dyn FlashArray> {
        match side {
            ArraySide::Primary => &self.primary,
            ArraySide::Secondary => &self.secondary,
        }
    }

    async fn name(&self, side: ArraySide) -> Result<&str, BackendError> {
        self.names[side_index(side)]
            .get_or_try_init(|| async {
                match self.array(side).array_info().await {
                    Ok(info) => Ok(info.name),
                    // A down source is exactly when an unplanned failover needs its name
                    // (replicated objects on the target are prefixed with it): the other
                    // array knows its only peer by name.
                    Err(e) if e.is_retryable() => {
                        match self.array(side.other()).list_array_connections().await {
                            Ok(peers) if peers.len() == 1 => Ok(peers[0].name.clone()),
                            _ => Err(at(
                                e,
                                &format!("the {side} array"),
                                "reading the array name",
                            )),
                        }
                    }
                    Err(e) => Err(at(
                        e,
                        &format!("the {side} array"),
                        "reading the array name",
                    )),
                }
            })
            .await
            .map(String::as_str)
    }

    fn landed(&self, side: ArraySide, pg_snapshot: &str) -> bool {
        self.landed.lock().unwrap_or_else(|p| p.into_inner())[side_index(side)]
            .contains(pg_snapshot)
    }

    fn remember_landed(&self, side: ArraySide, pg_snapshot: &str) {
        let mut landed = self.landed.lock().unwrap_or_else(|p| p.into_inner());
        let set = &mut landed[side_index(side)];
        // Bounded: forgetting only costs one more transfer query.
        if set.len() >= LANDED_MEMORY {
            set.clear();
        }
        set.insert(pg_snapshot.to_owned());
    }

    fn interval(&self, spec: &ReplicationGroupSpec) -> Duration {
        [spec.interval, spec.rpo, self.options.default_interval]
            .into_iter()
            .find(|d| !d.is_zero())
            .unwrap_or(Duration::from_secs(3600))
    }

    async fn find_pg(
        &self,
        array: &dyn FlashArray,
        name: &str,
    ) -> Result<Option<ArrayProtectionGroup>, BackendError> {
        let groups = absent_ok(array.list_protection_groups(&[name.to_owned()]).await)?;
        Ok(groups.and_then(|gs| gs.into_iter().find(|g| g.name == name)))
    }

    async fn find_pod(
        &self,
        array: &dyn FlashArray,
        name: &str,
    ) -> Result<Option<Pod>, BackendError> {
        let pods = absent_ok(array.list_pods(&[name.to_owned()]).await)?;
        Ok(pods.and_then(|ps| ps.into_iter().find(|p| p.name == name && !p.destroyed)))
    }

    async fn find_volume(
        &self,
        array: &dyn FlashArray,
        name: &str,
    ) -> Result<Option<ArrayVolume>, BackendError> {
        let query = VolumeQuery {
            names: vec![name.to_owned()],
            ..VolumeQuery::default()
        };
        let vols = absent_ok(array.list_volumes(&query).await)?;
        Ok(vols.and_then(|vs| vs.into_iter().find(|v| v.name == name)))
    }

    /// The protection group on `source`, replicating to the other array.
    async fn ensure_pg(
        &self,
        spec: &ReplicationGroupSpec,
        source: ArraySide,
    ) -> Result<(), BackendError> {
        let src_name = self.name(source).await?;
        let tgt_name = self.name(source.other()).await?;
        let src = self.array(source).as_ref();
        let tgt = self.array(source.other()).as_ref();
        let pg = spec.name.as_str();
        let ctx = |e| {
            at(
                e,
                src_name,
                format_args!("setting up protection group {pg}"),
            )
        };

        let group = match self.find_pg(src, pg).await.map_err(ctx)? {
            Some(g) if !g.destroyed => g,
            found => {
                if found.is_some() {
                    // A destroyed group holds the name until eradicated.
                    absent_ok(src.eradicate_protection_group(pg).await).map_err(ctx)?;
                }
                match src.create_protection_group(pg).await {
                    Ok(g) => g,
                    Err(e) if is(&e, BackendErrorKind::Conflict) => self
                        .find_pg(src, pg)
                        .await
                        .map_err(ctx)?
                        .ok_or_else(|| ctx(e))?,
                    Err(e) => return Err(ctx(e)),
                }
            }
        };

        let targets = absent_ok(src.list_protection_group_targets(pg).await)
            .map_err(ctx)?
            .unwrap_or_default();
        let target = targets.iter().find(|t| t.member.name == tgt_name);
        if target.is_none() {
            conflict_ok(
                src.add_protection_group_targets(pg, &[tgt_name.to_owned()])
                    .await,
            )
            .map_err(ctx)?;
        }
        if !target.is_some_and(|t| t.allowed) {
            let replicated = format!("{src_name}:{pg}");
            conflict_ok(tgt.allow_protection_group(&replicated).await).map_err(|e| {
                at(
                    e,
                    tgt_name,
                    format_args!("allowing protection group {replicated}"),
                )
            })?;
        }

        let schedule = ReplicationSchedule {
            enabled: true,
            frequency_ms: u64::try_from(self.interval(spec).as_millis()).unwrap_or(u64::MAX),
        };
        if group.replication_schedule != schedule {
            src.set_replication_schedule(pg, &schedule)
                .await
                .map_err(ctx)?;
        }
        if group.target_retention != self.options.target_retention {
            src.set_target_retention(pg, &self.options.target_retention)
                .await
                .map_err(ctx)?;
        }
        Ok(())
    }

    /// The pod, created on `source` and stretched to the other array.
    async fn ensure_pod(
        &self,
        spec: &ReplicationGroupSpec,
        source: ArraySide,
    ) -> Result<Pod, BackendError> {
        let src_name = self.name(source).await?;
        let tgt_name = self.name(source.other()).await?;
        let src = self.array(source).as_ref();
        let name = spec.name.as_str();
        let ctx = |e| at(e, src_name, format_args!("setting up pod {name}"));
        let pod = match self.find_pod(src, name).await.map_err(ctx)? {
            Some(p) => p,
            None => match src.create_pod(name).await {
                Ok(p) => p,
                Err(e) if is(&e, BackendErrorKind::Conflict) => self
                    .find_pod(src, name)
                    .await
                    .map_err(ctx)?
                    .ok_or_else(|| ctx(e))?,
                Err(e) => return Err(ctx(e)),
            },
        };
        if !pod.arrays.iter().any(|a| a.name == tgt_name) {
            conflict_ok(src.stretch_pod(name, tgt_name).await).map_err(|e| {
                at(
                    e,
                    src_name,
                    format_args!("stretching pod {name} to {tgt_name}"),
                )
            })?;
        }
        Ok(pod)
    }

    async fn set_pg_members(
        &self,
        spec: &ReplicationGroupSpec,
        source: ArraySide,
        volumes: &[String],
        exact: bool,
    ) -> Result<(), BackendError> {
        let src_name = self.name(source).await?;
        let src = self.array(source).as_ref();
        let pg = spec.name.as_str();
        let listed = src.list_protection_group_volumes(pg).await.map_err(|e| {
            at(
                e,
                src_name,
                format_args!("listing the volumes of protection group {pg}"),
            )
        })?;
        let members: BTreeSet<&str> = listed.iter().map(String::as_str).collect();
        let wanted: BTreeSet<&str> = volumes.iter().map(String::as_str).collect();
        let to_add: Vec<String> = wanted
            .difference(&members)
            .map(|v| (*v).to_owned())
            .collect();
        if !to_add.is_empty() {
            conflict_ok(src.add_protection_group_volumes(pg, &to_add).await).map_err(|e| {
                at(
                    e,
                    src_name,
                    format_args!(
                        "adding volumes {} to protection group {pg}",
                        to_add.join(", ")
                    ),
                )
            })?;
        }
        if exact {
            let to_remove: Vec<String> = members
                .difference(&wanted)
                .map(|v| (*v).to_owned())
                .collect();
            if !to_remove.is_empty() {
                absent_ok(src.remove_protection_group_volumes(pg, &to_remove).await).map_err(
                    |e| {
                        at(
                            e,
                            src_name,
                            format_args!(
                                "removing volumes {} from protection group {pg}",
                                to_remove.join(", ")
                            ),
                        )
                    },
                )?;
            }
        }
        Ok(())
    }

    fn pod_volume_name(pod: &str, volume: &str) -> String {
        if volume.contains("::") {
            volume.to_owned()
        } else {
            format!("{pod}::{volume}")
        }
    }

    async fn move_into_pod(
        &self,
        spec: &ReplicationGroupSpec,
        source: ArraySide,
        volumes: &[String],
    ) -> Result<Vec<String>, BackendError> {
        let src_name = self.name(source).await?;
        let src = self.array(source).as_ref();
        let pod = spec.name.as_str();
        let prefix = format!("{pod}::");
        let mut names = Vec::with_capacity(volumes.len());
        for volume in volumes {
            if volume.starts_with(&prefix) {
                names.push(volume.clone());
                continue;
            }
            let in_pod = Self::pod_volume_name(pod, volume);
            match src.move_volume(volume, Some(pod)).await {
                Ok(v) => names.push(v.name),
                // Moved by an earlier attempt whose answer was lost.
                Err(e)
                    if is(&e, BackendErrorKind::NotFound)
                        && self.find_volume(src, &in_pod).await?.is_some() =>
                {
                    names.push(in_pod)
                }
                Err(e) => {
                    return Err(at(
                        e,
                        src_name,
                        format_args!("moving volume {volume} into pod {pod}"),
                    ))
                }
            }
        }
        Ok(names)
    }

    async fn poll_transfer(
        &self,
        target: ArraySide,
        group: &str,
        replicated: &str,
        timeout: Duration,
    ) -> Result<PgSnapshotTransfer, BackendError> {
        let tgt_name = self.name(target).await?;
        let tgt = self.array(target).as_ref();
        let query = PgSnapshotQuery {
            names: vec![replicated.to_owned()],
            ..PgSnapshotQuery::default()
        };
        let deadline = tokio::time::Instant::now() + timeout;
        let mut interval = self.options.poll_interval;
        let mut last: Option<PgSnapshotTransfer> = None;
        loop {
            match tgt.list_pg_snapshot_transfers(&query).await {
                Ok(ts) => {
                    if let Some(t) = ts.into_iter().find(|t| t.name == replicated) {
                        if transfer_done(&t) {
                            return Ok(t);
                        }
                        last = Some(t);
                    }
                }
                // Not on the target yet, or a passing failure: keep polling.
                Err(e) if is(&e, BackendErrorKind::NotFound) || e.is_retryable() => {}
                Err(e) => {
                    return Err(at(
                        e,
                        tgt_name,
                        format_args!(
                            "waiting for snapshot {replicated} of protection group {group}"
                        ),
                    ))
                }
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                let progress = match &last {
                    Some(t) => format!("transfer at {:.0}%", t.progress * 100.0),
                    None => "not yet visible on the target".to_owned(),
                };
                return Err(BackendError {
                    applied: Applied::Maybe,
                    ..BackendError::new(
                        BackendErrorKind::Transient,
                        Service::FlashArray,
                        format!(
                            "replication of snapshot {replicated} of protection group {group} to FlashArray {tgt_name} did not complete within {}s ({progress})",
                            timeout.as_secs()
                        ),
                    )
                });
            }
            tokio::time::sleep(interval.min(deadline - now)).await;
            interval = (interval * 2).min(
                self.options
                    .max_poll_interval
                    .max(self.options.poll_interval),
            );
        }
    }

    /// The newest of `listed` (replicated snapshots of `volume` from the array named
    /// `src_name`) whose group snapshot has fully landed on `target`. Landing is final,
    /// so what is known to have landed is remembered and not asked again; `asked` holds
    /// the groups whose transfers were read.
    async fn newest_landed(
        &self,
        target: ArraySide,
        src_name: &str,
        volume: &str,
        mut listed: Vec<VolumeSnapshot>,
        asked: &mut BTreeSet<String>,
    ) -> Result<Option<VolumeReplica>, BackendError> {
        let tgt = self.array(target).as_ref();
        listed.retain(|s| {
            !s.destroyed
                && replicated_name(&s.source.name, src_name) == Some(volume)
                && replicated_pg_snapshot(&s.name, src_name, volume).is_some()
        });
        // Names are unique, so this is the one order whatever the sort.
        listed.sort_unstable_by(|a, b| b.created.cmp(&a.created).then_with(|| b.name.cmp(&a.name)));
        for s in listed {
            let Some(pg_snapshot) = replicated_pg_snapshot(&s.name, src_name, volume) else {
                continue;
            };
            if !self.landed(target, pg_snapshot) {
                let group = group_of_snapshot(pg_snapshot);
                if !asked.contains(group) {
                    asked.insert(group.to_owned());
                    let query = PgSnapshotQuery {
                        source_names: vec![group.to_owned()],
                        destroyed: Some(false),
                        ..PgSnapshotQuery::default()
                    };
                    let transfers = absent_ok(tgt.list_pg_snapshot_transfers(&query).await)?
                        .unwrap_or_default();
                    for t in transfers.iter().filter(|t| transfer_done(t)) {
                        self.remember_landed(target, &t.name);
                    }
                }
                if !self.landed(target, pg_snapshot) {
                    continue;
                }
            }
            return Ok(Some(snapshot_replica(target, volume, s)));
        }
        Ok(None)
    }

    /// The newest complete replica of `volume` among the landed snapshots of the
    /// replicated group `<src>:<group>` on `target` (the Cinder driver's lookup).
    async fn newest_in_group(
        &self,
        target: ArraySide,
        src_name: &str,
        group: &str,
        volume: &str,
    ) -> Result<Option<VolumeReplica>, BackendError> {
        let tgt = self.array(target).as_ref();
        let query = PgSnapshotQuery {
            source_names: vec![format!("{src_name}:{group}")],
            destroyed: Some(false),
            ..PgSnapshotQuery::default()
        };
        let mut landed: Vec<PgSnapshotTransfer> =
            absent_ok(tgt.list_pg_snapshot_transfers(&query).await)?
                .unwrap_or_default()
                .into_iter()
                .filter(transfer_done)
                .collect();
        landed.sort_by(|a, b| {
            b.started
                .cmp(&a.started)
                .then_with(|| b.completed.cmp(&a.completed))
                .then_with(|| b.name.cmp(&a.name))
        });
        for pg_snapshot in landed {
            let name = format!("{}.{volume}", pg_snapshot.name);
            let query = VolumeSnapshotQuery {
                names: vec![name.clone()],
                ..VolumeSnapshotQuery::default()
            };
            let found = absent_ok(tgt.list_volume_snapshots(&query).await)?
                .unwrap_or_default()
                .into_iter()
                .find(|s| s.name == name && !s.destroyed);
            if let Some(s) = found {
                return Ok(Some(snapshot_replica(target, volume, s)));
            }
        }
        Ok(None)
    }

    async fn pod_health(
        &self,
        spec: &ReplicationGroupSpec,
        source: ArraySide,
    ) -> Result<LinkHealth, BackendError> {
        let src_name = self.name(source).await?;
        let tgt_name = self.name(source.other()).await?;
        let pod = self
            .find_pod(self.array(source).as_ref(), &spec.name)
            .await
            .map_err(|e| at(e, src_name, format_args!("reading pod {}", spec.name)))?;
        let now = self.clock.now();
        let Some(pod) = pod else {
            return Ok(LinkHealth {
                link_up: false,
                lag: None,
                last_replica_at: None,
                within_rpo: false,
                detail: format!("pod {} does not exist on FlashArray {src_name}", spec.name),
            });
        };
        let detail = pod
            .arrays
            .iter()
            .map(|a| format!("{}: {}", a.name, a.status))
            .collect::<Vec<_>>()
            .join(", ");
        let online = |name: &str| {
            pod.arrays
                .iter()
                .any(|a| a.name == name && a.status == "online")
        };
        let link_up = online(src_name) && online(tgt_name);
        let (lag, last) = if link_up {
            (Some(Duration::ZERO), Some(now))
        } else {
            let frozen = pod
                .arrays
                .iter()
                .find(|a| a.name == tgt_name)
                .and_then(|a| a.frozen_at)
                .map(ms_to_utc);
            (
                frozen.map(|f| (now - f).to_std().unwrap_or_default()),
                frozen,
            )
        };
        Ok(LinkHealth {
            link_up,
            within_rpo: lag.is_some_and(|l| l <= spec.rpo),
            lag,
            last_replica_at: last,
            detail: format!("pod {} arrays: {detail}", spec.name),
        })
    }

    async fn pg_health(
        &self,
        spec: &ReplicationGroupSpec,
        source: ArraySide,
    ) -> Result<LinkHealth, BackendError> {
        let src_name = self.name(source).await?;
        let tgt_name = self.name(source.other()).await?;
        let src = self.array(source).as_ref();
        let pg = spec.name.as_str();
        let ctx = |e| {
            at(
                e,
                src_name,
                format_args!("reading the health of protection group {pg}"),
            )
        };
        let mut detail = Vec::new();

        let connections = src.list_array_connections().await.map_err(ctx)?;
        let connected = match connections.iter().find(|c| c.name == tgt_name) {
            Some(c) => {
                detail.push(format!("connection to {tgt_name}: {}", c.status));
                c.status == "connected"
            }
            None => {
                detail.push(format!("no connection to {tgt_name}"));
                false
            }
        };
        let targets = absent_ok(src.list_protection_group_targets(pg).await)
            .map_err(ctx)?
            .unwrap_or_default();
        let replicating = match targets.iter().find(|t| t.member.name == tgt_name) {
            Some(t) => {
                detail.push(format!(
                    "target {tgt_name}: {}{}",
                    t.status,
                    if t.allowed { "" } else { " (not allowed)" }
                ));
                t.allowed && t.status == "replicating"
            }
            None => {
                detail.push(format!("{tgt_name} is not a target of {pg}"));
                false
            }
        };

        let replicated_group = format!("{src_name}:{pg}");
        let query = PgSnapshotQuery {
            source_names: vec![replicated_group.clone()],
            destroyed: Some(false),
            ..PgSnapshotQuery::default()
        };
        let newest = match self
            .array(source.other())
            .list_pg_snapshot_transfers(&query)
            .await
        {
            Ok(ts) => ts
                .into_iter()
                .filter(transfer_done)
                .filter_map(|t| t.started.or(t.completed))
                .max()
                .map(ms_to_utc),
            Err(e) if is(&e, BackendErrorKind::NotFound) => None,
            Err(e) => {
                detail.push(format!(
                    "cannot read transfers on {tgt_name}: {}",
                    e.message
                ));
                None
            }
        };
        let now = self.clock.now();
        let lag = newest.map(|t| (now - t).to_std().unwrap_or_default());
        if newest.is_none() {
            detail.push(format!(
                "no complete replica of {replicated_group} on {tgt_name}"
            ));
        }
        Ok(LinkHealth {
            link_up: connected && replicating,
            within_rpo: lag.is_some_and(|l| l <= spec.rpo),
            lag,
            last_replica_at: newest,
            detail: detail.join("; "),
        })
    }
}

#[async_trait]
impl StorageDriver for PureDriver {
    async fn array_name(&self, side: ArraySide) -> Result<String, BackendError> {
        self.name(side).await.map(str::to_owned)
    }

    async fn ensure_replication_group(
        &self,
        spec: &ReplicationGroupSpec,
        source: ArraySide,
    ) -> Result<(), BackendError> {
        match spec.replication_type {
            ReplicationType::Sync => self.ensure_pod(spec, source).await.map(|_| ()),
            ReplicationType::Async => self.ensure_pg(spec, source).await,
        }
    }

    async fn add_volumes(
        &self,
        spec: &ReplicationGroupSpec,
        source: ArraySide,
        volumes: &[String],
    ) -> Result<(), BackendError> {
        self.add_volumes_with_names(spec, source, volumes)
            .await
            .map(|_| ())
    }

    async fn add_volumes_with_names(
        &self,
        spec: &ReplicationGroupSpec,
        source: ArraySide,
        volumes: &[String],
    ) -> Result<Vec<String>, BackendError> {
        match spec.replication_type {
            ReplicationType::Sync => self.move_into_pod(spec, source, volumes).await,
            ReplicationType::Async => {
                self.set_pg_members(spec, source, volumes, false).await?;
                Ok(volumes.to_vec())
            }
        }
    }

    async fn remove_volumes(
        &self,
        spec: &ReplicationGroupSpec,
        source: ArraySide,
        volumes: &[String],
    ) -> Result<(), BackendError> {
        let src_name = self.name(source).await?;
        let src = self.array(source).as_ref();
        let group = spec.name.as_str();
        match spec.replication_type {
            ReplicationType::Sync => {
                for volume in volumes {
                    let in_pod = Self::pod_volume_name(group, volume);
                    absent_ok(src.move_volume(&in_pod, None).await).map_err(|e| {
                        at(
                            e,
                            src_name,
                            format_args!("moving volume {in_pod} out of pod {group}"),
                        )
                    })?;
                }
                Ok(())
            }
            ReplicationType::Async => {
                let members = match absent_ok(src.list_protection_group_volumes(group).await) {
                    Ok(Some(m)) => m,
                    Ok(None) => return Ok(()),
                    Err(e) => {
                        return Err(at(
                            e,
                            src_name,
                            format_args!("listing the volumes of protection group {group}"),
                        ))
                    }
                };
                let gone: Vec<String> = volumes
                    .iter()
                    .filter(|v| members.contains(v))
                    .cloned()
                    .collect();
                if gone.is_empty() {
                    return Ok(());
                }
                absent_ok(src.remove_protection_group_volumes(group, &gone).await)
                    .map(|_| ())
                    .map_err(|e| {
                        at(
                            e,
                            src_name,
                            format_args!(
                                "removing volumes {} from protection group {group}",
                                gone.join(", ")
                            ),
                        )
                    })
            }
        }
    }

    async fn delete_replication_group(
        &self,
        spec: &ReplicationGroupSpec,
    ) -> Result<(), BackendError> {
        let group = spec.name.as_str();
        match spec.replication_type {
            ReplicationType::Sync => {
                for side in [ArraySide::Primary, ArraySide::Secondary] {
                    let name = self.name(side).await?;
                    let other = self.name(side.other()).await?;
                    let array = self.array(side).as_ref();
                    let ctx = |e| at(e, name, format_args!("deleting pod {group}"));
                    let Some(pod) = self.find_pod(array, group).await.map_err(ctx)? else {
                        continue;
                    };
                    // A stretched pod keeps its volumes: unstretch first, then move them out.
                    if pod.arrays.iter().any(|a| a.name == other) {
                        let offline = pod
                            .arrays
                            .iter()
                            .any(|a| a.name == other && a.status != "online");
                        absent_ok(array.unstretch_pod(group, other, offline).await).map_err(ctx)?;
                    }
                    let members = array
                        .list_volumes(&VolumeQuery {
                            pod: Some(group.to_owned()),
                            destroyed: Some(false),
                            ..VolumeQuery::default()
                        })
                        .await
                        .map_err(ctx)?;
                    for v in members {
                        absent_ok(array.move_volume(&v.name, None).await).map_err(ctx)?;
                    }
                    absent_ok(array.destroy_pod(group).await).map_err(ctx)?;
                    absent_ok(array.eradicate_pod(group).await).map_err(ctx)?;
                    return Ok(());
                }
                Ok(())
            }
            ReplicationType::Async => {
                for side in [ArraySide::Primary, ArraySide::Secondary] {
                    let name = self.name(side).await?;
                    let other = self.name(side.other()).await?;
                    let array = self.array(side).as_ref();
                    for pg in [group.to_owned(), format!("{other}:{group}")] {
                        let ctx = |e| at(e, name, format_args!("deleting protection group {pg}"));
                        let Some(found) = self.find_pg(array, &pg).await.map_err(ctx)? else {
                            continue;
                        };
                        if !found.destroyed {
                            absent_ok(array.destroy_protection_group(&pg).await).map_err(ctx)?;
                        }
                        absent_ok(array.eradicate_protection_group(&pg).await).map_err(ctx)?;
                    }
                }
                Ok(())
            }
        }
    }

    async fn replicate_now(
        &self,
        spec: &ReplicationGroupSpec,
        source: ArraySide,
        timeout: Duration,
    ) -> Result<ReplicaPoint, BackendError> {
        let src_name = self.name(source).await?;
        let tgt_name = self.name(source.other()).await?;
        let group = spec.name.as_str();
        if spec.replication_type == ReplicationType::Sync {
            let pod = self
                .find_pod(self.array(source).as_ref(), group)
                .await
                .map_err(|e| at(e, src_name, format_args!("reading pod {group}")))?
                .ok_or_else(|| {
                    BackendError::not_found(
                        Service::FlashArray,
                        format!("pod {group} does not exist on FlashArray {src_name}"),
                    )
                })?;
            for array in [&src_name, &tgt_name] {
                let status = pod
                    .arrays
                    .iter()
                    .find(|a| &a.name == array)
                    .map(|a| a.status.as_str())
                    .unwrap_or("not a member");
                if status != "online" {
                    return Err(BackendError::new(
                        BackendErrorKind::Transient,
                        Service::FlashArray,
                        format!("pod {group} is not online on FlashArray {array} ({status})"),
                    ));
                }
            }
            let now = self.clock.now();
            return Ok(ReplicaPoint {
                array: source.other(),
                name: group.to_owned(),
                created_at: now,
                completed_at: Some(now),
            });
        }

        let options = PgSnapshotOptions {
            suffix: None,
            replicate_now: true,
            apply_retention: self.options.apply_retention,
        };
        let snapshot = self
            .array(source)
            .create_pg_snapshot(group, &options)
            .await
            .map_err(|e| {
                at(
                    e,
                    src_name,
                    format_args!("snapshotting protection group {group}"),
                )
            })?;
        let replicated = format!("{src_name}:{}", snapshot.name);
        let transfer = self
            .poll_transfer(source.other(), group, &replicated, timeout)
            .await?;
        self.remember_landed(source.other(), &replicated);
        Ok(ReplicaPoint {
            array: source.other(),
            name: replicated,
            created_at: ms_to_utc(snapshot.created),
            completed_at: Some(
                transfer
                    .completed
                    .map(ms_to_utc)
                    .unwrap_or_else(|| self.clock.now()),
            ),
        })
    }

    async fn newest_replica(
        &self,
        spec: &ReplicationGroupSpec,
        source: ArraySide,
        volume: &str,
    ) -> Result<Option<VolumeReplica>, BackendError> {
        let src_name = self.name(source).await?;
        let target = source.other();
        let tgt_name = self.name(target).await?;
        let tgt = self.array(target).as_ref();
        let group = spec.name.as_str();

        if spec.replication_type == ReplicationType::Sync {
            let ctx = |e| {
                at(
                    e,
                    tgt_name,
                    format_args!("looking for volume {volume} in pod {group}"),
                )
            };
            let Some(pod) = self.find_pod(tgt, group).await.map_err(ctx)? else {
                return Ok(None);
            };
            if !pod
                .arrays
                .iter()
                .any(|a| a.name == tgt_name && a.status == "online")
            {
                return Ok(None);
            }
            let in_pod = Self::pod_volume_name(group, volume);
            return Ok(self
                .find_volume(tgt, &in_pod)
                .await
                .map_err(ctx)?
                .map(|_| VolumeReplica {
                    array: target,
                    source_volume: volume.to_owned(),
                    name: in_pod,
                    created_at: self.clock.now(),
                }));
        }

        let ctx = |e| {
            at(
                e,
                tgt_name,
                format_args!("looking for replicated snapshots of volume {volume}"),
            )
        };
        // The newest snapshots first, as few as usually settle it; all of them only when
        // none of those is usable (a transfer still landing).
        let newest = VolumeSnapshotQuery {
            source_names: vec![format!("{src_name}:{volume}")],
            destroyed: Some(false),
            order: SnapshotOrder::NewestFirst,
            limit: Some(NEWEST_REPLICA_PAGE),
            ..VolumeSnapshotQuery::default()
        };
        let Some(page) = absent_ok(tgt.list_volume_snapshots(&newest).await).map_err(ctx)? else {
            // An array that refuses a replicated name in `source_names`: walk the
            // group's landed snapshots instead, newest first.
            return self
                .newest_in_group(target, src_name, group, volume)
                .await
                .map_err(ctx);
        };
        let whole = page.len() < NEWEST_REPLICA_PAGE as usize;
        let mut asked: BTreeSet<String> = BTreeSet::new();
        let found = self
            .newest_landed(target, src_name, volume, page, &mut asked)
            .await
            .map_err(ctx)?;
        if found.is_some() || whole {
            return Ok(found);
        }
        let every = VolumeSnapshotQuery {
            order: SnapshotOrder::Name,
            limit: None,
            ..newest
        };
        let listed = absent_ok(tgt.list_volume_snapshots(&every).await)
            .map_err(ctx)?
            .unwrap_or_default();
        self.newest_landed(target, src_name, volume, listed, &mut asked)
            .await
            .map_err(ctx)
    }

    async fn promote(
        &self,
        replica: &VolumeReplica,
        new_name: &str,
    ) -> Result<PromotedVolume, BackendError> {
        let name = self.name(replica.array).await?;
        let array = self.array(replica.array).as_ref();
        let what = || {
            format!(
                "copying {} of volume {} to new volume {new_name}",
                replica.name, replica.source_volume
            )
        };
        let made = |v: ArrayVolume| PromotedVolume {
            array: replica.array,
            name: v.name,
            provisioned_bytes: v.provisioned,
        };
        // What the array may report as the copy's source: the snapshot itself or, for a
        // replicated snapshot, its source volume (`array-a:volume`).
        let made_from_replica = |source: &str| {
            source == replica.name
                || replica.name.split_once(':').is_some_and(|(prefix, _)| {
                    replicated_name(source, prefix) == Some(replica.source_volume.as_str())
                })
        };
        match array.copy_volume(new_name, &replica.name, false).await {
            Ok(v) => Ok(made(v)),
            Err(e) if is(&e, BackendErrorKind::Conflict) || e.applied == Applied::Maybe => {
                match self.find_volume(array, new_name).await.map_err(|e2| at(e2, name, what()))? {
                    Some(v) if !v.destroyed && v.source.as_ref().is_some_and(|s| made_from_replica(&s.name)) => {
                        Ok(made(v))
                    }
                    Some(v) => Err(BackendError::conflict(
                        Service::FlashArray,
                        format!(
                            "volume {new_name} already exists on FlashArray {name} and was not made from {} ({}); refusing to overwrite it",
                            replica.name,
                            match &v.source {
                                Some(s) => format!("its source is {}", s.name),
                                None => "it has no source".to_owned(),
                            }
                        ),
                    )
                    .with_status(e.status.unwrap_or(400))),
                    None => Err(at(e, name, what())),
                }
            }
            Err(e) if is(&e, BackendErrorKind::NotFound) => {
                let mut err = at(e, name, what());
                err.message = format!(
                    "replica {} of volume {} not found on FlashArray {name} ({})",
                    replica.name, replica.source_volume, err.message
                );
                Err(err)
            }
            Err(e) => Err(at(e, name, what())),
        }
    }

    async fn destroy_volume(&self, side: ArraySide, volume: &str) -> Result<(), BackendError> {
        let name = self.name(side).await?;
        let array = self.array(side).as_ref();
        let ctx = |e| at(e, name, format_args!("destroying volume {volume}"));
        match array.destroy_volume(volume).await {
            Ok(()) => {}
            // Already gone, or already destroyed and waiting for eradication.
            Err(e) if is(&e, BackendErrorKind::NotFound) => {}
            Err(e) if e.message.to_ascii_lowercase().contains("destroyed") => {}
            Err(e) => return Err(ctx(e)),
        }
        absent_ok(array.eradicate_volume(volume).await)
            .map(|_| ())
            .map_err(ctx)
    }

    async fn reverse_replication(
        &self,
        spec: &ReplicationGroupSpec,
        new_source: ArraySide,
        volumes: &[String],
    ) -> Result<(), BackendError> {
        if spec.replication_type == ReplicationType::Sync {
            self.ensure_pod(spec, new_source).await?;
            return self
                .move_into_pod(spec, new_source, volumes)
                .await
                .map(|_| ());
        }
        self.ensure_pg(spec, new_source).await?;
        self.set_pg_members(spec, new_source, volumes, true).await?;
        // Stop the old direction's schedule; its group and snapshots stay for failback.
        let old = new_source.other();
        let old_name = self.name(old).await?;
        let old_array = self.array(old).as_ref();
        let group = spec.name.as_str();
        let ctx = |e| {
            at(
                e,
                old_name,
                format_args!("disabling replication of protection group {group}"),
            )
        };
        if let Some(g) = self.find_pg(old_array, group).await.map_err(ctx)? {
            if g.is_local && !g.destroyed && g.replication_schedule.enabled {
                let schedule = ReplicationSchedule {
                    enabled: false,
                    ..g.replication_schedule
                };
                old_array
                    .set_replication_schedule(group, &schedule)
                    .await
                    .map_err(ctx)?;
            }
        }
        Ok(())
    }

    async fn health(
        &self,
        spec: &ReplicationGroupSpec,
        source: ArraySide,
    ) -> Result<LinkHealth, BackendError> {
        match spec.replication_type {
            ReplicationType::Sync => self.pod_health(spec, source).await,
            ReplicationType::Async => self.pg_health(spec, source).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_group_of_a_replicated_snapshot_ends_at_the_first_dot() {
        assert_eq!(group_of_snapshot("array-a:pg1.42"), "array-a:pg1");
        assert_eq!(group_of_snapshot("pg1.42"), "pg1");
        assert_eq!(group_of_snapshot("pg1"), "pg1");
    }

    #[test]
    fn errors_are_prefixed_with_the_array_and_the_action() {
        let e = at(
            BackendError::not_found(Service::FlashArray, "Volume does not exist."),
            "array-b",
            "destroying volume v1",
        );
        assert_eq!(
            e.message,
            "destroying volume v1 on FlashArray array-b: Volume does not exist."
        );
        assert_eq!(e.kind, BackendErrorKind::NotFound);
    }
}
