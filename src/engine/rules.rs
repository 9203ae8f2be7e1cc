//! Graph's rules and the session's own upkeep, decided here and nowhere
//! else: the 15-second answer rule, the `keepAlive` schedule, the reaping of
//! a session Graph never ends, and what a fault (a panic in the engine or in
//! a `CallControl`) does to a run.
//!
//! Each rule is a timer held in the session ([`Upkeep`]), set and cancelled
//! with the same [`Command::SetTimer`](super::Command::SetTimer) and
//! [`Command::CancelTimer`](super::Command::CancelTimer) as a step's timer,
//! and re-checked after every event: production and the simulator deliver
//! [`Event::TimerFired`](super::Event::TimerFired) alike, so a dry run
//! applies the answer rule and sends `keepAlive` as a production call does.
//! Nothing here reads a clock.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::graph::wire::{CallState, RejectReason, RejectRequest};

use super::command::{Command, TimerId};
use super::run::{Body, Run};
use super::session::{KEEP_ALIVE_EVERY, Outcome, StepTimer};

/// How long before Graph's 15 seconds the engine rejects an incoming call
/// the flow has not answered, rejected or redirected (so that the caller
/// hears busy rather than Graph's `408`).
pub const ANSWER_MARGIN: Duration = Duration::seconds(1);

/// How long a session nothing happens to lives by default before it is
/// reaped (ended with `error`, its calls hung up).
pub const REAP_AFTER: Duration = Duration::hours(2);

/// The session's own timers, beside its step's timer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Upkeep {
    /// Fires [`ANSWER_MARGIN`] before the incoming call's 15 seconds are up,
    /// while its answer is owed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<StepTimer>,
    /// The next `keepAlive`, while a call is established.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_alive: Option<StepTimer>,
    /// When the session is next checked for idleness, until its run has
    /// ended and its calls are down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle: Option<StepTimer>,
    /// When the run has lasted its flow's `max_duration`, until it ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<StepTimer>,
    /// When something last happened: a notification, a start, a step's
    /// timer (not the results of requests, nor these timers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_activity: Option<DateTime<Utc>>,
    /// Seconds of nothing after which the session is reaped.
    #[serde(default = "default_reap_after")]
    pub reap_after_secs: i64,
    /// Whether a fault ended the run.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub faulted: bool,
}

fn default_reap_after() -> i64 {
    REAP_AFTER.num_seconds()
}

impl Default for Upkeep {
    fn default() -> Self {
        Upkeep {
            answer: None,
            keep_alive: None,
            idle: None,
            deadline: None,
            last_activity: None,
            reap_after_secs: default_reap_after(),
            faulted: false,
        }
    }
}

/// One of the session's own timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// The incoming call is not answered and Graph's 15 seconds are nearly up.
    Answer,
    /// A `keepAlive` is due.
    KeepAlive,
    /// The session is checked for idleness.
    Idle,
    /// The run has lasted its flow's `max_duration`.
    Deadline,
}

/// What a rule did during one [`step`](super::step), for the runtime's
/// metrics and logs (the timeline says the same in words).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Applied {
    /// The incoming call was rejected: the flow did not answer in time.
    AnswerOverdue,
    /// `keepAlive` was sent on this many calls.
    KeepAlive(usize),
    /// Nothing happened for too long: the run was ended and its calls hung up.
    Reaped,
    /// The run lasted its flow's `max_duration`: it was ended and its calls hung up.
    Overran,
    /// A fault ended the run (or, when it had ended, hung up what was up).
    Fault,
}

impl Upkeep {
    /// How long nothing may happen before the session is reaped.
    pub fn reap_after(&self) -> Duration {
        Duration::seconds(self.reap_after_secs.max(1))
    }

    /// Sets how long nothing may happen before the session is reaped
    /// (whole seconds, at least one).
    pub fn set_reap_after(&mut self, after: std::time::Duration) {
        let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
        self.reap_after_secs = i64::try_from(secs).unwrap_or(i64::MAX).max(1);
    }

    /// Which rule `timer` is, if it is one of these.
    pub fn rule_of(&self, timer: TimerId) -> Option<Rule> {
        let is = |t: &Option<StepTimer>| t.is_some_and(|t| t.id == timer);
        if is(&self.answer) {
            Some(Rule::Answer)
        } else if is(&self.keep_alive) {
            Some(Rule::KeepAlive)
        } else if is(&self.idle) {
            Some(Rule::Idle)
        } else if is(&self.deadline) {
            Some(Rule::Deadline)
        } else {
            None
        }
    }

    fn slot(&mut self, rule: Rule) -> &mut Option<StepTimer> {
        match rule {
            Rule::Answer => &mut self.answer,
            Rule::KeepAlive => &mut self.keep_alive,
            Rule::Idle => &mut self.idle,
            Rule::Deadline => &mut self.deadline,
        }
    }
}

