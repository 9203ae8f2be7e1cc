//! `callflow serve` as a library: the production wiring, the demo of
//! `serve --simulate`, and the pieces `callflow load` shares with them.
//!
//! - [`settings`]: the typed, layered settings (flags, `CALLFLOW_*`
//!   environment, config file, defaults).
//! - [`production`]: the runtime, the Graph client and the webhook server
//!   wired from [`Settings`], serving until a signal.
//! - [`demo`]: `serve --simulate`: the same wiring against an in-process
//!   sim-graph, sample calls placed through its control API, and a
//!   narration of what each call really did.
//! - [`admin`]: a client of a running server's admin API (`callflow run`).
//! - [`wire_to_sim_graph`]: the server, runtime and real Graph client
//!   wired to a sim-graph at some base URL (the demo's and the load test's).
//!
//! This module wires and reports; it holds no rule of the engine, parses no
//! notification and serves no route itself (that is [`crate::server`]).

pub mod admin;
pub mod demo;
pub mod settings;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::engine::BotIdentity;
use crate::flow::Diagnostic;
use crate::graph::client::{ClientSecret, Cloud, GraphClient, GraphConfig};
use crate::runtime::{Clock, Runtime, RuntimeConfig};
use crate::server::{AuthConfig, KeySource, NotificationAuth, ServerConfig, ServerState, Verifier};
use crate::sim::graph::BOT_APP_ID;

pub use settings::{LogFormat, ServeOptions, Settings, Size, parse_size};

/// Why `serve` could not start or stopped.
#[derive(Debug)]
pub enum ServeError {
    /// The settings are incomplete or wrong (exit status 2).
    Usage(String),
    /// The flows do not load: every diagnostic.
    Flows {
        /// The folder.
        dir: PathBuf,
        /// What is wrong.
        diagnostics: Vec<Diagnostic>,
    },
    /// Anything else (exit status 1).
    Failed(String),
}

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServeError::Usage(m) | ServeError::Failed(m) => f.write_str(m),
            ServeError::Flows { dir, .. } => {
                write!(f, "the flows in {} do not load", dir.display())
            }
        }
    }
}

/// The runtime configuration `serve` uses.
pub fn runtime_config(flows: PathBuf, callback_uri: String, bot: BotIdentity) -> RuntimeConfig {
    RuntimeConfig {
        flows_dir: flows,
        callback_uri,
        bot,
        reload_debounce: Duration::from_millis(300),
        idle_reap_after: Duration::from_secs(2 * 3600),
        max_sessions: 100_000,
        queue_per_call: 256,
        clock: Clock::System,
        ..RuntimeConfig::default()
    }
}

