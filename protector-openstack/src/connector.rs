//! [`OpenStackConnector`]: the engine's [`SiteConnector`] for a real cloud.
//!
//! # Expected flow
//! Build one connector per site from its [`CloudConfig`] (no call is made), hand it to
//! the engine in the site's `SiteRuntime`, and let the first `connect` or `probe`
//! authenticate. The connected [`OpenStackSite`] is kept for the connector's lifetime
//! (clones share it), so every later call reuses its session and token cache.
//!
//! # Guarantees
//! - Nothing reaches the network until the connector is first used, so a handle whose
//!   peer is down still serves the commands that never touch the peer.
//! - A failed authentication is not remembered: the next use tries again.
//! - Concurrent first uses authenticate once; the others wait for that attempt.
//!
//! # Caveats
//! - The clients act with the credentials of the configuration, not of the caller
//!   passed to [`SiteConnector::connect`]: the deployment's cloud entry decides what
//!   the engine may see and change on that site.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use protector_core::ports::{SiteClients, SiteConnector};
use protector_core::{BackendError, RequestContext, Service};
use tokio::sync::OnceCell;

use crate::config::CloudConfig;
use crate::error::Error;
use crate::site::OpenStackSite;

/// Reaches one OpenStack site for the engine, authenticating on first use.
///
/// Cheap to clone; clones share the connected site.
#[derive(Clone)]
pub struct OpenStackConnector {
    config: CloudConfig,
    site: Arc<OnceCell<OpenStackSite>>,
}

impl fmt::Debug for OpenStackConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenStackConnector")
            .field("cloud", &self.config.cloud_name())
            .field("connected", &self.site.initialized())
            .finish_non_exhaustive()
    }
}

impl OpenStackConnector {
    /// A connector for `config`; no call is made until it is used.
    pub fn new(config: CloudConfig) -> Self {
        Self {
            config,
            site: Arc::new(OnceCell::new()),
        }
    }

    /// The configuration the connector authenticates with.
    pub fn config(&self) -> &CloudConfig {
        &self.config
    }

    /// The connected site, authenticating with Keystone the first time it is asked for
    /// (or again after an earlier attempt failed).
    ///
    /// # Errors
    /// Keystone's refusal or a transport failure as returned by
    /// [`OpenStackSite::connect`]; a configuration that cannot set up TLS (an unreadable
    /// CA bundle, say) as an `Invalid` error of the identity service naming the cause.
    pub async fn site(&self) -> Result<&OpenStackSite, BackendError> {
        self.site
            .get_or_try_init(|| async {
                OpenStackSite::connect(self.config.clone())
                    .await
                    .map_err(|e| match e {
                        Error::Backend(b) => b,
                        other @ Error::Config(_) => {
                            BackendError::invalid(Service::Identity, other.to_string())
                        }
                    })
            })
            .await
    }
}

#[async_trait]
impl SiteConnector for OpenStackConnector {
    /// The site's Nova, Cinder and Neutron clients (the caller is not used; see the
    /// module's caveats).
    async fn connect(&self, _ctx: &RequestContext) -> Result<SiteClients, BackendError> {
        Ok(self.site().await?.clients())
    }

    /// Whether Keystone answers now and honours the configured credentials (a round
    /// trip even while a token is cached: see [`crate::Session::verify`]).
    async fn probe(&self) -> Result<(), BackendError> {
        self.site().await?.session().verify().await
    }
}
