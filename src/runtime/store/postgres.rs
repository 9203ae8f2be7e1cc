//! The PostgreSQL store: the same [`Store`] as SQLite, on a server.
//!
//! The store runs on a small tokio runtime of its own, on its own thread
//! (`callflow-postgres`), so that its connections, timeouts and health
//! check keep real time whatever clock the caller's runtime runs on (tests
//! pause tokio's time) and that a read, which the trait makes blocking, is
//! a wait on a channel, never a runtime blocked inside another.
//!
//! Writes go through one channel to one writer task, which takes whatever
//! batches are waiting (up to [`MAX_GROUP`]) and commits them in one
//! transaction, in one round trip per table (`UNNEST` of arrays): the
//! group commit of the SQLite store, over the network. Reads run on a
//! connection of the pool (at most [`POOL_SIZE`] connections, created on
//! demand, checked before reuse, replaced when broken), so recovery and the
//! admin API never wait behind the writer.
//!
//! Every operation has a deadline ([`OP_TIMEOUT`]); a connection that
//! missed one is closed, not reused. A health check runs every
//! [`CHECK_EVERY`]: while the server does not answer, [`Store::ready`] is
//! false and writes fail at once (the server answers `503`, so nothing is
//! acknowledged that is not stored); when it answers again the store is
//! ready again, with no restart.
//!
//! The schema is versioned in a table (`callflow_schema`): [`MIGRATIONS`]
//! are applied in order at open, under an advisory lock so that instances
//! starting together migrate once; a schema newer than this binary knows
//! is refused, never changed. The tables live in the first schema of the
//! connection's `search_path` (`?options=-csearch_path%3Dcallflow` picks
//! one), so that several stores can share a database.

use std::collections::HashSet;
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

use super::{Done, JournalEntry, Page, Recovered, SessionRecord, Store, StoreError, Write};
use crate::runtime::cluster::{self, Cluster};

/// The most batches committed together.
pub const MAX_GROUP: usize = 4096;
/// Connections in the pool (the writer's and the readers').
pub const POOL_SIZE: usize = 8;
/// The longest a connection, a statement or a transaction may take.
pub const OP_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the server is asked whether it answers.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// The schema, one migration per version (`callflow_schema.version` = how
/// many ran).
pub const MIGRATIONS: &[&str] = &[
    // 1: sessions, journal (marked with the session that applied it, with
    // the body it came in), flow sources.
    "CREATE TABLE flows (
        hash TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        source TEXT NOT NULL,
        stored_at TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        flow TEXT NOT NULL,
        flow_version TEXT NOT NULL,
        live BOOLEAN NOT NULL,
        state TEXT NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL,
        ended_at TIMESTAMPTZ
    );
    CREATE INDEX sessions_by_end ON sessions (live, ended_at);
    CREATE TABLE journal (
        seq BIGINT PRIMARY KEY,
        event TEXT NOT NULL,
        received_at TIMESTAMPTZ NOT NULL,
        session TEXT,
        body TEXT
    );
    CREATE INDEX journal_by_session ON journal (session, seq);",
    // 2: several instances (see `runtime::cluster`): each live session's
    // lease (holder, fencing epoch, expiry), the session a journal entry
    // was taken for, the instances and their journal lanes.
    "ALTER TABLE sessions ADD COLUMN owner TEXT;
    ALTER TABLE sessions ADD COLUMN epoch BIGINT NOT NULL DEFAULT 1;
    ALTER TABLE sessions ADD COLUMN lease_until TIMESTAMPTZ;
    CREATE INDEX sessions_by_lease ON sessions (lease_until) WHERE live;
    ALTER TABLE journal ADD COLUMN target TEXT;
    CREATE INDEX journal_by_target ON journal (target, seq) WHERE session IS NULL;
    CREATE TABLE instances (
        id TEXT PRIMARY KEY,
        lane INTEGER NOT NULL UNIQUE,
        started_at TIMESTAMPTZ NOT NULL,
        seen_at TIMESTAMPTZ NOT NULL,
        draining BOOLEAN NOT NULL DEFAULT false,
        flows TEXT NOT NULL DEFAULT '{}'
    );",
    // 3: the turn counters of `round_robin` ring groups (`FLOW/STEP`),
    // shared by every instance: how many turns each has handed out.
    "CREATE TABLE ring_turns (
        grp TEXT PRIMARY KEY,
        taken BIGINT NOT NULL
    );",
    // 4: claims on the sessions of a dead instance's orphan journal
    // entries (acknowledged, never applied, no session stored): who
    // applies them (see `runtime::cluster`).
    "CREATE TABLE claims (
        target TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        claimed_at TIMESTAMPTZ NOT NULL
    );",
];

