//! Several `callflow serve` on one PostgreSQL: who applies which call.
//!
//! Each instance (a *node*, named by `--node`) joins the cluster when its
//! store opens: a row in `instances`, renewed every third of the lease,
//! with a *lane* (0–1023) that makes its journal sequence numbers unique
//! in the cluster. A live session is held by one node at a time through
//! its row in `sessions`: `owner`, `epoch` (the fencing token) and
//! `lease_until`. The holder renews its leases in one statement with its
//! heartbeat; every state it writes is fenced (`… WHERE owner = me AND
//! epoch = held`, in the store's group commit), so a node that lost a
//! session (a pause, a partition) cannot write it nor, since a Graph
//! request is sent only after its state is stored, send a request for it:
//! it drops the session.
//!
//! Any node takes any notification. Its session is the callback's
//! `callflowSession` or, for a call the bot answered, the call's id. When
//! the session runs here, the events go to its worker; when another node
//! holds a valid lease, they are journaled for that session (`target`) and
//! the holder is told with `NOTIFY` (it pulls its entries in sequence
//! order); when the lease is free or expired, this node takes it
//! (`epoch + 1`) and restores the session as a restart does (flow version
//! by hash, timers, requests in flight and calls reconciled with Graph).
//! A sweep every third of the lease takes the live sessions whose lease
//! expired (`FOR UPDATE SKIP LOCKED`): the sessions of a node that died
//! carry on within a lease and a sweep, their timers (the keepAlive
//! included) fire on their new holder, once. A node that drains (SIGTERM)
//! stores its sessions, hands their leases back and leaves.
//!
//! This module decides nothing a flow does; it only moves sessions and
//! events between nodes.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use futures_util::StreamExt;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;

use crate::engine::Event;

use super::store::postgres::{COLUMNS, Job, Queue, Reply, record};
use super::store::{JournalEntry, SessionRecord, StoreError};
use super::worker::Journaled;
use super::{Inner, lock};

/// Lanes of journal sequence numbers: `seq = counter << LANE_BITS | lane`.
pub const LANE_BITS: u32 = 10;
/// The default lease of a session: failover takes at most the lease and a
/// sweep (a third of it), under 10 s.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(7);
/// Sessions taken over in one sweep, at most.
const SWEEP_BATCH: i64 = 200;
/// How long a node remembers which other node holds a session (within
/// that session's lease).
const OWNER_CACHE: Duration = Duration::from_secs(1);
/// Sessions whose holder a node remembers, at most.
const OWNER_CACHE_SIZE: usize = 100_000;

/// A node's view of the cluster.
pub struct Cluster {
    node: String,
    lease: Duration,
    lane: u64,
    counter: AtomicU64,
    channel: String,
    pool: Pool,
    config: tokio_postgres::Config,
    handle: tokio::runtime::Handle,
    /// Sessions this node holds: their epoch, and whether a state of
    /// theirs was stored with it.
    held: Mutex<HashMap<String, Held>>,
    /// Journal entries already routed to each held session (pulled, or
    /// taken here), so that none is applied twice.
    routed: Mutex<HashMap<String, HashSet<u64>>>,
    /// Take-overs one at a time on this node.
    claims: tokio::sync::Mutex<()>,
    inner: OnceLock<Weak<Inner>>,
    draining: AtomicBool,
    /// The store's writer: journal entries are committed in its groups.
    /// Weak: the writer holds this cluster, and ends when the store (which
    /// holds the queue) is dropped.
    writer: OnceLock<mpsc::WeakUnboundedSender<(Job, Reply)>>,
    /// Sessions other nodes hold, as last found: holder and until when.
    owners: Mutex<HashMap<String, (String, std::time::Instant)>>,
}

#[derive(Clone, Copy, Debug)]
struct Held {
    epoch: i64,
    stored: bool,
}

/// Where a session runs.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Located {
    /// Here (taken over just now, or already).
    Here,
    /// On another node, whose lease is valid.
    Elsewhere(String),
    /// Nowhere: unknown to the store, or ended.
    Nowhere,
}

/// A node as the admin API lists it.
#[derive(Clone, Debug, Serialize)]
pub struct NodeStatus {
    /// Its name.
    pub node: String,
    /// When it joined.
    pub started_at: DateTime<Utc>,
    /// Its last heartbeat.
    pub seen_at: DateTime<Utc>,
    /// Whether it heartbeats within a lease.
    pub alive: bool,
    /// Whether it is draining (stopping; hands its sessions back).
    pub draining: bool,
    /// The live sessions it holds a valid lease on.
    pub sessions: Vec<String>,
    /// The flows it starts new calls on: name → version (SHA-256 of the
    /// source), as of its last heartbeat.
    pub flows: std::collections::BTreeMap<String, String>,
}

