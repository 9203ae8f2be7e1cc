//! The simulated Graph: the seeds' state machines under a simulated clock.
//!
//! [`SimGraph`] implements [`CallControl`]: each request is checked like
//! Graph would (a call must exist and be live; bodies must pass Graph's
//! limits), answered at once, and schedules what Graph and the people on the
//! call do next (`establishing`/`established`, `transferring`,
//! `transferAccepted`, `terminated` with 7015 or `AppTransferred`, a failure
//! back to `established` with 500/7000 or 7700, prompts completing as
//! operations, key presses, the caller hanging up, a roster after joining a
//! meeting). Everything is ordered by simulated time in one queue;
//! [`runner`](super::runner) pops it and feeds `engine::step`. Faults come
//! from [`GraphBehaviour`]. Deterministic: no wall clock, no randomness. A
//! request for a terminated call is refused and recorded as a violation.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Duration, Utc};
use indexmap::IndexMap;
use serde_json::Value;

use crate::engine::{CallControl, ControlError, Party, RequestKind, TimerId};
use crate::graph::wire::{
    AnswerRequest, Call, CallState, CommsOperation, InviteParticipantsRequest, OperationStatus,
    PlayPromptRequest, RecordResponseRequest, RedirectRequest, RejectRequest,
    SubscribeToToneRequest, TransferRequest,
};

use super::behaviour::GraphBehaviour;
pub use super::happening::{Happening, Scheduled};
use super::notify::{Notifier, SimResult};
use super::world::DEFAULT_RECORDINGS_BASE;
use super::world::{Kind, SimCall, World, graph_errors, refused};

/// The simulated Graph's id for the bot's application.
pub const BOT_APP_ID: &str = "2891555a-92ff-42e6-80fa-6e1300c6b5c6";

/// The simulated Graph. Shared by reference; its state sits behind a mutex.
pub struct SimGraph {
    world: Mutex<World>,
}

impl SimGraph {
    /// A simulated Graph at time `now`, posting to `callback_uri`.
    pub fn new(
        behaviour: GraphBehaviour,
        callback_uri: impl Into<String>,
        now: DateTime<Utc>,
    ) -> Self {
        let notifier = Notifier {
            callback_uri: callback_uri.into(),
            legacy: behaviour.legacy,
        };
        SimGraph {
            world: Mutex::new(World {
                now,
                queue: BTreeMap::new(),
                seq: 0,
                calls: IndexMap::new(),
                dtmf: behaviour.dtmf.iter().cloned().collect(),
                behaviour,
                notifier,
                transfers: 0,
                outgoing: 0,
                joins: 0,
                recordings: 0,
                invites: 0,
                agent_calls: IndexMap::new(),
                fetches: IndexMap::new(),
                turns: IndexMap::new(),
                recorded: IndexMap::new(),
                recordings_base: DEFAULT_RECORDINGS_BASE.to_owned(),
                delivered: Vec::new(),
                next_op: 1,
                violations: Vec::new(),
                passive: false,
                parties: Vec::new(),
            }),
        }
    }

    /// A Graph that accepts every request and does nothing on its own: for
    /// replaying recorded notifications.
    pub fn passive(callback_uri: impl Into<String>, now: DateTime<Utc>) -> Self {
        let g = SimGraph::new(GraphBehaviour::default(), callback_uri, now);
        g.lock().passive = true;
        g
    }

