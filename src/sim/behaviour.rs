//! How the simulated Graph behaves: the `graph:` block of a scenario.
//!
//! A [`GraphBehaviour`] says how the far ends and Graph answer (a transfer
//! is accepted, fails, or the target never answers; which keys the caller
//! presses; when the caller hangs up) and which faults to inject (reorder,
//! duplicate, delay, refused requests). It is plain data, read from YAML or
//! from `key=value` pairs; it never runs anything.

use std::fmt;
use std::time::Duration;

use indexmap::IndexMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::engine::RequestKind;

/// A duration written as `25s`, `1m30s`, `500ms`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct SimDuration(pub Duration);

impl SimDuration {
    /// `secs` seconds.
    pub const fn secs(secs: u64) -> Self {
        SimDuration(Duration::from_secs(secs))
    }

    /// Reads `25s`, `1m30s`, `500ms`.
    pub fn parse(text: &str) -> Result<Self, String> {
        humantime::parse_duration(text.trim())
            .map(SimDuration)
            .map_err(|e| format!("`{text}` is not a duration ({e}); write e.g. `25s` or `1m30s`"))
    }

    /// As a chrono duration (saturating).
    pub fn chrono(self) -> chrono::Duration {
        chrono::Duration::from_std(self.0).unwrap_or(chrono::Duration::days(365))
    }
}

impl fmt::Display for SimDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl Serialize for SimDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for SimDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Seconds(u64),
        }
        match Raw::deserialize(d)? {
            Raw::Text(t) => SimDuration::parse(&t).map_err(serde::de::Error::custom),
            Raw::Seconds(s) => Ok(SimDuration::secs(s)),
        }
    }
}

/// How a transfer (blind or consultative) goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferMode {
    /// `transferring`, `transferAccepted`, then `terminated` (0/7015, or
    /// `AppTransferred` for a consultative transfer).
    #[default]
    Accept,
    /// `transferring`, then back to `established` with 500/7000 (500/7700
    /// and a `replacesContext` for a consultative transfer).
    Fail,
    /// The target never answers: `transferring` and nothing more (the
    /// consultation call rings forever).
    NoAnswer,
    /// The target answers the consultation call, but the transfer never
    /// completes: `transferring` and nothing more.
    Stall,
}

/// How the callee of an outgoing call answers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallMode {
    /// `establishing`, then `established`.
    #[default]
    Answer,
    /// `establishing`, then nothing: it rings.
    NoAnswer,
    /// `establishing`, then `terminated` with 480/10037 (no callee endpoint).
    Unreachable,
}

/// What the caller does when the bot records (`record`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordMode {
    /// Speaks for 8 seconds (or up to the maximum duration): a recording to download.
    #[default]
    Speak,
    /// Says nothing: the operation ends with `initialSilenceTimeout`, no recording.
    Silent,
    /// The recording fails (`failed`, 500).
    Fail,
}

/// How an invited participant (`invite`) answers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InviteMode {
    /// Joins after 3 seconds: the operation completes.
    #[default]
    Accept,
    /// Never answers: the operation stays running.
    NoAnswer,
    /// Declines: the operation fails (480/10037, no callee endpoint).
    Fail,
}

/// How a person a `ring_group` (or a `consultative_transfer`) rings
/// answers: an entry of `graph: {agents: …}`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentMode {
    /// Picks up after 2 seconds (the transfer to them then goes as `transfer:` says).
    #[default]
    Answer,
    /// Lets it ring: the call stays `establishing`.
    NoAnswer,
    /// Is busy: the call ends after a second, 486 (busy here).
    Busy,
}

