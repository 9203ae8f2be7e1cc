//! A flow ready to run: every name resolved, every expression compiled.
//!
//! [`crate::flow::check`] builds a [`Flow`] from a [`FlowFile`](super::model::FlowFile)
//! only when the file has no error. Steps are addressed by [`StepId`]; all
//! expressions hold their rhai AST; durations, phone numbers and calendars are
//! parsed. Each step's [`Action`] is compiled by its own module in
//! [`crate::flow::actions`]. The engine reads a `Flow` and never changes it.

use std::sync::Arc;

use chrono_tz::Tz;
use indexmap::IndexMap;

use super::actions::{Action, OutcomeField};
use super::calendar::Calendar;
use super::diagnostic::SourceFile;
use super::expr::Expr;
use super::model::ParamType;
use super::span::Span;

/// The outcomes every run may end with, as the engine names them
/// (`engine::Outcome`): a step's `end:` names an outcome of its own.
pub const BUILTIN_ENDS: &[&str] = &[
    "transferred",
    "redirected",
    "rejected",
    "hung_up",
    "caller_hung_up",
    "joined",
    "error",
];

/// The index of a step in [`Flow::steps`].
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct StepId(pub u32);

impl StepId {
    /// The index as usize.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A checked, compiled flow.
#[derive(Debug)]
pub struct Flow {
    /// The flow's name.
    pub name: String,
    /// What it is for.
    pub description: Option<String>,
    /// The file it came from, its text and hash.
    pub source: Arc<SourceFile>,
    /// The time zone of its clock and calendars.
    pub timezone: Tz,
    /// What starts it.
    pub trigger: Trigger,
    /// Named opening hours.
    pub calendars: Arc<IndexMap<String, Calendar>>,
    /// Variables and their defaults.
    pub vars: IndexMap<String, serde_json::Value>,
    /// The first step.
    pub start: StepId,
    /// The steps; a [`StepId`] indexes this.
    pub steps: Vec<Step>,
    /// Most steps one run may take.
    pub max_steps: u32,
    /// Handlers for call states (`terminated`, …), by state name.
    pub on_state: IndexMap<String, Vec<HandlerOp>>,
    /// The handler for failures that no step routes.
    pub on_error: Vec<HandlerOp>,
}

impl Flow {
    /// The step with this id.
    pub fn step(&self, id: StepId) -> &Step {
        &self.steps[id.index()]
    }

    /// The named outcomes (`end:`) its steps declare, each once, in step order.
    pub fn ends(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for name in self.steps.iter().filter_map(|s| s.end.as_deref()) {
            if !out.contains(&name) {
                out.push(name);
            }
        }
        out
    }

    /// The id of the step named `name`.
    pub fn step_id(&self, name: &str) -> Option<StepId> {
        self.steps
            .iter()
            .position(|s| s.name == name)
            .map(|i| StepId(i as u32))
    }
}

/// What starts a flow.
#[derive(Debug)]
pub enum Trigger {
    /// An incoming call, filtered.
    IncomingCall {
        /// Called numbers or ids (exact or glob); empty means any.
        to: Vec<Pattern>,
        /// Callers (exact or glob); empty means any.
        from: Vec<Pattern>,
        /// A condition.
        when: Option<Expr>,
    },
    /// A state change on a call no flow owns.
    StateChange {
        /// The states; empty means any.
        states: Vec<String>,
        /// A condition.
        when: Option<Expr>,
    },
    /// An on-demand start.
    Api {
        /// Declared parameters.
        params: IndexMap<String, Param>,
    },
}

/// An exact text or a `*` glob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    /// As written.
    pub text: String,
    /// Where it was written.
    pub span: Span,
}

impl Pattern {
    /// Whether it holds a `*` or `?`.
    pub fn is_glob(&self) -> bool {
        self.text.contains(['*', '?'])
    }

