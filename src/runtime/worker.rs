//! One session's task: applies its call's events in order, carries out the
//! commands, keeps the timers the engine sets (its step's, and its rules':
//! the answer rule, `keepAlive`, the reaper) and tells the engine of a
//! panic.
//!
//! The task owns nothing shared except its [`SessionCell`] (the session
//! behind a mutex, held only while `engine::step` runs, never across an
//! `await`, so that the admin API can read it). It never decides what a
//! flow does, nor when a call is rejected, kept alive or reaped: every
//! decision is `engine::step`'s.

use std::any::Any;
use std::collections::VecDeque;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::FutureExt;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::engine::{self, CallControl, Command, CommandId, Event, Session, StateChange, TimerId};
use crate::flow::Flow;
use crate::graph::wire::{Call, CallState};

use super::table::{Parked, ParkedState};
use super::{Inner, SessionDetail, SessionSummary, lock, metrics};

/// What a session's queue carries.
pub(super) enum Input {
    /// An event of one of its calls, with when `submit` received it and
    /// its journal sequence number (when it was journaled).
    Event(Event, Instant, Option<Journaled>),
}

/// An event's journal entry.
#[derive(Clone, Copy, Debug)]
pub(super) struct Journaled {
    /// Its sequence number.
    pub(super) seq: u64,
    /// When it was received, for an entry applied again at a restart (it
    /// is applied at that time, as it was or would have been before).
    pub(super) at: Option<DateTime<Utc>>,
}

/// How long a session whose run has ended and whose calls are all down
/// stays, to absorb Graph's late notifications quietly.
const LINGER: Duration = Duration::from_secs(10);

/// How long the state a journaled notification changed may wait before it
/// is stored, when the notification caused no Graph request: until then the
/// journal holds it (a restart applies it again), and the writes of many
/// notifications of one call become one. With [`DEFER_EVENTS`], the store's
/// snapshot policy: a state is stored before every Graph request it causes,
/// after at most 16 journaled events, and 5 to 10 s after the first (by the
/// session's id: [`deferral`]; 2 s before schema 5: under load, about one
/// state write for two notifications).
const DEFER_STATE: Duration = Duration::from_secs(10);

/// The most journaled events whose state is deferred (a restart applies
/// at most this many again per session; well under its queue's bound).
const DEFER_EVENTS: usize = 16;

/// How long this session's replayable state waits: between half of
/// [`DEFER_STATE`] and all of it, by its id. Sessions that all changed at
/// once (every call after a restart, or a load's first burst) then do not
/// all come due in the same instant.
fn deferral(id: &str) -> Duration {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    id.hash(&mut h);
    let half = DEFER_STATE / 2;
    half + half.mul_f64((h.finish() % 1024) as f64 / 1024.0)
}

/// What a panic said, if it said it as text.
fn panic_message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|m| (*m).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into())
}

fn std_to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::days(365 * 30))
}

/// A [`CallControl`] behind a trait object.
pub(super) trait DynControl: Send + Sync {
    fn execute<'a>(
        &'a self,
        command: &'a Command,
    ) -> Pin<Box<dyn Future<Output = Option<Event>> + Send + 'a>>;

    /// `GET` of a call (`None`: this control cannot tell).
    fn get_call<'a>(
        &'a self,
        call_id: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<Option<Call>, engine::ControlError>> + Send + 'a>>;
}

/// Any `CallControl`, as a [`DynControl`].
pub(super) struct Control<C>(pub(super) Arc<C>);

impl<C: CallControl + Send + Sync + 'static> DynControl for Control<C> {
    fn execute<'a>(
        &'a self,
        command: &'a Command,
    ) -> Pin<Box<dyn Future<Output = Option<Event>> + Send + 'a>> {
        Box::pin(engine::execute(&*self.0, command))
    }

    fn get_call<'a>(
        &'a self,
        call_id: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<Option<Call>, engine::ControlError>> + Send + 'a>> {
        Box::pin(self.0.get_call(call_id))
    }
}

/// One session, shared between its task and the admin API.
pub(super) struct SessionCell {
    pub(super) id: Arc<str>,
    pub(super) flow: Arc<Flow>,
    session: Mutex<Session>,
    busy: AtomicBool,
    /// Another instance holds it now: it stops here without being stored.
    pub(super) dropped: AtomicBool,
    /// Its `POST /communications/calls` requests not answered yet.
    creates: AtomicUsize,
}

