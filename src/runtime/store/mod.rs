//! The session store: what survives a crash, a restart and a deploy.
//!
//! One trait, [`Store`], with three implementations: [`sqlite`] (the
//! default, a file under the data directory, written by one thread that
//! groups commits), [`postgres`] (a server several instances may share,
//! see `runtime::cluster`) and [`memory`] (nothing kept: tests and the
//! demo). The runtime
//! writes three kinds of things through it, and reads them back once, at
//! start ([`Store::recover`]):
//!
//! - the **journal**: every notification's events, written (and committed)
//!   before the server answers `202`, each with a sequence number (and the
//!   body it came in); an entry is marked as the session's in the same
//!   transaction as the session state that applied it, and removed with the
//!   session (it is what `callflow sessions export` replays);
//! - each **session**'s state after each step ([`Persisted`]: the engine's
//!   `Session`, its timers as deadlines, the Graph requests in flight, the
//!   calls it created), written before any Graph request it causes is sent;
//! - **flow sources** by content hash, so that a call pinned to a flow
//!   version finishes on it across a restart even after the file changed;
//! - the **turn counters** of `round_robin` ring groups ([`Store::take_turn`]):
//!   one atomic statement per turn, so that no two calls, on this instance
//!   or another on the same database, ever get the same turn.
//!
//! The trait is shaped for a shared database (PostgreSQL, several
//! instances): writes are batches applied atomically, completion is a future
//! (a network round trip, not a thread hop), and every write of a session
//! carries the whole state, so that a lease holder's fenced write (`… WHERE
//! owner = me AND epoch = held`) is one statement. See docs/decisions.md.
//!
//! This module never interprets a session or an event: it keeps JSON text.

pub mod memory;
pub mod postgres;
pub mod sqlite;
pub mod stats;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::engine::{Command, CommandId, Session, TimerId};

/// What a session's record holds: the engine's state and the runtime's.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Persisted {
    /// The engine's state.
    pub session: Session,
    /// Timers set and not fired nor cancelled, as deadlines.
    #[serde(default)]
    pub timers: Vec<(TimerId, DateTime<Utc>)>,
    /// Graph requests decided and maybe sent, whose result was not applied.
    #[serde(default)]
    pub inflight: Vec<Command>,
    /// Calls the session created (routed to it).
    #[serde(default)]
    pub owned: Vec<String>,
}

impl Persisted {
    /// Forgets the request `command` (its result was applied).
    pub fn settled(&mut self, command: CommandId) {
        self.inflight.retain(|c| c.id() != Some(command));
    }
}

/// One session as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionRecord {
    /// The session's id.
    pub id: String,
    /// Its flow's name.
    pub flow: String,
    /// The flow version (SHA-256 of its source) it is pinned to.
    pub flow_version: String,
    /// Whether it still runs (or waits for its calls to end).
    pub live: bool,
    /// [`Persisted`] as JSON.
    pub state: String,
    /// When it was written.
    pub updated_at: DateTime<Utc>,
    /// When it ended, once it has.
    pub ended_at: Option<DateTime<Utc>>,
}

/// One journaled event.
#[derive(Clone, Debug, PartialEq)]
pub struct JournalEntry {
    /// Its sequence number (arrival order).
    pub seq: u64,
    /// The engine's `Event`, as JSON.
    pub event: String,
    /// When it was received.
    pub received_at: DateTime<Utc>,
    /// The notification body it came in (on the first entry of a body),
    /// kept with the session that applies it, for export as a replay.
    pub body: Option<String>,
}

/// One write of a batch.
#[derive(Clone, Debug)]
pub enum Write {
    /// Events received, to apply if the process stops before they are.
    Journal(Vec<JournalEntry>),
    /// A session's state; the journal entries `applied` are deleted with it.
    Session {
        /// The record.
        record: SessionRecord,
        /// Journal entries this state has applied.
        applied: Vec<u64>,
    },
    /// A flow's source, by its hash (kept once).
    Flow {
        /// SHA-256 of the source.
        hash: String,
        /// The flow's name.
        name: String,
        /// The text.
        source: String,
    },
    /// Timeline entries of a session, appended (only by a store whose
    /// [`Store::timeline_rows`] is `true`): entry number `from + i` is
    /// `entries[i]`, one `TimelineEntry` as JSON each; a number already
    /// stored is replaced. Written in the batch of the session's state,
    /// whose JSON then holds no timeline entries.
    Timeline {
        /// The session's id.
        session: String,
        /// The number of the first entry (how many were stored before).
        from: u32,
        /// The entries, as JSON.
        entries: Vec<String>,
    },
    /// Removes sessions that ended before `ended_before`, and journal
    /// entries received before `journal_before` (events no session took:
    /// a call nobody owns, a late notification).
    Purge {
        /// Sessions ended before this are removed.
        ended_before: DateTime<Utc>,
        /// Journal entries received before this are removed.
        journal_before: DateTime<Utc>,
    },
}

