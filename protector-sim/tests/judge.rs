//! The HTTP simulator judged by the official clients: `scripts/judge/judge.py`
//! drives it with python-openstackclient, openstacksdk and py-pure-client (the venv
//! `scripts/services/judge-start` makes, named by `PROTECTOR_TEST_JUDGE_PYTHON`;
//! when that is unset, the test runs the script once itself and uses what it prints)
//! and compares what they parse with what the world holds in process.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use protector_core::ports::{BlockStorage, Compute, Networking};
use protector_purestorage::array::{PgSnapshotOptions, PgSnapshotQuery, VolumeQuery};
use protector_sim::http::{ServeOptions, SimServer};
use protector_sim::world::{TENANTS, TYPE_ASYNC, TYPE_SYNC};
use protector_sim::{LatencyProfile, SimSite, SimWorld, WorkloadSpec};
use serde_json::{json, Value};
use tokio::sync::OnceCell;

/// How long the whole judge run may take.
const JUDGE_TIMEOUT: Duration = Duration::from_secs(600);
/// The array volume the judge brings under Cinder with `volume create --remote-source`.
const MANAGE_SOURCE: &str = "judge-unmanaged-1";
/// The protection group whose snapshots the judge lists.
const PG: &str = "judge-pg";

static PYTHON: OnceCell<PathBuf> = OnceCell::const_new();

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The judge venv's python: `PROTECTOR_TEST_JUDGE_PYTHON`, else what
/// `scripts/services/judge-start` prints.
async fn judge_python() -> &'static Path {
    PYTHON.get_or_init(discover).await
}

async fn discover() -> PathBuf {
    if let Ok(p) = std::env::var("PROTECTOR_TEST_JUDGE_PYTHON") {
        return PathBuf::from(p);
    }
    let script = repo_root().join("scripts/services/judge-start");
    eprintln!(
        "PROTECTOR_TEST_JUDGE_PYTHON unset: running {}",
        script.display()
    );
    let out = tokio::process::Command::new(&script)
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} failed ({}); run it by hand, `eval \"$(scripts/services/judge-start)\"`, then \
         `cargo test -p protector-sim --test judge`. Its output:\n{}",
        script.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("export PROTECTOR_TEST_JUDGE_PYTHON=")
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| {
            panic!(
                "{} printed no PROTECTOR_TEST_JUDGE_PYTHON",
                script.display()
            )
        })
}

/// A world with data everywhere the judge looks, on site A: three servers of
/// `tenant-a` on async- and sync-replicated volumes (and one of `tenant-b`, which
/// `tenant-a` must not see), a bare array volume to manage, and a protection group
/// with two snapshots.
async fn prepared_world() -> SimWorld {
    let world = SimWorld::builder()
        .seed(0x7d6e)
        .profile(LatencyProfile::zero())
        .build()
        .unwrap();
    let workload = world
        .create_workload(&WorkloadSpec::new(SimSite::A, "tenant-a").servers(2))
        .unwrap();
    world
        .create_workload(
            &WorkloadSpec::new(SimSite::A, "tenant-a")
                .named("tenant-a-db")
                .volume_type(TYPE_SYNC)
                .networks(&["tenant-a-db"])
                .flavor("m1.medium"),
        )
        .unwrap();
    world
        .create_workload(&WorkloadSpec::new(SimSite::A, "tenant-b"))
        .unwrap();
    world
        .create_array_volume(SimSite::A, MANAGE_SOURCE, 3)
        .unwrap();
    let array = world.array(SimSite::A);
    array.create_protection_group(PG).await.unwrap();
    array
        .add_protection_group_volumes(PG, &workload.array_volumes())
        .await
        .unwrap();
    array
        .add_protection_group_targets(PG, &[SimSite::B.array_name().to_owned()])
        .await
        .unwrap();
    for suffix in ["judge-1", "judge-2"] {
        array
            .create_pg_snapshot(
                PG,
                &PgSnapshotOptions {
                    suffix: Some(suffix.to_owned()),
                    replicate_now: false,
                    apply_retention: false,
                },
            )
            .await
            .unwrap();
    }
    world
}

