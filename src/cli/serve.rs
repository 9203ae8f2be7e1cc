//! `callflow serve`: run flows against Graph's webhook stream, or, with
//! `--simulate`, against an in-process `sim-graph` over loopback HTTP.
//!
//! Options come from flags, then `CALLFLOW_*` environment variables, then
//! an optional config file (`--config FILE`, TOML or YAML, keys spelled as
//! the flags: `callback-path = "/api/calls"`), then defaults. This file only
//! gathers settings, wires [`crate::runtime`], [`crate::server`] and
//! [`crate::graph::client`] together and prints; it holds no rule of the
//! engine.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;

use crate::graph::client::{ClientSecret, Cloud, GraphClient, GraphConfig};
use crate::runtime::{Runtime, RuntimeConfig};
use crate::server::auth::GRAPH_OPENID_CONFIGURATION;
use crate::server::{
    AuthConfig, DEFAULT_CALLBACK_PATH, DEFAULT_MAX_BODY, KeySource, NotificationAuth, ServerConfig,
    ServerState, Verifier,
};
use crate::sim::graph::BOT_APP_ID;
use crate::sim::http::{SimClock, SimGraphConfig, SimGraphServer};

/// The log format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Arguments of `callflow serve`.
#[derive(Debug, Default, Args)]
#[command(
    after_help = "First run, no Microsoft tenant needed: callflow serve --simulate\n\
                        Production: callflow serve --flows flows --public-url https://bot.example.com \
                        --app-id APP --tenant TENANT (secret in CALLFLOW_CLIENT_SECRET, admin token in \
                        CALLFLOW_ADMIN_TOKEN)"
)]
pub struct ServeArgs {
    /// A TOML or YAML file of options (keys as the flags: `public-url`, `max-body`, ...).
    #[arg(long, value_name = "FILE", env = "CALLFLOW_CONFIG")]
    pub config: Option<PathBuf>,
    /// The folder of flow files [default: flows].
    #[arg(long, value_name = "DIR", env = "CALLFLOW_FLOWS")]
    pub flows: Option<PathBuf>,
    /// The address to listen on [default: 127.0.0.1:8080; 127.0.0.1:0 with --simulate].
    #[arg(long, value_name = "ADDR", env = "CALLFLOW_LISTEN")]
    pub listen: Option<String>,
    /// The path Graph posts notifications to [default: /api/calls].
    #[arg(long, value_name = "PATH", env = "CALLFLOW_CALLBACK_PATH")]
    pub callback_path: Option<String>,
    /// This server's public base URL, e.g. `https://bot.example.com`; the callbackUri given to Graph
    /// is this URL plus the callback path (or the URL itself when it already has a path).
    #[arg(long, value_name = "URL", env = "CALLFLOW_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// The bot's application id: the audience of notification tokens.
    #[arg(long, value_name = "ID", env = "CALLFLOW_APP_ID")]
    pub app_id: Option<String>,
    /// The Entra tenant id: token authority, and the only `tid` accepted in notifications.
    #[arg(long, value_name = "ID", env = "CALLFLOW_TENANT")]
    pub tenant: Option<String>,
    /// The client id for Graph tokens [default: the app id].
    #[arg(long, value_name = "ID", env = "CALLFLOW_CLIENT_ID")]
    pub client_id: Option<String>,
    /// The client secret for Graph tokens (prefer the environment variable).
    #[arg(
        long,
        value_name = "SECRET",
        env = "CALLFLOW_CLIENT_SECRET",
        hide_env_values = true
    )]
    pub client_secret: Option<String>,
    /// The Microsoft cloud: global, usgov-l4, usgov-dod, china [default: global].
    #[arg(long, value_name = "CLOUD", env = "CALLFLOW_CLOUD")]
    pub cloud: Option<String>,
    /// Graph's root URL, overriding the cloud's.
    #[arg(long, value_name = "URL", env = "CALLFLOW_GRAPH_URL")]
    pub graph_url: Option<String>,
    /// The token authority URL, overriding the cloud's.
    #[arg(long, value_name = "URL", env = "CALLFLOW_AUTHORITY_URL")]
    pub authority_url: Option<String>,
    /// Where notification keys are listed [default: Graph's OpenID configuration].
    #[arg(
        long,
        value_name = "URL",
        env = "CALLFLOW_OPENID_CONFIG_URL",
        conflicts_with = "jwks_file"
    )]
    pub openid_config_url: Option<String>,
    /// A local JWKS file of notification keys, instead of the OpenID configuration.
    #[arg(long, value_name = "FILE", env = "CALLFLOW_JWKS_FILE")]
    pub jwks_file: Option<PathBuf>,
    /// The bearer token of the admin API and /metrics (prefer the environment variable).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "CALLFLOW_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub admin_token: Option<String>,
    /// The largest notification body, e.g. 1MiB, 512KiB, 65536 [default: 1MiB].
    #[arg(long, value_name = "SIZE", env = "CALLFLOW_MAX_BODY")]
    pub max_body: Option<String>,
    /// Log lines as text or JSON (on stderr) [default: text].
    #[arg(long, value_enum, value_name = "FORMAT", env = "CALLFLOW_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Accept notifications without checking their tokens. Local development only.
    #[arg(long, env = "CALLFLOW_INSECURE_NO_AUTH")]
    pub insecure_no_auth: bool,
    /// Run the bundled flows against an in-process sim-graph, place sample calls, print them.
    #[arg(long)]
    pub simulate: bool,
    /// With --simulate: keep serving after the sample calls end (Ctrl-C stops).
    #[arg(long, requires = "simulate")]
    pub keep_running: bool,
}