/// Sets up logging on stderr: `format`, filtered by `RUST_LOG` or else
/// `default_filter`; colour only on a terminal without `NO_COLOR`.
pub fn init_logging(format: LogFormat, default_filter: &str) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Serves production from `settings` until Ctrl-C or SIGTERM.
///
/// # Errors
///
/// [`ServeError`]: what is missing or wrong, the flows' diagnostics, or
/// why the server stopped.
pub async fn production(s: Settings) -> Result<(), ServeError> {
    let need = |value: &Option<String>, what: &str| {
        value.clone().ok_or_else(|| {
            ServeError::Usage(format!(
                "{what} is required (or try `callflow serve --simulate` for a local demo)"
            ))
        })
    };
    need(&s.public_url, "--public-url (CALLFLOW_PUBLIC_URL)")?;
    let app_id = need(&s.app_id, "--app-id (CALLFLOW_APP_ID)")?;
    let tenant = need(&s.tenant, "--tenant (CALLFLOW_TENANT)")?;
    let callback = s.callback_uri().map_err(ServeError::Usage)?;
    let secret = s.client_secret.clone().ok_or_else(|| {
        ServeError::Usage("the client secret is required (CALLFLOW_CLIENT_SECRET)".into())
    })?;
    let client_id = s.client_id.clone().unwrap_or_else(|| app_id.clone());
    let mut graph = GraphConfig::new(s.cloud, tenant.clone(), client_id, secret);
    if let Some(url) = &s.graph_url {
        graph.graph_base_url = url::Url::parse(url)
            .map_err(|e| ServeError::Usage(format!("graph URL {url:?}: {e}")))?;
    }
    if let Some(url) = &s.authority_url {
        graph.authority_url = url::Url::parse(url)
            .map_err(|e| ServeError::Usage(format!("authority URL {url:?}: {e}")))?;
    }
    graph.recordings = Some(s.recordings.clone());
    let client = GraphClient::new(graph).map_err(|e| ServeError::Usage(e.to_string()))?;
    // The flows first: a designer's mistake is reported before anything
    // reaches the network.
    if !s.flows.exists() {
        return Err(ServeError::Usage(format!(
            "no flows folder at {} (set --flows DIR or CALLFLOW_FLOWS)",
            s.flows.display()
        )));
    }
    if s.instances.is_empty() {
        tracing::warn!(
            "no application instance configured (--instance, or [[instances]] in the config \
             file): calls to and transfers to phone numbers will be refused by Graph"
        );
    }
    let (store, cluster) = open_store_as(&s.store, &s.node, s.lease)?;
    let mut config = runtime_config(s.flows.clone(), callback.clone(), s.bot_identity());
    config.store = store;
    config.cluster = cluster;
    config.keep_ended = s.keep_ended;
    config.evict_after = s.evict_after;
    match (s.evict_after, &config.cluster, config.store.durable()) {
        (Some(after), None, true) => tracing::info!(
            after = %humantime::format_duration(after),
            "idle sessions are evicted to the store after this long (--evict-after)"
        ),
        (Some(_), Some(_), _) => tracing::info!(
            "idle sessions stay in memory with PostgreSQL (--evict-after applies to SQLite)"
        ),
        _ => {}
    }
    let fetch = s.fetch.clone().with_env_secrets(std::env::vars());
    if fetch.allow.is_empty() {
        tracing::info!("no host allowed for fetch steps (--fetch-allow): they take on_failure");
    }
    config.fetch = Some(Arc::new(
        crate::runtime::Fetcher::new(fetch).map_err(ServeError::Usage)?,
    ));
    let runtime = Runtime::start(config, Arc::new(client))
        .await
        .map_err(|diagnostics| ServeError::Flows {
            dir: s.flows.clone(),
            diagnostics,
        })?;
    let recovered = runtime
        .recover()
        .await
        .map_err(|e| ServeError::Usage(format!("the session store {}: {e}", s.store)))?;
    let auth = if s.insecure_no_auth {
        NotificationAuth::InsecureNoAuth
    } else {
        let mut config = AuthConfig::new(s.keys.clone(), app_id);
        config.tenant = Some(tenant);
        let verifier = Verifier::start(config)
            .await
            .map_err(|e| ServeError::Failed(format!("notification keys: {e}")))?;
        NotificationAuth::Verify(Arc::new(verifier))
    };
    let listen = s.listen.clone().unwrap_or_else(|| "127.0.0.1:8080".into());
    let listener = TcpListener::bind(&listen)
        .await
        .map_err(|e| ServeError::Failed(format!("cannot listen on {listen}: {e}")))?;
    let watcher = runtime.watch();
    let mut config = ServerConfig::new(auth);
    config.callback_path = s.callback_path.clone();
    config.max_body = s.max_body;
    config.admin_token = s.admin_token.clone();
    if config.admin_token.is_none() {
        tracing::warn!(
            "no admin token (CALLFLOW_ADMIN_TOKEN): the admin API and /metrics are closed"
        );
    }
    let state = ServerState::new(config, runtime.clone());
    let hangups = spawn_sighup(runtime.clone());
    tracing::info!(
        listen = %listener.local_addr().map(|a| a.to_string()).unwrap_or(listen),
        callback = %callback,
        flows = %s.flows.display(),
        store = %s.store,
        recovered,
        "callflow serving"
    );
    let served = crate::server::serve(listener, state, stop_signal()).await;
    watcher.abort();
    if let Some(h) = hangups {
        h.abort();
    }
    served.map_err(|e| ServeError::Failed(format!("the server stopped: {e}")))
}

/// Opens the session store `url`; a store that cannot be opened (locked by
/// another server, corrupt, written by a newer callflow) is a usage error
/// (exit status 2), and nothing in it is changed. The memory store says
/// that nothing survives a restart.
///
/// # Errors
///
/// [`ServeError::Usage`] with the store's message.
pub fn open_store(
    url: &crate::runtime::StoreUrl,
) -> Result<crate::runtime::StoreHandle, ServeError> {
    let store = url.open().map_err(|e| ServeError::Usage(e.to_string()))?;
    if store.durable() {
        tracing::info!(store = %url, "sessions are stored: calls survive a restart");
    } else {
        tracing::warn!(
            "the session store is memory: nothing survives a restart (calls in progress are lost \
             if this process stops); use --store sqlite:PATH, the default, to keep them"
        );
    }
    Ok(crate::runtime::StoreHandle(store))
}

/// [`open_store`], joining the cluster as `node` (leases of `lease`) when
/// the store is PostgreSQL.
///
/// # Errors
///
/// [`ServeError::Usage`] with the store's message.
pub fn open_store_as(
    url: &crate::runtime::StoreUrl,
    node: &str,
    lease: std::time::Duration,
) -> Result<
    (
        crate::runtime::StoreHandle,
        Option<Arc<crate::runtime::cluster::Cluster>>,
    ),
    ServeError,
> {
    let crate::runtime::StoreUrl::Postgres(text) = url else {
        return Ok((open_store(url)?, None));
    };
    let store = crate::runtime::store::postgres::PostgresStore::open_as(text, node, lease)
        .map_err(|e| ServeError::Usage(e.to_string()))?;
    let cluster = store.cluster();
    tracing::info!(store = %url, node, lease = %humantime::format_duration(lease),
        "sessions are stored in PostgreSQL: calls survive a restart, and other instances on it \
         share the calls");
    Ok((crate::runtime::StoreHandle(Arc::new(store)), Some(cluster)))
}

