//! End-to-end behaviour of the DR engine on the simulated two-site world: every
//! operation of the product's documentation, its refusals and troubleshooting cases,
//! rollback, restart and tenancy, with the simulator's invariants checked after each.

mod engine {
    mod cycle;
    mod failover;
    pub mod fixture;
    mod management;
    mod recovery;
    mod refusals;
    mod tenancy;
    mod test_failover;
}
