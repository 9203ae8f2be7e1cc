//! sim-graph's state: the simulated Graph, the clock that drives it, and
//! what sim-graph keeps about each call (its callback URI, its faults, its
//! request log, the body `GET` returns).
//!
//! The simulated Graph only knows simulated time; [`Core::tick`] moves it to
//! "now" (the real clock times `speed`, plus any manual advance) and takes
//! every happening that fell due, in order. Each notification body then
//! goes through [`Core::dispatch`]: faults, the call's own callback URI,
//! the mirror of the call's state, and the call's delivery queue. Nothing
//! here does I/O; [`super::delivery`] posts.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::engine::TimerId;
use crate::graph::wire::{Call, CallState, ResultInfo};
use crate::sim::SimGraph;
use crate::sim::happening::Scheduled;

use super::Shared;
use super::delivery::{self, Delivered, Outgoing};
use super::faults::Faults;

/// Marks a body held back by the `delay` fault, so that it is not held twice.
const DELAYED: &str = "@sim.delayed";

/// One Graph request as sim-graph received and answered it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoggedRequest {
    /// Arrival order across every call (from 1): requests at the same
    /// simulated instant are told apart by it.
    pub seq: u64,
    /// Simulated time of arrival.
    pub at: DateTime<Utc>,
    /// `GET`, `POST`, `DELETE`.
    pub method: String,
    /// The path, from the API version on (`/v1.0/communications/calls/…`).
    pub path: String,
    /// The caller's `client-request-id`.
    pub client_request_id: Option<String>,
    /// The body as JSON, or as text when it was not JSON; `null` when empty.
    pub body: Value,
    /// The status sim-graph answered.
    pub status: u16,
    /// Graph's error code when it refused.
    pub error: Option<String>,
}

/// What sim-graph keeps about one call.
pub struct CallRecord {
    /// The call as `GET` returns it, kept up to date from the notifications.
    pub call: Call,
    /// Where its notifications go.
    pub callback_uri: String,
    /// Its own faults, replacing the global ones.
    pub faults: Option<Faults>,
    /// The Graph requests about it.
    pub requests: Vec<LoggedRequest>,
    /// The notifications posted about it, with their outcome.
    pub delivered: Arc<Mutex<Vec<Delivered>>>,
    /// The callee never answers (`never_answer` when it was created).
    pub never_answers: bool,
    outbox: Option<mpsc::UnboundedSender<Outgoing>>,
}

impl CallRecord {
    /// A record for `call`, posting to `callback_uri`.
    pub fn new(call: Call, callback_uri: String) -> Self {
        CallRecord {
            call,
            callback_uri,
            faults: None,
            requests: Vec::new(),
            delivered: Arc::new(Mutex::new(Vec::new())),
            never_answers: false,
            outbox: None,
        }
    }

