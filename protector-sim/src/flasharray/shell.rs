//! The async shell: one simulated array behind the [`FlashArray`] trait.

use async_trait::async_trait;
use protector_core::BackendError;
use protector_purestorage::{
    ArrayConnection, ArrayInfo, ArrayProtectionGroup, ArrayVolume, FlashArray, PgSnapshot,
    PgSnapshotOptions, PgSnapshotQuery, PgSnapshotTransfer, Pod, PromotionState,
    ProtectionGroupTarget, ReplicationSchedule, TargetRetention, VolumeQuery, VolumeSnapshot,
    VolumeSnapshotQuery,
};

use super::calls;
use super::state::ArrayFabricState;
use super::ArrayFabric;

/// A client of one simulated array. Each call passes the fabric's [`super::CallGate`]
/// (if any), then locks the state, advances it to the clock's now, checks that the
/// array is up and the token valid, applies the call and unlocks; it never awaits while
/// holding the lock.
#[derive(Clone, Debug)]
pub struct SimFlashArray {
    fabric: ArrayFabric,
    array: String,
    api_token: String,
}

impl SimFlashArray {
    pub(crate) fn new(fabric: ArrayFabric, array: &str, api_token: &str) -> Self {
        Self {
            fabric,
            array: array.to_owned(),
            api_token: api_token.to_owned(),
        }
    }

    /// The array this client talks to.
    pub fn array_name(&self) -> &str {
        &self.array
    }

    async fn call<T>(
        &self,
        call: &'static str,
        f: impl FnOnce(&mut ArrayFabricState, &str, i64) -> Result<T, BackendError> + Send,
    ) -> Result<T, BackendError> {
        if let Some(gate) = self.fabric.gate() {
            gate.before_call(&self.array, call).await?;
        }
        self.fabric.with_state(|s| {
            let now = s.now_ms();
            s.check_call(&self.array, &self.api_token)?;
            f(s, &self.array, now)
        })
    }
}

#[async_trait]
impl FlashArray for SimFlashArray {
    async fn array_info(&self) -> Result<ArrayInfo, BackendError> {
        self.call(calls::ARRAY_INFO, |s, a, t| s.array_info(a, t))
            .await
    }

    async fn list_volumes(&self, query: &VolumeQuery) -> Result<Vec<ArrayVolume>, BackendError> {
        self.call(calls::LIST_VOLUMES, |s, a, t| s.list_volumes(a, query, t))
            .await
    }

    async fn create_volume(
        &self,
        name: &str,
        provisioned: u64,
    ) -> Result<ArrayVolume, BackendError> {
        self.call(calls::CREATE_VOLUME, |s, a, t| {
            s.create_volume(a, name, provisioned, t)
        })
        .await
    }

    async fn copy_volume(
        &self,
        name: &str,
        source: &str,
        overwrite: bool,
    ) -> Result<ArrayVolume, BackendError> {
        self.call(calls::COPY_VOLUME, |s, a, t| {
            s.copy_volume(a, name, source, overwrite, t)
        })
        .await
    }

    async fn rename_volume(&self, name: &str, new_name: &str) -> Result<ArrayVolume, BackendError> {
        self.call(calls::RENAME_VOLUME, |s, a, t| {
            s.rename_volume(a, name, new_name, t)
        })
        .await
    }

    async fn destroy_volume(&self, name: &str) -> Result<(), BackendError> {
        self.call(calls::DESTROY_VOLUME, |s, a, t| {
            s.destroy_volume(a, name, t)
        })
        .await
    }

    async fn eradicate_volume(&self, name: &str) -> Result<(), BackendError> {
        self.call(calls::ERADICATE_VOLUME, |s, a, t| {
            s.eradicate_volume(a, name, t)
        })
        .await
    }

