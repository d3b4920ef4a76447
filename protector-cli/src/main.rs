//! The `protector` binary.

use clap::Parser;

/// mimalloc rather than the system allocator: the engine makes many small, short-lived
/// allocations (ids, journal entries, API records), which glibc's malloc serves
/// markedly slower (see the README's performance section).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = protector_cli::cli::Cli::parse();
    std::process::exit(protector_cli::run(cli));
}
