//! # protector-purestorage
//!
//! The array side of protector:
//!
//! - [`FlashArray`]: one array's REST 2.x API at the resource level, in domain types;
//!   implemented here by the REST client [`FlashArrayClient`] and, in `protector-sim`,
//!   by the simulated arrays;
//! - [`PureDriver`]: protector's [`StorageDriver`](protector_core::ports::StorageDriver)
//!   for Pure Storage — async replication through protection groups, sync replication
//!   through stretched pods — running on any two [`FlashArray`]s;
//! - [`PureDriverFactory`]: builds a driver per replication policy from the policy's
//!   array URLs and API tokens.
//!
//! Quick start on the simulator's arrays (the same driver runs on real ones):
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use protector_core::model::ReplicationType;
//! use protector_core::ports::{ArraySide, ReplicationGroupSpec, StorageDriver};
//! use protector_core::TokioClock;
//! use protector_purestorage::{FlashArray, PureDriver, PureDriverOptions};
//! use protector_sim::flasharray::ArrayFabric;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), protector_core::BackendError> {
//! let clock = Arc::new(TokioClock::default_epoch());
//! let fabric = ArrayFabric::new(7, clock.clone());
//! fabric.add_array("array-a", "token-a")?;
//! fabric.add_array("array-b", "token-b")?;
//! fabric.connect("array-a", "array-b")?;
//! let a = fabric.client("array-a", "token-a")?;
//! let b = fabric.client("array-b", "token-b")?;
//! a.create_volume("volume-1c2d-cinder", 1 << 30).await?;
//!
//! let driver = PureDriver::new(a, b, clock, PureDriverOptions::default());
//! let spec = ReplicationGroupSpec {
//!     name: "cinder-group".into(),
//!     replication_type: ReplicationType::Async,
//!     interval: Duration::from_secs(900),
//!     rpo: Duration::from_secs(900),
//! };
//! driver.ensure_replication_group(&spec, ArraySide::Primary).await?;
//! driver.add_volumes(&spec, ArraySide::Primary, &["volume-1c2d-cinder".into()]).await?;
//! driver.replicate_now(&spec, ArraySide::Primary, Duration::from_secs(300)).await?;
//! let replica = driver
//!     .newest_replica(&spec, ArraySide::Primary, "volume-1c2d-cinder")
//!     .await?
//!     .expect("replicated");
//! assert_eq!(replica.name, "array-a:cinder-group.1.volume-1c2d-cinder");
//! let copy = driver.promote(&replica, "volume-9e8f-cinder").await?;
//! assert_eq!(copy.array, ArraySide::Secondary);
//! # Ok(())
//! # }
//! ```
//!
//! Against real arrays, build a [`FlashArrayClient`] per array (or let
//! [`PureDriverFactory`] do it from a replication policy):
//!
//! ```no_run
//! use protector_purestorage::{FlashArray, FlashArrayClient};
//! use secrecy::SecretString;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let a = FlashArrayClient::builder("https://array-a.example.com", SecretString::from("token-a"))
//!     .accept_invalid_certs(true) // self-signed array certificate
//!     .build()?;
//! println!("REST {} on {}", a.api_version().await?, a.array_info().await?.name);
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

pub mod array;
pub use array::{
    ArrayConnection, ArrayInfo, ArrayProtectionGroup, ArrayVolume, FlashArray, NameRef, PgSnapshot,
    PgSnapshotOptions, PgSnapshotQuery, PgSnapshotTransfer, Pod, PodArray, PromotionState,
    ProtectionGroupTarget, ReplicationSchedule, SnapshotOrder, TargetRetention, VolumeQuery,
    VolumeSnapshot, VolumeSnapshotQuery,
};
pub mod client;
pub use client::{FlashArrayClient, FlashArrayClientBuilder, MAX_REST_MINOR, MIN_REST_MINOR};
pub mod driver;
pub use driver::{PureDriver, PureDriverOptions};
pub mod error;
pub use error::{ConfigError, ParseError};
pub mod factory;
pub use factory::{FactoryOptions, PureDriverFactory};
pub mod retry;
pub use retry::{RetryBudget, RetryPolicy};

/// The response parsers of the REST client, for fuzzing: each takes arbitrary bytes and
/// never panics.
#[doc(hidden)]
pub mod parse {
    pub use crate::client::wire::{
        api_versions, array_connections, arrays, error_from_response, error_items, group_members,
        group_targets, login_user, pg_snapshot_transfers, pg_snapshots, pick_v2, pods,
        protection_groups, throttle_delay, volume_snapshots, volumes, ErrorItem, ErrorMeta, Page,
    };
}
