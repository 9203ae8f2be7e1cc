//! How a run ends: the [`Outcome`] every run records, and its [`RunEnd`].
//!
//! Plain data; only the interpreter decides an outcome.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How a run ended. Every run ends with one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A transfer completed (7015 or `AppTransferred`).
    Transferred,
    /// The incoming call was redirected.
    Redirected,
    /// The incoming call was rejected.
    Rejected,
    /// The bot hung up (a `hangup` step, or the flow ended on a live call).
    HungUp,
    /// The caller (or the far end of an outgoing call) hung up.
    CallerHungUp,
    /// The bot joined a meeting and the flow ended there; the bot stays.
    Joined,
    /// A failure no step routed, or the step limit; the bot hung up.
    Error,
}

impl Outcome {
    /// Every outcome.
    pub const ALL: [Outcome; 7] = [
        Outcome::Transferred,
        Outcome::Redirected,
        Outcome::Rejected,
        Outcome::HungUp,
        Outcome::CallerHungUp,
        Outcome::Joined,
        Outcome::Error,
    ];

    /// The snake_case name used in scenarios and timelines.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Transferred => "transferred",
            Outcome::Redirected => "redirected",
            Outcome::Rejected => "rejected",
            Outcome::HungUp => "hung_up",
            Outcome::CallerHungUp => "caller_hung_up",
            Outcome::Joined => "joined",
            Outcome::Error => "error",
        }
    }

    /// The outcome named `name`, if any.
    ///
    /// [`crate::flow::BUILTIN_ENDS`] holds the same names, for the checks
    /// of a step's `end:` (a test keeps them equal).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == name)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The recorded end of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunEnd {
    /// How it ended.
    pub outcome: Outcome,
    /// When.
    pub at: DateTime<Utc>,
    /// The step it ended in, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// Why, for errors and unexpected ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The flow's own name for the end (the last `end:` of a step the
    /// run went through), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// How one step's action finished, for counting (`callflow_actions_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionOutcome {
    /// It did what it does (`next`, a menu key, a switch branch, or it
    /// ended the run as it should: a transfer, a hang-up, a reject).
    Ok,
    /// It failed (`on_failure`, `on.error`, or the run ended in `error`).
    Failure,
    /// Its time ran out (`on_timeout`).
    Timeout,
    /// A menu got keys no choice matches (`on_invalid`).
    Invalid,
    /// Something else cut it short: an `on.<state>` handler, or the caller
    /// hanging up.
    Interrupted,
}

impl ActionOutcome {
    /// Every action outcome.
    pub const ALL: [ActionOutcome; 5] = [
        ActionOutcome::Ok,
        ActionOutcome::Failure,
        ActionOutcome::Timeout,
        ActionOutcome::Invalid,
        ActionOutcome::Interrupted,
    ];

    /// The snake_case name used in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionOutcome::Ok => "ok",
            ActionOutcome::Failure => "failure",
            ActionOutcome::Timeout => "timeout",
            ActionOutcome::Invalid => "invalid",
            ActionOutcome::Interrupted => "interrupted",
        }
    }

    /// How an action that ended the run with `outcome` finished.
    pub fn of_run_end(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Error => ActionOutcome::Failure,
            Outcome::CallerHungUp => ActionOutcome::Interrupted,
            _ => ActionOutcome::Ok,
        }
    }
}

/// One step's action that finished during a [`step`](super::step).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ActionDone {
    /// The action's kind, as in flow files (`answer`, `menu`, `transfer`, …).
    pub action: &'static str,
    /// How it finished.
    pub outcome: ActionOutcome,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flow_checker_knows_every_outcome() {
        let names: Vec<&str> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
        assert_eq!(names, crate::flow::BUILTIN_ENDS);
    }
}