/// Takes a turn: one statement, so one atomic step of the counter, whatever
/// instance runs it (two upserts of one row are serialised by its lock).
const TAKE_TURN: &str = "INSERT INTO ring_turns (grp, taken) VALUES ($1, 1)
     ON CONFLICT (grp) DO UPDATE SET taken = ring_turns.taken + 1
     RETURNING taken - 1";

/// The advisory lock key migrations are applied under (`callflow` in ASCII).
const MIGRATION_LOCK: i64 = 0x6361_6c6c_666c_6f77;

pub(crate) type Reply = oneshot::Sender<Result<(), StoreError>>;

/// What the writer commits, grouped with whatever else is waiting.
pub(crate) enum Job {
    /// A batch of [`Store::write`].
    Writes(Vec<Write>),
    /// Journal entries from the cluster, each with the session it is for;
    /// with `notify`, the holder of that session is told (`NOTIFY`, sent
    /// when the group commits).
    Routed {
        entries: Vec<(JournalEntry, Option<String>)>,
        notify: Option<String>,
    },
}

impl Job {
    fn is_empty(&self) -> bool {
        match self {
            Job::Writes(w) => w.is_empty(),
            Job::Routed { entries, .. } => entries.is_empty(),
        }
    }
}

/// The writer's queue.
pub(crate) type Queue = mpsc::UnboundedSender<(Job, Reply)>;

/// The PostgreSQL store.
pub struct PostgresStore {
    /// The URL without its password, for messages.
    shown: String,
    handle: tokio::runtime::Handle,
    pool: Pool,
    tx: Queue,
    health: Arc<Health>,
    cluster: Arc<Cluster>,
}

/// Whether the server answers, as the last operation or check found.
struct Health {
    up: AtomicBool,
    shown: String,
}

impl Health {
    fn set(&self, up: bool, why: &str) {
        if self.up.swap(up, Ordering::AcqRel) != up {
            if up {
                tracing::info!(store = %self.shown, "the PostgreSQL store answers again: ready");
            } else {
                tracing::error!(store = %self.shown, error = why,
                    "the PostgreSQL store does not answer: not ready, notifications get 503");
            }
        }
    }
}

/// The URL as shown in messages: without its password.
pub fn shown(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

/// A failure of the server or the connection, as the trait says it.
fn classify(e: &tokio_postgres::Error) -> StoreError {
    match e.code() {
        Some(c) if *c == SqlState::DISK_FULL || *c == SqlState::OUT_OF_MEMORY => {
            StoreError::Full(e.to_string())
        }
        _ => StoreError::Failed(db_message(e)),
    }
}

/// The server's message when there is one (tokio-postgres's `Display` says
/// only "db error").
fn db_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => e.to_string(),
    }
}

/// Whether `e` says the connection or the server is gone (not a refusal
/// of one statement).
fn lost(e: &tokio_postgres::Error) -> bool {
    e.is_closed() || e.as_db_error().is_none()
}

/// What went wrong, and whether the server is to be taken as down.
enum OpError {
    Pg(tokio_postgres::Error),
    Pool(String),
    Timeout,
}

impl From<tokio_postgres::Error> for OpError {
    fn from(e: tokio_postgres::Error) -> Self {
        OpError::Pg(e)
    }
}

impl OpError {
    fn down(&self) -> bool {
        match self {
            OpError::Pg(e) => lost(e),
            OpError::Pool(_) | OpError::Timeout => true,
        }
    }

    fn store_error(&self, shown: &str) -> StoreError {
        match self {
            OpError::Pg(e) if !lost(e) => classify(e),
            OpError::Pg(e) => StoreError::Failed(format!("the store {shown} is unreachable: {e}")),
            OpError::Pool(e) => {
                StoreError::Failed(format!("the store {shown} is unreachable: {e}"))
            }
            OpError::Timeout => StoreError::Failed(format!(
                "the store {shown} did not answer within {}",
                humantime::format_duration(OP_TIMEOUT)
            )),
        }
    }
}

