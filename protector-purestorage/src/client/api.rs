//! [`FlashArray`] over REST 2.x: one call per method, objects picked by query
//! parameters (`names=`, `group_names=`/`member_names=`, `source_names=`, `filter=`).

use async_trait::async_trait;
use reqwest::Method;
use serde_json::json;

use protector_core::{BackendError, Service};

use super::wire;
use super::{Call, FlashArrayClient};
use crate::array::{
    ArrayConnection, ArrayInfo, ArrayProtectionGroup, ArrayVolume, FlashArray, PgSnapshot,
    PgSnapshotOptions, PgSnapshotQuery, PgSnapshotTransfer, Pod, PromotionState,
    ProtectionGroupTarget, ReplicationSchedule, TargetRetention, VolumeQuery, VolumeSnapshot,
    VolumeSnapshotQuery,
};

fn one<T>(items: Vec<T>, what: &str) -> Result<T, BackendError> {
    items.into_iter().next().ok_or_else(|| {
        BackendError::new(
            protector_core::BackendErrorKind::Transient,
            Service::FlashArray,
            format!("the array answered {what} without an item"),
        )
        .maybe_applied()
    })
}

fn names(name: &str) -> Vec<String> {
    vec![name.to_owned()]
}

/// A quoted filter value: single quotes inside are escaped as the filter syntax wants.
fn quoted(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn pg_snapshot_call<'a>(path: &'a str, q: &PgSnapshotQuery) -> Call<'a> {
    Call::new(Method::GET, path)
        .list("names", &q.names)
        .list("source_names", &q.source_names)
        .flag("destroyed", q.destroyed)
}

impl FlashArrayClient {
    /// Adds (`POST`) or removes (`DELETE`) members of a group on a membership collection
    /// (`…?group_names=<group>&member_names=<a,b>`); nothing to do for no members.
    async fn membership(
        &self,
        method: Method,
        path: &str,
        group: &str,
        members: &[String],
    ) -> Result<(), BackendError> {
        if members.is_empty() {
            return Ok(());
        }
        let call = Call::new(method, path)
            .list("group_names", &names(group))
            .list("member_names", members);
        self.execute(&call).await.map(|_| ())
    }
}

#[async_trait]
impl FlashArray for FlashArrayClient {
    async fn array_info(&self) -> Result<ArrayInfo, BackendError> {
        let items = self
            .get_all(Call::new(Method::GET, "arrays"), wire::arrays)
            .await?;
        one(items, "GET /arrays")
    }

    async fn list_volumes(&self, query: &VolumeQuery) -> Result<Vec<ArrayVolume>, BackendError> {
        let mut call = Call::new(Method::GET, "volumes")
            .list("names", &query.names)
            .flag("destroyed", query.destroyed);
        if let Some(pod) = &query.pod {
            call = call.param("filter", format!("pod.name={}", quoted(pod)));
        }
        self.get_all(call, wire::volumes).await
    }

    async fn create_volume(
        &self,
        name: &str,
        provisioned: u64,
    ) -> Result<ArrayVolume, BackendError> {
        let call = Call::new(Method::POST, "volumes")
            .list("names", &names(name))
            .body(json!({ "provisioned": provisioned }));
        one(self.write(call, wire::volumes).await?, "POST /volumes")
    }

    async fn copy_volume(
        &self,
        name: &str,
        source: &str,
        overwrite: bool,
    ) -> Result<ArrayVolume, BackendError> {
        let mut call = Call::new(Method::POST, "volumes")
            .list("names", &names(name))
            .body(json!({ "source": { "name": source } }));
        if overwrite {
            call = call.param("overwrite", "true");
        }
        one(self.write(call, wire::volumes).await?, "POST /volumes")
    }

    async fn rename_volume(&self, name: &str, new_name: &str) -> Result<ArrayVolume, BackendError> {
        // Not repeatable: after it applied, the old name no longer exists.
        let call = Call::new(Method::PATCH, "volumes")
            .list("names", &names(name))
            .body(json!({ "name": new_name }))
            .not_idempotent();
        one(self.write(call, wire::volumes).await?, "PATCH /volumes")
    }

    async fn destroy_volume(&self, name: &str) -> Result<(), BackendError> {
        let call = Call::new(Method::PATCH, "volumes")
            .list("names", &names(name))
            .body(json!({ "destroyed": true }));
        self.write(call, wire::volumes).await.map(|_| ())
    }

    async fn eradicate_volume(&self, name: &str) -> Result<(), BackendError> {
        let call = Call::new(Method::DELETE, "volumes").list("names", &names(name));
        self.execute(&call).await.map(|_| ())
    }

