//! `consultative_transfer`: calls the target first, may play it an
//! announcement, then transfers the caller to it with `replacesCallId`.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ActionType, Branch, CallPhase, CheckAction, OutcomeField, Shape};
use crate::flow::check::{Cx, Resolver};
use crate::flow::compiled::{Target, Template};
use crate::flow::model::{TargetDef, Text};
use crate::flow::span::Spanned;

/// `consultative_transfer: {to, announce?, timeout?}`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsultativeTransferAction {
    /// The target, called first.
    pub to: Spanned<TargetDef>,
    /// A prompt played to the target once it answers, before the transfer.
    #[serde(default)]
    pub announce: Option<Text>,
    /// How long the target may take to answer before `on_failure`. Default 30s.
    #[serde(default)]
    pub timeout: Option<Text>,
}

/// `consultative_transfer`, compiled.
#[derive(Clone, Debug)]
pub struct ConsultativeTransfer {
    /// The target, called first.
    pub to: Target,
    /// Played to the target before the transfer.
    pub announce: Option<Template>,
    /// How long the target may take to answer.
    pub timeout: Duration,
}

impl ActionType for ConsultativeTransfer {
    type Model = ConsultativeTransferAction;
    const DOC: &'static str =
        "Call the target first, optionally play an announcement, then transfer.";
    const OUTCOMES: &'static [OutcomeField] = &[OutcomeField::Next, OutcomeField::OnFailure, OutcomeField::OnTimeout];
    const SHAPE: Shape = Shape::Handoff;
    const NEEDS_CALL: bool = true;
    const BARE: bool = false;
    const RUNS_IN: &'static [CallPhase] = &[CallPhase::Answered];
    const UNROUTED_FAILURE: Option<&'static str> = Some("if the target cannot be reached or the transfer fails, the caller is hung up on");

    fn branches(&self) -> Vec<Branch> {
        Vec::new()
    }

    fn phase_after(&self, phase: CallPhase, outcome: Option<OutcomeField>) -> CallPhase {
        super::handed_over(phase, outcome)
    }
}

impl CheckAction for ConsultativeTransfer {
    fn branch_names(_: &ConsultativeTransferAction) -> Vec<&Text> {
        Vec::new()
    }

    fn check(
        cx: &mut Cx,
        a: &Spanned<ConsultativeTransferAction>,
        _: &Resolver<'_>,
        cals: &[&str],
    ) -> Option<Self> {
        let to = cx.target(&a.value.to, cals);
        let announce = a
            .value
            .announce
            .as_ref()
            .and_then(|p| cx.template(p, cals));
        let timeout = cx.duration_in(a.value.timeout.as_ref(), 30, None)?;
        Some(ConsultativeTransfer {
            to: to?,
            announce,
            timeout,
        })
    }
}