    fn lock(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The simulated time.
    pub fn now(&self) -> DateTime<Utc> {
        self.lock().now
    }

    /// Places an incoming call from `from` to `to` now; returns its body and id.
    pub fn incoming_call(&self, from: &Party, to: &Party) -> (String, Value) {
        let mut w = self.lock();
        let id = w.new_call_id();
        w.calls.insert(
            id.clone(),
            // A call to a number reaches an application instance (the only
            // holder of a number); one to the bot's application id does not.
            SimCall::new(
                Kind::Incoming,
                CallState::Incoming,
                false,
                to.phone.is_some() || to.application.as_deref().is_some_and(|a| a != BOT_APP_ID),
            ),
        );
        w.parties.push(from.clone());
        let body = w.notifier.incoming(&id, from, to);
        let now = w.now;
        w.schedule(
            now + Duration::seconds(15),
            Happening::AnswerDeadline { call: id.clone() },
        );
        w.schedule_far_end(&id);
        (id, body)
    }

    /// A call that already exists, in `state` (a group call the bot placed
    /// elsewhere, for `state_change` flows); returns its body and id.
    pub fn existing_call(&self, state: &CallState, direction: &str) -> (String, Value) {
        let mut w = self.lock();
        let id = w.new_call_id();
        w.calls.insert(
            id.clone(),
            SimCall::new(Kind::Outgoing, state.clone(), true, true),
        );
        let mut body = w.notifier.state(&id, state, None, None, None);
        if let Some(data) = body.pointer_mut("/value/0/resourceData") {
            data["direction"] = Value::String(direction.to_owned());
            data["id"] = Value::String(id.clone());
        }
        w.schedule_far_end(&id);
        (id, body)
    }

    /// Queues a recorded body for delivery at `at`.
    pub fn schedule_recorded(&self, at: DateTime<Utc>, body: Value) {
        self.lock().schedule(at, Happening::Recorded(body));
    }

    /// Queues a timer of the engine.
    pub fn set_timer(&self, at: DateTime<Utc>, timer: TimerId) {
        let mut w = self.lock();
        let key = w.key(at);
        w.queue.insert(key, Scheduled::Timer(timer));
    }

    /// Queues a timer that comes after everything due at `at`, what people
    /// do included (a marker: sim-graph pops up to it to make what fell due
    /// happen).
    pub fn set_marker(&self, at: DateTime<Utc>, timer: TimerId) {
        self.lock()
            .queue
            .insert((at, u64::MAX), Scheduled::Timer(timer));
    }

    /// Drops a timer of the engine.
    pub fn cancel_timer(&self, timer: TimerId) {
        self.lock()
            .queue
            .retain(|_, s| *s != Scheduled::Timer(timer));
    }

    /// Takes the next item, moving the clock to its time.
    pub fn pop(&self) -> Option<(DateTime<Utc>, Scheduled)> {
        let mut w = self.lock();
        let (key, item) = w.queue.pop_first()?;
        w.now = w.now.max(key.0);
        Some((key.0, item))
    }

    /// Whether any queued item is one `f` says yes to.
    pub fn any_queued(&self, f: impl Fn(&Scheduled) -> bool) -> bool {
        self.lock().queue.values().any(f)
    }

    /// The next queued item and when it is due, without taking it.
    pub fn peek(&self) -> Option<(DateTime<Utc>, Scheduled)> {
        let w = self.lock();
        w.queue.iter().next().map(|((at, _), s)| (*at, s.clone()))
    }

    /// Moves the clock forward to `at` (never back).
    pub fn advance_to(&self, at: DateTime<Utc>) {
        let mut w = self.lock();
        w.now = w.now.max(at);
    }

    /// The first call placed: the caller's (or the callee of the bot's
    /// first outgoing call).
    pub fn first_call(&self) -> Option<String> {
        self.lock().calls.keys().next().cloned()
    }

    /// Whether Graph would deliver a key pressed on `call` now: the call is
    /// established and the bot subscribed to its tones.
    pub fn hears_keys(&self, call: &str) -> bool {
        self.lock()
            .calls
            .get(call)
            .is_some_and(|c| c.state == CallState::Established && c.subscribed)
    }

    /// Whether `call` exists and has not terminated.
    pub fn is_live(&self, call: &str) -> bool {
        self.lock()
            .calls
            .get(call)
            .is_some_and(|c| c.state != CallState::Terminated)
    }

    /// Queues what a person does now (a key, a hang-up): after whatever
    /// Graph does at this instant.
    pub fn person_now(&self, h: Happening) {
        let mut w = self.lock();
        let now = w.now;
        w.schedule_person(now, h);
    }

    /// Drops queued happenings that can no longer do anything: the answer
    /// deadline of a call already answered or rejected, a hang-up of a call
    /// that has ended. (Making them happen would do nothing either.)
    pub fn drop_moot(&self) {
        let mut w = self.lock();
        let calls = &w.calls;
        let moot = |h: &Happening| match h {
            Happening::AnswerDeadline { call } => calls
                .get(call)
                .is_none_or(|c| c.decided || c.state != CallState::Incoming),
            Happening::CallerHangsUp { call } => calls
                .get(call)
                .is_none_or(|c| c.state == CallState::Terminated),
            _ => false,
        };
        let dropped: Vec<_> = w
            .queue
            .iter()
            .filter(|(_, s)| matches!(s, Scheduled::Graph(h) if moot(h)))
            .map(|(k, _)| *k)
            .collect();
        for k in dropped {
            w.queue.remove(&k);
        }
    }

    /// When the earliest happening (not an engine timer) is due.
    pub fn next_happening(&self) -> Option<DateTime<Utc>> {
        self.lock()
            .queue
            .iter()
            .find(|(_, s)| matches!(s, Scheduled::Graph(_)))
            .map(|((at, _), _)| *at)
    }

    /// From now on, accept every request and do nothing on its own (as
    /// [`SimGraph::passive`]): for replaying recorded notifications.
    pub fn make_passive(&self) {
        self.lock().passive = true;
    }

    /// Whether anything is queued other than the engine's timers.
    pub fn has_pending_happenings(&self) -> bool {
        self.lock()
            .queue
            .values()
            .any(|s| matches!(s, Scheduled::Graph(_)))
    }

    /// Makes a happening happen now; returns the bodies Graph posts.
    pub fn happen(&self, h: Happening) -> Vec<Value> {
        let mut w = self.lock();
        let bodies = w.happen(h);
        if w.behaviour.duplicate {
            bodies.iter().flat_map(|b| [b.clone(), b.clone()]).collect()
        } else {
            bodies
        }
    }

    /// Checks a transfer as Graph would (see `World::transfer_refusal`)
    /// without carrying it out: for sim-graph, when a fault decides how
    /// the transfer ends.
    ///
    /// # Errors
    ///
    /// Graph's refusal.
    pub fn check_transfer(
        &self,
        call_id: &str,
        body: &TransferRequest,
    ) -> Result<(), ControlError> {
        self.lock().transfer_refusal(call_id, body).map(|_| ())
    }

    /// Where its recordings are downloaded from (`{base}/{operation id}`).
    pub fn set_recordings_base(&self, base: impl Into<String>) {
        self.lock().recordings_base = base.into();
    }

    /// The audio of the recording at `location`, for the bearer of its token.
    ///
    /// # Errors
    ///
    /// `404` for no such recording, `401` for a wrong token.
    pub fn recording(&self, location: &str, access_token: &str) -> Result<Vec<u8>, ControlError> {
        self.lock().download_recording(location, access_token)
    }

    /// The recordings delivered in process so far: name and size.
    pub fn delivered(&self) -> Vec<(String, usize)> {
        self.lock().delivered.clone()
    }

    /// Requests Graph refused because their call had ended or never existed.
    pub fn violations(&self) -> Vec<String> {
        self.lock().violations.clone()
    }
}

impl CallControl for SimGraph {
    async fn answer(&self, call_id: &str, body: &AnswerRequest) -> Result<(), ControlError> {
        let mut w = self.lock();
        w.decide(RequestKind::Answer, call_id)?;
        if body.callback_uri.is_empty() {
            return Err(refused(400, "BadRequest", "answer needs a callbackUri"));
        }
        w.burst(vec![
            (500, World::state(call_id, CallState::Establishing)),
            (1000, World::state(call_id, CallState::Established)),
        ]);
        Ok(())
    }