/// The options a config file may hold.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileOptions {
    flows: Option<PathBuf>,
    listen: Option<String>,
    callback_path: Option<String>,
    public_url: Option<String>,
    app_id: Option<String>,
    tenant: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    cloud: Option<String>,
    graph_url: Option<String>,
    authority_url: Option<String>,
    openid_config_url: Option<String>,
    jwks_file: Option<PathBuf>,
    admin_token: Option<String>,
    max_body: Option<toml_or_yaml::Size>,
    log_format: Option<LogFormat>,
    insecure_no_auth: Option<bool>,
}

mod toml_or_yaml {
    use serde::Deserialize;

    /// A size written as a number of bytes or as text (`1MiB`).
    #[derive(Debug, Deserialize)]
    #[serde(untagged)]
    pub enum Size {
        Bytes(u64),
        Text(String),
    }
}

/// The settings after flags, environment, file and defaults.
#[derive(Debug)]
pub struct Settings {
    /// The flows folder.
    pub flows: PathBuf,
    /// Whether `flows` was chosen (else the default).
    pub flows_given: bool,
    /// The listen address, if chosen.
    pub listen: Option<String>,
    /// The callback path.
    pub callback_path: String,
    /// The public base URL.
    pub public_url: Option<String>,
    /// The app id.
    pub app_id: Option<String>,
    /// The tenant.
    pub tenant: Option<String>,
    /// The client id.
    pub client_id: Option<String>,
    /// The client secret.
    pub client_secret: Option<ClientSecret>,
    /// The cloud.
    pub cloud: Cloud,
    /// Graph's root URL override.
    pub graph_url: Option<String>,
    /// The authority URL override.
    pub authority_url: Option<String>,
    /// Where keys come from.
    pub keys: KeySource,
    /// The admin token.
    pub admin_token: Option<String>,
    /// The body limit.
    pub max_body: usize,
    /// The log format.
    pub log_format: LogFormat,
    /// Authentication off.
    pub insecure_no_auth: bool,
}

