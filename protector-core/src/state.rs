//! The protection-group and operation state machines, as pure functions.
//!
//! Expected flow: [`check_start`] refuses an operation before any record exists;
//! [`pg_transition`] moves the group's status on each [`PgEvent`]; [`op_transition`]
//! moves an operation's status on each [`OpEvent`]. Neither touches I/O, so they are
//! property-tested over random event sequences.
//!
//! Guarantees: an event that is not defined for the current status is an `Err` and the
//! caller's state is unchanged; `completed` and `failed` operations never change;
//! a successful failover and then failback returns `current_primary_site_id` to the
//! primary and adds 2 to `failover_count` ([`apply_success`]).

use chrono::{DateTime, Utc};

use crate::error::TransitionError;
use crate::messages::Refusal;
use crate::model::{OperationStatus, OperationType, PgStatus, ProtectionGroup};

/// Events that move a protection group's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PgEvent {
    /// An operation starts.
    Start {
        /// Its type.
        operation: OperationType,
        /// `--force` was given.
        force: bool,
    },
    /// The operation completed; `partial` when some members could not be recreated.
    Completed {
        /// Its type.
        operation: OperationType,
        /// Some members failed.
        partial: bool,
    },
    /// The operation failed before its first side effect: the group returns to the
    /// status it had before the start.
    Abandoned {
        /// Its type.
        operation: OperationType,
        /// The status before [`PgEvent::Start`].
        previous: PgStatus,
    },
    /// The operation failed after a side effect (and rolled back what it could).
    Failed {
        /// Its type.
        operation: OperationType,
    },
}

/// The status a group shows while `operation` runs, given the status it started from.
fn during(operation: OperationType, from: PgStatus) -> PgStatus {
    match operation {
        OperationType::Failover => PgStatus::FailingOver,
        OperationType::Failback => PgStatus::FailingBack,
        OperationType::TestFailover | OperationType::TestCleanup | OperationType::SyncVolumes => {
            from
        }
    }
}

/// Whether `operation` may start from `status`.
///
/// # Errors
/// The documented refusal: failback from anything but `failed_over` /
/// `failed_over_partial` is refused with "Protection Group is not in failed_over state";
/// failover and the test operations need `active`; a group in a transitional status is
/// busy. `--force` lets failover and failback start from `error`.
pub fn check_start(
    pg: &str,
    status: PgStatus,
    operation: OperationType,
    force: bool,
) -> Result<(), Refusal> {
    let busy = || Refusal::Busy {
        pg: pg.to_owned(),
        status: status.to_string(),
    };
    let not_active = || Refusal::NotActive {
        pg: pg.to_owned(),
        operation: operation.to_string(),
        status: status.to_string(),
    };
    match (operation, status) {
        (_, PgStatus::FailingOver | PgStatus::FailingBack) => Err(busy()),
        (OperationType::Failover, PgStatus::Active) => Ok(()),
        (OperationType::Failover, PgStatus::Error) if force => Ok(()),
        (OperationType::Failover, _) => Err(not_active()),
        (OperationType::Failback, PgStatus::FailedOver | PgStatus::FailedOverPartial) => Ok(()),
        (OperationType::Failback, PgStatus::Error) if force => Ok(()),
        (OperationType::Failback, _) => Err(Refusal::NotFailedOver {
            status: status.to_string(),
        }),
        (OperationType::TestFailover | OperationType::TestCleanup, PgStatus::Active) => Ok(()),
        (OperationType::TestFailover | OperationType::TestCleanup, _) => Err(not_active()),
        (
            OperationType::SyncVolumes,
            PgStatus::Active | PgStatus::FailedOver | PgStatus::FailedOverPartial,
        ) => Ok(()),
        (OperationType::SyncVolumes, _) => Err(busy()),
    }
}

fn illegal(subject: &str, from: impl ToString, event: impl ToString) -> TransitionError {
    TransitionError {
        refusal: Refusal::IllegalTransition {
            subject: subject.to_owned(),
            from: from.to_string(),
            event: event.to_string(),
        },
    }
}

