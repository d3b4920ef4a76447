//! HTTP mode: the simulated sites served over real sockets.
//!
//! [`SimServer::start`] binds one loopback listener per site service (Keystone v3,
//! Nova v2.1, Cinder v3, Neutron v2.0) on ephemeral ports, all answering from the
//! same [`SimWorld`] state the in-process ports use, and writes a `clouds.yaml` the
//! real `protector-openstack` clients can load, plus one listener per FlashArray and
//! an `arrays.json` with their URLs and API tokens. Every call but Cinder's volume
//! create (see the caveats) goes through the same port implementations, so latency
//! profiles, fault rules, call statistics and the event log behave as in-process.
//!
//! # Guarantees
//! - Wire shapes follow the services: `X-Subject-Token` on a 201 from Keystone, the
//!   catalog with `identity`, `compute`, `volumev3`/`block-storage` and `network`,
//!   `marker`/`limit` pagination with `*_links`, microversion headers echoed,
//!   `x-openstack-request-id` on every answer, and error bodies as each service
//!   writes them (`itemNotFound`, `badRequest`, `forbidden`, `NeutronError`, the
//!   Keystone `error` object).
//! - A site taken down with [`SimWorld::take_site_down`] stops answering at the
//!   TCP level: new connections are closed at once and open ones are reset, so
//!   the real clients see a transport error.
//!
//! # Caveats
//! - Run on real time (not paused); use [`crate::LatencyProfile::zero`] or a scaled
//!   profile to keep calls fast.
//! - Passwords and application-credential secrets are derived from the world's
//!   seed; read them from the written `clouds.yaml` or the accessors.
//! - Cinder's volume create (`POST /v3/{project}/volumes`), which the
//!   `BlockStorage` port does not have, works on the site's state directly: the
//!   array volume `volume-<id>-cinder` is made at once and the volume is
//!   `available` by the next read, without the profile's latency, fault rules or
//!   call statistics. It makes empty volumes only (a snapshot, volume, image or
//!   backup as source is a 400) and keeps no description.
//! - Each array answers FlashArray REST 2.x (`/api/api_version`, `POST
//!   /api/2.N/login` with `api-token` → `x-auth-token`, then volumes, volume
//!   snapshots, protection groups with their volumes and targets, protection-group
//!   snapshots and transfers, pods, array connections and arrays) with
//!   `{"items": [...], "continuation_token": ...}` envelopes and `{"errors": [...]}`
//!   bodies. A downed array answers through the simulator's own errors; its
//!   listener stays open.
//! - With [`ServeOptions::array_tls`] the arrays answer HTTPS only (as real arrays
//!   do) with a certificate for `127.0.0.1` and `localhost` signed by a CA made at
//!   start; its certificate is written to `array-ca.pem` and named in
//!   `arrays.json` as `ca_file`. Without it they answer plain HTTP.

mod cinder;
mod common;
mod flasharray;
mod keystone;
mod listener;
mod neutron;
mod nova;
mod tls;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::site::SimSite;
use crate::world::{SimWorld, ADMIN, TENANTS};

pub use common::{ApplicationCredential, Credentials};

use common::SiteState;

/// How [`SimServer::start_with`] serves the world.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServeOptions {
    array_tls: bool,
}

impl ServeOptions {
    /// The arrays answer HTTPS with a certificate signed by a CA made at start
    /// (default: plain HTTP). The CA certificate is written to `array-ca.pem`.
    pub fn array_tls(mut self, on: bool) -> Self {
        self.array_tls = on;
        self
    }
}

/// The endpoints of one served site.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiteEndpoints {
    /// Keystone, ending in `/v3`.
    pub auth_url: String,
    /// Nova root (the catalog adds `/v2.1`).
    pub compute: String,
    /// Cinder root (the catalog adds `/v3/<project_id>`).
    pub block_storage: String,
    /// Neutron root (the client adds `/v2.0`).
    pub network: String,
}

