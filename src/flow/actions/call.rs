//! `call`: the bot places an outgoing call to a user or a number, or a
//! group call to up to 5 users, as the application instance `from:` names
//! (by default the one the run speaks as).

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ANY_PHASE, ActionType, Branch, CallPhase, CheckAction, OutcomeField, Shape};
use crate::flow::check::{Cx, Resolver};
use crate::flow::compiled::{Target, Template};
use crate::flow::model::{OneOrMany, TargetDef, Text};
use crate::flow::span::Spanned;

/// Most users a group call invites.
const MAX_TARGETS: usize = 5;

/// `call: {to, subject?}`: an outgoing call.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CallAction {
    /// Who to call: one target, or a list for a group call (at most 5 users).
    pub to: OneOrMany<Spanned<TargetDef>>,
    /// The call's subject.
    #[serde(default)]
    pub subject: Option<Text>,
    /// How long the call may ring before `on_timeout`. Default 30s.
    #[serde(default)]
    pub timeout: Option<Text>,
    /// The application instance (resource account) the call goes out as:
    /// its phone number (`+14255550100`) or its id. Default: the instance
    /// the run speaks as (the one an incoming call reached, else the first
    /// one `serve` is configured with). Calls to phone numbers need one.
    #[serde(default)]
    pub from: Option<Text>,
}

/// `call`, compiled.
#[derive(Clone, Debug)]
pub struct Call {
    /// Who to call (several for a group call).
    pub targets: Vec<Target>,
    /// The subject.
    pub subject: Option<Template>,
    /// Ring time.
    pub timeout: Duration,
    /// The instance it goes out as (a number or an id), if the flow says.
    pub from: Option<Template>,
}

impl ActionType for Call {
    type Model = CallAction;
    const DOC: &'static str = "Place an outgoing call to a user or a phone number.";
    const OUTCOMES: &'static [OutcomeField] = &[OutcomeField::Next, OutcomeField::OnFailure, OutcomeField::OnTimeout];
    const SHAPE: Shape = Shape::Handoff;
    const NEEDS_CALL: bool = true;
    const BARE: bool = false;
    const RUNS_IN: &'static [CallPhase] = ANY_PHASE;
    const UNROUTED_FAILURE: Option<&'static str> = Some("if the call cannot be placed, the run ends in `error` and the bot hangs up (on the caller too, when there is one)");

    fn branches(&self) -> Vec<Branch> {
        Vec::new()
    }

    fn phase_after(&self, phase: CallPhase, outcome: Option<OutcomeField>) -> CallPhase {
        // The call placed is the main call when there is none.
        // Placed as the first call (or the next after one ended), it is
        // up once answered, and over when nobody answered.
        match (outcome, phase) {
            (Some(OutcomeField::Next), CallPhase::NoCall | CallPhase::Ended) => CallPhase::Answered,
            (
                Some(OutcomeField::OnFailure | OutcomeField::OnTimeout),
                CallPhase::NoCall | CallPhase::Ended,
            ) => CallPhase::Ended,
            _ => phase,
        }
    }
}

impl CheckAction for Call {
    fn branch_names(_: &CallAction) -> Vec<&Text> {
        Vec::new()
    }

    fn check(
        cx: &mut Cx,
        a: &Spanned<CallAction>,
        _: &Resolver<'_>,
        cals: &[&str],
    ) -> Option<Self> {
        let defs = a.value.to.as_slice();
        let targets: Vec<Target> = defs.iter().filter_map(|t| cx.target(t, cals)).collect();
        if defs.len() > MAX_TARGETS {
            let at = cx.key_span(a.span, "call");
            cx.error(
                "callflow::target::too_many",
                at,
                format!(
                    "this call invites {} targets; a group call invites at most 5",
                    defs.len()
                ),
            )
            .label("too many targets")
            .help("call at most 5, or place several calls");
        }
        let subject = a
            .value
            .subject
            .as_ref()
            .and_then(|s| cx.template(s, cals));
        let from = a.value.from.as_ref().and_then(|f| cx.template(f, cals));
        let timeout = cx.duration_in(a.value.timeout.as_ref(), 30, None)?;
        (targets.len() == defs.len() && from.is_some() == a.value.from.is_some()).then_some(
            Call {
                targets,
                subject,
                timeout,
                from,
            },
        )
    }
}
