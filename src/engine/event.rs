//! What happens to a call, as the engine sees it: one [`Event`] per fact.
//!
//! Events come from three sources: Graph's notifications (through
//! [`Event::from_notification`], which reads the tolerant
//! [`graph::notification`](crate::graph::notification) output), the results
//! of the requests the engine asked for ([`Event::Accepted`],
//! [`Event::CallCreated`], [`Event::RequestFailed`], produced by
//! [`execute`](super::execute)), and the runtime (a start on demand, a timer
//! that fires). This module only translates; it never decides what an event
//! means for a flow, and it never reads a clock.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::graph::notification::{ChangeType, Notification, NotificationPayload};
use crate::graph::wire::{
    CallDirection, CallState, CommsOperation, IdentitySet, OperationStatus, Participant, ResultInfo,
};

use super::command::{CommandId, TimerId};

/// One party of a call, in the flow file's words (`call.from`, `call.to`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Party {
    /// A phone number in E.164, for PSTN parties.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// A Teams user's object id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// An application or application instance id (the bot itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application: Option<String>,
    /// The name Graph shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The tenant of a user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

impl Party {
    /// A PSTN party.
    pub fn phone(number: impl Into<String>) -> Self {
        Party {
            phone: Some(number.into()),
            ..Party::default()
        }
    }

    /// A Teams user.
    pub fn user(id: impl Into<String>) -> Self {
        Party {
            user: Some(id.into()),
            ..Party::default()
        }
    }

    /// Reads the parties of an identity set; later members fill what earlier ones lack.
    pub fn from_identity(identity: &IdentitySet) -> Self {
        let mut party = Party {
            phone: identity.phone.as_ref().map(|i| i.id.clone()),
            user: identity.user.as_ref().map(|i| i.id.clone()),
            application: identity
                .application_instance
                .as_ref()
                .or(identity.application.as_ref())
                .map(|i| i.id.clone()),
            ..Party::default()
        };
        if let Some(primary) = identity.primary() {
            party.display_name = primary.display_name.clone();
            party.tenant = primary.tenant_id.clone();
        }
        party
    }

    /// The best text to show for this party: number, user, then application.
    pub fn label(&self) -> &str {
        self.phone
            .as_deref()
            .or(self.user.as_deref())
            .or(self.application.as_deref())
            .or(self.display_name.as_deref())
            .unwrap_or("unknown")
    }

    /// Every id this party is known by (number, user id, application id).
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        [&self.phone, &self.user, &self.application]
            .into_iter()
            .filter_map(|v| v.as_deref())
    }
}

/// A call to the bot: a notification with state `incoming`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct IncomingCall {
    /// Graph's call id.
    pub call_id: String,
    /// The caller (`source.identity`).
    pub from: Party,
    /// Who was called (`targets[0].identity`, usually the bot's application instance).
    pub to: Party,
    /// The whole `resourceData`, as received (for `event` in expressions).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub raw: Value,
}

/// A change of a call's state, with why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StateChange {
    /// Graph's call id.
    pub call_id: String,
    /// The new state.
    pub state: CallState,
    /// Why (transfer completed 0/7015, failed 500/7000, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<ResultInfo>,
    /// Why the call ended (`AppTransferred`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_reason: Option<String>,
    /// Incoming or outgoing, when Graph says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<CallDirection>,
    /// The whole `resourceData`, as received (for `event` in expressions).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub raw: Value,
}

impl StateChange {
    /// A change to `state` without details.
    pub fn new(call_id: impl Into<String>, state: CallState) -> Self {
        StateChange {
            call_id: call_id.into(),
            state,
            result: None,
            termination_reason: None,
            direction: None,
            raw: Value::Null,
        }
    }

    /// The same change with a result.
    pub fn with_result(mut self, result: ResultInfo) -> Self {
        self.result = Some(result);
        self
    }

    /// The same change with a termination reason.
    pub fn with_termination_reason(mut self, reason: impl Into<String>) -> Self {
        self.termination_reason = Some(reason.into());
        self
    }
}

/// Progress of a long-running operation (`…/operations/{id}`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OperationUpdate {
    /// The call the operation runs on.
    pub call_id: String,
    /// Graph's operation id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation_id: Option<String>,
    /// Where it stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<OperationStatus>,
    /// The `clientContext` the engine sent with the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_context: Option<String>,
    /// The outcome (the old beta puts `transferring`/`transferAccepted` here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<ResultInfo>,
    /// How a prompt or a recording ended (`initialSilenceTimeout`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_reason: Option<String>,
    /// A recording's download location and access token (`recordResponse`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording: Option<Recording>,
}