/// What the designer's service answers a `fetch` (an entry of a
/// scenario's `http:` section).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpAnswer {
    /// The HTTP status. Default 200.
    pub status: u16,
    /// The JSON body. Default `null`.
    pub body: serde_json::Value,
    /// How long the service takes to answer; as long as the step's
    /// `timeout` or longer is a timeout. Default 0.
    pub delay: Option<SimDuration>,
    /// The service never answers (the step's `on_timeout`).
    pub timeout: bool,
    /// The connection fails (no answer at all; retried like a `5xx`).
    pub unreachable: bool,
}

impl Default for HttpAnswer {
    fn default() -> Self {
        HttpAnswer {
            status: 200,
            body: serde_json::Value::Null,
            delay: None,
            timeout: false,
            unreachable: false,
        }
    }
}

/// The answers of the designer's services, by URL: `"https://crm.contoso.com/api/callers/*"`
/// (a `*` matches anything; `POST https://…` only a `POST`), each one
/// answer or a list, one per request (the last repeats).
pub type HttpAnswers = IndexMap<String, PerAttempt<HttpAnswer>>;

/// How joining a meeting goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JoinMode {
    /// `establishing`, `established`, then a roster.
    #[default]
    Accept,
    /// `establishing`, then `terminated` with an error.
    Fail,
}

/// One mode, or one per attempt (the last one repeats).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PerAttempt<T> {
    /// The same every time.
    One(T),
    /// Attempt by attempt; the last repeats.
    Each(Vec<T>),
}

impl<T: Copy + Default> PerAttempt<T> {
    /// The mode of attempt `n` (from 0).
    pub fn nth(&self, n: usize) -> T {
        match self {
            PerAttempt::One(t) => *t,
            PerAttempt::Each(list) => list
                .get(n)
                .or_else(|| list.last())
                .copied()
                .unwrap_or_default(),
        }
    }
}

impl<T: Clone + Default> PerAttempt<T> {
    /// The answer of attempt `n` (from 0), for answers that are not `Copy`.
    pub fn nth_cloned(&self, n: usize) -> T {
        match self {
            PerAttempt::One(t) => t.clone(),
            PerAttempt::Each(list) => list
                .get(n)
                .or_else(|| list.last())
                .cloned()
                .unwrap_or_default(),
        }
    }
}

impl<T: Default> Default for PerAttempt<T> {
    fn default() -> Self {
        PerAttempt::One(T::default())
    }
}

/// A key the caller presses at a set moment (what the studio's keypad records).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimedPress {
    /// When, counted from the start of the call.
    pub at: SimDuration,
    /// The key: 0-9, `*`, `#`.
    pub key: String,
}