    async fn list_volume_snapshots(
        &self,
        query: &VolumeSnapshotQuery,
    ) -> Result<Vec<VolumeSnapshot>, BackendError> {
        let mut call = Call::new(Method::GET, "volume-snapshots")
            .list("names", &query.names)
            .list("source_names", &query.source_names)
            .flag("destroyed", query.destroyed);
        if let Some(prefix) = &query.name_prefix {
            call = call.param("filter", format!("name={}", quoted(&format!("{prefix}*"))));
        }
        if let Some(sort) = query.order.sort_param() {
            call = call.param("sort", sort);
        }
        match query.limit {
            Some(limit) => {
                let call = call.param("limit", limit.to_string());
                let mut items = self.get_first_page(call, wire::volume_snapshots).await?;
                // An array that answers with more than it was asked for still gives
                // only the first `limit`.
                items.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
                Ok(items)
            }
            None => self.get_all(call, wire::volume_snapshots).await,
        }
    }

    async fn list_protection_groups(
        &self,
        group_names: &[String],
    ) -> Result<Vec<ArrayProtectionGroup>, BackendError> {
        let call = Call::new(Method::GET, "protection-groups").list("names", group_names);
        self.get_all(call, wire::protection_groups).await
    }

    async fn create_protection_group(
        &self,
        name: &str,
    ) -> Result<ArrayProtectionGroup, BackendError> {
        let call = Call::new(Method::POST, "protection-groups").list("names", &names(name));
        one(
            self.write(call, wire::protection_groups).await?,
            "POST /protection-groups",
        )
    }

    async fn destroy_protection_group(&self, name: &str) -> Result<(), BackendError> {
        let call = Call::new(Method::PATCH, "protection-groups")
            .list("names", &names(name))
            .body(json!({ "destroyed": true }));
        self.write(call, wire::protection_groups).await.map(|_| ())
    }

    async fn eradicate_protection_group(&self, name: &str) -> Result<(), BackendError> {
        let call = Call::new(Method::DELETE, "protection-groups").list("names", &names(name));
        self.execute(&call).await.map(|_| ())
    }

    async fn list_protection_group_volumes(
        &self,
        group: &str,
    ) -> Result<Vec<String>, BackendError> {
        let call =
            Call::new(Method::GET, "protection-groups/volumes").list("group_names", &names(group));
        self.get_all(call, wire::group_members).await
    }

    async fn add_protection_group_volumes(
        &self,
        group: &str,
        volumes: &[String],
    ) -> Result<(), BackendError> {
        self.membership(Method::POST, "protection-groups/volumes", group, volumes)
            .await
    }

    async fn remove_protection_group_volumes(
        &self,
        group: &str,
        volumes: &[String],
    ) -> Result<(), BackendError> {
        self.membership(Method::DELETE, "protection-groups/volumes", group, volumes)
            .await
    }

    async fn list_protection_group_targets(
        &self,
        group: &str,
    ) -> Result<Vec<ProtectionGroupTarget>, BackendError> {
        let call =
            Call::new(Method::GET, "protection-groups/targets").list("group_names", &names(group));
        self.get_all(call, wire::group_targets).await
    }

    async fn add_protection_group_targets(
        &self,
        group: &str,
        arrays: &[String],
    ) -> Result<(), BackendError> {
        self.membership(Method::POST, "protection-groups/targets", group, arrays)
            .await
    }

    async fn remove_protection_group_targets(
        &self,
        group: &str,
        arrays: &[String],
    ) -> Result<(), BackendError> {
        self.membership(Method::DELETE, "protection-groups/targets", group, arrays)
            .await
    }

    async fn allow_protection_group(&self, group: &str) -> Result<(), BackendError> {
        let call = Call::new(Method::PATCH, "protection-groups/targets")
            .list("group_names", &names(group))
            .body(json!({ "allowed": true }));
        self.execute(&call).await.map(|_| ())
    }

    async fn set_replication_schedule(
        &self,
        group: &str,
        schedule: &ReplicationSchedule,
    ) -> Result<(), BackendError> {
        let call = Call::new(Method::PATCH, "protection-groups")
            .list("names", &names(group))
            .body(json!({ "replication_schedule": {
                "enabled": schedule.enabled,
                "frequency": schedule.frequency_ms,
            }}));
        self.execute(&call).await.map(|_| ())
    }

    async fn set_target_retention(
        &self,
        group: &str,
        retention: &TargetRetention,
    ) -> Result<(), BackendError> {
        let call = Call::new(Method::PATCH, "protection-groups")
            .list("names", &names(group))
            .body(json!({ "target_retention": {
                "all_for_sec": retention.all_for_sec,
                "per_day": retention.per_day,
                "days": retention.days,
            }}));
        self.execute(&call).await.map(|_| ())
    }

