//! `protector sim`: the HTTP simulator of both sites and both arrays
//! ([`protector_sim::http::SimServer`]) as a background process, so every command works
//! with no cloud.
//!
//! # Expected flow
//! `sim up` re-runs this binary as the hidden `sim serve` in its own process group, with
//! its output in `sim.log`, and records the child's pid in `sim.pid`. The child builds a
//! [`SimWorld`] (the `zero` latency profile, a workload of `web-server-N` VMs on site-a),
//! serves it on loopback, writes `clouds.yaml` and `arrays.json`, starts a small control
//! endpoint and then writes `sim.json` (its pid, endpoints and the control URL). `sim up`
//! returns once that file names the child and the control endpoint answers. `sim down`
//! sends SIGTERM, waits for the process to end (SIGKILL after [`STOP_GRACE`]) and removes
//! the pid file; on SIGTERM the child stops every listener and removes `sim.json`.
//!
//! # Guarantees
//! - `sim up` never starts a second simulator in a directory where one runs; `sim down`
//!   succeeds when none runs.
//! - A pid is only signalled after checking it is the simulator of that directory (its
//!   control endpoint reports that pid, or its command line is `sim serve --dir <dir>`),
//!   so a stale pid file never stops an unrelated process that reused the pid.
//! - The DR state of commands run against the simulator lives in `<dir>/state`, emptied
//!   by each `sim up` that starts a new world, so it never describes an older world.
//!
//! # Caveats
//! - Signals go through the system's `kill` command: no `unsafe`, no extra dependency,
//!   and `kill` is on every Unix system. Unix only.
//! - The simulator runs in real time: arrays replicate on their schedule (every
//!   `--replication-interval` seconds), so `consistency-group sync` replicates at once
//!   before a test failover.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use protector_sim::http::SimServer;
use protector_sim::{SimSite, SimWorld};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::backend::default_state_dir;
use crate::cli::{ProfileArg, SimCmd, SimDirArg, SimUpArgs};
use crate::commands::{Outcome, Printer};
use crate::render::{Format, View};

/// The pid file of the background simulator.
pub const PID_FILE: &str = "sim.pid";
/// The state file the running simulator writes once it serves.
pub const STATE_FILE: &str = "sim.json";
/// The simulator's log (its stdout and stderr).
pub const LOG_FILE: &str = "sim.log";
/// The sub-directory holding the DR state of commands run against the simulator.
pub const STATE_SUBDIR: &str = "state";
/// The networks of the simulated workload (both sites have them, by name).
pub const NETWORKS: [&str; 2] = ["tenant-a-web", "tenant-a-db"];
/// The workload's volume type on both sites. A project member sees only the
/// `replication_enabled` extra spec of a type (Cinder hides `replication_type` from
/// non-admins), so a protection group names its types instead of letting the engine
/// pick one.
pub const VOLUME_TYPE: &str = protector_sim::world::TYPE_ASYNC;
/// How long `sim up` waits for the simulator to answer.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `sim down` waits after SIGTERM before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(10);
/// How often `sim up` and `sim down` look again.
const POLL: Duration = Duration::from_millis(50);

/// What the running simulator writes to `sim.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimState {
    /// The serving process.
    pub pid: u32,
    /// The world's seed.
    pub seed: u64,
    /// The control endpoint (`GET /status`, `POST /sites/<site>/down|up`).
    pub control_url: String,
    /// The written clouds.yaml (clouds `site-a`, `site-b`, `site-a-admin`,
    /// `site-b-admin`).
    pub clouds_yaml: PathBuf,
    /// The written arrays.json (array URLs and API tokens).
    pub arrays_json: PathBuf,
    /// Where commands against the simulator keep their DR state.
    pub state_dir: PathBuf,
    /// Endpoints by site name.
    pub sites: BTreeMap<String, SimSiteEndpoints>,
    /// The workload's servers (on site-a, project `tenant-a`).
    pub servers: Vec<String>,
}