/// Where Graph keeps a recording for a short while, and the token to fetch it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recording {
    /// `recordingLocation`.
    pub location: String,
    /// `recordingAccessToken`.
    pub access_token: String,
}

impl std::fmt::Debug for Recording {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recording")
            .field("location", &self.location)
            .field("access_token", &"…")
            .finish()
    }
}

impl Recording {
    /// The recording an operation carries, if it carries both fields.
    pub fn of(location: Option<&String>, token: Option<&String>) -> Option<Self> {
        Some(Recording {
            location: location?.clone(),
            access_token: token?.clone(),
        })
    }
}

/// One roster entry of a group call or meeting.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterEntry {
    /// The participant id.
    pub id: String,
    /// Who it is.
    pub party: Party,
    /// Whether a delta roster reports the participant as gone.
    #[serde(default)]
    pub removed: bool,
}

impl RosterEntry {
    /// Reads one roster participant.
    pub fn from_participant(p: &Participant) -> Self {
        RosterEntry {
            id: p.id.clone(),
            party: Party::from_identity(&p.info.identity),
            removed: p.is_removed(),
        }
    }
}

/// Everything that can happen to a session.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// A call to the bot (starts an `incoming_call` flow).
    IncomingCall(IncomingCall),
    /// A start on demand (an `api` flow), with its parameters.
    ApiStart {
        /// The parameters given, by name.
        params: Map<String, Value>,
    },
    /// A call changed state.
    CallState(StateChange),
    /// The caller pressed a key (after `subscribeToTone`).
    Tone {
        /// The call.
        call_id: String,
        /// The key (`0`–`9`, `*`, `#`, `A`–`D`); `None` for a flash or an unknown tone.
        key: Option<char>,
        /// Graph's sequence id, which increases with each press.
        sequence_id: Option<i64>,
    },
    /// An operation made progress.
    Operation(OperationUpdate),
    /// The roster of a group call or meeting changed.
    Roster {
        /// The call.
        call_id: String,
        /// The participants reported.
        participants: Vec<RosterEntry>,
    },
    /// The media state changed (`mediaState.audio`): recorded, never acted on.
    Media {
        /// The call.
        call_id: String,
        /// `active` or `inactive`.
        audio: String,
    },
    /// A timer the engine set has fired.
    TimerFired {
        /// Which timer.
        timer: TimerId,
    },
    /// The runtime started again with this session in the store (after a
    /// crash, a restart or a deploy), once its calls were reconciled with
    /// Graph: the caller may have heard silence, so the engine decides what
    /// to say again (a menu waiting for a key plays its prompt again).
    Resumed,
    /// The far end hung up (a shorthand for `terminated` without details).
    CallerHungUp {
        /// The call.
        call_id: String,
    },
    /// Graph created a call the engine asked for (`201` to `POST /communications/calls`).
    CallCreated {
        /// The tag the engine gave the call in its [`Command`](super::Command).
        tag: String,
        /// Graph's id of the new call.
        call_id: String,
    },
    /// Graph accepted a request (`2xx`), with the operation it started, if any.
    Accepted {
        /// The command.
        command: CommandId,
        /// The `commsOperation` Graph returned (`playPrompt`, `subscribeToTone`, `invite`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        operation: Option<CommsOperation>,
    },
    /// A recording was downloaded and delivered (the result of
    /// [`Command::SaveRecording`](super::Command::SaveRecording)).
    RecordingSaved {
        /// The command.
        command: CommandId,
        /// Where it was delivered (a file's path, or the URL it was posted to).
        location: String,
        /// Its size in bytes.
        bytes: u64,
        /// Its length in seconds, read from the WAV header (0 when it has none).
        duration_seconds: f64,
    },
    /// The designer's service answered a `fetch` (the result of
    /// [`Command::Fetch`](super::Command::Fetch)), whatever its status.
    Fetched {
        /// The command.
        command: CommandId,
        /// The answer.
        answer: super::fetch::FetchAnswer,
    },
    /// The turn a `round_robin` ring group takes (the result of
    /// [`Command::TakeTurn`](super::Command::TakeTurn)): how many turns its
    /// counter had handed out before this one (the first is `0`).
    Turn {
        /// The command.
        command: CommandId,
        /// The turn.
        turn: u64,
    },
    /// Graph refused a request, or it could not be sent.
    RequestFailed {
        /// The command.
        command: CommandId,
        /// The HTTP status (`0` when nothing came back).
        status: u16,
        /// Graph's error code (`BadRequest`, …) or the transport's.
        code: String,
        /// A readable message.
        message: String,
    },
    /// The engine or a `CallControl` panicked on this session (a bug): the
    /// runtime says so, and the engine ends the run with `error` and hangs
    /// up whatever is up ([`rules`](super::rules)).
    Fault {
        /// What panicked (`the engine`, `the Graph client`).
        what: String,
        /// What the panic said.
        message: String,
    },
}

