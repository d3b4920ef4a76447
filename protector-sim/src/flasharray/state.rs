//! The synchronous state machine of a fabric of simulated FlashArrays.
//!
//! [`ArrayFabricState`] holds N named arrays and the replication links between them
//! in `BTreeMap`s. Every operation takes the virtual time `now_ms` explicitly and first
//! advances the fabric to it: replication transfers progress, land on their targets,
//! target retention thins old snapshots and scheduled replication takes its snapshots,
//! all computed lazily from time in a fixed order, with no background task. The async
//! shell ([`super::SimFlashArray`]) is a thin layer over the methods here.
//!
//! # Model
//! - Names follow Purity: volumes `[A-Za-z0-9-]` up to 63 characters, pod members
//!   `pod::vol`, protection-group snapshots `<pg>.<n>` with member volume snapshots
//!   `<pg>.<n>.<vol>`; on a replication target, `<src>:<pg>`, `<src>:<pg>.<n>` and
//!   `<src>:<pg>.<n>.<vol>` whose source is `<src>:<vol>`.
//! - Errors are the array's 400s with its texts ("does not exist", "already exists",
//!   "already includes", "already allowed on", "has been destroyed", ...).
//! - A replicated-in group must be allowed on its target before snapshots flow to it
//!   (it starts disallowed). A transfer takes the fabric's transfer time of
//!   *flowing* time: it holds while the link is cut or either array is down, and hangs
//!   at [`STALLED_PROGRESS`] while replication on the link is stalled. Target
//!   retention is applied to a group's snapshots each time one lands.
//! - A stretched pod keeps its volumes identical on both arrays while the link is up
//!   and both arrays are up. When that breaks, each side keeps its own data from then
//!   on and sees the other as `offline` (`frozen_at` = the split). When it heals, the
//!   side holding more writes (the first array of the pod on a tie) resyncs the other.
//! - Every volume carries a write sequence, one write per [`super::MS_PER_WRITE`] of
//!   virtual time while it is being written; snapshots capture it, copies and pod
//!   replicas carry it. Taking an array down stops every write on it.
//!
//! # Caveats
//! - A local volume snapshot's source follows renames of its volume; its own name
//!   (`<pg>.<n>.<vol>`) keeps the volume name it was taken with.
//! - Scheduled replication only replicates; source-side retention is not modelled.

use std::cell::OnceCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

use protector_core::{BackendError, IdGenerator};
use protector_purestorage::{
    ArrayConnection, ArrayInfo, ArrayProtectionGroup, ArrayVolume, NameRef, PgSnapshot,
    PgSnapshotOptions, PgSnapshotQuery, PgSnapshotTransfer, Pod, PodArray, PromotionState,
    ProtectionGroupTarget, ReplicationSchedule, SnapshotOrder, TargetRetention, VolumeQuery,
    VolumeSnapshot, VolumeSnapshotQuery,
};

use super::data::Data;
use super::errors;
use crate::events::{push_i64, push_u64, LineLog};
use crate::hash::FixedHash;

/// Default time a replicated snapshot takes to land on its target (15 s, the
/// `realistic` latency profile's replicate-now figure).
pub const DEFAULT_TRANSFER_TIME_MS: i64 = 15_000;
/// Progress at which a transfer hangs while replication on its link is stalled.
pub const STALLED_PROGRESS: f64 = 0.5;
/// Purity version the simulated arrays report.
pub const PURITY_VERSION: &str = "6.5.4";
/// Shortest replication interval the simulated arrays accept.
pub const MIN_REPLICATION_FREQUENCY_MS: u64 = 1_000;
/// Connection type reported for every array connection (a synchronous connection also
/// carries asynchronous replication).
pub const CONNECTION_TYPE: &str = "sync-replication";

const DAY_MS: i64 = 86_400_000;
const MAX_NAME_LEN: usize = 63;

/// A uuid kept as its 16 bytes; [`Id::text`] gives the hyphenated lowercase text the
/// array reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Id([u8; 16]);

impl Id {
    /// The hyphenated lowercase text (`xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`).
    fn text(self) -> String {
        let mut buf = uuid::Uuid::encode_buffer();
        uuid::Uuid::from_bytes(self.0)
            .hyphenated()
            .encode_lower(&mut buf)
            .to_owned()
    }
}

#[derive(Clone, Debug)]
struct VolumeRecord {
    id: Id,
    /// The name, shared with the array's volume table.
    name: Arc<str>,
    /// The serial's bytes; [`serial_text`] gives the 24 hex digits the array reports.
    serial: [u8; SERIAL_BYTES],
    provisioned: u64,
    created: i64,
    destroyed: bool,
    /// The snapshot or volume copied, shared with that snapshot's or volume's name.
    source: Option<Arc<str>>,
    connection_count: u32,
    /// Set by the world while a server writes to this volume (this replica).
    writing: bool,
    data: Data,
}

/// What a volume snapshot holds of its own; the rest (name, creation, suffix, state,
/// size and write sequence) comes from its group snapshot and the volume it captured.
#[derive(Clone, Debug)]
struct MemberSnap {
    id: Id,
    /// The source name (a local snapshot's follows renames of its volume), shared with
    /// the array's source index.
    source: Arc<str>,
}

/// A volume snapshot, found in its group snapshot: member `i` of `pg`. Its name is
/// `<pg name>.<captured volume name>`.
#[derive(Clone, Copy, Debug)]
struct SnapRef<'a> {
    pg: &'a PgSnapRecord,
    i: usize,
}

impl<'a> SnapRef<'a> {
    fn volume(self) -> &'a CapturedVolume {
        &self.pg.volumes[self.i]
    }

    fn member(self) -> &'a MemberSnap {
        &self.pg.members[self.i]
    }

    /// The group snapshot's name and the captured volume's, which joined by `.` make
    /// this snapshot's name.
    fn key(self) -> (&'a str, &'a str) {
        (&self.pg.name, &self.volume().name)
    }

    fn name(self) -> String {
        let (pg, vol) = self.key();
        let mut name = String::with_capacity(pg.len() + 1 + vol.len());
        name.push_str(pg);
        name.push('.');
        name.push_str(vol);
        name
    }

    /// Id of the local volume captured (`None` for a replicated-in snapshot).
    fn source_id(self) -> Option<Id> {
        self.pg.transfer.is_none().then(|| self.volume().id)
    }

    fn same(self, other: Self) -> bool {
        std::ptr::eq(self.pg, other.pg) && self.i == other.i
    }
}

/// Orders two snapshot names given as `(group snapshot, volume)` pairs as their joined
/// texts `<group snapshot>.<volume>` order, without joining them.
fn cmp_joined(x: (&str, &str), y: (&str, &str)) -> std::cmp::Ordering {
    if x.0 == y.0 {
        return x.1.cmp(y.1);
    }
    joined_bytes(x).cmp(joined_bytes(y))
}

/// The bytes of `<pg>.<vol>`, without joining them.
fn joined_bytes<'a>((pg, vol): (&'a str, &'a str)) -> impl Iterator<Item = u8> + 'a {
    pg.bytes().chain(std::iter::once(b'.')).chain(vol.bytes())
}

/// Whether `<pg>.<vol>` starts with `prefix`.
fn joined_starts_with((pg, vol): (&str, &str), prefix: &str) -> bool {
    match prefix.strip_prefix(pg) {
        Some(rest) => rest.is_empty() || rest.strip_prefix('.').is_some_and(|r| vol.starts_with(r)),
        None => pg.starts_with(prefix),
    }
}

#[derive(Clone, Debug)]
struct GroupRecord {
    id: String,
    name: String,
    is_local: bool,
    source_array: String,
    destroyed: bool,
    schedule: ReplicationSchedule,
    next_due: Option<i64>,
    retention: TargetRetention,
    members: BTreeSet<String>,
    targets: BTreeSet<String>,
    /// Replicated-in groups only: whether this (target) array allows the group.
    allowed: bool,
}

#[derive(Clone, Debug)]
struct TransferInfo {
    started: i64,
    completed: i64,
    bytes: u64,
}

#[derive(Clone, Debug)]
struct PgSnapRecord {
    id: Id,
    /// The name, shared with the source index entries of its volume snapshots.
    name: Arc<str>,
    group: String,
    suffix: String,
    created: i64,
    destroyed: bool,
    /// The captured volumes, by name, shared with the transfers of the snapshot (and on
    /// a target with the snapshot it was replicated from).
    volumes: Arc<[CapturedVolume]>,
    /// Its volume snapshots, one per captured volume, in the same order.
    members: Box<[MemberSnap]>,
    /// Replicated-in snapshots: how the transfer went.
    transfer: Option<TransferInfo>,
    /// Positions of the captured volumes by name, built at the first lookup by name of
    /// a large snapshot (a binary search would compare names scattered over the heap).
    by_name: OnceCell<HashMap<Arc<str>, usize, FixedHash>>,
}

/// Captured volumes up to which a lookup by name binary-searches instead of building
/// the snapshot's name table.
const SEARCHED_VOLUMES: usize = 32;

#[derive(Debug)]
struct ArrayRecord {
    id: String,
    name: String,
    token: String,
    up: bool,
    volumes: VolumeTable,
    /// Volume snapshots by source name (looked up by key only, never iterated). The
    /// snapshots themselves live in their group snapshots.
    snaps_by_source: SourceIndex,
    groups: BTreeMap<String, GroupRecord>,
    pg_snapshots: BTreeMap<String, PgSnapRecord>,
    /// Last automatic suffix per group name; survives eradication so names never repeat.
    suffix_counters: BTreeMap<String, u64>,
}

/// An array's volumes: found by name through a hash table, listed by name through the
/// sorted list of names beside it (both share each name). The list is built when the
/// volumes are first listed after one came or went, so creating, copying and renaming
/// volumes never pays for keeping it in order.
#[derive(Debug, Default)]
struct VolumeTable {
    by_name: HashMap<Arc<str>, VolumeRecord, FixedHash>,
    /// Every name of `by_name`, sorted; empty until listed since the last change.
    names: OnceCell<Vec<Arc<str>>>,
}

impl VolumeTable {
    fn get(&self, name: &str) -> Option<&VolumeRecord> {
        self.by_name.get(name)
    }

    /// The volume named `name` with the table's copy of its name.
    fn get_shared(&self, name: &str) -> Option<(&Arc<str>, &VolumeRecord)> {
        self.by_name.get_key_value(name)
    }

    fn get_mut(&mut self, name: &str) -> Option<&mut VolumeRecord> {
        self.by_name.get_mut(name)
    }

    fn contains_key(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// Sets the volume of its name, returning the one it replaces.
    fn insert(&mut self, volume: VolumeRecord) -> Option<VolumeRecord> {
        if let Some(old) = self.by_name.get_mut(&*volume.name) {
            return Some(std::mem::replace(old, volume));
        }
        self.names.take();
        self.by_name.insert(Arc::clone(&volume.name), volume);
        None
    }

    fn remove(&mut self, name: &str) -> Option<VolumeRecord> {
        let volume = self.by_name.remove(name)?;
        self.names.take();
        Some(volume)
    }

    /// Every name, sorted (built now if a volume came or went since the last listing).
    fn sorted_names(&self) -> &[Arc<str>] {
        self.names.get_or_init(|| {
            let mut names: Vec<Arc<str>> = self.by_name.keys().cloned().collect();
            names.sort_unstable();
            names
        })
    }

    /// The volumes, by name.
    fn values(&self) -> impl Iterator<Item = &VolumeRecord> + '_ {
        self.sorted_names()
            .iter()
            .filter_map(|n| self.by_name.get(n))
    }

    /// The volumes in no particular order, for changes each volume takes alone.
    fn values_mut(&mut self) -> impl Iterator<Item = &mut VolumeRecord> + '_ {
        self.by_name.values_mut()
    }

    /// Names starting with `prefix`, by name.
    fn names_with_prefix(&self, prefix: &str) -> Vec<String> {
        let names = self.sorted_names();
        let from = names.partition_point(|k| **k < *prefix);
        names[from..]
            .iter()
            .take_while(|k| k.starts_with(prefix))
            .map(|k| k.to_string())
            .collect()
    }
}

/// The snapshots of each source name. Its keys are the one copy of each source name the
/// snapshots of that source share.
type SourceIndex = HashMap<Arc<str>, SourceSnaps, FixedHash>;

/// The snapshots of one source: their names, and the shared copy of the source name
/// (the index's key), kept here too so that one lookup by name finds both.
#[derive(Clone, Debug)]
struct SourceSnaps {
    source: Arc<str>,
    names: SortedNames,
}

/// A volume snapshot's name as its two shared parts: the group snapshot's name and the
/// captured volume's (the name is `<pg>.<vol>`).
#[derive(Clone, Debug)]
struct SnapKey {
    pg: Arc<str>,
    vol: Arc<str>,
    /// Position of the volume among the group snapshot's captured volumes.
    i: usize,
}

impl SnapKey {
    fn parts(&self) -> (&str, &str) {
        (&self.pg, &self.vol)
    }
}

/// A set of snapshot names kept as a list sorted by the joined names: the snapshots of
/// one source, a handful as a rule, so a list beats a tree (no node to allocate, no
/// pointer to follow).
#[derive(Clone, Debug, Default)]
struct SortedNames(Vec<SnapKey>);

impl SortedNames {
    /// Adds `name`; `false` if it was there already.
    fn insert(&mut self, name: SnapKey) -> bool {
        // Names mostly come in order: check the end first.
        if self
            .0
            .last()
            .is_none_or(|last| cmp_joined(last.parts(), name.parts()).is_lt())
        {
            self.0.push(name);
            return true;
        }
        match self
            .0
            .binary_search_by(|n| cmp_joined(n.parts(), name.parts()))
        {
            Ok(_) => false,
            Err(at) => {
                self.0.insert(at, name);
                true
            }
        }
    }

    /// Removes the name `<pg>.<vol>` given as `(pg, vol)`; `false` if it was not there.
    fn remove(&mut self, name: (&str, &str)) -> bool {
        match self.0.binary_search_by(|n| cmp_joined(n.parts(), name)) {
            Ok(at) => {
                self.0.remove(at);
                true
            }
            Err(_) => false,
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The names, in order.
    fn iter(&self) -> std::slice::Iter<'_, SnapKey> {
        self.0.iter()
    }
}

#[derive(Clone, Debug, Default)]
struct LinkRecord {
    cut: bool,
    stalled: bool,
}

#[derive(Clone, Debug)]
struct CapturedVolume {
    id: Id,
    /// The name, shared with the array's volume table.
    name: Arc<str>,
    provisioned: u64,
    seq: u64,
}

#[derive(Clone, Debug)]
struct Transfer {
    source_array: String,
    target_array: String,
    group: String,
    suffix: String,
    created: i64,
    started: i64,
    total_ms: i64,
    remaining_ms: i64,
    accounted_to: i64,
    bytes: u64,
    /// The captured volumes, shared by every transfer of one snapshot.
    volumes: Arc<[CapturedVolume]>,
}

impl Transfer {
    fn target_name(&self) -> String {
        format!("{}:{}.{}", self.source_array, self.group, self.suffix)
    }

    fn target_group(&self) -> String {
        format!("{}:{}", self.source_array, self.group)
    }

    fn progress(&self) -> f64 {
        if self.total_ms <= 0 {
            return 0.0;
        }
        let done = (self.total_ms - self.remaining_ms).max(0) as f64 / self.total_ms as f64;
        done.min(0.999)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    Held,
    Capped,
    Full,
}

#[derive(Clone, Debug)]
struct PodRecord {
    id: String,
    name: String,
    arrays: Vec<String>,
    promotion: PromotionState,
    destroyed: bool,
    /// Whether the replicas are in sync (always true for an unstretched pod).
    synced: bool,
    split_at: Option<i64>,
}

/// A volume's size, state and host connections, as [`ArrayFabricState::volume_summary`]
/// reads them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VolumeSummary {
    /// Provisioned size (bytes).
    pub provisioned: u64,
    /// Whether it is destroyed (soft-deleted).
    pub destroyed: bool,
    /// Number of host connections.
    pub connection_count: u32,
}

/// A replication transfer that has not landed yet, as seen by the world.
#[derive(Clone, Debug, PartialEq)]
pub struct PendingTransfer {
    /// Source array.
    pub source_array: String,
    /// Target array.
    pub target_array: String,
    /// Name the snapshot will have on the target (`<src>:<pg>.<n>`).
    pub name: String,
    /// Start (ms).
    pub started: i64,
    /// 0.0 … <1.0.
    pub progress: f64,
}

/// N simulated FlashArrays and the replication links between them, as a plain
/// synchronous state machine. See the module docs for the model.
#[derive(Debug)]
pub struct ArrayFabricState {
    ids: IdGenerator,
    now_ms: i64,
    transfer_time_ms: i64,
    arrays: BTreeMap<String, ArrayRecord>,
    links: BTreeMap<(String, String), LinkRecord>,
    pods: BTreeMap<u64, PodRecord>,
    next_pod: u64,
    transfers: BTreeMap<(String, String), Transfer>,
    /// No active schedule is due before this time (ms): a lower bound of their next due
    /// times, exact after every advance that had something to do.
    schedules_from: i64,
    events: LineLog,
}

impl ArrayRecord {
    /// Indexes the volume snapshot `key` under its source `source`, returning the
    /// array's shared copy of the source name (`new_source` makes one when the array has
    /// no snapshot of that source yet).
    fn index_snapshot(
        &mut self,
        source: &str,
        new_source: impl FnOnce() -> Arc<str>,
        key: SnapKey,
    ) -> Arc<str> {
        match self.snaps_by_source.get_mut(source) {
            Some(index) => {
                index.names.insert(key);
                Arc::clone(&index.source)
            }
            None => {
                let shared = new_source();
                let index = SourceSnaps {
                    source: Arc::clone(&shared),
                    names: SortedNames(vec![key]),
                };
                self.snaps_by_source.insert(Arc::clone(&shared), index);
                shared
            }
        }
    }

    /// Drops the volume snapshot `(pg, vol)` from the index of its source `source`.
    fn unindex_snapshot(&mut self, source: &str, key: (&str, &str)) {
        if let Some(index) = self.snaps_by_source.get_mut(source) {
            index.names.remove(key);
            if index.names.is_empty() {
                self.snaps_by_source.remove(source);
            }
        }
    }

