//! `protector demo`: the whole DR life of a protection group on the in-process
//! simulator, printed as the commands a user would type and their real output.

use std::io::Write;
use std::time::Duration;

use clap::Parser;
use protector_core::model::OperationFilter;
use protector_sim::{LatencyProfile, SimSite, SimWorld, WorkloadSpec};

use crate::backend::{Backend, SimBackend};
use crate::cli::{Cli, DemoArgs, ProfileArg};
use crate::commands::{execute, Outcome, Printer};

/// The protection group of the walk-through.
pub const PG: &str = "prod-web-app";

/// Runs the walk-through on a paused-clock runtime (simulated time advances as soon
/// as everything waits, so minutes of simulated DR take a moment of real time).
///
/// # Errors
/// The step that failed and why.
pub fn run(args: &DemoArgs, out: &mut dyn Write) -> Result<Outcome, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    rt.block_on(walk_through(args, out))
}

/// The simulator backend the walk-through uses, with its workload created on site-a.
///
/// # Errors
/// The simulator refused to build.
pub fn sim_backend(seed: u64, profile: ProfileArg, servers: usize) -> Result<SimBackend, String> {
    let profile = match profile {
        ProfileArg::Zero => LatencyProfile::zero(),
        ProfileArg::Realistic => LatencyProfile::realistic(),
    };
    let world = SimWorld::builder()
        .seed(seed)
        .profile(profile)
        .build()
        .map_err(|e| e.to_string())?;
    let backend = SimBackend::new(world);
    backend
        .world
        .create_workload(
            &WorkloadSpec::new(SimSite::A, &backend.project)
                .servers(servers)
                .data_volumes(1)
                .networks(&["tenant-a-web", "tenant-a-db"])
                .named("web-server"),
        )
        .map_err(|e| e.to_string())?;
    Ok(backend)
}

struct Demo<'a> {
    backend: SimBackend,
    out: &'a mut dyn Write,
    local: &'static str,
    peer: &'static str,
}

impl Demo<'_> {
    fn say(&mut self, text: &str) -> Result<(), String> {
        writeln!(self.out, "{text}").map_err(|e| format!("cannot write output: {e}"))
    }

    fn use_site(&mut self, local: &'static str, peer: &'static str) -> Result<(), String> {
        self.local = local;
        self.peer = peer;
        self.say(&format!(
            "$ export OS_CLOUD={local} OS_SECONDARY_CLOUD={peer}\n"
        ))
    }

    /// Prints `$ protector <shown>` and runs `args` (the same command; `shown` masks
    /// secrets).
    async fn cmd(&mut self, args: &[String], shown: Option<&str>) -> Result<Outcome, String> {
        let line = shown.map_or_else(|| args.join(" "), str::to_owned);
        self.say(&format!("$ protector {line}"))?;
        let mut argv: Vec<String> = vec![
            "protector".into(),
            "--os-cloud".into(),
            self.local.into(),
            "--secondary-cloud".into(),
            self.peer.into(),
            "-f".into(),
            "table".into(),
        ];
        argv.extend(args.iter().cloned());
        let cli = Cli::try_parse_from(&argv).map_err(|e| format!("{line}: {e}"))?;
        let outcome = {
            let mut printer = Printer {
                out: &mut *self.out,
                global: &cli.global,
                progress: false,
            };
            execute(&self.backend, cli.command, &mut printer)
                .await
                .map_err(|e| format!("`protector {line}` failed: {e}"))?
        };
        self.say("")?;
        if outcome == Outcome::Failed {
            return Err(format!("`protector {line}` did not complete"));
        }
        Ok(outcome)
    }

    async fn run(&mut self, words: &str) -> Result<Outcome, String> {
        let args: Vec<String> = words.split_whitespace().map(str::to_owned).collect();
        self.cmd(&args, None).await
    }

    fn net_mappings(&self, from: SimSite, to: SimSite) -> Result<String, String> {
        let (s, t) = (self.backend.world.site(from), self.backend.world.site(to));
        let mut out = Vec::new();
        for net in ["tenant-a-web", "tenant-a-db"] {
            out.push(format!(
                "--network-mapping {}={}",
                s.network_id(net).map_err(|e| e.to_string())?,
                t.network_id(net).map_err(|e| e.to_string())?
            ));
        }
        Ok(out.join(" "))
    }

    async fn latest_operation(&self) -> Result<String, String> {
        let h = self
            .backend
            .open(Some(self.local), Some(self.peer), false)
            .await?;
        let ops = h
            .protector
            .list_operations(&h.ctx, &OperationFilter::default())
            .await
            .map_err(|e| e.to_string())?;
        ops.first()
            .map(|o| o.id.to_string())
            .ok_or_else(|| "no operation recorded".to_owned())
    }

    async fn pass_time(&mut self, minutes: u64, why: &str) -> Result<(), String> {
        self.say(&format!("# {why} ({minutes} simulated minutes pass)\n"))?;
        tokio::time::sleep(Duration::from_secs(minutes * 60)).await;
        Ok(())
    }
}

