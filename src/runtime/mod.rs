//! The runtime: runs flows against a Graph, many calls at once.
//!
//! [`Runtime`] owns the live [`FlowSet`] (swapped whole on reload, with
//! `arc-swap`), the session table (sessions by id, and every call id a
//! session owns), and one tokio task per live session. Each task is fed by a
//! bounded queue, so the events of one call are applied in arrival order by
//! one worker at a time while calls run in parallel. A task carries out the
//! [`Command`](crate::engine::Command)s that [`engine::step`](crate::engine::step)
//! returns through [`CallControl`], in order, and feeds each result
//! (`Accepted`, `CallCreated`, `RequestFailed`) back to the same session; it
//! also keeps the timers the engine sets, among them the session's rules
//! ([`engine::rules`](crate::engine::rules): `keepAlive` every
//! [`KEEP_ALIVE_EVERY`](crate::engine::KEEP_ALIVE_EVERY), the 15-second
//! answer rule, the reaping of a session nothing has happened to for
//! [`RuntimeConfig::idle_reap_after`]), and reports a panic to the engine as
//! [`Event::Fault`], which ends the run. The runtime decides none of them.
//!
//! This is the only part of callflow that spawns tasks. It never knows HTTP
//! or axum (the server feeds it [`Notification`]s), never interprets a flow
//! itself (only `engine::step` does), and never lets a notification for an
//! unknown call be an error: it is logged and counted.
//!
//! - [`metrics`]: counters, gauges and histograms as plain atomics.
//! - `worker`: one session's task.
//! - `graph_control`: the Graph client as the engine's `CallControl` (production).
//! - `params`: checking an `api` start's parameters.
//! - `reload`: loading, checking and swapping the flow set; the folder watcher.
//! - `table`: live sessions, the calls they own, events held for unknown calls.
//! - `evict`: idle sessions out of memory and back (`evict_after`).
//! - `trigger`: which flow takes a call nobody owns.
//! - `status` and `error`: what the runtime shows and why it refuses.

mod clock;
pub mod cluster;
mod error;
mod evict;
pub mod fetch;
mod graph_control;
pub mod metrics;
mod params;
mod recover;
mod reload;
mod status;
pub mod store;
mod table;
mod trigger;
mod worker;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use serde_json::{Map, Value};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use crate::engine::{BotIdentity, CallControl, Event, Session};
use crate::flow::{Diagnostic, Flow, FlowSet};
use crate::graph::notification::{Notification, NotificationPayload};
use crate::graph::wire::CallState;

pub use clock::{Clock, ManualClock};
pub use error::{Overloaded, StartError};
pub use fetch::{FetchConfig, Fetcher};
pub use metrics::{Dropped, Metrics};
pub use status::{
    FlowStatus, FlowsStatus, ReloadOutcome, SessionDetail, SessionSummary, SessionsPage,
};
pub use store::{StoreHandle, StoreUrl};
pub use table::MAX_ORPHANS;
use table::{Orphans, ParkedState, Route, Table};
use trigger::{pick_flow, pick_state_flow};
use worker::{Input, Journaled, SessionCell};

/// The query parameter of a create's `callbackUri` that names the session
/// creating the call: Graph posts that call's notifications to exactly that
/// URI, so the server can say which create they may belong to.
pub const SESSION_HINT: &str = "callflowSession";

/// `callback_uri` with [`SESSION_HINT`] naming session `id`.
pub fn hinted_callback(callback_uri: &str, id: &str) -> String {
    match url::Url::parse(callback_uri) {
        Ok(mut url) => {
            url.query_pairs_mut().append_pair(SESSION_HINT, id);
            url.into()
        }
        Err(_) => callback_uri.to_owned(),
    }
}

/// The session a callback's query names ([`SESSION_HINT`]), if any.
pub fn session_hint(query: Option<&str>) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == SESSION_HINT)
        .map(|(_, v)| v.into_owned())
}

/// `serve`'s default [`RuntimeConfig::evict_after`]: well past a menu's
/// wait for a key and the 2 s a state write may be deferred, well short of
/// the 15 minutes between keepAlives (a call on hold or handed over waits
/// that long and longer).
pub const DEFAULT_EVICT_AFTER: Duration = Duration::from_secs(30);

/// How the runtime is set up.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// The folder of flow files (scenario files in it are skipped).
    pub flows_dir: PathBuf,
    /// Where Graph posts the notifications of the calls the bot answers or creates.
    pub callback_uri: String,
    /// Who the bot is: its application, tenant and instances (each
    /// session speaks as the instance its call reached, see
    /// [`BotIdentity`]).
    pub bot: BotIdentity,
    /// How long the flows folder must be quiet before a change is reloaded.
    pub reload_debounce: Duration,
    /// A session nothing has happened to for this long is ended and removed
    /// (its live calls hung up), in case Graph never says its call ended.
    pub idle_reap_after: Duration,
    /// At most this many live sessions; a new call beyond it is refused
    /// ([`Overloaded`]) and left to Graph's answer timeout.
    pub max_sessions: usize,
    /// The queue of events waiting for one call's worker; a full queue makes
    /// [`Runtime::submit`] answer [`Overloaded`].
    pub queue_per_call: usize,
    /// The clock sessions run on: the system's, or a [`ManualClock`] that
    /// moves only when told (tests over real HTTP, simulations).
    pub clock: Clock,
    /// Where sessions are kept ([`StoreHandle::memory`]: nowhere).
    pub store: StoreHandle,
    /// How long an ended session stays in the store (for `/api/sessions`
    /// and `callflow sessions export`) before it is removed.
    pub keep_ended: Duration,
    /// Who makes `fetch` requests, with the hosts allowed and the secrets;
    /// flows are checked against its policy at every load. `None`: the
    /// `CallControl` answers them (the simulated Graph does; Graph's
    /// client refuses).
    pub fetch: Option<Arc<Fetcher>>,
    /// This instance's part in a cluster of instances on one PostgreSQL
    /// (`None`: the only instance on its store).
    pub cluster: Option<Arc<cluster::Cluster>>,
    /// A session with nothing in flight and nothing happening for this long
    /// is evicted: its state is in the store, so its task, queue and
    /// `Session` leave memory, leaving only its calls' routes and its next
    /// deadline; a notification or that deadline loads it back. Only on a
    /// durable store this instance has alone (not in a cluster, where a
    /// session's lease must be renewed by the instance running it); `None`
    /// keeps every session in memory.
    pub evict_after: Option<Duration>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            flows_dir: PathBuf::from("flows"),
            callback_uri: "https://localhost/api/calls".into(),
            bot: BotIdentity::default(),
            reload_debounce: Duration::from_millis(300),
            idle_reap_after: Duration::from_secs(2 * 60 * 60),
            max_sessions: 100_000,
            queue_per_call: 64,
            clock: Clock::System,
            store: StoreHandle::memory(),
            keep_ended: Duration::from_secs(7 * 24 * 3600),
            fetch: None,
            cluster: None,
            evict_after: None,
        }
    }
}

