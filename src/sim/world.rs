//! Graph's truth under the simulated clock: calls, their states, the queue.
//!
//! The [`World`] holds what Graph knows (each call's real state, whether
//! tones are subscribed, the attempts so far) and the queue of what happens
//! next. It answers requests the way the seed pages describe and schedules
//! the notifications that follow, with the faults of
//! [`GraphBehaviour`]; [`super::graph::SimGraph`] wraps it behind a mutex.
//! Deterministic: no wall clock, no randomness.

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, Duration, Utc};
use indexmap::IndexMap;
use serde_json::Value;

use crate::engine::{ControlError, Party, RequestKind};
use crate::graph::wire::{
    Call, CallDirection, CallState, CommsOperation, InviteParticipantsRequest, OperationStatus,
    PlayPromptRequest, RecordResponseRequest, TransferRequest,
};

use super::behaviour::{
    AgentMode, CallMode, GraphBehaviour, InviteMode, JoinMode, RecordMode, TransferMode,
};
use super::graph::BOT_APP_ID;
use super::happening::{Happening, Scheduled};
use super::notify::{Notifier, SimResult};

/// What a simulated call is.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Kind {
    Incoming,
    Outgoing,
    Consultation(TransferMode),
    Meeting,
}

/// Graph's truth about one call.
#[derive(Clone, Debug)]
pub(super) struct SimCall {
    pub(super) kind: Kind,
    pub(super) state: CallState,
    pub(super) decided: bool,
    pub(super) subscribed: bool,
    pub(super) tone_seq: i64,
    /// Whether the bot's side of the call is an application instance (a
    /// resource account): only then may it transfer to a phone number.
    pub(super) instance: bool,
}

impl SimCall {
    /// A call in `state`, nothing decided yet unless `decided`.
    pub(super) fn new(kind: Kind, state: CallState, decided: bool, instance: bool) -> Self {
        SimCall {
            kind,
            state,
            decided,
            subscribed: false,
            tone_seq: 0,
            instance,
        }
    }
}

/// Graph's refusals, with the codes and messages Graph answers them with
/// (see docs/decisions.md for where each comes from).
pub(super) mod graph_errors {
    use crate::engine::ControlError;

    /// A request on a call that has ended or never existed (Graph's 8522).
    pub(in crate::sim) fn call_not_found() -> ControlError {
        ControlError::new(404, "8522", "Call not found.")
    }

    /// A create call without `tenantId` (Graph's 7505).
    pub(in crate::sim) fn tenant_mismatch() -> ControlError {
        ControlError::new(403, "7505", "Request authorization tenant mismatch.")
    }

    /// A call to, or a transfer to, a phone number by a bot that does not
    /// speak as an application instance (Graph's 7507).
    pub(in crate::sim) fn source_identity_invalid(detail: &str) -> ControlError {
        ControlError::new(
            400,
            "7507",
            format!(
                "Call source identity invalid. ({detail}: a call to or a transfer to a phone \
                 number needs an application instance with a phone number as its source)"
            ),
        )
    }

    /// A body outside Graph's documented limits.
    pub(in crate::sim) fn bad_request(message: impl Into<String>) -> ControlError {
        ControlError::new(400, "BadRequest", message)
    }
}

/// The most targets of a group call Graph places (the create-call page:
/// "up to 5 VoIP users").
pub const MAX_GROUP_TARGETS: usize = 5;

pub(super) struct World {
    pub(super) now: DateTime<Utc>,
    pub(super) queue: BTreeMap<(DateTime<Utc>, u64), Scheduled>,
    pub(super) seq: u64,
    /// By id, in creation order (ids are looked up on every request and
    /// notification: a scan would make placing N calls O(N²)).
    pub(super) calls: IndexMap<String, SimCall>,
    pub(super) behaviour: GraphBehaviour,
    pub(super) notifier: Notifier,
    pub(super) transfers: usize,
    pub(super) outgoing: usize,
    pub(super) joins: usize,
    /// Recordings asked for so far (the `record` behaviour's attempt).
    pub(super) recordings: usize,
    /// Invitations asked for so far (the `invite` behaviour's attempt).
    pub(super) invites: usize,
    /// Calls to each person of the `agents` behaviour so far (their attempt).
    pub(super) agent_calls: IndexMap<String, usize>,
    /// Requests to each entry of the `http:` answers so far (its attempt).
    pub(super) fetches: IndexMap<String, usize>,
    /// Turns each `round_robin` ring group has handed out in this run (from
    /// the scenario's `ring_turn`).
    pub(super) turns: IndexMap<String, u64>,
    /// Recordings made, by operation id: their access token and length in seconds.
    pub(super) recorded: IndexMap<String, (String, u32)>,
    /// The URL recordings are downloaded from (`{base}/{operation id}`).
    pub(super) recordings_base: String,
    /// Recordings delivered in process: name and size.
    pub(super) delivered: Vec<(String, usize)>,
    pub(super) next_op: u64,
    pub(super) dtmf: VecDeque<String>,
    pub(super) violations: Vec<String>,
    pub(super) passive: bool,
    pub(super) parties: Vec<Party>,
}

