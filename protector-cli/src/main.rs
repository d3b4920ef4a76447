//! The `protector` command line.
//!
//! This build carries the binary's identity only (`--help`, `--version`); the
//! product's command tree (`site`, `protection-group`, `consistency-group`,
//! `operation`, `sim`, `demo`) is added on top of the engine in `protector-core`.

use clap::Parser;

/// Disaster recovery for OpenStack workloads on Pure Storage FlashArray.
#[derive(Debug, Parser)]
#[command(name = "protector", version, about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
}