    /// Whether `value` matches.
    pub fn matches(&self, value: &str) -> bool {
        if self.is_glob() {
            glob_match(self.text.as_bytes(), value.as_bytes())
        } else {
            self.text == value
        }
    }
}

fn glob_match(p: &[u8], v: &[u8]) -> bool {
    let (mut pi, mut vi, mut star, mut mark) = (0, 0, None, 0);
    while vi < v.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == v[vi]) {
            pi += 1;
            vi += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = vi;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            vi = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == b'*')
}

/// A declared parameter of an `api` flow.
#[derive(Debug, Clone)]
pub struct Param {
    /// Its type.
    pub kind: ParamType,
    /// Whether a start must give it.
    pub required: bool,
    /// Its default value.
    pub default: Option<serde_json::Value>,
}

/// One step.
#[derive(Debug)]
pub struct Step {
    /// Its name.
    pub name: String,
    /// Where it is defined.
    pub span: Span,
    /// What it is for, as its `description` says (shown in diagrams).
    pub description: Option<String>,
    /// The run's named outcome once this step runs (`end: confirmed`).
    pub end: Option<String>,
    /// Its action.
    pub action: Action,
    /// Where to go on success.
    pub next: Option<StepId>,
    /// Where to go on failure.
    pub on_failure: Option<StepId>,
    /// Where to go on timeout.
    pub on_timeout: Option<StepId>,
    /// Where to go on an invalid key (menus).
    pub on_invalid: Option<StepId>,
}

impl Step {
    /// The step its outcome field `outcome` leads to, if it has that field.
    pub fn outcome(&self, outcome: OutcomeField) -> Option<StepId> {
        match outcome {
            OutcomeField::Next => self.next,
            OutcomeField::OnFailure => self.on_failure,
            OutcomeField::OnTimeout => self.on_timeout,
            OutcomeField::OnInvalid => self.on_invalid,
        }
    }
}

/// A text with `${expr}` parts.
#[derive(Clone, Debug)]
pub struct Template {
    /// The text as written.
    pub source: String,
    /// Literal and expression parts, in order.
    pub parts: Vec<TemplatePart>,
}

/// A part of a [`Template`].
#[derive(Clone, Debug)]
pub enum TemplatePart {
    /// Literal text.
    Text(String),
    /// An expression whose value is inserted.
    Expr(Expr),
}

impl Template {
    /// A template without expressions.
    pub fn literal(text: &str) -> Self {
        Template {
            source: text.to_owned(),
            parts: vec![TemplatePart::Text(text.to_owned())],
        }
    }

    /// The text, when the template holds no expression.
    pub fn as_literal(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [] => Some(""),
            [TemplatePart::Text(t)] => Some(t),
            _ => None,
        }
    }
}

/// Who to call, transfer or redirect to.
#[derive(Clone, Debug)]
pub enum Target {
    /// A Teams user.
    User {
        /// The user's object id.
        id: Template,
        /// Its tenant.
        tenant: Option<Template>,
        /// The name shown.
        display_name: Option<Template>,
    },
    /// A phone number (E.164).
    Phone {
        /// The number.
        number: Template,
        /// The name shown.
        display_name: Option<Template>,
    },
}

/// One operation of an `on` handler.
#[derive(Clone, Debug)]
pub enum HandlerOp {
    /// Log a line.
    Log(Template),
    /// Set variables.
    Set(Vec<(String, Expr)>),
    /// Go to a step.
    Goto(StepId),
    /// Hang up.
    Hangup,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        let p = |t: &str| Pattern {
            text: t.into(),
            span: Span::default(),
        };
        assert!(p("+44*").matches("+442071234567"));
        assert!(!p("+44*").matches("+33612345678"));
        assert!(p("+1425555010?").matches("+14255550100"));
        assert!(p("+14255550100").matches("+14255550100"));
        assert!(!p("+14255550100").matches("+1425555010"));
    }
}
