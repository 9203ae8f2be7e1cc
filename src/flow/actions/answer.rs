//! `answer`: answers the incoming call (`POST /calls/{id}/answer`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ActionType, Branch, CallPhase, CheckAction, OutcomeField, Shape};
use crate::flow::check::{Cx, Resolver};
use crate::flow::compiled::Template;
use crate::flow::model::Text;
use crate::flow::span::Spanned;

/// `answer: {}`.
#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerAction {
    /// Prompts to fetch ahead, so that they play without delay.
    #[serde(default)]
    pub prefetch: Vec<Text>,
}

/// `answer`, compiled.
#[derive(Clone, Debug)]
pub struct Answer {
    /// Prompts fetched ahead.
    pub prefetch: Vec<Template>,
}

impl ActionType for Answer {
    type Model = AnswerAction;
    const DOC: &'static str =
        "Answer the incoming call (`POST /calls/{id}/answer`); `next` once established.";
    const OUTCOMES: &'static [OutcomeField] = &[OutcomeField::Next, OutcomeField::OnFailure];
    const SHAPE: Shape = Shape::Plain;
    const NEEDS_CALL: bool = true;
    const BARE: bool = true;
    const RUNS_IN: &'static [CallPhase] = &[CallPhase::Unanswered, CallPhase::Answered];
    const UNROUTED_FAILURE: Option<&'static str> = None;

    fn branches(&self) -> Vec<Branch> {
        Vec::new()
    }

    fn phase_after(&self, phase: CallPhase, outcome: Option<OutcomeField>) -> CallPhase {
        match outcome {
            Some(OutcomeField::Next) => CallPhase::Answered,
            _ => phase,
        }
    }
}

impl CheckAction for Answer {
    fn branch_names(_: &AnswerAction) -> Vec<&Text> {
        Vec::new()
    }

    fn check(
        cx: &mut Cx,
        a: &Spanned<AnswerAction>,
        _: &Resolver<'_>,
        cals: &[&str],
    ) -> Option<Self> {
        let prefetch = a
            .value
            .prefetch
            .iter()
            .filter_map(|p| cx.template(p, cals))
            .collect();
        Some(Answer { prefetch })
    }
}
