//! The SQLite store: one file (WAL mode), written by one thread.
//!
//! Every write goes to the writer thread through one of two queues:
//! journal entries and every write something waits for (a state before its
//! Graph requests, flows, purges) are all taken into each group; states a
//! restart can rebuild from the journal ([`Store::write_deferred`]) at most
//! [`DEFERRED_PER_GROUP`] per group. A group is one transaction: one
//! commit, one `fsync` (`synchronous = FULL`) for many notifications
//! arriving together. WAL checkpoints run on a second connection, on a
//! thread of their own, so that the writer never waits for the database
//! file's sync. An exclusive `flock` on the file, held until the writer
//! stops, makes a second `callflow serve` on the same store refused at
//! start. Reads (recovery, export, paging ended sessions) and the ring
//! groups' turns (one `INSERT … ON CONFLICT … RETURNING`, committed on its
//! own) run on the writer's thread, between groups, after every write
//! submitted before them.
//!
//! The schema is versioned with `PRAGMA user_version`: [`MIGRATIONS`] are
//! applied in order; a store whose version is newer than this binary knows
//! is refused, never changed.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::Instant;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, params};
use tokio::sync::oneshot;

use super::stats::WriterStats;
use super::{Done, JournalEntry, Page, Recovered, SessionRecord, Store, StoreError, Write};

/// The most batches committed together.
pub const MAX_GROUP: usize = 4096;

/// The schema, one migration per version (`user_version` = how many ran).
pub const MIGRATIONS: &[&str] = &[
    // 1: sessions, journal, flow sources.
    "CREATE TABLE flows (
        hash TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        source TEXT NOT NULL,
        stored_at TEXT NOT NULL
    );
    CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        flow TEXT NOT NULL,
        flow_version TEXT NOT NULL,
        live INTEGER NOT NULL,
        state TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        ended_at TEXT
    );
    CREATE INDEX sessions_by_end ON sessions (live, ended_at);
    CREATE TABLE journal (
        seq INTEGER PRIMARY KEY,
        event TEXT NOT NULL,
        received_at TEXT NOT NULL
    );",
    // 2: journal entries a session applied are kept with it (not deleted)
    // until it is removed, with the notification body they came in, so a
    // stored call can be exported as a replay.
    "ALTER TABLE journal ADD COLUMN session TEXT;
    ALTER TABLE journal ADD COLUMN body TEXT;
    CREATE INDEX journal_by_session ON journal (session, seq);",
    // 3: a session's timeline in rows of its own, appended as the run goes
    // (it was inside the state's JSON, rewritten whole with every step). A
    // state written by version 2 keeps its entries until it is next
    // written: then they move here.
    "CREATE TABLE timeline (
        session TEXT NOT NULL,
        n INTEGER NOT NULL,
        entry TEXT NOT NULL,
        PRIMARY KEY (session, n)
    ) WITHOUT ROWID;",
    // 4: the turn counters of `round_robin` ring groups (`FLOW/STEP`): how
    // many turns each has handed out.
    "CREATE TABLE ring_turns (
        grp TEXT PRIMARY KEY,
        taken INTEGER NOT NULL
    ) WITHOUT ROWID;",
    // 5: which journal entries wait to be applied (`pending`) and which a
    // session's stored state applied (`applied`), in small tables of their
    // own. Marking the journal rows themselves (`journal.session`, no
    // longer written) rewrote one page of the journal per entry, seconds
    // after it was written: most of what the store wrote under load.
    // `unpend`: entries applied whose `pending` row is still there, appended
    // with the mark and removed from `pending` many at a time (see
    // [`UNPEND_BATCH`]).
    "CREATE TABLE pending (seq INTEGER PRIMARY KEY);
    CREATE TABLE unpend (n INTEGER PRIMARY KEY, seq INTEGER NOT NULL);
    INSERT INTO pending SELECT seq FROM journal WHERE session IS NULL;
    CREATE TABLE applied (
        session TEXT NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (session, seq)
    ) WITHOUT ROWID;
    INSERT INTO applied SELECT session, seq FROM journal WHERE session IS NOT NULL;
    DROP INDEX journal_by_session;",
];

/// Takes a turn: one statement, so one atomic step of the counter.
const TAKE_TURN: &str = "INSERT INTO ring_turns (grp, taken) VALUES (?1, 1)
     ON CONFLICT (grp) DO UPDATE SET taken = taken + 1
     RETURNING taken - 1";

type Read = Box<dyn FnOnce(&Connection) + Send>;

/// A batch waiting for the writer: when it was submitted, whether it is a
/// journal batch (a `202` waits for it), and who waits.
struct Pending {
    writes: Vec<Write>,
    done: oneshot::Sender<Result<(), StoreError>>,
    submitted: Instant,
    journal: bool,
}

