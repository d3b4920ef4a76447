//! DR operations: the `dr_operations` record and its journal.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{GroupId, OperationId, ProjectId, ProtectionGroupId, ServerId, SiteId, VolumeId};
use crate::model::mappings::ResourceMappings;
use crate::progress::{Phase, StepId};

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($(#[$vmeta:meta])* $variant:ident => $s:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $s)] $variant),+
        }

        impl $name {
            /// Every value.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The documented string.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $s),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| format!(concat!("unknown ", $what, " '{}'"), s))
            }
        }
    };
}
pub(crate) use string_enum;

string_enum!(
    /// The kind of DR operation.
    OperationType, "operation type" {
        /// Move the workload to the other site.
        Failover => "failover",
        /// Bring the workload back to the original primary.
        Failback => "failback",
        /// Boot clones on the secondary without touching production.
        TestFailover => "test_failover",
        /// Remove what a test failover created.
        TestCleanup => "test_cleanup",
        /// Consistency-group sync: reconcile volumes and replicate now.
        SyncVolumes => "sync_volumes",
    }
);

string_enum!(
    /// Planned (graceful, both sites up) or unplanned (source down).
    FailoverType, "failover type" {
        /// Quiesce, final sync, zero data loss.
        Planned => "planned",
        /// Newest replicated snapshot, data loss up to the RPO.
        Unplanned => "unplanned",
    }
);

string_enum!(
    /// Status of an operation.
    OperationStatus, "operation status" {
        /// Recorded, not yet started.
        Pending => "pending",
        /// Executing steps.
        Running => "running",
        /// Finished (possibly with members in `steps_failed`).
        Completed => "completed",
        /// Stopped on an error; rolled back where needed.
        Failed => "failed",
        /// Undoing partial changes after an error.
        RollingBack => "rolling_back",
    }
);

impl OperationStatus {
    /// `completed` and `failed` never change again.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed)
    }
}

/// Invocation parameters recorded on an operation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationParameters {
    /// Mappings given with the command (on top of the stored ones).
    #[serde(default)]
    pub mappings: ResourceMappings,
    /// `--force`.
    #[serde(default)]
    pub force: bool,
    /// `--reverse-replication` (failback).
    #[serde(default)]
    pub reverse_replication: bool,
    /// Who started the operation (resumed operations act for the same identity).
    #[serde(default)]
    pub requested_by: Option<crate::context::RequestContext>,
}

/// The `dr_operations` record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    /// Operation id.
    pub id: OperationId,
    /// The protection group it acts on.
    pub protection_group_id: ProtectionGroupId,
    /// Owning project (the group's).
    pub project_id: ProjectId,
    /// Kind of operation.
    pub operation_type: OperationType,
    /// `planned` / `unplanned` for failover and failback.
    #[serde(default)]
    pub failover_type: Option<FailoverType>,
    /// Status.
    pub status: OperationStatus,
    /// Completion percentage, 0–100.
    pub progress: u8,
    /// Current phase.
    #[serde(default)]
    pub phase: Option<Phase>,
    /// Step being executed.
    #[serde(default)]
    pub current_step: Option<StepId>,
    /// Site the workload moves from (the site that initiated, for sync operations).
    pub source_site_id: SiteId,
    /// Site the workload moves to.
    pub target_site_id: SiteId,
    /// When the record was created.
    pub created_at: DateTime<Utc>,
    /// When execution began.
    #[serde(default)]
    pub started_at: Option<DateTime<Utc>>,
    /// When it reached `completed` or `failed`.
    #[serde(default)]
    pub completed_at: Option<DateTime<Utc>>,
    /// Last change of the record.
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
    /// The first fatal error.
    #[serde(default)]
    pub error_message: Option<String>,
    /// Steps that finished, in order.
    #[serde(default)]
    pub steps_completed: Vec<StepId>,
    /// Steps that produced an error.
    #[serde(default)]
    pub steps_failed: Vec<StepId>,
    /// Operation-specific output (`{"instances_created": [...]}`).
    #[serde(default = "empty_object")]
    pub result_data: serde_json::Value,
    /// Invocation parameters.
    #[serde(default)]
    pub parameters: OperationParameters,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

