//! How a session reacts to each event, and Graph's quirks.
//!
//! [`Run::react`] applies one event to the session and gives the
//! transition the current step takes, if any. Graph's quirks are handled
//! here: states only move forward (`establishing` after `established` is
//! stale), except `established` after `transferring`/`transferAccepted`
//! (a failed transfer, 500/7000 or 500/7700); a duplicate changes nothing;
//! `transferAccepted` may come before or after the media goes inactive; a
//! transfer completes with 7015 or `AppTransferred`; the old beta reports
//! transfers as operations with text subcodes; a call Graph reports
//! terminated gets no further request. Nothing here does I/O.

use crate::flow::actions::menu;
use crate::flow::{Action, Trigger};
use crate::graph::wire::{
    CallDirection, CallState, Code, CommsOperation, OperationStatus, ResultInfo,
};

use super::command::{CommandId, RequestKind};
use super::event::{Event, IncomingCall, OperationUpdate, StateChange};
use super::leg::ToneOrder;
use super::run::{Progress, Run, Transition};
use super::session::{EventJson, Leg, LegRole, Outcome, PendingRequest, Waiting};
use super::timeline::Entry;

/// Most ids of calls reported terminated before the session knew them.
const MAX_EARLY_TERMINATED: usize = 16;

/// What applying a state change did.
enum Applied {
    /// Nothing: a duplicate or a stale state.
    Ignored(String),
    /// The state changed.
    Changed {
        /// The call came back to `established` after a transfer: it failed.
        transfer_failed: bool,
    },
}

fn describe_result(r: Option<&ResultInfo>) -> String {
    let Some(r) = r else {
        return String::new();
    };
    let code = |c: &Option<Code>| c.as_ref().map(ToString::to_string);
    let mut out = String::new();
    match (code(&r.code), code(&r.subcode)) {
        (Some(c), Some(s)) => out.push_str(&format!(" {c}/{s}")),
        (Some(c), None) => out.push_str(&format!(" {c}")),
        (None, Some(s)) => out.push_str(&format!(" -/{s}")),
        (None, None) => {}
    }
    if let Some(m) = &r.message {
        out.push_str(&format!(" {m}"));
    }
    out
}

fn is_error_result(r: Option<&ResultInfo>) -> bool {
    r.and_then(ResultInfo::code_number)
        .is_some_and(|c| c >= 400)
}

/// Whether a terminated call's details say a transfer completed.
fn says_transferred(change: &StateChange) -> bool {
    change
        .result
        .as_ref()
        .and_then(ResultInfo::subcode_number)
        .is_some_and(|s| s == 7015)
        || change
            .termination_reason
            .as_deref()
            .is_some_and(|r| r.eq_ignore_ascii_case("AppTransferred"))
}

/// What the reactions need to know of the current step's action, beyond
/// what it waits for. One exhaustive `match`: a new action says its own.
#[derive(Clone, Copy, Default)]
struct ActionRules {
    /// The caller being transferred away is what the action is for: the
    /// run goes on to its `next`.
    transfers_the_call: bool,
    /// A call it placed that is not established in time is its
    /// `on_timeout` (a `call` that rings out), not a failure.
    unanswered_is_timeout: bool,
}

fn rules(action: &Action) -> ActionRules {
    let none = ActionRules::default();
    match action {
        Action::Transfer(_) | Action::ConsultativeTransfer(_) | Action::RingGroup(_) => {
            ActionRules {
                transfers_the_call: true,
                ..none
            }
        }
        Action::Call(_) => ActionRules {
            unanswered_is_timeout: true,
            ..none
        },
        Action::Answer(_)
        | Action::Reject(_)
        | Action::Redirect(_)
        | Action::JoinMeeting(_)
        | Action::Play(_)
        | Action::Menu(_)
        | Action::Collect(_)
        | Action::Record(_)
        | Action::Invite(_)
        | Action::Fetch(_)
        | Action::Switch(_)
        | Action::Set(_)
        | Action::Log(_)
        | Action::Hangup(_)
        | Action::Wait(_) => none,
    }
}

