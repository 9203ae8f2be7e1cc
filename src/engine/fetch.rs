//! `fetch`, the engine's side: the request it asks the runtime to make
//! ([`FetchRequest`], in [`Command::Fetch`](super::Command::Fetch)), and
//! what it does with the answer ([`Event::Fetched`](super::Event::Fetched)
//! or a failure): the JSON into the step's variable (`next`), a retry after
//! a `5xx` or a failed connection, `on_timeout`, `on_failure`.
//!
//! Secrets never enter the session: a header's `${secrets.NAME}` stays a
//! [`HeaderValue::Secret`] that the runtime fills in as it sends, and what
//! a `secret: true` collect keyed, when a URL or a body reads it, is only
//! in [`Command::Fetch`](super::Command::Fetch)'s `sent` (in memory, never
//! serialised); the command's `request`, which the timeline, the store and
//! the admin API see, has it masked.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::flow::actions::fetch::{Fetch, HeaderPiece, Method};
use crate::flow::{Action, Template, TemplatePart};

use super::command::{Command, CommandId, RequestKind};
use super::run::{Progress, Run, Transition};
use super::scope;
use super::session::{PendingRequest, Waiting};
use super::timeline::Entry;

/// How long the runtime may take beyond the step's timeouts before the
/// engine gives up on an answer (a guard: the runtime's own timeout comes first).
pub const FETCH_GUARD: Duration = Duration::from_secs(10);

/// The wait before attempt `n` (from 2) after a `5xx` or a failed connection.
pub fn retry_delay(attempt: u32) -> Duration {
    Duration::from_millis(500 * u64::from(attempt.saturating_sub(1)).min(8))
}

/// One part of a header's value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeaderValue {
    /// Text, sent as it is.
    Text(String),
    /// A secret of the server's configuration, by name, filled in as the request is sent.
    Secret(String),
}

/// An HTTP request to the designer's service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FetchRequest {
    /// `GET` or `POST`.
    pub method: Method,
    /// The URL.
    pub url: String,
    /// The headers, each value in parts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(String, Vec<HeaderValue>)>,
    /// The JSON body (`POST`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// How long the attempt may wait for the answer, in milliseconds.
    pub timeout_ms: u64,
}

impl FetchRequest {
    /// The timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// The names of the secrets its headers read.
    pub fn secret_names(&self) -> impl Iterator<Item = &str> {
        self.headers.iter().flat_map(|(_, parts)| {
            parts.iter().filter_map(|p| match p {
                HeaderValue::Secret(n) => Some(n.as_str()),
                HeaderValue::Text(_) => None,
            })
        })
    }
}

/// The request as sent, when it reads what a secret collect keyed: kept
/// in memory only (never serialised), and its `Debug` shows nothing of it.
#[derive(Clone, PartialEq)]
pub struct Sent(pub Arc<FetchRequest>);

impl std::ops::Deref for Sent {
    type Target = FetchRequest;
    fn deref(&self) -> &FetchRequest {
        &self.0
    }
}

impl std::fmt::Debug for Sent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sent(hidden: it holds a secret)")
    }
}

/// The answer of the designer's service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FetchAnswer {
    /// The HTTP status.
    pub status: u16,
    /// The JSON body (`null` when empty).
    pub body: Value,
}

/// `text` with every byte but the unreserved ones (`A-Z a-z 0-9 - . _ ~`)
/// as `%XX`, for a value inside a URL.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Whether a failed attempt is worth another: a `5xx`, or no answer at all
/// that is not the timeout.
fn retryable(status: u16, code: &str) -> bool {
    status >= 500 || (status == 0 && code != "Timeout")
}