    /// The volume snapshot named `name` (`<pg>.<n>.<vol>`), if there is one.
    fn snapshot(&self, name: &str) -> Option<SnapRef<'_>> {
        // Volume names hold no `.`: the last one ends the group snapshot's name.
        let (pg, vol) = name.rsplit_once('.')?;
        self.snapshot_at(pg, vol)
    }

    /// The snapshot a source index entry names, if its group snapshot is still there.
    fn indexed_snapshot(&self, key: &SnapKey) -> Option<SnapRef<'_>> {
        let pg = self.pg_snapshots.get(&*key.pg)?;
        debug_assert_eq!(pg.volumes.get(key.i).map(|c| &*c.name), Some(&*key.vol));
        (key.i < pg.members.len()).then_some(SnapRef { pg, i: key.i })
    }

    /// The snapshot of volume `vol` in group snapshot `pg`, if there is one.
    fn snapshot_at(&self, pg: &str, vol: &str) -> Option<SnapRef<'_>> {
        let pg = self.pg_snapshots.get(pg)?;
        let i = pg.member_index(vol)?;
        Some(SnapRef { pg, i })
    }
}

impl PgSnapRecord {
    /// Position of the captured volume `vol` (the captured volumes are sorted by name).
    fn member_index(&self, vol: &str) -> Option<usize> {
        if self.volumes.len() <= SEARCHED_VOLUMES {
            return self.volumes.binary_search_by(|c| (*c.name).cmp(vol)).ok();
        }
        self.by_name
            .get_or_init(|| {
                let mut by_name =
                    HashMap::with_capacity_and_hasher(self.volumes.len(), FixedHash::default());
                by_name.extend(
                    self.volumes
                        .iter()
                        .enumerate()
                        .map(|(i, c)| (Arc::clone(&c.name), i)),
                );
                by_name
            })
            .get(vol)
            .copied()
    }

    /// Its volume snapshots, by volume name.
    fn snaps(&self) -> impl Iterator<Item = SnapRef<'_>> + '_ {
        (0..self.members.len()).map(move |i| SnapRef { pg: self, i })
    }
}

fn link_key(a: &str, b: &str) -> (String, String) {
    if a <= b {
        (a.to_owned(), b.to_owned())
    } else {
        (b.to_owned(), a.to_owned())
    }
}

/// The link between `a` and `b`, found without building its key (a fabric has a link
/// per connected pair of arrays, a handful).
fn link_between<'m>(
    links: &'m BTreeMap<(String, String), LinkRecord>,
    a: &str,
    b: &str,
) -> Option<&'m LinkRecord> {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    links
        .iter()
        .find(|((x, y), _)| x == lo && y == hi)
        .map(|(_, l)| l)
}

/// How a transfer flows over its link now.
fn flow_of(
    links: &BTreeMap<(String, String), LinkRecord>,
    arrays: &BTreeMap<String, ArrayRecord>,
    tr: &Transfer,
) -> Flow {
    let up = |name: &str| arrays.get(name).is_some_and(|a| a.up);
    match link_between(links, &tr.source_array, &tr.target_array) {
        Some(l) if !l.cut && up(&tr.source_array) && up(&tr.target_array) => {
            if l.stalled {
                Flow::Capped
            } else {
                Flow::Full
            }
        }
        _ => Flow::Held,
    }
}

/// The bytes of an object name: ASCII letters, digits and `-`.
const NAME_BYTE: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || c == b'-';
        b += 1;
    }
    t
};

fn valid_object_name(name: &str) -> bool {
    // Checked byte by byte: a byte of a non-ASCII character is never ASCII either.
    let b = name.as_bytes();
    b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.len() <= MAX_NAME_LEN
        && b.iter().all(|c| NAME_BYTE[usize::from(*c)])
}

/// `name.split_once("::")`, without the general substring search.
pub(crate) fn split_pod(name: &str) -> Option<(&str, &str)> {
    let mut from = 0;
    while let Some(at) = name[from..].find(':') {
        let i = from + at;
        if name.as_bytes().get(i + 1) == Some(&b':') {
            return Some((&name[..i], &name[i + 2..]));
        }
        from = i + 1;
    }
    None
}

/// What follows the last `::` of `name` (all of it without one), as
/// `name.rsplit("::").next()` gives it.
pub(crate) fn after_pod(name: &str) -> &str {
    let mut to = name.len();
    while let Some(i) = name[..to].rfind(':') {
        if i > 0 && name.as_bytes()[i - 1] == b':' {
            return &name[i + 1..];
        }
        to = i;
    }
    name
}

fn valid_volume_name(name: &str) -> bool {
    match split_pod(name) {
        Some((pod, vol)) => valid_object_name(pod) && valid_object_name(vol),
        None => valid_object_name(name),
    }
}

fn pod_of(name: &str) -> Option<&str> {
    split_pod(name).map(|(pod, _)| pod)
}

fn pod_prefix(pod: &str) -> String {
    format!("{pod}::")
}

/// Bytes of a volume serial (24 hex digits).
const SERIAL_BYTES: usize = 12;

