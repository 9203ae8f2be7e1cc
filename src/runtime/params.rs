//! Checking the parameters of an `api` start against the flow's declaration.
//!
//! Pure: every problem is reported at once, defaults are filled in, and
//! nothing is started here.

use serde_json::{Map, Value};

use crate::flow::model::ParamType;
use crate::flow::{Flow, Trigger};

use super::StartError;

/// The parameters to start `flow` with: `given` checked (types, required,
/// no unknown names) with defaults filled in.
pub(super) fn check(
    flow: &Flow,
    given: Map<String, Value>,
) -> Result<Map<String, Value>, StartError> {
    let Trigger::Api { params } = &flow.trigger else {
        return Err(StartError::NotApi {
            flow: flow.name.clone(),
        });
    };
    let mut problems = Vec::new();
    for name in given.keys() {
        if !params.contains_key(name) {
            let declared: Vec<&str> = params.keys().map(String::as_str).collect();
            problems.push(
                match crate::flow::suggest::closest(name, declared.iter().copied()) {
                    Some(s) => format!("unknown parameter `{name}` (did you mean `{s}`?)"),
                    None if declared.is_empty() => {
                        format!("unknown parameter `{name}` (the flow declares none)")
                    }
                    None => format!(
                        "unknown parameter `{name}` (declared: {})",
                        declared.join(", ")
                    ),
                },
            );
        }
    }
    let mut out = Map::new();
    for (name, param) in params {
        match given.get(name) {
            Some(value) => match type_problem(param.kind, value) {
                Some(p) => problems.push(format!("parameter `{name}`: {p}")),
                None => {
                    out.insert(name.clone(), value.clone());
                }
            },
            None => match &param.default {
                Some(default) => {
                    out.insert(name.clone(), default.clone());
                }
                None if param.required => {
                    problems.push(format!("parameter `{name}` is required"));
                }
                None => {}
            },
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(StartError::InvalidParams { problems })
    }
}

fn type_problem(kind: ParamType, value: &Value) -> Option<String> {
    let got = || {
        let text = value.to_string();
        if text.len() > 40 {
            format!("{}…", text.chars().take(40).collect::<String>())
        } else {
            text
        }
    };
    match kind {
        ParamType::String if value.is_string() => None,
        ParamType::String => Some(format!("expected a string, got {}", got())),
        ParamType::Integer if value.is_i64() || value.is_u64() => None,
        ParamType::Integer => Some(format!("expected a whole number, got {}", got())),
        ParamType::Bool if value.is_boolean() => None,
        ParamType::Bool => Some(format!("expected true or false, got {}", got())),
        ParamType::Phone => match value.as_str() {
            Some(s) if is_e164(s) => None,
            Some(_) => Some(format!(
                "expected an E.164 phone number like +14255550100, got {}",
                got()
            )),
            None => Some(format!("expected an E.164 phone number, got {}", got())),
        },
    }
}

fn is_e164(s: &str) -> bool {
    crate::phone::is_e164(s)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn flow() -> Flow {
        let text = "flow: remind
trigger:
  api:
    params:
      phone: { type: phone }
      count: { type: integer, default: 2 }
      loud: { type: bool, required: false }
      note: { type: string }
start: bye
steps:
  bye:
    log: done
";
        let loaded = crate::flow::load_str("remind.yaml", text);
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        loaded.flow.unwrap()
    }

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn defaults_are_filled_in_and_optional_params_may_be_left_out() {
        let out = check(&flow(), map(json!({"phone": "+33612345678", "note": "x"}))).unwrap();
        assert_eq!(out.get("count"), Some(&json!(2)));
        assert!(!out.contains_key("loud"));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let err = check(
            &flow(),
            map(json!({"phone": "+0612", "count": 1.5, "loud": "yes", "nots": 1})),
        )
        .unwrap_err();
        let StartError::InvalidParams { problems } = err else {
            panic!("{err:?}")
        };
        assert_eq!(
            problems,
            [
                "unknown parameter `nots` (did you mean `note`?)",
                "parameter `phone`: expected an E.164 phone number like +14255550100, got \"+0612\"",
                "parameter `count`: expected a whole number, got 1.5",
                "parameter `loud`: expected true or false, got \"yes\"",
                "parameter `note` is required",
            ]
        );
    }
}
