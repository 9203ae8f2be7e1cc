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
//! | `GET /api/sessions`, `/api/sessions/{id}` | live sessions, one session's detail (admin token) |
//!
//! This is the only module that knows axum on the production side; it must
//! never interpret a notification or a flow (the runtime does), and never
//! log a token.

mod admin;
pub mod auth;
mod callback;
mod error;
mod metrics;

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
        .route("/api/sessions", get(admin::sessions))
        .route("/api/sessions/{id}", get(admin::session))
        .fallback(admin::not_found)
        .method_not_allowed_fallback(admin::method_not_allowed)
        .with_state(state)
}

/// Serves `state` on `listener` until `shutdown` completes; then stops
/// intake, finishes the requests in flight and shuts the runtime down
/// (its in-flight work included).
///
/// # Errors
///
/// The listener's I/O error.
pub async fn serve(
    listener: TcpListener,
    state: ServerState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state.clone());
    let closing = state.clone();
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutting down: intake stopped, finishing work in flight");
            closing.close_intake();
        })
        .await;
    state.close_intake();
    state.runtime().clone().shutdown().await;
    tracing::info!("stopped");
    served
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
