//! Nova's JSON shapes (private DTOs) and their parsers, plain `fn(&[u8])` functions.

use std::collections::BTreeMap;

use protector_core::ports::{Flavor, Server, ServerAddress, ServerStatus};
use serde::Deserialize;

use crate::error::ParseError;
use crate::pagination::{next_marker, LinkDto, Page};
use crate::wire_util::{lenient_string, string_map};

#[derive(Deserialize)]
struct ServerEnvelope {
    server: ServerDto,
}

#[derive(Deserialize)]
struct ServersEnvelope {
    servers: Vec<ServerDto>,
    #[serde(default)]
    servers_links: Vec<LinkDto>,
}

#[derive(Deserialize)]
struct ServerDto {
    #[serde(deserialize_with = "lenient_string")]
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    tenant_id: Option<String>,
    #[serde(default)]
    flavor: Option<FlavorRefDto>,
    #[serde(default)]
    image: serde_json::Value,
    #[serde(default)]
    addresses: BTreeMap<String, Vec<AddressDto>>,
    #[serde(default)]
    security_groups: Vec<NameDto>,
    #[serde(default)]
    key_name: Option<String>,
    #[serde(default)]
    metadata: serde_json::Value,
    #[serde(default, rename = "OS-EXT-AZ:availability_zone")]
    availability_zone: Option<String>,
    #[serde(default, rename = "os-extended-volumes:volumes_attached")]
    volumes_attached: Vec<IdDto>,
    #[serde(default)]
    fault: Option<FaultDto>,
}

#[derive(Deserialize)]
struct FlavorRefDto {
    #[serde(default)]
    id: Option<serde_json::Value>,
    #[serde(default)]
    original_name: Option<String>,
}

#[derive(Deserialize)]
struct AddressDto {
    #[serde(default)]
    addr: Option<String>,
    #[serde(default)]
    version: Option<u8>,
    #[serde(default, rename = "OS-EXT-IPS:type")]
    ip_type: Option<String>,
    #[serde(default, rename = "OS-EXT-IPS-MAC:mac_addr")]
    mac: Option<String>,
}

#[derive(Deserialize)]
struct NameDto {
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct IdDto {
    #[serde(deserialize_with = "lenient_string")]
    id: String,
}

#[derive(Deserialize)]
struct FaultDto {
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
struct FlavorsEnvelope {
    flavors: Vec<FlavorDto>,
    #[serde(default)]
    flavors_links: Vec<LinkDto>,
}

#[derive(Deserialize)]
struct FlavorDto {
    #[serde(deserialize_with = "lenient_string")]
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    vcpus: u32,
    #[serde(default)]
    ram: u64,
    #[serde(default)]
    disk: u64,
}

#[derive(Deserialize)]
struct InterfacesEnvelope {
    #[serde(rename = "interfaceAttachments")]
    interface_attachments: Vec<InterfaceDto>,
}

#[derive(Deserialize)]
struct InterfaceDto {
    #[serde(default)]
    port_id: Option<String>,
    #[serde(default)]
    net_id: Option<String>,
    #[serde(default)]
    mac_addr: Option<String>,
    #[serde(default)]
    fixed_ips: Vec<FixedIpDto>,
}

#[derive(Deserialize)]
struct FixedIpDto {
    #[serde(default)]
    ip_address: Option<String>,
}

/// A NIC as `GET /servers/{id}/os-interface` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    /// The port.
    pub port_id: Option<String>,
    /// The network.
    pub net_id: Option<String>,
    /// The MAC address.
    pub mac: Option<String>,
    /// The fixed IPs.
    pub fixed_ips: Vec<String>,
}

fn first_v4_or_any<'a>(ips: impl Iterator<Item = &'a str> + Clone) -> Option<String> {
    ips.clone()
        .find(|ip| !ip.contains(':'))
        .or_else(|| ips.clone().next())
        .map(str::to_owned)
}

