mod cinder;
mod common;
mod determinism;
mod faults;
mod invariants;
mod limits;
mod nova;
mod tenancy;
