//! Recovery at start: the sessions the store kept come back to life.
//!
//! Each live session is loaded with the flow version it is pinned to (the
//! live set's flow when its source is the same, else the source the store
//! kept by hash, compiled again), registered with its calls, and given a
//! task that reconciles it with Graph before anything else; its timers are
//! re-armed as they were (a deadline that passed while the server was down
//! falls due at once). Then the events journaled and not applied are routed
//! again, in arrival order. Also here: the task that removes ended sessions
//! past their keeping time.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::engine::{Event, Session, TimelineEntry};
use crate::flow::{Flow, FlowSet};

use super::store::{Persisted, StoreError, Write};
use super::table::Route;
use super::worker::{Input, Journaled, Restored, SessionCell};
use super::{Inner, lock};

/// Journal entries no session took are removed after this long.
const JOURNAL_KEEP: Duration = Duration::from_secs(3600);
/// How often (at most) ended sessions past their keeping time are removed.
const PURGE_EVERY: Duration = Duration::from_secs(60);

/// The writes that keep every flow of `set` by its hash.
pub(super) fn flow_writes(set: &FlowSet) -> Vec<Write> {
    set.flows
        .values()
        .map(|f| Write::Flow {
            hash: f.version.clone(),
            name: f.name.clone(),
            source: crate::flow::shared::bundle(f),
        })
        .collect()
}

fn to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::days(365 * 30))
}

pub(super) async fn recover(inner: &Arc<Inner>) -> Result<usize, StoreError> {
    let store = inner.config.store.clone();
    if !store.durable() {
        return Ok(0);
    }
    store.write(flow_writes(&inner.flows.load())).await?;
    if let Some(cluster) = inner.config.cluster.clone() {
        // Several instances: this one takes back what it held before a
        // crash and what nobody holds; the others' sessions stay theirs.
        cluster.start(inner).await;
        spawn_purge(inner.clone());
        let count = lock(&inner.table).sessions.len();
        return Ok(count);
    }
    let recovered = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || store.recover())
            .await
            .map_err(|e| StoreError::Failed(e.to_string()))??
    };
    let mut timelines = if store.timeline_rows() {
        let store = store.clone();
        tokio::task::spawn_blocking(move || store.live_timelines())
            .await
            .map_err(|e| StoreError::Failed(e.to_string()))??
    } else {
        HashMap::new()
    };
    let now_micros = u64::try_from(chrono::Utc::now().timestamp_micros()).unwrap_or(0);
    let next = recovered
        .journal
        .iter()
        .map(|e| e.seq + 1)
        .max()
        .unwrap_or(0)
        .max(now_micros);
    inner.seq.store(next, Ordering::Release);

    let set = inner.flows.load_full();
    let mut pinned: HashMap<String, Option<Arc<Flow>>> = HashMap::new();
    let mut count = 0;
    let mut starts = Vec::new();
    for record in recovered.sessions {
        if let Some(start) = restore(inner, &set, &mut pinned, record, &mut timelines).await {
            starts.push(start);
            count += 1;
        }
    }
    inner
        .metrics
        .sessions_recovered
        .fetch_add(count as u64, Ordering::Relaxed);
    let mut replayed = 0;
    for entry in recovered.journal {
        let Ok(event) = serde_json::from_str::<Event>(&entry.event) else {
            continue;
        };
        // Applied at the time it was received, as it was (or would have
        // been) before the stop: the same timers, the same decisions.
        let journaled = Journaled {
            seq: entry.seq,
            at: Some(entry.received_at),
        };
        let _ = inner.route(event, tokio::time::Instant::now(), Some(journaled), None);
        replayed += 1;
    }
    // Started once their journaled events are queued: each applies them
    // before it is reconciled with Graph.
    for (cell, rx, restored) in starts {
        tokio::spawn(super::worker::run(inner.clone(), cell, rx, Some(restored)));
    }
    if count > 0 || replayed > 0 {
        tracing::info!(
            sessions = count,
            events = replayed,
            "recovered from the store: live sessions resumed, journaled events applied"
        );
    }
    spawn_purge(inner.clone());
    Ok(count)
}

/// Brings one stored session back here (pinned to its flow version, its
/// timeline rows put back), registered with its calls; the caller starts
/// its task, which reconciles it with Graph first. `None` when it cannot be
/// read or its flow version is not in the store (it is left there).
async fn restore(
    inner: &Arc<Inner>,
    set: &FlowSet,
    pinned: &mut HashMap<String, Option<Arc<Flow>>>,
    record: super::store::SessionRecord,
    timelines: &mut HashMap<String, Vec<String>>,
) -> Option<Start> {
    let mut persisted: Persisted = match serde_json::from_str(&record.state) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(session = %record.id, error = %e,
                "a stored session could not be read; it is left in the store");
            return None;
        }
    };
    let flow = match pinned.get(&record.flow_version) {
        Some(f) => f.clone(),
        None => {
            let f = pinned_flow(inner, set, &record.flow, &record.flow_version).await;
            pinned.insert(record.flow_version.clone(), f.clone());
            f
        }
    };
    let Some(flow) = flow else {
        tracing::error!(session = %record.id, flow = %record.flow, version = %record.flow_version,
            "a stored session's flow version is not in the store; it is left there");
        return None;
    };
    let stored = with_timeline(&mut persisted.session, timelines.remove(&record.id));
    Some(register_restored(inner, flow, persisted, stored))
}