/// Runs `op` on a connection of `pool` within [`OP_TIMEOUT`]; a connection
/// that timed out or broke is closed rather than given back.
async fn with_conn<T, F, Fut>(pool: &Pool, health: &Health, op: F) -> Result<T, OpError>
where
    F: FnOnce(Arc<tokio::sync::Mutex<Object>>) -> Fut,
    Fut: Future<Output = Result<T, OpError>>,
{
    let result = async {
        let conn = tokio::time::timeout(OP_TIMEOUT, pool.get())
            .await
            .map_err(|_| OpError::Timeout)?
            .map_err(|e| OpError::Pool(e.to_string()))?;
        let conn = Arc::new(tokio::sync::Mutex::new(conn));
        let done = tokio::time::timeout(OP_TIMEOUT, op(conn.clone())).await;
        let result = match done {
            Ok(r) => r,
            Err(_) => Err(OpError::Timeout),
        };
        if let Err(e) = &result
            && e.down()
            && let Ok(conn) = Arc::try_unwrap(conn)
        {
            // Not given back to the pool: it may be stuck or closed.
            drop(Object::take(conn.into_inner()));
        }
        result
    }
    .await;
    match &result {
        Ok(_) => health.set(true, ""),
        Err(e) if e.down() => health.set(false, &e.store_error(&health.shown).to_string()),
        Err(_) => {}
    }
    result
}

impl PostgresStore {
    /// Connects to `url` (`postgres://…` or `postgresql://…`), checks the
    /// schema and migrates it.
    ///
    /// # Errors
    ///
    /// [`StoreError::Open`]: a URL that does not parse, a server that does
    /// not answer within [`OP_TIMEOUT`], a schema written by a newer
    /// callflow (left as it is), or a migration the server refused.
    pub fn open(url: &str) -> Result<PostgresStore, StoreError> {
        let node = format!(
            "callflow-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        PostgresStore::open_as(url, &node, cluster::DEFAULT_LEASE)
    }

    /// [`PostgresStore::open`], joining the cluster as `node` with leases
    /// of `lease` (see [`crate::runtime::cluster`]).
    ///
    /// # Errors
    ///
    /// As [`PostgresStore::open`].
    pub fn open_as(url: &str, node: &str, lease: Duration) -> Result<PostgresStore, StoreError> {
        let shown = shown(url);
        let node = node.to_owned();
        let mut config = tokio_postgres::Config::from_str(url)
            .map_err(|e| StoreError::Open(format!("the store URL {shown} is not valid: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(OP_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("callflow");
        }
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(10));
        let listen_config = config.clone();
        let manager = Manager::from_config(
            config,
            NoTls,
            // `Fast`: a connection given back is reused unless it closed; a
            // query on every checkout (`Verified`) cost each write and
            // lookup one more round trip. A connection that breaks is
            // dropped by `with_conn`, and the health check asks every second.
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (tx, rx) = mpsc::unbounded_channel();
        let queue = tx.clone();
        let health = Arc::new(Health {
            up: AtomicBool::new(false),
            shown: shown.clone(),
        });
        let task_health = health.clone();
        std::thread::Builder::new()
            .name("callflow-postgres".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(StoreError::Open(format!(
                            "cannot start the store's runtime: {e}"
                        ))));
                        return;
                    }
                };
                rt.block_on(async move {
                    let pool = match Pool::builder(manager)
                        .max_size(POOL_SIZE)
                        .runtime(deadpool_postgres::Runtime::Tokio1)
                        .wait_timeout(Some(OP_TIMEOUT))
                        .create_timeout(Some(OP_TIMEOUT))
                        .recycle_timeout(Some(OP_TIMEOUT))
                        .build()
                    {
                        Ok(pool) => pool,
                        Err(e) => {
                            let _ = ready_tx.send(Err(StoreError::Open(e.to_string())));
                            return;
                        }
                    };
                    let handle = tokio::runtime::Handle::current();
                    let opened = match migrate(&pool, &task_health.shown).await {
                        Ok(()) => Cluster::join(pool.clone(), listen_config, node, lease)
                            .await
                            .map_err(|e| {
                                StoreError::Open(format!(
                                    "cannot join the cluster on {}: {e}",
                                    task_health.shown
                                ))
                            }),
                        Err(e) => Err(e),
                    };
                    let cluster = match opened {
                        Ok(cluster) => cluster,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    cluster.set_writer(&queue);
                    drop(queue);
                    task_health.set(true, "");
                    let _ = ready_tx.send(Ok((handle, pool.clone(), cluster.clone())));
                    tokio::spawn(check(pool.clone(), task_health.clone()));
                    writer(pool, rx, task_health, cluster).await;
                });
            })
            .map_err(|e| StoreError::Open(format!("cannot start the store's thread: {e}")))?;
        let (handle, pool, cluster) = ready_rx
            .recv()
            .map_err(|_| StoreError::Open("the store's thread stopped".into()))??;
        Ok(PostgresStore {
            shown,
            handle,
            pool,
            tx,
            health,
            cluster,
        })
    }

