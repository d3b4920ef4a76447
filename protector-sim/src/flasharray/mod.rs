//! Simulated Pure Storage FlashArrays: N named arrays, the replication links between
//! them, and a [`FlashArray`] client per array.
//!
//! The arrays live in one synchronous state machine, [`ArrayFabricState`], held by an
//! [`ArrayFabric`] (a cheap `Clone` handle). [`ArrayFabric::client`] hands out the async
//! shell [`SimFlashArray`], which implements the same [`FlashArray`] trait as the REST
//! client, so the Pure driver runs unchanged on simulated arrays.
//!
//! # Expected flow
//! The world builds a fabric from its seed and clock, adds the arrays, connects them,
//! sets the transfer time from its latency profile and installs a [`CallGate`] for
//! latency, concurrency limits and fault rules. Engine code talks to the arrays through
//! clients; the world flips faults with the turmoil-style verbs (`take_array_down`,
//! `cut_link`, `stall_replication`, ...) and marks volumes as written with
//! [`ArrayFabric::set_writing`] while their servers run.
//!
//! # Guarantees
//! - Deterministic: ids come from the seed, time from the injected clock, every map is
//!   a `BTreeMap`; the same seed and the same calls give the same [`ArrayFabric::events`].
//! - Replication, schedules and retention are computed lazily from time: nothing runs
//!   in the background, and nothing happens between two calls that a third could see
//!   differently.
//! - A shell call never holds the state lock across an `.await`.
//!
//! ```
//! use std::sync::Arc;
//! use protector_core::TokioClock;
//! use protector_purestorage::{FlashArray, PgSnapshotOptions, VolumeSnapshotQuery};
//! use protector_sim::flasharray::ArrayFabric;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), protector_core::BackendError> {
//! let fabric = ArrayFabric::new(7, Arc::new(TokioClock::default_epoch()));
//! fabric.add_array("array-a", "token-a")?;
//! fabric.add_array("array-b", "token-b")?;
//! fabric.connect("array-a", "array-b")?;
//! let a = fabric.client("array-a", "token-a")?;
//! let b = fabric.client("array-b", "token-b")?;
//!
//! a.create_volume("vol1", 1 << 30).await?;
//! a.create_protection_group("pg1").await?;
//! a.add_protection_group_volumes("pg1", &["vol1".to_owned()]).await?;
//! a.add_protection_group_targets("pg1", &["array-b".to_owned()]).await?;
//! b.allow_protection_group("array-a:pg1").await?;
//! let opts = PgSnapshotOptions { replicate_now: true, ..Default::default() };
//! a.create_pg_snapshot("pg1", &opts).await?;
//!
//! tokio::time::sleep(fabric.transfer_time()).await;
//! let query = VolumeSnapshotQuery { source_names: vec!["array-a:vol1".to_owned()], ..Default::default() };
//! let landed = b.list_volume_snapshots(&query).await?;
//! assert_eq!(landed[0].name, "array-a:pg1.1.vol1");
//! # Ok(())
//! # }
//! ```

pub mod calls;
mod data;
mod errors;
mod shell;
pub mod state;

pub use data::MS_PER_WRITE;
pub use shell::SimFlashArray;
pub use state::{ArrayFabricState, PendingTransfer, VolumeSummary};

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use protector_core::{BackendError, Clock};
use protector_purestorage::{ArrayInfo, FlashArray};

