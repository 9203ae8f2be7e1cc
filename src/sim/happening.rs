//! What the simulated Graph and the people on a call do, queued by time.
//!
//! A [`Happening`] is one thing Graph or a person does at a given simulated
//! time (a state change, a prompt ending, a key press, a hang-up); a
//! [`Scheduled`] item is a happening or one of the engine's timers. Plain
//! data: the [`world`](super::world) makes them happen.

use serde_json::Value;

use crate::engine::TimerId;
use crate::graph::wire::CallState;

use super::notify::SimResult;

/// Something Graph (or a person) does at a given time.
#[derive(Clone, Debug, PartialEq)]
pub enum Happening {
    /// A call changes state.
    State {
        /// The call.
        call: String,
        /// The new state.
        state: CallState,
        /// Its result, if any.
        result: Option<SimResult>,
        /// Why it ended, if it did.
        termination_reason: Option<String>,
        /// After a failed consultative transfer.
        replaces_context: Option<String>,
    },
    /// The media goes inactive.
    MediaInactive {
        /// The call.
        call: String,
    },
    /// A prompt finished.
    PromptDone {
        /// The call.
        call: String,
        /// The operation.
        operation: String,
        /// Its client context.
        context: Option<String>,
    },
    /// A `recordResponse` ends.
    RecordDone {
        /// The call.
        call: String,
        /// The operation.
        operation: String,
        /// Its client context.
        context: Option<String>,
        /// What the caller did.
        mode: super::behaviour::RecordMode,
        /// How long the caller spoke, in seconds.
        seconds: u32,
        /// Whether that is the most the request allowed.
        full: bool,
    },
    /// An invitation is answered.
    InviteDone {
        /// The call.
        call: String,
        /// The operation.
        operation: String,
        /// Its client context.
        context: Option<String>,
        /// Whether the participant joined.
        joined: bool,
    },
    /// The caller presses a key.
    Press {
        /// The call.
        call: String,
        /// The key.
        key: char,
    },
    /// The caller hangs up.
    CallerHangsUp {
        /// The call.
        call: String,
    },
    /// Graph drops an incoming call nobody answered within 15 s.
    AnswerDeadline {
        /// The call.
        call: String,
    },
    /// A meeting's roster.
    Roster {
        /// The call.
        call: String,
    },
    /// The old beta's transfer progress, as an operation.
    LegacyTransfer {
        /// The call.
        call: String,
        /// The operation id.
        operation: String,
        /// `transferring` or `transferAccepted`.
        stage: String,
        /// `running` or `completed`.
        status: String,
    },
    /// A recorded body, delivered as it is (replays).
    Recorded(Value),
}

/// One queued item: Graph's doing, or a timer of the engine.
#[derive(Clone, Debug, PartialEq)]
pub enum Scheduled {
    /// Graph or a person does something.
    Graph(Happening),
    /// A timer the engine set.
    Timer(TimerId),
}
