//! The interpreter's core: handling one event, moving between steps, ending runs.
//!
//! A [`Run`] borrows the flow and the session for the length of one
//! [`step`](super::step) call and collects the commands it produces. Here
//! live the transitions (`next`, `on_failure`, `on_timeout`, `on_invalid`,
//! `on.error`), the step limit, the end of a run (the bot never leaves a
//! caller in silence), the timer of the current step and the one place
//! requests are emitted, which refuses to send anything for a call that has
//! terminated. Starting steps is in [`actions`](super::actions); reacting to
//! events in [`reactions`](super::reactions). Nothing here does I/O.

use chrono::{DateTime, Utc};

use crate::flow::{Flow, HandlerOp, Step, StepId};
use crate::graph::wire::{Call, CallState, RejectReason, RejectRequest};

use super::command::{Command, CommandId, RequestKind, TimerId};
use super::event::Event;
use super::outcome::{ActionDone, ActionOutcome};
use super::rules::Applied;
use super::scope;
use super::session::{Leg, LegRole, Outcome, PendingRequest, RunEnd, Session, StepTimer, Waiting};
use super::timeline::Entry;

/// Most steps one event may run through without waiting, whatever
/// `max_steps` says: a guard against a loop of `switch`/`set`/`log` steps.
pub const MAX_STEPS_PER_EVENT: u32 = 10_000;

/// Most requests awaited at once; older ones are forgotten.
pub const MAX_PENDING: usize = 64;

/// Where the current step leads.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Transition {
    /// `next`.
    Next,
    /// `on_failure`, else `on.error`, else the run ends with `error`.
    Failure(String),
    /// `on_timeout`, else as a failure.
    Timeout,
    /// `on_invalid`, else as a failure.
    Invalid,
    /// A named step (menu keys, switch cases, handlers), with how it is reached.
    Goto(StepId, String),
}

/// What entering a step did.
pub(crate) enum Progress {
    /// It waits for an event.
    Wait,
    /// It finished at once.
    Then(Transition),
    /// The run ended.
    Ended,
}

enum Resolved {
    Step(StepId, String),
    EndNatural,
    Done,
}

/// A request body, before it gets an id and a call.
pub(crate) enum Body {
    Answer(crate::graph::wire::AnswerRequest),
    Reject(RejectRequest),
    Redirect(crate::graph::wire::RedirectRequest),
    Transfer(Box<crate::graph::wire::TransferRequest>),
    PlayPrompt(crate::graph::wire::PlayPromptRequest),
    RecordResponse(crate::graph::wire::RecordResponseRequest),
    Invite(crate::graph::wire::InviteParticipantsRequest),
    /// Download a recording and deliver it as `name`.
    SaveRecording {
        /// Where it is and its token.
        recording: super::event::Recording,
        /// Its file name.
        name: String,
    },
    SubscribeToTone(crate::graph::wire::SubscribeToToneRequest),
    CancelMediaProcessing(crate::graph::wire::CancelMediaProcessingRequest),
    Hangup,
}

/// One `step` call: the flow, the session, the time, the commands so far.
pub(crate) struct Run<'a> {
    pub flow: &'a Flow,
    pub s: &'a mut Session,
    pub now: DateTime<Utc>,
    pub out: Vec<Command>,
    /// Steps whose action finished during this call, and how.
    pub actions: Vec<ActionDone>,
    /// What the session's own rules did during this call.
    pub applied: Vec<Applied>,
    steps_this_event: u32,
}

impl<'a> Run<'a> {
    pub fn new(flow: &'a Flow, s: &'a mut Session, now: DateTime<Utc>) -> Self {
        Run {
            flow,
            s,
            now,
            out: Vec::new(),
            actions: Vec::new(),
            applied: Vec::new(),
            steps_this_event: 0,
        }
    }

