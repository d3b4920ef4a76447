//! Deterministic simulation: random worlds, operation sequences and faults run through
//! the real engine on the simulator, with the invariants checked after every operation.
//!
//! `PROTECTOR_SIM_SEED=<n> cargo test --test simulation` replays one seed;
//! `cargo run --release --example simulate -- --seeds A..B` runs a campaign.

mod simulation {
    mod properties;
    pub mod runner;
}

use simulation::runner::{run_seed_blocking, Failure};

/// Seeds the test binary runs (the release example runs many more).
const SEEDS: u64 = 40;

fn report(failures: &[Failure]) -> String {
    failures
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn random_operation_sequences_under_faults_keep_every_invariant() {
    let seeds: Vec<u64> = match std::env::var(protector::sim::SEED_ENV) {
        Ok(_) => vec![protector::sim::seed_from_env(0)],
        Err(_) => (0..SEEDS).collect(),
    };
    let mut failures = Vec::new();
    let mut operations = 0;
    for seed in seeds {
        match run_seed_blocking(seed) {
            Ok(o) => operations += o.operations,
            Err(f) => failures.push(f),
        }
    }
    assert!(failures.is_empty(), "{}", report(&failures));
    assert!(operations > 0, "no operation ran");
}

#[test]
fn one_seed_run_twice_ends_in_the_same_world() {
    let seed = protector::sim::seed_from_env(7);
    let first = run_seed_blocking(seed).unwrap_or_else(|f| panic!("{f}"));
    let second = run_seed_blocking(seed).unwrap_or_else(|f| panic!("{f}"));
    assert_eq!(
        first.log, second.log,
        "PROTECTOR_SIM_SEED={seed}: the operation logs differ"
    );
    assert_eq!(
        first.digest, second.digest,
        "PROTECTOR_SIM_SEED={seed}: the world digests differ"
    );
}
