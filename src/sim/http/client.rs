//! A typed client of sim-graph's control API (`/sim/…`), for the programs
//! that drive a sim-graph: `serve --simulate`, `callflow load`, tests.
//!
//! Each method is one route of the [module docs](super)' table, its body
//! and answer typed; an answer that is not a success becomes a
//! [`ControlError`] carrying the status and Graph's error message. It is a
//! client only: it never touches a sim-graph's state but over HTTP.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::engine::Party;
use crate::graph::wire::CallState;

/// A control request failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No answer (connection, timeout).
    #[error("sim-graph: {what}: {message}")]
    Transport {
        /// What was asked.
        what: String,
        /// What went wrong.
        message: String,
    },
    /// An answer that is not a success.
    #[error("sim-graph: {what}: {status} {message}")]
    Refused {
        /// What was asked.
        what: String,
        /// The status.
        status: u16,
        /// Graph's error message, or the body.
        message: String,
    },
    /// An answer that does not read as expected.
    #[error("sim-graph: {what}: unexpected answer: {message}")]
    Answer {
        /// What was asked.
        what: String,
        /// What does not fit.
        message: String,
    },
}

impl ControlError {
    /// The status of a refusal.
    pub fn status(&self) -> Option<u16> {
        match self {
            ControlError::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A call as `GET /sim/calls` lists it.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallSummary {
    /// Its id.
    pub id: String,
    /// Its state, as Graph knows it.
    pub state: Option<CallState>,
    /// Where its notifications go.
    #[serde(default)]
    pub callback_uri: String,
    /// Graph requests about it so far.
    #[serde(default)]
    pub requests: usize,
    /// Notifications posted about it so far.
    #[serde(default)]
    pub notifications: usize,
}

impl CallSummary {
    /// Whether Graph says the call is over.
    pub fn is_terminated(&self) -> bool {
        self.state.as_ref().is_some_and(CallState::is_terminal)
    }
}

/// `GET /sim/clock`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClockView {
    /// The simulated time.
    pub now: DateTime<Utc>,
    /// When the next thing is due, if anything is scheduled.
    pub next_due: Option<DateTime<Utc>>,
    /// Notifications posted and not yet answered.
    pub in_flight: usize,
}

#[derive(Deserialize)]
struct List<T> {
    value: Vec<T>,
}

/// A client of one sim-graph's control API.
#[derive(Clone, Debug)]
pub struct SimGraphControl {
    base: String,
    http: reqwest::Client,
}

/// A party as the control API reads it (`{"phone": …}`, `{"user": …}`).
fn party_json(p: &Party) -> Value {
    serde_json::to_value(p).unwrap_or_else(|_| json!({}))
}

impl SimGraphControl {
    /// A client of the sim-graph at `base` (`http://127.0.0.1:PORT`).
    pub fn new(base: impl Into<String>, http: reqwest::Client) -> Self {
        SimGraphControl {
            base: base.into().trim_end_matches('/').to_owned(),
            http,
        }
    }

    /// The sim-graph's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    async fn send<T: DeserializeOwned>(
        &self,
        what: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<T, ControlError> {
        let transport = |e: reqwest::Error| ControlError::Transport {
            what: what.to_owned(),
            message: e.to_string(),
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(transport)?;
        if !(200..300).contains(&status) {
            let message = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| {
                    v.pointer("/error/message")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
                .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
            return Err(ControlError::Refused {
                what: what.to_owned(),
                status,
                message,
            });
        }
        serde_json::from_slice(&body).map_err(|e| ControlError::Answer {
            what: what.to_owned(),
            message: e.to_string(),
        })
    }

    fn post(&self, path: &str, body: &Value) -> reqwest::RequestBuilder {
        self.http.post(format!("{}{path}", self.base)).json(body)
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(format!("{}{path}", self.base))
    }

    /// `POST /sim/calls`: a call from `from` to `to` (the bot's application
    /// when `None`), notified to `callback_uri`; the new call's id.
    ///
    /// # Errors
    ///
    /// [`ControlError`] when sim-graph does not place it.
    pub async fn place_call(
        &self,
        from: &Party,
        to: Option<&Party>,
        callback_uri: &str,
    ) -> Result<String, ControlError> {
        let mut body = json!({ "from": party_json(from), "callbackUri": callback_uri });
        if let Some(to) = to {
            body["to"] = party_json(to);
        }
        #[derive(Deserialize)]
        struct Placed {
            id: String,
        }
        let placed: Placed = self
            .send("placing a call", self.post("/sim/calls", &body))
            .await?;
        Ok(placed.id)
    }

    /// `POST /sim/calls/{id}/press`: the caller presses `digits`.
    ///
    /// # Errors
    ///
    /// [`ControlError`]; `409` until the call listens for tones.
    pub async fn press(&self, call_id: &str, digits: &str) -> Result<(), ControlError> {
        let _: Value = self
            .send(
                "pressing keys",
                self.post(
                    &format!("/sim/calls/{call_id}/press"),
                    &json!({ "digits": digits }),
                ),
            )
            .await?;
        Ok(())
    }

    /// `POST /sim/calls/{id}/hangup`: the caller hangs up.
    ///
    /// # Errors
    ///
    /// [`ControlError`] when the call is unknown.
    pub async fn hang_up(&self, call_id: &str) -> Result<(), ControlError> {
        let _: Value = self
            .send(
                "hanging up",
                self.post(&format!("/sim/calls/{call_id}/hangup"), &json!({})),
            )
            .await?;
        Ok(())
    }

    /// `GET /sim/calls`: every call and its state.
    ///
    /// # Errors
    ///
    /// [`ControlError`] on no or a wrong answer.
    pub async fn calls(&self) -> Result<Vec<CallSummary>, ControlError> {
        let list: List<CallSummary> = self.send("listing calls", self.get("/sim/calls")).await?;
        Ok(list.value)
    }

    /// `GET /sim/calls/{id}/requests`: the Graph requests about a call.
    ///
    /// # Errors
    ///
    /// [`ControlError`] when the call is unknown.
    pub async fn requests(&self, call_id: &str) -> Result<Vec<Value>, ControlError> {
        let list: List<Value> = self
            .send(
                "reading requests",
                self.get(&format!("/sim/calls/{call_id}/requests")),
            )
            .await?;
        Ok(list.value)
    }

    /// `GET /sim/clock`.
    ///
    /// # Errors
    ///
    /// [`ControlError`] on no or a wrong answer.
    pub async fn clock(&self) -> Result<ClockView, ControlError> {
        self.send("reading the clock", self.get("/sim/clock")).await
    }

    /// `POST /sim/clock/advance {to}`: moves the clock to `at`.
    ///
    /// # Errors
    ///
    /// [`ControlError`] on no or a wrong answer.
    pub async fn advance_to(&self, at: DateTime<Utc>) -> Result<DateTime<Utc>, ControlError> {
        #[derive(Deserialize)]
        struct Now {
            now: DateTime<Utc>,
        }
        let now: Now = self
            .send(
                "moving the clock",
                self.post("/sim/clock/advance", &json!({ "to": at.to_rfc3339() })),
            )
            .await?;
        Ok(now.now)
    }
}
