//! Neutron's JSON shapes (private DTOs) and their parsers, plain `fn(&[u8])` functions.

use protector_core::ports::Network;
use serde::Deserialize;

use crate::error::ParseError;
use crate::pagination::{next_marker, LinkDto, Page};
use crate::wire_util::{lenient_bool, lenient_string};

#[derive(Deserialize)]
struct NetworkEnvelope {
    network: NetworkDto,
}

#[derive(Deserialize)]
struct NetworksEnvelope {
    networks: Vec<NetworkDto>,
    #[serde(default)]
    networks_links: Vec<LinkDto>,
}

#[derive(Deserialize)]
struct NetworkDto {
    #[serde(deserialize_with = "lenient_string")]
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default, deserialize_with = "lenient_bool")]
    admin_state_up: bool,
    #[serde(default, deserialize_with = "lenient_bool")]
    shared: bool,
    #[serde(default)]
    project_id: Option<String>,
    #[serde(default)]
    tenant_id: Option<String>,
    #[serde(default)]
    subnets: Vec<String>,
}

fn network_from_dto(d: NetworkDto) -> Network {
    Network {
        id: d.id.into(),
        name: d.name.unwrap_or_default(),
        status: d.status.unwrap_or_default(),
        admin_state_up: d.admin_state_up,
        shared: d.shared,
        project_id: d
            .project_id
            .or(d.tenant_id)
            .filter(|p| !p.is_empty())
            .map(Into::into),
        subnets: d.subnets,
    }
}

/// Parses `GET /v2.0/networks/{id}`.
///
/// # Errors
/// [`ParseError`] when the body is not a network.
pub fn parse_network(body: &[u8]) -> Result<Network, ParseError> {
    let env: NetworkEnvelope =
        serde_json::from_slice(body).map_err(|e| ParseError::json("neutron network", &e))?;
    Ok(network_from_dto(env.network))
}

/// Parses one page of `GET /v2.0/networks`.
///
/// # Errors
/// [`ParseError`] when the body is not a network list.
pub fn parse_network_page(body: &[u8]) -> Result<Page<Network>, ParseError> {
    let env: NetworksEnvelope =
        serde_json::from_slice(body).map_err(|e| ParseError::json("neutron network list", &e))?;
    Ok(Page {
        next_marker: next_marker(&env.networks_links),
        items: env.networks.into_iter().map(network_from_dto).collect(),
    })
}