/// Ctrl-C, or SIGTERM on Unix.
pub async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// SIGHUP reloads the flows (Unix); the task, to abort when done.
pub fn spawn_sighup(runtime: Runtime) -> Option<tokio::task::JoinHandle<()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = signal(SignalKind::hangup()).ok()?;
        Some(tokio::spawn(async move {
            while hup.recv().await.is_some() {
                let outcome = runtime.reload();
                if outcome.ok {
                    tracing::info!(
                        version = outcome.version,
                        flows = outcome.flows,
                        "SIGHUP: flows reloaded"
                    );
                } else {
                    tracing::warn!(
                        version = outcome.version,
                        errors = outcome.errors,
                        "SIGHUP: the flows have errors; the old set keeps serving"
                    );
                }
            }
        }))
    }
    #[cfg(not(unix))]
    {
        let _ = runtime;
        None
    }
}

/// The tenant sim-graph uses by default (its token path and `tid`).
pub const SIM_GRAPH_TENANT: &str = "sim-tenant";

/// Who the bot is against a default sim-graph: its application, tenant,
/// and one application instance (so that it may call phone numbers).
pub fn sim_graph_identity() -> BotIdentity {
    BotIdentity {
        tenant_id: Some(SIM_GRAPH_TENANT.into()),
        ..crate::sim::default_identity()
    }
}

/// The server side wired to a sim-graph: the runtime and the server state
/// (not yet serving), and the callback URI it gave Graph.
pub struct SimWired {
    /// The runtime.
    pub runtime: Runtime,
    /// The server's state, for [`crate::server::serve`].
    pub state: ServerState,
    /// Where sim-graph posts the notifications.
    pub callback: String,
}

/// How [`wire_to_sim_graph`] sets the server up.
#[derive(Clone, Debug)]
pub struct SimWiring {
    /// sim-graph's base URL (Graph, token authority and keys).
    pub base: String,
    /// The flows folder.
    pub flows: PathBuf,
    /// The callback path.
    pub callback_path: String,
    /// The largest body.
    pub max_body: usize,
    /// The admin token, if any.
    pub admin_token: Option<String>,
    /// The most live sessions.
    pub max_sessions: usize,
    /// Where sessions are kept (a durable store is recovered from at start).
    pub store: crate::runtime::StoreHandle,
    /// Where `record` steps deliver recordings (`None`: they fail).
    pub recordings: Option<crate::graph::client::recordings::RecordingDelivery>,
    /// Who makes `fetch` requests (`None`: they take `on_failure`).
    pub fetch: Option<Arc<crate::runtime::Fetcher>>,
    /// How long an idle session stays in memory (a durable store only;
    /// `None`: always).
    pub evict_after: Option<Duration>,
}

/// The real Graph client, notification verifier, runtime and server state,
/// wired to sim-graph at `w.base` (notification tokens verified against the
/// keys sim-graph publishes) for a server listening at `addr`.
///
/// # Errors
///
/// [`ServeError`]: the flows' diagnostics, or what would not start.
pub async fn wire_to_sim_graph(
    w: &SimWiring,
    addr: std::net::SocketAddr,
) -> Result<SimWired, ServeError> {
    let failed = |e: String| ServeError::Failed(e);
    let callback = format!("http://{addr}{}", w.callback_path);
    let graph = GraphConfig::new(
        Cloud::Global,
        SIM_GRAPH_TENANT,
        BOT_APP_ID,
        ClientSecret::new("sim-secret"),
    )
    .with_base_urls(&w.base, &w.base)
    .map_err(|e| failed(e.to_string()))?;
    let mut graph = graph;
    graph.recordings = w.recordings.clone();
    let client = GraphClient::new(graph).map_err(|e| failed(e.to_string()))?;
    let mut auth = AuthConfig::new(
        KeySource::OpenIdConfiguration(format!("{}/.well-known/OpenIdConfiguration", w.base)),
        BOT_APP_ID,
    );
    auth.tenant = Some(SIM_GRAPH_TENANT.into());
    let verifier = Verifier::start(auth).await.map_err(failed)?;
    let mut config = runtime_config(w.flows.clone(), callback.clone(), sim_graph_identity());
    config.max_sessions = w.max_sessions;
    config.store = w.store.clone();
    config.fetch = w.fetch.clone();
    config.evict_after = w.evict_after;
    let runtime = Runtime::start(config, Arc::new(client))
        .await
        .map_err(|diagnostics| ServeError::Flows {
            dir: w.flows.clone(),
            diagnostics,
        })?;
    runtime
        .recover()
        .await
        .map_err(|e| failed(format!("the session store: {e}")))?;
    let mut server = ServerConfig::new(NotificationAuth::Verify(Arc::new(verifier)));
    server.callback_path = w.callback_path.clone();
    server.max_body = w.max_body;
    server.admin_token = w.admin_token.clone();
    let state = ServerState::new(server, runtime.clone());
    Ok(SimWired {
        runtime,
        state,
        callback,
    })
}
