//! The session table: live sessions by id, the calls each owns, events
//! held for calls nobody owns yet, and the calls of recently ended sessions.
//! Only data: the runtime takes its lock and decides.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::worker::{Input, SessionCell};

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
}

/// How long an event for an unknown call is held, in case a session is
/// about to learn that it created the call (Graph's first notifications of
/// a new call can overtake the answer to `POST /communications/calls`).
const ORPHAN_HOLD: Duration = Duration::from_secs(5);
/// At most this many such events are held at once.
const MAX_ORPHANS: usize = 4096;

#[derive(Default)]
pub(super) struct Orphans {
    pub(super) by_call: HashMap<Box<str>, Vec<(Instant, Box<Input>)>>,
    pub(super) held: usize,
    pub(super) last_sweep: Option<Instant>,
}

impl Orphans {
    pub(super) fn hold(&mut self, call_id: Box<str>, input: Box<Input>, now: Instant) {
        if self
            .last_sweep
            .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(1))
        {
            self.last_sweep = Some(now);
            let mut held = 0;
            self.by_call.retain(|_, list| {
                list.retain(|(at, _)| now.saturating_duration_since(*at) < ORPHAN_HOLD);
                held += list.len();
                !list.is_empty()
            });
            self.held = held;
        }
        if self.held < MAX_ORPHANS {
            self.held += 1;
            self.by_call.entry(call_id).or_default().push((now, input));
        }
    }

    // The inputs are boxed already: they go into a call's queue as they are.
    #[allow(clippy::vec_box)]
    pub(super) fn take(&mut self, call_id: &str) -> Vec<Box<Input>> {
        let now = Instant::now();
        let list = self.by_call.remove(call_id).unwrap_or_default();
        self.held -= list.len();
        list.into_iter()
            .filter(|(at, _)| now.saturating_duration_since(*at) < ORPHAN_HOLD)
            .map(|(_, input)| input)
            .collect()
    }
}

pub(super) struct Route {
    pub(super) cell: Arc<SessionCell>,
    pub(super) tx: mpsc::Sender<Box<Input>>,
}