/// Where the in-process simulated Graph says its recordings are (sim-graph
/// over HTTP serves them under its own URL).
pub const DEFAULT_RECORDINGS_BASE: &str = "https://sim-graph.invalid/recordings";

/// How long a caller speaks when the `record` behaviour is `speak`.
const SPOKEN_SECONDS: u32 = 8;

/// The WAV a simulated recording downloads as: 8 kHz, 16-bit mono silence
/// of `seconds` (16,000 bytes a second).
pub fn recording_wav(seconds: u32) -> Vec<u8> {
    let data = seconds * 16_000;
    let mut w = Vec::with_capacity(44 + data as usize);
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + data).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&8_000u32.to_le_bytes());
    w.extend_from_slice(&16_000u32.to_le_bytes());
    w.extend_from_slice(&2u16.to_le_bytes());
    w.extend_from_slice(&16u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&data.to_le_bytes());
    w.resize(44 + data as usize, 0);
    w
}

/// Sequence numbers of what people do start here: they sort after Graph's
/// own happenings at the same instant.
const PERSON_SEQ: u64 = 1 << 62;

pub(super) fn refused(status: u16, code: &str, message: impl Into<String>) -> ControlError {
    ControlError::new(status, code, message)
}

impl World {
    pub(super) fn key(&mut self, at: DateTime<Utc>) -> (DateTime<Utc>, u64) {
        self.seq += 1;
        (at, self.seq)
    }

    pub(super) fn schedule(&mut self, at: DateTime<Utc>, h: Happening) {
        let key = self.key(at);
        self.queue.insert(key, Scheduled::Graph(h));
    }

    /// Schedules what a person does at `at`: after everything Graph does at
    /// the same instant, whenever that was scheduled (so a key pressed or a
    /// hang-up in the studio at some moment replays the same from a scenario).
    pub(super) fn schedule_person(&mut self, at: DateTime<Utc>, h: Happening) {
        self.seq += 1;
        self.queue
            .insert((at, PERSON_SEQ + self.seq), Scheduled::Graph(h));
    }

    /// Schedules what the far end of `call` does by the behaviour, counted
    /// from now: hang up, press keys.
    pub(super) fn schedule_far_end(&mut self, call: &str) {
        let now = self.now;
        if let Some(after) = self.behaviour.hangup {
            self.schedule_person(
                now + after.chrono(),
                Happening::CallerHangsUp {
                    call: call.to_owned(),
                },
            );
        }
        for press in self.behaviour.presses.clone() {
            if let Some(key) = press.key.chars().next() {
                self.schedule_person(
                    now + press.at.chrono(),
                    Happening::Press {
                        call: call.to_owned(),
                        key,
                    },
                );
            }
        }
    }

    /// Schedules what follows a request: offsets in milliseconds from now,
    /// plus the delay fault; the first two swapped with the reorder fault.
    pub(super) fn burst(&mut self, mut items: Vec<(i64, Happening)>) {
        if self.passive {
            return;
        }
        if self.behaviour.reorder && items.len() >= 2 {
            let (a, b) = (items[0].0, items[1].0);
            items[0].0 = b;
            items[1].0 = a;
        }
        let base = self.now
            + self
                .behaviour
                .delay
                .map_or(Duration::zero(), |d| d.chrono());
        for (ms, h) in items {
            self.schedule(base + Duration::milliseconds(ms), h);
        }
    }

    pub(super) fn new_call_id(&mut self) -> String {
        format!("call-{}", self.calls.len() + 1)
    }

    pub(super) fn new_op_id(&mut self) -> String {
        let id = format!("op-{}", self.next_op);
        self.next_op += 1;
        id
    }

    pub(super) fn call_mut(&mut self, id: &str) -> Option<&mut SimCall> {
        self.calls.get_mut(id)
    }

