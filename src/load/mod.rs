//! `callflow load` as a library: how many notifications per second the
//! real server and runtime take, on loopback, against `sim-graph`, their
//! latency at a sustained rate, and their memory per live session.
//!
//! Two processes: `sim-graph` (manual clock) plays Graph in a child process
//! ([`child`]: this binary's `sim-graph` command), so that its own memory
//! per call is not counted in this process's; here, the real server,
//! runtime and Graph client are wired to it as `serve --simulate` does
//! ([`crate::serve::wire_to_sim_graph`]). After a thousand warm-up calls,
//! the calls are placed through sim-graph's control API in two halves, so
//! each has a live session, and this process's resident memory
//! ([`memory`]) is read before, between and after. The [`generator`] then
//! POSTs signed `commsNotifications` (duplicated `established`, tones,
//! operation updates) to the callback over keep-alive connections: first
//! as fast as they are answered (throughput), then at `rate` per second
//! (latency), each until `notifications` or `duration`, while a prober
//! places a new call every 10 ms (its `incoming` is what the dispatch
//! latency measures). The same generator is then run at full speed against
//! a bare axum handler that only answers `202` on another loopback port, on
//! the same number of server threads. Loopback only; it stops by itself.
//! What it measures is written to a [`std::io::Write`] the caller gives.

pub mod balancer;
pub mod child;
pub mod generator;
pub mod memory;

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode, header};
use tokio::net::TcpListener;

use crate::graph::wire::CallState;
use crate::runtime::Runtime;
use crate::runtime::store::stats::{Snapshot, WriterStats};
use crate::serve::{ServeError, SimWiring, wire_to_sim_graph};
use crate::server::{DEFAULT_CALLBACK_PATH, DEFAULT_MAX_BODY};
use crate::sim::http::client::SimGraphControl;
use crate::sim::notify::Notifier;

use child::SimGraphChild;
use generator::{Blast, Prober, blast, place, place_many};
use memory::{rss_bytes, rss_of};

/// Writes one line to the report, ignoring a closed output.
macro_rules! say {
    ($out:expr) => {{
        let _ = writeln!($out);
    }};
    ($out:expr, $($arg:tt)*) => {{
        let _ = writeln!($out, $($arg)*);
    }};
}

pub mod cluster;

/// The flow every load call runs: answer, then wait an hour (the session stays live).
const FLOW: &str = "flow: load
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

/// Calls placed (and left live) before memory is measured.
const WARM_UP: usize = 1_000;

/// The first warm-up caller's number (far from the measured calls' and the probes').
const WARM_UP_FIRST: usize = 5_000_000;

/// What to measure.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// At most this many notifications per target (the server, then the bare handler).
    pub notifications: u64,
    /// Concurrent calls (live sessions) the notifications are about.
    pub calls: usize,
    /// Concurrent keep-alive connections of the generator.
    pub concurrency: usize,
    /// At most this long per phase.
    pub duration: Duration,
    /// Notifications per second offered in the sustained phase (0 skips it).
    pub rate: u64,
    /// Worker threads of the server side.
    pub server_threads: usize,
    /// Worker threads of the load side.
    pub load_threads: usize,
    /// Where the server keeps its sessions: `None` for memory, else a
    /// SQLite file (created; the load's sessions are left in it). With a
    /// store, the server is also restarted on it at the end and the time
    /// until it serves again is measured.
    pub sqlite: Option<std::path::PathBuf>,
    /// Several `callflow serve` processes on one PostgreSQL instead of
    /// the server in this process (then `sqlite` is not read).
    pub postgres: Option<cluster::PostgresLoad>,
    /// With a store: idle sessions are evicted after this long, and memory
    /// is read once the placed sessions are evicted (`None`: never).
    pub evict_after: Option<Duration>,
}

