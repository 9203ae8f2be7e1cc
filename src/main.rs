//! The `callflow` binary: parses the command line and runs the command.

use std::process::ExitCode;

use clap::Parser;

/// mimalloc, not glibc's malloc: a live session costs less resident memory
/// (see docs/decisions.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Freed pages go back at once, so that the memory of evicted sessions
    // leaves the process even when it then goes quiet (docs/decisions.md).
    callflow::alloc::purge_at_once();
    callflow::cli::Cli::parse().run()
}
