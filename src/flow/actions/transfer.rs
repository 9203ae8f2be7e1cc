//! `transfer`: blind transfer to a Teams user or a phone number
//! (`POST /calls/{id}/transfer`).

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ActionType, Branch, CallPhase, CheckAction, OutcomeField, Shape};
use crate::flow::check::{Cx, Resolver};
use crate::flow::compiled::{Target, Template};
use crate::flow::model::{TargetDef, Text};
use crate::flow::span::Spanned;

/// Graph's limit on a transfer's `clientContext`.
const MAX_CLIENT_CONTEXT: usize = 256;

/// `transfer: {to, transferee?, client_context?, timeout?}`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferAction {
    /// The transfer target.
    pub to: Spanned<TargetDef>,
    /// Who is transferred, required when transferring out of a group call.
    #[serde(default)]
    pub transferee: Option<Spanned<TransfereeDef>>,
    /// A unique text (at most 256 characters) echoed in Graph's notifications.
    #[serde(default)]
    pub client_context: Option<Text>,
    /// How long to wait for the transfer to complete before `on_timeout`. Default 60s.
    #[serde(default)]
    pub timeout: Option<Text>,
}

/// The participant to transfer out of a group call.
#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransfereeDef {
    /// The participant's id in the call (Graph's `participantId`).
    pub participant_id: Text,
    /// The participant's user id.
    #[serde(default)]
    pub user: Option<Text>,
    /// The user's tenant id.
    #[serde(default)]
    pub tenant: Option<Text>,
    /// The participant's phone number.
    #[serde(default)]
    pub phone: Option<Text>,
    /// The participant's display name.
    #[serde(default)]
    pub display_name: Option<Text>,
}

/// `transfer`, compiled.
#[derive(Clone, Debug)]
pub struct Transfer {
    /// The target.
    pub to: Target,
    /// Who is transferred out of a group call.
    pub transferee: Option<Transferee>,
    /// Echoed by Graph.
    pub client_context: Option<Template>,
    /// How long the transfer may take.
    pub timeout: Duration,
}

/// The participant moved out of a group call by a transfer.
#[derive(Clone, Debug)]
pub struct Transferee {
    /// Graph's participant id.
    pub participant_id: Template,
    /// Its identity, when given.
    pub identity: Option<Target>,
}

impl ActionType for Transfer {
    type Model = TransferAction;
    const DOC: &'static str = "Blind transfer to a Teams user or a phone number.";
    const OUTCOMES: &'static [OutcomeField] = &[OutcomeField::Next, OutcomeField::OnFailure, OutcomeField::OnTimeout];
    const SHAPE: Shape = Shape::Handoff;
    const NEEDS_CALL: bool = true;
    const BARE: bool = false;
    const RUNS_IN: &'static [CallPhase] = &[CallPhase::Answered];
    const UNROUTED_FAILURE: Option<&'static str> = Some("if the transfer fails, the caller is hung up on");

    fn branches(&self) -> Vec<Branch> {
        Vec::new()
    }

    fn phase_after(&self, phase: CallPhase, outcome: Option<OutcomeField>) -> CallPhase {
        super::handed_over(phase, outcome)
    }
}

impl CheckAction for Transfer {
    fn branch_names(_: &TransferAction) -> Vec<&Text> {
        Vec::new()
    }

    fn check(
        cx: &mut Cx,
        a: &Spanned<TransferAction>,
        _: &Resolver<'_>,
        cals: &[&str],
    ) -> Option<Self> {
        let to = cx.target(&a.value.to, cals);
        let transferee = a.value.transferee.as_ref().and_then(|t| {
            let participant_id = cx.template(&t.value.participant_id, cals)?;
            let identity = if t.value.user.is_some() || t.value.phone.is_some() {
                let as_target = TargetDef {
                    user: t.value.user.clone(),
                    tenant: t.value.tenant.clone(),
                    phone: t.value.phone.clone(),
                    display_name: t.value.display_name.clone(),
                };
                Some(cx.target(&Spanned::new(t.span, as_target), cals)?)
            } else {
                None
            };
            Some(Transferee {
                participant_id,
                identity,
            })
        });
        let client_context = a.value.client_context.as_ref().and_then(|c| {
            if c.value.len() > MAX_CLIENT_CONTEXT {
                cx.error(
                    "callflow::field::type",
                    c.span,
                    "`client_context` is longer than 256 characters, Graph's limit",
                )
                .label("too long")
                .help("keep it short: an id, e.g. `${call.id}`");
            }
            cx.template(c, cals)
        });
        let timeout = cx.duration_in(a.value.timeout.as_ref(), 60, None)?;
        Some(Transfer {
            to: to?,
            transferee,
            client_context,
            timeout,
        })
    }
}
