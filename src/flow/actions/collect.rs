//! `collect`: plays a prompt and collects several DTMF digits
//! (`subscribeToTone`) into a variable, until a finish key, the most digits,
//! or a pause; checks them against a length and an optional condition.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ActionType, Branch, CallPhase, CheckAction, OutcomeField, Shape};
use crate::flow::check::{Cx, Resolver};
use crate::flow::compiled::Template;
use crate::flow::expr::Expr;
use crate::flow::model::Text;
use crate::flow::span::Spanned;

/// The most digits one `collect` may ask for.
pub const MAX_DIGITS: u32 = 64;

/// `collect: {prompt, into, min_digits, max_digits, finish_on, first_digit_timeout, digit_timeout, retries, invalid_prompt, valid, secret}`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CollectAction {
    /// The URL of the prompt that asks for the digits ("enter your account number, then hash").
    pub prompt: Text,
    /// The variable the digits go into, as text: `into: account` is read as `vars.account`.
    pub into: Text,
    /// The fewest digits accepted. Default 1.
    #[serde(default)]
    pub min_digits: Option<Spanned<u32>>,
    /// The most digits: collecting stops when this many are keyed. Default 20, at most 64.
    #[serde(default)]
    pub max_digits: Option<Spanned<u32>>,
    /// The key that ends the input early (not kept in the digits): one of
    /// `0`–`9`, `*`, `#`. Default `#`; `""` for none.
    #[serde(default)]
    pub finish_on: Option<Text>,
    /// How long to wait for the first digit after the prompt. Default 10s.
    #[serde(default)]
    pub first_digit_timeout: Option<Text>,
    /// How long to wait for each next digit; a pause this long ends the input. Default 5s.
    #[serde(default)]
    pub digit_timeout: Option<Text>,
    /// How many more times to ask after a timeout or an invalid input. Default 0.
    #[serde(default)]
    pub retries: Option<Spanned<u32>>,
    /// A prompt played after an invalid input, before the prompt is played again.
    #[serde(default)]
    pub invalid_prompt: Option<Text>,
    /// A rhai condition the digits must meet, reading them as `digits`
    /// (`digits.starts_with("4")`); an input that fails it is invalid.
    #[serde(default)]
    pub valid: Option<Text>,
    /// Whether the digits are secret (a PIN): never written in the timeline,
    /// logs, the admin API or the session store. Default false.
    #[serde(default)]
    pub secret: Option<Spanned<bool>>,
}

/// `collect`, compiled.
#[derive(Clone, Debug)]
pub struct Collect {
    /// The prompt URL.
    pub prompt: Template,
    /// The variable the digits go into.
    pub into: String,
    /// The fewest digits accepted.
    pub min_digits: u32,
    /// The most digits.
    pub max_digits: u32,
    /// The key that ends the input, if any.
    pub finish_on: Option<char>,
    /// Wait for the first digit this long after the prompt.
    pub first_digit_timeout: Duration,
    /// Wait for each next digit this long.
    pub digit_timeout: Duration,
    /// Asks again after a timeout or an invalid input.
    pub retries: u32,
    /// Played after an invalid input.
    pub invalid_prompt: Option<Template>,
    /// The condition the digits must meet.
    pub valid: Option<Expr>,
    /// Whether the digits are secret.
    pub secret: bool,
}

/// Whether `c` is a key of a phone keypad.
pub fn is_key(c: char) -> bool {
    c.is_ascii_digit() || c == '*' || c == '#'
}

impl ActionType for Collect {
    const RUNS_IN: &'static [CallPhase] = &[CallPhase::Answered];
    const UNROUTED_FAILURE: Option<&'static str> = None;

    fn phase_after(&self, phase: CallPhase, _: Option<OutcomeField>) -> CallPhase {
        phase
    }

    type Model = CollectAction;
    const DOC: &'static str = "Play a prompt and collect several DTMF digits into a variable.";
    const OUTCOMES: &'static [OutcomeField] = &[
        OutcomeField::Next,
        OutcomeField::OnTimeout,
        OutcomeField::OnInvalid,
        OutcomeField::OnFailure,
    ];
    const SHAPE: Shape = Shape::Input;
    const NEEDS_CALL: bool = true;
    const BARE: bool = false;

    fn branches(&self) -> Vec<Branch> {
        Vec::new()
    }
}