/// The group's status after `event`.
///
/// # Errors
/// [`TransitionError`] when the event is not defined for `status` (for example a
/// failover completing on a group that is not failing over).
pub fn pg_transition(status: PgStatus, event: PgEvent) -> Result<PgStatus, TransitionError> {
    match event {
        PgEvent::Start { operation, force } => {
            check_start("", status, operation, force)
                .map_err(|_| illegal("protection group", status, format!("start {operation}")))?;
            Ok(during(operation, status))
        }
        PgEvent::Completed { operation, partial } => match (operation, status) {
            (OperationType::Failover, PgStatus::FailingOver) => Ok(if partial {
                PgStatus::FailedOverPartial
            } else {
                PgStatus::FailedOver
            }),
            (OperationType::Failback, PgStatus::FailingBack) => Ok(if partial {
                PgStatus::FailedOverPartial
            } else {
                PgStatus::Active
            }),
            (OperationType::TestFailover | OperationType::TestCleanup, PgStatus::Active) => {
                Ok(status)
            }
            (
                OperationType::SyncVolumes,
                PgStatus::Active | PgStatus::FailedOver | PgStatus::FailedOverPartial,
            ) => Ok(status),
            _ => Err(illegal(
                "protection group",
                status,
                format!("complete {operation}"),
            )),
        },
        PgEvent::Abandoned {
            operation,
            previous,
        } => {
            let expected = during(operation, previous);
            if status == expected && check_start("", previous, operation, true).is_ok() {
                Ok(previous)
            } else {
                Err(illegal(
                    "protection group",
                    status,
                    format!("abandon {operation}"),
                ))
            }
        }
        PgEvent::Failed { operation } => match (operation, status) {
            (OperationType::Failover, PgStatus::FailingOver)
            | (OperationType::Failback, PgStatus::FailingBack) => Ok(PgStatus::Error),
            (OperationType::TestFailover | OperationType::TestCleanup, PgStatus::Active) => {
                Ok(status)
            }
            (
                OperationType::SyncVolumes,
                PgStatus::Active | PgStatus::FailedOver | PgStatus::FailedOverPartial,
            ) => Ok(status),
            _ => Err(illegal(
                "protection group",
                status,
                format!("fail {operation}"),
            )),
        },
    }
}

/// Applies a successful failover or failback to the group: status, then
/// `current_primary_site_id` flips to the other site, `failover_count` + 1,
/// `last_failover_at`, `version` + 1. Other operation types only bump `version`.
///
/// # Errors
/// [`TransitionError`] when the group is not in the operation's running status.
pub fn apply_success(
    pg: &mut ProtectionGroup,
    operation: OperationType,
    partial: bool,
    now: DateTime<Utc>,
) -> Result<(), TransitionError> {
    let mut next = pg_transition(pg.status, PgEvent::Completed { operation, partial })?;
    if matches!(operation, OperationType::Failover | OperationType::Failback) {
        pg.current_primary_site_id = pg.current_target_site_id().clone();
        pg.failover_count += 1;
        pg.last_failover_at = Some(now);
        // The sites are symmetric: what the group is called afterwards depends on where
        // the workload landed. A forced failover from `error` back onto the primary
        // site is, in effect, a failback.
        if !partial {
            next = if pg.current_primary_site_id == pg.primary_site_id {
                PgStatus::Active
            } else {
                PgStatus::FailedOver
            };
        }
    }
    pg.status = next;
    pg.version += 1;
    pg.updated_at = now;
    Ok(())
}

/// Events that move an operation's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpEvent {
    /// The engine begins executing it.
    Start,
    /// Every step finished.
    Complete,
    /// It stopped on an error with nothing to undo (or after its rollback finished).
    Fail,
    /// It stopped on an error after side effects; rollback begins.
    BeginRollback,
}

impl std::fmt::Display for OpEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Start => "start",
            Self::Complete => "complete",
            Self::Fail => "fail",
            Self::BeginRollback => "roll back",
        })
    }
}