/// What waits for the writer. `urgent`: journal batches (each a `202`
/// waiting) and every write something waits for (a state before its Graph
/// requests, flows, purges); all are taken into each group. `deferred`:
/// states a restart can rebuild from the journal, and flushes; at most
/// [`DEFERRED_PER_GROUP`] per group, so that a backlog of them never makes
/// a group (and the `202`s in it) long.
#[derive(Default)]
struct Queues {
    urgent: VecDeque<Pending>,
    deferred: VecDeque<Pending>,
    reads: VecDeque<Read>,
    closed: bool,
}

#[derive(Default)]
struct Shared {
    queues: Mutex<Queues>,
    ready: Condvar,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queues> {
        self.queues.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// How many applied entries wait in `unpend` before a group removes them
/// from `pending` (or [`UNPEND_EVERY`] after the last time): one at a time,
/// each removal rewrote a page of `pending` (a state applies entries
/// received up to seconds apart); many at once share their pages.
const UNPEND_BATCH: u64 = 2048;

/// The longest applied entries wait in `unpend` (while any do).
const UNPEND_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The most deferred batches in one group (every urgent one is taken): a
/// state is about 1.6 KB of JSON and its new timeline rows; 256 of them
/// made a group of up to 100 ms, every `202` in it waiting.
const DEFERRED_PER_GROUP: usize = 32;

/// WAL pages after which the checkpointer copies the WAL into the database
/// file (SQLite's own `wal_autocheckpoint` is 1,000, on the committing
/// thread).
const CHECKPOINT_PAGES: i64 = 4000;

/// How long the writer waits for the checkpointer, and the checkpointer
/// for the writer (each holds the write lock only briefly).
const BUSY: std::time::Duration = std::time::Duration::from_secs(5);

/// The WAL file is cut back to this many bytes when it starts over.
const JOURNAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// The SQLite store.
pub struct SqliteStore {
    path: PathBuf,
    shared: Arc<Shared>,
    stats: Arc<WriterStats>,
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.ready.notify_all();
    }
}

/// The checkpointer's state: how many pages the WAL holds (set by the
/// writer after each commit), and whether the store is closing.
#[derive(Default)]
struct Checkpoints {
    pages: Mutex<(i64, bool)>,
    due: Condvar,
}

fn classify(e: &rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => StoreError::Full(e.to_string()),
        _ => StoreError::Failed(e.to_string()),
    }
}

fn time(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

fn open_error(path: &Path, e: &rusqlite::Error) -> StoreError {
    let p = path.display();
    StoreError::Open(match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => format!(
            "the store {p} is locked: another callflow serve is using it (stop it, or give this \
             one another --store)"
        ),
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => format!(
            "the store {p} is corrupt or not a callflow store ({e}); it was left as it is: \
             restore it from a backup, or move it away to start empty"
        ),
        _ => format!("cannot open the store {p}: {e}"),
    })
}

