//! `callflow sessions export ID`: a call the server stored, written as a
//! scenario that replays it, for `callflow test` against an edited flow.
//! Thin: the request is [`crate::serve::admin`]'s (the server holds the
//! store; this asks it over the admin API).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::run::ServerArgs;
use crate::serve::admin::AdminError;

/// Arguments of `callflow sessions`.
#[derive(Debug, Args)]
pub struct SessionsArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: SessionsCommand,
}

/// `callflow sessions` commands.
#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// Write a stored call as a scenario (`ID.yaml`) replaying its notifications
    /// (`recordings/ID.jsonl`).
    #[command(
        after_help = "Example: callflow sessions export 341a0500-d4bf-4224-8b19-1581168d328b \
                      --out flows/scenarios/reception && callflow test flows \
                      (the admin token in CALLFLOW_ADMIN_TOKEN)"
    )]
    Export(ExportArgs),
}

/// Arguments of `callflow sessions export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The session (a call's id, as `/api/sessions` lists it).
    #[arg(value_name = "ID")]
    pub id: String,
    /// The folder to write the scenario into.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub out: PathBuf,
    /// The server to ask.
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Runs `callflow sessions`.
pub fn run(args: &SessionsArgs) -> ExitCode {
    let SessionsCommand::Export(args) = &args.command;
    let (client, runtime) = match args.server.connect() {
        Ok(c) => c,
        Err(code) => return code,
    };
    match runtime.block_on(client.export(&args.id, &args.out)) {
        Ok(path) => {
            println!("{}", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: session {} was not exported: {e}", args.id);
            match e {
                AdminError::Refused { status, .. } if (400..500).contains(&status) => {
                    ExitCode::from(2)
                }
                _ => ExitCode::FAILURE,
            }
        }
    }
}
