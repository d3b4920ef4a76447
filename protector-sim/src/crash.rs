//! Crash points: the engine "dies" at a chosen step boundary.
//!
//! [`CrashHook`] implements the core's [`StepHook`]. A crash point armed with
//! [`crate::SimWorld::crash_at`] answers [`HookVerdict::Crash`] the first time an
//! operation of that type reaches that boundary, and [`HookVerdict::Continue`] ever
//! after, so a restarted engine resumes past it. Dropping the [`CrashGuard`] disarms the
//! point.

use std::fmt;
use std::sync::{Arc, Mutex};

use protector_core::model::{Operation, OperationType};
use protector_core::ports::{HookVerdict, StepBoundary, StepHook};

use crate::events::EventLog;

struct Point {
    id: u64,
    operation: OperationType,
    boundary: StepBoundary,
    fired: bool,
}

/// The world's step hook: hand it to the engine (`world.step_hook()`).
pub struct CrashHook {
    points: Mutex<(u64, Vec<Point>)>,
    log: Arc<EventLog>,
}

impl fmt::Debug for CrashHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CrashHook").finish_non_exhaustive()
    }
}

impl CrashHook {
    pub(crate) fn new(log: Arc<EventLog>) -> Self {
        Self {
            points: Mutex::new((0, Vec::new())),
            log,
        }
    }

    pub(crate) fn arm(&self, operation: OperationType, boundary: StepBoundary) -> u64 {
        let mut g = self.points.lock().unwrap_or_else(|p| p.into_inner());
        g.0 += 1;
        let id = g.0;
        g.1.push(Point {
            id,
            operation,
            boundary,
            fired: false,
        });
        id
    }

    fn disarm(&self, id: u64) {
        self.points
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .retain(|p| p.id != id);
    }

    fn has_fired(&self, id: u64) -> bool {
        self.points
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .iter()
            .any(|p| p.id == id && p.fired)
    }
}

impl StepHook for CrashHook {
    fn at_boundary(&self, operation: &Operation, boundary: StepBoundary) -> HookVerdict {
        let mut g = self.points.lock().unwrap_or_else(|p| p.into_inner());
        let hit = g.1.iter_mut().find(|p| {
            !p.fired && p.operation == operation.operation_type && p.boundary == boundary
        });
        match hit {
            Some(point) => {
                point.fired = true;
                drop(g);
                self.log.record(
                    None,
                    format_args!(
                        "engine crash: {} {} at {:?}",
                        operation.operation_type, operation.id, boundary
                    ),
                );
                HookVerdict::Crash
            }
            None => HookVerdict::Continue,
        }
    }
}

/// Keeps a crash point armed; dropping it disarms the point.
#[must_use = "the crash point is disarmed when the guard is dropped"]
pub struct CrashGuard {
    hook: Arc<CrashHook>,
    id: u64,
}

impl CrashGuard {
    pub(crate) fn new(hook: Arc<CrashHook>, id: u64) -> Self {
        Self { hook, id }
    }

    /// Whether the crash has happened.
    pub fn fired(&self) -> bool {
        self.hook.has_fired(self.id)
    }
}

impl fmt::Debug for CrashGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CrashGuard")
            .field("point", &self.id)
            .finish()
    }
}

impl Drop for CrashGuard {
    fn drop(&mut self) {
        self.hook.disarm(self.id);
    }
}