impl SessionCell {
    pub(super) fn new(flow: Arc<Flow>, session: Session) -> Self {
        SessionCell {
            id: session.id.as_str().into(),
            flow,
            session: Mutex::new(session),
            busy: AtomicBool::new(false),
            dropped: AtomicBool::new(false),
            creates: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Session> {
        lock(&self.session)
    }

    /// Whether a create of this session is in flight.
    pub(super) fn creating(&self) -> bool {
        self.creates.load(Ordering::Acquire) > 0
    }

    /// Whether the task is handling an event now.
    pub(super) fn is_busy(&self) -> bool {
        self.busy.load(Ordering::Acquire)
    }

    /// The Graph ids of the session's calls.
    pub(super) fn call_ids(&self) -> Vec<String> {
        self.lock()
            .legs
            .iter()
            .filter_map(|l| l.call_id.clone())
            .collect()
    }

    pub(super) fn summary(&self) -> SessionSummary {
        let s = self.lock();
        self.summary_of(&s)
    }

    fn summary_of(&self, s: &Session) -> SessionSummary {
        summary(s, s.step_name(&self.flow).map(str::to_owned))
    }

    pub(super) fn detail(&self) -> SessionDetail {
        let s = self.lock();
        detail(&s, self.summary_of(&s), self.flow.timezone)
    }
}

fn summary(s: &Session, step: Option<String>) -> SessionSummary {
    SessionSummary {
        id: s.id.clone(),
        flow: s.flow.clone(),
        version: s.flow_version.clone(),
        step,
        state: if s.is_ended() {
            "ended"
        } else if s.is_started() {
            "running"
        } else {
            "starting"
        },
        outcome: s.outcome(),
        end: s.end.as_ref().and_then(|e| e.name.clone()),
        started_at: s.started_at,
        calls: s.legs.iter().filter_map(|l| l.call_id.clone()).collect(),
        evicted: false,
    }
}

/// An evicted session as the store holds it, on its pinned `flow`.
pub(super) fn evicted_summary(s: &Session, flow: &Flow) -> SessionSummary {
    let mut summary = summary(s, s.step_name(flow).map(str::to_owned));
    summary.evicted = true;
    summary
}

/// [`evicted_summary`] with the timeline (in the flow's time zone).
pub(super) fn evicted_detail(s: &Session, flow: &Flow) -> SessionDetail {
    detail(s, evicted_summary(s, flow), flow.timezone)
}

fn detail(s: &Session, summary: SessionSummary, tz: chrono_tz::Tz) -> SessionDetail {
    SessionDetail {
        summary,
        reason: s.end.as_ref().and_then(|e| e.reason.clone()),
        vars: s.vars.clone(),
        params: s.params.clone(),
        timeline: s.timeline.entries.clone(),
        timeline_text: s.timeline.render(tz),
        timezone: tz,
    }
}

/// A session read back from the store (an ended one: its last step is the
/// one its run ended in), with its timeline in `tz`.
pub(super) fn stored_detail(s: &Session, tz: chrono_tz::Tz) -> SessionDetail {
    let step = s.end.as_ref().and_then(|e| e.step.clone());
    detail(s, summary(s, step), tz)
}

struct Worker {
    inner: Arc<Inner>,
    cell: Arc<SessionCell>,
    /// The session's timers (its step's and its rules'), as the engine set them.
    timers: Vec<(TimerId, DateTime<Utc>)>,
    ended_at: Option<DateTime<Utc>>,
    /// Calls the session created (routed to it; forgotten when it retires).
    owned: Vec<String>,
    /// A fault was reported to the engine: a second one is only logged.
    faulted: bool,
    /// Requests decided (and stored) whose result has not been applied.
    inflight: Vec<Command>,
    /// Journal entries applied since the state was last stored.
    applied: Vec<u64>,
    /// The engine reaped the session: it retires once its hang-ups are sent.
    reaped: bool,
    /// When the state changed by journaled events (`applied`) must be
    /// stored at the latest ([`DEFER_STATE`]); `None` when it is stored.
    save_by: Option<Instant>,
    /// How many of the timeline's entries the store holds as rows.
    timeline_stored: usize,
    /// Whether the store holds the session as it is now (its last write
    /// succeeded and nothing changed since).
    clean: bool,
    /// When the session is evicted if nothing happens until then.
    evict_at: Option<Instant>,
}

/// A [`super::store::Persisted`] by reference: serialised to the same JSON.
#[derive(serde::Serialize)]
struct PersistedRef<'a> {
    session: &'a Session,
    timers: &'a [(TimerId, DateTime<Utc>)],
    inflight: &'a [Command],
    owned: &'a [String],
}

/// A session's runtime state as it was stored (see [`super::store::Persisted`]).
pub(super) struct Restored {
    /// How many of the session's timeline entries the store holds as rows.
    pub(super) timeline_stored: usize,
    pub(super) timers: Vec<(TimerId, DateTime<Utc>)>,
    pub(super) inflight: Vec<Command>,
    pub(super) owned: Vec<String>,
    /// Back after a stop (a restart, a take-over): reconciled with Graph,
    /// then the engine hears [`Event::Resumed`]. `false` for a session
    /// loaded back after an eviction: it never stopped.
    pub(super) resume: bool,
}

/// The request a result event settles.
fn settles(event: &Event, inflight: &[Command]) -> Option<CommandId> {
    match event {
        Event::Accepted { command, .. }
        | Event::RequestFailed { command, .. }
        | Event::Fetched { command, .. }
        | Event::Turn { command, .. }
        | Event::RecordingSaved { command, .. } => Some(*command),
        Event::CallCreated { tag: created, .. } => inflight.iter().find_map(|c| match c {
            Command::CreateCall { id, tag, .. } if tag == created => Some(*id),
            _ => None,
        }),
        _ => None,
    }
}

/// Runs one session until its calls are down (and a short linger), it is
/// reaped, or the runtime shuts down (its queue closes).
pub(super) async fn run(
    inner: Arc<Inner>,
    cell: Arc<SessionCell>,
    mut rx: mpsc::Receiver<Box<Input>>,
    restored: Option<Restored>,
) {
    let mut w = Worker {
        inner,
        cell,
        timers: Vec::new(),
        ended_at: None,
        owned: Vec::new(),
        faulted: false,
        inflight: Vec::new(),
        applied: Vec::new(),
        reaped: false,
        save_by: None,
        timeline_stored: 0,
        clean: false,
        evict_at: None,
    };
    // Events handled since the last turn, and the deadline being handled:
    // both are released only once the next sleep is registered, so that a
    // manual clock never sees this task idle with its next deadline unknown.
    let mut handled = 0;
    let mut _woken = None;
    if let Some(r) = restored {
        w.timers = r.timers;
        w.inflight = r.inflight;
        w.owned = r.owned;
        w.timeline_stored = r.timeline_stored;
        if r.resume {
            // The journal's events this session had applied before the stop and
            // whose state was not stored yet (it may wait, see [`DEFER_STATE`])
            // were queued before this task started: applied first, they bring
            // the session back to where it was; then it is reconciled.
            let mut replayed = 0;
            while let Ok(input) = rx.try_recv() {
                let Input::Event(event, received, journaled) = *input;
                w.applied.extend(journaled.map(|j| j.seq));
                Box::pin(w.drain(VecDeque::from([event]), Some(received), journaled)).await;
                replayed += 1;
            }
            Box::pin(w.reconcile()).await;
            w.inner.pending.fetch_sub(1 + replayed, Ordering::AcqRel);
        } else {
            // Loaded back after an eviction, as it was stored: what queued
            // meanwhile is handled in order below. The load was work in
            // flight, released like a handled event.
            w.clean = true;
            handled = 1;
        }
    }
    let mut finished = false;
    let evict_after = w.inner.evict_after();
    let idle_until = || evict_after.map(|d| Instant::now() + d);
    w.evict_at = idle_until();
    loop {
        let sleep = match w.next_deadline() {
            Some(at) => w.inner.clock.sleep_until(at),
            None => Box::pin(std::future::pending()),
        };
        if handled > 0 {
            w.inner.pending.fetch_sub(handled, Ordering::AcqRel);
            handled = 0;
        }
        _woken = None;
        let save_by = w.save_by;
        let evict_at = w.evict_at;
        tokio::select! {
            biased;
            input = rx.recv() => match input {
                Some(input) => {
                    let Input::Event(event, received, journaled) = *input;
                    w.applied.extend(journaled.map(|j| j.seq));
                    // Boxed: the task's idle footprint stays small.
                    Box::pin(w.drain(VecDeque::from([event]), Some(received), journaled)).await;
                    handled += 1;
                    w.evict_at = idle_until();
                }
                None => break,
            },
            () = async { tokio::time::sleep_until(save_by.unwrap_or_else(Instant::now)).await },
                if save_by.is_some() => {
                Box::pin(w.store_state(true, true)).await;
            }
            wake = sleep => {
                _woken = Some(wake);
                if !Box::pin(w.on_deadline()).await {
                    finished = true;
                    break;
                }
                w.evict_at = idle_until();
            }
            () = async { tokio::time::sleep_until(evict_at.unwrap_or_else(Instant::now)).await },
                if evict_at.is_some() => {
                if Box::pin(w.evict(&rx)).await {
                    // Out of memory now: its state is stored and its calls
                    // route to it; a notification or its deadline loads it.
                    metrics::inc(&w.inner.metrics.evictions);
                    w.inner.metrics.sessions_evicted.fetch_add(1, Ordering::Relaxed);
                    if w.inner.tasks.fetch_sub(1, Ordering::AcqRel) == 1 {
                        w.inner.tasks_done.notify_waiters();
                    }
                    return;
                }
                w.evict_at = idle_until();
            }
        }
        if w.reaped {
            finished = true;
            break;
        }
        if w.cell.dropped.load(Ordering::Acquire) {
            break;
        }
    }
    // Whatever is still queued will not be handled: it is no longer pending.
    rx.close();
    while rx.try_recv().is_ok() {
        handled += 1;
    }
    w.inner.pending.fetch_sub(handled, Ordering::AcqRel);
    // A session stopped by a shutdown stays live in the store: the next
    // start picks it up. One that finished, or whose run is over with all
    // its calls down (lingering), is stored as ended.
    let over = {
        let s = w.cell.lock();
        s.is_ended() && s.live_call_ids().is_empty()
    };
    if !w.cell.dropped.load(Ordering::Acquire) {
        w.save(!(finished || over)).await;
    }
    let end = w.cell.lock().end.clone();
    if let Some(end) = end {
        // Only names the flow declares become labels: their number is
        // bounded by the flows loaded.
        let name = end
            .name
            .as_deref()
            .filter(|n| w.cell.flow.ends().contains(n));
        w.inner.metrics.count_end(end.outcome, name);
    }
    w.inner.retire(&w.cell, std::mem::take(&mut w.owned));
    if w.inner.tasks.fetch_sub(1, Ordering::AcqRel) == 1 {
        w.inner.tasks_done.notify_waiters();
    }
}

impl Worker {
    fn linger_deadline(&self) -> Option<DateTime<Utc>> {
        self.ended_at
            .map(|at| at + std_to_chrono(LINGER.min(self.inner.config.idle_reap_after)))
    }

