//! One run of a flow for one call: plain, serialisable data.
//!
//! A [`Session`] holds everything the interpreter needs between two events:
//! the flow it runs (name and version), the current step and what it waits
//! for, the calls it owns ([`Leg`]s: the main call, a consultation call, an
//! outgoing call), variables, digits, pending requests and timer, the
//! timeline, and the recorded [`RunEnd`]. It holds no flow, no closure, no
//! handle: a store may keep it across restarts. Only [`step`](super::step)
//! changes it.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::flow::{Flow, StepId};
use crate::graph::wire::CallState;

use super::command::{Command, CommandId, RequestKind, TimerId};
pub use super::leg::{Leg, LegRole, TransferProgress};
pub use super::outcome::{Outcome, RunEnd};
use super::rules::Upkeep;
use super::timeline::Timeline;

/// How long Graph gives the bot to answer, reject or redirect an incoming call.
pub const ANSWER_WITHIN: Duration = Duration::seconds(15);

/// How often the engine sends `keepAlive` on an established call (Graph
/// ends calls without one for 45 minutes).
pub const KEEP_ALIVE_EVERY: Duration = Duration::minutes(15);

/// Who the bot is, for the requests that need it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bot {
    /// Where Graph posts this session's notifications (`answer`, `create call`).
    pub callback_uri: String,
    /// The bot's application id (the `source` of the calls it places).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_id: Option<String>,
    /// The application instance (a resource account with a phone number),
    /// needed to call or transfer to PSTN numbers; preferred over `application_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_instance_id: Option<String>,
    /// The bot's display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The tenant the bot places calls in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// Every application instance of the bot, which a `call`'s `from:` may
    /// name (see [`super::identity`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instances: Vec<super::identity::Instance>,
}

impl Bot {
    /// A bot reached at `callback_uri`, with no identity set.
    pub fn new(callback_uri: impl Into<String>) -> Self {
        Bot {
            callback_uri: callback_uri.into(),
            ..Bot::default()
        }
    }
}

/// What a request the session sent is for, until its result comes back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PendingRequest {
    /// The command.
    pub command: CommandId,
    /// Its kind.
    pub kind: RequestKind,
    /// The leg it targets (an index into [`Session::legs`]).
    pub leg: usize,
    /// The `clientContext` sent (prompts, tones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_context: Option<String>,
    /// Graph's operation id, once returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation_id: Option<String>,
    /// Whether the request was answered (`2xx`): only operation updates remain.
    #[serde(default)]
    pub accepted: bool,
}

/// What the current step waits for.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Waiting {
    /// Nothing: the run has not started, is between steps, or has ended.
    #[default]
    Nothing,
    /// A call to reach `established` (`answer`, `call`, `join_meeting`).
    Established {
        /// The leg.
        leg: usize,
    },
    /// A redirect to be accepted.
    Redirect {
        /// The command.
        command: CommandId,
    },
    /// A blind transfer of the main call to complete or fail.
    Transfer {
        /// The leg transferred.
        leg: usize,
    },
    /// The consultation call to be answered.
    ConsultAnswer {
        /// The consultation leg.
        consult: usize,
    },
    /// The announcement to the target to finish playing.
    ConsultAnnounce {
        /// The consultation leg.
        consult: usize,
        /// The prompt's client context.
        context: String,
    },
    /// The transfer replacing the consultation call to complete or fail.
    ConsultTransfer {
        /// The consultation leg.
        consult: usize,
    },
    /// A prompt to finish playing.
    Prompt {
        /// The prompt's client context.
        context: String,
    },
    /// A key press in a menu.
    Menu {
        /// Prompts played after the first (retries used).
        attempt: u32,
        /// The current prompt's client context.
        context: String,
        /// Whether the current prompt has finished (the timeout runs from then).
        prompt_done: bool,
    },
    /// Digits of a `collect`.
    Collect {
        /// Prompts played after the first (retries used).
        attempt: u32,
        /// The current prompt's client context.
        context: String,
        /// Whether the current prompt has finished (the first-digit timeout runs from then).
        prompt_done: bool,
        /// Whether the prompt was cut short (`cancelMediaProcessing` on
        /// the first key): its operation's end, however Graph reports it,
        /// is the prompt's end, not a failure.
        #[serde(default)]
        cut: bool,
        /// Whether the finish key came while a key before it had not
        /// arrived: the entry ends once that one does (or its pause does).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        finished: bool,
    },
    /// A `recordResponse` to finish.
    Record {
        /// Its client context.
        context: String,
    },
    /// A recording to be downloaded and delivered.
    SaveRecording {
        /// The command.
        command: CommandId,
    },
    /// The answer of a `fetch`'s attempt.
    Fetch {
        /// The command.
        command: CommandId,
        /// Which attempt (from 1).
        attempt: u32,
    },
    /// The wait before a `fetch`'s next attempt.
    FetchRetry {
        /// The attempt to make (from 2).
        attempt: u32,
    },
    /// A `participants/invite` to complete.
    Invite {
        /// Its client context.
        context: String,
    },
    /// A `ring_group`: the caller on hold while its targets ring.
    RingGroup(Box<RingState>),
    /// The main call to reach a state.
    State {
        /// The state.
        state: CallState,
    },
    /// A timer to fire.
    Timer,
}