impl SqliteStore {
    /// Opens (or creates) the store at `path`, checks it and migrates it.
    ///
    /// # Errors
    ///
    /// [`StoreError::Open`]: locked by another process, corrupt, written by
    /// a newer callflow, or not readable. Nothing is written then.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Open(format!(
                    "cannot create the data folder {}: {e}",
                    dir.display()
                ))
            })?;
        }
        // One server per store: an exclusive lock on the file (flock, apart
        // from SQLite's own locks), held until the writer stops. SQLite's
        // `EXCLUSIVE` locking mode would do it too, but then no second
        // connection could checkpoint beside the writer.
        let held = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| {
                StoreError::Open(format!("cannot open the store {}: {e}", path.display()))
            })?;
        match held.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Open(format!(
                    "the store {} is locked: another callflow serve is using it (stop it, or give \
                     this one another --store)",
                    path.display()
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(StoreError::Open(format!(
                    "cannot lock the store {}: {e}",
                    path.display()
                )));
            }
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| open_error(path, &e))?;
        let setup = |conn: &Connection| -> rusqlite::Result<i64> {
            conn.busy_timeout(std::time::Duration::ZERO)?;
            // Reading the schema first: a file that is not a database fails
            // here, before any pragma could write to it.
            let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
                r.get::<_, i64>(0)
            })?;
            Ok(version)
        };
        let version = setup(&conn).map_err(|e| open_error(path, &e))?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(StoreError::Open(format!(
                "the store {} has schema version {version}, written by a newer callflow; this one \
                 knows versions up to {known}. Run the newer callflow, or give this one another \
                 --store (the file was left as it is)",
                path.display()
            )));
        }
        let prepare = |conn: &mut Connection| -> rusqlite::Result<()> {
            let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
            if !mode.eq_ignore_ascii_case("wal") {
                tracing::warn!(mode, "the store could not use WAL mode");
            }
            conn.pragma_update(None, "synchronous", "FULL")?;
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)?;
            let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
                tx.execute_batch(sql)?;
                tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            }
            tx.commit()?;
            let check: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
            if check != "ok" {
                return Err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
                    Some(check),
                ));
            }
            Ok(())
        };
        let mut conn = conn;
        prepare(&mut conn).map_err(|e| open_error(path, &e))?;
        if version < known && version > 0 {
            tracing::info!(from = version, to = known, store = %path.display(), "store schema migrated");
        }
        // The checkpointer, on a connection of its own, copies the WAL into
        // the database file beside the writer (a checkpoint syncs the
        // database file, and took tens to hundreds of milliseconds on the
        // writer's thread, every group waiting); the hook replaces SQLite's
        // automatic checkpoint and only notes how long the WAL is.
        let checkpointer = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .and_then(|c| {
            c.pragma_update(None, "synchronous", "FULL")?;
            c.busy_timeout(BUSY)?;
            Ok(c)
        })
        .map_err(|e| open_error(path, &e))?;
        // From here on, waiting for the checkpointer (a `RESTART`) is normal.
        conn.busy_timeout(BUSY).map_err(|e| open_error(path, &e))?;
        conn.pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT)
            .map_err(|e| open_error(path, &e))?;
        let checkpoints = Arc::new(Checkpoints::default());
        {
            let checkpoints = checkpoints.clone();
            conn.wal_hook(Some(move |_: &mut rusqlite::hooks::Wal, pages| {
                let mut due = checkpoints
                    .pages
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                due.0 = i64::from(pages);
                if due.0 >= CHECKPOINT_PAGES {
                    checkpoints.due.notify_one();
                }
                Ok(())
            }))
            .map_err(|e| open_error(path, &e))?;
        }
        let stats = Arc::new(WriterStats::default());
        let shared = Arc::new(Shared::default());
        let spawn_error =
            |e: std::io::Error| StoreError::Open(format!("cannot start the store's writer: {e}"));
        let checkpointing = {
            let (stats, checkpoints) = (stats.clone(), checkpoints.clone());
            thread::Builder::new()
                .name("callflow-checkpoint".into())
                .spawn(move || checkpointer_thread(&checkpointer, &checkpoints, &stats))
                .map_err(spawn_error)?
        };
        {
            let (stats, shared) = (stats.clone(), shared.clone());
            thread::Builder::new()
                .name("callflow-store".into())
                .spawn(move || {
                    writer(conn, &shared, &stats, &checkpoints);
                    // The checkpointer's connection closes, then the lock goes.
                    checkpoints
                        .pages
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .1 = true;
                    checkpoints.due.notify_one();
                    let _ = checkpointing.join();
                    drop(held);
                })
                .map_err(spawn_error)?;
        }
        Ok(SqliteStore {
            path: path.to_owned(),
            shared,
            stats,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues `writes` for the writer (a flush, `writes` empty, as deferred).
    fn submit(&self, writes: Vec<Write>, deferred: bool) -> Done {
        let (tx, rx) = oneshot::channel();
        let journal = !writes.is_empty() && writes.iter().all(|w| matches!(w, Write::Journal(_)));
        if journal {
            self.stats.journal_queued.fetch_add(1, Ordering::Relaxed);
        } else {
            self.stats.state_queued.fetch_add(1, Ordering::Relaxed);
        }
        let deferred = deferred || writes.is_empty();
        let pending = Pending {
            writes,
            done: tx,
            submitted: Instant::now(),
            journal,
        };
        {
            let mut q = self.shared.lock();
            if q.closed {
                return Box::pin(async { Err(StoreError::Closed) });
            }
            if deferred {
                q.deferred.push_back(pending);
            } else {
                q.urgent.push_back(pending);
            }
        }
        self.shared.ready.notify_one();
        Box::pin(async move { rx.await.map_err(|_| StoreError::Closed)? })
    }

    fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = std::sync::mpsc::channel();
        let read: Read = Box::new(move |conn| {
            let _ = tx.send(f(conn).map_err(|e| classify(&e)));
        });
        self.shared.lock().reads.push_back(read);
        self.shared.ready.notify_one();
        rx.recv().map_err(|_| StoreError::Closed)?
    }
}