/// The endpoints of one simulated site.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimSiteEndpoints {
    /// Keystone, ending in `/v3`.
    pub auth_url: String,
    /// Nova.
    pub compute: String,
    /// Cinder.
    pub block_storage: String,
    /// Neutron.
    pub network: String,
    /// The array's name.
    pub array: String,
    /// The array's REST URL.
    pub array_url: String,
}

/// One array of `arrays.json`.
#[derive(Clone, Deserialize)]
pub struct ArrayAccess {
    /// REST base URL.
    pub url: String,
    /// API token (for `policy-create`).
    pub api_token: String,
    /// The site the array belongs to.
    pub site: String,
}

impl std::fmt::Debug for ArrayAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArrayAccess")
            .field("url", &self.url)
            .field("site", &self.site)
            .finish_non_exhaustive()
    }
}

/// Reads `arrays.json` of a simulator directory, by array name.
///
/// # Errors
/// A missing or malformed file.
pub fn read_arrays(dir: &Path) -> Result<BTreeMap<String, ArrayAccess>, String> {
    let path = dir.join("arrays.json");
    let text =
        fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("cannot parse {}: {e}", path.display()))
}

/// The simulator directory, absolute: `--dir` (or `PROTECTOR_SIM_DIR`), else `sim` in
/// the default state directory. Not under `--state-dir`: `sim up` tells the user to
/// point `PROTECTOR_STATE_DIR` into the simulator directory, and `sim down` must still
/// find it then.
///
/// # Errors
/// The current directory is unreadable.
pub fn sim_dir(arg: &SimDirArg) -> Result<PathBuf, String> {
    let dir = arg
        .dir
        .clone()
        .unwrap_or_else(|| default_state_dir().join("sim"));
    std::path::absolute(&dir).map_err(|e| format!("cannot resolve {}: {e}", dir.display()))
}

/// Builds the simulated world `sim up` serves: the `zero` profile and a workload of
/// `servers` VMs (`web-server-N`, a boot and a data volume each, on [`NETWORKS`]) of
/// `tenant-a` on site-a. Call it inside a tokio runtime running in real time.
///
/// # Errors
/// The simulator refused to build.
pub fn world(seed: u64, servers: usize) -> Result<SimWorld, String> {
    Ok(crate::demo::sim_backend(seed, ProfileArg::Zero, servers)?.world)
}

/// Runs a `sim` command.
///
/// # Errors
/// A one-line message.
pub async fn execute(cmd: SimCmd, p: &mut Printer<'_>) -> Result<Outcome, String> {
    match cmd {
        SimCmd::Up(args) => up(&args, &sim_dir(&args.dir)?, p).await,
        SimCmd::Down(dir) => down(&sim_dir(&dir)?, p).await,
        SimCmd::Status(dir) => status(&sim_dir(&dir)?, p).await,
        SimCmd::SiteDown { site, dir } => set_site(&sim_dir(&dir)?, &site, false, p).await,
        SimCmd::SiteUp { site, dir } => set_site(&sim_dir(&dir)?, &site, true, p).await,
        SimCmd::Serve(args) => serve(&args, &sim_dir(&args.dir)?).await,
    }
}

// ---- the background process ------------------------------------------------------------

fn read_pid(dir: &Path) -> Option<u32> {
    fs::read_to_string(dir.join(PID_FILE))
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

fn read_state(dir: &Path) -> Option<SimState> {
    fs::read_to_string(dir.join(STATE_FILE))
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
}

fn write_atomically(path: &Path, text: &str) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, text)
        .and_then(|()| fs::rename(&tmp, path))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn remove(path: &Path) {
    // Already gone is the goal.
    let _ = fs::remove_file(path);
}

