//! Dry runs: a simulated Graph, scenarios and replays, driving the one interpreter.
//!
//! The simulator plays Microsoft Graph's side of a call (the state machines
//! of the seed pages) under a simulated clock, with fault injection, and
//! drives [`crate::engine::step`] exactly as production does: notifications
//! go through the production reader, requests through
//! [`CallControl`](crate::engine::CallControl). It must never interpret a flow itself, read
//! the wall clock or draw random numbers: a simulation is a pure function of
//! the flow, the options and the simulated start time.
//!
//! - [`simulate`]: one call, as a [`Timeline`].
//! - [`runner::run`] / [`runner::replay`]: one call or a recording, with
//!   every request and problem ([`SimRun`]).
//! - [`scenario`]: scenario files (`callflow test`): load, run, compare,
//!   coverage.
//! - [`hours`]: where a call goes at each hour of a week (`callflow hours`).
//! - [`interactive`]: one call clicked through step by step (the studio).
//! - [`graph`]: the simulated Graph ([`SimGraph`]); [`behaviour`]: how it
//!   behaves ([`GraphBehaviour`]); [`notify`]: the bodies it posts.

pub mod behaviour;
pub mod coverage;
pub mod expect;
pub mod graph;
pub mod happening;
pub mod hours;
pub mod http;
pub mod interactive;
pub mod notify;
pub mod report;
pub mod runner;
pub mod scenario;
mod world;

use crate::engine::Timeline;
use crate::flow::Flow;

pub use behaviour::{
    AgentMode, CallMode, GraphBehaviour, JoinMode, PerAttempt, SimDuration, TimedPress,
    TransferMode,
};
pub use graph::SimGraph;
pub use interactive::Interactive;
pub use runner::{
    SimRun, SimulateOptions, check_start_params, default_bot, default_identity, replay, run,
};

/// Simulates one call of `flow` and returns its timeline (the run's end,
/// and any problem the simulation found, are in the last entries).
pub fn simulate(flow: &Flow, options: &SimulateOptions) -> Timeline {
    let run = runner::run(flow, options);
    let mut timeline = run.session.timeline;
    let at = timeline
        .entries
        .last()
        .map(|e| e.at)
        .unwrap_or(options.clock);
    for p in run.problems {
        timeline.push(
            at,
            None,
            crate::engine::Entry::Error(format!("simulation: {p}")),
        );
    }
    timeline
}
