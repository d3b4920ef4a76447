//! # protector-core
//!
//! The domain of protector — disaster recovery of OpenStack workloads whose Cinder
//! volumes live on replicating Pure Storage FlashArrays — without any HTTP, vendor or
//! wall-clock dependency:
//!
//! - [`model`]: sites, protection groups and members, replication policies, resource
//!   mappings, the `dr_operations` record and sync status, serialised with the
//!   product's documented field names and values;
//! - [`state`]: the protection-group and operation state machines as pure functions;
//! - [`progress`]: step ids, phases and the progress function;
//! - [`ports`]: the traits through which the engine reaches Nova, Cinder, Neutron and
//!   the arrays ([`ports::StorageDriver`]);
//! - [`store`]: durable operation and metadata stores (in memory and SQLite);
//! - [`policy`]: an oslo.policy-compatible rule engine with the product's defaults;
//! - [`messages`]: every user-facing text the product documents, verbatim;
//! - [`clock`] and [`ids`]: injected time and seeded ids, so a simulated run replays.
//!
//! ```
//! use protector_core::model::{parse_mappings, OperationType};
//! use protector_core::progress::{progress, Phase, StepId};
//!
//! let nets = parse_mappings(&["net-primary-web=net-secondary-web"]).unwrap();
//! assert_eq!(nets["net-primary-web"], "net-secondary-web");
//! // Half-way through promoting volumes, a failover is in its storage phase.
//! let (phase, pct) = progress(OperationType::Failover, StepId::PromoteVolumes, 0.5).unwrap();
//! assert_eq!((phase, pct), (Phase::StorageFailover, 45));
//! ```
#![deny(missing_docs)]

pub mod clock;
pub use clock::{Clock, SystemClock, TokioClock};
pub mod context;
pub use context::RequestContext;
pub mod engine;
pub use engine::{Protector, ProtectorBuilder, SiteRuntime};
pub mod error;
pub use error::{
    Applied, BackendError, BackendErrorKind, Error, MappingError, PolicyError, Service, StoreError,
    TransitionError,
};
pub mod ids;
pub use ids::IdGenerator;
pub mod messages;
pub use messages::Refusal;
pub mod model;
pub mod policy;
pub mod ports;
pub mod progress;
pub mod state;
pub mod store;

/// The `secrecy` crate, whose `SecretString` carries passwords and tokens.
pub use secrecy;
