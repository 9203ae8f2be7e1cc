//! `menu`: plays a prompt and collects one DTMF key (`subscribeToTone`),
//! then goes to the step chosen for that key.

use std::time::Duration;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ActionType, Branch, CallPhase, CheckAction, OutcomeField, Shape};
use crate::flow::check::{Cx, Resolver};
use crate::flow::compiled::{StepId, Template};
use crate::flow::model::Text;
use crate::flow::span::Spanned;

/// `menu: {prompt, choices, timeout, retries}`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MenuAction {
    /// The URL of the prompt that lists the choices.
    pub prompt: Text,
    /// The step for each key: `"1": sales`. Keys are `0`–`9`, `*`, `#`.
    pub choices: IndexMap<Text, Text>,
    /// How long to wait for a key after the prompt. Default 10s.
    #[serde(default)]
    pub timeout: Option<Text>,
    /// How many more times to play the prompt after a timeout or a wrong key. Default 0.
    #[serde(default)]
    pub retries: Option<Spanned<u32>>,
    /// A prompt played after a wrong key, before the retry.
    #[serde(default)]
    pub invalid_prompt: Option<Text>,
}

/// `menu`, compiled.
#[derive(Clone, Debug)]
pub struct Menu {
    /// The prompt URL.
    pub prompt: Template,
    /// Key and step.
    pub choices: Vec<(char, StepId)>,
    /// Wait for a key this long.
    pub timeout: Duration,
    /// Replays after a timeout or a wrong key.
    pub retries: u32,
    /// Played after a wrong key.
    pub invalid_prompt: Option<Template>,
}

/// How the timeline says a step was reached by pressing `key` in a menu.
pub fn via(key: char) -> String {
    format!("key {key}")
}

impl ActionType for Menu {
    type Model = MenuAction;
    const DOC: &'static str = "Play a prompt and collect one DTMF digit.";
    const OUTCOMES: &'static [OutcomeField] =
        &[OutcomeField::OnTimeout, OutcomeField::OnInvalid, OutcomeField::OnFailure];
    const SHAPE: Shape = Shape::Decision;
    const NEEDS_CALL: bool = true;
    const BARE: bool = false;
    const RUNS_IN: &'static [CallPhase] = &[CallPhase::Answered];
    const UNROUTED_FAILURE: Option<&'static str> = None;

    fn branches(&self) -> Vec<Branch> {
        self.choices
            .iter()
            .map(|(key, to)| Branch {
                to: *to,
                via: via(*key),
                label: key.to_string(),
            })
            .collect()
    }

    fn phase_after(&self, phase: CallPhase, _: Option<OutcomeField>) -> CallPhase {
        phase
    }
}

impl CheckAction for Menu {
    fn branch_names(m: &MenuAction) -> Vec<&Text> {
        m.choices.values().collect()
    }

    fn check(
        cx: &mut Cx,
        a: &Spanned<MenuAction>,
        r: &Resolver<'_>,
        cals: &[&str],
    ) -> Option<Self> {
        let m = &a.value;
        let prompt = cx.prompt(&m.prompt, cals);
        let mut choices = Vec::new();
        for (key, step) in &m.choices {
            let mut chars = key.value.chars();
            let digit = match (chars.next(), chars.next()) {
                (Some(c), None) if c.is_ascii_digit() || c == '*' || c == '#' => Some(c),
                _ => {
                    cx.error(
                        "callflow::menu::key",
                        key.span,
                        format!("`{}` is not a key of a phone keypad", key.value),
                    )
                    .label("menu key")
                    .help("a key is one of `0` to `9`, `*` or `#`");
                    None
                }
            };
            let id = cx.resolve(r, step, &format!("key `{}`", key.value));
            if let (Some(d), Some(id)) = (digit, id) {
                choices.push((d, id));
            }
        }
        if m.choices.is_empty() {
            let at = cx.key_span(a.span, "menu");
            cx.error("callflow::menu::empty", at, "the menu offers no choice")
                .label("no `choices`")
                .help("add `choices: {\"1\": some_step}`");
        }
        let timeout = cx.duration_in(m.timeout.as_ref(), 10, None)?;
        let invalid_prompt = m.invalid_prompt.as_ref().and_then(|p| cx.prompt(p, cals));
        if choices.len() != m.choices.len() {
            return None;
        }
        Some(Menu {
            prompt: prompt?,
            choices,
            timeout,
            retries: m.retries.as_ref().map_or(0, |r| r.value),
            invalid_prompt,
        })
    }
}
