//! Idle sessions out of memory, and back.
//!
//! With a durable store this instance has alone ([`Inner::evict_after`]),
//! a session's worker evicts it once nothing has happened to it for
//! [`RuntimeConfig::evict_after`](super::RuntimeConfig::evict_after) and
//! nothing is in flight (see `worker`): its state is stored, its task,
//! queue and `Session` go, and the table keeps only what routes to it (its
//! calls → its id, and its pinned flow) and its next deadline, in
//! [`Table::wheel`]. An event for one of its calls, or that deadline
//! ([`wheel`]), loads it back ([`wake`]): events that come while it loads
//! queue behind the load, in order, and its worker starts as the session
//! was (no reconciliation with Graph: it never stopped). The engine never
//! knows: a session evicted and woken steps exactly as one kept in memory.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::flow::Flow;

use super::store::{Persisted, SessionRecord, StoreError};
use super::table::{Parked, ParkedState, Route, Table};
use super::worker::{Input, Restored, SessionCell};
use super::{Dropped, Inner, lock, metrics, recover};

/// How long a failed read of an evicted session waits before it is tried
/// again (its events wait in its queue meanwhile).
const RETRY_READ: Duration = Duration::from_secs(1);

/// Sends `input` (if any) to the evicted or waking session `id`, loading
/// it back from the store if it is evicted. Called under the table's lock,
/// as every send is, so that its events keep their order.
pub(super) fn wake(
    inner: &Arc<Inner>,
    table: &mut Table,
    id: &Arc<str>,
    input: Option<Box<Input>>,
) -> Result<(), &'static str> {
    let Table {
        parked,
        wheel,
        waking,
        ..
    } = table;
    let Some(p) = parked.get_mut(id) else {
        return Ok(());
    };
    let deadline = match &p.state {
        ParkedState::Waking { tx } => {
            let Some(input) = input else { return Ok(()) };
            inner.pending.fetch_add(1, Ordering::AcqRel);
            return match tx.try_send(input) {
                Ok(()) => Ok(()),
                Err(e) => {
                    inner.pending.fetch_sub(1, Ordering::AcqRel);
                    inner.refused(e)
                }
            };
        }
        ParkedState::Evicted { deadline } => *deadline,
    };
    if let Some(at) = deadline {
        wheel.remove(&(at, id.clone()));
    }
    let (tx, rx) = mpsc::channel(inner.config.queue_per_call.max(1));
    // The load is work in flight until the worker runs.
    inner.pending.fetch_add(1, Ordering::AcqRel);
    if let Some(input) = input {
        inner.pending.fetch_add(1, Ordering::AcqRel);
        // The queue is new and holds at least one.
        if tx.try_send(input).is_err() {
            inner.pending.fetch_sub(1, Ordering::AcqRel);
        }
    }
    p.state = ParkedState::Waking { tx };
    *waking += 1;
    // Counted under the lock, so that `shutdown` waits for it.
    inner.tasks.fetch_add(1, Ordering::AcqRel);
    tokio::spawn(load(inner.clone(), id.clone(), p.flow.clone(), rx));
    Ok(())
}

/// What reading an evicted session gave.
enum Loaded {
    Session(Box<Persisted>, usize),
    /// Not in the store, or not readable: it cannot run again.
    Unreadable,
    /// The store failed until the runtime stopped.
    GaveUp,
}

fn parse(id: &str, record: &SessionRecord, rows: Vec<String>) -> Loaded {
    match serde_json::from_str::<Persisted>(&record.state) {
        Ok(mut p) if record.live => {
            let stored = recover::with_timeline(&mut p.session, Some(rows));
            Loaded::Session(Box::new(p), stored)
        }
        Ok(_) => {
            tracing::error!(session = id, "an evicted session is stored as ended");
            Loaded::Unreadable
        }
        Err(e) => {
            tracing::error!(session = id, error = %e, "an evicted session's stored state could not be read");
            Loaded::Unreadable
        }
    }
}