    /// Checks that a request may be sent on `call_id`: the call exists and
    /// has not terminated. A breach is a violation of the engine's promise.
    pub(super) fn live(&mut self, kind: RequestKind, call_id: &str) -> Result<(), ControlError> {
        if let Some(status) = self.behaviour.refusal(kind) {
            return Err(refused(
                status,
                "SimulatedFailure",
                format!("the simulated Graph refuses {kind}"),
            ));
        }
        if self.passive {
            return Ok(());
        }
        match self.calls.get(call_id) {
            None => {
                self.violations.push(format!(
                    "{kind} sent for call {call_id}, which does not exist"
                ));
                Err(graph_errors::call_not_found())
            }
            Some(c) if c.state == CallState::Terminated => {
                self.violations.push(format!(
                    "{kind} sent for call {call_id}, which has terminated"
                ));
                Err(graph_errors::call_not_found())
            }
            Some(_) => Ok(()),
        }
    }

    pub(super) fn state_of(&self, id: &str) -> Option<CallState> {
        self.calls.get(id).map(|c| c.state.clone())
    }

    pub(super) fn happen(&mut self, h: Happening) -> Vec<Value> {
        match h {
            Happening::Recorded(body) => vec![body],
            Happening::State {
                call,
                state,
                result,
                termination_reason,
                replaces_context,
            } => {
                let Some(c) = self.call_mut(&call) else {
                    return Vec::new();
                };
                if c.state == CallState::Terminated {
                    return Vec::new();
                }
                let forward = match (c.state.rank(), state.rank()) {
                    (Some(a), Some(b)) => b >= a || state == CallState::Established,
                    _ => true,
                };
                if forward {
                    c.state = state.clone();
                }
                vec![self.notifier.state(
                    &call,
                    &state,
                    result.as_ref(),
                    termination_reason.as_deref(),
                    replaces_context.as_deref(),
                )]
            }
            Happening::MediaInactive { call } => match self.state_of(&call) {
                Some(s) if s != CallState::Terminated => {
                    vec![self.notifier.media(&call, "inactive")]
                }
                _ => Vec::new(),
            },
            Happening::PromptDone {
                call,
                operation,
                context,
            } => match self.state_of(&call) {
                Some(s) if s != CallState::Terminated => vec![self.notifier.operation(
                    &call,
                    "playPromptOperation",
                    &operation,
                    "completed",
                    context.as_deref(),
                    Some(&SimResult::new(
                        200,
                        0,
                        "Action completed, prompt finished playing",
                    )),
                )],
                _ => Vec::new(),
            },
            Happening::RecordDone {
                call,
                operation,
                context,
                mode,
                seconds,
                full,
            } => self.record_done(&call, &operation, context.as_deref(), mode, seconds, full),
            Happening::InviteDone {
                call,
                operation,
                context,
                joined,
            } => match self.state_of(&call) {
                Some(st) if st != CallState::Terminated => {
                    let (status, result) = if joined {
                        (
                            "completed",
                            SimResult::new(200, 0, "Action completed, participant joined."),
                        )
                    } else {
                        (
                            "failed",
                            SimResult::new(480, 10037, "No callee endpoint found."),
                        )
                    };
                    vec![self.notifier.operation(
                        &call,
                        "inviteParticipantsOperation",
                        &operation,
                        status,
                        context.as_deref(),
                        Some(&result),
                    )]
                }
                _ => Vec::new(),
            },
            Happening::Press { call, key } => {
                let Some(c) = self.call_mut(&call) else {
                    return Vec::new();
                };
                if c.state != CallState::Established || !c.subscribed {
                    return Vec::new();
                }
                c.tone_seq += 1;
                let seq = c.tone_seq;
                vec![self.notifier.tone(&call, key, seq)]
            }
            Happening::CallerHangsUp { call } => {
                let Some(c) = self.call_mut(&call) else {
                    return Vec::new();
                };
                if c.state == CallState::Terminated {
                    return Vec::new();
                }
                c.state = CallState::Terminated;
                vec![self.notifier.state(
                    &call,
                    &CallState::Terminated,
                    Some(&SimResult::new(200, 4097, "The conversation ended")),
                    None,
                    None,
                )]
            }
            Happening::AnswerDeadline { call } => {
                let Some(c) = self.call_mut(&call) else {
                    return Vec::new();
                };
                if c.decided || c.state != CallState::Incoming {
                    return Vec::new();
                }
                c.state = CallState::Terminated;
                vec![self.notifier.state(
                    &call,
                    &CallState::Terminated,
                    Some(&SimResult::new(
                        408,
                        1106,
                        "The call was not answered in time",
                    )),
                    None,
                    None,
                )]
            }
            Happening::Roster { call } => match self.state_of(&call) {
                Some(CallState::Established) => {
                    let others = self.parties.clone();
                    let others = if others.is_empty() {
                        vec![Party::user("112f7296-5fa4-42ca-bae8-6a692b15d4b8")]
                    } else {
                        others
                    };
                    vec![self.notifier.roster(&call, BOT_APP_ID, &others)]
                }
                _ => Vec::new(),
            },
            Happening::LegacyTransfer {
                call,
                operation,
                stage,
                status,
            } => match self.state_of(&call) {
                Some(s) if s != CallState::Terminated => {
                    if let Some(c) = self.call_mut(&call) {
                        c.state = CallState::from_wire(&stage);
                    }
                    vec![
                        self.notifier
                            .legacy_transfer(&call, &operation, &stage, &status),
                    ]
                }
                _ => Vec::new(),
            },
        }
    }

