//! Nova request building: paths, microversion headers and bodies.

use protector_core::ports::ServerCreate;
use serde_json::{json, Map, Value};

/// The microversion every Nova call sends: ≥ 2.37 makes `networks` explicit, 2.47
/// embeds the flavor (with `original_name`) in the server.
pub const COMPUTE_MICROVERSION: &str = "2.47";

/// The two microversion headers (modern and legacy spelling).
pub(crate) fn microversion_headers() -> Vec<(&'static str, String)> {
    vec![
        (
            "OpenStack-API-Version",
            format!("compute {COMPUTE_MICROVERSION}"),
        ),
        (
            "X-OpenStack-Nova-API-Version",
            COMPUTE_MICROVERSION.to_owned(),
        ),
    ]
}

/// The `POST /servers` body for booting from existing volumes.
pub(crate) fn create_server_body(req: &ServerCreate) -> Value {
    let bdm: Vec<Value> = req
        .block_devices
        .iter()
        .map(|d| {
            json!({
                "boot_index": d.boot_index.map_or(Value::Null, |i| json!(i)),
                "uuid": d.volume_id.as_str(),
                "source_type": "volume",
                "destination_type": "volume",
                "delete_on_termination": d.delete_on_termination,
            })
        })
        .collect();
    let networks = if req.networks.is_empty() {
        Value::String("none".to_owned())
    } else {
        Value::Array(
            req.networks
                .iter()
                .map(|n| {
                    let mut m = Map::new();
                    m.insert("uuid".into(), json!(n.network_id.as_str()));
                    if let Some(ip) = &n.fixed_ip {
                        m.insert("fixed_ip".into(), json!(ip));
                    }
                    Value::Object(m)
                })
                .collect(),
        )
    };
    let mut server = Map::new();
    server.insert("name".into(), json!(req.name));
    server.insert("flavorRef".into(), json!(req.flavor_id.as_str()));
    server.insert("block_device_mapping_v2".into(), Value::Array(bdm));
    server.insert("networks".into(), networks);
    if let Some(key) = &req.key_name {
        server.insert("key_name".into(), json!(key));
    }
    if !req.security_groups.is_empty() {
        server.insert(
            "security_groups".into(),
            Value::Array(
                req.security_groups
                    .iter()
                    .map(|g| json!({ "name": g }))
                    .collect(),
            ),
        );
    }
    if !req.metadata.is_empty() {
        server.insert("metadata".into(), json!(req.metadata));
    }
    if let Some(az) = &req.availability_zone {
        server.insert("availability_zone".into(), json!(az));
    }
    json!({ "server": Value::Object(server) })
}
