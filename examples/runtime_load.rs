//! Memory per live session and notifications per second through the runtime.
//!
//! `cargo run --release --example runtime_load -- [SESSIONS] [--evict-after
//! TIME]` (10,000 by default). Places SESSIONS incoming calls on a flow that
//! answers and then waits an hour, so every session stays live; each call
//! gets `incoming` then `established`. With `--evict-after`, the sessions
//! are kept in a SQLite store (a temporary file) and evicted once idle that
//! long; the memory is read once they all are (the store's own page cache
//! is counted too). Graph is a no-op `CallControl` (every request accepted at
//! once), so the figures are the runtime's own: bytes still allocated per
//! live session (a counting global allocator; the notification bodies are
//! kept outside the measure), beside the process's resident memory growth
//! per live session (Linux: whole pages, plus the allocator's headers and
//! free space), notifications per second from parse to settled, and the
//! bucketed p99 from `submit` to the Graph request sent.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use callflow::engine::{CallControl, ControlError, Party};
use callflow::graph::notification::parse_batch;
use callflow::graph::wire::{
    AnswerRequest, Call, CallState, CommsOperation, InviteParticipantsRequest, PlayPromptRequest,
    RedirectRequest, RejectRequest, SubscribeToToneRequest, TransferRequest,
};
use callflow::runtime::{Runtime, RuntimeConfig};
use callflow::sim::notify::Notifier;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator and only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same layout, passed through.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same pointer and layout, passed through.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: same pointer and layout, passed through.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Accepts everything at once, says nothing.
struct NoopGraph;

impl CallControl for NoopGraph {
    async fn answer(&self, _: &str, _: &AnswerRequest) -> Result<(), ControlError> {
        Ok(())
    }
    async fn reject(&self, _: &str, _: &RejectRequest) -> Result<(), ControlError> {
        Ok(())
    }
    async fn redirect(&self, _: &str, _: &RedirectRequest) -> Result<(), ControlError> {
        Ok(())
    }
    async fn transfer(&self, _: &str, _: &TransferRequest) -> Result<(), ControlError> {
        Ok(())
    }
    async fn create_call(&self, _: &Call) -> Result<Call, ControlError> {
        Err(ControlError::new(501, "NotImplemented", "no calls here"))
    }
    async fn play_prompt(
        &self,
        _: &str,
        _: &PlayPromptRequest,
    ) -> Result<CommsOperation, ControlError> {
        Ok(CommsOperation::default())
    }
    async fn subscribe_to_tone(
        &self,
        _: &str,
        _: &SubscribeToToneRequest,
    ) -> Result<CommsOperation, ControlError> {
        Ok(CommsOperation::default())
    }
    async fn cancel_media_processing(
        &self,
        _: &str,
        _: &callflow::graph::wire::CancelMediaProcessingRequest,
    ) -> Result<CommsOperation, ControlError> {
        Ok(CommsOperation::default())
    }
    async fn invite(
        &self,
        _: &str,
        _: &InviteParticipantsRequest,
    ) -> Result<CommsOperation, ControlError> {
        Ok(CommsOperation::default())
    }
    async fn record_response(
        &self,
        _: &str,
        _: &callflow::graph::wire::RecordResponseRequest,
    ) -> Result<CommsOperation, ControlError> {
        Ok(CommsOperation::default())
    }
    async fn download_recording(&self, _: &str, _: &str) -> Result<Vec<u8>, ControlError> {
        Ok(Vec::new())
    }
    async fn deliver_recording(&self, name: &str, _: Vec<u8>) -> Result<String, ControlError> {
        Ok(name.to_owned())
    }
    async fn hangup(&self, _: &str) -> Result<(), ControlError> {
        Ok(())
    }
    async fn keep_alive(&self, _: &str) -> Result<(), ControlError> {
        Ok(())
    }
}

