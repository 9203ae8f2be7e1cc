//! `play`: plays a WAV prompt on the call (`playPrompt`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ActionType, Branch, CallPhase, CheckAction, OutcomeField, Shape};
use crate::flow::check::{Cx, Resolver};
use crate::flow::compiled::Template;
use crate::flow::model::Text;
use crate::flow::span::Spanned;

/// `play: {prompt}`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlayAction {
    /// The URL of a WAV prompt (may embed `${…}`).
    pub prompt: Text,
}

/// `play`, compiled.
#[derive(Clone, Debug)]
pub struct Play {
    /// The prompt URL.
    pub prompt: Template,
}

impl ActionType for Play {
    type Model = PlayAction;
    const DOC: &'static str = "Play a prompt; `next` when it has played.";
    const OUTCOMES: &'static [OutcomeField] = &[OutcomeField::Next, OutcomeField::OnFailure];
    const SHAPE: Shape = Shape::Plain;
    const NEEDS_CALL: bool = true;
    const BARE: bool = false;
    const RUNS_IN: &'static [CallPhase] = &[CallPhase::Answered];
    const UNROUTED_FAILURE: Option<&'static str> = None;

    fn branches(&self) -> Vec<Branch> {
        Vec::new()
    }

    fn phase_after(&self, phase: CallPhase, _: Option<OutcomeField>) -> CallPhase {
        phase
    }
}

impl CheckAction for Play {
    fn branch_names(_: &PlayAction) -> Vec<&Text> {
        Vec::new()
    }

    fn check(
        cx: &mut Cx,
        a: &Spanned<PlayAction>,
        _: &Resolver<'_>,
        cals: &[&str],
    ) -> Option<Self> {
        Some(Play {
            prompt: cx.prompt(&a.value.prompt, cals)?,
        })
    }
}