/// Reads session `id` back (retrying while the store fails), then runs its
/// worker on `rx`, the queue its events waited in.
async fn load(
    inner: Arc<Inner>,
    id: Arc<str>,
    flow: Arc<Flow>,
    mut rx: mpsc::Receiver<Box<Input>>,
) {
    let mut failures = 0u32;
    let loaded = loop {
        let store = inner.config.store.clone();
        let key = id.to_string();
        let read = tokio::task::spawn_blocking(move || store.session_with_timeline(&key))
            .await
            .map_err(|e| StoreError::Failed(e.to_string()))
            .and_then(|r| r);
        match read {
            Ok(Some((record, rows))) => break parse(&id, &record, rows),
            Ok(None) => {
                tracing::error!(session = %id, "an evicted session is not in the store");
                break Loaded::Unreadable;
            }
            Err(e) => {
                metrics::inc(&inner.metrics.store_errors);
                if failures == 0 {
                    tracing::error!(session = %id, error = %e,
                        "an evicted session could not be read from the store: tried again every \
                         second, its events waiting");
                }
                failures += 1;
                if inner.closing.load(Ordering::Acquire) {
                    break Loaded::GaveUp;
                }
                tokio::time::sleep(RETRY_READ).await;
            }
        }
    };
    let Loaded::Session(p, timeline_stored) = loaded else {
        let gone = matches!(loaded, Loaded::Unreadable);
        {
            let mut table = lock(&inner.table);
            table.waking -= 1;
            table.parked.remove(&id);
            if gone {
                table.calls.retain(|_, s| *s != id);
            }
        }
        inner
            .metrics
            .sessions_evicted
            .fetch_sub(1, Ordering::Relaxed);
        if gone {
            inner.metrics.sessions_live.fetch_sub(1, Ordering::Relaxed);
            tracing::error!(session = %id,
                "the session is dropped from memory (left in the store as it is)");
        }
        rx.close();
        let mut lost = 0;
        while rx.try_recv().is_ok() {
            lost += 1;
        }
        inner
            .metrics
            .count_dropped(Dropped::SessionStopping, lost as u64);
        inner.pending.fetch_sub(lost + 1, Ordering::AcqRel);
        if inner.tasks.fetch_sub(1, Ordering::AcqRel) == 1 {
            inner.tasks_done.notify_waiters();
        }
        return;
    };
    let p = *p;
    let restored = Restored {
        timeline_stored,
        timers: p.timers,
        inflight: p.inflight,
        owned: p.owned,
        resume: false,
    };
    let cell = Arc::new(SessionCell::new(flow, p.session));
    {
        let mut table = lock(&inner.table);
        table.waking -= 1;
        let tx = match table.parked.remove(&id) {
            Some(Parked {
                state: ParkedState::Waking { tx },
                ..
            }) => Some(tx),
            Some(other) => {
                table.parked.insert(id.clone(), other);
                None
            }
            None => None,
        };
        // Stopping: no route; the worker applies what is queued and stops.
        if let Some(tx) = tx.filter(|_| !inner.closing.load(Ordering::Acquire)) {
            table.sessions.insert(
                cell.id.clone(),
                Route {
                    cell: cell.clone(),
                    tx,
                },
            );
        }
    }
    inner
        .metrics
        .sessions_evicted
        .fetch_sub(1, Ordering::Relaxed);
    metrics::inc(&inner.metrics.sessions_woken);
    tracing::debug!(session = %id, "evicted session loaded back");
    super::worker::run(inner, cell, rx, Some(restored)).await;
}

/// Wakes each evicted session when its next deadline falls due (its
/// worker then fires the timer). Runs until the runtime stops.
pub(super) async fn wheel(inner: Arc<Inner>) {
    let mut stopping = inner.stopping.subscribe();
    loop {
        let changed = inner.wheel_changed.notified();
        let next = lock(&inner.table).wheel.first().map(|(at, _)| *at);
        let sleep = match next {
            Some(at) => inner.clock.sleep_until(at),
            None => Box::pin(std::future::pending()),
        };
        tokio::select! {
            woken = sleep => {
                let now = inner.clock.now();
                let mut table = lock(&inner.table);
                let due: Vec<_> = table
                    .wheel
                    .iter()
                    .take_while(|(at, _)| *at <= now)
                    .cloned()
                    .collect();
                for key in due {
                    table.wheel.remove(&key);
                    let _ = wake(&inner, &mut table, &key.1, None);
                }
                drop(table);
                // Released once the woken sessions count as work in flight.
                drop(woken);
            }
            () = changed => {}
            _ = stopping.changed() => return,
        }
    }
}
