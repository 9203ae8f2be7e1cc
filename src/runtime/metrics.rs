//! The runtime's counters, gauges and histograms, as plain atomics.
//!
//! The server renders them as Prometheus text; nothing here formats or
//! knows HTTP. Every field is public and monotonic unless it says gauge.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::engine::{ActionDone, ActionOutcome, Outcome, RequestKind};

/// A fixed-bucket histogram of durations (cumulative buckets are computed
/// when rendered: each count here is for its own bucket only).
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    sum_micros: AtomicU64,
    count: AtomicU64,
}

/// Bucket upper bounds in seconds, for latencies from microseconds to seconds.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

impl Histogram {
    /// An empty histogram with upper bounds `bounds` (seconds, ascending).
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        self.observe_value(d.as_secs_f64());
    }

    /// Records one observation that is not a duration (a count: the
    /// bounds are then counts, and [`Histogram::sum_seconds`] their sum).
    pub fn observe_value(&self, value: f64) {
        let i = self
            .bounds
            .iter()
            .position(|b| value <= *b)
            .unwrap_or(self.bounds.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((value * 1e6) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// The upper bounds, in seconds (the last bucket, `+Inf`, is implied).
    pub fn bounds(&self) -> &'static [f64] {
        self.bounds
    }

    /// Cumulative counts, one per bound, then the `+Inf` bucket (= count).
    pub fn cumulative(&self) -> Vec<u64> {
        let mut total = 0;
        self.counts
            .iter()
            .map(|c| {
                total += c.load(Ordering::Relaxed);
                total
            })
            .collect()
    }

    /// The sum of observations, in seconds.
    pub fn sum_seconds(&self) -> f64 {
        self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
    }

    /// How many observations.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// An estimate of quantile `q` (0..=1): the upper bound of the bucket it falls in.
    pub fn quantile_upper_bound(&self, q: f64) -> Option<f64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let rank = (q * n as f64).ceil().max(1.0) as u64;
        let cumulative = self.cumulative();
        let i = cumulative.iter().position(|c| *c >= rank)?;
        Some(self.bounds.get(i).copied().unwrap_or(f64::INFINITY))
    }
}

/// Notification kinds counted by [`Metrics::notifications`].
pub const NOTIFICATION_KINDS: [&str; 4] = ["call", "operation", "participants", "other"];

/// Why an event read from an accepted notification was not applied to a
/// session, as `callflow_notifications_dropped_total{reason}` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dropped {
    /// No session owns the call, and none is creating it.
    UnknownCall,
    /// Held for a create in flight (or a few seconds), which never claimed it.
    OrphanExpired,
    /// The hold for calls nobody owns yet was full.
    OrphansFull,
    /// A late notification for a call whose session has ended.
    EndedCall,
    /// An incoming call no flow takes (left to ring out).
    NoFlow,
    /// A notification about nothing the engine acts on (content sharing, …).
    IgnoredResource,
    /// The call's session was stopping.
    SessionStopping,
    /// Held when the runtime shut down.
    Shutdown,
}

impl Dropped {
    /// Every reason, in the order of [`Metrics::dropped`].
    pub const ALL: [Dropped; 8] = [
        Dropped::UnknownCall,
        Dropped::OrphanExpired,
        Dropped::OrphansFull,
        Dropped::EndedCall,
        Dropped::NoFlow,
        Dropped::IgnoredResource,
        Dropped::SessionStopping,
        Dropped::Shutdown,
    ];

    /// The metric's label.
    pub fn as_str(self) -> &'static str {
        match self {
            Dropped::UnknownCall => "unknown_call",
            Dropped::OrphanExpired => "orphan_expired",
            Dropped::OrphansFull => "orphans_full",
            Dropped::EndedCall => "ended_call",
            Dropped::NoFlow => "no_flow",
            Dropped::IgnoredResource => "ignored_resource",
            Dropped::SessionStopping => "session_stopping",
            Dropped::Shutdown => "shutdown",
        }
    }
}