/// The checkpointer thread: whenever the WAL holds [`CHECKPOINT_PAGES`] or
/// more, a `PASSIVE` checkpoint (it never blocks the writer; the WAL starts
/// over at the writer's next commit once all of it is copied).
fn checkpointer_thread(conn: &Connection, checkpoints: &Checkpoints, stats: &WriterStats) {
    loop {
        {
            let mut due = checkpoints
                .pages
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            while due.0 < CHECKPOINT_PAGES && !due.1 {
                due = checkpoints
                    .due
                    .wait(due)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            if due.1 {
                return;
            }
            due.0 = 0;
        }
        let started = Instant::now();
        let checkpoint = |mode: &str| {
            conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
                r.get::<_, i64>(1)
            })
        };
        match checkpoint("PASSIVE") {
            Ok(log) => stats.wal_pages.observe_value(log as f64),
            Err(e) => tracing::warn!(error = %e, "the store's checkpoint failed"),
        }
        stats.checkpoint.observe(started.elapsed());
    }
}

/// The writer thread: takes every urgent batch waiting and up to
/// [`DEFERRED_PER_GROUP`] deferred ones (all of them while a read waits:
/// it sees every write submitted before it), commits them in one
/// transaction (one sync), and answers.
fn writer(mut conn: Connection, shared: &Shared, stats: &WriterStats, checkpoints: &Checkpoints) {
    // Applied entries still in `pending`, and when they were last removed.
    let mut unpended: u64 = conn
        .query_row("SELECT count(*) FROM unpend", [], |r| r.get::<_, i64>(0))
        .map_or(0, |n| n.max(0) as u64);
    let mut unpended_at = Instant::now();
    loop {
        let (deferred, urgent, read) = {
            let mut q = shared.lock();
            while q.urgent.is_empty() && q.deferred.is_empty() && q.reads.is_empty() && !q.closed {
                q = shared.ready.wait(q).unwrap_or_else(PoisonError::into_inner);
            }
            if q.urgent.is_empty() && q.deferred.is_empty() && q.reads.is_empty() {
                return;
            }
            // The deferred ones first, then the urgent: a flush (an empty
            // deferred write) then finds every urgent batch submitted
            // before it in this group or an earlier one.
            let cap = if q.reads.is_empty() {
                DEFERRED_PER_GROUP
            } else {
                usize::MAX
            };
            let n = q.deferred.len().min(cap);
            let deferred: Vec<Pending> = q.deferred.drain(..n).collect();
            let urgent: Vec<Pending> = q.urgent.drain(..).collect();
            let read = if q.deferred.is_empty() {
                q.reads.pop_front()
            } else {
                None
            };
            (deferred, urgent, read)
        };
        if !deferred.is_empty() || !urgent.is_empty() {
            let started = Instant::now();
            let mut journal = 0;
            for p in urgent.iter().chain(&deferred) {
                let wait = started.saturating_duration_since(p.submitted);
                if p.journal {
                    journal += 1;
                    stats.journal_wait.observe(wait);
                } else {
                    stats.state_wait.observe(wait);
                }
            }
            let other = (urgent.len() + deferred.len()) as u64 - journal;
            stats.journal_queued.fetch_sub(journal, Ordering::Relaxed);
            stats.state_queued.fetch_sub(other, Ordering::Relaxed);
            stats.group_journal.observe_value(journal as f64);
            stats.group_state.observe_value(other as f64);
            let unpend =
                unpended >= UNPEND_BATCH || (unpended > 0 && unpended_at.elapsed() >= UNPEND_EVERY);
            let mut marked = 0;
            let result = commit(
                &mut conn,
                urgent.iter().chain(&deferred).flat_map(|p| p.writes.iter()),
                stats,
                unpend,
                &mut marked,
            );
            if result.is_ok() {
                if unpend {
                    unpended = 0;
                    unpended_at = Instant::now();
                } else {
                    unpended += marked;
                }
            }
            if let Err(e) = &result {
                tracing::error!(error = %e, batches = journal + other, "the store refused a write");
            }
            stats.groups.fetch_add(1, Ordering::Relaxed);
            stats.journal_batches.fetch_add(journal, Ordering::Relaxed);
            stats.state_batches.fetch_add(other, Ordering::Relaxed);
            let now = Instant::now();
            for p in urgent.into_iter().chain(deferred) {
                if p.journal {
                    stats
                        .journal_durable
                        .observe(now.saturating_duration_since(p.submitted));
                }
                let _ = p.done.send(result.clone());
            }
            // A passive checkpoint copies what the WAL held when it began;
            // the WAL starts over only if a commit finds all of it copied,
            // which under steady writes never happens. Past four lengths,
            // the writer copies the rest itself (most of it is copied
            // already) and makes the WAL start over: it stays bounded.
            let long = checkpoints
                .pages
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .0
                >= 4 * CHECKPOINT_PAGES;
            if long {
                let started = Instant::now();
                stats.checkpoint_restarts.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(())) {
                    tracing::warn!(error = %e, "the store's checkpoint failed");
                }
                checkpoints
                    .pages
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .0 = 0;
                stats.restart.observe(started.elapsed());
            }
        }
        if let Some(read) = read {
            read(&conn);
        }
    }
}