impl Run<'_> {
    /// The current step's `fetch`, if it is one.
    fn current_fetch(&self) -> Option<&Fetch> {
        match &self.current()?.action {
            Action::Fetch(f) => Some(f),
            _ => None,
        }
    }

    /// The `fetch` step waiting for attempt `command`, and which attempt it
    /// is; its timer is cancelled (the attempt has its answer).
    fn answered_attempt(&mut self, command: CommandId) -> Option<(Fetch, u32)> {
        let Waiting::Fetch {
            command: c,
            attempt,
        } = self.s.waiting
        else {
            return None;
        };
        if c != command {
            return None;
        }
        let f = self.current_fetch()?.clone();
        self.cancel_timer();
        Some((f, attempt))
    }

    /// Starts a `fetch`: its first attempt.
    pub(crate) fn fetch(&mut self, f: &Fetch) -> Progress {
        match self.fetch_attempt(f, 1) {
            Ok(()) => Progress::Wait,
            Err(e) => Progress::Then(Transition::Failure(e)),
        }
    }

    /// Renders the request and sends attempt `attempt`.
    fn fetch_attempt(&mut self, f: &Fetch, attempt: u32) -> Result<(), String> {
        let shown = self.fetch_request(f, true)?;
        let real = self.fetch_request(f, false)?;
        let sent = (real != shown).then(|| Sent(Arc::new(real)));
        let id = self.s.next_command_id();
        let cmd = Command::Fetch {
            id,
            request: shown,
            sent,
        };
        if let Some(line) = cmd.line("service") {
            self.entry(Entry::Request(line));
        }
        self.s.pending.push(PendingRequest {
            command: id,
            kind: RequestKind::Fetch,
            leg: 0,
            client_context: None,
            operation_id: None,
            accepted: false,
        });
        self.out.push(cmd);
        self.s.waiting = Waiting::Fetch {
            command: id,
            attempt,
        };
        self.set_timer(f.timeout + FETCH_GUARD);
        Ok(())
    }

    /// The request as sent (`masked`: as people may read it).
    fn fetch_request(&self, f: &Fetch, masked: bool) -> Result<FetchRequest, String> {
        let input = if masked {
            scope::Inputs::masked(self.flow, self.s)
        } else {
            scope::Inputs::new(self.flow, self.s)
        };
        let text =
            |t: &Template| scope::render(self.flow, t, &input, self.now).map_err(|e| e.to_string());
        // A value put into the URL is percent-encoded (`+1206…` stays a
        // plus), but for one that starts it (a base URL from a variable).
        let mut url = String::new();
        for (i, part) in f.url.parts.iter().enumerate() {
            match part {
                TemplatePart::Text(t) => url.push_str(t),
                TemplatePart::Expr(_) if i == 0 => {
                    let one = Template {
                        source: String::new(),
                        parts: vec![part.clone()],
                    };
                    url.push_str(&text(&one)?);
                }
                TemplatePart::Expr(e) => {
                    let one = Template {
                        source: e.source.clone(),
                        parts: vec![TemplatePart::Expr(e.clone())],
                    };
                    url.push_str(&percent_encode(&text(&one)?));
                }
            }
        }
        let mut headers = Vec::new();
        for (name, pieces) in &f.headers {
            let mut parts = Vec::new();
            for p in pieces {
                match p {
                    HeaderPiece::Template(t) => parts.push(HeaderValue::Text(text(t)?)),
                    HeaderPiece::Secret(n) => parts.push(HeaderValue::Secret(n.clone())),
                }
            }
            headers.push((name.clone(), parts));
        }
        let body = match f.method {
            Method::Get => None,
            Method::Post => {
                let mut m = Map::new();
                for (k, t) in &f.body {
                    let v = match t.parts.as_slice() {
                        // One expression: its value as it is.
                        [TemplatePart::Expr(e)] => {
                            let v = scope::eval(self.flow, e, input.get(), self.now)
                                .map_err(|e| e.to_string())?;
                            scope::to_json(&v)
                        }
                        _ => Value::String(text(t)?),
                    };
                    m.insert(k.clone(), v);
                }
                Some(Value::Object(m))
            }
        };
        Ok(FetchRequest {
            method: f.method,
            url,
            headers,
            body,
            timeout_ms: u64::try_from(f.timeout.as_millis()).unwrap_or(u64::MAX),
        })
    }

    /// The service answered attempt `command`.
    pub(crate) fn fetched(
        &mut self,
        command: CommandId,
        answer: FetchAnswer,
    ) -> Option<Transition> {
        let (f, attempt) = self.answered_attempt(command)?;
        if (200..300).contains(&answer.status) {
            self.s.vars.insert(f.into.clone(), answer.body);
            self.note(format!("the answer is in `vars.{}`", f.into));
            return Some(Transition::Next);
        }
        let why = format!("the service answered {}", answer.status);
        self.fetch_failed(&f, attempt, answer.status, "", why)
    }

    /// Attempt `command` got no answer: a timeout, a refusal by the
    /// runtime (a host not allowed, an answer too large), or no connection.
    pub(crate) fn fetch_request_failed(
        &mut self,
        command: CommandId,
        status: u16,
        code: &str,
        why: String,
    ) -> Option<Transition> {
        let (f, attempt) = self.answered_attempt(command)?;
        if code == "Timeout" {
            self.note(format!("{why}: no answer within {}s", f.timeout.as_secs()));
            return Some(Transition::Timeout);
        }
        self.fetch_failed(&f, attempt, status, code, why)
    }

    /// Another attempt after a `5xx` or no connection, while retries are
    /// left; else `on_failure`.
    fn fetch_failed(
        &mut self,
        f: &Fetch,
        attempt: u32,
        status: u16,
        code: &str,
        why: String,
    ) -> Option<Transition> {
        if retryable(status, code) && attempt <= f.retries {
            let delay = retry_delay(attempt + 1);
            self.note(format!(
                "{why}: trying again in {}ms (attempt {} of {})",
                delay.as_millis(),
                attempt + 1,
                f.retries + 1
            ));
            self.s.waiting = Waiting::FetchRetry {
                attempt: attempt + 1,
            };
            self.set_timer(delay);
            return None;
        }
        Some(Transition::Failure(why))
    }

    /// The step timer of a `fetch`: the guard of an attempt, or the wait before the next.
    pub(crate) fn fetch_timer(&mut self) -> Option<Transition> {
        let f = self.current_fetch()?.clone();
        match self.s.waiting {
            Waiting::FetchRetry { attempt } => match self.fetch_attempt(&f, attempt) {
                Ok(()) => None,
                Err(e) => Some(Transition::Failure(e)),
            },
            _ => Some(Transition::Timeout),
        }
    }
}
