//! What the engine asks for: one [`Command`] per Graph request, plus timers.
//!
//! A command carries the call it targets and the exact
//! [`graph::wire`](crate::graph::wire) body, so that what the runtime sends
//! is the JSON of Microsoft's reference pages. [`Command::line`] describes a
//! request in the flow file's words (`transfer {to: {phone: …}}`), which is
//! what timelines print and what scenario `expect` lines match. Nothing here
//! sends anything.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::graph::wire::{
    AnswerRequest, Call, CallState, InviteParticipantsRequest, MeetingInfo, PlayPromptRequest,
    RecordResponseRequest, RedirectRequest, RejectRequest, SubscribeToToneRequest, TransferRequest,
};

use super::request_line::targets_words;
pub use super::request_line::{RequestLine, identity_words, write_flow};

/// Names one command within a session; results of requests refer to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CommandId(pub u64);

impl fmt::Display for CommandId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Names one timer within a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TimerId(pub u64);

impl fmt::Display for TimerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "timer {}", self.0)
    }
}

/// The kinds of Graph request, named as scenario `expect` lines name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestKind {
    /// `POST …/calls/{id}/answer`.
    Answer,
    /// `POST …/calls/{id}/reject`.
    Reject,
    /// `POST …/calls/{id}/redirect`.
    Redirect,
    /// `POST …/calls/{id}/transfer`.
    Transfer,
    /// `POST /communications/calls`.
    CreateCall,
    /// `POST …/calls/{id}/playPrompt`.
    PlayPrompt,
    /// `POST …/calls/{id}/subscribeToTone`.
    SubscribeToTone,
    /// `POST …/calls/{id}/participants/invite`.
    Invite,
    /// `POST …/calls/{id}/recordResponse`.
    RecordResponse,
    /// `POST …/calls/{id}/cancelMediaProcessing`.
    CancelMediaProcessing,
    /// `GET` of a recording's `recordingLocation` with its access token,
    /// then its delivery (a folder, or a POST to a URL).
    SaveRecording,
    /// `DELETE …/calls/{id}`.
    Hangup,
    /// `POST …/calls/{id}/keepAlive`.
    KeepAlive,
    /// A `fetch`: an HTTP request to the designer's own service, made by
    /// the runtime (not Graph).
    Fetch,
    /// The next turn of a `round_robin` ring group, from a counter the
    /// runtime keeps for every call (not Graph).
    TakeTurn,
}

impl RequestKind {
    /// Every kind, in the order of the docs.
    pub const ALL: [RequestKind; 15] = [
        RequestKind::Answer,
        RequestKind::Reject,
        RequestKind::Redirect,
        RequestKind::Transfer,
        RequestKind::CreateCall,
        RequestKind::PlayPrompt,
        RequestKind::SubscribeToTone,
        RequestKind::Invite,
        RequestKind::RecordResponse,
        RequestKind::CancelMediaProcessing,
        RequestKind::SaveRecording,
        RequestKind::Hangup,
        RequestKind::KeepAlive,
        RequestKind::Fetch,
        RequestKind::TakeTurn,
    ];

    /// Whether a call seen in `state` (a `GET` of the call the request
    /// was about) shows that this request took effect; `None` when a
    /// call's state cannot tell (a prompt, a tone subscription, a new call).
    pub fn shown_by(self, state: &CallState) -> Option<bool> {
        use CallState as S;
        Some(match self {
            RequestKind::Answer => matches!(state, S::Establishing | S::Established),
            RequestKind::Reject | RequestKind::Hangup => {
                matches!(state, S::Terminating | S::Terminated)
            }
            RequestKind::Redirect => {
                matches!(state, S::Redirecting | S::Terminating | S::Terminated)
            }
            RequestKind::Transfer => matches!(
                state,
                S::Transferring | S::TransferAccepted | S::Terminating | S::Terminated
            ),
            RequestKind::CreateCall
            | RequestKind::PlayPrompt
            | RequestKind::SubscribeToTone
            | RequestKind::Invite
            | RequestKind::RecordResponse
            | RequestKind::CancelMediaProcessing
            | RequestKind::SaveRecording
            | RequestKind::KeepAlive
            | RequestKind::Fetch
            | RequestKind::TakeTurn => return None,
        })
    }