    /// A copy of the delivery log.
    pub fn delivered(&self) -> Vec<Delivered> {
        self.delivered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The mutable state, behind one async lock.
pub struct Core {
    /// The simulated Graph.
    pub graph: SimGraph,
    /// Calls by id, in creation order.
    pub calls: IndexMap<String, CallRecord>,
    /// Faults for every call that has none of its own.
    pub faults: Faults,
    /// Requests that name no known call (or failed before creating one).
    pub unassigned: Vec<LoggedRequest>,
    /// Manual advances of the clock.
    pub offset: chrono::Duration,
    marker: u64,
    /// Requests logged so far.
    logged: u64,
}

impl Core {
    /// A core around `graph`.
    pub fn new(graph: SimGraph, faults: Faults) -> Self {
        Core {
            graph,
            calls: IndexMap::new(),
            faults,
            unassigned: Vec::new(),
            offset: chrono::Duration::zero(),
            marker: 0,
            logged: 0,
        }
    }

    /// The simulated time now.
    pub fn now(&self, shared: &Shared) -> DateTime<Utc> {
        shared.clock.now(self.offset).max(self.graph.now())
    }

    /// The faults in force for `call_id` (its own, else the global ones).
    pub fn faults_for(&self, call_id: &str) -> Faults {
        self.calls
            .get(call_id)
            .and_then(|r| r.faults.clone())
            .unwrap_or_else(|| self.faults.clone())
    }

    /// Moves the simulated Graph to now and posts what fell due.
    pub fn tick(&mut self, shared: &Arc<Shared>) {
        let until = self.now(shared);
        self.marker += 1;
        let marker = TimerId(u64::MAX - self.marker);
        self.graph.set_marker(until, marker);
        let mut bodies = Vec::new();
        while let Some((_, item)) = self.graph.pop() {
            match item {
                Scheduled::Timer(t) if t == marker => break,
                Scheduled::Timer(_) => {}
                Scheduled::Graph(h) => bodies.extend(self.graph.happen(h)),
            }
        }
        self.dispatch(shared, bodies);
    }

    /// Sends notification bodies on their way, through the faults.
    pub fn dispatch(&mut self, shared: &Arc<Shared>, bodies: Vec<Value>) {
        for mut body in bodies {
            let Some(call_id) = call_of(&body) else {
                continue;
            };
            let faults = self.faults_for(&call_id);
            let delayed = body
                .as_object_mut()
                .and_then(|o| o.remove(DELAYED))
                .is_some();
            if !delayed && let Some(delay) = faults.delay {
                body[DELAYED] = Value::Bool(true);
                let at = self.graph.now() + delay.chrono();
                self.graph.schedule_recorded(at, body);
                continue;
            }
            let Some(record) = self.calls.get_mut(&call_id) else {
                continue;
            };
            if record.never_answers && reports_state(&body, "established") {
                continue;
            }
            rewrite_callback(&mut body, &record.callback_uri);
            mirror(&mut record.call, &body);
            let outgoing = Outgoing {
                uri: record.callback_uri.clone(),
                body,
                duplicate: faults.duplicate,
                reorder: faults.reorder,
            };
            let outbox = record.outbox.get_or_insert_with(|| {
                delivery::spawn(Arc::clone(shared), Arc::clone(&record.delivered))
            });
            // Counted until the bot has answered it (see `delivery`).
            shared.in_flight.fetch_add(1, Ordering::AcqRel);
            if outbox.send(outgoing).is_err() {
                // A closed queue means sim-graph is shutting down.
                shared.in_flight.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }

    /// Closes every delivery queue (their workers end once drained).
    pub fn close(&mut self) {
        for record in self.calls.values_mut() {
            record.outbox = None;
        }
    }

    /// Logs a request under its call, or as unassigned, numbering it.
    pub fn log(&mut self, call_id: Option<&str>, mut entry: LoggedRequest) {
        self.logged += 1;
        entry.seq = self.logged;
        match call_id.and_then(|id| self.calls.get_mut(id)) {
            Some(record) => record.requests.push(entry),
            None => self.unassigned.push(entry),
        }
    }
}

/// The call a notification body is about, from its first resource path.
pub fn call_of(body: &Value) -> Option<String> {
    let n = body.get("value")?.get(0)?;
    let path = n
        .get("resourceUrl")
        .or_else(|| n.get("resource"))?
        .as_str()?;
    let rest = path.split("/calls/").nth(1)?;
    rest.split('/')
        .next()
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn is_call_resource(n: &Value) -> bool {
    n.get("resourceUrl")
        .or_else(|| n.get("resource"))
        .and_then(Value::as_str)
        .and_then(|p| p.split("/calls/").nth(1))
        .is_some_and(|rest| !rest.contains('/'))
}

fn reports_state(body: &Value, state: &str) -> bool {
    body.get("value")
        .and_then(Value::as_array)
        .is_some_and(|list| {
            list.iter().any(|n| {
                is_call_resource(n)
                    && n.pointer("/resourceData/state").and_then(Value::as_str) == Some(state)
            })
        })
}

fn rewrite_callback(body: &mut Value, uri: &str) {
    let Some(list) = body.get_mut("value").and_then(Value::as_array_mut) else {
        return;
    };
    for n in list {
        if n.get("callbackUri").is_some() {
            n["callbackUri"] = Value::String(uri.to_owned());
        }
        if let Some(data) = n.get_mut("resourceData").and_then(Value::as_object_mut)
            && data.contains_key("callbackUri")
        {
            data.insert("callbackUri".into(), Value::String(uri.to_owned()));
        }
    }
}

/// Keeps `call` (what `GET` returns) in step with a notification about it.
fn mirror(call: &mut Call, body: &Value) {
    let Some(list) = body.get("value").and_then(Value::as_array) else {
        return;
    };
    for n in list.iter().filter(|n| is_call_resource(n)) {
        let Some(data) = n.get("resourceData").and_then(Value::as_object) else {
            continue;
        };
        if let Some(state) = data.get("state").and_then(Value::as_str) {
            call.state = Some(CallState::from_wire(state));
        }
        if let Some(result) = data.get("resultInfo")
            && let Ok(r) = serde_json::from_value::<ResultInfo>(result.clone())
        {
            call.result_info = Some(r);
        }
        if let Some(reason) = data.get("terminationReason").and_then(Value::as_str) {
            call.termination_reason = Some(reason.to_owned());
        }
        if let Some(tone) = data.get("toneInfo")
            && let Ok(t) = serde_json::from_value(tone.clone())
        {
            call.tone_info = Some(t);
        }
        if let Some(media) = data.get("mediaState")
            && let Ok(m) = serde_json::from_value(media.clone())
        {
            call.media_state = Some(m);
        }
    }
}
