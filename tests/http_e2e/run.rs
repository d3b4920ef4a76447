//! One scenario, run in-process (the simulator's harness, paused time) or over HTTP
//! (`SimServer`, `OpenStackConnector`s from the written clouds.yaml, `PureDriverFactory`
//! on the arrays' REST URLs from arrays.json, SQLite stores, real time).

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use protector::core::engine::{
    CreatePolicy, CreateProtectionGroup, EngineConfig, FailbackRequest, FailoverRequest,
    SiteRegistration, SiteRuntime, TestFailoverRequest,
};
use protector::core::ids::SiteId;
use protector::core::model::{
    FailoverType, Operation, OperationStatus, ReplicationType, ResourceMappings, Site,
    SiteCredentials, SiteStatus,
};
use protector::core::ports::WaitPolicy;
use protector::core::secrecy::SecretString;
use protector::core::{Clock, IdGenerator, Protector, RequestContext};
use protector::openstack::{CloudConfig, ConfigLoader, OpenStackConnector};
use protector::purestorage::{FactoryOptions, PureDriverFactory, PureDriverOptions};
use protector::sim::http::SimServer;
use protector::sim::world::{TYPE_ASYNC, TYPE_SYNC};
use protector::sim::{derive_seed, DrStores, LatencyProfile, SimSite, SimWorld, WorkloadSpec};

use super::state::{capture, FinalState};

/// The protection group every scenario drives.
pub const PG: &str = "prod-web-app";

/// Where the engine's calls go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The simulator's in-process ports and arrays, on paused time.
    InProcess,
    /// The real clients over loopback HTTP, on real time.
    Http,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::InProcess => "in-process",
            Self::Http => "http",
        })
    }
}

/// What a run builds and does.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// The world seed.
    pub seed: u64,
    /// Replication of the group.
    pub replication: ReplicationType,
    /// Protected VMs (each with a boot and a data volume).
    pub servers: usize,
    /// `failback --reverse-replication`.
    pub reverse_replication: bool,
}

/// Short polls and bounded waits: the HTTP run is on real time, and nothing in the
/// zero-latency world takes longer than a few polls.
pub fn engine_config() -> EngineConfig {
    let wait = WaitPolicy::new(Duration::from_secs(60))
        .with_intervals(Duration::from_millis(10), Duration::from_millis(100));
    EngineConfig::builder()
        .server_wait(wait.clone())
        .volume_wait(wait)
        .replication_timeout(Duration::from_secs(60))
        .default_step_timeout(Duration::from_secs(120))
        .rollback_timeout(Duration::from_secs(30))
        .build()
        .expect("valid engine configuration")
}

fn driver_options() -> PureDriverOptions {
    PureDriverOptions {
        poll_interval: Duration::from_millis(10),
        max_poll_interval: Duration::from_millis(100),
        ..PureDriverOptions::default()
    }
}

/// The simulator's volume type of `replication`.
fn volume_type(replication: ReplicationType) -> &'static str {
    match replication {
        ReplicationType::Async => TYPE_ASYNC,
        ReplicationType::Sync => TYPE_SYNC,
    }
}

/// Runs `scenario` in `mode` on a runtime of its own and returns the final state.
///
/// # Panics
/// When a step is refused or an operation does not complete (naming the mode, the
/// step and the seed).
pub fn run(mode: Mode, scenario: &Scenario) -> FinalState {
    let rt = match mode {
        Mode::InProcess => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build(),
        // Never paused: real sockets.
        Mode::Http => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build(),
    }
    .expect("tokio runtime");
    rt.block_on(async {
        let world = SimWorld::builder()
            .seed(scenario.seed)
            .profile(LatencyProfile::zero())
            .build()
            .expect("world");
        let vt = volume_type(scenario.replication);
        world
            .create_workload(
                &WorkloadSpec::new(SimSite::A, "tenant-a")
                    .servers(scenario.servers)
                    .data_volumes(1)
                    .volume_type(vt)
                    .networks(&["tenant-a-web", "tenant-a-db"])
                    .named("web-server"),
            )
            .expect("workload");
        let dir = tempfile::tempdir().expect("temporary directory");
        let deployment = match mode {
            Mode::InProcess => Deployment::in_process(&world).await,
            Mode::Http => Deployment::http(&world, dir.path()).await,
        };
        let driver = Driver {
            mode,
            seed: scenario.seed,
            world: &world,
            d: &deployment,
        };
        let said = driver.drive(scenario).await;
        let mut state = capture(mode, &world, &deployment).await;
        state
            .sections
            .insert("what the commands answered".to_owned(), said);
        if let Some(server) = deployment.server {
            server.stop().await;
        }
        state
    })
}

