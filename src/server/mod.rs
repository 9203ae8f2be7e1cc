//! `callflow serve`'s HTTP side: the callback Graph posts to, notification
//! authentication, the admin API and metrics.
//!
//! [`router`] builds the axum [`Router`] over a [`ServerState`] (the
//! [`Runtime`], the [`ServerConfig`], intake state and counters); [`serve`]
//! runs it on a listener the caller gives until a shutdown future the
//! caller gives completes, then stops intake (the callback answers `503`),
//! lets requests in flight finish and shuts the runtime down, so that tests
//! drive it on `127.0.0.1:0` without signals or sleeps.
//!
//! | route | what |
//! | --- | --- |
//! | `POST {callback_path}` (default `/api/calls`) | Graph's notifications: `202` once authenticated, parsed and queued |
//! | `GET /healthz` | `200` while the process serves |
//! | `GET /readyz` | `200` once flows are loaded, `503` while shutting down |
//! | `GET /metrics` | Prometheus text (admin token) |
//! | `GET /api/flows` | the loaded flows, version, last reload error (admin token) |
//! | `POST /api/flows/{flow}/runs` | starts an `api` flow with JSON params (admin token) |
//! | `GET /api/sessions`, `/api/sessions/{id}` | live then ended sessions (ended ones read back from the store), one session's detail (admin token) |
//! | `GET /api/sessions/{id}/scenario` | a stored call as a replay scenario (admin token) |
//! | `GET /ui/` and `/ui/api/…` | the studio, read-only, with live sessions (admin token or its cookie; [`ui`]) |
//!
//! This is the only module that knows axum on the production side; it must
//! never interpret a notification or a flow (the runtime does), and never
//! log a token.

mod admin;
pub mod auth;
mod callback;
mod error;
mod metrics;
pub mod ui;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::{get, post};
use tokio::net::TcpListener;

use crate::runtime::Runtime;

pub use auth::{AuthConfig, AuthError, KeySource, NotificationAuth, Verifier};
pub use error::ApiError;

/// The default callback path.
pub const DEFAULT_CALLBACK_PATH: &str = "/api/calls";

/// The default largest callback body: 1 MiB.
pub const DEFAULT_MAX_BODY: usize = 1024 * 1024;

/// How long a client may take to send a request's headers, by default.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one request may take, its body included, by default: Graph
/// sends a callback body of a few KiB at once, so a body still arriving
/// after this is stalled or hostile.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a graceful stop waits for requests in flight, by default.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// How the HTTP side is set up.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Where Graph posts notifications (`/api/calls`).
    pub callback_path: String,
    /// The largest callback body accepted, in bytes.
    pub max_body: usize,
    /// The bearer token of the admin routes; without one they answer `401`.
    pub admin_token: Option<String>,
    /// How notification tokens are checked.
    pub auth: NotificationAuth,
    /// The shortest time between two "authentication is off" warnings.
    pub insecure_warn_every: Duration,
    /// How long a client may take to send a request's headers.
    pub header_timeout: Duration,
    /// How long one request may take, its body included (`408` after).
    pub request_timeout: Duration,
    /// How long a graceful stop waits for requests in flight before it
    /// closes the connections that still hold one.
    pub shutdown_grace: Duration,
}

impl ServerConfig {
    /// Defaults around `auth`: `/api/calls`, 1 MiB, no admin token.
    pub fn new(auth: NotificationAuth) -> Self {
        ServerConfig {
            callback_path: DEFAULT_CALLBACK_PATH.into(),
            max_body: DEFAULT_MAX_BODY,
            admin_token: None,
            auth,
            insecure_warn_every: Duration::from_secs(60),
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
        }
    }
}