fn failed(e: &tokio_postgres::Error) -> StoreError {
    StoreError::Failed(match e.as_db_error() {
        Some(db) => db.message().to_owned(),
        None => e.to_string(),
    })
}

/// A connection of the pool, or why there is none.
async fn connection(pool: &Pool) -> Result<deadpool_postgres::Object, StoreError> {
    pool.get()
        .await
        .map_err(|e| StoreError::Failed(format!("the store is unreachable: {e}")))
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

impl Cluster {
    /// Joins the cluster as `node` (called by the store when it opens, on
    /// its own runtime).
    pub(super) async fn join(
        pool: Pool,
        config: tokio_postgres::Config,
        node: String,
        lease: Duration,
    ) -> Result<Arc<Cluster>, StoreError> {
        let mut conn = pool
            .get()
            .await
            .map_err(|e| StoreError::Open(e.to_string()))?;
        let tx = conn.transaction().await.map_err(|e| failed(&e))?;
        tx.execute("SELECT pg_advisory_xact_lock(7011)", &[])
            .await
            .map_err(|e| failed(&e))?;
        // Nodes gone for an hour free their lanes (their journal is purged
        // by then).
        tx.execute(
            "DELETE FROM instances WHERE seen_at < now() - interval '1 hour' AND id <> $1",
            &[&node],
        )
        .await
        .map_err(|e| failed(&e))?;
        let lane: i32 = match tx
            .query_opt("SELECT lane FROM instances WHERE id = $1", &[&node])
            .await
            .map_err(|e| failed(&e))?
        {
            Some(row) => row.get(0),
            None => {
                let free: Option<i32> = tx
                    .query_one(
                        "SELECT min(l)::int FROM generate_series(0, 1023) AS l
                         WHERE l NOT IN (SELECT lane FROM instances)",
                        &[],
                    )
                    .await
                    .map_err(|e| failed(&e))?
                    .get(0);
                let Some(lane) = free else {
                    return Err(StoreError::Open(
                        "the cluster has 1024 nodes seen within the hour: no lane is free".into(),
                    ));
                };
                lane
            }
        };
        tx.execute(
            "INSERT INTO instances (id, lane, started_at, seen_at, draining)
             VALUES ($1, $2, now(), now(), false)
             ON CONFLICT (id) DO UPDATE SET started_at = now(), seen_at = now(), draining = false",
            &[&node, &lane],
        )
        .await
        .map_err(|e| failed(&e))?;
        let schema: String = tx
            .query_one("SELECT current_schema()", &[])
            .await
            .map_err(|e| failed(&e))?
            .get(0);
        tx.commit().await.map_err(|e| failed(&e))?;
        drop(conn);
        let start = u64::try_from(Utc::now().timestamp_micros()).unwrap_or(0);
        let cluster = Arc::new(Cluster {
            node,
            lease,
            lane: u64::try_from(lane).unwrap_or(0),
            counter: AtomicU64::new(start),
            // One channel per schema: clusters sharing a database stay apart.
            channel: format!("callflow_{}", schema_tag(&schema)),
            pool,
            config,
            handle: tokio::runtime::Handle::current(),
            held: Mutex::new(HashMap::new()),
            routed: Mutex::new(HashMap::new()),
            claims: tokio::sync::Mutex::new(()),
            inner: OnceLock::new(),
            draining: AtomicBool::new(false),
            writer: OnceLock::new(),
            owners: Mutex::new(HashMap::new()),
        });
        Ok(cluster)
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The store's writer, which commits the journal entries written here
    /// with its groups (set once, when the store opens).
    pub(super) fn set_writer(&self, queue: &Queue) {
        let _ = self.writer.set(queue.downgrade());
    }

    /// The channel the holders of sessions are told on (one per schema).
    pub(super) fn channel(&self) -> &str {
        &self.channel
    }

    /// The lease.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// The next journal sequence number (unique in the cluster, rising).
    pub(super) fn next_seq(&self) -> u64 {
        (self.counter.fetch_add(1, Ordering::AcqRel) << LANE_BITS) | self.lane
    }

    /// The epoch a write of `session` is fenced with (1 for a session this
    /// node starts: its first write claims it, or fails if another node did).
    pub(super) fn epoch_of(&self, session: &str) -> i64 {
        lock(&self.held).get(session).map_or(1, |h| h.epoch)
    }

    /// A state of `session` was stored under its epoch (`live`: it still
    /// runs; an ended one has no lease to renew).
    pub(super) fn stored(&self, session: &str, epoch: i64, live: bool) {
        if !live {
            lock(&self.held).remove(session);
            return;
        }
        lock(&self.held)
            .entry(session.to_owned())
            .and_modify(|h| {
                if h.epoch == epoch {
                    h.stored = true;
                }
            })
            .or_insert(Held {
                epoch,
                stored: true,
            });
    }

    /// The session left this node (ended, dropped or stopped).
    pub(super) fn forget(&self, session: &str) {
        lock(&self.held).remove(session);
        lock(&self.routed).remove(session);
    }

    /// Journal entry `seq` was routed to `session` here.
    pub(super) fn routed(&self, session: &str, seq: u64) {
        lock(&self.routed)
            .entry(session.to_owned())
            .or_default()
            .insert(seq);
    }

    fn inner(&self) -> Option<Arc<Inner>> {
        self.inner.get().and_then(Weak::upgrade)
    }

    /// Runs `fut` on the store's runtime (where the pool's connections live).
    async fn on_store<T: Send + 'static>(
        &self,
        fut: impl Future<Output = T> + Send + 'static,
    ) -> Option<T> {
        self.handle.spawn(fut).await.ok()
    }

    /// Starts the node's work for the runtime `inner`: the heartbeat (with
    /// the sweep) and the listener; then takes back this node's own
    /// sessions (after a crash) and the expired ones.
    pub(super) async fn start(self: &Arc<Self>, inner: &Arc<Inner>) {
        let _ = self.inner.set(Arc::downgrade(inner));
        self.heartbeat().await;
        self.sweep().await;
        self.adopt_orphans(inner, true).await;
        let me = self.clone();
        let mut stopping = inner.stopping.subscribe();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(me.lease / 3) => {}
                    _ = stopping.changed() => return,
                }
                me.heartbeat().await;
                me.sweep().await;
                if !me.draining.load(Ordering::Acquire)
                    && let Some(inner) = me.inner()
                {
                    me.adopt_orphans(&inner, false).await;
                }
            }
        });
        let me = self.clone();
        let stopping = inner.stopping.subscribe();
        tokio::spawn(async move { me.listen(stopping).await });
    }

    /// Renews the node's row and its leases; drops the sessions whose lease
    /// another node took.
    async fn heartbeat(self: &Arc<Self>) {
        let (ids, epochs): (Vec<String>, Vec<i64>) = lock(&self.held)
            .iter()
            .filter(|(_, h)| h.stored)
            .map(|(id, h)| (id.clone(), h.epoch))
            .unzip();
        let pool = self.pool.clone();
        let node = self.node.clone();
        let lease = secs(self.lease);
        let asked = ids.clone();
        let flows = self.inner().map_or_else(String::new, |inner| {
            let set = inner.flows.load();
            let live: std::collections::BTreeMap<&str, &str> = set
                .flows
                .values()
                .map(|f| (f.name.as_str(), f.source.sha256.as_str()))
                .collect();
            serde_json::to_string(&live).unwrap_or_default()
        });
        let renewed = self
            .on_store(async move {
                let conn = pool.get().await.ok()?;
                conn.execute(
                    "UPDATE instances SET seen_at = now(),
                       flows = CASE WHEN $2 = '' THEN flows ELSE $2 END
                     WHERE id = $1",
                    &[&node, &flows],
                )
                .await
                .ok()?;
                if asked.is_empty() {
                    return Some(HashSet::new());
                }
                let rows = conn
                    .query(
                        // The rows are locked in id order, as the writer's
                        // upsert takes them: the two never deadlock.
                        "WITH locked AS MATERIALIZED (
                           SELECT id FROM sessions WHERE id = ANY($1::text[]) AND owner = $4
                           ORDER BY id FOR UPDATE)
                         UPDATE sessions s SET lease_until = now() + make_interval(secs => $3)
                         FROM UNNEST($1::text[], $2::bigint[]) AS u (id, epoch), locked l
                         WHERE s.id = u.id AND l.id = u.id AND s.owner = $4
                           AND s.epoch = u.epoch AND s.live
                         RETURNING s.id",
                        &[&asked, &epochs, &lease, &node],
                    )
                    .await
                    .ok()?;
                Some(
                    rows.iter()
                        .map(|r| r.get::<_, String>(0))
                        .collect::<HashSet<_>>(),
                )
            })
            .await
            .flatten();
        let Some(renewed) = renewed else {
            return;
        };
        let lost: Vec<String> = ids.into_iter().filter(|id| !renewed.contains(id)).collect();
        if lost.is_empty() {
            return;
        }
        // Ended since (its last write made it not live), or taken by another
        // node: either way, it is not ours to run.
        if let Some(inner) = self.inner() {
            for id in lost {
                if inner.drop_session(&id) {
                    metrics_inc(&inner.metrics.sessions_fenced);
                    tracing::warn!(session = %id, node = %self.node,
                        "another node holds this session's lease now: dropped here");
                    self.nudge(&id);
                }
                self.forget(&id);
            }
        }
    }

    /// Takes the live sessions whose lease expired (and this node's own,
    /// after a restart) and restores them here.
    async fn sweep(self: &Arc<Self>) {
        if self.draining.load(Ordering::Acquire) {
            return;
        }
        let Some(inner) = self.inner() else { return };
        let _claims = self.claims.lock().await;
        // A batch at a time, until one comes back short: the sessions of a
        // node that died all carry on within this sweep, however many.
        loop {
            let claimed = self.claim_expired(&inner).await;
            let full = claimed.len() >= usize::try_from(SWEEP_BATCH).unwrap_or(usize::MAX);
            for row in claimed {
                let (record, epoch) = (record(&row), row.get::<_, i64>(7));
                if inner.runs_here(&record.id) {
                    // Already running here (a restart under the same name raced
                    // its own sweep): it carries on under the new epoch.
                    lock(&self.held).insert(
                        record.id.clone(),
                        Held {
                            epoch,
                            stored: true,
                        },
                    );
                    continue;
                }
                self.restore(&inner, record, epoch).await;
            }
            if !full || self.draining.load(Ordering::Acquire) {
                return;
            }
        }
    }

    /// Takes up to [`SWEEP_BATCH`] live sessions whose lease is free or
    /// expired (or this node's own, after a restart), none that runs here.
    async fn claim_expired(&self, inner: &Arc<Inner>) -> Vec<tokio_postgres::Row> {
        let pool = self.pool.clone();
        let node = self.node.clone();
        let lease = secs(self.lease);
        // What runs here is never taken again (a new epoch would fence its
        // own worker's next write); at start nothing does, and this node's
        // sessions from before a crash are taken back at once.
        let running: Vec<String> = lock(&inner.table)
            .sessions
            .keys()
            .map(|k| k.to_string())
            .collect();
        self.on_store(async move {
            let conn = pool.get().await.ok()?;
            conn.query(
                &format!(
                    "UPDATE sessions SET owner = $1, epoch = epoch + 1,
                       lease_until = now() + make_interval(secs => $2)
                     WHERE id IN (SELECT id FROM sessions
                       WHERE live AND (owner IS NULL OR owner = $1 OR lease_until IS NULL
                         OR lease_until < now())
                         AND NOT (id = ANY($3::text[]))
                       ORDER BY lease_until NULLS FIRST LIMIT {SWEEP_BATCH}
                       FOR UPDATE SKIP LOCKED)
                     RETURNING {COLUMNS}, epoch"
                ),
                &[&node, &lease, &running],
            )
            .await
            .ok()
        })
        .await
        .flatten()
        .unwrap_or_default()
    }

    /// Restores a session this node just took (epoch `epoch`), then routes
    /// the entries journaled for it.
    async fn restore(self: &Arc<Self>, inner: &Arc<Inner>, record: SessionRecord, epoch: i64) {
        let id = record.id.clone();
        lock(&self.held).insert(
            id.clone(),
            Held {
                epoch,
                stored: true,
            },
        );
        tracing::info!(session = %id, node = %self.node, epoch,
            "session taken over: reconciled with Graph, then carried on here");
        if !super::recover::restore_record(inner, record).await {
            self.forget(&id);
            return;
        }
        metrics_inc(&inner.metrics.sessions_taken_over);
        self.pull(inner, &id).await;
    }

    /// Where the session `key` runs; takes it over when its lease is free.
    ///
    /// A session another live node holds a valid lease on (the common case
    /// behind a balancer with no affinity) is found without the take-over
    /// lock, and remembered for at most [`OWNER_CACHE`] within its lease:
    /// an event journaled for it is applied by whichever node holds it when
    /// it is told, so a holder that changed since is no harm.
    pub(super) async fn locate(self: &Arc<Self>, inner: &Arc<Inner>, key: &str) -> Located {
        if inner.runs_here(key) {
            return Located::Here;
        }
        if let Some(owner) = self.cached_owner(key) {
            return Located::Elsewhere(owner);
        }
        let pool = self.pool.clone();
        let id = key.to_owned();
        let node = self.node.clone();
        // (owner, seconds of lease left) when another live node holds it;
        // `None` when no live session has that id; else `Some(None)`.
        let found = self
            .on_store(async move {
                let conn = pool.get().await.ok()?;
                let q = conn
                    .prepare_cached(
                        "SELECT s.owner,
                           extract(epoch FROM s.lease_until - now())::float8,
                           s.owner IS NOT NULL AND s.owner <> $2 AND s.lease_until > now()
                             AND i.id IS NOT NULL AND NOT i.draining
                         FROM sessions s LEFT JOIN instances i ON i.id = s.owner
                         WHERE s.id = $1 AND s.live",
                    )
                    .await
                    .ok()?;
                let row = conn.query_opt(&q, &[&id, &node]).await.ok()?;
                Some(row.map(|row| {
                    row.get::<_, bool>(2).then(|| {
                        (
                            row.get::<_, String>(0),
                            row.get::<_, Option<f64>>(1).unwrap_or(0.0),
                        )
                    })
                }))
            })
            .await;
        match found {
            // No live session of that id: nothing to take over either.
            Some(Some(None)) => return Located::Nowhere,
            Some(Some(Some(Some((owner, left))))) => {
                let valid = Duration::from_secs_f64(left.max(0.0)).min(OWNER_CACHE);
                self.remember_owner(key, &owner, valid);
                return Located::Elsewhere(owner);
            }
            _ => {}
        }
        self.locate_or_take(inner, key).await
    }

    fn cached_owner(&self, key: &str) -> Option<String> {
        let mut owners = lock(&self.owners);
        match owners.get(key) {
            Some((owner, until)) if *until > std::time::Instant::now() => Some(owner.clone()),
            Some(_) => {
                owners.remove(key);
                None
            }
            None => None,
        }
    }

    fn remember_owner(&self, key: &str, owner: &str, valid: Duration) {
        let mut owners = lock(&self.owners);
        if owners.len() >= OWNER_CACHE_SIZE {
            let now = std::time::Instant::now();
            owners.retain(|_, (_, until)| *until > now);
            if owners.len() >= OWNER_CACHE_SIZE {
                owners.clear();
            }
        }
        owners.insert(
            key.to_owned(),
            (owner.to_owned(), std::time::Instant::now() + valid),
        );
    }

    /// [`Cluster::locate`] under the take-over lock: takes the session
    /// when its lease is free or expired.
    async fn locate_or_take(self: &Arc<Self>, inner: &Arc<Inner>, key: &str) -> Located {
        let _claims = self.claims.lock().await;
        if inner.runs_here(key) {
            return Located::Here;
        }
        let pool = self.pool.clone();
        let node = self.node.clone();
        let lease = secs(self.lease);
        let id = key.to_owned();
        let draining = self.draining.load(Ordering::Acquire);
        let found = self
            .on_store(async move {
                let conn = pool.get().await.ok()?;
                if !draining
                    && let Some(row) = conn
                        .query_opt(
                            &format!(
                                "UPDATE sessions SET owner = $2, epoch = epoch + 1,
                                   lease_until = now() + make_interval(secs => $3)
                                 WHERE id = $1 AND live AND (owner IS NULL OR owner = $2
                                   OR lease_until IS NULL OR lease_until < now())
                                 RETURNING {COLUMNS}, epoch"
                            ),
                            &[&id, &node, &lease],
                        )
                        .await
                        .ok()?
                {
                    return Some(Ok((record(&row), row.get::<_, i64>(7))));
                }
                let row = conn
                    .query_opt("SELECT owner, live FROM sessions WHERE id = $1", &[&id])
                    .await
                    .ok()?;
                Some(Err(row.and_then(|r| {
                    let owner: Option<String> = r.get(0);
                    r.get::<_, bool>(1).then_some(owner).flatten()
                })))
            })
            .await
            .flatten();
        match found {
            Some(Ok((record, epoch))) => {
                self.restore(inner, record, epoch).await;
                Located::Here
            }
            Some(Err(Some(owner))) => Located::Elsewhere(owner),
            _ => Located::Nowhere,
        }
    }

    /// Journals `entries` for `target`, held by another node, and tells it
    /// (one statement: the entries and the `NOTIFY` commit together).
    pub(super) async fn forward(
        &self,
        target: &str,
        entries: Vec<JournalEntry>,
    ) -> Result<(), StoreError> {
        let entries = entries
            .into_iter()
            .map(|e| (e, Some(target.to_owned())))
            .collect();
        self.write_journal(entries, Some(target)).await
    }

    /// Journals the events this node applies, each with the session it is
    /// for (so that a node taking the session over after a crash finds
    /// those not applied).
    pub(super) async fn journal(
        &self,
        entries: Vec<(JournalEntry, Option<String>)>,
    ) -> Result<(), StoreError> {
        self.write_journal(entries, None).await
    }

    /// Inserts `entries` (each with its target session) and, when
    /// `notify` names a session, tells its holder: in the store writer's
    /// next group commit (the entries and the `NOTIFY` commit together).
    async fn write_journal(
        &self,
        entries: Vec<(JournalEntry, Option<String>)>,
        notify: Option<&str>,
    ) -> Result<(), StoreError> {
        let queue = self
            .writer
            .get()
            .and_then(mpsc::WeakUnboundedSender::upgrade)
            .ok_or(StoreError::Closed)?;
        let (reply, done) = tokio::sync::oneshot::channel();
        queue
            .send((
                Job::Routed {
                    entries,
                    notify: notify.map(str::to_owned),
                },
                reply,
            ))
            .map_err(|_| StoreError::Closed)?;
        done.await.map_err(|_| StoreError::Closed)?
    }

    /// Routes to `session` (held here) the entries journaled for it that it
    /// has not had, in sequence order.
    async fn pull(&self, inner: &Arc<Inner>, session: &str) {
        self.pull_all(inner, vec![session.to_owned()]).await;
    }

    /// [`Cluster::pull`] for several sessions, in one query.
    async fn pull_all(&self, inner: &Arc<Inner>, sessions: Vec<String>) {
        if sessions.is_empty() {
            return;
        }
        let pool = self.pool.clone();
        let rows = self
            .on_store(async move {
                let conn = pool.get().await.ok()?;
                let q = conn
                    .prepare_cached(
                        "SELECT seq, event, target FROM journal
                         WHERE target = ANY($1::text[]) AND session IS NULL ORDER BY received_at, seq",
                    )
                    .await
                    .ok()?;
                conn.query(&q, &[&sessions]).await.ok()
            })
            .await
            .flatten()
            .unwrap_or_default();
        for row in rows {
            let seq = u64::try_from(row.get::<_, i64>(0)).unwrap_or(0);
            let session: String = row.get(2);
            let fresh = lock(&self.routed)
                .entry(session.clone())
                .or_default()
                .insert(seq);
            if !fresh {
                continue;
            }
            let Ok(event) = serde_json::from_str::<Event>(row.get(1)) else {
                continue;
            };
            let journaled = Journaled { seq, at: None };
            let _ = inner.route(
                event,
                tokio::time::Instant::now(),
                Some(journaled),
                Some(&session),
            );
        }
    }

    /// Takes over the *orphans* of dead nodes: entries a node journaled
    /// (and acknowledged) for a session that was never stored, an incoming
    /// call killed between its `202` and its first step, and did not apply.
    /// No session row means no lease to take, so each orphan's session is
    /// claimed by a row of `claims` (one statement: the claim and the
    /// entries it gives, `INSERT … ON CONFLICT DO UPDATE WHERE` the claim's
    /// holder is dead), and the entries are applied here in sequence order,
    /// at the time they were received: exactly one node takes each, and
    /// another takes it again only if that one dies too. The first write of
    /// the session it starts claims its row as any new session does.
    /// This node's own orphans a lease old (a new session stopped because
    /// its first state could not be stored: the store went away between the
    /// `202` and the first step) are claimed and applied again the same way,
    /// once. At start (`own`), this node's own orphans and claims from
    /// before a crash are taken back too.
    async fn adopt_orphans(&self, inner: &Arc<Inner>, own: bool) {
        let pool = self.pool.clone();
        let node = self.node.clone();
        let lease = secs(self.lease);
        let lane = i64::try_from(self.lane).unwrap_or(0);
        let mask = (1i64 << LANE_BITS) - 1;
        let rows = self
            .on_store(async move {
                let conn = pool.get().await.ok()?;
                let dead = conn
                    .query(
                        "SELECT id, lane::bigint FROM instances
                         WHERE id <> $1 AND seen_at < now() - make_interval(secs => $2)",
                        &[&node, &lease],
                    )
                    .await
                    .ok()?;
                let mut nodes: Vec<String> = dead.iter().map(|r| r.get(0)).collect();
                let mut lanes: Vec<i64> = dead.iter().map(|r| r.get(1)).collect();
                if own {
                    nodes.push(node.clone());
                    lanes.push(lane);
                }
                conn.query(
                    &format!(
                        "WITH orphans AS (
                           SELECT DISTINCT j.target FROM journal j
                           LEFT JOIN claims c ON c.target = j.target
                           WHERE j.session IS NULL AND j.target IS NOT NULL
                             AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.id = j.target)
                             AND (((j.seq & $1) = ANY($2::bigint[])
                                   AND (c.owner IS NULL OR c.owner = ANY($3::text[])))
                               OR ((j.seq & $1) = $5 AND c.owner IS NULL
                                   AND j.received_at < now() - make_interval(secs => $6)))
                           LIMIT {SWEEP_BATCH}),
                         claimed AS (
                           INSERT INTO claims (target, owner, claimed_at)
                           SELECT target, $4, now() FROM orphans
                           ON CONFLICT (target) DO UPDATE SET owner = EXCLUDED.owner,
                             claimed_at = EXCLUDED.claimed_at
                           WHERE claims.owner = ANY($3::text[])
                           RETURNING target)
                         SELECT j.seq, j.event, j.target, j.received_at FROM journal j
                         WHERE j.session IS NULL AND j.target IN (SELECT target FROM claimed)
                         ORDER BY j.seq"
                    ),
                    &[&mask, &lanes, &nodes, &node, &lane, &lease],
                )
                .await
                .ok()
            })
            .await
            .flatten()
            .unwrap_or_default();
        let mut adopted = 0u64;
        for row in rows {
            let seq = u64::try_from(row.get::<_, i64>(0)).unwrap_or(0);
            let target: String = row.get(2);
            if inner.runs_here(&target) {
                continue;
            }
            let fresh = lock(&self.routed)
                .entry(target.clone())
                .or_default()
                .insert(seq);
            if !fresh {
                continue;
            }
            let Ok(event) = serde_json::from_str::<Event>(row.get(1)) else {
                continue;
            };
            let journaled = Journaled {
                seq,
                at: Some(row.get(3)),
            };
            let _ = inner.route(
                event,
                tokio::time::Instant::now(),
                Some(journaled),
                Some(&target),
            );
            adopted += 1;
        }
        if adopted > 0 {
            inner
                .metrics
                .events_adopted
                .fetch_add(adopted, Ordering::Relaxed);
            tracing::info!(node = %self.node, events = adopted,
                "journal entries acknowledged by an instance that stopped before applying them: \
                 applied here");
        }
    }

    /// Listens for entries journaled for this node's sessions; after each
    /// (re)connection, pulls every held session (a `NOTIFY` sent while
    /// disconnected is lost).
    async fn listen(self: Arc<Self>, mut stopping: tokio::sync::watch::Receiver<bool>) {
        loop {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
            let config = self.config.clone();
            let channel = self.channel.clone();
            let connected = self
                .on_store(async move {
                    let (client, mut conn) = config.connect(tokio_postgres::NoTls).await.ok()?;
                    tokio::spawn(async move {
                        let mut messages =
                            futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
                        while let Some(Ok(message)) = messages.next().await {
                            if let AsyncMessage::Notification(n) = message
                                && tx.send(n.payload().to_owned()).is_err()
                            {
                                return;
                            }
                        }
                    });
                    client
                        .batch_execute(&format!("LISTEN {channel}"))
                        .await
                        .ok()?;
                    Some(client)
                })
                .await
                .flatten();
            if let Some(client) = connected {
                if let Some(inner) = self.inner() {
                    let held: Vec<String> = lock(&self.held).keys().cloned().collect();
                    self.pull_all(&inner, held).await;
                }
                loop {
                    tokio::select! {
                        payload = rx.recv() => match payload {
                            Some(id) => {
                                let Some(inner) = self.inner() else { return };
                                // Every notification waiting, in one pull
                                // (under load they come faster than one
                                // query each could answer).
                                let mut ids = vec![id];
                                while let Ok(more) = rx.try_recv() {
                                    ids.push(more);
                                }
                                let mut seen = HashSet::new();
                                ids.retain(|id| seen.insert(id.clone()) && inner.runs_here(id));
                                self.pull_all(&inner, ids).await;
                            }
                            None => break,
                        },
                        _ = stopping.changed() => return,
                    }
                }
                drop(client);
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stopping.changed() => return,
            }
        }
    }

    /// Tells the holder of `session` to pull its journal entries: this node
    /// stopped the session (another node holds it: its first write lost a
    /// race, or its lease was taken), and what was journaled here for it
    /// and not applied must be applied there (a duplicate changes nothing).
    pub(super) fn nudge(&self, session: &str) {
        let pool = self.pool.clone();
        let channel = self.channel.clone();
        let session = session.to_owned();
        self.handle.spawn(async move {
            if let Ok(conn) = pool.get().await {
                let _ = conn
                    .execute("SELECT pg_notify($1, $2)", &[&channel, &session])
                    .await;
            }
        });
    }

    /// Draining: takes no session over from now on.
    pub(super) fn drain(&self) {
        self.draining.store(true, Ordering::Release);
        let pool = self.pool.clone();
        let node = self.node.clone();
        self.handle.spawn(async move {
            if let Ok(conn) = pool.get().await {
                let _ = conn
                    .execute(
                        "UPDATE instances SET draining = true WHERE id = $1",
                        &[&node],
                    )
                    .await;
            }
        });
    }

    /// Hands this node's leases back (its sessions are stored) and leaves
    /// the cluster: the other nodes take them in their next sweep.
    pub(super) async fn leave(&self) {
        let pool = self.pool.clone();
        let node = self.node.clone();
        let released = self
            .on_store(async move {
                let conn = pool.get().await.ok()?;
                let n = conn
                    .execute(
                        "UPDATE sessions SET owner = NULL, lease_until = NULL
                         WHERE owner = $1 AND live",
                        &[&node],
                    )
                    .await
                    .ok()?;
                conn.execute(
                    "UPDATE instances SET draining = true, seen_at = now() - interval '1 day'
                     WHERE id = $1",
                    &[&node],
                )
                .await
                .ok()?;
                Some(n)
            })
            .await
            .flatten();
        if let Some(n) = released {
            tracing::info!(node = %self.node, sessions = n,
                "left the cluster: the sessions held here are handed to the other nodes");
        }
    }

    /// Live sessions of the whole cluster, oldest first, from `offset`, at
    /// most `limit`, with how many there are.
    pub(super) async fn live(
        &self,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<SessionRecord>, usize), StoreError> {
        let pool = self.pool.clone();
        let skip = i64::try_from(offset).unwrap_or(i64::MAX);
        let want = i64::try_from(limit).unwrap_or(i64::MAX);
        self.on_store(async move {
            let conn = connection(&pool).await?;
            let rows = conn
                .query(
                    &format!(
                        "SELECT {COLUMNS} FROM sessions WHERE live
                         ORDER BY updated_at, id LIMIT $1 OFFSET $2"
                    ),
                    &[&want, &skip],
                )
                .await
                .map_err(|e| failed(&e))?;
            let total: i64 = conn
                .query_one("SELECT count(*) FROM sessions WHERE live", &[])
                .await
                .map_err(|e| failed(&e))?
                .get(0);
            Ok((
                rows.iter().map(record).collect(),
                usize::try_from(total).unwrap_or(0),
            ))
        })
        .await
        .unwrap_or(Err(StoreError::Closed))
    }

    /// The nodes of the cluster and the sessions each holds.
    pub async fn nodes(&self) -> Result<Vec<NodeStatus>, StoreError> {
        let pool = self.pool.clone();
        let lease = secs(self.lease);
        self.on_store(async move {
            let conn = connection(&pool).await?;
            let rows = conn
                .query(
                    "SELECT i.id, i.started_at, i.seen_at,
                       i.seen_at > now() - make_interval(secs => $1), i.draining,
                       COALESCE(array_agg(s.id ORDER BY s.id) FILTER (WHERE s.id IS NOT NULL),
                         '{}'), i.flows
                     FROM instances i LEFT JOIN sessions s
                       ON s.owner = i.id AND s.live AND s.lease_until > now()
                     WHERE i.seen_at > now() - interval '1 hour'
                     GROUP BY i.id ORDER BY i.id",
                    &[&lease],
                )
                .await
                .map_err(|e| failed(&e))?;
            Ok(rows
                .iter()
                .map(|r| NodeStatus {
                    node: r.get(0),
                    started_at: r.get(1),
                    seen_at: r.get(2),
                    alive: r.get(3),
                    draining: r.get(4),
                    sessions: r.get(5),
                    flows: serde_json::from_str(r.get::<_, &str>(6)).unwrap_or_default(),
                })
                .collect())
        })
        .await
        .unwrap_or(Err(StoreError::Closed))
    }
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node", &self.node)
            .field("lease", &self.lease)
            .field("lane", &self.lane)
            .finish_non_exhaustive()
    }
}

fn metrics_inc(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// A channel name's part for `schema` (letters, digits and `_` only).
fn schema_tag(schema: &str) -> String {
    schema
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(40)
        .collect()
}
