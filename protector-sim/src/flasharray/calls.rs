//! Stable names of the [`FlashArray`](protector_purestorage::FlashArray) calls, as
//! passed to [`CallGate::before_call`](super::CallGate::before_call): one per trait
//! method, spelled like the method.

/// `array_info`.
pub const ARRAY_INFO: &str = "array_info";
/// `list_volumes`.
pub const LIST_VOLUMES: &str = "list_volumes";
/// `create_volume`.
pub const CREATE_VOLUME: &str = "create_volume";
/// `copy_volume`.
pub const COPY_VOLUME: &str = "copy_volume";
/// `rename_volume`.
pub const RENAME_VOLUME: &str = "rename_volume";
/// `destroy_volume`.
pub const DESTROY_VOLUME: &str = "destroy_volume";
/// `eradicate_volume`.
pub const ERADICATE_VOLUME: &str = "eradicate_volume";
/// `list_volume_snapshots`.
pub const LIST_VOLUME_SNAPSHOTS: &str = "list_volume_snapshots";
/// `list_protection_groups`.
pub const LIST_PROTECTION_GROUPS: &str = "list_protection_groups";
/// `create_protection_group`.
pub const CREATE_PROTECTION_GROUP: &str = "create_protection_group";
/// `destroy_protection_group`.
pub const DESTROY_PROTECTION_GROUP: &str = "destroy_protection_group";
/// `eradicate_protection_group`.
pub const ERADICATE_PROTECTION_GROUP: &str = "eradicate_protection_group";
/// `list_protection_group_volumes`.
pub const LIST_PROTECTION_GROUP_VOLUMES: &str = "list_protection_group_volumes";
/// `add_protection_group_volumes`.
pub const ADD_PROTECTION_GROUP_VOLUMES: &str = "add_protection_group_volumes";
/// `remove_protection_group_volumes`.
pub const REMOVE_PROTECTION_GROUP_VOLUMES: &str = "remove_protection_group_volumes";
/// `list_protection_group_targets`.
pub const LIST_PROTECTION_GROUP_TARGETS: &str = "list_protection_group_targets";
/// `add_protection_group_targets`.
pub const ADD_PROTECTION_GROUP_TARGETS: &str = "add_protection_group_targets";
/// `remove_protection_group_targets`.
pub const REMOVE_PROTECTION_GROUP_TARGETS: &str = "remove_protection_group_targets";
/// `allow_protection_group`.
pub const ALLOW_PROTECTION_GROUP: &str = "allow_protection_group";
/// `set_replication_schedule`.
pub const SET_REPLICATION_SCHEDULE: &str = "set_replication_schedule";
/// `set_target_retention`.
pub const SET_TARGET_RETENTION: &str = "set_target_retention";
/// `create_pg_snapshot` (with `replicate_now`, the call that starts replication).
pub const CREATE_PG_SNAPSHOT: &str = "create_pg_snapshot";
/// `list_pg_snapshots`.
pub const LIST_PG_SNAPSHOTS: &str = "list_pg_snapshots";
/// `list_pg_snapshot_transfers`.
pub const LIST_PG_SNAPSHOT_TRANSFERS: &str = "list_pg_snapshot_transfers";
/// `destroy_pg_snapshot`.
pub const DESTROY_PG_SNAPSHOT: &str = "destroy_pg_snapshot";
/// `eradicate_pg_snapshot`.
pub const ERADICATE_PG_SNAPSHOT: &str = "eradicate_pg_snapshot";
/// `list_pods`.
pub const LIST_PODS: &str = "list_pods";
/// `create_pod`.
pub const CREATE_POD: &str = "create_pod";
/// `stretch_pod`.
pub const STRETCH_POD: &str = "stretch_pod";
/// `unstretch_pod`.
pub const UNSTRETCH_POD: &str = "unstretch_pod";
/// `set_pod_promotion`.
pub const SET_POD_PROMOTION: &str = "set_pod_promotion";
/// `destroy_pod`.
pub const DESTROY_POD: &str = "destroy_pod";
/// `eradicate_pod`.
pub const ERADICATE_POD: &str = "eradicate_pod";
/// `move_volume`.
pub const MOVE_VOLUME: &str = "move_volume";
/// `list_array_connections`.
pub const LIST_ARRAY_CONNECTIONS: &str = "list_array_connections";

/// Every call name, in trait order.
pub const ALL: &[&str] = &[
    ARRAY_INFO,
    LIST_VOLUMES,
    CREATE_VOLUME,
    COPY_VOLUME,
    RENAME_VOLUME,
    DESTROY_VOLUME,
    ERADICATE_VOLUME,
    LIST_VOLUME_SNAPSHOTS,
    LIST_PROTECTION_GROUPS,
    CREATE_PROTECTION_GROUP,
    DESTROY_PROTECTION_GROUP,
    ERADICATE_PROTECTION_GROUP,
    LIST_PROTECTION_GROUP_VOLUMES,
    ADD_PROTECTION_GROUP_VOLUMES,
    REMOVE_PROTECTION_GROUP_VOLUMES,
    LIST_PROTECTION_GROUP_TARGETS,
    ADD_PROTECTION_GROUP_TARGETS,
    REMOVE_PROTECTION_GROUP_TARGETS,
    ALLOW_PROTECTION_GROUP,
    SET_REPLICATION_SCHEDULE,
    SET_TARGET_RETENTION,
    CREATE_PG_SNAPSHOT,
    LIST_PG_SNAPSHOTS,
    LIST_PG_SNAPSHOT_TRANSFERS,
    DESTROY_PG_SNAPSHOT,
    ERADICATE_PG_SNAPSHOT,
    LIST_PODS,
    CREATE_POD,
    STRETCH_POD,
    UNSTRETCH_POD,
    SET_POD_PROMOTION,
    DESTROY_POD,
    ERADICATE_POD,
    MOVE_VOLUME,
    LIST_ARRAY_CONNECTIONS,
];

/// Whether a call only reads (a `GET`); the world can give reads their own latency.
pub fn is_read(call: &str) -> bool {
    call == ARRAY_INFO || call.starts_with("list_")
}
