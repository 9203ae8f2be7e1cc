//! `log`: writes a line to the call's timeline; it may embed `${expression}`.

use super::{ANY_PHASE, ActionType, Branch, CallPhase, CheckAction, OutcomeField, Shape};
use crate::flow::check::{Cx, Resolver};
use crate::flow::compiled::Template;
use crate::flow::model::Text;

/// `log`, compiled.
#[derive(Clone, Debug)]
pub struct Log {
    /// The text.
    pub text: Template,
}

impl ActionType for Log {
    type Model = String;
    const DOC: &'static str = "Write a line to the call's timeline; may embed `${expression}`.";
    const OUTCOMES: &'static [OutcomeField] = &[OutcomeField::Next];
    const SHAPE: Shape = Shape::Plain;
    const NEEDS_CALL: bool = false;
    const BARE: bool = false;
    const RUNS_IN: &'static [CallPhase] = ANY_PHASE;
    const UNROUTED_FAILURE: Option<&'static str> = None;

    fn branches(&self) -> Vec<Branch> {
        Vec::new()
    }

    fn phase_after(&self, phase: CallPhase, _: Option<OutcomeField>) -> CallPhase {
        phase
    }
}

impl CheckAction for Log {
    fn branch_names(_: &String) -> Vec<&Text> {
        Vec::new()
    }

    fn check(cx: &mut Cx, l: &Text, _: &Resolver<'_>, cals: &[&str]) -> Option<Self> {
        Some(Log {
            text: cx.template(l, cals)?,
        })
    }
}
