//! `redirect`: sends the unanswered call on to up to 25 targets; ends the run.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ActionType, Branch, CallPhase, CheckAction, OutcomeField, Shape};
use crate::flow::check::{Cx, Resolver};
use crate::flow::compiled::Target;
use crate::flow::model::{OneOrMany, TargetDef, Text};
use crate::flow::span::Spanned;

/// Most targets Graph redirects to.
const MAX_TARGETS: usize = 25;

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

/// `redirect`, compiled.
#[derive(Clone, Debug)]
pub struct Redirect {
    /// The targets.
    pub targets: Vec<Target>,
    /// Ring time.
    pub timeout: Duration,
}

impl ActionType for Redirect {
    type Model = RedirectAction;
    const DOC: &'static str = "Redirect the incoming call before answering; ends the run.";
    const OUTCOMES: &'static [OutcomeField] = &[OutcomeField::OnFailure];
    const SHAPE: Shape = Shape::Handoff;
    const NEEDS_CALL: bool = true;
    const BARE: bool = false;
    const RUNS_IN: &'static [CallPhase] = &[CallPhase::Unanswered];
    const UNROUTED_FAILURE: Option<&'static str> = Some("if the redirect fails, the caller is hung up on");

    fn branches(&self) -> Vec<Branch> {
        Vec::new()
    }

    fn phase_after(&self, phase: CallPhase, _: Option<OutcomeField>) -> CallPhase {
        phase
    }
}

impl CheckAction for Redirect {
    fn branch_names(_: &RedirectAction) -> Vec<&Text> {
        Vec::new()
    }

    fn check(
        cx: &mut Cx,
        a: &Spanned<RedirectAction>,
        _: &Resolver<'_>,
        cals: &[&str],
    ) -> Option<Self> {
        let defs = a.value.to.as_slice();
        let targets: Vec<Target> = defs.iter().filter_map(|t| cx.target(t, cals)).collect();
        if defs.len() > MAX_TARGETS {
            let at = cx.key_span(a.span, "redirect");
            cx.error(
                "callflow::target::too_many",
                at,
                format!(
                    "this redirect has {} targets; Graph redirects to at most 25",
                    defs.len()
                ),
            )
            .label("too many targets")
            .help("keep 25 targets, or redirect to a call queue");
        }
        let timeout = cx.duration_in(a.value.timeout.as_ref(), 30, Some((15, 90)))?;
        (targets.len() == defs.len()).then_some(Redirect { targets, timeout })
    }
}