/// [`restore`] of a session another instance held (see `cluster`), started
/// at once.
pub(super) async fn restore_record(
    inner: &Arc<Inner>,
    record: super::store::SessionRecord,
) -> bool {
    let set = inner.flows.load_full();
    let mut timelines = HashMap::new();
    let store = inner.config.store.clone();
    if store.timeline_rows() {
        let id = record.id.clone();
        let rows = tokio::task::spawn_blocking(move || store.timeline(&id)).await;
        if let Ok(Ok(rows)) = rows {
            timelines.insert(record.id.clone(), rows);
        }
    }
    match restore(inner, &set, &mut HashMap::new(), record, &mut timelines).await {
        Some((cell, rx, restored)) => {
            tokio::spawn(super::worker::run(inner.clone(), cell, rx, Some(restored)));
            true
        }
        None => false,
    }
}

/// The flow a stored session is pinned to.
async fn pinned_flow(
    inner: &Arc<Inner>,
    set: &FlowSet,
    name: &str,
    hash: &str,
) -> Option<Arc<Flow>> {
    if let Some(f) = set.flows.values().find(|f| f.version == hash) {
        return Some(f.clone());
    }
    let store = inner.config.store.clone();
    let key = hash.to_owned();
    let (stored_name, text) = tokio::task::spawn_blocking(move || store.flow_source(&key))
        .await
        .ok()?
        .ok()??;
    let short = &hash[..hash.len().min(12)];
    let loaded =
        crate::flow::shared::unbundle(&format!("{stored_name} (stored version {short})"), &text);
    match loaded.flow {
        Some(flow) => {
            tracing::info!(
                flow = name,
                version = short,
                "a recovered session runs on the flow version it began with"
            );
            Some(Arc::new(flow))
        }
        None => None,
    }
}

/// A restored session, registered with its calls, and its task's start.
type Start = (Arc<SessionCell>, mpsc::Receiver<Box<Input>>, Restored);

/// Puts a session's timeline rows (when the store keeps them) back in it;
/// how many entries the store holds as rows (none for a state written by
/// schema version 2, which holds its entries itself: they move to rows
/// when it is next written).
pub(super) fn with_timeline(session: &mut Session, rows: Option<Vec<String>>) -> usize {
    let Some(rows) = rows.filter(|r| !r.is_empty()) else {
        return 0;
    };
    let count = rows.len();
    let entries: Vec<TimelineEntry> = rows
        .iter()
        .filter_map(|row| {
            serde_json::from_str(row)
                .map_err(|e| {
                    tracing::warn!(session = %session.id, error = %e,
                    "a stored timeline entry could not be read; it is left out")
                })
                .ok()
        })
        .collect();
    let mut entries = entries;
    entries.append(&mut session.timeline.entries);
    session.timeline.entries = entries;
    count
}

fn register_restored(
    inner: &Arc<Inner>,
    flow: Arc<Flow>,
    p: Persisted,
    timeline_stored: usize,
) -> Start {
    let mut calls: Vec<String> = p
        .session
        .legs
        .iter()
        .filter_map(|l| l.call_id.clone())
        .collect();
    calls.extend(p.owned.iter().cloned());
    let restored = Restored {
        timeline_stored,
        timers: p.timers,
        inflight: p.inflight,
        owned: p.owned,
        resume: true,
    };
    let cell = Arc::new(SessionCell::new(flow, p.session));
    let (tx, rx) = mpsc::channel(inner.config.queue_per_call.max(1));
    {
        let mut table = lock(&inner.table);
        for call in calls {
            table.calls.insert(call.into(), cell.id.clone());
        }
        table.sessions.insert(
            cell.id.clone(),
            Route {
                cell: cell.clone(),
                tx,
            },
        );
        inner.tasks.fetch_add(1, Ordering::AcqRel);
        // The reconciliation is work in flight until it is done.
        inner.pending.fetch_add(1, Ordering::AcqRel);
    }
    inner.metrics.sessions_live.fetch_add(1, Ordering::Relaxed);
    (cell, rx, restored)
}

/// Every [`PURGE_EVERY`], removes ended sessions older than `keep_ended`
/// and journal entries nobody took; ends with the runtime.
fn spawn_purge(inner: Arc<Inner>) {
    let mut stopping = inner.stopping.subscribe();
    // A short keeping time is honoured closely (bounded below: not a busy loop).
    let every = PURGE_EVERY
        .min(inner.config.keep_ended)
        .max(Duration::from_millis(200));
    tokio::spawn(async move {
        loop {
            let now = inner.clock.now();
            let purge = Write::Purge {
                ended_before: now - to_chrono(inner.config.keep_ended),
                journal_before: now - to_chrono(JOURNAL_KEEP),
            };
            if let Err(e) = inner.config.store.write(vec![purge]).await {
                tracing::warn!(error = %e, "removing old sessions from the store failed");
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stopping.changed() => return,
            }
        }
    });
}
