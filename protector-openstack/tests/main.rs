//! The one integration test binary of protector-openstack.
//!
//! Wiremock-backed tests run everywhere; `real_keystone` runs against a real Keystone
//! (started by `scripts/services/keystone-start`, or by the tests themselves when
//! `PROTECTOR_TEST_KEYSTONE_URL` is unset).

mod cinder;
mod common;
mod config;
mod connector;
mod errors;
mod keystone;
mod neutron;
mod nova;
mod parsers;
mod port_contract;
mod real_keystone;
mod secrets;
mod tls;
