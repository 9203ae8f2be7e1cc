//! `hangup`: hangs up every call of the run (`DELETE /calls/{id}`); ends the run.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ANY_PHASE, ActionType, Branch, CallPhase, CheckAction, OutcomeField, Shape};
use crate::flow::check::{Cx, Resolver};
use crate::flow::model::Text;
use crate::flow::span::Spanned;

/// `hangup: {}`.
#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HangupAction {}

/// `hangup`, compiled.
#[derive(Clone, Debug)]
pub struct Hangup;

impl ActionType for Hangup {
    type Model = HangupAction;
    const DOC: &'static str = "Hang up (`DELETE /calls/{id}`); ends the run.";
    const OUTCOMES: &'static [OutcomeField] = &[];
    const SHAPE: Shape = Shape::End;
    const NEEDS_CALL: bool = true;
    const BARE: bool = true;
    const RUNS_IN: &'static [CallPhase] = ANY_PHASE;
    const UNROUTED_FAILURE: Option<&'static str> = None;

    fn branches(&self) -> Vec<Branch> {
        Vec::new()
    }

    fn phase_after(&self, phase: CallPhase, _: Option<OutcomeField>) -> CallPhase {
        phase
    }
}

impl CheckAction for Hangup {
    fn branch_names(_: &HangupAction) -> Vec<&Text> {
        Vec::new()
    }

    fn check(_: &mut Cx, _: &Spanned<HangupAction>, _: &Resolver<'_>, _: &[&str]) -> Option<Self> {
        Some(Hangup)
    }
}
