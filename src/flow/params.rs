//! Checking the parameters of an `api` start against the flow's
//! declaration: the one check for every way a run starts (the HTTP API,
//! `callflow run`, `callflow simulate --param`, a scenario's `params`).
//!
//! Pure: every problem is reported at once, defaults are filled in, and
//! nothing is started here.

use serde_json::{Map, Value};

use super::model::ParamType;
use super::{Flow, Trigger};

/// Why parameters were refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParamsError {
    /// The flow is not an `api` flow: it takes no parameters.
    NotApi,
    /// Every problem found, in the order of the declaration (undeclared
    /// names first).
    Invalid(Vec<ParamProblem>),
}

/// One problem with the parameters given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamProblem {
    /// The parameter it is about, as given (or as declared, when missing).
    pub name: String,
    /// What is wrong with it.
    pub kind: ParamProblemKind,
    /// The problem, in a sentence.
    pub message: String,
}

/// What is wrong with one parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamProblemKind {
    /// Given, but the flow does not declare it.
    Undeclared,
    /// Given, with a value of another type (or not E.164).
    Type,
    /// Required, and not given.
    Missing,
}

impl ParamsError {
    /// Each problem's sentence.
    pub fn sentences(&self) -> Vec<String> {
        match self {
            ParamsError::NotApi => vec![self.to_string()],
            ParamsError::Invalid(problems) => problems.iter().map(|p| p.message.clone()).collect(),
        }
    }
}

impl std::fmt::Display for ParamsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParamsError::NotApi => {
                f.write_str("the flow is not an `api` flow: it takes no parameters")
            }
            ParamsError::Invalid(problems) => {
                let sentences: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
                f.write_str(&sentences.join("; "))
            }
        }
    }
}

impl std::error::Error for ParamsError {}

/// The parameters to start `flow` with: `given` checked (types, E.164 for
/// `phone`, required, no undeclared names, with "did you mean") with
/// defaults filled in.
pub fn check_params(
    flow: &Flow,
    given: Map<String, Value>,
) -> Result<Map<String, Value>, ParamsError> {
    let Trigger::Api { params } = &flow.trigger else {
        return Err(ParamsError::NotApi);
    };
    let mut problems = Vec::new();
    for name in given.keys() {
        if !params.contains_key(name) {
            let declared: Vec<&str> = params.keys().map(String::as_str).collect();
            let message = match super::suggest::closest(name, declared.iter().copied()) {
                Some(s) => format!("unknown parameter `{name}` (did you mean `{s}`?)"),
                None if declared.is_empty() => {
                    format!("unknown parameter `{name}` (the flow declares none)")
                }
                None => format!(
                    "unknown parameter `{name}` (declared: {})",
                    declared.join(", ")
                ),
            };
            problems.push(ParamProblem {
                name: name.clone(),
                kind: ParamProblemKind::Undeclared,
                message,
            });
        }
    }
    let mut out = Map::new();
    for (name, param) in params {
        match given.get(name) {
            Some(value) => match type_problem(param.kind, value) {
                Some(p) => problems.push(ParamProblem {
                    name: name.clone(),
                    kind: ParamProblemKind::Type,
                    message: format!("parameter `{name}`: {p}"),
                }),
                None => {
                    out.insert(name.clone(), value.clone());
                }
            },
            None => match &param.default {
                Some(default) => {
                    out.insert(name.clone(), default.clone());
                }
                None if param.required => {
                    problems.push(ParamProblem {
                        name: name.clone(),
                        kind: ParamProblemKind::Missing,
                        message: format!("parameter `{name}` is required"),
                    });
                }
                None => {}
            },
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(ParamsError::Invalid(problems))
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
        let out =
            check_params(&flow(), map(json!({"phone": "+33612345678", "note": "x"}))).unwrap();
        assert_eq!(out.get("count"), Some(&json!(2)));
        assert!(!out.contains_key("loud"));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let err = check_params(
            &flow(),
            map(json!({"phone": "+0612", "count": 1.5, "loud": "yes", "nots": 1})),
        )
        .unwrap_err();
        assert!(matches!(err, ParamsError::Invalid(_)), "{err:?}");
        assert_eq!(
            err.sentences(),
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
