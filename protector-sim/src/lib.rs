//! # protector-sim
//!
//! A deterministic simulator of everything protector talks to: two independent
//! OpenStack sites (`site-a`, `site-b` — Keystone, Nova, Cinder, Neutron) and one Pure
//! Storage FlashArray per site (`array-a`, `array-b`) replicating to each other. It
//! implements the core ports ([`protector_core::ports::Compute`], `BlockStorage`,
//! `Networking`) and the [`protector_purestorage::FlashArray`] trait in-process, so the
//! real engine and the real Pure driver run against it unchanged.
//!
//! ## The model
//!
//! - **One seed** ([`SimWorldBuilder::seed`]) derives every id, token and probability.
//!   Same seed and same scenario ⇒ same event log ⇒ same [`SimWorld::digest`].
//! - **Virtual time.** Everything waits on tokio's clock; run on paused time
//!   (`#[tokio::test(start_paused = true)]`) and a 30-minute failover takes
//!   milliseconds. Timestamps come from [`SimWorld::clock`].
//! - **Latency and limits.** A [`LatencyProfile`] gives each [`LatencyClass`] a latency
//!   and a concurrency limit per site and service; excess calls queue. `realistic` is
//!   the design's table: a boot holds one of Nova's 20 boot slots for 30 s.
//! - **Services as they behave.** Each site is a synchronous state machine in
//!   `BTreeMap`s behind async shells that keep the real names, statuses and error
//!   texts: `BUILD → ACTIVE`, `Block Device … is not bootable.`, manage renaming the
//!   array volume `volume-<id>-cinder`, unmanage leaving `…-unmanaged`, Cinder's
//!   `PolicyNotAuthorized` 403. Tenants see their own project; admins see all.
//! - **Data.** Every array volume carries a write sequence that advances while its
//!   server runs; snapshots capture it, so [`SimWorld::writes_lost`] measures what a
//!   failover lost.
//! - **Faults** are rules with a [`Verdict`] (pass, delay, fail, hang), selected by
//!   site, service, call kind, nth call or seeded probability, installed with
//!   [`SimWorld::fault`] and removed when the [`FaultGuard`] drops. Verbs name the
//!   physical event: [`SimWorld::take_site_down`], [`SimWorld::take_array_down`],
//!   [`SimWorld::cut_replication_link`], [`SimWorld::stall_replication`],
//!   [`SimWorld::deny_volume_manage`], and [`SimWorld::crash_at`] for the engine.
//! - **Invariants** ([`SimWorld::check_invariants`]): no leaked servers, volumes or
//!   array volumes; protection-group status matches where the workload runs; data
//!   loss within a stated bound.
//!
//! ## Quick start
//!
//! ```
//! use std::time::Duration;
//!
//! use protector_core::ports::{BlockStorage, Compute, ServerStatus};
//! use protector_core::BackendErrorKind;
//! use protector_sim::{
//!     CallKind, FaultRule, InvariantInput, LatencyProfile, SimSite, SimWorld, WorkloadSpec,
//! };
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let world = SimWorld::builder().seed(7).profile(LatencyProfile::realistic()).build()?;
//!
//! // Two running VMs of tenant-a on site-a, each with a boot and a data volume on the
//! // async-replicated type, backed by `volume-<id>-cinder` on array-a.
//! let workload = world.create_workload(&WorkloadSpec::new(SimSite::A, "tenant-a").servers(2))?;
//! let alice = world.tenant_context(SimSite::A, "tenant-a")?;
//! let site_a = world.clients(SimSite::A, &alice);
//!
//! // Stopping takes the profile's 10 s of virtual time; the volumes stop being written.
//! let vm = &workload.servers[0];
//! site_a.compute.stop_server(&vm.id).await?;
//! tokio::time::sleep(Duration::from_secs(11)).await;
//! assert_eq!(site_a.compute.get_server(&vm.id).await?.status, ServerStatus::Shutoff);
//! let written = world.write_seq(SimSite::A, &vm.boot_volume.array_volume)?;
//! tokio::time::sleep(Duration::from_secs(60)).await;
//! assert_eq!(world.write_seq(SimSite::A, &vm.boot_volume.array_volume)?, written);
//!
//! // A fault rule holds until its guard is dropped.
//! let outage = world.fault(
//!     FaultRule::fail(BackendErrorKind::Transient, "503 Service Unavailable")
//!         .on_site(SimSite::A)
//!         .on_call(CallKind::ListVolumes),
//! );
//! assert!(site_a.block_storage.list_volumes().await.is_err());
//! drop(outage);
//! assert_eq!(site_a.block_storage.list_volumes().await?.len(), 4);
//!
//! // The arrays answer at the REST resource level.
//! let volumes = world.array(SimSite::A).list_volumes(&Default::default()).await?;
//! assert_eq!(volumes.len(), 4);
//!
//! // Nothing leaked; and the run has a fingerprint.
//! assert!(world.check_invariants(&InvariantInput::default()).is_ok());
//! assert_eq!(world.stats().count(SimSite::A, CallKind::StopServer), 1);
//! assert_eq!(world.digest().len(), 64);
//! # Ok(())
//! # }
//! ```
//!
//! ## Caveats
//!
//! - Set-up helpers ([`SimWorld::create_workload`], [`SimWorld::create_array_volume`])
//!   act at once and are not counted as calls.
//! - A call's fault decision and latency happen before the state changes; a rule made
//!   with [`FaultRule::after_applying`] lets an OpenStack call take effect and then
//!   report a lost answer (FlashArray calls cannot: their gate runs before the call).
//! - Replication slots: every `create_pg_snapshot` holds one for the transfer time.
#![deny(missing_docs)]

pub mod flasharray;

mod bridge;
pub mod call;
pub use call::{CallKind, LatencyClass};
pub mod cloud;
pub use cloud::{SimBlockStorage, SimCompute, SimNetworking};
pub mod crash;
pub use crash::{CrashGuard, CrashHook};
pub mod error;
pub use error::SimError;
pub mod events;
pub use events::SimEvent;
pub mod fault;
pub use fault::{FaultGuard, FaultRule, Verdict};
mod gate;
pub mod harness;
pub use harness::{DrStores, SimConnector, SimStorageFactory};
mod hash;
pub mod http;
pub mod invariants;
pub use invariants::{DataLossCheck, InvariantInput, Violation};
pub mod profile;
pub use profile::{ClassSpec, LatencyProfile, ProfileRow};
pub mod seed;
pub use seed::{derive_seed, seed_from_env, SEED_ENV};
pub mod site;
pub use site::SimSite;
pub mod stats;
pub use stats::CallStats;
pub mod workload;
pub use workload::{Workload, WorkloadServer, WorkloadSpec, WorkloadVolume};
pub mod world;
pub use world::{SimWorld, SimWorldBuilder, SiteInfo};
