//! `invite`: adds a participant (a Teams user or a number) to the current
//! call (`participants/invite`), a supervisor or an interpreter.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ActionType, Branch, CallPhase, CheckAction, OutcomeField, Shape};
use crate::flow::check::{Cx, Resolver};
use crate::flow::compiled::Target;
use crate::flow::model::{TargetDef, Text};
use crate::flow::span::Spanned;

/// `invite: {to, timeout?}`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteAction {
    /// Who to add to the call.
    pub to: Spanned<TargetDef>,
    /// How long the invitation may take to be accepted before `on_timeout`. Default 60s.
    #[serde(default)]
    pub timeout: Option<Text>,
}

/// `invite`, compiled.
#[derive(Clone, Debug)]
pub struct Invite {
    /// Who to add.
    pub to: Target,
    /// How long the invitation may take.
    pub timeout: Duration,
}

impl ActionType for Invite {
    const RUNS_IN: &'static [CallPhase] = &[CallPhase::Answered];
    const UNROUTED_FAILURE: Option<&'static str> = Some("if the invitation fails, the caller is hung up on");

    fn phase_after(&self, phase: CallPhase, _: Option<OutcomeField>) -> CallPhase {
        phase
    }

    type Model = InviteAction;
    const DOC: &'static str = "Add a participant (a Teams user or a number) to the current call.";
    const OUTCOMES: &'static [OutcomeField] = &[
        OutcomeField::Next,
        OutcomeField::OnFailure,
        OutcomeField::OnTimeout,
    ];
    const SHAPE: Shape = Shape::Handoff;
    const NEEDS_CALL: bool = true;
    const BARE: bool = false;

    fn branches(&self) -> Vec<Branch> {
        Vec::new()
    }
}

impl CheckAction for Invite {
    fn branch_names(_: &InviteAction) -> Vec<&Text> {
        Vec::new()
    }

    fn check(
        cx: &mut Cx,
        a: &Spanned<InviteAction>,
        _: &Resolver<'_>,
        cals: &[&str],
    ) -> Option<Self> {
        let to = cx.target(&a.value.to, cals);
        let timeout = cx.duration_in(a.value.timeout.as_ref(), 60, None)?;
        Some(Invite { to: to?, timeout })
    }
}