/// Where a `ring_group` stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingState {
    /// The consultation calls ringing now: the leg, and which target it rings.
    pub ringing: Vec<(usize, usize)>,
    /// The target a serial group rings next.
    pub next: usize,
    /// When the caller has waited `max_wait` (`on_timeout`).
    pub give_up_at: DateTime<Utc>,
    /// When the attempts ringing now stop ringing.
    pub round_ends_at: DateTime<Utc>,
    /// When the announcement is due next, if there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub announce_at: Option<DateTime<Utc>>,
    /// Whether it is due: played when the hold music ends.
    #[serde(default)]
    pub announce_due: bool,
    /// The client context of the prompt playing to the caller.
    pub hold: String,
    /// The turn a `round_robin` group asked the runtime for and awaits:
    /// nothing rings until it comes (or [`TURN_WAIT`](super::ring::TURN_WAIT) passes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asking: Option<CommandId>,
    /// Plays of the hold music that failed in a row (it is played again up
    /// to [`HOLD_RETRIES`](super::ring::HOLD_RETRIES) times).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub hold_failures: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The timer the current step set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepTimer {
    /// Its id.
    pub id: TimerId,
    /// When it fires.
    pub at: DateTime<Utc>,
}

/// A notification's `resourceData` kept as compact JSON text (`event`).
///
/// One allocation instead of a tree of them. A live session keeps its last
/// event for as long as it waits, and a parsed tree kept among the freed
/// nodes of the rest of its notification pins far more resident memory than
/// its size: about 4.5 KiB per live session, measured with
/// `examples/runtime_load`. It is parsed again only when an expression or a
/// template reads `event`. Serialises as the JSON it holds (or `null`).
#[derive(Clone, Debug, Default)]
pub struct EventJson(Option<Box<serde_json::value::RawValue>>);

impl EventJson {
    /// `value` as compact JSON (nothing for `null`).
    pub fn new(value: &Value) -> Self {
        if value.is_null() {
            return EventJson(None);
        }
        EventJson(serde_json::value::to_raw_value(value).ok())
    }

    /// The event, parsed (`null` when there is none).
    pub fn value(&self) -> Value {
        self.0
            .as_ref()
            .and_then(|raw| serde_json::from_str(raw.get()).ok())
            .unwrap_or(Value::Null)
    }

    /// The JSON text, if any.
    pub fn text(&self) -> Option<&str> {
        self.0.as_ref().map(|raw| raw.get())
    }
}

impl PartialEq for EventJson {
    fn eq(&self, other: &Self) -> bool {
        self.text() == other.text()
    }
}

impl Serialize for EventJson {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Some(raw) => raw.serialize(serializer),
            None => serializer.serialize_none(),
        }
    }
}

impl<'de> Deserialize<'de> for EventJson {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Ok(EventJson::new(&value))
    }
}