/// Counters the server keeps itself (the runtime keeps the rest).
#[derive(Debug, Default)]
pub struct ServerStats {
    callbacks: Mutex<Vec<(u16, u64)>>,
    admin_refused: AtomicU64,
    /// Entries of accepted callback bodies that did not read, by reason.
    refused_entries: Mutex<Vec<(&'static str, u64)>>,
    /// Legacy (Skype calling) first notifications answered `204`.
    legacy: AtomicU64,
}

impl ServerStats {
    pub(crate) fn count_callback(&self, status: u16) {
        let mut counts = self
            .callbacks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match counts.iter_mut().find(|(s, _)| *s == status) {
            Some((_, n)) => *n += 1,
            None => {
                counts.push((status, 1));
                counts.sort_unstable();
            }
        }
    }

    pub(crate) fn count_refused_entry(&self, reason: &'static str) {
        let mut counts = self
            .refused_entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match counts.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, n)) => *n += 1,
            None => {
                counts.push((reason, 1));
                counts.sort_unstable();
            }
        }
    }

    pub(crate) fn count_legacy(&self) {
        self.legacy.fetch_add(1, Ordering::Relaxed);
    }

    /// Notifications in callback bodies that did not read, by reason
    /// (`bad_payload`, `bad_resource`, …); their neighbours were applied.
    pub fn refused_entries(&self) -> Vec<(&'static str, u64)> {
        self.refused_entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Legacy (Skype calling) notifications answered `204 No Content`.
    pub fn legacy(&self) -> u64 {
        self.legacy.load(Ordering::Relaxed)
    }

    /// Callback requests answered, by status.
    pub fn callbacks(&self) -> Vec<(u16, u64)> {
        self.callbacks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Admin requests refused for a missing or wrong token.
    pub fn admin_refused(&self) -> u64 {
        self.admin_refused.load(Ordering::Relaxed)
    }
}

struct Inner {
    config: ServerConfig,
    runtime: Runtime,
    closing: AtomicBool,
    stats: ServerStats,
    insecure_warned: Mutex<Option<Instant>>,
}

/// What every handler shares; cheap to clone.
#[derive(Clone)]
pub struct ServerState {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ServerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerState")
            .field("callback_path", &self.inner.config.callback_path)
            .field("closing", &self.is_closing())
            .finish_non_exhaustive()
    }
}