async fn walk_through(args: &DemoArgs, out: &mut dyn Write) -> Result<Outcome, String> {
    let backend = sim_backend(args.seed, args.profile, usize::from(args.servers))?;
    let servers: Vec<String> = backend
        .world
        .workloads()
        .iter()
        .flat_map(|w| w.servers.iter().map(|s| s.name.clone()))
        .collect();
    let mut d = Demo {
        backend,
        out,
        local: "site-a",
        peer: "site-b",
    };
    d.say(&format!(
        "# protector demo: two simulated OpenStack sites with Pure FlashArrays (seed {}, {} profile).\n# site-a runs {} VMs ({}) with a boot and a data volume each.\n",
        args.seed,
        match args.profile {
            ProfileArg::Zero => "zero",
            ProfileArg::Realistic => "realistic",
        },
        servers.len(),
        servers.join(", ")
    ))?;
    d.say("# Registering sites is an admin task: the admin entries of clouds.yaml.")?;
    d.use_site("site-a-admin", "site-b-admin")?;
    d.run("site register site-a --description primary").await?;
    d.run("site register site-b --description disaster-recovery")
        .await?;
    d.run("site list").await?;
    d.run("site validate site-b").await?;
    d.say("# Everything else is done by the project's own users.")?;
    d.use_site("site-a", "site-b")?;
    d.run("protection-group create prod-web-app --replication-type async")
        .await?;
    let (ia, ib) = (
        d.backend.world.site(SimSite::A).clone(),
        d.backend.world.site(SimSite::B).clone(),
    );
    let policy = |ta: &str, tb: &str| {
        format!(
            "protection-group policy-create {PG} --primary-fa-url {} --primary-fa-token {ta} --secondary-fa-url {} --secondary-fa-token {tb} --rpo-minutes 15 --replication-interval 300",
            ia.array_url, ib.array_url
        )
    };
    let real: Vec<String> = policy(&ia.array_token, &ib.array_token)
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    d.cmd(&real, Some(&policy("****", "****"))).await?;
    for s in &servers {
        d.run(&format!("protection-group member-add {PG} {s}"))
            .await?;
    }
    d.run(&format!("protection-group show {PG}")).await?;
    d.pass_time(7, "the arrays replicate every 5 minutes")
        .await?;

    let a_to_b = d.net_mappings(SimSite::A, SimSite::B)?;
    let b_to_a = d.net_mappings(SimSite::B, SimSite::A)?;
    d.say("# 1. A DR drill: test failover to site-b, then clean up.\n")?;
    d.run(&format!("protection-group test-failover {PG} {a_to_b}"))
        .await?;
    d.run(&format!("protection-group test-cleanup {PG}"))
        .await?;

    d.say("# 2. Planned failover to site-b.\n")?;
    d.run(&format!(
        "protection-group failover {PG} --type planned {a_to_b}"
    ))
    .await?;
    let op = d.latest_operation().await?;
    d.run("operation list").await?;
    d.run(&format!("operation show {op}")).await?;

    d.say("# 3. Fail back to site-a, the original primary, reversing replication.\n")?;
    d.use_site("site-b", "site-a")?;
    d.run(&format!("protection-group sync-status {PG}")).await?;
    d.run(&format!(
        "protection-group failback {PG} --type planned --reverse-replication {b_to_a}"
    ))
    .await?;
    d.use_site("site-a", "site-b")?;
    d.run(&format!("protection-group show {PG}")).await?;
    d.pass_time(7, "replication catches up").await?;

    d.say("# 4. Disaster: site-a goes down. Unplanned failover from site-b.\n")?;
    d.backend.world.take_site_down(SimSite::A);
    d.use_site("site-b", "site-a")?;
    d.run(&format!(
        "protection-group failover {PG} --type unplanned {a_to_b}"
    ))
    .await?;
    d.run(&format!("protection-group show {PG}")).await?;
    d.run(&format!("protection-group sync-status {PG}")).await?;

    d.say("# 5. site-a is restored: push the metadata, then fail back.\n")?;
    d.backend.world.bring_site_up(SimSite::A);
    d.run(&format!("protection-group sync-force {PG}")).await?;
    d.run(&format!(
        "protection-group failback {PG} --type planned --reverse-replication {b_to_a}"
    ))
    .await?;
    d.run(&format!("operation list --protection-group {PG}"))
        .await?;
    d.use_site("site-a", "site-b")?;
    d.run(&format!("protection-group show {PG}")).await?;
    d.say("# Done: prod-web-app is active on site-a again.")?;
    Ok(Outcome::Success)
}
