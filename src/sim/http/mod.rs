//! `callflow sim-graph`: the simulated Graph of [`crate::sim`] over real HTTP.
//!
//! [`SimGraphServer::start`] serves, on a listener the caller gives:
//! - Graph v1.0 (and beta) calling paths under `/{v1.0|beta}/communications/calls`:
//!   create (`201` + `Location` + the call), `GET`, `DELETE` (`204`), `answer`,
//!   `reject`, `redirect`, `transfer` (`202`), `playPrompt`, `subscribeToTone`,
//!   `participants/invite` (`200` + a `commsOperation`), `keepAlive` (`200`);
//!   refusals carry Graph's error body (`404` unknown call, `400` bad body,
//!   `401` without a token sim-graph issued);
//! - a client-credentials token endpoint, `POST /{tenant}/oauth2/v2.0/token`;
//! - `/.well-known/jwks.json` and `/.well-known/OpenIdConfiguration`: the
//!   public key that signs the notifications' bearer JWTs;
//! - a control API under `/sim/…` to place incoming calls, press keys, hang
//!   up as the caller, set faults, read the request logs and move the clock
//!   — the table below.
//!
//! | request | effect |
//! | --- | --- |
//! | `GET /sim/calls` | every call: id, state, direction, callback URI, counts |
//! | `POST /sim/calls` `{from, to?, callbackUri}` | an incoming call to the bot: its `created`/`incoming` notification is posted to `callbackUri`; `201` with the call. `from: {}` is an anonymous caller (no number, no identity) |
//! | `POST /sim/calls/existing` `{state?, direction?, callbackUri}` | a call the bot already has (placed elsewhere, as a group call), in `state` (default `established`, direction `outgoing`): its state notification is posted; `201` with the call |
//! | `POST /sim/replay` `{callbackUri, recording: [{at, body}, …]}` | replays recorded notification bodies (as `callflow test` replays a `.jsonl` file), each at its recorded offset from the first, to `callbackUri`; from then on the simulated Graph accepts every request and does nothing on its own. Use a fresh sim-graph per replay |
//! | `GET /sim/calls/{id}` | the call as `GET` on Graph returns it, plus its faults |
//! | `GET /sim/calls/{id}/requests` | the Graph requests about it, in order |
//! | `GET /sim/calls/{id}/notifications` | the notifications posted about it, with the bot's answers |
//! | `GET /sim/recordings/{id}` | a `recordResponse`'s recording (its `recordingLocation`), for the bearer of its `recordingAccessToken` |
//! | `POST /sim/calls/{id}/press` `{digits}` | the caller presses keys (the call must be established and subscribed to tones) |
//! | `POST /sim/calls/{id}/hangup` | the caller hangs up |
//! | `GET`/`PUT /sim/calls/{id}/faults` | that call's own [`Faults`] (`DELETE` drops them) |
//! | `GET`/`PUT /sim/faults` | the global [`Faults`] |
//! | `GET /sim/clock`, `POST /sim/clock/advance` `{by: "3s"}` or `{to: RFC 3339}` | the simulated time and, with the manual clock, when the next thing is due and how many notifications are in flight; move it forward |
//! | `GET /sim/requests` | Graph requests that named no known call |
//!
//! Parties are written as in scenario files: `{"phone": "+15550100"}`,
//! `{"user": "id", "display_name": "Ada"}`, `{"application": "id"}`. The
//! control API needs no token: it is the tester's, not the bot's.
//!
//! Every Graph request goes to one [`SimGraph`] (the same state machines as
//! `callflow simulate`); its notification bodies ([`crate::sim::notify`])
//! are posted to each call's own `callbackUri`. The simulated clock follows
//! the real one times `speed`, or moves only when told ([`SimClock::Manual`]).
//! This module must never interpret a flow: it is Graph's side only.

mod api;
pub mod auth;
pub mod client;
mod control;
mod delivery;
mod error;
pub mod faults;
mod world;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::sim::SimGraph;
use crate::sim::behaviour::GraphBehaviour;
use crate::sim::graph::BOT_APP_ID;

