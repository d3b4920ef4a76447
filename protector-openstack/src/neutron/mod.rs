//! Neutron (networking v2.0): the [`Networking`] port over HTTP.
//!
//! # Expected flow
//! The `network` endpoint from the catalog has no version; requests go to
//! `{endpoint}/v2.0/…` (unless the catalog URL already ends in `v2.0`). Lists send
//! `limit` and follow the `next` link of `networks_links`. No microversions.

pub(crate) mod wire;

use async_trait::async_trait;
use protector_core::ids::NetworkId;
use protector_core::ports::{Network, Networking};
use protector_core::{BackendError, Service};
use reqwest::Method;

use crate::keystone::ServiceType;
use crate::pagination::collect_all;
use crate::session::{parse_failure, Request, Session};
use crate::url_join;

const SERVICE: Service = Service::Network;

/// A Neutron client sharing a [`Session`].
#[derive(Clone, Debug)]
pub struct NeutronClient {
    session: Session,
}

impl NeutronClient {
    /// A client over `session`.
    pub fn new(session: Session) -> Self {
        Self { session }
    }

    async fn url(&self, segments: &[&str]) -> Result<url::Url, BackendError> {
        let base = self.session.endpoint(ServiceType::Network).await?;
        let versioned = base.path().trim_end_matches('/').ends_with("/v2.0");
        let mut all: Vec<&str> = Vec::with_capacity(segments.len() + 1);
        if !versioned {
            all.push("v2.0");
        }
        all.extend_from_slice(segments);
        url_join(&base, &all, SERVICE)
    }
}

#[async_trait]
impl Networking for NeutronClient {
    async fn get_network(&self, id: &NetworkId) -> Result<Network, BackendError> {
        let url = self.url(&["networks", id.as_str()]).await?;
        let resp = self
            .session
            .send(SERVICE, Request::new(Method::GET, url))
            .await?;
        wire::parse_network(&resp.body).map_err(|e| parse_failure(SERVICE, &e))
    }

    async fn list_networks(&self) -> Result<Vec<Network>, BackendError> {
        let url = self.url(&["networks"]).await?;
        collect_all(&self.session, SERVICE, url, &[], wire::parse_network_page).await
    }
}
