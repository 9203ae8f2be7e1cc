//! The session table: live sessions by id (in memory, or evicted to the
//! store with their next deadline), the calls each owns, events held for
//! calls nobody owns yet, and the calls of recently ended sessions.
//! Only data: the runtime takes its lock and decides.

use chrono::{DateTime, Utc};
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use tokio::sync::mpsc;

use super::worker::{Input, SessionCell};
use crate::flow::Flow;

#[derive(Default)]
pub(super) struct Table {
    /// Live sessions by id, with the sender of their queue.
    pub(super) sessions: HashMap<Arc<str>, Route>,
    /// Every call id a live session owns → its session id.
    pub(super) calls: HashMap<Box<str>, Arc<str>>,
    /// Events for calls nobody owns yet.
    pub(super) orphans: Orphans,
    /// Calls of recently retired sessions: a late or repeated notification
    /// (Graph retrying a batch) must not start a new session for them.
    pub(super) ended: RecentCalls,
    /// Live sessions not in memory: evicted (their state is in the store),
    /// or being loaded back. Their calls stay in `calls`.
    pub(super) parked: HashMap<Arc<str>, Parked>,
    /// The next deadline of each evicted session, earliest first: when it
    /// falls due, the session is loaded back and its timer fires.
    pub(super) wheel: BTreeSet<(DateTime<Utc>, Arc<str>)>,
    /// How many of `parked` are being loaded back.
    pub(super) waking: usize,
}

/// A live session out of memory: what routes to it and wakes it.
pub(super) struct Parked {
    /// The flow version it is pinned to (shared with the sessions on it).
    pub(super) flow: Arc<Flow>,
    pub(super) state: ParkedState,
}

pub(super) enum ParkedState {
    /// Stored and waiting; its next deadline (also in [`Table::wheel`]).
    Evicted { deadline: Option<DateTime<Utc>> },
    /// Being loaded back: events for it queue here, in order, until its
    /// worker starts.
    Waking { tx: mpsc::Sender<Box<Input>> },
}

/// How many ended calls are remembered.
const REMEMBER_ENDED: usize = 10_000;

#[derive(Default)]
pub(super) struct RecentCalls {
    pub(super) order: VecDeque<Box<str>>,
    pub(super) set: HashSet<Box<str>>,
}

impl RecentCalls {
    pub(super) fn insert(&mut self, call_id: &str) {
        if self.set.contains(call_id) {
            return;
        }
        if self.order.len() >= REMEMBER_ENDED
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        self.order.push_back(call_id.into());
        self.set.insert(call_id.into());
    }

    pub(super) fn contains(&self, call_id: &str) -> bool {
        self.set.contains(call_id)
    }
}

impl Table {
    pub(super) fn route(&self, call_id: &str) -> Option<&Route> {
        self.calls.get(call_id).and_then(|s| self.sessions.get(s))
    }

    /// The evicted (or waking) session that owns `call_id`.
    pub(super) fn parked_owner(&self, call_id: &str) -> Option<Arc<str>> {
        self.calls
            .get(call_id)
            .filter(|s| self.parked.contains_key(*s))
            .cloned()
    }

    /// Live sessions, in memory or not.
    pub(super) fn live(&self) -> usize {
        self.sessions.len() + self.parked.len()
    }
}

/// How long an event for an unknown call is held when nothing says which
/// create it belongs to (a `submit` without a session hint while some
/// session has a create in flight).
const ORPHAN_HOLD: chrono::Duration = chrono::Duration::seconds(5);
/// The longest an event is held for a session's create in flight (the
/// create is normally answered, or fails, long before: its timeout and
/// retries).
const CREATE_HOLD: chrono::Duration = chrono::Duration::seconds(120);
/// At most this many such events are held at once.
pub const MAX_ORPHANS: usize = 4096;

/// Events held for calls nobody owns yet, by call.
#[derive(Default)]
pub(super) struct Orphans {
    by_call: HashMap<Box<str>, Held>,
    held: usize,
    last_sweep: Option<DateTime<Utc>>,
}

/// The events held for one call, and the session whose create the call's
/// callback named (if any).
struct Held {
    for_session: Option<Arc<str>>,
    inputs: Vec<(DateTime<Utc>, Box<Input>)>,
}

fn expired(for_session: &Option<Arc<str>>, at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    let hold = if for_session.is_some() {
        CREATE_HOLD
    } else {
        ORPHAN_HOLD
    };
    now - at >= hold
}

impl Orphans {
    /// Holds `input` for `call_id`, for the create of `for_session` (until
    /// it is answered) or, without one, a few seconds. `Err` when the hold
    /// is full. Returns how many older events expired meanwhile.
    pub(super) fn hold(
        &mut self,
        call_id: Box<str>,
        for_session: Option<Arc<str>>,
        input: Box<Input>,
        now: DateTime<Utc>,
    ) -> (Result<(), Box<Input>>, usize) {
        let mut gone = 0;
        if self
            .last_sweep
            .is_none_or(|t| now - t >= chrono::Duration::seconds(1))
        {
            self.last_sweep = Some(now);
            let mut held = 0;
            self.by_call.retain(|_, h| {
                let before = h.inputs.len();
                let session = h.for_session.clone();
                h.inputs.retain(|(at, _)| !expired(&session, *at, now));
                gone += before - h.inputs.len();
                held += h.inputs.len();
                !h.inputs.is_empty()
            });
            self.held = held;
        }
        if self.held >= MAX_ORPHANS {
            return (Err(input), gone);
        }
        self.held += 1;
        let entry = self.by_call.entry(call_id).or_insert_with(|| Held {
            for_session: None,
            inputs: Vec::new(),
        });
        if for_session.is_some() {
            entry.for_session = for_session;
        }
        entry.inputs.push((now, input));
        (Ok(()), gone)
    }

    /// The events held for `call_id`, in order, and how many had expired.
    // The inputs are boxed already: they go into a call's queue as they are.
    #[allow(clippy::vec_box)]
    pub(super) fn take(&mut self, call_id: &str, now: DateTime<Utc>) -> (Vec<Box<Input>>, usize) {
        let Some(h) = self.by_call.remove(call_id) else {
            return (Vec::new(), 0);
        };
        self.held -= h.inputs.len();
        let total = h.inputs.len();
        let live: Vec<Box<Input>> = h
            .inputs
            .into_iter()
            .filter(|(at, _)| !expired(&h.for_session, *at, now))
            .map(|(_, input)| input)
            .collect();
        let gone = total - live.len();
        (live, gone)
    }

    /// Drops every event held for the creates of session `id` (none is in
    /// flight any more); returns the calls and how many events each had.
    pub(super) fn release(&mut self, id: &str) -> Vec<(Box<str>, usize)> {
        let calls: Vec<Box<str>> = self
            .by_call
            .iter()
            .filter(|(_, h)| h.for_session.as_deref() == Some(id))
            .map(|(c, _)| c.clone())
            .collect();
        calls
            .into_iter()
            .filter_map(|c| {
                let h = self.by_call.remove(&c)?;
                self.held -= h.inputs.len();
                Some((c, h.inputs.len()))
            })
            .collect()
    }

    /// Every event held now.
    pub(super) fn len(&self) -> usize {
        self.held
    }
}

pub(super) struct Route {
    pub(super) cell: Arc<SessionCell>,
    pub(super) tx: mpsc::Sender<Box<Input>>,
}