    /// Handles one event to the end: reactions, then transitions.
    /// Handles one event to the end: reactions, then transitions, then
    /// the session's own rules ([`rules`](super::rules)).
    pub fn handle(&mut self, event: Event) {
        match event {
            Event::TimerFired { timer } if self.s.upkeep.rule_of(timer).is_some() => {
                if let Some(rule) = self.s.upkeep.rule_of(timer) {
                    self.rule_fired(rule);
                }
            }
            Event::Fault { what, message } => self.fault(&what, &message),
            event => {
                if event.is_activity() {
                    self.s.upkeep.last_activity = Some(self.now);
                }
                self.record_event(&event);
                let t = self.react(event);
                if let Some(t) = t
                    && !self.s.is_ended()
                {
                    self.follow(t);
                }
            }
        }
        self.upkeep();
    }

    // ----- timeline -------------------------------------------------------

    pub fn step_label(&self) -> Option<String> {
        self.s.step_name(self.flow).map(str::to_owned)
    }

    pub fn entry(&mut self, what: Entry) {
        let step = self.step_label();
        self.s.timeline.push(self.now, step, what);
    }

    pub fn note(&mut self, text: impl Into<String>) {
        self.entry(Entry::Note(text.into()));
    }

    pub fn error_entry(&mut self, text: impl Into<String>) {
        self.entry(Entry::Error(text.into()));
    }

    /// The session's name for a call id (its leg's tag), else the id.
    pub fn call_label(&self, call_id: &str) -> String {
        self.s
            .leg_index(call_id)
            .map_or_else(|| call_id.to_owned(), |i| self.s.legs[i].tag.clone())
    }

    // ----- steps ----------------------------------------------------------

