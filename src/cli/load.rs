//! `callflow load`: the webhook path under load on loopback, against
//! `sim-graph`. Thin: parses the options and hands them to [`crate::load`],
//! which measures and writes the report to stdout.

use std::process::ExitCode;

use clap::Args;

use crate::load::LoadOptions;
use crate::load::cluster::PostgresLoad;

/// Arguments of `callflow load`.
#[derive(Debug, Args)]
#[command(
    after_help = "Loopback only; each phase stops at --notifications or --duration, whichever \
                  comes first. Example: callflow load --notifications 200000 --calls 10000 \
                  --concurrency 64 --duration 10s --rate 20000"
)]
pub struct LoadArgs {
    /// At most this many notifications per target (the server, then the bare handler).
    #[arg(long, value_name = "N", default_value_t = 200_000)]
    pub notifications: u64,
    /// Concurrent calls (live sessions) the notifications are about.
    #[arg(long, value_name = "N", default_value_t = 1_000)]
    pub calls: usize,
    /// Concurrent keep-alive connections of the generator.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub concurrency: usize,
    /// At most this long per target, e.g. 10s, 500ms, 1m.
    #[arg(long, value_name = "TIME", default_value = "10s")]
    pub duration: humantime::Duration,
    /// Notifications per second offered in the sustained phase, where the
    /// latency target is measured (0 skips that phase).
    #[arg(long, value_name = "N", default_value_t = 20_000)]
    pub rate: u64,
    /// Worker threads of the server side (server, runtime, Graph client; and the bare handler).
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub server_threads: usize,
    /// Worker threads of the load side (generator, prober, call placement); sim-graph runs
    /// in its own process.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub load_threads: usize,
    /// Where the server keeps its sessions: `memory` (the default), `sqlite` (a file in a
    /// temporary folder, removed after) or `sqlite:PATH`. With sqlite, the server is also
    /// restarted on the store at the end and the time until it serves again measured. With
    /// `postgres://…` (a database: the run makes a schema of its own in it and drops it at the
    /// end), --instances `callflow serve` processes share it behind a round-robin balancer.
    #[arg(long, value_name = "STORE", default_value = "memory")]
    pub store: String,
    /// With a PostgreSQL store: how many `callflow serve` processes.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub instances: usize,
    /// With a PostgreSQL store: the instances' lease (`serve --lease`).
    #[arg(long, value_name = "TIME", default_value = "7s")]
    pub lease: humantime::Duration,
    /// With a PostgreSQL store: instead of the load, place N calls waiting in a menu, kill -9
    /// one instance and measure how long each of its calls takes to resume on another.
    #[arg(long, value_name = "N")]
    pub failover: Option<usize>,
    /// With sqlite: evict sessions idle this long (as serve's --evict-after), and read memory
    /// once the calls placed are evicted [default: never].
    #[arg(long, value_name = "TIME")]
    pub evict_after: Option<humantime::Duration>,
}

/// Runs `callflow load`.
pub fn run(args: &LoadArgs) -> ExitCode {
    let mut temporary = None;
    let mut postgres = None;
    let sqlite = match args.store.as_str() {
        "memory" => None,
        "sqlite" => {
            let dir = std::env::temp_dir().join(format!("callflow-load-{}", std::process::id()));
            let path = dir.join("callflow.db");
            temporary = Some(dir);
            Some(path)
        }
        other => match crate::runtime::StoreUrl::parse(other) {
            Ok(crate::runtime::StoreUrl::Sqlite(path)) => Some(path),
            Ok(crate::runtime::StoreUrl::Memory) => None,
            Ok(crate::runtime::StoreUrl::Postgres(url)) => {
                postgres = Some(PostgresLoad {
                    url,
                    instances: args.instances,
                    lease: args.lease.into(),
                    failover: args.failover,
                });
                None
            }
            Err(e) => {
                eprintln!("error: --store: {e}");
                return ExitCode::from(2);
            }
        },
    };
    if postgres.is_none() && args.failover.is_some() {
        eprintln!("error: --failover needs --store postgres://…");
        return ExitCode::from(2);
    }
    let options = LoadOptions {
        notifications: args.notifications,
        calls: args.calls,
        concurrency: args.concurrency,
        duration: args.duration.into(),
        rate: args.rate,
        server_threads: args.server_threads,
        load_threads: args.load_threads,
        sqlite,
        postgres,
        evict_after: args.evict_after.map(Into::into),
    };
    let outcome = crate::load::run(&options, &mut std::io::stdout());
    if let Some(dir) = temporary {
        let _ = std::fs::remove_dir_all(dir);
    }
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) if e.starts_with("--") => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
