//! The SQLite store: one file (WAL mode), written by one thread.
//!
//! Every write goes through a channel to the writer thread, which takes
//! whatever batches are waiting (up to [`MAX_GROUP`]) and applies them in
//! one transaction: one commit, one `fsync` (`synchronous = FULL`) for many
//! notifications arriving together. The connection holds the file in
//! `EXCLUSIVE` locking mode, so that a second `callflow serve` on the same
//! store is refused at start instead of both writing. Reads (recovery,
//! export, paging ended sessions) and the ring groups' turns (one
//! `INSERT … ON CONFLICT … RETURNING`, committed on its own) run on the
//! same thread, between groups.
//!
//! The schema is versioned with `PRAGMA user_version`: [`MIGRATIONS`] are
//! applied in order; a store whose version is newer than this binary knows
//! is refused, never changed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, params};
use tokio::sync::oneshot;

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
];

/// Takes a turn: one statement, so one atomic step of the counter.
const TAKE_TURN: &str = "INSERT INTO ring_turns (grp, taken) VALUES (?1, 1)
     ON CONFLICT (grp) DO UPDATE SET taken = taken + 1
     RETURNING taken - 1";

type Read = Box<dyn FnOnce(&Connection) + Send>;

enum Op {
    Write(Vec<Write>, oneshot::Sender<Result<(), StoreError>>),
    Read(Read),
    /// A ring group's turn, taken (and committed) between groups of writes.
    Turn(String, oneshot::Sender<Result<u64, StoreError>>),
}

/// The SQLite store.
pub struct SqliteStore {
    path: PathBuf,
    tx: mpsc::Sender<Op>,
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
            conn.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
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
        let (tx, rx) = mpsc::channel();
        thread::Builder::new()
            .name("callflow-store".into())
            .spawn(move || writer(conn, rx))
            .map_err(|e| StoreError::Open(format!("cannot start the store's writer: {e}")))?;
        Ok(SqliteStore {
            path: path.to_owned(),
            tx,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = std::sync::mpsc::channel();
        let op = Op::Read(Box::new(move |conn| {
            let _ = tx.send(f(conn).map_err(|e| classify(&e)));
        }));
        self.tx.send(op).map_err(|_| StoreError::Closed)?;
        rx.recv().map_err(|_| StoreError::Closed)?
    }
}

fn writer(mut conn: Connection, rx: mpsc::Receiver<Op>) {
    while let Ok(first) = rx.recv() {
        let mut group = Vec::new();
        let mut read = None;
        let mut turn = None;
        match first {
            Op::Read(r) => read = Some(r),
            Op::Turn(g, done) => turn = Some((g, done)),
            Op::Write(w, done) => {
                group.push((w, done));
                while group.len() < MAX_GROUP {
                    match rx.try_recv() {
                        Ok(Op::Write(w, done)) => group.push((w, done)),
                        Ok(Op::Read(r)) => {
                            read = Some(r);
                            break;
                        }
                        Ok(Op::Turn(g, done)) => {
                            turn = Some((g, done));
                            break;
                        }
                        Err(_) => break,
                    }
                }
            }
        }
        if !group.is_empty() {
            let result = commit(&mut conn, group.iter().flat_map(|(w, _)| w.iter()));
            if let Err(e) = &result {
                tracing::error!(error = %e, batches = group.len(), "the store refused a write");
            }
            for (_, done) in group {
                let _ = done.send(result.clone());
            }
        }
        if let Some(read) = read {
            read(&conn);
        }
        if let Some((group, done)) = turn {
            // Outside any transaction: the statement commits (and syncs) itself.
            let taken = conn
                .prepare_cached(TAKE_TURN)
                .and_then(|mut q| q.query_row([group], |r| r.get::<_, i64>(0)))
                .map(|n| u64::try_from(n).unwrap_or(0))
                .map_err(|e| classify(&e));
            if let Err(e) = &taken {
                tracing::error!(error = %e, "the store could not take a ring group's turn");
            }
            let _ = done.send(taken);
        }
    }
}

fn commit<'a>(
    conn: &mut Connection,
    writes: impl Iterator<Item = &'a Write>,
) -> Result<(), StoreError> {
    let writes: Vec<&Write> = writes.collect();
    // A session written several times in one group is stored once, as its
    // last state (the group commits atomically: the earlier states would
    // never be seen); every journal entry they applied is still marked.
    let mut last: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (i, w) in writes.iter().enumerate() {
        if let Write::Session { record, .. } = w {
            last.insert(record.id.as_str(), i);
        }
    }
    let tx = conn.transaction().map_err(|e| classify(&e))?;
    let now = Utc::now().to_rfc3339();
    {
        let mut journal = tx
            .prepare_cached(
                "INSERT OR REPLACE INTO journal (seq, event, received_at, body) VALUES (?1, ?2, ?3, ?4)",
            )
            .map_err(|e| classify(&e))?;
        let mut applied = tx
            .prepare_cached("UPDATE journal SET session = ?2 WHERE seq = ?1")
            .map_err(|e| classify(&e))?;
        let mut timeline = tx
            .prepare_cached(
                "INSERT OR REPLACE INTO timeline (session, n, entry) VALUES (?1, ?2, ?3)",
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
                    seqs.iter().try_for_each(|s| {
                        applied.execute(params![*s as i64, r.id]).map(|_| ())
                    })
                }
                Write::Journal(entries) => entries.iter().try_for_each(|e| {
                    journal
                        .execute(params![
                            e.seq as i64,
                            e.event,
                            e.received_at.to_rfc3339(),
                            e.body
                        ])
                        .map(|_| ())
                }),
                Write::Session { record: r, applied: seqs } => session
                    .execute(params![
                        r.id,
                        r.flow,
                        r.flow_version,
                        r.live,
                        r.state,
                        r.updated_at.to_rfc3339(),
                        r.ended_at.map(|t| t.to_rfc3339()),
                    ])
                    .and_then(|_| {
                        seqs.iter()
                            .try_for_each(|s| {
                                applied.execute(params![*s as i64, r.id]).map(|_| ())
                            })
                    }),
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
                        "DELETE FROM journal WHERE session IN
                           (SELECT id FROM sessions WHERE live = 0 AND ended_at < ?1)",
                        [ended_before.to_rfc3339()],
                    )
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
                            "DELETE FROM journal WHERE session IS NULL AND received_at < ?1",
                            [journal_before.to_rfc3339()],
                        )
                    })
                    .map(|_| ()),
            };
            done.map_err(|e| classify(&e))?;
        }
    }
    tx.commit().map_err(|e| classify(&e))
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

    fn write(&self, writes: Vec<Write>) -> Done {
        let (tx, rx) = oneshot::channel();
        let sent = self.tx.send(Op::Write(writes, tx));
        Box::pin(async move {
            sent.map_err(|_| StoreError::Closed)?;
            rx.await.map_err(|_| StoreError::Closed)?
        })
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
                "SELECT seq, event, received_at FROM journal WHERE session IS NULL ORDER BY seq",
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
                "SELECT received_at, body FROM journal
                 WHERE session = ?1 AND body IS NOT NULL ORDER BY seq",
            )?;
            q.query_map([id], |r| Ok((time(&r.get::<_, String>(0)?), r.get(1)?)))?
                .collect()
        })
    }

    fn take_turn(&self, group: &str) -> super::Taken {
        let (tx, rx) = oneshot::channel();
        let sent = self.tx.send(Op::Turn(group.to_owned(), tx));
        Box::pin(async move {
            sent.map_err(|_| StoreError::Closed)?;
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