    pub(super) fn state(call: &str, state: CallState) -> Happening {
        Happening::State {
            call: call.to_owned(),
            state,
            result: None,
            termination_reason: None,
            replaces_context: None,
        }
    }

    pub(super) fn ended(call: &str, result: Option<SimResult>, reason: Option<&str>) -> Happening {
        Happening::State {
            call: call.to_owned(),
            state: CallState::Terminated,
            result,
            termination_reason: reason.map(str::to_owned),
            replaces_context: None,
        }
    }

    pub(super) fn decide(&mut self, kind: RequestKind, call_id: &str) -> Result<(), ControlError> {
        self.live(kind, call_id)?;
        if self.passive {
            return Ok(());
        }
        let Some(c) = self.call_mut(call_id) else {
            return Err(graph_errors::call_not_found());
        };
        if c.state != CallState::Incoming || c.decided {
            return Err(refused(
                400,
                "BadRequest",
                format!(
                    "{kind}: call {call_id} is {}, not an unanswered incoming call",
                    c.state
                ),
            ));
        }
        c.decided = true;
        Ok(())
    }

    pub(super) fn established(
        &mut self,
        kind: RequestKind,
        call_id: &str,
    ) -> Result<(), ControlError> {
        self.live(kind, call_id)?;
        if self.passive {
            return Ok(());
        }
        match self.state_of(call_id) {
            // A transfer nobody answers leaves the call `transferring`; the
            // bot may still play to it or transfer it elsewhere.
            Some(CallState::Established | CallState::Hold | CallState::Transferring) => Ok(()),
            Some(s) => Err(refused(
                400,
                "BadRequest",
                format!("{kind}: call {call_id} is {s}, not established"),
            )),
            None => Err(graph_errors::call_not_found()),
        }
    }

    /// Checks a transfer as Graph would: the call is established, the body
    /// within Graph's limits, a phone target reached from an application
    /// instance, and a `replacesCallId` naming a live (established)
    /// consultation call, whose mode it returns.
    pub(super) fn transfer_refusal(
        &mut self,
        call_id: &str,
        body: &TransferRequest,
    ) -> Result<Option<TransferMode>, ControlError> {
        self.established(RequestKind::Transfer, call_id)?;
        body.validate()
            .map_err(|e| graph_errors::bad_request(e.to_string()))?;
        if self.passive {
            return Ok(None);
        }
        let to_phone = body.transfer_target.identity.phone.is_some();
        if to_phone && self.calls.get(call_id).is_some_and(|c| !c.instance) {
            return Err(graph_errors::source_identity_invalid(&format!(
                "call {call_id} reached the bot's application, not an application instance"
            )));
        }
        match &body.transfer_target.replaces_call_id {
            None => Ok(None),
            Some(consult) => match self.calls.get(consult) {
                Some(SimCall {
                    kind: Kind::Consultation(mode),
                    state: CallState::Established,
                    ..
                }) => Ok(Some(*mode)),
                _ => Err(graph_errors::bad_request(format!(
                    "replacesCallId {consult} names no live consultation call"
                ))),
            },
        }
    }

