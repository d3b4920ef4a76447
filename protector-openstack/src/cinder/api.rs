//! Cinder request building: microversions and bodies.

use protector_core::ids::VolumeId;
use protector_core::ports::{GroupCreate, ManageVolume};
use serde_json::{json, Map, Value};

/// Volume reads: `provider_id` (admin) appears from 3.21, `group_id` from 3.13.
pub const VOLUME_READ_MICROVERSION: &str = "3.21";
/// `POST /manageable_volumes` exists from 3.8.
pub const MANAGE_MICROVERSION: &str = "3.8";
/// Generic groups exist from 3.13.
pub const GROUP_MICROVERSION: &str = "3.13";
/// A group's `volumes` (with `list_volume=True`) appear from 3.25.
pub const GROUP_VOLUMES_MICROVERSION: &str = "3.25";
/// Volume types and services need no microversion.
pub const BASE_MICROVERSION: &str = "3.0";

pub(crate) fn microversion(version: &str) -> (&'static str, String) {
    ("OpenStack-API-Version", format!("volume {version}"))
}

pub(crate) fn manage_body(req: &ManageVolume) -> Value {
    let mut v = Map::new();
    v.insert("host".into(), json!(req.host));
    v.insert("ref".into(), json!({ "source-name": req.source_name }));
    v.insert("name".into(), json!(req.name));
    if let Some(t) = &req.volume_type {
        v.insert("volume_type".into(), json!(t));
    }
    if let Some(d) = &req.description {
        v.insert("description".into(), json!(d));
    }
    v.insert("bootable".into(), json!(req.bootable));
    if !req.metadata.is_empty() {
        v.insert("metadata".into(), json!(req.metadata));
    }
    json!({ "volume": Value::Object(v) })
}

pub(crate) fn create_group_body(req: &GroupCreate) -> Value {
    let mut g = Map::new();
    g.insert("name".into(), json!(req.name));
    if let Some(d) = &req.description {
        g.insert("description".into(), json!(d));
    }
    g.insert("group_type".into(), json!(req.group_type));
    g.insert(
        "volume_types".into(),
        Value::Array(req.volume_types.iter().map(|t| json!(t.as_str())).collect()),
    );
    json!({ "group": Value::Object(g) })
}

/// Cinder takes comma-separated id strings here, not lists.
pub(crate) fn update_group_body(add: &[VolumeId], remove: &[VolumeId]) -> Value {
    let join = |ids: &[VolumeId]| {
        ids.iter()
            .map(VolumeId::as_str)
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut g = Map::new();
    if !add.is_empty() {
        g.insert("add_volumes".into(), json!(join(add)));
    }
    if !remove.is_empty() {
        g.insert("remove_volumes".into(), json!(join(remove)));
    }
    json!({ "group": Value::Object(g) })
}
