//! Cinder (block storage v3): the [`BlockStorage`] port over HTTP.
//!
//! # Expected flow
//! Every call resolves the block-storage endpoint (`block-storage`, `volumev3` or
//! `volume` in the catalog; the URL already carries the project id) and sends
//! `OpenStack-API-Version: volume 3.N` with the lowest version the call needs:
//! 3.8 for `manageable_volumes`, 3.13 for groups, 3.25 for a group's volumes, 3.21
//! for volume reads. Lists follow `volumes_links`.
//!
//! # Guarantees
//! Cinder's fault envelopes become [`BackendError`]s with the service's message; a
//! quota `overLimit` 413 is `Throttled` but never retried.
//!
//! # Caveats
//! `manage_volume` returns Cinder's legacy view (often `size` 0, status `creating`);
//! poll with [`BlockStorage::wait_for_available`] for the real values.
//! `create_group` answers with the id Cinder returns and the requested fields, status
//! `creating`.

mod api;
pub(crate) mod wire;

pub use api::{
    BASE_MICROVERSION, GROUP_MICROVERSION, GROUP_VOLUMES_MICROVERSION, MANAGE_MICROVERSION,
    VOLUME_READ_MICROVERSION,
};

use async_trait::async_trait;
use protector_core::ids::{GroupId, VolumeId};
use protector_core::ports::{
    BlockStorage, GroupCreate, ManageVolume, Volume, VolumeGroup, VolumeService, VolumeType,
};
use protector_core::{BackendError, Service};
use reqwest::Method;

use crate::keystone::ServiceType;
use crate::pagination::collect_all;
use crate::session::{parse_failure, Request, Session};
use crate::url_join;

const SERVICE: Service = Service::BlockStorage;

/// A Cinder client sharing a [`Session`].
#[derive(Clone, Debug)]
pub struct CinderClient {
    session: Session,
}

impl CinderClient {
    /// A client over `session`.
    pub fn new(session: Session) -> Self {
        Self { session }
    }

    async fn url(&self, segments: &[&str]) -> Result<url::Url, BackendError> {
        let base = self.session.endpoint(ServiceType::BlockStorage).await?;
        url_join(&base, segments, SERVICE)
    }

    fn request(method: Method, url: url::Url, version: &str) -> Request {
        let (k, v) = api::microversion(version);
        Request::new(method, url).header(k, v)
    }

    async fn send(&self, req: Request) -> Result<Vec<u8>, BackendError> {
        Ok(self.session.send(SERVICE, req).await?.body)
    }
}

#[async_trait]
impl BlockStorage for CinderClient {
    async fn get_volume(&self, id: &VolumeId) -> Result<Volume, BackendError> {
        let url = self.url(&["volumes", id.as_str()]).await?;
        let body = self
            .send(Self::request(Method::GET, url, VOLUME_READ_MICROVERSION))
            .await?;
        wire::parse_volume(&body).map_err(|e| parse_failure(SERVICE, &e))
    }

    async fn list_volumes(&self) -> Result<Vec<Volume>, BackendError> {
        let url = self.url(&["volumes", "detail"]).await?;
        collect_all(
            &self.session,
            SERVICE,
            url,
            &[api::microversion(VOLUME_READ_MICROVERSION)],
            wire::parse_volume_page,
        )
        .await
    }

    async fn manage_volume(&self, request: &ManageVolume) -> Result<Volume, BackendError> {
        let url = self.url(&["manageable_volumes"]).await?;
        let req =
            Self::request(Method::POST, url, MANAGE_MICROVERSION).json(api::manage_body(request));
        let body = self.send(req).await?;
        wire::parse_volume(&body).map_err(|e| parse_failure(SERVICE, &e))
    }

    async fn unmanage_volume(&self, id: &VolumeId) -> Result<(), BackendError> {
        let url = self.url(&["volumes", id.as_str(), "action"]).await?;
        let req = Self::request(Method::POST, url, BASE_MICROVERSION)
            .json(serde_json::json!({ "os-unmanage": {} }));
        self.send(req).await.map(drop)
    }

    async fn delete_volume(&self, id: &VolumeId) -> Result<(), BackendError> {
        let url = self.url(&["volumes", id.as_str()]).await?;
        self.send(Self::request(Method::DELETE, url, BASE_MICROVERSION))
            .await
            .map(drop)
    }

    async fn list_volume_types(&self) -> Result<Vec<VolumeType>, BackendError> {
        let url = self.url(&["types"]).await?;
        collect_all(
            &self.session,
            SERVICE,
            url,
            &[api::microversion(BASE_MICROVERSION)],
            wire::parse_volume_type_page,
        )
        .await
    }

    async fn list_volume_services(&self) -> Result<Vec<VolumeService>, BackendError> {
        let mut url = self.url(&["os-services"]).await?;
        url.query_pairs_mut().append_pair("binary", "cinder-volume");
        let body = self
            .send(Self::request(Method::GET, url, BASE_MICROVERSION))
            .await?;
        wire::parse_volume_services(&body).map_err(|e| parse_failure(SERVICE, &e))
    }

    async fn create_group(&self, request: &GroupCreate) -> Result<VolumeGroup, BackendError> {
        let url = self.url(&["groups"]).await?;
        let req = Self::request(Method::POST, url, GROUP_MICROVERSION)
            .json(api::create_group_body(request));
        let body = self.send(req).await?;
        let created = wire::parse_group(&body).map_err(|e| parse_failure(SERVICE, &e))?;
        Ok(VolumeGroup {
            id: created.id,
            name: request.name.clone(),
            status: if created.status.is_empty() {
                "creating".to_owned()
            } else {
                created.status
            },
            group_type: request.group_type.clone(),
            volume_types: request.volume_types.clone(),
            volumes: Vec::new(),
        })
    }

    async fn get_group(&self, id: &GroupId) -> Result<VolumeGroup, BackendError> {
        let mut url = self.url(&["groups", id.as_str()]).await?;
        url.query_pairs_mut().append_pair("list_volume", "True");
        let body = self
            .send(Self::request(Method::GET, url, GROUP_VOLUMES_MICROVERSION))
            .await?;
        wire::parse_group(&body).map_err(|e| parse_failure(SERVICE, &e))
    }

    async fn update_group(
        &self,
        id: &GroupId,
        add: &[VolumeId],
        remove: &[VolumeId],
    ) -> Result<(), BackendError> {
        if add.is_empty() && remove.is_empty() {
            // Cinder refuses an update with nothing in it.
            return Ok(());
        }
        let url = self.url(&["groups", id.as_str()]).await?;
        let req = Self::request(Method::PUT, url, GROUP_MICROVERSION)
            .json(api::update_group_body(add, remove));
        self.send(req).await.map(drop)
    }

    async fn delete_group(&self, id: &GroupId, delete_volumes: bool) -> Result<(), BackendError> {
        let url = self.url(&["groups", id.as_str(), "action"]).await?;
        let req = Self::request(Method::POST, url, GROUP_MICROVERSION)
            .json(serde_json::json!({ "delete": { "delete-volumes": delete_volumes } }));
        self.send(req).await.map(drop)
    }
}