/// A hook run before every call a [`SimFlashArray`] serves, before the state is
/// touched: the place for latency (sleep on tokio time), concurrency limits and fault
/// rules. An error is returned to the caller as the call's result.
#[async_trait]
pub trait CallGate: Send + Sync {
    /// Called with the array's name and the call's stable name (see [`calls`]).
    ///
    /// # Errors
    /// Whatever failure the gate decides to inject.
    async fn before_call(&self, array: &str, call: &'static str) -> Result<(), BackendError>;
}

/// A fabric of simulated FlashArrays: a cheap, cloneable handle on one
/// [`ArrayFabricState`], an injected clock and an optional [`CallGate`].
#[derive(Clone)]
pub struct ArrayFabric {
    state: Arc<Mutex<ArrayFabricState>>,
    gate: Arc<Mutex<Option<Arc<dyn CallGate>>>>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for ArrayFabric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArrayFabric")
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl ArrayFabric {
    /// An empty fabric: ids from `seed`, time from `clock`.
    pub fn new(seed: u64, clock: Arc<dyn Clock>) -> Self {
        Self {
            state: Arc::new(Mutex::new(ArrayFabricState::new(seed))),
            gate: Arc::new(Mutex::new(None)),
            clock,
        }
    }

    /// The clock's current time in milliseconds since the epoch.
    pub fn now_ms(&self) -> i64 {
        self.clock.now().timestamp_millis()
    }

    fn lock(&self) -> MutexGuard<'_, ArrayFabricState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `f` on the state, advanced to the clock's now, under the lock. For the world
    /// and the invariant checker (e.g. [`ArrayFabricState::all_volumes`]); `f` must not
    /// block.
    pub fn with_state<R>(&self, f: impl FnOnce(&mut ArrayFabricState) -> R) -> R {
        let now = self.now_ms();
        let mut state = self.lock();
        state.advance_to(now);
        f(&mut state)
    }

    /// Installs the gate every later call passes through.
    pub fn set_gate(&self, gate: Arc<dyn CallGate>) {
        *self.gate.lock().unwrap_or_else(|p| p.into_inner()) = Some(gate);
    }

    /// Removes the gate.
    pub fn clear_gate(&self) {
        *self.gate.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    pub(crate) fn gate(&self) -> Option<Arc<dyn CallGate>> {
        self.gate.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Adds an array that accepts `api_token`.
    ///
    /// # Errors
    /// The name is taken or not a valid array name.
    pub fn add_array(&self, name: &str, api_token: &str) -> Result<ArrayInfo, BackendError> {
        self.with_state(|s| s.add_array(name, api_token, s.now_ms()))
    }

    /// Connects two arrays both ways (sync and async replication).
    ///
    /// # Errors
    /// Unknown arrays or already connected.
    pub fn connect(&self, a: &str, b: &str) -> Result<(), BackendError> {
        self.with_state(|s| s.connect(a, b, s.now_ms()))
    }

    /// Sets how long later replicated snapshots take to land (flowing time).
    pub fn set_transfer_time(&self, transfer_time: Duration) {
        let ms = i64::try_from(transfer_time.as_millis()).unwrap_or(i64::MAX);
        self.with_state(|s| s.set_transfer_time_ms(ms, s.now_ms()));
    }

    /// How long a replicated snapshot takes to land.
    pub fn transfer_time(&self) -> Duration {
        let ms = self.with_state(|s| s.transfer_time_ms());
        Duration::from_millis(u64::try_from(ms).unwrap_or(0))
    }

    /// Takes an array down: every call to it fails as unreachable (transient, not
    /// applied), its transfers hold, its pods split and its writes stop.
    ///
    /// # Errors
    /// Unknown array.
    pub fn take_array_down(&self, name: &str) -> Result<(), BackendError> {
        self.with_state(|s| s.take_array_down(name, s.now_ms()))
    }

    /// Brings an array back up.
    ///
    /// # Errors
    /// Unknown array.
    pub fn bring_array_up(&self, name: &str) -> Result<(), BackendError> {
        self.with_state(|s| s.bring_array_up(name, s.now_ms()))
    }

    /// Cuts the replication link between two arrays.
    ///
    /// # Errors
    /// The arrays are not connected.
    pub fn cut_link(&self, a: &str, b: &str) -> Result<(), BackendError> {
        self.with_state(|s| s.cut_link(a, b, s.now_ms()))
    }

    /// Repairs a cut link.
    ///
    /// # Errors
    /// The arrays are not connected.
    pub fn repair_link(&self, a: &str, b: &str) -> Result<(), BackendError> {
        self.with_state(|s| s.repair_link(a, b, s.now_ms()))
    }

    /// Stalls replication between two arrays (transfers hang below 1.0).
    ///
    /// # Errors
    /// The arrays are not connected.
    pub fn stall_replication(&self, a: &str, b: &str) -> Result<(), BackendError> {
        self.with_state(|s| s.stall_replication(a, b, s.now_ms()))
    }

    /// Releases stalled replication.
    ///
    /// # Errors
    /// The arrays are not connected.
    pub fn release_replication(&self, a: &str, b: &str) -> Result<(), BackendError> {
        self.with_state(|s| s.release_replication(a, b, s.now_ms()))
    }

    /// Marks a volume as being written or not (its server is running or not).
    ///
    /// # Errors
    /// Unknown array or volume, a destroyed volume, or a down array.
    pub fn set_writing(
        &self,
        array: &str,
        volume: &str,
        writing: bool,
    ) -> Result<(), BackendError> {
        self.with_state(|s| s.set_writing(array, volume, writing, s.now_ms()))
    }

    /// The write sequence of a volume now.
    ///
    /// # Errors
    /// Unknown array or volume.
    pub fn write_seq(&self, array: &str, volume: &str) -> Result<u64, BackendError> {
        self.with_state(|s| s.write_seq(array, volume, s.now_ms()))
    }

    /// Every state change so far, in order (hash it for a run digest).
    pub fn events(&self) -> Vec<String> {
        self.with_state(|s| s.events())
    }

    /// A client of `array` authenticated with `api_token`.
    ///
    /// # Errors
    /// Unreachable (unknown or down array) or 401 for a wrong token.
    pub fn client(
        &self,
        array: &str,
        api_token: &str,
    ) -> Result<Arc<dyn FlashArray>, BackendError> {
        Ok(Arc::new(self.sim_client(array, api_token)?))
    }

    /// [`Self::client`] as the concrete type.
    ///
    /// # Errors
    /// Unreachable (unknown or down array) or 401 for a wrong token.
    pub fn sim_client(&self, array: &str, api_token: &str) -> Result<SimFlashArray, BackendError> {
        self.with_state(|s| s.check_call(array, api_token))?;
        Ok(SimFlashArray::new(self.clone(), array, api_token))
    }
}

#[cfg(test)]
mod tests;