/// Everything the runtime counts.
#[derive(Debug)]
pub struct Metrics {
    /// Events of accepted notifications that reached no session, by reason
    /// ([`Dropped::ALL`] order); each is logged with its call and why.
    pub dropped: [AtomicU64; 8],
    /// Gauge: events held now for calls nobody owns yet.
    pub orphans_held: AtomicU64,
    /// Notifications received, by kind ([`NOTIFICATION_KINDS`] order).
    pub notifications: [AtomicU64; 4],
    /// Events about a call no session owned when they came (held while a
    /// create that may claim them is in flight, else dropped: [`Metrics::dropped`]).
    pub unknown_call_events: AtomicU64,
    /// Of those, events a session claimed soon after (the first notifications
    /// of a call it created, overtaking Graph's answer to the create request).
    pub orphans_claimed: AtomicU64,
    /// Events dropped because a call's queue was full, or the runtime was overloaded.
    pub overloaded: AtomicU64,
    /// Incoming calls no flow takes (left to ring out).
    pub unmatched_incoming: AtomicU64,
    /// Sessions started.
    pub sessions_started: AtomicU64,
    /// Gauge: sessions alive now.
    pub sessions_live: AtomicU64,
    /// Sessions ended, by outcome ([`Outcome::ALL`] order).
    pub sessions_ended: [AtomicU64; 7],
    /// Of those, the ones that ended with a flow's own named outcome (a
    /// step's `end:`), by outcome and name; names come only from flows.
    pub sessions_ended_named: Mutex<BTreeMap<(Outcome, String), u64>>,
    /// Sessions reaped because nothing happened for `idle_reap_after`.
    pub sessions_reaped: AtomicU64,
    /// Steps' actions finished, by action kind and how they finished.
    pub actions: Mutex<BTreeMap<(&'static str, ActionOutcome), u64>>,
    /// Sessions ended because the engine or the `CallControl` panicked
    /// (a bug): their calls were hung up.
    pub internal_errors: AtomicU64,
    /// Graph requests, by kind ([`RequestKind::ALL`] order), that succeeded.
    pub requests_ok: [AtomicU64; RequestKind::ALL.len()],
    /// Graph requests, by kind ([`RequestKind::ALL`] order), that failed.
    pub requests_failed: [AtomicU64; RequestKind::ALL.len()],
    /// Time each Graph request took.
    pub graph_latency: Histogram,
    /// From a notification handed to `submit` to the first request it caused being sent.
    pub dispatch_latency: Histogram,
    /// Timers fired (steps' and the session's rules').
    pub timers_fired: AtomicU64,
    /// Incoming calls not answered, rejected or redirected within 15 s (rejected by the engine's answer rule).
    pub answer_deadline_missed: AtomicU64,
    /// Reloads that swapped in a new set.
    pub reloads_ok: AtomicU64,
    /// Reloads refused (the old set kept serving).
    pub reloads_failed: AtomicU64,
    /// Writes the session store refused (a full disk, a failing device):
    /// notifications then get `503`.
    pub store_errors: AtomicU64,
    /// Sessions loaded from the store at start.
    pub sessions_recovered: AtomicU64,
    /// Sessions taken over from another instance (its lease expired or
    /// handed back) on a PostgreSQL store.
    pub sessions_taken_over: AtomicU64,
    /// Sessions stopped here because another instance holds their lease (a
    /// fenced write, or a lease not renewed).
    pub sessions_fenced: AtomicU64,
    /// Events journaled here for a session another instance holds.
    pub events_forwarded: AtomicU64,
    /// Journal entries another instance acknowledged and never applied (it
    /// died before their session was first stored), applied here.
    pub events_adopted: AtomicU64,
    /// Gauge: live sessions evicted now (stored, waiting, not in memory;
    /// see [`RuntimeConfig::evict_after`](super::RuntimeConfig::evict_after)).
    pub sessions_evicted: AtomicU64,
    /// Evictions: idle sessions dropped from memory (their state stored).
    pub evictions: AtomicU64,
    /// Evicted sessions loaded back from the store (a notification or a
    /// timer for them).
    pub sessions_woken: AtomicU64,
}

fn zeros<const N: usize>() -> [AtomicU64; N] {
    std::array::from_fn(|_| AtomicU64::new(0))
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            dropped: zeros(),
            orphans_held: AtomicU64::new(0),
            notifications: zeros(),
            unknown_call_events: AtomicU64::new(0),
            orphans_claimed: AtomicU64::new(0),
            overloaded: AtomicU64::new(0),
            store_errors: AtomicU64::new(0),
            sessions_recovered: AtomicU64::new(0),
            sessions_taken_over: AtomicU64::new(0),
            sessions_fenced: AtomicU64::new(0),
            events_forwarded: AtomicU64::new(0),
            events_adopted: AtomicU64::new(0),
            sessions_evicted: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            sessions_woken: AtomicU64::new(0),
            unmatched_incoming: AtomicU64::new(0),
            sessions_started: AtomicU64::new(0),
            sessions_live: AtomicU64::new(0),
            sessions_ended: zeros(),
            sessions_ended_named: Mutex::new(BTreeMap::new()),
            sessions_reaped: AtomicU64::new(0),
            internal_errors: AtomicU64::new(0),
            actions: Mutex::new(BTreeMap::new()),
            requests_ok: zeros(),
            requests_failed: zeros(),
            graph_latency: Histogram::new(LATENCY_BUCKETS),
            dispatch_latency: Histogram::new(LATENCY_BUCKETS),
            timers_fired: AtomicU64::new(0),
            answer_deadline_missed: AtomicU64::new(0),
            reloads_ok: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    /// Counts `n` events dropped for `why`.
    pub fn count_dropped(&self, why: Dropped, n: u64) {
        let i = Dropped::ALL.iter().position(|d| *d == why).unwrap_or(0);
        self.dropped[i].fetch_add(n, Ordering::Relaxed);
    }

    /// Events dropped for `why` so far.
    pub fn dropped(&self, why: Dropped) -> u64 {
        let i = Dropped::ALL.iter().position(|d| *d == why).unwrap_or(0);
        Self::get(&self.dropped[i])
    }

    /// Reads one counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Counts steps' actions that finished.
    pub fn count_actions(&self, done: &[ActionDone]) {
        if done.is_empty() {
            return;
        }
        let mut actions = self.actions.lock().unwrap_or_else(PoisonError::into_inner);
        for d in done {
            *actions.entry((d.action, d.outcome)).or_default() += 1;
        }
    }

    /// Steps' actions of kind `action` that finished with `outcome`.
    pub fn action(&self, action: &str, outcome: ActionOutcome) -> u64 {
        self.actions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|((a, o), _)| *a == action && *o == outcome)
            .map_or(0, |(_, n)| *n)
    }

