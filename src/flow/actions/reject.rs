//! `reject`: refuses the incoming call; ends the run.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ActionType, Branch, CallPhase, CheckAction, OutcomeField, Shape};
use crate::flow::check::{Cx, Resolver};
use crate::flow::model::Text;
use crate::flow::span::Spanned;

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

/// `reject`, compiled.
#[derive(Clone, Debug)]
pub struct Reject {
    /// The reason.
    pub reason: RejectReason,
}

impl ActionType for Reject {
    type Model = RejectAction;
    const DOC: &'static str = "Reject the incoming call; ends the run.";
    const OUTCOMES: &'static [OutcomeField] = &[];
    const SHAPE: Shape = Shape::End;
    const NEEDS_CALL: bool = true;
    const BARE: bool = true;
    const RUNS_IN: &'static [CallPhase] = &[CallPhase::Unanswered];
    const UNROUTED_FAILURE: Option<&'static str> = None;

    fn branches(&self) -> Vec<Branch> {
        Vec::new()
    }

    fn phase_after(&self, phase: CallPhase, _: Option<OutcomeField>) -> CallPhase {
        phase
    }
}

impl CheckAction for Reject {
    fn branch_names(_: &RejectAction) -> Vec<&Text> {
        Vec::new()
    }

    fn check(_: &mut Cx, a: &Spanned<RejectAction>, _: &Resolver<'_>, _: &[&str]) -> Option<Self> {
        Some(Reject {
            reason: a.value.reason.as_ref().map(|r| r.value).unwrap_or_default(),
        })
    }
}
