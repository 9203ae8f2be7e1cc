//! What each expression root holds: one description, read by the load-time
//! checks ([`check`](super::check) walks every path of every expression
//! against it) and by the engine, which builds `call` from these same names
//! (`engine::scope`; a test there holds every value it builds to [`Ty`]).

use indexmap::IndexMap;

/// The fields of `call.from` and `call.to`, all text.
pub const PARTY_FIELDS: &[&str] = &["phone", "user", "application", "display_name", "tenant"];

/// The text fields of `call`.
pub const CALL_TEXT_FIELDS: &[&str] = &["id", "state", "direction", "termination_reason"];

/// The parties of `call`, each with [`PARTY_FIELDS`].
pub const CALL_PARTIES: &[&str] = &["from", "to"];

/// The number fields of `call`.
pub const CALL_NUMBER_FIELDS: &[&str] = &["participants"];

/// The fields of `call.result`: `code` and `subcode` are numbers or texts
/// (Graph sends either), `message` is text.
pub const RESULT_FIELDS: &[&str] = &["code", "subcode", "message"];

/// The fields of Graph's call resource, which `event` (the last
/// notification's `resourceData`) may hold; their values are Graph's.
pub const EVENT_FIELDS: &[&str] = &[
    "@odata.type",
    "id",
    "state",
    "direction",
    "callbackUri",
    "callChainId",
    "source",
    "targets",
    "requestedModalities",
    "activeModalities",
    "mediaConfig",
    "chatInfo",
    "meetingInfo",
    "myParticipantId",
    "subject",
    "resultInfo",
    "answeredBy",
    "routingPolicies",
    "tenantId",
    "terminationReason",
    "ringingTimeoutInSeconds",
    "mediaState",
    "toneInfo",
    "transcription",
    "callOptions",
    "callRoutes",
    "meetingCapability",
    "incomingContext",
];

/// What an expression's value is known to be at load time.
#[derive(Clone, Debug, PartialEq)]
pub enum Ty {
    /// Anything (not known at load time).
    Any,
    /// `true` or `false`.
    Bool,
    /// A whole number.
    Int,
    /// A decimal number.
    Float,
    /// A text.
    Text,
    /// A list.
    List,
    /// A map whose fields are all known: reading another is an error.
    Record(IndexMap<String, Ty>),
}

impl Ty {
    /// How a designer names the type, with its article.
    pub fn describe(&self) -> &'static str {
        match self {
            Ty::Any => "a value",
            Ty::Bool => "a bool",
            Ty::Int | Ty::Float => "a number",
            Ty::Text => "a text",
            Ty::List => "a list",
            Ty::Record(_) => "a map",
        }
    }

    /// Whether two known types can be compared with `==` and `<`.
    pub fn comparable(&self, other: &Ty) -> bool {
        let num = |t: &Ty| matches!(t, Ty::Int | Ty::Float);
        match (self, other) {
            (Ty::Any, _) | (_, Ty::Any) => true,
            (a, b) if num(a) && num(b) => true,
            (Ty::Record(_), Ty::Record(_)) => true,
            (a, b) => std::mem::discriminant(a) == std::mem::discriminant(b),
        }
    }

    /// The type of a JSON value as written in `vars:` or a param's default.
    pub fn of_json(v: &serde_json::Value) -> Ty {
        use serde_json::Value;
        match v {
            Value::Null => Ty::Any,
            Value::Bool(_) => Ty::Bool,
            Value::Number(n) if n.is_i64() || n.is_u64() => Ty::Int,
            Value::Number(_) => Ty::Float,
            Value::String(_) => Ty::Text,
            Value::Array(_) => Ty::List,
            Value::Object(m) => {
                Ty::Record(m.iter().map(|(k, v)| (k.clone(), Ty::of_json(v))).collect())
            }
        }
    }

    /// Whether a runtime value fits this type (`()`, a missing value, fits all).
    pub fn admits(&self, v: &rhai::Dynamic) -> bool {
        if v.is_unit() {
            return true;
        }
        match self {
            Ty::Any => true,
            Ty::Bool => v.is_bool(),
            Ty::Int => v.is_int(),
            Ty::Float => v.is_float() || v.is_int(),
            Ty::Text => v.is_string(),
            Ty::List => v.is_array(),
            Ty::Record(fields) => v.read_lock::<rhai::Map>().is_some_and(|m| {
                m.iter()
                    .all(|(k, v)| fields.get(k.as_str()).is_some_and(|t: &Ty| t.admits(v)))
            }),
        }
    }
}

fn record<'a>(fields: impl IntoIterator<Item = (&'a str, Ty)>) -> Ty {
    Ty::Record(fields.into_iter().map(|(k, t)| (k.to_owned(), t)).collect())
}

/// What `call` holds.
pub fn call() -> Ty {
    let party = || record(PARTY_FIELDS.iter().map(|f| (*f, Ty::Text)));
    let result = record(
        RESULT_FIELDS
            .iter()
            .map(|f| (*f, if *f == "message" { Ty::Text } else { Ty::Any })),
    );
    record(
        CALL_TEXT_FIELDS
            .iter()
            .map(|f| (*f, Ty::Text))
            .chain(CALL_PARTIES.iter().map(|f| (*f, party())))
            .chain(std::iter::once(("result", result)))
            .chain(CALL_NUMBER_FIELDS.iter().map(|f| (*f, Ty::Int))),
    )
}

/// What `event` holds: Graph's call resource, values as Graph sends them.
pub fn event() -> Ty {
    record(EVENT_FIELDS.iter().map(|f| (*f, Ty::Any)))
}

/// What every root holds in one flow: its declared `vars` (names some `set`
/// assigns are [`Ty::Any`]: their type is the last value given) and its
/// declared `params`.
#[derive(Clone, Debug)]
pub struct Roots {
    /// `vars`.
    pub vars: IndexMap<String, Ty>,
    /// `params`.
    pub params: IndexMap<String, Ty>,
    /// Whether the flow is an `api` flow (which alone has params).
    pub api: bool,
}

impl Roots {
    /// The type of root `name`, if it is one.
    pub fn root(&self, name: &str) -> Option<Ty> {
        Some(match name {
            "call" => call(),
            "event" => event(),
            "step" | "digits" => Ty::Text,
            "vars" => Ty::Record(self.vars.clone()),
            "params" => Ty::Record(self.params.clone()),
            _ => return None,
        })
    }
}
