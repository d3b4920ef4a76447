//! # protector
//!
//! Disaster recovery for OpenStack workloads on Pure Storage FlashArray. This facade
//! re-exports the workspace's crates.
#![deny(missing_docs)]

pub use protector_core as core;
pub use protector_openstack as openstack;
pub use protector_purestorage as purestorage;
pub use protector_sim as sim;
