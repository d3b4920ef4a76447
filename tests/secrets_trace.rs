//! No password or API token reaches a log line, a `Debug`/`Display` rendering or an
//! error: a full failover on the simulator runs under a TRACE subscriber capturing
//! everything, and every config, site, policy and error along the way is rendered.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use protector::core::engine::{CreatePolicy, CreateProtectionGroup, EngineConfig, FailoverRequest};
use protector::core::model::{FailoverType, ReplicationType, ResourceMappings};
use protector::core::secrecy::SecretString;
use protector::openstack::{CloudConfig, ConfigLoader};
use protector::sim::{DrStores, SimSite, SimWorld, WorkloadSpec};

const SITE_PASSWORD: &str = "pw-Zq7wSITEPASSWORDxK2";
const APP_SECRET: &str = "appcred-Vb3nAPPSECRETmR8";
const CLOUD_PASSWORD: &str = "pw-Hd5tCLOUDPASSWORDeJ1";
const WRONG_TOKEN: &str = "tok-Lp9cWRONGARRAYTOKENuF4";

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

fn mappings(world: &SimWorld, from: SimSite, to: SimSite) -> ResourceMappings {
    let mut m = ResourceMappings::default();
    for net in ["tenant-a-web", "tenant-a-db"] {
        m.networks.insert(
            world.site(from).network_id(net).expect("net").to_string(),
            world.site(to).network_id(net).expect("net").to_string(),
        );
    }
    m
}