/// Commits `writes` in one transaction; with `unpend`, also removes from
/// `pending` every entry `unpend` holds (this group's marks too). `marked`:
/// how many entries this group marked applied.
fn commit<'a>(
    conn: &mut Connection,
    writes: impl Iterator<Item = &'a Write>,
    stats: &WriterStats,
    unpend: bool,
    marked: &mut u64,
) -> Result<(), StoreError> {
    let started = Instant::now();
    let writes: Vec<&Write> = writes.collect();
    stats.bytes.fetch_add(
        writes.iter().map(|w| text_bytes(w)).sum(),
        Ordering::Relaxed,
    );
    // A session written several times in one group is stored once, as its
    // last state (the group commits atomically: the earlier states would
    // never be seen); every journal entry they applied is still marked.
    let mut last: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (i, w) in writes.iter().enumerate() {
        if let Write::Session { record, .. } = w {
            last.insert(record.id.as_str(), i);
        }
    }
    // Immediate: the write lock is taken at `BEGIN`, waiting (busy
    // timeout) while the checkpointer holds it.
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(|e| classify(&e))?;
    let now = Utc::now().to_rfc3339();
    {
        let mut journal = tx
            .prepare_cached(
                "INSERT OR REPLACE INTO journal (seq, event, received_at, body) VALUES (?1, ?2, ?3, ?4)",
            )
            .map_err(|e| classify(&e))?;
        let mut waits = tx
            .prepare_cached("INSERT OR IGNORE INTO pending (seq) VALUES (?1)")
            .map_err(|e| classify(&e))?;
        let mut unpends = tx
            .prepare_cached("INSERT INTO unpend (seq) VALUES (?1)")
            .map_err(|e| classify(&e))?;
        let mut applied = tx
            .prepare_cached("INSERT OR IGNORE INTO applied (session, seq) VALUES (?2, ?1)")
            .map_err(|e| classify(&e))?;
        // An entry a stored state applied: the session's, and no longer
        // pending (its `pending` row goes later, with many others).
        let mut mark = |seq: u64, session: &str| -> rusqlite::Result<()> {
            *marked += 1;
            unpends.execute([seq as i64])?;
            applied.execute(params![seq as i64, session]).map(|_| ())
        };
        let mut timeline = tx
            .prepare_cached(
                "INSERT OR REPLACE INTO timeline (session, n, entry) VALUES (?1, ?2, ?3)",
            )
            .map_err(|e| classify(&e))?;
        let mut in_place = tx
            .prepare_cached(
                "UPDATE sessions SET state = ?5, updated_at = ?6
                 WHERE id = ?1 AND flow = ?2 AND flow_version = ?3 AND live = ?4 AND ended_at IS ?7",
            )
            .map_err(|e| classify(&e))?;
        let mut session = tx
            .prepare_cached(
                "INSERT INTO sessions (id, flow, flow_version, live, state, updated_at, ended_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (id) DO UPDATE SET flow = ?2, flow_version = ?3, live = ?4,
                   state = ?5, updated_at = ?6, ended_at = ?7",
            )
            .map_err(|e| classify(&e))?;
        for (i, w) in writes.into_iter().enumerate() {
            let done = match w {
                Write::Session { record: r, applied: seqs }
                    if last.get(r.id.as_str()) != Some(&i) =>
                {
                    seqs.iter().try_for_each(|s| mark(*s, &r.id))
                }
                Write::Journal(entries) => entries.iter().try_for_each(|e| {
                    journal.execute(params![
                        e.seq as i64,
                        e.event,
                        e.received_at.to_rfc3339(),
                        e.body
                    ])?;
                    waits.execute([e.seq as i64]).map(|_| ())
                }),
                Write::Session { record: r, applied: seqs } => {
                    let updated_at = r.updated_at.to_rfc3339();
                    let ended_at = r.ended_at.map(|t| t.to_rfc3339());
                    let row = params![
                        r.id,
                        r.flow,
                        r.flow_version,
                        r.live,
                        r.state,
                        updated_at,
                        ended_at,
                    ];
                    // Only the state and its time change (the common case):
                    // the row is updated in place and no index is touched.
                    in_place
                        .execute(row)
                        .and_then(|n| if n == 0 { session.execute(row) } else { Ok(n) })
                        .and_then(|_| seqs.iter().try_for_each(|s| mark(*s, &r.id)))
                }
                Write::Timeline {
                    session,
                    from,
                    entries,
                } => entries.iter().zip(*from..).try_for_each(|(entry, n)| {
                    timeline.execute(params![session, n, entry]).map(|_| ())
                }),
                Write::Flow { hash, name, source } => tx
                    .execute(
                        "INSERT OR IGNORE INTO flows (hash, name, source, stored_at) VALUES (?1, ?2, ?3, ?4)",
                        params![hash, name, source, now],
                    )
                    .map(|_| ()),
                Write::Purge {
                    ended_before,
                    journal_before,
                } => tx
                    .execute(
                        "DELETE FROM journal WHERE seq IN
                           (SELECT a.seq FROM applied a JOIN sessions s ON s.id = a.session
                            WHERE s.live = 0 AND s.ended_at < ?1)",
                        [ended_before.to_rfc3339()],
                    )
                    .and_then(|_| {
                        tx.execute(
                            "DELETE FROM applied WHERE session IN
                               (SELECT id FROM sessions WHERE live = 0 AND ended_at < ?1)",
                            [ended_before.to_rfc3339()],
                        )
                    })
                    .and_then(|_| {
                        tx.execute(
                            "DELETE FROM timeline WHERE session IN
                               (SELECT id FROM sessions WHERE live = 0 AND ended_at < ?1)",
                            [ended_before.to_rfc3339()],
                        )
                    })
                    .and_then(|_| {
                        tx.execute(
                            "DELETE FROM sessions WHERE live = 0 AND ended_at < ?1",
                            [ended_before.to_rfc3339()],
                        )
                    })
                    .and_then(|_| {
                        tx.execute(
                            "DELETE FROM journal WHERE seq IN (SELECT seq FROM pending)
                               AND seq NOT IN (SELECT seq FROM unpend) AND received_at < ?1",
                            [journal_before.to_rfc3339()],
                        )
                    })
                    .and_then(|_| {
                        tx.execute(
                            "DELETE FROM pending
                               WHERE NOT EXISTS (SELECT 1 FROM journal j WHERE j.seq = pending.seq)",
                            [],
                        )
                    })
                    .map(|_| ()),
            };
            done.map_err(|e| classify(&e))?;
        }
    }
    if unpend {
        tx.execute_batch(
            "DELETE FROM pending WHERE seq IN (SELECT seq FROM unpend);
             DELETE FROM unpend;",
        )
        .map_err(|e| classify(&e))?;
    }
    let committing = Instant::now();
    stats.sql.observe(committing - started);
    let committed = tx.commit().map_err(|e| classify(&e));
    stats.commit.observe(committing.elapsed());
    committed
}