impl ServerState {
    /// The state of a server in front of `runtime`.
    pub fn new(config: ServerConfig, runtime: Runtime) -> Self {
        if matches!(config.auth, NotificationAuth::InsecureNoAuth) {
            tracing::warn!(
                "NOTIFICATION AUTHENTICATION IS OFF (--insecure-no-auth): anyone who can reach \
                 this server can drive its calls. Use this for local development only."
            );
        }
        ServerState {
            inner: Arc::new(Inner {
                config,
                runtime,
                closing: AtomicBool::new(false),
                stats: ServerStats::default(),
                insecure_warned: Mutex::new(None),
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    /// The runtime behind the server.
    pub fn runtime(&self) -> &Runtime {
        &self.inner.runtime
    }

    /// The server's own counters.
    pub fn stats(&self) -> &ServerStats {
        &self.inner.stats
    }

    /// Whether intake is stopped (shutdown has begun).
    pub fn is_closing(&self) -> bool {
        self.inner.closing.load(Ordering::SeqCst)
    }

    /// Stops intake: the callback answers `503` from now on.
    pub fn close_intake(&self) {
        self.inner.closing.store(true, Ordering::SeqCst);
    }

    /// Warns that authentication is off, at most once per
    /// [`ServerConfig::insecure_warn_every`].
    pub(crate) fn warn_insecure(&self) {
        let mut last = self
            .inner
            .insecure_warned
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if last.is_none_or(|t| t.elapsed() >= self.inner.config.insecure_warn_every) {
            *last = Some(Instant::now());
            tracing::warn!(
                "accepted a notification WITHOUT checking its token (--insecure-no-auth)"
            );
        }
    }
}

/// The server's routes over `state`.
pub fn router(state: ServerState) -> Router {
    let callback_path = state.config().callback_path.clone();
    Router::new()
        .route(&callback_path, post(callback::receive))
        .route("/healthz", get(admin::healthz))
        .route("/readyz", get(admin::readyz))
        .route("/metrics", get(admin::metrics))
        .route("/api/flows", get(admin::flows))
        .route("/api/flows/{flow}/runs", post(admin::start_run))
        .route("/api/cluster", get(admin::cluster))
        .route("/api/sessions", get(admin::sessions))
        .route("/api/sessions/{id}", get(admin::session))
        .route("/api/sessions/{id}/scenario", get(admin::session_scenario))
        .fallback(admin::not_found)
        .method_not_allowed_fallback(admin::method_not_allowed)
        .with_state(state.clone())
        .merge(ui::routes(state))
}

/// Serves `state` on `listener` until `shutdown` completes; then stops
/// intake, finishes the requests in flight (for at most
/// [`ServerConfig::shutdown_grace`]; connections still busy then are
/// closed) and shuts the runtime down (its in-flight work included).
///
/// Reads are bounded: a client that does not send its headers within
/// [`ServerConfig::header_timeout`] is disconnected, and a request (its
/// body included) that takes longer than [`ServerConfig::request_timeout`]
/// is answered `408`, so a slow or stalled client can hold neither a
/// connection nor a graceful stop.
///
/// # Errors
///
/// The listener's I/O error.
pub async fn serve(
    listener: TcpListener,
    state: ServerState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let config = state.config().clone();
    let app = router(state.clone()).layer(tower_http::timeout::TimeoutLayer::with_status_code(
        axum::http::StatusCode::REQUEST_TIMEOUT,
        config.request_timeout,
    ));
    let (stopping, stop_rx) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((io, _peer)) => {
                    connections.spawn(connection(io, app.clone(), config.header_timeout, stop_rx.clone()));
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    tracing::info!("shutting down: intake stopped, finishing work in flight");
    state.close_intake();
    // While the runtime finishes what it took (and stores it), the server
    // still answers: a notification now gets `503` with `Retry-After`, so
    // that Graph posts it again (to the next instance, or to this one
    // restarted), instead of a refused connection. Bounded by the grace.
    let runtime = state.runtime().clone();
    let mut finished = std::pin::pin!(tokio::time::timeout(
        config.shutdown_grace,
        tokio::spawn(async move { runtime.shutdown().await }),
    ));
    loop {
        tokio::select! {
            _ = &mut finished => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((io, _peer)) => {
                    connections.spawn(connection(io, app.clone(), config.header_timeout, stop_rx.clone()));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            },
        }
    }
    drop(listener);
    let _ = stopping.send(true);
    let drained = tokio::time::timeout(config.shutdown_grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = connections.len(),
            grace = ?config.shutdown_grace,
            "connections still busy after the grace period are closed"
        );
        connections.shutdown().await;
    }
    // Already done, unless the grace ran out first.
    state.runtime().clone().shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

/// Serves one connection: headers within `header_timeout`; a graceful
/// close when `stop` turns true.
async fn connection(
    io: tokio::net::TcpStream,
    app: Router,
    header_timeout: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use tower::ServiceExt;
    let service =
        hyper_util::service::TowerToHyperService::new(app.map_request(
            |r: axum::http::Request<hyper::body::Incoming>| r.map(axum::body::Body::new),
        ));
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    builder.http2().timer(TokioTimer::new());
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    let mut conn = std::pin::pin!(conn);
    let ended = tokio::select! {
        result = conn.as_mut() => Some(result),
        stopping = async { stop.wait_for(|s| *s).await.is_ok() } => {
            if stopping {
                conn.as_mut().graceful_shutdown();
            }
            None
        }
    };
    // After a graceful close begins, the connection runs to its end (or
    // until the server aborts it).
    let result = match ended {
        Some(result) => result,
        None => conn.as_mut().await,
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection closed with an error");
    }
}

/// Compares two secrets in constant time: both are hashed, and the
/// digests compared without an early exit, so neither content nor length
/// leaks through timing.
pub(crate) fn same_secret(given: &str, expected: &str) -> bool {
    use sha2::{Digest, Sha256};
    let a = Sha256::digest(given.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}