pub use auth::{GRAPH_ISSUER, KeyError, NotificationClaims, NotificationSigner, TokenBook};
pub use delivery::Delivered;
pub use faults::Faults;
pub use world::LoggedRequest;

/// How simulated time moves.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SimClock {
    /// With the real clock, `speed` times as fast (`1.0`: real time).
    RealTime {
        /// How many simulated seconds pass per real second.
        speed: f64,
    },
    /// Only when told (`POST /sim/clock/advance`, [`SimGraphServer::advance`]):
    /// for tests that must not depend on timing.
    Manual,
}

/// How sim-graph is set up.
#[derive(Clone, Debug)]
pub struct SimGraphConfig {
    /// The tenant (`tid` of the notification tokens).
    pub tenant_id: String,
    /// The bot's application id: the audience of the notification tokens.
    pub bot_app_id: String,
    /// The `iss` of the notification tokens.
    pub issuer: String,
    /// The only client id the token endpoint accepts (any when unset).
    pub client_id: Option<String>,
    /// The only client secret the token endpoint accepts (any when unset).
    pub client_secret: Option<String>,
    /// How long an issued access token is good.
    pub token_lifetime: Duration,
    /// How Graph and the people on the calls behave (`--graph key=value`).
    pub behaviour: GraphBehaviour,
    /// Faults for every call, at startup (`--fault key=value`).
    pub faults: Faults,
    /// How simulated time moves.
    pub clock: SimClock,
    /// The base URL clients reach sim-graph at (default `http://{listen addr}`).
    pub public_url: Option<String>,
    /// The simulated time at startup (default: the system's time).
    pub start: Option<DateTime<Utc>>,
}

impl Default for SimGraphConfig {
    fn default() -> Self {
        SimGraphConfig {
            tenant_id: "sim-tenant".into(),
            bot_app_id: BOT_APP_ID.into(),
            issuer: GRAPH_ISSUER.into(),
            client_id: None,
            client_secret: None,
            token_lifetime: Duration::from_secs(3600),
            behaviour: GraphBehaviour::default(),
            faults: Faults::default(),
            clock: SimClock::RealTime { speed: 1.0 },
            public_url: None,
            start: None,
        }
    }
}

/// sim-graph could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The listener has no address.
    #[error("sim-graph: the listener has no address: {0}")]
    Listener(#[from] std::io::Error),
    /// No signing key.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The HTTP client for notifications would not build.
    #[error("sim-graph: the HTTP client would not build: {0}")]
    Client(String),
    /// The configuration is wrong.
    #[error("sim-graph: {0}")]
    Config(String),
}

/// The real-to-simulated clock.
#[derive(Debug)]
pub(crate) struct Clock {
    mode: SimClock,
    start_real: Instant,
    start_sim: DateTime<Utc>,
}

impl Clock {
    fn now(&self, offset: chrono::Duration) -> DateTime<Utc> {
        let run = match self.mode {
            SimClock::RealTime { speed } => {
                let real = self.start_real.elapsed().as_secs_f64() * speed;
                chrono::Duration::microseconds((real * 1e6) as i64)
            }
            SimClock::Manual => chrono::Duration::zero(),
        };
        self.start_sim + offset + run
    }

    /// How long delivery waits for a second body to swap with (reorder).
    fn reorder_window(&self) -> Duration {
        match self.mode {
            SimClock::RealTime { speed } if speed > 0.0 => {
                Duration::from_secs_f64((1.5 / speed).clamp(0.05, 2.0))
            }
            _ => Duration::from_millis(200),
        }
    }

    fn tick_interval(&self) -> Option<Duration> {
        match self.mode {
            SimClock::RealTime { .. } => Some(Duration::from_millis(10)),
            SimClock::Manual => None,
        }
    }
}