struct Served {
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

/// Both simulated sites served over HTTP on loopback.
pub struct SimServer {
    world: SimWorld,
    dir: PathBuf,
    endpoints: BTreeMap<SimSite, SiteEndpoints>,
    credentials: BTreeMap<SimSite, Arc<Credentials>>,
    arrays: BTreeMap<SimSite, String>,
    array_ca: Option<PathBuf>,
    served: Vec<Served>,
}

impl std::fmt::Debug for SimServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimServer")
            .field("dir", &self.dir)
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

impl SimServer {
    /// Starts Keystone, Nova, Cinder and Neutron of both sites on `127.0.0.1` and
    /// writes `clouds.yaml` into `dir` (clouds `site-a`/`site-b` for the tenant user
    /// `alice` of `tenant-a`, `site-a-admin`/`site-b-admin`, and
    /// `site-a-appcred`/`site-b-appcred` with an application credential of `alice`).
    ///
    /// # Errors
    /// Binding a listener or writing the file failed.
    pub async fn start(world: SimWorld, dir: &Path) -> std::io::Result<Self> {
        Self::start_with(world, dir, ServeOptions::default()).await
    }

    /// [`Self::start`] with options (see [`ServeOptions`]).
    ///
    /// # Errors
    /// Binding a listener, making the TLS certificates or writing a file failed.
    pub async fn start_with(
        world: SimWorld,
        dir: &Path,
        options: ServeOptions,
    ) -> std::io::Result<Self> {
        let tls = if options.array_tls {
            let material = tls::TlsMaterial::generate()?;
            let path = dir.join("array-ca.pem");
            std::fs::write(&path, &material.ca_pem)?;
            Some((material.acceptor, path))
        } else {
            None
        };
        let mut server = Self {
            world: world.clone(),
            dir: dir.to_path_buf(),
            endpoints: BTreeMap::new(),
            credentials: BTreeMap::new(),
            arrays: BTreeMap::new(),
            array_ca: tls.as_ref().map(|(_, path)| path.clone()),
            served: Vec::new(),
        };
        for site in SimSite::BOTH {
            let listeners = [
                listener::bind().await?,
                listener::bind().await?,
                listener::bind().await?,
                listener::bind().await?,
            ];
            let addr = |i: usize| -> std::io::Result<SocketAddr> { listeners[i].local_addr() };
            let endpoints = SiteEndpoints {
                auth_url: format!("http://{}/v3", addr(0)?),
                compute: format!("http://{}", addr(1)?),
                block_storage: format!("http://{}", addr(2)?),
                network: format!("http://{}", addr(3)?),
            };
            let credentials = Arc::new(Credentials::derive(&world, site));
            let state = Arc::new(SiteState::new(
                world.clone(),
                site,
                endpoints.clone(),
                Arc::clone(&credentials),
            ));
            let routers = [
                keystone::router(Arc::clone(&state)),
                nova::router(Arc::clone(&state)),
                cinder::router(Arc::clone(&state)),
                neutron::router(Arc::clone(&state)),
            ];
            for (l, router) in listeners.into_iter().zip(routers) {
                let w = world.clone();
                let guarded = listener::SiteListener::new(l, move || w.is_site_down(site));
                server.served.push(spawn(guarded, router));
            }
            server.endpoints.insert(site, endpoints);
            server.credentials.insert(site, credentials);
            let array = listener::bind().await?;
            let addr = array.local_addr()?;
            let state = Arc::new(flasharray::ArrayState::new(world.clone(), site));
            let served = match &tls {
                Some((acceptor, _)) => {
                    server.arrays.insert(site, format!("https://{addr}"));
                    spawn(
                        listener::TlsListener::new(array, acceptor.clone())?,
                        flasharray::router(state),
                    )
                }
                None => {
                    server.arrays.insert(site, format!("http://{addr}"));
                    spawn(
                        listener::SiteListener::new(array, || false),
                        flasharray::router(state),
                    )
                }
            };
            server.served.push(served);
        }
        std::fs::write(server.clouds_yaml_path(), server.clouds_yaml())?;
        std::fs::write(server.arrays_json_path(), server.arrays_json())?;
        Ok(server)
    }

    /// The world being served.
    pub fn world(&self) -> &SimWorld {
        &self.world
    }

    /// Where `clouds.yaml` was written.
    pub fn clouds_yaml_path(&self) -> PathBuf {
        self.dir.join("clouds.yaml")
    }