impl Operation {
    /// A new `pending` record.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: OperationId,
        protection_group_id: ProtectionGroupId,
        project_id: ProjectId,
        operation_type: OperationType,
        failover_type: Option<FailoverType>,
        source_site_id: SiteId,
        target_site_id: SiteId,
        parameters: OperationParameters,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            id,
            protection_group_id,
            project_id,
            operation_type,
            failover_type,
            status: OperationStatus::Pending,
            progress: 0,
            phase: None,
            current_step: None,
            source_site_id,
            target_site_id,
            created_at: now,
            started_at: None,
            completed_at: None,
            updated_at: Some(now),
            error_message: None,
            steps_completed: Vec::new(),
            steps_failed: Vec::new(),
            result_data: empty_object(),
            parameters,
        }
    }
}

/// A resource an operation created or changed, recorded so rollback, resume and cleanup
/// know exactly what exists.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ResourceRef {
    /// A Nova server.
    Server {
        /// Site.
        site_id: SiteId,
        /// Server id.
        id: ServerId,
    },
    /// A Cinder volume.
    Volume {
        /// Site.
        site_id: SiteId,
        /// Volume id.
        id: VolumeId,
    },
    /// A volume on a FlashArray.
    ArrayVolume {
        /// The site whose array holds it.
        site_id: SiteId,
        /// The array-side name.
        name: String,
    },
    /// A Cinder group.
    Group {
        /// Site.
        site_id: SiteId,
        /// Group id.
        id: GroupId,
    },
    /// A source server that was stopped (to restart on rollback).
    StoppedServer {
        /// Site.
        site_id: SiteId,
        /// Server id.
        id: ServerId,
    },
}

/// What a journal entry records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum JournalEvent {
    /// A step is about to run.
    StepStarted {
        /// The step.
        step: StepId,
    },
    /// A step finished.
    StepCompleted {
        /// The step.
        step: StepId,
    },
    /// A step failed.
    StepFailed {
        /// The step.
        step: StepId,
        /// Why.
        error: String,
    },
    /// A side effect is about to be attempted (recorded before the call).
    Intent {
        /// The resource the call will create or change.
        resource: ResourceRef,
    },
    /// A resource now exists (recorded before the next call).
    Created {
        /// The resource.
        resource: ResourceRef,
    },
    /// A resource was removed or restored by rollback or cleanup.
    Released {
        /// The resource.
        resource: ResourceRef,
    },
    /// Free-form note with structured data (member results, measured RTO…).
    Note {
        /// The data.
        data: NoteData,
    },
}

/// The data of a journal note: a JSON document, kept as its encoded text, so a note
/// is encoded once, straight from its own type, and written as it is.
///
/// Two notes are equal when their documents are (the same keys and values, in any
/// order): a note read back from a store equals the one written.
#[derive(Clone, Debug)]
pub struct NoteData(Box<serde_json::value::RawValue>);

impl NoteData {
    /// Encodes `value` as a note.
    ///
    /// # Errors
    /// When `value` cannot be encoded as JSON (a map with keys that are not strings,
    /// or a failing `Serialize` implementation).
    pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Self, serde_json::Error> {
        serde_json::value::to_raw_value(value).map(Self)
    }

    /// The note's JSON text.
    pub fn json(&self) -> &str {
        self.0.get()
    }

    /// Decodes the note as a `T`.
    ///
    /// # Errors
    /// When the document is not a `T`.
    pub fn decode<'a, T: Deserialize<'a>>(&'a self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.0.get())
    }

    /// The note as a [`serde_json::Value`].
    pub fn to_value(&self) -> serde_json::Value {
        // The text is always a valid document: it was encoded or checked on the way in.
        self.decode().unwrap_or(serde_json::Value::Null)
    }
}

impl From<serde_json::Value> for NoteData {
    fn from(value: serde_json::Value) -> Self {
        // A `Value` always encodes (its map keys are strings).
        Self::encode(&value).unwrap_or_else(|_| Self(serde_json::value::RawValue::NULL.to_owned()))
    }
}

impl PartialEq for NoteData {
    fn eq(&self, other: &Self) -> bool {
        self.json() == other.json() || self.to_value() == other.to_value()
    }
}

impl Eq for NoteData {}

impl Serialize for NoteData {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for NoteData {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Through a `Value`: the event is an internally tagged enum, whose fields
        // reach this from serde's buffered content rather than from the JSON text.
        serde_json::Value::deserialize(deserializer).map(Self::from)
    }
}

/// One journal line of an operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// The operation.
    pub operation_id: OperationId,
    /// Position in the operation's journal, from 0.
    pub seq: u64,
    /// When it was written.
    pub at: DateTime<Utc>,
    /// What happened.
    #[serde(flatten)]
    pub event: JournalEvent,
}

