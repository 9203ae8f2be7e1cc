//! `callflow studio`: the designer's workbench in the browser.
//!
//! Serves [`crate::studio`] on `--listen` (loopback by default) over the
//! flows folder, prints the address to open, and runs until Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::studio::{Studio, StudioConfig};

/// Arguments of `callflow studio`.
#[derive(Debug, Args)]
#[command(
    after_help = "Open the printed address in a browser. Edits to the folder show within a \
                  second; the page asks nothing of anyone but this server."
)]
pub struct StudioArgs {
    /// The flows folder (scenarios are saved under it).
    #[arg(long, value_name = "DIR", default_value = "flows")]
    pub flows: PathBuf,
    /// Where to listen (use 127.0.0.1:0 for any free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:4455")]
    pub listen: SocketAddr,
}

/// Loads the folder, serves the studio, prints where.
pub fn run(args: &StudioArgs) -> ExitCode {
    if !args.flows.is_dir() {
        eprintln!(
            "error: the flows folder {} does not exist; pass --flows DIR",
            args.flows.display()
        );
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: the async runtime would not start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("warn,callflow::studio=info")
            }),
        )
        .with_writer(std::io::stderr)
        .try_init();
    runtime.block_on(async {
        let listener = match tokio::net::TcpListener::bind(args.listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!(
                    "error: cannot listen on {}: {e}; try --listen 127.0.0.1:0",
                    args.listen
                );
                return ExitCode::FAILURE;
            }
        };
        let studio = Studio::new(StudioConfig {
            flows_dir: args.flows.clone(),
            read_only: false,
            live: None,
        });
        let addr = listener.local_addr().unwrap_or(args.listen);
        let w = studio.workspace();
        println!("callflow studio: http://{addr}/");
        println!("  flows  {}  ({})", args.flows.display(), w.summary);
        println!("  Ctrl-C stops it");
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        let watcher = studio.watch();
        let served = crate::studio::serve(listener, studio, shutdown).await;
        watcher.abort();
        match served {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