/// One call's run of one flow.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// The session's id (the main call's id, or a run id for `api` flows).
    pub id: String,
    /// The flow's name.
    pub flow: String,
    /// The flow file's SHA-256: the version this run is pinned to.
    pub flow_version: String,
    /// Who the bot is.
    pub bot: Bot,
    /// When the run started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// Whether the current step's action has not finished yet (it is
    /// counted once when it does).
    #[serde(default)]
    pub step_open: bool,
    /// The current step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<StepId>,
    /// What the current step waits for.
    #[serde(default)]
    pub waiting: Waiting,
    /// The calls the session owns; index 0 is the main call once there is one.
    #[serde(default)]
    pub legs: Vec<Leg>,
    /// Variables (`vars`): the flow's defaults, changed by `set`.
    #[serde(default)]
    pub vars: Map<String, Value>,
    /// Parameters of an `api` start (`params`).
    #[serde(default)]
    pub params: Map<String, Value>,
    /// Keys pressed in the current menu (`digits`).
    #[serde(default)]
    pub digits: String,
    /// The tone sequence ids of the current collect's digits, in order: a
    /// key that was overtaken takes its place by its id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_ids: Vec<i64>,
    /// The main call's highest tone id when the current menu or collect
    /// prompt began: a late key at or below it was pressed before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_floor: Option<i64>,
    /// The last notification's `resourceData` (`event`).
    #[serde(default)]
    pub last_event: EventJson,
    /// The current step's timer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timer: Option<StepTimer>,
    /// Requests sent whose result or operation is still awaited.
    #[serde(default)]
    pub pending: Vec<PendingRequest>,
    /// Call ids Graph reported terminated before the session knew them.
    #[serde(default)]
    pub early_terminated: Vec<String>,
    /// The next id for commands, timers and client contexts.
    #[serde(default)]
    pub next_id: u64,
    /// Steps entered so far (the step limit counts these).
    #[serde(default)]
    pub steps_taken: u32,
    /// What happened, in order.
    #[serde(default)]
    pub timeline: Timeline,
    /// How the run ended, once it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<RunEnd>,
    /// The named outcome of the last step with `end:` the run went
    /// through: what [`RunEnd::name`] will be.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_name: Option<String>,
    /// When the incoming call arrived (for the 15-second answer rule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incoming_at: Option<DateTime<Utc>>,
    /// The session's own timers: the answer rule, `keepAlive`, the reaper.
    #[serde(default)]
    pub upkeep: Upkeep,
    /// What a `collect` with `secret: true` keyed: never serialised, so
    /// never in the store, the admin API or a snapshot (see [`Secrets`]).
    #[serde(skip)]
    pub secrets: Secrets,
}

/// Secret values of a run: the digits a `secret: true` collect is keying
/// and the variables it filled. Expressions read them as `digits` and
/// `vars.NAME` like any other; the timeline and `log` see them masked.
/// They live only in memory: a call recovered after a restart has lost
/// them (its `vars.NAME` reads as nothing). Their `Debug` shows no value.
#[derive(Clone, Default, PartialEq)]
pub struct Secrets {
    /// Variables filled by secret collects.
    pub vars: Map<String, Value>,
    /// The digits keyed so far in a secret collect.
    pub digits: String,
}

/// What a secret is shown as.
pub const MASK: &str = "••••";

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field("vars", &self.vars.keys().collect::<Vec<_>>())
            .field("digits", &self.digits.len())
            .finish()
    }
}

impl Session {
    /// A session for `flow`, not started yet, with the flow's variable defaults.
    pub fn new(flow: &Flow, id: impl Into<String>, bot: Bot) -> Self {
        Session {
            id: id.into(),
            flow: flow.name.clone(),
            flow_version: flow.version.clone(),
            bot,
            started_at: None,
            step_open: false,
            step: None,
            waiting: Waiting::Nothing,
            legs: Vec::new(),
            vars: flow
                .vars
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            params: Map::new(),
            digits: String::new(),
            key_ids: Vec::new(),
            key_floor: None,
            last_event: EventJson::default(),
            timer: None,
            pending: Vec::new(),
            early_terminated: Vec::new(),
            next_id: 1,
            steps_taken: 0,
            timeline: Timeline::default(),
            end: None,
            end_name: None,
            incoming_at: None,
            upkeep: Upkeep::default(),
            secrets: Secrets::default(),
        }
    }

    /// Whether the run has started.
    pub fn is_started(&self) -> bool {
        self.started_at.is_some()
    }

    /// Whether the run has ended (then [`Session::end`] says how).
    pub fn is_ended(&self) -> bool {
        self.end.is_some()
    }

    /// The outcome, once the run has ended.
    pub fn outcome(&self) -> Option<Outcome> {
        self.end.as_ref().map(|e| e.outcome)
    }

    /// The main call, if there is one.
    pub fn main(&self) -> Option<&Leg> {
        self.legs.iter().find(|l| l.role == LegRole::Main)
    }

    /// The index of the main call in [`Session::legs`].
    pub fn main_index(&self) -> Option<usize> {
        self.legs.iter().position(|l| l.role == LegRole::Main)
    }

