//! Step ids, phases and the progress function.
//!
//! The product's operations panel reports four phases with fixed progress ranges
//! (0–20 preparation, 20–60 storage failover, 60–90 instance recreation, 90–100
//! finalization). Each operation type runs an ordered list of steps; each step owns a
//! sub-range of its phase, and progress inside a step advances with the fraction of its
//! volumes or members done, so a 1000-VM failover moves smoothly.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::model::operation::string_enum;
use crate::model::OperationType;

string_enum!(
    /// A step of an operation, as recorded in `steps_completed` / `steps_failed`.
    StepId, "step" {
        /// Lock the group, capture the definition, resolve mappings (and quiesce the
        /// source VMs for planned operations).
        Prepare => "prepare",
        /// Check the target site and array.
        ValidateTarget => "validate_target",
        /// Pick (planned: force) the replicated snapshot to promote.
        GetSnapshot => "get_snapshot",
        /// Promote replicated snapshots into volumes and manage them into Cinder.
        PromoteVolumes => "promote_volumes",
        /// Clone replicated snapshots into test volumes (test failover).
        CloneVolumes => "clone_volumes",
        /// Boot the members on the target site.
        RecreateInstances => "recreate_instances",
        /// Update the group, record results.
        Finalize => "finalize",
        /// Delete test servers (test cleanup).
        DeleteInstances => "delete_instances",
        /// Delete test volumes and array copies (test cleanup).
        DeleteVolumes => "delete_volumes",
        /// Reconcile attached volumes with the groups (consistency-group sync).
        ReconcileMembers => "reconcile_members",
        /// Replicate now and wait (consistency-group sync).
        Replicate => "replicate",
    }
);

string_enum!(
    /// A phase of the operations panel.
    Phase, "phase" {
        /// 0–20 %: validating reachability, retrieving the latest snapshot.
        Prepare => "prepare",
        /// 20–60 %: promoting replicated volumes into Cinder on the target.
        StorageFailover => "storage_failover",
        /// 60–90 %: booting VMs with mapped networks and flavors.
        InstanceRecreation => "instance_recreation",
        /// 90–100 %: updating the protection group, writing the completion record.
        Finalization => "finalization",
        /// Test cleanup: removing test resources.
        Cleanup => "cleanup",
        /// Consistency-group sync: reconciling and replicating.
        Replication => "replication",
    }
);

/// One step of an operation type's plan with its progress range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepSpec {
    /// The step.
    pub step: StepId,
    /// Its phase.
    pub phase: Phase,
    /// Progress when the step starts.
    pub start: u8,
    /// Progress when it ends.
    pub end: u8,
}

const fn spec(step: StepId, phase: Phase, start: u8, end: u8) -> StepSpec {
    StepSpec {
        step,
        phase,
        start,
        end,
    }
}

const FAILOVER: &[StepSpec] = &[
    spec(StepId::Prepare, Phase::Prepare, 0, 10),
    spec(StepId::ValidateTarget, Phase::Prepare, 10, 20),
    spec(StepId::GetSnapshot, Phase::StorageFailover, 20, 30),
    spec(StepId::PromoteVolumes, Phase::StorageFailover, 30, 60),
    spec(StepId::RecreateInstances, Phase::InstanceRecreation, 60, 90),
    spec(StepId::Finalize, Phase::Finalization, 90, 100),
];

const TEST_FAILOVER: &[StepSpec] = &[
    spec(StepId::Prepare, Phase::Prepare, 0, 10),
    spec(StepId::ValidateTarget, Phase::Prepare, 10, 20),
    spec(StepId::GetSnapshot, Phase::StorageFailover, 20, 30),
    spec(StepId::CloneVolumes, Phase::StorageFailover, 30, 60),
    spec(StepId::RecreateInstances, Phase::InstanceRecreation, 60, 90),
    spec(StepId::Finalize, Phase::Finalization, 90, 100),
];

const TEST_CLEANUP: &[StepSpec] = &[
    spec(StepId::Prepare, Phase::Prepare, 0, 20),
    spec(StepId::DeleteInstances, Phase::Cleanup, 20, 60),
    spec(StepId::DeleteVolumes, Phase::Cleanup, 60, 90),
    spec(StepId::Finalize, Phase::Finalization, 90, 100),
];

const SYNC_VOLUMES: &[StepSpec] = &[
    spec(StepId::Prepare, Phase::Prepare, 0, 20),
    spec(StepId::ReconcileMembers, Phase::Replication, 20, 60),
    spec(StepId::Replicate, Phase::Replication, 60, 90),
    spec(StepId::Finalize, Phase::Finalization, 90, 100),
];