/// What the world holds, read through the in-process ports: the judge compares
/// what the official clients parse with it.
async fn expectations(server: &SimServer) -> Value {
    let world = server.world();
    let site = SimSite::A;
    let info = world.site(site);
    let (project, user) = TENANTS[0];
    let ctx = world.context(site, project, user).unwrap();
    let admin = world.admin_context(site).unwrap();
    let servers = world.compute(site, &ctx).list_servers().await.unwrap();
    let volumes = world
        .block_storage(site, &ctx)
        .list_volumes()
        .await
        .unwrap();
    let networks = world.networking(site, &ctx).list_networks().await.unwrap();
    let flavors = world.compute(site, &ctx).list_flavors().await.unwrap();
    let types = world
        .block_storage(site, &admin)
        .list_volume_types()
        .await
        .unwrap();
    let array = world.array(site);
    let array_volumes = array.list_volumes(&VolumeQuery::default()).await.unwrap();
    let groups = array.list_protection_groups(&[]).await.unwrap();
    let snapshots = array
        .list_pg_snapshots(&PgSnapshotQuery::default())
        .await
        .unwrap();
    let arrays: Value =
        serde_json::from_str(&std::fs::read_to_string(server.arrays_json_path()).unwrap()).unwrap();
    json!({
        "tenant_cloud": site.name(),
        "admin_cloud": format!("{}-admin", site.name()),
        "region": info.region_name,
        "project_id": ctx.project_id.as_str(),
        "user_id": ctx.user_id.as_str(),
        "servers": servers.iter().map(|s| json!({
            "id": s.id.as_str(), "name": s.name, "status": s.status.as_str(),
            "volumes": s.volumes_attached.iter().map(|v| v.as_str()).collect::<Vec<_>>(),
            "networks": s.addresses.iter().map(|a| a.network_name.clone()).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "volumes": volumes.iter().map(|v| json!({
            "id": v.id.as_str(), "name": v.name, "size": v.size_gb,
            "status": v.status.as_str(), "type": v.volume_type, "bootable": v.bootable,
        })).collect::<Vec<_>>(),
        "networks": networks.iter().map(|n| json!({
            "id": n.id.as_str(), "name": n.name, "status": n.status, "shared": n.shared,
            "subnets": n.subnets,
        })).collect::<Vec<_>>(),
        "flavors": flavors.iter().map(|f| json!({
            "id": f.id.as_str(), "name": f.name, "vcpus": f.vcpus, "ram": f.ram_mb,
            "disk": f.disk_gb,
        })).collect::<Vec<_>>(),
        "volume_types": types.iter().map(|t| json!({
            "id": t.id.as_str(), "name": t.name, "properties": t.extra_specs,
        })).collect::<Vec<_>>(),
        "replicated_type": TYPE_ASYNC,
        "manage": {
            "source_name": MANAGE_SOURCE, "host": info.volume_host, "size": 3,
            "type": TYPE_ASYNC,
        },
        "array": {
            "name": info.array_name,
            "url": arrays[&info.array_name]["url"],
            "api_token_from": server.arrays_json_path().display().to_string(),
            "volumes": array_volumes.iter().map(|v| json!({
                "name": v.name, "provisioned": v.provisioned, "destroyed": v.destroyed,
            })).collect::<Vec<_>>(),
            "protection_groups": groups.iter().map(|g| json!({
                "name": g.name, "volume_count": g.volume_count, "target_count": g.target_count,
            })).collect::<Vec<_>>(),
            "pg_snapshots": snapshots.iter().map(|p| json!({
                "name": p.name, "source": p.source.name, "suffix": p.suffix,
            })).collect::<Vec<_>>(),
        },
    })
}

/// A world served with HTTPS arrays, as the judge needs it.
async fn serve() -> (SimServer, tempfile::TempDir) {
    let world = prepared_world().await;
    let dir = tempfile::tempdir().unwrap();
    let server = SimServer::start_with(world, dir.path(), ServeOptions::default().array_tls(true))
        .await
        .unwrap();
    (server, dir)
}

/// What a judge run left: its exit status and its output.
struct Verdict {
    status: std::process::ExitStatus,
    stdout: String,
    stderr: String,
}

impl Verdict {
    fn text(&self) -> String {
        format!(
            "--- judge stdout\n{}--- judge stderr\n{}",
            self.stdout, self.stderr
        )
    }
}

/// Runs the judge with `clouds` (a clouds.yaml) on the served world, comparing with
/// `expect`; `only` limits it to some sections.
async fn run_judge(
    server: &SimServer,
    dir: &Path,
    clouds: &Path,
    expect: &Value,
    only: &[&str],
) -> Verdict {
    let python = judge_python().await;
    let expect_path = dir.join("expect.json");
    std::fs::write(&expect_path, serde_json::to_string_pretty(expect).unwrap()).unwrap();
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let mut cmd = tokio::process::Command::new(python);
    cmd.arg(repo_root().join("scripts/judge/judge.py"))
        .arg("--clouds")
        .arg(clouds)
        .arg("--arrays")
        .arg(server.arrays_json_path())
        .arg("--expect")
        .arg(&expect_path);
    for section in only {
        cmd.arg("--only").arg(section);
    }
    // Only the given clouds.yaml counts: no OS_* from the caller, no ~/.config.
    for (k, _) in std::env::vars() {
        if k.starts_with("OS_") || k.starts_with("PYTHON") {
            cmd.env_remove(k);
        }
    }
    cmd.env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_CACHE_HOME", home.join(".cache"))
        .env("OS_CLIENT_CONFIG_FILE", clouds)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(JUDGE_TIMEOUT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("the judge did not finish within {JUDGE_TIMEOUT:?}"))
        .expect("the judge's python could not be started");
    Verdict {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_clients_parse_every_answer_of_the_http_simulator() {
    let (server, dir) = serve().await;
    assert!(server.array_url(SimSite::A).starts_with("https://"));
    let expect = expectations(&server).await;
    let verdict = run_judge(
        &server,
        dir.path(),
        &server.clouds_yaml_path(),
        &expect,
        &[],
    )
    .await;
    server.stop().await;
    assert!(
        verdict.status.success(),
        "the judge failed ({}):\n{}",
        verdict.status,
        verdict.text()
    );
    eprintln!("{}", verdict.text());
}

/// Rewrites one parsed JSON answer of the tampering proxy, given its path.
type Rewrite = fn(&str, &mut Value);

struct Tamper {
    upstream: String,
    base: String,
    rewrite: Rewrite,
    client: reqwest::Client,
}

/// Forwards one request to the upstream service and tampers with the answer.
async fn forward(
    axum::extract::State(t): axum::extract::State<std::sync::Arc<Tamper>>,
    request: axum::extract::Request,
) -> axum::response::Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let path = parts.uri.path().to_owned();
    let target = format!(
        "{}{}",
        t.upstream,
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let mut upstream = t.client.request(parts.method, target).body(body);
    for (k, v) in &parts.headers {
        if k != "host" && k != "content-length" {
            upstream = upstream.header(k, v);
        }
    }
    let answer = upstream.send().await.unwrap();
    let status = answer.status();
    let headers = answer.headers().clone();
    // Links must lead back through the proxy.
    let text = answer.text().await.unwrap().replace(&t.upstream, &t.base);
    let body = match serde_json::from_str::<Value>(&text) {
        Ok(mut v) => {
            (t.rewrite)(&path, &mut v);
            v.to_string()
        }
        Err(_) => text,
    };
    let mut out = axum::response::Response::builder().status(status);
    for (k, v) in &headers {
        if k != "content-length" && k != "transfer-encoding" {
            out = out.header(k, v);
        }
    }
    out.body(axum::body::Body::from(body)).unwrap()
}

/// Serves `upstream` (a service root) through a proxy that applies `rewrite` to
/// every JSON answer; returns the proxy's root URL.
async fn tampering_proxy(upstream: &str, rewrite: Rewrite) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let state = std::sync::Arc::new(Tamper {
        upstream: upstream.to_owned(),
        base: base.clone(),
        rewrite,
        client: reqwest::Client::new(),
    });
    let app = axum::Router::new().fallback(forward).with_state(state);
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

/// A copy of the served clouds.yaml whose tenant cloud reaches one service at
/// `endpoint` (`<service>_endpoint_override`).
fn clouds_with_override(server: &SimServer, dir: &Path, service: &str, endpoint: &str) -> PathBuf {
    let written = std::fs::read_to_string(server.clouds_yaml_path()).unwrap();
    let entry = format!("  {}:\n", SimSite::A.name());
    assert!(written.contains(&entry), "{written}");
    let changed = written.replacen(
        &entry,
        &format!("{entry}    {service}_endpoint_override: {endpoint}\n"),
        1,
    );
    let path = dir.join("tampered-clouds.yaml");
    std::fs::write(&path, changed).unwrap();
    path
}

/// A server list whose servers lack their `id` fails the judge, which names the call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_list_without_ids_fails_the_judge() {
    let (server, dir) = serve().await;
    let proxy = tampering_proxy(&server.endpoints(SimSite::A).compute, |path, v| {
        if path.ends_with("/servers/detail") {
            for s in v["servers"].as_array_mut().into_iter().flatten() {
                s.as_object_mut().map(|o| o.remove("id"));
            }
        }
    })
    .await;
    let clouds = clouds_with_override(&server, dir.path(), "compute", &format!("{proxy}/v2.1"));
    let expect = expectations(&server).await;
    let verdict = run_judge(&server, dir.path(), &clouds, &expect, &["servers"]).await;
    server.stop().await;
    assert!(!verdict.status.success(), "{}", verdict.text());
    assert!(
        verdict
            .stderr
            .contains("FAIL openstack --os-cloud site-a server list: ids"),
        "the failure must name the call:\n{}",
        verdict.text()
    );
}

/// A version document the clients cannot use (no links) is only logged by them at
/// INFO, and still fails the judge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_document_the_clients_skip_fails_the_judge() {
    let (server, dir) = serve().await;
    let proxy = tampering_proxy(&server.endpoints(SimSite::A).block_storage, |_, v| {
        for version in v["versions"].as_array_mut().into_iter().flatten() {
            version.as_object_mut().map(|o| o.remove("links"));
        }
    })
    .await;
    let project = server
        .world()
        .site(SimSite::A)
        .project_id(TENANTS[0].0)
        .unwrap();
    let clouds = clouds_with_override(
        &server,
        dir.path(),
        "block_storage",
        &format!("{proxy}/v3/{project}"),
    );
    let expect = expectations(&server).await;
    let verdict = run_judge(&server, dir.path(), &clouds, &expect, &["volumes"]).await;
    server.stop().await;
    assert!(!verdict.status.success(), "{}", verdict.text());
    assert!(
        verdict
            .stderr
            .contains("FAIL openstack --os-cloud site-a volume list")
            && verdict.stderr.contains("invalid version data"),
        "the failure must name the call and the clients' complaint:\n{}",
        verdict.text()
    );
}