impl Run<'_> {
    /// Applies the rule whose timer fired.
    pub(super) fn rule_fired(&mut self, rule: Rule) {
        *self.s.upkeep.slot(rule) = None;
        match rule {
            Rule::Answer => self.answer_overdue(),
            Rule::KeepAlive => {
                let sent = self.s.keep_alive(self.now);
                if !sent.is_empty() {
                    self.applied.push(Applied::KeepAlive(sent.len()));
                }
                self.out.extend(sent);
            }
            Rule::Idle => {
                let last = self.s.upkeep.last_activity.unwrap_or(self.now);
                // A step waiting for its own timer (a long `wait`) is not idle.
                let waiting = self.s.timer.is_some_and(|t| t.at >= self.now);
                if last + self.s.upkeep.reap_after() <= self.now && !waiting {
                    self.reap();
                }
            }
            Rule::Deadline => self.overran(),
        }
    }

    /// The run has lasted its flow's `max_duration`: end it with `error`
    /// and hang up every call still up.
    fn overran(&mut self) {
        if self.s.is_ended() {
            return;
        }
        let limit = humantime::format_duration(self.flow.max_duration);
        let reason = format!("the run lasted its flow's max_duration ({limit}) and was stopped");
        self.applied.push(Applied::Overran);
        self.error_entry(reason.clone());
        self.end(Outcome::Error, Some(reason));
    }

    /// The flow has not answered, rejected or redirected the incoming call
    /// and Graph's 15 seconds are nearly up: reject it (busy), so that the
    /// caller is not left ringing into Graph's `408`, and end the run.
    fn answer_overdue(&mut self) {
        if self.s.answer_deadline().is_none() {
            return;
        }
        let Some(main) = self.s.main_index() else {
            return;
        };
        let reason =
            "the flow did not answer within 15 s (Graph's limit): the call was rejected".to_owned();
        self.error_entry(reason.clone());
        self.send(
            main,
            Body::Reject(RejectRequest::new(RejectReason::Busy)),
            None,
        );
        // Rejected: nothing more is sent on it (`end` would reject it again).
        self.s.legs[main].hangup_sent = true;
        self.applied.push(Applied::AnswerOverdue);
        self.end(Outcome::Error, Some(reason));
    }

    /// Nothing happened for too long: end the run with `error` (unless it
    /// has ended) and hang up every call still up.
    fn reap(&mut self) {
        let after = self.s.upkeep.reap_after().to_std().unwrap_or_default();
        let reason = format!(
            "reaped: nothing happened for {}",
            humantime::format_duration(after)
        );
        self.applied.push(Applied::Reaped);
        if self.s.is_ended() {
            self.note(reason);
            self.hang_up_all();
        } else {
            self.end(Outcome::Error, Some(reason));
        }
    }

    /// `what` panicked (a bug): end the run with `error` and hang up every
    /// call still up, so that no caller is left in silence.
    pub(super) fn fault(&mut self, what: &str, message: &str) {
        self.applied.push(Applied::Fault);
        self.s.upkeep.faulted = true;
        let reason = format!("internal error: {what} panicked ({message}); the calls were hung up");
        if self.s.is_ended() {
            self.error_entry(reason);
            self.hang_up_all();
        } else {
            self.end(Outcome::Error, Some(reason));
        }
    }

    /// Sets, moves or cancels the rules' timers for the session as it now is.
    pub(super) fn upkeep(&mut self) {
        let answer = self.s.answer_deadline().map(|d| d - ANSWER_MARGIN);
        self.keep_timer(Rule::Answer, answer);
        let established = self.s.legs.iter().any(|l| {
            l.is_live() && matches!(l.state, Some(CallState::Established | CallState::Hold))
        });
        let keep_alive = established.then(|| {
            self.s
                .upkeep
                .keep_alive
                .map_or(self.now + KEEP_ALIVE_EVERY, |t| t.at)
        });
        self.keep_timer(Rule::KeepAlive, keep_alive);
        let finished = self.s.is_ended() && self.s.live_call_ids().is_empty();
        let idle = (!finished && self.s.is_started()).then(|| {
            let last = self.s.upkeep.last_activity.unwrap_or(self.now);
            let mut due = last + self.s.upkeep.reap_after();
            // Not before the step's own timer: a long `wait` is not idleness.
            if let Some(t) = self.s.timer
                && t.at >= due
            {
                due = t.at + Duration::seconds(1);
            }
            self.s.upkeep.idle.map_or(due, |t| t.at)
        });
        self.keep_timer(Rule::Idle, idle);
        let deadline = self
            .s
            .started_at
            .filter(|_| !self.s.is_ended())
            .map(|start| {
                let limit = Duration::from_std(self.flow.max_duration).unwrap_or(Duration::MAX);
                start
                    .checked_add_signed(limit)
                    .unwrap_or(DateTime::<Utc>::MAX_UTC)
            });
        self.keep_timer(Rule::Deadline, deadline);
    }

    fn keep_timer(&mut self, rule: Rule, want: Option<DateTime<Utc>>) {
        let have = *self.s.upkeep.slot(rule);
        if have.map(|t| t.at) == want {
            return;
        }
        if let Some(t) = have {
            self.out.push(Command::CancelTimer { timer: t.id });
        }
        let set = want.map(|at| {
            let id = TimerId(self.s.next_id);
            self.s.next_id += 1;
            self.out.push(Command::SetTimer { timer: id, at });
            StepTimer { id, at }
        });
        *self.s.upkeep.slot(rule) = set;
    }
}