/// The runtime. Cheap to clone (an `Arc` inside); every clone is the same runtime.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

/// A stored call as a scenario ([`Runtime::export_scenario`]).
#[derive(Clone, Debug, serde::Serialize)]
pub struct ExportedScenario {
    /// A file name for it (the session id, safe for a file system).
    pub name: String,
    /// The scenario file's text.
    pub scenario: String,
    /// Where the scenario expects its recording, relative to it.
    pub recording_path: String,
    /// The recording: JSON lines of `{"at", "body"}`.
    pub recording: String,
}

/// The engine's session in a stored record.
fn stored_session(record: &store::SessionRecord) -> Option<Session> {
    serde_json::from_str::<store::Persisted>(&record.state)
        .map(|p| p.session)
        .map_err(|e| tracing::warn!(session = %record.id, error = %e, "a stored session could not be read"))
        .ok()
}

/// Finished sessions kept for `GET /api/sessions/{id}`.
const KEEP_FINISHED: usize = 1000;

struct Inner {
    config: RuntimeConfig,
    flows: ArcSwap<FlowSet>,
    reload: Mutex<reload::ReloadState>,
    control: Arc<dyn worker::DynControl>,
    metrics: Metrics,
    table: Mutex<Table>,
    finished: Mutex<VecDeque<Arc<SessionCell>>>,
    clock: clock::Time,
    /// Events queued for a session or being handled by it.
    pending: AtomicUsize,
    closing: AtomicBool,
    tasks: AtomicUsize,
    tasks_done: Notify,
    /// `POST /communications/calls` requests not answered yet, all
    /// sessions together (only for a `submit` without a session hint).
    creates_in_flight: AtomicUsize,
    /// Becomes `true` when the runtime shuts down (stops the watcher).
    stopping: tokio::sync::watch::Sender<bool>,
    /// The next journal sequence number.
    seq: AtomicU64,
    /// An evicted session's deadline earlier than any before: the task
    /// that wakes evicted sessions plans again.
    wheel_changed: Notify,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Runtime {
    /// Loads and checks every flow in `config.flows_dir` and starts a
    /// runtime that sends its requests through `control`. Refuses to start
    /// (every diagnostic returned) when any flow file has an error.
    ///
    /// Must be called inside a tokio runtime.
    pub async fn start<C: CallControl + Send + Sync + 'static>(
        config: RuntimeConfig,
        control: Arc<C>,
    ) -> Result<Runtime, Vec<Diagnostic>> {
        let (set, state) = reload::initial(&config.flows_dir, config.fetch.as_deref())?;
        let runtime = Runtime {
            inner: Arc::new(Inner {
                flows: ArcSwap::from_pointee(set),
                reload: Mutex::new(state),
                control: Arc::new(worker::Control(control)),
                metrics: Metrics::default(),
                table: Mutex::new(Table::default()),
                finished: Mutex::new(VecDeque::new()),
                clock: clock::Time::new(&config.clock),
                pending: AtomicUsize::new(0),
                stopping: tokio::sync::watch::Sender::new(false),
                closing: AtomicBool::new(false),
                tasks: AtomicUsize::new(0),
                tasks_done: Notify::new(),
                creates_in_flight: AtomicUsize::new(0),
                seq: AtomicU64::new(0),
                wheel_changed: Notify::new(),
                config,
            }),
        };
        if runtime.inner.evict_after().is_some() {
            tokio::spawn(evict::wheel(runtime.inner.clone()));
        }
        Ok(runtime)
    }

    /// Stores the live flows' sources, then loads the sessions the store
    /// kept (each pinned to its flow version), re-arms their timers, applies
    /// the events journaled and not applied, and reconciles every session
    /// with Graph (a request in flight is `MaybeSent`; a call that ended
    /// while the server was down ends its session). Returns how many
    /// sessions came back. Call once, right after [`Runtime::start`].
    ///
    /// # Errors
    ///
    /// The store could not be read or written.
    pub async fn recover(&self) -> Result<usize, store::StoreError> {
        recover::recover(&self.inner).await
    }

    /// The store sessions are kept in.
    pub fn store(&self) -> &StoreHandle {
        &self.inner.config.store
    }

    /// The configuration the runtime started with.
    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    /// The live flow set (a snapshot: a reload does not change it).
    pub fn flow_set(&self) -> Arc<FlowSet> {
        self.inner.flows.load_full()
    }

