//! The real-cloud path of the `protector` binary — clouds.yaml, the real Keystone, Nova,
//! Cinder, Neutron and FlashArray clients, SQLite state — against the simulator served
//! over HTTP, in real time; and `protector sim up|status|down`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use protector_cli::sim::{read_arrays, NETWORKS, VOLUME_TYPE};
use protector_sim::http::SimServer;

const PG: &str = "prod-web-app";

/// The simulator served by this test process; stopped on drop, even when the test fails.
struct Served {
    rt: tokio::runtime::Runtime,
    server: Option<SimServer>,
    dir: tempfile::TempDir,
}

impl Served {
    fn start(seed: u64, servers: usize) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let server = rt.block_on(async {
            let world = protector_cli::sim::world(seed, servers).unwrap();
            SimServer::start(world, dir.path()).await.unwrap()
        });
        Self {
            rt,
            server: Some(server),
            dir,
        }
    }

    fn clouds_yaml(&self) -> PathBuf {
        self.dir.path().join("clouds.yaml")
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            self.rt.block_on(server.stop());
        }
    }
}

/// Runs the binary with a clean environment: `HOME` in a temporary directory and
/// `OS_CLIENT_CONFIG_FILE` naming the simulator's clouds.yaml.
struct Protector {
    home: tempfile::TempDir,
    clouds: PathBuf,
    state: Option<PathBuf>,
}

impl Protector {
    fn new(clouds: PathBuf, state: Option<PathBuf>) -> Self {
        Self {
            home: tempfile::tempdir().unwrap(),
            clouds,
            state,
        }
    }

    /// `--state-dir`: the given one, else `state` in the temporary home.
    fn state_dir(&self) -> PathBuf {
        self.state
            .clone()
            .unwrap_or_else(|| self.home.path().join("state"))
    }

    fn raw(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_protector"));
        cmd.args(args)
            .env_clear()
            .env("HOME", self.home.path())
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("OS_CLIENT_CONFIG_FILE", &self.clouds)
            .current_dir(self.home.path());
        cmd.output().unwrap()
    }

    /// `protector --os-cloud <local> --secondary-cloud <peer> --state-dir … <args>`.
    fn at(&self, local: &str, args: &str) -> Output {
        let peer = if local.starts_with("site-a") {
            local.replace("site-a", "site-b")
        } else {
            local.replace("site-b", "site-a")
        };
        let state = self.state_dir();
        let mut argv = vec![
            "--os-cloud",
            local,
            "--secondary-cloud",
            &peer,
            "--state-dir",
            state.to_str().unwrap(),
        ];
        argv.extend(args.split_whitespace());
        self.raw(&argv)
    }

    /// The same, expecting exit 0; its stdout.
    fn ok(&self, local: &str, args: &str) -> String {
        let o = self.at(local, args);
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(
            o.status.success(),
            "`protector {args}` on {local} exited {:?}\nstdout:\n{out}\nstderr:\n{}",
            o.status.code(),
            String::from_utf8_lossy(&o.stderr)
        );
        out
    }
}

fn field<'a>(out: &'a str, name: &str) -> Option<&'a str> {
    out.lines()
        .find(|l| l.starts_with(&format!("| {name} ")))
        .and_then(|l| l.split('|').nth(2))
        .map(str::trim)
}

fn create() -> String {
    format!(
        "protection-group create {PG} --volume-type {VOLUME_TYPE} --secondary-volume-type {VOLUME_TYPE}"
    )
}