    pub(super) fn transfer(
        &mut self,
        call_id: &str,
        body: &TransferRequest,
    ) -> Result<(), ControlError> {
        let consult_mode = self.transfer_refusal(call_id, body)?;
        let replaces = body.transfer_target.replaces_call_id.clone();
        let mode = match consult_mode {
            Some(mode) => mode,
            None => {
                let mode = self.behaviour.transfer.nth(self.transfers);
                self.transfers += 1;
                mode
            }
        };
        let consultative = replaces.is_some();
        let call = call_id.to_owned();
        let mut items = Vec::new();
        if self.behaviour.legacy {
            let op = self.new_op_id();
            let stage = |stage: &str, status: &str| Happening::LegacyTransfer {
                call: call.clone(),
                operation: op.clone(),
                stage: stage.into(),
                status: status.into(),
            };
            items.push((1000, stage("transferring", "running")));
            match mode {
                TransferMode::Accept => {
                    items.push((2000, stage("transferAccepted", "completed")));
                    items.push((3000, Self::ended(&call, None, Some("AppTransferred"))));
                }
                TransferMode::Fail => items.push((
                    2000,
                    Happening::State {
                        call: call.clone(),
                        state: CallState::Established,
                        result: Some(SimResult::new(500, 7000, "<message>")),
                        termination_reason: None,
                        replaces_context: None,
                    },
                )),
                TransferMode::NoAnswer | TransferMode::Stall => {}
            }
        } else {
            items.push((1000, Self::state(&call, CallState::Transferring)));
            match mode {
                TransferMode::Accept => {
                    let (accepted, media) = if self.behaviour.media_first {
                        (2000, 1500)
                    } else {
                        (2000, 2500)
                    };
                    items.push((accepted, Self::state(&call, CallState::TransferAccepted)));
                    items.push((media, Happening::MediaInactive { call: call.clone() }));
                    items.sort_by_key(|(ms, _)| *ms);
                    if consultative {
                        items.push((3000, Self::ended(&call, None, Some("AppTransferred"))));
                    } else {
                        items.push((
                            3000,
                            Self::ended(
                                &call,
                                Some(SimResult::new(0, 7015, "GracefulTransferCompleted")),
                                None,
                            ),
                        ));
                    }
                }
                TransferMode::Fail => items.push((
                    2000,
                    Happening::State {
                        call: call.clone(),
                        state: CallState::Established,
                        result: Some(SimResult::new(
                            500,
                            if consultative { 7700 } else { 7000 },
                            "<message>",
                        )),
                        termination_reason: None,
                        replaces_context: consultative.then(|| "<replacesContext>".to_owned()),
                    },
                )),
                TransferMode::NoAnswer | TransferMode::Stall => {}
            }
        }
        if let (Some(consult), TransferMode::Accept) = (&replaces, mode) {
            items.push((3000, Self::ended(consult, None, Some("AppTransferred"))));
        }
        self.burst(items);
        Ok(())
    }

