//! `callflow serve`'s settings: typed, and layered.
//!
//! Each option comes from the first layer that sets it: the command line
//! (flags, then the `CALLFLOW_*` environment variables clap reads for them),
//! then the config file (`--config serve.toml`, TOML or YAML, keys spelled
//! as the flags: `public-url`, `max-body`, `[[instances]]`), then the
//! defaults. The layers are merged with [figment] (see docs/decisions.md),
//! so that a wrong value is reported with its key and the layer it came
//! from (`invalid type: found string "x", expected a size for key "max-body"
//! in serve.toml`). [`Settings`] is the checked result: every value parsed,
//! every conflict refused with a message that says what to change.
//!
//! This module reads files and nothing else; it never starts anything.

use std::path::{Path, PathBuf};

use figment::providers::Serialized;
use figment::value::{Dict, Map};
use figment::{Figment, Metadata, Profile, Provider};
use serde::{Deserialize, Serialize};

use crate::engine::{BotIdentity, Instance};
use crate::graph::client::{ClientSecret, Cloud};
use crate::server::auth::GRAPH_OPENID_CONFIGURATION;
use crate::server::{DEFAULT_CALLBACK_PATH, DEFAULT_MAX_BODY, KeySource};

/// The log format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// A size written as a number of bytes or as text (`1MiB`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Size {
    /// A number of bytes.
    Bytes(u64),
    /// `1MiB`, `512KiB`, `65536`.
    Text(String),
}

/// One layer of options, every one optional: what the command line (or the
/// environment) says, or what the config file says. Keys as the flags.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServeOptions {
    /// The folder of flow files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flows: Option<PathBuf>,
    /// The listen address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// Where Graph posts notifications.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_path: Option<String>,
    /// This server's public base URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// The bot's application id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    /// The tenant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// The bot's display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bot_name: Option<String>,
    /// The bot's application instances (resource accounts); the first is the default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instances: Option<Vec<Instance>>,
    /// The client id for Graph tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The client secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// The cloud.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud: Option<String>,
    /// Graph's root URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub graph_url: Option<String>,
    /// The token authority.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authority_url: Option<String>,
    /// Where notification keys are listed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub openid_config_url: Option<String>,
    /// A local JWKS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_file: Option<PathBuf>,
    /// The admin API's bearer token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_token: Option<String>,
    /// The largest notification body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_body: Option<Size>,
    /// The log format.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    /// Authentication off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub insecure_no_auth: Option<bool>,
    /// The session store (`sqlite:PATH` or `memory`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    /// The folder of the default store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// How long ended sessions are kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_ended: Option<String>,
    /// How long an idle session stays in memory (`0` or `off`: always).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evict_after: Option<String>,
    /// Where `record` steps deliver recordings: a folder, or an http(s) URL to POST to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recordings: Option<String>,
    /// The hosts `fetch` steps may ask.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fetch_allow: Option<Vec<String>>,
    /// The largest answer a `fetch` reads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fetch_max_bytes: Option<Size>,
    /// Secrets `fetch` headers read as `${secrets.NAME}` (the config file's
    /// `[secrets]` table; `CALLFLOW_SECRET_NAME` adds to them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secrets: Option<std::collections::BTreeMap<String, String>>,
    /// This instance's name among several on one PostgreSQL store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// How long a session's lease lasts (the bound on failover).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease: Option<String>,
}

