//! `callflow run`: start an `api` flow on a running server and print its
//! session id; with `--follow`, its timeline until it ends. Thin: the
//! requests are [`crate::serve::admin`]'s.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::serve::admin::{AdminClient, AdminError, parse_params};
use crate::serve::demo::timeline_line;

/// Arguments of `callflow run`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example: callflow run outbound-reminder --param phone=+33612345678 \
                  --param appointment=https://cdn.contoso.com/reminders/dentist.wav --follow \
                  (the admin token in CALLFLOW_ADMIN_TOKEN)"
)]
pub struct RunArgs {
    /// The `api` flow to start, by name.
    #[arg(value_name = "FLOW")]
    pub flow: String,
    /// A parameter of the flow (a JSON value or text; repeatable).
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// The server to ask.
    #[command(flatten)]
    pub server: ServerArgs,
    /// Print the run's timeline as it happens, until it ends.
    #[arg(long)]
    pub follow: bool,
}

/// The running server a command talks to over the admin API (`callflow
/// run`, `callflow sessions`).
#[derive(Debug, Args)]
pub struct ServerArgs {
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

impl ServerArgs {
    /// The admin client and a runtime to drive it; on failure, the reason
    /// is printed and the exit status returned.
    pub fn connect(&self) -> Result<(AdminClient, tokio::runtime::Runtime), ExitCode> {
        let Some(token) = self.admin_token.clone().filter(|t| !t.is_empty()) else {
            eprintln!("error: the admin token is required (--admin-token or CALLFLOW_ADMIN_TOKEN)");
            return Err(ExitCode::from(2));
        };
        let client = AdminClient::new(&self.url, token).map_err(|e| {
            eprintln!("error: {e}");
            ExitCode::from(2)
        })?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| {
                eprintln!("error: the async runtime would not start: {e}");
                ExitCode::FAILURE
            })?;
        Ok((client, runtime))
    }
}

/// Runs `callflow run`.
pub fn run(args: &RunArgs) -> ExitCode {
    let params = match parse_params(&args.params) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let (client, runtime) = match args.server.connect() {
        Ok(c) => c,
        Err(code) => return code,
    };
    runtime.block_on(async {
        let id = match client.start_run(&args.flow, params).await {
            Ok(id) => id,
            Err(e) => {
                eprintln!("error: {} was not started: {e}", args.flow);
                return match e {
                    AdminError::Refused { status, .. } if (400..500).contains(&status) => {
                        ExitCode::from(2)
                    }
                    _ => ExitCode::FAILURE,
                };
            }
        };
        println!("{id}");
        if !args.follow {
            return ExitCode::SUCCESS;
        }
        let mut start = None;
        let followed = client
            .follow(&id, Duration::from_millis(200), |entry| {
                let first = *start.get_or_insert(entry.at);
                println!("{}", timeline_line(entry, Some(first)));
            })
            .await;
        match followed {
            Ok(view) => {
                let outcome = view.outcome.as_deref().unwrap_or("unknown");
                let shown = match &view.end {
                    Some(name) => format!("{name} ({outcome})"),
                    None => outcome.to_owned(),
                };
                match &view.reason {
                    Some(r) => println!("ended: {shown}: {r}"),
                    None => println!("ended: {shown}"),
                }
                if outcome == "error" {
                    ExitCode::FAILURE
                } else {
                    ExitCode::SUCCESS
                }
            }
            Err(e) => {
                eprintln!("error: following {id}: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
