//! The control API under `/sim/…`: what a tester does to the simulated world.
//!
//! The routes and their bodies are listed in the [module docs](super).
//! The control API needs no token: it is the tester's, not the bot's.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::engine::Party;
use crate::graph::wire::{
    Call, CallDirection, CallState, IdentitySet, InvitationParticipantInfo, ParticipantInfo,
};
use crate::sim::behaviour::SimDuration;
use crate::sim::happening::Happening;
use crate::sim::notify::identity_json;
use crate::sim::scenario::PartyDef;

use super::Shared;
use super::error::RequestIds;
use super::faults::Faults;
use super::world::{CallRecord, Core};

type S = Arc<Shared>;

/// The routes of this module.
pub(crate) fn routes() -> Router<S> {
    Router::new()
        .route("/sim/calls", get(calls).post(incoming))
        .route("/sim/calls/existing", post(existing))
        .route("/sim/replay", post(replay))
        .route("/sim/calls/{id}", get(call))
        .route("/sim/calls/{id}/requests", get(requests))
        .route("/sim/calls/{id}/notifications", get(notifications))
        .route("/sim/calls/{id}/press", post(press))
        .route("/sim/calls/{id}/hangup", post(hangup))
        .route(
            "/sim/calls/{id}/faults",
            get(call_faults)
                .put(set_call_faults)
                .delete(drop_call_faults),
        )
        .route("/sim/faults", get(faults).put(set_faults))
        .route("/sim/clock", get(clock))
        .route("/sim/clock/advance", post(advance))
        .route("/sim/requests", get(unassigned))
}

/// `GET /sim/calls` as JSON.
pub(crate) fn list_calls(core: &Core) -> Value {
    let list: Vec<Value> = core
        .calls
        .iter()
        .map(|(id, r)| {
            json!({
                "id": id,
                "state": r.call.state.as_ref().map(CallState::as_str),
                "direction": r.call.direction,
                "callbackUri": r.callback_uri,
                "requests": r.requests.len(),
                "notifications": r.delivered().len(),
            })
        })
        .collect();
    json!({ "value": list })
}

fn ok(body: Value) -> Response {
    RequestIds::from_headers(&HeaderMap::new()).answer(200, Vec::new(), Some(&body))
}

fn refuse(status: u16, code: &str, message: &str) -> Response {
    RequestIds::from_headers(&HeaderMap::new()).error(status, code, message)
}

fn no_call(id: &str) -> Response {
    refuse(404, "NotFound", &format!("call {id} does not exist"))
}

fn parse<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, Box<Response>> {
    serde_json::from_slice(body).map_err(|e| {
        Box::new(refuse(
            400,
            "BadRequest",
            &format!("the body is not valid: {e}"),
        ))
    })
}

async fn calls(State(s): State<S>) -> Response {
    let mut core = s.core.lock().await;
    core.tick(&s);
    ok(list_calls(&core))
}

/// An incoming call to place.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct IncomingCall {
    /// `{}`: an anonymous caller (no number, no identity). A misspelt
    /// field is refused rather than read as anonymous.
    from: PartyDef,
    #[serde(default)]
    to: Option<PartyDef>,
    callback_uri: String,
}

fn callback_ok(uri: &str) -> bool {
    url::Url::parse(uri).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
}

async fn incoming(State(s): State<S>, body: Bytes) -> Response {
    let request: IncomingCall = match parse(&body) {
        Ok(r) => r,
        Err(e) => return *e,
    };
    if !callback_ok(&request.callback_uri) {
        return refuse(400, "BadRequest", "callbackUri must be an http(s) URL");
    }
    let from = Party::from(request.from);
    let to = request.to.map(Party::from).unwrap_or_else(|| Party {
        application: Some(s.config.bot_app_id.clone()),
        ..Party::default()
    });
    let identity =
        |p: &Party| -> IdentitySet { serde_json::from_value(identity_json(p)).unwrap_or_default() };
    let mut core = s.core.lock().await;
    core.tick(&s);
    let (id, notification) = core.graph.incoming_call(&from, &to);
    let call = Call {
        id: Some(id.clone()),
        state: Some(CallState::Incoming),
        direction: Some(CallDirection::Incoming),
        callback_uri: Some(request.callback_uri.clone()),
        source: Some(ParticipantInfo::new(identity(&from))),
        targets: Some(vec![InvitationParticipantInfo::new(identity(&to))]),
        tenant_id: Some(s.config.tenant_id.clone()),
        ..Call::default()
    };
    place(&s, &mut core, call, request.callback_uri, notification)
}