    /// Queues a batch of notifications, in order; never blocks. Each
    /// event goes to the session that owns its call; an incoming call no
    /// session owns starts one with the most specific flow that takes it;
    /// anything else about an unknown call is held while a create that may
    /// claim it is in flight, or else dropped: every event that reaches no
    /// session is logged and counted by reason ([`Metrics::dropped`]). A
    /// full queue or the session limit refuses the rest of the batch
    /// ([`Overloaded`]).
    pub fn submit(&self, batch: Vec<Notification>) -> Result<(), Overloaded> {
        self.submit_for(batch, None)
    }

    /// [`Runtime::submit`] of a batch posted to a callback URI that names
    /// session `hint` ([`session_hint`]: the callback of a call a session
    /// created): a notification for a call nobody owns yet is held for that
    /// session while its create is in flight, and starts no `state_change`
    /// flow.
    pub fn submit_for(
        &self,
        batch: Vec<Notification>,
        hint: Option<&str>,
    ) -> Result<(), Overloaded> {
        let events = self.events_of(&batch);
        self.submit_events(events, None, hint)
    }

    /// Like [`Runtime::submit_for`], but journals the events in the store first
    /// and returns once they are durable: what the server waits for before
    /// it answers `202`. A store that refuses the write (a full disk)
    /// refuses the batch ([`Overloaded`], counted in
    /// [`Metrics::store_errors`]), so nothing is acknowledged that is not stored.
    pub async fn submit_durable(
        &self,
        batch: Vec<Notification>,
        hint: Option<&str>,
    ) -> Result<(), Overloaded> {
        self.submit_recorded(batch, hint, None).await
    }

    /// [`Runtime::submit_durable`], keeping `body` (the callback body the
    /// batch was read from) with the session that applies its first event,
    /// for `callflow sessions export`.
    pub async fn submit_recorded(
        &self,
        batch: Vec<Notification>,
        hint: Option<&str>,
        body: Option<String>,
    ) -> Result<(), Overloaded> {
        self.journal_then(batch, hint, body, true).await
    }

    /// Journals the batch (as [`Runtime::submit_recorded`] does) and does
    /// not apply it: for the crash tests' hold (`CALLFLOW_TEST_HOLD`), which
    /// stops a process between a notification's journal entry and its
    /// application. Only a restart applies it.
    #[doc(hidden)]
    pub async fn journal_only(
        &self,
        batch: Vec<Notification>,
        body: Option<String>,
    ) -> Result<(), Overloaded> {
        self.journal_then(batch, None, body, false).await
    }

    async fn journal_then(
        &self,
        batch: Vec<Notification>,
        hint: Option<&str>,
        body: Option<String>,
        apply: bool,
    ) -> Result<(), Overloaded> {
        let inner = &self.inner;
        let mut body = body;
        let events = self.events_of(&batch);
        if !inner.config.store.durable() {
            return self.submit_events(events, None, hint);
        }
        if inner.closing.load(Ordering::Acquire) {
            return self.submit_events(events, None, hint);
        }
        if let Some(cluster) = &inner.config.cluster {
            return self
                .submit_clustered(cluster, events, hint, body, apply)
                .await;
        }
        let now = inner.clock.now();
        let mut entries = Vec::with_capacity(events.len());
        let mut seqs = Vec::with_capacity(events.len());
        for event in &events {
            let seq = inner.seq.fetch_add(1, Ordering::AcqRel);
            seqs.push(seq);
            entries.push(store::JournalEntry {
                seq,
                event: serde_json::to_string(event).unwrap_or_default(),
                received_at: now,
                body: body.take(),
            });
        }
        if let Err(e) = inner
            .config
            .store
            .write(vec![store::Write::Journal(entries)])
            .await
        {
            return Err(inner.not_journaled(&e, events.len()));
        }
        if !apply {
            return Ok(());
        }
        self.submit_events(events, Some(seqs), hint)
    }

    /// [`Runtime::submit_recorded`] with other instances on the store: the
    /// events of a session another instance holds are journaled for it
    /// (it is told); the others are journaled and applied here, a session
    /// whose lease is free being taken over first (see [`cluster`]).
    /// Without `apply` (the test hold), those journaled for a session here
    /// are not applied: as if this instance died right after journaling.
    async fn submit_clustered(
        &self,
        cluster: &Arc<cluster::Cluster>,
        events: Vec<Event>,
        hint: Option<&str>,
        mut body: Option<String>,
        apply: bool,
    ) -> Result<(), Overloaded> {
        let inner = &self.inner;
        let now = inner.clock.now();
        let total = events.len();
        let mut here = Vec::with_capacity(total);
        let mut elsewhere: Vec<(String, Vec<store::JournalEntry>)> = Vec::new();
        let mut entries = Vec::with_capacity(total);
        for event in events {
            let key = hint
                .map(str::to_owned)
                .or_else(|| event.call_id().map(str::to_owned));
            let seq = cluster.next_seq();
            let entry = store::JournalEntry {
                seq,
                event: serde_json::to_string(&event).unwrap_or_default(),
                received_at: now,
                body: body.take(),
            };
            let located = match &key {
                Some(key) if !inner.runs_here(key) && !inner.routes_here(&event) => {
                    cluster.locate(inner, key).await
                }
                _ => cluster::Located::Here,
            };
            match (located, key) {
                (cluster::Located::Elsewhere(_), Some(key)) => {
                    match elsewhere.iter_mut().find(|(k, _)| *k == key) {
                        Some((_, list)) => list.push(entry),
                        None => elsewhere.push((key, vec![entry])),
                    }
                }
                (_, key) => {
                    if let Some(key) = &key {
                        cluster.routed(key, seq);
                    }
                    entries.push((entry, key));
                    here.push((event, seq));
                }
            }
        }
        for (target, list) in elsewhere {
            let n = list.len() as u64;
            if let Err(e) = cluster.forward(&target, list).await {
                return Err(inner.not_journaled(&e, total));
            }
            inner
                .metrics
                .events_forwarded
                .fetch_add(n, Ordering::Relaxed);
        }
        if !entries.is_empty() {
            let targets: Vec<(store::JournalEntry, Option<String>)> = entries;
            if let Err(e) = cluster.journal(targets).await {
                return Err(inner.not_journaled(&e, total));
            }
        }
        if !apply {
            return Ok(());
        }
        let (events, seqs): (Vec<Event>, Vec<u64>) = here.into_iter().unzip();
        self.submit_events(events, Some(seqs), hint)
    }

