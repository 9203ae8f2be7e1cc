//! The flow file as written: typed, strict, with spans.
//!
//! These types mirror the YAML of `docs/flow-language.md` one to one; a
//! step ([`StepDef`]) and each action's form are in [`crate::flow::actions`],
//! one module per action. They derive `Deserialize` (through
//! [`crate::flow::de`], which keeps spans) and `JsonSchema` (the doc
//! comments become the schema's descriptions, which an editor shows while
//! the designer types). They hold text as written:
//! expressions, durations and phone numbers are checked and compiled by
//! [`crate::flow::check`] into a [`crate::flow::Flow`]. Nothing here knows
//! Graph's JSON or runs anything.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::span::Spanned;

pub use super::actions::StepDef;
use super::actions::hangup::HangupAction;

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
    /// Calendar files (their `calendars:`) this flow uses too, relative to
    /// this file, e.g. `[calendars/clinic.yaml]`; shared by several flows.
    #[serde(default, rename = "use")]
    pub uses: Vec<Text>,
    /// Variables with their default values; `set` changes them for one call.
    #[serde(default)]
    pub vars: IndexMap<Text, Spanned<serde_json::Value>>,
    /// The step a run begins with.
    pub start: Option<Text>,
    /// Most steps one run may take before it is stopped as a loop. Default 200.
    #[serde(default)]
    pub max_steps: Option<Spanned<u32>>,
    /// The longest one run may last from its start, calls and waits
    /// included (`2h`); then it ends in `error` and its calls are hung up.
    /// Default 4h.
    #[serde(default)]
    pub max_duration: Option<Text>,
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