    fn next_deadline(&self) -> Option<DateTime<Utc>> {
        self.timers
            .iter()
            .map(|(_, at)| *at)
            .chain(self.linger_deadline())
            .min()
    }

    /// Evicts the session if it may go (nothing queued, in flight or
    /// unstored, no create, no secret, its run not over): stores it first
    /// if the store does not hold it as it is, then, under the table's lock
    /// (so that no event can be queued meanwhile), swaps its route for its
    /// next deadline. `true` when it is evicted: the task ends.
    async fn evict(&mut self, rx: &mpsc::Receiver<Box<Input>>) -> bool {
        {
            let s = self.cell.lock();
            // Secrets live in memory only: evicted, they would be lost.
            if s.is_ended() || !s.secrets.vars.is_empty() || !s.secrets.digits.is_empty() {
                return false;
            }
        }
        if self.reaped
            || self.faulted
            || self.ended_at.is_some()
            || !self.inflight.is_empty()
            || self.cell.creating()
            || self.cell.dropped.load(Ordering::Acquire)
            || !rx.is_empty()
        {
            return false;
        }
        if !self.clean || self.save_by.is_some() || !self.applied.is_empty() {
            // A deferred write (or one that failed) first: evicted only once stored.
            Box::pin(self.save(true)).await;
            if !self.clean {
                return false;
            }
        }
        let deadline = self.next_deadline();
        let id = self.cell.id.clone();
        let mut table = lock(&self.inner.table);
        if !rx.is_empty() || self.inner.closing.load(Ordering::Acquire) {
            return false;
        }
        let ours = table
            .sessions
            .get(&id)
            .is_some_and(|r| Arc::ptr_eq(&r.cell, &self.cell));
        if !ours {
            return false;
        }
        table.sessions.remove(&id);
        let earliest = table.wheel.first().map(|(at, _)| *at);
        if let Some(at) = deadline {
            table.wheel.insert((at, id.clone()));
        }
        table.parked.insert(
            id,
            Parked {
                flow: self.cell.flow.clone(),
                state: ParkedState::Evicted { deadline },
            },
        );
        drop(table);
        if deadline.is_some_and(|at| earliest.is_none_or(|e| at < e)) {
            self.inner.wheel_changed.notify_one();
        }
        tracing::debug!(session = %self.cell.id, next = ?deadline, "idle session evicted: stored, out of memory");
        true
    }

