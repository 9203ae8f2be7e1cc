//! `callflow sim-graph`: serve the simulated Graph over HTTP.
//!
//! Parses the options into a [`SimGraphConfig`], binds the listener, prints
//! where the Graph API, the token endpoint, the keys and the control API
//! are, and serves until the process is stopped. All the work is in
//! [`crate::sim::http`].

use std::process::ExitCode;

use clap::Args;

use crate::sim::behaviour::GraphBehaviour;
use crate::sim::graph::BOT_APP_ID;
use crate::sim::http::{Faults, SimClock, SimGraphConfig, SimGraphServer};

/// Arguments of `callflow sim-graph`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example: callflow sim-graph --listen 127.0.0.1:8765 --speed 10 \
                        --graph transfer=fail --fault throttle=2"
)]
pub struct SimGraphArgs {
    /// The address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8765")]
    pub listen: String,
    /// The base URL clients use, if not http://ADDR (behind a proxy).
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// The tenant: the token endpoint's path and the notifications' `tid`.
    #[arg(long, value_name = "ID", default_value = "sim-tenant")]
    pub tenant: String,
    /// The bot's application id: the audience of the notifications' tokens.
    #[arg(long, value_name = "ID", default_value = BOT_APP_ID)]
    pub bot_app_id: String,
    /// The only client id the token endpoint accepts (default: any).
    #[arg(long, value_name = "ID")]
    pub client_id: Option<String>,
    /// The only client secret the token endpoint accepts (default: any).
    #[arg(
        long,
        value_name = "SECRET",
        env = "CALLFLOW_SIM_GRAPH_CLIENT_SECRET",
        hide_env_values = true
    )]
    pub client_secret: Option<String>,
    /// Simulated seconds per real second.
    #[arg(
        long,
        value_name = "FACTOR",
        default_value_t = 1.0,
        conflicts_with = "manual_clock"
    )]
    pub speed: f64,
    /// Simulated time moves only through `POST /sim/clock/advance`.
    #[arg(long)]
    pub manual_clock: bool,
    /// How Graph and the people behave, e.g. `transfer=fail`, `dtmf=1,2`, `hangup=60s` (repeatable).
    /// A list is comma-separated, one item per attempt or prompt: `call=no_answer,answer`.
    #[arg(long = "graph", value_name = "KEY=VALUE")]
    pub graph: Vec<String>,
    /// A fault for every call, e.g. `throttle=2`, `unavailable=1`, `retry_after=2`,
    /// `reorder`, `duplicate`, `delay=2s`, `transfer=no_answer`, `never_answer`, `hold_answers=5s` (repeatable).
    #[arg(long = "fault", value_name = "KEY=VALUE")]
    pub faults: Vec<String>,
    /// Stop when standard input closes (for a parent process: `callflow load`).
    #[arg(long, hide = true)]
    pub until_stdin_closes: bool,
}

impl SimGraphArgs {
    /// The configuration these arguments describe.
    ///
    /// # Errors
    ///
    /// A message naming the wrong `--graph` or `--fault` pair.
    pub fn config(&self) -> Result<SimGraphConfig, String> {
        let mut behaviour = GraphBehaviour::default();
        for pair in &self.graph {
            behaviour
                .set(pair)
                .map_err(|e| format!("--graph {pair}: {e}"))?;
        }
        let mut faults = Faults::default();
        for pair in &self.faults {
            faults
                .set(pair)
                .map_err(|e| format!("--fault {pair}: {e}"))?;
        }
        Ok(SimGraphConfig {
            tenant_id: self.tenant.clone(),
            bot_app_id: self.bot_app_id.clone(),
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone(),
            behaviour,
            faults,
            clock: if self.manual_clock {
                SimClock::Manual
            } else {
                SimClock::RealTime { speed: self.speed }
            },
            public_url: self.public_url.clone(),
            ..SimGraphConfig::default()
        })
    }
}

/// Serves the simulated Graph until the process is stopped.
pub fn run(args: &SimGraphArgs) -> ExitCode {
    let config = match args.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: the async runtime would not start: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(&args.listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: cannot listen on {}: {e}", args.listen);
                return ExitCode::FAILURE;
            }
        };
        let tenant = config.tenant_id.clone();
        let server = match SimGraphServer::start(config.clone(), listener).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        let base = server.base_url().to_owned();
        println!("sim-graph listening on {}", server.local_addr());
        println!("  Graph API      {base}/v1.0/communications/calls");
        println!("  token          {base}/{tenant}/oauth2/v2.0/token");
        println!("  keys (JWKS)    {base}/.well-known/jwks.json");
        println!("  OpenID config  {base}/.well-known/OpenIdConfiguration");
        println!("  control API    {base}/sim/calls");
        let env: Vec<String> = crate::sim::http::serve_environment(&config, &base)
            .into_iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        println!();
        println!("Point callflow serve at it (a callback on 127.0.0.1:8080):");
        println!(
            "  {} callflow serve --flows flows --listen 127.0.0.1:8080 --public-url http://127.0.0.1:8080",
            env.join(" ")
        );
        println!("then place a call to the bot:");
        println!(
            "  curl -X POST {base}/sim/calls -H 'content-type: application/json' -d \
             '{{\"from\":{{\"phone\":\"+15550100\"}},\"to\":{{\"phone\":\"+14255550100\"}},\
             \"callbackUri\":\"http://127.0.0.1:8080/api/calls\"}}'"
        );
        let stdin_closed = args.until_stdin_closes.then(|| {
            let (closed, stdin_closed) = tokio::sync::oneshot::channel::<()>();
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
                let _ = closed.send(());
            });
            stdin_closed
        });
        let stop = async move {
            match stdin_closed {
                Some(closed) => {
                    let _ = closed.await;
                }
                None => std::future::pending().await,
            }
        };
        match server.serve_until(stop).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: sim-graph stopped: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