/// Opens the SQLite store at `path` (retrying a few seconds while a
/// stopped server's writer lets go of it).
async fn open_sqlite(path: &std::path::Path) -> Result<crate::runtime::StoreHandle, String> {
    let url = crate::runtime::StoreUrl::Sqlite(path.to_owned());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match url.open() {
            Ok(store) => return Ok(crate::runtime::StoreHandle(store)),
            Err(e) if Instant::now() < deadline && e.to_string().contains("locked") => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => return Err(format!("the store {url}: {e}")),
        }
    }
}

/// Runs the measurement, writing the report to `out`; `Ok(true)` when no
/// notification got a 5xx or a transport error.
///
/// Must run in the `callflow` binary (it starts this executable's
/// `sim-graph` command), outside any async runtime.
///
/// # Errors
///
/// A message when the options are wrong or something would not start.
pub fn run(args: &LoadOptions, out: &mut (dyn Write + Send)) -> Result<bool, String> {
    if args.calls == 0 || args.concurrency == 0 || args.notifications == 0 {
        return Err("--calls, --concurrency and --notifications must be at least 1".into());
    }
    let sim = SimGraphChild::spawn()?;
    let build = |threads: usize, name: &str| {
        crate::alloc::runtime_builder()
            .worker_threads(threads.max(1))
            .thread_name(name)
            .build()
    };
    let (server_rt, load_rt) = match (
        build(args.server_threads, "callflow-server"),
        build(args.load_threads, "callflow-load"),
    ) {
        (Ok(s), Ok(l)) => (s, l),
        (Err(e), _) | (_, Err(e)) => {
            return Err(format!("the async runtime would not start: {e}"));
        }
    };
    let outcome = match &args.postgres {
        Some(pg) => load_rt.block_on(cluster::go(args, pg, &sim, server_rt.handle().clone(), out)),
        None => load_rt.block_on(go(args, &sim, server_rt.handle().clone(), out)),
    };
    drop(sim);
    load_rt.shutdown_timeout(Duration::from_secs(2));
    server_rt.shutdown_timeout(Duration::from_secs(2));
    outcome
}

/// Quantile `q` of the observations a histogram got between two snapshots
/// of its cumulative counts: the upper bound of the bucket it falls in.
fn delta_quantile(bounds: &[f64], before: &[u64], after: &[u64], q: f64) -> Option<f64> {
    let delta: Vec<u64> = after
        .iter()
        .zip(before)
        .map(|(a, b)| a.saturating_sub(*b))
        .collect();
    let n = *delta.last()?;
    if n == 0 {
        return None;
    }
    let rank = (q * n as f64).ceil().max(1.0) as u64;
    let i = delta.iter().position(|c| *c >= rank)?;
    Some(bounds.get(i).copied().unwrap_or(f64::INFINITY))
}

/// Waits (a minute at most) until `calls` sessions are live and the
/// runtime has settled; how many are live.
async fn live_and_settled(
    runtime: &Runtime,
    server_rt: &tokio::runtime::Handle,
    calls: usize,
) -> Result<usize, String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while runtime.live_sessions() < calls && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    settle(server_rt, runtime).await?;
    Ok(runtime.live_sessions())
}

/// With eviction on, waits (`evict_after` and 30 s at most) until `count`
/// sessions are evicted, and a little more for the allocator to give their
/// pages back.
async fn evicted(runtime: &Runtime, evict_after: Option<Duration>, count: usize) {
    let Some(after) = evict_after else { return };
    let deadline = Instant::now() + after + Duration::from_secs(30);
    while runtime.evicted_sessions() < count && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
}