impl Run<'_> {
    /// Records an event in the timeline, in a few words.
    pub(crate) fn record_event(&mut self, event: &Event) {
        let text = match event {
            Event::IncomingCall(c) => format!(
                "incoming call {} from {} to {}",
                c.call_id,
                c.from.label(),
                c.to.label()
            ),
            Event::ApiStart { params } => {
                format!("api start {}", serde_json::Value::Object(params.clone()))
            }
            Event::CallState(c) => {
                let mut t = format!(
                    "{}: {}{}",
                    self.call_label(&c.call_id),
                    c.state,
                    describe_result(c.result.as_ref())
                );
                if let Some(r) = &c.termination_reason {
                    t.push_str(&format!(" ({r})"));
                }
                t
            }
            Event::Tone {
                call_id,
                key,
                sequence_id,
            } => {
                // A repeated press (Graph's duplicates, which may come after
                // a secret collect has moved on) is shown masked: it tells
                // nothing new, and may be a PIN's.
                let repeat = sequence_id.is_some_and(|n| {
                    self.s
                        .leg_index(call_id)
                        .is_some_and(|i| self.s.legs[i].tone_order(n) == ToneOrder::Repeat)
                });
                let key = if repeat || self.collecting_secret() {
                    "•".to_owned()
                } else {
                    key.map_or_else(|| "?".to_owned(), |k| k.to_string())
                };
                match sequence_id {
                    Some(n) => format!("{}: key {key} (#{n})", self.call_label(call_id)),
                    None => format!("{}: key {key}", self.call_label(call_id)),
                }
            }
            Event::Operation(o) => format!(
                "{}: operation {} {}{}",
                self.call_label(&o.call_id),
                o.operation_id.as_deref().unwrap_or("?"),
                o.status.as_ref().map_or("updated", |s| s.as_str()),
                describe_result(o.result.as_ref())
            ),
            Event::Roster {
                call_id,
                participants,
            } => format!(
                "{}: roster of {}",
                self.call_label(call_id),
                participants.iter().filter(|p| !p.removed).count()
            ),
            Event::Media { call_id, audio } => {
                format!("{}: audio {audio}", self.call_label(call_id))
            }
            Event::TimerFired { timer } => format!("{timer} fired"),
            Event::Resumed => super::RESUMED.to_owned(),
            Event::CallerHungUp { call_id } => {
                format!("{}: the far end hung up", self.call_label(call_id))
            }
            Event::CallCreated { tag, call_id } => format!("{tag} created as {call_id}"),
            Event::Accepted { command, operation } => match operation {
                Some(op) => format!(
                    "{} accepted: operation {} {}",
                    self.request_name(*command),
                    op.id,
                    op.status.as_ref().map_or("started", |s| s.as_str())
                ),
                None => return,
            },
            Event::RecordingSaved {
                location,
                bytes,
                duration_seconds,
                ..
            } => format!("recording saved: {location} ({bytes} bytes, {duration_seconds}s)"),
            Event::Fetched { answer, .. } => format!("the service answered {}", answer.status),
            // The step's note says which target the turn starts at.
            Event::Turn { .. } | Event::RequestFailed { .. } | Event::Fault { .. } => return,
        };
        self.entry(Entry::Event(text));
    }

    /// Whether the current step is a `collect` with `secret: true`.
    fn collecting_secret(&self) -> bool {
        self.current()
            .is_some_and(|s| matches!(&s.action, Action::Collect(c) if c.secret))
    }

    fn request_name(&self, command: CommandId) -> String {
        self.s
            .pending
            .iter()
            .find(|p| p.command == command)
            .map_or_else(|| format!("request {command}"), |p| p.kind.to_string())
    }

    /// Applies an event; gives the transition the current step takes.
    pub(crate) fn react(&mut self, event: Event) -> Option<Transition> {
        match event {
            Event::IncomingCall(c) => self.incoming(c),
            Event::ApiStart { params } => self.api_start(params),
            Event::CallState(c) => self.state_change(c),
            Event::CallerHungUp { call_id } => {
                self.state_change(StateChange::new(call_id, CallState::Terminated))
            }
            Event::Tone {
                call_id,
                key,
                sequence_id,
            } => self.tone(&call_id, key, sequence_id),
            Event::Operation(o) => self.operation(o),
            Event::Roster {
                call_id,
                participants,
            } => {
                if let Some(i) = self.s.leg_index(&call_id) {
                    let n = participants.iter().filter(|p| !p.removed).count();
                    self.s.legs[i].roster = u32::try_from(n).unwrap_or(u32::MAX);
                }
                None
            }
            Event::Media { .. } => None,
            Event::TimerFired { timer } => {
                if self.s.timer.map(|t| t.id) != Some(timer) {
                    self.note(format!("{timer} is no longer awaited"));
                    return None;
                }
                self.s.timer = None;
                self.timer_fired()
            }
            Event::Resumed => self.resumed(),
            Event::CallCreated { tag, call_id } => self.call_created(&tag, call_id),
            Event::Accepted { command, operation } => self.accepted(command, operation),
            Event::RecordingSaved {
                command,
                location,
                bytes,
                duration_seconds,
            } => {
                self.take_pending(command);
                match self.s.waiting {
                    Waiting::SaveRecording { command: c } if c == command => {
                        self.recording_saved(location, bytes, duration_seconds)
                    }
                    _ => None,
                }
            }
            Event::Fetched { command, answer } => {
                self.take_pending(command);
                self.fetched(command, answer)
            }
            Event::Turn { command, turn } => {
                self.take_pending(command);
                self.ring_turn(command, turn)
            }
            Event::RequestFailed {
                command,
                status,
                code,
                message,
            } => self.request_failed(command, status, &code, &message),
            // Handled before reactions (`Run::handle`).
            Event::Fault { .. } => None,
        }
    }

    // ----- starts ---------------------------------------------------------

    fn incoming(&mut self, c: IncomingCall) -> Option<Transition> {
        if self.s.is_started() {
            if self.s.leg_index(&c.call_id).is_some() {
                self.note("duplicate incoming call: ignored");
            } else {
                self.note("another incoming call: not this session's");
            }
            return None;
        }
        let mut leg = Leg::new("main", LegRole::Main);
        leg.call_id = Some(c.call_id);
        leg.state = Some(CallState::Incoming);
        leg.direction = Some(CallDirection::Incoming);
        leg.from = c.from;
        leg.to = c.to;
        self.s.add_leg(leg, true);
        self.s.started_at = Some(self.now);
        self.s.incoming_at = Some(self.now);
        if !c.raw.is_null() {
            self.s.last_event = EventJson::new(&c.raw);
        }
        Some(Transition::Goto(self.flow.start, "start".into()))
    }

    fn api_start(
        &mut self,
        given: serde_json::Map<String, serde_json::Value>,
    ) -> Option<Transition> {
        if self.s.is_started() {
            self.note("the run has already started");
            return None;
        }
        self.s.started_at = Some(self.now);
        let mut missing = Vec::new();
        if let Trigger::Api { params } = &self.flow.trigger {
            for (name, p) in params {
                match (given.get(name), &p.default) {
                    (Some(v), _) => {
                        self.s.params.insert(name.clone(), v.clone());
                    }
                    (None, Some(d)) => {
                        self.s.params.insert(name.clone(), d.clone());
                    }
                    (None, None) if p.required => missing.push(name.clone()),
                    (None, None) => {}
                }
            }
        }
        for (k, v) in given {
            self.s.params.entry(k).or_insert(v);
        }
        if !missing.is_empty() {
            return Some(Transition::Failure(format!(
                "the start lacks required parameters: {}",
                missing.join(", ")
            )));
        }
        Some(Transition::Goto(self.flow.start, "start".into()))
    }

    // ----- call states ----------------------------------------------------

    fn state_change(&mut self, change: StateChange) -> Option<Transition> {
        let Some(i) = self.s.leg_index(&change.call_id) else {
            if !self.s.is_started() {
                // A state_change flow (or a replay that starts mid-call): adopt the call.
                let mut leg = Leg::new("main", LegRole::Main);
                leg.call_id = Some(change.call_id.clone());
                leg.state = Some(change.state.clone());
                leg.result = change.result.clone();
                leg.termination_reason = change.termination_reason.clone();
                leg.direction = change.direction.clone();
                self.s.add_leg(leg, true);
                self.s.started_at = Some(self.now);
                if !change.raw.is_null() {
                    self.s.last_event = EventJson::new(&change.raw);
                }
                if change.state == CallState::Terminated {
                    self.end(
                        Outcome::CallerHungUp,
                        Some("the call had already ended".into()),
                    );
                    return None;
                }
                return Some(Transition::Goto(self.flow.start, "start".into()));
            }
            if change.state == CallState::Terminated {
                if self.s.early_terminated.len() >= MAX_EARLY_TERMINATED {
                    self.s.early_terminated.remove(0);
                }
                self.s.early_terminated.push(change.call_id.clone());
            }
            self.note(format!(
                "call {} is not known to this session",
                change.call_id
            ));
            return None;
        };
        let transfer_failed = match self.apply_state(i, &change) {
            Applied::Ignored(why) => {
                self.note(why);
                return None;
            }
            Applied::Changed { transfer_failed } => transfer_failed,
        };
        if !change.raw.is_null() {
            self.s.last_event = EventJson::new(&change.raw);
        }
        if self.s.legs[i].role == LegRole::Main {
            let flow = self.flow;
            if let Some(ops) = flow.on_state.get(change.state.as_str()) {
                let terminated = change.state == CallState::Terminated;
                let goto = self.run_handler(ops, change.state.as_str(), !terminated);
                if self.s.is_ended() && !terminated {
                    return None;
                }
                if let Some(id) = goto {
                    self.leave_step();
                    return Some(Transition::Goto(id, format!("on.{}", change.state)));
                }
            }
        }
        self.react_state(i, &change, transfer_failed)
    }

    /// Applies a state to a leg, if it moves forward.
    fn apply_state(&mut self, i: usize, change: &StateChange) -> Applied {
        let leg = &mut self.s.legs[i];
        if leg.is_terminated() {
            return Applied::Ignored(format!(
                "{}: already terminated; {} ignored",
                leg.tag, change.state
            ));
        }
        let new = &change.state;
        if leg.state.as_ref() == Some(new)
            && (change.result.is_none() || leg.result == change.result)
            && (change.termination_reason.is_none()
                || leg.termination_reason == change.termination_reason)
        {
            return Applied::Ignored(format!("{}: duplicate {new} ignored", leg.tag));
        }
        let current_rank = leg.state.as_ref().and_then(CallState::rank);
        let mut transfer_failed = false;
        match new {
            CallState::Transferring | CallState::TransferAccepted => {
                let Some(t) = leg.transfer.as_mut() else {
                    return Applied::Ignored(format!(
                        "{}: {new} without a transfer in progress: stale, ignored",
                        leg.tag
                    ));
                };
                if *new == CallState::Transferring && (t.transferring || t.accepted)
                    || *new == CallState::TransferAccepted && t.accepted
                {
                    return Applied::Ignored(format!("{}: late {new} ignored", leg.tag));
                }
                t.transferring = true;
                t.accepted |= *new == CallState::TransferAccepted;
            }
            CallState::Established | CallState::Hold
                if leg.transfer.is_some()
                    && (matches!(
                        leg.state,
                        Some(CallState::Transferring | CallState::TransferAccepted)
                    ) || is_error_result(change.result.as_ref())) =>
            {
                transfer_failed = true;
            }
            _ => {
                if let (Some(c), Some(n)) = (current_rank, new.rank())
                    && n < c
                {
                    return Applied::Ignored(format!(
                        "{}: {new} after {}: stale, ignored",
                        leg.tag,
                        leg.state.as_ref().map_or("?", |s| s.as_str())
                    ));
                }
            }
        }
        if leg.state.as_ref() != Some(new) || change.result.is_some() {
            leg.result = change.result.clone();
        }
        if change.termination_reason.is_some() {
            leg.termination_reason = change.termination_reason.clone();
        }
        leg.state = Some(new.clone());
        Applied::Changed { transfer_failed }
    }

    /// Leaves the current step for a handler's `goto`: its timer and any
    /// consultation call it placed go.
    fn leave_step(&mut self) {
        self.cancel_timer();
        self.ring_stop();
        let waiting = std::mem::take(&mut self.s.waiting);
        if let Waiting::ConsultAnswer { consult }
        | Waiting::ConsultAnnounce { consult, .. }
        | Waiting::ConsultTransfer { consult } = waiting
        {
            self.hang_up(consult);
        }
    }

    fn react_state(
        &mut self,
        i: usize,
        change: &StateChange,
        transfer_failed: bool,
    ) -> Option<Transition> {
        let role = self.s.legs[i].role;
        let state = change.state.clone();
        if state == CallState::Terminated {
            let placed = self.s.legs[i].direction == Some(CallDirection::Outgoing);
            let awaited = matches!(self.s.waiting, Waiting::Established { leg } if leg == i);
            if role == LegRole::Main && !(placed && awaited) {
                if placed && self.outlives_call() {
                    let tag = self.s.legs[i].tag.clone();
                    self.note(format!(
                        "{tag} ended; the run goes on without a call{}",
                        describe_result(change.result.as_ref())
                    ));
                    return None;
                }
                self.main_terminated(i, change);
                return None;
            }
            return match self.s.waiting.clone() {
                Waiting::Established { leg } if leg == i => {
                    let tag = self.s.legs[i].tag.clone();
                    Some(Transition::Failure(format!(
                        "{tag} ended before it was established:{}",
                        describe_result(change.result.as_ref())
                    )))
                }
                Waiting::ConsultAnswer { consult } | Waiting::ConsultAnnounce { consult, .. }
                    if consult == i =>
                {
                    Some(Transition::Failure(format!(
                        "the transfer target did not take the consultation call:{}",
                        describe_result(change.result.as_ref())
                    )))
                }
                Waiting::RingGroup(_) if self.ring_attempt(i) => {
                    self.ring_attempt_ended(i);
                    None
                }
                _ => None,
            };
        }
        if transfer_failed {
            self.s.legs[i].transfer = None;
            let why = format!(
                "the transfer failed:{}",
                describe_result(change.result.as_ref())
            );
            return match self.s.waiting.clone() {
                Waiting::Transfer { leg } if leg == i => Some(Transition::Failure(why)),
                Waiting::ConsultTransfer { consult } => {
                    self.hang_up(consult);
                    Some(Transition::Failure(why))
                }
                _ => {
                    self.note("a transfer failed after its step was left");
                    None
                }
            };
        }
        match (state, self.s.waiting.clone()) {
            (CallState::Established, Waiting::Established { leg }) if leg == i => {
                Some(Transition::Next)
            }
            (CallState::Established, Waiting::ConsultAnswer { consult }) if consult == i => {
                self.cancel_timer();
                self.consult_answered(consult)
            }
            (CallState::Established, Waiting::RingGroup(_)) if self.ring_attempt(i) => {
                self.ring_answered(i)
            }
            (CallState::Redirecting, Waiting::Redirect { .. }) if role == LegRole::Main => {
                self.end(Outcome::Redirected, None);
                None
            }
            (s, Waiting::State { state }) if role == LegRole::Main && s == state => {
                Some(Transition::Next)
            }
            _ => None,
        }
    }

    /// Whether the run goes on when its main call ends now: an `api` flow
    /// (which places its calls) at a step that needs no call, a `wait` for
    /// a time, `switch`, `set` or `log`; from there it may `call` again.
    fn outlives_call(&self) -> bool {
        matches!(self.flow.trigger, Trigger::Api { .. })
            && !self.s.is_ended()
            && self.current().is_some_and(|s| s.action.outlives_call())
    }

    /// The main call is gone: decide how the run ended.
    fn main_terminated(&mut self, i: usize, change: &StateChange) {
        let transfer = self.s.legs[i].transfer.clone();
        let transferred = says_transferred(change) || transfer.as_ref().is_some_and(|t| t.accepted);
        if self.s.is_ended() {
            if transferred && self.s.outcome() != Some(Outcome::Transferred) {
                self.note("the call was transferred after the run ended");
            }
            return;
        }
        let redirecting = matches!(self.s.waiting, Waiting::Redirect { .. });
        let awaited = self.s.waiting
            == Waiting::State {
                state: CallState::Terminated,
            };
        let outcome = if transferred {
            Outcome::Transferred
        } else if redirecting {
            Outcome::Redirected
        } else if self.s.legs[i].meeting {
            Outcome::Joined
        } else {
            Outcome::CallerHungUp
        };
        if !transferred {
            // Nobody may be left in a call with the bot.
            for leg in 0..self.s.legs.len() {
                if leg != i {
                    self.hang_up(leg);
                }
            }
        }
        let reason = (!transferred && !redirecting && !awaited)
            .then(|| format!("the call ended{}", describe_result(change.result.as_ref())));
        self.end(outcome, reason.filter(|r| r != "the call ended"));
        let has_next = self.current().is_some_and(|s| {
            s.next.is_some() && (awaited || transferred && rules(&s.action).transfers_the_call)
        });
        if has_next {
            self.follow(Transition::Next);
        }
    }

    // ----- keys -----------------------------------------------------------

    fn tone(
        &mut self,
        call_id: &str,
        key: Option<char>,
        sequence: Option<i64>,
    ) -> Option<Transition> {
        let i = self.s.leg_index(call_id)?;
        let leg = &mut self.s.legs[i];
        let tag = leg.tag.clone();
        let after_full = leg.after_full.take();
        let order = sequence.map(|seq| leg.see_tone(seq));
        match order {
            Some(ToneOrder::Repeat) => {
                leg.after_full = after_full;
                let seq = sequence.unwrap_or_default();
                self.note(format!("{tag}: repeated key press #{seq} ignored"));
                return None;
            }
            // Pressed before the current menu or collect began, overtaken
            // by the keys that ended the step it was meant for.
            Some(ToneOrder::Late)
                if sequence.zip(self.s.key_floor).is_some_and(|(n, f)| n <= f) =>
            {
                let seq = sequence.unwrap_or_default();
                self.note(format!(
                    "{tag}: key press #{seq} arrived after the step it was for: ignored"
                ));
                return None;
            }
            _ => {}
        }
        let key = key?;
        let in_turn = matches!(order, None | Some(ToneOrder::Fresh { next: true }));
        if after_full == Some(key) && in_turn {
            self.note(format!(
                "{tag}: key {key} after an entry already complete: ignored"
            ));
            return None;
        }
        let attempt = match self.s.waiting.clone() {
            Waiting::Menu { attempt, .. } => attempt,
            Waiting::Collect { attempt, .. } => {
                if self.s.legs[i].role != LegRole::Main {
                    return None;
                }
                let late = order == Some(ToneOrder::Late);
                return self.collect_key(attempt, key, sequence, late);
            }
            _ => {
                self.note(format!("key {key} pressed outside a menu: ignored"));
                return None;
            }
        };
        if self.s.legs[i].role != LegRole::Main {
            return None;
        }
        self.s.digits.push(key);
        let step = self.current()?;
        let Action::Menu(m) = &step.action else {
            return None;
        };
        if let Some((_, goto)) = m.choices.iter().find(|(k, _)| *k == key) {
            self.cancel_timer();
            return Some(Transition::Goto(*goto, menu::via(key)));
        }
        self.note(format!("key {key} is not a choice of `{}`", step.name));
        self.menu_retry(attempt, true)
    }

    // ----- restarts -------------------------------------------------------

    /// The runtime came back with this session, whose caller heard nothing
    /// while the server was down: a menu or a collect whose timeout has
    /// not run out plays its prompt again (same attempt, a fresh timeout
    /// after it; a collect's digits keyed before are dropped, the caller
    /// keys them again), and a ring group's hold music starts again. A
    /// menu or collect whose timeout passed while the server was down is
    /// left to its timer, which fires at once.
    fn resumed(&mut self) -> Option<Transition> {
        if self.s.is_ended() {
            return None;
        }
        let attempt = match self.s.waiting.clone() {
            Waiting::Menu { attempt, .. } | Waiting::Collect { attempt, .. } => attempt,
            Waiting::RingGroup(_) => return self.ring_resumed(),
            _ => return None,
        };
        if self.s.timer.is_some_and(|t| t.at <= self.now) {
            return None;
        }
        let step = self.current()?;
        let progress = match &step.action {
            Action::Menu(m) => {
                self.note("the menu plays its prompt again");
                self.menu_prompt(step, &m.prompt, None, attempt)
            }
            Action::Collect(c) => {
                let keyed = self.collected(c.secret);
                let dropped = !keyed.is_empty();
                keyed.clear();
                self.s.key_ids.clear();
                self.note(if dropped {
                    "the collect plays its prompt again; the digits keyed before the restart are dropped"
                } else {
                    "the collect plays its prompt again"
                });
                self.collect_prompt(step, c, false, attempt)
            }
            _ => return None,
        };
        match progress {
            Progress::Then(t) => Some(t),
            Progress::Wait | Progress::Ended => None,
        }
    }

    // ----- timers ---------------------------------------------------------

    fn timer_fired(&mut self) -> Option<Transition> {
        let step = self.current()?;
        match self.s.waiting.clone() {
            Waiting::Established { leg } => {
                self.hang_up(leg);
                if rules(&step.action).unanswered_is_timeout {
                    Some(Transition::Timeout)
                } else {
                    Some(Transition::Failure(format!(
                        "{} was not established in time",
                        self.s.legs.get(leg).map_or("the call", |l| l.tag.as_str())
                    )))
                }
            }
            Waiting::Transfer { .. } => Some(Transition::Timeout),
            Waiting::ConsultAnswer { consult } => {
                self.hang_up(consult);
                Some(Transition::Failure(
                    "the transfer target did not answer in time".into(),
                ))
            }
            // A ring group's `on_timeout` is nobody answering: a transfer
            // that never completes is its failure.
            Waiting::ConsultTransfer { consult } if matches!(step.action, Action::RingGroup(_)) => {
                self.hang_up(consult);
                Some(Transition::Failure(
                    "the transfer to the agent did not complete in time".into(),
                ))
            }
            Waiting::ConsultAnnounce { consult, .. } | Waiting::ConsultTransfer { consult } => {
                self.hang_up(consult);
                Some(Transition::Timeout)
            }
            Waiting::RingGroup(_) => self.ring_timer(),
            Waiting::Prompt { .. } => Some(Transition::Failure(
                "the prompt did not finish in time".into(),
            )),
            Waiting::Menu { attempt, .. } => self.menu_retry(attempt, false),
            Waiting::Collect { attempt, .. } => self.collect_end(attempt),
            Waiting::Invite { .. } => {
                if let Action::Invite(v) = &step.action {
                    let waited = humantime::format_duration(v.timeout);
                    self.note(format!("nobody invited joined within {waited}"));
                }
                Some(Transition::Timeout)
            }
            Waiting::Fetch { .. } | Waiting::FetchRetry { .. } => self.fetch_timer(),
            Waiting::Record { .. } => Some(Transition::Failure(
                "the recording did not finish in time".into(),
            )),
            Waiting::SaveRecording { .. } => Some(Transition::Failure(
                "the recording was not delivered in time".into(),
            )),
            Waiting::State { .. } => Some(Transition::Timeout),
            Waiting::Timer => Some(Transition::Next),
            Waiting::Redirect { .. } | Waiting::Nothing => None,
        }
    }

    // ----- request results and operations ---------------------------------

    fn take_pending(&mut self, command: CommandId) -> Option<PendingRequest> {
        let i = self.s.pending.iter().position(|p| p.command == command)?;
        Some(self.s.pending.remove(i))
    }

    fn call_created(&mut self, tag: &str, call_id: String) -> Option<Transition> {
        let Some(i) = self.s.legs.iter().position(|l| l.tag == tag) else {
            self.note(format!("no call of this session is tagged {tag}"));
            return None;
        };
        if self.s.legs[i].call_id.is_some() {
            self.note(format!("{tag} was already created"));
            return None;
        }
        self.s
            .pending
            .retain(|p| !(p.leg == i && p.kind == RequestKind::CreateCall));
        self.s.legs[i].call_id = Some(call_id.clone());
        if let Some(pos) = self.s.early_terminated.iter().position(|c| *c == call_id) {
            self.s.early_terminated.remove(pos);
            let change = StateChange::new(call_id, CallState::Terminated);
            self.s.legs[i].state = Some(CallState::Terminated);
            if self.s.legs[i].role == LegRole::Main {
                self.main_terminated(i, &change);
                return None;
            }
            return self.react_state(i, &change, false);
        }
        if self.s.legs[i].abandoned {
            self.hang_up(i);
        }
        None
    }

    fn accepted(
        &mut self,
        command: CommandId,
        operation: Option<CommsOperation>,
    ) -> Option<Transition> {
        let p = self.s.pending.iter_mut().find(|p| p.command == command)?;
        p.accepted = true;
        match p.kind {
            RequestKind::RecordResponse => {
                let op = operation?;
                if !op.id.is_empty() {
                    p.operation_id = Some(op.id.clone());
                }
                if op.status.as_ref().is_some_and(OperationStatus::is_final) {
                    let p = self.take_pending(command)?;
                    let recording = super::event::Recording::of(
                        op.recording_location.as_ref(),
                        op.recording_access_token.as_ref(),
                    );
                    return self.record_operation_done(
                        &p,
                        op.status == Some(OperationStatus::Completed),
                        op.result_info.as_ref(),
                        op.completion_reason.as_deref(),
                        recording,
                    );
                }
                None
            }
            RequestKind::PlayPrompt | RequestKind::SubscribeToTone | RequestKind::Invite => {
                let op = operation?;
                if !op.id.is_empty() {
                    p.operation_id = Some(op.id.clone());
                }
                let status = op.status.clone();
                if status.as_ref().is_some_and(OperationStatus::is_final) {
                    let p = self.take_pending(command)?;
                    return self.operation_done(
                        &p,
                        status == Some(OperationStatus::Completed),
                        op.result_info.as_ref(),
                    );
                }
                None
            }
            RequestKind::Redirect => {
                let done =
                    matches!(self.s.waiting, Waiting::Redirect { command: c } if c == command);
                self.take_pending(command);
                if done {
                    self.end(Outcome::Redirected, None);
                }
                None
            }
            RequestKind::Answer => {
                if let Some(p) = self.take_pending(command)
                    && let Some(leg) = self.s.legs.get_mut(p.leg)
                {
                    leg.answered = true;
                }
                None
            }
            RequestKind::Reject
            | RequestKind::Transfer
            | RequestKind::CreateCall
            | RequestKind::SaveRecording
            | RequestKind::Hangup
            | RequestKind::KeepAlive
            | RequestKind::CancelMediaProcessing
            | RequestKind::Fetch
            | RequestKind::TakeTurn => {
                self.take_pending(command);
                None
            }
        }
    }

    fn request_failed(
        &mut self,
        command: CommandId,
        status: u16,
        code: &str,
        message: &str,
    ) -> Option<Transition> {
        let Some(p) = self.take_pending(command) else {
            self.error_entry(format!(
                "request {command} failed: {status} {code}: {message}"
            ));
            return None;
        };
        let why = format!("{} failed: {status} {code}: {message}", p.kind);
        if p.kind == RequestKind::Fetch {
            let why = format!("the fetch failed: {code}: {message}");
            return self.fetch_request_failed(command, status, code, why);
        }
        if p.kind == RequestKind::TakeTurn {
            return self.ring_turn_failed(command, code, &why);
        }
        let waiting = self.s.waiting.clone();
        // A ring group's attempt that may not have been placed is an
        // attempt not answered, not a failure of the group: the next round
        // rings again.
        if code == "MaybeSent"
            && p.kind == RequestKind::CreateCall
            && matches!(waiting, Waiting::RingGroup(_))
            && self.ring_attempt(p.leg)
        {
            if let Some(l) = self.s.legs.get_mut(p.leg) {
                l.state = Some(CallState::Terminated);
                l.abandoned = false;
            }
            self.note(format!("{why}; the attempt counts as not answered"));
            self.ring_attempt_ended(p.leg);
            return None;
        }
        // A menu's or a collect's prompt or tone subscription, or the hold
        // music of a ring group, that may not have reached Graph is not a
        // failure of the step: the prompt is played again (at a resume, or
        // when its guard timer runs out), subscribing first.
        if code == "MaybeSent"
            && matches!(
                p.kind,
                RequestKind::PlayPrompt | RequestKind::SubscribeToTone
            )
        {
            let again = match &waiting {
                Waiting::Menu { .. } => Some("the menu will play its prompt again"),
                Waiting::Collect { .. } => Some("the collect will play its prompt again"),
                Waiting::RingGroup(r)
                    if p.kind == RequestKind::PlayPrompt
                        && p.client_context.as_deref() == Some(r.hold.as_str()) =>
                {
                    Some("the hold music will play again")
                }
                _ => None,
            };
            if let Some(again) = again {
                if p.kind == RequestKind::SubscribeToTone
                    && let Some(l) = self.s.legs.get_mut(p.leg)
                {
                    l.tones_subscribed = false;
                }
                self.note(format!("{why}; {again}"));
                return None;
            }
        }
        let t = self.failed_request(&p, command, why.clone(), waiting);
        if t.is_none() {
            self.error_entry(why);
        }
        t
    }

    /// What a refused request means for the current step.
    fn failed_request(
        &mut self,
        p: &PendingRequest,
        command: CommandId,
        why: String,
        waiting: Waiting,
    ) -> Option<Transition> {
        match p.kind {
            RequestKind::Answer => match waiting {
                Waiting::Established { leg } if leg == p.leg => Some(Transition::Failure(why)),
                _ => None,
            },
            RequestKind::Redirect => match waiting {
                Waiting::Redirect { command: c } if c == command => Some(Transition::Failure(why)),
                _ => None,
            },
            RequestKind::Transfer => {
                if let Some(l) = self.s.legs.get_mut(p.leg) {
                    l.transfer = None;
                }
                match waiting {
                    Waiting::Transfer { leg } if leg == p.leg => Some(Transition::Failure(why)),
                    Waiting::ConsultTransfer { consult } => {
                        self.hang_up(consult);
                        Some(Transition::Failure(why))
                    }
                    _ => None,
                }
            }
            RequestKind::CreateCall => {
                if let Some(l) = self.s.legs.get_mut(p.leg) {
                    l.state = Some(CallState::Terminated);
                    l.abandoned = false;
                }
                match waiting {
                    Waiting::Established { leg } | Waiting::ConsultAnswer { consult: leg }
                        if leg == p.leg =>
                    {
                        Some(Transition::Failure(why))
                    }
                    Waiting::RingGroup(_) if self.ring_attempt(p.leg) => self.ring_failed(why),
                    _ => None,
                }
            }
            RequestKind::PlayPrompt => self.prompt_refused(p, why, waiting),
            RequestKind::SubscribeToTone => {
                if let Some(l) = self.s.legs.get_mut(p.leg) {
                    l.tones_subscribed = false;
                }
                match waiting {
                    Waiting::Menu { .. } | Waiting::Collect { .. } => {
                        Some(Transition::Failure(why))
                    }
                    _ => None,
                }
            }
            RequestKind::RecordResponse => match waiting {
                Waiting::Record { context } if p.client_context.as_deref() == Some(&context) => {
                    Some(Transition::Failure(why))
                }
                _ => None,
            },
            RequestKind::SaveRecording => match waiting {
                Waiting::SaveRecording { command: c } if c == command => Some(Transition::Failure(
                    format!("the recording was not saved: {why}"),
                )),
                _ => None,
            },
            RequestKind::Invite => match waiting {
                Waiting::Invite { context } if p.client_context.as_deref() == Some(&context) => {
                    Some(Transition::Failure(why))
                }
                _ => None,
            },
            // A cancel Graph refused: the prompt plays to its end.
            RequestKind::Reject
            | RequestKind::Hangup
            | RequestKind::KeepAlive
            | RequestKind::CancelMediaProcessing
            | RequestKind::Fetch
            | RequestKind::TakeTurn => None,
        }
    }

    /// Graph refused a `playPrompt`: the step that waits for it fails (an
    /// announcement is skipped: the transfer goes ahead).
    fn prompt_refused(
        &mut self,
        p: &PendingRequest,
        why: String,
        waiting: Waiting,
    ) -> Option<Transition> {
        let context = p.client_context.as_deref();
        match waiting {
            Waiting::Prompt { context: c }
            | Waiting::Menu { context: c, .. }
            | Waiting::Collect { context: c, .. }
                if Some(c.as_str()) == context =>
            {
                Some(Transition::Failure(why))
            }
            Waiting::ConsultAnnounce {
                consult,
                context: c,
            } if Some(c.as_str()) == context => {
                self.note("the announcement could not be played; transferring anyway");
                self.consult_transfer(consult)
            }
            Waiting::RingGroup(r) if Some(r.hold.as_str()) == context => self.ring_failed(why),
            _ => None,
        }
    }

    fn operation(&mut self, o: OperationUpdate) -> Option<Transition> {
        let i = self.s.leg_index(&o.call_id)?;
        let found = self.s.pending.iter().position(|p| {
            p.leg == i
                && (o.operation_id.is_some() && p.operation_id == o.operation_id
                    || o.client_context.is_some() && p.client_context == o.client_context)
        });
        let Some(pos) = found else {
            return self.transfer_operation(i, &o);
        };
        if let Some(id) = &o.operation_id {
            self.s.pending[pos].operation_id = Some(id.clone());
        }
        let status = o.status.clone();
        if !status.as_ref().is_some_and(OperationStatus::is_final) {
            return None;
        }
        let p = self.s.pending.remove(pos);
        if p.kind == RequestKind::RecordResponse {
            return self.record_operation_done(
                &p,
                status == Some(OperationStatus::Completed),
                o.result.as_ref(),
                o.completion_reason.as_deref(),
                o.recording,
            );
        }
        self.operation_done(
            &p,
            status == Some(OperationStatus::Completed),
            o.result.as_ref(),
        )
    }

    /// A `recordResponse` the session sent is over.
    fn record_operation_done(
        &mut self,
        p: &PendingRequest,
        ok: bool,
        result: Option<&ResultInfo>,
        reason: Option<&str>,
        recording: Option<super::event::Recording>,
    ) -> Option<Transition> {
        match self.s.waiting.clone() {
            Waiting::Record { context } if p.client_context.as_deref() == Some(&context) => {
                let mut why = describe_result(result);
                if let Some(r) = reason {
                    why.push_str(&format!(" ({r})"));
                }
                self.record_ended(p.leg, ok, reason, recording, &why)
            }
            _ => None,
        }
    }

    /// The old beta reports a transfer's progress as an operation whose
    /// `resultInfo.subCode` is `transferring` or `transferAccepted`.
    fn transfer_operation(&mut self, i: usize, o: &OperationUpdate) -> Option<Transition> {
        let leg = &mut self.s.legs[i];
        let Some(t) = leg.transfer.as_mut() else {
            self.note("an operation this session does not await: ignored");
            return None;
        };
        let sub = o.result.as_ref().and_then(|r| r.subcode.as_ref());
        let text = sub.and_then(Code::as_text).unwrap_or("");
        if text.eq_ignore_ascii_case("transferAccepted") {
            t.transferring = true;
            t.accepted = true;
        } else if text.eq_ignore_ascii_case("transferring") {
            t.transferring = true;
        }
        if o.status == Some(OperationStatus::Failed) {
            leg.transfer = None;
            let why = format!("the transfer failed:{}", describe_result(o.result.as_ref()));
            return match self.s.waiting.clone() {
                Waiting::Transfer { leg } if leg == i => Some(Transition::Failure(why)),
                Waiting::ConsultTransfer { consult } => {
                    self.hang_up(consult);
                    Some(Transition::Failure(why))
                }
                _ => None,
            };
        }
        None
    }

    /// An operation the session awaited is over.
    fn operation_done(
        &mut self,
        p: &PendingRequest,
        ok: bool,
        result: Option<&ResultInfo>,
    ) -> Option<Transition> {
        let context = p.client_context.as_deref();
        match (p.kind, self.s.waiting.clone()) {
            (RequestKind::PlayPrompt, Waiting::Prompt { context: c })
                if Some(c.as_str()) == context =>
            {
                if ok {
                    self.cancel_timer();
                    Some(Transition::Next)
                } else {
                    Some(Transition::Failure(format!(
                        "the prompt failed:{}",
                        describe_result(result)
                    )))
                }
            }
            (
                RequestKind::PlayPrompt,
                Waiting::Menu {
                    attempt,
                    context: c,
                    prompt_done: false,
                },
            ) if Some(c.as_str()) == context => {
                if !ok {
                    return Some(Transition::Failure(format!(
                        "the menu prompt failed:{}",
                        describe_result(result)
                    )));
                }
                self.s.waiting = Waiting::Menu {
                    attempt,
                    context: c,
                    prompt_done: true,
                };
                let step = self.current()?;
                if let Action::Menu(m) = &step.action {
                    self.set_timer(m.timeout);
                }
                None
            }
            (
                RequestKind::PlayPrompt,
                Waiting::Collect {
                    attempt,
                    context: c,
                    prompt_done: false,
                    cut,
                    finished,
                },
            ) if Some(c.as_str()) == context => {
                if !ok && !cut {
                    return Some(Transition::Failure(format!(
                        "the collect prompt failed:{}",
                        describe_result(result)
                    )));
                }
                self.s.waiting = Waiting::Collect {
                    attempt,
                    context: c,
                    prompt_done: true,
                    cut,
                    finished,
                };
                let step = self.current()?;
                if let Action::Collect(col) = &step.action {
                    let keyed = !self.collected(col.secret).is_empty();
                    self.set_timer(if keyed {
                        col.digit_timeout
                    } else {
                        col.first_digit_timeout
                    });
                }
                None
            }
            (
                RequestKind::PlayPrompt,
                Waiting::ConsultAnnounce {
                    consult,
                    context: c,
                },
            ) if Some(c.as_str()) == context => {
                if !ok {
                    self.note("the announcement failed; transferring anyway");
                }
                self.consult_transfer(consult)
            }
            (RequestKind::PlayPrompt, Waiting::RingGroup(_)) => self.ring_prompt_done(context, ok),
            (RequestKind::Invite, Waiting::Invite { context: c })
                if Some(c.as_str()) == context =>
            {
                self.cancel_timer();
                if ok {
                    Some(Transition::Next)
                } else {
                    Some(Transition::Failure(format!(
                        "the invitation failed:{}",
                        describe_result(result)
                    )))
                }
            }
            (RequestKind::SubscribeToTone, waiting) if !ok => {
                if let Some(l) = self.s.legs.get_mut(p.leg) {
                    l.tones_subscribed = false;
                }
                matches!(waiting, Waiting::Menu { .. } | Waiting::Collect { .. }).then(|| {
                    Transition::Failure(format!(
                        "subscribeToTone failed:{}",
                        describe_result(result)
                    ))
                })
            }
            _ => None,
        }
    }
}