    /// The snake_case name used in scenario files and timelines.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::Answer => "answer",
            RequestKind::Reject => "reject",
            RequestKind::Redirect => "redirect",
            RequestKind::Transfer => "transfer",
            RequestKind::CreateCall => "create_call",
            RequestKind::PlayPrompt => "play_prompt",
            RequestKind::SubscribeToTone => "subscribe_to_tone",
            RequestKind::Invite => "invite",
            RequestKind::RecordResponse => "record_response",
            RequestKind::CancelMediaProcessing => "cancel_media_processing",
            RequestKind::SaveRecording => "save_recording",
            RequestKind::Hangup => "hangup",
            RequestKind::KeepAlive => "keep_alive",
            RequestKind::Fetch => "fetch",
            RequestKind::TakeTurn => "take_turn",
        }
    }

    /// Graph's HTTP method for this request and its path under
    /// `/communications/calls/{id}/` (`""` for the call itself, `None` for
    /// create call, which posts to `/communications/calls`). The one table
    /// the studio shows and the simulated Graph's routes are checked against.
    pub fn http(self) -> (&'static str, Option<&'static str>) {
        match self {
            RequestKind::Answer => ("POST", Some("answer")),
            RequestKind::Reject => ("POST", Some("reject")),
            RequestKind::Redirect => ("POST", Some("redirect")),
            RequestKind::Transfer => ("POST", Some("transfer")),
            RequestKind::CreateCall => ("POST", None),
            RequestKind::PlayPrompt => ("POST", Some("playPrompt")),
            RequestKind::SubscribeToTone => ("POST", Some("subscribeToTone")),
            RequestKind::Invite => ("POST", Some("participants/invite")),
            RequestKind::RecordResponse => ("POST", Some("recordResponse")),
            RequestKind::CancelMediaProcessing => ("POST", Some("cancelMediaProcessing")),
            // Not under the call: the `recordingLocation` Graph gave.
            RequestKind::SaveRecording => ("GET", Some("recordingLocation")),
            RequestKind::Hangup => ("DELETE", Some("")),
            RequestKind::KeepAlive => ("POST", Some("keepAlive")),
            // Not Graph: the designer's service, at the step's URL (GET or POST).
            RequestKind::Fetch => ("GET", Some("{url}")),
            // Not Graph, nor HTTP: the session store's counter of the group.
            RequestKind::TakeTurn => ("TAKE", Some("{group}")),
        }
    }

    /// The method and the path under Graph's root (`/v1.0`) of this request
    /// on call `call_id`.
    pub fn route(self, call_id: &str) -> (&'static str, String) {
        let (method, action) = self.http();
        let path = match action {
            // The download goes to the URL Graph's operation gave, not to Graph's root.
            _ if self == RequestKind::SaveRecording => "{recordingLocation}".to_owned(),
            _ if self == RequestKind::Fetch => "{url}".to_owned(),
            _ if self == RequestKind::TakeTurn => "{group}".to_owned(),
            None => "/communications/calls".to_owned(),
            Some("") => format!("/communications/calls/{call_id}"),
            Some(action) => format!("/communications/calls/{call_id}/{action}"),
        };
        (method, path)
    }

    /// The kind named `name` (snake_case), if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl fmt::Display for RequestKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing the runtime must do for a session.
