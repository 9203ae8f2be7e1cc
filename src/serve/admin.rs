//! A client of a running server's admin API, for `callflow run`: start an
//! `api` flow (`POST /api/flows/{flow}/runs`) and follow its session
//! (`GET /api/sessions/{id}`) until it ends.
//!
//! Only a client: it sends what the admin routes take and reads what they
//! answer; the rules (parameters, flows) are the server's.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::engine::TimelineEntry;

/// The admin API refused or could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No answer.
    #[error("cannot reach {url}: {message}")]
    Unreachable {
        /// The URL.
        url: String,
        /// Why.
        message: String,
    },
    /// An answer that is not a success, with the server's error.
    #[error("{status} {code}: {message}")]
    Refused {
        /// The status.
        status: u16,
        /// The server's error code (`unknownFlow`, `invalidParams`, …).
        code: String,
        /// The server's message.
        message: String,
    },
    /// An answer that does not read.
    #[error("unexpected answer from {url}: {message}")]
    Answer {
        /// The URL.
        url: String,
        /// What does not fit.
        message: String,
    },
}

/// A session as `GET /api/sessions/{id}` shows it.
#[derive(Clone, Debug, Deserialize)]
pub struct SessionView {
    /// Its id.
    pub id: String,
    /// The flow it runs.
    pub flow: String,
    /// `starting`, `running` or `ended`.
    pub state: String,
    /// How it ended, once it has.
    #[serde(default)]
    pub outcome: Option<String>,
    /// The flow's own name for the end (a step's `end:`), if any.
    #[serde(default)]
    pub end: Option<String>,
    /// Why, when it says more.
    #[serde(default)]
    pub reason: Option<String>,
    /// What happened, in order.
    #[serde(default)]
    pub timeline: Vec<TimelineEntry>,
}

impl SessionView {
    /// Whether the run has ended.
    pub fn ended(&self) -> bool {
        self.state == "ended"
    }
}

/// Reads `NAME=VALUE` pairs as parameters: a value that is JSON (`3`,
/// `true`, `"x"`, `{…}`) is taken as such, anything else as text
/// (`+14255550100`, `https://…`).
///
/// # Errors
///
/// `GET /api/sessions/{id}/scenario`'s answer.
#[derive(Debug, Deserialize)]
struct Exported {
    name: String,
    scenario: String,
    recording_path: String,
    recording: String,
}

/// The pair that has no `=`.
pub fn parse_params(pairs: &[String]) -> Result<Map<String, Value>, String> {
    let mut params = Map::new();
    for pair in pairs {
        let Some((name, value)) = pair.split_once('=') else {
            return Err(format!("--param {pair}: write NAME=VALUE"));
        };
        let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()));
        params.insert(name.trim().to_owned(), value);
    }
    Ok(params)
}

/// A client of one server's admin API.
#[derive(Clone, Debug)]
pub struct AdminClient {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl AdminClient {
    /// A client of the server at `base` (`http://127.0.0.1:8080`) with the
    /// admin bearer `token`.
    ///
    /// # Errors
    ///
    /// A message when `base` is not an http(s) URL.
    pub fn new(base: &str, token: impl Into<String>) -> Result<Self, String> {
        let url = url::Url::parse(base).map_err(|e| format!("server URL {base:?}: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("server URL {base:?} must be http(s)"));
        }
        crate::graph::client::install_tls_provider();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| format!("the HTTP client would not build: {e}"))?;
        Ok(AdminClient {
            base: base.trim_end_matches('/').to_owned(),
            token: token.into(),
            http,
        })
    }

    async fn send(&self, request: reqwest::RequestBuilder, url: &str) -> Result<Value, AdminError> {
        let response =
            request
                .bearer_auth(&self.token)
                .send()
                .await
                .map_err(|e| AdminError::Unreachable {
                    url: url.to_owned(),
                    message: e.to_string(),
                })?;
        let status = response.status().as_u16();
        let body: Value = response.json().await.map_err(|e| AdminError::Answer {
            url: url.to_owned(),
            message: e.to_string(),
        })?;
        if !(200..300).contains(&status) {
            let text = |k: &str| {
                body.pointer(&format!("/error/{k}"))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned()
            };
            return Err(AdminError::Refused {
                status,
                code: text("code"),
                message: text("message"),
            });
        }
        Ok(body)
    }

    /// Starts a run of the `api` flow `flow` with `params`; its session id.
    ///
    /// # Errors
    ///
    /// [`AdminError`]: unreachable, or the server's refusal (unknown flow,
    /// wrong parameters, a wrong token).
    pub async fn start_run(
        &self,
        flow: &str,
        params: Map<String, Value>,
    ) -> Result<String, AdminError> {
        let url = format!("{}/api/flows/{flow}/runs", self.base);
        let body = self
            .send(
                self.http.post(&url).json(&json!({ "params": params })),
                &url,
            )
            .await?;
        body.get("session")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or(AdminError::Answer {
                url,
                message: "no `session` in the answer".into(),
            })
    }

    /// The session `id`, now.
    ///
    /// # Errors
    ///
    /// [`AdminError`]: unreachable, unknown, or a wrong token.
    pub async fn session(&self, id: &str) -> Result<SessionView, AdminError> {
        let url = format!("{}/api/sessions/{id}", self.base);
        let body = self.send(self.http.get(&url), &url).await?;
        serde_json::from_value(body).map_err(|e| AdminError::Answer {
            url,
            message: e.to_string(),
        })
    }

    /// Session `id` as a scenario that replays it, written under `dir`:
    /// `ID.yaml` and the recording it names (`recordings/ID.jsonl`).
    /// Returns the scenario's path.
    ///
    /// # Errors
    ///
    /// [`AdminError`]: unreachable, unknown session, a wrong token, or the
    /// files could not be written (as [`AdminError::Answer`]).
    pub async fn export(&self, id: &str, dir: &std::path::Path) -> Result<PathBuf, AdminError> {
        let url = format!("{}/api/sessions/{id}/scenario", self.base);
        let body = self.send(self.http.get(&url), &url).await?;
        let exported: Exported = serde_json::from_value(body).map_err(|e| AdminError::Answer {
            url: url.clone(),
            message: e.to_string(),
        })?;
        let failed = |e: std::io::Error, path: &std::path::Path| AdminError::Answer {
            url: url.clone(),
            message: format!("cannot write {}: {e}", path.display()),
        };
        let recording = dir.join(&exported.recording_path);
        if let Some(parent) = recording.parent() {
            std::fs::create_dir_all(parent).map_err(|e| failed(e, parent))?;
        }
        std::fs::write(&recording, exported.recording).map_err(|e| failed(e, &recording))?;
        let scenario = dir.join(format!("{}.yaml", exported.name));
        std::fs::write(&scenario, exported.scenario).map_err(|e| failed(e, &scenario))?;
        Ok(scenario)
    }

    /// Polls session `id` every `every` until it ends, calling `each` with
    /// every timeline entry once, in order; the session at its end.
    ///
    /// # Errors
    ///
    /// The first [`AdminError`].
    pub async fn follow(
        &self,
        id: &str,
        every: Duration,
        mut each: impl FnMut(&TimelineEntry),
    ) -> Result<SessionView, AdminError> {
        let mut seen = 0;
        loop {
            let view = self.session(id).await?;
            for entry in view.timeline.iter().skip(seen) {
                each(entry);
            }
            seen = seen.max(view.timeline.len());
            if view.ended() {
                return Ok(view);
            }
            tokio::time::sleep(every).await;
        }
    }
}