/// The bytes of text a write carries.
fn text_bytes(w: &Write) -> u64 {
    let n = match w {
        Write::Journal(entries) => entries
            .iter()
            .map(|e| e.event.len() + e.body.as_ref().map_or(0, String::len))
            .sum(),
        Write::Session { record, .. } => record.state.len(),
        Write::Timeline { entries, .. } => entries.iter().map(String::len).sum(),
        Write::Flow { source, .. } => source.len(),
        Write::Purge { .. } => 0,
    };
    n as u64
}

fn record(row: &rusqlite::Row<'_>) -> rusqlite::Result<SessionRecord> {
    Ok(SessionRecord {
        id: row.get(0)?,
        flow: row.get(1)?,
        flow_version: row.get(2)?,
        live: row.get(3)?,
        state: row.get(4)?,
        updated_at: time(&row.get::<_, String>(5)?),
        ended_at: row.get::<_, Option<String>>(6)?.as_deref().map(time),
    })
}

const COLUMNS: &str = "id, flow, flow_version, live, state, updated_at, ended_at";

impl Store for SqliteStore {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn durable(&self) -> bool {
        true
    }

    fn writer_stats(&self) -> Option<Arc<WriterStats>> {
        Some(self.stats.clone())
    }

    fn write(&self, writes: Vec<Write>) -> Done {
        self.submit(writes, false)
    }

    fn write_deferred(&self, writes: Vec<Write>) -> Done {
        self.submit(writes, true)
    }