fn mappings() -> String {
    NETWORKS
        .iter()
        .map(|n| format!("--network-mapping {n}={n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn policy_create(arrays_dir: &Path) -> (String, [String; 2]) {
    let arrays = read_arrays(arrays_dir).unwrap();
    let (a, b) = (&arrays["array-a"], &arrays["array-b"]);
    (
        format!(
            "protection-group policy-create {PG} --primary-fa-url {} --primary-fa-token {} --secondary-fa-url {} --secondary-fa-token {} --rpo-minutes 15 --replication-interval 300",
            a.url, a.api_token, b.url, b.api_token
        ),
        [a.api_token.clone(), b.api_token.clone()],
    )
}

/// The operation's final record shows it completed.
fn assert_completed(out: &str, kind: &str) {
    assert_eq!(field(out, "operation_type"), Some(kind), "{out}");
    assert!(
        out.contains("| status              | completed "),
        "{kind} did not complete:\n{out}"
    );
    assert_eq!(field(out, "error_message"), Some("None"), "{out}");
}

#[test]
fn the_dr_cycle_runs_over_clouds_yaml_and_the_real_clients_against_the_http_simulator() {
    let served = Served::start(11, 2);
    let p = Protector::new(served.clouds_yaml(), None);

    // Sites are registered by the admin entries and seen by the tenant's.
    let out = p.ok("site-a-admin", "site register site-a --description primary");
    assert_eq!(field(&out, "name"), Some("site-a"));
    assert_eq!(field(&out, "description"), Some("primary"));
    assert!(field(&out, "auth_url").is_some_and(|u| u.starts_with("http://127.0.0.1:")));
    p.ok("site-a-admin", "site register site-b --description dr");
    let list = p.ok("site-a", "site list");
    assert!(list.contains("| ID ") && list.contains("| site-a ") && list.contains("| site-b "));
    let show = p.ok("site-a", "site show site-a");
    assert_eq!(field(&show, "description"), Some("primary"));
    let refused = p.at("site-a", "site register site-a");
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("protector:sites:create"));

    let out = p.ok("site-a", &create());
    assert_eq!(field(&out, "status"), Some("active"));
    assert_eq!(field(&out, "current_primary_site"), Some("site-a"));
    for s in ["web-server-1", "web-server-2"] {
        let out = p.ok("site-a", &format!("protection-group member-add {PG} {s}"));
        assert_eq!(field(&out, "instance_name"), Some(s));
    }
    let (policy, tokens) = policy_create(served.dir.path());
    let out = p.ok("site-a", &policy);
    assert_eq!(field(&out, "primary_fa_api_token"), Some("******"));
    for t in &tokens {
        assert!(!out.contains(t.as_str()), "a token was printed:\n{out}");
    }

    // The arrays replicate on their schedule in real time: replicate now.
    let out = p.ok("site-a", &format!("consistency-group sync {PG}"));
    assert_completed(&out, "sync_volumes");

    let m = mappings();
    let out = p.ok(
        "site-a",
        &format!("protection-group test-failover {PG} {m}"),
    );
    assert_eq!(field(&out, "source_site"), Some("site-a"));
    assert_eq!(field(&out, "target_site"), Some("site-b"));
    assert_completed(&out, "test_failover");
    let out = p.ok("site-a", &format!("protection-group test-cleanup {PG}"));
    assert_completed(&out, "test_cleanup");

    let out = p.ok(
        "site-a",
        &format!("protection-group failover {PG} --type planned {m}"),
    );
    assert_completed(&out, "failover");
    assert!(!out.contains("WARNING"), "{out}");
    let show = p.ok("site-b", &format!("protection-group show {PG}"));
    assert_eq!(field(&show, "status"), Some("failed_over"));
    assert_eq!(field(&show, "current_primary_site"), Some("site-b"));
    assert_eq!(field(&show, "failover_count"), Some("1"));

    let list = p.ok("site-a", "operation list");
    assert!(list.contains("| PROTECTION_GROUP | TYPE "), "{list}");
    let ops = p.ok(
        "site-a",
        "operation list -f value -c operation_type -c status",
    );
    assert_eq!(
        ops,
        "failover completed\ntest_cleanup completed\ntest_failover completed\nsync_volumes completed\n"
    );
    let id = p.ok("site-a", "operation list -f value -c id");
    let id = id.lines().next().unwrap();
    let show = p.ok("site-a", &format!("operation show {id}"));
    assert_eq!(field(&show, "id"), Some(id));
    assert_eq!(field(&show, "operation_type"), Some("failover"));
    assert_eq!(field(&show, "status"), Some("completed"));
    assert_eq!(field(&show, "progress"), Some("100"));

    let out = p.ok(
        "site-b",
        &format!("protection-group failback {PG} --type planned --reverse-replication {m}"),
    );
    assert_completed(&out, "failback");
    assert_eq!(field(&out, "source_site"), Some("site-b"));
    let show = p.ok("site-a", &format!("protection-group show {PG}"));
    assert_eq!(field(&show, "status"), Some("active"));
    assert_eq!(field(&show, "current_primary_site"), Some("site-a"));
    let status = p.ok("site-a", &format!("protection-group sync-status {PG}"));
    assert!(status.ends_with("Sync Status: IN SYNC\n"), "{status}");
}

/// A simulator started with `protector sim up` in a temporary directory; stopped with
/// `sim down` on drop (and killed if that fails), even when the test fails.
struct Background {
    p: Protector,
    dir: tempfile::TempDir,
}

impl Background {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self {
            p: Protector::new(
                dir.path().join("clouds.yaml"),
                Some(dir.path().join("state")),
            ),
            dir,
        }
    }

    fn dir(&self) -> &str {
        self.dir.path().to_str().unwrap()
    }

    /// `protector sim <action> --dir <dir> <args>`.
    fn sim(&self, action: &str, args: &[&str]) -> Output {
        let mut argv = vec!["sim", action, "--dir", self.dir()];
        argv.extend(args);
        self.p.raw(&argv)
    }

    fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.dir.path().join("sim.pid"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }

    /// Runs a command against the simulator, its state in `<dir>/state`.
    fn ok(&self, local: &str, args: &str) -> String {
        self.p.ok(local, args)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let pid = self.pid();
        let stopped = self.sim("down", &[]).status.success();
        if let (false, Some(pid)) = (stopped, pid) {
            let _ = Command::new("kill")
                .args(["-s", "KILL", &pid.to_string()])
                .status();
        }
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Whether `pid` runs (an ended process its new parent has not reaped yet does not).
fn process_runs(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) if Path::new("/proc/self").exists() => false,
        Err(_) => Command::new("kill")
            .args(["-0", &pid.to_string()])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success()),
    }
}