/// What every handler shares.
pub(crate) struct Shared {
    config: SimGraphConfig,
    base_url: String,
    signer: NotificationSigner,
    tokens: TokenBook,
    clock: Clock,
    http: reqwest::Client,
    core: tokio::sync::Mutex<world::Core>,
    /// Notifications queued for delivery and not yet answered by the bot.
    in_flight: AtomicUsize,
}

/// A running sim-graph.
pub struct SimGraphServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    task: JoinHandle<std::io::Result<()>>,
}

impl SimGraphServer {
    /// Starts serving on `listener` (bind `127.0.0.1:0` in tests).
    ///
    /// # Errors
    ///
    /// [`StartError`] when the listener, the key or the HTTP client fail.
    pub async fn start(config: SimGraphConfig, listener: TcpListener) -> Result<Self, StartError> {
        config.behaviour.validate().map_err(StartError::Config)?;
        if let SimClock::RealTime { speed } = config.clock
            && !(speed.is_finite() && speed > 0.0)
        {
            return Err(StartError::Config(format!(
                "speed {speed} must be a positive number"
            )));
        }
        let addr = listener.local_addr()?;
        let base_url = config
            .public_url
            .clone()
            .map(|u| u.trim_end_matches('/').to_owned())
            .unwrap_or_else(|| format!("http://{addr}"));
        crate::graph::client::install_tls_provider();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| StartError::Client(e.to_string()))?;
        let start_sim = config.start.unwrap_or_else(Utc::now);
        let graph = SimGraph::new(
            config.behaviour.clone(),
            format!("{base_url}/sim/no-callback"),
            start_sim,
        );
        graph.set_recordings_base(format!("{base_url}/sim/recordings"));
        let clock = Clock {
            mode: config.clock,
            start_real: Instant::now(),
            start_sim,
        };
        let shared = Arc::new(Shared {
            core: tokio::sync::Mutex::new(world::Core::new(graph, config.faults.clone())),
            signer: NotificationSigner::generate()?,
            tokens: TokenBook::default(),
            config,
            base_url,
            clock,
            http,
            in_flight: AtomicUsize::new(0),
        });
        let (stop, mut stopped) = watch::channel(false);
        if let Some(every) = shared.clock.tick_interval() {
            let ticker = Arc::clone(&shared);
            let mut halt = stop.subscribe();
            tokio::spawn(async move {
                let mut interval = tokio::time::interval(every);
                interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = interval.tick() => ticker.core.lock().await.tick(&ticker),
                        _ = halt.changed() => break,
                    }
                }
            });
        }
        let app = router(Arc::clone(&shared));
        let closing = Arc::clone(&shared);
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.wait_for(|s| *s).await;
                    closing.core.lock().await.close();
                })
                .await
        });
        Ok(SimGraphServer {
            addr,
            shared,
            stop,
            task,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its base URL (`http://127.0.0.1:PORT`): both the Graph base URL and
    /// the token authority of a [`GraphConfig`](crate::graph::client::GraphConfig).
    pub fn base_url(&self) -> &str {
        &self.shared.base_url
    }

    /// The JWKS that verifies its notifications.
    pub fn jwks(&self) -> jsonwebtoken::jwk::JwkSet {
        self.shared.signer.jwks()
    }

    /// How many requests reached the token endpoint.
    pub fn token_requests(&self) -> u64 {
        self.shared.tokens.requests()
    }

    /// Moves the simulated clock forward by `by` and posts what fell due.
    /// Returns the new simulated time.
    pub async fn advance(&self, by: Duration) -> DateTime<Utc> {
        let mut core = self.shared.core.lock().await;
        core.offset += chrono::Duration::from_std(by).unwrap_or(chrono::Duration::days(365));
        core.tick(&self.shared);
        core.now(&self.shared)
    }

    /// Moves the simulated clock to `at` (never backwards) and posts what
    /// fell due. Returns the new simulated time.
    pub async fn advance_to(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        let mut core = self.shared.core.lock().await;
        let now = core.now(&self.shared);
        if at > now {
            core.offset += at - now;
        }
        core.tick(&self.shared);
        core.now(&self.shared)
    }

    /// When the next thing Graph or a caller does on its own is due (a
    /// notification, a hang-up, a delayed body), if anything is scheduled.
    pub async fn next_due(&self) -> Option<DateTime<Utc>> {
        self.shared.core.lock().await.graph.next_happening()
    }

    /// How many notifications are queued for delivery or on their way,
    /// not yet answered by the bot. With [`SimClock::Manual`], sim-graph is
    /// idle when this is 0: nothing happens until the clock is advanced.
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::Acquire)
    }

    /// The calls and their states, as `GET /sim/calls` lists them.
    pub async fn calls(&self) -> Value {
        control::list_calls(&*self.shared.core.lock().await)
    }

    /// Stops accepting connections, finishes the requests in flight and
    /// closes the notification queues.
    ///
    /// # Errors
    ///
    /// The server's I/O error, if it failed.
    pub async fn shutdown(self) -> std::io::Result<()> {
        let _ = self.stop.send(true);
        self.wait().await
    }

    /// Serves until `signal` completes, then shuts down (for the command line).
    ///
    /// # Errors
    ///
    /// The server's I/O error, if it failed.
    pub async fn serve_until(mut self, signal: impl Future<Output = ()>) -> std::io::Result<()> {
        tokio::select! {
            () = signal => {
                let _ = self.stop.send(true);
                self.wait().await
            }
            ended = &mut self.task => match ended {
                Ok(result) => result,
                Err(e) => Err(std::io::Error::other(e.to_string())),
            },
        }
    }

    async fn wait(self) -> std::io::Result<()> {
        match self.task.await {
            Ok(result) => result,
            Err(e) => Err(std::io::Error::other(e.to_string())),
        }
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .merge(api::routes())
        .merge(control::routes())
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .with_state(shared)
}

