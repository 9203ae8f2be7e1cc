//! Scenario `expect` lines and how they match what a run did.
//!
//! An expectation names one Graph request in the flow file's words
//! (`transfer: {to: {phone: …}}`) or the run's `end`. A request matches when
//! every field the line gives is equal to the request's (fields it leaves
//! out are not compared; nested maps compare the same way). Lines match in
//! order, as a subsequence of what happened, or one for one when `strict`.
//! Pure: compares data, runs nothing.

use std::fmt;

use serde_json::{Map, Value};

use crate::engine::{Outcome, RequestKind, RequestLine, Timeline, command::write_flow};

/// One `expect` line.
#[derive(Clone, Debug, PartialEq)]
pub enum Expectation {
    /// A Graph request, with the fields to compare.
    Request {
        /// The request.
        kind: RequestKind,
        /// Fields that must be equal (`call` names the call: `main`, `consultation`, …).
        fields: Map<String, Value>,
    },
    /// The run's end: one of the outcomes every run has, or a flow's own.
    End(EndName),
}

/// What an `end:` line names.
#[derive(Clone, Debug, PartialEq)]
pub enum EndName {
    /// An outcome every run has (`hung_up`, `transferred`, …).
    Outcome(Outcome),
    /// A flow's own, from a step's `end:` (`confirmed`).
    Named(String),
}

impl fmt::Display for EndName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndName::Outcome(o) => write!(f, "{o}"),
            EndName::Named(n) => f.write_str(n),
        }
    }
}

impl Expectation {
    /// Reads one line: `answer`, `{transfer: {to: …}}`, `{end: transferred}`.
    pub fn parse(v: &Value) -> Result<Self, String> {
        let (name, fields) = match v {
            Value::String(s) => (s.as_str(), Value::Null),
            Value::Object(m) if m.len() == 1 => {
                let (k, v) = m.iter().next().ok_or("an empty line")?;
                (k.as_str(), v.clone())
            }
            other => {
                let mut text = String::new();
                let _ = write_flow(&mut text, other);
                return Err(format!(
                    "`{text}` is not an expect line; write a request name (`answer`), \
                     `request: {{field: value}}` or `end: OUTCOME`"
                ));
            }
        };
        if name == "end" {
            let word = fields.as_str().filter(|n| {
                !n.is_empty()
                    && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && !n.starts_with(|c: char| c.is_ascii_digit())
            });
            let end = match word {
                Some(n) => match Outcome::from_name(n) {
                    Some(o) => EndName::Outcome(o),
                    None => EndName::Named(n.to_owned()),
                },
                None => {
                    let names: Vec<&str> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
                    return Err(format!(
                        "`end` takes one of {}, or an outcome a step of the flow names with `end:`",
                        names.join(", ")
                    ));
                }
            };
            return Ok(Expectation::End(end));
        }
        let kind = RequestKind::from_name(name).ok_or_else(|| {
            let names: Vec<&str> = RequestKind::ALL.iter().map(|k| k.as_str()).collect();
            let hint = crate::flow::suggest::did_you_mean(name, names.iter().copied())
                .unwrap_or_else(|| format!("use one of {}, or end", names.join(", ")));
            format!("`{name}` is not a Graph request; {hint}")
        })?;
        let fields = match fields {
            Value::Null => Map::new(),
            Value::Object(m) => m,
            other => {
                return Err(format!(
                    "`{name}` takes a map of fields, not `{other}`; write e.g. `{name}: {{to: {{phone: \"+14255550123\"}}}}`"
                ));
            }
        };
        Ok(Expectation::Request { kind, fields })
    }

    /// Whether `actual` satisfies this line.
    pub fn matches(&self, actual: &Actual) -> bool {
        match (self, actual) {
            (Expectation::End(EndName::Outcome(a)), Actual::End(b, _)) => a == b,
            (Expectation::End(EndName::Named(a)), Actual::End(_, b)) => Some(a) == b.as_ref(),
            (Expectation::Request { kind, fields }, Actual::Request(line)) => {
                *kind == line.request
                    && fields.iter().all(|(k, v)| {
                        if k == "call" {
                            return v.as_str() == Some(line.call.as_str());
                        }
                        line.fields.get(k).is_some_and(|a| subset(v, a))
                    })
            }
            _ => false,
        }
    }
}

impl fmt::Display for Expectation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expectation::End(o) => write!(f, "end {o}"),
            Expectation::Request { kind, fields } => {
                f.write_str(kind.as_str())?;
                if !fields.is_empty() {
                    f.write_str(" ")?;
                    write_flow(f, &Value::Object(fields.clone()))?;
                }
                Ok(())
            }
        }
    }
}

/// What a run did, as `expect` sees it.
#[derive(Clone, Debug, PartialEq)]
pub enum Actual {
    /// A Graph request.
    Request(RequestLine),
    /// The run's end, and the flow's own name for it.
    End(Outcome, Option<String>),
}