/// How a protection group is named in an operation filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PgRef {
    /// By id.
    Id(ProtectionGroupId),
    /// By name.
    Name(String),
}

/// Filter for listing operations; empty fields match everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OperationFilter {
    /// Only this project's operations.
    pub project_id: Option<ProjectId>,
    /// Only these protection groups (resolved to ids by the caller or the store).
    pub protection_group: Option<PgRef>,
    /// Only this status.
    pub status: Option<OperationStatus>,
    /// Only this type.
    pub operation_type: Option<OperationType>,
    /// At most this many, newest first.
    pub limit: Option<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Managed {
        note: String,
        target_volume: String,
        site: Option<String>,
    }

    fn managed() -> Managed {
        Managed {
            note: "managed".into(),
            target_volume: "vol-9".into(),
            site: Some("site-b".into()),
        }
    }

    #[test]
    fn a_note_is_written_as_the_text_it_was_encoded_to() {
        let data = NoteData::encode(&managed()).unwrap();
        assert_eq!(
            data.json(),
            r#"{"note":"managed","target_volume":"vol-9","site":"site-b"}"#
        );
        let event = JournalEvent::Note { data };
        assert_eq!(
            serde_json::to_string(&event).unwrap(),
            r#"{"event":"note","data":{"note":"managed","target_volume":"vol-9","site":"site-b"}}"#
        );
        // And as a document wherever JSON values are built (rendering, YAML output).
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            serde_json::json!({
                "event": "note",
                "data": {"note": "managed", "target_volume": "vol-9", "site": "site-b"}
            })
        );
    }

    #[test]
    fn a_note_read_back_equals_the_note_written_whatever_its_key_order() {
        let written = JournalEvent::Note {
            data: NoteData::encode(&managed()).unwrap(),
        };
        let text = serde_json::to_string(&written).unwrap();
        let read: JournalEvent = serde_json::from_str(&text).unwrap();
        assert_eq!(read, written);
        let from_value: JournalEvent =
            serde_json::from_value(serde_json::to_value(&written).unwrap()).unwrap();
        assert_eq!(from_value, written);
        let JournalEvent::Note { data } = &read else {
            panic!("a note reads back as {read:?}");
        };
        assert_eq!(data.decode::<Managed>().unwrap(), managed());
        assert_eq!(data.to_value()["target_volume"], "vol-9");
        // Different documents differ.
        let other = NoteData::from(serde_json::json!({"note": "managed"}));
        assert_ne!(*data, other);
    }

    #[test]
    fn operation_enums_use_the_documented_strings() {
        let types: Vec<&str> = OperationType::ALL.iter().map(|t| t.as_str()).collect();
        assert_eq!(
            types,
            [
                "failover",
                "failback",
                "test_failover",
                "test_cleanup",
                "sync_volumes"
            ]
        );
        let statuses: Vec<&str> = OperationStatus::ALL.iter().map(|t| t.as_str()).collect();
        assert_eq!(
            statuses,
            ["pending", "running", "completed", "failed", "rolling_back"]
        );
        assert_eq!(
            serde_json::to_string(&OperationStatus::RollingBack).unwrap(),
            "\"rolling_back\""
        );
        assert_eq!("test_failover".parse(), Ok(OperationType::TestFailover));
        assert!("teleport".parse::<OperationType>().is_err());
    }

    #[test]
    fn operation_record_has_the_documented_field_names() {
        let op = Operation::new(
            OperationId::new("op-1"),
            ProtectionGroupId::new("pg-1"),
            ProjectId::new("p"),
            OperationType::Failover,
            Some(FailoverType::Planned),
            SiteId::new("a"),
            SiteId::new("b"),
            OperationParameters::default(),
            DateTime::<Utc>::UNIX_EPOCH,
        );
        let v = serde_json::to_value(&op).unwrap();
        for field in [
            "id",
            "protection_group_id",
            "project_id",
            "operation_type",
            "failover_type",
            "status",
            "progress",
            "phase",
            "source_site_id",
            "target_site_id",
            "created_at",
            "started_at",
            "completed_at",
            "error_message",
            "steps_completed",
            "steps_failed",
            "result_data",
            "parameters",
        ] {
            assert!(v.get(field).is_some(), "missing field {field}");
        }
        assert_eq!(v["result_data"], serde_json::json!({}));
        let back: Operation = serde_json::from_value(v).unwrap();
        assert_eq!(back, op);
    }
}