impl ServeArgs {
    /// Merges flags and environment (clap), the config file and defaults.
    ///
    /// # Errors
    ///
    /// A message naming the unreadable file or the wrong value.
    pub fn settings(&self) -> Result<Settings, String> {
        let file = match &self.config {
            Some(path) => read_file(path)?,
            None => FileOptions::default(),
        };
        let pick = |flag: &Option<String>, file: Option<String>| flag.clone().or(file);
        let cloud = match pick(&self.cloud, file.cloud) {
            None => Cloud::Global,
            Some(name) => Cloud::from_name(name.trim()).ok_or_else(|| {
                format!("cloud {name:?}: expected global, usgov-l4, usgov-dod or china")
            })?,
        };
        let max_body = match (&self.max_body, file.max_body) {
            (Some(text), _) => parse_size(text)?,
            (None, Some(toml_or_yaml::Size::Bytes(n))) => usize::try_from(n).unwrap_or(usize::MAX),
            (None, Some(toml_or_yaml::Size::Text(text))) => parse_size(&text)?,
            (None, None) => DEFAULT_MAX_BODY,
        };
        let jwks_file = self.jwks_file.clone().or(file.jwks_file);
        let openid = pick(&self.openid_config_url, file.openid_config_url);
        let keys = match (jwks_file, openid) {
            (Some(_), Some(_)) => {
                return Err("give either openid-config-url or jwks-file, not both".into());
            }
            (Some(path), None) => KeySource::JwksFile(path),
            (None, Some(url)) => KeySource::OpenIdConfiguration(url),
            (None, None) => KeySource::OpenIdConfiguration(GRAPH_OPENID_CONFIGURATION.into()),
        };
        let callback_path = pick(&self.callback_path, file.callback_path)
            .unwrap_or_else(|| DEFAULT_CALLBACK_PATH.into());
        if !callback_path.starts_with('/') || callback_path.contains(['{', '}', '*']) {
            return Err(format!(
                "callback path {callback_path:?} must start with / and hold no {{, }} or *"
            ));
        }
        let flows_chosen = self.flows.clone().or(file.flows);
        Ok(Settings {
            flows_given: flows_chosen.is_some(),
            flows: flows_chosen.unwrap_or_else(|| PathBuf::from("flows")),
            listen: pick(&self.listen, file.listen),
            callback_path,
            public_url: pick(&self.public_url, file.public_url),
            app_id: pick(&self.app_id, file.app_id),
            tenant: pick(&self.tenant, file.tenant),
            client_id: pick(&self.client_id, file.client_id),
            client_secret: pick(&self.client_secret, file.client_secret).map(ClientSecret::new),
            cloud,
            graph_url: pick(&self.graph_url, file.graph_url),
            authority_url: pick(&self.authority_url, file.authority_url),
            keys,
            admin_token: pick(&self.admin_token, file.admin_token).filter(|t| !t.is_empty()),
            max_body,
            log_format: self.log_format.or(file.log_format).unwrap_or_default(),
            insecure_no_auth: self.insecure_no_auth || file.insecure_no_auth.unwrap_or(false),
        })
    }
}

fn read_file(path: &Path) -> Result<FileOptions, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let bad = |e: String| format!("{}: {e}", path.display());
    match ext.as_str() {
        "yaml" | "yml" => serde_saphyr::from_str(&text).map_err(|e| bad(e.to_string())),
        "toml" => toml::from_str(&text).map_err(|e| bad(e.to_string())),
        _ => toml::from_str(&text)
            .or_else(|_| serde_saphyr::from_str(&text))
            .map_err(|e: serde_saphyr::Error| bad(format!("neither TOML nor YAML options: {e}"))),
    }
}

/// `1048576`, `1MiB`, `512KiB`, `1MB`, `64k`.
fn parse_size(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: usize = digits
        .parse()
        .map_err(|_| format!("size {text:?}: expected a number of bytes, e.g. 1MiB or 65536"))?;
    let factor = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1024,
        "m" | "mb" | "mib" => 1024 * 1024,
        _ => {
            return Err(format!(
                "size {text:?}: unknown unit {unit:?} (B, KiB, MiB)"
            ));
        }
    };
    n.checked_mul(factor)
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("size {text:?} is out of range"))
}

fn init_logging(format: LogFormat, default_filter: &str) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    // Colour only on a terminal, and never with NO_COLOR (as every output).
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

/// Runs `callflow serve`.
pub fn run(args: &ServeArgs) -> ExitCode {
    let settings = match args.settings() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
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
    if args.simulate {
        // Warnings, and whether an edit of the flows reloaded (--keep-running).
        init_logging(settings.log_format, "warn,callflow::runtime::reload=info");
        runtime.block_on(simulate::run(settings, args.keep_running))
    } else {
        init_logging(settings.log_format, "info");
        runtime.block_on(production(settings))
    }
}