const FLOW: &str = "flow: front
timezone: Europe/Paris
trigger:
  incoming_call:
    to: [\"+14255550100\"]
start: greet
steps:
  greet:
    answer: {}
    next: pause
  pause:
    wait: { timeout: 1h }
    next: bye
  bye:
    hangup: {}
";

/// Resident memory of this process, in bytes (Linux; `None` elsewhere).
fn rss_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = text.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let sessions: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let evict_after: Option<Duration> = args
        .iter()
        .position(|a| a == "--evict-after")
        .and_then(|i| args.get(i + 1))
        .map(|t| humantime::parse_duration(t).expect("--evict-after TIME, e.g. 1s"));
    let dir = tempfile::tempdir().expect("a temporary folder");
    std::fs::write(dir.path().join("front.yaml"), FLOW).expect("the flow is written");
    let notifier = Notifier {
        callback_uri: "https://bot.contoso.com/api/calls".into(),
        legacy: false,
    };
    let to = Party::phone("+14255550100");
    let mut incoming = Vec::with_capacity(sessions);
    let mut established = Vec::with_capacity(sessions);
    for i in 0..sessions {
        let id = format!("{:08x}-894c-409a-b240-bd8beae78896", i);
        let from = Party::phone(format!("+331{i:08}"));
        incoming.push(notifier.incoming(&id, &from, &to).to_string());
        established.push(
            notifier
                .state(&id, &CallState::Established, None, None, None)
                .to_string(),
        );
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    rt.block_on(async {
        let store = match evict_after {
            Some(_) => callflow::runtime::StoreHandle(std::sync::Arc::new(
                callflow::runtime::store::sqlite::SqliteStore::open(
                    &dir.path().join("callflow.db"),
                )
                .expect("the store opens"),
            )),
            None => callflow::runtime::StoreHandle::memory(),
        };
        let config = RuntimeConfig {
            flows_dir: dir.path().to_path_buf(),
            callback_uri: notifier.callback_uri.clone(),
            max_sessions: sessions + 10,
            store,
            evict_after,
            ..RuntimeConfig::default()
        };
        let runtime = Runtime::start(config, Arc::new(NoopGraph))
            .await
            .unwrap_or_else(|d| panic!("the flow loads: {d:?}"));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let baseline = LIVE.load(Ordering::Relaxed);
        let rss_before = rss_bytes();
        let started = Instant::now();
        for bodies in [&incoming, &established] {
            for body in bodies.iter() {
                let batch = parse_batch(body.as_bytes()).expect("the body parses");
                runtime.submit(batch).expect("queued");
            }
            runtime.settle().await;
        }
        let took = started.elapsed();
        if let Some(after) = evict_after {
            let deadline = Instant::now() + after + Duration::from_secs(60);
            while runtime.evicted_sessions() < sessions && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            println!(
                "sessions evicted:          {} (after {})",
                runtime.evicted_sessions(),
                humantime::format_duration(after)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let live_bytes = LIVE.load(Ordering::Relaxed) - baseline;
        let live = runtime.live_sessions();
        let rss_after = rss_bytes();
        let m = runtime.metrics();
        let notifications = 2 * sessions;
        println!("sessions live:             {live}");
        println!(
            "bytes per live session:    {} ({:.2} KiB)",
            live_bytes / live.max(1) as isize,
            live_bytes as f64 / live.max(1) as f64 / 1024.0
        );
        if let (Some(before), Some(after)) = (rss_before, rss_after) {
            println!(
                "RSS growth per session:    {:.2} KiB (resident memory, not bytes asked for)",
                after.saturating_sub(before) as f64 / live.max(1) as f64 / 1024.0
            );
        }
        println!(
            "notifications:             {notifications} in {:.3} s = {:.0}/s (parse, route, step, no-op Graph, settled)",
            took.as_secs_f64(),
            notifications as f64 / took.as_secs_f64()
        );
        println!(
            "submit -> request sent:    p50 <= {:?} s, p99 <= {:?} s (bucket upper bounds)",
            m.dispatch_latency.quantile_upper_bound(0.5),
            m.dispatch_latency.quantile_upper_bound(0.99)
        );
        runtime.shutdown().await;
    });
}