    /// Handles whatever deadline passed; `false` to stop the session.
    async fn on_deadline(&mut self) -> bool {
        let now = self.inner.clock.now();
        if let Some(i) = self.timers.iter().position(|(_, at)| *at <= now) {
            let (timer, _) = self.timers.swap_remove(i);
            metrics::inc(&self.inner.metrics.timers_fired);
            self.feed(Event::TimerFired { timer }, None).await;
            return true;
        }
        self.linger_deadline().is_none_or(|l| l > now)
    }

    /// Feeds one event (not journaled), then the results of the requests
    /// it caused, in order.
    async fn feed(&mut self, first: Event, received: Option<Instant>) {
        self.drain(VecDeque::from([first]), received, None).await;
    }

    /// Feeds every event of `queue`, and the results of the requests they
    /// cause; `received` is when `submit` took the first one, `journaled`
    /// whether the store's journal holds it (then, when it causes no Graph
    /// request, storing the state may wait: see [`DEFER_STATE`]).
    async fn drain(
        &mut self,
        mut queue: VecDeque<Event>,
        mut received: Option<Instant>,
        journaled: Option<Journaled>,
    ) {
        self.cell.busy.store(true, Ordering::Release);
        self.clean = false;
        // Whether only journaled events were applied: a request's result,
        // a timer or a fault is in no journal, so its state is stored now.
        let mut replayable = journaled.is_some();
        // A journal entry applied again at a restart is applied at the time
        // it was received; what follows from it, now.
        let mut at = journaled.and_then(|j| j.at);
        while let Some(event) = queue.pop_front() {
            if let Some(command) = settles(&event, &self.inflight) {
                self.inflight.retain(|c| c.id() != Some(command));
            }
            let now = at.take().unwrap_or_else(|| self.inner.clock.now());
            let fault = matches!(event, Event::Fault { .. });
            let stepped = {
                let mut s = self.cell.lock();
                std::panic::catch_unwind(AssertUnwindSafe(|| {
                    engine::step_reported(&self.cell.flow, &mut s, event, now)
                }))
            };
            let stepped = match stepped {
                Ok(stepped) => stepped,
                Err(panic) => {
                    let message = panic_message(&*panic);
                    if fault {
                        self.last_resort(&message).await;
                        break;
                    }
                    self.fault(&mut queue, "the engine", message);
                    continue;
                }
            };
            self.inner.metrics.count_actions(&stepped.actions);
            self.count_rules(&stepped.applied);
            let requests = self.write_ahead(stepped.commands).await;
            replayable &= requests.is_empty();
            if self.cell.dropped.load(Ordering::Acquire) {
                // Another instance holds the session: nothing is sent from here.
                queue.clear();
                break;
            }
            for cmd in requests {
                if let Err(message) = self.carry_out(cmd, &mut queue, &mut received).await {
                    self.fault(&mut queue, "the Graph client", message);
                    break;
                }
            }
        }
        let done = {
            let s = self.cell.lock();
            s.is_ended() && s.live_call_ids().is_empty()
        };
        if done && self.ended_at.is_none() {
            self.ended_at = Some(self.inner.clock.now());
        }
        let dropped = self.cell.dropped.load(Ordering::Acquire);
        // Deferred only on a store this instance has alone: in a cluster,
        // the next holder of the session starts from its stored state.
        if !dropped
            && replayable
            && !done
            && !self.faulted
            && self.inner.config.cluster.is_none()
            && self.applied.len() < DEFER_EVENTS
        {
            let id = &self.cell.id;
            self.save_by
                .get_or_insert_with(|| Instant::now() + deferral(id));
        } else if !dropped {
            self.save(true).await;
        }
        self.cell.busy.store(false, Ordering::Release);
    }