/// Whether `pid` is a live process (a zombie counts as ended).
fn alive(pid: u32) -> bool {
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    if Path::new("/proc/self").exists() {
        return match fs::read_to_string(proc_dir.join("stat")) {
            // The state follows the parenthesised command name.
            Ok(stat) => stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .is_some_and(|state| state != "Z" && state != "X"),
            Err(_) => false,
        };
    }
    kill(pid, "0").unwrap_or(false)
}

/// Sends `signal` (a name, or `0` to probe) to `pid` with the system's `kill`; whether
/// it was delivered.
///
/// # Errors
/// `kill` could not be run.
fn kill(pid: u32, signal: &str) -> Result<bool, String> {
    let pid = pid.to_string();
    let mut cmd = std::process::Command::new("kill");
    if signal == "0" {
        cmd.args(["-0", &pid]);
    } else {
        cmd.args(["-s", signal, &pid]);
    }
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .map_err(|e| format!("cannot run kill: {e}"))
}

/// The command line of `pid`, when the system shows it.
fn cmdline(pid: u32) -> Option<Vec<String>> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect(),
    )
}

fn http() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))
}

/// The control endpoint's answer, when it answers.
async fn control_status(state: &SimState) -> Option<Value> {
    let resp = http()
        .ok()?
        .get(format!("{}/status", state.control_url))
        .send()
        .await
        .ok()?;
    if !resp.status().is_success() {
        return None;
    }
    resp.json().await.ok()
}

/// The simulator of `dir` as it runs: its pid, its state file when written, and the
/// control endpoint's answer when it gives one.
struct Running {
    pid: u32,
    state: Option<SimState>,
    live: Option<Value>,
}

/// The simulator serving `dir`, if one runs. A pid that is not (or no longer) the
/// simulator of `dir` is not a running simulator.
async fn running(dir: &Path) -> Option<Running> {
    let pid = read_pid(dir)?;
    if !alive(pid) {
        return None;
    }
    let state = read_state(dir).filter(|s| s.pid == pid);
    let live = match &state {
        Some(s) => control_status(s).await,
        None => None,
    };
    let answers_as_pid = live
        .as_ref()
        .and_then(|v| v["pid"].as_u64())
        .is_some_and(|p| p == u64::from(pid));
    let serves_dir = cmdline(pid).is_some_and(|args| {
        args.iter().any(|a| a == "serve") && args.iter().any(|a| Path::new(a) == dir)
    });
    (answers_as_pid || serves_dir).then_some(Running { pid, state, live })
}

/// `sim status` as a record.
fn status_view(dir: &Path, run: Option<&Running>) -> View {
    let mut fields: Vec<(String, Value)> = vec![(
        "status".into(),
        json!(match run {
            Some(r) if r.live.is_some() => "running",
            Some(_) => "not answering",
            None => "not running",
        }),
    )];
    fields.push(("dir".into(), json!(dir.display().to_string())));
    if let Some(r) = run {
        fields.push(("pid".into(), json!(r.pid)));
        if let Some(s) = &r.state {
            fields.push(("seed".into(), json!(s.seed)));
            fields.push((
                "clouds_yaml".into(),
                json!(s.clouds_yaml.display().to_string()),
            ));
            fields.push((
                "arrays_json".into(),
                json!(s.arrays_json.display().to_string()),
            ));
            fields.push(("state_dir".into(), json!(s.state_dir.display().to_string())));
            for (name, e) in &s.sites {
                let up = r
                    .live
                    .as_ref()
                    .and_then(|v| v["sites"][name].as_str())
                    .unwrap_or("unknown");
                fields.push((name.clone(), json!(up)));
                fields.push((format!("{name} keystone"), json!(e.auth_url)));
                fields.push((format!("{name} nova"), json!(e.compute)));
                fields.push((format!("{name} cinder"), json!(e.block_storage)));
                fields.push((format!("{name} neutron"), json!(e.network)));
                fields.push((format!("{name} {}", e.array), json!(e.array_url)));
            }
            fields.push(("servers".into(), json!(s.servers)));
        }
    }
    View::Record { fields, note: None }
}

