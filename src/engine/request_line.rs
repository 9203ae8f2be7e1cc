//! Requests in the flow file's words: what timelines print and scenario
//! `expect` lines match.
//!
//! [`Command::line`](super::Command::line) builds a [`RequestLine`] from a
//! command; [`write_flow`] writes JSON as compact YAML flow text. Pure.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::graph::wire::{IdentitySet, InvitationParticipantInfo};

use super::command::RequestKind;

pub(crate) fn targets_words(targets: &[InvitationParticipantInfo]) -> Value {
    match targets {
        [one] => identity_words(&one.identity),
        many => Value::Array(many.iter().map(|t| identity_words(&t.identity)).collect()),
    }
}

/// An identity in the flow file's words: `{user, tenant?, display_name?}` or
/// `{phone, display_name?}`.
pub fn identity_words(identity: &IdentitySet) -> Value {
    let mut m = Map::new();
    if let Some(u) = &identity.user {
        m.insert("user".into(), u.id.clone().into());
        if let Some(t) = &u.tenant_id {
            m.insert("tenant".into(), t.clone().into());
        }
        if let Some(d) = &u.display_name {
            m.insert("display_name".into(), d.clone().into());
        }
    } else if let Some(p) = &identity.phone {
        m.insert("phone".into(), p.id.clone().into());
        if let Some(d) = &p.display_name {
            m.insert("display_name".into(), d.clone().into());
        }
    } else if let Some(a) = identity
        .application_instance
        .as_ref()
        .or(identity.application.as_ref())
    {
        m.insert("application".into(), a.id.clone().into());
    }
    Value::Object(m)
}

/// A Graph request in the flow file's words: what timelines print and
/// scenario `expect` lines match.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RequestLine {
    /// The request.
    pub request: RequestKind,
    /// The session's name for the call it targets (`main`, `consultation`, …).
    pub call: String,
    /// Its fields in flow-file words (`to: {phone: …}`, `prompt: …`).
    pub fields: Map<String, Value>,
}

impl fmt::Display for RequestLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.request.as_str())?;
        if !self.fields.is_empty() {
            f.write_str(" ")?;
            write_flow(f, &Value::Object(self.fields.clone()))?;
        }
        if self.call != "main" {
            write!(f, " on {}", self.call)?;
        }
        Ok(())
    }
}

/// Writes a JSON value as compact YAML flow text: `{to: {phone: "+1…"}}`.
pub fn write_flow(f: &mut impl fmt::Write, v: &Value) -> fmt::Result {
    match v {
        Value::Null => f.write_str("null"),
        Value::Bool(b) => write!(f, "{b}"),
        Value::Number(n) => write!(f, "{n}"),
        Value::String(s) => {
            let plain = !s.is_empty()
                && s.chars()
                    .all(|c| c.is_alphanumeric() || "-_./:@".contains(c))
                && !s.starts_with(|c: char| c.is_ascii_digit() || c == '-');
            if plain {
                f.write_str(s)
            } else {
                write!(f, "{s:?}")
            }
        }
        Value::Array(a) => {
            f.write_str("[")?;
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write_flow(f, x)?;
            }
            f.write_str("]")
        }
        Value::Object(m) => {
            f.write_str("{")?;
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{k}: ")?;
                write_flow(f, x)?;
            }
            f.write_str("}")
        }
    }
}
