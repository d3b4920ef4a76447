//! Running the protector engine on the simulated world.
//!
//! [`SimConnector`] reaches a simulated site the way the real connector reaches a cloud
//! (a Keystone token per caller, reused until shortly before it expires; a probe that
//! asks Keystone even while the token is cached; clients scoped to the caller's
//! project);
//! [`SimStorageFactory`] builds the real [`PureDriver`] over the simulated arrays,
//! finding each array by the URL in the replication policy and checking its API token;
//! [`DrStores`] holds both sites' stores; [`SimWorld::protector`] assembles a ready
//! [`Protector`] as seen from one site.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use protector_core::engine::{EngineConfig, SiteRuntime};
use protector_core::model::{ReplicationPolicy, Site, SiteCredentials, SiteStatus};
use protector_core::ports::{SiteClients, SiteConnector, StorageDriver, StorageDriverFactory};
use protector_core::secrecy::ExposeSecret;
use protector_core::store::{MemoryStore, MetadataStore, OperationStore, SqliteStore};
use protector_core::{
    BackendError, Error, IdGenerator, Protector, ProtectorBuilder, RequestContext, Service,
};
use protector_purestorage::{PureDriver, PureDriverOptions};

use crate::site::SimSite;
use crate::world::SimWorld;

/// How long a simulated Keystone token lives (Keystone's default `[token] expiration`).
const TOKEN_LIFETIME: chrono::Duration = chrono::Duration::hours(1);
/// A token is replaced this long before it expires (the real connector's default).
const TOKEN_REFRESH_MARGIN: chrono::Duration = chrono::Duration::minutes(2);

/// Cached tokens: (user, project) → when the token expires.
type TokenCache = Arc<Mutex<BTreeMap<(String, String), chrono::DateTime<chrono::Utc>>>>;

/// Reaches one simulated site. Like the real connector, it keeps one token per caller
/// and issues a new one only when none is cached or the cached one is about to expire;
/// clones share the tokens.
#[derive(Clone)]
pub struct SimConnector {
    world: SimWorld,
    site: SimSite,
    tokens: TokenCache,
}

impl SimConnector {
    /// The connector of `site`.
    pub fn new(world: SimWorld, site: SimSite) -> Self {
        Self {
            world,
            site,
            tokens: Arc::default(),
        }
    }

    fn key(ctx: &RequestContext) -> (String, String) {
        (ctx.user_id.to_string(), ctx.project_id.to_string())
    }

    /// Whether a token of `ctx`'s caller is cached and not about to expire.
    fn cached(&self, ctx: &RequestContext) -> bool {
        let now = self.world.clock().now();
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&Self::key(ctx))
            .is_some_and(|expires| now + TOKEN_REFRESH_MARGIN < *expires)
    }

    /// A token for `ctx`'s caller: the cached one, or one issued now.
    async fn token(&self, ctx: &RequestContext) -> Result<(), BackendError> {
        if self.cached(ctx) {
            return Ok(());
        }
        self.world.issue_token(self.site, ctx).await?;
        let expires = self.world.clock().now() + TOKEN_LIFETIME;
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(Self::key(ctx), expires);
        Ok(())
    }
}

impl fmt::Debug for SimConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimConnector")
            .field("site", &self.site)
            .finish()
    }
}

#[async_trait]
impl SiteConnector for SimConnector {
    async fn connect(&self, ctx: &RequestContext) -> Result<SiteClients, BackendError> {
        self.token(ctx).await?;
        Ok(self.world.clients(self.site, ctx))
    }

    async fn probe(&self) -> Result<(), BackendError> {
        let admin = self
            .world
            .admin_context(self.site)
            .map_err(|e| BackendError::invalid(Service::Identity, e.to_string()))?;
        if self.cached(&admin) {
            return self.world.validate_token(self.site, &admin).await;
        }
        self.token(&admin).await
    }
}

/// Builds [`PureDriver`]s over the simulated arrays.
pub struct SimStorageFactory {
    world: SimWorld,
    options: PureDriverOptions,
}

impl SimStorageFactory {
    /// A factory for `world`'s arrays.
    pub fn new(world: SimWorld, options: PureDriverOptions) -> Self {
        Self { world, options }
    }

    fn site_of_url(&self, url: &str) -> Result<SimSite, BackendError> {
        let url = url.trim_end_matches('/');
        SimSite::BOTH
            .into_iter()
            .find(|s| self.world.site(*s).array_url.trim_end_matches('/') == url)
            .ok_or_else(|| {
                BackendError::unreachable(
                    Service::FlashArray,
                    format!("no FlashArray answers at {url}"),
                )
            })
    }
}

impl fmt::Debug for SimStorageFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimStorageFactory").finish_non_exhaustive()
    }
}

impl StorageDriverFactory for SimStorageFactory {
    fn driver(&self, policy: &ReplicationPolicy) -> Result<Arc<dyn StorageDriver>, BackendError> {
        let mut arrays = Vec::new();
        for (url, token) in [
            (&policy.primary_fa_url, &policy.primary_fa_api_token),
            (&policy.secondary_fa_url, &policy.secondary_fa_api_token),
        ] {
            let site = self.site_of_url(url)?;
            // A client is built even while the array is down (its calls then fail, as a
            // real array's would); a wrong token is refused as the array's login would.
            if self.world.site(site).array_token != token.expose_secret() {
                return Err(BackendError::new(
                    protector_core::BackendErrorKind::Auth,
                    Service::FlashArray,
                    format!("invalid API token for FlashArray {}", site.array_name()),
                )
                .with_status(401));
            }
            arrays.push(self.world.array(site));
        }
        let secondary = arrays
            .pop()
            .ok_or_else(|| BackendError::invalid(Service::FlashArray, "no secondary array"))?;
        let primary = arrays
            .pop()
            .ok_or_else(|| BackendError::invalid(Service::FlashArray, "no primary array"))?;
        Ok(Arc::new(PureDriver::new(
            primary,
            secondary,
            self.world.clock(),
            self.options.clone(),
        )))
    }
}

