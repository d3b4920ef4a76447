//! Behaviour of the simulated world: clouds, arrays, latency, faults, determinism and
//! invariants. Every test runs on paused time with a seed; set `PROTECTOR_SIM_SEED` to
//! replay a failing run with the seed it printed.

mod scenarios;
