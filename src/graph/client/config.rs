//! How to reach Graph: cloud or explicit base URLs, API version, credentials,
//! timeouts and the retry policy.
//!
//! Plain data, read from code or from the environment. It must never hold a
//! secret in a form that `Debug` would print: the client secret is a
//! [`ClientSecret`], whose `Debug` is `***`.

use std::fmt;
use std::time::Duration;

use url::Url;

/// A client secret (or any credential): kept, handed to the token endpoint,
/// never printed. Its `Debug` is `***`, it has no `Display`, and reading it
/// takes an explicit [`ClientSecret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSecret(String);

impl ClientSecret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<String> for ClientSecret {
    fn from(secret: String) -> Self {
        Self(secret)
    }
}

impl From<&str> for ClientSecret {
    fn from(secret: &str) -> Self {
        Self(secret.to_owned())
    }
}

/// A Microsoft cloud: its Graph endpoint and its token authority
/// (`graph-notes.md`, "Tokens, throttling, clouds").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Cloud {
    /// The worldwide cloud.
    #[default]
    Global,
    /// US Government L4 (GCC High).
    UsGovL4,
    /// US Government L5 (DoD).
    UsGovDod,
    /// China, operated by 21Vianet.
    China,
}

impl Cloud {
    /// Graph's root URL in this cloud, without the API version.
    pub fn graph_base_url(self) -> &'static str {
        match self {
            Cloud::Global => "https://graph.microsoft.com",
            Cloud::UsGovL4 => "https://graph.microsoft.us",
            Cloud::UsGovDod => "https://dod-graph.microsoft.us",
            Cloud::China => "https://microsoftgraph.chinacloudapi.cn",
        }
    }

    /// The token authority in this cloud, without the tenant.
    pub fn authority_url(self) -> &'static str {
        match self {
            Cloud::Global => "https://login.microsoftonline.com",
            Cloud::UsGovL4 | Cloud::UsGovDod => "https://login.microsoftonline.us",
            Cloud::China => "https://login.chinacloudapi.cn",
        }
    }

    /// Reads `global`, `usgov-l4` (or `usgov`, `gcc-high`), `usgov-dod` (or
    /// `dod`), `china`; case is ignored.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "global" | "public" | "worldwide" => Some(Cloud::Global),
            "usgov-l4" | "usgov" | "gcc-high" | "usgovl4" => Some(Cloud::UsGovL4),
            "usgov-dod" | "dod" | "usgov-l5" | "usgovdod" => Some(Cloud::UsGovDod),
            "china" | "21vianet" => Some(Cloud::China),
            _ => None,
        }
    }
}

/// Which Graph API version paths start with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ApiVersion {
    /// `/v1.0`.
    #[default]
    V1,
    /// `/beta`.
    Beta,
}

impl ApiVersion {
    /// The path segment: `v1.0` or `beta`.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiVersion::V1 => "v1.0",
            ApiVersion::Beta => "beta",
        }
    }
}

/// When and how often a throttled (`429`) or unavailable (`503`) request is
/// tried again.
///
/// A `Retry-After` header (seconds) is honoured; without one the wait is
/// exponential with jitter: attempt `n` waits a random time between half and
/// all of `min(max_delay, base_delay * 2^(n-1))`. The client gives up when
/// `max_attempts` requests have been sent, or when the next wait would end
/// after `max_total` from the first attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Requests sent at most, the first included (`1` never retries).
    pub max_attempts: u32,
    /// The first backoff without `Retry-After`.
    pub base_delay: Duration,
    /// The longest single backoff without `Retry-After`.
    pub max_delay: Duration,
    /// The time budget from the first attempt: no wait may end after it.
    pub max_total: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(10),
            max_total: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn never() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }
}

/// Everything the client needs to reach Graph.
///
/// `Debug` is safe to log: the secret prints as `***`.
#[derive(Clone, Debug)]
pub struct GraphConfig {
    /// Graph's root, without the API version (`https://graph.microsoft.com`).
    pub graph_base_url: Url,
    /// The token authority, without the tenant
    /// (`https://login.microsoftonline.com`).
    pub authority_url: Url,
    /// The Entra tenant (directory) id.
    pub tenant_id: String,
    /// The bot's application (client) id.
    pub client_id: String,
    /// The bot's client secret.
    pub client_secret: ClientSecret,
    /// `v1.0` or `beta`.
    pub api_version: ApiVersion,
    /// How long one HTTP exchange may take, from sending to the last byte of
    /// the answer (token requests too).
    pub request_timeout: Duration,
    /// How long opening a connection may take.
    pub connect_timeout: Duration,
    /// Retries of `429` and `503`.
    pub retry: RetryPolicy,
    /// How long before a token expires it is replaced.
    pub token_refresh_margin: Duration,
    /// Where recordings (`record`) are delivered; none: a `record` step fails.
    pub recordings: Option<super::recordings::RecordingDelivery>,
}

/// A configuration value that is missing or wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is not set.
    #[error("{0} is not set")]
    Missing(&'static str),
    /// A variable holds a value that cannot be used.
    #[error("{name} = {value:?}: {reason}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// Its value (never a secret).
        value: String,
        /// Why it is refused.
        reason: String,
    },
}