/// The settings after every layer, checked.
#[derive(Debug)]
pub struct Settings {
    /// The flows folder.
    pub flows: PathBuf,
    /// Whether `flows` was chosen (else the default).
    pub flows_given: bool,
    /// The listen address, if chosen.
    pub listen: Option<String>,
    /// The path the server takes notifications on: `--callback-path`, or
    /// the path of `--public-url` when it has one.
    pub callback_path: String,
    /// The public base URL.
    pub public_url: Option<String>,
    /// The app id.
    pub app_id: Option<String>,
    /// The tenant.
    pub tenant: Option<String>,
    /// The bot's display name.
    pub bot_name: Option<String>,
    /// The bot's application instances; the first is the default.
    pub instances: Vec<Instance>,
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
    /// The body limit, in bytes.
    pub max_body: usize,
    /// The log format.
    pub log_format: LogFormat,
    /// Authentication off.
    pub insecure_no_auth: bool,
    /// The session store.
    pub store: crate::runtime::StoreUrl,
    /// How long ended sessions are kept in the store.
    pub keep_ended: std::time::Duration,
    /// How long an idle session stays in memory before it is evicted to
    /// the store (`None`: always in memory).
    pub evict_after: Option<std::time::Duration>,
    /// Where `record` steps deliver recordings.
    pub recordings: crate::graph::client::recordings::RecordingDelivery,
    /// What `fetch` steps may ask, and the secrets they read (without the
    /// environment's `CALLFLOW_SECRET_*`, which [`FetchConfig::with_env_secrets`](crate::runtime::FetchConfig::with_env_secrets) adds).
    pub fetch: crate::runtime::FetchConfig,
    /// This instance's name in a cluster (PostgreSQL store).
    pub node: String,
    /// A session's lease in a cluster.
    pub lease: std::time::Duration,
}

/// The default node name: the host's name and the listen port, the same
/// across restarts (so that a restarted instance takes back its sessions at
/// once) and different for two instances on one host.
fn default_node(listen: Option<&str>) -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "callflow".into());
    let port = listen.and_then(|l| l.rsplit(':').next()).unwrap_or("8080");
    format!("{host}:{port}")
}

/// A figment provider named for its layer.
struct Layer {
    name: String,
    data: Dict,
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        // Keys without the profile ("max-body", not "default.max-body").
        Metadata::named(self.name.clone()).interpolater(|_: &Profile, keys: &[&str]| keys.join("."))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut map = Map::new();
        map.insert(Profile::Default, self.data.clone());
        Ok(map)
    }
}

/// Reads a config file into one layer: TOML (`.toml`), YAML (`.yaml`,
/// `.yml`), else whichever parses.
fn file_layer(path: &Path) -> Result<Layer, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let bad = |e: String| format!("{}: {e}", path.display());
    let data: Dict = match ext.as_str() {
        "yaml" | "yml" => serde_saphyr::from_str(&text).map_err(|e| bad(e.to_string()))?,
        "toml" => toml::from_str(&text).map_err(|e| bad(e.to_string()))?,
        _ => toml::from_str(&text)
            .or_else(|_| serde_saphyr::from_str(&text))
            .map_err(|e: serde_saphyr::Error| bad(format!("neither TOML nor YAML options: {e}")))?,
    };
    Ok(Layer {
        name: path.display().to_string(),
        data,
    })
}

impl Settings {
    /// Merges `command_line` (flags and environment) over the config file
    /// at `config` (if any) over the defaults, and checks the result.
    ///
    /// # Errors
    ///
    /// A message naming the unreadable file, the wrong value (with its key
    /// and layer), or the conflict.
    pub fn layered(command_line: &ServeOptions, config: Option<&Path>) -> Result<Settings, String> {
        let mut figment = Figment::new();
        if let Some(path) = config {
            figment = figment.merge(file_layer(path)?);
        }
        let top = Serialized::defaults(command_line)
            .data()
            .map_err(|e| e.to_string())?
            .remove(&Profile::Default)
            .unwrap_or_default();
        figment = figment.merge(Layer {
            name: "the command line or CALLFLOW_* environment".into(),
            data: top,
        });
        let options: ServeOptions = figment.extract().map_err(|e| e.to_string())?;
        Settings::from_options(options)
    }

