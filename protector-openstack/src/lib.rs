//! # protector-openstack
//!
//! Real clients for the OpenStack services protector drives — Keystone v3, Nova
//! v2.1, Cinder v3 and Neutron v2.0 — implementing the core ports
//! ([`protector_core::ports::Compute`], [`protector_core::ports::BlockStorage`],
//! [`protector_core::ports::Networking`]).
//!
//! - [`ConfigLoader`] reads `clouds.yaml` (+ `secure.yaml`) and `OS_*` variables into a
//!   validated [`CloudConfig`] (or build one with [`CloudConfig::builder`]);
//! - [`Session`] authenticates (password or application credential), caches the token,
//!   refreshes it before expiry and once on a 401, picks endpoints from the catalog,
//!   and runs every call through one [`RetryPolicy`] with a budget;
//! - [`NovaClient`], [`CinderClient`], [`NeutronClient`] speak each service's API with
//!   the microversions the calls need and follow pagination;
//! - [`OpenStackSite`] bundles them into [`protector_core::ports::SiteClients`];
//! - [`OpenStackConnector`] is the engine's [`protector_core::ports::SiteConnector`]
//!   for a cloud: it authenticates on first use and keeps the connected site.
//!
//! Secrets (passwords, tokens, application-credential secrets) are
//! [`secrecy::SecretString`]s and never appear in `Debug`, logs or errors.
//!
//! ```no_run
//! use protector_openstack::{ConfigLoader, OpenStackSite};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // `OS_CLOUD=dr-site` picks the cloud from clouds.yaml.
//! let config = ConfigLoader::from_process_env().load(Some("dr-site"))?;
//! let site = OpenStackSite::connect(config).await?;
//! let who = site.request_context().await?;
//! println!("project {} roles {:?}", who.project_id, who.roles);
//! let clients = site.clients();
//! for server in clients.compute.list_servers().await? {
//!     println!("{} {}", server.name, server.status);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! No feature flags.
#![deny(missing_docs)]

pub mod cinder;
pub use cinder::CinderClient;
pub mod config;
pub use config::{
    ApplicationCredentialRef, AuthMethod, CloudConfig, CloudConfigBuilder, DomainRef, Interface,
    ProjectScope, UserRef,
};
pub mod connector;
pub use connector::OpenStackConnector;
pub mod error;
pub use error::{ConfigError, ConfigOrigin, Error, ParseError};
mod http;
pub mod keystone;
pub use keystone::{Catalog, CatalogService, Endpoint, ServiceType, Token};
pub mod loader;
pub use loader::ConfigLoader;
pub mod neutron;
pub use neutron::NeutronClient;
pub mod nova;
pub use nova::NovaClient;
mod pagination;
pub use pagination::Page;
pub mod retry;
pub use retry::RetryPolicy;
pub mod session;
pub use session::Session;
pub mod site;
pub use site::OpenStackSite;
mod wire_util;

/// Every response parser as a plain `fn(&[u8]) -> Result<T, ParseError>`, for fuzz
/// targets. They never panic on any input.
#[doc(hidden)]
pub mod parse {
    pub use crate::cinder::wire::{
        parse_group as cinder_group, parse_volume as cinder_volume,
        parse_volume_page as cinder_volume_page, parse_volume_services as cinder_volume_services,
        parse_volume_type_page as cinder_volume_type_page,
    };
    pub use crate::http::parse_error_message as error_message;
    pub use crate::keystone::wire::parse_token as keystone_token;
    pub use crate::neutron::wire::{
        parse_network as neutron_network, parse_network_page as neutron_network_page,
    };
    pub use crate::nova::wire::{
        parse_created_server_id as nova_created_server_id, parse_flavor_page as nova_flavor_page,
        parse_interfaces as nova_interfaces, parse_server as nova_server,
        parse_server_page as nova_server_page,
    };
}

/// `base` with `segments` appended as path segments (each percent-encoded).
pub(crate) fn url_join(
    base: &url::Url,
    segments: &[&str],
    service: protector_core::Service,
) -> Result<url::Url, protector_core::BackendError> {
    let mut url = base.clone();
    url.path_segments_mut()
        .map_err(|()| {
            protector_core::BackendError::invalid(
                service,
                format!("endpoint {base} cannot take a path"),
            )
        })?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}
