//! The command tree (DESIGN §7): `protector <resource> <action>`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::render::Format;

/// Disaster recovery for OpenStack workloads on Pure Storage FlashArray.
#[derive(Debug, Parser)]
#[command(name = "protector", version, about)]
pub struct Cli {
    /// Options shared by every command.
    #[command(flatten)]
    pub global: Global,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Global options.
#[derive(Clone, Debug, Args)]
pub struct Global {
    /// clouds.yaml entry of the site the command targets (the local site). An entry
    /// named `<site>-admin` is the admin entry of `<site>`: same site, same state.
    #[arg(long, env = "OS_CLOUD", global = true)]
    pub os_cloud: Option<String>,
    /// clouds.yaml entry of the peer site.
    #[arg(long, env = "OS_SECONDARY_CLOUD", global = true)]
    pub secondary_cloud: Option<String>,
    /// Output format.
    #[arg(
        short = 'f',
        long = "format",
        value_enum,
        default_value = "table",
        global = true
    )]
    pub format: Format,
    /// Only this column (repeatable).
    #[arg(short = 'c', long = "column", global = true)]
    pub columns: Vec<String>,
    /// Where the per-site state databases live (default: $XDG_STATE_HOME/protector or
    /// ~/.local/state/protector).
    #[arg(long, env = "PROTECTOR_STATE_DIR", global = true)]
    pub state_dir: Option<PathBuf>,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Sites.
    #[command(subcommand)]
    Site(SiteCmd),
    /// Protection groups.
    #[command(subcommand, name = "protection-group")]
    ProtectionGroup(PgCmd),
    /// Consistency groups.
    #[command(subcommand, name = "consistency-group")]
    ConsistencyGroup(CgCmd),
    /// DR operations.
    #[command(subcommand)]
    Operation(OpCmd),
    /// A complete DR walk-through on the in-process simulator (no cloud needed).
    Demo(DemoArgs),
    /// The simulator of both sites and arrays over HTTP, in the background, so every
    /// command above works with no cloud.
    #[command(subcommand)]
    Sim(SimCmd),
}

/// `site …`.
#[derive(Debug, Subcommand)]
pub enum SiteCmd {
    /// Register one of the two configured sites.
    Register {
        /// Site name (the clouds.yaml entry).
        name: String,
        /// Description.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List sites.
    List,
    /// Show a site.
    Show {
        /// Site name or id.
        site: String,
    },
    /// Check a site's services.
    Validate {
        /// Site name or id.
        site: String,
    },
}

/// Replication types of `protection-group create`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ReplicationArg {
    /// Asynchronous (snapshot) replication.
    Async,
    /// Synchronous (ActiveCluster) replication.
    Sync,
}

/// Failover types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FailoverTypeArg {
    /// Graceful, both sites reachable.
    Planned,
    /// Emergency, source site down.
    Unplanned,
}

/// `--network-mapping` / `--flavor-mapping`.
#[derive(Clone, Debug, Default, Args)]
pub struct MappingArgs {
    /// SRC=DST network mapping (repeatable).
    #[arg(long = "network-mapping", value_name = "SRC=DST", value_parser = mapping_arg)]
    pub network: Vec<String>,
    /// SRC=DST flavor mapping (repeatable).
    #[arg(long = "flavor-mapping", value_name = "SRC=DST", value_parser = mapping_arg)]
    pub flavor: Vec<String>,
}

/// Checks one `SRC=DST` argument at parse time, so a malformed one is a usage error
/// naming it.
fn mapping_arg(s: &str) -> Result<String, String> {
    protector_core::model::parse_mapping(s)
        .map(|_| s.to_owned())
        .map_err(|e| e.to_string())
}

