//! `record`: records a short message from the caller (`recordResponse`,
//! voicemail), then has it downloaded with the operation's access token and
//! delivered where the server's configuration says; its location and
//! duration go into a variable.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::collect::is_key;
use super::{ActionType, Branch, CallPhase, CheckAction, OutcomeField, Shape};
use crate::flow::check::{Cx, Resolver};
use crate::flow::compiled::Template;
use crate::flow::model::Text;
use crate::flow::span::Spanned;

/// The longest recording Graph makes, in seconds (and the most of each
/// silence timeout).
pub const MAX_SECONDS: u64 = 120;

/// `record: {prompt, into, beep, max_duration, initial_silence, max_silence, stop_tones}`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordAction {
    /// The URL of a prompt played before recording ("leave a message after the tone").
    #[serde(default)]
    pub prompt: Option<Text>,
    /// The variable that receives `{location, duration, bytes}`. Default `recording`.
    #[serde(default)]
    pub into: Option<Text>,
    /// Whether a beep tells the caller to start. Default true.
    #[serde(default)]
    pub beep: Option<Spanned<bool>>,
    /// The longest message, 1s to 2m (Graph's limit). Default 60s.
    #[serde(default)]
    pub max_duration: Option<Text>,
    /// How long the caller may stay silent before speaking, 1s to 2m; silence
    /// this long is `on_timeout`. Default 5s.
    #[serde(default)]
    pub initial_silence: Option<Text>,
    /// How long a pause ends the message once the caller has spoken, 1s to 2m. Default 5s.
    #[serde(default)]
    pub max_silence: Option<Text>,
    /// Keys that end the message: `["#"]` (the default); `[]` for none.
    #[serde(default)]
    pub stop_tones: Option<Vec<Text>>,
}

/// `record`, compiled.
#[derive(Clone, Debug)]
pub struct Record {
    /// The prompt played first.
    pub prompt: Option<Template>,
    /// The variable that receives the recording.
    pub into: String,
    /// Whether to beep.
    pub beep: bool,
    /// The longest message.
    pub max_duration: Duration,
    /// The longest silence before speaking.
    pub initial_silence: Duration,
    /// The longest pause once speaking.
    pub max_silence: Duration,
    /// Keys that end it.
    pub stop_tones: Vec<char>,
}

impl ActionType for Record {
    const RUNS_IN: &'static [CallPhase] = &[CallPhase::Answered];
    const UNROUTED_FAILURE: Option<&'static str> = Some("if the recording cannot be made or saved, the caller is hung up on");

    fn phase_after(&self, phase: CallPhase, _: Option<OutcomeField>) -> CallPhase {
        phase
    }

    type Model = RecordAction;
    const DOC: &'static str =
        "Record a message from the caller (voicemail), download it and deliver it.";
    const OUTCOMES: &'static [OutcomeField] = &[
        OutcomeField::Next,
        OutcomeField::OnTimeout,
        OutcomeField::OnFailure,
    ];
    const SHAPE: Shape = Shape::Input;
    const NEEDS_CALL: bool = true;
    const BARE: bool = true;

    fn branches(&self) -> Vec<Branch> {
        Vec::new()
    }
}

/// The variable a `record` without `into` fills.
const DEFAULT_INTO: &str = "recording";

impl CheckAction for Record {
    fn branch_names(_: &RecordAction) -> Vec<&Text> {
        Vec::new()
    }

    fn assigned_names(r: &RecordAction) -> Vec<String> {
        vec![r.into.as_ref().map_or_else(|| DEFAULT_INTO.to_owned(), |t| t.value.clone())]
    }

    fn check(
        cx: &mut Cx,
        a: &Spanned<RecordAction>,
        _: &Resolver<'_>,
        cals: &[&str],
    ) -> Option<Self> {
        let r = &a.value;
        let mut ok = true;
        let prompt = match &r.prompt {
            Some(p) => {
                let t = cx.prompt(p, cals);
                ok &= t.is_some();
                t
            }
            None => None,
        };
        let into = match &r.into {
            Some(t) if t.value.is_empty() || !cx.variable_name(t) => {
                if t.value.is_empty() {
                    cx.error("callflow::set::name", t.span, "`into` names no variable")
                        .label("empty")
                        .help("name the variable, e.g. `into: voicemail`, read back as `vars.voicemail.location`");
                }
                ok = false;
                String::new()
            }
            Some(t) => t.value.clone(),
            None => DEFAULT_INTO.to_owned(),
        };
        let range = Some((1, MAX_SECONDS));
        let max_duration = cx.duration_in(r.max_duration.as_ref(), 60, range);
        let initial_silence = cx.duration_in(r.initial_silence.as_ref(), 5, range);
        let max_silence = cx.duration_in(r.max_silence.as_ref(), 5, range);
        let mut stop_tones = Vec::new();
        match &r.stop_tones {
            None => stop_tones.push('#'),
            Some(list) => {
                for t in list {
                    let mut chars = t.value.chars();
                    match (chars.next(), chars.next()) {
                        (Some(k), None) if is_key(k) => stop_tones.push(k),
                        _ => {
                            cx.error(
                                "callflow::record::stop_tone",
                                t.span,
                                format!("`{}` is not a key of a phone keypad", t.value),
                            )
                            .label("stop tone")
                            .help("each stop tone is one key, `0` to `9`, `*` or `#`");
                            ok = false;
                        }
                    }
                }
            }
        }
        if !ok {
            return None;
        }
        Some(Record {
            prompt,
            into,
            beep: r.beep.as_ref().is_none_or(|b| b.value),
            max_duration: max_duration?,
            initial_silence: initial_silence?,
            max_silence: max_silence?,
            stop_tones,
        })
    }
}
