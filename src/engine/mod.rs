//! The pure interpreter: one call's run of one flow.
//!
//! [`step`] applies one [`Event`] to a [`Session`] at a given time and
//! returns the [`Command`]s to carry out: Graph requests with their exact
//! wire bodies, and timers. The same function runs production calls (fed by
//! Graph's notifications through [`Event::from_notification`]) and dry runs
//! (fed by [`crate::sim`]); there is no second interpreter. [`CallControl`]
//! is the seam to a Graph, and [`execute`] runs a command through one.
//!
//! This module must never do I/O, spawn tasks, read a clock or draw random
//! numbers: time comes in as `now`, and everything a run needs between two
//! events is in the (serialisable) `Session`.
//!
//! - [`event`]: [`Event`] and the translation of notifications.
//! - [`command`]: [`Command`], and requests in the flow file's words ([`RequestLine`]).
//! - [`session`]: [`Session`], its calls ([`Leg`]), [`Outcome`]s.
//! - [`identity`]: who the bot is, and which instance a session speaks as.
//! - [`timeline`]: what happened, renderable as text.
//! - [`control`]: [`CallControl`] and [`execute`].
//! - [`trigger`]: which incoming calls a flow takes.
//! - [`rules`]: the answer rule, `keepAlive`, the reaper and faults, as timers in the session.
//! - `run`, `actions`, `reactions`, `scope`: the interpreter itself.

mod actions;
pub mod command;
pub mod control;
pub mod event;
pub mod fetch;
pub mod identity;
pub mod leg;
pub mod outcome;
mod reactions;
pub mod request_line;
pub mod ring;
pub mod rules;
mod run;
pub mod scope;
pub mod session;
pub mod timeline;
pub mod trigger;

use chrono::{DateTime, Utc};

use crate::flow::Flow;

pub use command::{Command, CommandId, RequestKind, RequestLine, TimerId};

/// The timeline's words for [`Event::Resumed`].
pub const RESUMED: &str = "resumed after a restart";
pub use control::{CallControl, ControlError, execute};
pub use event::{Event, IncomingCall, OperationUpdate, Party, RosterEntry, StateChange};
pub use identity::{BotIdentity, Instance, UnknownInstance};
pub use outcome::{ActionDone, ActionOutcome};
pub use rules::{ANSWER_MARGIN, Applied, REAP_AFTER, Rule, Upkeep};
pub use run::{MAX_PENDING, MAX_STEPS_PER_EVENT};
pub use session::{
    ANSWER_WITHIN, Bot, EventJson, KEEP_ALIVE_EVERY, Leg, LegRole, MASK, Outcome, RunEnd, Secrets,
    Session, Waiting,
};
pub use timeline::{Entry, Timeline, TimelineEntry};
pub use trigger::matches_incoming;

/// Applies one event to a session at `now`; returns what to do.
///
/// The session must have been made for `flow` ([`Session::new`]) and fed
/// every earlier event of its call, in order. Duplicated and reordered
/// notifications are expected and handled; events for other calls are
/// recorded and ignored. Once the run has ended ([`Session::end`]), events
/// are still recorded (an `on.terminated` handler still logs) but no step
/// runs and nothing is sent, except hanging up a call Graph names late.
pub fn step(flow: &Flow, session: &mut Session, event: Event, now: DateTime<Utc>) -> Vec<Command> {
    let mut run = run::Run::new(flow, session, now);
    run.handle(event);
    run.out
}

/// What one [`step`] did: the commands, and the actions of steps that
/// finished (for metrics; the timeline says the same in words).
#[derive(Debug, Default)]
pub struct Stepped {
    /// What to do, as [`step`] returns it.
    pub commands: Vec<Command>,
    /// Each step whose action finished, in order, and how.
    pub actions: Vec<ActionDone>,
    /// What the session's own rules did (answer rule, keepAlive, reaper, fault).
    pub applied: Vec<Applied>,
}

/// [`step`], also saying which steps' actions finished and how.
pub fn step_reported(
    flow: &Flow,
    session: &mut Session,
    event: Event,
    now: DateTime<Utc>,
) -> Stepped {
    let mut run = run::Run::new(flow, session, now);
    run.handle(event);
    Stepped {
        commands: run.out,
        actions: run.actions,
        applied: run.applied,
    }
}

#[cfg(test)]
mod tests;
