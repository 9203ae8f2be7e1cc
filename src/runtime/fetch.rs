//! `fetch` requests to the designers' own services, made by the runtime.
//!
//! A [`Fetcher`] holds the server's [`FetchPolicy`] (the hosts allowed),
//! the secrets (`[secrets]` of the config file, `CALLFLOW_SECRET_*`), and
//! one HTTP client: no redirects followed (a redirect could leave the
//! allowed hosts), a timeout per request, answers read up to a bound. It
//! refuses a URL that is not http(s) or whose host is not allowed, whatever
//! the flow's checks said (a URL built from a variable is known only now).
//! Secrets are filled into headers as the request is sent and appear in no
//! error, log line or `Debug`. One attempt per call: the engine decides
//! whether to try again.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue as HttpValue};

use crate::engine::ControlError;
use crate::engine::fetch::{FetchAnswer, FetchRequest, HeaderValue};
use crate::flow::FetchPolicy;
use crate::flow::actions::fetch::Method;

/// The largest answer read by default.
pub const DEFAULT_MAX_BYTES: usize = 64 * 1024;

/// The environment variables secrets may come from: `CALLFLOW_SECRET_CRM_TOKEN`
/// is the secret `crm_token`.
pub const SECRET_ENV_PREFIX: &str = "CALLFLOW_SECRET_";

/// What the server allows `fetch` steps, and the secrets they may use.
#[derive(Clone, Default)]
pub struct FetchConfig {
    /// The hosts allowed.
    pub allow: Vec<String>,
    /// The secrets, by name.
    pub secrets: BTreeMap<String, String>,
    /// The largest answer read, in bytes.
    pub max_bytes: usize,
}

impl std::fmt::Debug for FetchConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchConfig")
            .field("allow", &self.allow)
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .field("max_bytes", &self.max_bytes)
            .finish()
    }
}

impl FetchConfig {
    /// The policy flows are checked against.
    pub fn policy(&self) -> FetchPolicy {
        FetchPolicy {
            allow: self.allow.clone(),
            secrets: Some(self.secrets.keys().cloned().collect()),
        }
    }

    /// Adds the secrets of the environment (`CALLFLOW_SECRET_NAME=value`,
    /// named `name`), over those already given.
    pub fn with_env_secrets(mut self, vars: impl IntoIterator<Item = (String, String)>) -> Self {
        for (k, v) in vars {
            if let Some(name) = k.strip_prefix(SECRET_ENV_PREFIX)
                && !name.is_empty()
            {
                self.secrets.insert(name.to_ascii_lowercase(), v);
            }
        }
        self
    }
}

/// Makes `fetch` requests.
pub struct Fetcher {
    http: reqwest::Client,
    config: FetchConfig,
    policy: FetchPolicy,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("config", &self.config)
            .finish()
    }
}

fn refused(code: &str, message: impl Into<String>) -> ControlError {
    ControlError::new(0, code, message)
}

impl Fetcher {
    /// A fetcher for `config`.
    ///
    /// # Errors
    ///
    /// When the HTTP stack cannot start.
    pub fn new(config: FetchConfig) -> Result<Self, String> {
        crate::graph::client::install_tls_provider();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(90))
            .user_agent(concat!("callflow/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("the fetch client: {e}"))?;
        let policy = config.policy();
        Ok(Fetcher {
            http,
            config,
            policy,
        })
    }

    /// The policy flows are checked against.
    pub fn policy(&self) -> &FetchPolicy {
        &self.policy
    }

    /// Makes one attempt of `request`: any HTTP answer is `Ok` with its
    /// status; no answer in time is `Timeout`; a host not allowed, a
    /// missing secret, an answer too large or not JSON are refusals.
    ///
    /// # Errors
    ///
    /// Why no answer can be used (never with a secret in it).
    pub async fn fetch(&self, request: &FetchRequest) -> Result<FetchAnswer, ControlError> {
        let url = reqwest::Url::parse(&request.url)
            .map_err(|e| refused("BadUrl", format!("`{}` is not a URL: {e}", request.url)))?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(refused(
                "BadUrl",
                format!("`{}` is not an http(s) URL", request.url),
            ));
        }
        let host = url.host_str().unwrap_or_default();
        if !self.policy.allows(host, url.port()) {
            return Err(refused(
                "HostNotAllowed",
                format!(
                    "`{host}` is not among the hosts this server may fetch from (--fetch-allow)"
                ),
            ));
        }
        let mut headers = HeaderMap::new();
        for (name, parts) in &request.headers {
            let mut value = String::new();
            for p in parts {
                match p {
                    HeaderValue::Text(t) => value.push_str(t),
                    HeaderValue::Secret(n) => match self.config.secrets.get(n) {
                        Some(s) => value.push_str(s),
                        None => {
                            return Err(refused(
                                "UnknownSecret",
                                format!("no secret `{n}` is configured"),
                            ));
                        }
                    },
                }
            }
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| refused("BadHeader", format!("`{name}` is not a header name")))?;
            let mut value = HttpValue::try_from(value).map_err(|_| {
                refused(
                    "BadHeader",
                    format!("the value of header `{name}` is not valid"),
                )
            })?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        let builder = match request.method {
            Method::Get => self.http.get(url.clone()),
            Method::Post => self
                .http
                .post(url.clone())
                .json(request.body.as_ref().unwrap_or(&serde_json::Value::Null)),
        };
        let builder = builder
            .headers(headers)
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(request.timeout());
        let where_to = format!("{} {}", request.method.as_str(), redacted(&url));
        let transport = |e: reqwest::Error| {
            if e.is_timeout() {
                refused("Timeout", format!("{where_to}: no answer in time"))
            } else {
                refused("Transport", format!("{where_to}: {}", describe(&e)))
            }
        };
        let mut response = builder.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let max = self.config.max_bytes.max(1);
        let too_large = || {
            refused(
                "AnswerTooLarge",
                format!("{where_to}: the answer is larger than {max} bytes"),
            )
        };
        if response.content_length().is_some_and(|n| n > max as u64) {
            return Err(too_large());
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if bytes.len() + chunk.len() > max {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        let body = if bytes.iter().all(u8::is_ascii_whitespace) {
            serde_json::Value::Null
        } else {
            match serde_json::from_slice(&bytes) {
                Ok(v) => v,
                // An error page that is not JSON: its status says enough.
                Err(_) if !(200..300).contains(&status) => serde_json::Value::Null,
                Err(e) => {
                    return Err(refused(
                        "NotJson",
                        format!("{where_to}: the answer is not JSON ({e})"),
                    ));
                }
            }
        };
        Ok(FetchAnswer { status, body })
    }
}

/// The URL without its query (which may carry a key) for messages.
fn redacted(url: &reqwest::Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    let _ = u.set_password(None);
    u.to_string()
}

/// What went wrong, in a few words: the innermost cause (`connection
/// refused`, `invalid peer certificate: …`), since the layers above it only
/// repeat the request, which the message already names.
fn describe(e: &reqwest::Error) -> String {
    let mut root: &dyn std::error::Error = e;
    while let Some(s) = root.source() {
        root = s;
    }
    let mut cause = root.to_string();
    // `Connection refused (os error 111)`: the number tells a reader nothing.
    if let Some(at) = cause.find(" (os error ") {
        cause.truncate(at);
    }
    if let Some(u) = e.url() {
        cause = cause.replace(u.as_str(), &redacted(u));
    }
    let cause = cause.to_lowercase();
    if e.is_connect() {
        format!("no connection ({cause})")
    } else {
        cause
    }
}