/// How the simulated Graph and the people on the calls behave.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GraphBehaviour {
    /// Transfers: `accept` (default), `fail`, `no_answer`, or a list, one per transfer.
    pub transfer: PerAttempt<TransferMode>,
    /// Outgoing calls (`call`): `answer` (default), `no_answer`, `unreachable`, or a list.
    pub call: PerAttempt<CallMode>,
    /// Joining meetings: `accept` (default) or `fail`, or a list.
    pub join: PerAttempt<JoinMode>,
    /// Recordings (`record`): `speak` (default), `silent`, `fail`, or a list, one per recording.
    pub record: PerAttempt<RecordMode>,
    /// Invitations (`invite`): `accept` (default), `no_answer`, `fail`, or a list, one per invitation.
    pub invite: PerAttempt<InviteMode>,
    /// How the people a `ring_group` rings answer, by their number or user
    /// id: `{"+14255550181": no_answer, "+14255550182": answer}`, each one
    /// mode or a list, one per call to them (the last repeats). Anyone not
    /// listed answers as `transfer:` says.
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub agents: IndexMap<String, PerAttempt<AgentMode>>,
    /// Keys the caller presses, one entry per prompt played while tones are
    /// subscribed, a second after it ends (several keys, as for a `collect`,
    /// one a second: `"123456#"`); `""` presses nothing (a timeout).
    pub dtmf: Vec<String>,
    /// When the caller (the far end of the main call, or the meeting) hangs
    /// up, counted from the start; never by default.
    pub hangup: Option<SimDuration>,
    /// Keys the caller presses at set moments, counted from the start:
    /// `[{at: 4s, key: "1"}]` (Graph delivers a key only while tones are
    /// subscribed; a person acts after whatever Graph does at the same instant).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub presses: Vec<TimedPress>,
    /// How long each prompt plays. Default 3s.
    pub prompt: Option<SimDuration>,
    /// Swap the first two notifications Graph sends after each request
    /// (`established` before `establishing`, `transferAccepted` before `transferring`).
    pub reorder: bool,
    /// Send every notification twice.
    pub duplicate: bool,
    /// Extra latency on every notification.
    pub delay: Option<SimDuration>,
    /// Requests Graph refuses, by name, with the HTTP status: `{transfer: 500}`.
    pub fail: IndexMap<String, u16>,
    /// Send `mediaState: inactive` before `transferAccepted` (after it by default).
    pub media_first: bool,
    /// Speak the old beta: `/app/calls` paths, `resource`, `subCode`, codes
    /// as strings, transfers reported as operations.
    pub legacy: bool,
    /// What the designer's services answer `fetch` steps: the scenario's
    /// top-level `http:` section (not part of `graph:`).
    #[serde(skip)]
    pub http: HttpAnswers,
    /// The turn `round_robin` ring groups hand out first in this run (how
    /// many calls they took before it): the scenario's top-level
    /// `ring_turn` (not part of `graph:`). Default 0: the first target.
    #[serde(skip)]
    pub ring_turn: u64,
}

impl GraphBehaviour {
    /// How long each prompt plays.
    pub fn prompt_length(&self) -> SimDuration {
        self.prompt.unwrap_or(SimDuration::secs(3))
    }

    /// The HTTP status Graph refuses `kind` with, if any.
    pub fn refusal(&self, kind: RequestKind) -> Option<u16> {
        self.fail.get(kind.as_str()).copied()
    }

    /// Checks names that serde cannot: the requests of `fail`.
    pub fn validate(&self) -> Result<(), String> {
        for (name, status) in &self.fail {
            if RequestKind::from_name(name).is_none() {
                let names: Vec<&str> = RequestKind::ALL.iter().map(|k| k.as_str()).collect();
                return Err(format!(
                    "`fail: {{{name}: …}}` names no request; use one of {}",
                    names.join(", ")
                ));
            }
            if !(400..=599).contains(status) {
                return Err(format!(
                    "`fail: {{{name}: {status}}}` must be an HTTP error status, 400 to 599"
                ));
            }
        }
        let is_key = |c: char| c.is_ascii_digit() || "*#ABCD".contains(c);
        for keys in &self.dtmf {
            if !keys.chars().all(is_key) {
                return Err(format!(
                    "`dtmf: {keys:?}` is not keys: use 0-9, *, #, several for a collect \
                     (\"123456#\"), or \"\" for none"
                ));
            }
        }
        for p in &self.presses {
            if p.key.chars().count() > 1 || !p.key.chars().all(is_key) {
                return Err(format!(
                    "`presses: {:?}` is not one key: use 0-9, * or #",
                    p.key
                ));
            }
        }
        Ok(())
    }

