//! protector-openstack
#![deny(missing_docs)]
