//! The engine end to end over the HTTP simulator: the real `protector-openstack` and
//! `protector-purestorage` clients drive a protection group's life (site register,
//! create, member add, policy, test failover, test cleanup, planned failover,
//! failback) against `SimServer`, and the world must end exactly where the in-process
//! run of the same scenario from the same seed ends.

mod http_e2e {
    mod cycle;
    pub mod run;
    pub mod state;
}