/// The ordered steps of an operation type.
pub fn plan(operation_type: OperationType) -> &'static [StepSpec] {
    match operation_type {
        OperationType::Failover | OperationType::Failback => FAILOVER,
        OperationType::TestFailover => TEST_FAILOVER,
        OperationType::TestCleanup => TEST_CLEANUP,
        OperationType::SyncVolumes => SYNC_VOLUMES,
    }
}

/// The spec of `step` in `operation_type`'s plan, if the step belongs to it.
pub fn step_spec(operation_type: OperationType, step: StepId) -> Option<StepSpec> {
    plan(operation_type)
        .iter()
        .copied()
        .find(|s| s.step == step)
}

/// Phase and progress of an operation that is `fraction` (0.0–1.0, clamped) of the way
/// through `step`. `None` when the step is not part of the operation type.
pub fn progress(operation_type: OperationType, step: StepId, fraction: f64) -> Option<(Phase, u8)> {
    let s = step_spec(operation_type, step)?;
    let f = if fraction.is_nan() {
        0.0
    } else {
        fraction.clamp(0.0, 1.0)
    };
    let span = f64::from(s.end - s.start);
    // Truncation keeps progress below `end` until the step is completely done.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let inside = (span * f).floor() as u8;
    Some((s.phase, s.start + inside.min(s.end - s.start)))
}

/// The phase a progress value falls in for failover-like operations (the panel's table).
pub fn phase_of_progress(progress: u8) -> Phase {
    match progress {
        0..=19 => Phase::Prepare,
        20..=59 => Phase::StorageFailover,
        60..=89 => Phase::InstanceRecreation,
        _ => Phase::Finalization,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failover_steps_are_the_documented_ids_in_order() {
        let ids: Vec<&str> = plan(OperationType::Failover)
            .iter()
            .map(|s| s.step.as_str())
            .collect();
        assert_eq!(
            ids,
            [
                "prepare",
                "validate_target",
                "get_snapshot",
                "promote_volumes",
                "recreate_instances",
                "finalize"
            ]
        );
    }

    #[test]
    fn failover_inside_storage_failover_reports_20_to_60() {
        for step in [StepId::GetSnapshot, StepId::PromoteVolumes] {
            for i in 0..=10 {
                let (phase, p) =
                    progress(OperationType::Failover, step, f64::from(i) / 10.0).unwrap();
                assert_eq!(phase, Phase::StorageFailover);
                assert!((20..=60).contains(&p), "{step} at {i}/10 gave {p}");
            }
        }
    }

    #[test]
    fn documented_phase_ranges_hold_for_every_failover_step() {
        for s in plan(OperationType::Failover) {
            let (lo, hi) = match s.phase {
                Phase::Prepare => (0, 20),
                Phase::StorageFailover => (20, 60),
                Phase::InstanceRecreation => (60, 90),
                Phase::Finalization => (90, 100),
                other => panic!("unexpected phase {other}"),
            };
            assert!(s.start >= lo && s.end <= hi, "{s:?}");
        }
    }

    #[test]
    fn prepare_done_is_ten_percent_as_in_the_immediate_output() {
        assert_eq!(
            progress(OperationType::Failover, StepId::Prepare, 1.0),
            Some((Phase::Prepare, 10))
        );
        assert_eq!(
            progress(OperationType::Failover, StepId::Finalize, 1.0),
            Some((Phase::Finalization, 100))
        );
    }

    #[test]
    fn progress_of_38_is_inside_storage_failover() {
        assert_eq!(phase_of_progress(38), Phase::StorageFailover);
        assert_eq!(phase_of_progress(45), Phase::StorageFailover);
        assert_eq!(phase_of_progress(10), Phase::Prepare);
        assert_eq!(phase_of_progress(100), Phase::Finalization);
    }

    #[test]
    fn steps_outside_the_plan_have_no_progress() {
        assert_eq!(
            progress(OperationType::Failover, StepId::CloneVolumes, 0.5),
            None
        );
        assert_eq!(
            progress(OperationType::TestCleanup, StepId::PromoteVolumes, 0.5),
            None
        );
    }

    #[test]
    fn every_plan_covers_0_to_100_without_gaps() {
        for t in OperationType::ALL {
            let p = plan(*t);
            assert_eq!(p.first().map(|s| s.start), Some(0));
            assert_eq!(p.last().map(|s| s.end), Some(100));
            for w in p.windows(2) {
                assert_eq!(w[0].end, w[1].start, "{t}");
            }
        }
    }
}