/// A loopback sink that keeps the first bearer token sim-graph sends it
/// (Graph reuses one token for many notifications) and answers `202`: its
/// callback URL, the token, and what stops it.
async fn start_sink(
    control: &SimGraphControl,
) -> Result<(String, tokio::sync::oneshot::Sender<()>), String> {
    let kept: Arc<Mutex<Option<String>>> = Arc::default();
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot listen on loopback: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let app = axum::Router::new().route(
        "/capture",
        axum::routing::post({
            let kept = kept.clone();
            move |headers: HeaderMap| {
                let kept = kept.clone();
                async move {
                    if let Some(v) = headers
                        .get(header::AUTHORIZATION)
                        .and_then(|v| v.to_str().ok())
                    {
                        kept.lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .get_or_insert_with(|| v.to_owned());
                    }
                    StatusCode::ACCEPTED
                }
            }
        }),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await;
    });
    let url = format!("http://{addr}/capture");
    place(control, &url, 9_999_999)
        .await
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let token = loop {
        if let Some(t) = kept.lock().unwrap_or_else(PoisonError::into_inner).clone() {
            break t;
        }
        if Instant::now() > deadline {
            break String::new();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    if token.is_empty() {
        let _ = stop.send(());
        Err("sim-graph sent no signed notification to the capture endpoint".into())
    } else {
        Ok((token, stop))
    }
}

/// The bodies the generator cycles through: for every call, a duplicated
/// `established`, a tone, an operation update and a media update. Each
/// round takes the calls in an order of its own (shuffled, with a fixed
/// seed), so that behind a round-robin balancer the notifications of one
/// call land on one instance or another at random, never on one always.
fn bodies(calls: &[String], callback: &str) -> Vec<axum::body::Bytes> {
    let notifier = Notifier {
        callback_uri: callback.to_owned(),
        legacy: false,
    };
    let mut out = Vec::with_capacity(calls.len() * 4);
    let mut rng = fastrand::Rng::with_seed(12);
    let mut order: Vec<usize> = (0..calls.len()).collect();
    for round in 0..4 {
        rng.shuffle(&mut order);
        for &k in &order {
            let id = &calls[k];
            let body = match round {
                0 => notifier.state(id, &CallState::Established, None, None, None),
                1 => notifier.tone(id, '5', k as i64),
                2 => notifier.operation(
                    id,
                    "playPromptOperation",
                    &format!("load-op-{k}"),
                    "running",
                    None,
                    None,
                ),
                _ => notifier.media(id, "active"),
            };
            out.push(axum::body::Bytes::from(body.to_string()));
        }
    }
    out
}

fn temporary_flows() -> Result<std::path::PathBuf, String> {
    let dir = std::env::temp_dir().join(format!("callflow-load-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    std::fs::write(dir.join("load.yaml"), FLOW)
        .map_err(|e| format!("cannot write the load flow: {e}"))?;
    Ok(dir)
}

/// The server side: runtime, server and its shutdown, on `server_rt`.
struct ServerSide {
    runtime: Runtime,
    stop: tokio::sync::oneshot::Sender<()>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
    callback: String,
}

/// `max_sessions` leaves room for the `calls` and every probe call (one
/// per 10 ms of the load, and slack).
async fn start_server(
    base: String,
    max_sessions: usize,
    store: crate::runtime::StoreHandle,
    evict_after: Option<Duration>,
) -> Result<ServerSide, String> {
    let flows = temporary_flows()?;
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot listen on loopback: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let wired = wire_to_sim_graph(
        &SimWiring {
            base,
            flows: flows.clone(),
            callback_path: DEFAULT_CALLBACK_PATH.into(),
            max_body: DEFAULT_MAX_BODY,
            admin_token: None,
            max_sessions,
            store,
            evict_after,
            recordings: None,
            fetch: None,
        },
        addr,
    )
    .await;
    let _ = std::fs::remove_dir_all(&flows);
    let wired = wired.map_err(|e| match e {
        ServeError::Flows { diagnostics, .. } => {
            format!("the load flow does not load: {diagnostics:?}")
        }
        other => other.to_string(),
    })?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(crate::server::serve(listener, wired.state, async move {
        let _ = stopped.await;
    }));
    Ok(ServerSide {
        runtime: wired.runtime,
        stop,
        served,
        callback: wired.callback,
    })
}

/// A bare axum handler that only answers `202`; its URL.
async fn start_bare() -> Result<(String, tokio::sync::oneshot::Sender<()>), String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot listen on loopback: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let app = axum::Router::new().route(
        "/api/calls",
        axum::routing::post(|| async { StatusCode::ACCEPTED }),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await;
    });
    Ok((format!("http://{addr}/api/calls"), stop))
}

/// Waits, on the server's threads, until the runtime has handled everything queued.
async fn settle(server_rt: &tokio::runtime::Handle, runtime: &Runtime) -> Result<(), String> {
    let runtime = runtime.clone();
    server_rt
        .spawn(async move { runtime.settle().await })
        .await
        .map_err(|e| e.to_string())
}

/// What the sustained phase saw.
struct Sustained {
    p50: Option<f64>,
    p99: Option<f64>,
    dispatched: u64,
    probes: usize,
    run: Blast,
}

async fn go(
    args: &LoadOptions,
    sim: &SimGraphChild,
    server_rt: tokio::runtime::Handle,
    out: &mut (dyn Write + Send),
) -> Result<bool, String> {
    crate::graph::client::install_tls_provider();
    let duration = args.duration;
    let base = sim.base().to_owned();
    let store = match &args.sqlite {
        Some(path) => open_sqlite(path).await?,
        None => crate::runtime::StoreHandle::memory(),
    };
    let kept_stats = store.writer_stats();
    let writer_stats = || kept_stats.as_deref().map(WriterStats::snapshot);
    let max_sessions = args
        .calls
        .saturating_add(usize::try_from(duration.as_millis() / 5).unwrap_or(usize::MAX))
        .saturating_add(WARM_UP)
        .saturating_add(1_000);
    let evict_after = args.evict_after.filter(|_| args.sqlite.is_some());
    let server = server_rt
        .spawn(start_server(base.clone(), max_sessions, store, evict_after))
        .await
        .map_err(|e| e.to_string())??;
    let runtime = server.runtime.clone();
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(args.concurrency.max(32))
        .build()
        .map_err(|e| format!("the HTTP client would not build: {e}"))?;
    let control = SimGraphControl::new(&base, http.clone());
    let (authorization, sink_stop) = start_sink(&control).await?;
    let _ = sink_stop.send(());

    say!(out, "callflow load");
    say!(
        out,
        "  sim-graph     {base} (child process {}, manual clock; signs the notification tokens)",
        sim.pid()
    );
    say!(
        out,
        "  callback      {} (tokens verified against sim-graph's keys)",
        server.callback
    );
    say!(
        out,
        "  threads       server side {}, load side {} (generator, placement); sim-graph its own \
         process; {} CPUs",
        args.server_threads,
        args.load_threads,
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    say!(
        out,
        "  store         {}",
        match &args.sqlite {
            Some(p) => format!(
                "sqlite:{} (each notification journaled and committed before its 202)",
                p.display()
            ),
            None => "memory (nothing stored)".to_owned(),
        }
    );
    if let Some(after) = evict_after {
        say!(
            out,
            "  eviction      idle sessions evicted after {} (memory read once they are)",
            humantime::format_duration(after)
        );
    }

    // Warm-up calls first (connection buffers, allocator pools: costs that do
    // not grow with the sessions), then the calls, each with a live session,
    // in two halves: this process's RSS is read after the warm-up, at half
    // and at the end (sim-graph's memory is its own process's).
    // With eviction, each reading waits until the sessions placed are
    // evicted (what an idle session costs then).
    place_many(&control, &server.callback, WARM_UP_FIRST, WARM_UP, 32).await?;
    live_and_settled(&runtime, &server_rt, WARM_UP).await?;
    evicted(&runtime, evict_after, WARM_UP).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let rss_before = rss_bytes();
    let placing = Instant::now();
    let half = args.calls / 2;
    let mut ids = place_many(&control, &server.callback, 0, half, 32).await?;
    let live_half = live_and_settled(&runtime, &server_rt, WARM_UP + half)
        .await?
        .saturating_sub(WARM_UP);
    evicted(&runtime, evict_after, WARM_UP + half).await;
    let rss_half = rss_bytes();
    ids.extend(place_many(&control, &server.callback, half, args.calls - half, 32).await?);
    let live = live_and_settled(&runtime, &server_rt, WARM_UP + args.calls)
        .await?
        .saturating_sub(WARM_UP);
    let placed_in = placing.elapsed();
    evicted(&runtime, evict_after, WARM_UP + args.calls).await;
    let rss_after = rss_bytes();
    let evicted_now = runtime.evicted_sessions();
    let sim_rss = rss_of(&sim.pid().to_string());
    say!(
        out,
        "  calls         {} placed through sim-graph in {:.2} s, {live} live sessions{}",
        ids.len(),
        placed_in.as_secs_f64(),
        if evict_after.is_some() {
            format!(" ({evicted_now} of them and the warm-up's evicted when memory was read)")
        } else {
            String::new()
        }
    );

    let bodies = Arc::new(bodies(&ids, &server.callback));
    let histogram = &runtime.metrics().dispatch_latency;
    let bounds = histogram.bounds();
    say!(
        out,
        "  load          {} notifications at most, {} at most, {} connections; then {} at {}/s",
        args.notifications,
        humantime::format_duration(duration),
        args.concurrency,
        humantime::format_duration(duration),
        args.rate
    );

    // Phase 1: as fast as the server answers (throughput).
    let store_before = writer_stats();
    let before = histogram.cumulative();
    let prober = Prober::start(&control, &server.callback, args.calls);
    let real = blast(
        &http,
        &server.callback,
        &authorization,
        &bodies,
        args.notifications,
        duration,
        args.concurrency,
        None,
    )
    .await;
    let probes = prober.stop().await;
    let store_full = writer_stats().zip(store_before);
    settle(&server_rt, &runtime).await?;
    let after = histogram.cumulative();
    let p50 = delta_quantile(bounds, &before, &after, 0.5);
    let p99 = delta_quantile(bounds, &before, &after, 0.99);
    let dispatched = after.last().copied().unwrap_or(0) - before.last().copied().unwrap_or(0);

    // Phase 2: a sustained rate (latency).
    let mut store_sustained = None;
    let sustained = if args.rate > 0 {
        let store_before = writer_stats();
        let before = histogram.cumulative();
        let prober = Prober::start(&control, &server.callback, args.calls + probes + 1);
        let run = blast(
            &http,
            &server.callback,
            &authorization,
            &bodies,
            args.notifications,
            duration,
            args.concurrency,
            Some(args.rate),
        )
        .await;
        let probes = prober.stop().await;
        store_sustained = writer_stats().zip(store_before);
        settle(&server_rt, &runtime).await?;
        let after = histogram.cumulative();
        Some(Sustained {
            p50: delta_quantile(bounds, &before, &after, 0.5),
            p99: delta_quantile(bounds, &before, &after, 0.99),
            dispatched: after.last().copied().unwrap_or(0) - before.last().copied().unwrap_or(0),
            probes,
            run,
        })
    } else {
        None
    };
    let overloaded = crate::runtime::Metrics::get(&runtime.metrics().overloaded);

    // The same generator against a bare 202 handler on the server threads.
    let (bare_url, bare_stop) = server_rt
        .spawn(start_bare())
        .await
        .map_err(|e| e.to_string())??;
    let bare = blast(
        &http,
        &bare_url,
        &authorization,
        &bodies,
        args.notifications,
        duration,
        args.concurrency,
        None,
    )
    .await;
    let _ = bare_stop.send(());

    let live_now = runtime.live_sessions();
    let _ = server.stop.send(());
    let _ = server.served.await;
    let restart = match &args.sqlite {
        Some(path) => {
            drop(server.runtime);
            let stopping = Instant::now();
            server_rt
                .spawn(runtime.shutdown())
                .await
                .map_err(|e| e.to_string())?;
            let stopped_in = stopping.elapsed();
            let restarting = Instant::now();
            let store = open_sqlite(path).await?;
            let again = server_rt
                .spawn(start_server(base.clone(), max_sessions, store, evict_after))
                .await
                .map_err(|e| e.to_string())??;
            let serving_in = restarting.elapsed();
            let recovered = again.runtime.live_sessions();
            let runtime = again.runtime.clone();
            settle(&server_rt, &runtime).await?;
            let settled_in = restarting.elapsed();
            let _ = again.stop.send(());
            let _ = again.served.await;
            drop(again.runtime);
            server_rt
                .spawn(runtime.shutdown())
                .await
                .map_err(|e| e.to_string())?;
            Some((live_now, stopped_in, recovered, serving_in, settled_in))
        }
        None => None,
    };

    let ratio = real.per_second() / bare.per_second().max(1e-9);
    let ms = |s: Option<f64>| match s {
        Some(s) if s.is_finite() => format!("<= {:.1} ms", s * 1000.0),
        Some(_) => "> 10 s".to_owned(),
        None => "n/a".to_owned(),
    };
    let d = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1000.0);
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    say!(out);
    say!(
        out,
        "| {:<40} | {:>16} | {:>16} |",
        "",
        "callflow server",
        "bare axum 202"
    );
    say!(out, "|{:-<42}|{:-<18}|{:-<18}|", "", "", "");
    say!(
        out,
        "| {:<40} | {:>16} | {:>16} |",
        "requests sent",
        real.sent,
        bare.sent
    );
    say!(
        out,
        "| {:<40} | {:>16} | {:>16} |",
        "202 answers",
        real.accepted(),
        bare.accepted()
    );
    say!(
        out,
        "| {:<40} | {:>16} | {:>16} |",
        "elapsed",
        format!("{:.2} s", real.elapsed.as_secs_f64()),
        format!("{:.2} s", bare.elapsed.as_secs_f64())
    );
    say!(
        out,
        "| {:<40} | {:>16.0} | {:>16.0} |",
        "notifications/s (202s per second)",
        real.per_second(),
        bare.per_second()
    );
    say!(
        out,
        "| {:<40} | {:>16} | {:>16} |",
        "errors by status",
        real.errors(),
        bare.errors()
    );
    say!(
        out,
        "| {:<40} | {:>16} | {:>16} |",
        "round trip p50 (generator)",
        d(real.round_trip(0.5)),
        d(bare.round_trip(0.5))
    );
    say!(
        out,
        "| {:<40} | {:>16} | {:>16} |",
        "round trip p99 (generator)",
        d(real.round_trip(0.99)),
        d(bare.round_trip(0.99))
    );
    say!(
        out,
        "| {:<40} | {:>16} | {:>16} |",
        "received -> Graph request sent p50",
        ms(p50),
        "-"
    );
    say!(
        out,
        "| {:<40} | {:>16} | {:>16} |",
        "received -> Graph request sent p99",
        ms(p99),
        "-"
    );
    say!(out);
    say!(
        out,
        "dispatch latency at full speed: {dispatched} Graph requests ({probes} probe calls placed \
         every 10 ms); runtime histogram, bucket upper bounds"
    );
    if let Some(st) = &sustained {
        say!(out);
        say!(
            out,
            "sustained phase: {} notifications offered at {}/s for {}: {} answered 202 ({:.0}/s), \
             errors {}, round trip p50 {} / p99 {}",
            st.run.sent,
            args.rate,
            humantime::format_duration(duration),
            st.run.accepted(),
            st.run.per_second(),
            st.run.errors(),
            d(st.run.round_trip(0.5)),
            d(st.run.round_trip(0.99)),
        );
        say!(
            out,
            "  received -> Graph request sent: p50 {}, p99 {} ({} Graph requests, {} probe calls)",
            ms(st.p50),
            ms(st.p99),
            st.dispatched,
            st.probes
        );
    }
    say!(
        out,
        "events refused by the runtime (overloaded): {overloaded}"
    );
    if let Some(stats) = kept_stats.as_deref() {
        for (phase, taken, elapsed) in [
            ("full speed", &store_full, real.elapsed),
            (
                "sustained",
                &store_sustained,
                sustained.as_ref().map_or(Duration::ZERO, |s| s.run.elapsed),
            ),
        ] {
            if let Some((after, before)) = taken {
                store_report(out, phase, stats, before, after, elapsed);
            }
        }
    }
    if let Some((live_now, stopped_in, recovered, serving_in, settled_in)) = restart {
        say!(
            out,
            "restart on the store: {live_now} live sessions; stopped in {:.2} s; started again, \
             {recovered} sessions recovered and serving after {:.2} s ({}); every session \
             reconciled with Graph (GET call) after {:.2} s",
            stopped_in.as_secs_f64(),
            serving_in.as_secs_f64(),
            verdict(serving_in < Duration::from_secs(2)),
            settled_in.as_secs_f64()
        );
    }
    let ids_bytes = ids.capacity() * std::mem::size_of::<String>()
        + ids.iter().map(|id| id.capacity() + 16).sum::<usize>();
    let per_session = match (rss_before, rss_half, rss_after) {
        (Some(b), Some(h), Some(a)) if live > 0 => {
            let grown = a.saturating_sub(b);
            let per = grown as f64 / live as f64;
            let kib = |bytes: f64| bytes / 1024.0;
            let mib = |bytes: u64| bytes as f64 / 1024.0 / 1024.0;
            say!(
                out,
                "memory per live session: {:.2} KiB = growth of this process's RSS from after \
                 {WARM_UP} warm-up calls to {live} more live sessions ({:.1} MiB) / {live}",
                kib(per),
                mib(grown),
            );
            if live > live_half {
                let second = a.saturating_sub(h) as f64 / (live - live_half) as f64;
                say!(
                    out,
                    "  second half alone: {:.2} KiB per session (growth from {live_half} to {live} \
                     live sessions)",
                    kib(second)
                );
            }
            say!(
                out,
                "  counted: the server, runtime and Graph client, and the generator's list of call \
                 ids (about {:.2} KiB per call)",
                kib(ids_bytes as f64 / live as f64)
            );
            say!(
                out,
                "  not counted: sim-graph, in its own process (pid {}, RSS {})",
                sim.pid(),
                sim_rss.map_or("n/a".to_owned(), |r| format!("{:.1} MiB", mib(r)))
            );
            say!(
                out,
                "  RSS (VmRSS, in KiB whatever the page size) counts whole pages and the \
                 allocator's headers and free space, not only the bytes asked for \
                 (examples/runtime_load counts those)"
            );
            Some(per)
        }
        _ => {
            say!(out, "memory per live session: n/a (no /proc/self/status)");
            None
        }
    };
    say!(out);
    say!(out, "targets:");
    say!(
        out,
        "  >= 20,000 notifications/s        {:>10.0}/s   {}",
        real.per_second(),
        verdict(real.per_second() >= 20_000.0)
    );
    match &sustained {
        Some(st) => say!(
            out,
            "  p99 received -> sent < 5 ms      {:>12}   {} (at {}/s sustained; met when the \
             p99's bucket ends at <= 2.5 ms and 95% of the rate was kept)",
            ms(st.p99),
            verdict(
                st.p99.is_some_and(|p| p <= 0.0025)
                    && st.run.per_second() >= 0.95 * args.rate as f64
            ),
            args.rate
        ),
        None => say!(
            out,
            "  p99 received -> sent < 5 ms      (no sustained phase: --rate 0)"
        ),
    }
    say!(
        out,
        "  ratio to bare axum >= 0.5        {:>12.2}   {}",
        ratio,
        verdict(ratio >= 0.5)
    );
    if let Some(per) = per_session {
        say!(
            out,
            "  memory per live session <= 4 KiB {:>9.2} KiB   {}",
            per / 1024.0,
            verdict(per <= 4.0 * 1024.0)
        );
    }
    let sustained_errors = sustained
        .as_ref()
        .is_some_and(|st| st.run.server_errors() > 0 || st.run.transport_errors > 0);
    if real.server_errors() > 0 || real.transport_errors > 0 || sustained_errors {
        return Ok(false);
    }
    Ok(true)
}

/// One phase of the store's writer: its groups, where their time went.
fn store_report(
    out: &mut (dyn Write + Send),
    phase: &str,
    stats: &WriterStats,
    before: &Snapshot,
    after: &Snapshot,
    elapsed: Duration,
) {
    let groups = after.groups.saturating_sub(before.groups);
    if groups == 0 {
        return;
    }
    let names = stats.histograms();
    let figure = |name: &str| {
        let i = names.iter().position(|(n, _)| *n == name)?;
        let bounds = names[i].1.bounds();
        let ((a, a_sum), (b, b_sum)) = (&after.histograms[i], &before.histograms[i]);
        let n = a.last().copied().unwrap_or(0) - b.last().copied().unwrap_or(0);
        let mean = if n == 0 {
            0.0
        } else {
            (a_sum - b_sum) / n as f64
        };
        Some((
            n,
            mean,
            delta_quantile(bounds, b, a, 0.5).unwrap_or(0.0),
            delta_quantile(bounds, b, a, 0.99).unwrap_or(0.0),
            delta_quantile(bounds, b, a, 1.0).unwrap_or(0.0),
        ))
    };
    let ms = |name: &str| {
        figure(name).map_or("n/a".to_owned(), |(n, mean, p50, p99, max)| {
            format!(
                "{n} x mean {:.2} ms (p50 <= {}, p99 <= {}, max <= {} ms)",
                mean * 1e3,
                p50 * 1e3,
                p99 * 1e3,
                max * 1e3
            )
        })
    };
    let count = |name: &str| {
        figure(name).map_or("n/a".to_owned(), |(_, mean, p50, p99, max)| {
            format!("mean {mean:.1} (p50 <= {p50}, p99 <= {p99}, max <= {max})")
        })
    };
    let secs = elapsed.as_secs_f64().max(1e-9);
    say!(
        out,
        "store writer, {phase}: {groups} groups ({:.0}/s), {} journal and {} other batches, {:.1} MB \
         of text ({:.1} MB/s), {} checkpoints by the writer (RESTART)",
        groups as f64 / secs,
        after.journal_batches - before.journal_batches,
        after.state_batches - before.state_batches,
        (after.bytes - before.bytes) as f64 / 1e6,
        (after.bytes - before.bytes) as f64 / 1e6 / secs,
        after.checkpoint_restarts - before.checkpoint_restarts
    );
    say!(
        out,
        "  journal batches per group  {}",
        count("group_journal")
    );
    say!(out, "  other batches per group    {}", count("group_state"));
    say!(out, "  journal wait in queue      {}", ms("journal_wait"));
    say!(out, "  other wait in queue        {}", ms("state_wait"));
    say!(
        out,
        "  journal until durable      {}",
        ms("journal_durable")
    );
    say!(out, "  statements per group       {}", ms("sql"));
    say!(out, "  commit + sync per group    {}", ms("commit"));
    say!(out, "  checkpoints (beside)       {}", ms("checkpoint"));
    say!(out, "  WAL pages at a checkpoint  {}", count("wal_pages"));
    say!(out, "  restarts (writer waits)    {}", ms("restart"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_of_a_delta() {
        let bounds = &[0.001, 0.005];
        assert_eq!(delta_quantile(bounds, &[1, 1, 1], &[1, 1, 1], 0.5), None);
        assert_eq!(
            delta_quantile(bounds, &[1, 1, 1], &[10, 11, 12], 0.5),
            Some(0.001)
        );
        assert_eq!(
            delta_quantile(bounds, &[0, 0, 0], &[0, 98, 100], 0.99),
            Some(f64::INFINITY)
        );
    }
}