#[test]
fn sim_up_serves_both_sites_in_the_background_until_sim_down() {
    let sim = Background::new();
    let up = sim.sim("up", &["--seed", "5", "--servers", "2"]);
    let out = stdout(&up);
    assert!(up.status.success(), "sim up failed: {}{out}", stderr(&up));
    assert_eq!(field(&out, "status"), Some("running"), "{out}");
    assert_eq!(field(&out, "site-a"), Some("up"), "{out}");
    assert_eq!(field(&out, "site-b"), Some("up"), "{out}");
    let clouds = sim.dir.path().join("clouds.yaml");
    assert!(
        out.contains(&format!(
            "export OS_CLIENT_CONFIG_FILE={}",
            clouds.display()
        )),
        "{out}"
    );
    let arrays = read_arrays(sim.dir.path()).unwrap();
    assert!(out.contains(&format!("--primary-fa-url {}", arrays["array-a"].url)));
    let pid = sim.pid().expect("a pid file");
    assert_eq!(field(&out, "pid"), Some(pid.to_string().as_str()));

    // A second `sim up` finds it and starts nothing.
    let again = sim.sim("up", &[]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("already running"),
        "{}",
        stderr(&again)
    );
    assert_eq!(
        field(&stdout(&again), "pid"),
        Some(pid.to_string().as_str())
    );
    assert_eq!(sim.pid(), Some(pid));

    let status = sim.sim("status", &[]);
    assert_eq!(status.status.code(), Some(0), "{}", stderr(&status));
    let status = stdout(&status);
    assert_eq!(field(&status, "status"), Some("running"));
    assert_eq!(field(&status, "seed"), Some("5"));
    assert!(field(&status, "site-a keystone").is_some_and(|u| u.ends_with("/v3")));

    // The commands work against it; an unplanned failover with site-a down.
    sim.ok("site-a-admin", "site register site-a");
    sim.ok("site-a-admin", "site register site-b");
    sim.ok("site-a", &create());
    sim.ok(
        "site-a",
        &format!("protection-group member-add {PG} web-server-1"),
    );
    sim.ok("site-a", &policy_create(sim.dir.path()).0);
    sim.ok("site-a", &format!("consistency-group sync {PG}"));
    let down = sim.sim("site-down", &["site-a"]);
    assert!(down.status.success(), "{}", stderr(&down));
    assert_eq!(field(&stdout(&down), "site-a"), Some("down"));
    assert_eq!(field(&stdout(&down), "site-b"), Some("up"));
    let out = sim.ok(
        "site-b",
        &format!(
            "protection-group failover {PG} --type unplanned {}",
            mappings()
        ),
    );
    assert!(
        out.contains("WARNING: Unplanned failover initiated. Source site (site-a) is unreachable.")
    );
    assert_completed(&out, "failover");
    let status = stdout(&sim.sim("status", &[]));
    assert_eq!(field(&status, "site-a"), Some("down"), "{status}");
    assert!(sim.sim("site-up", &["site-a"]).status.success());
    let forced = sim.ok("site-b", &format!("protection-group sync-force {PG}"));
    assert!(forced.contains("Sync Status: IN SYNC"), "{forced}");

    let stop = sim.sim("down", &[]);
    assert!(stop.status.success(), "{}", stderr(&stop));
    assert!(
        stdout(&stop).contains(&format!("pid {pid}")),
        "{}",
        stdout(&stop)
    );
    assert!(!process_runs(pid), "the simulator still runs");
    assert!(sim.pid().is_none(), "the pid file is left");
    let status = sim.sim("status", &[]);
    assert_eq!(status.status.code(), Some(1));
    assert_eq!(field(&stdout(&status), "status"), Some("not running"));
    let again = sim.sim("down", &[]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(stdout(&again).contains("not running"));

    // Commands now fail cleanly; a new world comes with empty DR state.
    let o = sim.p.at("site-a", "protection-group list");
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    assert!(sim.sim("up", &["--seed", "6"]).status.success());
    let list = sim.ok("site-a", "protection-group list -f json");
    assert_eq!(list.trim(), "[]");
}
