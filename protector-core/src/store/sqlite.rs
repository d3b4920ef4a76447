//! SQLite store.
//!
//! [`SqliteStore`] is the embedded default: one SQLite file per site holding the
//! `dr_operations` table, the operation journals and the site's metadata (sites,
//! protection groups, replication policies, sync state).
//!
//! # Expected flow
//! [`SqliteStore::open`] opens (or creates) the file, refuses files it cannot trust,
//! brings the schema up to date and returns a handle; every trait method then runs
//! one short statement or transaction on the shared connection.
//!
//! # Guarantees
//! - Crash safety: the file runs in WAL mode with `synchronous=NORMAL`; a committed
//!   write survives a process that dies without closing the store (a power loss may
//!   drop the last commits, never corrupt the file).
//! - Versioned schema: `PRAGMA user_version` holds the schema version and
//!   `PRAGMA application_id` marks the file as a protector store. Missing migrations
//!   are applied in order in one `IMMEDIATE` transaction, so a store is either at the
//!   old version or the new one.
//! - Refusals, never repairs: a file written by a newer protector is
//!   [`StoreError::NewerSchema`] and is left untouched; a file that is not a SQLite
//!   database, is damaged (for instance truncated), or is another application's
//!   database is [`StoreError::Corrupt`]. A missing or empty file becomes a new store.
//! - Secrets persist: site credentials and policy API tokens are kept in their own
//!   columns (the serialised documents never contain them) and are restored on read.
//! - Same semantics as [`super::MemoryStore`]: both pass the shared contract suite.
//! - Saves scale with the change: a group's members are rows of their own, and a
//!   save writes only the members that differ from the copy this handle last wrote
//!   or read (all of them when another connection committed since).
//!
//! # Caveats
//! - Calls are synchronous inside the async methods, behind one mutex: statements
//!   take microseconds, and running them inline keeps simulated runs deterministic.
//!   The store is not meant for a multi-host deployment (use a database server
//!   behind the same traits).
//! - Timestamps are stored as fixed-width RFC 3339 text with nanoseconds, which sorts
//!   chronologically for years 0000–9999.
//! - Opening runs `PRAGMA quick_check`, which reads the whole file once.
//! - A store on disk runs a thread of its own that copies the write-ahead log back
//!   into the file (a checkpoint) after every few writes, so writes do not wait for
//!   it; if that thread falls far behind, or cannot open its connection, a write
//!   checkpoints inline as SQLite does by default.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::types::Value;
use rusqlite::{
    params, params_from_iter, Connection, ErrorCode, OpenFlags, OptionalExtension,
    TransactionBehavior,
};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{GroupDocument, MetadataStore, OperationStore};
use crate::error::StoreError;
use crate::ids::{OperationId, ProjectId, ProtectionGroupId, SiteId};
use crate::model::time::{rfc3339, Fraction, Rfc3339};
use crate::model::{
    FailoverType, JournalEntry, JournalEvent, Operation, OperationFilter, OperationStatus,
    OperationType, PgRef, ProtectionGroup, ReplicationPolicy, Site, SiteCredentials, SyncState,
};
use crate::progress::{Phase, StepId};

/// `PRAGMA application_id` of a protector store ("PROT").
const APPLICATION_ID: i64 = 0x5052_4f54;

/// How long a statement waits for another process's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A write signals the checkpoint thread after this many writes since the last
/// signal, or after [`CHECKPOINT_AFTER_ROWS`] changed rows.
const CHECKPOINT_AFTER_WRITES: u64 = 32;

/// Changed rows after which a write signals the checkpoint thread.
const CHECKPOINT_AFTER_ROWS: u64 = 1024;

/// Log size, in pages, at which a write checkpoints inline (`PRAGMA
/// wal_autocheckpoint`): the fallback when the checkpoint thread falls behind or is
/// missing. SQLite's default is 1,000 pages.
const INLINE_CHECKPOINT_PAGES: i64 = 8000;

/// Largest size of the connection's page cache, in KiB (`PRAGMA cache_size`; SQLite's
/// default is 2 MiB).
pub const PAGE_CACHE_KIB: i64 = 32 * 1024;

/// Schema migrations; entry `i` brings the store from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: the initial schema.
    "
    CREATE TABLE sites (
        id TEXT PRIMARY KEY NOT NULL,
        name TEXT NOT NULL,
        document TEXT NOT NULL,
        username TEXT,
        password TEXT,
        project_name TEXT,
        project_id TEXT,
        user_domain_name TEXT,
        project_domain_name TEXT,
        application_credential_id TEXT,
        application_credential_secret TEXT
    ) STRICT;
    CREATE INDEX sites_by_name ON sites (name, id);

    CREATE TABLE protection_groups (
        id TEXT PRIMARY KEY NOT NULL,
        project_id TEXT NOT NULL,
        name TEXT NOT NULL,
        status TEXT NOT NULL,
        document TEXT NOT NULL,
        UNIQUE (project_id, name)
    ) STRICT;
    CREATE INDEX protection_groups_by_name ON protection_groups (name, project_id, id);

    CREATE TABLE replication_policies (
        protection_group_id TEXT PRIMARY KEY NOT NULL
            REFERENCES protection_groups (id) ON DELETE CASCADE,
        document TEXT NOT NULL,
        primary_fa_api_token TEXT NOT NULL,
        secondary_fa_api_token TEXT NOT NULL
    ) STRICT;

    CREATE TABLE sync_state (
        protection_group_id TEXT PRIMARY KEY NOT NULL
            REFERENCES protection_groups (id) ON DELETE CASCADE,
        document TEXT NOT NULL
    ) STRICT;

    CREATE TABLE dr_operations (
        id TEXT PRIMARY KEY NOT NULL,
        protection_group_id TEXT NOT NULL,
        project_id TEXT NOT NULL,
        operation_type TEXT NOT NULL,
        failover_type TEXT,
        status TEXT NOT NULL,
        progress INTEGER NOT NULL,
        phase TEXT,
        current_step TEXT,
        source_site_id TEXT NOT NULL,
        target_site_id TEXT NOT NULL,
        created_at TEXT NOT NULL,
        started_at TEXT,
        completed_at TEXT,
        updated_at TEXT,
        error_message TEXT,
        steps_completed TEXT NOT NULL,
        steps_failed TEXT NOT NULL,
        result_data TEXT NOT NULL,
        parameters TEXT NOT NULL
    ) STRICT;
    CREATE INDEX dr_operations_newest ON dr_operations (created_at DESC, id);
    CREATE INDEX dr_operations_by_project ON dr_operations (project_id, created_at DESC, id);
    CREATE INDEX dr_operations_by_group
        ON dr_operations (protection_group_id, created_at DESC, id);
    CREATE INDEX dr_operations_by_status ON dr_operations (status, created_at DESC, id);

    CREATE TABLE operation_journal (
        operation_id TEXT NOT NULL REFERENCES dr_operations (id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        at TEXT NOT NULL,
        event TEXT NOT NULL,
        PRIMARY KEY (operation_id, seq)
    ) STRICT, WITHOUT ROWID;
    ",
    // 2: a group's members in rows of their own (the group's document keeps an empty
    // `members`), so a save writes the members that changed instead of the whole
    // group: megabytes for a group of thousands of VMs; and a journal write as one
    // row, however many events it stores. Rowid tables: their rows (a kilobyte or
    // more) would overflow the pages of a `WITHOUT ROWID` table's index and make
    // every key comparison read them whole.
    "
    CREATE TABLE protection_group_members (
        protection_group_id TEXT NOT NULL
            REFERENCES protection_groups (id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        document TEXT NOT NULL,
        PRIMARY KEY (protection_group_id, position)
    ) STRICT;
    INSERT INTO protection_group_members (protection_group_id, position, document)
        SELECT g.id, m.key, m.value
        FROM protection_groups AS g, json_each(g.document, '$.members') AS m;
    UPDATE protection_groups SET document = json_set(document, '$.members', json('[]'));

    -- A journal write (a group commit of many events) is one row: `count` entries
    -- from `first_seq` on, as a JSON array of objects with `at` and `event`.
    CREATE TABLE operation_journal_batches (
        operation_id TEXT NOT NULL REFERENCES dr_operations (id) ON DELETE CASCADE,
        first_seq INTEGER NOT NULL,
        count INTEGER NOT NULL,
        entries TEXT NOT NULL,
        PRIMARY KEY (operation_id, first_seq)
    ) STRICT;
    INSERT INTO operation_journal_batches (operation_id, first_seq, count, entries)
        SELECT operation_id, seq, 1, json_array(json_object('at', at, 'event', json(event)))
        FROM operation_journal;
    DROP TABLE operation_journal;
    ",
];

/// The schema version this build writes and understands.
fn supported_version() -> i64 {
    i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX)
}

const OPERATION_COLUMNS: &str = "id, protection_group_id, project_id, operation_type, \
    failover_type, status, progress, phase, current_step, source_site_id, target_site_id, \
    created_at, started_at, completed_at, updated_at, error_message, steps_completed, \
    steps_failed, result_data, parameters";

/// Operation and metadata store in one SQLite file.
///
/// Clones share one connection.
///
/// ```
/// use protector_core::store::{OperationStore, SqliteStore};
/// use protector_core::model::OperationFilter;
///
/// let dir = tempfile::tempdir().unwrap();
/// let store = SqliteStore::open(dir.path().join("site-a.db")).unwrap();
/// let ops = futures::executor::block_on(store.list_operations(&OperationFilter::default()));
/// assert!(ops.unwrap().is_empty());
/// ```
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// Checkpoints the log of a store on disk; stopped before the connection closes.
    checkpointer: Option<Checkpointer>,
    conn: Mutex<Connection>,
    /// The file as given, for error messages.
    path: String,
    /// The group last written or read through this connection. Groups of thousands
    /// of members are read at every step of an operation: while the file holds the
    /// same document, a read reuses this copy instead of fetching and parsing the
    /// document (megabytes) again.
    last_group: Mutex<Option<CachedGroup>>,
}

/// A parsed protection group and when it was stored or read.
///
/// The copy is current as long as the connection's `PRAGMA data_version` is the one
/// recorded (no other connection, in this process or another, has committed since)
/// and this store has not written or deleted the group since (it drops the copy
/// first when it does).
struct CachedGroup {
    /// `PRAGMA data_version` of the connection, read before the group was.
    data_version: i64,
    /// The group as its rows hold it: the next save writes only the members that
    /// differ from this copy's.
    group: Arc<ProtectionGroup>,
}

