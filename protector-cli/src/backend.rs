//! Where a command's two sites come from: clouds.yaml ([`CloudBackend`]) or the
//! in-process simulator ([`SimBackend`]).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use protector_core::engine::{EngineConfig, SiteRuntime};
use protector_core::ids::{OperationId, SiteId};
use protector_core::model::{Site, SiteCredentials, SiteStatus};
use protector_core::store::SqliteStore;
use protector_core::{Clock, IdGenerator, Protector, RequestContext, SystemClock};
use protector_openstack::{CloudConfig, ConfigLoader, OpenStackConnector};
use protector_purestorage::{FactoryOptions, PureDriverFactory};
use protector_sim::{derive_seed, DrStores, SimSite, SimWorld};

/// One command's view of the world: the engine as seen from the local site and the
/// caller's identity.
#[derive(Clone, Debug)]
pub struct Handle {
    /// The engine.
    pub protector: Protector,
    /// The caller.
    pub ctx: RequestContext,
    /// Operations an earlier, interrupted process left unfinished, resumed by
    /// [`Protector::recover`] when this handle was opened.
    pub recovered: Vec<OperationId>,
}

/// Builds the engine for a command.
#[async_trait]
pub trait Backend: Send + Sync {
    /// The engine with `local` as the local site and `peer` as the other one (each
    /// `None` when not given), after [`Protector::recover`] ran when `recover` is set
    /// (read-only monitoring commands leave another process's operation alone).
    ///
    /// # Errors
    /// A one-line description of what is missing or failed.
    async fn open(
        &self,
        local: Option<&str>,
        peer: Option<&str>,
        recover: bool,
    ) -> Result<Handle, String>;
}

/// The default state directory: `$XDG_STATE_HOME/protector`, else
/// `~/.local/state/protector`, else `./.protector`.
pub fn default_state_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("protector");
    }
    if let Some(h) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(h).join(".local/state/protector");
    }
    PathBuf::from(".protector")
}

// ---- real clouds ------------------------------------------------------------------

/// Sites from clouds.yaml, a SQLite store per site in the state directory.
#[derive(Debug)]
pub struct CloudBackend {
    loader: ConfigLoader,
    state_dir: PathBuf,
}

impl CloudBackend {
    /// A backend reading clouds.yaml the usual way and keeping state in `state_dir`.
    pub fn new(state_dir: PathBuf) -> Self {
        Self {
            loader: ConfigLoader::from_process_env(),
            state_dir,
        }
    }

    fn site_runtime(
        &self,
        config: CloudConfig,
    ) -> Result<(SiteRuntime, Arc<OpenStackConnector>), String> {
        let cloud = config.cloud_name().to_owned();
        let name = site_of_cloud(&cloud).to_owned();
        let store = Arc::new(open_store(&self.state_dir, &name)?);
        let site = Site {
            id: SiteId::new(name.clone()),
            name: name.clone(),
            description: String::new(),
            auth_url: config.identity_url().to_string(),
            region_name: config.region_name().map(str::to_owned),
            interface: Some(config.interface().to_string()),
            cloud: Some(cloud),
            status: SiteStatus::Active,
            credentials: SiteCredentials::default(),
            created_at: SystemClock.now(),
            last_validated_at: None,
        };
        let connector = Arc::new(OpenStackConnector::new(config));
        Ok((
            SiteRuntime {
                site,
                connector: connector.clone(),
                metadata: store.clone(),
                operations: store,
            },
            connector,
        ))
    }
}

/// The site a clouds.yaml entry belongs to: `<site>-admin` is the admin entry of
/// `<site>`, so both act on the same site and its state (as in [`SimBackend::site`]).
pub fn site_of_cloud(cloud: &str) -> &str {
    cloud
        .strip_suffix("-admin")
        .filter(|s| !s.is_empty())
        .unwrap_or(cloud)
}

fn open_store(dir: &Path, cloud: &str) -> Result<SqliteStore, String> {
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create state directory {}: {e}", dir.display()))?;
    let path = dir.join(format!("{cloud}.db"));
    SqliteStore::open(&path).map_err(|e| format!("cannot open {}: {e}", path.display()))
}