/// Both sites' metadata and operation stores.
#[derive(Clone)]
pub struct DrStores {
    stores: [(Arc<dyn MetadataStore>, Arc<dyn OperationStore>); 2],
}

impl fmt::Debug for DrStores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DrStores").finish_non_exhaustive()
    }
}

impl DrStores {
    /// In-memory stores.
    pub fn memory() -> Self {
        let a = MemoryStore::new();
        let b = MemoryStore::new();
        Self {
            stores: [
                (Arc::new(a.clone()), Arc::new(a)),
                (Arc::new(b.clone()), Arc::new(b)),
            ],
        }
    }

    /// SQLite stores `site-a.db` and `site-b.db` in `dir` (opened anew on every call, as
    /// a restarted process would).
    ///
    /// # Errors
    /// Store errors.
    pub fn sqlite(dir: &Path) -> Result<Self, Error> {
        let a = Arc::new(SqliteStore::open(dir.join("site-a.db"))?);
        let b = Arc::new(SqliteStore::open(dir.join("site-b.db"))?);
        Ok(Self {
            stores: [(a.clone(), a), (b.clone(), b)],
        })
    }

    /// These stores with `site`'s operation store replaced by `operations` (a wrapper
    /// that injects store failures, say).
    #[must_use]
    pub fn with_operations(mut self, site: SimSite, operations: Arc<dyn OperationStore>) -> Self {
        self.stores[site_index(site)].1 = operations;
        self
    }

    /// The metadata store of `site`.
    pub fn metadata(&self, site: SimSite) -> Arc<dyn MetadataStore> {
        self.stores[site_index(site)].0.clone()
    }

    /// The operation store of `site`.
    pub fn operations(&self, site: SimSite) -> Arc<dyn OperationStore> {
        self.stores[site_index(site)].1.clone()
    }
}

fn site_index(site: SimSite) -> usize {
    match site {
        SimSite::A => 0,
        SimSite::B => 1,
    }
}

impl SimWorld {
    /// The site record protector registers for `site`.
    pub fn site_record(&self, site: SimSite) -> Site {
        let info = self.site(site);
        Site {
            id: info.site_id.clone(),
            name: info.name.clone(),
            description: String::new(),
            auth_url: info.auth_url.clone(),
            region_name: Some(info.region_name.clone()),
            interface: None,
            cloud: Some(info.name.clone()),
            status: SiteStatus::Active,
            credentials: SiteCredentials::default(),
            created_at: self.clock().now(),
            last_validated_at: None,
        }
    }

    /// The runtime of `site` for the engine: record, connector, stores.
    pub fn site_runtime(&self, site: SimSite, stores: &DrStores) -> SiteRuntime {
        SiteRuntime {
            site: self.site_record(site),
            connector: Arc::new(SimConnector::new(self.clone(), site)),
            metadata: stores.metadata(site),
            operations: stores.operations(site),
        }
    }

    /// A [`Protector`] as seen from `local` (the site the caller is authenticated to),
    /// with the real Pure driver on the simulated arrays, the world's clock, ids drawn
    /// from the world's seed, and the world's crash points.
    ///
    /// # Errors
    /// Store errors while registering the sites.
    pub async fn protector(
        &self,
        local: SimSite,
        stores: &DrStores,
        config: EngineConfig,
    ) -> Result<Protector, Error> {
        self.protector_builder(local, stores)
            .await?
            .config(config)
            .build()
            .await
    }

    /// The builder behind [`SimWorld::protector`], for callers that set more (a policy
    /// file, another storage factory).
    ///
    /// # Errors
    /// Store errors.
    pub async fn protector_builder(
        &self,
        local: SimSite,
        stores: &DrStores,
    ) -> Result<ProtectorBuilder, Error> {
        // A process restarted over the same stores must not draw the ids it drew before:
        // fold what the stores already hold into the seed (deterministic for a replay).
        let ops = stores
            .operations(local)
            .list_operations(&protector_core::model::OperationFilter::default())
            .await?
            .len();
        let pgs = stores
            .metadata(local)
            .list_protection_groups(None)
            .await?
            .len();
        // The world's event count grows with every call, so handles built one after the
        // other (one per command, say) draw different ids, deterministically.
        let events = self.inner.log.len();
        let seed = crate::seed::derive_seed(
            self.seed(),
            &format!("protector-{}-{ops}-{pgs}-{events}", local.name()),
        );
        Ok(Protector::builder()
            .local(self.site_runtime(local, stores))
            .peer(self.site_runtime(local.peer(), stores))
            .storage(Arc::new(SimStorageFactory::new(
                self.clone(),
                PureDriverOptions::default(),
            )))
            .clock(self.clock())
            .ids(Arc::new(IdGenerator::seeded(seed)))
            .step_hook(self.step_hook()))
    }
}