/// The operation's status after `event`:
/// `pending → running → completed`, `pending|running → failed`,
/// `running → rolling_back → failed`. Terminal statuses never change.
///
/// # Errors
/// [`TransitionError`] for any other pair.
pub fn op_transition(
    status: OperationStatus,
    event: OpEvent,
) -> Result<OperationStatus, TransitionError> {
    use OperationStatus as S;
    match (status, event) {
        (S::Pending, OpEvent::Start) => Ok(S::Running),
        (S::Running, OpEvent::Complete) => Ok(S::Completed),
        (S::Pending | S::Running | S::RollingBack, OpEvent::Fail) => Ok(S::Failed),
        (S::Running, OpEvent::BeginRollback) => Ok(S::RollingBack),
        _ => Err(illegal("operation", status, event)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ProjectId, ProtectionGroupId, SiteId};
    use crate::model::ReplicationType;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn pg() -> ProtectionGroup {
        ProtectionGroup {
            id: ProtectionGroupId::new("pg"),
            name: "prod-web-app".into(),
            description: String::new(),
            project_id: ProjectId::new("p"),
            status: PgStatus::Active,
            replication_type: ReplicationType::Async,
            primary_site_id: SiteId::new("site-a"),
            secondary_site_id: SiteId::new("site-b"),
            current_primary_site_id: SiteId::new("site-a"),
            failover_count: 0,
            last_failover_at: None,
            last_replication_at: None,
            version: 1,
            replication_source_site_id: None,
            sites: BTreeMap::new(),
            members: crate::model::Members::default(),
            mappings: vec![],
            stale: BTreeMap::new(),
            test_resources: None,
            created_at: DateTime::<Utc>::UNIX_EPOCH,
            updated_at: DateTime::<Utc>::UNIX_EPOCH,
        }
    }

    #[test]
    fn failback_from_active_is_refused_with_the_documented_text() {
        let err = check_start(
            "prod-web-app",
            PgStatus::Active,
            OperationType::Failback,
            false,
        )
        .unwrap_err();
        assert!(err
            .to_string()
            .starts_with("Protection Group is not in failed_over state"));
        assert!(check_start(
            "x",
            PgStatus::FailedOverPartial,
            OperationType::Failback,
            false
        )
        .is_ok());
    }

    #[test]
    fn force_lets_failover_and_failback_start_from_error_only() {
        assert!(check_start("x", PgStatus::Error, OperationType::Failover, false).is_err());
        assert!(check_start("x", PgStatus::Error, OperationType::Failover, true).is_ok());
        assert!(check_start("x", PgStatus::Error, OperationType::Failback, true).is_ok());
        assert!(check_start("x", PgStatus::FailingOver, OperationType::Failover, true).is_err());
        assert!(check_start("x", PgStatus::Error, OperationType::TestFailover, true).is_err());
    }

    #[test]
    fn documented_transition_table_holds() {
        let start = |s, op| {
            pg_transition(
                s,
                PgEvent::Start {
                    operation: op,
                    force: false,
                },
            )
        };
        assert_eq!(
            start(PgStatus::Active, OperationType::Failover),
            Ok(PgStatus::FailingOver)
        );
        assert_eq!(
            pg_transition(
                PgStatus::FailingOver,
                PgEvent::Completed {
                    operation: OperationType::Failover,
                    partial: false
                }
            ),
            Ok(PgStatus::FailedOver)
        );
        assert_eq!(
            pg_transition(
                PgStatus::FailingOver,
                PgEvent::Failed {
                    operation: OperationType::Failover
                }
            ),
            Ok(PgStatus::Error)
        );
        assert_eq!(
            start(PgStatus::FailedOver, OperationType::Failback),
            Ok(PgStatus::FailingBack)
        );
        assert_eq!(
            pg_transition(
                PgStatus::FailingBack,
                PgEvent::Completed {
                    operation: OperationType::Failback,
                    partial: false
                }
            ),
            Ok(PgStatus::Active)
        );
        assert_eq!(
            pg_transition(
                PgStatus::FailingBack,
                PgEvent::Failed {
                    operation: OperationType::Failback
                }
            ),
            Ok(PgStatus::Error)
        );
        assert_eq!(
            start(PgStatus::Active, OperationType::TestFailover),
            Ok(PgStatus::Active)
        );
        assert_eq!(
            pg_transition(
                PgStatus::Active,
                PgEvent::Failed {
                    operation: OperationType::TestFailover
                }
            ),
            Ok(PgStatus::Active)
        );
        assert_eq!(
            pg_transition(
                PgStatus::FailingOver,
                PgEvent::Abandoned {
                    operation: OperationType::Failover,
                    previous: PgStatus::Active
                }
            ),
            Ok(PgStatus::Active)
        );
    }

    #[test]
    fn partial_failover_ends_failed_over_partial_and_failback_accepts_it() {
        let mut g = pg();
        g.status = pg_transition(
            g.status,
            PgEvent::Start {
                operation: OperationType::Failover,
                force: false,
            },
        )
        .unwrap();
        apply_success(
            &mut g,
            OperationType::Failover,
            true,
            DateTime::<Utc>::UNIX_EPOCH,
        )
        .unwrap();
        assert_eq!(g.status, PgStatus::FailedOverPartial);
        assert!(check_start("x", g.status, OperationType::Failback, false).is_ok());
    }

    fn arb_op() -> impl Strategy<Value = OperationType> {
        prop::sample::select(OperationType::ALL.to_vec())
    }

    fn arb_status() -> impl Strategy<Value = PgStatus> {
        prop::sample::select(PgStatus::ALL.to_vec())
    }

    fn arb_pg_event() -> impl Strategy<Value = PgEvent> {
        prop_oneof![
            (arb_op(), any::<bool>())
                .prop_map(|(operation, force)| PgEvent::Start { operation, force }),
            (arb_op(), any::<bool>())
                .prop_map(|(operation, partial)| PgEvent::Completed { operation, partial }),
            (arb_op(), arb_status()).prop_map(|(operation, previous)| PgEvent::Abandoned {
                operation,
                previous
            }),
            arb_op().prop_map(|operation| PgEvent::Failed { operation }),
        ]
    }

    fn arb_op_event() -> impl Strategy<Value = OpEvent> {
        prop::sample::select(vec![
            OpEvent::Start,
            OpEvent::Complete,
            OpEvent::Fail,
            OpEvent::BeginRollback,
        ])
    }

    proptest! {
        #[test]
        fn random_pg_event_sequences_only_take_defined_transitions(events in prop::collection::vec(arb_pg_event(), 0..64)) {
            let mut status = PgStatus::Active;
            for ev in events {
                if let Ok(next) = pg_transition(status, ev) {
                    {
                        // Transitional statuses are entered only by their own operation's start
                        // and left only by that operation's end events.
                        if next == PgStatus::FailingOver && status != PgStatus::FailingOver {
                            let is_failover_start = matches!(ev, PgEvent::Start { operation: OperationType::Failover, .. });
                            prop_assert!(is_failover_start, "entered failing_over on {:?}", ev);
                        }
                        if status == PgStatus::FailingOver && next != PgStatus::FailingOver {
                            let is_failover_end = matches!(
                                ev,
                                PgEvent::Completed { operation: OperationType::Failover, .. }
                                    | PgEvent::Failed { operation: OperationType::Failover }
                                    | PgEvent::Abandoned { operation: OperationType::Failover, .. }
                            );
                            prop_assert!(is_failover_end, "left failing_over on {:?}", ev);
                        }
                        if next == PgStatus::Error && status != PgStatus::Error {
                            // Only a failure, or abandoning a forced start from `error`, leads to `error`.
                            let is_failure = matches!(
                                ev,
                                PgEvent::Failed { .. } | PgEvent::Abandoned { previous: PgStatus::Error, .. }
                            );
                            prop_assert!(is_failure, "entered error on {:?}", ev);
                        }
                        status = next;
                    }
                }
                prop_assert!(PgStatus::ALL.contains(&status));
            }
        }

        #[test]
        fn terminal_operation_states_never_change(events in prop::collection::vec(arb_op_event(), 0..32)) {
            let mut status = OperationStatus::Pending;
            let mut terminal_seen: Option<OperationStatus> = None;
            for ev in events {
                if let Ok(next) = op_transition(status, ev) {
                    prop_assert!(terminal_seen.is_none(), "{status} changed to {next} on {ev}");
                    status = next;
                }
                if status.is_terminal() {
                    terminal_seen.get_or_insert(status);
                    prop_assert_eq!(Some(status), terminal_seen);
                }
            }
        }

        #[test]
        fn failover_then_failback_returns_home_and_counts_two(partial in any::<bool>(), start_count in 0u32..1000) {
            let mut g = pg();
            g.failover_count = start_count;
            let t = DateTime::<Utc>::UNIX_EPOCH;
            g.status = pg_transition(g.status, PgEvent::Start { operation: OperationType::Failover, force: false }).unwrap();
            apply_success(&mut g, OperationType::Failover, partial, t).unwrap();
            prop_assert_eq!(&g.current_primary_site_id, &g.secondary_site_id);
            g.status = pg_transition(g.status, PgEvent::Start { operation: OperationType::Failback, force: false }).unwrap();
            apply_success(&mut g, OperationType::Failback, false, t).unwrap();
            prop_assert_eq!(&g.current_primary_site_id, &g.primary_site_id);
            prop_assert_eq!(g.failover_count, start_count + 2);
            prop_assert_eq!(g.status, PgStatus::Active);
        }
    }
}