    /// The defaults filled in and every value checked.
    fn from_options(o: ServeOptions) -> Result<Settings, String> {
        let cloud = match &o.cloud {
            None => Cloud::Global,
            Some(name) => Cloud::from_name(name.trim()).ok_or_else(|| {
                format!("cloud {name:?}: expected global, usgov-l4, usgov-dod or china")
            })?,
        };
        let max_body = match &o.max_body {
            Some(Size::Bytes(n)) => usize::try_from(*n).unwrap_or(usize::MAX),
            Some(Size::Text(text)) => parse_size(text)?,
            None => DEFAULT_MAX_BODY,
        };
        let keys = match (o.jwks_file, o.openid_config_url) {
            (Some(_), Some(_)) => {
                return Err("give either openid-config-url or jwks-file, not both".into());
            }
            (Some(path), None) => KeySource::JwksFile(path),
            (None, Some(url)) => KeySource::OpenIdConfiguration(url),
            (None, None) => KeySource::OpenIdConfiguration(GRAPH_OPENID_CONFIGURATION.into()),
        };
        let callback_path = callback_path(o.public_url.as_deref(), o.callback_path.as_deref())?;
        let data_dir = o
            .data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("callflow-data"));
        let store = match &o.store {
            Some(url) => crate::runtime::StoreUrl::parse(url).map_err(|e| format!("store: {e}"))?,
            None => crate::runtime::StoreUrl::default_in(&data_dir),
        };
        let recordings = match &o.recordings {
            Some(text) => crate::graph::client::recordings::RecordingDelivery::parse(text)
                .map_err(|e| format!("recordings: {e}"))?,
            None => crate::graph::client::recordings::RecordingDelivery::Folder(
                data_dir.join("recordings"),
            ),
        };
        let keep_ended = match &o.keep_ended {
            Some(text) => humantime::parse_duration(text.trim())
                .map_err(|e| format!("keep-ended {text:?}: {e}"))?,
            None => std::time::Duration::from_secs(7 * 24 * 3600),
        };
        let evict_after = match o.evict_after.as_deref().map(str::trim) {
            Some("off" | "0") => None,
            Some(text) => Some(
                humantime::parse_duration(text)
                    .map_err(|e| format!("evict-after {text:?}: {e} (or 0, off)"))?,
            )
            .filter(|d| !d.is_zero()),
            None => Some(crate::runtime::DEFAULT_EVICT_AFTER),
        };
        let fetch_max_bytes = match &o.fetch_max_bytes {
            Some(Size::Bytes(n)) => usize::try_from(*n).unwrap_or(usize::MAX),
            Some(Size::Text(text)) => parse_size(text)?,
            None => crate::runtime::fetch::DEFAULT_MAX_BYTES,
        };
        let mut fetch_allow = Vec::new();
        for host in o.fetch_allow.unwrap_or_default() {
            let host = host.trim().to_owned();
            if host.is_empty() {
                continue;
            }
            if host.contains('/') || host == "*" {
                return Err(format!(
                    "fetch-allow {host:?}: a host, `host:port` or `*.domain`, not a URL"
                ));
            }
            fetch_allow.push(host);
        }
        let fetch = crate::runtime::FetchConfig {
            allow: fetch_allow,
            secrets: o.secrets.unwrap_or_default(),
            max_bytes: fetch_max_bytes,
        };
        let lease = match &o.lease {
            Some(text) => humantime::parse_duration(text.trim())
                .map_err(|e| format!("lease {text:?}: {e}"))
                .and_then(|d| {
                    if d < std::time::Duration::from_secs(1) {
                        Err(format!("lease {text:?}: at least 1s"))
                    } else {
                        Ok(d)
                    }
                })?,
            None => crate::runtime::cluster::DEFAULT_LEASE,
        };
        let node = match o.node.as_deref().map(str::trim) {
            Some("") => return Err("node: the name is empty".into()),
            Some(name) => name.to_owned(),
            None => default_node(o.listen.as_deref()),
        };
        let mut instances = o.instances.unwrap_or_default();
        for (n, i) in instances.iter_mut().enumerate() {
            i.id = i.id.trim().to_owned();
            if i.id.is_empty() {
                return Err(format!("instance #{}: its id is empty", n + 1));
            }
        }
        Ok(Settings {
            flows_given: o.flows.is_some(),
            flows: o.flows.unwrap_or_else(|| PathBuf::from("flows")),
            listen: o.listen,
            callback_path,
            public_url: o.public_url,
            app_id: o.app_id,
            tenant: o.tenant,
            bot_name: o.bot_name.filter(|n| !n.trim().is_empty()),
            instances,
            client_id: o.client_id,
            client_secret: o.client_secret.map(ClientSecret::new),
            cloud,
            graph_url: o.graph_url,
            authority_url: o.authority_url,
            keys,
            admin_token: o.admin_token.filter(|t| !t.is_empty()),
            max_body,
            log_format: o.log_format.unwrap_or_default(),
            insecure_no_auth: o.insecure_no_auth.unwrap_or(false),
            store,
            keep_ended,
            evict_after,
            recordings,
            fetch,
            node,
            lease,
        })
    }

    /// The callbackUri given to Graph: the public URL with the callback
    /// path (which is the URL's own path when it has one).
    ///
    /// # Errors
    ///
    /// When there is no public URL.
    pub fn callback_uri(&self) -> Result<String, String> {
        let public = self
            .public_url
            .as_deref()
            .ok_or("--public-url (CALLFLOW_PUBLIC_URL) is required")?;
        Ok(join_url(public, &self.callback_path))
    }

    /// Who the bot is, for the runtime: app id, name, tenant, instances.
    pub fn bot_identity(&self) -> BotIdentity {
        BotIdentity {
            application_id: self.app_id.clone(),
            display_name: self.bot_name.clone(),
            tenant_id: self.tenant.clone(),
            instances: self.instances.clone(),
        }
    }
}