    pub(super) fn create_call(&mut self, body: &Call) -> Result<Call, ControlError> {
        if let Some(status) = self.behaviour.refusal(RequestKind::CreateCall) {
            return Err(refused(
                status,
                "SimulatedFailure",
                "the simulated Graph refuses create_call",
            ));
        }
        let meeting = body.meeting_info.is_some();
        let targets = body.targets.as_deref().unwrap_or_default();
        if !meeting && targets.is_empty() {
            return Err(refused(
                400,
                "BadRequest",
                "a call needs targets or a meeting",
            ));
        }
        if targets.iter().any(|t| t.identity.is_empty()) {
            return Err(refused(400, "BadRequest", "a target has an empty identity"));
        }
        if body
            .tenant_id
            .as_deref()
            .is_none_or(|t| t.trim().is_empty())
        {
            return Err(graph_errors::tenant_mismatch());
        }
        if targets.len() > MAX_GROUP_TARGETS {
            return Err(graph_errors::bad_request(format!(
                "a group call takes at most {MAX_GROUP_TARGETS} targets, not {}",
                targets.len()
            )));
        }
        let instance = body
            .source
            .as_ref()
            .is_some_and(|s| s.identity.application_instance.is_some());
        if !instance && targets.iter().any(|t| t.identity.phone.is_some()) {
            return Err(graph_errors::source_identity_invalid(
                "the call's source is not an application instance",
            ));
        }
        let id = self.new_call_id();
        let first = self.calls.is_empty();
        let live_main = self
            .calls
            .values()
            .any(|c| c.kind == Kind::Incoming && c.state != CallState::Terminated);
        let agent = self.agent_mode(targets);
        let kind = if meeting {
            Kind::Meeting
        } else if live_main {
            let mode = match agent {
                Some(AgentMode::NoAnswer | AgentMode::Busy) => TransferMode::NoAnswer,
                Some(AgentMode::Answer) | None => {
                    let mode = self.behaviour.transfer.nth(self.transfers);
                    self.transfers += 1;
                    mode
                }
            };
            Kind::Consultation(mode)
        } else {
            Kind::Outgoing
        };
        self.calls.insert(
            id.clone(),
            SimCall::new(kind.clone(), CallState::Establishing, true, instance),
        );
        let mut items = vec![(500, Self::state(&id, CallState::Establishing))];
        let answers = match &kind {
            Kind::Meeting => {
                let mode = self.behaviour.join.nth(self.joins);
                self.joins += 1;
                match mode {
                    JoinMode::Accept => {
                        items.push((2500, Happening::Roster { call: id.clone() }));
                        true
                    }
                    JoinMode::Fail => {
                        items.push((
                            2000,
                            Self::ended(
                                &id,
                                Some(SimResult::new(
                                    403,
                                    2507,
                                    "The bot may not join this meeting",
                                )),
                                None,
                            ),
                        ));
                        false
                    }
                }
            }
            Kind::Consultation(TransferMode::NoAnswer) => {
                if agent == Some(AgentMode::Busy) {
                    items.push((
                        1000,
                        Self::ended(&id, Some(SimResult::new(486, 0, "Busy here")), None),
                    ));
                }
                false
            }
            Kind::Consultation(_) => true,
            Kind::Outgoing | Kind::Incoming => {
                let mode = self.behaviour.call.nth(self.outgoing);
                self.outgoing += 1;
                match mode {
                    CallMode::Answer => true,
                    CallMode::NoAnswer => false,
                    CallMode::Unreachable => {
                        items.push((
                            2000,
                            Self::ended(
                                &id,
                                Some(SimResult::new(480, 10037, "No callee endpoint found")),
                                None,
                            ),
                        ));
                        false
                    }
                }
            }
        };
        if answers {
            items.push((2000, Self::state(&id, CallState::Established)));
            items.sort_by_key(|(ms, _)| *ms);
        }
        self.burst(items);
        if first {
            // The far end of the bot's first call hangs up (or the meeting
            // ends), and presses keys.
            self.schedule_far_end(&id);
        }
        let mut created = body.clone();
        created.id = Some(id);
        created.state = Some(CallState::Establishing);
        created.direction = Some(CallDirection::Outgoing);
        Ok(created)
    }

    /// How the person `targets` names answers, if the `agents` behaviour
    /// lists them (by phone number or user id); counts the call.
    fn agent_mode(
        &mut self,
        targets: &[crate::graph::wire::InvitationParticipantInfo],
    ) -> Option<AgentMode> {
        let identity = &targets.first()?.identity;
        let id = identity
            .phone
            .as_ref()
            .or(identity.user.as_ref())
            .map(|i| i.id.clone())?;
        let modes = self.behaviour.agents.get(&id)?.clone();
        let n = self.agent_calls.entry(id).or_insert(0);
        let mode = modes.nth(*n);
        *n += 1;
        Some(mode)
    }

    pub(super) fn play_prompt(
        &mut self,
        call_id: &str,
        body: &PlayPromptRequest,
    ) -> Result<CommsOperation, ControlError> {
        self.established(RequestKind::PlayPrompt, call_id)?;
        body.validate()
            .map_err(|e| refused(400, "BadRequest", e.to_string()))?;
        let op = self.new_op_id();
        let length = self.behaviour.prompt_length().chrono()
            * i32::try_from(body.prompts.len()).unwrap_or(1);
        let ms = length.num_milliseconds();
        let mut items = vec![(
            ms,
            Happening::PromptDone {
                call: call_id.to_owned(),
                operation: op.clone(),
                context: body.client_context.clone(),
            },
        )];
        let subscribed = self.calls.get(call_id).is_some_and(|c| c.subscribed);
        if subscribed
            && !self.passive
            && let Some(keys) = self.dtmf.pop_front()
        {
            // Several keys (a `collect`): one a second after the prompt ends.
            for (n, key) in (1i64..).zip(keys.chars()) {
                items.push((
                    ms + 1000 * n,
                    Happening::Press {
                        call: call_id.to_owned(),
                        key,
                    },
                ));
            }
        }
        // Prompt ends and key presses are people, not notifications: never reordered.
        if !self.passive {
            let base = self.now
                + self
                    .behaviour
                    .delay
                    .map_or(Duration::zero(), |d| d.chrono());
            for (ms, h) in items {
                self.schedule(base + Duration::milliseconds(ms), h);
            }
        }
        let status = if self.passive {
            OperationStatus::Completed
        } else {
            OperationStatus::Running
        };
        Ok(CommsOperation {
            id: op,
            status: Some(status),
            client_context: body.client_context.clone(),
            ..CommsOperation::default()
        })
    }