/// The thread that checkpoints a store's write-ahead log, and the writes since it
/// was last asked to.
///
/// Writes append to the log; a checkpoint copies the log's pages back into the file
/// (and syncs it) so the log can start over. SQLite runs one inline, in the commit
/// that crosses 1,000 pages of log; this thread runs them on its own connection
/// instead, as `PASSIVE` checkpoints, which never wait for the writer nor block it.
/// Dropping it stops the thread and waits for it.
struct Checkpointer {
    requests: Option<mpsc::SyncSender<CheckpointRequest>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Writes and changed rows since the thread was last signalled (updated under
    /// the store's connection lock).
    writes: AtomicU64,
    rows: AtomicU64,
}

enum CheckpointRequest {
    /// Checkpoint what the log holds now.
    Checkpoint,
    /// Answer once every earlier request is done (tests wait for the thread this way).
    #[cfg_attr(not(test), allow(dead_code))]
    Settle(mpsc::Sender<()>),
}

impl Checkpointer {
    /// Opens the thread's connection to the store in `file` (named `path` in logs) and
    /// starts it; `None` (writes then checkpoint inline) if either fails.
    fn start(file: &Path, path: &str) -> Option<Self> {
        Self::spawn(file, path)
            .inspect_err(|e| {
                tracing::warn!(store = path, error = %e, "no checkpoint thread; writes checkpoint inline");
            })
            .ok()
    }

    /// [`Self::start`], with its failure.
    fn spawn(file: &Path, path: &str) -> Result<Self, Box<dyn std::error::Error>> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(file, flags)?;
        // The checkpoint syncs as the writer's commits would have.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // One pending request is enough: it checkpoints everything written before it
        // runs.
        let (requests, received) = mpsc::sync_channel(1);
        let shown = path.to_owned();
        let thread = std::thread::Builder::new()
            .name("protector-checkpoint".into())
            .spawn(move || Self::run(&conn, &shown, &received))?;
        Ok(Self {
            requests: Some(requests),
            thread: Some(thread),
            writes: AtomicU64::new(0),
            rows: AtomicU64::new(0),
        })
    }

    fn run(conn: &Connection, path: &str, requests: &mpsc::Receiver<CheckpointRequest>) {
        while let Ok(request) = requests.recv() {
            match request {
                CheckpointRequest::Checkpoint => {
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        // The log keeps growing until the next checkpoint, at worst the
                        // inline one of a later write.
                        tracing::warn!(store = path, error = %e, "checkpoint failed");
                    }
                }
                CheckpointRequest::Settle(done) => {
                    let _ = done.send(());
                }
            }
        }
    }

    /// Counts a call on the writer that changed `rows` rows (none: a read), and
    /// signals the thread after enough writes or rows.
    fn wrote(&self, rows: u64) {
        if rows == 0 {
            return;
        }
        let writes = self.writes.fetch_add(1, Ordering::Relaxed) + 1;
        let rows = self.rows.fetch_add(rows, Ordering::Relaxed) + rows;
        if writes >= CHECKPOINT_AFTER_WRITES || rows >= CHECKPOINT_AFTER_ROWS {
            self.writes.store(0, Ordering::Relaxed);
            self.rows.store(0, Ordering::Relaxed);
            if let Some(requests) = &self.requests {
                // Full: a checkpoint is already pending and will cover these writes.
                let _ = requests.try_send(CheckpointRequest::Checkpoint);
            }
        }
    }

    /// Waits until the thread has handled every request sent so far.
    #[cfg(test)]
    fn settle(&self) {
        let (done, finished) = mpsc::channel();
        if let Some(requests) = &self.requests {
            if requests.send(CheckpointRequest::Settle(done)).is_ok() {
                let _ = finished.recv();
            }
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        // Closing the channel ends the thread's loop.
        self.requests = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

/// Maps a database error to a [`StoreError`]: damage becomes `Corrupt` naming the file.
fn db_error(path: &str, e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => StoreError::Corrupt {
            path: path.to_owned(),
            reason: e.to_string(),
        },
        _ => StoreError::Database(Box::new(e)),
    }
}

/// `AlreadyExists` for a uniqueness or primary-key violation, otherwise [`db_error`].
fn insert_error(path: &str, e: rusqlite::Error, what: impl FnOnce() -> String) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
        {
            StoreError::AlreadyExists { what: what() }
        }
        _ => db_error(path, e),
    }
}

trait ResultExt<T> {
    fn db(self, path: &str) -> Result<T, StoreError>;
}

impl<T> ResultExt<T> for rusqlite::Result<T> {
    fn db(self, path: &str) -> Result<T, StoreError> {
        self.map_err(|e| db_error(path, e))
    }
}

/// `t` as RFC 3339 with nanoseconds and `Z`, exactly as
/// `to_rfc3339_opts(SecondsFormat::Nanos, true)` writes it.
fn ts(t: &DateTime<Utc>) -> String {
    rfc3339(t, Fraction::Nanos)
}

fn corrupt(path: &str, reason: String) -> StoreError {
    StoreError::Corrupt {
        path: path.to_owned(),
        reason,
    }
}

fn parse_ts(path: &str, what: &str, s: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| corrupt(path, format!("{what}: bad timestamp '{s}': {e}")))
}

fn parse_opt_ts(
    path: &str,
    what: &str,
    s: Option<String>,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    s.map(|s| parse_ts(path, what, &s)).transpose()
}

fn parse_enum<T: FromStr<Err = String>>(path: &str, what: &str, s: &str) -> Result<T, StoreError> {
    s.parse().map_err(|e| corrupt(path, format!("{what}: {e}")))
}

fn to_json<T: Serialize + ?Sized>(
    what: impl FnOnce() -> String,
    value: &T,
) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|source| StoreError::Codec {
        what: what(),
        source,
    })
}

/// [`to_json`] into a buffer of `capacity` bytes to start with (a good guess avoids
/// growing a large document's buffer step by step).
fn to_json_sized<T: Serialize + ?Sized>(
    what: impl FnOnce() -> String,
    value: &T,
    capacity: usize,
) -> Result<String, StoreError> {
    let mut buffer = Vec::with_capacity(capacity);
    serde_json::to_writer(&mut buffer, value)
        .and_then(|()| {
            String::from_utf8(buffer).map_err(|e| {
                serde_json::Error::io(std::io::Error::new(std::io::ErrorKind::InvalidData, e))
            })
        })
        .map_err(|source| StoreError::Codec {
            what: what(),
            source,
        })
}

/// [`to_json`] into `buffer` (cleared first, and kept for the next value): a loop that
/// encodes many values grows one buffer once rather than a new one for each.
fn to_json_into<'b, T: Serialize + ?Sized>(
    what: impl FnOnce() -> String,
    value: &T,
    buffer: &'b mut Vec<u8>,
) -> Result<&'b str, StoreError> {
    buffer.clear();
    serde_json::to_writer(&mut *buffer, value)
        .and_then(|()| {
            std::str::from_utf8(buffer).map_err(|e| {
                serde_json::Error::io(std::io::Error::new(std::io::ErrorKind::InvalidData, e))
            })
        })
        .map_err(|source| StoreError::Codec {
            what: what(),
            source,
        })
}

fn from_json<T: DeserializeOwned>(
    what: impl FnOnce() -> String,
    text: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|source| StoreError::Codec {
        what: what(),
        source,
    })
}

fn secret(s: Option<String>) -> Option<SecretString> {
    s.map(SecretString::from)
}

/// A `dr_operations` row as stored, before decoding.
struct OperationRow {
    id: String,
    protection_group_id: String,
    project_id: String,
    operation_type: String,
    failover_type: Option<String>,
    status: String,
    progress: i64,
    phase: Option<String>,
    current_step: Option<String>,
    source_site_id: String,
    target_site_id: String,
    created_at: String,
    started_at: Option<String>,
    completed_at: Option<String>,
    updated_at: Option<String>,
    error_message: Option<String>,
    steps_completed: String,
    steps_failed: String,
    result_data: String,
    parameters: String,
}

impl OperationRow {
    fn read(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            protection_group_id: row.get(1)?,
            project_id: row.get(2)?,
            operation_type: row.get(3)?,
            failover_type: row.get(4)?,
            status: row.get(5)?,
            progress: row.get(6)?,
            phase: row.get(7)?,
            current_step: row.get(8)?,
            source_site_id: row.get(9)?,
            target_site_id: row.get(10)?,
            created_at: row.get(11)?,
            started_at: row.get(12)?,
            completed_at: row.get(13)?,
            updated_at: row.get(14)?,
            error_message: row.get(15)?,
            steps_completed: row.get(16)?,
            steps_failed: row.get(17)?,
            result_data: row.get(18)?,
            parameters: row.get(19)?,
        })
    }

    fn decode(self, path: &str) -> Result<Operation, StoreError> {
        let what = format!("dr_operations row {}", self.id);
        let column = |c: &str| format!("{what} column {c}");
        let progress = u8::try_from(self.progress).map_err(|_| {
            corrupt(
                path,
                format!("{what}: progress {} out of range", self.progress),
            )
        })?;
        Ok(Operation {
            operation_type: parse_enum::<OperationType>(path, &what, &self.operation_type)?,
            failover_type: self
                .failover_type
                .map(|s| parse_enum::<FailoverType>(path, &what, &s))
                .transpose()?,
            status: parse_enum::<OperationStatus>(path, &what, &self.status)?,
            progress,
            phase: self
                .phase
                .map(|s| parse_enum::<Phase>(path, &what, &s))
                .transpose()?,
            current_step: self
                .current_step
                .map(|s| parse_enum::<StepId>(path, &what, &s))
                .transpose()?,
            created_at: parse_ts(path, &what, &self.created_at)?,
            started_at: parse_opt_ts(path, &what, self.started_at)?,
            completed_at: parse_opt_ts(path, &what, self.completed_at)?,
            updated_at: parse_opt_ts(path, &what, self.updated_at)?,
            error_message: self.error_message,
            steps_completed: from_json(|| column("steps_completed"), &self.steps_completed)?,
            steps_failed: from_json(|| column("steps_failed"), &self.steps_failed)?,
            result_data: from_json(|| column("result_data"), &self.result_data)?,
            parameters: from_json(|| column("parameters"), &self.parameters)?,
            id: OperationId::new(self.id),
            protection_group_id: ProtectionGroupId::new(self.protection_group_id),
            project_id: ProjectId::new(self.project_id),
            source_site_id: SiteId::new(self.source_site_id),
            target_site_id: SiteId::new(self.target_site_id),
        })
    }
}

