//! The `protector` binary.

use clap::Parser;

fn main() {
    let cli = protector_cli::cli::Cli::parse();
    std::process::exit(protector_cli::run(cli));
}