/// `https://bot.example.com` + `/api/calls`; the path replaces the URL's.
fn join_url(public_url: &str, path: &str) -> String {
    match url::Url::parse(public_url) {
        Ok(mut url) => {
            url.set_path(path);
            url.set_query(None);
            url.to_string()
        }
        Err(_) => format!("{}{path}", public_url.trim_end_matches('/')),
    }
}

/// The path the server serves notifications on. A public URL with a path
/// (`https://bot.example.com/hooks/graph`) is what Graph will post to, so
/// that path is served; a `--callback-path` that says otherwise is refused
/// rather than silently ignored.
fn callback_path(public_url: Option<&str>, given: Option<&str>) -> Result<String, String> {
    let advertised = match public_url {
        None => None,
        Some(text) => {
            let url = url::Url::parse(text).map_err(|e| format!("public URL {text:?}: {e}"))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(format!("public URL {text:?} must be http(s)"));
            }
            if url.query().is_some() || url.fragment().is_some() {
                return Err(format!(
                    "public URL {text:?} has a query or fragment; give the base URL and --callback-path"
                ));
            }
            let path = url.path().trim_end_matches('/');
            (!path.is_empty()).then(|| path.to_owned())
        }
    };
    let path = match (advertised, given) {
        (Some(advertised), Some(given)) if advertised != given.trim_end_matches('/') => {
            return Err(format!(
                "the public URL's path is {advertised} but --callback-path is {given}: Graph \
                 posts to the public URL, so one of them is wrong. Give the base URL \
                 (--public-url {}) with --callback-path {given}, or drop --callback-path to \
                 serve {advertised}",
                public_url
                    .and_then(|u| url::Url::parse(u).ok())
                    .map(|u| u.origin().ascii_serialization())
                    .unwrap_or_default()
            ));
        }
        (Some(advertised), _) => advertised,
        (None, Some(given)) => given.to_owned(),
        (None, None) => DEFAULT_CALLBACK_PATH.to_owned(),
    };
    if !path.starts_with('/') || path.contains(['{', '}', '*']) {
        return Err(format!(
            "callback path {path:?} must start with / and hold no {{, }} or *"
        ));
    }
    Ok(path)
}