///
/// Bodies are held inline (a transfer or a call is about a kilobyte):
/// commands are short-lived and matched on by value in the runtime and tests.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// `POST …/calls/{call_id}/answer`.
    Answer {
        /// The command's id.
        id: CommandId,
        /// The call.
        call_id: String,
        /// The body.
        body: AnswerRequest,
    },
    /// `POST …/calls/{call_id}/reject`.
    Reject {
        /// The command's id.
        id: CommandId,
        /// The call.
        call_id: String,
        /// The body.
        body: RejectRequest,
    },
    /// `POST …/calls/{call_id}/redirect`.
    Redirect {
        /// The command's id.
        id: CommandId,
        /// The call.
        call_id: String,
        /// The body.
        body: RedirectRequest,
    },
    /// `POST …/calls/{call_id}/transfer`.
    Transfer {
        /// The command's id.
        id: CommandId,
        /// The call.
        call_id: String,
        /// The body.
        body: TransferRequest,
    },
    /// `POST /communications/calls`: an outgoing call, a consultation call or
    /// joining a meeting. The result comes back as [`Event::CallCreated`](super::Event::CallCreated) with `tag`.
    CreateCall {
        /// The command's id.
        id: CommandId,
        /// The session's name for the new call, echoed in `CallCreated`.
        tag: String,
        /// The body.
        body: Call,
    },
    /// `POST …/calls/{call_id}/playPrompt`.
    PlayPrompt {
        /// The command's id.
        id: CommandId,
        /// The call.
        call_id: String,
        /// The body.
        body: PlayPromptRequest,
    },
    /// `POST …/calls/{call_id}/subscribeToTone`.
    SubscribeToTone {
        /// The command's id.
        id: CommandId,
        /// The call.
        call_id: String,
        /// The body.
        body: SubscribeToToneRequest,
    },
    /// `POST …/calls/{call_id}/participants/invite`.
    Invite {
        /// The command's id.
        id: CommandId,
        /// The call.
        call_id: String,
        /// The body.
        body: InviteParticipantsRequest,
    },
    /// `POST …/calls/{call_id}/recordResponse`.
    RecordResponse {
        /// The command's id.
        id: CommandId,
        /// The call.
        call_id: String,
        /// The body.
        body: RecordResponseRequest,
    },
    /// `POST …/calls/{call_id}/cancelMediaProcessing`.
    CancelMediaProcessing {
        /// The command's id.
        id: CommandId,
        /// The call.
        call_id: String,
        /// The body.
        body: crate::graph::wire::CancelMediaProcessingRequest,
    },
    /// Download the recording at `recording` with its token, deliver it
    /// as `name`; the result comes back as [`Event::RecordingSaved`](super::Event::RecordingSaved).
    SaveRecording {
        /// The command's id.
        id: CommandId,
        /// The call it was recorded on.
        call_id: String,
        /// Where Graph keeps it, and the token.
        recording: super::event::Recording,
        /// The file name to deliver it as (`{session}-{step}-{n}.wav`).
        name: String,
    },
    /// `DELETE …/calls/{call_id}`.
    Hangup {
        /// The command's id.
        id: CommandId,
        /// The call.
        call_id: String,
    },
    /// `POST …/calls/{call_id}/keepAlive` (empty body).
    KeepAlive {
        /// The command's id.
        id: CommandId,
        /// The call.
        call_id: String,
    },
    /// A `fetch`: the runtime makes the request (to an allowed host, the
    /// secrets filled in) and feeds back [`Event::Fetched`](super::Event::Fetched).
    Fetch {
        /// The command's id.
        id: CommandId,
        /// The request as people may read it (a secret collect's digits masked).
        request: super::fetch::FetchRequest,
        /// The request as sent, when it differs from `request` (it reads a
        /// secret collect's digits): in memory only, never serialised.
        #[serde(skip)]
        sent: Option<super::fetch::Sent>,
    },
    /// The next turn of a `round_robin` ring group: the runtime takes it
    /// from the group's counter, shared by every call (the store's), and
    /// feeds back [`Event::Turn`](super::Event::Turn).
    TakeTurn {
        /// The command's id.
        id: CommandId,
        /// The group: `FLOW/STEP`.
        group: String,
    },
    /// Deliver [`Event::TimerFired`](super::Event::TimerFired) for `timer` at `at`.
    SetTimer {
        /// The timer.
        timer: TimerId,
        /// When it fires.
        at: DateTime<Utc>,
    },
    /// Forget `timer`; if it fires anyway, the engine ignores it.
    CancelTimer {
        /// The timer.
        timer: TimerId,
    },
}

