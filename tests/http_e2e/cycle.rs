//! Test failover → cleanup → planned failover → failback, in-process and over HTTP from
//! the same seed, must leave the same protection group, operations, clouds and arrays.
//!
//! A tenant does not see Cinder's `replication_type` extra spec over the real API (it
//! is not one of Cinder's user-visible specs): the scenarios name their volume types,
//! which the engine then takes at their word.

use protector::core::model::ReplicationType;
use protector::sim::seed_from_env;

use super::run::{run, Mode, Scenario, PG};
use super::state::{diff, FinalState};

/// Runs `scenario` both ways and returns the (identical) final state.
fn check_same(scenario: &Scenario) -> FinalState {
    eprintln!("PROTECTOR_SIM_SEED={}", scenario.seed);
    let expected = run(Mode::InProcess, scenario);
    let actual = run(Mode::Http, scenario);
    for state in [&expected, &actual] {
        assert!(
            state.violations.is_empty(),
            "[{}] invariants violated (PROTECTOR_SIM_SEED={}):\n  - {}",
            state.mode.as_deref().unwrap_or("?"),
            scenario.seed,
            state.violations.join("\n  - ")
        );
    }
    if let Some(d) = diff(&expected.render(), &actual.render()) {
        panic!(
            "the HTTP run ended elsewhere than the in-process run \
             (PROTECTOR_SIM_SEED={}; `-` in-process only, `+` HTTP only):\n{d}",
            scenario.seed
        );
    }
    expected
}

/// The group's copies agree on where the workload runs, and the lifecycle really
/// happened (so two runs that both did nothing cannot pass).
fn assert_cycle_ran(state: &FinalState, scenario: &Scenario) {
    let reverse = scenario.reverse_replication;
    for site in ["site-a", "site-b"] {
        let pg = state.section(&format!("protection group {PG} ({site}'s copy)"));
        assert!(
            pg.iter()
                .any(|l| l.starts_with("status=active ") && l.contains(" failovers=2")),
            "{site}'s copy: {pg:#?}"
        );
        assert!(
            pg.iter().any(|l| l.contains("current_primary=site-a ")),
            "{site}'s copy: {pg:#?}"
        );
        let source = if reverse { "site-a" } else { "site-b" };
        assert!(
            pg.iter()
                .any(|l| l.ends_with(&format!("replication_source={source}"))),
            "{site}'s copy (reverse replication {reverse}): {pg:#?}"
        );
    }
    let kinds = |site: &str| -> Vec<String> {
        state
            .section(&format!("operations ({site}'s store)"))
            .iter()
            .filter(|l| !l.starts_with("    "))
            .map(|l| l.split(' ').take(2).collect::<Vec<_>>().join(" "))
            .collect()
    };
    assert_eq!(
        kinds("site-a"),
        [
            "sync_volumes completed",
            "test_failover completed",
            "test_cleanup completed",
            "failover(planned) completed"
        ]
    );
    assert_eq!(kinds("site-b"), ["failback(planned) completed"]);
    let running: Vec<&String> = state
        .section("servers on site-a")
        .iter()
        .filter(|l| l.contains(" ACTIVE "))
        .collect();
    assert_eq!(running.len(), scenario.servers, "{running:#?}");
}

#[test]
fn async_cycle_over_http_ends_where_the_in_process_run_ends() {
    let scenario = Scenario {
        seed: seed_from_env(61),
        replication: ReplicationType::Async,
        servers: 3,
        reverse_replication: true,
    };
    assert_cycle_ran(&check_same(&scenario), &scenario);
}

#[test]
fn async_cycle_without_reverse_replication_over_http_ends_where_the_in_process_run_ends() {
    let scenario = Scenario {
        seed: seed_from_env(62),
        replication: ReplicationType::Async,
        servers: 3,
        reverse_replication: false,
    };
    assert_cycle_ran(&check_same(&scenario), &scenario);
}

#[test]
fn sync_cycle_over_http_ends_where_the_in_process_run_ends() {
    let scenario = Scenario {
        seed: seed_from_env(63),
        replication: ReplicationType::Sync,
        servers: 3,
        reverse_replication: true,
    };
    assert_cycle_ran(&check_same(&scenario), &scenario);
}
