//! What the page shows of a simulated call, a session, a scenario run: JSON
//! views of the simulator's and the runtime's own data.
//!
//! Times are given as offsets from the call's start (milliseconds) and as
//! local times in the flow's zone; each Graph request is shown as the
//! method, path and JSON body the Graph client would send. Read-only.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use serde_json::Value;

use crate::engine::{Command, Entry, RequestKind, TimelineEntry};
use crate::flow::Flow;
use crate::flow::diagram::{Walk, graph};
use crate::sim::Interactive;
use crate::sim::hours::CalendarState;
use crate::sim::interactive::Due;

/// One timeline entry.
#[derive(Clone, Debug, Serialize)]
pub struct EntryView {
    /// Milliseconds from the first entry.
    pub offset_ms: i64,
    /// The local time, `HH:MM:SS.mmm`.
    pub local: String,
    /// The step the run was in.
    pub step: Option<String>,
    /// `event`, `step`, `request`, `log`, `note`, `error`, `end`.
    pub kind: &'static str,
    /// What happened, as `callflow simulate` prints it.
    pub text: String,
}

/// A timeline as entries.
pub fn entries(timeline: &[TimelineEntry], start: DateTime<Utc>, tz: Tz) -> Vec<EntryView> {
    // The short form, as `callflow simulate` prints it without `--verbose`.
    timeline
        .iter()
        .filter(|e| !e.what.is_detail())
        .map(|e| EntryView {
            offset_ms: (e.at - start).num_milliseconds(),
            local: e.at.with_timezone(&tz).format("%H:%M:%S%.3f").to_string(),
            step: e.step.clone(),
            kind: e.what.kind(),
            text: e.what.short_text(),
        })
        .collect()
}

/// One Graph request as it would be sent.
#[derive(Clone, Debug, Serialize)]
pub struct RequestView {
    /// Milliseconds from the start, when known.
    pub offset_ms: Option<i64>,
    /// The request, as `expect` lines name it.
    pub kind: Option<RequestKind>,
    /// In the flow file's words (what timelines print).
    pub line: String,
    /// `POST`, `DELETE`.
    pub method: &'static str,
    /// The path under Graph's root (`/v1.0`); a `fetch`'s URL (not Graph).
    pub path: String,
    /// The JSON body, if any.
    pub body: Option<Value>,
}

/// The requests of a run, each with its time when the timeline has it.
pub fn requests(
    commands: &[Command],
    timeline: &[TimelineEntry],
    start: DateTime<Utc>,
) -> Vec<RequestView> {
    let times: Vec<(DateTime<Utc>, String)> = timeline
        .iter()
        .filter_map(|e| match &e.what {
            Entry::Request(line) => Some((e.at, line.to_string())),
            _ => None,
        })
        .collect();
    commands
        .iter()
        .filter(|c| c.is_request())
        .enumerate()
        .map(|(i, c)| {
            let kind = c.kind();
            let (method, path, body) = match c {
                // Not Graph: the designer's service, as the request says
                // (secrets stay names; a secret collect's digits masked).
                Command::Fetch { request, .. } => (
                    request.method.as_str(),
                    request.url.clone(),
                    request.body.clone(),
                ),
                // Not Graph either: the server's turn counter of the group.
                Command::TakeTurn { group, .. } => ("TAKE", group.clone(), None),
                _ => {
                    let (method, path) = kind.map_or(("POST", String::new()), |k| {
                        k.route(c.call_id().unwrap_or("{id}"))
                    });
                    let body = serde_json::to_value(c)
                        .ok()
                        .and_then(|v| v.as_object()?.values().next()?.get("body").cloned());
                    (method, path, body)
                }
            };
            RequestView {
                offset_ms: times.get(i).map(|(at, _)| (*at - start).num_milliseconds()),
                kind,
                line: times.get(i).map_or_else(
                    || kind.map_or_else(String::new, |k| k.as_str().to_owned()),
                    |(_, l)| l.clone(),
                ),
                method,
                path,
                body,
            }
        })
        .collect()
}

/// The path a timeline went through on its flow's diagram.
pub fn walk(flow: &Flow, timeline: &[TimelineEntry]) -> Walk {
    graph(flow).path(timeline.iter().filter_map(|e| match &e.what {
        Entry::Enter { step, via } => Some((step.as_str(), via.as_str())),
        _ => None,
    }))
}

/// Each calendar of `flow` at `at`.
pub fn calendars(flow: &Flow, at: DateTime<Utc>) -> Vec<CalendarView> {
    let local = at.with_timezone(&flow.timezone).naive_local();
    flow.calendars
        .iter()
        .map(|(name, c)| CalendarView {
            name: name.clone(),
            state: CalendarState::of(c, local),
        })
        .collect()
}

/// A calendar's state at a moment.
#[derive(Clone, Debug, Serialize)]
pub struct CalendarView {
    /// Its name.
    pub name: String,
    /// `open`, `closed` or `holiday`.
    pub state: CalendarState,
}

/// A simulated call as the page shows it.
#[derive(Clone, Debug, Serialize)]
pub struct SimView {
    /// The call's id in the studio.
    pub id: String,
    /// The flow file.
    pub file: String,
    /// The flow.
    pub flow: String,
    /// When it started (RFC 3339, in the flow's zone).
    pub started: String,
    /// The simulated time now (RFC 3339, in the flow's zone).
    pub now: String,
    /// Milliseconds since the start.
    pub offset_ms: i64,
    /// Whether the run has ended.
    pub ended: bool,
    /// How it ended.
    pub outcome: Option<String>,
    /// The flow's own name for the end (a step's `end:`), if any.
    pub end: Option<String>,
    /// The current (or last) step.
    pub step: Option<String>,
    /// What the step waits for, as the session says it.
    pub waiting: Value,
    /// Whether a key pressed now reaches the flow.
    pub hears_keys: bool,
    /// Whether the caller is still on the line.
    pub caller_on_line: bool,
    /// What happens next if time passes.
    pub next: Option<Due>,
    /// The flow's calendars at the start.
    pub calendars: Vec<CalendarView>,
    /// The timeline so far.
    pub timeline: Vec<EntryView>,
    /// The Graph requests so far.
    pub requests: Vec<RequestView>,
    /// The path so far on the diagram.
    pub walk: Walk,
    /// Problems of the simulation outside the flow.
    pub problems: Vec<String>,
}

/// The view of `sim`.
pub fn sim_view(id: &str, file: &str, sim: &Interactive) -> SimView {
    let flow = sim.flow();
    let tz = flow.timezone;
    let start = sim.started();
    let session = sim.session();
    let rfc = |t: DateTime<Utc>| {
        t.with_timezone(&tz)
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, false)
    };
    SimView {
        id: id.to_owned(),
        file: file.to_owned(),
        flow: flow.name.clone(),
        started: rfc(start),
        now: rfc(sim.now()),
        offset_ms: (sim.now() - start).num_milliseconds(),
        ended: sim.is_ended(),
        outcome: sim.outcome().map(|o| o.as_str().to_owned()),
        end: session.end.as_ref().and_then(|e| e.name.clone()),
        step: session.step_name(flow).map(str::to_owned),
        waiting: serde_json::to_value(sim.waiting()).unwrap_or(Value::Null),
        hears_keys: sim.hears_keys(),
        caller_on_line: sim.caller_on_line(),
        next: sim.next_due(),
        calendars: calendars(flow, start),
        timeline: entries(&session.timeline.entries, start, tz),
        requests: requests(sim.commands(), &session.timeline.entries, start),
        walk: walk(flow, &session.timeline.entries),
        problems: sim.problems().to_vec(),
    }
}