    async fn reject(&self, call_id: &str, _body: &RejectRequest) -> Result<(), ControlError> {
        let mut w = self.lock();
        w.decide(RequestKind::Reject, call_id)?;
        w.burst(vec![(200, World::ended(call_id, None, None))]);
        Ok(())
    }

    async fn redirect(&self, call_id: &str, body: &RedirectRequest) -> Result<(), ControlError> {
        let mut w = self.lock();
        body.validate()
            .map_err(|e| graph_errors::bad_request(e.to_string()))?;
        let to_phone = body.targets.iter().any(|t| t.identity.phone.is_some());
        if to_phone && !w.passive && w.calls.get(call_id).is_some_and(|c| !c.instance) {
            return Err(graph_errors::source_identity_invalid(&format!(
                "call {call_id} reached the bot's application, not an application instance"
            )));
        }
        w.decide(RequestKind::Redirect, call_id)?;
        w.burst(vec![(500, World::ended(call_id, None, None))]);
        Ok(())
    }

    async fn transfer(&self, call_id: &str, body: &TransferRequest) -> Result<(), ControlError> {
        self.lock().transfer(call_id, body)
    }

    async fn create_call(&self, body: &Call) -> Result<Call, ControlError> {
        let mut w = self.lock();
        if w.passive {
            let id = format!("replay-call-{}", w.calls.len() + 1);
            w.calls.insert(
                id.clone(),
                SimCall::new(Kind::Outgoing, CallState::Establishing, true, true),
            );
            let mut created = body.clone();
            created.id = Some(id);
            return Ok(created);
        }
        w.create_call(body)
    }