    /// This instance's part in the cluster, when there are several.
    pub fn cluster(&self) -> Option<&Arc<cluster::Cluster>> {
        self.inner.config.cluster.as_ref()
    }

    fn events_of(&self, batch: &[Notification]) -> Vec<Event> {
        let inner = &self.inner;
        let mut events = Vec::with_capacity(batch.len());
        for n in batch {
            let kind = match n.payload {
                NotificationPayload::Call(_) => 0,
                NotificationPayload::Operation(_) => 1,
                NotificationPayload::Participants(_) => 2,
                NotificationPayload::Other(_) => 3,
            };
            metrics::inc(&inner.metrics.notifications[kind]);
            let before = events.len();
            events.extend(Event::from_notification(n));
            if events.len() == before {
                inner.metrics.count_dropped(Dropped::IgnoredResource, 1);
                tracing::debug!(resource = %n.resource, change = ?n.change_type,
                    "a notification about nothing the engine acts on: not applied");
            }
        }
        events
    }

    fn submit_events(
        &self,
        events: Vec<Event>,
        seqs: Option<Vec<u64>>,
        hint: Option<&str>,
    ) -> Result<(), Overloaded> {
        let inner = &self.inner;
        let received = tokio::time::Instant::now();
        if inner.closing.load(Ordering::Acquire) {
            metrics::inc(&inner.metrics.overloaded);
            return Err(Overloaded {
                reason: "shutting down",
                queued: 0,
                refused: events.len(),
            });
        }
        let total = events.len();
        for (queued, event) in events.into_iter().enumerate() {
            let seq = seqs
                .as_ref()
                .and_then(|s| s.get(queued).copied())
                .map(|seq| Journaled { seq, at: None });
            if let Err(reason) = inner.route(event, received, seq, hint) {
                metrics::inc(&inner.metrics.overloaded);
                return Err(Overloaded {
                    reason,
                    queued,
                    refused: total - queued,
                });
            }
        }
        Ok(())
    }

    /// Starts a run of the `api` flow `flow` with `params`, checked against
    /// the flow's declaration (types, required, defaults filled in); returns
    /// the new session's id.
    pub async fn start_api_flow(
        &self,
        flow: &str,
        params: Map<String, Value>,
    ) -> Result<String, StartError> {
        let inner = &self.inner;
        if inner.closing.load(Ordering::Acquire) {
            return Err(StartError::ShuttingDown);
        }
        let set = inner.flows.load();
        let Some(flow) = set.get(flow).cloned() else {
            return Err(StartError::UnknownFlow { flow: flow.into() });
        };
        let params = params::check(&flow, params)?;
        let id = format!("run-{}", uuid::Uuid::new_v4());
        let received = tokio::time::Instant::now();
        inner
            .spawn_session(flow, &id, None, Event::ApiStart { params }, received, None)
            .map_err(|_| StartError::Overloaded {
                max: inner.config.max_sessions,
            })?;
        Ok(id)
    }

    /// Loads and checks the whole folder again; swaps the new set in
    /// (atomically) only when it has no error. Running sessions keep the
    /// flow they started with. Every diagnostic is logged; a refused reload
    /// shows in [`Runtime::flows`]. What SIGHUP and the watcher call.
    pub fn reload(&self) -> ReloadOutcome {
        reload::reload(&self.inner)
    }

    /// The live flows and the last reload.
    pub fn flows(&self) -> FlowsStatus {
        reload::status(&self.inner)
    }

    /// Live sessions, then recently finished ones (the last thousand).
    pub fn sessions(&self) -> Vec<SessionSummary> {
        let live: Vec<Arc<SessionCell>> = lock(&self.inner.table)
            .sessions
            .values()
            .map(|r| r.cell.clone())
            .collect();
        let finished: Vec<Arc<SessionCell>> =
            lock(&self.inner.finished).iter().rev().cloned().collect();
        live.iter()
            .chain(finished.iter())
            .map(|c| c.summary())
            .collect()
    }

