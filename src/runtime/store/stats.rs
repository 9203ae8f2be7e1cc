//! What a store's writer does, counted: groups, their sizes, where their
//! time goes (waiting in the queue, running the statements, the commit and
//! its sync, checkpoints). Plain atomics and [`Histogram`]s like
//! [`crate::runtime::metrics`]; `callflow load` prints them per phase
//! ([`crate::runtime::store::Store::writer_stats`]).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::runtime::metrics::{Histogram, LATENCY_BUCKETS};

/// Bucket upper bounds for counts (batches per group, pages per checkpoint).
pub const COUNT_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0,
    16384.0, 32768.0, 65536.0,
];

/// The writer's figures. Every field is monotonic unless it says gauge.
#[derive(Debug)]
pub struct WriterStats {
    /// Transactions committed (each one sync).
    pub groups: AtomicU64,
    /// Journal batches written (each a notification waiting for its `202`).
    pub journal_batches: AtomicU64,
    /// Other batches written (session states, timelines, flows, purges).
    pub state_batches: AtomicU64,
    /// Gauge: journal batches submitted and not yet taken into a group.
    pub journal_queued: AtomicU64,
    /// Gauge: other batches submitted and not yet taken into a group.
    pub state_queued: AtomicU64,
    /// Bytes of text (states, events, bodies, timeline entries) written.
    pub bytes: AtomicU64,
    /// Journal batches per group.
    pub group_journal: Histogram,
    /// Other batches per group.
    pub group_state: Histogram,
    /// A journal batch's wait from its submission to the start of the group that takes it.
    pub journal_wait: Histogram,
    /// Another batch's wait from its submission to the start of the group that takes it.
    pub state_wait: Histogram,
    /// A journal batch from its submission until it is durable (what a `202` waits for).
    pub journal_durable: Histogram,
    /// Running a group's statements (before its commit).
    pub sql: Histogram,
    /// A group's commit: writing the WAL and syncing it.
    pub commit: Histogram,
    /// Checkpoints (WAL copied into the database file, which is synced).
    pub checkpoint: Histogram,
    /// Checkpoints the writer made itself (`RESTART`, so that the WAL
    /// starts over), because the WAL had grown past four times the
    /// checkpoint length without the writer ever pausing.
    pub checkpoint_restarts: AtomicU64,
    /// Those checkpoints' time (every write waits for them).
    pub restart: Histogram,
    /// The WAL's length (pages) when a checkpoint began.
    pub wal_pages: Histogram,
}

impl Default for WriterStats {
    fn default() -> Self {
        WriterStats {
            groups: AtomicU64::new(0),
            journal_batches: AtomicU64::new(0),
            state_batches: AtomicU64::new(0),
            journal_queued: AtomicU64::new(0),
            state_queued: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            group_journal: Histogram::new(COUNT_BUCKETS),
            group_state: Histogram::new(COUNT_BUCKETS),
            journal_wait: Histogram::new(LATENCY_BUCKETS),
            state_wait: Histogram::new(LATENCY_BUCKETS),
            journal_durable: Histogram::new(LATENCY_BUCKETS),
            sql: Histogram::new(LATENCY_BUCKETS),
            commit: Histogram::new(LATENCY_BUCKETS),
            checkpoint: Histogram::new(LATENCY_BUCKETS),
            checkpoint_restarts: AtomicU64::new(0),
            restart: Histogram::new(LATENCY_BUCKETS),
            wal_pages: Histogram::new(COUNT_BUCKETS),
        }
    }
}

/// A copy of the figures at one moment, to subtract from a later one.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// [`WriterStats::groups`].
    pub groups: u64,
    /// [`WriterStats::journal_batches`].
    pub journal_batches: u64,
    /// [`WriterStats::state_batches`].
    pub state_batches: u64,
    /// [`WriterStats::bytes`].
    pub bytes: u64,
    /// [`WriterStats::checkpoint_restarts`].
    pub checkpoint_restarts: u64,
    /// Cumulative counts and sums (seconds) of each histogram, in the
    /// order of [`WriterStats::histograms`].
    pub histograms: Vec<(Vec<u64>, f64)>,
}

impl WriterStats {
    /// The histograms by name, in a fixed order.
    pub fn histograms(&self) -> [(&'static str, &Histogram); 10] {
        [
            ("group_journal", &self.group_journal),
            ("group_state", &self.group_state),
            ("journal_wait", &self.journal_wait),
            ("state_wait", &self.state_wait),
            ("journal_durable", &self.journal_durable),
            ("sql", &self.sql),
            ("commit", &self.commit),
            ("checkpoint", &self.checkpoint),
            ("wal_pages", &self.wal_pages),
            ("restart", &self.restart),
        ]
    }

    /// The figures now.
    pub fn snapshot(&self) -> Snapshot {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Snapshot {
            groups: get(&self.groups),
            journal_batches: get(&self.journal_batches),
            state_batches: get(&self.state_batches),
            bytes: get(&self.bytes),
            checkpoint_restarts: get(&self.checkpoint_restarts),
            histograms: self
                .histograms()
                .iter()
                .map(|(_, h)| (h.cumulative(), h.sum_seconds()))
                .collect(),
        }
    }
}
