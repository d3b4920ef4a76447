//! Nova (compute v2.1): the [`Compute`] port over HTTP.
//!
//! # Expected flow
//! Every call resolves the `compute` endpoint from the session's catalog and sends
//! `OpenStack-API-Version: compute 2.47` (and the legacy
//! `X-OpenStack-Nova-API-Version`). Lists follow `servers_links`/`flavors_links`.
//!
//! # Guarantees
//! - `get_server` reports addresses in NIC order with network and port ids (from
//!   `os-interface`); if that call is refused, addresses fall back to Nova's
//!   per-network-name view with the name in `network_id`.
//! - `stop_server`/`start_server` are idempotent: Nova's 409 on an already
//!   stopped/running server is answered with success.
//!
//! # Caveats
//! From microversion 2.47 Nova no longer reports a server's flavor id, only its
//! `original_name`; [`Server::flavor_id`] then holds that name, which
//! [`Compute::find_flavor`] resolves on either site. `list_servers` does not call
//! `os-interface` per server, so its `network_id`s are Nova's network names.

mod api;
pub(crate) mod wire;

pub use api::COMPUTE_MICROVERSION;

use async_trait::async_trait;
use protector_core::ports::{Compute, Flavor, Server, ServerCreate, ServerStatus};
use protector_core::{BackendError, BackendErrorKind, Service};
use reqwest::Method;

use crate::keystone::ServiceType;
use crate::pagination::collect_all;
use crate::session::{parse_failure, Request, Session};
use crate::url_join;

const SERVICE: Service = Service::Compute;

/// A Nova client sharing a [`Session`].
#[derive(Clone, Debug)]
pub struct NovaClient {
    session: Session,
}

impl NovaClient {
    /// A client over `session`.
    pub fn new(session: Session) -> Self {
        Self { session }
    }

    async fn url(&self, segments: &[&str]) -> Result<url::Url, BackendError> {
        let base = self.session.endpoint(ServiceType::Compute).await?;
        url_join(&base, segments, SERVICE)
    }

    fn request(method: Method, url: url::Url) -> Request {
        api::microversion_headers()
            .into_iter()
            .fold(Request::new(method, url), |r, (k, v)| r.header(k, v))
    }

    async fn action(
        &self,
        id: &protector_core::ids::ServerId,
        body: serde_json::Value,
    ) -> Result<(), BackendError> {
        let url = self.url(&["servers", id.as_str(), "action"]).await?;
        self.session
            .send(SERVICE, Self::request(Method::POST, url).json(body))
            .await?;
        Ok(())
    }

    /// Runs `os-stop`/`os-start`, treating Nova's 409 as success when the server is
    /// already in `already`.
    async fn power_action(
        &self,
        id: &protector_core::ids::ServerId,
        action: &str,
        already: ServerStatus,
    ) -> Result<(), BackendError> {
        match self.action(id, serde_json::json!({ action: null })).await {
            Err(e) if e.kind == BackendErrorKind::Conflict => {
                let server = self.get_server(id).await?;
                if server.status == already {
                    Ok(())
                } else {
                    Err(e)
                }
            }
            other => other,
        }
    }
}

#[async_trait]
impl Compute for NovaClient {
    async fn get_server(&self, id: &protector_core::ids::ServerId) -> Result<Server, BackendError> {
        let url = self.url(&["servers", id.as_str()]).await?;
        let resp = self
            .session
            .send(SERVICE, Self::request(Method::GET, url))
            .await?;
        let mut server = wire::parse_server(&resp.body).map_err(|e| parse_failure(SERVICE, &e))?;
        let url = self.url(&["servers", id.as_str(), "os-interface"]).await?;
        match self
            .session
            .send(SERVICE, Self::request(Method::GET, url))
            .await
        {
            Ok(resp) => {
                let interfaces =
                    wire::parse_interfaces(&resp.body).map_err(|e| parse_failure(SERVICE, &e))?;
                wire::merge_interfaces(&mut server, &interfaces);
            }
            Err(e)
                if matches!(
                    e.kind,
                    BackendErrorKind::NotFound
                        | BackendErrorKind::Forbidden
                        | BackendErrorKind::Invalid
                ) =>
            {
                tracing::debug!(server = %id, error = %e, "os-interface unavailable; keeping network names");
            }
            Err(e) => return Err(e),
        }
        Ok(server)
    }

    async fn list_servers(&self) -> Result<Vec<Server>, BackendError> {
        let url = self.url(&["servers", "detail"]).await?;
        collect_all(
            &self.session,
            SERVICE,
            url,
            &api::microversion_headers(),
            wire::parse_server_page,
        )
        .await
    }

    async fn create_server(&self, request: &ServerCreate) -> Result<Server, BackendError> {
        let url = self.url(&["servers"]).await?;
        let req = Self::request(Method::POST, url).json(api::create_server_body(request));
        let resp = self.session.send(SERVICE, req).await?;
        let id =
            wire::parse_created_server_id(&resp.body).map_err(|e| parse_failure(SERVICE, &e))?;
        let project = self.session.token().await?.project_id.clone();
        Ok(Server {
            id: id.into(),
            name: request.name.clone(),
            status: ServerStatus::Build,
            project_id: project.into(),
            flavor_id: request.flavor_id.clone(),
            flavor_name: None,
            image_id: None,
            addresses: Vec::new(),
            security_groups: request.security_groups.clone(),
            key_name: request.key_name.clone(),
            metadata: request.metadata.clone(),
            availability_zone: request.availability_zone.clone(),
            volumes_attached: request
                .block_devices
                .iter()
                .map(|d| d.volume_id.clone())
                .collect(),
            fault: None,
        })
    }

    async fn stop_server(&self, id: &protector_core::ids::ServerId) -> Result<(), BackendError> {
        self.power_action(id, "os-stop", ServerStatus::Shutoff)
            .await
    }

    async fn start_server(&self, id: &protector_core::ids::ServerId) -> Result<(), BackendError> {
        self.power_action(id, "os-start", ServerStatus::Active)
            .await
    }

    async fn delete_server(&self, id: &protector_core::ids::ServerId) -> Result<(), BackendError> {
        let url = self.url(&["servers", id.as_str()]).await?;
        self.session
            .send(SERVICE, Self::request(Method::DELETE, url))
            .await?;
        Ok(())
    }

    async fn list_flavors(&self) -> Result<Vec<Flavor>, BackendError> {
        let url = self.url(&["flavors", "detail"]).await?;
        collect_all(
            &self.session,
            SERVICE,
            url,
            &api::microversion_headers(),
            wire::parse_flavor_page,
        )
        .await
    }
}