/// The engine handles of one run and what they were given.
pub struct Deployment {
    /// Both sites' stores.
    pub stores: DrStores,
    /// Site id → site name, for every site record the handles use.
    pub site_names: Vec<(SiteId, String)>,
    /// The tenant's handle on site-a.
    pub a: Protector,
    /// The tenant's handle on site-b.
    pub b: Protector,
    /// The cloud admin's handle on site-a.
    pub admin: Protector,
    /// The tenant.
    pub ctx: RequestContext,
    /// The cloud admin.
    pub admin_ctx: RequestContext,
    /// Array URL and API token, site-a's then site-b's.
    pub arrays: [(String, String); 2],
    server: Option<SimServer>,
}

impl Deployment {
    async fn in_process(world: &SimWorld) -> Self {
        let stores = DrStores::memory();
        let handle = |site| {
            let stores = stores.clone();
            async move {
                world
                    .protector(site, &stores, engine_config())
                    .await
                    .expect("in-process protector")
            }
        };
        let (a, b, admin) = (
            handle(SimSite::A).await,
            handle(SimSite::B).await,
            handle(SimSite::A).await,
        );
        let array = |s: SimSite| {
            let info = world.site(s);
            (info.array_url.clone(), info.array_token.clone())
        };
        Self {
            site_names: SimSite::BOTH
                .into_iter()
                .map(|s| (world.site(s).site_id.clone(), world.site(s).name.clone()))
                .collect(),
            stores,
            a,
            b,
            admin,
            ctx: world
                .tenant_context(SimSite::A, "tenant-a")
                .expect("tenant"),
            admin_ctx: world.admin_context(SimSite::A).expect("admin"),
            arrays: [array(SimSite::A), array(SimSite::B)],
            server: None,
        }
    }

    /// The engine as a deployment assembles it from clouds.yaml and arrays.json.
    async fn http(world: &SimWorld, dir: &Path) -> Self {
        let server = SimServer::start(world.clone(), dir)
            .await
            .expect("start the HTTP simulator");
        let loader = ConfigLoader::new([(
            "OS_CLIENT_CONFIG_FILE",
            server.clouds_yaml_path().display().to_string(),
        )])
        .with_search_dirs(Vec::new());
        // Pages of two: every list the engine reads follows its next links.
        let cloud = |name: &str| -> CloudConfig {
            loader
                .load_builder(Some(name))
                .and_then(|b| {
                    b.request_timeout(Duration::from_secs(10))
                        .page_size(2)
                        .build()
                })
                .unwrap_or_else(|e| panic!("cloud {name} from the written clouds.yaml: {e}"))
        };
        let stores = DrStores::sqlite(dir).expect("SQLite stores");
        // The arrays stamp snapshots with the world's clock; the engine reads time from
        // the same clock, as NTP-synchronised hosts would.
        let clock = world.clock();
        let mut handles = Vec::new();
        let mut contexts = Vec::new();
        let mut site_names = Vec::new();
        // The tenant's handles on site-a and site-b, then the admin's on site-a.
        for (n, (local, admin)) in [(SimSite::A, false), (SimSite::B, false), (SimSite::A, true)]
            .into_iter()
            .enumerate()
        {
            let runtime = |site: SimSite| {
                let config = cloud(site.name());
                let record = site_record(&config, clock.as_ref());
                let connector = if admin {
                    OpenStackConnector::new(cloud(&format!("{}-admin", site.name())))
                } else {
                    OpenStackConnector::new(config)
                };
                (
                    SiteRuntime {
                        site: record,
                        connector: Arc::new(connector.clone()),
                        metadata: stores.metadata(site),
                        operations: stores.operations(site),
                    },
                    connector,
                )
            };
            let (local_rt, local_conn) = runtime(local);
            let (peer_rt, _) = runtime(local.peer());
            if n == 0 {
                for rt in [&local_rt, &peer_rt] {
                    site_names.push((rt.site.id.clone(), rt.site.name.clone()));
                }
            }
            let ids = Arc::new(IdGenerator::seeded(derive_seed(
                world.seed(),
                &format!("http-protector-{n}"),
            )));
            let factory = PureDriverFactory::new(
                clock.clone(),
                ids.clone(),
                FactoryOptions {
                    request_timeout: Some(Duration::from_secs(10)),
                    driver: driver_options(),
                    ..FactoryOptions::default()
                },
            );
            let handle = Protector::builder()
                .local(local_rt)
                .peer(peer_rt)
                .storage(Arc::new(factory))
                .clock(clock.clone())
                .ids(ids)
                .config(engine_config())
                .build()
                .await
                .expect("protector over HTTP");
            let ctx = local_conn
                .site()
                .await
                .expect("authenticate")
                .request_context()
                .await
                .expect("request context");
            handles.push(handle);
            contexts.push(ctx);
        }
        let arrays = read_arrays(&server);
        let admin = handles.pop().expect("admin handle");
        let b = handles.pop().expect("site-b handle");
        let a = handles.pop().expect("site-a handle");
        let admin_ctx = contexts.pop().expect("admin context");
        Self {
            stores,
            site_names,
            a,
            b,
            admin,
            ctx: contexts.swap_remove(0),
            admin_ctx,
            arrays,
            server: Some(server),
        }
    }