    /// The endpoints of `site`.
    ///
    /// # Panics
    /// Never: both sites are always served.
    pub fn endpoints(&self, site: SimSite) -> &SiteEndpoints {
        &self.endpoints[&site]
    }

    /// Keystone of `site`, ending in `/v3`.
    pub fn auth_url(&self, site: SimSite) -> &str {
        &self.endpoints(site).auth_url
    }

    /// The passwords and application credentials `site`'s Keystone accepts.
    pub fn credentials(&self, site: SimSite) -> &Credentials {
        &self.credentials[&site]
    }

    /// Where `arrays.json` (`{"array-a": {"url", "api_token", "site", "ca_file"}, …}`;
    /// `ca_file` is null without TLS) was written.
    pub fn arrays_json_path(&self) -> PathBuf {
        self.dir.join("arrays.json")
    }

    /// The REST base URL of `site`'s array (`http://127.0.0.1:<port>`, or `https://`
    /// with [`ServeOptions::array_tls`]).
    pub fn array_url(&self, site: SimSite) -> &str {
        &self.arrays[&site]
    }

    /// The API token `site`'s array accepts at login.
    pub fn array_token(&self, site: SimSite) -> &str {
        &self.world.site(site).array_token
    }

    /// The CA certificate (PEM) the arrays' certificates chain to, when they answer
    /// HTTPS.
    pub fn array_ca_path(&self) -> Option<&Path> {
        self.array_ca.as_deref()
    }

    fn arrays_json(&self) -> String {
        let doc: serde_json::Map<String, serde_json::Value> = SimSite::BOTH
            .into_iter()
            .map(|site| {
                (
                    site.array_name().to_owned(),
                    serde_json::json!({
                        "url": self.array_url(site),
                        "api_token": self.array_token(site),
                        "site": site.name(),
                        "ca_file": self.array_ca.as_ref().map(|p| p.display().to_string()),
                    }),
                )
            })
            .collect();
        serde_json::to_string_pretty(&doc).unwrap_or_default()
    }

    /// Stops every listener and waits for in-flight requests to finish.
    pub async fn stop(self) {
        let mut tasks = Vec::new();
        for s in self.served {
            let _ = s.shutdown.send(());
            tasks.push(s.task);
        }
        for t in tasks {
            match t.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "simulated service stopped with an error"),
                Err(e) => tracing::warn!(error = %e, "simulated service task failed"),
            }
        }
    }

    fn clouds_yaml(&self) -> String {
        let mut out = String::from("clouds:\n");
        for site in SimSite::BOTH {
            let info = self.world.site(site);
            let creds = self.credentials(site);
            let (tenant, user) = TENANTS[0];
            let entries = [
                (site.name().to_owned(), user, tenant),
                (format!("{}-admin", site.name()), ADMIN, ADMIN),
            ];
            for (name, user, project) in entries {
                out.push_str(&format!(
                    "  {name}:\n    auth_type: password\n    auth:\n      auth_url: {}\n      \
                     username: {user}\n      password: \"{}\"\n      project_name: {project}\n      \
                     user_domain_name: Default\n      project_domain_name: Default\n    \
                     region_name: {}\n    interface: public\n    identity_api_version: 3\n",
                    self.auth_url(site),
                    creds.password(user).unwrap_or_default(),
                    info.region_name,
                ));
            }
            if let Some(app) = creds.application_credential(user) {
                out.push_str(&format!(
                    "  {}-appcred:\n    auth_type: v3applicationcredential\n    auth:\n      \
                     auth_url: {}\n      application_credential_id: {}\n      \
                     application_credential_secret: \"{}\"\n    region_name: {}\n    \
                     interface: public\n    identity_api_version: 3\n",
                    site.name(),
                    self.auth_url(site),
                    app.id,
                    app.secret,
                    info.region_name,
                ));
            }
        }
        out
    }
}

fn spawn<L>(listener: L, router: axum::Router) -> Served
where
    L: axum::serve::Listener<Addr = SocketAddr>,
{
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await
    });
    Served { shutdown: tx, task }
}