    /// One page of sessions: the live ones, then the ended ones (read back
    /// from the store when it keeps them, so that calls that ended before
    /// a restart are listed until `keep_ended` removes them; else the last
    /// thousand kept in memory), newest first. `total` counts both.
    pub async fn sessions_page(&self, offset: usize, limit: usize) -> SessionsPage {
        let store = self.inner.config.store.clone();
        if !store.durable() {
            let all = self.sessions();
            let total = all.len();
            let offset = offset.min(total);
            let end = offset.saturating_add(limit).min(total);
            return SessionsPage {
                sessions: all[offset..end].to_vec(),
                total,
                next: (end < total).then_some(end),
            };
        }
        if let Some(cluster) = self.inner.config.cluster.clone() {
            return self.cluster_page(&cluster, offset, limit).await;
        }
        // The live ones: in memory, then evicted (read from the store).
        let (cells, parked, live) = {
            let table = lock(&self.inner.table);
            let cells: Vec<Arc<SessionCell>> = table
                .sessions
                .values()
                .skip(offset)
                .take(limit)
                .map(|r| r.cell.clone())
                .collect();
            let parked: Vec<(String, Arc<Flow>)> = table
                .parked
                .iter()
                .skip(offset.saturating_sub(table.sessions.len()))
                .take(limit - cells.len())
                .map(|(id, p)| (id.to_string(), p.flow.clone()))
                .collect();
            (cells, parked, table.live())
        };
        let mut sessions: Vec<SessionSummary> = cells.iter().map(|c| c.summary()).collect();
        let taken = cells.len() + parked.len();
        if !parked.is_empty() {
            let ids: Vec<String> = parked.iter().map(|(id, _)| id.clone()).collect();
            let store = store.clone();
            let records = tokio::task::spawn_blocking(move || store.sessions_by_id(&ids))
                .await
                .map_err(|e| store::StoreError::Failed(e.to_string()))
                .and_then(|r| r)
                .unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "evicted sessions could not be read from the store");
                    Vec::new()
                });
            let mut by_id: std::collections::HashMap<String, store::SessionRecord> =
                records.into_iter().map(|r| (r.id.clone(), r)).collect();
            for (id, flow) in &parked {
                if let Some(s) = by_id.remove(id).as_ref().and_then(stored_session) {
                    sessions.push(worker::evicted_summary(&s, flow));
                }
            }
        }
        let ended_offset = offset.saturating_sub(live);
        let want = limit - taken;
        let page = tokio::task::spawn_blocking(move || store.ended(ended_offset, want))
            .await
            .map_err(|e| store::StoreError::Failed(e.to_string()))
            .and_then(|r| r);
        let page = match page {
            Ok(page) => page,
            Err(e) => {
                tracing::warn!(error = %e, "ended sessions could not be read from the store");
                store::Page::default()
            }
        };
        let tz = chrono_tz::Tz::UTC;
        for record in &page.records {
            if let Some(s) = stored_session(record) {
                sessions.push(worker::stored_detail(&s, tz).summary);
            }
        }
        let total = live + page.total;
        // Where the next page starts: after the live ones taken, or after
        // the stored ones read.
        let (end, more) = if want == 0 {
            (offset + limit, offset + limit < total)
        } else {
            (live + ended_offset + page.records.len(), page.more)
        };
        SessionsPage {
            sessions,
            total,
            next: more.then_some(end),
        }
    }

    /// [`Runtime::sessions_page`] of a cluster: the live sessions of every
    /// instance (as last stored; this one's as they are now), then the
    /// ended ones.
    async fn cluster_page(
        &self,
        cluster: &Arc<cluster::Cluster>,
        offset: usize,
        limit: usize,
    ) -> SessionsPage {
        let (live, live_total) = cluster.live(offset, limit).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "live sessions could not be read from the store");
            (Vec::new(), 0)
        });
        let set = self.inner.flows.load_full();
        let mut sessions: Vec<SessionSummary> = Vec::with_capacity(limit);
        for record in &live {
            let here = lock(&self.inner.table)
                .sessions
                .get(record.id.as_str())
                .map(|r| r.cell.clone());
            if let Some(cell) = here {
                sessions.push(cell.summary());
            } else if let Some(s) = stored_session(record) {
                let mut summary = worker::stored_detail(&s, chrono_tz::Tz::UTC).summary;
                if let Some(flow) = set
                    .flows
                    .values()
                    .find(|f| f.source.sha256 == s.flow_version)
                {
                    summary.step = s.step_name(flow).map(str::to_owned);
                }
                sessions.push(summary);
            }
        }
        let store = self.inner.config.store.clone();
        let ended_offset = offset.saturating_sub(live_total);
        let want = limit - sessions.len().min(limit);
        let page = tokio::task::spawn_blocking(move || store.ended(ended_offset, want))
            .await
            .map_err(|e| store::StoreError::Failed(e.to_string()))
            .and_then(|r| r)
            .unwrap_or_default();
        for record in &page.records {
            if let Some(s) = stored_session(record) {
                sessions.push(worker::stored_detail(&s, chrono_tz::Tz::UTC).summary);
            }
        }
        let total = live_total + page.total;
        let end = offset + sessions.len();
        SessionsPage {
            sessions,
            total,
            next: (end < total).then_some(end),
        }
    }

    /// One session, live or ended, with its timeline: from memory, else
    /// (ended, maybe before a restart) from the store.
    pub async fn session_anywhere(&self, id: &str) -> Option<SessionDetail> {
        let live = lock(&self.inner.table)
            .sessions
            .get(id)
            .map(|r| r.cell.clone());
        if let Some(cell) = live {
            return Some(cell.detail());
        }
        let store = self.inner.config.store.clone();
        if !store.durable() {
            return self.session(id);
        }
        let evicted = lock(&self.inner.table)
            .parked
            .get(id)
            .map(|p| p.flow.clone());
        let key = id.to_owned();
        let (record, rows) = tokio::task::spawn_blocking(move || {
            let record = store.session(&key)?;
            let rows = match &record {
                Some(_) if store.timeline_rows() => Some(store.timeline(&key)?),
                _ => None,
            };
            Ok::<_, store::StoreError>((record, rows))
        })
        .await
        .ok()?
        .ok()?;
        let record = record?;
        let mut s = stored_session(&record)?;
        recover::with_timeline(&mut s, rows);
        if let Some(flow) = evicted.filter(|_| record.live) {
            return Some(worker::evicted_detail(&s, &flow));
        }
        let set = self.inner.flows.load();
        let tz = set
            .flows
            .values()
            .find(|f| f.name == s.flow)
            .map_or(chrono_tz::Tz::UTC, |f| f.timezone);
        let mut detail = worker::stored_detail(&s, tz);
        // Live on another instance: the step it is at, as of its last write.
        if record.live
            && let Some(flow) = set
                .flows
                .values()
                .find(|f| f.source.sha256 == s.flow_version)
        {
            detail.summary.step = s.step_name(flow).map(str::to_owned);
        }
        Some(detail)
    }

    /// A stored call as a scenario that replays it (`callflow sessions
    /// export`): the scenario file's text, naming `recordings/ID.jsonl`,
    /// and that recording (the notification bodies the call received, with
    /// when). `None` when the session is unknown or the store keeps nothing.
    pub async fn export_scenario(&self, id: &str) -> Option<ExportedScenario> {
        let detail = self.session_anywhere(id).await?;
        let store = self.inner.config.store.clone();
        let key = id.to_owned();
        let bodies = tokio::task::spawn_blocking(move || store.recording(&key))
            .await
            .ok()?
            .map_err(
                |e| tracing::warn!(session = id, error = %e, "the recording could not be read"),
            )
            .ok()?;
        if bodies.is_empty() {
            return None;
        }
        let mut recording = String::new();
        for (at, body) in bodies {
            let body: Value = serde_json::from_str(&body).unwrap_or(Value::String(body));
            let line = serde_json::json!({ "at": at.to_rfc3339(), "body": body });
            recording.push_str(&line.to_string());
            recording.push('\n');
        }
        let file: String = id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let recording_path = format!("recordings/{file}.jsonl");
        let outcome = detail.summary.outcome.map_or("not ended", |o| o.as_str());
        let scenario = crate::sim::scenario::replay_scenario(
            &format!("stored call {id} ({outcome})"),
            &detail.summary.flow,
            &recording_path,
            &detail.timeline,
        );
        Some(ExportedScenario {
            name: file,
            scenario,
            recording_path,
            recording,
        })
    }

    /// One session, live or recently finished, with its timeline.
    pub fn session(&self, id: &str) -> Option<SessionDetail> {
        let cell = lock(&self.inner.table)
            .sessions
            .get(id)
            .map(|r| r.cell.clone())
            .or_else(|| {
                lock(&self.inner.finished)
                    .iter()
                    .find(|c| &*c.id == id)
                    .cloned()
            })?;
        Some(cell.detail())
    }

    /// The runtime's counters.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Live sessions now, in memory or evicted.
    pub fn live_sessions(&self) -> usize {
        lock(&self.inner.table).live()
    }

    /// Live sessions evicted now (their state in the store, not in memory).
    pub fn evicted_sessions(&self) -> usize {
        lock(&self.inner.table).parked.len()
    }

    /// Watches `flows_dir`; once changes have been quiet for
    /// `reload_debounce`, reloads. The task ends when the runtime shuts
    /// down (or abort the handle).
    pub fn watch(&self) -> JoinHandle<()> {
        reload::watch(self.clone())
    }

    /// Whether nothing is happening: no event queued or being handled (nor
    /// the requests it causes), and, on a [`ManualClock`], no deadline that
    /// fell due and is still being handled. A driver of a manual clock
    /// advances it only then, so that every deadline is seen in order.
    pub fn is_idle(&self) -> bool {
        self.inner.pending.load(Ordering::Acquire) == 0 && self.inner.clock.woken() == 0
    }

    /// Waits until every queued event has been handled and no request is in
    /// flight (for tests and graceful stops; sessions stay alive).
    pub async fn settle(&self) {
        loop {
            let busy = {
                let table = lock(&self.inner.table);
                table.waking > 0
                    || table
                        .sessions
                        .values()
                        .any(|r| r.tx.capacity() < r.tx.max_capacity() || r.cell.is_busy())
            };
            if !busy {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Stops intake (`submit` and `start_api_flow` refuse), lets every
    /// session handle what is already queued (and the requests that causes),
    /// then stops every session task. Calls still up in Graph are left as
    /// they are.
    pub async fn shutdown(self) {
        let inner = &self.inner;
        if let Some(cluster) = &inner.config.cluster {
            cluster.drain();
        }
        inner.closing.store(true, Ordering::Release);
        inner.stopping.send_replace(true);
        // Dropping every queue's sender lets each task drain its queue and stop.
        let routes: Vec<Route> = {
            let mut table = lock(&inner.table);
            table.calls.clear();
            let held = table.orphans.len() as u64;
            if held > 0 {
                inner.metrics.count_dropped(Dropped::Shutdown, held);
                tracing::info!(
                    held,
                    "events held for calls nobody owned are dropped at shutdown"
                );
            }
            table.orphans = Orphans::default();
            inner.metrics.orphans_held.store(0, Ordering::Relaxed);
            // Sessions being loaded back get no more events: once loaded,
            // each applies what it has queued and stops, stored.
            table
                .parked
                .retain(|_, p| !matches!(p.state, ParkedState::Waking { .. }));
            table.sessions.drain().map(|(_, r)| r).collect()
        };
        drop(routes);
        loop {
            let done = inner.tasks_done.notified();
            if inner.tasks.load(Ordering::Acquire) == 0 {
                break;
            }
            done.await;
        }
        if let Some(cluster) = &inner.config.cluster {
            cluster.leave().await;
        }
    }
}

impl Inner {
    /// How long an idle session stays in memory, when sessions are evicted
    /// at all: only on a durable store this instance has alone.
    fn evict_after(&self) -> Option<Duration> {
        self.config
            .evict_after
            .filter(|d| !d.is_zero())
            .filter(|_| self.config.store.durable() && self.config.cluster.is_none())
    }

    /// A journal write failed: counted, logged, and the batch refused (`503`).
    fn not_journaled(&self, e: &store::StoreError, refused: usize) -> Overloaded {
        metrics::inc(&self.metrics.store_errors);
        tracing::error!(error = %e, "a notification could not be journaled: answered 503");
        Overloaded {
            reason: if matches!(e, store::StoreError::Full(_)) {
                "the session store is full"
            } else {
                "the session store refused the write"
            },
            queued: 0,
            refused,
        }
    }

    /// Whether session `id` runs here (its worker is in the table).
    fn runs_here(&self, id: &str) -> bool {
        lock(&self.table).sessions.contains_key(id)
    }

    /// Whether `event`'s call is routed to a session here.
    fn routes_here(&self, event: &Event) -> bool {
        event
            .call_id()
            .is_some_and(|c| lock(&self.table).route(c).is_some())
    }

    /// Stops session `id` here without storing it again (another instance
    /// holds it now); `false` when it did not run here.
    fn drop_session(&self, id: &str) -> bool {
        let route = lock(&self.table).sessions.remove(id);
        if let Some(route) = &route {
            route.cell.dropped.store(true, Ordering::Release);
        }
        route.is_some()
    }

    /// Sends `event` to the session owning its call, or starts one; or
    /// holds it for a create in flight; or drops it, logged and counted.
    fn route(
        self: &Arc<Self>,
        event: Event,
        received: tokio::time::Instant,
        seq: Option<Journaled>,
        hint: Option<&str>,
    ) -> Result<(), &'static str> {
        let Some(call_id) = event.call_id().map(str::to_owned) else {
            self.metrics.count_dropped(Dropped::IgnoredResource, 1);
            tracing::debug!(?event, "an event without a call id was ignored");
            return Ok(());
        };
        // Sends happen under the table's lock, so that the events of a call
        // created by a session keep their order with those held for it.
        let mut table = lock(&self.table);
        if let Some(route) = table.route(&call_id) {
            return self.send(route, Box::new(Input::Event(event, received, seq)));
        }
        if let Some(id) = table.parked_owner(&call_id) {
            let input = Box::new(Input::Event(event, received, seq));
            return evict::wake(self, &mut table, &id, Some(input));
        }
        if table.ended.contains(&call_id) {
            self.metrics.count_dropped(Dropped::EndedCall, 1);
            tracing::debug!(
                call = %call_id,
                "a late notification for a call whose session has ended: dropped"
            );
            return Ok(());
        }
        if let Event::IncomingCall(call) = &event {
            drop(table);
            let now = self.clock.now();
            let set = self.flows.load();
            let Some(flow) = pick_flow(&set, call, now) else {
                metrics::inc(&self.metrics.unmatched_incoming);
                self.metrics.count_dropped(Dropped::NoFlow, 1);
                tracing::warn!(call = %call.call_id, from = call.from.label(), to = call.to.label(),
                    "no flow takes this incoming call; it is left to ring out");
                return Ok(());
            };
            let id = call.call_id.clone();
            return self.spawn_session(flow, &id, Some(&id), event, received, seq);
        }
        metrics::inc(&self.metrics.unknown_call_events);
        // The callback named a session with a create in flight: the call is
        // most likely that create's, and its first notifications overtook
        // the `201`. Held for it, whatever flows take state changes.
        let creating = hint
            .and_then(|h| table.sessions.get(h))
            .filter(|r| r.cell.creating())
            .map(|r| r.cell.id.clone());
        if let Some(session) = creating {
            tracing::debug!(call = %call_id, %session,
                "a notification for a call a session is creating: held until its create is answered");
            return self.hold(&mut table, &call_id, Some(session), event, received, seq);
        }
        // A state change on a call nobody owns starts a `state_change` flow.
        if let Event::CallState(change) = &event
            && change.state != CallState::Terminated
        {
            drop(table);
            let set = self.flows.load();
            if let Some(flow) = pick_state_flow(&set, change, self.clock.now()) {
                let id = change.call_id.clone();
                return self.spawn_session(flow, &id, Some(&id), event, received, seq);
            }
            table = lock(&self.table);
            // The call may have been claimed while the lock was free.
            if let Some(route) = table.route(&call_id) {
                return self.send(route, Box::new(Input::Event(event, received, seq)));
            }
            if let Some(id) = table.parked_owner(&call_id) {
                let input = Box::new(Input::Event(event, received, seq));
                return evict::wake(self, &mut table, &id, Some(input));
            }
        }
        // Nothing names the session (a submit without a hint): while some
        // create is in flight, held a few seconds in case it is that one's.
        if hint.is_none() && self.creates_in_flight.load(Ordering::Acquire) > 0 {
            tracing::debug!(
                call = %call_id,
                "a notification for an unknown call: held briefly in case a session just created it"
            );
            return self.hold(&mut table, &call_id, None, event, received, seq);
        }
        self.metrics.count_dropped(Dropped::UnknownCall, 1);
        tracing::info!(call = %call_id, ?hint,
            "a notification for a call no session owns or is creating: dropped");
        Ok(())
    }

    /// Holds `event` for `call_id` (for `session`'s create, or briefly).
    fn hold(
        &self,
        table: &mut Table,
        call_id: &str,
        session: Option<Arc<str>>,
        event: Event,
        received: tokio::time::Instant,
        seq: Option<Journaled>,
    ) -> Result<(), &'static str> {
        let (held, expired) = table.orphans.hold(
            call_id.into(),
            session,
            Box::new(Input::Event(event, received, seq)),
            self.clock.now(),
        );
        if expired > 0 {
            self.metrics
                .count_dropped(Dropped::OrphanExpired, expired as u64);
            tracing::info!(
                expired,
                "events held for calls nobody claimed in time are dropped"
            );
        }
        if held.is_err() {
            self.metrics.count_dropped(Dropped::OrphansFull, 1);
            tracing::warn!(
                call = call_id,
                max = table::MAX_ORPHANS,
                "the hold for calls nobody owns yet is full: the notification is dropped"
            );
        }
        self.metrics
            .orphans_held
            .store(table.orphans.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    fn send(&self, route: &Route, input: Box<Input>) -> Result<(), &'static str> {
        // Counted before it can be handled; uncounted if it is not queued.
        self.pending.fetch_add(1, Ordering::AcqRel);
        match route.tx.try_send(input) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.pending.fetch_sub(1, Ordering::AcqRel);
                self.refused(e)
            }
        }
    }

    fn refused(&self, e: mpsc::error::TrySendError<Box<Input>>) -> Result<(), &'static str> {
        match e {
            mpsc::error::TrySendError::Full(_) => Err("a call's queue is full"),
            // The session is stopping: nothing more to do for its calls.
            mpsc::error::TrySendError::Closed(_) => {
                self.metrics.count_dropped(Dropped::SessionStopping, 1);
                tracing::debug!("a notification for a session that is stopping: dropped");
                Ok(())
            }
        }
    }

    /// Registers and spawns a session for `flow`, first fed `first`.
    fn spawn_session(
        self: &Arc<Self>,
        flow: Arc<Flow>,
        id: &str,
        call_id: Option<&str>,
        first: Event,
        received: tokio::time::Instant,
        seq: Option<Journaled>,
    ) -> Result<(), &'static str> {
        let bot = match &first {
            Event::IncomingCall(call) => self
                .config
                .bot
                .for_incoming(&self.config.callback_uri, &call.to),
            _ => self.config.bot.bot(&self.config.callback_uri, None),
        };
        let mut session = Session::new(&flow, id, bot);
        session.upkeep.set_reap_after(self.config.idle_reap_after);
        let cell = Arc::new(SessionCell::new(flow, session));
        let (tx, rx) = mpsc::channel(self.config.queue_per_call.max(1));
        {
            let mut table = lock(&self.table);
            if table.live() >= self.config.max_sessions {
                return Err("too many live sessions");
            }
            if self.closing.load(Ordering::Acquire) {
                return Err("shutting down");
            }
            if let Some(call_id) = call_id {
                // A duplicate of the incoming call won the race: it owns the call.
                if let Some(route) = table.route(call_id) {
                    return self.send(route, Box::new(Input::Event(first, received, seq)));
                }
                if let Some(id) = table.parked_owner(call_id) {
                    let input = Box::new(Input::Event(first, received, seq));
                    return evict::wake(self, &mut table, &id, Some(input));
                }
                table.calls.insert(call_id.into(), cell.id.clone());
            }
            self.pending.fetch_add(1, Ordering::AcqRel);
            if tx
                .try_send(Box::new(Input::Event(first, received, seq)))
                .is_err()
            {
                self.pending.fetch_sub(1, Ordering::AcqRel);
                return Err("a call's queue is full");
            }
            table.sessions.insert(
                cell.id.clone(),
                Route {
                    cell: cell.clone(),
                    tx,
                },
            );
            // Counted under the lock, so that `shutdown` never misses it.
            self.tasks.fetch_add(1, Ordering::AcqRel);
        }
        metrics::inc(&self.metrics.sessions_started);
        self.metrics.sessions_live.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(worker::run(self.clone(), cell, rx, None));
        Ok(())
    }

    /// Routes `call_id` to session `id` (a call the session created).
    /// Events of that call that came before it was known are sent on now, in order.
    fn own_call(&self, id: &Arc<str>, call_id: &str) {
        let mut table = lock(&self.table);
        if !table.sessions.contains_key(id) {
            return;
        }
        table.calls.insert(call_id.into(), id.clone());
        let (held, expired) = table.orphans.take(call_id, self.clock.now());
        self.metrics
            .orphans_held
            .store(table.orphans.len() as u64, Ordering::Relaxed);
        if expired > 0 {
            self.metrics
                .count_dropped(Dropped::OrphanExpired, expired as u64);
            tracing::info!(
                call = call_id,
                expired,
                "events held for a created call expired before its create was answered"
            );
        }
        if held.is_empty() {
            return;
        }
        let claimed = held.len() as u64;
        self.metrics
            .orphans_claimed
            .fetch_add(claimed, Ordering::Relaxed);
        if let Some(route) = table.sessions.get(id) {
            for input in held {
                if self.send(route, input).is_err() {
                    metrics::inc(&self.metrics.overloaded);
                }
            }
        }
    }

    /// Session `id` has no create in flight any more: what was held for
    /// its creates and not claimed is dropped, logged and counted.
    fn creates_done(&self, id: &str) {
        let mut table = lock(&self.table);
        let released = table.orphans.release(id);
        self.metrics
            .orphans_held
            .store(table.orphans.len() as u64, Ordering::Relaxed);
        drop(table);
        for (call, n) in released {
            self.metrics.count_dropped(Dropped::OrphanExpired, n as u64);
            tracing::info!(session = id, call = %call, events = n,
                "events held for a session's create were not its call's: dropped");
        }
    }

    /// Removes a finished session from the table and keeps it for viewing.
    fn retire(&self, cell: &Arc<SessionCell>, owned: Vec<String>) {
        let mut calls = cell.call_ids();
        calls.extend(owned);
        calls.push(cell.id.to_string());
        // A session another instance took goes on there: its calls have
        // not ended, and their notifications are for that instance.
        let dropped = cell.dropped.load(Ordering::Acquire);
        if let Some(cluster) = &self.config.cluster {
            cluster.forget(&cell.id);
        }
        {
            let mut table = lock(&self.table);
            if table
                .sessions
                .get(&cell.id)
                .is_some_and(|r| Arc::ptr_eq(&r.cell, cell))
            {
                table.sessions.remove(&cell.id);
            }
            for call in calls {
                if table.calls.get(call.as_str()) == Some(&cell.id) {
                    table.calls.remove(call.as_str());
                }
                if !dropped {
                    table.ended.insert(&call);
                }
            }
        }
        if dropped {
            self.metrics.sessions_live.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        let mut finished = lock(&self.finished);
        if finished.len() >= KEEP_FINISHED {
            finished.pop_front();
        }
        finished.push_back(cell.clone());
        self.metrics.sessions_live.fetch_sub(1, Ordering::Relaxed);
    }
}