/// What a store holds at start.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Live sessions.
    pub sessions: Vec<SessionRecord>,
    /// Events journaled and not applied, in sequence order.
    pub journal: Vec<JournalEntry>,
}

/// Why the store failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be opened: locked, corrupt, newer, unreadable.
    #[error("{0}")]
    Open(String),
    /// No space left (writes refused until there is).
    #[error("the store is full (no space left on the device): {0}")]
    Full(String),
    /// Any other failure.
    #[error("the store failed: {0}")]
    Failed(String),
    /// The store's writer has stopped.
    #[error("the store is closed")]
    Closed,
    /// A session's write was refused: another instance holds its lease
    /// (PostgreSQL, several instances; see `runtime::cluster`).
    #[error("session {0} is held by another instance")]
    Fenced(String),
}

/// A write's completion.
pub type Done = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send + 'static>>;

/// A turn taken ([`Store::take_turn`]): how many the group's counter had
/// handed out before it.
pub type Taken = Pin<Box<dyn Future<Output = Result<u64, StoreError>> + Send + 'static>>;

/// A page of stored sessions.
#[derive(Debug, Default)]
pub struct Page {
    /// The records, newest first.
    pub records: Vec<SessionRecord>,
    /// Whether there are more.
    pub more: bool,
    /// How many ended sessions the store holds in all.
    pub total: usize,
}

/// Where sessions are kept.
///
/// Writes are batches: a store applies each batch atomically and may group
/// several batches into one commit; the future resolves once the batch is
/// durable. A write is submitted when [`Store::write`] is called (dropping
/// the future only ignores its result), and writes are applied in
/// submission order, except that a [`Store::write_deferred`] batch may be
/// applied after batches submitted later (never after a later flush). The
/// runtime awaits each of a session's writes before it submits the next, so
/// a session's own states are never reordered.
pub trait Store: Send + Sync + 'static {
    /// `sqlite` or `memory`.
    fn kind(&self) -> &'static str;
    /// Whether what is written survives the process.
    fn durable(&self) -> bool;
    /// What the store's writer did so far (a store with a writer of its own).
    fn writer_stats(&self) -> Option<Arc<stats::WriterStats>> {
        None
    }
    /// Applies `writes` atomically; resolves once durable.
    fn write(&self, writes: Vec<Write>) -> Done;
    /// Everything needed at start: live sessions and unapplied events.
    fn recover(&self) -> Result<Recovered, StoreError>;
    /// A flow's source by hash: `(name, text)`.
    fn flow_source(&self, hash: &str) -> Result<Option<(String, String)>, StoreError>;
    /// One stored session.
    fn session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError>;
    /// The notification bodies a session received, with when, in order.
    fn recording(&self, id: &str) -> Result<Vec<(DateTime<Utc>, String)>, StoreError>;
    /// Ended sessions, newest first, from `offset`, at most `limit`.
    fn ended(&self, offset: usize, limit: usize) -> Result<Page, StoreError>;
    /// Takes the next turn of the `round_robin` ring group `group`
    /// (`FLOW/STEP`): the number of turns its counter had handed out before
    /// (`0` for the first), moving it on by one, atomically and durably
    /// (for a durable store) before it resolves. Every taker, in this
    /// process or another on the same database, gets a different turn.
    fn take_turn(&self, group: &str) -> Taken;
    /// Whether the store answers now (`false` while a database server is
    /// unreachable: `/readyz` says not ready). Local stores always do.
    fn ready(&self) -> bool {
        true
    }
    /// [`Store::write`] for a batch nothing urgent waits for (a session's
    /// state a restart can rebuild from the journal): the store may let
    /// journal entries and other writes go first.
    fn write_deferred(&self, writes: Vec<Write>) -> Done {
        self.write(writes)
    }
    /// Waits until every write submitted so far is durable.
    fn flush(&self) -> Done {
        self.write(Vec::new())
    }
    /// Whether the store keeps a session's timeline as rows of their own
    /// ([`Write::Timeline`], appended as the run goes) instead of inside
    /// its state's JSON (rewritten with every state). `false` by default:
    /// the runtime then keeps the timeline in the state.
    fn timeline_rows(&self) -> bool {
        false
    }
    /// A session's timeline rows, in order (entries as JSON).
    fn timeline(&self, _id: &str) -> Result<Vec<String>, StoreError> {
        Ok(Vec::new())
    }
    /// The timeline rows of every live session, by session id, in order.
    fn live_timelines(&self) -> Result<HashMap<String, Vec<String>>, StoreError> {
        Ok(HashMap::new())
    }
    /// One stored session with its timeline rows (empty unless
    /// [`Store::timeline_rows`]), read together: what waking an evicted
    /// session loads.
    fn session_with_timeline(
        &self,
        id: &str,
    ) -> Result<Option<(SessionRecord, Vec<String>)>, StoreError> {
        let Some(record) = self.session(id)? else {
            return Ok(None);
        };
        let rows = if self.timeline_rows() {
            self.timeline(id)?
        } else {
            Vec::new()
        };
        Ok(Some((record, rows)))
    }
    /// The stored sessions of `ids` (those the store has), in no
    /// particular order: the evicted sessions of a page of `/api/sessions`.
    fn sessions_by_id(&self, ids: &[String]) -> Result<Vec<SessionRecord>, StoreError> {
        let mut records = Vec::with_capacity(ids.len());
        for id in ids {
            records.extend(self.session(id)?);
        }
        Ok(records)
    }
}

