//! Nova v2.1: servers, server actions, interfaces and flavors.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use protector_core::ids::{FlavorId, NetworkId, ServerId, VolumeId};
use protector_core::ports::{
    BlockDevice, Compute, Flavor, NetworkAttachment, Server, ServerCreate,
};
use protector_core::RequestContext;
use serde_json::{json, Value};

use super::common::{
    fault, iso_z, next_link, paginate, parse_limit, status_of, unauthorized, with_headers, Refusal,
    SiteState,
};
use crate::world::FLAVORS;

type St = Arc<SiteState>;
type Q = Query<BTreeMap<String, String>>;

const MAX_VERSION: (u32, u32) = (2, 104);

pub(crate) fn router(state: St) -> Router {
    Router::new()
        .route("/", get(versions))
        .route("/v2.1", get(version))
        .route("/v2.1/", get(version))
        .route("/v2.1/servers", get(list_servers).post(create_server))
        .route("/v2.1/servers/detail", get(list_servers_detail))
        .route("/v2.1/servers/{id}", get(get_server).delete(delete_server))
        .route("/v2.1/servers/{id}/action", post(server_action))
        .route("/v2.1/servers/{id}/os-interface", get(interfaces))
        .route("/v2.1/flavors", get(list_flavors))
        .route("/v2.1/flavors/detail", get(list_flavors))
        .with_state(state)
}

fn version_doc(s: &SiteState) -> Value {
    json!({
        "id": "v2.1", "status": "CURRENT", "version": "2.104", "min_version": "2.1",
        "updated": "2013-07-23T11:33:21Z",
        "links": [{"rel": "self", "href": format!("{}/v2.1/", s.endpoints.compute)}],
    })
}

async fn versions(State(s): State<St>) -> Response {
    let body = json!({"versions": [version_doc(&s)]});
    reply(&s, "2.1", StatusCode::OK, body)
}

async fn version(State(s): State<St>) -> Response {
    let body = json!({"version": version_doc(&s)});
    reply(&s, "2.1", StatusCode::OK, body)
}

/// The requested microversion, `2.1` when absent.
fn microversion(headers: &HeaderMap) -> Result<String, String> {
    let modern = headers
        .get("openstack-api-version")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("compute "))
        .map(str::trim);
    let legacy = headers
        .get("x-openstack-nova-api-version")
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    let Some(v) = modern.or(legacy) else {
        return Ok("2.1".to_owned());
    };
    if v == "latest" {
        return Ok(format!("{}.{}", MAX_VERSION.0, MAX_VERSION.1));
    }
    let parsed = v
        .split_once('.')
        .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)));
    match parsed {
        Some(p) if p >= (2, 1) && p <= MAX_VERSION => Ok(v.to_owned()),
        _ => Err(format!(
            "Version {v} is not supported by the API. Minimum is 2.1 and maximum is 2.104."
        )),
    }
}

fn minor(version: &str) -> u32 {
    version
        .split_once('.')
        .and_then(|(_, b)| b.parse().ok())
        .unwrap_or(1)
}

fn reply(s: &SiteState, version: &str, status: StatusCode, body: Value) -> Response {
    decorate(s, version, (status, Json(body)).into_response())
}

fn decorate(s: &SiteState, version: &str, resp: Response) -> Response {
    let id = s.request_id();
    with_headers(
        resp,
        &[
            ("x-openstack-request-id", id.clone()),
            ("x-compute-request-id", id),
            ("openstack-api-version", format!("compute {version}")),
            ("x-openstack-nova-api-version", version.to_owned()),
            (
                "vary",
                "OpenStack-API-Version, X-OpenStack-Nova-API-Version".to_owned(),
            ),
        ],
    )
}

fn failure(s: &SiteState, version: &str, status: StatusCode, message: &str) -> Response {
    decorate(s, version, fault(status, message))
}

/// The caller and the microversion, or the refusal.
fn begin(s: &SiteState, headers: &HeaderMap) -> Result<(RequestContext, String), Refusal> {
    let version = microversion(headers)
        .map_err(|m| Box::new(failure(s, "2.1", StatusCode::NOT_ACCEPTABLE, &m)))?;
    let token = s
        .authenticate(headers)
        .ok_or_else(|| Box::new(unauthorized(&s.endpoints.auth_url)))?;
    Ok((token.ctx, version))
}

fn backend(s: &SiteState, version: &str, e: &protector_core::BackendError) -> Response {
    failure(s, version, status_of(e), &e.message)
}