/// `protection-group …`.
#[derive(Debug, Subcommand)]
pub enum PgCmd {
    /// Create a protection group.
    Create {
        /// Name.
        name: String,
        /// Replication type.
        #[arg(long, value_enum, default_value = "async")]
        replication_type: ReplicationArg,
        /// Description.
        #[arg(long, default_value = "")]
        description: String,
        /// Primary site (default: the local site).
        #[arg(long)]
        primary_site: Option<String>,
        /// Secondary site (default: the peer).
        #[arg(long)]
        secondary_site: Option<String>,
        /// Volume type on the primary.
        #[arg(long)]
        volume_type: Option<String>,
        /// Volume type on the secondary.
        #[arg(long)]
        secondary_volume_type: Option<String>,
    },
    /// List protection groups.
    List,
    /// Show a protection group.
    Show {
        /// Name or id.
        pg: String,
    },
    /// Delete a protection group.
    Delete {
        /// Name or id.
        pg: String,
    },
    /// Add a server.
    MemberAdd {
        /// Protection group.
        pg: String,
        /// Server name or id.
        server: String,
    },
    /// Remove a server.
    MemberRemove {
        /// Protection group.
        pg: String,
        /// Server name or id.
        server: String,
    },
    /// Create the replication policy.
    PolicyCreate {
        /// Protection group.
        pg: String,
        /// Primary FlashArray URL.
        #[arg(long)]
        primary_fa_url: String,
        /// Primary FlashArray API token.
        #[arg(long, env = "PROTECTOR_PRIMARY_FA_TOKEN", hide_env_values = true)]
        primary_fa_token: String,
        /// Secondary FlashArray URL.
        #[arg(long)]
        secondary_fa_url: String,
        /// Secondary FlashArray API token.
        #[arg(long, env = "PROTECTOR_SECONDARY_FA_TOKEN", hide_env_values = true)]
        secondary_fa_token: String,
        /// RPO in minutes.
        #[arg(long)]
        rpo_minutes: Option<u32>,
        /// Array-side protection group name.
        #[arg(long)]
        pure_pg_name: Option<String>,
        /// Replication interval in seconds.
        #[arg(long)]
        replication_interval: Option<u64>,
    },
    /// Show the replication policy (tokens masked).
    PolicyShow {
        /// Protection group.
        pg: String,
    },
    /// Fail over to the other site.
    Failover {
        /// Protection group.
        pg: String,
        /// Planned or unplanned.
        #[arg(long = "type", value_enum, default_value = "planned")]
        failover_type: FailoverTypeArg,
        /// Mappings.
        #[command(flatten)]
        mappings: MappingArgs,
        /// Bypass pre-flight checks.
        #[arg(long)]
        force: bool,
    },
    /// Fail back to the original primary.
    Failback {
        /// Protection group.
        pg: String,
        /// Only `planned` is supported for failback.
        #[arg(long = "type", value_enum, default_value = "planned")]
        failover_type: FailoverTypeArg,
        /// Mappings.
        #[command(flatten)]
        mappings: MappingArgs,
        /// Restore the original replication direction afterwards.
        #[arg(long)]
        reverse_replication: bool,
        /// Bypass pre-flight checks.
        #[arg(long)]
        force: bool,
    },
    /// Boot clones on the other site, production untouched.
    TestFailover {
        /// Protection group.
        pg: String,
        /// Mappings.
        #[command(flatten)]
        mappings: MappingArgs,
    },
    /// Remove what the test failover created.
    TestCleanup {
        /// Protection group.
        pg: String,
    },
    /// Compare metadata versions of both sites.
    SyncStatus {
        /// Protection group.
        pg: String,
    },
    /// Push the local metadata to the peer.
    SyncForce {
        /// Protection group.
        pg: String,
    },
}

/// `consistency-group …`.
#[derive(Debug, Subcommand)]
pub enum CgCmd {
    /// Reconcile the volumes and replicate now (a `sync_volumes` operation).
    Sync {
        /// Protection group.
        pg: String,
    },
}

/// `operation …`.
#[derive(Debug, Subcommand)]
pub enum OpCmd {
    /// List operations, newest first.
    List {
        /// Only this protection group (id or name).
        #[arg(long)]
        protection_group: Option<String>,
    },
    /// Show an operation.
    Show {
        /// Operation id.
        id: String,
        /// Follow it until it ends.
        #[arg(long)]
        watch: bool,
    },
}

/// `demo`.
#[derive(Clone, Debug, Args)]
pub struct DemoArgs {
    /// Simulator seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Latency profile of the simulated clouds.
    #[arg(long, value_enum, default_value = "realistic")]
    pub profile: ProfileArg,
    /// Servers in the protected group.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=50))]
    pub servers: u16,
}

/// Simulator latency profiles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProfileArg {
    /// No latency.
    Zero,
    /// The documented per-call latencies (virtual time).
    Realistic,
}

/// `sim …`.
#[derive(Debug, Subcommand)]
pub enum SimCmd {
    /// Start the simulator in the background, write its clouds.yaml and print how to
    /// use it (succeeds without a second start when it already runs).
    Up(SimUpArgs),
    /// Stop the simulator (succeeds when it is not running).
    Down(SimDirArg),
    /// Whether the simulator runs, its endpoints and whether each site is up (exit 1
    /// when it is not running).
    Status(SimDirArg),
    /// Take a simulated site down: its services refuse connections, as in a disaster.
    SiteDown {
        /// `site-a` or `site-b`.
        #[arg(value_parser = sim_site)]
        site: String,
        /// Where the simulator runs.
        #[command(flatten)]
        dir: SimDirArg,
    },
    /// Bring a simulated site back up.
    SiteUp {
        /// `site-a` or `site-b`.
        #[arg(value_parser = sim_site)]
        site: String,
        /// Where the simulator runs.
        #[command(flatten)]
        dir: SimDirArg,
    },
    /// Serve the simulator in the foreground until SIGTERM or SIGINT (what `sim up`
    /// runs in the background).
    #[command(hide = true)]
    Serve(SimUpArgs),
}

/// Checks a simulated site name at parse time.
fn sim_site(s: &str) -> Result<String, String> {
    s.parse::<protector_sim::SimSite>()
        .map(|site| site.name().to_owned())
}

/// The simulator's directory.
#[derive(Clone, Debug, Default, Args)]
pub struct SimDirArg {
    /// The simulator's directory: clouds.yaml, arrays.json, its pid, state and log files
    /// (default: `sim` in the default state directory, not under --state-dir).
    #[arg(long, env = "PROTECTOR_SIM_DIR")]
    pub dir: Option<PathBuf>,
}

/// `sim up` / `sim serve`.
#[derive(Clone, Debug, Args)]
pub struct SimUpArgs {
    /// Simulator seed: every id, password and token derives from it.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Servers of the workload created on site-a (`web-server-1` …).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=50))]
    pub servers: u16,
    /// Where the simulator runs.
    #[command(flatten)]
    pub dir: SimDirArg,
}
