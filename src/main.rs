//! The `callflow` binary: parses the command line and runs the command.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    callflow::cli::Cli::parse().run()
}
