//! Why the runtime refused work: [`Overloaded`] and [`StartError`].

use serde::Serialize;

/// [`Runtime::submit`](super::Runtime::submit) could not queue some events: too many sessions, a
/// call's queue full, or the runtime shutting down. The caller should answer
/// `503` with `Retry-After` so that Graph sends the batch again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{refused} event(s) refused ({reason}); {queued} queued")]
pub struct Overloaded {
    /// Why.
    pub reason: &'static str,
    /// Events queued before the refusal (a retry of the batch repeats them;
    /// the engine ignores duplicates).
    pub queued: usize,
    /// Events not queued.
    pub refused: usize,
}

/// Why [`Runtime::start_api_flow`](super::Runtime::start_api_flow) did not start a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "error", rename_all = "camelCase")]
pub enum StartError {
    /// No flow has that name.
    #[error("no flow is named {flow:?}")]
    UnknownFlow {
        /// The name asked for.
        flow: String,
    },
    /// The flow does not have an `api` trigger.
    #[error("flow {flow:?} is not started by `api`")]
    NotApi {
        /// The flow.
        flow: String,
    },
    /// The parameters do not match the flow's declaration; every problem is listed.
    #[error("invalid parameters: {}", problems.join("; "))]
    InvalidParams {
        /// One line per problem.
        problems: Vec<String>,
    },
    /// Too many live sessions.
    #[error("too many live sessions ({max})")]
    Overloaded {
        /// The limit.
        max: usize,
    },
    /// The runtime is shutting down.
    #[error("the runtime is shutting down")]
    ShuttingDown,
}