impl fmt::Display for Actual {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actual::Request(line) => write!(f, "{line}"),
            Actual::End(o, None) => write!(f, "end {o}"),
            Actual::End(o, Some(n)) => write!(f, "end {n} ({o})"),
        }
    }
}

/// The requests and the end of a timeline, in order.
pub fn actual_lines(timeline: &Timeline) -> Vec<Actual> {
    timeline
        .entries
        .iter()
        .filter_map(|e| match &e.what {
            crate::engine::Entry::Request(line) => Some(Actual::Request(line.clone())),
            crate::engine::Entry::End { outcome, name, .. } => {
                Some(Actual::End(*outcome, name.clone()))
            }
            _ => None,
        })
        .collect()
}

/// Whether the expected value's fields are all in the actual one.
pub fn subset(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => e
            .iter()
            .all(|(k, v)| a.get(k).is_some_and(|x| subset(v, x))),
        (Value::Object(_), Value::Array(a)) if a.len() == 1 => subset(expected, &a[0]),
        (Value::Array(e), Value::Array(a)) => {
            e.len() == a.len() && e.iter().zip(a).all(|(x, y)| subset(x, y))
        }
        (Value::Array(e), other) if e.len() == 1 => subset(&e[0], other),
        (Value::Number(n), Value::String(s)) | (Value::String(s), Value::Number(n)) => {
            let n = n.to_string();
            *s == n || s.strip_prefix('+') == Some(n.as_str())
        }
        (e, a) => e == a,
    }
}

/// For each expectation, the index of the actual line it matched (in
/// order, each after the previous one's), or `None` when none after the
/// previous match fits. A line not found does not hide the ones after it:
/// they are looked for from the same place, so that what happened is
/// never shown as missing. `strict` is checked by the caller (the lines
/// that happened and match no expectation), not here.
pub fn match_lines(expected: &[Expectation], actual: &[Actual]) -> Vec<Option<usize>> {
    let mut out = Vec::with_capacity(expected.len());
    let mut from = 0;
    for e in expected {
        let found = actual[from.min(actual.len())..]
            .iter()
            .position(|a| e.matches(a))
            .map(|p| from + p);
        if let Some(j) = found {
            from = j + 1;
        }
        out.push(found);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn line(kind: RequestKind, fields: Value) -> Actual {
        let Value::Object(fields) = fields else {
            panic!("fields are a map")
        };
        Actual::Request(RequestLine {
            request: kind,
            call: "main".into(),
            fields,
        })
    }

    #[test]
    fn lines_match_as_a_subsequence_with_partial_fields() {
        let expected: Vec<Expectation> = [
            json!("answer"),
            json!({"transfer": {"to": {"phone": 14255550199_i64}}}),
            json!({"end": "transferred"}),
        ]
        .iter()
        .map(|v| Expectation::parse(v).expect("a line"))
        .collect();
        let actual = vec![
            line(RequestKind::Answer, json!({})),
            line(RequestKind::PlayPrompt, json!({"prompt": "x.wav"})),
            line(
                RequestKind::Transfer,
                json!({"to": {"phone": "+14255550199", "display_name": "Night"}}),
            ),
            Actual::End(Outcome::Transferred, None),
        ];
        assert_eq!(
            match_lines(&expected, &actual),
            vec![Some(0), Some(2), Some(3)]
        );
        let wrong = Expectation::parse(&json!({"end": "rejected"})).expect("a line");
        assert_eq!(match_lines(&[wrong], &actual), vec![None]);
        // A line that did not happen does not hide the ones after it.
        let rejected = Expectation::parse(&json!("reject")).expect("a line");
        let with_a_miss = [expected[0].clone(), rejected, expected[2].clone()];
        assert_eq!(
            match_lines(&with_a_miss, &actual),
            vec![Some(0), None, Some(3)]
        );
    }

    #[test]
    fn bad_lines_say_what_to_write() {
        let e = Expectation::parse(&json!("tranfser")).expect_err("unknown");
        assert!(e.contains("transfer"), "{e}");
        assert!(Expectation::parse(&json!({"end": "two words"})).is_err());
        assert!(Expectation::parse(&json!({"end": 3})).is_err());
        // A name of the flow's own matches the end's name, not its outcome.
        let named = Expectation::parse(&json!({"end": "confirmed"})).expect("a line");
        assert_eq!(named, Expectation::End(EndName::Named("confirmed".into())));
        let hung_up = Expectation::parse(&json!({"end": "hung_up"})).expect("a line");
        let ended = Actual::End(Outcome::HungUp, Some("confirmed".into()));
        assert!(named.matches(&ended) && hung_up.matches(&ended));
        assert!(!named.matches(&Actual::End(Outcome::HungUp, None)));
        assert_eq!(ended.to_string(), "end confirmed (hung_up)");
        assert!(Expectation::parse(&json!(3)).is_err());
    }
}
