//! What the runtime shows of itself: the live flows and the last reload,
//! sessions (summary and detail). Serialisable, read-only snapshots; the
//! server turns them into JSON as they are.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::engine::{Outcome, TimelineEntry};

/// One flow of the live set.
#[derive(Clone, Debug, Serialize)]
pub struct FlowStatus {
    /// The flow's name.
    pub name: String,
    /// The set version in which this exact text was first loaded.
    pub version: u64,
    /// The file it was read from.
    pub file: String,
    /// SHA-256 of the file, or of the file and the calendar files it uses
    /// (what a session records as its `flow_version`).
    pub sha256: String,
    /// `incoming_call`, `state_change` or `api`.
    pub trigger: &'static str,
}

/// The last reload, successful or not.
#[derive(Clone, Debug, Serialize)]
pub struct ReloadOutcome {
    /// Whether a new set replaced the old one.
    pub ok: bool,
    /// The live set's version after the reload (unchanged when refused).
    pub version: u64,
    /// When.
    pub at: DateTime<Utc>,
    /// Flows in the live set after the reload.
    pub flows: usize,
    /// Errors found (the set was refused when any).
    pub errors: usize,
    /// Every diagnostic (errors and warnings), as `callflow validate --format json` writes them.
    pub diagnostics: Vec<Value>,
    /// Every diagnostic rendered as text, as `callflow validate` prints it.
    pub rendered: Vec<String>,
}

/// The live flow set and the last reload (`GET /api/flows`).
#[derive(Clone, Debug, Serialize)]
pub struct FlowsStatus {
    /// `ok`, or `stale` when the last reload was refused (the old set still serves).
    pub status: &'static str,
    /// The live set's version (1 at start, +1 per successful reload).
    pub version: u64,
    /// The folder watched.
    pub dir: String,
    /// The live flows.
    pub flows: Vec<FlowStatus>,
    /// The last reload (the load at start counts).
    pub last_reload: ReloadOutcome,
    /// The last refused reload, if any since the last successful one.
    pub last_error: Option<ReloadOutcome>,
}

/// One session, briefly (`GET /api/sessions`).
#[derive(Clone, Debug, Serialize)]
pub struct SessionSummary {
    /// The session's id.
    pub id: String,
    /// The flow it runs.
    pub flow: String,
    /// The flow file's SHA-256 the session started with.
    pub version: String,
    /// The current (or last) step.
    pub step: Option<String>,
    /// `starting`, `running` or `ended`.
    pub state: &'static str,
    /// How the run ended, once it has.
    pub outcome: Option<Outcome>,
    /// The flow's own name for the end (a step's `end:`), once the run
    /// ended through such a step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    /// When the run started.
    pub started_at: Option<DateTime<Utc>>,
    /// The Graph ids of the session's calls.
    pub calls: Vec<String>,
    /// Live, and evicted: its state is in the store, not in memory, until
    /// a notification or its next deadline loads it back (shown only
    /// when `true`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub evicted: bool,
}

/// One page of `GET /api/sessions`.
#[derive(Clone, Debug, Serialize)]
pub struct SessionsPage {
    /// The sessions of the page: live ones first, then ended ones, newest first.
    pub sessions: Vec<SessionSummary>,
    /// How many there are in all.
    pub total: usize,
    /// The offset of the next page, when there is one.
    pub next: Option<usize>,
}

/// One session in full (`GET /api/sessions/{id}`).
#[derive(Clone, Debug, Serialize)]
pub struct SessionDetail {
    /// The summary.
    #[serde(flatten)]
    pub summary: SessionSummary,
    /// Why the run ended, if it has.
    pub reason: Option<String>,
    /// The flow's variables now.
    pub vars: Map<String, Value>,
    /// The parameters of an `api` start.
    pub params: Map<String, Value>,
    /// What happened, in order.
    pub timeline: Vec<TimelineEntry>,
    /// The timeline as text (in the flow's timezone), in its short form
    /// (`?verbose=true`: every entry, with Graph's operation ids).
    pub timeline_text: String,
    /// The flow's time zone, for [`SessionDetail::verbose`].
    #[serde(skip)]
    pub timezone: chrono_tz::Tz,
}

impl SessionDetail {
    /// The same detail with the timeline's text in its verbose form.
    pub fn verbose(mut self) -> Self {
        let timeline = crate::engine::Timeline {
            entries: self.timeline.clone(),
            dropped: 0,
        };
        self.timeline_text = timeline.render_with(self.timezone, true);
        self
    }
}