    async fn play_prompt(
        &self,
        call_id: &str,
        body: &PlayPromptRequest,
    ) -> Result<CommsOperation, ControlError> {
        self.lock().play_prompt(call_id, body)
    }

    async fn subscribe_to_tone(
        &self,
        call_id: &str,
        body: &SubscribeToToneRequest,
    ) -> Result<CommsOperation, ControlError> {
        let mut w = self.lock();
        w.established(RequestKind::SubscribeToTone, call_id)?;
        if let Some(c) = w.call_mut(call_id) {
            c.subscribed = true;
        }
        let id = w.new_op_id();
        Ok(CommsOperation {
            id,
            status: Some(OperationStatus::Completed),
            client_context: body.client_context.clone(),
            ..CommsOperation::default()
        })
    }

    async fn record_response(
        &self,
        call_id: &str,
        body: &RecordResponseRequest,
    ) -> Result<CommsOperation, ControlError> {
        self.lock().record_response(call_id, body)
    }

    async fn cancel_media_processing(
        &self,
        call_id: &str,
        body: &crate::graph::wire::CancelMediaProcessingRequest,
    ) -> Result<CommsOperation, ControlError> {
        self.lock().cancel_media_processing(call_id, body)
    }

    async fn download_recording(
        &self,
        location: &str,
        access_token: &str,
    ) -> Result<Vec<u8>, ControlError> {
        self.lock().download_recording(location, access_token)
    }

    async fn deliver_recording(&self, name: &str, audio: Vec<u8>) -> Result<String, ControlError> {
        let mut w = self.lock();
        w.delivered.push((name.to_owned(), audio.len()));
        Ok(format!("sim://recordings/{name}"))
    }

    async fn invite(
        &self,
        call_id: &str,
        body: &InviteParticipantsRequest,
    ) -> Result<CommsOperation, ControlError> {
        self.lock().invite(call_id, body)
    }

    async fn hangup(&self, call_id: &str) -> Result<(), ControlError> {
        let mut w = self.lock();
        w.live(RequestKind::Hangup, call_id)?;
        w.burst(vec![(
            200,
            World::ended(
                call_id,
                Some(SimResult::new(200, 7000, "The bot ended the call")),
                None,
            ),
        )]);
        Ok(())
    }

    async fn keep_alive(&self, call_id: &str) -> Result<(), ControlError> {
        self.lock().live(RequestKind::KeepAlive, call_id)
    }

    async fn fetch(
        &self,
        request: &crate::engine::fetch::FetchRequest,
    ) -> Result<crate::engine::fetch::FetchAnswer, ControlError> {
        self.lock().fetch(request)
    }

    async fn take_turn(&self, group: &str) -> Result<u64, ControlError> {
        Ok(self.lock().take_turn(group))
    }
}