/// Records a call sim-graph placed, posts its first notification and
/// answers `201` with the call.
fn place(
    s: &S,
    core: &mut Core,
    call: Call,
    callback_uri: String,
    notification: Value,
) -> Response {
    let id = call.id.clone().unwrap_or_default();
    let body = serde_json::to_value(&call).unwrap_or(Value::Null);
    core.calls.insert(id, CallRecord::new(call, callback_uri));
    core.dispatch(s, vec![notification]);
    RequestIds::from_headers(&HeaderMap::new()).answer(201, Vec::new(), Some(&body))
}

/// A call the bot already has, placed elsewhere.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ExistingCall {
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    direction: Option<String>,
    callback_uri: String,
}

async fn existing(State(s): State<S>, body: Bytes) -> Response {
    let request: ExistingCall = match parse(&body) {
        Ok(r) => r,
        Err(e) => return *e,
    };
    if !callback_ok(&request.callback_uri) {
        return refuse(400, "BadRequest", "callbackUri must be an http(s) URL");
    }
    let state = match request.state.as_deref().unwrap_or("established") {
        s @ ("establishing" | "established" | "hold" | "transferring") => CallState::from_wire(s),
        other => {
            return refuse(
                400,
                "BadRequest",
                &format!(
                    "state `{other}`: a call the bot has is establishing, established, hold or transferring"
                ),
            );
        }
    };
    let (direction, wire_direction) = match request.direction.as_deref().unwrap_or("outgoing") {
        "outgoing" => (CallDirection::Outgoing, "outgoing"),
        "incoming" => (CallDirection::Incoming, "incoming"),
        other => {
            return refuse(
                400,
                "BadRequest",
                &format!("direction `{other}`: incoming or outgoing"),
            );
        }
    };
    let mut core = s.core.lock().await;
    core.tick(&s);
    let (id, notification) = core.graph.existing_call(&state, wire_direction);
    let call = Call {
        id: Some(id.clone()),
        state: Some(state),
        direction: Some(direction),
        callback_uri: Some(request.callback_uri.clone()),
        tenant_id: Some(s.config.tenant_id.clone()),
        my_participant_id: Some(format!("{id}-bot")),
        ..Call::default()
    };
    place(&s, &mut core, call, request.callback_uri, notification)
}

/// One recorded notification body and when Graph posted it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Recorded {
    at: chrono::DateTime<chrono::FixedOffset>,
    body: Value,
}

/// Recorded bodies to replay.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Replay {
    callback_uri: String,
    recording: Vec<Recorded>,
}

async fn replay(State(s): State<S>, body: Bytes) -> Response {
    let request: Replay = match parse(&body) {
        Ok(r) => r,
        Err(e) => return *e,
    };
    if !callback_ok(&request.callback_uri) {
        return refuse(400, "BadRequest", "callbackUri must be an http(s) URL");
    }
    let Some(first) = request.recording.first().map(|r| r.at) else {
        return refuse(400, "BadRequest", "recording is empty");
    };
    let mut calls = Vec::new();
    for (i, r) in request.recording.iter().enumerate() {
        let Some(id) = super::world::call_of(&r.body) else {
            return refuse(
                400,
                "BadRequest",
                &format!("recording[{i}]: not a commsNotifications body about a call"),
            );
        };
        if !calls.contains(&id) {
            calls.push(id);
        }
    }
    let mut core = s.core.lock().await;
    core.tick(&s);
    let now = core.now(&s);
    core.graph.make_passive();
    for id in &calls {
        let call = Call {
            id: Some(id.clone()),
            callback_uri: Some(request.callback_uri.clone()),
            tenant_id: Some(s.config.tenant_id.clone()),
            ..Call::default()
        };
        core.calls
            .entry(id.clone())
            .or_insert_with(|| CallRecord::new(call, request.callback_uri.clone()));
    }
    let count = request.recording.len();
    for r in request.recording {
        core.graph.schedule_recorded(now + (r.at - first), r.body);
    }
    core.tick(&s);
    ok(json!({ "scheduled": count, "calls": calls, "from": now }))
}

async fn call(State(s): State<S>, Path(id): Path<String>) -> Response {
    let mut core = s.core.lock().await;
    core.tick(&s);
    match core.calls.get(&id) {
        Some(r) => ok(json!({"call": r.call, "callbackUri": r.callback_uri, "faults": r.faults})),
        None => no_call(&id),
    }
}

async fn requests(State(s): State<S>, Path(id): Path<String>) -> Response {
    let mut core = s.core.lock().await;
    core.tick(&s);
    match core.calls.get(&id) {
        Some(r) => ok(json!({ "value": r.requests })),
        None => no_call(&id),
    }
}

