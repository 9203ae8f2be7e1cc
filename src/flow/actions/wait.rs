//! `wait`: waits for the call to reach a state, or for a time.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ANY_PHASE, ActionType, Branch, CallPhase, CheckAction, OutcomeField, Shape};
use crate::flow::check::{Cx, Resolver};
use crate::flow::model::Text;
use crate::flow::span::Spanned;

/// `wait: {state?, timeout}`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitAction {
    /// The call state to wait for; without it, wait for `timeout` then go `next`.
    #[serde(default)]
    pub state: Option<Text>,
    /// How long to wait.
    pub timeout: Text,
}

/// `wait`, compiled.
#[derive(Clone, Debug)]
pub struct Wait {
    /// The state, if any.
    pub state: Option<String>,
    /// How long.
    pub timeout: Duration,
}

impl ActionType for Wait {
    type Model = WaitAction;
    const DOC: &'static str = "Wait for a call state, or for a time.";
    const OUTCOMES: &'static [OutcomeField] = &[OutcomeField::Next, OutcomeField::OnTimeout];
    const SHAPE: Shape = Shape::Plain;
    const NEEDS_CALL: bool = true;
    const BARE: bool = false;
    const RUNS_IN: &'static [CallPhase] = ANY_PHASE;
    const UNROUTED_FAILURE: Option<&'static str> = None;

    fn branches(&self) -> Vec<Branch> {
        Vec::new()
    }

    fn phase_after(&self, phase: CallPhase, _: Option<OutcomeField>) -> CallPhase {
        // A wait for a state ends in a state the flow does not name here.
        if self.state.is_some() {
            CallPhase::Unknown
        } else {
            phase
        }
    }
}

impl CheckAction for Wait {
    fn branch_names(_: &WaitAction) -> Vec<&Text> {
        Vec::new()
    }

    fn check(
        cx: &mut Cx,
        w: &Spanned<WaitAction>,
        _: &Resolver<'_>,
        _: &[&str],
    ) -> Option<Self> {
        if let Some(s) = &w.value.state {
            cx.state_name(s);
        }
        let timeout = cx.duration(&w.value.timeout, None)?;
        Some(Wait {
            state: w.value.state.as_ref().map(|s| s.value.clone()),
            timeout,
        })
    }
}