impl Command {
    /// The command's id (`None` for timers).
    pub fn id(&self) -> Option<CommandId> {
        match self {
            Command::Answer { id, .. }
            | Command::Reject { id, .. }
            | Command::Redirect { id, .. }
            | Command::Transfer { id, .. }
            | Command::CreateCall { id, .. }
            | Command::PlayPrompt { id, .. }
            | Command::SubscribeToTone { id, .. }
            | Command::Invite { id, .. }
            | Command::RecordResponse { id, .. }
            | Command::CancelMediaProcessing { id, .. }
            | Command::SaveRecording { id, .. }
            | Command::Hangup { id, .. }
            | Command::KeepAlive { id, .. }
            | Command::Fetch { id, .. }
            | Command::TakeTurn { id, .. } => Some(*id),
            Command::SetTimer { .. } | Command::CancelTimer { .. } => None,
        }
    }

    /// The Graph request kind (`None` for timers).
    pub fn kind(&self) -> Option<RequestKind> {
        Some(match self {
            Command::Answer { .. } => RequestKind::Answer,
            Command::Reject { .. } => RequestKind::Reject,
            Command::Redirect { .. } => RequestKind::Redirect,
            Command::Transfer { .. } => RequestKind::Transfer,
            Command::CreateCall { .. } => RequestKind::CreateCall,
            Command::PlayPrompt { .. } => RequestKind::PlayPrompt,
            Command::SubscribeToTone { .. } => RequestKind::SubscribeToTone,
            Command::Invite { .. } => RequestKind::Invite,
            Command::RecordResponse { .. } => RequestKind::RecordResponse,
            Command::CancelMediaProcessing { .. } => RequestKind::CancelMediaProcessing,
            Command::SaveRecording { .. } => RequestKind::SaveRecording,
            Command::Hangup { .. } => RequestKind::Hangup,
            Command::KeepAlive { .. } => RequestKind::KeepAlive,
            Command::Fetch { .. } => RequestKind::Fetch,
            Command::TakeTurn { .. } => RequestKind::TakeTurn,
            Command::SetTimer { .. } | Command::CancelTimer { .. } => return None,
        })
    }

    /// The call the request targets (`None` for `create_call` and timers).
    pub fn call_id(&self) -> Option<&str> {
        match self {
            Command::Answer { call_id, .. }
            | Command::Reject { call_id, .. }
            | Command::Redirect { call_id, .. }
            | Command::Transfer { call_id, .. }
            | Command::PlayPrompt { call_id, .. }
            | Command::SubscribeToTone { call_id, .. }
            | Command::Invite { call_id, .. }
            | Command::RecordResponse { call_id, .. }
            | Command::CancelMediaProcessing { call_id, .. }
            | Command::SaveRecording { call_id, .. }
            | Command::Hangup { call_id, .. }
            | Command::KeepAlive { call_id, .. } => Some(call_id),
            Command::CreateCall { .. }
            | Command::Fetch { .. }
            | Command::TakeTurn { .. }
            | Command::SetTimer { .. }
            | Command::CancelTimer { .. } => None,
        }
    }

    /// Whether this is a Graph request (not a timer).
    pub fn is_request(&self) -> bool {
        self.kind().is_some()
    }