fn mac_of(port: &str) -> String {
    let bytes: Vec<u8> = port.bytes().filter(u8::is_ascii_hexdigit).take(6).collect();
    let hex = String::from_utf8_lossy(&bytes).to_string();
    let hex = format!("{hex:0<6}");
    format!("fa:16:3e:{}:{}:{}", &hex[0..2], &hex[2..4], &hex[4..6])
}

fn flavor_view(server: &Server, version: &str) -> Value {
    let name = server.flavor_name.clone();
    if minor(version) < 47 {
        return json!({"id": server.flavor_id.as_str(), "links": []});
    }
    let spec = FLAVORS.iter().find(|(n, ..)| Some(*n) == name.as_deref());
    match spec {
        Some((n, vcpus, ram, disk)) => json!({
            "original_name": n, "vcpus": vcpus, "ram": ram, "disk": disk,
            "ephemeral": 0, "swap": 0, "extra_specs": {},
        }),
        None => json!({"original_name": name.unwrap_or_else(|| server.flavor_id.to_string())}),
    }
}

fn server_view(s: &SiteState, server: &Server, version: &str) -> Value {
    let mut addresses: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for a in &server.addresses {
        let mut entry = json!({"version": 4, "OS-EXT-IPS:type": "fixed"});
        entry["addr"] = json!(a.fixed_ip);
        if let Some(p) = &a.port_id {
            entry["OS-EXT-IPS-MAC:mac_addr"] = json!(mac_of(p.as_str()));
        }
        addresses
            .entry(a.network_name.clone())
            .or_default()
            .push(entry);
    }
    let status = server.status.as_str();
    let (vm_state, power) = match status {
        "ACTIVE" => ("active", 1),
        "SHUTOFF" => ("stopped", 4),
        "BUILD" => ("building", 0),
        "ERROR" => ("error", 0),
        "DELETED" => ("deleted", 0),
        _ => ("active", 1),
    };
    let href = format!("{}/v2.1/servers/{}", s.endpoints.compute, server.id);
    let mut v = json!({
        "id": server.id.as_str(),
        "name": server.name,
        "status": status,
        "tenant_id": server.project_id.as_str(),
        "flavor": flavor_view(server, version),
        "image": server.image_id.as_ref().map_or(json!(""), |i| json!({"id": i.as_str(), "links": []})),
        "addresses": addresses,
        "security_groups": server.security_groups.iter().map(|g| json!({"name": g})).collect::<Vec<_>>(),
        "key_name": server.key_name,
        "metadata": server.metadata,
        "OS-EXT-AZ:availability_zone": server.availability_zone.clone().unwrap_or_else(|| "nova".to_owned()),
        "OS-EXT-STS:vm_state": vm_state,
        "OS-EXT-STS:power_state": power,
        "OS-EXT-STS:task_state": null,
        "os-extended-volumes:volumes_attached": server.volumes_attached.iter()
            .map(|v| json!({"id": v.as_str(), "delete_on_termination": false}))
            .collect::<Vec<_>>(),
        "links": [{"rel": "self", "href": href}, {"rel": "bookmark", "href": href}],
    });
    if let Some(f) = &server.fault {
        v["fault"] = json!({"code": 500, "message": f, "created": iso_z(s.sim_now())});
    }
    v
}

async fn list_servers(state: State<St>, headers: HeaderMap, query: Q) -> Response {
    list(state, headers, query, false).await
}

async fn list_servers_detail(state: State<St>, headers: HeaderMap, query: Q) -> Response {
    list(state, headers, query, true).await
}

async fn list(State(s): State<St>, headers: HeaderMap, Query(q): Q, detail: bool) -> Response {
    let (ctx, version) = match begin(&s, &headers) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let limit = match parse_limit(&q) {
        Ok(l) => l,
        Err(m) => return failure(&s, &version, StatusCode::BAD_REQUEST, &m),
    };
    let servers = match s.world.compute(s.site, &ctx).list_servers().await {
        Ok(v) => v,
        Err(e) => return backend(&s, &version, &e),
    };
    let servers: Vec<Server> = servers
        .into_iter()
        .filter(|sv| q.get("name").is_none_or(|n| &sv.name == n))
        .filter(|sv| q.get("status").is_none_or(|st| sv.status.as_str() == st))
        .collect();
    let (page, next) = match paginate(servers, q.get("marker").map(String::as_str), limit, |sv| {
        sv.id.to_string()
    }) {
        Ok(p) => p,
        Err(m) => return failure(&s, &version, StatusCode::BAD_REQUEST, &m),
    };
    let items: Vec<Value> = page
        .iter()
        .map(|sv| {
            if detail {
                server_view(&s, sv, &version)
            } else {
                let href = format!("{}/v2.1/servers/{}", s.endpoints.compute, sv.id);
                json!({"id": sv.id.as_str(), "name": sv.name, "links": [{"rel": "self", "href": href}]})
            }
        })
        .collect();
    let mut body = json!({ "servers": items });
    if let Some(m) = next {
        let base = format!(
            "{}/v2.1/servers{}",
            s.endpoints.compute,
            if detail { "/detail" } else { "" }
        );
        body["servers_links"] = next_link(&base, limit, &m);
    }
    reply(&s, &version, StatusCode::OK, body)
}

