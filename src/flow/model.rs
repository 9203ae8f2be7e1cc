//! The flow file as written: typed, strict, with spans.
//!
//! These types mirror the YAML of `docs/flow-language.md` one to one. They
//! derive `Deserialize` (through [`crate::flow::de`], which keeps spans) and
//! `JsonSchema` (the doc comments become the schema's descriptions, which an
//! editor shows while the designer types). They hold text as written:
//! expressions, durations and phone numbers are checked and compiled by
//! [`crate::flow::check`] into a [`crate::flow::Flow`]. Nothing here knows
//! Graph's JSON or runs anything.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::span::Spanned;

/// Text as written in the file, with its position.
pub type Text = Spanned<String>;

/// One flow file: a graph of named steps that handles a call.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "callflow flow file")]
pub struct FlowFile {
    /// The flow's name, unique among the loaded flows (letters, digits, `-` and `_`).
    pub flow: Text,
    /// What the flow is for, shown in `callflow graph` and the admin API.
    #[serde(default)]
    pub description: Option<String>,
    /// IANA time zone of the flow's clock and calendars, e.g. `Europe/Paris`. Default `UTC`.
    #[serde(default)]
    pub timezone: Option<Text>,
    /// What starts a run of this flow.
    pub trigger: Spanned<Trigger>,
    /// Named opening hours, used by `open("name")` in expressions.
    #[serde(default)]
    pub calendars: IndexMap<Text, Spanned<Calendar>>,
    /// Variables with their default values; `set` changes them for one call.
    #[serde(default)]
    pub vars: IndexMap<Text, Spanned<serde_json::Value>>,
    /// The step a run begins with.
    pub start: Option<Text>,
    /// Most steps one run may take before it is stopped as a loop. Default 200.
    #[serde(default)]
    pub max_steps: Option<Spanned<u32>>,
    /// The steps, by name.
    pub steps: IndexMap<Text, Spanned<StepDef>>,
    /// Handlers that react at any step: to a call state (`terminated`, …) or to `error`.
    #[serde(default)]
    pub on: IndexMap<Text, Spanned<Vec<Spanned<HandlerItem>>>>,
}

/// What starts a run.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Trigger {
    /// A call to the bot: a notification with state `incoming`.
    IncomingCall(IncomingCallTrigger),
    /// A change of call state on a call that no running flow owns.
    StateChange(StateChangeTrigger),
    /// Started on demand: `POST /api/flows/{flow}/runs` or `callflow run`.
    Api(ApiTrigger),
}

/// Filters on an incoming call. Every filter given must hold.
#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IncomingCallTrigger {
    /// Numbers (E.164) or application-instance ids called; one or a list; `*` globs allowed.
    #[serde(default)]
    pub to: Option<OneOrMany<Text>>,
    /// The caller: a number, a user id or a glob such as `+44*`; one or a list.
    #[serde(default)]
    pub from: Option<OneOrMany<Text>>,
    /// A rhai condition that must hold, e.g. `call.from.phone != ""`.
    #[serde(default)]
    pub when: Option<Text>,
}

/// Filters on a state change.
#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StateChangeTrigger {
    /// The new state (`established`, `transferring`, `terminated`, …); one or a list.
    #[serde(default)]
    pub state: Option<OneOrMany<Text>>,
    /// A rhai condition that must hold.
    #[serde(default)]
    pub when: Option<Text>,
}

/// An on-demand start and its parameters.
#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiTrigger {
    /// The parameters a start must (or may) give, by name; reachable as `params.NAME`.
    #[serde(default)]
    pub params: IndexMap<Text, Spanned<ParamDef>>,
}

/// One parameter of an `api` flow.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ParamDef {
    /// Its type.
    #[serde(rename = "type")]
    pub kind: Spanned<ParamType>,
    /// Whether a start must give it. Default `true` unless a `default` is given.
    #[serde(default)]
    pub required: Option<bool>,
    /// The value used when a start does not give it.
    #[serde(default)]
    pub default: Option<Spanned<serde_json::Value>>,
    /// What it is for.
    #[serde(default)]
    pub description: Option<String>,
}

/// The types of an `api` parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ParamType {
    /// Any text.
    String,
    /// An E.164 phone number, e.g. `+14255550100`.
    Phone,
    /// A whole number.
    Integer,
    /// `true` or `false`.
    Bool,
}

/// Named opening hours.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Calendar {
    /// Open periods, e.g. `mon-fri 09:00-12:30`, `sat 10:00-12:00`, `mon,wed 14:00-18:00`.
    pub hours: Vec<Text>,
    /// Days closed all day (holidays): `2026-12-25`, or a range `2026-12-24..2026-12-26`.
    #[serde(default)]
    pub closed: Vec<Text>,
}