    /// Sets one field from `key=value` text (for `callflow simulate --graph`):
    /// `transfer=fail`, `transfer=fail,accept`, `dtmf=1,2`, `hangup=20s`,
    /// `reorder=true`, `fail.transfer=500`, ...
    pub fn set(&mut self, pair: &str) -> Result<(), String> {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("`{pair}` is not key=value, e.g. transfer=fail"))?;
        let (key, value) = (key.trim(), value.trim());
        let list = |v: &str| -> Vec<String> { v.split(',').map(|s| s.trim().to_owned()).collect() };
        let modes = |v: &str| -> String {
            let items = list(v);
            if items.len() == 1 {
                items[0].clone()
            } else {
                format!("[{}]", items.join(", "))
            }
        };
        let flag = |v: &str| match v {
            "true" | "yes" | "1" | "" => Ok(true),
            "false" | "no" | "0" => Ok(false),
            other => Err(format!("`{other}` is not true or false")),
        };
        match key {
            "transfer" => self.transfer = from_yaml(&modes(value))?,
            "call" => self.call = from_yaml(&modes(value))?,
            "join" => self.join = from_yaml(&modes(value))?,
            "record" => self.record = from_yaml(&modes(value))?,
            "invite" => self.invite = from_yaml(&modes(value))?,
            "dtmf" => self.dtmf = list(value),
            "presses" => {
                self.presses = list(value)
                    .iter()
                    .map(|item| {
                        let (at, key) = item
                            .split_once(':')
                            .ok_or_else(|| format!("`{item}` is not TIME:KEY, e.g. 4s:1"))?;
                        Ok(TimedPress {
                            at: SimDuration::parse(at)?,
                            key: key.trim().to_owned(),
                        })
                    })
                    .collect::<Result<_, String>>()?
            }
            "hangup" => self.hangup = Some(SimDuration::parse(value)?),
            "prompt" => self.prompt = Some(SimDuration::parse(value)?),
            "delay" => self.delay = Some(SimDuration::parse(value)?),
            "reorder" => self.reorder = flag(value)?,
            "duplicate" => self.duplicate = flag(value)?,
            "media_first" => self.media_first = flag(value)?,
            "legacy" => self.legacy = flag(value)?,
            other => match other.strip_prefix("fail.") {
                Some(request) => {
                    if RequestKind::from_name(request).is_none() {
                        return Err(format!("`{request}` names no request"));
                    }
                    let status = value
                        .parse()
                        .map_err(|_| format!("`{value}` is not an HTTP status"))?;
                    self.fail.insert(request.to_owned(), status);
                }
                None => {
                    return Err(format!(
                        "`{other}` is not a graph setting; use transfer, call, join, record, invite, \
                         dtmf, presses, hangup, prompt, delay, reorder, duplicate, media_first, legacy or fail.REQUEST"
                    ));
                }
            },
        }
        self.validate()
    }
}

fn from_yaml<T: for<'de> Deserialize<'de>>(text: &str) -> Result<T, String> {
    serde_saphyr::from_str(text).map_err(|e| format!("`{text}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_yaml_and_pairs() {
        let b: GraphBehaviour = serde_saphyr::from_str(
            "transfer: [fail, accept]\ndtmf: [\"1\", \"\"]\nhangup: 25s\nfail: {answer: 503}\n",
        )
        .expect("valid behaviour");
        assert_eq!(b.transfer.nth(0), TransferMode::Fail);
        assert_eq!(b.transfer.nth(5), TransferMode::Accept);
        assert_eq!(b.hangup, Some(SimDuration::secs(25)));
        assert_eq!(b.refusal(RequestKind::Answer), Some(503));
        assert!(b.validate().is_ok());

        let mut c = GraphBehaviour::default();
        c.set("transfer=no_answer").expect("a mode");
        c.set("call=answer,unreachable").expect("modes");
        c.set("dtmf=1,#").expect("keys");
        c.set("presses=4s:1,7500ms:#").expect("timed keys");
        assert_eq!(c.presses[1].at, SimDuration(Duration::from_millis(7500)));
        assert!(c.set("presses=4s:12").is_err());
        assert_eq!(c.transfer.nth(0), TransferMode::NoAnswer);
        assert_eq!(c.call.nth(1), CallMode::Unreachable);
        assert_eq!(c.dtmf, vec!["1".to_owned(), "#".to_owned()]);
        assert!(c.set("fail.tranfer=500").is_err());
        assert!(c.set("colour=blue").is_err());
        assert!(serde_saphyr::from_str::<GraphBehaviour>("transfer: maybe\n").is_err());
    }
}