/// The column values of an operation, in [`OPERATION_COLUMNS`] order.
fn operation_values(op: &Operation) -> Result<Vec<Value>, StoreError> {
    let what = |c: &str| format!("operation {} {c}", op.id);
    let text = |s: &str| Value::Text(s.to_owned());
    let opt_text = |s: Option<&str>| s.map_or(Value::Null, |s| Value::Text(s.to_owned()));
    let opt_ts = |t: &Option<DateTime<Utc>>| t.as_ref().map_or(Value::Null, |t| Value::Text(ts(t)));
    Ok(vec![
        text(op.id.as_str()),
        text(op.protection_group_id.as_str()),
        text(op.project_id.as_str()),
        text(op.operation_type.as_str()),
        opt_text(op.failover_type.map(FailoverType::as_str)),
        text(op.status.as_str()),
        Value::Integer(i64::from(op.progress)),
        opt_text(op.phase.map(Phase::as_str)),
        opt_text(op.current_step.map(StepId::as_str)),
        text(op.source_site_id.as_str()),
        text(op.target_site_id.as_str()),
        Value::Text(ts(&op.created_at)),
        opt_ts(&op.started_at),
        opt_ts(&op.completed_at),
        opt_ts(&op.updated_at),
        opt_text(op.error_message.as_deref()),
        Value::Text(to_json(|| what("steps_completed"), &op.steps_completed)?),
        Value::Text(to_json(|| what("steps_failed"), &op.steps_failed)?),
        Value::Text(to_json(|| what("result_data"), &op.result_data)?),
        Value::Text(to_json(|| what("parameters"), &op.parameters)?),
    ])
}

impl SqliteStore {
    /// Opens the store at `path`, creating it if the file is missing or empty, and
    /// applies any missing schema migrations.
    ///
    /// # Errors
    /// - [`StoreError::NewerSchema`] if the file was written by a newer protector (the
    ///   file is not modified);
    /// - [`StoreError::Corrupt`] if the file is not a SQLite database, is damaged, or
    ///   belongs to another application;
    /// - [`StoreError::Database`] if SQLite fails otherwise (permissions, locks, I/O).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        // No URI interpretation: the path is a file name, whatever it looks like.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).db(&shown)?;
        Self::init(conn, shown, Some(path))
    }

    /// A private store in memory (nothing is written to disk), with the same schema.
    ///
    /// # Errors
    /// [`StoreError::Database`] if SQLite cannot allocate the database.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        let shown = ":memory:".to_owned();
        let conn = Connection::open_in_memory().db(&shown)?;
        Self::init(conn, shown, None)
    }

    /// The file this store was opened from (`:memory:` for an in-memory store).
    pub fn path(&self) -> &str {
        &self.inner.path
    }

    /// Sets up a store on `conn`; `file` is the file it was opened from (`None` in
    /// memory), `path` how errors name it.
    fn init(mut conn: Connection, path: String, file: Option<&Path>) -> Result<Self, StoreError> {
        conn.busy_timeout(BUSY_TIMEOUT).db(&path)?;
        // Read-only checks first: a file we refuse must be left exactly as it was.
        check_identity(&conn, &path)?;
        if file.is_some() {
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0))
                .db(&path)?;
        }
        conn.pragma_update(None, "synchronous", "NORMAL")
            .db(&path)?;
        conn.pragma_update(None, "foreign_keys", "ON").db(&path)?;
        // A negative size is in KiB.
        conn.pragma_update(None, "cache_size", -PAGE_CACHE_KIB)
            .db(&path)?;
        migrate(&mut conn, &path, MIGRATIONS)?;
        let checkpointer = file.and_then(|file| Checkpointer::start(file, &path));
        if checkpointer.is_some() {
            conn.pragma_update(None, "wal_autocheckpoint", INLINE_CHECKPOINT_PAGES)
                .db(&path)?;
        }
        Ok(Self {
            inner: Arc::new(Inner {
                checkpointer,
                conn: Mutex::new(conn),
                path,
                last_group: Mutex::new(None),
            }),
        })
    }

    /// Runs `f` on the connection. Never held across an `.await`: the trait methods
    /// call this synchronously.
    fn with_conn<T>(
        &self,
        f: impl FnOnce(&mut Connection, &str) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        // A panic inside `f` drops any open transaction (rolled back), so the
        // connection is consistent even if the lock was poisoned.
        let mut conn = self
            .inner
            .conn
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(checkpointer) = &self.inner.checkpointer else {
            return f(&mut conn, &self.inner.path);
        };
        let before = conn.total_changes();
        let result = f(&mut conn, &self.inner.path);
        checkpointer.wrote(conn.total_changes().wrapping_sub(before));
        result
    }

    /// Takes the cached group out (a write or delete is about to change it).
    fn forget_group(&self) -> Option<CachedGroup> {
        self.inner
            .last_group
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// The cached group if it is `id` as stored at `data_version`.
    fn cached_group(&self, id: &str, data_version: i64) -> Option<Arc<ProtectionGroup>> {
        self.inner
            .last_group
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .filter(|c| c.group.id.as_str() == id && c.data_version == data_version)
            .map(|c| c.group.clone())
    }

    /// Remembers `group`, stored or read at `data_version`.
    fn remember_group(&self, group: Arc<ProtectionGroup>, data_version: i64) {
        *self
            .inner
            .last_group
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(CachedGroup {
            data_version,
            group,
        });
    }

    /// Appends `events` to an operation's journal in one `IMMEDIATE` transaction, as
    /// one row: the next sequence number is read and used under the write lock, so
    /// concurrent writers (even in other processes) never collide, and the batch is
    /// stored whole or not at all.
    fn append_entries(
        &self,
        id: &OperationId,
        events: Vec<(DateTime<Utc>, JournalEvent)>,
    ) -> Result<Vec<JournalEntry>, StoreError> {
        let stored: Vec<StoredEntry<'_>> = events
            .iter()
            .map(|(at, event)| StoredEntry {
                at: Stamp::of(at),
                event,
            })
            .collect();
        // Most events take a few hundred bytes.
        let document = to_json_sized(
            || format!("journal of {}", operation_key(id.as_str())),
            &stored,
            stored.len() * 512,
        )?;
        drop(stored);
        let first = self.with_conn(|conn, path| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .db(path)?;
            let exists = tx
                .prepare_cached("SELECT 1 FROM dr_operations WHERE id = ?1")
                .and_then(|mut st| st.exists([id.as_str()]))
                .db(path)?;
            if !exists {
                return Err(StoreError::NotFound {
                    what: operation_key(id.as_str()),
                });
            }
            let first: i64 = tx
                .prepare_cached(
                    "SELECT first_seq + count FROM operation_journal_batches \
                     WHERE operation_id = ?1 ORDER BY first_seq DESC LIMIT 1",
                )
                .and_then(|mut st| st.query_row([id.as_str()], |r| r.get(0)).optional())
                .db(path)?
                .unwrap_or(0);
            let first_seq = u64::try_from(first).map_err(|_| {
                corrupt(path, format!("journal of {id}: negative sequence {first}"))
            })?;
            if !events.is_empty() {
                let count = i64::try_from(events.len()).unwrap_or(i64::MAX);
                tx.prepare_cached(
                    "INSERT INTO operation_journal_batches \
                     (operation_id, first_seq, count, entries) VALUES (?1, ?2, ?3, ?4)",
                )
                .and_then(|mut st| st.execute(params![id.as_str(), first, count, document]))
                .db(path)?;
            }
            tx.commit().db(path)?;
            Ok(first_seq)
        })?;
        Ok((first..)
            .zip(events)
            .map(|(seq, (at, event))| JournalEntry {
                operation_id: id.clone(),
                seq,
                at,
                event,
            })
            .collect())
    }
}

/// One journal entry as a batch row stores it.
#[derive(Serialize)]
struct StoredEntry<'a> {
    at: Stamp,
    event: &'a JournalEvent,
}

/// A journal entry's time as [`ts`] writes it, kept in a fixed buffer for the years
/// 0000–9999 (every journal entry carries one).
enum Stamp {
    Fixed(Rfc3339),
    Text(String),
}

impl Stamp {
    fn of(t: &DateTime<Utc>) -> Self {
        Rfc3339::new(t, Fraction::Nanos).map_or_else(|| Self::Text(ts(t)), Self::Fixed)
    }
}

impl Serialize for Stamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Fixed(text) => s.serialize_str(text.as_str()),
            Self::Text(text) => s.serialize_str(text),
        }
    }
}

/// [`StoredEntry`] as read back.
#[derive(serde::Deserialize)]
struct ReadEntry {
    at: String,
    event: JournalEvent,
}

/// Refuses files that are not protector stores or are newer or damaged, without
/// writing anything.
fn check_identity(conn: &Connection, path: &str) -> Result<(), StoreError> {
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .db(path)?;
    let application_id: i64 = conn
        .pragma_query_value(None, "application_id", |r| r.get(0))
        .db(path)?;
    if version == 0 {
        let objects: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'",
                [],
                |r| r.get(0),
            )
            .db(path)?;
        if objects > 0 {
            return Err(corrupt(
                path,
                "the database has tables but no protector schema version".to_owned(),
            ));
        }
    } else if application_id != APPLICATION_ID {
        return Err(corrupt(
            path,
            format!("application id {application_id:#x} is not protector's"),
        ));
    }
    let supported = supported_version();
    if version > supported {
        return Err(StoreError::NewerSchema {
            path: path.to_owned(),
            found: version,
            supported,
        });
    }
    if version < 0 {
        return Err(corrupt(path, format!("negative schema version {version}")));
    }
    let verdict: String = conn
        .query_row("PRAGMA quick_check(1)", [], |r| r.get(0))
        .db(path)?;
    if verdict != "ok" {
        return Err(corrupt(path, verdict));
    }
    Ok(())
}

/// Applies the missing `migrations` (normally [`MIGRATIONS`]) in one transaction.
fn migrate(conn: &mut Connection, path: &str, migrations: &[&str]) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .db(path)?;
    // Re-read under the write lock: another process may have migrated meanwhile.
    let current: i64 = tx
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .db(path)?;
    let supported = i64::try_from(migrations.len()).unwrap_or(i64::MAX);
    if current > supported {
        return Err(StoreError::NewerSchema {
            path: path.to_owned(),
            found: current,
            supported,
        });
    }
    if current == supported {
        return Ok(());
    }
    for (index, sql) in migrations.iter().enumerate() {
        let version = i64::try_from(index + 1).unwrap_or(i64::MAX);
        if version <= current {
            continue;
        }
        tx.execute_batch(sql).db(path)?;
        tx.pragma_update(None, "user_version", version).db(path)?;
    }
    tx.pragma_update(None, "application_id", APPLICATION_ID)
        .db(path)?;
    tx.commit().db(path)
}

fn operation_key(id: &str) -> String {
    format!("operation {id}")
}

fn group_key(id: &ProtectionGroupId) -> String {
    format!("protection group {id}")
}

