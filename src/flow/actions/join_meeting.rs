//! `join_meeting`: the bot places a call that joins a Teams meeting, by its
//! meeting id and passcode or by its chat thread and organizer.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ANY_PHASE, ActionType, Branch, CallPhase, CheckAction, OutcomeField, Shape};
use crate::flow::check::{Cx, Resolver};
use crate::flow::compiled::Template;
use crate::flow::model::Text;
use crate::flow::span::Spanned;

/// `join_meeting`: by meeting id and passcode, or by thread and organizer.
#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinMeetingAction {
    /// The numeric meeting id shown in the invitation.
    #[serde(default)]
    pub join_meeting_id: Option<Text>,
    /// The meeting passcode, if it has one.
    #[serde(default)]
    pub passcode: Option<Text>,
    /// The meeting chat's thread id (with `message_id` and `organizer`).
    #[serde(default)]
    pub thread_id: Option<Text>,
    /// The meeting chat's message id, usually `0`.
    #[serde(default)]
    pub message_id: Option<Text>,
    /// The organizer's user id.
    #[serde(default)]
    pub organizer: Option<Text>,
    /// The meeting's tenant id.
    #[serde(default)]
    pub tenant: Option<Text>,
    /// How long joining may take before `on_failure`. Default 30s.
    #[serde(default)]
    pub timeout: Option<Text>,
}

/// `join_meeting`, compiled.
#[derive(Clone, Debug)]
pub struct JoinMeeting {
    /// Which meeting.
    pub meeting: Meeting,
    /// Its tenant.
    pub tenant: Option<Template>,
    /// How long joining may take.
    pub timeout: Duration,
}

/// Which meeting to join.
#[derive(Clone, Debug)]
pub enum Meeting {
    /// By the id of the invitation.
    JoinId {
        /// The meeting id.
        join_meeting_id: Template,
        /// The passcode, if any.
        passcode: Option<Template>,
    },
    /// By chat thread and organizer.
    Thread {
        /// The chat thread id.
        thread_id: Template,
        /// The chat message id.
        message_id: Template,
        /// The organizer's user id.
        organizer: Template,
    },
}

impl ActionType for JoinMeeting {
    type Model = JoinMeetingAction;
    const DOC: &'static str = "Join a Teams meeting (the bot places a new call).";
    const OUTCOMES: &'static [OutcomeField] = &[OutcomeField::Next, OutcomeField::OnFailure];
    const SHAPE: Shape = Shape::Handoff;
    const NEEDS_CALL: bool = true;
    const BARE: bool = false;
    const RUNS_IN: &'static [CallPhase] = ANY_PHASE;
    const UNROUTED_FAILURE: Option<&'static str> = Some("if the meeting cannot be joined, the run ends in `error` and the bot hangs up (on the caller too, when there is one)");

    fn branches(&self) -> Vec<Branch> {
        Vec::new()
    }

    fn phase_after(&self, phase: CallPhase, outcome: Option<OutcomeField>) -> CallPhase {
        // The call placed is the main call when there is none.
        match (outcome, phase) {
            (Some(OutcomeField::Next), CallPhase::NoCall | CallPhase::Ended) => CallPhase::Answered,
            _ => phase,
        }
    }
}

impl CheckAction for JoinMeeting {
    fn branch_names(_: &JoinMeetingAction) -> Vec<&Text> {
        Vec::new()
    }

    fn check(
        cx: &mut Cx,
        a: &Spanned<JoinMeetingAction>,
        _: &Resolver<'_>,
        cals: &[&str],
    ) -> Option<Self> {
        let j = &a.value;
        let tenant = j.tenant.as_ref().and_then(|t| cx.template(t, cals));
        let timeout = cx.duration_in(j.timeout.as_ref(), 30, None)?;
        let meeting = match (&j.join_meeting_id, &j.thread_id) {
            (Some(id), None) => {
                if id.value.chars().any(|c| !c.is_ascii_digit() && c != ' ')
                    && !id.value.contains("${")
                {
                    cx.error(
                        "callflow::meeting::id",
                        id.span,
                        format!("`{}` is not a meeting id", id.value),
                    )
                    .label("expected digits")
                    .help("copy the numeric Meeting ID from the invitation, e.g. `1234567890`");
                }
                Meeting::JoinId {
                    join_meeting_id: cx.template(id, cals)?,
                    passcode: j.passcode.as_ref().and_then(|p| cx.template(p, cals)),
                }
            }
            (None, Some(thread)) => {
                let (Some(msg), Some(org)) = (&j.message_id, &j.organizer) else {
                    let at = cx.key_span(a.span, "join_meeting");
                    cx.error(
                        "callflow::meeting::incomplete",
                        at,
                        "joining by thread needs `thread_id`, `message_id` and `organizer`",
                    )
                    .help("add the missing fields, or join by `join_meeting_id`");
                    return None;
                };
                Meeting::Thread {
                    thread_id: cx.template(thread, cals)?,
                    message_id: cx.template(msg, cals)?,
                    organizer: cx.template(org, cals)?,
                }
            }
            (Some(_), Some(thread)) => {
                let at = cx.key_span(thread.span, "thread_id");
                cx.error(
                    "callflow::meeting::both",
                    at,
                    "give `join_meeting_id` or `thread_id`, not both",
                )
                .label("second way to name the meeting")
                .help("keep `join_meeting_id` (with `passcode`), or `thread_id` with `message_id` and `organizer`");
                return None;
            }
            (None, None) => {
                let at = cx.key_span(a.span, "join_meeting");
                cx.error("callflow::meeting::incomplete", at, "`join_meeting` names no meeting")
                    .label("which meeting?")
                    .help("give `join_meeting_id` (and `passcode`), or `thread_id`, `message_id` and `organizer`");
                return None;
            }
        };
        Some(JoinMeeting {
            meeting,
            tenant,
            timeout,
        })
    }
}