    /// Keeps the timers a step set, and, when it asks for Graph requests,
    /// stores the session (with the requests as in flight) before any is
    /// sent: a restart then knows they may have reached Graph, and never
    /// sends them again blindly. Returns the requests to send.
    async fn write_ahead(&mut self, commands: Vec<Command>) -> Vec<Command> {
        let mut requests = Vec::with_capacity(commands.len());
        for cmd in commands {
            match cmd {
                Command::SetTimer { timer, at } => {
                    self.timers.retain(|(t, _)| *t != timer);
                    self.timers.push((timer, at));
                }
                Command::CancelTimer { timer } => self.timers.retain(|(t, _)| *t != timer),
                cmd => requests.push(cmd),
            }
        }
        if !requests.is_empty() && self.inner.config.store.durable() {
            self.inflight
                .extend(requests.iter().filter(|c| c.id().is_some()).cloned());
            self.save(true).await;
        }
        requests
    }

    /// Writes the session's state to the store (`live`: still running or
    /// lingering), with the journal entries it has applied.
    async fn save(&mut self, live: bool) {
        self.store_state(live, false).await;
    }

    /// [`Worker::save`]; `deferred` when nothing waits for it (a state a
    /// restart can rebuild from the journal): the store may write it after
    /// later writes of other sessions ([`super::store::Store::write_deferred`]).
    async fn store_state(&mut self, live: bool, deferred: bool) {
        self.save_by = None;
        let store = &self.inner.config.store;
        if !store.durable() {
            return;
        }
        let now = self.inner.clock.now();
        let rows = store.timeline_rows();
        let mut writes = Vec::with_capacity(2);
        let stored = {
            let mut s = self.cell.lock();
            // The timeline's new entries go to rows of their own (the state's
            // JSON then holds none: it is not rewritten with every step).
            let entries = if rows {
                let total = s.timeline.entries.len();
                let from = self.timeline_stored.min(total);
                let fresh: Vec<String> = s.timeline.entries[from..]
                    .iter()
                    .map(|e| serde_json::to_string(e).unwrap_or_default())
                    .collect();
                if !fresh.is_empty() {
                    writes.push(super::store::Write::Timeline {
                        session: s.id.clone(),
                        from: u32::try_from(from).unwrap_or(u32::MAX),
                        entries: fresh,
                    });
                }
                Some(std::mem::take(&mut s.timeline.entries))
            } else {
                None
            };
            // Serialised in place (the same JSON as a `Persisted`), not cloned first.
            let persisted = PersistedRef {
                session: &s,
                timers: &self.timers,
                inflight: &self.inflight,
                owned: &self.owned,
            };
            let state = serde_json::to_string(&persisted).unwrap_or_default();
            let total = entries.as_ref().map(Vec::len);
            if let Some(entries) = entries {
                s.timeline.entries = entries;
            }
            writes.insert(
                0,
                super::store::Write::Session {
                    record: super::store::SessionRecord {
                        id: s.id.clone(),
                        flow: s.flow.clone(),
                        flow_version: s.flow_version.clone(),
                        live,
                        state,
                        updated_at: now,
                        ended_at: (!live).then(|| s.end.as_ref().map_or(now, |e| e.at)),
                    },
                    applied: std::mem::take(&mut self.applied),
                },
            );
            total
        };
        let written = if deferred {
            store.write_deferred(writes)
        } else {
            store.write(writes)
        };
        match written.await {
            Ok(()) => {
                if let Some(total) = stored {
                    self.timeline_stored = total;
                }
                self.clean = true;
            }
            Err(e) => {
                self.clean = false;
                let fenced = matches!(e, super::store::StoreError::Fenced(_));
                if fenced || self.inner.config.cluster.is_some() {
                    // Another instance took the session (its lease had
                    // expired here), or, with other instances on the store,
                    // its state could not be stored: this one stops, sending
                    // nothing more; the session goes on from its last stored
                    // state, here or on another instance, once its lease is
                    // free.
                    if !fenced {
                        metrics::inc(&self.inner.metrics.store_errors);
                    }
                    tracing::warn!(session = %self.cell.id, error = %e,
                        "the session stops here: another instance holds it, or its state could \
                         not be stored");
                    self.cell.dropped.store(true, Ordering::Release);
                    metrics::inc(&self.inner.metrics.sessions_fenced);
                    self.inner.drop_session(&self.cell.id);
                    if fenced && let Some(cluster) = &self.inner.config.cluster {
                        cluster.nudge(&self.cell.id);
                    }
                    return;
                }
                metrics::inc(&self.inner.metrics.store_errors);
                tracing::error!(session = %self.cell.id, error = %e, "the session's state could not be stored");
            }
        }
    }