/// The serial as the array reports it: its bytes in uppercase hex.
fn serial_text(serial: &[u8; SERIAL_BYTES]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut text = String::with_capacity(2 * SERIAL_BYTES);
    for b in serial {
        text.push(char::from(HEX[usize::from(b >> 4)]));
        text.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    text
}

fn volume_view(v: &VolumeRecord) -> ArrayVolume {
    ArrayVolume {
        id: v.id.text(),
        name: v.name.to_string(),
        serial: serial_text(&v.serial),
        provisioned: v.provisioned,
        created: v.created,
        destroyed: v.destroyed,
        connection_count: v.connection_count,
        pod: pod_of(&v.name).map(|p| NameRef { name: p.to_owned() }),
        source: v.source.as_deref().map(|name| NameRef {
            name: name.to_owned(),
        }),
    }
}

fn snap_view(s: SnapRef<'_>) -> VolumeSnapshot {
    VolumeSnapshot {
        id: s.member().id.text(),
        name: s.name(),
        source: NameRef {
            name: s.member().source.to_string(),
        },
        created: s.pg.created,
        provisioned: s.volume().provisioned,
        destroyed: s.pg.destroyed,
        suffix: s.pg.suffix.clone(),
    }
}

fn pg_snap_view(s: &PgSnapRecord) -> PgSnapshot {
    PgSnapshot {
        id: s.id.text(),
        name: s.name.to_string(),
        source: NameRef {
            name: s.group.clone(),
        },
        suffix: s.suffix.clone(),
        created: s.created,
        destroyed: s.destroyed,
    }
}

fn group_view(g: &GroupRecord) -> ArrayProtectionGroup {
    ArrayProtectionGroup {
        id: g.id.clone(),
        name: g.name.clone(),
        is_local: g.is_local,
        source: NameRef {
            name: g.source_array.clone(),
        },
        destroyed: g.destroyed,
        replication_schedule: g.schedule.clone(),
        target_retention: g.retention.clone(),
        target_count: u32::try_from(g.targets.len()).unwrap_or(u32::MAX),
        volume_count: u32::try_from(g.members.len()).unwrap_or(u32::MAX),
    }
}

fn default_schedule() -> ReplicationSchedule {
    ReplicationSchedule {
        enabled: false,
        frequency_ms: 3_600_000,
    }
}

impl ArrayFabricState {
    /// An empty fabric whose ids come from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            ids: IdGenerator::seeded(seed),
            now_ms: 0,
            transfer_time_ms: DEFAULT_TRANSFER_TIME_MS,
            arrays: BTreeMap::new(),
            links: BTreeMap::new(),
            pods: BTreeMap::new(),
            next_pod: 0,
            transfers: BTreeMap::new(),
            schedules_from: i64::MAX,
            events: LineLog::default(),
        }
    }

    // ----------------------------------------------------------------------------
    // Fabric administration (used by the world, not part of the array's API)
    // ----------------------------------------------------------------------------

    /// The time the fabric has been advanced to (ms).
    pub fn now_ms(&self) -> i64 {
        self.now_ms
    }

    /// How long a replicated snapshot takes to land (flowing time, ms).
    pub fn transfer_time_ms(&self) -> i64 {
        self.transfer_time_ms
    }

    /// Sets the time later transfers take to land; transfers already running keep
    /// theirs.
    pub fn set_transfer_time_ms(&mut self, transfer_time_ms: i64, now_ms: i64) {
        self.advance_to(now_ms);
        self.transfer_time_ms = transfer_time_ms.max(0);
        let ms = self.transfer_time_ms;
        self.log("fabric", format_args!("set_transfer_time {ms}"));
    }

    /// Every state change so far, in order, one line each (for digests).
    pub fn events(&self) -> Vec<String> {
        self.event_lines().map(str::to_owned).collect()
    }

    /// [`Self::events`] without copying them.
    pub fn event_lines(&self) -> impl Iterator<Item = &str> + '_ {
        self.events.iter()
    }

    /// How many events [`Self::events`] holds.
    pub fn event_count(&self) -> usize {
        self.events.len()
    }

    /// Adds an array named `name` that accepts `api_token`.
    ///
    /// # Errors
    /// "already exists" if the name is taken; invalid if it is not a Purity name.
    pub fn add_array(
        &mut self,
        name: &str,
        api_token: &str,
        now_ms: i64,
    ) -> Result<ArrayInfo, BackendError> {
        self.advance_to(now_ms);
        if !valid_object_name(name) {
            return Err(errors::invalid(name, "Invalid array name."));
        }
        if self.arrays.contains_key(name) {
            return Err(errors::already_exists("Array", name));
        }
        let id = self.new_id();
        self.arrays.insert(
            name.to_owned(),
            ArrayRecord {
                id,
                name: name.to_owned(),
                token: api_token.to_owned(),
                up: true,
                volumes: VolumeTable::default(),
                snaps_by_source: SourceIndex::default(),
                groups: BTreeMap::new(),
                pg_snapshots: BTreeMap::new(),
                suffix_counters: BTreeMap::new(),
            },
        );
        self.log(name, "add_array");
        self.array_info(name, now_ms)
    }

    /// Names of every array, in order.
    pub fn array_names(&self) -> Vec<String> {
        self.arrays.keys().cloned().collect()
    }

    /// Replaces the API token an array accepts; clients holding the old one get 401.
    ///
    /// # Errors
    /// Unknown array.
    pub fn set_api_token(
        &mut self,
        array: &str,
        api_token: &str,
        now_ms: i64,
    ) -> Result<(), BackendError> {
        self.advance_to(now_ms);
        self.arr_mut(array)?.token = api_token.to_owned();
        self.log(array, "set_api_token");
        Ok(())
    }

    /// Whether `api_token` is the token `array` accepts.
    pub fn token_matches(&self, array: &str, api_token: &str) -> bool {
        self.arrays.get(array).is_some_and(|a| a.token == api_token)
    }

    /// What an API call to `array` with `api_token` meets before it is applied: an
    /// unknown or down array refuses the connection, a wrong token is a 401.
    ///
    /// # Errors
    /// Unreachable (transient, not applied) or auth.
    pub fn check_call(&self, array: &str, api_token: &str) -> Result<(), BackendError> {
        let a = self.arr(array)?;
        if !a.up {
            return Err(errors::unreachable(array));
        }
        if a.token != api_token {
            return Err(errors::bad_token(array));
        }
        Ok(())
    }

    /// Connects two arrays both ways (a connection that carries sync and async
    /// replication).
    ///
    /// # Errors
    /// Unknown array, an array connected to itself, or "already exists".
    pub fn connect(&mut self, a: &str, b: &str, now_ms: i64) -> Result<(), BackendError> {
        self.advance_to(now_ms);
        self.arr(a)?;
        self.arr(b)?;
        if a == b {
            return Err(errors::invalid(a, "An array cannot connect to itself."));
        }
        let key = link_key(a, b);
        if self.links.contains_key(&key) {
            return Err(errors::already_exists("Array connection", b));
        }
        self.links.insert(key, LinkRecord::default());
        self.log(a, format_args!("connect {b}"));
        self.reconcile_pods();
        Ok(())
    }

    // ----------------------------------------------------------------------------
    // Faults
    // ----------------------------------------------------------------------------

    /// Takes an array down: every call to it is refused, its transfers hold, its
    /// stretched pods split, and every write to its volumes stops.
    ///
    /// # Errors
    /// Unknown array.
    pub fn take_array_down(&mut self, name: &str, now_ms: i64) -> Result<(), BackendError> {
        self.advance_to(now_ms);
        let t = self.now_ms;
        let a = self.arr_mut(name)?;
        a.up = false;
        for v in a.volumes.values_mut() {
            v.writing = false;
            v.data.checkpoint(t, false);
        }
        self.log(name, "take_array_down");
        self.reconcile_pods();
        Ok(())
    }

    /// Brings an array back up; its transfers resume and its pods resync.
    ///
    /// # Errors
    /// Unknown array.
    pub fn bring_array_up(&mut self, name: &str, now_ms: i64) -> Result<(), BackendError> {
        self.advance_to(now_ms);
        self.arr_mut(name)?.up = true;
        self.log(name, "bring_array_up");
        self.reconcile_pods();
        self.settle();
        Ok(())
    }

    /// Whether an array is up.
    pub fn is_array_up(&self, name: &str) -> bool {
        self.arrays.get(name).is_some_and(|a| a.up)
    }

    /// Cuts the replication link between two arrays: transfers hold, pods split.
    ///
    /// # Errors
    /// The arrays are not connected.
    pub fn cut_link(&mut self, a: &str, b: &str, now_ms: i64) -> Result<(), BackendError> {
        self.advance_to(now_ms);
        self.link_mut(a, b)?.cut = true;
        self.log(a, format_args!("cut_link {b}"));
        self.reconcile_pods();
        Ok(())
    }

    /// Repairs a cut link: transfers resume for their remaining time, pods resync.
    ///
    /// # Errors
    /// The arrays are not connected.
    pub fn repair_link(&mut self, a: &str, b: &str, now_ms: i64) -> Result<(), BackendError> {
        self.advance_to(now_ms);
        self.link_mut(a, b)?.cut = false;
        self.log(a, format_args!("repair_link {b}"));
        self.reconcile_pods();
        self.settle();
        Ok(())
    }

    /// Whether the link between two arrays is up (connected and not cut).
    pub fn is_link_up(&self, a: &str, b: &str) -> bool {
        link_between(&self.links, a, b).is_some_and(|l| !l.cut)
    }

    /// Stalls replication on a link: transfers progress to [`STALLED_PROGRESS`] and
    /// hang there until released.
    ///
    /// # Errors
    /// The arrays are not connected.
    pub fn stall_replication(&mut self, a: &str, b: &str, now_ms: i64) -> Result<(), BackendError> {
        self.advance_to(now_ms);
        self.link_mut(a, b)?.stalled = true;
        self.log(a, format_args!("stall_replication {b}"));
        Ok(())
    }

    /// Releases stalled replication on a link.
    ///
    /// # Errors
    /// The arrays are not connected.
    pub fn release_replication(
        &mut self,
        a: &str,
        b: &str,
        now_ms: i64,
    ) -> Result<(), BackendError> {
        self.advance_to(now_ms);
        self.link_mut(a, b)?.stalled = false;
        self.log(a, format_args!("release_replication {b}"));
        self.settle();
        Ok(())
    }

    // ----------------------------------------------------------------------------
    // Data
    // ----------------------------------------------------------------------------

    /// Marks a volume as being written (a server using it is running) or not. In an
    /// in-sync stretched pod the writes reach every replica.
    ///
    /// # Errors
    /// Unknown array or volume; a destroyed volume; a down array.
    pub fn set_writing(
        &mut self,
        array: &str,
        volume: &str,
        writing: bool,
        now_ms: i64,
    ) -> Result<(), BackendError> {
        self.advance_to(now_ms);
        let t = self.now_ms;
        let pod = self.synced_pod_key(array, volume);
        let a = self.arr_mut(array)?;
        if writing && !a.up {
            return Err(errors::unreachable(array));
        }
        let v = a
            .volumes
            .get_mut(volume)
            .ok_or_else(|| errors::does_not_exist("Volume", volume))?;
        if writing && v.destroyed {
            return Err(errors::destroyed("Volume", volume));
        }
        v.writing = writing;
        match pod {
            Some(key) => self.mirror_pod_volumes(key, array, &[volume.to_owned()]),
            None => v.data.checkpoint(t, writing),
        }
        self.log_with(array, |s| {
            s.push_str("set_writing ");
            s.push_str(volume);
            s.push_str(if writing { " true" } else { " false" });
        });
        Ok(())
    }

    /// The write sequence of a volume at `now_ms`.
    ///
    /// # Errors
    /// Unknown array or volume.
    pub fn write_seq(
        &mut self,
        array: &str,
        volume: &str,
        now_ms: i64,
    ) -> Result<u64, BackendError> {
        self.advance_to(now_ms);
        let t = self.now_ms;
        self.vol(array, volume).map(|v| v.data.seq(t))
    }

    /// The write sequence a volume snapshot captured.
    ///
    /// # Errors
    /// Unknown array or snapshot (a snapshot still in transfer does not exist yet).
    pub fn snapshot_write_seq(
        &mut self,
        array: &str,
        snapshot: &str,
        now_ms: i64,
    ) -> Result<u64, BackendError> {
        self.advance_to(now_ms);
        self.arr(array)?
            .snapshot(snapshot)
            .map(|s| s.volume().seq)
            .ok_or_else(|| errors::does_not_exist("Volume snapshot", snapshot))
    }

    /// Sets the number of host connections of a volume (the world's attachments);
    /// a connected volume cannot be destroyed.
    ///
    /// # Errors
    /// Unknown array or volume.
    pub fn set_connection_count(
        &mut self,
        array: &str,
        volume: &str,
        count: u32,
        now_ms: i64,
    ) -> Result<(), BackendError> {
        self.advance_to(now_ms);
        let v = self.vol_mut(array, volume)?;
        v.connection_count = count;
        self.log_with(array, |s| {
            s.push_str("set_connection_count ");
            s.push_str(volume);
            s.push(' ');
            push_u64(s, u64::from(count));
        });
        Ok(())
    }

    /// Whether `array` holds a volume named `name`, destroyed or not (`false` for an
    /// unknown array); the same answer as a `list_volumes` by that name succeeding.
    pub fn has_volume(&self, array: &str, name: &str) -> bool {
        self.arrays
            .get(array)
            .is_some_and(|a| a.volumes.contains_key(name))
    }

    /// Names of the pods `array` is a member of, by name (those `list_pods` lists).
    pub fn pod_names(&self, array: &str) -> Vec<&str> {
        let names: BTreeSet<&str> = self
            .pods
            .values()
            .filter(|p| p.arrays.iter().any(|a| a == array))
            .map(|p| p.name.as_str())
            .collect();
        names.into_iter().collect()
    }

    /// Every volume of every array, by array then name (no reachability check).
    pub fn all_volumes(&mut self, now_ms: i64) -> Vec<(String, ArrayVolume)> {
        self.advance_to(now_ms);
        self.arrays
            .values()
            .flat_map(|a| a.volumes.values().map(|v| (a.name.clone(), volume_view(v))))
            .collect()
    }

    /// Transfers that have not landed yet, by target then name.
    pub fn pending_transfers(&mut self, now_ms: i64) -> Vec<PendingTransfer> {
        self.advance_to(now_ms);
        self.transfers
            .values()
            .map(|tr| PendingTransfer {
                source_array: tr.source_array.clone(),
                target_array: tr.target_array.clone(),
                name: tr.target_name(),
                started: tr.started,
                progress: tr.progress(),
            })
            .collect()
    }

    // ----------------------------------------------------------------------------
    // The array's API: arrays and volumes
    // ----------------------------------------------------------------------------

    /// `GET /arrays`.
    ///
    /// # Errors
    /// Unknown array.
    pub fn array_info(&mut self, array: &str, now_ms: i64) -> Result<ArrayInfo, BackendError> {
        self.advance_to(now_ms);
        let a = self.arr(array)?;
        Ok(ArrayInfo {
            id: a.id.clone(),
            name: a.name.clone(),
            version: PURITY_VERSION.to_owned(),
        })
    }

    /// `GET /volumes`: volumes matching the query, by name. Every name asked for must
    /// exist.
    ///
    /// # Errors
    /// "does not exist" for a missing name.
    pub fn list_volumes(
        &mut self,
        array: &str,
        query: &VolumeQuery,
        now_ms: i64,
    ) -> Result<Vec<ArrayVolume>, BackendError> {
        self.advance_to(now_ms);
        let a = self.arr(array)?;
        let candidates: Vec<&VolumeRecord> = if !query.names.is_empty() {
            let mut found = Vec::with_capacity(query.names.len());
            for name in &query.names {
                let v = a
                    .volumes
                    .get(name)
                    .ok_or_else(|| errors::does_not_exist("Volume", name))?;
                found.push(v);
            }
            found.sort_by(|x, y| x.name.cmp(&y.name));
            found.dedup_by(|x, y| x.name == y.name);
            found
        } else if let Some(pod) = &query.pod {
            let prefix = pod_prefix(pod);
            a.volumes
                .names_with_prefix(&prefix)
                .iter()
                .filter_map(|n| a.volumes.get(n))
                .collect()
        } else {
            a.volumes.values().collect()
        };
        Ok(candidates
            .into_iter()
            .filter(|v| query.destroyed.is_none_or(|d| v.destroyed == d))
            .filter(|v| {
                query
                    .pod
                    .as_deref()
                    .is_none_or(|p| pod_of(&v.name) == Some(p))
            })
            .map(volume_view)
            .collect())
    }

    /// What `list_volumes` by the one name `name` tells of that volume, without its
    /// texts: its size, whether it is destroyed and its host connections.
    ///
    /// # Errors
    /// Unknown array; "does not exist" for a missing name.
    pub fn volume_summary(
        &mut self,
        array: &str,
        name: &str,
        now_ms: i64,
    ) -> Result<VolumeSummary, BackendError> {
        self.advance_to(now_ms);
        let v = self.vol(array, name)?;
        Ok(VolumeSummary {
            provisioned: v.provisioned,
            destroyed: v.destroyed,
            connection_count: v.connection_count,
        })
    }

    /// `POST /volumes`: creates an empty volume (in a pod when named `pod::vol`).
    ///
    /// # Errors
    /// Bad name or size; "already exists"; the pod "does not exist".
    pub fn create_volume(
        &mut self,
        array: &str,
        name: &str,
        provisioned: u64,
        now_ms: i64,
    ) -> Result<ArrayVolume, BackendError> {
        self.advance_to(now_ms);
        self.check_new_volume_name(array, name)?;
        check_size(name, provisioned)?;
        let record = self.new_volume_record(name, provisioned, None, Data::default());
        let view = volume_view(&record);
        self.arr_mut(array)?.volumes.insert(record);
        self.log_with(array, |s| {
            s.push_str("create_volume ");
            s.push_str(name);
            s.push(' ');
            push_u64(s, provisioned);
        });
        self.after_pod_volume_change(array, &[name]);
        Ok(view)
    }

    /// `POST /volumes` with a source: copies a snapshot or volume into `name`,
    /// carrying its data. An existing `name` is overwritten (keeping its id and serial)
    /// only with `overwrite`.
    ///
    /// # Errors
    /// The source "does not exist" or "has been destroyed"; "already exists" without
    /// `overwrite`; the target "has been destroyed".
    pub fn copy_volume(
        &mut self,
        array: &str,
        name: &str,
        source: &str,
        overwrite: bool,
        now_ms: i64,
    ) -> Result<ArrayVolume, BackendError> {
        self.advance_to(now_ms);
        let t = self.now_ms;
        let a = self.arr(array)?;
        let (seq, provisioned, shared_source) = if let Some(s) = a.snapshot(source) {
            if s.pg.destroyed {
                return Err(errors::destroyed("Volume snapshot", source));
            }
            (s.volume().seq, s.volume().provisioned, Arc::from(source))
        } else if let Some((shared, v)) = a.volumes.get_shared(source) {
            if v.destroyed {
                return Err(errors::destroyed("Volume", source));
            }
            (v.data.seq(t), v.provisioned, Arc::clone(shared))
        } else {
            return Err(errors::does_not_exist("Volume or snapshot", source));
        };
        let view = match a.volumes.get(name) {
            Some(existing) => {
                if !overwrite {
                    return Err(errors::already_exists("Volume", name));
                }
                if existing.destroyed {
                    return Err(errors::destroyed("Volume", name));
                }
                let v = self.vol_mut(array, name)?;
                v.provisioned = provisioned;
                v.source = Some(shared_source);
                v.data = Data::at_seq(seq);
                if v.writing {
                    v.data.checkpoint(t, true);
                }
                volume_view(v)
            }
            None => {
                self.check_new_volume_name(array, name)?;
                let record = self.new_volume_record(
                    name,
                    provisioned,
                    Some(shared_source),
                    Data::at_seq(seq),
                );
                let view = volume_view(&record);
                self.arr_mut(array)?.volumes.insert(record);
                view
            }
        };
        self.log_with(array, |s| {
            s.push_str("copy_volume ");
            s.push_str(name);
            s.push_str(" from ");
            s.push_str(source);
            s.push_str(if overwrite {
                " overwrite=true seq="
            } else {
                " overwrite=false seq="
            });
            push_u64(s, seq);
        });
        self.after_pod_volume_change(array, &[name]);
        Ok(view)
    }

    /// `PATCH /volumes {"name"}`: renames a volume, keeping its data, snapshots and
    /// group memberships. A pod member keeps its pod prefix.
    ///
    /// # Errors
    /// "does not exist", "has been destroyed", "already exists", a bad name or a
    /// changed pod prefix.
    pub fn rename_volume(
        &mut self,
        array: &str,
        name: &str,
        new_name: &str,
        now_ms: i64,
    ) -> Result<ArrayVolume, BackendError> {
        self.rename_volume_with(array, name, new_name, now_ms, volume_view)
    }

    /// [`Self::rename_volume`] for a caller that does not read the renamed volume.
    ///
    /// # Errors
    /// As [`Self::rename_volume`].
    pub fn rename_volume_only(
        &mut self,
        array: &str,
        name: &str,
        new_name: &str,
        now_ms: i64,
    ) -> Result<(), BackendError> {
        self.rename_volume_with(array, name, new_name, now_ms, |_| ())
    }

    /// Renames a volume and returns what `view` makes of it once renamed.
    fn rename_volume_with<T>(
        &mut self,
        array: &str,
        name: &str,
        new_name: &str,
        now_ms: i64,
        view: impl FnOnce(&VolumeRecord) -> T,
    ) -> Result<T, BackendError> {
        self.advance_to(now_ms);
        let a = self.arr(array)?;
        let v = a
            .volumes
            .get(name)
            .ok_or_else(|| errors::does_not_exist("Volume", name))?;
        if v.destroyed {
            return Err(errors::destroyed("Volume", name));
        }
        if !valid_volume_name(new_name) {
            return Err(errors::invalid(new_name, "Invalid volume name."));
        }
        if pod_of(name) != pod_of(new_name) {
            return Err(errors::invalid(
                new_name,
                "A rename cannot move a volume between pods; set its pod instead.",
            ));
        }
        if a.volumes.contains_key(new_name) {
            return Err(errors::already_exists("Volume", new_name));
        }
        let view = view(self.rekey_volume(array, name, new_name)?);
        self.log_with(array, |s| {
            s.push_str("rename_volume ");
            s.push_str(name);
            s.push(' ');
            s.push_str(new_name);
        });
        self.after_pod_volume_change(array, &[name, new_name]);
        Ok(view)
    }

    /// `PATCH /volumes {"destroyed": true}`: soft-deletes a volume.
    ///
    /// # Errors
    /// "does not exist", "has been destroyed", or "cannot be deleted due to existing
    /// connections".
    pub fn destroy_volume(
        &mut self,
        array: &str,
        name: &str,
        now_ms: i64,
    ) -> Result<(), BackendError> {
        self.advance_to(now_ms);
        let t = self.now_ms;
        let v = self.vol_mut(array, name)?;
        if v.destroyed {
            return Err(errors::destroyed("Volume", name));
        }
        if v.connection_count > 0 {
            return Err(errors::conflict(
                name,
                "Volume cannot be deleted due to existing connections.",
            ));
        }
        v.destroyed = true;
        v.writing = false;
        v.data.checkpoint(t, false);
        self.log_with(array, |s| {
            s.push_str("destroy_volume ");
            s.push_str(name);
        });
        self.after_pod_volume_change(array, &[name]);
        Ok(())
    }

    /// `DELETE /volumes`: eradicates a destroyed volume (and drops it from its groups).
    ///
    /// # Errors
    /// "does not exist"; refused when the volume was not destroyed first.
    pub fn eradicate_volume(
        &mut self,
        array: &str,
        name: &str,
        now_ms: i64,
    ) -> Result<(), BackendError> {
        self.advance_to(now_ms);
        let v = self.vol(array, name)?;
        if !v.destroyed {
            return Err(errors::not_destroyed("Volume", name));
        }
        self.remove_volume(array, name);
        self.log(array, format_args!("eradicate_volume {name}"));
        self.after_pod_volume_change(array, &[name]);
        Ok(())
    }

    /// `PATCH /volumes {"pod"}`: moves a volume into a pod (`pod::vol`) or out of an
    /// unstretched one.
    ///
    /// # Errors
    /// "does not exist", "has been destroyed", "already belongs to", "already exists",
    /// or moving out of a stretched pod.
    pub fn move_volume(
        &mut self,
        array: &str,
        name: &str,
        pod: Option<&str>,
        now_ms: i64,
    ) -> Result<ArrayVolume, BackendError> {
        self.advance_to(now_ms);
        let a = self.arr(array)?;
        let v = a
            .volumes
            .get(name)
            .ok_or_else(|| errors::does_not_exist("Volume", name))?;
        if v.destroyed {
            return Err(errors::destroyed("Volume", name));
        }
        let new_name = match (pod_of(name), pod) {
            (Some(current), Some(p)) => {
                return Err(errors::conflict(
                    name,
                    &format!(
                        "Volume already belongs to pod {current}; move it out before moving it to {p}."
                    ),
                ));
            }
            (None, None) => {
                return Err(errors::invalid(name, "Volume is not in a pod."));
            }
            (None, Some(p)) => {
                let key = self
                    .pod_key(array, p)
                    .ok_or_else(|| errors::does_not_exist("Pod", p))?;
                if self.pods.get(&key).is_some_and(|r| r.destroyed) {
                    return Err(errors::destroyed("Pod", p));
                }
                format!("{p}::{name}")
            }
            (Some(current), None) => {
                let key = self
                    .pod_key(array, current)
                    .ok_or_else(|| errors::does_not_exist("Pod", current))?;
                if self.pods.get(&key).is_some_and(|r| r.arrays.len() > 1) {
                    return Err(errors::invalid(
                        name,
                        "Cannot move a volume out of a stretched pod.",
                    ));
                }
                split_pod(name)
                    .map(|(_, v)| v.to_owned())
                    .unwrap_or_default()
            }
        };
        if self.arr(array)?.volumes.contains_key(&new_name) {
            return Err(errors::already_exists("Volume", &new_name));
        }
        let view = volume_view(self.rekey_volume(array, name, &new_name)?);
        self.log(array, format_args!("move_volume {name} {new_name}"));
        self.after_pod_volume_change(array, &[name, &new_name]);
        Ok(view)
    }

    /// `GET /volume-snapshots`: snapshots matching the query, by name or newest first as
    /// the query orders them, the first `limit` only when it has one. Every name asked
    /// for must exist; snapshots still in transfer do not exist yet.
    ///
    /// # Errors
    /// "does not exist" for a missing name.
    pub fn list_volume_snapshots(
        &mut self,
        array: &str,
        query: &VolumeSnapshotQuery,
        now_ms: i64,
    ) -> Result<Vec<VolumeSnapshot>, BackendError> {
        self.advance_to(now_ms);
        let a = self.arr(array)?;
        let selected = |s: &SnapRef<'_>| {
            (query.source_names.is_empty()
                || query.source_names.iter().any(|n| **n == *s.member().source))
                && query
                    .name_prefix
                    .as_deref()
                    .is_none_or(|p| joined_starts_with(s.key(), p))
                && query.destroyed.is_none_or(|d| s.pg.destroyed == d)
        };
        // The snapshots to list, by name, each once.
        let mut picked: Vec<SnapRef<'_>> = Vec::new();
        if let ([], [source]) = (query.names.as_slice(), query.source_names.as_slice()) {
            // One source's set is already by name, each once.
            if let Some(index) = a.snaps_by_source.get(source.as_str()) {
                picked.extend(
                    index
                        .names
                        .iter()
                        .filter_map(|k| a.indexed_snapshot(k))
                        .filter(|s| selected(s)),
                );
            }
        } else {
            if !query.names.is_empty() {
                for n in &query.names {
                    let s = a
                        .snapshot(n)
                        .ok_or_else(|| errors::does_not_exist("Volume snapshot", n))?;
                    picked.push(s);
                }
            } else if !query.source_names.is_empty() {
                for src in &query.source_names {
                    if let Some(index) = a.snaps_by_source.get(src.as_str()) {
                        picked.extend(index.names.iter().filter_map(|k| a.indexed_snapshot(k)));
                    }
                }
            } else {
                picked.extend(a.pg_snapshots.values().flat_map(PgSnapRecord::snaps));
            }
            picked.sort_unstable_by(|x, y| cmp_joined(x.key(), y.key()));
            picked.dedup_by(|x, y| x.same(*y));
            picked.retain(|s| selected(s));
        }
        match query.order {
            SnapshotOrder::Name => {}
            SnapshotOrder::NewestFirst => picked.sort_unstable_by(|x, y| {
                y.pg.created
                    .cmp(&x.pg.created)
                    .then_with(|| cmp_joined(y.key(), x.key()))
            }),
        }
        if let Some(limit) = query.limit {
            picked.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        }
        Ok(picked.into_iter().map(snap_view).collect())
    }

    // ----------------------------------------------------------------------------
    // The array's API: protection groups
    // ----------------------------------------------------------------------------

    /// `GET /protection-groups`: by name, or all when `names` is empty.
    ///
    /// # Errors
    /// "does not exist" for a missing name.
    pub fn list_protection_groups(
        &mut self,
        array: &str,
        names: &[String],
        now_ms: i64,
    ) -> Result<Vec<ArrayProtectionGroup>, BackendError> {
        self.advance_to(now_ms);
        let a = self.arr(array)?;
        if names.is_empty() {
            return Ok(a.groups.values().map(group_view).collect());
        }
        let mut found = BTreeMap::new();
        for n in names {
            let g = a
                .groups
                .get(n)
                .ok_or_else(|| errors::does_not_exist("Protection group", n))?;
            found.insert(g.name.clone(), group_view(g));
        }
        Ok(found.into_values().collect())
    }

    /// `POST /protection-groups`: creates a local group (no schedule, default target
    /// retention).
    ///
    /// # Errors
    /// Bad name or "already exists".
    pub fn create_protection_group(
        &mut self,
        array: &str,
        name: &str,
        now_ms: i64,
    ) -> Result<ArrayProtectionGroup, BackendError> {
        self.advance_to(now_ms);
        if !valid_object_name(name) {
            return Err(errors::invalid(name, "Invalid protection group name."));
        }
        if self.arr(array)?.groups.contains_key(name) {
            return Err(errors::already_exists("Protection group", name));
        }
        let record = GroupRecord {
            id: self.new_id(),
            name: name.to_owned(),
            is_local: true,
            source_array: array.to_owned(),
            destroyed: false,
            schedule: default_schedule(),
            next_due: None,
            retention: TargetRetention::default(),
            members: BTreeSet::new(),
            targets: BTreeSet::new(),
            allowed: true,
        };
        let view = group_view(&record);
        self.arr_mut(array)?.groups.insert(name.to_owned(), record);
        self.log(array, format_args!("create_protection_group {name}"));
        Ok(view)
    }

    /// `PATCH /protection-groups {"destroyed": true}`; its schedule stops.
    ///
    /// # Errors
    /// "does not exist" or "has been destroyed".
    pub fn destroy_protection_group(
        &mut self,
        array: &str,
        name: &str,
        now_ms: i64,
    ) -> Result<(), BackendError> {
        self.advance_to(now_ms);
        let g = self.group_mut(array, name)?;
        g.destroyed = true;
        g.next_due = None;
        self.log(array, format_args!("destroy_protection_group {name}"));
        Ok(())
    }

    /// `DELETE /protection-groups`: eradicates a destroyed group and its snapshots.
    ///
    /// # Errors
    /// "does not exist"; refused when the group was not destroyed first.
    pub fn eradicate_protection_group(
        &mut self,
        array: &str,
        name: &str,
        now_ms: i64,
    ) -> Result<(), BackendError> {
        self.advance_to(now_ms);
        let g = self
            .arr(array)?
            .groups
            .get(name)
            .ok_or_else(|| errors::does_not_exist("Protection group", name))?;
        if !g.destroyed {
            return Err(errors::not_destroyed("Protection group", name));
        }
        let snaps: Vec<Arc<str>> = self
            .arr(array)?
            .pg_snapshots
            .values()
            .filter(|s| s.group == name)
            .map(|s| s.name.clone())
            .collect();
        for s in snaps {
            self.remove_pg_snapshot(array, &s);
        }
        self.arr_mut(array)?.groups.remove(name);
        self.log(array, format_args!("eradicate_protection_group {name}"));
        Ok(())
    }

    /// `GET /protection-groups/volumes`: member volume names.
    ///
    /// # Errors
    /// "does not exist".
    pub fn list_protection_group_volumes(
        &mut self,
        array: &str,
        group: &str,
        now_ms: i64,
    ) -> Result<Vec<String>, BackendError> {
        self.advance_to(now_ms);
        let g = self
            .arr(array)?
            .groups
            .get(group)
            .ok_or_else(|| errors::does_not_exist("Protection group", group))?;
        Ok(g.members.iter().cloned().collect())
    }

    /// `POST /protection-groups/volumes`: adds volumes to a local group (all or none).
    ///
    /// # Errors
    /// The group or a volume "does not exist" or "has been destroyed"; a volume
    /// "already belongs to" the group.
    pub fn add_protection_group_volumes(
        &mut self,
        array: &str,
        group: &str,
        volumes: &[String],
        now_ms: i64,
    ) -> Result<(), BackendError> {
        self.advance_to(now_ms);
        let g = self.local_group(array, group)?;
        let a = self.arr(array)?;
        for v in volumes {
            let rec = a
                .volumes
                .get(v)
                .ok_or_else(|| errors::does_not_exist("Volume", v))?;
            if rec.destroyed {
                return Err(errors::destroyed("Volume", v));
            }
            if g.members.contains(v) {
                return Err(errors::conflict(
                    v,
                    &format!("Volume already belongs to protection group {group}."),
                ));
            }
        }
        let g = self.group_mut(array, group)?;
        g.members.extend(volumes.iter().cloned());
        self.log(
            array,
            format_args!("add_protection_group_volumes {group} {}", volumes.join(",")),
        );
        Ok(())
    }

    /// `DELETE /protection-groups/volumes`: removes volumes from a local group.
    ///
    /// # Errors
    /// The group "does not exist" or "has been destroyed"; a volume not in the group.
    pub fn remove_protection_group_volumes(
        &mut self,
        array: &str,
        group: &str,
        volumes: &[String],
        now_ms: i64,
    ) -> Result<(), BackendError> {
        self.advance_to(now_ms);
        let g = self.local_group(array, group)?;
        if let Some(v) = volumes.iter().find(|v| !g.members.contains(*v)) {
            return Err(errors::invalid(
                v,
                &format!("Volume does not belong to protection group {group}."),
            ));
        }
        let g = self.group_mut(array, group)?;
        for v in volumes {
            g.members.remove(v);
        }
        self.log(
            array,
            format_args!(
                "remove_protection_group_volumes {group} {}",
                volumes.join(",")
            ),
        );
        Ok(())
    }

    /// `GET /protection-groups/targets`. On the source: one item per target, with
    /// `allowed` as the target says and status `replicating` (allowed, link up),
    /// `suspended` (allowed, link or peer down) or `disallowed`. On a target, for a
    /// replicated-in group: this array's own entry.
    ///
    /// # Errors
    /// "does not exist".
    pub fn list_protection_group_targets(
        &mut self,
        array: &str,
        group: &str,
        now_ms: i64,
    ) -> Result<Vec<ProtectionGroupTarget>, BackendError> {
        self.advance_to(now_ms);
        let g = self
            .arr(array)?
            .groups
            .get(group)
            .ok_or_else(|| errors::does_not_exist("Protection group", group))?;
        let entry = |member: &str, allowed: bool, flowing: bool| ProtectionGroupTarget {
            group: NameRef {
                name: group.to_owned(),
            },
            member: NameRef {
                name: member.to_owned(),
            },
            allowed,
            status: if !allowed {
                "disallowed"
            } else if flowing {
                "replicating"
            } else {
                "suspended"
            }
            .to_owned(),
        };
        if !g.is_local {
            let flowing = self.path_up(&g.source_array, array);
            return Ok(vec![entry(array, g.allowed, flowing)]);
        }
        let remote = format!("{array}:{group}");
        Ok(g.targets
            .iter()
            .map(|t| {
                let allowed = self
                    .arrays
                    .get(t)
                    .and_then(|ta| ta.groups.get(&remote))
                    .is_some_and(|rg| rg.allowed && !rg.destroyed);
                entry(t, allowed, self.path_up(array, t))
            })
            .collect())
    }

    /// `POST /protection-groups/targets`: adds target arrays to a local group; each
    /// target then holds the replicated-in group `<array>:<group>`, not yet allowed.
    ///
    /// # Errors
    /// The group "does not exist" or "has been destroyed"; no connection to a target;
    /// the group "already includes" a target.
    pub fn add_protection_group_targets(
        &mut self,
        array: &str,
        group: &str,
        targets: &[String],
        now_ms: i64,
    ) -> Result<(), BackendError> {
        self.advance_to(now_ms);
        let g = self.local_group(array, group)?.clone();
        for t in targets {
            if t == array {
                return Err(errors::invalid(t, "An array cannot replicate to itself."));
            }
            if !self.links.contains_key(&link_key(array, t)) || !self.arrays.contains_key(t) {
                return Err(errors::does_not_exist("Array connection", t));
            }
            if g.targets.contains(t) {
                return Err(errors::conflict(
                    t,
                    &format!("Protection group {group} already includes {t}."),
                ));
            }
        }
        let remote = format!("{array}:{group}");
        for t in targets {
            let id = self.new_id();
            let ta = self.arr_mut(t)?;
            match ta.groups.get_mut(&remote) {
                Some(existing) => {
                    existing.destroyed = false;
                    existing.schedule = g.schedule.clone();
                    existing.retention = g.retention.clone();
                }
                None => {
                    ta.groups.insert(
                        remote.clone(),
                        GroupRecord {
                            id,
                            name: remote.clone(),
                            is_local: false,
                            source_array: array.to_owned(),
                            destroyed: false,
                            schedule: g.schedule.clone(),
                            next_due: None,
                            retention: g.retention.clone(),
                            members: BTreeSet::new(),
                            targets: BTreeSet::new(),
                            allowed: false,
                        },
                    );
                }
            }
        }
        self.group_mut(array, group)?
            .targets
            .extend(targets.iter().cloned());
        self.log(
            array,
            format_args!("add_protection_group_targets {group} {}", targets.join(",")),
        );
        Ok(())
    }

    /// `DELETE /protection-groups/targets`: stops replicating a local group to targets
    /// (snapshots already on them stay).
    ///
    /// # Errors
    /// The group "does not exist" or "has been destroyed"; a target not in the group.
    pub fn remove_protection_group_targets(
        &mut self,
        array: &str,
        group: &str,
        targets: &[String],
        now_ms: i64,
    ) -> Result<(), BackendError> {
        self.advance_to(now_ms);
        let g = self.local_group(array, group)?;
        if let Some(t) = targets.iter().find(|t| !g.targets.contains(*t)) {
            return Err(errors::invalid(
                t,
                &format!("Protection group {group} does not include {t}."),
            ));
        }
        let g = self.group_mut(array, group)?;
        for t in targets {
            g.targets.remove(t);
        }
        self.log(
            array,
            format_args!(
                "remove_protection_group_targets {group} {}",
                targets.join(",")
            ),
        );
        Ok(())
    }

    /// `PATCH /protection-groups/targets {"allowed": true}` on a target: allows the
    /// replicated-in group `<src>:<pg>`.
    ///
    /// # Errors
    /// "does not exist", "has been destroyed", a local group, or "already allowed on".
    pub fn allow_protection_group(
        &mut self,
        array: &str,
        group: &str,
        now_ms: i64,
    ) -> Result<(), BackendError> {
        self.advance_to(now_ms);
        let g = self.group_mut(array, group)?;
        if g.is_local {
            return Err(errors::invalid(
                group,
                "Only a replicated protection group can be allowed on its target.",
            ));
        }
        if g.allowed {
            return Err(errors::conflict(
                group,
                &format!("Protection group is already allowed on {array}."),
            ));
        }
        g.allowed = true;
        self.log(array, format_args!("allow_protection_group {group}"));
        Ok(())
    }

    /// `PATCH /protection-groups {"replication_schedule"}`: enabling schedules a
    /// replicated snapshot every `frequency_ms` from now on.
    ///
    /// # Errors
    /// "does not exist", "has been destroyed", a replicated-in group, or a frequency
    /// below [`MIN_REPLICATION_FREQUENCY_MS`].
    pub fn set_replication_schedule(
        &mut self,
        array: &str,
        group: &str,
        schedule: &ReplicationSchedule,
        now_ms: i64,
    ) -> Result<(), BackendError> {
        self.advance_to(now_ms);
        let t = self.now_ms;
        self.local_group(array, group)?;
        if schedule.enabled && schedule.frequency_ms < MIN_REPLICATION_FREQUENCY_MS {
            return Err(errors::invalid(group, "Invalid replication frequency."));
        }
        let g = self.group_mut(array, group)?;
        g.schedule = schedule.clone();
        let freq = i64::try_from(schedule.frequency_ms).unwrap_or(i64::MAX);
        g.next_due = schedule.enabled.then(|| t.saturating_add(freq));
        let due = g.next_due;
        let targets: Vec<String> = g.targets.iter().cloned().collect();
        if let Some(due) = due {
            self.schedules_from = self.schedules_from.min(due);
        }
        self.for_replicated_copies(array, group, &targets, |rg| rg.schedule = schedule.clone());
        self.log(
            array,
            format_args!(
                "set_replication_schedule {group} enabled={} frequency_ms={}",
                schedule.enabled, schedule.frequency_ms
            ),
        );
        Ok(())
    }

    /// `PATCH /protection-groups {"target_retention"}`: the retention applied to the
    /// group's snapshots on its targets.
    ///
    /// # Errors
    /// "does not exist", "has been destroyed" or a replicated-in group.
    pub fn set_target_retention(
        &mut self,
        array: &str,
        group: &str,
        retention: &TargetRetention,
        now_ms: i64,
    ) -> Result<(), BackendError> {
        self.advance_to(now_ms);
        self.local_group(array, group)?;
        let g = self.group_mut(array, group)?;
        g.retention = retention.clone();
        let targets: Vec<String> = g.targets.iter().cloned().collect();
        self.for_replicated_copies(array, group, &targets, |rg| {
            rg.retention = retention.clone()
        });
        self.log(
            array,
            format_args!(
                "set_target_retention {group} all_for_sec={} per_day={} days={}",
                retention.all_for_sec, retention.per_day, retention.days
            ),
        );
        Ok(())
    }

    // ----------------------------------------------------------------------------
    // The array's API: protection-group snapshots and transfers
    // ----------------------------------------------------------------------------

    /// `POST /protection-group-snapshots`: snapshots every member volume as
    /// `<pg>.<suffix>.<vol>`; with `replicate_now`, starts a transfer to every allowed,
    /// connected target.
    ///
    /// # Errors
    /// The group "does not exist", "has been destroyed" or is replicated-in; a bad
    /// suffix or one that "already exists".
    pub fn create_pg_snapshot(
        &mut self,
        array: &str,
        group: &str,
        options: &PgSnapshotOptions,
        now_ms: i64,
    ) -> Result<PgSnapshot, BackendError> {
        self.advance_to(now_ms);
        let t = self.now_ms;
        let snap = self.take_pg_snapshot(
            array,
            group,
            options.suffix.as_deref(),
            options.replicate_now,
            t,
        )?;
        self.settle();
        Ok(snap)
    }

    /// `GET /protection-group-snapshots`, by name. Snapshots still in transfer to this
    /// array are not listed (see [`Self::list_pg_snapshot_transfers`]).
    ///
    /// # Errors
    /// A name or group that "does not exist".
    pub fn list_pg_snapshots(
        &mut self,
        array: &str,
        query: &PgSnapshotQuery,
        now_ms: i64,
    ) -> Result<Vec<PgSnapshot>, BackendError> {
        self.advance_to(now_ms);
        let a = self.arr(array)?;
        for n in &query.names {
            if !a.pg_snapshots.contains_key(n) {
                return Err(errors::does_not_exist("Protection group snapshot", n));
            }
        }
        for g in &query.source_names {
            if !a.groups.contains_key(g) {
                return Err(errors::does_not_exist("Protection group", g));
            }
        }
        Ok(a.pg_snapshots
            .values()
            .filter(|s| query.names.is_empty() || query.names.iter().any(|n| **n == *s.name))
            .filter(|s| query.source_names.is_empty() || query.source_names.contains(&s.group))
            .filter(|s| query.destroyed.is_none_or(|d| s.destroyed == d))
            .map(pg_snap_view)
            .collect())
    }

    /// `GET /protection-group-snapshots/transfer`: snapshots replicated to this array
    /// (landed: progress 1.0 and `completed`; in flight: progress < 1.0, `completed`
    /// `None`) and this array's own snapshots with the state of their outgoing
    /// transfers (`started` `None` if never replicated). `names` accepts snapshot
    /// names and, like the Cinder driver sends them, group names.
    ///
    /// # Errors
    /// A name or group that "does not exist".
    pub fn list_pg_snapshot_transfers(
        &mut self,
        array: &str,
        query: &PgSnapshotQuery,
        now_ms: i64,
    ) -> Result<Vec<PgSnapshotTransfer>, BackendError> {
        self.advance_to(now_ms);
        let a = self.arr(array)?;
        let incoming: Vec<&Transfer> = self
            .transfers
            .values()
            .filter(|tr| tr.target_array == array)
            .collect();
        for n in &query.names {
            let known = a.pg_snapshots.contains_key(n)
                || a.groups.contains_key(n)
                || incoming.iter().any(|tr| &tr.target_name() == n);
            if !known {
                return Err(errors::does_not_exist("Protection group snapshot", n));
            }
        }
        for g in &query.source_names {
            if !a.groups.contains_key(g) {
                return Err(errors::does_not_exist("Protection group", g));
            }
        }
        let selected = |name: &str, group: &str, destroyed: bool| {
            (query.names.is_empty() || query.names.iter().any(|n| n == name || n == group))
                && (query.source_names.is_empty() || query.source_names.iter().any(|g| g == group))
                && query.destroyed.is_none_or(|d| d == destroyed)
        };
        let mut out: BTreeMap<String, PgSnapshotTransfer> = BTreeMap::new();
        for s in a.pg_snapshots.values() {
            if !selected(&s.name, &s.group, s.destroyed) {
                continue;
            }
            let item = match &s.transfer {
                Some(info) => PgSnapshotTransfer {
                    name: s.name.to_string(),
                    destroyed: s.destroyed,
                    started: Some(info.started),
                    completed: Some(info.completed),
                    progress: 1.0,
                    data_transferred: info.bytes,
                },
                None => self.outgoing_view(array, s),
            };
            out.insert(s.name.to_string(), item);
        }
        for tr in incoming {
            let name = tr.target_name();
            if !selected(&name, &tr.target_group(), false) {
                continue;
            }
            let progress = tr.progress();
            out.insert(
                name.clone(),
                PgSnapshotTransfer {
                    name,
                    destroyed: false,
                    started: Some(tr.started),
                    completed: None,
                    progress,
                    data_transferred: (tr.bytes as f64 * progress) as u64,
                },
            );
        }
        Ok(out.into_values().collect())
    }

    /// `PATCH /protection-group-snapshots {"destroyed": true}`, with its volume
    /// snapshots.
    ///
    /// # Errors
    /// "does not exist" or "has been destroyed".
    pub fn destroy_pg_snapshot(
        &mut self,
        array: &str,
        name: &str,
        now_ms: i64,
    ) -> Result<(), BackendError> {
        self.advance_to(now_ms);
        let a = self.arr_mut(array)?;
        let s = a
            .pg_snapshots
            .get_mut(name)
            .ok_or_else(|| errors::does_not_exist("Protection group snapshot", name))?;
        if s.destroyed {
            return Err(errors::destroyed("Protection group snapshot", name));
        }
        // Its volume snapshots take their state from it.
        s.destroyed = true;
        self.log(array, format_args!("destroy_pg_snapshot {name}"));
        Ok(())
    }

    /// `DELETE /protection-group-snapshots`: eradicates a destroyed snapshot.
    ///
    /// # Errors
    /// "does not exist"; refused when it was not destroyed first.
    pub fn eradicate_pg_snapshot(
        &mut self,
        array: &str,
        name: &str,
        now_ms: i64,
    ) -> Result<(), BackendError> {
        self.advance_to(now_ms);
        let s = self
            .arr(array)?
            .pg_snapshots
            .get(name)
            .ok_or_else(|| errors::does_not_exist("Protection group snapshot", name))?;
        if !s.destroyed {
            return Err(errors::not_destroyed("Protection group snapshot", name));
        }
        self.remove_pg_snapshot(array, name);
        self.log(array, format_args!("eradicate_pg_snapshot {name}"));
        Ok(())
    }

    // ----------------------------------------------------------------------------
    // The array's API: pods and connections
    // ----------------------------------------------------------------------------

    /// `GET /pods`: pods this array is a member of, by name, or all when empty.
    ///
    /// # Errors
    /// "does not exist" for a missing name.
    pub fn list_pods(
        &mut self,
        array: &str,
        names: &[String],
        now_ms: i64,
    ) -> Result<Vec<Pod>, BackendError> {
        self.advance_to(now_ms);
        self.arr(array)?;
        let mut out = BTreeMap::new();
        for pod in self
            .pods
            .values()
            .filter(|p| p.arrays.iter().any(|a| a == array))
        {
            if names.is_empty() || names.contains(&pod.name) {
                out.insert(pod.name.clone(), pod_view(pod, array));
            }
        }
        if let Some(missing) = names.iter().find(|n| !out.contains_key(*n)) {
            return Err(errors::does_not_exist("Pod", missing));
        }
        Ok(out.into_values().collect())
    }

    /// `POST /pods`: creates a pod on this array.
    ///
    /// # Errors
    /// Bad name or "already exists".
    pub fn create_pod(
        &mut self,
        array: &str,
        name: &str,
        now_ms: i64,
    ) -> Result<Pod, BackendError> {
        self.advance_to(now_ms);
        self.arr(array)?;
        if !valid_object_name(name) {
            return Err(errors::invalid(name, "Invalid pod name."));
        }
        if self.pod_key(array, name).is_some() {
            return Err(errors::already_exists("Pod", name));
        }
        let record = PodRecord {
            id: self.new_id(),
            name: name.to_owned(),
            arrays: vec![array.to_owned()],
            promotion: PromotionState::Promoted,
            destroyed: false,
            synced: true,
            split_at: None,
        };
        let view = pod_view(&record, array);
        self.pods.insert(self.next_pod, record);
        self.next_pod += 1;
        self.log(array, format_args!("create_pod {name}"));
        Ok(view)
    }

    /// `POST /pods/arrays`: stretches a pod to a connected peer, which then holds a
    /// replica of every pod volume.
    ///
    /// # Errors
    /// The pod "does not exist" or "has been destroyed"; no connection to the peer or
    /// the link is down; the pod "already includes" the peer or is stretched already;
    /// the peer has a pod of that name ("already exists").
    pub fn stretch_pod(
        &mut self,
        array: &str,
        pod: &str,
        peer: &str,
        now_ms: i64,
    ) -> Result<(), BackendError> {
        self.advance_to(now_ms);
        let key = self.live_pod_key(array, pod)?;
        let record = self
            .pods
            .get(&key)
            .cloned()
            .ok_or_else(|| errors::does_not_exist("Pod", pod))?;
        if record.arrays.iter().any(|a| a == peer) {
            return Err(errors::conflict(
                pod,
                &format!("Pod already includes {peer}."),
            ));
        }
        if record.arrays.len() >= 2 {
            return Err(errors::invalid(
                pod,
                "Pod is already stretched across two arrays.",
            ));
        }
        if !self.links.contains_key(&link_key(array, peer)) || !self.arrays.contains_key(peer) {
            return Err(errors::does_not_exist("Array connection", peer));
        }
        if !self.path_up(array, peer) {
            return Err(errors::invalid(peer, "Array connection is not connected."));
        }
        if self.pod_key(peer, pod).is_some() {
            return Err(errors::already_exists("Pod", pod));
        }
        let clash = self.arr(peer)?.volumes.names_with_prefix(&pod_prefix(pod));
        if let Some(v) = clash.first() {
            return Err(errors::already_exists("Volume", v));
        }
        if let Some(p) = self.pods.get_mut(&key) {
            p.arrays.push(peer.to_owned());
            p.synced = true;
            p.split_at = None;
        }
        self.log(array, format_args!("stretch_pod {pod} {peer}"));
        self.mirror_whole_pod(key, array);
        Ok(())
    }

    /// `DELETE /pods/arrays`: removes `peer` (possibly this array) from a stretched pod;
    /// the removed array's replicas go. `with_unknown` is required when the pod is not
    /// in sync (the peer is unreachable).
    ///
    /// # Errors
    /// The pod "does not exist"; the array is not a member or is the last one; the
    /// pod is out of sync without `with_unknown`.
    pub fn unstretch_pod(
        &mut self,
        array: &str,
        pod: &str,
        peer: &str,
        with_unknown: bool,
        now_ms: i64,
    ) -> Result<(), BackendError> {
        self.advance_to(now_ms);
        let key = self.live_pod_key(array, pod)?;
        let record = self
            .pods
            .get(&key)
            .cloned()
            .ok_or_else(|| errors::does_not_exist("Pod", pod))?;
        if !record.arrays.iter().any(|a| a == peer) {
            return Err(errors::invalid(
                peer,
                &format!("Pod {pod} does not include {peer}."),
            ));
        }
        if record.arrays.len() < 2 {
            return Err(errors::invalid(
                pod,
                "Cannot remove the last array of a pod.",
            ));
        }
        if !record.synced && !with_unknown {
            return Err(errors::invalid(
                pod,
                &format!("Array {peer} is not online in the pod; use with_unknown to remove it."),
            ));
        }
        let doomed = self.arr(peer)?.volumes.names_with_prefix(&pod_prefix(pod));
        for v in &doomed {
            self.remove_volume(peer, v);
        }
        if let Some(p) = self.pods.get_mut(&key) {
            p.arrays.retain(|a| a != peer);
            p.synced = true;
            p.split_at = None;
        }
        self.log(
            array,
            format_args!("unstretch_pod {pod} {peer} with_unknown={with_unknown}"),
        );
        Ok(())
    }

    /// `PATCH /pods {"requested_promotion_state"}`; the change is immediate.
    ///
    /// # Errors
    /// "does not exist" or "has been destroyed".
    pub fn set_pod_promotion(
        &mut self,
        array: &str,
        pod: &str,
        state: PromotionState,
        now_ms: i64,
    ) -> Result<Pod, BackendError> {
        self.advance_to(now_ms);
        let key = self.live_pod_key(array, pod)?;
        let p = self
            .pods
            .get_mut(&key)
            .ok_or_else(|| errors::does_not_exist("Pod", pod))?;
        p.promotion = state;
        let view = pod_view(p, array);
        self.log(
            array,
            format_args!("set_pod_promotion {pod} {}", view.promotion_status),
        );
        Ok(view)
    }

    /// `PATCH /pods {"destroyed": true}`: the pod must be empty and unstretched.
    ///
    /// # Errors
    /// "does not exist", "has been destroyed", stretched, or not empty.
    pub fn destroy_pod(&mut self, array: &str, pod: &str, now_ms: i64) -> Result<(), BackendError> {
        self.advance_to(now_ms);
        let key = self.live_pod_key(array, pod)?;
        if self.pods.get(&key).is_some_and(|p| p.arrays.len() > 1) {
            return Err(errors::invalid(
                pod,
                "Pod is stretched; unstretch it before destroying it.",
            ));
        }
        if !self
            .arr(array)?
            .volumes
            .names_with_prefix(&pod_prefix(pod))
            .is_empty()
        {
            return Err(errors::conflict(
                pod,
                "Pod is not empty; it cannot be destroyed.",
            ));
        }
        if let Some(p) = self.pods.get_mut(&key) {
            p.destroyed = true;
        }
        self.log(array, format_args!("destroy_pod {pod}"));
        Ok(())
    }

    /// `DELETE /pods`: eradicates a destroyed pod.
    ///
    /// # Errors
    /// "does not exist"; refused when it was not destroyed first.
    pub fn eradicate_pod(
        &mut self,
        array: &str,
        pod: &str,
        now_ms: i64,
    ) -> Result<(), BackendError> {
        self.advance_to(now_ms);
        let key = self
            .pod_key(array, pod)
            .ok_or_else(|| errors::does_not_exist("Pod", pod))?;
        if !self.pods.get(&key).is_some_and(|p| p.destroyed) {
            return Err(errors::not_destroyed("Pod", pod));
        }
        self.pods.remove(&key);
        self.log(array, format_args!("eradicate_pod {pod}"));
        Ok(())
    }

    /// `GET /array-connections`: one item per connected peer, `connected` while the
    /// link and the peer are up, `connecting` otherwise.
    ///
    /// # Errors
    /// Unknown array.
    pub fn list_array_connections(
        &mut self,
        array: &str,
        now_ms: i64,
    ) -> Result<Vec<ArrayConnection>, BackendError> {
        self.advance_to(now_ms);
        self.arr(array)?;
        let mut out = Vec::new();
        for (a, b) in self.links.keys() {
            let peer = if a == array {
                b
            } else if b == array {
                a
            } else {
                continue;
            };
            let Some(p) = self.arrays.get(peer) else {
                continue;
            };
            out.push(ArrayConnection {
                name: p.name.clone(),
                id: p.id.clone(),
                status: if self.path_up(array, peer) {
                    "connected"
                } else {
                    "connecting"
                }
                .to_owned(),
                connection_type: CONNECTION_TYPE.to_owned(),
                management_address: Some(format!("{peer}.mgmt")),
            });
        }
        out.sort_by(|x, y| x.name.cmp(&y.name));
        Ok(out)
    }

    // ----------------------------------------------------------------------------
    // Time: transfers, schedules, retention
    // ----------------------------------------------------------------------------

    /// Advances the fabric to `now_ms` (never backwards): transfers progress and land,
    /// scheduled snapshots are taken at every interval boundary passed, in time order.
    pub fn advance_to(&mut self, now_ms: i64) {
        let target = now_ms.max(self.now_ms);
        if self.transfers.is_empty() && target < self.schedules_from {
            // No transfer runs and no schedule is due by `target`: nothing happens.
            self.now_ms = target;
            return;
        }
        while let Some(t) = self.next_event_time().filter(|t| *t <= target) {
            let t = t.max(self.now_ms);
            self.progress_transfers(t);
            self.now_ms = t;
            self.land_due_transfers();
            self.run_due_schedules();
        }
        self.progress_transfers(target);
        self.now_ms = target;
        self.schedules_from = self.next_schedule_due().unwrap_or(i64::MAX);
    }

    /// Processes whatever is due at the current time (a zero-time transfer, a resumed
    /// one that had no time left).
    fn settle(&mut self) {
        self.advance_to(self.now_ms);
    }

    fn next_event_time(&self) -> Option<i64> {
        let landings = self
            .transfers
            .values()
            .filter(|tr| self.flow(tr) == Flow::Full)
            .map(|tr| tr.accounted_to.saturating_add(tr.remaining_ms));
        landings.chain(self.next_schedule_due()).min()
    }

    /// When the earliest active schedule is due next.
    fn next_schedule_due(&self) -> Option<i64> {
        self.arrays
            .values()
            .flat_map(|a| a.groups.values())
            .filter(|g| schedule_active(g))
            .filter_map(|g| g.next_due)
            .min()
    }

    fn flow(&self, tr: &Transfer) -> Flow {
        flow_of(&self.links, &self.arrays, tr)
    }

    fn progress_transfers(&mut self, t: i64) {
        let (links, arrays) = (&self.links, &self.arrays);
        for tr in self.transfers.values_mut() {
            let flow = flow_of(links, arrays, tr);
            let dt = t.saturating_sub(tr.accounted_to).max(0);
            match flow {
                Flow::Full => tr.remaining_ms = tr.remaining_ms.saturating_sub(dt).max(0),
                Flow::Capped => {
                    let floor = stall_floor(tr.total_ms);
                    if tr.remaining_ms > floor {
                        tr.remaining_ms = tr.remaining_ms.saturating_sub(dt).max(floor);
                    }
                }
                Flow::Held => {}
            }
            tr.accounted_to = tr.accounted_to.max(t);
        }
    }

    fn land_due_transfers(&mut self) {
        let due: Vec<(String, String)> = self
            .transfers
            .iter()
            .filter(|(_, tr)| tr.remaining_ms == 0 && self.flow(tr) == Flow::Full)
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            if let Some(tr) = self.transfers.remove(&key) {
                self.land(tr);
            }
        }
    }

    fn land(&mut self, tr: Transfer) {
        let t = self.now_ms;
        let group = tr.target_group();
        let name = tr.target_name();
        let usable = self
            .arrays
            .get(&tr.target_array)
            .is_some_and(|a| a.groups.contains_key(&group) && !a.pg_snapshots.contains_key(&name));
        if !usable {
            self.log(&tr.target_array, format_args!("transfer_dropped {name}"));
            return;
        }
        let mut members = Vec::with_capacity(tr.volumes.len());
        let shared_name: Arc<str> = Arc::from(name.as_str());
        let mut source = String::new();
        let ids = &self.ids;
        if let Some(a) = self.arrays.get_mut(&tr.target_array) {
            for c in tr.volumes.iter() {
                source.clear();
                source.push_str(&tr.source_array);
                source.push(':');
                source.push_str(&c.name);
                let id = record_id(ids);
                let key = SnapKey {
                    pg: Arc::clone(&shared_name),
                    vol: Arc::clone(&c.name),
                    i: members.len(),
                };
                let source = a.index_snapshot(&source, || Arc::from(source.as_str()), key);
                members.push(MemberSnap { id, source });
            }
        }
        let record = PgSnapRecord {
            id: self.new_record_id(),
            name: shared_name,
            group: group.clone(),
            suffix: tr.suffix.clone(),
            created: tr.created,
            destroyed: false,
            volumes: Arc::clone(&tr.volumes),
            members: members.into_boxed_slice(),
            transfer: Some(TransferInfo {
                started: tr.started,
                completed: t,
                bytes: tr.bytes,
            }),
            by_name: OnceCell::new(),
        };
        if let Some(a) = self.arrays.get_mut(&tr.target_array) {
            a.pg_snapshots.insert(name.clone(), record);
        }
        self.log(&tr.target_array, format_args!("transfer_landed {name}"));
        self.apply_target_retention(&tr.target_array, &group);
    }

    /// Keeps every snapshot of `group` younger than `all_for_sec`, then the newest one
    /// per `86400 / per_day` seconds for `days` days, and eradicates the rest; the
    /// newest snapshot is always kept.
    fn apply_target_retention(&mut self, array: &str, group: &str) {
        let t = self.now_ms;
        let Some(a) = self.arrays.get(array) else {
            return;
        };
        let Some(g) = a.groups.get(group) else { return };
        let r = &g.retention;
        let all_ms = i64::try_from(r.all_for_sec)
            .unwrap_or(i64::MAX / 4)
            .saturating_mul(1_000);
        let horizon = all_ms.saturating_add(i64::from(r.days).saturating_mul(DAY_MS));
        let slot = if r.per_day > 0 {
            DAY_MS / i64::from(r.per_day)
        } else {
            0
        };
        let mut snaps: Vec<(i64, Arc<str>)> = a
            .pg_snapshots
            .values()
            .filter(|s| s.group == group && !s.destroyed)
            .map(|s| (s.created, s.name.clone()))
            .collect();
        snaps.sort_by(|x, y| y.cmp(x));
        let mut slots = BTreeSet::new();
        let mut doomed = Vec::new();
        for (i, (created, name)) in snaps.into_iter().enumerate() {
            let age = t.saturating_sub(created);
            if i == 0 || age <= all_ms {
                continue;
            }
            if slot > 0 && age <= horizon && slots.insert(created.div_euclid(slot)) {
                continue;
            }
            doomed.push(name);
        }
        for name in doomed {
            self.remove_pg_snapshot(array, &name);
            self.log(array, format_args!("retention_eradicated {name}"));
        }
    }

    fn run_due_schedules(&mut self) {
        let t = self.now_ms;
        let due: Vec<(String, String)> = self
            .arrays
            .values()
            .flat_map(|a| a.groups.values().map(move |g| (a, g)))
            .filter(|(_, g)| schedule_active(g) && g.next_due.is_some_and(|d| d <= t))
            .map(|(a, g)| (a.name.clone(), g.name.clone()))
            .collect();
        for (array, group) in due {
            let up = self.is_array_up(&array);
            if let Some(g) = self
                .arrays
                .get_mut(&array)
                .and_then(|a| a.groups.get_mut(&group))
            {
                let freq = i64::try_from(g.schedule.frequency_ms)
                    .unwrap_or(i64::MAX)
                    .max(1);
                g.next_due = g.next_due.map(|d| d.saturating_add(freq));
            }
            if !up {
                continue;
            }
            match self.take_pg_snapshot(&array, &group, None, true, t) {
                Ok(s) => self.log(&array, format_args!("scheduled_snapshot {}", s.name)),
                Err(e) => self.log(
                    &array,
                    format_args!("scheduled_snapshot_failed {group}: {}", e.message),
                ),
            }
        }
    }

    fn take_pg_snapshot(
        &mut self,
        array: &str,
        group: &str,
        suffix: Option<&str>,
        replicate: bool,
        t: i64,
    ) -> Result<PgSnapshot, BackendError> {
        let g = self.local_group(array, group)?;
        let a = self.arr(array)?;
        let (suffix, counter) = match suffix {
            Some(s) => {
                if !valid_object_name(s) {
                    return Err(errors::invalid(s, "Invalid suffix."));
                }
                (s.to_owned(), None)
            }
            None => {
                let mut n = a.suffix_counters.get(group).copied().unwrap_or(0);
                loop {
                    n += 1;
                    if !a.pg_snapshots.contains_key(&format!("{group}.{n}")) {
                        break;
                    }
                }
                (n.to_string(), Some(n))
            }
        };
        let name = format!("{group}.{suffix}");
        if a.pg_snapshots.contains_key(&name) {
            return Err(errors::already_exists("Protection group snapshot", &name));
        }
        let captured: Vec<CapturedVolume> = g
            .members
            .iter()
            .filter_map(|m| a.volumes.get_shared(m))
            .filter(|(_, v)| !v.destroyed)
            .map(|(name, v)| CapturedVolume {
                id: v.id,
                name: Arc::clone(name),
                provisioned: v.provisioned,
                seq: v.data.seq(t),
            })
            .collect();
        let targets: Vec<String> = if replicate {
            let remote = format!("{array}:{group}");
            g.targets
                .iter()
                .filter(|target| {
                    link_between(&self.links, array, target).is_some()
                        && self
                            .arrays
                            .get(*target)
                            .and_then(|ta| ta.groups.get(&remote))
                            .is_some_and(|rg| rg.allowed && !rg.destroyed)
                })
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        let bytes = captured.iter().map(|c| c.provisioned).sum();
        let captured: Arc<[CapturedVolume]> = captured.into();
        let mut members = Vec::with_capacity(captured.len());
        let shared_name: Arc<str> = Arc::from(name.as_str());
        let ids = &self.ids;
        if let Some(a) = self.arrays.get_mut(array) {
            for c in captured.iter() {
                let id = record_id(ids);
                let key = SnapKey {
                    pg: Arc::clone(&shared_name),
                    vol: Arc::clone(&c.name),
                    i: members.len(),
                };
                let source = a.index_snapshot(&c.name, || Arc::clone(&c.name), key);
                members.push(MemberSnap { id, source });
            }
        }
        let record = PgSnapRecord {
            id: self.new_record_id(),
            name: shared_name,
            group: group.to_owned(),
            suffix: suffix.clone(),
            created: t,
            destroyed: false,
            volumes: Arc::clone(&captured),
            members: members.into_boxed_slice(),
            transfer: None,
            by_name: OnceCell::new(),
        };
        let view = pg_snap_view(&record);
        let a = self.arr_mut(array)?;
        a.pg_snapshots.insert(name.clone(), record);
        if let Some(n) = counter {
            a.suffix_counters.insert(group.to_owned(), n);
        }
        self.log(
            array,
            format_args!("create_pg_snapshot {name} replicate={replicate}"),
        );
        for target in targets {
            let tr = Transfer {
                source_array: array.to_owned(),
                target_array: target.clone(),
                group: group.to_owned(),
                suffix: suffix.clone(),
                created: t,
                started: t,
                total_ms: self.transfer_time_ms,
                remaining_ms: self.transfer_time_ms,
                accounted_to: t,
                bytes,
                volumes: Arc::clone(&captured),
            };
            self.log(array, format_args!("transfer_started {name} to {target}"));
            self.transfers.insert((target, tr.target_name()), tr);
        }
        Ok(view)
    }

    fn outgoing_view(&self, array: &str, s: &PgSnapRecord) -> PgSnapshotTransfer {
        let remote_name = format!("{array}:{}", s.name);
        let pending: Vec<&Transfer> = self
            .transfers
            .values()
            .filter(|tr| tr.source_array == array && tr.target_name() == remote_name)
            .collect();
        let landed: Vec<&TransferInfo> = self
            .arrays
            .values()
            .filter_map(|a| a.pg_snapshots.get(&remote_name))
            .filter_map(|r| r.transfer.as_ref())
            .collect();
        let started = pending
            .iter()
            .map(|tr| tr.started)
            .chain(landed.iter().map(|i| i.started))
            .min();
        let (completed, progress) = if !pending.is_empty() {
            let p = pending.iter().map(|tr| tr.progress()).fold(1.0, f64::min);
            (None, p)
        } else if landed.is_empty() {
            (None, 0.0)
        } else {
            (landed.iter().map(|i| i.completed).max(), 1.0)
        };
        let bytes = landed.iter().map(|i| i.bytes).max().unwrap_or(0);
        PgSnapshotTransfer {
            name: s.name.to_string(),
            destroyed: s.destroyed,
            started,
            completed,
            progress,
            data_transferred: if completed.is_some() { bytes } else { 0 },
        }
    }

    // ----------------------------------------------------------------------------
    // Pods
    // ----------------------------------------------------------------------------

    /// The pod named `name` that `array` is a member of.
    fn pod_key(&self, array: &str, name: &str) -> Option<u64> {
        self.pods
            .iter()
            .find(|(_, p)| p.name == name && p.arrays.iter().any(|a| a == array))
            .map(|(k, _)| *k)
    }

    fn live_pod_key(&self, array: &str, name: &str) -> Result<u64, BackendError> {
        self.arr(array)?;
        let key = self
            .pod_key(array, name)
            .ok_or_else(|| errors::does_not_exist("Pod", name))?;
        if self.pods.get(&key).is_some_and(|p| p.destroyed) {
            return Err(errors::destroyed("Pod", name));
        }
        Ok(key)
    }

    /// The pod of `volume` on `array`, if it is stretched and in sync.
    fn synced_pod_key(&self, array: &str, volume: &str) -> Option<u64> {
        if self.pods.is_empty() {
            return None;
        }
        let key = self.pod_key(array, pod_of(volume)?)?;
        self.pods
            .get(&key)
            .filter(|p| p.synced && p.arrays.len() > 1)
            .map(|_| key)
    }

    fn after_pod_volume_change(&mut self, array: &str, names: &[&str]) {
        if self.pods.is_empty() {
            return;
        }
        let mut by_pod: BTreeMap<u64, Vec<String>> = BTreeMap::new();
        for n in names {
            if let Some(key) = self.synced_pod_key(array, n) {
                by_pod.entry(key).or_default().push((*n).to_owned());
            }
        }
        for (key, names) in by_pod {
            self.mirror_pod_volumes(key, array, &names);
        }
    }

    /// Makes the replicas of `names` on every member of an in-sync stretched pod equal
    /// to those on `from`. Replicas keep their own `writing` flag and host connection
    /// count; the shared data accrues while any replica is written.
    fn mirror_pod_volumes(&mut self, key: u64, from: &str, names: &[String]) {
        let Some(pod) = self.pods.get(&key) else {
            return;
        };
        if !pod.synced || pod.arrays.len() < 2 {
            return;
        }
        let members = pod.arrays.clone();
        let t = self.now_ms;
        for name in names {
            let src = self
                .arrays
                .get(from)
                .and_then(|a| a.volumes.get(name))
                .cloned();
            let Some(src) = src else {
                for m in members.iter().filter(|m| m.as_str() != from) {
                    self.remove_volume(m, name);
                }
                continue;
            };
            let any_writing = members.iter().any(|m| {
                self.arrays
                    .get(m)
                    .and_then(|a| a.volumes.get(name))
                    .is_some_and(|v| v.writing)
            });
            let mut data = src.data.clone();
            data.checkpoint(t, any_writing);
            for m in &members {
                let Some(a) = self.arrays.get_mut(m) else {
                    continue;
                };
                let own = a.volumes.get(name);
                let writing = own.is_some_and(|v| v.writing);
                // Host connections belong to each array, not to the pod.
                let connections = own.map_or(0, |v| v.connection_count);
                let mut copy = src.clone();
                copy.writing = writing;
                copy.connection_count = connections;
                copy.data = data.clone();
                a.volumes.insert(copy);
            }
        }
    }

    fn mirror_whole_pod(&mut self, key: u64, from: &str) {
        let Some(pod) = self.pods.get(&key) else {
            return;
        };
        let prefix = pod_prefix(&pod.name);
        let mut names = BTreeSet::new();
        for m in &pod.arrays {
            if let Some(a) = self.arrays.get(m) {
                names.extend(a.volumes.names_with_prefix(&prefix));
            }
        }
        let names: Vec<String> = names.into_iter().collect();
        self.mirror_pod_volumes(key, from, &names);
    }

    /// Splits stretched pods whose link or arrays went down and resyncs those that
    /// healed.
    fn reconcile_pods(&mut self) {
        let t = self.now_ms;
        let keys: Vec<u64> = self.pods.keys().copied().collect();
        for key in keys {
            let Some(pod) = self.pods.get(&key) else {
                continue;
            };
            let (Some(a0), Some(a1)) = (pod.arrays.first(), pod.arrays.get(1)) else {
                continue;
            };
            if pod.destroyed {
                continue;
            }
            let healthy = self.path_up(a0, a1);
            let prefix = pod_prefix(&pod.name);
            let members = pod.arrays.clone();
            let name = pod.name.clone();
            if pod.synced && !healthy {
                for m in &members {
                    if let Some(a) = self.arrays.get_mut(m) {
                        for n in a.volumes.names_with_prefix(&prefix) {
                            if let Some(v) = a.volumes.get_mut(&n) {
                                v.data.checkpoint(t, v.writing);
                            }
                        }
                    }
                }
                if let Some(p) = self.pods.get_mut(&key) {
                    p.synced = false;
                    p.split_at = Some(t);
                }
                self.log(&members.join(","), format_args!("pod_split {name}"));
            } else if !pod.synced && healthy {
                let mut winner: Option<(u64, &String)> = None;
                for m in &members {
                    let total: u64 = self
                        .arrays
                        .get(m)
                        .map(|a| {
                            a.volumes
                                .names_with_prefix(&prefix)
                                .iter()
                                .filter_map(|n| a.volumes.get(n))
                                .map(|v| v.data.seq(t))
                                .fold(0u64, u64::saturating_add)
                        })
                        .unwrap_or(0);
                    if winner.is_none_or(|(best, _)| total > best) {
                        winner = Some((total, m));
                    }
                }
                let from = winner.map(|(_, m)| m.clone()).unwrap_or_else(|| a0.clone());
                if let Some(p) = self.pods.get_mut(&key) {
                    p.synced = true;
                    p.split_at = None;
                }
                self.log(
                    &members.join(","),
                    format_args!("pod_resync {name} from {from}"),
                );
                self.mirror_whole_pod(key, &from);
            }
        }
    }

    // ----------------------------------------------------------------------------
    // Helpers
    // ----------------------------------------------------------------------------

    fn new_id(&self) -> String {
        let mut buf = [0u8; 36];
        // The uuid's `Display` text (hyphenated, lowercase) without the formatter.
        self.ids
            .uuid()
            .hyphenated()
            .encode_lower(&mut buf)
            .to_owned()
    }

    /// A new id kept as its bits (for the records there are many of: volumes and
    /// snapshots); it draws from the same generator as [`Self::new_id`].
    fn new_record_id(&self) -> Id {
        record_id(&self.ids)
    }

    fn log(&mut self, array: &str, text: impl fmt::Display) {
        let now = self.now_ms;
        self.events.push(format_args!("{now} {array} {text}"));
    }

    /// [`Self::log`] of the text `write` appends to the string it is given.
    fn log_with(&mut self, array: &str, write: impl FnOnce(&mut String)) {
        let now = self.now_ms;
        self.events.push_with(|s| {
            push_i64(s, now);
            s.push(' ');
            s.push_str(array);
            s.push(' ');
            write(s);
        });
    }

    fn arr(&self, name: &str) -> Result<&ArrayRecord, BackendError> {
        self.arrays
            .get(name)
            .ok_or_else(|| errors::unreachable(name))
    }

    fn arr_mut(&mut self, name: &str) -> Result<&mut ArrayRecord, BackendError> {
        self.arrays
            .get_mut(name)
            .ok_or_else(|| errors::unreachable(name))
    }

    /// Volume `name` of `array`; "does not exist" when the array has no such volume.
    fn vol(&self, array: &str, name: &str) -> Result<&VolumeRecord, BackendError> {
        self.arr(array)?
            .volumes
            .get(name)
            .ok_or_else(|| errors::does_not_exist("Volume", name))
    }

    /// [`Self::vol`], to change.
    fn vol_mut(&mut self, array: &str, name: &str) -> Result<&mut VolumeRecord, BackendError> {
        self.arr_mut(array)?
            .volumes
            .get_mut(name)
            .ok_or_else(|| errors::does_not_exist("Volume", name))
    }

    fn link_mut(&mut self, a: &str, b: &str) -> Result<&mut LinkRecord, BackendError> {
        self.links
            .get_mut(&link_key(a, b))
            .ok_or_else(|| errors::does_not_exist("Array connection", &format!("{a}-{b}")))
    }

    /// Replication can flow between `a` and `b`: connected, link not cut, both up.
    fn path_up(&self, a: &str, b: &str) -> bool {
        self.is_link_up(a, b) && self.is_array_up(a) && self.is_array_up(b)
    }

    fn group_mut(&mut self, array: &str, name: &str) -> Result<&mut GroupRecord, BackendError> {
        let g = self
            .arr_mut(array)?
            .groups
            .get_mut(name)
            .ok_or_else(|| errors::does_not_exist("Protection group", name))?;
        if g.destroyed {
            return Err(errors::destroyed("Protection group", name));
        }
        Ok(g)
    }

    fn local_group(&self, array: &str, name: &str) -> Result<&GroupRecord, BackendError> {
        let g = self
            .arr(array)?
            .groups
            .get(name)
            .ok_or_else(|| errors::does_not_exist("Protection group", name))?;
        if g.destroyed {
            return Err(errors::destroyed("Protection group", name));
        }
        if !g.is_local {
            return Err(errors::invalid(
                name,
                &format!(
                    "Protection group is replicated from {}; change it on its source.",
                    g.source_array
                ),
            ));
        }
        Ok(g)
    }

    fn for_replicated_copies(
        &mut self,
        array: &str,
        group: &str,
        targets: &[String],
        f: impl Fn(&mut GroupRecord),
    ) {
        let remote = format!("{array}:{group}");
        for t in targets {
            if let Some(rg) = self
                .arrays
                .get_mut(t)
                .and_then(|a| a.groups.get_mut(&remote))
            {
                f(rg);
            }
        }
    }

    fn check_new_volume_name(&self, array: &str, name: &str) -> Result<(), BackendError> {
        if !valid_volume_name(name) {
            return Err(errors::invalid(name, "Invalid volume name."));
        }
        let a = self.arr(array)?;
        if a.volumes.contains_key(name) {
            return Err(errors::already_exists("Volume", name));
        }
        if let Some(pod) = pod_of(name) {
            self.live_pod_key(array, pod)?;
        }
        Ok(())
    }

    fn new_volume_record(
        &self,
        name: &str,
        provisioned: u64,
        source: Option<Arc<str>>,
        data: Data,
    ) -> VolumeRecord {
        let mut serial = [0u8; SERIAL_BYTES];
        serial.copy_from_slice(&self.ids.uuid().as_bytes()[..SERIAL_BYTES]);
        VolumeRecord {
            id: self.new_record_id(),
            name: Arc::from(name),
            serial,
            provisioned,
            created: self.now_ms,
            destroyed: false,
            source,
            connection_count: 0,
            writing: false,
            data,
        }
    }

    /// Moves the volume `name` to `new_name` (its snapshots and group memberships
    /// follow it) and returns it.
    fn rekey_volume(
        &mut self,
        array: &str,
        name: &str,
        new_name: &str,
    ) -> Result<&VolumeRecord, BackendError> {
        let a = self.arr_mut(array)?;
        let mut v = a
            .volumes
            .remove(name)
            .ok_or_else(|| errors::does_not_exist("Volume", name))?;
        v.name = Arc::from(new_name);
        let id = v.id;
        let shared_name = Arc::clone(&v.name);
        a.volumes.insert(v);
        for g in a.groups.values_mut() {
            if g.members.remove(name) {
                g.members.insert(new_name.to_owned());
            }
        }
        // Snapshots follow their volume (by id, not by a name an earlier volume had).
        let followers: Vec<SnapKey> = a
            .snaps_by_source
            .get(name)
            .map(|index| {
                index
                    .names
                    .iter()
                    .filter(|k| {
                        a.indexed_snapshot(k)
                            .is_some_and(|s| s.source_id() == Some(id))
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        if !followers.is_empty() {
            let source = match a.snaps_by_source.get(new_name) {
                Some(index) => Arc::clone(&index.source),
                None => shared_name,
            };
            for k in followers {
                if let Some(pg) = a.pg_snapshots.get_mut(&*k.pg) {
                    if let Some(m) = pg.members.get_mut(k.i) {
                        m.source = Arc::clone(&source);
                    }
                }
                a.unindex_snapshot(name, k.parts());
                a.snaps_by_source
                    .entry(Arc::clone(&source))
                    .or_insert_with(|| SourceSnaps {
                        source: Arc::clone(&source),
                        names: SortedNames::default(),
                    })
                    .names
                    .insert(k);
            }
        }
        a.volumes
            .get(new_name)
            .ok_or_else(|| errors::does_not_exist("Volume", new_name))
    }

    fn remove_volume(&mut self, array: &str, name: &str) {
        if let Some(a) = self.arrays.get_mut(array) {
            a.volumes.remove(name);
            for g in a.groups.values_mut() {
                g.members.remove(name);
            }
        }
    }

    fn remove_pg_snapshot(&mut self, array: &str, name: &str) {
        let Some(a) = self.arrays.get_mut(array) else {
            return;
        };
        let Some(s) = a.pg_snapshots.remove(name) else {
            return;
        };
        for (m, c) in s.members.iter().zip(s.volumes.iter()) {
            a.unindex_snapshot(&m.source, (&s.name, &c.name));
        }
    }
}

/// A new record id drawn from `ids` (see [`ArrayFabricState::new_record_id`]).
fn record_id(ids: &IdGenerator) -> Id {
    Id(*ids.uuid().as_bytes())
}

fn schedule_active(g: &GroupRecord) -> bool {
    g.is_local && !g.destroyed && g.schedule.enabled
}

/// Remaining time at which a stalled transfer hangs.
fn stall_floor(total_ms: i64) -> i64 {
    let floor = (total_ms as f64 * (1.0 - STALLED_PROGRESS)).ceil() as i64;
    floor.clamp(1, total_ms.max(1))
}

fn check_size(name: &str, provisioned: u64) -> Result<(), BackendError> {
    if provisioned == 0 || provisioned % 512 != 0 {
        return Err(errors::invalid(
            name,
            "Invalid volume size; it must be a positive multiple of 512 bytes.",
        ));
    }
    Ok(())
}

fn pod_view(p: &PodRecord, viewer: &str) -> Pod {
    Pod {
        id: p.id.clone(),
        name: p.name.clone(),
        arrays: p
            .arrays
            .iter()
            .map(|a| {
                let online = a == viewer || p.synced;
                PodArray {
                    name: a.clone(),
                    status: if online { "online" } else { "offline" }.to_owned(),
                    frozen_at: if online { None } else { p.split_at },
                }
            })
            .collect(),
        promotion_status: match p.promotion {
            PromotionState::Promoted => "promoted",
            PromotionState::Demoted => "demoted",
        }
        .to_owned(),
        destroyed: p.destroyed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protector_core::BackendErrorKind;

    const GIB: u64 = 1 << 30;

    fn s(x: &str) -> String {
        x.to_owned()
    }

    /// Arrays `a` and `b`, connected; on `a` volume `v1` (written since t=0) in `pg1`,
    /// which targets `b` and is allowed there.
    fn replicated_pair() -> ArrayFabricState {
        let mut f = ArrayFabricState::new(1);
        f.add_array("a", "ta", 0).unwrap();
        f.add_array("b", "tb", 0).unwrap();
        f.connect("a", "b", 0).unwrap();
        f.create_volume("a", "v1", GIB, 0).unwrap();
        f.set_writing("a", "v1", true, 0).unwrap();
        f.create_protection_group("a", "pg1", 0).unwrap();
        f.add_protection_group_volumes("a", "pg1", &[s("v1")], 0)
            .unwrap();
        f.add_protection_group_targets("a", "pg1", &[s("b")], 0)
            .unwrap();
        f.allow_protection_group("b", "a:pg1", 0).unwrap();
        f
    }

    fn replicate_now() -> PgSnapshotOptions {
        PgSnapshotOptions {
            replicate_now: true,
            ..Default::default()
        }
    }

    fn snaps_of(
        f: &mut ArrayFabricState,
        array: &str,
        source: &str,
        t: i64,
    ) -> Vec<VolumeSnapshot> {
        let q = VolumeSnapshotQuery {
            source_names: vec![s(source)],
            ..Default::default()
        };
        f.list_volume_snapshots(array, &q, t).unwrap()
    }

    fn transfers(
        f: &mut ArrayFabricState,
        array: &str,
        name: &str,
        t: i64,
    ) -> Vec<PgSnapshotTransfer> {
        let q = PgSnapshotQuery {
            names: vec![s(name)],
            ..Default::default()
        };
        f.list_pg_snapshot_transfers(array, &q, t).unwrap()
    }

    #[test]
    fn replicate_now_snapshot_lands_on_the_target_after_the_transfer_time_and_not_before() {
        let mut f = replicated_pair();
        let snap = f
            .create_pg_snapshot("a", "pg1", &replicate_now(), 1_000)
            .unwrap();
        assert_eq!(snap.name, "pg1.1");

        let before = transfers(&mut f, "b", "a:pg1", 15_999);
        assert_eq!(before.len(), 1);
        assert_eq!(before[0].name, "a:pg1.1");
        assert!(before[0].progress < 1.0 && before[0].progress > 0.9);
        assert_eq!(before[0].completed, None);
        assert!(snaps_of(&mut f, "b", "a:v1", 15_999).is_empty());
        assert!(f
            .list_pg_snapshots("b", &PgSnapshotQuery::default(), 15_999)
            .unwrap()
            .is_empty());
        let err = f
            .copy_volume("b", "restored", "a:pg1.1.v1", false, 15_999)
            .unwrap_err();
        assert_eq!(err.kind, BackendErrorKind::NotFound);

        let after = transfers(&mut f, "b", "a:pg1", 16_000);
        assert_eq!(after[0].progress, 1.0);
        assert_eq!(after[0].started, Some(1_000));
        assert_eq!(after[0].completed, Some(16_000));
        assert_eq!(snaps_of(&mut f, "b", "a:v1", 16_000).len(), 1);
        let source_side = transfers(&mut f, "a", "pg1.1", 16_000);
        assert_eq!(source_side[0].completed, Some(16_000));
    }

    #[test]
    fn replicated_snapshots_are_named_after_the_source_array_group_and_volume() {
        let mut f = replicated_pair();
        f.create_pg_snapshot("a", "pg1", &replicate_now(), 0)
            .unwrap();
        let landed = snaps_of(&mut f, "b", "a:v1", 20_000);
        assert_eq!(landed[0].name, "a:pg1.1.v1");
        assert_eq!(landed[0].source.name, "a:v1");
        assert_eq!(landed[0].suffix, "1");
        let pgs = f
            .list_pg_snapshots("b", &PgSnapshotQuery::default(), 20_000)
            .unwrap();
        assert_eq!(pgs[0].name, "a:pg1.1");
        assert_eq!(pgs[0].source.name, "a:pg1");
        let groups = f
            .list_protection_groups("b", &[s("a:pg1")], 20_000)
            .unwrap();
        assert!(!groups[0].is_local);
        assert_eq!(groups[0].source.name, "a");
        let local = snaps_of(&mut f, "a", "v1", 20_000);
        assert_eq!(local[0].name, "pg1.1.v1");
    }

    #[test]
    fn the_newest_replicated_snapshot_is_found_by_created() {
        let mut f = replicated_pair();
        for i in 0..10 {
            f.create_pg_snapshot("a", "pg1", &replicate_now(), i * 60_000)
                .unwrap();
        }
        let landed = snaps_of(&mut f, "b", "a:v1", 3_600_000);
        assert_eq!(landed.len(), 10);
        let newest = landed.iter().max_by_key(|v| v.created).unwrap();
        assert_eq!(newest.name, "a:pg1.10.v1");
        assert_eq!(newest.created, 540_000);
        // Name order would have picked the wrong one.
        assert_eq!(landed.last().unwrap().name, "a:pg1.9.v1");
        assert_eq!(
            f.snapshot_write_seq("b", &newest.name, 3_600_000).unwrap(),
            540
        );
    }

    #[test]
    fn snapshots_listed_newest_first_come_by_created_then_name_and_stop_at_the_limit() {
        let mut f = replicated_pair();
        f.create_volume("a", "v2", GIB, 0).unwrap();
        f.add_protection_group_volumes("a", "pg1", &[s("v2")], 0)
            .unwrap();
        for i in 0..10 {
            f.create_pg_snapshot("a", "pg1", &replicate_now(), i * 60_000)
                .unwrap();
        }
        let names = |f: &mut ArrayFabricState, q: &VolumeSnapshotQuery| -> Vec<String> {
            f.list_volume_snapshots("b", q, 3_600_000)
                .unwrap()
                .into_iter()
                .map(|v| v.name)
                .collect()
        };
        let newest = VolumeSnapshotQuery {
            source_names: vec![s("a:v1")],
            destroyed: Some(false),
            order: SnapshotOrder::NewestFirst,
            limit: Some(3),
            ..Default::default()
        };
        assert_eq!(
            names(&mut f, &newest),
            ["a:pg1.10.v1", "a:pg1.9.v1", "a:pg1.8.v1"]
        );
        // Two sources: snapshots taken together tie on created and go by name.
        let both = VolumeSnapshotQuery {
            source_names: vec![s("a:v1"), s("a:v2")],
            ..newest.clone()
        };
        assert_eq!(
            names(&mut f, &both),
            ["a:pg1.10.v2", "a:pg1.10.v1", "a:pg1.9.v2"]
        );
        let in_name_order = VolumeSnapshotQuery {
            order: SnapshotOrder::Name,
            ..newest.clone()
        };
        assert_eq!(
            names(&mut f, &in_name_order),
            ["a:pg1.1.v1", "a:pg1.10.v1", "a:pg1.2.v1"]
        );
        let none = VolumeSnapshotQuery {
            limit: Some(0),
            ..newest
        };
        assert!(names(&mut f, &none).is_empty());
    }

    #[test]
    fn copy_refuses_to_overwrite_without_the_flag_and_replaces_the_data_with_it() {
        let mut f = replicated_pair();
        f.create_pg_snapshot("a", "pg1", &replicate_now(), 10_000)
            .unwrap();
        f.create_volume("b", "v1", GIB, 30_000).unwrap();
        let err = f
            .copy_volume("b", "v1", "a:pg1.1.v1", false, 30_000)
            .unwrap_err();
        assert_eq!(err.kind, BackendErrorKind::Conflict);
        assert_eq!(err.status, Some(400));
        assert!(err.message.contains("already exists"), "{}", err.message);
        let id_before = f
            .list_volumes("b", &VolumeQuery::default(), 30_000)
            .unwrap()[0]
            .id
            .clone();

        let copied = f
            .copy_volume("b", "v1", "a:pg1.1.v1", true, 30_000)
            .unwrap();
        assert_eq!(copied.id, id_before);
        assert_eq!(copied.source.map(|r| r.name).as_deref(), Some("a:pg1.1.v1"));
        assert_eq!(f.write_seq("b", "v1", 90_000).unwrap(), 10);
    }

    #[test]
    fn missing_names_answer_400_does_not_exist() {
        let mut f = replicated_pair();
        let by_name = VolumeQuery {
            names: vec![s("nope")],
            ..Default::default()
        };
        let errs = [
            f.list_volumes("a", &by_name, 0).unwrap_err(),
            f.rename_volume("a", "nope", "other", 0).unwrap_err(),
            f.destroy_volume("a", "nope", 0).unwrap_err(),
            f.copy_volume("a", "x", "nope", false, 0).unwrap_err(),
            f.list_protection_groups("a", &[s("nope")], 0).unwrap_err(),
            f.create_pg_snapshot("a", "nope", &replicate_now(), 0)
                .unwrap_err(),
            f.destroy_pg_snapshot("a", "pg1.9", 0).unwrap_err(),
            f.list_pods("a", &[s("nope")], 0).unwrap_err(),
            f.allow_protection_group("b", "a:nope", 0).unwrap_err(),
        ];
        for e in errs {
            assert_eq!(e.kind, BackendErrorKind::NotFound, "{e}");
            assert_eq!(e.status, Some(400), "{e}");
            assert!(e.message.contains("does not exist"), "{}", e.message);
        }
    }

    #[test]
    fn eradicate_before_destroy_is_refused_for_volumes_groups_snapshots_and_pods() {
        let mut f = replicated_pair();
        f.create_pg_snapshot("a", "pg1", &PgSnapshotOptions::default(), 0)
            .unwrap();
        f.create_pod("a", "pod1", 0).unwrap();
        let errs = [
            f.eradicate_volume("a", "v1", 0).unwrap_err(),
            f.eradicate_protection_group("a", "pg1", 0).unwrap_err(),
            f.eradicate_pg_snapshot("a", "pg1.1", 0).unwrap_err(),
            f.eradicate_pod("a", "pod1", 0).unwrap_err(),
        ];
        for e in errs {
            assert_eq!(e.kind, BackendErrorKind::Conflict, "{e}");
            assert!(
                e.message.contains("has not been destroyed"),
                "{}",
                e.message
            );
        }
        f.set_writing("a", "v1", false, 0).unwrap();
        f.destroy_volume("a", "v1", 0).unwrap();
        let again = f.destroy_volume("a", "v1", 0).unwrap_err();
        assert!(
            again.message.contains("has been destroyed"),
            "{}",
            again.message
        );
        f.eradicate_volume("a", "v1", 0).unwrap();
        assert!(f
            .list_protection_group_volumes("a", "pg1", 0)
            .unwrap()
            .is_empty());
        f.destroy_pg_snapshot("a", "pg1.1", 0).unwrap();
        f.eradicate_pg_snapshot("a", "pg1.1", 0).unwrap();
        assert!(snaps_of(&mut f, "a", "v1", 0).is_empty());
    }

    #[test]
    fn allowing_a_group_twice_is_refused_with_already_allowed_on() {
        let mut f = replicated_pair();
        let e = f.allow_protection_group("b", "a:pg1", 0).unwrap_err();
        assert_eq!(e.kind, BackendErrorKind::Conflict);
        assert!(e.message.contains("already allowed on"), "{}", e.message);
        let e = f
            .add_protection_group_targets("a", "pg1", &[s("b")], 0)
            .unwrap_err();
        assert!(e.message.contains("already includes"), "{}", e.message);
    }

    #[test]
    fn snapshots_do_not_flow_to_a_target_that_has_not_allowed_the_group() {
        let mut f = ArrayFabricState::new(1);
        f.add_array("a", "ta", 0).unwrap();
        f.add_array("b", "tb", 0).unwrap();
        f.connect("a", "b", 0).unwrap();
        f.create_protection_group("a", "pg1", 0).unwrap();
        f.add_protection_group_targets("a", "pg1", &[s("b")], 0)
            .unwrap();
        let targets = f.list_protection_group_targets("a", "pg1", 0).unwrap();
        assert_eq!(
            (targets[0].allowed, targets[0].status.as_str()),
            (false, "disallowed")
        );
        f.create_pg_snapshot("a", "pg1", &replicate_now(), 0)
            .unwrap();
        assert!(f.pending_transfers(0).is_empty());
        f.allow_protection_group("b", "a:pg1", 0).unwrap();
        let targets = f.list_protection_group_targets("a", "pg1", 0).unwrap();
        assert_eq!(targets[0].status, "replicating");
    }

    #[test]
    fn scheduled_replication_takes_and_replicates_a_snapshot_every_interval() {
        let mut f = replicated_pair();
        let hourly = ReplicationSchedule {
            enabled: true,
            frequency_ms: 3_600_000,
        };
        f.set_replication_schedule("a", "pg1", &hourly, 0).unwrap();
        let local = f
            .list_pg_snapshots("a", &PgSnapshotQuery::default(), 3 * 3_600_000 + 1)
            .unwrap();
        let created: Vec<i64> = local.iter().map(|s| s.created).collect();
        assert_eq!(created, vec![3_600_000, 7_200_000, 10_800_000]);
        let remote = f
            .list_pg_snapshots("b", &PgSnapshotQuery::default(), 3 * 3_600_000 + 1)
            .unwrap();
        assert_eq!(remote.len(), 2, "the third is still in transfer");
        let landed = transfers(&mut f, "b", "a:pg1", 3 * 3_600_000 + 15_000);
        assert!(landed.iter().all(|t| t.progress == 1.0));
        assert_eq!(landed.len(), 3);
        assert_eq!(
            f.snapshot_write_seq("b", "a:pg1.2.v1", 4 * 3_600_000 - 1)
                .unwrap(),
            7_200
        );
    }

    #[test]
    fn target_retention_keeps_recent_snapshots_and_thins_older_ones() {
        let mut f = replicated_pair();
        let retention = TargetRetention {
            all_for_sec: 3_600,
            per_day: 2,
            days: 1,
        };
        f.set_target_retention("a", "pg1", &retention, 0).unwrap();
        f.set_transfer_time_ms(0, 0);
        let quarter = 900_000;
        for i in 0..(4 * 48) {
            f.create_pg_snapshot("a", "pg1", &replicate_now(), i * quarter)
                .unwrap();
        }
        let now = 4 * 48 * quarter;
        let remote = f
            .list_pg_snapshots("b", &PgSnapshotQuery::default(), now)
            .unwrap();
        let oldest_kept = remote.iter().map(|s| s.created).min().unwrap();
        assert!(now - oldest_kept <= (3_600 + 86_400) * 1_000);
        // Retention ran when the last one landed (47.75 h): 5 within the hour before
        // (46.75 h … 47.75 h), then the newest of each older 12 h slot reaching back
        // a day (46.5 h, 35.75 h, 23.75 h).
        assert_eq!(remote.len(), 5 + 3);
        let local = f
            .list_pg_snapshots("a", &PgSnapshotQuery::default(), now)
            .unwrap();
        assert_eq!(local.len(), 4 * 48);
    }

    #[test]
    fn a_cut_link_holds_transfers_and_repair_completes_them_after_the_remaining_time() {
        let mut f = replicated_pair();
        f.create_pg_snapshot("a", "pg1", &replicate_now(), 0)
            .unwrap();
        f.cut_link("a", "b", 5_000).unwrap();
        let conns = f.list_array_connections("a", 5_000).unwrap();
        assert_eq!(conns[0].status, "connecting");
        let held = transfers(&mut f, "b", "a:pg1", 100_000);
        assert_eq!(held[0].completed, None);
        assert!((held[0].progress - 5.0 / 15.0).abs() < 1e-9);
        f.repair_link("a", "b", 100_000).unwrap();
        assert_eq!(transfers(&mut f, "b", "a:pg1", 109_999)[0].completed, None);
        assert_eq!(
            transfers(&mut f, "b", "a:pg1", 110_000)[0].completed,
            Some(110_000)
        );
        assert_eq!(
            f.list_array_connections("b", 110_000).unwrap()[0].status,
            "connected"
        );
    }

    #[test]
    fn stalled_replication_hangs_below_one_until_released() {
        let mut f = replicated_pair();
        f.stall_replication("a", "b", 0).unwrap();
        f.create_pg_snapshot("a", "pg1", &replicate_now(), 0)
            .unwrap();
        let hung = transfers(&mut f, "b", "a:pg1", 3_600_000);
        assert_eq!(hung[0].completed, None);
        assert_eq!(hung[0].progress, STALLED_PROGRESS);
        f.release_replication("a", "b", 3_600_000).unwrap();
        let done = transfers(&mut f, "b", "a:pg1", 3_607_500);
        assert_eq!(done[0].completed, Some(3_607_500));
    }

    #[test]
    fn an_array_that_goes_down_holds_its_transfers_and_stops_its_writes() {
        let mut f = replicated_pair();
        f.create_pg_snapshot("a", "pg1", &replicate_now(), 0)
            .unwrap();
        f.take_array_down("b", 10_000).unwrap();
        assert!(f.check_call("b", "tb").is_err());
        f.take_array_down("a", 20_000).unwrap();
        assert_eq!(f.write_seq("a", "v1", 99_000).unwrap(), 20);
        f.bring_array_up("a", 100_000).unwrap();
        f.bring_array_up("b", 100_000).unwrap();
        assert_eq!(
            transfers(&mut f, "b", "a:pg1", 105_000)[0].completed,
            Some(105_000)
        );
        assert_eq!(f.write_seq("a", "v1", 200_000).unwrap(), 20);
    }

    #[test]
    fn pod_volumes_exist_on_both_arrays_and_diverge_after_a_link_cut() {
        let mut f = ArrayFabricState::new(3);
        f.add_array("a", "ta", 0).unwrap();
        f.add_array("b", "tb", 0).unwrap();
        f.connect("a", "b", 0).unwrap();
        f.create_pod("a", "pod1", 0).unwrap();
        f.create_volume("a", "v1", GIB, 0).unwrap();
        let moved = f.move_volume("a", "v1", Some("pod1"), 0).unwrap();
        assert_eq!(moved.name, "pod1::v1");
        f.stretch_pod("a", "pod1", "b", 0).unwrap();
        let on_b = f
            .list_volumes(
                "b",
                &VolumeQuery {
                    pod: Some(s("pod1")),
                    ..Default::default()
                },
                0,
            )
            .unwrap();
        assert_eq!(on_b.len(), 1);
        assert_eq!(on_b[0].id, moved.id);

        f.set_writing("a", "pod1::v1", true, 0).unwrap();
        assert_eq!(f.write_seq("b", "pod1::v1", 10_000).unwrap(), 10);
        f.cut_link("a", "b", 10_000).unwrap();
        f.set_writing("b", "pod1::v1", true, 10_000).unwrap();
        f.set_writing("a", "pod1::v1", false, 15_000).unwrap();
        assert_eq!(f.write_seq("a", "pod1::v1", 40_000).unwrap(), 15);
        assert_eq!(f.write_seq("b", "pod1::v1", 40_000).unwrap(), 40);
        let view = f.list_pods("a", &[], 40_000).unwrap();
        let b_seen_from_a = view[0].arrays.iter().find(|p| p.name == "b").unwrap();
        assert_eq!(
            (b_seen_from_a.status.as_str(), b_seen_from_a.frozen_at),
            ("offline", Some(10_000))
        );

        f.repair_link("a", "b", 40_000).unwrap();
        assert_eq!(f.write_seq("a", "pod1::v1", 50_000).unwrap(), 50);
        assert_eq!(
            f.list_pods("a", &[], 50_000).unwrap()[0].arrays[1].status,
            "online"
        );
        let e = f.move_volume("a", "pod1::v1", None, 50_000).unwrap_err();
        assert_eq!(e.kind, BackendErrorKind::Invalid);
    }

    #[test]
    fn host_connections_of_a_stretched_pod_volume_belong_to_each_array() {
        let mut f = ArrayFabricState::new(3);
        f.add_array("a", "ta", 0).unwrap();
        f.add_array("b", "tb", 0).unwrap();
        f.connect("a", "b", 0).unwrap();
        f.create_pod("a", "pod1", 0).unwrap();
        f.create_volume("a", "v1", GIB, 0).unwrap();
        f.move_volume("a", "v1", Some("pod1"), 0).unwrap();
        f.stretch_pod("a", "pod1", "b", 0).unwrap();
        f.set_connection_count("a", "pod1::v1", 1, 0).unwrap();
        // A write on A mirrors the data, not A's host connection.
        f.set_writing("a", "pod1::v1", true, 1_000).unwrap();
        let count = |f: &mut ArrayFabricState, array: &str| {
            f.all_volumes(2_000)
                .into_iter()
                .find(|(a, v)| a == array && v.name == "pod1::v1")
                .map(|(_, v)| v.connection_count)
        };
        assert_eq!(count(&mut f, "a"), Some(1));
        assert_eq!(count(&mut f, "b"), Some(0));
        // With no host on B, B may destroy it (and so may A once its host is gone).
        f.set_writing("a", "pod1::v1", false, 2_000).unwrap();
        assert!(f.destroy_volume("b", "pod1::v1", 3_000).is_ok());
    }

    #[test]
    fn unstretching_an_unreachable_peer_needs_with_unknown_and_drops_its_replicas() {
        let mut f = ArrayFabricState::new(3);
        f.add_array("a", "ta", 0).unwrap();
        f.add_array("b", "tb", 0).unwrap();
        f.connect("a", "b", 0).unwrap();
        f.create_pod("a", "pod1", 0).unwrap();
        f.stretch_pod("a", "pod1", "b", 0).unwrap();
        f.create_volume("b", "pod1::v1", GIB, 0).unwrap();
        assert_eq!(f.all_volumes(0).len(), 2);
        f.take_array_down("a", 1_000).unwrap();
        assert!(f.unstretch_pod("b", "pod1", "a", false, 1_000).is_err());
        f.unstretch_pod("b", "pod1", "a", true, 1_000).unwrap();
        let left: Vec<String> = f
            .all_volumes(1_000)
            .into_iter()
            .map(|(a, v)| format!("{a}/{}", v.name))
            .collect();
        assert_eq!(left, vec![s("b/pod1::v1")]);
    }

    #[test]
    fn write_sequences_advance_only_while_writing_and_are_captured_by_snapshots() {
        let mut f = replicated_pair();
        f.create_volume("a", "idle", GIB, 0).unwrap();
        f.create_pg_snapshot("a", "pg1", &PgSnapshotOptions::default(), 10_000)
            .unwrap();
        assert_eq!(f.snapshot_write_seq("a", "pg1.1.v1", 10_000).unwrap(), 10);
        assert_eq!(f.write_seq("a", "idle", 50_000).unwrap(), 0);
        f.copy_volume("a", "copy", "pg1.1.v1", false, 60_000)
            .unwrap();
        assert_eq!(f.write_seq("a", "copy", 120_000).unwrap(), 10);
        f.set_writing("a", "v1", false, 130_500).unwrap();
        assert_eq!(f.write_seq("a", "v1", 300_000).unwrap(), 130);
    }

    #[test]
    fn renames_keep_data_and_group_membership() {
        let mut f = replicated_pair();
        f.rename_volume("a", "v1", "volume-1-cinder", 5_000)
            .unwrap();
        assert_eq!(f.write_seq("a", "volume-1-cinder", 5_000).unwrap(), 5);
        f.create_pg_snapshot("a", "pg1", &PgSnapshotOptions::default(), 5_000)
            .unwrap();
        f.rename_volume("a", "volume-1-cinder", "volume-1-cinder-unmanaged", 6_000)
            .unwrap();
        let snaps = snaps_of(&mut f, "a", "volume-1-cinder-unmanaged", 6_000);
        assert_eq!(snaps[0].name, "pg1.1.volume-1-cinder");
        assert!(snaps_of(&mut f, "a", "volume-1-cinder", 6_000).is_empty());
        f.rename_volume("a", "volume-1-cinder-unmanaged", "volume-1-cinder", 6_000)
            .unwrap();
        assert_eq!(
            f.list_protection_group_volumes("a", "pg1", 5_000).unwrap(),
            vec![s("volume-1-cinder")]
        );
        let e = f
            .rename_volume("a", "volume-1-cinder", "bad.name", 5_000)
            .unwrap_err();
        assert_eq!(e.kind, BackendErrorKind::Invalid);
    }

    #[test]
    fn a_connected_volume_cannot_be_destroyed() {
        let mut f = replicated_pair();
        f.set_connection_count("a", "v1", 1, 0).unwrap();
        let e = f.destroy_volume("a", "v1", 0).unwrap_err();
        assert!(
            e.message
                .contains("cannot be deleted due to existing connections"),
            "{}",
            e.message
        );
    }

    #[test]
    fn names_split_at_pod_separators_as_the_string_searches_split_them() {
        for name in [
            "", ":", "::", ":::", "::::", "a", "a:b", "a::b", "a:::b", "pod::vol", ":a::b:",
            "p::q::r", "a::", "::a", "x:y::z:w", "é::ü", "vol-1",
        ] {
            assert_eq!(split_pod(name), name.split_once("::"), "{name:?}");
            assert_eq!(Some(after_pod(name)), name.rsplit("::").next(), "{name:?}");
        }
    }

    #[test]
    fn object_names_are_ascii_letters_digits_and_inner_hyphens() {
        for ok in ["a", "A-1", "vol-abc-9", &"x".repeat(MAX_NAME_LEN)] {
            assert!(valid_object_name(ok), "{ok:?}");
        }
        for bad in [
            "",
            "-a",
            "a_b",
            "a.b",
            "é",
            "aé",
            "a b",
            &"x".repeat(MAX_NAME_LEN + 1),
        ] {
            assert!(!valid_object_name(bad), "{bad:?}");
        }
    }

    fn key(name: &str) -> SnapKey {
        let (pg, vol) = name.rsplit_once('.').unwrap();
        SnapKey {
            pg: Arc::from(pg),
            vol: Arc::from(vol),
            i: 0,
        }
    }

    #[test]
    fn sorted_names_keep_their_names_in_order_once_each() {
        let mut names = SortedNames::default();
        for n in [
            "pg.2.v", "pg.1.v", "pg.10.v", "pg.3.v", "pg.1.v", "a.1.v", "pg.1-.v", "pg.1.w",
        ] {
            names.insert(key(n));
        }
        let listed: Vec<String> = names
            .iter()
            .map(|k| format!("{}.{}", k.pg, k.vol))
            .collect();
        // As the joined names sort: `-` comes before `.`, which comes before digits.
        assert_eq!(
            listed,
            ["a.1.v", "pg.1-.v", "pg.1.v", "pg.1.w", "pg.10.v", "pg.2.v", "pg.3.v"]
        );
        assert!(!names.insert(key("pg.3.v")));
        assert!(names.remove(("pg.10", "v")));
        assert!(!names.remove(("pg.10", "v")));
        assert!(!names.remove(("zz", "v")));
        for n in ["a.1.v", "pg.1-.v", "pg.1.v", "pg.1.w", "pg.2.v", "pg.3.v"] {
            let (pg, vol) = n.rsplit_once('.').unwrap();
            assert!(names.remove((pg, vol)), "{n}");
        }
        assert!(names.is_empty());
    }

    #[test]
    fn joined_names_compare_and_match_prefixes_as_their_texts_do() {
        let pairs = [
            ("pg.1", "v"),
            ("pg.1-", "v"),
            ("pg.10", "a"),
            ("pg.1", "v-2"),
            ("pg", "1"),
            ("p", "g"),
            ("pg.1", ""),
            ("a:pg.1", "pod::v"),
        ];
        for x in pairs {
            let jx = format!("{}.{}", x.0, x.1);
            for y in pairs {
                let jy = format!("{}.{}", y.0, y.1);
                assert_eq!(cmp_joined(x, y), jx.cmp(&jy), "{jx} vs {jy}");
            }
            for p in [
                "", "p", "pg.", "pg.1", "pg.1.", "pg.1.v", "pg.1.v-", "pg.10", "a:",
            ] {
                assert_eq!(joined_starts_with(x, p), jx.starts_with(p), "{jx} / {p}");
            }
        }
    }

    #[test]
    fn volume_snapshots_are_found_in_their_group_snapshot_by_name() {
        let mut f = replicated_pair();
        f.create_pg_snapshot("a", "pg1", &replicate_now(), 1_000)
            .unwrap();
        let a = &f.arrays["a"];
        let s = a.snapshot("pg1.1.v1").unwrap();
        assert_eq!(s.name(), "pg1.1.v1");
        assert_eq!(s.key(), ("pg1.1", "v1"));
        assert!(s.source_id().is_some());
        for missing in ["pg1.1", "pg1.1.v9", "pg1.2.v1", "pg1", ""] {
            assert!(a.snapshot(missing).is_none(), "{missing}");
        }
        f.advance_to(20_000);
        let b = &f.arrays["b"];
        let landed = b.snapshot("a:pg1.1.v1").unwrap();
        assert_eq!(&*landed.member().source, "a:v1");
        assert!(landed.source_id().is_none());
        assert!(Arc::ptr_eq(
            &landed.pg.volumes,
            &f.arrays["a"].pg_snapshots["pg1.1"].volumes
        ));
    }

    #[test]
    fn volume_snapshots_of_a_large_group_snapshot_are_found_by_name_on_both_arrays() {
        let mut f = replicated_pair();
        // More volumes than a lookup searches: the snapshot builds its name table.
        let names: Vec<String> = (0..=SEARCHED_VOLUMES).map(|i| format!("w{i}")).collect();
        for n in &names {
            f.create_volume("a", n, GIB, 0).unwrap();
        }
        f.add_protection_group_volumes("a", "pg1", &names, 0)
            .unwrap();
        f.create_pg_snapshot("a", "pg1", &replicate_now(), 1_000)
            .unwrap();
        f.advance_to(60_000);
        for (array, prefix) in [("a", ""), ("b", "a:")] {
            let arr = &f.arrays[array];
            assert!(arr.pg_snapshots[&format!("{prefix}pg1.1")].volumes.len() > SEARCHED_VOLUMES);
            for n in names.iter().chain([&s("v1")]) {
                let found = arr.snapshot(&format!("{prefix}pg1.1.{n}")).unwrap();
                assert_eq!(found.key(), (&*format!("{prefix}pg1.1"), n.as_str()));
                assert_eq!(&*found.member().source, format!("{prefix}{n}"));
            }
            for missing in ["w", "w00", "v2", ""] {
                assert!(
                    arr.snapshot(&format!("{prefix}pg1.1.{missing}")).is_none(),
                    "{missing}"
                );
            }
        }
    }

    #[test]
    fn listings_by_name_prefix_names_and_source_go_by_the_joined_names() {
        let mut f = replicated_pair();
        f.create_volume("a", "v2", GIB, 0).unwrap();
        f.add_protection_group_volumes("a", "pg1", &[s("v2")], 0)
            .unwrap();
        for suffix in ["1", "1-", "10"] {
            let o = PgSnapshotOptions {
                suffix: Some(s(suffix)),
                ..Default::default()
            };
            f.create_pg_snapshot("a", "pg1", &o, 0).unwrap();
        }
        let list = |f: &mut ArrayFabricState, q: VolumeSnapshotQuery| -> Vec<String> {
            let listed = f.list_volume_snapshots("a", &q, 0).unwrap();
            listed.into_iter().map(|v| v.name).collect()
        };
        assert_eq!(
            list(&mut f, VolumeSnapshotQuery::default()),
            [
                "pg1.1-.v1",
                "pg1.1-.v2",
                "pg1.1.v1",
                "pg1.1.v2",
                "pg1.10.v1",
                "pg1.10.v2"
            ]
        );
        let prefix = VolumeSnapshotQuery {
            name_prefix: Some(s("pg1.1.")),
            ..Default::default()
        };
        assert_eq!(list(&mut f, prefix), ["pg1.1.v1", "pg1.1.v2"]);
        let names = VolumeSnapshotQuery {
            names: vec![s("pg1.10.v2"), s("pg1.1.v1"), s("pg1.10.v2")],
            ..Default::default()
        };
        assert_eq!(list(&mut f, names), ["pg1.1.v1", "pg1.10.v2"]);
        let sources = VolumeSnapshotQuery {
            source_names: vec![s("v2"), s("v1"), s("v2")],
            ..Default::default()
        };
        assert_eq!(list(&mut f, sources).len(), 6);
        let by_source: Vec<String> = snaps_of(&mut f, "a", "v2", 0)
            .into_iter()
            .map(|v| v.name)
            .collect();
        assert_eq!(by_source, ["pg1.1-.v2", "pg1.1.v2", "pg1.10.v2"]);
        let missing = VolumeSnapshotQuery {
            names: vec![s("pg1.1.v1"), s("pg1.1.v3")],
            ..Default::default()
        };
        assert!(f.list_volume_snapshots("a", &missing, 0).is_err());
        // Destroying the group snapshot destroys its volume snapshots.
        f.destroy_pg_snapshot("a", "pg1.1-", 0).unwrap();
        let destroyed = VolumeSnapshotQuery {
            destroyed: Some(true),
            ..Default::default()
        };
        assert_eq!(list(&mut f, destroyed), ["pg1.1-.v1", "pg1.1-.v2"]);
    }

    fn volume_named(name: &str) -> VolumeRecord {
        VolumeRecord {
            id: Id([0; 16]),
            name: Arc::from(name),
            serial: [0; SERIAL_BYTES],
            provisioned: 512,
            created: 0,
            destroyed: false,
            source: None,
            connection_count: 0,
            writing: false,
            data: Data::default(),
        }
    }

    #[test]
    fn the_volume_table_lists_by_name_after_every_change() {
        let mut t = VolumeTable::default();
        let listed =
            |t: &VolumeTable| -> Vec<String> { t.values().map(|v| v.name.to_string()).collect() };
        for n in ["p::b", "c", "a", "p::a", "pp::x"] {
            assert!(t.insert(volume_named(n)).is_none());
        }
        assert_eq!(listed(&t), ["a", "c", "p::a", "p::b", "pp::x"]);
        assert_eq!(t.names_with_prefix("p::"), ["p::a", "p::b"]);
        assert!(t.insert(volume_named("c")).is_some());
        t.insert(volume_named("b"));
        assert!(t.remove("p::a").is_some());
        assert!(t.remove("p::a").is_none());
        assert_eq!(listed(&t), ["a", "b", "c", "p::b", "pp::x"]);
        assert_eq!(t.names_with_prefix("p::"), ["p::b"]);
        assert_eq!(t.names_with_prefix("q"), Vec::<String>::new());
        assert_eq!(t.names_with_prefix(""), ["a", "b", "c", "p::b", "pp::x"]);
    }

    #[test]
    fn serials_read_as_the_first_24_hex_digits_of_the_uuid_drawn() {
        let (a, b) = (IdGenerator::seeded(9), IdGenerator::seeded(9));
        for _ in 0..100 {
            let mut serial = [0u8; SERIAL_BYTES];
            serial.copy_from_slice(&a.uuid().as_bytes()[..SERIAL_BYTES]);
            let mut hex = [0u8; 32];
            let expected = b.uuid().simple().encode_upper(&mut hex)[..24].to_owned();
            assert_eq!(serial_text(&serial), expected);
        }
    }

    #[test]
    fn snapshots_follow_renames_in_the_source_index_and_go_with_their_group_snapshot() {
        let mut f = replicated_pair();
        f.create_pg_snapshot("a", "pg1", &PgSnapshotOptions::default(), 1_000)
            .unwrap();
        f.create_pg_snapshot("a", "pg1", &PgSnapshotOptions::default(), 2_000)
            .unwrap();
        f.rename_volume("a", "v1", "w1", 3_000).unwrap();
        f.create_pg_snapshot("a", "pg1", &PgSnapshotOptions::default(), 4_000)
            .unwrap();
        let names = |f: &mut ArrayFabricState, src: &str| -> Vec<String> {
            snaps_of(f, "a", src, 5_000)
                .into_iter()
                .map(|s| s.name)
                .collect()
        };
        assert_eq!(names(&mut f, "w1"), ["pg1.1.v1", "pg1.2.v1", "pg1.3.w1"]);
        assert!(names(&mut f, "v1").is_empty());
        let copy = f.copy_volume("a", "c1", "pg1.2.v1", false, 5_000).unwrap();
        assert_eq!(copy.source.map(|s| s.name).as_deref(), Some("pg1.2.v1"));
        f.destroy_pg_snapshot("a", "pg1.2", 6_000).unwrap();
        f.eradicate_pg_snapshot("a", "pg1.2", 6_000).unwrap();
        assert_eq!(names(&mut f, "w1"), ["pg1.1.v1", "pg1.3.w1"]);
        for n in ["pg1.1", "pg1.3"] {
            f.destroy_pg_snapshot("a", n, 7_000).unwrap();
            f.eradicate_pg_snapshot("a", n, 7_000).unwrap();
        }
        assert!(names(&mut f, "w1").is_empty());
        assert!(f.arrays["a"].snaps_by_source.is_empty());
    }

    #[test]
    fn record_ids_read_as_the_uuids_they_were_drawn_as() {
        let (a, b) = (IdGenerator::seeded(7), IdGenerator::seeded(7));
        for _ in 0..100 {
            assert_eq!(Id(*a.uuid().as_bytes()).text(), b.uuid().to_string());
        }
    }

    #[test]
    fn the_same_seed_and_calls_give_the_same_event_log() {
        let run = || {
            let mut f = replicated_pair();
            f.set_replication_schedule(
                "a",
                "pg1",
                &ReplicationSchedule {
                    enabled: true,
                    frequency_ms: 60_000,
                },
                0,
            )
            .unwrap();
            f.create_pg_snapshot("a", "pg1", &replicate_now(), 1_000)
                .unwrap();
            let ids: Vec<String> = f
                .list_volumes("a", &VolumeQuery::default(), 600_000)
                .unwrap()
                .into_iter()
                .map(|v| v.id)
                .collect();
            (f.events().to_vec(), ids)
        };
        assert_eq!(run(), run());
        assert!(run().0.len() > 20);
    }
}