async fn status(dir: &Path, p: &mut Printer<'_>) -> Result<Outcome, String> {
    let run = running(dir).await;
    let ok = run.as_ref().is_some_and(|r| r.live.is_some());
    p.show(status_view(dir, run.as_ref()))?;
    Ok(if ok {
        Outcome::Success
    } else {
        Outcome::Failed
    })
}

/// What to type next, with the array tokens `policy-create` needs.
fn instructions(dir: &Path, state: &SimState) -> Result<String, String> {
    let arrays = read_arrays(dir)?;
    let array = |site: SimSite| {
        arrays
            .get(site.array_name())
            .ok_or_else(|| format!("arrays.json lacks {}", site.array_name()))
    };
    let (a, b) = (array(SimSite::A)?, array(SimSite::B)?);
    let maps = NETWORKS
        .iter()
        .map(|n| format!("--network-mapping {n}={n}"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut members = String::new();
    for s in &state.servers {
        members.push_str(&format!(
            "  protector protection-group member-add prod-web-app {s}\n"
        ));
    }
    Ok(format!(
        "Simulated site-a and site-b with their FlashArrays answer on loopback; site-a runs {servers}.\n\
         Point the protector commands at them:\n\
         \n  export OS_CLIENT_CONFIG_FILE={clouds} PROTECTOR_STATE_DIR={state_dir}\n\
         \x20 export OS_CLOUD=site-a OS_SECONDARY_CLOUD=site-b\n\
         \nThen, for example:\n\
         \n  protector --os-cloud site-a-admin --secondary-cloud site-b-admin site register site-a\n\
         \x20 protector --os-cloud site-a-admin --secondary-cloud site-b-admin site register site-b\n\
         \x20 protector protection-group create prod-web-app --volume-type {vt} --secondary-volume-type {vt}\n\
         {members}\
         \x20 protector protection-group policy-create prod-web-app --primary-fa-url {a_url} --primary-fa-token {a_token} --secondary-fa-url {b_url} --secondary-fa-token {b_token}\n\
         \x20 protector consistency-group sync prod-web-app\n\
         \x20 protector protection-group test-failover prod-web-app {maps}\n\
         \x20 protector protection-group test-cleanup prod-web-app\n\
         \x20 protector protection-group failover prod-web-app --type planned {maps}\n\
         \x20 protector --os-cloud site-b --secondary-cloud site-a protection-group failback prod-web-app --reverse-replication {maps}\n\
         \nA disaster: `protector sim site-down site-a{dir_flag}`, then an unplanned failover from site-b; `protector sim site-up site-a{dir_flag}` restores it.\n\
         Stop the simulator with `protector sim down{dir_flag}`; its log is {log}.",
        servers = state.servers.join(", "),
        vt = VOLUME_TYPE,
        clouds = state.clouds_yaml.display(),
        state_dir = state.state_dir.display(),
        a_url = a.url,
        a_token = a.api_token,
        b_url = b.url,
        b_token = b.api_token,
        log = dir.join(LOG_FILE).display(),
        dir_flag = if sim_dir(&SimDirArg::default()).is_ok_and(|d| d == dir) {
            String::new()
        } else {
            format!(" --dir {}", dir.display())
        },
    ))
}

async fn up(args: &SimUpArgs, dir: &Path, p: &mut Printer<'_>) -> Result<Outcome, String> {
    if let Some(run) = running(dir).await {
        if run.live.is_none() {
            return Err(format!(
                "a simulator (pid {}) holds {} but does not answer: run `protector sim down` first",
                run.pid,
                dir.display()
            ));
        }
        eprintln!(
            "protector: the simulator is already running in {} (pid {})",
            dir.display(),
            run.pid
        );
        p.show(status_view(dir, Some(&run)))?;
        return Ok(Outcome::Success);
    }
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for stale in [PID_FILE, STATE_FILE] {
        remove(&dir.join(stale));
    }
    // A new world: the DR state of the previous one describes nothing that exists.
    let state_dir = dir.join(STATE_SUBDIR);
    if state_dir.exists() {
        fs::remove_dir_all(&state_dir)
            .map_err(|e| format!("cannot empty {}: {e}", state_dir.display()))?;
    }
    let log_path = dir.join(LOG_FILE);
    let log = fs::File::create(&log_path)
        .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
    let err_log = log
        .try_clone()
        .map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
    let exe = std::env::current_exe()
        .map_err(|e| format!("cannot find the protector executable: {e}"))?;
    let mut command = std::process::Command::new(exe);
    command
        .args(["sim", "serve", "--seed"])
        .arg(args.seed.to_string())
        .arg("--servers")
        .arg(args.servers.to_string())
        .arg("--dir")
        .arg(dir)
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(err_log);
    // Its own process group: a Ctrl-C meant for the shell's next command does not
    // reach it.
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start the simulator: {e}"))?;
    let pid = child.id();
    write_atomically(&dir.join(PID_FILE), &format!("{pid}\n"))?;
    let ready = tokio::time::timeout(START_TIMEOUT, async {
        loop {
            if let Ok(Some(exit)) = child.try_wait() {
                return Err(format!(
                    "the simulator exited at start ({exit}): {}",
                    last_line(&log_path)
                ));
            }
            if let Some(run) = running(dir).await {
                if run.live.is_some() && run.state.is_some() {
                    return Ok(run);
                }
            }
            tokio::time::sleep(POLL).await;
        }
    })
    .await;
    let run = match ready {
        Ok(Ok(run)) => run,
        Ok(Err(e)) => {
            remove(&dir.join(PID_FILE));
            return Err(e);
        }
        Err(_) => {
            // Best effort: the error below is what the user needs.
            let _ = stop(pid).await;
            let _ = child.try_wait();
            remove(&dir.join(PID_FILE));
            return Err(format!(
                "the simulator did not answer within {}s (see {})",
                START_TIMEOUT.as_secs(),
                log_path.display()
            ));
        }
    };
    let mut view = status_view(dir, Some(&run));
    if p.global.format == Format::Table {
        if let Some(state) = &run.state {
            view = view.with_note(instructions(dir, state)?);
        }
    }
    p.show(view)?;
    Ok(Outcome::Success)
}

fn last_line(path: &Path) -> String {
    fs::read_to_string(path)
        .ok()
        .and_then(|t| {
            t.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| format!("see {}", path.display()))
}

/// SIGTERM, then SIGKILL after [`STOP_GRACE`]; whether the process has ended.
///
/// # Errors
/// A signal could not be sent.
async fn stop(pid: u32) -> Result<bool, String> {
    let ended = |grace: Duration| async move {
        tokio::time::timeout(grace, async {
            while alive(pid) {
                tokio::time::sleep(POLL).await;
            }
        })
        .await
        .is_ok()
    };
    kill(pid, "TERM")?;
    if ended(STOP_GRACE).await {
        return Ok(true);
    }
    kill(pid, "KILL")?;
    Ok(ended(STOP_GRACE).await)
}

async fn down(dir: &Path, p: &mut Printer<'_>) -> Result<Outcome, String> {
    let Some(run) = running(dir).await else {
        let stale = dir.join(PID_FILE).exists();
        for f in [PID_FILE, STATE_FILE] {
            remove(&dir.join(f));
        }
        p.write(&format!(
            "The simulator is not running in {}{}.\n",
            dir.display(),
            if stale {
                " (removed a stale pid file)"
            } else {
                ""
            }
        ))?;
        return Ok(Outcome::Success);
    };
    if !stop(run.pid).await? {
        return Err(format!("the simulator (pid {}) did not stop", run.pid));
    }
    for f in [PID_FILE, STATE_FILE] {
        remove(&dir.join(f));
    }
    p.write(&format!(
        "Stopped the simulator in {} (pid {}).\n",
        dir.display(),
        run.pid
    ))?;
    Ok(Outcome::Success)
}

async fn set_site(
    dir: &Path,
    site: &str,
    up: bool,
    p: &mut Printer<'_>,
) -> Result<Outcome, String> {
    let run = running(dir)
        .await
        .filter(|r| r.live.is_some())
        .ok_or_else(|| {
            format!(
                "the simulator is not running in {}: start it with `protector sim up`",
                dir.display()
            )
        })?;
    let state = run
        .state
        .as_ref()
        .ok_or_else(|| format!("the simulator in {} wrote no state", dir.display()))?;
    let resp = http()?
        .post(format!(
            "{}/sites/{site}/{}",
            state.control_url,
            if up { "up" } else { "down" }
        ))
        .send()
        .await
        .map_err(|e| format!("the simulator's control endpoint did not answer: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!(
            "the simulator refused to change {site}: HTTP {}",
            resp.status()
        ));
    }
    let live = resp.json::<Value>().await.ok();
    let run = Running { live, ..run };
    p.show(status_view(dir, Some(&run)))?;
    Ok(Outcome::Success)
}

// ---- `sim serve` -------------------------------------------------------------------------

struct Control {
    world: SimWorld,
    pid: u32,
    seed: u64,
}

impl Control {
    fn status(&self) -> Value {
        let sites: serde_json::Map<String, Value> = SimSite::BOTH
            .into_iter()
            .map(|s| {
                (
                    s.name().to_owned(),
                    json!(if self.world.is_site_down(s) {
                        "down"
                    } else {
                        "up"
                    }),
                )
            })
            .collect();
        json!({"pid": self.pid, "seed": self.seed, "sites": sites})
    }
}

async fn control_get(State(c): State<Arc<Control>>) -> Json<Value> {
    Json(c.status())
}

async fn control_site(
    State(c): State<Arc<Control>>,
    UrlPath((site, action)): UrlPath<(String, String)>,
) -> Result<Json<Value>, (StatusCode, String)> {
    let s: SimSite = site.parse().map_err(|e| (StatusCode::NOT_FOUND, e))?;
    match action.as_str() {
        "down" => c.world.take_site_down(s),
        "up" => c.world.bring_site_up(s),
        other => return Err((StatusCode::NOT_FOUND, format!("unknown action {other}"))),
    }
    println!("protector sim: {} is {action}", s.name());
    Ok(Json(c.status()))
}

/// Serves the simulator until SIGTERM or SIGINT.
async fn serve(args: &SimUpArgs, dir: &Path) -> Result<Outcome, String> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term =
        signal(SignalKind::terminate()).map_err(|e| format!("cannot handle SIGTERM: {e}"))?;
    let mut int =
        signal(SignalKind::interrupt()).map_err(|e| format!("cannot handle SIGINT: {e}"))?;
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let world = world(args.seed, usize::from(args.servers))?;
    let servers: Vec<String> = world
        .workloads()
        .iter()
        .flat_map(|w| w.servers.iter().map(|s| s.name.clone()))
        .collect();
    let server = SimServer::start(world.clone(), dir)
        .await
        .map_err(|e| format!("cannot serve the simulator: {e}"))?;
    let pid = std::process::id();
    let control = Arc::new(Control {
        world: world.clone(),
        pid,
        seed: args.seed,
    });
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(|e| format!("cannot bind the control endpoint: {e}"))?;
    let control_url = format!(
        "http://{}",
        listener
            .local_addr()
            .map_err(|e| format!("cannot read the control address: {e}"))?
    );
    let router = Router::new()
        .route("/status", get(control_get))
        .route("/sites/{site}/{action}", post(control_site))
        .with_state(control);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let control_task = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = stop_rx.await;
            })
            .await
    });
    let sites = SimSite::BOTH
        .into_iter()
        .map(|s| {
            let e = server.endpoints(s);
            (
                s.name().to_owned(),
                SimSiteEndpoints {
                    auth_url: e.auth_url.clone(),
                    compute: e.compute.clone(),
                    block_storage: e.block_storage.clone(),
                    network: e.network.clone(),
                    array: s.array_name().to_owned(),
                    array_url: server.array_url(s).to_owned(),
                },
            )
        })
        .collect();
    let state = SimState {
        pid,
        seed: args.seed,
        control_url,
        clouds_yaml: server.clouds_yaml_path(),
        arrays_json: server.arrays_json_path(),
        state_dir: dir.join(STATE_SUBDIR),
        sites,
        servers,
    };
    let text = serde_json::to_string_pretty(&state)
        .map_err(|e| format!("cannot encode the simulator state: {e}"))?;
    write_atomically(&dir.join(STATE_FILE), &text)?;
    println!(
        "protector sim: serving seed {} in {} (pid {pid}, control {})",
        args.seed,
        dir.display(),
        state.control_url
    );
    let _ = std::io::stdout().flush();
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    println!("protector sim: stopping");
    let _ = stop_tx.send(());
    server.stop().await;
    if let Ok(Err(e)) = control_task.await {
        println!("protector sim: the control endpoint stopped with an error: {e}");
    }
    remove(&dir.join(STATE_FILE));
    if read_pid(dir) == Some(pid) {
        remove(&dir.join(PID_FILE));
    }
    println!("protector sim: stopped");
    Ok(Outcome::Success)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn run(args: &[&str]) -> (Result<Outcome, String>, String) {
        let mut argv = vec!["protector", "sim"];
        argv.extend(args);
        let cli = crate::cli::Cli::try_parse_from(argv).unwrap();
        let crate::cli::Command::Sim(cmd) = cli.command else {
            panic!("not a sim command");
        };
        let mut buf = Vec::new();
        let r = {
            let mut p = Printer {
                out: &mut buf,
                global: &cli.global,
                progress: false,
            };
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(execute(cmd, &mut p))
        };
        (r, String::from_utf8(buf).unwrap())
    }

    #[test]
    fn status_of_an_empty_directory_is_not_running_and_exits_1() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        let (r, out) = run(&["status", "--dir", d, "-f", "json"]);
        assert_eq!(r, Ok(Outcome::Failed));
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["status"], "not running");
        let (r, out) = run(&["down", "--dir", d]);
        assert_eq!(r, Ok(Outcome::Success));
        assert!(out.contains("not running"), "{out}");
    }

    #[test]
    fn a_pid_file_naming_another_process_is_stale_and_that_process_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        // This test's own process: alive, but not the simulator of `dir`.
        fs::write(
            dir.path().join(PID_FILE),
            format!("{}\n", std::process::id()),
        )
        .unwrap();
        let (r, _) = run(&["status", "--dir", d]);
        assert_eq!(r, Ok(Outcome::Failed));
        let (r, out) = run(&["down", "--dir", d]);
        assert_eq!(r, Ok(Outcome::Success));
        assert!(out.contains("removed a stale pid file"), "{out}");
        assert!(!dir.path().join(PID_FILE).exists());
        assert!(alive(std::process::id()));
    }

    #[test]
    fn site_changes_need_a_running_simulator() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        let (r, out) = run(&["site-down", "site-a", "--dir", d]);
        let e = r.unwrap_err();
        assert!(e.contains("sim up"), "{e}");
        assert!(out.is_empty());
    }

    #[test]
    fn an_unknown_site_is_a_usage_error() {
        let e = crate::cli::Cli::try_parse_from(["protector", "sim", "site-down", "site-c"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown site 'site-c'"), "{e}");
    }

    #[test]
    fn array_tokens_stay_out_of_debug_output() {
        let a = ArrayAccess {
            url: "http://127.0.0.1:1".into(),
            api_token: "secret-token".into(),
            site: "site-a".into(),
        };
        assert!(!format!("{a:?}").contains("secret-token"));
    }
}