    /// The URL, without its password.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// This instance's part in the cluster of instances on this database.
    pub fn cluster(&self) -> Arc<Cluster> {
        self.cluster.clone()
    }

    /// Runs `op` on a pooled connection and waits for its answer.
    fn read<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(Arc<tokio::sync::Mutex<Object>>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, OpError>> + Send,
    {
        let (tx, rx) = std::sync::mpsc::channel();
        let pool = self.pool.clone();
        let health = self.health.clone();
        self.handle.spawn(async move {
            let result = with_conn(&pool, &health, op).await;
            let _ = tx.send(result.map_err(|e| e.store_error(&health.shown)));
        });
        rx.recv().map_err(|_| StoreError::Closed)?
    }
}

/// Brings the schema to [`MIGRATIONS`]' version, or refuses a newer one.
async fn migrate(pool: &Pool, shown: &str) -> Result<(), StoreError> {
    let open = |e: String| StoreError::Open(format!("cannot open the store {shown}: {e}"));
    let mut conn = tokio::time::timeout(OP_TIMEOUT, pool.get())
        .await
        .map_err(|_| {
            open(format!(
                "the server did not answer within {}",
                humantime::format_duration(OP_TIMEOUT)
            ))
        })?
        .map_err(|e| open(e.to_string()))?;
    let known = MIGRATIONS.len() as i32;
    let work = async {
        let tx = conn.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        let schema: Option<String> = tx.query_one("SELECT current_schema()", &[]).await?.get(0);
        if schema.is_none() {
            return Ok(Err(open(
                "no schema of its search_path exists (create it first: CREATE SCHEMA …)".into(),
            )));
        }
        tx.batch_execute("CREATE TABLE IF NOT EXISTS callflow_schema (version INTEGER NOT NULL)")
            .await?;
        let version: i32 = match tx
            .query_opt("SELECT version FROM callflow_schema", &[])
            .await?
        {
            Some(row) => row.get(0),
            None => {
                tx.execute("INSERT INTO callflow_schema (version) VALUES (0)", &[])
                    .await?;
                0
            }
        };
        if version > known {
            return Ok(Err(StoreError::Open(format!(
                "the store {shown} has schema version {version}, written by a newer callflow; \
                 this one knows versions up to {known}. Run the newer callflow, or give this one \
                 another --store (the database was left as it is)"
            ))));
        }
        for sql in MIGRATIONS.iter().skip(version as usize) {
            tx.batch_execute(sql).await?;
        }
        tx.execute("UPDATE callflow_schema SET version = $1", &[&known])
            .await?;
        tx.commit().await?;
        if version < known && version > 0 {
            tracing::info!(from = version, to = known, store = %shown, "store schema migrated");
        }
        Ok::<_, tokio_postgres::Error>(Ok(()))
    };
    match tokio::time::timeout(OP_TIMEOUT * 4, work).await {
        Ok(Ok(result)) => result,
        Ok(Err(e)) => Err(open(db_message(&e))),
        Err(_) => Err(open("the migration did not finish in time".into())),
    }
}

/// Asks the server every [`CHECK_EVERY`] whether it answers; ends with the
/// store.
async fn check(pool: Pool, health: Arc<Health>) {
    loop {
        tokio::time::sleep(CHECK_EVERY).await;
        if Arc::strong_count(&health) == 1 {
            return;
        }
        let _ = with_conn(&pool, &health, |conn| async move {
            conn.lock().await.simple_query("SELECT 1").await?;
            Ok(())
        })
        .await;
    }
}

async fn writer(
    pool: Pool,
    mut rx: mpsc::UnboundedReceiver<(Job, Reply)>,
    health: Arc<Health>,
    cluster: Arc<Cluster>,
) {
    while let Some(first) = rx.recv().await {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        // The sessions each batch writes: a batch whose session another
        // instance holds fails as fenced; the others are committed.
        let sessions: Vec<Vec<String>> = group
            .iter()
            .map(|(job, _)| match job {
                Job::Writes(w) => w
                    .iter()
                    .filter_map(|w| match w {
                        Write::Session { record, .. } => Some(record.id.clone()),
                        _ => None,
                    })
                    .collect(),
                Job::Routed { .. } => Vec::new(),
            })
            .collect();
        let result = if group.iter().all(|(job, _)| job.is_empty()) {
            Ok(HashSet::new())
        } else if !health.up.load(Ordering::Acquire) {
            Err(StoreError::Failed(format!(
                "the store {} is unreachable",
                health.shown
            )))
        } else {
            let mut writes = Vec::new();
            let mut routed = Routed::default();
            for (job, _) in &mut group {
                match job {
                    Job::Writes(w) => writes.append(w),
                    Job::Routed { entries, notify } => {
                        for (e, target) in entries.drain(..) {
                            routed.entries.push(e);
                            routed.target.push(target);
                        }
                        if let Some(n) = notify.take()
                            && !routed.notify.contains(&n)
                        {
                            routed.notify.push(n);
                        }
                    }
                }
            }
            let rows = Rows::of(writes, &cluster);
            // A deadlock (this group against another node's, or against
            // this node's lease renewal) rolls the group back whole: it is
            // tried again, a few times, before it fails.
            let mut tries = 0;
            loop {
                tries += 1;
                let done = with_conn(&pool, &health, |conn| {
                    let (rows, routed, cluster) = (&rows, &routed, &cluster);
                    async move {
                        let mut conn = conn.lock().await;
                        commit(&mut conn, rows, routed, cluster).await
                    }
                })
                .await;
                match done {
                    Err(OpError::Pg(e))
                        if tries < 4 && e.code() == Some(&SqlState::T_R_DEADLOCK_DETECTED) =>
                    {
                        tracing::debug!(tries, "a group commit deadlocked: tried again");
                    }
                    other => break other.map_err(|e| e.store_error(&health.shown)),
                }
            }
        };
        if let Err(e) = &result {
            tracing::error!(error = %e, batches = group.len(), "the store refused a write");
        }
        for ((_, done), ids) in group.into_iter().zip(sessions) {
            let answer = match &result {
                Ok(fenced) => match ids.iter().find(|id| fenced.contains(*id)) {
                    Some(id) => Err(StoreError::Fenced(id.clone())),
                    None => Ok(()),
                },
                Err(e) => Err(e.clone()),
            };
            let _ = done.send(answer);
        }
    }
}

/// The cluster's journal entries of a group: each with its target
/// session, and the sessions whose holders are told.
#[derive(Default)]
struct Routed {
    entries: JournalColumns,
    target: Vec<Option<String>>,
    notify: Vec<String>,
}

/// The columns of a batch of rows, one array per column.
#[derive(Default)]
struct Rows {
    journal: JournalColumns,
    sessions: SessionRows,
    applied: (Vec<i64>, Vec<String>),
    flows: (Vec<String>, Vec<String>, Vec<String>),
    purge: Option<(DateTime<Utc>, DateTime<Utc>)>,
}

/// Journal entries as one array per column (for `UNNEST`).
#[derive(Default)]
pub(crate) struct JournalColumns {
    pub(crate) seq: Vec<i64>,
    pub(crate) event: Vec<String>,
    pub(crate) at: Vec<DateTime<Utc>>,
    pub(crate) body: Vec<Option<String>>,
}

impl JournalColumns {
    pub(crate) fn push(&mut self, e: JournalEntry) {
        self.seq.push(i64::try_from(e.seq).unwrap_or(i64::MAX));
        self.event.push(e.event);
        self.at.push(e.received_at);
        self.body.push(e.body);
    }
}

#[derive(Default)]
struct SessionRows {
    id: Vec<String>,
    flow: Vec<String>,
    version: Vec<String>,
    live: Vec<bool>,
    state: Vec<String>,
    updated: Vec<DateTime<Utc>>,
    ended: Vec<Option<DateTime<Utc>>>,
    epoch: Vec<i64>,
}

impl Rows {
    fn of(writes: Vec<Write>, cluster: &Cluster) -> Rows {
        // A session written several times in one group is stored once, as
        // its last state (the group commits atomically: the earlier states
        // would never be seen); every journal entry they applied is marked.
        // A journal entry written twice is stored as its last write.
        let mut last_session = std::collections::HashMap::new();
        let mut last_entry = std::collections::HashMap::new();
        for (i, w) in writes.iter().enumerate() {
            match w {
                Write::Session { record, .. } => {
                    last_session.insert(record.id.clone(), i);
                }
                Write::Journal(entries) => {
                    for (j, e) in entries.iter().enumerate() {
                        last_entry.insert(e.seq, (i, j));
                    }
                }
                _ => {}
            }
        }
        let mut rows = Rows::default();
        for (i, w) in writes.into_iter().enumerate() {
            match w {
                Write::Journal(entries) => {
                    for (j, e) in entries.into_iter().enumerate() {
                        if last_entry.get(&e.seq) != Some(&(i, j)) {
                            continue;
                        }
                        rows.journal.push(e);
                    }
                }
                Write::Session { record, applied } => {
                    for seq in applied {
                        rows.applied.0.push(i64::try_from(seq).unwrap_or(i64::MAX));
                        rows.applied.1.push(record.id.clone());
                    }
                    if last_session.get(&record.id) != Some(&i) {
                        continue;
                    }
                    let s = &mut rows.sessions;
                    s.epoch.push(cluster.epoch_of(&record.id));
                    s.id.push(record.id);
                    s.flow.push(record.flow);
                    s.version.push(record.flow_version);
                    s.live.push(record.live);
                    s.state.push(record.state);
                    s.updated.push(record.updated_at);
                    s.ended.push(record.ended_at);
                }
                Write::Flow { hash, name, source } => {
                    rows.flows.0.push(hash);
                    rows.flows.1.push(name);
                    rows.flows.2.push(source);
                }
                // Timelines stay inside the state here (`timeline_rows` is
                // false): the runtime sends no such write.
                Write::Timeline { .. } => {}
                Write::Purge {
                    ended_before,
                    journal_before,
                } => rows.purge = Some((ended_before, journal_before)),
            }
        }
        rows
    }
}

/// Applies `writes` in one transaction: a statement per table, sent
/// together (tokio-postgres pipelines the statements of one connection).
///
/// Each session's write is fenced: it is stored only while this instance
/// holds its lease with the epoch it has (or, for a session no instance
/// stored yet, claims it). Returns the sessions that were not stored
/// (another instance holds them); the journal entries those applied are
/// not marked.
async fn commit(
    conn: &mut Object,
    rows: &Rows,
    routed: &Routed,
    cluster: &Cluster,
) -> Result<HashSet<String>, OpError> {
    let txn = conn.transaction().await?;
    let tx = &txn;
    // The statements that do not depend on each other are sent together
    // (tokio-postgres pipelines the statements of one connection, in the
    // order they were issued): one round trip for them all, not one each.
    let routed_rows = async {
        if routed.entries.seq.is_empty() {
            return Ok::<(), tokio_postgres::Error>(());
        }
        let JournalColumns {
            seq,
            event,
            at,
            body,
        } = &routed.entries;
        let q = tx
            .prepare_cached(
                "INSERT INTO journal (seq, event, received_at, body, target)
                 SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::timestamptz[], $4::text[],
                   $5::text[])",
            )
            .await?;
        tx.execute(&q, &[seq, event, at, body, &routed.target])
            .await
            .map(drop)
    };
    let notified = async {
        if routed.notify.is_empty() {
            return Ok::<(), tokio_postgres::Error>(());
        }
        // Sent when the transaction commits, with the entries.
        let q = tx
            .prepare_cached("SELECT pg_notify($1, t) FROM UNNEST($2::text[]) AS t")
            .await?;
        tx.execute(&q, &[&cluster.channel(), &routed.notify])
            .await
            .map(drop)
    };
    let journal = async {
        if rows.journal.seq.is_empty() {
            return Ok::<(), tokio_postgres::Error>(());
        }
        let JournalColumns {
            seq,
            event,
            at,
            body,
        } = &rows.journal;
        let q = tx
            .prepare_cached(
                "INSERT INTO journal (seq, event, received_at, body)
                 SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::timestamptz[], $4::text[])
                 ON CONFLICT (seq) DO UPDATE SET event = EXCLUDED.event,
                   received_at = EXCLUDED.received_at, body = EXCLUDED.body, session = NULL",
            )
            .await?;
        tx.execute(&q, &[seq, event, at, body]).await.map(drop)
    };
    let flows = async {
        if rows.flows.0.is_empty() {
            return Ok::<(), tokio_postgres::Error>(());
        }
        let (hash, name, source) = &rows.flows;
        let q = tx
            .prepare_cached(
                "INSERT INTO flows (hash, name, source)
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[])
                 ON CONFLICT (hash) DO NOTHING",
            )
            .await?;
        tx.execute(&q, &[hash, name, source]).await.map(drop)
    };
    let s = &rows.sessions;
    let sessions = async {
        if s.id.is_empty() {
            return Ok(HashSet::new());
        }
        let q = tx
            .prepare_cached(
                "INSERT INTO sessions (id, flow, flow_version, live, state, updated_at, ended_at,
                   owner, epoch, lease_until)
                 SELECT u.id, u.flow, u.version, u.live, u.state, u.updated, u.ended, $9, u.epoch,
                   CASE WHEN u.live THEN now() + make_interval(secs => $10) END
                 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bool[], $5::text[],
                   $6::timestamptz[], $7::timestamptz[], $8::bigint[])
                   AS u (id, flow, version, live, state, updated, ended, epoch)
                 ORDER BY u.id
                 ON CONFLICT (id) DO UPDATE SET flow = EXCLUDED.flow,
                   flow_version = EXCLUDED.flow_version, live = EXCLUDED.live,
                   state = EXCLUDED.state, updated_at = EXCLUDED.updated_at,
                   ended_at = EXCLUDED.ended_at, lease_until = EXCLUDED.lease_until
                 WHERE sessions.owner = EXCLUDED.owner AND sessions.epoch = EXCLUDED.epoch
                 RETURNING id",
            )
            .await?;
        let lease = cluster.lease().as_secs_f64();
        let node = cluster.node().to_owned();
        Ok::<HashSet<String>, tokio_postgres::Error>(
            tx.query(
                &q,
                &[
                    &s.id, &s.flow, &s.version, &s.live, &s.state, &s.updated, &s.ended, &s.epoch,
                    &node, &lease,
                ],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect(),
        )
    };
    let ((), (), (), (), written) =
        tokio::try_join!(routed_rows, notified, journal, flows, sessions)?;
    let mut fenced = HashSet::new();
    for ((id, epoch), live) in s.id.iter().zip(&s.epoch).zip(&s.live) {
        if written.contains(id) {
            cluster.stored(id, *epoch, *live);
        } else {
            fenced.insert(id.clone());
        }
    }
    if !rows.applied.0.is_empty() {
        let (seq, session) = &rows.applied;
        let skip: Vec<String> = fenced.iter().cloned().collect();
        let q = tx
            .prepare_cached(
                "UPDATE journal SET session = u.session
                 FROM UNNEST($1::bigint[], $2::text[]) AS u (seq, session)
                 WHERE journal.seq = u.seq AND NOT (u.session = ANY($3::text[]))",
            )
            .await?;
        tx.execute(&q, &[seq, session, &skip]).await?;
    }
    if let Some((ended_before, journal_before)) = rows.purge {
        tx.execute(
            "DELETE FROM journal WHERE session IN
               (SELECT id FROM sessions WHERE NOT live AND ended_at < $1)",
            &[&ended_before],
        )
        .await?;
        tx.execute(
            "DELETE FROM sessions WHERE NOT live AND ended_at < $1",
            &[&ended_before],
        )
        .await?;
        tx.execute(
            "DELETE FROM journal WHERE session IS NULL AND received_at < $1",
            &[&journal_before],
        )
        .await?;
        tx.execute(
            "DELETE FROM claims c WHERE NOT EXISTS
               (SELECT 1 FROM journal j WHERE j.target = c.target AND j.session IS NULL)",
            &[],
        )
        .await?;
    }
    txn.commit().await?;
    Ok(fenced)
}