impl Event {
    /// Whether the event says something happened to the call or the run (a
    /// notification, a start, a step's timer), which keeps the session from
    /// being reaped; the results of its own requests do not.
    pub fn is_activity(&self) -> bool {
        !matches!(
            self,
            Event::Accepted { .. }
                | Event::RequestFailed { .. }
                | Event::CallCreated { .. }
                | Event::Fault { .. }
        )
    }

    /// Translates one Graph notification into the events it carries (often
    /// one; none for content sharing and other resources the engine ignores;
    /// two when a call notification carries both a state and a key press).
    pub fn from_notification(n: &Notification) -> Vec<Event> {
        let call_id = n.call_id().to_owned();
        match &n.payload {
            NotificationPayload::Call(call) => {
                let mut out = Vec::new();
                let state = call.state.clone().or_else(|| {
                    (n.change_type == ChangeType::Deleted).then_some(CallState::Terminated)
                });
                match state {
                    Some(CallState::Incoming)
                        if n.change_type == ChangeType::Created
                            || call.direction == Some(CallDirection::Incoming) =>
                    {
                        out.push(Event::IncomingCall(IncomingCall {
                            call_id,
                            from: call
                                .source
                                .as_ref()
                                .map(|s| Party::from_identity(&s.identity))
                                .unwrap_or_default(),
                            to: call
                                .targets
                                .first()
                                .map(|t| Party::from_identity(&t.identity))
                                .unwrap_or_default(),
                            raw: call.raw.clone(),
                        }));
                        return out;
                    }
                    Some(state) => out.push(Event::CallState(StateChange {
                        call_id: call_id.clone(),
                        state,
                        result: call.result_info.clone(),
                        termination_reason: call.termination_reason.clone(),
                        direction: call.direction.clone(),
                        raw: call.raw.clone(),
                    })),
                    None => {}
                }
                if let Some(tone) = &call.tone_info {
                    out.push(Event::Tone {
                        call_id: call_id.clone(),
                        key: tone.tone.as_ref().and_then(|t| t.as_char()),
                        sequence_id: tone.sequence_id,
                    });
                }
                if out.is_empty()
                    && let Some(audio) = call.media_state.as_ref().and_then(|m| m.audio.as_ref())
                {
                    out.push(Event::Media {
                        call_id,
                        audio: audio.as_str().to_owned(),
                    });
                }
                out
            }
            NotificationPayload::Operation(op) => vec![Event::Operation(OperationUpdate {
                call_id,
                operation_id: op.id.clone(),
                status: op.status.clone().or_else(|| {
                    (n.change_type == ChangeType::Deleted).then_some(OperationStatus::Completed)
                }),
                client_context: op.client_context.clone(),
                result: op.result_info.clone(),
                completion_reason: op.completion_reason.clone(),
                recording: Recording::of(
                    op.recording_location.as_ref(),
                    op.recording_access_token.as_ref(),
                ),
            })],
            NotificationPayload::Participants(list) => vec![Event::Roster {
                call_id,
                participants: list.iter().map(RosterEntry::from_participant).collect(),
            }],
            NotificationPayload::Other(_) => Vec::new(),
        }
    }

    /// The call the event is about, if it names one.
    pub fn call_id(&self) -> Option<&str> {
        match self {
            Event::IncomingCall(c) => Some(&c.call_id),
            Event::CallState(c) => Some(&c.call_id),
            Event::Tone { call_id, .. }
            | Event::Roster { call_id, .. }
            | Event::Media { call_id, .. }
            | Event::CallerHungUp { call_id }
            | Event::CallCreated { call_id, .. } => Some(call_id),
            Event::Operation(o) => Some(&o.call_id),
            Event::ApiStart { .. }
            | Event::Resumed
            | Event::TimerFired { .. }
            | Event::Accepted { .. }
            | Event::RecordingSaved { .. }
            | Event::Fetched { .. }
            | Event::Turn { .. }
            | Event::RequestFailed { .. }
            | Event::Fault { .. } => None,
        }
    }
}