fn group_exists(conn: &Connection, path: &str, id: &ProtectionGroupId) -> Result<bool, StoreError> {
    conn.prepare_cached("SELECT 1 FROM protection_groups WHERE id = ?1")
        .and_then(|mut st| st.exists([id.as_str()]))
        .db(path)
}

fn read_site(path: &str, row: SiteRow) -> Result<Site, StoreError> {
    let mut site: Site = from_json(|| format!("site {}", row.id), &row.document)?;
    site.credentials = SiteCredentials {
        username: row.username,
        password: secret(row.password),
        project_name: row.project_name,
        project_id: row.project_id,
        user_domain_name: row.user_domain_name,
        project_domain_name: row.project_domain_name,
        application_credential_id: row.application_credential_id,
        application_credential_secret: secret(row.application_credential_secret),
    };
    if site.id.as_str() != row.id {
        return Err(corrupt(
            path,
            format!("sites row {} holds site {}", row.id, site.id),
        ));
    }
    Ok(site)
}

/// A `sites` row as stored. Secret columns are moved straight into `SecretString`s.
struct SiteRow {
    id: String,
    document: String,
    username: Option<String>,
    password: Option<String>,
    project_name: Option<String>,
    project_id: Option<String>,
    user_domain_name: Option<String>,
    project_domain_name: Option<String>,
    application_credential_id: Option<String>,
    application_credential_secret: Option<String>,
}

const SITE_COLUMNS: &str = "id, document, username, password, project_name, project_id, \
    user_domain_name, project_domain_name, application_credential_id, \
    application_credential_secret";

impl SiteRow {
    fn read(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            document: row.get(1)?,
            username: row.get(2)?,
            password: row.get(3)?,
            project_name: row.get(4)?,
            project_id: row.get(5)?,
            user_domain_name: row.get(6)?,
            project_domain_name: row.get(7)?,
            application_credential_id: row.get(8)?,
            application_credential_secret: row.get(9)?,
        })
    }
}

/// The connection's `PRAGMA data_version`: it changes when another connection commits.
fn data_version(conn: &Connection, path: &str) -> Result<i64, StoreError> {
    conn.pragma_query_value(None, "data_version", |r| r.get(0))
        .db(path)
}

/// Column `index` of `row` as text, without copying it.
fn text_column<'r>(
    row: &'r rusqlite::Row<'_>,
    index: usize,
    path: &str,
) -> Result<&'r str, StoreError> {
    row.get_ref(index)
        .and_then(|v| v.as_str().map_err(rusqlite::Error::from))
        .db(path)
}

/// A group from its document and its member rows.
fn load_group(
    conn: &Connection,
    path: &str,
    id: &str,
    document: &str,
) -> Result<ProtectionGroup, StoreError> {
    let mut group: ProtectionGroup = from_json(|| format!("protection group {id}"), document)?;
    if !group.members.is_empty() {
        return Err(corrupt(
            path,
            format!("protection group {id}: members inside the group's document"),
        ));
    }
    let mut st = conn
        .prepare_cached(
            "SELECT position, document FROM protection_group_members \
             WHERE protection_group_id = ?1 ORDER BY position",
        )
        .db(path)?;
    let mut rows = st.query([id]).db(path)?;
    while let Some(row) = rows.next().db(path)? {
        let position: i64 = row.get(0).db(path)?;
        if usize::try_from(position).ok() != Some(group.members.len()) {
            return Err(corrupt(
                path,
                format!(
                    "protection group {id}: member row {position} where row {} belongs",
                    group.members.len()
                ),
            ));
        }
        let text = text_column(row, 1, path)?;
        group.members.push(from_json(
            || format!("protection group {id} member {position}"),
            text,
        )?);
    }
    Ok(group)
}

/// A group's document: the group without its members, which have rows of their own.
fn group_header(pg: &ProtectionGroup) -> Result<String, StoreError> {
    /// The fields of [`ProtectionGroup`] by reference, `members` empty. Built by an
    /// exhaustive destructuring, so a new field cannot be left out.
    #[derive(Serialize)]
    struct Header<'a> {
        id: &'a ProtectionGroupId,
        name: &'a String,
        description: &'a String,
        project_id: &'a ProjectId,
        status: &'a crate::model::PgStatus,
        replication_type: &'a crate::model::ReplicationType,
        primary_site_id: &'a SiteId,
        secondary_site_id: &'a SiteId,
        current_primary_site_id: &'a SiteId,
        failover_count: &'a u32,
        last_failover_at: &'a Option<DateTime<Utc>>,
        last_replication_at: &'a Option<DateTime<Utc>>,
        version: &'a u64,
        replication_source_site_id: &'a Option<SiteId>,
        sites: &'a std::collections::BTreeMap<SiteId, crate::model::SiteBinding>,
        members: [(); 0],
        mappings: &'a Vec<crate::model::DirectionalMappings>,
        stale: &'a std::collections::BTreeMap<SiteId, crate::model::StaleResources>,
        test_resources: &'a Option<crate::model::TestResources>,
        created_at: &'a DateTime<Utc>,
        updated_at: &'a DateTime<Utc>,
    }
    let ProtectionGroup {
        id,
        name,
        description,
        project_id,
        status,
        replication_type,
        primary_site_id,
        secondary_site_id,
        current_primary_site_id,
        failover_count,
        last_failover_at,
        last_replication_at,
        version,
        replication_source_site_id,
        sites,
        members: _,
        mappings,
        stale,
        test_resources,
        created_at,
        updated_at,
    } = pg;
    to_json(
        || group_key(id),
        &Header {
            id,
            name,
            description,
            project_id,
            status,
            replication_type,
            primary_site_id,
            secondary_site_id,
            current_primary_site_id,
            failover_count,
            last_failover_at,
            last_replication_at,
            version,
            replication_source_site_id,
            sites,
            members: [],
            mappings,
            stale,
            test_resources,
            created_at,
            updated_at,
        },
    )
}

#[async_trait]
impl OperationStore for SqliteStore {
    async fn insert_operation(&self, op: &Operation) -> Result<(), StoreError> {
        let values = operation_values(op)?;
        self.with_conn(|conn, path| {
            let sql = format!(
                "INSERT INTO dr_operations ({OPERATION_COLUMNS}) VALUES \
                 (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)"
            );
            conn.prepare_cached(&sql)
                .and_then(|mut st| st.execute(params_from_iter(values)))
                .map_err(|e| insert_error(path, e, || operation_key(op.id.as_str())))?;
            Ok(())
        })
    }

    async fn update_operation(&self, op: &Operation) -> Result<(), StoreError> {
        let values = operation_values(op)?;
        self.with_conn(|conn, path| {
            let changed = conn
                .prepare_cached(
                    "UPDATE dr_operations SET protection_group_id = ?2, project_id = ?3, \
                     operation_type = ?4, failover_type = ?5, status = ?6, progress = ?7, \
                     phase = ?8, current_step = ?9, source_site_id = ?10, target_site_id = ?11, \
                     created_at = ?12, started_at = ?13, completed_at = ?14, updated_at = ?15, \
                     error_message = ?16, steps_completed = ?17, steps_failed = ?18, \
                     result_data = ?19, parameters = ?20 WHERE id = ?1",
                )
                .and_then(|mut st| st.execute(params_from_iter(values)))
                .db(path)?;
            if changed == 0 {
                return Err(StoreError::NotFound {
                    what: operation_key(op.id.as_str()),
                });
            }
            Ok(())
        })
    }

    async fn get_operation(&self, id: &OperationId) -> Result<Option<Operation>, StoreError> {
        self.with_conn(|conn, path| {
            let sql = format!("SELECT {OPERATION_COLUMNS} FROM dr_operations WHERE id = ?1");
            let row = conn
                .prepare_cached(&sql)
                .and_then(|mut st| st.query_row([id.as_str()], OperationRow::read).optional())
                .db(path)?;
            row.map(|r| r.decode(path)).transpose()
        })
    }