    /// The name of the site with id `id` (`<unknown site …>` when no handle has it).
    pub fn site_name(&self, id: &SiteId) -> String {
        self.site_names
            .iter()
            .find(|(i, _)| i == id)
            .map_or_else(|| format!("<unknown site {id}>"), |(_, n)| n.clone())
    }
}

/// A site record as the CLI's cloud backend writes it: named after the cloud entry.
fn site_record(config: &CloudConfig, clock: &dyn Clock) -> Site {
    let name = config.cloud_name().to_owned();
    Site {
        id: SiteId::new(name.clone()),
        name: name.clone(),
        description: String::new(),
        auth_url: config.identity_url().to_string(),
        region_name: config.region_name().map(str::to_owned),
        interface: Some(config.interface().to_string()),
        cloud: Some(name),
        status: SiteStatus::Active,
        credentials: SiteCredentials::default(),
        created_at: clock.now(),
        last_validated_at: None,
    }
}

/// `(url, api_token)` of site-a's and site-b's arrays, from the written arrays.json.
fn read_arrays(server: &SimServer) -> [(String, String); 2] {
    let path = server.arrays_json_path();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let doc: serde_json::Value = serde_json::from_str(&text).expect("arrays.json is JSON");
    let entry = |site: SimSite| {
        let (_, e) = doc
            .as_object()
            .and_then(|m| {
                m.iter()
                    .find(|(_, e)| e["site"].as_str() == Some(site.name()))
            })
            .unwrap_or_else(|| panic!("arrays.json has no array for {}", site.name()));
        let field = |k: &str| {
            e[k].as_str()
                .unwrap_or_else(|| panic!("arrays.json: {k} of {}'s array", site.name()))
                .to_owned()
        };
        (field("url"), field("api_token"))
    };
    [entry(SimSite::A), entry(SimSite::B)]
}

struct Driver<'a> {
    mode: Mode,
    seed: u64,
    world: &'a SimWorld,
    d: &'a Deployment,
}