    pub(super) fn record_response(
        &mut self,
        call_id: &str,
        body: &RecordResponseRequest,
    ) -> Result<CommsOperation, ControlError> {
        self.established(RequestKind::RecordResponse, call_id)?;
        body.validate()
            .map_err(|e| refused(400, "BadRequest", e.to_string()))?;
        let op = self.new_op_id();
        let mode = self.behaviour.record.nth(self.recordings);
        self.recordings += 1;
        let prompt_ms = self.behaviour.prompt_length().chrono().num_milliseconds()
            * i64::try_from(body.prompts.len()).unwrap_or(1);
        let max = body.max_record_duration_in_seconds.unwrap_or(5);
        let (seconds, after_ms) = match mode {
            RecordMode::Speak => {
                let spoken = SPOKEN_SECONDS.min(max);
                let pause = if spoken < max {
                    body.max_silence_timeout_in_seconds.unwrap_or(5)
                } else {
                    0
                };
                (spoken, i64::from(spoken + pause) * 1000)
            }
            RecordMode::Silent => (
                0,
                i64::from(body.initial_silence_timeout_in_seconds.unwrap_or(5)) * 1000,
            ),
            RecordMode::Fail => (0, 1000),
        };
        if !self.passive {
            let base = self.now
                + self
                    .behaviour
                    .delay
                    .map_or(Duration::zero(), |d| d.chrono());
            self.schedule(
                base + Duration::milliseconds(prompt_ms + after_ms),
                Happening::RecordDone {
                    call: call_id.to_owned(),
                    operation: op.clone(),
                    context: body.client_context.clone(),
                    mode,
                    seconds,
                    full: mode == RecordMode::Speak && seconds == max,
                },
            );
        }
        Ok(CommsOperation {
            id: op,
            status: Some(OperationStatus::Running),
            client_context: body.client_context.clone(),
            ..CommsOperation::default()
        })
    }

    /// The notification of a finished recording, and its token kept for the download.
    pub(super) fn record_done(
        &mut self,
        call: &str,
        operation: &str,
        context: Option<&str>,
        mode: RecordMode,
        seconds: u32,
        full: bool,
    ) -> Vec<serde_json::Value> {
        match self.state_of(call) {
            Some(s) if s != CallState::Terminated => {}
            _ => return Vec::new(),
        }
        let (status, result, reason, recording) = match mode {
            RecordMode::Speak => {
                let token = format!("sim-recording-token-{operation}");
                self.recorded
                    .insert(operation.to_owned(), (token.clone(), seconds));
                let location = format!("{}/{operation}", self.recordings_base);
                let (result, reason) = if full {
                    (
                        SimResult::new(200, 8515, "Action completed, max record duration reached."),
                        "maxRecordDurationReached",
                    )
                } else {
                    (
                        SimResult::new(200, 0, "Action completed, max silence timeout reached."),
                        "maxSilenceTimeout",
                    )
                };
                ("completed", result, reason, Some((location, token)))
            }
            RecordMode::Silent => (
                "completed",
                SimResult::new(200, 8516, "Action completed, initial silence timeout."),
                "initialSilenceTimeout",
                None,
            ),
            RecordMode::Fail => (
                "failed",
                SimResult::new(500, 8517, "Action failed, unspecified error."),
                "unspecifiedError",
                None,
            ),
        };
        vec![self.notifier.record_operation(
            call,
            operation,
            status,
            context,
            &result,
            reason,
            recording.as_ref().map(|(l, t)| (l.as_str(), t.as_str())),
        )]
    }

    /// The audio of a recording, for the bearer of its token.
    pub(super) fn download_recording(
        &self,
        location: &str,
        access_token: &str,
    ) -> Result<Vec<u8>, ControlError> {
        let id = location
            .strip_prefix(self.recordings_base.as_str())
            .and_then(|rest| rest.strip_prefix('/'))
            .ok_or_else(|| refused(404, "NotFound", format!("no recording at {location}")))?;
        match self.recorded.get(id) {
            Some((token, seconds)) if token == access_token => Ok(recording_wav(*seconds)),
            Some(_) => Err(refused(401, "Unauthorized", "wrong recording access token")),
            None => Err(refused(
                404,
                "NotFound",
                format!("no recording at {location}"),
            )),
        }
    }