    /// Every (action, outcome) counted so far, sorted.
    pub fn actions(&self) -> Vec<(&'static str, ActionOutcome, u64)> {
        self.actions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|((a, o), n)| (*a, *o, *n))
            .collect()
    }

    /// Sessions ended with `outcome`.
    pub fn ended(&self, outcome: Outcome) -> u64 {
        let i = Outcome::ALL.iter().position(|o| *o == outcome).unwrap_or(0);
        Self::get(&self.sessions_ended[i])
    }

    /// Requests of `kind` that succeeded (`ok`) or failed.
    pub fn requests(&self, kind: RequestKind, ok: bool) -> u64 {
        let i = kind_index(kind);
        Self::get(if ok {
            &self.requests_ok[i]
        } else {
            &self.requests_failed[i]
        })
    }

    pub(crate) fn count_request(&self, kind: RequestKind, ok: bool, took: Duration) {
        let i = kind_index(kind);
        let c = if ok {
            &self.requests_ok[i]
        } else {
            &self.requests_failed[i]
        };
        c.fetch_add(1, Ordering::Relaxed);
        self.graph_latency.observe(took);
    }

    pub(crate) fn count_end(&self, outcome: Outcome, name: Option<&str>) {
        let i = Outcome::ALL.iter().position(|o| *o == outcome).unwrap_or(0);
        self.sessions_ended[i].fetch_add(1, Ordering::Relaxed);
        if let Some(name) = name {
            *self
                .sessions_ended_named
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry((outcome, name.to_owned()))
                .or_default() += 1;
        }
    }

    /// Sessions ended with `outcome` and the flow's own name `name` for it.
    pub fn ended_named(&self, outcome: Outcome, name: &str) -> u64 {
        self.sessions_ended_named
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(outcome, name.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    /// Every (outcome, name) counted so far with its count, sorted.
    pub fn ended_by_name(&self) -> Vec<(Outcome, String, u64)> {
        self.sessions_ended_named
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|((o, n), c)| (*o, n.clone(), *c))
            .collect()
    }
}

fn kind_index(kind: RequestKind) -> usize {
    RequestKind::ALL
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(0)
}

pub(crate) fn inc(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}