    async fn list_operations(
        &self,
        filter: &OperationFilter,
    ) -> Result<Vec<Operation>, StoreError> {
        let mut sql = format!("SELECT {OPERATION_COLUMNS} FROM dr_operations WHERE 1 = 1");
        let mut args: Vec<Value> = Vec::new();
        if let Some(project) = &filter.project_id {
            args.push(Value::Text(project.as_str().to_owned()));
            sql.push_str(&format!(" AND project_id = ?{}", args.len()));
        }
        match &filter.protection_group {
            Some(PgRef::Id(id)) => {
                args.push(Value::Text(id.as_str().to_owned()));
                sql.push_str(&format!(" AND protection_group_id = ?{}", args.len()));
            }
            Some(PgRef::Name(name)) => {
                args.push(Value::Text(name.clone()));
                sql.push_str(&format!(
                    " AND protection_group_id IN (SELECT id FROM protection_groups WHERE name = ?{})",
                    args.len()
                ));
            }
            None => {}
        }
        if let Some(status) = filter.status {
            args.push(Value::Text(status.as_str().to_owned()));
            sql.push_str(&format!(" AND status = ?{}", args.len()));
        }
        if let Some(kind) = filter.operation_type {
            args.push(Value::Text(kind.as_str().to_owned()));
            sql.push_str(&format!(" AND operation_type = ?{}", args.len()));
        }
        // Newest first; the id breaks ties so the order never depends on insertion.
        sql.push_str(" ORDER BY created_at DESC, id ASC");
        if let Some(limit) = filter.limit {
            args.push(Value::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
            sql.push_str(&format!(" LIMIT ?{}", args.len()));
        }
        self.with_conn(|conn, path| {
            let rows = conn
                .prepare_cached(&sql)
                .and_then(|mut st| {
                    st.query_map(params_from_iter(args), OperationRow::read)?
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .db(path)?;
            rows.into_iter().map(|r| r.decode(path)).collect()
        })
    }

    async fn append_journal(
        &self,
        id: &OperationId,
        at: DateTime<Utc>,
        event: JournalEvent,
    ) -> Result<JournalEntry, StoreError> {
        let mut entries = self.append_entries(id, vec![(at, event)])?;
        entries.pop().ok_or_else(|| StoreError::NotFound {
            what: operation_key(id.as_str()),
        })
    }

    async fn append_journal_batch(
        &self,
        id: &OperationId,
        events: Vec<(DateTime<Utc>, JournalEvent)>,
    ) -> Result<Vec<JournalEntry>, StoreError> {
        self.append_entries(id, events)
    }

    async fn journal(&self, id: &OperationId) -> Result<Vec<JournalEntry>, StoreError> {
        self.with_conn(|conn, path| {
            let mut st = conn
                .prepare_cached(
                    "SELECT first_seq, count, entries FROM operation_journal_batches \
                     WHERE operation_id = ?1 ORDER BY first_seq",
                )
                .db(path)?;
            let mut rows = st.query([id.as_str()]).db(path)?;
            let mut out = Vec::new();
            while let Some(row) = rows.next().db(path)? {
                let first: i64 = row.get(0).db(path)?;
                let count: i64 = row.get(1).db(path)?;
                let what = format!("journal of {id} entries from {first}");
                if u64::try_from(first).ok() != Some(out.len() as u64) {
                    return Err(corrupt(
                        path,
                        format!("{what}: entry {} expected first", out.len()),
                    ));
                }
                let text = text_column(row, 2, path)?;
                let entries: Vec<ReadEntry> = from_json(|| what.clone(), text)?;
                if i64::try_from(entries.len()).ok() != Some(count) {
                    return Err(corrupt(
                        path,
                        format!(
                            "{what}: {} entries where {count} were written",
                            entries.len()
                        ),
                    ));
                }
                for entry in entries {
                    let seq = out.len() as u64;
                    let what = format!("journal of {id} entry {seq}");
                    out.push(JournalEntry {
                        operation_id: id.clone(),
                        seq,
                        at: parse_ts(path, &what, &entry.at)?,
                        event: entry.event,
                    });
                }
            }
            Ok(out)
        })
    }
}

#[async_trait]
impl MetadataStore for SqliteStore {
    async fn put_site(&self, site: &Site) -> Result<(), StoreError> {
        // The document never holds credentials (they are `#[serde(skip)]`); they go to
        // their own columns, exposed here and nowhere else.
        let document = to_json(|| format!("site {}", site.id), site)?;
        let c = &site.credentials;
        self.with_conn(|conn, path| {
            let sql = format!(
                "INSERT INTO sites (name, {SITE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) \
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, document = excluded.document, \
                 username = excluded.username, password = excluded.password, \
                 project_name = excluded.project_name, project_id = excluded.project_id, \
                 user_domain_name = excluded.user_domain_name, \
                 project_domain_name = excluded.project_domain_name, \
                 application_credential_id = excluded.application_credential_id, \
                 application_credential_secret = excluded.application_credential_secret"
            );
            conn.prepare_cached(&sql)
                .and_then(|mut st| {
                    st.execute(params![
                        site.name,
                        site.id.as_str(),
                        document,
                        c.username,
                        c.password.as_ref().map(|s| s.expose_secret()),
                        c.project_name,
                        c.project_id,
                        c.user_domain_name,
                        c.project_domain_name,
                        c.application_credential_id,
                        c.application_credential_secret.as_ref().map(|s| s.expose_secret()),
                    ])
                })
                .db(path)?;
            Ok(())
        })
    }

    async fn get_site(&self, id: &SiteId) -> Result<Option<Site>, StoreError> {
        self.with_conn(|conn, path| {
            let sql = format!("SELECT {SITE_COLUMNS} FROM sites WHERE id = ?1");
            let row = conn
                .prepare_cached(&sql)
                .and_then(|mut st| st.query_row([id.as_str()], SiteRow::read).optional())
                .db(path)?;
            row.map(|r| read_site(path, r)).transpose()
        })
    }

    async fn list_sites(&self) -> Result<Vec<Site>, StoreError> {
        self.with_conn(|conn, path| {
            let sql = format!("SELECT {SITE_COLUMNS} FROM sites ORDER BY name, id");
            let rows = conn
                .prepare_cached(&sql)
                .and_then(|mut st| {
                    st.query_map([], SiteRow::read)?
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .db(path)?;
            rows.into_iter().map(|r| read_site(path, r)).collect()
        })
    }

    async fn delete_site(&self, id: &SiteId) -> Result<(), StoreError> {
        self.with_conn(|conn, path| {
            let n = conn
                .prepare_cached("DELETE FROM sites WHERE id = ?1")
                .and_then(|mut st| st.execute([id.as_str()]))
                .db(path)?;
            if n == 0 {
                return Err(StoreError::NotFound {
                    what: format!("site {id}"),
                });
            }
            Ok(())
        })
    }

    async fn put_protection_group(&self, pg: &ProtectionGroup) -> Result<(), StoreError> {
        self.put_protection_group_shared(Arc::new(pg.clone()), &GroupDocument::default())
            .await
    }

    async fn put_protection_group_shared(
        &self,
        pg: Arc<ProtectionGroup>,
        document: &GroupDocument,
    ) -> Result<(), StoreError> {
        // The copy of the group this connection last wrote or read says what its
        // member rows hold, as long as no other connection committed since: only the
        // members that differ from it are written. It is replaced below.
        let previous = self.forget_group().filter(|c| c.group.id == pg.id);
        let header = document.get_or_encode(|| group_header(&pg))?;
        let version = self.with_conn(|conn, path| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .db(path)?;
            // Read under the write lock: no other connection can commit until ours.
            let version = data_version(&tx, path)?;
            let current = previous.as_ref().filter(|c| c.data_version == version);
            let stored = current.map(|c| c.group.members.as_slice());
            // Members shared with the copy as stored (a save that changed only the
            // group's own fields) are all unchanged: nothing to compare or write.
            let unchanged = current.is_some_and(|c| c.group.members.shares_with(&pg.members));
            // An upsert, not `INSERT OR REPLACE`: replacing would delete the row and
            // cascade to the group's policy, sync state and members.
            tx.prepare_cached(
                "INSERT INTO protection_groups (id, project_id, name, status, document) \
                 VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (id) DO UPDATE SET project_id = excluded.project_id, \
                 name = excluded.name, status = excluded.status, document = excluded.document",
            )
            .and_then(|mut st| {
                st.execute(params![
                    pg.id.as_str(),
                    pg.project_id.as_str(),
                    pg.name,
                    pg.status.as_str(),
                    header
                ])
            })
            .map_err(|e| {
                insert_error(path, e, || {
                    format!(
                        "protection group named '{}' in project {}",
                        pg.name, pg.project_id
                    )
                })
            })?;
            if !unchanged {
                let mut upsert = tx
                    .prepare_cached(
                        "INSERT INTO protection_group_members \
                         (protection_group_id, position, document) VALUES (?1, ?2, ?3) \
                         ON CONFLICT (protection_group_id, position) \
                         DO UPDATE SET document = excluded.document",
                    )
                    .db(path)?;
                // A row the copy says is there is updated in place: an upsert would
                // first try an insert, which seeks the table's last row for a new
                // rowid before it finds the conflict.
                let mut update = tx
                    .prepare_cached(
                        "UPDATE protection_group_members SET document = ?3 \
                         WHERE protection_group_id = ?1 AND position = ?2",
                    )
                    .db(path)?;
                // Members are encoded into one buffer, and each text is kept in
                // `document` for the next store that writes the group.
                let mut buffer = Vec::new();
                let count = pg.members.len();
                for (position, member) in pg.members.iter().enumerate() {
                    let old = stored.and_then(|s| s.get(position));
                    if old == Some(member) {
                        continue;
                    }
                    let what = || format!("{} member {position}", group_key(&pg.id));
                    let text = document.member_or_encode(position, count, || {
                        to_json_into(what, member, &mut buffer).map(str::to_owned)
                    })?;
                    let position = i64::try_from(position)
                        .map_err(|_| corrupt(path, format!("{}: position out of range", what())))?;
                    let args = params![pg.id.as_str(), position, text.as_ref()];
                    if old.is_none() || update.execute(args).db(path)? == 0 {
                        upsert.execute(args).db(path)?;
                    }
                }
            }
            if stored.is_none_or(|s| s.len() > pg.members.len()) {
                let end = i64::try_from(pg.members.len()).unwrap_or(i64::MAX);
                tx.prepare_cached(
                    "DELETE FROM protection_group_members \
                     WHERE protection_group_id = ?1 AND position >= ?2",
                )
                .and_then(|mut st| st.execute(params![pg.id.as_str(), end]))
                .db(path)?;
            }
            tx.commit().db(path)?;
            Ok(version)
        })?;
        self.remember_group(pg, version);
        Ok(())
    }

    async fn get_protection_group(
        &self,
        id: &ProtectionGroupId,
    ) -> Result<Option<ProtectionGroup>, StoreError> {
        Ok(self
            .get_protection_group_shared(id)
            .await?
            .map(Arc::unwrap_or_clone))
    }

    async fn get_protection_group_shared(
        &self,
        id: &ProtectionGroupId,
    ) -> Result<Option<Arc<ProtectionGroup>>, StoreError> {
        let (version, document) = self.with_conn(|conn, path| {
            // The version first: a commit between the two reads makes the copy
            // remembered below look outdated, never current.
            let version = data_version(conn, path)?;
            if let Some(group) = self.cached_group(id.as_str(), version) {
                return Ok((version, Err(group)));
            }
            let document: Option<String> = conn
                .prepare_cached("SELECT document FROM protection_groups WHERE id = ?1")
                .and_then(|mut st| st.query_row([id.as_str()], |r| r.get(0)).optional())
                .db(path)?;
            document
                .map(|d| load_group(conn, path, id.as_str(), &d))
                .transpose()
                .map(|g| (version, Ok(g)))
        })?;
        match document {
            Err(cached) => Ok(Some(cached)),
            Ok(None) => Ok(None),
            Ok(Some(group)) => {
                let group = Arc::new(group);
                self.remember_group(group.clone(), version);
                Ok(Some(group))
            }
        }
    }

    async fn list_protection_groups(
        &self,
        project: Option<&ProjectId>,
    ) -> Result<Vec<ProtectionGroup>, StoreError> {
        self.with_conn(|conn, path| {
            let version = data_version(conn, path)?;
            let rows: Vec<(String, String)> = conn
                .prepare_cached(
                    "SELECT id, document FROM protection_groups \
                     WHERE ?1 IS NULL OR project_id = ?1 ORDER BY name, project_id, id",
                )
                .and_then(|mut st| {
                    st.query_map([project.map(ProjectId::as_str)], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })?
                    .collect()
                })
                .db(path)?;
            rows.into_iter()
                .map(|(id, d)| match self.cached_group(&id, version) {
                    Some(group) => Ok(Arc::unwrap_or_clone(group)),
                    None => load_group(conn, path, &id, &d),
                })
                .collect()
        })
    }

    async fn protection_group_ids_named(
        &self,
        project: Option<&ProjectId>,
        name: &str,
    ) -> Result<Vec<ProtectionGroupId>, StoreError> {
        self.with_conn(|conn, path| {
            conn.prepare_cached(
                "SELECT id FROM protection_groups \
                 WHERE name = ?2 AND (?1 IS NULL OR project_id = ?1) ORDER BY project_id, id",
            )
            .and_then(|mut st| {
                st.query_map(params![project.map(ProjectId::as_str), name], |r| {
                    Ok(ProtectionGroupId::new(r.get::<_, String>(0)?))
                })?
                .collect()
            })
            .db(path)
        })
    }

    async fn delete_protection_group(&self, id: &ProtectionGroupId) -> Result<(), StoreError> {
        self.forget_group();
        self.with_conn(|conn, path| {
            // Members, policy and sync state go with it (ON DELETE CASCADE).
            let n = conn
                .prepare_cached("DELETE FROM protection_groups WHERE id = ?1")
                .and_then(|mut st| st.execute([id.as_str()]))
                .db(path)?;
            if n == 0 {
                return Err(StoreError::NotFound {
                    what: group_key(id),
                });
            }
            Ok(())
        })
    }

    async fn put_policy(&self, policy: &ReplicationPolicy) -> Result<(), StoreError> {
        let pg = &policy.protection_group_id;
        // Tokens are `#[serde(skip)]`: the document never holds them.
        let document = to_json(
            || format!("replication policy of {}", group_key(pg)),
            policy,
        )?;
        self.with_conn(|conn, path| {
            if !group_exists(conn, path, pg)? {
                return Err(StoreError::NotFound {
                    what: group_key(pg),
                });
            }
            conn.prepare_cached(
                "INSERT INTO replication_policies \
                 (protection_group_id, document, primary_fa_api_token, secondary_fa_api_token) \
                 VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (protection_group_id) DO UPDATE SET document = excluded.document, \
                 primary_fa_api_token = excluded.primary_fa_api_token, \
                 secondary_fa_api_token = excluded.secondary_fa_api_token",
            )
            .and_then(|mut st| {
                st.execute(params![
                    pg.as_str(),
                    document,
                    policy.primary_fa_api_token.expose_secret(),
                    policy.secondary_fa_api_token.expose_secret(),
                ])
            })
            .db(path)?;
            Ok(())
        })
    }

    async fn get_policy(
        &self,
        pg: &ProtectionGroupId,
    ) -> Result<Option<ReplicationPolicy>, StoreError> {
        self.with_conn(|conn, path| {
            let row: Option<(String, String, String)> = conn
                .prepare_cached(
                    "SELECT document, primary_fa_api_token, secondary_fa_api_token \
                     FROM replication_policies WHERE protection_group_id = ?1",
                )
                .and_then(|mut st| {
                    st.query_row([pg.as_str()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                        .optional()
                })
                .db(path)?;
            row.map(|(document, primary, secondary)| {
                let mut policy: ReplicationPolicy = from_json(
                    || format!("replication policy of {}", group_key(pg)),
                    &document,
                )?;
                policy.primary_fa_api_token = SecretString::from(primary);
                policy.secondary_fa_api_token = SecretString::from(secondary);
                Ok(policy)
            })
            .transpose()
        })
    }

    async fn put_sync_state(&self, state: &SyncState) -> Result<(), StoreError> {
        let pg = &state.protection_group_id;
        let document = to_json(|| format!("sync state of {}", group_key(pg)), state)?;
        self.with_conn(|conn, path| {
            if !group_exists(conn, path, pg)? {
                return Err(StoreError::NotFound {
                    what: group_key(pg),
                });
            }
            conn.prepare_cached(
                "INSERT INTO sync_state (protection_group_id, document) VALUES (?1, ?2) \
                 ON CONFLICT (protection_group_id) DO UPDATE SET document = excluded.document",
            )
            .and_then(|mut st| st.execute(params![pg.as_str(), document]))
            .db(path)?;
            Ok(())
        })
    }

    async fn get_sync_state(
        &self,
        pg: &ProtectionGroupId,
    ) -> Result<Option<SyncState>, StoreError> {
        self.with_conn(|conn, path| {
            let document: Option<String> = conn
                .prepare_cached("SELECT document FROM sync_state WHERE protection_group_id = ?1")
                .and_then(|mut st| st.query_row([pg.as_str()], |r| r.get(0)).optional())
                .db(path)?;
            document
                .map(|d| from_json(|| format!("sync state of {}", group_key(pg)), &d))
                .transpose()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::contract::{group, policy, policy_fingerprint, site, site_fingerprint};

    fn op(id: &str, minute: i64) -> Operation {
        Operation::new(
            OperationId::new(id),
            ProtectionGroupId::new("pg-1"),
            ProjectId::new("p1"),
            OperationType::Failover,
            Some(FailoverType::Unplanned),
            SiteId::new("site-a"),
            SiteId::new("site-b"),
            crate::model::OperationParameters::default(),
            DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::minutes(minute),
        )
    }

    fn note(i: i64) -> JournalEvent {
        JournalEvent::Note {
            data: serde_json::json!({ "member": i }).into(),
        }
    }

    #[tokio::test]
    async fn a_group_changed_through_another_handle_is_read_anew() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("site.db");
        let (a, b) = (
            SqliteStore::open(&path).unwrap(),
            SqliteStore::open(&path).unwrap(),
        );
        let mut g = group("pg-1", "p1", "app");
        a.put_protection_group(&g).await.unwrap();
        assert_eq!(
            b.get_protection_group(&g.id).await.unwrap(),
            Some(g.clone())
        );
        // `b` now holds a copy; `a` changes the group twice, then deletes it.
        for version in [7, 8] {
            g.version = version;
            a.put_protection_group(&g).await.unwrap();
            let seen = b.get_protection_group_shared(&g.id).await.unwrap().unwrap();
            assert_eq!(seen.version, version);
            let seen = a.get_protection_group(&g.id).await.unwrap().unwrap();
            assert_eq!(seen.version, version);
        }
        assert_eq!(
            b.list_protection_groups(None).await.unwrap(),
            vec![g.clone()]
        );
        a.delete_protection_group(&g.id).await.unwrap();
        assert_eq!(b.get_protection_group(&g.id).await.unwrap(), None);
        assert_eq!(a.get_protection_group(&g.id).await.unwrap(), None);
        // A write through `b` is seen by `a`, and by `b` itself.
        b.put_protection_group(&g).await.unwrap();
        g.version = 9;
        b.put_protection_group(&g).await.unwrap();
        assert_eq!(
            a.get_protection_group(&g.id).await.unwrap(),
            Some(g.clone())
        );
        assert_eq!(b.get_protection_group(&g.id).await.unwrap(), Some(g));
    }

    /// `g` with `n` members, copies of its first with ids `m-0`, `m-1`, ...
    fn with_members(mut g: ProtectionGroup, n: usize) -> ProtectionGroup {
        let first = g.members[0].clone();
        g.members = (0..n)
            .map(|i| {
                let mut m = first.clone();
                m.id = crate::ids::MemberId::from(format!("m-{i}"));
                m.instance_name = format!("web-{i}");
                m
            })
            .collect();
        g
    }

    /// Positions of the member rows `store` inserts or updates from now on.
    fn log_member_writes(store: &SqliteStore) {
        store
            .with_conn(|c, p| {
                c.execute_batch(
                    "CREATE TEMP TABLE member_writes (position INTEGER);
                     CREATE TEMP TRIGGER member_inserted AFTER INSERT ON protection_group_members
                     BEGIN INSERT INTO member_writes VALUES (new.position); END;
                     CREATE TEMP TRIGGER member_updated AFTER UPDATE ON protection_group_members
                     BEGIN INSERT INTO member_writes VALUES (new.position); END;",
                )
                .db(p)
            })
            .unwrap();
    }

    fn member_writes(store: &SqliteStore) -> Vec<i64> {
        store
            .with_conn(|c, p| {
                let w = c
                    .prepare("SELECT position FROM member_writes ORDER BY rowid")
                    .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
                    .db(p)?;
                c.execute("DELETE FROM member_writes", []).db(p)?;
                Ok(w)
            })
            .unwrap()
    }

    #[tokio::test]
    async fn a_save_writes_only_the_members_that_changed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("site.db");
        let store = SqliteStore::open(&path).unwrap();
        log_member_writes(&store);
        let mut g = with_members(group("pg-1", "p1", "app"), 5);
        store.put_protection_group(&g).await.unwrap();
        assert_eq!(member_writes(&store), vec![0, 1, 2, 3, 4]);

        // A status change writes no member.
        g.status = crate::model::PgStatus::FailingOver;
        store.put_protection_group(&g).await.unwrap();
        assert_eq!(member_writes(&store), Vec::<i64>::new());

        // One member changed, one removed from the end.
        g.members[2].instance_id = crate::ids::ServerId::from("srv-new");
        g.members.pop();
        store.put_protection_group(&g).await.unwrap();
        assert_eq!(member_writes(&store), vec![2]);
        let fresh = SqliteStore::open(&path).unwrap();
        assert_eq!(
            fresh.get_protection_group(&g.id).await.unwrap(),
            Some(g.clone())
        );

        // One changed in place and one added at the end.
        g.members[1].instance_name = "changed".to_owned();
        let mut extra = g.members[0].clone();
        extra.id = crate::ids::MemberId::from("m-extra");
        g.members.push(extra);
        store.put_protection_group(&g).await.unwrap();
        assert_eq!(member_writes(&store), vec![1, 4]);
        assert_eq!(
            SqliteStore::open(&path)
                .unwrap()
                .get_protection_group(&g.id)
                .await
                .unwrap(),
            Some(g.clone())
        );

        // After a read that found the group changed elsewhere, the next save compares
        // with what was read.
        let mut other = g.clone();
        other.members[0].instance_name = "renamed".to_owned();
        fresh.put_protection_group(&other).await.unwrap();
        let mut seen = store.get_protection_group(&g.id).await.unwrap().unwrap();
        assert_eq!(seen, other);
        seen.members[3].instance_name = "also renamed".to_owned();
        store.put_protection_group(&seen).await.unwrap();
        assert_eq!(member_writes(&store), vec![3]);
        assert_eq!(fresh.get_protection_group(&g.id).await.unwrap(), Some(seen));
    }

    #[tokio::test]
    async fn stores_writing_one_group_encode_each_member_once() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (
            SqliteStore::open(dir.path().join("a.db")).unwrap(),
            SqliteStore::open(dir.path().join("b.db")).unwrap(),
        );
        let g = Arc::new(with_members(group("pg-1", "p1", "app"), 3));
        let document = GroupDocument::default();
        a.put_protection_group_shared(g.clone(), &document)
            .await
            .unwrap();
        // The second store takes the texts the first one encoded: a text changed in
        // between is what it stores.
        let kept = document
            .member_or_encode(1, 3, || Err::<String, ()>(()))
            .unwrap()
            .into_owned();
        assert_eq!(kept, serde_json::to_string(&g.members[1]).unwrap());
        let mut renamed = g.members[1].clone();
        renamed.instance_name = "renamed by the document".to_owned();
        let altered = GroupDocument::default();
        altered.get_or_encode(|| group_header(&g)).unwrap();
        altered
            .member_or_encode(1, 3, || {
                Ok::<_, StoreError>(serde_json::to_string(&renamed).unwrap())
            })
            .unwrap();
        b.put_protection_group_shared(g.clone(), &altered)
            .await
            .unwrap();
        let fresh = SqliteStore::open(dir.path().join("b.db")).unwrap();
        let read = fresh.get_protection_group(&g.id).await.unwrap().unwrap();
        assert_eq!(read.members[1], renamed);
        assert_eq!(read.members[0], g.members[0]);
        assert_eq!(read.members[2], g.members[2]);
        // And the first store's rows are the group's own.
        let fresh = SqliteStore::open(dir.path().join("a.db")).unwrap();
        assert_eq!(
            fresh.get_protection_group(&g.id).await.unwrap().as_ref(),
            Some(&*g)
        );
    }

    #[tokio::test]
    async fn a_save_over_a_group_changed_elsewhere_since_it_was_read_stores_it_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("site.db");
        let (a, b) = (
            SqliteStore::open(&path).unwrap(),
            SqliteStore::open(&path).unwrap(),
        );
        let g = with_members(group("pg-1", "p1", "app"), 3);
        a.put_protection_group(&g).await.unwrap();
        let mut mine = b.get_protection_group(&g.id).await.unwrap().unwrap();
        // `a` changes a member and adds two after `b` read the group.
        let mut theirs = with_members(g.clone(), 5);
        theirs.members[1].instance_name = "theirs".to_owned();
        a.put_protection_group(&theirs).await.unwrap();
        // `b` saves its own change over it: the group stored is `b`'s, whole.
        mine.members[0].instance_name = "mine".to_owned();
        b.put_protection_group(&mine).await.unwrap();
        assert_eq!(
            a.get_protection_group(&g.id).await.unwrap(),
            Some(mine.clone())
        );
        let fresh = SqliteStore::open(&path).unwrap();
        assert_eq!(fresh.get_protection_group(&g.id).await.unwrap(), Some(mine));
    }

    #[tokio::test]
    async fn groups_of_a_version_1_store_keep_their_members_after_the_upgrade() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("site.db");
        let g = with_members(group("pg-1", "p1", "app"), 3);
        let empty = group("pg-2", "p1", "empty");
        let mut empty = empty;
        empty.members.clear();
        {
            let mut conn = Connection::open(&path).unwrap();
            migrate(&mut conn, "site.db", &MIGRATIONS[..1]).unwrap();
            for pg in [&g, &empty] {
                conn.execute(
                    "INSERT INTO protection_groups (id, project_id, name, status, document) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        pg.id.as_str(),
                        pg.project_id.as_str(),
                        pg.name,
                        pg.status.as_str(),
                        serde_json::to_string(pg).unwrap()
                    ],
                )
                .unwrap();
            }
        }
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(
            store.get_protection_group(&g.id).await.unwrap(),
            Some(g.clone())
        );
        assert_eq!(
            store.list_protection_groups(None).await.unwrap(),
            vec![g, empty]
        );
    }

    #[tokio::test]
    async fn journals_of_a_version_1_store_read_the_same_and_go_on_after_the_upgrade() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("site.db");
        let o = op("op-1", 1);
        let at = |i: i64| o.created_at + chrono::Duration::milliseconds(1500 * i + 7);
        {
            let mut conn = Connection::open(&path).unwrap();
            migrate(&mut conn, "site.db", &MIGRATIONS[..1]).unwrap();
            conn.execute(
                &format!(
                    "INSERT INTO dr_operations ({OPERATION_COLUMNS}) VALUES \
                     (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, \
                     ?17, ?18, ?19, ?20)"
                ),
                params_from_iter(operation_values(&o).unwrap()),
            )
            .unwrap();
            for i in 0..3 {
                conn.execute(
                    "INSERT INTO operation_journal (operation_id, seq, at, event) \
                     VALUES (?1, ?2, ?3, ?4)",
                    params![
                        "op-1",
                        i,
                        ts(&at(i)),
                        serde_json::to_string(&note(i)).unwrap()
                    ],
                )
                .unwrap();
            }
        }
        let store = SqliteStore::open(&path).unwrap();
        let journal = store.journal(&o.id).await.unwrap();
        let read: Vec<_> = journal
            .iter()
            .map(|e| (e.seq, e.at, e.event.clone()))
            .collect();
        let written: Vec<_> = (0..3).map(|i| (i as u64, at(i), note(i))).collect();
        assert_eq!(read, written);
        let next = store.append_journal(&o.id, at(3), note(3)).await.unwrap();
        assert_eq!(next.seq, 3);
        let batch = store
            .append_journal_batch(&o.id, vec![(at(4), note(4)), (at(5), note(5))])
            .await
            .unwrap();
        assert_eq!(batch.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![4, 5]);
        let journal = store.journal(&o.id).await.unwrap();
        let read: Vec<_> = journal
            .iter()
            .map(|e| (e.seq, e.at, e.event.clone()))
            .collect();
        let written: Vec<_> = (0..6).map(|i| (i as u64, at(i), note(i))).collect();
        assert_eq!(read, written);
    }

    #[tokio::test]
    async fn a_journal_row_that_does_not_follow_its_predecessor_is_reported_corrupt() {
        let store = SqliteStore::open_in_memory().unwrap();
        let o = op("op-1", 1);
        store.insert_operation(&o).await.unwrap();
        store
            .append_journal_batch(
                &o.id,
                vec![(o.created_at, note(0)), (o.created_at, note(1))],
            )
            .await
            .unwrap();
        store
            .append_journal(&o.id, o.created_at, note(2))
            .await
            .unwrap();
        store
            .with_conn(|c, p| {
                c.execute(
                    "UPDATE operation_journal_batches SET count = 3 WHERE first_seq = 0",
                    [],
                )
                .db(p)
            })
            .unwrap();
        let e = store.journal(&o.id).await.unwrap_err();
        assert!(
            e.to_string().contains("2 entries where 3 were written"),
            "{e}"
        );
        store
            .with_conn(|c, p| {
                c.execute(
                    "UPDATE operation_journal_batches SET count = 2 WHERE first_seq = 0; ",
                    [],
                )
                .db(p)?;
                c.execute(
                    "UPDATE operation_journal_batches SET first_seq = 3 WHERE first_seq = 2",
                    [],
                )
                .db(p)
            })
            .unwrap();
        let e = store.journal(&o.id).await.unwrap_err();
        assert!(e.to_string().contains("entry 2 expected first"), "{e}");
    }

    #[tokio::test]
    async fn a_gap_in_the_member_rows_is_reported_corrupt() {
        let store = SqliteStore::open_in_memory().unwrap();
        let g = with_members(group("pg-1", "p1", "app"), 3);
        store.put_protection_group(&g).await.unwrap();
        store
            .with_conn(|c, p| {
                c.execute(
                    "DELETE FROM protection_group_members WHERE position = 1",
                    [],
                )
                .db(p)
            })
            .unwrap();
        let fresh = store.clone();
        fresh.forget_group();
        let e = fresh.get_protection_group(&g.id).await.unwrap_err();
        assert!(
            e.to_string().contains("member row 2 where row 1 belongs"),
            "{e}"
        );
    }

    #[test]
    fn timestamps_are_written_as_chrono_writes_them() {
        let samples = crate::model::time::tests::samples();
        for t in samples {
            assert_eq!(
                ts(&t),
                t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
            );
        }
    }

    #[tokio::test]
    async fn site_passwords_and_policy_tokens_survive_a_reopen_but_never_show_in_debug() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("site-a.db");
        let a = site("id-a", "site-a", "s3cret-password");
        let p = policy("pg-1", "primary-token-123", "secondary-token-456");
        {
            let store = SqliteStore::open(&path).unwrap();
            store.put_site(&a).await.unwrap();
            store
                .put_protection_group(&group("pg-1", "p1", "web"))
                .await
                .unwrap();
            store.put_policy(&p).await.unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        let got_site = store.get_site(&a.id).await.unwrap().unwrap();
        let got_policy = store
            .get_policy(&p.protection_group_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            got_site
                .credentials
                .password
                .as_ref()
                .map(|s| s.expose_secret().to_owned()),
            Some("s3cret-password".to_owned())
        );
        assert_eq!(site_fingerprint(&got_site), site_fingerprint(&a));
        assert_eq!(
            got_policy.primary_fa_api_token.expose_secret(),
            "primary-token-123"
        );
        assert_eq!(policy_fingerprint(&got_policy), policy_fingerprint(&p));

        let shown = format!("{got_site:?} {got_policy:?} {store:?}");
        let serialised = format!(
            "{} {}",
            serde_json::to_string(&got_site).unwrap(),
            serde_json::to_string(&got_policy).unwrap()
        );
        for secret in [
            "s3cret-password",
            "primary-token-123",
            "secondary-token-456",
        ] {
            assert!(!shown.contains(secret), "{secret} in Debug output: {shown}");
            assert!(
                !serialised.contains(secret),
                "{secret} in JSON: {serialised}"
            );
        }
    }

    #[tokio::test]
    async fn records_survive_a_dropped_handle_and_a_process_that_died_without_closing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("site-a.db");
        let first = SqliteStore::open(&path).unwrap();
        first.insert_operation(&op("op-1", 1)).await.unwrap();
        first
            .append_journal(&OperationId::new("op-1"), op("x", 1).created_at, note(0))
            .await
            .unwrap();
        first
            .put_protection_group(&group("pg-1", "p1", "web"))
            .await
            .unwrap();

        let second = SqliteStore::open(&path).unwrap();
        second.insert_operation(&op("op-2", 2)).await.unwrap();
        second
            .append_journal(&OperationId::new("op-1"), op("x", 2).created_at, note(1))
            .await
            .unwrap();
        // The second "process" dies: its connection is never closed.
        std::mem::forget(second);
        drop(first);

        let reopened = SqliteStore::open(&path).unwrap();
        let all = reopened
            .list_operations(&OperationFilter::default())
            .await
            .unwrap();
        assert_eq!(all, [op("op-2", 2), op("op-1", 1)]);
        let journal = reopened.journal(&OperationId::new("op-1")).await.unwrap();
        assert_eq!(journal.iter().map(|e| e.seq).collect::<Vec<_>>(), [0, 1]);
        let next = reopened
            .append_journal(&OperationId::new("op-1"), op("x", 3).created_at, note(2))
            .await
            .unwrap();
        assert_eq!(next.seq, 2);
        assert!(reopened
            .get_protection_group(&ProtectionGroupId::new("pg-1"))
            .await
            .unwrap()
            .is_some());
    }