    /// After a restart: each call still up in the session is asked of
    /// Graph (`GET`), and one that ended while the server was down ends as
    /// Graph says. Every request that was in flight is settled without
    /// being sent again: one whose effect the call's state shows (an
    /// answer, a transfer under way, ...) counts as accepted, any other is
    /// `MaybeSent`. Last, the engine hears that the session resumed.
    async fn reconcile(&mut self) {
        let calls: Vec<String> = self
            .cell
            .lock()
            .live_call_ids()
            .into_iter()
            .map(str::to_owned)
            .collect();
        let mut seen: Vec<(String, Option<CallState>)> = Vec::new();
        let mut ended = Vec::new();
        for call_id in calls {
            let state = match self.inner.control.get_call(&call_id).await {
                Ok(Some(call)) => {
                    if call.state == Some(CallState::Terminated) {
                        ended.push((call_id.clone(), call.result_info));
                    }
                    call.state
                }
                Ok(None) => None,
                Err(e) if e.status == 404 => {
                    ended.push((call_id.clone(), None));
                    Some(CallState::Terminated)
                }
                Err(e) => {
                    tracing::warn!(session = %self.cell.id, call = %call_id, error = %e.message,
                        "could not ask Graph about a recovered call; it carries on");
                    None
                }
            };
            seen.push((call_id, state));
        }
        let mut queue = VecDeque::new();
        for cmd in std::mem::take(&mut self.inflight) {
            let Some(command) = cmd.id() else { continue };
            let state = cmd
                .call_id()
                .and_then(|c| seen.iter().find(|(id, _)| id == c))
                .and_then(|(_, s)| s.as_ref());
            let shown = cmd
                .kind()
                .zip(state)
                .and_then(|(kind, state)| kind.shown_by(state));
            self.inflight.push(cmd);
            if shown == Some(true) {
                tracing::info!(session = %self.cell.id, %command,
                    "a request in flight at the stop took effect (the call's state shows it)");
                queue.push_back(Event::Accepted {
                    command,
                    operation: None,
                });
            } else {
                queue.push_back(Event::RequestFailed {
                    command,
                    status: 0,
                    code: "MaybeSent".into(),
                    message: "the server stopped while this request was in flight: it may or \
                              may not have reached Graph, and was not sent again"
                        .into(),
                });
            }
        }
        // A call that came up while the server was down (an agent who
        // picked up a ring group's or a consultation's call) is told as
        // Graph's lost notification would have told it.
        let answered: Vec<String> = {
            let s = self.cell.lock();
            seen.iter()
                .filter(|(_, state)| *state == Some(CallState::Established))
                .filter(|(id, _)| {
                    let known = s.leg_index(id).and_then(|i| s.legs[i].state.clone());
                    matches!(
                        known,
                        None | Some(
                            CallState::Incoming | CallState::Establishing | CallState::Ringing
                        )
                    )
                })
                .map(|(id, _)| id.clone())
                .collect()
        };
        for call_id in answered {
            tracing::info!(session = %self.cell.id, call = %call_id,
                "a call came up while the server was down");
            queue.push_back(Event::CallState(StateChange::new(
                call_id,
                CallState::Established,
            )));
        }
        for (call_id, result) in ended {
            tracing::info!(session = %self.cell.id, call = %call_id,
                "a call ended while the server was down");
            let mut change = StateChange::new(call_id, CallState::Terminated);
            if let Some(result) = result {
                change = change.with_result(result);
            }
            queue.push_back(Event::CallState(change));
        }
        // Last: the engine decides what a caller who heard silence hears
        // again (a waiting menu plays its prompt again).
        queue.push_back(Event::Resumed);
        self.drain(queue, None, None).await;
    }

