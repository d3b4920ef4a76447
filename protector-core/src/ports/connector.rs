//! How the engine reaches a site's services on behalf of a caller.

use async_trait::async_trait;

use crate::context::RequestContext;
use crate::error::BackendError;
use crate::ports::SiteClients;

/// Reaches one site: clients acting for a caller, and a reachability probe.
///
/// The real implementation authenticates to the site's Keystone (the product acts for
/// the tenant through a trust); the simulator hands out clients that see what the
/// tenant's project sees.
#[async_trait]
pub trait SiteConnector: Send + Sync {
    /// Nova, Cinder and Neutron clients acting for `ctx`.
    async fn connect(&self, ctx: &RequestContext) -> Result<SiteClients, BackendError>;

    /// Whether the site's APIs answer (Keystone and Nova at least). A site that cannot be
    /// reached is a `Transient` error.
    async fn probe(&self) -> Result<(), BackendError>;
}