#[async_trait]
impl Backend for CloudBackend {
    async fn open(
        &self,
        local: Option<&str>,
        peer: Option<&str>,
        recover: bool,
    ) -> Result<Handle, String> {
        if local.is_none() && std::env::var_os("OS_AUTH_URL").is_none() {
            return Err(
                "no cloud selected: pass --os-cloud (or set OS_CLOUD) to a clouds.yaml entry"
                    .to_owned(),
            );
        }
        let local_cfg = self.loader.load(local).map_err(|e| e.to_string())?;
        let peer_name = peer.ok_or_else(|| {
            "--secondary-cloud (or OS_SECONDARY_CLOUD) is required: the peer site's clouds.yaml entry"
                .to_owned()
        })?;
        let peer_cfg = self
            .loader
            .load(Some(peer_name))
            .map_err(|e| e.to_string())?;
        if site_of_cloud(peer_cfg.cloud_name()) == site_of_cloud(local_cfg.cloud_name()) {
            return Err("--os-cloud and --secondary-cloud name the same cloud".to_owned());
        }
        let (local_rt, local_conn) = self.site_runtime(local_cfg)?;
        let (peer_rt, _) = self.site_runtime(peer_cfg)?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let ids = Arc::new(IdGenerator::from_entropy());
        let protector = Protector::builder()
            .local(local_rt)
            .peer(peer_rt)
            .storage(Arc::new(PureDriverFactory::new(
                clock.clone(),
                ids.clone(),
                FactoryOptions::default(),
            )))
            .clock(clock)
            .ids(ids)
            .build()
            .await
            .map_err(|e| e.to_string())?;
        let recovered = if recover {
            protector.recover().await.map_err(|e| e.to_string())?
        } else {
            Vec::new()
        };
        let ctx = local_conn
            .site()
            .await
            .map_err(|e| e.to_string())?
            .request_context()
            .await
            .map_err(|e| e.to_string())?;
        Ok(Handle {
            protector,
            ctx,
            recovered,
        })
    }
}

// ---- the simulator ----------------------------------------------------------------

/// Both sites of a [`SimWorld`], the tenant `tenant-a` as the caller.
#[derive(Clone)]
pub struct SimBackend {
    /// The simulated world.
    pub world: SimWorld,
    /// Both sites' stores.
    pub stores: DrStores,
    /// The tenant commands act for.
    pub project: String,
    /// Engines opened so far (each draws its ids from its own seed).
    opened: Arc<AtomicU64>,
}

impl fmt::Debug for SimBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimBackend")
            .field("seed", &self.world.seed())
            .finish_non_exhaustive()
    }
}

impl SimBackend {
    /// A backend over `world` with in-memory stores.
    pub fn new(world: SimWorld) -> Self {
        Self {
            world,
            stores: DrStores::memory(),
            project: "tenant-a".to_owned(),
            opened: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The simulated site named `name` and whether it is the site's admin entry:
    /// `site-a`, `site-b` act for the tenant, `site-a-admin`, `site-b-admin` for the
    /// cloud admin (as two clouds.yaml entries would).
    ///
    /// # Errors
    /// An unknown name.
    pub fn site(&self, name: &str) -> Result<(SimSite, bool), String> {
        let (base, admin) = match name.strip_suffix("-admin") {
            Some(b) => (b, true),
            None => (name, false),
        };
        SimSite::BOTH
            .into_iter()
            .find(|s| self.world.site(*s).name == base || s.name() == base)
            .map(|s| (s, admin))
            .ok_or_else(|| {
                format!(
                    "cloud {name} not found (the simulator has site-a, site-b, site-a-admin and site-b-admin)"
                )
            })
    }

    /// The engine configuration of the simulator's engines.
    pub fn config() -> EngineConfig {
        EngineConfig::builder()
            .replication_timeout(Duration::from_secs(600))
            .build()
            .unwrap_or_default()
    }
}

#[async_trait]
impl Backend for SimBackend {
    async fn open(
        &self,
        local: Option<&str>,
        peer: Option<&str>,
        recover: bool,
    ) -> Result<Handle, String> {
        let (local, admin) = self.site(local.unwrap_or("site-a"))?;
        if let Some(p) = peer {
            if self.site(p)?.0 != local.peer() {
                return Err("--os-cloud and --secondary-cloud name the same cloud".to_owned());
            }
        }
        // Every command is a new process over the same stores: give each its own id
        // stream (deterministic for a seed) so no two draw the same ids.
        let n = self.opened.fetch_add(1, Ordering::Relaxed);
        let seed = derive_seed(self.world.seed(), &format!("protector-cli-{n}"));
        let protector = self
            .world
            .protector_builder(local, &self.stores)
            .await
            .map_err(|e| e.to_string())?
            .ids(Arc::new(IdGenerator::seeded(seed)))
            .config(Self::config())
            .build()
            .await
            .map_err(|e| e.to_string())?;
        let recovered = if recover {
            protector.recover().await.map_err(|e| e.to_string())?
        } else {
            Vec::new()
        };
        let ctx = if admin {
            self.world.admin_context(local)
        } else {
            self.world.tenant_context(local, &self.project)
        }
        .map_err(|e| e.to_string())?;
        Ok(Handle {
            protector,
            ctx,
            recovered,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::site_of_cloud;

    #[test]
    fn an_admin_entry_belongs_to_its_site() {
        assert_eq!(site_of_cloud("site-a-admin"), "site-a");
        assert_eq!(site_of_cloud("site-a"), "site-a");
        assert_eq!(site_of_cloud("admin"), "admin");
        assert_eq!(site_of_cloud("-admin"), "-admin");
    }
}