pub(crate) const COLUMNS: &str = "id, flow, flow_version, live, state, updated_at, ended_at";

pub(crate) fn record(row: &tokio_postgres::Row) -> SessionRecord {
    SessionRecord {
        id: row.get(0),
        flow: row.get(1),
        flow_version: row.get(2),
        live: row.get(3),
        state: row.get(4),
        updated_at: row.get(5),
        ended_at: row.get(6),
    }
}

impl Store for PostgresStore {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn durable(&self) -> bool {
        true
    }

    fn ready(&self) -> bool {
        self.health.up.load(Ordering::Acquire)
    }

    fn write(&self, writes: Vec<Write>) -> Done {
        let (tx, rx) = oneshot::channel();
        let sent = self.tx.send((Job::Writes(writes), tx));
        Box::pin(async move {
            sent.map_err(|_| StoreError::Closed)?;
            rx.await.map_err(|_| StoreError::Closed)?
        })
    }

    fn take_turn(&self, group: &str) -> super::Taken {
        let (tx, rx) = oneshot::channel();
        let pool = self.pool.clone();
        let health = self.health.clone();
        let group = group.to_owned();
        self.handle.spawn(async move {
            let taken = with_conn(&pool, &health, |conn| async move {
                let conn = conn.lock().await;
                let q = conn.prepare_cached(TAKE_TURN).await?;
                let n: i64 = conn.query_one(&q, &[&group]).await?.get(0);
                Ok(u64::try_from(n).unwrap_or(0))
            })
            .await
            .map_err(|e| e.store_error(&health.shown));
            let _ = tx.send(taken);
        });
        Box::pin(async move { rx.await.map_err(|_| StoreError::Closed)? })
    }