    /// Counts and logs what the session's rules did.
    fn count_rules(&mut self, applied: &[engine::Applied]) {
        for a in applied {
            match a {
                engine::Applied::AnswerOverdue => {
                    metrics::inc(&self.inner.metrics.answer_deadline_missed);
                    tracing::warn!(session = %self.cell.id,
                        "incoming call not answered within 15 s: rejected");
                }
                engine::Applied::Reaped => {
                    metrics::inc(&self.inner.metrics.sessions_reaped);
                    self.reaped = true;
                    tracing::warn!(session = %self.cell.id,
                        idle = %humantime::format_duration(self.inner.config.idle_reap_after),
                        "session reaped: nothing happened for too long");
                }
                engine::Applied::Overran => {
                    tracing::warn!(session = %self.cell.id,
                        limit = %humantime::format_duration(self.cell.flow.max_duration),
                        "run stopped: it lasted its flow's max_duration");
                }
                engine::Applied::KeepAlive(_) | engine::Applied::Fault => {}
            }
        }
    }

    /// `what` panicked (a bug): the rest of the queue is dropped and the
    /// engine is told, once; it ends the run and hangs up the calls.
    fn fault(&mut self, queue: &mut VecDeque<Event>, what: &str, message: String) {
        queue.clear();
        if self.faulted {
            tracing::error!(session = %self.cell.id, %what, panic = %message,
                "internal error again, after the session's fault");
            return;
        }
        self.faulted = true;
        metrics::inc(&self.inner.metrics.internal_errors);
        tracing::error!(session = %self.cell.id, %what, panic = %message,
            "internal error: the session is ended and its calls hung up");
        queue.push_back(Event::Fault {
            what: what.to_owned(),
            message,
        });
    }