/// `1048576`, `1MiB`, `512KiB`, `1MB`, `64k`.
///
/// # Errors
///
/// A message naming the size and what is wrong with it.
pub fn parse_size(text: &str) -> Result<usize, String> {
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
    fn the_command_line_beats_the_file_which_beats_the_defaults() {
        let dir = tempfile_dir("layers");
        let path = dir.join("serve.toml");
        std::fs::write(
            &path,
            "listen = \"0.0.0.0:9000\"\nmax-body = \"2MiB\"\napp-id = \"from-file\"\n\
             [[instances]]\nid = \"i-1\"\nnumber = \"+14255550100\"\nname = \"Reception\"\n",
        )
        .expect("write");
        let flags = ServeOptions {
            app_id: Some("from-flag".into()),
            ..ServeOptions::default()
        };
        let s = Settings::layered(&flags, Some(&path)).expect("settings");
        assert_eq!(s.app_id.as_deref(), Some("from-flag"));
        assert_eq!(s.listen.as_deref(), Some("0.0.0.0:9000"));
        assert_eq!(s.max_body, 2 * 1024 * 1024);
        assert_eq!(s.callback_path, "/api/calls");
        assert_eq!(s.instances.len(), 1);
        assert_eq!(s.instances[0].number.as_deref(), Some("+14255550100"));
        let yaml = dir.join("serve.yaml");
        std::fs::write(
            &yaml,
            "callback-path: /hooks/graph\nlog-format: json\nmax-body: 65536\n",
        )
        .expect("write");
        let s = Settings::layered(&ServeOptions::default(), Some(&yaml)).expect("yaml settings");
        assert_eq!(s.callback_path, "/hooks/graph");
        assert_eq!(s.log_format, LogFormat::Json);
        assert_eq!(s.max_body, 65536);
        std::fs::write(&path, "lisen = \"x\"\n").expect("write");
        let e = Settings::layered(&ServeOptions::default(), Some(&path)).expect_err("unknown key");
        assert!(e.contains("lisen") && e.contains("serve.toml"), "{e}");
        std::fs::write(&path, "max-body = true\n").expect("write");
        let e = Settings::layered(&ServeOptions::default(), Some(&path)).expect_err("bad type");
        assert!(e.contains("max-body") && e.contains("serve.toml"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn evict_after_defaults_to_30s_and_0_or_off_keeps_sessions_in_memory() {
        let with = |text: Option<&str>| {
            Settings::layered(
                &ServeOptions {
                    evict_after: text.map(str::to_owned),
                    ..ServeOptions::default()
                },
                None,
            )
            .map(|s| s.evict_after)
        };
        assert_eq!(with(None), Ok(Some(std::time::Duration::from_secs(30))));
        assert_eq!(
            with(Some("2m")),
            Ok(Some(std::time::Duration::from_secs(120)))
        );
        assert_eq!(with(Some("0")), Ok(None));
        assert_eq!(with(Some("0s")), Ok(None));
        assert_eq!(with(Some("off")), Ok(None));
        let e = with(Some("soon")).expect_err("not a duration");
        assert!(e.starts_with("evict-after \"soon\""), "{e}");
    }

    #[test]
    fn a_public_url_with_a_path_is_served_or_refused() {
        let with_path = |callback: Option<&str>| {
            Settings::layered(
                &ServeOptions {
                    public_url: Some("https://bot.example.com/hooks/graph".into()),
                    callback_path: callback.map(str::to_owned),
                    ..ServeOptions::default()
                },
                None,
            )
        };
        let s = with_path(None).expect("served as advertised");
        assert_eq!(s.callback_path, "/hooks/graph");
        assert_eq!(
            s.callback_uri().as_deref(),
            Ok("https://bot.example.com/hooks/graph")
        );
        assert!(with_path(Some("/hooks/graph")).is_ok());
        let e = with_path(Some("/api/calls")).expect_err("a conflict");
        assert!(
            e.contains("/hooks/graph")
                && e.contains("/api/calls")
                && e.contains("https://bot.example.com"),
            "{e}"
        );
        let s = Settings::layered(
            &ServeOptions {
                public_url: Some("https://bot.example.com/".into()),
                ..ServeOptions::default()
            },
            None,
        )
        .expect("a base URL");
        assert_eq!(
            s.callback_uri().as_deref(),
            Ok("https://bot.example.com/api/calls")
        );
    }

    fn tempfile_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "callflow-settings-{name}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }
}