    /// The request in the flow file's words, for timelines and scenarios
    /// (`None` for timers). `call` is the session's name for the call
    /// (`main`, `consultation`, …).
    pub fn line(&self, call: &str) -> Option<RequestLine> {
        let kind = self.kind()?;
        let mut fields = Map::new();
        match self {
            Command::Answer { body, .. } => {
                if let crate::graph::wire::MediaConfig::ServiceHosted(s) = &body.media_config
                    && let Some(media) = &s.pre_fetch_media
                    && !media.is_empty()
                {
                    let list = media.iter().map(|m| Value::String(m.uri.clone())).collect();
                    fields.insert("prefetch".into(), Value::Array(list));
                }
            }
            Command::Reject { body, .. } => {
                fields.insert("reason".into(), body.reason.as_str().into());
            }
            Command::Redirect { body, .. } => {
                fields.insert("to".into(), targets_words(&body.targets));
                if let Some(t) = body.timeout {
                    fields.insert("timeout".into(), format!("{t}s").into());
                }
            }
            Command::Transfer { body, .. } => {
                fields.insert("to".into(), identity_words(&body.transfer_target.identity));
                if let Some(t) = &body.transferee {
                    let mut who = match identity_words(&t.identity) {
                        Value::Object(m) => m,
                        _ => Map::new(),
                    };
                    if let Some(p) = &t.participant_id {
                        who.insert("participant_id".into(), p.clone().into());
                    }
                    fields.insert("transferee".into(), Value::Object(who));
                }
                if let Some(c) = &body.client_context {
                    fields.insert("client_context".into(), c.clone().into());
                }
                if let Some(r) = &body.transfer_target.replaces_call_id {
                    fields.insert("replaces_call_id".into(), r.clone().into());
                }
            }
            Command::CreateCall { body, .. } => {
                if let Some(targets) = &body.targets
                    && !targets.is_empty()
                {
                    fields.insert("to".into(), targets_words(targets));
                }
                match &body.meeting_info {
                    Some(MeetingInfo::JoinMeetingId(m)) => {
                        fields.insert("join_meeting_id".into(), m.join_meeting_id.clone().into());
                        if let Some(p) = &m.passcode {
                            fields.insert("passcode".into(), p.clone().into());
                        }
                    }
                    Some(MeetingInfo::Organizer(m)) => {
                        if let Some(chat) = &body.chat_info {
                            fields.insert("thread_id".into(), chat.thread_id.clone().into());
                            if let Some(id) = &chat.message_id {
                                fields.insert("message_id".into(), id.clone().into());
                            }
                        }
                        if let Some(user) = &m.organizer.user {
                            fields.insert("organizer".into(), user.id.clone().into());
                        }
                    }
                    _ => {}
                }
                if let Some(s) = &body.subject {
                    fields.insert("subject".into(), s.clone().into());
                }
                if let Some(t) = &body.tenant_id {
                    fields.insert("tenant".into(), t.clone().into());
                }
            }
            Command::PlayPrompt { body, .. } => match body.prompts.as_slice() {
                [one] => {
                    fields.insert("prompt".into(), one.media_info.uri.clone().into());
                }
                many => {
                    let list = many
                        .iter()
                        .map(|p| Value::String(p.media_info.uri.clone()))
                        .collect();
                    fields.insert("prompts".into(), Value::Array(list));
                }
            },
            Command::Invite { body, .. } => {
                fields.insert("to".into(), targets_words(&body.participants));
            }
            Command::RecordResponse { body, .. } => {
                if let Some(p) = body.prompts.first() {
                    fields.insert("prompt".into(), p.media_info.uri.clone().into());
                }
                if let Some(s) = body.max_record_duration_in_seconds {
                    fields.insert("max_duration".into(), format!("{s}s").into());
                }
            }
            Command::SaveRecording { name, .. } => {
                fields.insert("name".into(), name.clone().into());
            }
            Command::Fetch { request, .. } => {
                fields.insert("method".into(), request.method.as_str().into());
                fields.insert("url".into(), request.url.clone().into());
            }
            Command::TakeTurn { group, .. } => {
                fields.insert("group".into(), group.clone().into());
            }
            Command::SubscribeToTone { .. }
            | Command::CancelMediaProcessing { .. }
            | Command::Hangup { .. }
            | Command::KeepAlive { .. }
            | Command::SetTimer { .. }
            | Command::CancelTimer { .. } => {}
        }
        Some(RequestLine {
            request: kind,
            call: call.to_owned(),
            fields,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::wire::InvitationParticipantInfo;

    #[test]
    fn transfer_lines_use_flow_words() {
        let cmd = Command::Transfer {
            id: CommandId(1),
            call_id: "c".into(),
            body: TransferRequest::new(InvitationParticipantInfo::phone("+14255550123")),
        };
        let line = cmd.line("main").expect("a request");
        assert_eq!(line.to_string(), "transfer {to: {phone: \"+14255550123\"}}");
        let hang = Command::Hangup {
            id: CommandId(2),
            call_id: "x".into(),
        };
        let line = hang.line("consultation").expect("a request");
        assert_eq!(line.to_string(), "hangup on consultation");
        assert!(
            Command::CancelTimer { timer: TimerId(1) }
                .line("main")
                .is_none()
        );
    }
}
