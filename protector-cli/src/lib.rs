//! The `protector` command line: the product documentation's command tree over the engine in
//! `protector-core`, on real clouds (clouds.yaml), on the in-process simulator
//! (`protector demo`), or on the simulator served over HTTP in the background
//! (`protector sim up`, whose clouds.yaml the real-cloud path then reads).

pub mod backend;
pub mod cli;
pub mod commands;
pub mod demo;
pub mod render;
pub mod sim;

use std::io::IsTerminal;

use backend::{default_state_dir, CloudBackend};
use cli::{Cli, Command};
use commands::{Outcome, Printer};

/// Runs a parsed command line and returns the process exit code. Errors are printed
/// as one line on stderr.
pub fn run(cli: Cli) -> i32 {
    let Cli { global, command } = cli;
    let mut stdout = std::io::stdout();
    let progress = stdout.is_terminal();
    let result = match command {
        Command::Demo(args) => demo::run(&args, &mut stdout),
        command => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build();
            match runtime {
                Err(e) => Err(format!("cannot start the async runtime: {e}")),
                Ok(rt) => {
                    let mut printer = Printer {
                        out: &mut stdout,
                        global: &global,
                        progress,
                    };
                    match command {
                        Command::Sim(cmd) => rt.block_on(sim::execute(cmd, &mut printer)),
                        command => {
                            let backend = CloudBackend::new(
                                global.state_dir.clone().unwrap_or_else(default_state_dir),
                            );
                            rt.block_on(commands::execute(&backend, command, &mut printer))
                        }
                    }
                }
            }
        }
    };
    match result {
        Ok(Outcome::Success) => 0,
        Ok(Outcome::Failed) => 1,
        Err(e) => {
            let line = e.lines().collect::<Vec<_>>().join(" ");
            eprintln!("protector: error: {line}");
            1
        }
    }
}