impl Driver<'_> {
    fn fail(&self, what: &str, e: impl fmt::Display) -> ! {
        panic!(
            "[{}] {what} failed (PROTECTOR_SIM_SEED={}): {e}",
            self.mode, self.seed
        )
    }

    fn mappings(&self, from: SimSite, to: SimSite) -> ResourceMappings {
        let (s, t) = (self.world.site(from), self.world.site(to));
        let mut m = ResourceMappings::default();
        for net in ["tenant-a-web", "tenant-a-db"] {
            m.networks.insert(
                s.network_id(net).expect("network").to_string(),
                t.network_id(net).expect("network").to_string(),
            );
        }
        m
    }

    async fn finish(
        &self,
        what: &str,
        on: &Protector,
        started: Result<Operation, impl fmt::Display>,
    ) {
        let op = started.unwrap_or_else(|e| self.fail(what, e));
        let done = on.wait(&op.id).await.unwrap_or_else(|e| self.fail(what, e));
        if done.status != OperationStatus::Completed {
            self.fail(
                what,
                format!(
                    "operation ended {} ({:?}); steps completed {:?}, failed {:?}",
                    done.status, done.error_message, done.steps_completed, done.steps_failed
                ),
            );
        }
        // The next command comes a moment later: operations are told apart by their
        // creation time, which paused time would otherwise not advance.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    /// Drives the scenario; returns what the management commands answered.
    async fn drive(&self, scenario: &Scenario) -> Vec<String> {
        let d = self.d;
        let mut said = Vec::new();
        for (site, description) in [("site-a", "primary data centre"), ("site-b", "DR site")] {
            let registered = d
                .admin
                .register_site(
                    &d.admin_ctx,
                    &SiteRegistration {
                        name: site.to_owned(),
                        description: description.to_owned(),
                    },
                )
                .await
                .unwrap_or_else(|e| self.fail(&format!("site register {site}"), e));
            said.push(format!(
                "site register {site}: {} {}",
                registered.name, registered.status
            ));
            let report = d
                .admin
                .validate_site(&d.admin_ctx, site)
                .await
                .unwrap_or_else(|e| self.fail(&format!("site validate {site}"), e));
            for c in &report.checks {
                said.push(format!(
                    "site validate {}: {} ok={} {}",
                    report.site, c.check, c.ok, c.detail
                ));
            }
        }
        // The types are named: Cinder shows a tenant `replication_enabled` but not
        // `replication_type` (an admin-only extra spec), so the engine cannot pick
        // the async type by itself over a real Cinder API.
        let volume_type = Some(volume_type(scenario.replication).to_owned());
        let pg =
            d.a.create_protection_group(
                &d.ctx,
                &CreateProtectionGroup {
                    name: PG.into(),
                    description: "production web application".into(),
                    replication_type: scenario.replication,
                    primary_site: None,
                    secondary_site: None,
                    volume_type: volume_type.clone(),
                    secondary_volume_type: volume_type,
                },
            )
            .await
            .unwrap_or_else(|e| self.fail("protection-group create", e));
        said.push(format!(
            "protection-group create: {} {} {} version {}",
            pg.name, pg.status, pg.replication_type, pg.version
        ));
        for server in &self.world.workloads()[0].servers {
            let member =
                d.a.add_member(&d.ctx, PG, server.id.as_str())
                    .await
                    .unwrap_or_else(|e| self.fail(&format!("member add {}", server.name), e));
            said.push(format!(
                "member add {}: {} volumes [{}]",
                server.name,
                member.instance_name,
                member
                    .volumes
                    .iter()
                    .map(|v| v.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let [(url_a, token_a), (url_b, token_b)] = d.arrays.clone();
        d.a.create_policy(
            &d.ctx,
            PG,
            CreatePolicy {
                primary_fa_url: url_a,
                primary_fa_api_token: SecretString::from(token_a),
                secondary_fa_url: url_b,
                secondary_fa_api_token: SecretString::from(token_b),
                pure_pg_name: None,
                rpo_minutes: Some(15),
                replication_interval_seconds: Some(300),
            },
        )
        .await
        .unwrap_or_else(|e| self.fail("policy create", e));
        let status =
            d.a.sync_status(&d.ctx, PG)
                .await
                .unwrap_or_else(|e| self.fail("sync-status", e));
        said.push(format!("sync-status: {}", status.status));
        // The first scheduled replication is minutes away; a test failover needs a
        // replicated snapshot now, so replicate on demand as an operator would.
        self.finish("sync-volumes", &d.a, d.a.sync_volumes(&d.ctx, PG).await)
            .await;
        self.finish(
            "test failover",
            &d.a,
            d.a.test_failover(
                &d.ctx,
                PG,
                TestFailoverRequest {
                    mappings: self.mappings(SimSite::A, SimSite::B),
                },
            )
            .await,
        )
        .await;
        self.finish("test cleanup", &d.a, d.a.test_cleanup(&d.ctx, PG).await)
            .await;
        self.finish(
            "planned failover",
            &d.a,
            d.a.failover(
                &d.ctx,
                PG,
                FailoverRequest {
                    failover_type: FailoverType::Planned,
                    mappings: self.mappings(SimSite::A, SimSite::B),
                    force: false,
                },
            )
            .await,
        )
        .await;
        self.finish(
            "failback",
            &d.b,
            d.b.failback(
                &d.ctx,
                PG,
                FailbackRequest {
                    mappings: self.mappings(SimSite::B, SimSite::A),
                    reverse_replication: scenario.reverse_replication,
                    force: false,
                },
            )
            .await,
        )
        .await;
        said
    }
}