    async fn list_volume_snapshots(
        &self,
        query: &VolumeSnapshotQuery,
    ) -> Result<Vec<VolumeSnapshot>, BackendError> {
        self.call(calls::LIST_VOLUME_SNAPSHOTS, |s, a, t| {
            s.list_volume_snapshots(a, query, t)
        })
        .await
    }

    async fn list_protection_groups(
        &self,
        names: &[String],
    ) -> Result<Vec<ArrayProtectionGroup>, BackendError> {
        self.call(calls::LIST_PROTECTION_GROUPS, |s, a, t| {
            s.list_protection_groups(a, names, t)
        })
        .await
    }

    async fn create_protection_group(
        &self,
        name: &str,
    ) -> Result<ArrayProtectionGroup, BackendError> {
        self.call(calls::CREATE_PROTECTION_GROUP, |s, a, t| {
            s.create_protection_group(a, name, t)
        })
        .await
    }

    async fn destroy_protection_group(&self, name: &str) -> Result<(), BackendError> {
        self.call(calls::DESTROY_PROTECTION_GROUP, |s, a, t| {
            s.destroy_protection_group(a, name, t)
        })
        .await
    }

    async fn eradicate_protection_group(&self, name: &str) -> Result<(), BackendError> {
        self.call(calls::ERADICATE_PROTECTION_GROUP, |s, a, t| {
            s.eradicate_protection_group(a, name, t)
        })
        .await
    }

    async fn list_protection_group_volumes(
        &self,
        group: &str,
    ) -> Result<Vec<String>, BackendError> {
        self.call(calls::LIST_PROTECTION_GROUP_VOLUMES, |s, a, t| {
            s.list_protection_group_volumes(a, group, t)
        })
        .await
    }

    async fn add_protection_group_volumes(
        &self,
        group: &str,
        volumes: &[String],
    ) -> Result<(), BackendError> {
        self.call(calls::ADD_PROTECTION_GROUP_VOLUMES, |s, a, t| {
            s.add_protection_group_volumes(a, group, volumes, t)
        })
        .await
    }

    async fn remove_protection_group_volumes(
        &self,
        group: &str,
        volumes: &[String],
    ) -> Result<(), BackendError> {
        self.call(calls::REMOVE_PROTECTION_GROUP_VOLUMES, |s, a, t| {
            s.remove_protection_group_volumes(a, group, volumes, t)
        })
        .await
    }

    async fn list_protection_group_targets(
        &self,
        group: &str,
    ) -> Result<Vec<ProtectionGroupTarget>, BackendError> {
        self.call(calls::LIST_PROTECTION_GROUP_TARGETS, |s, a, t| {
            s.list_protection_group_targets(a, group, t)
        })
        .await
    }

    async fn add_protection_group_targets(
        &self,
        group: &str,
        arrays: &[String],
    ) -> Result<(), BackendError> {
        self.call(calls::ADD_PROTECTION_GROUP_TARGETS, |s, a, t| {
            s.add_protection_group_targets(a, group, arrays, t)
        })
        .await
    }

    async fn remove_protection_group_targets(
        &self,
        group: &str,
        arrays: &[String],
    ) -> Result<(), BackendError> {
        self.call(calls::REMOVE_PROTECTION_GROUP_TARGETS, |s, a, t| {
            s.remove_protection_group_targets(a, group, arrays, t)
        })
        .await
    }

    async fn allow_protection_group(&self, group: &str) -> Result<(), BackendError> {
        self.call(calls::ALLOW_PROTECTION_GROUP, |s, a, t| {
            s.allow_protection_group(a, group, t)
        })
        .await
    }

    async fn set_replication_schedule(
        &self,
        group: &str,
        schedule: &ReplicationSchedule,
    ) -> Result<(), BackendError> {
        self.call(calls::SET_REPLICATION_SCHEDULE, |s, a, t| {
            s.set_replication_schedule(a, group, schedule, t)
        })
        .await
    }