    pub(super) fn invite(
        &mut self,
        call_id: &str,
        body: &InviteParticipantsRequest,
    ) -> Result<CommsOperation, ControlError> {
        self.established(RequestKind::Invite, call_id)?;
        body.validate()
            .map_err(|e| refused(400, "BadRequest", e.to_string()))?;
        let id = self.new_op_id();
        if self.passive {
            return Ok(CommsOperation {
                id,
                status: Some(OperationStatus::Completed),
                client_context: body.client_context.clone(),
                ..CommsOperation::default()
            });
        }
        let mode = self.behaviour.invite.nth(self.invites);
        self.invites += 1;
        if mode != InviteMode::NoAnswer {
            let at = self.now
                + Duration::seconds(3)
                + self
                    .behaviour
                    .delay
                    .map_or(Duration::zero(), |d| d.chrono());
            self.schedule(
                at,
                Happening::InviteDone {
                    call: call_id.to_owned(),
                    operation: id.clone(),
                    context: body.client_context.clone(),
                    joined: mode == InviteMode::Accept,
                },
            );
        }
        Ok(CommsOperation {
            id,
            status: Some(OperationStatus::Running),
            client_context: body.client_context.clone(),
            ..CommsOperation::default()
        })
    }

    /// What the designer's service answers `request`, as the scenario's
    /// `http:` section says: the first entry whose URL (or `METHOD URL`)
    /// matches, attempt by attempt; `404` when none does.
    pub(super) fn fetch(
        &mut self,
        request: &crate::engine::fetch::FetchRequest,
    ) -> Result<crate::engine::fetch::FetchAnswer, ControlError> {
        use crate::engine::fetch::FetchAnswer;
        let method = request.method.as_str();
        let found = self.behaviour.http.iter().find(|(pattern, _)| {
            let (m, url) = match pattern.split_once(' ') {
                Some((m, url))
                    if m.eq_ignore_ascii_case("GET") || m.eq_ignore_ascii_case("POST") =>
                {
                    (Some(m), url.trim())
                }
                _ => (None, pattern.as_str()),
            };
            m.is_none_or(|m| m.eq_ignore_ascii_case(method))
                && crate::flow::Pattern {
                    text: url.to_owned(),
                    span: crate::flow::span::Span::default(),
                }
                .matches(&request.url)
        });
        let Some((pattern, answers)) = found else {
            return Ok(FetchAnswer {
                status: 404,
                body: serde_json::json!({
                    "error": format!("the scenario's http: section has no answer for {method} {}", request.url)
                }),
            });
        };
        let n = self.fetches.entry(pattern.clone()).or_insert(0);
        let answer = answers.nth_cloned(*n);
        *n += 1;
        let late = answer.delay.is_some_and(|d| d.0 >= request.timeout());
        if answer.timeout || late {
            return Err(ControlError::new(
                0,
                "Timeout",
                format!("{method} {}: no answer in time", request.url),
            ));
        }
        if answer.unreachable {
            return Err(ControlError::new(
                0,
                "Transport",
                format!("{method} {}: connection refused", request.url),
            ));
        }
        Ok(FetchAnswer {
            status: answer.status,
            body: answer.body,
        })
    }

    /// The next turn of ring group `group`: the scenario's `ring_turn` for
    /// its first, one more for each later one in the same run.
    pub(super) fn take_turn(&mut self, group: &str) -> u64 {
        let first = self.behaviour.ring_turn;
        let count = self.turns.entry(group.to_owned()).or_insert(first);
        let turn = *count;
        *count += 1;
        turn
    }

    /// `cancelMediaProcessing`: the prompts still playing on the call end
    /// now (their operations complete at once); a `subscribeToTone` is not
    /// touched.
    pub(super) fn cancel_media_processing(
        &mut self,
        call_id: &str,
        body: &crate::graph::wire::CancelMediaProcessingRequest,
    ) -> Result<CommsOperation, ControlError> {
        self.established(RequestKind::CancelMediaProcessing, call_id)?;
        let playing: Vec<(DateTime<Utc>, u64)> = self
            .queue
            .iter()
            .filter(|(_, s)| {
                matches!(s, Scheduled::Graph(Happening::PromptDone { call, .. }) if call == call_id)
            })
            .map(|(k, _)| *k)
            .collect();
        for key in playing {
            if let Some(Scheduled::Graph(h)) = self.queue.remove(&key) {
                self.schedule(self.now, h);
            }
        }
        Ok(CommsOperation {
            id: self.new_op_id(),
            status: Some(OperationStatus::Completed),
            client_context: body.client_context.clone(),
            ..CommsOperation::default()
        })
    }
}
