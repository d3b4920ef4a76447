//! Hooks at step boundaries, used by the simulator to crash the engine at an exact
//! point and by tests to observe the engine.

use crate::model::Operation;
use crate::progress::StepId;

/// A point between two steps of an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StepBoundary {
    /// Just before the step's journal entry `step_started` is written.
    Before(StepId),
    /// Just after the step's `step_completed` entry is written.
    After(StepId),
}

/// What the engine does at a boundary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookVerdict {
    /// Go on.
    Continue,
    /// Stop executing at once, as if the process had died: no further writes, no
    /// rollback. A restarted engine must reconcile the record.
    Crash,
}

/// Consulted by the engine at every step boundary.
pub trait StepHook: Send + Sync {
    /// The verdict for `operation` at `boundary`.
    fn at_boundary(&self, operation: &Operation, boundary: StepBoundary) -> HookVerdict;
}
