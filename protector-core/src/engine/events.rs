//! Progress events: every change of an operation's status, step or progress.

use serde::{Deserialize, Serialize};

use crate::ids::{OperationId, ProtectionGroupId};
use crate::model::{Operation, OperationStatus, OperationType};
use crate::progress::{Phase, StepId};

/// One progress change of an operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressEvent {
    /// The operation.
    pub operation_id: OperationId,
    /// Its protection group.
    pub protection_group_id: ProtectionGroupId,
    /// Its type.
    pub operation_type: OperationType,
    /// Status after the change.
    pub status: OperationStatus,
    /// Phase after the change.
    pub phase: Option<Phase>,
    /// Step after the change.
    pub step: Option<StepId>,
    /// Progress after the change.
    pub progress: u8,
}

impl ProgressEvent {
    /// The event describing `op` as it is now.
    pub fn of(op: &Operation) -> Self {
        Self {
            operation_id: op.id.clone(),
            protection_group_id: op.protection_group_id.clone(),
            operation_type: op.operation_type,
            status: op.status,
            phase: op.phase,
            step: op.current_step,
            progress: op.progress,
        }
    }
}
