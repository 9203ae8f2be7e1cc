//! `callflow serve`: run flows against Graph's webhook stream, or, with
//! `--simulate`, against an in-process `sim-graph` over loopback HTTP.
//!
//! Thin: the flags (clap reads each one's `CALLFLOW_*` variable too) become
//! the top layer of [`crate::serve::Settings`] (over the config file and the
//! defaults); [`crate::serve::production`] or [`crate::serve::demo`] does
//! the rest, and this file prints what they report.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::engine::Instance;
use crate::serve::{LogFormat, ServeError, ServeOptions, Settings, Size};

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
    /// is this URL plus the callback path. A URL with a path (`https://bot.example.com/hooks/graph`)
    /// is served at that path, and a --callback-path that says otherwise is refused.
    #[arg(long, value_name = "URL", env = "CALLFLOW_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// The bot's application id: the audience of notification tokens.
    #[arg(long, value_name = "ID", env = "CALLFLOW_APP_ID")]
    pub app_id: Option<String>,
    /// The Entra tenant id: token authority, the only `tid` accepted in notifications, and the
    /// `tenantId` of every call the bot places.
    #[arg(long, value_name = "ID", env = "CALLFLOW_TENANT")]
    pub tenant: Option<String>,
    /// The bot's display name, as Graph shows it on the calls it places.
    #[arg(long, value_name = "NAME", env = "CALLFLOW_BOT_NAME")]
    pub bot_name: Option<String>,
    /// An application instance (resource account) of the bot: `ID[,+NUMBER[,NAME]]`
    /// (repeatable; the first is the default). A session speaks as the instance its call reached;
    /// calls to and transfers to phone numbers need one.
    #[arg(
        long = "instance",
        value_name = "ID[,+NUMBER[,NAME]]",
        env = "CALLFLOW_INSTANCES",
        value_delimiter = ';'
    )]
    pub instances: Vec<Instance>,
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
    /// Where live sessions are kept: sqlite:PATH, postgres://USER@HOST/DB (several instances
    /// may share it), or memory (nothing survives a restart) [default: sqlite:DATA_DIR/callflow.db].
    #[arg(long, value_name = "URL", env = "CALLFLOW_STORE")]
    pub store: Option<String>,
    /// The folder of the default store [default: ./callflow-data].
    #[arg(long, value_name = "DIR", env = "CALLFLOW_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// How long ended sessions stay in the store, e.g. 7d, 12h [default: 7d].
    #[arg(long, value_name = "DURATION", env = "CALLFLOW_KEEP_ENDED")]
    pub keep_ended: Option<String>,
    /// How long a session waiting with nothing in flight stays in memory before it is evicted to
    /// the store (loaded back by its next notification or timer); 0 or off keeps every session in
    /// memory. Not with PostgreSQL [default: 30s].
    #[arg(long, value_name = "DURATION", env = "CALLFLOW_EVICT_AFTER")]
    pub evict_after: Option<String>,
    /// Where `record` steps deliver recordings: a folder, or an http(s) URL to POST each to
    /// [default: DATA_DIR/recordings].
    #[arg(long, value_name = "DIR|URL", env = "CALLFLOW_RECORDINGS")]
    pub recordings: Option<String>,
    /// A host `fetch` steps may ask (repeat, or comma-separate in the environment):
    /// crm.contoso.com, *.contoso.com, 127.0.0.1:8081 [default: none]. Secrets their headers read
    /// come from the config file's [secrets] table or CALLFLOW_SECRET_<NAME>.
    #[arg(
        long,
        value_name = "HOST",
        env = "CALLFLOW_FETCH_ALLOW",
        value_delimiter = ','
    )]
    pub fetch_allow: Vec<String>,
    /// The largest answer a `fetch` reads, e.g. 64KiB [default: 64KiB].
    #[arg(long, value_name = "SIZE", env = "CALLFLOW_FETCH_MAX_BYTES")]
    pub fetch_max_bytes: Option<String>,
    /// This instance's name among those sharing a PostgreSQL store [default: HOSTNAME:PORT].
    #[arg(long, value_name = "NAME", env = "CALLFLOW_NODE")]
    pub node: Option<String>,
    /// With a PostgreSQL store: how long a session's lease lasts; when an instance dies, another
    /// takes its calls over within the lease and a third of it [default: 7s].
    #[arg(long, value_name = "DURATION", env = "CALLFLOW_LEASE")]
    pub lease: Option<String>,
    /// Run the bundled flows against an in-process sim-graph, place sample calls, print them.
    #[arg(long)]
    pub simulate: bool,
    /// With --simulate: keep serving after the sample calls end (Ctrl-C stops).
    #[arg(long, requires = "simulate")]
    pub keep_running: bool,
}

impl ServeArgs {
    /// The command line (flags and environment) as the top layer of settings.
    pub fn options(&self) -> ServeOptions {
        ServeOptions {
            flows: self.flows.clone(),
            listen: self.listen.clone(),
            callback_path: self.callback_path.clone(),
            public_url: self.public_url.clone(),
            app_id: self.app_id.clone(),
            tenant: self.tenant.clone(),
            bot_name: self.bot_name.clone(),
            instances: (!self.instances.is_empty()).then(|| self.instances.clone()),
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone(),
            cloud: self.cloud.clone(),
            graph_url: self.graph_url.clone(),
            authority_url: self.authority_url.clone(),
            openid_config_url: self.openid_config_url.clone(),
            jwks_file: self.jwks_file.clone(),
            admin_token: self.admin_token.clone(),
            max_body: self.max_body.clone().map(Size::Text),
            log_format: self.log_format,
            insecure_no_auth: self.insecure_no_auth.then_some(true),
            store: self.store.clone(),
            data_dir: self.data_dir.clone(),
            keep_ended: self.keep_ended.clone(),
            evict_after: self.evict_after.clone(),
            recordings: self.recordings.clone(),
            fetch_allow: (!self.fetch_allow.is_empty()).then(|| self.fetch_allow.clone()),
            fetch_max_bytes: self.fetch_max_bytes.clone().map(Size::Text),
            secrets: None,
            node: self.node.clone(),
            lease: self.lease.clone(),
        }
    }

    /// The settings: these flags over the config file over the defaults.
    ///
    /// # Errors
    ///
    /// A message naming the unreadable file or the wrong value.
    pub fn settings(&self) -> Result<Settings, String> {
        Settings::layered(&self.options(), self.config.as_deref())
    }
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
    let runtime = match crate::alloc::runtime_builder().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: the async runtime would not start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = if args.simulate {
        // Warnings, and whether an edit of the flows reloaded (--keep-running).
        crate::serve::init_logging(settings.log_format, "warn,callflow::runtime::reload=info");
        let mut out = std::io::stdout();
        runtime
            .block_on(crate::serve::demo::run(
                &settings,
                args.keep_running,
                &mut out,
            ))
            .map(|finished| {
                if finished {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            })
    } else {
        crate::serve::init_logging(settings.log_format, "info");
        runtime
            .block_on(crate::serve::production(settings))
            .map(|()| ExitCode::SUCCESS)
    };
    match outcome {
        Ok(code) => code,
        Err(ServeError::Flows { dir, diagnostics }) => {
            let style = super::output::Style::detect();
            for d in &diagnostics {
                eprint!("{}", style.render(d));
            }
            eprintln!("error: the flows in {} do not load", dir.display());
            ExitCode::FAILURE
        }
        Err(ServeError::Usage(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
        Err(ServeError::Failed(e)) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