/// One value or a list of them.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    /// A single value.
    One(T),
    /// A list.
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    /// The values, one or many, as a slice.
    pub fn as_slice(&self) -> &[T] {
        match self {
            OneOrMany::One(v) => std::slice::from_ref(v),
            OneOrMany::Many(v) => v,
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    /// Asks [`crate::flow::de`] which shape the node has (a list is `many`),
    /// then reads the node itself as `T` or `Vec<T>`, so that values inside
    /// keep their spans.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for V<T> {
            type Value = OneOrMany<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a value or a list of values")
            }
            fn visit_enum<A: serde::de::EnumAccess<'de>>(
                self,
                data: A,
            ) -> Result<Self::Value, A::Error> {
                use serde::de::VariantAccess;
                let (shape, value) = data.variant::<String>()?;
                if shape == "many" {
                    value.newtype_variant::<Vec<T>>().map(OneOrMany::Many)
                } else {
                    value.newtype_variant::<T>().map(OneOrMany::One)
                }
            }
            // Other deserializers (JSON, …): the value as it comes.
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> Result<Self::Value, A::Error> {
                Vec::<T>::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))
                    .map(OneOrMany::Many)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(OneOrMany::One)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                T::deserialize(serde::de::value::StrDeserializer::<E>::new(v)).map(OneOrMany::One)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
                self.visit_str(&v.to_string())
            }
        }
        if crate::flow::de::is_node_deserializer::<D>() {
            deserializer.deserialize_enum(
                crate::flow::de::ONE_OR_MANY_NAME,
                &["one", "many"],
                V(std::marker::PhantomData),
            )
        } else {
            deserializer.deserialize_any(V(std::marker::PhantomData))
        }
    }
}

/// One step: exactly one action, then the outcomes that lead on.
#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepDef {
    /// What the step is for (shown in diagrams).
    #[serde(default)]
    pub description: Option<String>,
    /// Answer the incoming call (`POST /calls/{id}/answer`); `next` once established.
    #[serde(default)]
    pub answer: Option<Spanned<AnswerAction>>,
    /// Reject the incoming call; ends the run.
    #[serde(default)]
    pub reject: Option<Spanned<RejectAction>>,
    /// Redirect the incoming call before answering; ends the run.
    #[serde(default)]
    pub redirect: Option<Spanned<RedirectAction>>,
    /// Blind transfer to a Teams user or a phone number.
    #[serde(default)]
    pub transfer: Option<Spanned<TransferAction>>,
    /// Call the target first, optionally play an announcement, then transfer.
    #[serde(default)]
    pub consultative_transfer: Option<Spanned<ConsultativeTransferAction>>,
    /// Join a Teams meeting (the bot places a new call).
    #[serde(default)]
    pub join_meeting: Option<Spanned<JoinMeetingAction>>,
    /// Place an outgoing call to a user or a phone number.
    #[serde(default)]
    pub call: Option<Spanned<CallAction>>,
    /// Play a prompt; `next` when it has played.
    #[serde(default)]
    pub play: Option<Spanned<PlayAction>>,
    /// Play a prompt and collect one DTMF digit.
    #[serde(default)]
    pub menu: Option<Spanned<MenuAction>>,
    /// Go to the first case whose `when` holds; a last case without `when` is the default.
    #[serde(default)]
    pub switch: Option<Spanned<Vec<Spanned<SwitchCase>>>>,
    /// Set variables for this call: `name: expression`.
    #[serde(default)]
    pub set: Option<Spanned<IndexMap<Text, Text>>>,
    /// Write a line to the call's timeline; may embed `${expression}`.
    #[serde(default)]
    pub log: Option<Text>,
    /// Hang up (`DELETE /calls/{id}`); ends the run.
    #[serde(default)]
    pub hangup: Option<Spanned<HangupAction>>,
    /// Wait for a call state, or for a time.
    #[serde(default)]
    pub wait: Option<Spanned<WaitAction>>,
    /// The step to go to when the action succeeds. Without it, the run ends there.
    #[serde(default)]
    pub next: Option<Text>,
    /// The step to go to when the action fails.
    #[serde(default)]
    pub on_failure: Option<Text>,
    /// The step to go to when the action times out.
    #[serde(default)]
    pub on_timeout: Option<Text>,
    /// The step to go to when the caller presses a key the menu does not offer.
    #[serde(default)]
    pub on_invalid: Option<Text>,
}

/// `answer: {}`.
#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerAction {
    /// Prompts to fetch ahead, so that they play without delay.
    #[serde(default)]
    pub prefetch: Vec<Text>,
}

/// `reject: {reason}`.
#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectAction {
    /// Why: `none` (default), `busy` or `forbidden`.
    #[serde(default)]
    pub reason: Option<Spanned<RejectReason>>,
}

/// The reasons Graph accepts for a rejection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// No reason given.
    #[default]
    None,
    /// The callee is busy.
    Busy,
    /// The call is refused.
    Forbidden,
}

/// `redirect: {to, timeout}`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedirectAction {
    /// Where to: one target or a list (at most 25).
    pub to: OneOrMany<Spanned<TargetDef>>,
    /// How long the targets ring, 15s to 90s.
    #[serde(default)]
    pub timeout: Option<Text>,
}

