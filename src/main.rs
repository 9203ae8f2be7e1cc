//! The `callflow` binary: parses the command line and runs the command.

use std::process::ExitCode;

use clap::Parser;

/// mimalloc, not glibc's malloc: a live session costs less resident memory
/// (see docs/decisions.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    callflow::cli::Cli::parse().run()
}