    /// The engine panicked on the fault itself: it cannot be trusted with
    /// this session any more, so the calls it lists are hung up directly
    /// (no caller is left in silence) and the session is stopped.
    async fn last_resort(&mut self, message: &str) {
        tracing::error!(session = %self.cell.id, panic = %message,
            "the engine panicked on the session's fault: its calls are hung up directly");
        self.reaped = true;
        let calls: Vec<String> = self
            .cell
            .lock()
            .live_call_ids()
            .into_iter()
            .map(str::to_owned)
            .collect();
        for (n, call_id) in calls.into_iter().enumerate() {
            let cmd = Command::Hangup {
                id: engine::CommandId(u64::MAX - n as u64),
                call_id,
            };
            let executed = AssertUnwindSafe(self.inner.control.execute(&cmd))
                .catch_unwind()
                .await;
            if executed.is_err() {
                tracing::error!(session = %self.cell.id, "hanging up panicked too");
            }
        }
    }

    /// Carries out one command: a timer is kept here, a request goes to
    /// Graph and its result joins `queue`. `Err` with the panic's message
    /// when the `CallControl` panicked.
    async fn carry_out(
        &mut self,
        cmd: Command,
        queue: &mut VecDeque<Event>,
        received: &mut Option<Instant>,
    ) -> Result<(), String> {
        match cmd {
            Command::SetTimer { timer, at } => {
                self.timers.retain(|(t, _)| *t != timer);
                self.timers.push((timer, at));
            }
            Command::CancelTimer { timer } => self.timers.retain(|(t, _)| *t != timer),
            mut cmd => {
                if let Some(r) = received.take() {
                    self.inner.metrics.dispatch_latency.observe(r.elapsed());
                }
                // The new call's callback names this session, so that its
                // notifications that overtake the `201` are held for it.
                let creates = if let Command::CreateCall { body, .. } = &mut cmd {
                    if let Some(uri) = &mut body.callback_uri {
                        *uri = super::hinted_callback(uri, &self.cell.id);
                    }
                    true
                } else {
                    false
                };
                if creates {
                    self.cell.creates.fetch_add(1, Ordering::AcqRel);
                    self.inner.creates_in_flight.fetch_add(1, Ordering::AcqRel);
                }
                let started = std::time::Instant::now();
                let executed = match (&cmd, &self.inner.config.fetch) {
                    (Command::Fetch { id, request, sent }, Some(fetcher)) => {
                        let request = sent.as_deref().unwrap_or(request);
                        let answer = fetcher.fetch(request).await;
                        Ok(Some(match answer {
                            Ok(answer) => Event::Fetched {
                                command: *id,
                                answer,
                            },
                            Err(e) => Event::RequestFailed {
                                command: *id,
                                status: e.status,
                                code: e.code,
                                message: e.message,
                            },
                        }))
                    }
                    // The turn comes from the store's counter, which every
                    // session (and, on PostgreSQL, every instance) shares.
                    (Command::TakeTurn { id, group }, _) => {
                        let taken = self.inner.config.store.take_turn(group).await;
                        Ok(Some(match taken {
                            Ok(turn) => Event::Turn { command: *id, turn },
                            Err(e) => {
                                metrics::inc(&self.inner.metrics.store_errors);
                                tracing::warn!(session = %self.cell.id, %group, error = %e,
                                    "a ring group's turn could not be taken; it rings from its first target");
                                Event::RequestFailed {
                                    command: *id,
                                    status: 0,
                                    code: "StoreFailed".into(),
                                    message: e.to_string(),
                                }
                            }
                        }))
                    }
                    _ => {
                        AssertUnwindSafe(self.inner.control.execute(&cmd))
                            .catch_unwind()
                            .await
                    }
                };
                let result = executed.map_err(|panic| panic_message(&*panic));
                if let Ok(Some(Event::CallCreated { call_id, .. })) = &result {
                    self.inner.own_call(&self.cell.id, call_id);
                    self.owned.push(call_id.clone());
                }
                if creates {
                    self.inner.creates_in_flight.fetch_sub(1, Ordering::AcqRel);
                    if self.cell.creates.fetch_sub(1, Ordering::AcqRel) == 1 {
                        self.inner.creates_done(&self.cell.id);
                    }
                }
                let result = result?;
                if let Some(kind) = cmd.kind() {
                    let ok = !matches!(result, Some(Event::RequestFailed { .. }));
                    self.inner
                        .metrics
                        .count_request(kind, ok, started.elapsed());
                }
                if let Some(result) = result {
                    queue.push_back(result);
                }
            }
        }
        Ok(())
    }
}