async fn get_server(State(s): State<St>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let (ctx, version) = match begin(&s, &headers) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    match s
        .world
        .compute(s.site, &ctx)
        .get_server(&ServerId::from(id))
        .await
    {
        Ok(sv) => reply(
            &s,
            &version,
            StatusCode::OK,
            json!({"server": server_view(&s, &sv, &version)}),
        ),
        Err(e) => backend(&s, &version, &e),
    }
}

async fn interfaces(State(s): State<St>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let (ctx, version) = match begin(&s, &headers) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    match s
        .world
        .compute(s.site, &ctx)
        .get_server(&ServerId::from(id))
        .await
    {
        Ok(sv) => {
            let items: Vec<Value> = sv
                .addresses
                .iter()
                .map(|a| {
                    json!({
                        "port_id": a.port_id.as_ref().map(|p| p.as_str()),
                        "net_id": a.network_id.as_str(),
                        "mac_addr": a.port_id.as_ref().map(|p| mac_of(p.as_str())),
                        "port_state": "ACTIVE",
                        "fixed_ips": a.fixed_ip.iter().map(|ip| json!({"ip_address": ip, "subnet_id": format!("subnet-{}", a.network_id)})).collect::<Vec<_>>(),
                    })
                })
                .collect();
            reply(
                &s,
                &version,
                StatusCode::OK,
                json!({"interfaceAttachments": items}),
            )
        }
        Err(e) => backend(&s, &version, &e),
    }
}