/// A user or a phone number to call, transfer or redirect to.
#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetDef {
    /// A Teams user's Entra object id (may embed `${…}`).
    #[serde(default)]
    pub user: Option<Text>,
    /// The user's tenant id, when it differs from the bot's.
    #[serde(default)]
    pub tenant: Option<Text>,
    /// A phone number in E.164 form, `+` then up to 15 digits (may embed `${…}`).
    #[serde(default)]
    pub phone: Option<Text>,
    /// The name Teams shows.
    #[serde(default)]
    pub display_name: Option<Text>,
}

/// The participant to transfer out of a group call.
#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransfereeDef {
    /// The participant's id in the call (Graph's `participantId`).
    pub participant_id: Text,
    /// The participant's user id.
    #[serde(default)]
    pub user: Option<Text>,
    /// The user's tenant id.
    #[serde(default)]
    pub tenant: Option<Text>,
    /// The participant's phone number.
    #[serde(default)]
    pub phone: Option<Text>,
    /// The participant's display name.
    #[serde(default)]
    pub display_name: Option<Text>,
}

/// `transfer: {to, transferee?, client_context?, timeout?}`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferAction {
    /// The transfer target.
    pub to: Spanned<TargetDef>,
    /// Who is transferred, required when transferring out of a group call.
    #[serde(default)]
    pub transferee: Option<Spanned<TransfereeDef>>,
    /// A unique text (at most 256 characters) echoed in Graph's notifications.
    #[serde(default)]
    pub client_context: Option<Text>,
    /// How long to wait for the transfer to complete before `on_timeout`. Default 60s.
    #[serde(default)]
    pub timeout: Option<Text>,
}

/// `consultative_transfer: {to, announce?, timeout?}`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsultativeTransferAction {
    /// The target, called first.
    pub to: Spanned<TargetDef>,
    /// A prompt played to the target once it answers, before the transfer.
    #[serde(default)]
    pub announce: Option<Text>,
    /// How long the target may take to answer before `on_failure`. Default 30s.
    #[serde(default)]
    pub timeout: Option<Text>,
}

/// `join_meeting`: by meeting id and passcode, or by thread and organizer.
#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinMeetingAction {
    /// The numeric meeting id shown in the invitation.
    #[serde(default)]
    pub join_meeting_id: Option<Text>,
    /// The meeting passcode, if it has one.
    #[serde(default)]
    pub passcode: Option<Text>,
    /// The meeting chat's thread id (with `message_id` and `organizer`).
    #[serde(default)]
    pub thread_id: Option<Text>,
    /// The meeting chat's message id, usually `0`.
    #[serde(default)]
    pub message_id: Option<Text>,
    /// The organizer's user id.
    #[serde(default)]
    pub organizer: Option<Text>,
    /// The meeting's tenant id.
    #[serde(default)]
    pub tenant: Option<Text>,
    /// How long joining may take before `on_failure`. Default 30s.
    #[serde(default)]
    pub timeout: Option<Text>,
}

/// `call: {to, subject?}`: an outgoing call.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CallAction {
    /// Who to call: one target, or a list for a group call (at most 5 users).
    pub to: OneOrMany<Spanned<TargetDef>>,
    /// The call's subject.
    #[serde(default)]
    pub subject: Option<Text>,
    /// How long the call may ring before `on_timeout`. Default 30s.
    #[serde(default)]
    pub timeout: Option<Text>,
}

/// `play: {prompt}`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlayAction {
    /// The URL of a WAV prompt (may embed `${…}`).
    pub prompt: Text,
}

/// `menu: {prompt, choices, timeout, retries}`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MenuAction {
    /// The URL of the prompt that lists the choices.
    pub prompt: Text,
    /// The step for each key: `"1": sales`. Keys are `0`–`9`, `*`, `#`.
    pub choices: IndexMap<Text, Text>,
    /// How long to wait for a key after the prompt. Default 10s.
    #[serde(default)]
    pub timeout: Option<Text>,
    /// How many more times to play the prompt after a timeout or a wrong key. Default 0.
    #[serde(default)]
    pub retries: Option<Spanned<u32>>,
    /// A prompt played after a wrong key, before the retry.
    #[serde(default)]
    pub invalid_prompt: Option<Text>,
}

/// One case of a `switch`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SwitchCase {
    /// A rhai condition; a case without one always holds.
    #[serde(default)]
    pub when: Option<Text>,
    /// The step to go to.
    pub goto: Text,
}

/// `hangup: {}`.
#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HangupAction {}

/// `wait: {state?, timeout}`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitAction {
    /// The call state to wait for; without it, wait for `timeout` then go `next`.
    #[serde(default)]
    pub state: Option<Text>,
    /// How long to wait.
    pub timeout: Text,
}

/// One item of an `on` handler: runs in order, at any step.
#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HandlerItem {
    /// Write a line to the call's timeline.
    #[serde(default)]
    pub log: Option<Text>,
    /// Set variables.
    #[serde(default)]
    pub set: Option<Spanned<IndexMap<Text, Text>>>,
    /// Leave the current step and go to this one (not after `terminated`).
    #[serde(default)]
    pub goto: Option<Text>,
    /// Hang up.
    #[serde(default)]
    pub hangup: Option<Spanned<HangupAction>>,
}
