//! `switch`: goes to the first case whose condition holds; a last case
//! without `when` is the default.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ANY_PHASE, ActionType, Branch, CallPhase, CheckAction, OutcomeField, Shape};
use crate::flow::check::{Cx, Resolver};
use crate::flow::compiled::StepId;
use crate::flow::expr::Expr;
use crate::flow::model::Text;
use crate::flow::span::Spanned;

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

/// `switch`, compiled.
#[derive(Clone, Debug)]
pub struct Switch {
    /// Conditions (none = always) and their steps.
    pub cases: Vec<(Option<Expr>, StepId)>,
}

/// How the timeline says a step was reached through the case `when`.
pub fn via(when: Option<&Expr>) -> String {
    when.map_or_else(|| "otherwise".to_owned(), |e| format!("when {}", e.source))
}

impl ActionType for Switch {
    type Model = Vec<Spanned<SwitchCase>>;
    const DOC: &'static str =
        "Go to the first case whose `when` holds; a last case without `when` is the default.";
    const OUTCOMES: &'static [OutcomeField] = &[];
    const SHAPE: Shape = Shape::Decision;
    const NEEDS_CALL: bool = false;
    const BARE: bool = false;
    const RUNS_IN: &'static [CallPhase] = ANY_PHASE;
    const UNROUTED_FAILURE: Option<&'static str> = None;

    fn branches(&self) -> Vec<Branch> {
        self.cases
            .iter()
            .map(|(when, to)| Branch {
                to: *to,
                via: via(when.as_ref()),
                label: when
                    .as_ref()
                    .map_or_else(|| "else".to_owned(), |e| e.source.clone()),
            })
            .collect()
    }

    fn phase_after(&self, phase: CallPhase, _: Option<OutcomeField>) -> CallPhase {
        phase
    }
}

impl CheckAction for Switch {
    fn branch_names(cases: &Vec<Spanned<SwitchCase>>) -> Vec<&Text> {
        cases.iter().map(|c| &c.value.goto).collect()
    }

    fn check(
        cx: &mut Cx,
        cases: &Spanned<Vec<Spanned<SwitchCase>>>,
        r: &Resolver<'_>,
        cals: &[&str],
    ) -> Option<Self> {
        let mut out = Vec::new();
        let n = cases.value.len();
        let mut ok = true;
        for (i, c) in cases.value.iter().enumerate() {
            let when = match &c.value.when {
                Some(w) => match cx.condition(w, cals) {
                    Some(e) => Some(e),
                    None => {
                        ok = false;
                        None
                    }
                },
                None => {
                    if i + 1 < n {
                        let at = cx.key_span(c.value.goto.span, "goto");
                        cx.warning(
                            "callflow::switch::unreachable_case",
                            at,
                            "this case always holds, so the cases after it never run",
                        )
                        .label("case without `when`")
                        .help("move it last, as the default");
                    }
                    None
                }
            };
            match cx.resolve(r, &c.value.goto, "`goto`") {
                Some(id) => out.push((when, id)),
                None => ok = false,
            }
        }
        let has_default = cases.value.iter().any(|c| c.value.when.is_none());
        if let Some(last) = cases.value.last().and_then(|c| c.value.when.as_ref())
            && !has_default
        {
            cx.warning(
                "callflow::switch::no_default",
                last.span,
                "no case is the default; when none holds, the run fails",
            )
            .label("the last case has a `when`")
            .help("add a last case with only `goto`");
        }
        ok.then_some(Switch { cases: out })
    }
}