    fn recover(&self) -> Result<Recovered, StoreError> {
        self.read(|conn| async move {
            let conn = conn.lock().await;
            let sessions = conn
                .query(
                    &format!("SELECT {COLUMNS} FROM sessions WHERE live ORDER BY updated_at"),
                    &[],
                )
                .await?
                .iter()
                .map(record)
                .collect();
            let journal = conn
                .query(
                    "SELECT seq, event, received_at FROM journal WHERE session IS NULL ORDER BY received_at, seq",
                    &[],
                )
                .await?
                .iter()
                .map(|r| JournalEntry {
                    seq: u64::try_from(r.get::<_, i64>(0)).unwrap_or(0),
                    event: r.get(1),
                    received_at: r.get(2),
                    body: None,
                })
                .collect();
            Ok(Recovered { sessions, journal })
        })
    }

    fn flow_source(&self, hash: &str) -> Result<Option<(String, String)>, StoreError> {
        let hash = hash.to_owned();
        self.read(|conn| async move {
            let row = conn
                .lock()
                .await
                .query_opt("SELECT name, source FROM flows WHERE hash = $1", &[&hash])
                .await?;
            Ok(row.map(|r| (r.get(0), r.get(1))))
        })
    }

    fn session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        let id = id.to_owned();
        self.read(|conn| async move {
            let row = conn
                .lock()
                .await
                .query_opt(
                    &format!("SELECT {COLUMNS} FROM sessions WHERE id = $1"),
                    &[&id],
                )
                .await?;
            Ok(row.as_ref().map(record))
        })
    }

    fn recording(&self, id: &str) -> Result<Vec<(DateTime<Utc>, String)>, StoreError> {
        let id = id.to_owned();
        self.read(|conn| async move {
            let rows = conn
                .lock()
                .await
                .query(
                    "SELECT received_at, body FROM journal
                     WHERE session = $1 AND body IS NOT NULL ORDER BY received_at, seq",
                    &[&id],
                )
                .await?;
            Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        })
    }

    fn ended(&self, offset: usize, limit: usize) -> Result<Page, StoreError> {
        self.read(move |conn| async move {
            let conn = conn.lock().await;
            let want = i64::try_from(limit + 1).unwrap_or(i64::MAX);
            let skip = i64::try_from(offset).unwrap_or(i64::MAX);
            let mut records: Vec<SessionRecord> = conn
                .query(
                    &format!(
                        "SELECT {COLUMNS} FROM sessions WHERE NOT live
                         ORDER BY ended_at DESC, id LIMIT $1 OFFSET $2"
                    ),
                    &[&want, &skip],
                )
                .await?
                .iter()
                .map(record)
                .collect();
            let more = records.len() > limit;
            records.truncate(limit);
            let total: i64 = conn
                .query_one("SELECT count(*) FROM sessions WHERE NOT live", &[])
                .await?
                .get(0);
            Ok(Page {
                records,
                more,
                total: usize::try_from(total).unwrap_or(0),
            })
        })
    }
}