    async fn set_target_retention(
        &self,
        group: &str,
        retention: &TargetRetention,
    ) -> Result<(), BackendError> {
        self.call(calls::SET_TARGET_RETENTION, |s, a, t| {
            s.set_target_retention(a, group, retention, t)
        })
        .await
    }

    async fn create_pg_snapshot(
        &self,
        group: &str,
        options: &PgSnapshotOptions,
    ) -> Result<PgSnapshot, BackendError> {
        self.call(calls::CREATE_PG_SNAPSHOT, |s, a, t| {
            s.create_pg_snapshot(a, group, options, t)
        })
        .await
    }

    async fn list_pg_snapshots(
        &self,
        query: &PgSnapshotQuery,
    ) -> Result<Vec<PgSnapshot>, BackendError> {
        self.call(calls::LIST_PG_SNAPSHOTS, |s, a, t| {
            s.list_pg_snapshots(a, query, t)
        })
        .await
    }

    async fn list_pg_snapshot_transfers(
        &self,
        query: &PgSnapshotQuery,
    ) -> Result<Vec<PgSnapshotTransfer>, BackendError> {
        self.call(calls::LIST_PG_SNAPSHOT_TRANSFERS, |s, a, t| {
            s.list_pg_snapshot_transfers(a, query, t)
        })
        .await
    }

    async fn destroy_pg_snapshot(&self, name: &str) -> Result<(), BackendError> {
        self.call(calls::DESTROY_PG_SNAPSHOT, |s, a, t| {
            s.destroy_pg_snapshot(a, name, t)
        })
        .await
    }

    async fn eradicate_pg_snapshot(&self, name: &str) -> Result<(), BackendError> {
        self.call(calls::ERADICATE_PG_SNAPSHOT, |s, a, t| {
            s.eradicate_pg_snapshot(a, name, t)
        })
        .await
    }

    async fn list_pods(&self, names: &[String]) -> Result<Vec<Pod>, BackendError> {
        self.call(calls::LIST_PODS, |s, a, t| s.list_pods(a, names, t))
            .await
    }

    async fn create_pod(&self, name: &str) -> Result<Pod, BackendError> {
        self.call(calls::CREATE_POD, |s, a, t| s.create_pod(a, name, t))
            .await
    }

    async fn stretch_pod(&self, pod: &str, array: &str) -> Result<(), BackendError> {
        self.call(calls::STRETCH_POD, |s, a, t| {
            s.stretch_pod(a, pod, array, t)
        })
        .await
    }

    async fn unstretch_pod(
        &self,
        pod: &str,
        array: &str,
        with_unknown: bool,
    ) -> Result<(), BackendError> {
        self.call(calls::UNSTRETCH_POD, |s, a, t| {
            s.unstretch_pod(a, pod, array, with_unknown, t)
        })
        .await
    }

    async fn set_pod_promotion(
        &self,
        pod: &str,
        state: PromotionState,
    ) -> Result<Pod, BackendError> {
        self.call(calls::SET_POD_PROMOTION, |s, a, t| {
            s.set_pod_promotion(a, pod, state, t)
        })
        .await
    }

    async fn destroy_pod(&self, pod: &str) -> Result<(), BackendError> {
        self.call(calls::DESTROY_POD, |s, a, t| s.destroy_pod(a, pod, t))
            .await
    }

    async fn eradicate_pod(&self, pod: &str) -> Result<(), BackendError> {
        self.call(calls::ERADICATE_POD, |s, a, t| s.eradicate_pod(a, pod, t))
            .await
    }

    async fn move_volume(
        &self,
        name: &str,
        pod: Option<&str>,
    ) -> Result<ArrayVolume, BackendError> {
        self.call(calls::MOVE_VOLUME, |s, a, t| s.move_volume(a, name, pod, t))
            .await
    }

    async fn list_array_connections(&self) -> Result<Vec<ArrayConnection>, BackendError> {
        self.call(calls::LIST_ARRAY_CONNECTIONS, |s, a, t| {
            s.list_array_connections(a, t)
        })
        .await
    }
}