    /// Adds a leg, first (the main call) or last. The list grows by one:
    /// a session has a few legs, and each is large, so a live session does
    /// not carry room for three more.
    pub fn add_leg(&mut self, leg: Leg, first: bool) {
        if self.legs.len() == self.legs.capacity() {
            self.legs.reserve_exact(1);
        }
        if first {
            self.legs.insert(0, leg);
        } else {
            self.legs.push(leg);
        }
    }

    /// The index of the leg with Graph id `call_id`.
    pub fn leg_index(&self, call_id: &str) -> Option<usize> {
        self.legs
            .iter()
            .position(|l| l.call_id.as_deref() == Some(call_id))
    }

    /// The current step's name.
    pub fn step_name<'f>(&self, flow: &'f Flow) -> Option<&'f str> {
        self.step
            .filter(|s| s.index() < flow.steps.len())
            .map(|s| flow.step(s).name.as_str())
    }

    /// Ids of the calls a request may still be sent for.
    pub fn live_call_ids(&self) -> Vec<&str> {
        self.legs
            .iter()
            .filter(|l| l.is_live())
            .filter_map(|l| l.call_id.as_deref())
            .collect()
    }

    /// When the bot must have answered, rejected or redirected the
    /// incoming call (15 s after it arrived), while that is still owed.
    pub fn answer_deadline(&self) -> Option<DateTime<Utc>> {
        let main = self.main()?;
        let owed = main.state == Some(CallState::Incoming)
            && !self.pending.iter().any(|p| {
                matches!(
                    p.kind,
                    RequestKind::Answer | RequestKind::Reject | RequestKind::Redirect
                )
            })
            && !self.timeline.has_request_for(
                &main.tag,
                &[
                    RequestKind::Answer,
                    RequestKind::Reject,
                    RequestKind::Redirect,
                ],
            );
        owed.then_some(self.incoming_at? + ANSWER_WITHIN)
    }

    /// `keepAlive` commands for every established call, recorded in the
    /// timeline; the engine's keepAlive rule sends them every [`KEEP_ALIVE_EVERY`].
    pub fn keep_alive(&mut self, now: DateTime<Utc>) -> Vec<Command> {
        let mut out = Vec::new();
        for i in 0..self.legs.len() {
            let leg = &self.legs[i];
            let established = matches!(leg.state, Some(CallState::Established | CallState::Hold));
            if !leg.is_live() || !established {
                continue;
            }
            let Some(call_id) = leg.call_id.clone() else {
                continue;
            };
            let tag = leg.tag.clone();
            let id = self.next_command_id();
            let cmd = Command::KeepAlive { id, call_id };
            if let Some(line) = cmd.line(&tag) {
                self.timeline.push_request(now, None, line);
            }
            out.push(cmd);
        }
        out
    }

    /// Every timer armed now, the step's and the rules', as
    /// [`Command::SetTimer`] set them: what a runtime re-arms when it loads
    /// a stored session.
    pub fn timers(&self) -> Vec<(TimerId, DateTime<Utc>)> {
        [
            self.timer,
            self.upkeep.answer,
            self.upkeep.keep_alive,
            self.upkeep.idle,
            self.upkeep.deadline,
        ]
        .into_iter()
        .flatten()
        .map(|t| (t.id, t.at))
        .collect()
    }

    /// A fresh command id.
    pub(crate) fn next_command_id(&mut self) -> CommandId {
        let id = self.next_id;
        self.next_id += 1;
        CommandId(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_kept_as_compact_json_and_serialises_as_the_object() {
        let raw = serde_json::json!({"state": "established", "toneInfo": {"tone": "tone1"}});
        let event = EventJson::new(&raw);
        assert_eq!(
            event.text(),
            Some(r#"{"state":"established","toneInfo":{"tone":"tone1"}}"#)
        );
        assert_eq!(event.value(), raw);
        let json = serde_json::to_value(&event).expect("serialises");
        assert_eq!(json, raw, "an object, not a string");
        let back: EventJson = serde_json::from_value(json).expect("deserialises");
        assert_eq!(back, event);
        let none = EventJson::new(&Value::Null);
        assert_eq!(none, EventJson::default());
        assert_eq!(none.value(), Value::Null);
        assert_eq!(
            serde_json::to_value(&none).expect("serialises"),
            Value::Null
        );
    }
}