/// The environment that points `callflow serve` at this sim-graph: the
/// Graph and token URLs, the tenant, the bot's app id (the audience of the
/// notification tokens), a client secret the token endpoint takes, the
/// published keys, and the simulated bot's application instance (so that
/// it may call phone numbers). Printed by `callflow sim-graph`, as
/// `NAME=value` pairs for `callflow serve`'s `CALLFLOW_*` variables.
pub fn serve_environment(config: &SimGraphConfig, base: &str) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("CALLFLOW_GRAPH_URL", base.to_owned()),
        ("CALLFLOW_AUTHORITY_URL", base.to_owned()),
        ("CALLFLOW_TENANT", config.tenant_id.clone()),
        ("CALLFLOW_APP_ID", config.bot_app_id.clone()),
    ];
    if let Some(id) = &config.client_id {
        env.push(("CALLFLOW_CLIENT_ID", id.clone()));
    }
    // Any secret passes unless one was set; that one is not printed.
    env.push((
        "CALLFLOW_CLIENT_SECRET",
        if config.client_secret.is_some() {
            "\"$CALLFLOW_SIM_GRAPH_CLIENT_SECRET\"".to_owned()
        } else {
            "sim-secret".to_owned()
        },
    ));
    env.push((
        "CALLFLOW_OPENID_CONFIG_URL",
        format!("{base}/.well-known/OpenIdConfiguration"),
    ));
    env.push((
        "CALLFLOW_INSTANCES",
        crate::sim::runner::SIM_INSTANCE_ID.to_owned(),
    ));
    env
}

/// The OpenID configuration sim-graph publishes.
fn openid_configuration(shared: &Shared) -> Value {
    json!({
        "issuer": shared.config.issuer,
        "jwks_uri": format!("{}/.well-known/jwks.json", shared.base_url),
        "token_endpoint": format!("{}/{}/oauth2/v2.0/token", shared.base_url, shared.config.tenant_id),
        "id_token_signing_alg_values_supported": ["EdDSA"],
        "token_endpoint_auth_methods_supported": ["client_secret_post"],
    })
}