fn parse_create(body: &Value) -> Result<ServerCreate, String> {
    let server = body
        .get("server")
        .ok_or("Invalid input for field/attribute server.")?;
    let name = server
        .get("name")
        .and_then(Value::as_str)
        .ok_or("Invalid input for field/attribute name.")?;
    let flavor = server
        .get("flavorRef")
        .and_then(|f| {
            f.as_str()
                .map(str::to_owned)
                .or_else(|| f.as_u64().map(|n| n.to_string()))
        })
        .ok_or("Invalid input for field/attribute flavorRef.")?;
    let mut block_devices = Vec::new();
    for d in server
        .get("block_device_mapping_v2")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let uuid = d
            .get("uuid")
            .and_then(Value::as_str)
            .ok_or("Invalid input for field/attribute uuid.")?;
        if d.get("source_type").and_then(Value::as_str) != Some("volume") {
            return Err("Only block devices with source_type volume are supported.".to_owned());
        }
        let boot_index = match d.get("boot_index") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => n.as_u64().map(|n| n as u32),
            Some(Value::String(t)) => Some(
                t.parse::<u32>()
                    .map_err(|_| "Invalid input for field/attribute boot_index.")?,
            ),
            Some(_) => return Err("Invalid input for field/attribute boot_index.".to_owned()),
        };
        block_devices.push(BlockDevice {
            volume_id: VolumeId::from(uuid.to_owned()),
            boot_index,
            delete_on_termination: d
                .get("delete_on_termination")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        });
    }
    let networks = match server.get("networks") {
        Some(Value::Array(list)) => list
            .iter()
            .map(|n| {
                n.get("uuid")
                    .and_then(Value::as_str)
                    .map(|u| NetworkAttachment {
                        network_id: NetworkId::from(u.to_owned()),
                        fixed_ip: n.get("fixed_ip").and_then(Value::as_str).map(str::to_owned),
                    })
                    .ok_or_else(|| "Invalid input for field/attribute networks.".to_owned())
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => Vec::new(),
    };
    let metadata = server
        .get("metadata")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    Ok(ServerCreate {
        name: name.to_owned(),
        flavor_id: FlavorId::from(flavor),
        block_devices,
        networks,
        key_name: server
            .get("key_name")
            .and_then(Value::as_str)
            .map(str::to_owned),
        security_groups: server
            .get("security_groups")
            .and_then(Value::as_array)
            .map(|l| {
                l.iter()
                    .filter_map(|g| g.get("name").and_then(Value::as_str).map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        metadata,
        availability_zone: server
            .get("availability_zone")
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

async fn create_server(
    State(s): State<St>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let (ctx, version) = match begin(&s, &headers) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let request = serde_json::from_slice::<Value>(&body)
        .map_err(|e| format!("Malformed request body: {e}"))
        .and_then(|b| parse_create(&b));
    let request = match request {
        Ok(r) => r,
        Err(m) => return failure(&s, &version, StatusCode::BAD_REQUEST, &m),
    };
    match s.world.compute(s.site, &ctx).create_server(&request).await {
        Ok(sv) => {
            let href = format!("{}/v2.1/servers/{}", s.endpoints.compute, sv.id);
            let body = json!({"server": {
                "id": sv.id.as_str(),
                "links": [{"rel": "self", "href": href}, {"rel": "bookmark", "href": href}],
                "OS-DCF:diskConfig": "MANUAL",
                "security_groups": request.security_groups.iter().map(|g| json!({"name": g})).collect::<Vec<_>>(),
            }});
            with_headers(
                reply(&s, &version, StatusCode::ACCEPTED, body),
                &[("location", href)],
            )
        }
        Err(e) => backend(&s, &version, &e),
    }
}

async fn server_action(
    State(s): State<St>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let (ctx, version) = match begin(&s, &headers) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let Ok(Value::Object(action)) = serde_json::from_slice::<Value>(&body) else {
        return failure(
            &s,
            &version,
            StatusCode::BAD_REQUEST,
            "Malformed request body",
        );
    };
    let compute = s.world.compute(s.site, &ctx);
    let id = ServerId::from(id);
    let result = match action.keys().next().map(String::as_str) {
        Some("os-stop") => compute.stop_server(&id).await,
        Some("os-start") => compute.start_server(&id).await,
        Some(other) => {
            return failure(
                &s,
                &version,
                StatusCode::BAD_REQUEST,
                &format!("There is no such action: {other}"),
            )
        }
        None => {
            return failure(
                &s,
                &version,
                StatusCode::BAD_REQUEST,
                "Malformed request body",
            )
        }
    };
    match result {
        Ok(()) => decorate(&s, &version, StatusCode::ACCEPTED.into_response()),
        Err(e) => backend(&s, &version, &e),
    }
}

async fn delete_server(
    State(s): State<St>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let (ctx, version) = match begin(&s, &headers) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    match s
        .world
        .compute(s.site, &ctx)
        .delete_server(&ServerId::from(id))
        .await
    {
        Ok(()) => decorate(&s, &version, StatusCode::NO_CONTENT.into_response()),
        Err(e) => backend(&s, &version, &e),
    }
}

fn flavor_json(s: &SiteState, f: &Flavor) -> Value {
    let href = format!("{}/v2.1/flavors/{}", s.endpoints.compute, f.id);
    json!({
        "id": f.id.as_str(), "name": f.name, "vcpus": f.vcpus, "ram": f.ram_mb, "disk": f.disk_gb,
        "OS-FLV-EXT-DATA:ephemeral": 0, "OS-FLV-DISABLED:disabled": false, "swap": 0,
        "rxtx_factor": 1.0, "os-flavor-access:is_public": true,
        "links": [{"rel": "self", "href": href}, {"rel": "bookmark", "href": href}],
    })
}

async fn list_flavors(State(s): State<St>, headers: HeaderMap, Query(q): Q) -> Response {
    let (ctx, version) = match begin(&s, &headers) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let limit = match parse_limit(&q) {
        Ok(l) => l,
        Err(m) => return failure(&s, &version, StatusCode::BAD_REQUEST, &m),
    };
    let flavors = match s.world.compute(s.site, &ctx).list_flavors().await {
        Ok(v) => v,
        Err(e) => return backend(&s, &version, &e),
    };
    let (page, next) = match paginate(flavors, q.get("marker").map(String::as_str), limit, |f| {
        f.id.to_string()
    }) {
        Ok(p) => p,
        Err(m) => return failure(&s, &version, StatusCode::BAD_REQUEST, &m),
    };
    let mut body = json!({"flavors": page.iter().map(|f| flavor_json(&s, f)).collect::<Vec<_>>()});
    if let Some(m) = next {
        body["flavors_links"] = next_link(
            &format!("{}/v2.1/flavors/detail", s.endpoints.compute),
            limit,
            &m,
        );
    }
    reply(&s, &version, StatusCode::OK, body)
}
