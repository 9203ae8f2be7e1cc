//! The `callflow` binary: parses the command line and runs the command.

use std::ffi::{c_int, c_long};
use std::process::ExitCode;

use clap::Parser;

/// mimalloc, not glibc's malloc: a live session costs less resident memory
/// (see docs/decisions.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

unsafe extern "C" {
    /// mimalloc's `mi_option_set`, in the library `GLOBAL` links.
    fn mi_option_set(option: c_int, value: c_long);
}

/// `mi_option_purge_delay` in mimalloc.h (version 3, which the `mimalloc`
/// crate builds): how long freed pages wait before they go back to the
/// system (10 ms by default, and only at a later call into the allocator).
const MI_OPTION_PURGE_DELAY: c_int = 15;

fn main() -> ExitCode {
    // Freed pages go back at once, so that the memory of evicted sessions
    // leaves the process even when it then goes quiet (docs/decisions.md);
    // `MIMALLOC_PURGE_DELAY` in the environment still says otherwise.
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one integer option; mimalloc reads it at each purge.
        unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
    }
    callflow::cli::Cli::parse().run()
}