/// Which store, as `--store` names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreUrl {
    /// `sqlite:PATH`.
    Sqlite(PathBuf),
    /// `memory`.
    Memory,
    /// `postgres://…` or `postgresql://…` (see [`postgres`]).
    Postgres(String),
}

impl StoreUrl {
    /// Reads `sqlite:PATH`, `sqlite://PATH`, `postgres://…` or `memory`.
    pub fn parse(text: &str) -> Result<StoreUrl, String> {
        let text = text.trim();
        if text == "memory" || text == "memory:" {
            return Ok(StoreUrl::Memory);
        }
        if let Some(path) = text.strip_prefix("sqlite:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err("sqlite: needs a path (sqlite:callflow-data/callflow.db)".into());
            }
            return Ok(StoreUrl::Sqlite(PathBuf::from(path)));
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return Ok(StoreUrl::Postgres(text.to_owned()));
        }
        Err(format!(
            "unknown store {:?}: use sqlite:PATH, postgres://USER@HOST/DATABASE or memory",
            postgres::shown(text)
        ))
    }

    /// The default: `sqlite:DATA_DIR/callflow.db`.
    pub fn default_in(data_dir: &Path) -> StoreUrl {
        StoreUrl::Sqlite(data_dir.join("callflow.db"))
    }

    /// Opens the store (creating the file and its folder if needed).
    pub fn open(&self) -> Result<Arc<dyn Store>, StoreError> {
        match self {
            StoreUrl::Memory => Ok(Arc::new(memory::MemoryStore::default())),
            StoreUrl::Sqlite(path) => Ok(Arc::new(sqlite::SqliteStore::open(path)?)),
            StoreUrl::Postgres(url) => Ok(Arc::new(postgres::PostgresStore::open(url)?)),
        }
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreUrl::Memory => f.write_str("memory"),
            StoreUrl::Sqlite(p) => write!(f, "sqlite:{}", p.display()),
            StoreUrl::Postgres(url) => f.write_str(&postgres::shown(url)),
        }
    }
}

/// A store as the runtime holds it (a shared handle that prints its kind).
#[derive(Clone)]
pub struct StoreHandle(pub Arc<dyn Store>);

impl StoreHandle {
    /// The in-memory store.
    pub fn memory() -> Self {
        StoreHandle(Arc::new(memory::MemoryStore::default()))
    }
}

impl fmt::Debug for StoreHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreHandle({})", self.0.kind())
    }
}

impl std::ops::Deref for StoreHandle {
    type Target = dyn Store;
    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}