fn server_from_dto(d: ServerDto) -> Server {
    let flavor_id = d
        .flavor
        .as_ref()
        .and_then(|f| match &f.id {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            _ => None,
        })
        .or_else(|| d.flavor.as_ref().and_then(|f| f.original_name.clone()))
        .unwrap_or_default();
    let flavor_name = d.flavor.and_then(|f| f.original_name);
    let image_id = match &d.image {
        serde_json::Value::Object(o) => o.get("id").and_then(|v| v.as_str()).map(Into::into),
        serde_json::Value::String(s) if !s.is_empty() => Some(s.as_str().into()),
        _ => None,
    };
    // One address per NIC (MAC), preferring IPv4; floating IPs are not NICs.
    let mut addresses: Vec<(Option<String>, ServerAddress)> = Vec::new();
    for (net, addrs) in &d.addresses {
        for a in addrs
            .iter()
            .filter(|a| a.ip_type.as_deref() != Some("floating"))
        {
            let existing = addresses
                .iter_mut()
                .find(|(mac, s)| mac.is_some() && *mac == a.mac && s.network_name == *net);
            match existing {
                Some((_, s)) => {
                    if a.version == Some(4)
                        && s.fixed_ip.as_deref().is_some_and(|ip| ip.contains(':'))
                    {
                        s.fixed_ip.clone_from(&a.addr);
                    }
                }
                None => addresses.push((
                    a.mac.clone(),
                    ServerAddress {
                        network_id: net.as_str().into(),
                        network_name: net.clone(),
                        fixed_ip: a.addr.clone(),
                        port_id: None,
                    },
                )),
            }
        }
    }
    let mut security_groups: Vec<String> = Vec::new();
    for g in d.security_groups.into_iter().filter_map(|g| g.name) {
        if !security_groups.contains(&g) {
            security_groups.push(g);
        }
    }
    Server {
        id: d.id.into(),
        name: d.name.unwrap_or_default(),
        status: ServerStatus::parse(d.status.as_deref().unwrap_or("UNKNOWN")),
        project_id: d.tenant_id.unwrap_or_default().into(),
        flavor_id: flavor_id.into(),
        flavor_name,
        image_id,
        addresses: addresses.into_iter().map(|(_, a)| a).collect(),
        security_groups,
        key_name: d.key_name,
        metadata: string_map(&d.metadata),
        availability_zone: d.availability_zone.filter(|z| !z.is_empty()),
        volumes_attached: d
            .volumes_attached
            .into_iter()
            .map(|v| v.id.into())
            .collect(),
        fault: d.fault.and_then(|f| f.message),
    }
}

/// Parses `GET /servers/{id}`.
///
/// # Errors
/// [`ParseError`] when the body is not a server.
pub fn parse_server(body: &[u8]) -> Result<Server, ParseError> {
    let env: ServerEnvelope =
        serde_json::from_slice(body).map_err(|e| ParseError::json("nova server", &e))?;
    Ok(server_from_dto(env.server))
}

/// Parses one page of `GET /servers/detail`.
///
/// # Errors
/// [`ParseError`] when the body is not a server list.
pub fn parse_server_page(body: &[u8]) -> Result<Page<Server>, ParseError> {
    let env: ServersEnvelope =
        serde_json::from_slice(body).map_err(|e| ParseError::json("nova server list", &e))?;
    Ok(Page {
        next_marker: next_marker(&env.servers_links),
        items: env.servers.into_iter().map(server_from_dto).collect(),
    })
}

/// Parses the id out of a `POST /servers` response.
///
/// # Errors
/// [`ParseError`] when the body has no server id.
pub fn parse_created_server_id(body: &[u8]) -> Result<String, ParseError> {
    #[derive(Deserialize)]
    struct Env {
        server: IdDto,
    }
    let env: Env =
        serde_json::from_slice(body).map_err(|e| ParseError::json("nova server create", &e))?;
    Ok(env.server.id)
}

/// Parses one page of `GET /flavors/detail`.
///
/// # Errors
/// [`ParseError`] when the body is not a flavor list.
pub fn parse_flavor_page(body: &[u8]) -> Result<Page<Flavor>, ParseError> {
    let env: FlavorsEnvelope =
        serde_json::from_slice(body).map_err(|e| ParseError::json("nova flavor list", &e))?;
    Ok(Page {
        next_marker: next_marker(&env.flavors_links),
        items: env
            .flavors
            .into_iter()
            .map(|f| Flavor {
                id: f.id.into(),
                name: f.name,
                vcpus: f.vcpus,
                ram_mb: f.ram,
                disk_gb: f.disk,
            })
            .collect(),
    })
}

/// Parses `GET /servers/{id}/os-interface`.
///
/// # Errors
/// [`ParseError`] when the body is not an interface list.
pub fn parse_interfaces(body: &[u8]) -> Result<Vec<Interface>, ParseError> {
    let env: InterfacesEnvelope =
        serde_json::from_slice(body).map_err(|e| ParseError::json("nova interface list", &e))?;
    Ok(env
        .interface_attachments
        .into_iter()
        .map(|i| Interface {
            port_id: i.port_id,
            net_id: i.net_id,
            mac: i.mac_addr,
            fixed_ips: i
                .fixed_ips
                .into_iter()
                .filter_map(|f| f.ip_address)
                .collect(),
        })
        .collect())
}

/// Rebuilds a server's addresses in NIC order from its interfaces, keeping Nova's
/// network names from `addresses` (matched by MAC, else by fixed IP).
pub(crate) fn merge_interfaces(server: &mut Server, interfaces: &[Interface]) {
    if interfaces.is_empty() {
        return;
    }
    let old = std::mem::take(&mut server.addresses);
    for i in interfaces {
        let fixed_ip = first_v4_or_any(i.fixed_ips.iter().map(String::as_str));
        let name = old
            .iter()
            .find(|a| a.fixed_ip.is_some() && a.fixed_ip == fixed_ip)
            .map(|a| a.network_name.clone());
        let net_id = i.net_id.clone().unwrap_or_default();
        server.addresses.push(ServerAddress {
            network_name: name.unwrap_or_else(|| net_id.clone()),
            network_id: net_id.into(),
            fixed_ip,
            port_id: i.port_id.as_deref().map(Into::into),
        });
    }
}
