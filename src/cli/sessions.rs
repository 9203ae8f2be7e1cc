//! `callflow sessions export ID`: a call the server stored, written as a
//! scenario that replays it, for `callflow test` against an edited flow.
//! Thin: the request is [`crate::serve::admin`]'s (the server holds the
//! store; this asks it over the admin API).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::serve::admin::{AdminClient, AdminError};

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
    /// The server's base URL.
    #[arg(
        long,
        value_name = "URL",
        env = "CALLFLOW_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub url: String,
    /// The server's admin token (prefer the environment variable).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "CALLFLOW_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub admin_token: Option<String>,
}

/// Runs `callflow sessions`.
pub fn run(args: &SessionsArgs) -> ExitCode {
    let SessionsCommand::Export(args) = &args.command;
    let Some(token) = args.admin_token.clone().filter(|t| !t.is_empty()) else {
        eprintln!("error: the admin token is required (--admin-token or CALLFLOW_ADMIN_TOKEN)");
        return ExitCode::from(2);
    };
    let client = match AdminClient::new(&args.url, token) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: the async runtime would not start: {e}");
            return ExitCode::FAILURE;
        }
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