    async fn create_pg_snapshot(
        &self,
        group: &str,
        options: &PgSnapshotOptions,
    ) -> Result<PgSnapshot, BackendError> {
        let mut call = Call::new(Method::POST, "protection-group-snapshots")
            .list("source_names", &names(group));
        if options.replicate_now {
            call = call.param("replicate_now", "true");
        }
        if options.apply_retention {
            call = call.param("apply_retention", "true");
        }
        call = call.body(match &options.suffix {
            Some(s) => json!({ "suffix": s }),
            None => json!({}),
        });
        one(
            self.write(call, wire::pg_snapshots).await?,
            "POST /protection-group-snapshots",
        )
    }

    async fn list_pg_snapshots(
        &self,
        query: &PgSnapshotQuery,
    ) -> Result<Vec<PgSnapshot>, BackendError> {
        self.get_all(
            pg_snapshot_call("protection-group-snapshots", query),
            wire::pg_snapshots,
        )
        .await
    }

    async fn list_pg_snapshot_transfers(
        &self,
        query: &PgSnapshotQuery,
    ) -> Result<Vec<PgSnapshotTransfer>, BackendError> {
        self.get_all(
            pg_snapshot_call("protection-group-snapshots/transfer", query),
            wire::pg_snapshot_transfers,
        )
        .await
    }

    async fn destroy_pg_snapshot(&self, name: &str) -> Result<(), BackendError> {
        let call = Call::new(Method::PATCH, "protection-group-snapshots")
            .list("names", &names(name))
            .body(json!({ "destroyed": true }));
        self.execute(&call).await.map(|_| ())
    }

    async fn eradicate_pg_snapshot(&self, name: &str) -> Result<(), BackendError> {
        let call =
            Call::new(Method::DELETE, "protection-group-snapshots").list("names", &names(name));
        self.execute(&call).await.map(|_| ())
    }

    async fn list_pods(&self, pod_names: &[String]) -> Result<Vec<Pod>, BackendError> {
        let call = Call::new(Method::GET, "pods").list("names", pod_names);
        self.get_all(call, wire::pods).await
    }

    async fn create_pod(&self, name: &str) -> Result<Pod, BackendError> {
        let call = Call::new(Method::POST, "pods").list("names", &names(name));
        one(self.write(call, wire::pods).await?, "POST /pods")
    }

    async fn stretch_pod(&self, pod: &str, array: &str) -> Result<(), BackendError> {
        let call = Call::new(Method::POST, "pods/arrays")
            .list("group_names", &names(pod))
            .list("member_names", &names(array));
        self.execute(&call).await.map(|_| ())
    }

    async fn unstretch_pod(
        &self,
        pod: &str,
        array: &str,
        with_unknown: bool,
    ) -> Result<(), BackendError> {
        let mut call = Call::new(Method::DELETE, "pods/arrays")
            .list("group_names", &names(pod))
            .list("member_names", &names(array));
        if with_unknown {
            call = call.param("with_unknown", "true");
        }
        self.execute(&call).await.map(|_| ())
    }

    async fn set_pod_promotion(
        &self,
        pod: &str,
        state: PromotionState,
    ) -> Result<Pod, BackendError> {
        let requested = match state {
            PromotionState::Promoted => "promoted",
            PromotionState::Demoted => "demoted",
        };
        let call = Call::new(Method::PATCH, "pods")
            .list("names", &names(pod))
            .body(json!({ "requested_promotion_state": requested }));
        one(self.write(call, wire::pods).await?, "PATCH /pods")
    }

    async fn destroy_pod(&self, pod: &str) -> Result<(), BackendError> {
        let call = Call::new(Method::PATCH, "pods")
            .list("names", &names(pod))
            .body(json!({ "destroyed": true }));
        self.execute(&call).await.map(|_| ())
    }

    async fn eradicate_pod(&self, pod: &str) -> Result<(), BackendError> {
        let call = Call::new(Method::DELETE, "pods").list("names", &names(pod));
        self.execute(&call).await.map(|_| ())
    }

    async fn move_volume(
        &self,
        name: &str,
        pod: Option<&str>,
    ) -> Result<ArrayVolume, BackendError> {
        // Not repeatable: the move renames the volume (`pod::vol`).
        let call = Call::new(Method::PATCH, "volumes")
            .list("names", &names(name))
            .body(json!({ "pod": { "name": pod.unwrap_or("") } }))
            .not_idempotent();
        one(self.write(call, wire::volumes).await?, "PATCH /volumes")
    }

    async fn list_array_connections(&self) -> Result<Vec<ArrayConnection>, BackendError> {
        self.get_all(
            Call::new(Method::GET, "array-connections"),
            wire::array_connections,
        )
        .await
    }
}