async fn notifications(State(s): State<S>, Path(id): Path<String>) -> Response {
    let core = s.core.lock().await;
    match core.calls.get(&id) {
        Some(r) => ok(json!({ "value": r.delivered() })),
        None => no_call(&id),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Press {
    digits: String,
}

async fn press(State(s): State<S>, Path(id): Path<String>, body: Bytes) -> Response {
    let request: Press = match parse(&body) {
        Ok(r) => r,
        Err(e) => return *e,
    };
    if request.digits.is_empty()
        || !request
            .digits
            .chars()
            .all(|c| c.is_ascii_digit() || "*#ABCD".contains(c))
    {
        return refuse(
            400,
            "BadRequest",
            "digits must be keys 0-9, *, #, A-D, at least one",
        );
    }
    let mut core = s.core.lock().await;
    core.tick(&s);
    if !core.calls.contains_key(&id) {
        return no_call(&id);
    }
    let mut sent = 0;
    for key in request.digits.chars() {
        let bodies = core.graph.happen(Happening::Press {
            call: id.clone(),
            key,
        });
        if bodies.is_empty() {
            break;
        }
        sent += 1;
        core.dispatch(&s, bodies);
    }
    if sent == 0 {
        return refuse(
            409,
            "Conflict",
            &format!("call {id} is not established with tones subscribed: no key was pressed"),
        );
    }
    ok(json!({ "pressed": sent }))
}

async fn hangup(State(s): State<S>, Path(id): Path<String>) -> Response {
    let mut core = s.core.lock().await;
    core.tick(&s);
    if !core.calls.contains_key(&id) {
        return no_call(&id);
    }
    let bodies = core
        .graph
        .happen(Happening::CallerHangsUp { call: id.clone() });
    if bodies.is_empty() {
        return refuse(409, "Conflict", &format!("call {id} has already ended"));
    }
    core.dispatch(&s, bodies);
    RequestIds::from_headers(&HeaderMap::new()).answer(202, Vec::new(), None)
}

async fn call_faults(State(s): State<S>, Path(id): Path<String>) -> Response {
    let core = s.core.lock().await;
    match core.calls.get(&id) {
        Some(_) => ok(serde_json::to_value(core.faults_for(&id)).unwrap_or(Value::Null)),
        None => no_call(&id),
    }
}

async fn set_call_faults(State(s): State<S>, Path(id): Path<String>, body: Bytes) -> Response {
    let faults: Faults = match parse(&body) {
        Ok(f) => f,
        Err(e) => return *e,
    };
    let mut core = s.core.lock().await;
    match core.calls.get_mut(&id) {
        Some(r) => {
            if faults.never_answer {
                r.never_answers = true;
            }
            r.faults = Some(faults.clone());
            ok(serde_json::to_value(faults).unwrap_or(Value::Null))
        }
        None => no_call(&id),
    }
}

async fn drop_call_faults(State(s): State<S>, Path(id): Path<String>) -> Response {
    let mut core = s.core.lock().await;
    match core.calls.get_mut(&id) {
        Some(r) => {
            r.faults = None;
            RequestIds::from_headers(&HeaderMap::new()).answer(204, Vec::new(), None)
        }
        None => no_call(&id),
    }
}

async fn faults(State(s): State<S>) -> Response {
    let core = s.core.lock().await;
    ok(serde_json::to_value(&core.faults).unwrap_or(Value::Null))
}

async fn set_faults(State(s): State<S>, body: Bytes) -> Response {
    let faults: Faults = match parse(&body) {
        Ok(f) => f,
        Err(e) => return *e,
    };
    s.core.lock().await.faults = faults.clone();
    ok(serde_json::to_value(faults).unwrap_or(Value::Null))
}

async fn clock(State(s): State<S>) -> Response {
    let mut core = s.core.lock().await;
    core.tick(&s);
    let mode = match s.clock.mode {
        super::SimClock::RealTime { speed } => json!({"realTime": {"speed": speed}}),
        super::SimClock::Manual => json!("manual"),
    };
    ok(json!({
        "now": core.now(&s),
        "mode": mode,
        "nextDue": core.graph.next_happening(),
        "inFlight": s.in_flight.load(std::sync::atomic::Ordering::Acquire),
    }))
}

/// Forward `by` a duration, or `to` a time.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Advance {
    #[serde(default)]
    by: Option<SimDuration>,
    #[serde(default)]
    to: Option<chrono::DateTime<chrono::FixedOffset>>,
}

async fn advance(State(s): State<S>, body: Bytes) -> Response {
    let request: Advance = match parse(&body) {
        Ok(r) => r,
        Err(e) => return *e,
    };
    let mut core = s.core.lock().await;
    match (request.by, request.to) {
        (Some(by), None) => core.offset += by.chrono(),
        (None, Some(to)) => {
            let now = core.now(&s);
            let to = to.with_timezone(&chrono::Utc);
            if to > now {
                core.offset += to - now;
            }
        }
        _ => return refuse(400, "BadRequest", "give either `by` or `to`"),
    }
    core.tick(&s);
    ok(json!({"now": core.now(&s)}))
}

async fn unassigned(State(s): State<S>) -> Response {
    let core = s.core.lock().await;
    ok(json!({ "value": core.unassigned }))
}