    fn recover(&self) -> Result<Recovered, StoreError> {
        self.read(|conn| {
            let mut q = conn.prepare(&format!(
                "SELECT {COLUMNS} FROM sessions WHERE live = 1 ORDER BY updated_at"
            ))?;
            let sessions = q
                .query_map([], record)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut q = conn.prepare(
                "SELECT j.seq, j.event, j.received_at FROM pending p JOIN journal j ON j.seq = p.seq
                 WHERE p.seq NOT IN (SELECT seq FROM unpend)
                 ORDER BY p.seq",
            )?;
            let journal = q
                .query_map([], |r| {
                    Ok(JournalEntry {
                        seq: r.get::<_, i64>(0)? as u64,
                        event: r.get(1)?,
                        received_at: time(&r.get::<_, String>(2)?),
                        body: None,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Recovered { sessions, journal })
        })
    }

    fn flow_source(&self, hash: &str) -> Result<Option<(String, String)>, StoreError> {
        let hash = hash.to_owned();
        self.read(move |conn| {
            conn.query_row(
                "SELECT name, source FROM flows WHERE hash = ?1",
                [hash],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
        })
    }

    fn session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        let id = id.to_owned();
        self.read(move |conn| {
            conn.query_row(
                &format!("SELECT {COLUMNS} FROM sessions WHERE id = ?1"),
                [id],
                record,
            )
            .optional()
        })
    }

    fn recording(&self, id: &str) -> Result<Vec<(DateTime<Utc>, String)>, StoreError> {
        let id = id.to_owned();
        self.read(move |conn| {
            let mut q = conn.prepare(
                "SELECT j.received_at, j.body FROM applied a JOIN journal j ON j.seq = a.seq
                 WHERE a.session = ?1 AND j.body IS NOT NULL ORDER BY a.seq",
            )?;
            q.query_map([id], |r| Ok((time(&r.get::<_, String>(0)?), r.get(1)?)))?
                .collect()
        })
    }

    fn take_turn(&self, group: &str) -> super::Taken {
        let (tx, rx) = oneshot::channel();
        let group = group.to_owned();
        // A read's place: after every write submitted before it, outside any
        // transaction, so the statement commits (and syncs) itself.
        let read: Read = Box::new(move |conn| {
            let taken = conn
                .prepare_cached(TAKE_TURN)
                .and_then(|mut q| q.query_row([group], |r| r.get::<_, i64>(0)))
                .map(|n| u64::try_from(n).unwrap_or(0))
                .map_err(|e| classify(&e));
            if let Err(e) = &taken {
                tracing::error!(error = %e, "the store could not take a ring group's turn");
            }
            let _ = tx.send(taken);
        });
        let closed = {
            let mut q = self.shared.lock();
            if !q.closed {
                q.reads.push_back(read);
            }
            q.closed
        };
        self.shared.ready.notify_one();
        Box::pin(async move {
            if closed {
                return Err(StoreError::Closed);
            }
            rx.await.map_err(|_| StoreError::Closed)?
        })
    }

    fn timeline_rows(&self) -> bool {
        true
    }

    fn timeline(&self, id: &str) -> Result<Vec<String>, StoreError> {
        let id = id.to_owned();
        self.read(move |conn| {
            let mut q =
                conn.prepare_cached("SELECT entry FROM timeline WHERE session = ?1 ORDER BY n")?;
            q.query_map([id], |r| r.get(0))?.collect()
        })
    }

    fn live_timelines(&self) -> Result<HashMap<String, Vec<String>>, StoreError> {
        self.read(|conn| {
            let mut q = conn.prepare(
                "SELECT t.session, t.entry FROM timeline t JOIN sessions s ON s.id = t.session
                 WHERE s.live = 1 ORDER BY t.session, t.n",
            )?;
            let mut out: HashMap<String, Vec<String>> = HashMap::new();
            let mut rows = q.query([])?;
            while let Some(row) = rows.next()? {
                let session: String = row.get(0)?;
                out.entry(session).or_default().push(row.get(1)?);
            }
            Ok(out)
        })
    }

    fn session_with_timeline(
        &self,
        id: &str,
    ) -> Result<Option<(SessionRecord, Vec<String>)>, StoreError> {
        let id = id.to_owned();
        self.read(move |conn| {
            let mut q =
                conn.prepare_cached(&format!("SELECT {COLUMNS} FROM sessions WHERE id = ?1"))?;
            let Some(record) = q.query_row([&id], record).optional()? else {
                return Ok(None);
            };
            let mut q =
                conn.prepare_cached("SELECT entry FROM timeline WHERE session = ?1 ORDER BY n")?;
            let rows = q
                .query_map([&id], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?;
            Ok(Some((record, rows)))
        })
    }

    fn sessions_by_id(&self, ids: &[String]) -> Result<Vec<SessionRecord>, StoreError> {
        let ids = ids.to_vec();
        self.read(move |conn| {
            let mut q =
                conn.prepare_cached(&format!("SELECT {COLUMNS} FROM sessions WHERE id = ?1"))?;
            let mut records = Vec::with_capacity(ids.len());
            for id in &ids {
                records.extend(q.query_row([id], record).optional()?);
            }
            Ok(records)
        })
    }

    fn ended(&self, offset: usize, limit: usize) -> Result<Page, StoreError> {
        self.read(move |conn| {
            let mut q = conn.prepare(&format!(
                "SELECT {COLUMNS} FROM sessions WHERE live = 0 ORDER BY ended_at DESC, id LIMIT ?1 OFFSET ?2"
            ))?;
            let mut records = q
                .query_map(params![(limit + 1) as i64, offset as i64], record)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let more = records.len() > limit;
            records.truncate(limit);
            let total: i64 =
                conn.query_row("SELECT count(*) FROM sessions WHERE live = 0", [], |r| r.get(0))?;
            Ok(Page {
                records,
                more,
                total: usize::try_from(total).unwrap_or(0),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;

    use super::*;

    fn state(id: &str, text: &str) -> Write {
        Write::Session {
            record: SessionRecord {
                id: id.to_owned(),
                flow: "f".into(),
                flow_version: "v".into(),
                live: true,
                state: text.to_owned(),
                updated_at: Utc::now(),
                ended_at: None,
            },
            applied: Vec::new(),
        }
    }

    /// Entries a stored state applied leave `pending` many at a time, and
    /// none is replayed meanwhile (nor after a crash: `unpend` is committed
    /// with the mark).
    #[tokio::test]
    async fn applied_entries_leave_pending_many_at_a_time_and_are_never_replayed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(&dir.path().join("callflow.db")).expect("open");
        let entry = |seq: u64| JournalEntry {
            seq,
            event: "{}".into(),
            received_at: Utc::now(),
            body: None,
        };
        let n = UNPEND_BATCH + 1;
        store
            .write(vec![Write::Journal((1..=n).map(entry).collect())])
            .await
            .expect("journal");
        let Write::Session { record, .. } = state("s1", "{}") else {
            unreachable!()
        };
        store
            .write(vec![Write::Session {
                record,
                applied: (1..=n).collect(),
            }])
            .await
            .expect("state");
        let count = |table: &str| {
            let sql = format!("SELECT count(*) FROM {table}");
            store
                .read(move |c| c.query_row(&sql, [], |r| r.get::<_, i64>(0)))
                .expect("count") as u64
        };
        assert_eq!((count("pending"), count("unpend")), (n, n));
        assert!(store.recover().expect("recover").journal.is_empty());
        // The next group removes them, with its own entry left pending.
        store
            .write(vec![Write::Journal(vec![entry(n + 1)])])
            .await
            .expect("journal");
        assert_eq!((count("pending"), count("unpend")), (1, 0));
        let journal = store.recover().expect("recover").journal;
        assert_eq!(journal.iter().map(|e| e.seq).collect::<Vec<_>>(), [n + 1]);
        assert_eq!(count("applied"), n);
    }

    #[tokio::test]
    async fn deferred_states_go_after_the_journal_but_before_a_flush_and_a_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("callflow.db");
        let store = SqliteStore::open(&path).expect("open");
        // More deferred states than one group takes, then a journal batch.
        let deferred: Vec<Done> = (0..3 * DEFERRED_PER_GROUP)
            .map(|i| store.write_deferred(vec![state(&format!("s{i}"), "first")]))
            .collect();
        store
            .write(vec![Write::Journal(vec![JournalEntry {
                seq: 1,
                event: "{}".into(),
                received_at: Utc::now(),
                body: None,
            }])])
            .await
            .expect("journal");
        store.flush().await.expect("flush");
        for (i, d) in deferred.into_iter().enumerate() {
            // Unconstrained: tokio's budget would make the 128th poll in a
            // row pending, however ready.
            let done = tokio::task::unconstrained(d).now_or_never();
            assert!(
                matches!(done, Some(Ok(()))),
                "deferred write {i}, submitted before the flush, was not durable when it \
                 resolved: {done:?}"
            );
        }
        // A state written in place, then read back: the read sees it.
        drop(store.write_deferred(vec![state("s0", "second")]));
        let read = store.session("s0").expect("read").expect("stored");
        assert_eq!(read.state, "second");
        assert_eq!(store.recover().expect("recover").journal.len(), 1);

        // One store per file, in this process too, until the first is dropped.
        let second = SqliteStore::open(&path)
            .err()
            .expect("a second store on the file");
        assert!(second.to_string().contains("locked"), "{second}");
        drop(store);
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match SqliteStore::open(&path) {
                Ok(again) => {
                    let read = again.session("s0").expect("read").expect("stored");
                    assert_eq!(read.state, "second");
                    break;
                }
                Err(e) if Instant::now() < deadline => {
                    assert!(e.to_string().contains("locked"), "{e}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
                Err(e) => panic!("the store was not released: {e}"),
            }
        }
    }
}