/// The environment variables [`GraphConfig::from_env`] reads.
pub mod env {
    /// Required: the tenant id.
    pub const TENANT_ID: &str = "CALLFLOW_GRAPH_TENANT_ID";
    /// Required: the application (client) id.
    pub const CLIENT_ID: &str = "CALLFLOW_GRAPH_CLIENT_ID";
    /// Required: the client secret.
    pub const CLIENT_SECRET: &str = "CALLFLOW_GRAPH_CLIENT_SECRET";
    /// Optional: `global` (default), `usgov-l4`, `usgov-dod`, `china`.
    pub const CLOUD: &str = "CALLFLOW_GRAPH_CLOUD";
    /// Optional: Graph's root URL, overriding the cloud's.
    pub const BASE_URL: &str = "CALLFLOW_GRAPH_BASE_URL";
    /// Optional: the token authority URL, overriding the cloud's.
    pub const AUTHORITY_URL: &str = "CALLFLOW_GRAPH_AUTHORITY_URL";
    /// Optional: `v1.0` (default) or `beta`.
    pub const API_VERSION: &str = "CALLFLOW_GRAPH_API_VERSION";
}

fn parse_url(name: &'static str, value: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(value).map_err(|e| ConfigError::Invalid {
        name,
        value: value.to_owned(),
        reason: e.to_string(),
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(ConfigError::Invalid {
            name,
            value: value.to_owned(),
            reason: "expected an http(s) URL such as https://graph.microsoft.com".into(),
        });
    }
    Ok(url)
}

impl GraphConfig {
    /// A configuration for `cloud` with the default version (`v1.0`),
    /// timeouts (10 s per request, 5 s to connect) and [`RetryPolicy`].
    pub fn new(
        cloud: Cloud,
        tenant_id: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: ClientSecret,
    ) -> Self {
        Self {
            graph_base_url: Url::parse(cloud.graph_base_url()).expect("a valid built-in URL"),
            authority_url: Url::parse(cloud.authority_url()).expect("a valid built-in URL"),
            tenant_id: tenant_id.into(),
            client_id: client_id.into(),
            client_secret,
            api_version: ApiVersion::V1,
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            retry: RetryPolicy::default(),
            token_refresh_margin: Duration::from_secs(5 * 60),
            recordings: None,
        }
    }

    /// The same configuration with explicit Graph and authority URLs (a
    /// private endpoint, or a local simulated Graph).
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] when either is not an http(s) URL.
    pub fn with_base_urls(mut self, graph: &str, authority: &str) -> Result<Self, ConfigError> {
        self.graph_base_url = parse_url(env::BASE_URL, graph)?;
        self.authority_url = parse_url(env::AUTHORITY_URL, authority)?;
        Ok(self)
    }

    /// Reads the configuration from the process environment (see [`env`](mod@env)).
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first missing or invalid variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup` (a variable name to its
    /// value), so that tests need not touch the process environment.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first missing or invalid variable.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &'static str| lookup(name).filter(|v| !v.trim().is_empty());
        let required = |name: &'static str| get(name).ok_or(ConfigError::Missing(name));
        let cloud = match get(env::CLOUD) {
            None => Cloud::Global,
            Some(value) => Cloud::from_name(value.trim()).ok_or_else(|| ConfigError::Invalid {
                name: env::CLOUD,
                value,
                reason: "expected global, usgov-l4, usgov-dod or china".into(),
            })?,
        };
        let mut config = Self::new(
            cloud,
            required(env::TENANT_ID)?,
            required(env::CLIENT_ID)?,
            ClientSecret::new(required(env::CLIENT_SECRET)?),
        );
        if let Some(url) = get(env::BASE_URL) {
            config.graph_base_url = parse_url(env::BASE_URL, url.trim())?;
        }
        if let Some(url) = get(env::AUTHORITY_URL) {
            config.authority_url = parse_url(env::AUTHORITY_URL, url.trim())?;
        }
        if let Some(version) = get(env::API_VERSION) {
            config.api_version = match version.trim() {
                "v1.0" | "v1" => ApiVersion::V1,
                "beta" => ApiVersion::Beta,
                _ => {
                    return Err(ConfigError::Invalid {
                        name: env::API_VERSION,
                        value: version,
                        reason: "expected v1.0 or beta".into(),
                    });
                }
            };
        }
        Ok(config)
    }

    /// `{authority}/{tenant}/oauth2/v2.0/token`.
    pub fn token_url(&self) -> Url {
        let mut url = self.authority_url.clone();
        url.path_segments_mut()
            .expect("checked to be a base URL")
            .pop_if_empty()
            .extend([self.tenant_id.as_str(), "oauth2", "v2.0", "token"]);
        url
    }

    /// `{graph}/.default`, the scope of an application token.
    pub fn scope(&self) -> String {
        format!(
            "{}/.default",
            self.graph_base_url.as_str().trim_end_matches('/')
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints() {
        let config = GraphConfig::new(Cloud::China, "t", "c", "hunter2".into());
        let debug = format!("{config:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("***"));
    }

    #[test]
    fn clouds_and_urls() {
        let config = GraphConfig::new(Cloud::UsGovDod, "tenant", "c", "s".into());
        assert_eq!(
            config.token_url().as_str(),
            "https://login.microsoftonline.us/tenant/oauth2/v2.0/token"
        );
        assert_eq!(config.scope(), "https://dod-graph.microsoft.us/.default");
        let lookup = |name: &str| match name {
            env::TENANT_ID => Some("t".to_owned()),
            env::CLIENT_ID => Some("c".to_owned()),
            env::CLIENT_SECRET => Some("s".to_owned()),
            env::CLOUD => Some("China".to_owned()),
            env::API_VERSION => Some("beta".to_owned()),
            _ => None,
        };
        let config = GraphConfig::from_lookup(lookup).expect("valid");
        assert_eq!(
            config.graph_base_url.as_str(),
            "https://microsoftgraph.chinacloudapi.cn/"
        );
        assert_eq!(config.api_version, ApiVersion::Beta);
        assert_eq!(
            GraphConfig::from_lookup(|_| None).map(|_| ()),
            Err(ConfigError::Missing(env::TENANT_ID))
        );
    }
}