    pub fn current(&self) -> Option<&'a Step> {
        self.s.step.and_then(|id| self.flow.steps.get(id.index()))
    }

    /// Follows transitions until a step waits or the run ends.
    pub fn follow(&mut self, mut t: Transition) {
        loop {
            let (id, via) = match self.resolve(t) {
                Resolved::Step(id, via) => (id, via),
                Resolved::EndNatural => {
                    self.finish_natural();
                    return;
                }
                Resolved::Done => return,
            };
            let Some(step) = self.flow.steps.get(id.index()) else {
                self.end(
                    Outcome::Error,
                    Some(format!("the flow has no step #{}", id.0)),
                );
                return;
            };
            if self.s.is_ended() && step.action.action_kind().needs_call() {
                self.note(format!(
                    "the run has ended; step `{}` ({}) is not run",
                    step.name,
                    step.action.kind()
                ));
                return;
            }
            self.steps_this_event += 1;
            match self.enter(id, &via) {
                Progress::Wait | Progress::Ended => return,
                Progress::Then(next) => t = next,
            }
        }
    }

    /// Counts the current step's action as finished with `outcome`, once.
    fn settle_action(&mut self, outcome: ActionOutcome) {
        if !self.s.step_open {
            return;
        }
        self.s.step_open = false;
        if let Some(step) = self.current() {
            self.actions.push(ActionDone {
                action: step.action.kind(),
                outcome,
            });
        }
    }

    fn resolve(&mut self, t: Transition) -> Resolved {
        self.settle_action(match &t {
            Transition::Next => ActionOutcome::Ok,
            Transition::Failure(_) => ActionOutcome::Failure,
            Transition::Timeout => ActionOutcome::Timeout,
            Transition::Invalid => ActionOutcome::Invalid,
            Transition::Goto(_, via) if via.starts_with("on.") => ActionOutcome::Interrupted,
            Transition::Goto(..) => ActionOutcome::Ok,
        });
        let Some(step) = self.current() else {
            return match t {
                Transition::Goto(id, via) => Resolved::Step(id, via),
                Transition::Failure(reason) => {
                    self.error_entry(reason.clone());
                    self.end(Outcome::Error, Some(reason));
                    Resolved::Done
                }
                _ => Resolved::Done,
            };
        };
        match t {
            Transition::Next => step
                .next
                .map_or(Resolved::EndNatural, |id| Resolved::Step(id, "next".into())),
            Transition::Goto(id, via) => Resolved::Step(id, via),
            Transition::Timeout => match step.on_timeout {
                Some(id) => Resolved::Step(id, "on_timeout".into()),
                None => self.resolve(Transition::Failure(format!(
                    "step `{}` timed out and has no `on_timeout`",
                    step.name
                ))),
            },
            Transition::Invalid => match step.on_invalid {
                Some(id) => Resolved::Step(id, "on_invalid".into()),
                None => self.resolve(Transition::Failure(format!(
                    "no choice of step `{}` matches the keys pressed, and it has no `on_invalid`",
                    step.name
                ))),
            },
            Transition::Failure(reason) => {
                self.error_entry(reason.clone());
                if let Some(id) = step.on_failure {
                    return Resolved::Step(id, "on_failure".into());
                }
                if self.s.is_ended() {
                    return Resolved::Done;
                }
                if !self.flow.on_error.is_empty() {
                    let flow = self.flow;
                    if let Some(id) = self.run_handler(&flow.on_error, "error", true) {
                        return Resolved::Step(id, "on.error".into());
                    }
                    if self.s.is_ended() {
                        return Resolved::Done;
                    }
                }
                self.end(Outcome::Error, Some(reason));
                Resolved::Done
            }
        }
    }

    /// Enters a step: the step limit, the timer, the timeline, then the action.
    fn enter(&mut self, id: StepId, via: &str) -> Progress {
        self.s.steps_taken = self.s.steps_taken.saturating_add(1);
        self.cancel_timer();
        self.s.waiting = Waiting::Nothing;
        self.s.step = Some(id);
        self.s.step_open = true;
        let Some(step) = self.flow.steps.get(id.index()) else {
            self.end(
                Outcome::Error,
                Some(format!("the flow has no step #{}", id.0)),
            );
            return Progress::Ended;
        };
        self.entry(Entry::Enter {
            step: step.name.clone(),
            via: via.to_owned(),
        });
        if let Some(name) = &step.end {
            self.s.end_name = Some(name.clone());
        }
        if self.s.steps_taken > self.flow.max_steps || self.steps_this_event > MAX_STEPS_PER_EVENT {
            let reason = format!(
                "the run took more than {} steps (a loop?) and was stopped",
                self.flow.max_steps.min(MAX_STEPS_PER_EVENT)
            );
            self.error_entry(reason.clone());
            self.end(Outcome::Error, Some(reason));
            return Progress::Ended;
        }
        self.start_action(step)
    }

    /// Runs handler operations; returns the step of the first `goto` when
    /// `allow_goto` (never after the call terminated, nor after the end).
    pub fn run_handler(
        &mut self,
        ops: &[HandlerOp],
        name: &str,
        allow_goto: bool,
    ) -> Option<StepId> {
        let mut goto = None;
        for op in ops {
            match op {
                HandlerOp::Log(t) => {
                    let input = scope::Inputs::masked(self.flow, self.s);
                    match scope::render(self.flow, t, &input, self.now) {
                        Ok(text) => self.entry(Entry::Log(text)),
                        Err(e) => self.error_entry(format!("on.{name}: {e}")),
                    }
                }
                HandlerOp::Set(assignments) => {
                    if let Err(e) = self.assign(assignments) {
                        self.error_entry(format!("on.{name}: {e}"));
                    }
                }
                HandlerOp::Goto(id) => {
                    if allow_goto && !self.s.is_ended() && goto.is_none() {
                        goto = Some(*id);
                    }
                }
                HandlerOp::Hangup => {
                    if allow_goto && !self.s.is_ended() {
                        self.hang_up_all();
                        let outcome = if name == "error" {
                            Outcome::Error
                        } else {
                            Outcome::HungUp
                        };
                        self.end(outcome, Some(format!("`hangup` in on.{name}")));
                        return None;
                    }
                }
            }
        }
        goto
    }

    /// Evaluates `set` assignments into `vars`.
    pub fn assign(
        &mut self,
        assignments: &[(String, crate::flow::expr::Expr)],
    ) -> Result<(), String> {
        for (name, expr) in assignments {
            let input = scope::Inputs::new(self.flow, self.s);
            let value =
                scope::eval(self.flow, expr, input.get(), self.now).map_err(|e| e.to_string())?;
            self.s.vars.insert(name.clone(), scope::to_json(&value));
        }
        Ok(())
    }

    // ----- the end --------------------------------------------------------

    /// Records the end of the run (once). An `error` end hangs up every live call.
    pub fn end(&mut self, outcome: Outcome, reason: Option<String>) {
        if self.s.is_ended() {
            return;
        }
        self.settle_action(ActionOutcome::of_run_end(outcome));
        self.cancel_timer();
        self.s.waiting = Waiting::Nothing;
        if outcome == Outcome::Error {
            self.hang_up_all();
        }
        let name = self.s.end_name.clone();
        self.entry(Entry::End {
            outcome,
            reason: reason.clone(),
            name: name.clone(),
        });
        self.s.end = Some(RunEnd {
            outcome,
            at: self.now,
            step: self.step_label(),
            reason,
            name,
        });
    }

    /// A step without `next` ended the run: stay in a joined meeting,
    /// otherwise hang up every live call.
    pub fn finish_natural(&mut self) {
        if self.s.is_ended() {
            return;
        }
        let in_meeting = self.s.main().is_some_and(|m| m.meeting && m.is_live());
        if in_meeting {
            self.end(Outcome::Joined, None);
            return;
        }
        let rejected = self.hang_up_all();
        let outcome = if rejected {
            Outcome::Rejected
        } else {
            Outcome::HungUp
        };
        self.end(outcome, None);
    }

    /// Hangs up every live call (an unanswered incoming call is rejected);
    /// calls not yet named by Graph are hung up once they are. Returns
    /// whether an incoming call was rejected.
    pub fn hang_up_all(&mut self) -> bool {
        let mut rejected = false;
        for i in 0..self.s.legs.len() {
            rejected |= self.hang_up(i);
        }
        rejected
    }

    /// Hangs up one call (rejects it if still incoming). Returns whether it was rejected.
    pub fn hang_up(&mut self, leg: usize) -> bool {
        let Some(l) = self.s.legs.get_mut(leg) else {
            return false;
        };
        if l.call_id.is_none() {
            if !l.is_terminated() {
                l.abandoned = true;
            }
            return false;
        }
        if !l.is_live() {
            return false;
        }
        // Still ringing and not answered: rejected. Answered but not yet
        // said established (a slow or silent Graph): hung up.
        if l.state == Some(CallState::Incoming) && !l.answered {
            self.send(
                leg,
                Body::Reject(RejectRequest::new(RejectReason::None)),
                None,
            );
            true
        } else {
            self.send(leg, Body::Hangup, None);
            false
        }
    }

    // ----- requests -------------------------------------------------------

    /// Emits a request for a leg, unless the call has terminated (or is
    /// being hung up, or is not named yet): then nothing is sent and `None`
    /// comes back.
    pub fn send(
        &mut self,
        leg: usize,
        body: Body,
        client_context: Option<String>,
    ) -> Option<CommandId> {
        let l = self.s.legs.get(leg)?;
        let kind = match &body {
            Body::Answer(_) => RequestKind::Answer,
            Body::Reject(_) => RequestKind::Reject,
            Body::Redirect(_) => RequestKind::Redirect,
            Body::Transfer(_) => RequestKind::Transfer,
            Body::PlayPrompt(_) => RequestKind::PlayPrompt,
            Body::RecordResponse(_) => RequestKind::RecordResponse,
            Body::Invite(_) => RequestKind::Invite,
            Body::SaveRecording { .. } => RequestKind::SaveRecording,
            Body::SubscribeToTone(_) => RequestKind::SubscribeToTone,
            Body::CancelMediaProcessing(_) => RequestKind::CancelMediaProcessing,
            Body::Hangup => RequestKind::Hangup,
        };
        let (Some(call_id), true) = (l.call_id.clone(), l.is_live()) else {
            let why = if l.is_terminated() {
                "it has terminated"
            } else if l.hangup_sent {
                "the bot hung it up"
            } else {
                "Graph has not named it yet"
            };
            let tag = l.tag.clone();
            self.note(format!("{kind} not sent on {tag}: {why}"));
            return None;
        };
        let tag = l.tag.clone();
        let id = self.s.next_command_id();
        let cmd = match body {
            Body::Answer(body) => Command::Answer { id, call_id, body },
            Body::Reject(body) => Command::Reject { id, call_id, body },
            Body::Redirect(body) => Command::Redirect { id, call_id, body },
            Body::Transfer(body) => Command::Transfer {
                id,
                call_id,
                body: *body,
            },
            Body::PlayPrompt(body) => Command::PlayPrompt { id, call_id, body },
            Body::RecordResponse(body) => Command::RecordResponse { id, call_id, body },
            Body::Invite(body) => Command::Invite { id, call_id, body },
            Body::SaveRecording { recording, name } => Command::SaveRecording {
                id,
                call_id,
                recording,
                name,
            },
            Body::SubscribeToTone(body) => Command::SubscribeToTone { id, call_id, body },
            Body::CancelMediaProcessing(body) => {
                Command::CancelMediaProcessing { id, call_id, body }
            }
            Body::Hangup => Command::Hangup { id, call_id },
        };
        if kind == RequestKind::Hangup {
            self.s.legs[leg].hangup_sent = true;
        }
        if let Some(line) = cmd.line(&tag) {
            self.entry(Entry::Request(line));
        }
        self.track(PendingRequest {
            command: id,
            kind,
            leg,
            client_context,
            operation_id: None,
            accepted: false,
        });
        self.out.push(cmd);
        Some(id)
    }

    /// Emits `POST /communications/calls` for a new leg; returns the leg.
    pub fn create_call(&mut self, role: LegRole, body: Call, meeting: bool) -> usize {
        let base = match role {
            LegRole::Main => "main",
            LegRole::Consultation => "consultation",
            LegRole::Outgoing => "outgoing",
        };
        let same = self
            .s
            .legs
            .iter()
            .filter(|l| l.tag.starts_with(base))
            .count();
        let tag = if same == 0 {
            base.to_owned()
        } else {
            format!("{base}-{}", same + 1)
        };
        let mut leg = Leg::new(tag.clone(), role);
        leg.meeting = meeting;
        leg.direction = Some(crate::graph::wire::CallDirection::Outgoing);
        self.s.add_leg(leg, false);
        let index = self.s.legs.len() - 1;
        let id = self.s.next_command_id();
        let cmd = Command::CreateCall {
            id,
            tag: tag.clone(),
            body,
        };
        if let Some(line) = cmd.line(&tag) {
            self.entry(Entry::Request(line));
        }
        self.track(PendingRequest {
            command: id,
            kind: RequestKind::CreateCall,
            leg: index,
            client_context: None,
            operation_id: None,
            accepted: false,
        });
        self.out.push(cmd);
        index
    }

    fn track(&mut self, p: PendingRequest) {
        if self.s.pending.len() >= MAX_PENDING {
            self.s.pending.remove(0);
        }
        self.s.pending.push(p);
    }

    /// A fresh client context for a prompt or a subscription.
    pub fn client_context(&mut self) -> String {
        let n = self.s.next_id;
        self.s.next_id += 1;
        let mut id = self.s.id.clone();
        id.truncate(200);
        format!("{id}-{n}")
    }

    // ----- timers ---------------------------------------------------------

    /// Sets the current step's timer, replacing any other.
    pub fn set_timer(&mut self, after: std::time::Duration) {
        self.cancel_timer();
        let n = self.s.next_id;
        self.s.next_id += 1;
        let timer = TimerId(n);
        let after = chrono::Duration::from_std(after).unwrap_or(chrono::Duration::days(1));
        let at = self.now + after;
        self.s.timer = Some(StepTimer { id: timer, at });
        self.out.push(Command::SetTimer { timer, at });
    }

    /// Cancels the current step's timer, if any.
    pub fn cancel_timer(&mut self) {
        if let Some(t) = self.s.timer.take() {
            self.out.push(Command::CancelTimer { timer: t.id });
        }
    }
}