#[tokio::test(start_paused = true)]
async fn a_traced_failover_never_renders_a_password_or_api_token() {
    let seed = protector::sim::seed_from_env(4242);
    eprintln!("PROTECTOR_SIM_SEED={seed}");
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let mut rendered = Vec::<String>::new();
    let mut render = |label: &str, dbg: String, disp: Option<String>| {
        rendered.push(format!("{label}: {dbg}"));
        if let Some(d) = disp {
            rendered.push(format!("{label}: {d}"));
        }
    };

    let world = SimWorld::builder().seed(seed).build().expect("world");
    let stores = DrStores::memory();
    let config = EngineConfig::builder()
        .replication_timeout(Duration::from_secs(600))
        .build()
        .expect("config");
    render("engine config", format!("{config:?}"), None);
    let mut handles = Vec::new();
    for local in SimSite::BOTH {
        let mut rt_local = world.site_runtime(local, &stores);
        let mut rt_peer = world.site_runtime(local.peer(), &stores);
        for rt in [&mut rt_local, &mut rt_peer] {
            rt.site.credentials.username = Some("dr-admin".into());
            rt.site.credentials.password = Some(SecretString::from(SITE_PASSWORD));
            rt.site.credentials.application_credential_secret =
                Some(SecretString::from(APP_SECRET));
            render(
                "site",
                format!("{:?}", rt.site),
                Some(format!("{:?}", rt.site.credentials)),
            );
        }
        let p = world
            .protector_builder(local, &stores)
            .await
            .expect("builder")
            .local(rt_local)
            .peer(rt_peer)
            .config(config.clone())
            .build()
            .await
            .expect("protector");
        handles.push(p);
    }
    let (a, b) = (&handles[0], &handles[1]);
    let ctx = world.tenant_context(SimSite::A, "tenant-a").expect("ctx");
    render("context", format!("{ctx:?}"), None);
    let workload = world
        .create_workload(
            &WorkloadSpec::new(SimSite::A, "tenant-a")
                .servers(2)
                .networks(&["tenant-a-web", "tenant-a-db"]),
        )
        .expect("workload");
    let pg = a
        .create_protection_group(
            &ctx,
            &CreateProtectionGroup {
                name: "secrets-app".into(),
                description: String::new(),
                replication_type: ReplicationType::Async,
                primary_site: None,
                secondary_site: None,
                volume_type: None,
                secondary_volume_type: None,
            },
        )
        .await
        .expect("pg");
    let (ia, ib) = (world.site(SimSite::A), world.site(SimSite::B));
    let array_tokens = [ia.array_token.clone(), ib.array_token.clone()];
    let policy = CreatePolicy {
        primary_fa_url: ia.array_url.clone(),
        primary_fa_api_token: SecretString::from(ia.array_token.clone()),
        secondary_fa_url: ib.array_url.clone(),
        secondary_fa_api_token: SecretString::from(ib.array_token.clone()),
        pure_pg_name: None,
        rpo_minutes: Some(15),
        replication_interval_seconds: Some(300),
    };
    render("create policy", format!("{policy:?}"), None);
    // A policy with a wrong token is refused; its error must not echo the token.
    let mut wrong = policy.clone();
    wrong.secondary_fa_api_token = SecretString::from(WRONG_TOKEN);
    if let Err(e) = a.create_policy(&ctx, "secrets-app", wrong).await {
        render("wrong-token error", format!("{e:?}"), Some(e.to_string()));
    }
    a.create_policy(&ctx, "secrets-app", policy)
        .await
        .expect("policy");
    let shown = a.show_policy(&ctx, "secrets-app").await.expect("show");
    render("policy", format!("{shown:?}"), None);
    for s in &workload.servers {
        a.add_member(&ctx, "secrets-app", s.id.as_str())
            .await
            .expect("member");
    }
    tokio::time::sleep(Duration::from_secs(400)).await;
    let op = a
        .failover(
            &ctx,
            "secrets-app",
            FailoverRequest {
                failover_type: FailoverType::Planned,
                mappings: mappings(&world, SimSite::A, SimSite::B),
                force: false,
            },
        )
        .await
        .expect("failover");
    let done = a.wait(&op.id).await.expect("record");
    render("operation", format!("{done:?}"), None);
    for e in a.operation_journal(&ctx, &op.id).await.expect("journal") {
        render("journal", format!("{e:?}"), None);
    }
    let after = b
        .get_protection_group(&ctx, "secrets-app")
        .await
        .expect("pg");
    render("group", format!("{pg:?}"), None);
    render("group after", format!("{after:?}"), None);
    for site in a.list_sites(&ctx).await.unwrap_or_default() {
        render("listed site", format!("{site:?}"), None);
    }
    // Errors of a refused operation and of unknown names.
    if let Err(e) = a
        .failover(
            &ctx,
            "secrets-app",
            FailoverRequest {
                failover_type: FailoverType::Planned,
                mappings: ResourceMappings::default(),
                force: false,
            },
        )
        .await
    {
        render("refusal", format!("{e:?}"), Some(e.to_string()));
    }
    // OpenStack configurations holding a password, and the loader's errors.
    let cloud = CloudConfig::builder()
        .cloud_name("site-a")
        .auth_url("https://keystone.site-a.example:5000/v3")
        .username("admin")
        .password(CLOUD_PASSWORD)
        .project_name("admin")
        .build();
    match cloud {
        Ok(c) => render("cloud config", format!("{c:?}"), None),
        Err(e) => render("cloud config error", format!("{e:?}"), Some(e.to_string())),
    }
    let loader = ConfigLoader::new([("OS_PASSWORD", CLOUD_PASSWORD), ("HOME", "/nonexistent")])
        .with_search_dirs(Vec::new());
    render("loader", format!("{loader:?}"), None);
    match loader.load(Some("site-z")) {
        Ok(c) => render("loaded", format!("{c:?}"), None),
        Err(e) => render("loader error", format!("{e:?}"), Some(e.to_string())),
    }

    let logs = capture.text();
    assert!(
        logs.contains("TRACE") || logs.contains("DEBUG") || logs.contains("INFO"),
        "the subscriber captured nothing; the check would be vacuous"
    );
    let mut secrets = vec![
        SITE_PASSWORD.to_string(),
        APP_SECRET.to_string(),
        CLOUD_PASSWORD.to_string(),
        WRONG_TOKEN.to_string(),
    ];
    secrets.extend(array_tokens);
    for secret in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "PROTECTOR_SIM_SEED={seed}: a secret appears in the TRACE log: {}",
            logs.lines()
                .find(|l| l.contains(secret.as_str()))
                .unwrap_or_default()
        );
        for r in &rendered {
            assert!(
                !r.contains(secret.as_str()),
                "PROTECTOR_SIM_SEED={seed}: a secret appears in a rendering: {r}"
            );
        }
    }
}
