//! The simulated OpenStack clouds: a synchronous state machine per site and async
//! shells that implement the core ports over it ([`SimCompute`], [`SimBlockStorage`],
//! [`SimNetworking`]).

pub(crate) mod cinder;
pub(crate) mod neutron;
pub(crate) mod nova;
pub(crate) mod state;

pub use cinder::SimBlockStorage;
pub use neutron::SimNetworking;
pub use nova::SimCompute;
pub use state::{pure_volume_name, unmanaged_name, ImageInfo, ProjectInfo, UserInfo};