    #[test]
    fn a_store_from_a_newer_protector_is_refused_and_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("future.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch("CREATE TABLE dr_operations (id TEXT PRIMARY KEY); INSERT INTO dr_operations VALUES ('op-1');")
                .unwrap();
            conn.pragma_update(None, "application_id", APPLICATION_ID)
                .unwrap();
            conn.pragma_update(None, "user_version", 99).unwrap();
        }
        let before = std::fs::read(&path).unwrap();
        let err = SqliteStore::open(&path).unwrap_err();
        match &err {
            StoreError::NewerSchema {
                path: p,
                found,
                supported,
            } => {
                assert_eq!(p, &path.display().to_string());
                assert_eq!(*found, 99);
                assert_eq!(*supported, supported_version());
            }
            other => panic!("expected NewerSchema, got {other:?}"),
        }
        let text = err.to_string();
        assert!(text.contains("future.db") && text.contains("99"), "{text}");
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }

    #[test]
    fn a_file_of_garbage_is_corrupt_and_not_recreated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("garbage.db");
        let garbage: Vec<u8> = (0..8192u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        std::fs::write(&path, &garbage).unwrap();
        let err = SqliteStore::open(&path).unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt { path: p, .. } if p == &path.display().to_string()),
            "{err:?}"
        );
        assert!(err.to_string().contains("garbage.db"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), garbage);
    }

    #[tokio::test]
    async fn a_truncated_store_is_reported_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("truncated.db");
        {
            let store = SqliteStore::open(&path).unwrap();
            for i in 0..300 {
                let mut o = op(&format!("op-{i:03}"), i);
                o.error_message = Some("x".repeat(200));
                store.insert_operation(&o).await.unwrap();
                store
                    .append_journal(&o.id, o.created_at, note(i))
                    .await
                    .unwrap();
            }
        }
        let len = std::fs::metadata(&path).unwrap().len();
        assert!(
            len > 64 * 1024,
            "store too small to truncate meaningfully: {len}"
        );
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len / 2)
            .unwrap();
        let err = SqliteStore::open(&path).unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt { path: p, .. } if p == &path.display().to_string()),
            "{err:?}"
        );
    }

    #[test]
    fn another_applications_database_is_not_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("other.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch("CREATE TABLE invoices (id INTEGER PRIMARY KEY);")
                .unwrap();
        }
        let before = std::fs::read(&path).unwrap();
        let err = SqliteStore::open(&path).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }

    #[tokio::test]
    async fn a_missing_or_empty_file_opens_as_a_new_store_at_the_current_version() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("new.db");
        let empty = dir.path().join("empty.db");
        std::fs::write(&empty, b"").unwrap();
        for path in [&missing, &empty] {
            let store = SqliteStore::open(path).unwrap();
            assert_eq!(store.path(), path.display().to_string());
            assert!(store
                .list_operations(&OperationFilter::default())
                .await
                .unwrap()
                .is_empty());
            store.insert_operation(&op("op-1", 1)).await.unwrap();
            drop(store);
            let conn = Connection::open(path).unwrap();
            let version: i64 = conn
                .pragma_query_value(None, "user_version", |r| r.get(0))
                .unwrap();
            assert_eq!(version, supported_version());
            let mode: String = conn
                .pragma_query_value(None, "journal_mode", |r| r.get(0))
                .unwrap();
            assert_eq!(mode, "wal");
        }
    }

    #[tokio::test]
    async fn a_save_that_changes_only_the_groups_own_fields_keeps_sharing_its_members() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("site-a.db")).unwrap();
        let g = with_members(group("pg-1", "p1", "app"), 50);
        store.put_protection_group(&g).await.unwrap();
        let before = store
            .get_protection_group_shared(&g.id)
            .await
            .unwrap()
            .unwrap();
        // A read copies the group's own fields only.
        let mut changed = store.get_protection_group(&g.id).await.unwrap().unwrap();
        assert!(changed.members.shares_with(&before.members));
        changed.status = crate::model::PgStatus::FailingOver;
        changed.version += 1;
        log_member_writes(&store);
        store.put_protection_group(&changed).await.unwrap();
        assert_eq!(member_writes(&store), Vec::<i64>::new());
        let after = store
            .get_protection_group_shared(&g.id)
            .await
            .unwrap()
            .unwrap();
        assert!(after.members.shares_with(&before.members));
        assert_eq!(after.status, crate::model::PgStatus::FailingOver);
        // A fresh handle reads the same group from the file.
        let fresh = SqliteStore::open(dir.path().join("site-a.db")).unwrap();
        assert_eq!(
            fresh.get_protection_group(&g.id).await.unwrap(),
            Some(changed)
        );
    }

    /// Puts the sites numbered `ids`, one write each, then waits for the checkpoint
    /// thread.
    async fn put_sites_and_settle(store: &SqliteStore, ids: std::ops::Range<u64>) {
        for i in ids {
            store
                .put_site(&site(&format!("site-{i}"), &format!("s{i}"), "pw"))
                .await
                .unwrap();
        }
        store.inner.checkpointer.as_ref().unwrap().settle();
    }

    /// The sites the file holds without its write-ahead log (read from a copy).
    async fn sites_in_file_alone(path: &Path, copy: &Path) -> usize {
        std::fs::copy(path, copy).unwrap();
        let copied = SqliteStore::open(copy).unwrap();
        copied.list_sites().await.unwrap().len()
    }

    #[tokio::test]
    async fn a_store_on_disk_checkpoints_its_log_on_a_thread_after_enough_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("site-a.db");
        let store = SqliteStore::open(&path).unwrap();
        // One write short of the signal: the pages are still in the log only.
        put_sites_and_settle(&store, 0..CHECKPOINT_AFTER_WRITES - 1).await;
        assert_eq!(
            sites_in_file_alone(&path, &dir.path().join("before.db")).await,
            0
        );
        // The next write signals the thread, which copies every page into the file.
        put_sites_and_settle(&store, CHECKPOINT_AFTER_WRITES - 1..CHECKPOINT_AFTER_WRITES).await;
        assert_eq!(
            sites_in_file_alone(&path, &dir.path().join("after.db")).await,
            usize::try_from(CHECKPOINT_AFTER_WRITES).unwrap()
        );
        let inline: i64 = store
            .with_conn(|c, p| {
                c.pragma_query_value(None, "wal_autocheckpoint", |r| r.get(0))
                    .db(p)
            })
            .unwrap();
        assert_eq!(inline, INLINE_CHECKPOINT_PAGES);
    }

    #[tokio::test]
    async fn a_large_write_signals_the_checkpoint_thread_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("site-a.db");
        let store = SqliteStore::open(&path).unwrap();
        let rows = usize::try_from(CHECKPOINT_AFTER_ROWS).unwrap();
        let g = with_members(group("pg-1", "p1", "app"), rows);
        store.put_protection_group(&g).await.unwrap();
        store.inner.checkpointer.as_ref().unwrap().settle();
        std::fs::copy(&path, dir.path().join("copy.db")).unwrap();
        let copied = SqliteStore::open(dir.path().join("copy.db")).unwrap();
        let read = copied.get_protection_group(&g.id).await.unwrap().unwrap();
        assert_eq!(read.members.len(), rows);
    }

    #[tokio::test]
    async fn dropping_a_store_stops_its_checkpoint_thread_and_removes_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("site-a.db");
        let store = SqliteStore::open(&path).unwrap();
        let wal = dir.path().join("site-a.db-wal");
        put_sites_and_settle(&store, 0..3).await;
        assert!(wal.exists());
        drop(store);
        // The last connection to close checkpoints and deletes the log: the thread's
        // connection was closed first, or the log would still be there.
        assert!(!wal.exists());
        let reopened = SqliteStore::open(&path).unwrap();
        assert_eq!(reopened.list_sites().await.unwrap().len(), 3);
        assert!(SqliteStore::open_in_memory()
            .unwrap()
            .inner
            .checkpointer
            .is_none());
    }

    #[test]
    fn the_page_cache_may_grow_past_sqlites_default() {
        const { assert!(PAGE_CACHE_KIB > 2000, "SQLite's default is 2000 KiB") };
        let dir = tempfile::tempdir().unwrap();
        for store in [
            SqliteStore::open(dir.path().join("a.db")).unwrap(),
            SqliteStore::open_in_memory().unwrap(),
        ] {
            let size: i64 = store
                .with_conn(|conn, path| {
                    conn.pragma_query_value(None, "cache_size", |r| r.get(0))
                        .db(path)
                })
                .unwrap();
            assert_eq!(size, -PAGE_CACHE_KIB);
        }
    }

    #[tokio::test]
    async fn reopening_a_current_store_keeps_its_records_and_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("site-a.db");
        SqliteStore::open(&path)
            .unwrap()
            .insert_operation(&op("op-1", 1))
            .await
            .unwrap();
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(
            store
                .get_operation(&OperationId::new("op-1"))
                .await
                .unwrap(),
            Some(op("op-1", 1))
        );
        let version: i64 = store
            .with_conn(|c, p| {
                c.pragma_query_value(None, "user_version", |r| r.get(0))
                    .db(p)
            })
            .unwrap();
        assert_eq!(version, supported_version());
    }

    #[test]
    fn a_failing_migration_leaves_the_store_at_its_previous_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("site-a.db");
        drop(SqliteStore::open(&path).unwrap());
        let mut conn = Connection::open(&path).unwrap();
        let version = |c: &Connection| -> i64 {
            c.pragma_query_value(None, "user_version", |r| r.get(0))
                .unwrap()
        };
        let table_exists = |c: &Connection| -> bool {
            c.prepare("SELECT 1 FROM sqlite_master WHERE name = 'extra'")
                .unwrap()
                .exists([])
                .unwrap()
        };

        let current = supported_version();
        let mut broken = MIGRATIONS.to_vec();
        broken.push("CREATE TABLE extra (x INTEGER) STRICT; CREATE TABLE broken (");
        assert!(migrate(&mut conn, "site-a.db", &broken).is_err());
        assert_eq!(version(&conn), current);
        assert!(!table_exists(&conn));

        let mut fixed = MIGRATIONS.to_vec();
        fixed.push("CREATE TABLE extra (x INTEGER) STRICT;");
        migrate(&mut conn, "site-a.db", &fixed).unwrap();
        assert_eq!(version(&conn), current + 1);
        assert!(table_exists(&conn));
    }

    #[tokio::test]
    async fn an_undecodable_row_is_reported_not_panicked_on() {
        let store = SqliteStore::open_in_memory().unwrap();
        store.insert_operation(&op("op-1", 1)).await.unwrap();
        store
            .with_conn(|c, p| {
                c.execute("UPDATE dr_operations SET status = 'teleporting'", [])
                    .db(p)
            })
            .unwrap();
        let err = store
            .get_operation(&OperationId::new("op-1"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("teleporting"), "{err}");
    }
}