fn callback_uri(public_url: &str, callback_path: &str) -> Result<String, String> {
    let url = url::Url::parse(public_url).map_err(|e| format!("public URL {public_url:?}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("public URL {public_url:?} must be http(s)"));
    }
    if url.path() == "/" || url.path().is_empty() {
        Ok(format!(
            "{}{callback_path}",
            public_url.trim_end_matches('/')
        ))
    } else {
        Ok(public_url.to_owned())
    }
}

fn runtime_config(flows: PathBuf, callback_uri: String) -> RuntimeConfig {
    RuntimeConfig {
        flows_dir: flows,
        callback_uri,
        reload_debounce: Duration::from_millis(300),
        idle_reap_after: Duration::from_secs(2 * 3600),
        max_sessions: 100_000,
        queue_per_call: 256,
        clock: crate::runtime::Clock::System,
    }
}

fn print_diagnostics(diagnostics: &[crate::flow::Diagnostic]) {
    let style = super::output::Style::detect();
    for d in diagnostics {
        eprint!("{}", style.render(d));
    }
}

async fn production(s: Settings) -> ExitCode {
    let need = |value: &Option<String>, what: &str| {
        value.clone().ok_or_else(|| {
            format!("{what} is required (or try `callflow serve --simulate` for a local demo)")
        })
    };
    let prepared = (|| -> Result<_, String> {
        let public_url = need(&s.public_url, "--public-url (CALLFLOW_PUBLIC_URL)")?;
        let app_id = need(&s.app_id, "--app-id (CALLFLOW_APP_ID)")?;
        let tenant = need(&s.tenant, "--tenant (CALLFLOW_TENANT)")?;
        let secret = s
            .client_secret
            .clone()
            .ok_or("the client secret is required (CALLFLOW_CLIENT_SECRET)")?;
        let client_id = s.client_id.clone().unwrap_or_else(|| app_id.clone());
        let mut graph = GraphConfig::new(s.cloud, tenant.clone(), client_id, secret);
        if let Some(url) = &s.graph_url {
            graph.graph_base_url =
                url::Url::parse(url).map_err(|e| format!("graph URL {url:?}: {e}"))?;
        }
        if let Some(url) = &s.authority_url {
            graph.authority_url =
                url::Url::parse(url).map_err(|e| format!("authority URL {url:?}: {e}"))?;
        }
        let client = GraphClient::new(graph).map_err(|e| e.to_string())?;
        Ok((
            callback_uri(&public_url, &s.callback_path)?,
            app_id,
            tenant,
            client,
        ))
    })();
    let (callback, app_id, tenant, client) = match prepared {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    // The flows first: a designer's mistake is reported before anything
    // reaches the network.
    if !s.flows.exists() {
        eprintln!(
            "error: no flows folder at {} (set --flows DIR or CALLFLOW_FLOWS)",
            s.flows.display()
        );
        return ExitCode::from(2);
    }
    let runtime = match Runtime::start(
        runtime_config(s.flows.clone(), callback.clone()),
        Arc::new(client),
    )
    .await
    {
        Ok(r) => r,
        Err(diagnostics) => {
            print_diagnostics(&diagnostics);
            eprintln!("error: the flows in {} do not load", s.flows.display());
            return ExitCode::FAILURE;
        }
    };
    let auth = if s.insecure_no_auth {
        NotificationAuth::InsecureNoAuth
    } else {
        let mut config = AuthConfig::new(s.keys.clone(), app_id);
        config.tenant = Some(tenant);
        match Verifier::start(config).await {
            Ok(v) => NotificationAuth::Verify(Arc::new(v)),
            Err(e) => {
                eprintln!("error: notification keys: {e}");
                return ExitCode::FAILURE;
            }
        }
    };
    let listen = s.listen.clone().unwrap_or_else(|| "127.0.0.1:8080".into());
    let listener = match TcpListener::bind(&listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
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
        "callflow serving"
    );
    let served = crate::server::serve(listener, state, stop_signal()).await;
    watcher.abort();
    if let Some(h) = hangups {
        h.abort();
    }
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: the server stopped: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Ctrl-C, or SIGTERM on Unix.
async fn stop_signal() {
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

/// SIGHUP reloads the flows.
fn spawn_sighup(runtime: Runtime) -> Option<tokio::task::JoinHandle<()>> {
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

mod simulate {
    //! `serve --simulate`: the whole product on loopback, sample calls, timelines.

    use super::*;

    /// One sample call.
    struct Sample {
        label: &'static str,
        to: &'static str,
        digits: Option<&'static str>,
    }

    const SAMPLES: [Sample; 3] = [
        Sample {
            label: "reception +14255550100, caller presses 1 (sales)",
            to: "+14255550100",
            digits: Some("1"),
        },
        Sample {
            label: "reception +14255550100, caller presses 2 (support)",
            to: "+14255550100",
            digits: Some("2"),
        },
        Sample {
            label: "branch office +12065550180 (open or closed by its calendar)",
            to: "+12065550180",
            digits: None,
        },
    ];

    pub(super) async fn run(s: Settings, keep_running: bool) -> ExitCode {
        match go(s, keep_running).await {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        }
    }

    async fn go(s: Settings, keep_running: bool) -> Result<ExitCode, String> {
        let (flows, temporary) = if s.flows_given || s.flows.is_dir() {
            (s.flows.clone(), false)
        } else {
            (bundled::write()?, true)
        };
        let outcome = demo(&s, flows.clone(), keep_running).await;
        if temporary {
            let _ = std::fs::remove_dir_all(&flows);
        }
        outcome
    }

    async fn demo(s: &Settings, flows: PathBuf, keep_running: bool) -> Result<ExitCode, String> {
        let sim_listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("cannot listen on loopback: {e}"))?;
        let sim = SimGraphServer::start(
            SimGraphConfig {
                clock: SimClock::RealTime { speed: 1.0 },
                ..SimGraphConfig::default()
            },
            sim_listener,
        )
        .await
        .map_err(|e| e.to_string())?;
        let base = sim.base_url().to_owned();
        let listen = s.listen.clone().unwrap_or_else(|| "127.0.0.1:0".into());
        let listener = TcpListener::bind(&listen)
            .await
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let callback = format!("http://{addr}{}", s.callback_path);
        let graph = GraphConfig::new(
            Cloud::Global,
            "sim-tenant",
            BOT_APP_ID,
            ClientSecret::new("sim-secret"),
        )
        .with_base_urls(&base, &base)
        .map_err(|e| e.to_string())?;
        let client = GraphClient::new(graph).map_err(|e| e.to_string())?;
        let mut auth = AuthConfig::new(
            KeySource::OpenIdConfiguration(format!("{base}/.well-known/OpenIdConfiguration")),
            BOT_APP_ID,
        );
        auth.tenant = Some("sim-tenant".into());
        let verifier = Verifier::start(auth).await?;
        let runtime = match Runtime::start(
            runtime_config(flows.clone(), callback.clone()),
            Arc::new(client),
        )
        .await
        {
            Ok(r) => r,
            Err(diagnostics) => {
                print_diagnostics(&diagnostics);
                return Err(format!("the flows in {} do not load", flows.display()));
            }
        };
        let admin_token = s
            .admin_token
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
        let mut config = ServerConfig::new(NotificationAuth::Verify(Arc::new(verifier)));
        config.callback_path = s.callback_path.clone();
        config.max_body = s.max_body;
        config.admin_token = Some(admin_token.clone());
        let state = ServerState::new(config, runtime.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(crate::server::serve(listener, state, async move {
            let _ = stopped.await;
        }));

        println!("callflow serve --simulate");
        println!("  flows         {}", flows.display());
        println!("  sim-graph     {base} (Graph API, tokens, signed notifications)");
        println!(
            "  callback      {callback} (notification tokens verified against sim-graph's keys)"
        );
        println!(
            "  admin API     http://{addr}/api/sessions  (Authorization: Bearer {admin_token})"
        );
        println!();

        let http = reqwest::Client::new();
        let mut calls = Vec::new();
        for (n, sample) in SAMPLES.iter().enumerate() {
            let response = http
                .post(format!("{base}/sim/calls"))
                .json(&json!({
                    "from": { "phone": format!("+1555010{n}") },
                    "to": { "phone": sample.to },
                    "callbackUri": callback,
                }))
                .send()
                .await
                .map_err(|e| format!("sim-graph: placing a call: {e}"))?;
            let call: serde_json::Value = response
                .json()
                .await
                .map_err(|e| format!("sim-graph: placing a call: {e}"))?;
            let id = call
                .get("id")
                .and_then(serde_json::Value::as_str)
                .ok_or("sim-graph gave no call id")?
                .to_owned();
            println!("[call {}] {} placed: {}", n + 1, id, sample.label);
            if let Some(digits) = sample.digits {
                tokio::spawn(press_when_ready(
                    http.clone(),
                    format!("{base}/sim/calls/{id}/press"),
                    digits,
                ));
            }
            calls.push(Watched::new(n + 1, id));
        }

        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        let mut interval = tokio::time::interval(Duration::from_millis(50));
        loop {
            interval.tick().await;
            let states = sim.calls().await;
            for call in &mut calls {
                call.progress(&runtime, &states);
            }
            if calls.iter().all(Watched::finished) {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                println!("some calls did not end in time");
                let _ = stop.send(());
                let _ = server.await;
                return Ok(ExitCode::FAILURE);
            }
        }
        println!();
        println!("all {} sample calls ended", calls.len());
        if keep_running {
            println!(
                "still serving (Ctrl-C stops); place more calls: curl -X POST {base}/sim/calls -H 'content-type: application/json' -d '{{\"from\":{{\"phone\":\"+15550199\"}},\"to\":{{\"phone\":\"+14255550100\"}},\"callbackUri\":\"{callback}\"}}'"
            );
            let watcher = runtime.watch();
            println!(
                "edits to {} reload when saved (a broken edit keeps the old flows serving; \
                 GET /api/flows shows why)",
                flows.display()
            );
            let hangups = super::spawn_sighup(runtime.clone());
            stop_signal().await;
            watcher.abort();
            if let Some(h) = hangups {
                h.abort();
            }
        }
        let _ = stop.send(());
        let _ = server.await;
        let _ = sim.shutdown().await;
        Ok(ExitCode::SUCCESS)
    }

    /// Presses `digits` once the call listens for tones (sim-graph answers
    /// `409` until then).
    async fn press_when_ready(http: reqwest::Client, url: String, digits: &'static str) {
        for _ in 0..400 {
            let pressed = http
                .post(&url)
                .json(&json!({ "digits": digits }))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if pressed {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A sample call and how much of its timeline was printed.
    struct Watched {
        number: usize,
        call_id: String,
        printed: usize,
        ended: bool,
        terminated: bool,
    }

    impl Watched {
        fn new(number: usize, call_id: String) -> Self {
            Watched {
                number,
                call_id,
                printed: 0,
                ended: false,
                terminated: false,
            }
        }

        fn finished(&self) -> bool {
            self.ended && self.terminated
        }

        fn progress(&mut self, runtime: &Runtime, sim_calls: &serde_json::Value) {
            self.terminated = sim_calls
                .get("value")
                .and_then(serde_json::Value::as_array)
                .into_iter()
                .flatten()
                .any(|c| {
                    c.get("id").and_then(serde_json::Value::as_str) == Some(self.call_id.as_str())
                        && c.get("state").and_then(serde_json::Value::as_str) == Some("terminated")
                });
            let Some((entries, ended)) = super::timeline_of(runtime, &self.call_id) else {
                return;
            };
            for entry in entries.iter().skip(self.printed) {
                println!("[call {}] {}", self.number, entry);
            }
            self.printed = self.printed.max(entries.len());
            self.ended = ended;
        }
    }

    mod bundled {
        //! The bundled flows, for a binary run away from the source tree.

        use std::path::PathBuf;

        const FLOWS: [(&str, &str); 7] = [
            (
                "branch-office.yaml",
                include_str!("../../flows/branch-office.yaml"),
            ),
            (
                "escalation.yaml",
                include_str!("../../flows/escalation.yaml"),
            ),
            (
                "group-handoff.yaml",
                include_str!("../../flows/group-handoff.yaml"),
            ),
            ("helpdesk.yaml", include_str!("../../flows/helpdesk.yaml")),
            (
                "meeting-join.yaml",
                include_str!("../../flows/meeting-join.yaml"),
            ),
            (
                "outbound-reminder.yaml",
                include_str!("../../flows/outbound-reminder.yaml"),
            ),
            ("reception.yaml", include_str!("../../flows/reception.yaml")),
        ];

        /// Writes them to a fresh temporary folder.
        pub(super) fn write() -> Result<PathBuf, String> {
            let dir = std::env::temp_dir().join(format!(
                "callflow-simulate-{}",
                uuid::Uuid::new_v4().simple()
            ));
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            for (name, text) in FLOWS {
                std::fs::write(dir.join(name), text)
                    .map_err(|e| format!("cannot write {}: {e}", dir.join(name).display()))?;
            }
            Ok(dir)
        }
    }
}

/// The printable timeline lines of the session(s) of a call, and whether
/// its run ended.
fn timeline_of(runtime: &Runtime, call_id: &str) -> Option<(Vec<String>, bool)> {
    let summary = runtime
        .sessions()
        .into_iter()
        .find(|s| s.calls.iter().any(|c| c == call_id))?;
    let detail = runtime.session(&summary.id)?;
    let start = detail.timeline.first().map(|e| e.at);
    let lines = detail
        .timeline
        .iter()
        .map(|e| {
            let offset = start.map_or(0, |s| (e.at - s).num_milliseconds());
            format!(
                "{:>7.3}s  {:<12} {:<8} {}",
                offset as f64 / 1000.0,
                e.step.as_deref().unwrap_or("-"),
                e.what.kind(),
                e.what
            )
        })
        .collect();
    Some((lines, detail.summary.state == "ended"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1MiB"), Ok(1024 * 1024));
        assert_eq!(parse_size("512KiB"), Ok(512 * 1024));
        assert_eq!(parse_size("65536"), Ok(65536));
        assert!(parse_size("1GiB").is_err());
        assert!(parse_size("0").is_err());
    }

    #[test]
    fn flags_beat_the_file() {
        let dir = std::env::temp_dir().join(format!("callflow-serve-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("serve.toml");
        std::fs::write(
            &path,
            "listen = \"0.0.0.0:9000\"\nmax-body = \"2MiB\"\napp-id = \"from-file\"\n",
        )
        .expect("write");
        let args = ServeArgs {
            config: Some(path.clone()),
            app_id: Some("from-flag".into()),
            ..ServeArgs::default()
        };
        let s = args.settings().expect("settings");
        assert_eq!(s.app_id.as_deref(), Some("from-flag"));
        assert_eq!(s.listen.as_deref(), Some("0.0.0.0:9000"));
        assert_eq!(s.max_body, 2 * 1024 * 1024);
        assert_eq!(s.callback_path, "/api/calls");
        let yaml = dir.join("serve.yaml");
        std::fs::write(&yaml, "callback-path: /hooks/graph\nlog-format: json\n").expect("write");
        let s = ServeArgs {
            config: Some(yaml),
            ..ServeArgs::default()
        }
        .settings()
        .expect("yaml settings");
        assert_eq!(s.callback_path, "/hooks/graph");
        assert_eq!(s.log_format, LogFormat::Json);
        std::fs::write(&path, "lisen = \"x\"\n").expect("write");
        assert!(
            ServeArgs {
                config: Some(path),
                ..ServeArgs::default()
            }
            .settings()
            .is_err()
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn callback_uris() {
        assert_eq!(
            callback_uri("https://bot.example.com/", "/api/calls").as_deref(),
            Ok("https://bot.example.com/api/calls")
        );
        assert_eq!(
            callback_uri("https://bot.example.com/hooks/x", "/api/calls").as_deref(),
            Ok("https://bot.example.com/hooks/x")
        );
    }
}