impl CheckAction for Collect {
    fn branch_names(_: &CollectAction) -> Vec<&Text> {
        Vec::new()
    }

    fn assigned_names(c: &CollectAction) -> Vec<String> {
        vec![c.into.value.clone()]
    }

    fn check(
        cx: &mut Cx,
        a: &Spanned<CollectAction>,
        _: &Resolver<'_>,
        cals: &[&str],
    ) -> Option<Self> {
        let c = &a.value;
        let mut ok = true;
        let prompt = cx.prompt(&c.prompt, cals);
        if c.into.value.is_empty() {
            cx.error(
                "callflow::set::name",
                c.into.span,
                "`into` names no variable",
            )
            .label("empty")
            .help("name the variable the digits go into, e.g. `into: account`, read back as `vars.account`");
            ok = false;
        } else if !cx.variable_name(&c.into) {
            ok = false;
        }
        let min = c.min_digits.as_ref().map_or(1, |m| m.value);
        let max = c.max_digits.as_ref().map_or(20.max(min), |m| m.value);
        if let Some(m) = &c.min_digits
            && m.value == 0
        {
            cx.error(
                "callflow::collect::digits",
                m.span,
                "`min_digits` is 0: a caller who keys nothing is a timeout, never an input",
            )
            .label("zero")
            .help("use `min_digits: 1` or more");
            ok = false;
        }
        if let Some(m) = &c.max_digits
            && m.value > MAX_DIGITS
        {
            cx.error(
                "callflow::collect::digits",
                m.span,
                format!("`max_digits` is {}, more than {MAX_DIGITS}", m.value),
            )
            .label("too many")
            .help(format!("collect at most {MAX_DIGITS} digits"));
            ok = false;
        }
        if max < min {
            let span = c
                .max_digits
                .as_ref()
                .map_or_else(|| cx.key_span(a.span, "collect"), |m| m.span);
            let mut d = cx
                .error(
                    "callflow::collect::digits",
                    span,
                    format!("`max_digits` ({max}) is below `min_digits` ({min})"),
                )
                .label("below min_digits")
                .help(format!("make `max_digits` at least {min}"));
            if let Some(m) = &c.min_digits {
                d = d.related(m.span, "min_digits");
            }
            let _ = d;
            ok = false;
        }
        let finish_on = match &c.finish_on {
            None => Some('#'),
            Some(t) if t.value.is_empty() => None,
            Some(t) => {
                let mut chars = t.value.chars();
                match (chars.next(), chars.next()) {
                    (Some(k), None) if is_key(k) => Some(k),
                    _ => {
                        cx.error(
                            "callflow::collect::finish_on",
                            t.span,
                            format!("`{}` is not a key of a phone keypad", t.value),
                        )
                        .label("finish key")
                        .help("`finish_on` is one key, `0` to `9`, `*` or `#` (`\"\"` for none)");
                        ok = false;
                        None
                    }
                }
            }
        };
        let first = cx.duration_in(c.first_digit_timeout.as_ref(), 10, None);
        let next = cx.duration_in(c.digit_timeout.as_ref(), 5, None);
        let invalid_prompt = match &c.invalid_prompt {
            Some(p) => match cx.prompt(p, cals) {
                Some(p) => Some(p),
                None => {
                    ok = false;
                    None
                }
            },
            None => None,
        };
        let valid = match &c.valid {
            Some(v) => match cx.condition(v, cals) {
                Some(e) => Some(e),
                None => {
                    ok = false;
                    None
                }
            },
            None => None,
        };
        if !ok {
            return None;
        }
        Some(Collect {
            prompt: prompt?,
            into: c.into.value.clone(),
            min_digits: min,
            max_digits: max,
            finish_on,
            first_digit_timeout: first?,
            digit_timeout: next?,
            retries: c.retries.as_ref().map_or(0, |r| r.value),
            invalid_prompt,
            valid,
            secret: c.secret.as_ref().is_some_and(|s| s.value),
        })
    }
}
