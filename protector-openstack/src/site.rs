//! One OpenStack site: a session and the three service clients on it.

use std::sync::Arc;

use protector_core::ports::SiteClients;
use protector_core::{BackendError, RequestContext};

use crate::cinder::CinderClient;
use crate::config::CloudConfig;
use crate::error::Error;
use crate::neutron::NeutronClient;
use crate::nova::NovaClient;
use crate::session::Session;

/// A connected site. See [`OpenStackSite::connect`].
#[derive(Clone, Debug)]
pub struct OpenStackSite {
    session: Session,
    nova: Arc<NovaClient>,
    cinder: Arc<CinderClient>,
    neutron: Arc<NeutronClient>,
}

impl OpenStackSite {
    /// Authenticates with Keystone and prepares the Nova, Cinder and Neutron clients.
    /// Endpoints are resolved from the catalog on each call, so a site whose catalog
    /// lacks a service connects, and calls to that service fail with an error naming
    /// the missing endpoint.
    ///
    /// # Errors
    /// [`Error::Config`] when TLS cannot be set up, [`Error::Backend`] when Keystone
    /// refuses the credentials or cannot be reached.
    pub async fn connect(config: CloudConfig) -> Result<Self, Error> {
        Ok(Self::from_session(Session::connect(config).await?))
    }

    /// A site over an existing session (no call is made).
    pub fn from_session(session: Session) -> Self {
        Self {
            nova: Arc::new(NovaClient::new(session.clone())),
            cinder: Arc::new(CinderClient::new(session.clone())),
            neutron: Arc::new(NeutronClient::new(session.clone())),
            session,
        }
    }

    /// The port implementations the engine uses.
    pub fn clients(&self) -> SiteClients {
        SiteClients {
            compute: self.nova.clone(),
            block_storage: self.cinder.clone(),
            networking: self.neutron.clone(),
        }
    }

    /// The shared session.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The caller's identity from the current token.
    ///
    /// # Errors
    /// As [`Session::token`].
    pub async fn request_context(&self) -> Result<RequestContext, BackendError> {
        self.session.request_context().await
    }
}
