//! `callflow load`: how many notifications per second the real server and
//! runtime take, on loopback, against `sim-graph`, their latency at a
//! sustained rate, and their memory per live session.
//!
//! Two processes: `sim-graph` (manual clock) plays Graph in a child process
//! (this binary's `sim-graph` command), so that its own memory per call is
//! not counted in this process's; here, the real server, runtime and Graph
//! client are wired to it as `serve --simulate` does (notification tokens
//! verified against sim-graph's published keys). After a thousand warm-up
//! calls, the `--calls` calls are placed through sim-graph in two halves, so
//! each has a live session, and this process's resident memory is read
//! before, between and after. The generator then POSTs signed
//! `commsNotifications` (duplicated `established`, tones, operation updates)
//! to the callback over keep-alive connections: first as fast as they are
//! answered (throughput), then at `--rate` per second (latency), each until
//! `--notifications` or `--duration`, while a prober places a new call every
//! 10 ms (its `incoming` is what the dispatch latency measures). The same
//! generator is then run at full speed against a bare axum handler that
//! only answers `202` on another loopback port, on the same number of server
//! threads. Loopback only; it stops by itself. This file only wires,
//! measures and prints.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode, header};
use clap::Args;
use serde_json::json;
use tokio::net::TcpListener;

use crate::graph::client::{ClientSecret, Cloud, GraphClient, GraphConfig};
use crate::graph::wire::CallState;
use crate::runtime::{Runtime, RuntimeConfig};
use crate::server::{AuthConfig, KeySource, NotificationAuth, ServerConfig, ServerState, Verifier};
use crate::sim::graph::BOT_APP_ID;
use crate::sim::notify::Notifier;

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

/// The number the load calls dial.
const DIALLED: &str = "+14255550100";

/// Arguments of `callflow load`.
#[derive(Debug, Args)]
#[command(
    after_help = "Loopback only; each phase stops at --notifications or --duration, whichever \
                  comes first. Example: callflow load --notifications 200000 --calls 10000 \
                  --concurrency 64 --duration 10s --rate 20000"
)]
pub struct LoadArgs {
    /// At most this many notifications per target (the server, then the bare handler).
    #[arg(long, value_name = "N", default_value_t = 200_000)]
    pub notifications: u64,
    /// Concurrent calls (live sessions) the notifications are about.
    #[arg(long, value_name = "N", default_value_t = 1_000)]
    pub calls: usize,
    /// Concurrent keep-alive connections of the generator.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub concurrency: usize,
    /// At most this long per target, e.g. 10s, 500ms, 1m.
    #[arg(long, value_name = "TIME", default_value = "10s")]
    pub duration: humantime::Duration,
    /// Notifications per second offered in the sustained phase, where the
    /// latency target is measured (0 skips that phase).
    #[arg(long, value_name = "N", default_value_t = 20_000)]
    pub rate: u64,
    /// Worker threads of the server side (server, runtime, Graph client; and the bare handler).
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub server_threads: usize,
    /// Worker threads of the load side (generator, prober, call placement); sim-graph runs
    /// in its own process.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub load_threads: usize,
}

/// Runs `callflow load`.
pub fn run(args: &LoadArgs) -> ExitCode {
    if args.calls == 0 || args.concurrency == 0 || args.notifications == 0 {
        eprintln!("error: --calls, --concurrency and --notifications must be at least 1");
        return ExitCode::from(2);
    }
    let sim = match SimGraphChild::spawn() {
        Ok(sim) => sim,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let build = |threads: usize, name: &str| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name(name)
            .enable_all()
            .build()
    };
    let (server_rt, load_rt) = match (
        build(args.server_threads, "callflow-server"),
        build(args.load_threads, "callflow-load"),
    ) {
        (Ok(s), Ok(l)) => (s, l),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: the async runtime would not start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = load_rt.block_on(go(args, &sim, server_rt.handle().clone()));
    drop(sim);
    load_rt.shutdown_timeout(Duration::from_secs(2));
    server_rt.shutdown_timeout(Duration::from_secs(2));
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// sim-graph in a child process: this binary's `sim-graph` command, manual
/// clock, on a loopback port it picks and prints. Killed when dropped; it
/// also stops by itself when its standard input closes (this process died).
struct SimGraphChild {
    child: Child,
    base: String,
}

impl SimGraphChild {
    fn spawn() -> Result<Self, String> {
        let exe = std::env::current_exe()
            .map_err(|e| format!("cannot find this executable to run sim-graph: {e}"))?;
        let mut child = Command::new(&exe)
            .args([
                "sim-graph",
                "--listen",
                "127.0.0.1:0",
                "--manual-clock",
                "--until-stdin-closes",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start sim-graph ({}): {e}", exe.display()))?;
        let stdout = child.stdout.take();
        let mut sim = SimGraphChild {
            child,
            base: String::new(),
        };
        let mut lines = BufReader::new(stdout.ok_or("sim-graph has no standard output")?);
        let mut first = String::new();
        let _ = lines.read_line(&mut first);
        let Some(addr) = first.trim().strip_prefix("sim-graph listening on ") else {
            return Err(format!("sim-graph did not start (it printed {first:?})"));
        };
        sim.base = format!("http://{addr}");
        // Drain the rest of its banner, so that it never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut rest = Vec::new();
            let _ = lines.read_to_end(&mut rest);
        });
        Ok(sim)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for SimGraphChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one run of the generator saw.
#[derive(Debug, Default)]
struct Blast {
    sent: u64,
    by_status: BTreeMap<u16, u64>,
    transport_errors: u64,
    elapsed: Duration,
    /// Round trips, in microseconds, sorted.
    round_trips: Vec<u32>,
}

impl Blast {
    fn accepted(&self) -> u64 {
        self.by_status.get(&202).copied().unwrap_or(0)
    }

    fn per_second(&self) -> f64 {
        self.accepted() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn round_trip(&self, q: f64) -> Duration {
        if self.round_trips.is_empty() {
            return Duration::ZERO;
        }
        let i = ((q * self.round_trips.len() as f64).ceil() as usize)
            .clamp(1, self.round_trips.len())
            - 1;
        Duration::from_micros(u64::from(self.round_trips[i]))
    }

    fn errors(&self) -> String {
        let mut parts: Vec<String> = self
            .by_status
            .iter()
            .filter(|(s, _)| **s != 202)
            .map(|(s, n)| format!("{s}: {n}"))
            .collect();
        if self.transport_errors > 0 {
            parts.push(format!("transport: {}", self.transport_errors));
        }
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(", ")
        }
    }

    fn server_errors(&self) -> u64 {
        self.by_status
            .iter()
            .filter(|(s, _)| **s >= 500)
            .map(|(_, n)| *n)
            .sum()
    }
}

/// POSTs `bodies` (cycled) to `url` over `concurrency` keep-alive
/// connections until `limit` requests or `duration` have passed: as fast as
/// they are answered, or, with `rate`, request `i` no earlier than `i / rate`
/// seconds after the start (a constant offered load, not slowed down by slow
/// answers).
#[allow(clippy::too_many_arguments)]
async fn blast(
    http: &reqwest::Client,
    url: &str,
    authorization: &str,
    bodies: &Arc<Vec<axum::body::Bytes>>,
    limit: u64,
    duration: Duration,
    concurrency: usize,
    rate: Option<u64>,
) -> Blast {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let (http, url, authorization) = (http.clone(), url.to_owned(), authorization.to_owned());
        let (bodies, next) = (bodies.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut mine = Blast::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= limit || Instant::now() >= deadline {
                    break;
                }
                if let Some(rate) = rate.filter(|r| *r > 0) {
                    let due = started + Duration::from_secs_f64(i as f64 / rate as f64);
                    if due >= deadline {
                        break;
                    }
                    tokio::time::sleep_until(due.into()).await;
                }
                let body = bodies[(i % bodies.len() as u64) as usize].clone();
                let sent = Instant::now();
                let response = http
                    .post(&url)
                    .header(header::AUTHORIZATION, &authorization)
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(body)
                    .send()
                    .await;
                mine.sent += 1;
                match response {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        // Read the (empty or short) body so the connection is reused.
                        let _ = r.bytes().await;
                        *mine.by_status.entry(status).or_default() += 1;
                        let micros = sent.elapsed().as_micros();
                        mine.round_trips
                            .push(u32::try_from(micros).unwrap_or(u32::MAX));
                    }
                    Err(_) => mine.transport_errors += 1,
                }
            }
            mine
        }));
    }
    let mut all = Blast::default();
    for task in tasks {
        if let Ok(mine) = task.await {
            all.sent += mine.sent;
            all.transport_errors += mine.transport_errors;
            for (s, n) in mine.by_status {
                *all.by_status.entry(s).or_default() += n;
            }
            all.round_trips.extend(mine.round_trips);
        }
    }
    all.elapsed = started.elapsed();
    all.round_trips.sort_unstable();
    all
}

/// Resident memory of this process, in bytes (Linux; `None` elsewhere).
fn rss_bytes() -> Option<u64> {
    rss_of("self")
}

/// Resident memory of process `pid` (`self` or a number), in bytes.
fn rss_of(pid: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = text.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
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

fn place_body(callback: &str, n: usize) -> serde_json::Value {
    json!({
        "from": { "phone": format!("+3316{n:07}") },
        "to": { "phone": DIALLED },
        "callbackUri": callback,
    })
}

/// Places one incoming call through sim-graph; its id.
async fn place(
    http: &reqwest::Client,
    base: &str,
    callback: &str,
    n: usize,
) -> Result<String, String> {
    let response = http
        .post(format!("{base}/sim/calls"))
        .json(&place_body(callback, n))
        .send()
        .await
        .map_err(|e| format!("sim-graph: placing a call: {e}"))?;
    let call: serde_json::Value = response
        .json()
        .await
        .map_err(|e| format!("sim-graph: placing a call: {e}"))?;
    call.get("id")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| "sim-graph gave no call id".into())
}

/// Places `count` calls (numbered from `first`), `parallel` at a time; their ids.
async fn place_many(
    http: &reqwest::Client,
    base: &str,
    callback: &str,
    first: usize,
    count: usize,
    parallel: usize,
) -> Result<Vec<String>, String> {
    if count == 0 {
        return Ok(Vec::new());
    }
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..parallel.clamp(1, count) {
        let (http, base, callback, next) = (
            http.clone(),
            base.to_owned(),
            callback.to_owned(),
            next.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed) as usize;
                if n >= count {
                    return Ok::<_, String>(ids);
                }
                ids.push(place(&http, &base, &callback, first + n).await?);
            }
        }));
    }
    let mut ids = Vec::with_capacity(count);
    for task in tasks {
        ids.extend(task.await.map_err(|e| e.to_string())??);
    }
    Ok(ids)
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

/// A loopback sink that keeps the first bearer token sim-graph sends it
/// (Graph reuses one token for many notifications) and answers `202`: its
/// callback URL, the token, and what stops it.
async fn start_sink(
    http: &reqwest::Client,
    base: &str,
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
    place(http, base, &url, 9_999_999).await?;
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
/// `established`, a tone, an operation update and a media update.
fn bodies(calls: &[String], callback: &str) -> Vec<axum::body::Bytes> {
    let notifier = Notifier {
        callback_uri: callback.to_owned(),
        legacy: false,
    };
    let mut out = Vec::with_capacity(calls.len() * 4);
    for round in 0..4 {
        for (k, id) in calls.iter().enumerate() {
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
async fn start_server(base: String, max_sessions: usize) -> Result<ServerSide, String> {
    let flows = temporary_flows()?;
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot listen on loopback: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let callback = format!("http://{addr}/api/calls");
    let graph = GraphConfig::new(
        Cloud::Global,
        "sim-tenant",
        BOT_APP_ID,
        ClientSecret::new("sim-secret"),
    )
    .with_base_urls(&base, &base)
    .map_err(|e| e.to_string())?;
    let client = GraphClient::new(graph).map_err(|e| e.to_string())?;
    let mut auth = AuthConfig::new(
        KeySource::OpenIdConfiguration(format!("{base}/.well-known/OpenIdConfiguration")),
        BOT_APP_ID,
    );
    auth.tenant = Some("sim-tenant".into());
    let verifier = Verifier::start(auth).await?;
    let config = RuntimeConfig {
        flows_dir: flows.clone(),
        callback_uri: callback.clone(),
        reload_debounce: Duration::from_millis(300),
        idle_reap_after: Duration::from_secs(2 * 3600),
        max_sessions,
        queue_per_call: 256,
        ..RuntimeConfig::default()
    };
    let runtime = Runtime::start(config, Arc::new(client)).await;
    let _ = std::fs::remove_dir_all(&flows);
    let runtime = runtime.map_err(|d| format!("the load flow does not load: {d:?}"))?;
    let state = ServerState::new(
        ServerConfig::new(NotificationAuth::Verify(Arc::new(verifier))),
        runtime.clone(),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(crate::server::serve(listener, state, async move {
        let _ = stopped.await;
    }));
    Ok(ServerSide {
        runtime,
        stop,
        served,
        callback,
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

/// A new call every 10 ms through sim-graph, while a phase runs: its
/// `incoming` (answered at once) is what the dispatch latency measures.
struct Prober {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<usize>,
}

impl Prober {
    fn start(http: &reqwest::Client, base: &str, callback: &str, first: usize) -> Self {
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let (http, base, callback) = (http.clone(), base.to_owned(), callback.to_owned());
        let task = tokio::spawn(async move {
            let mut placed = 0usize;
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            loop {
                tokio::select! {
                    _ = &mut stopped => return placed,
                    _ = tick.tick() => {
                        if place(&http, &base, &callback, first + placed).await.is_ok() {
                            placed += 1;
                        }
                    }
                }
            }
        });
        Prober { stop, task }
    }

    /// Stops it; how many calls it placed.
    async fn stop(self) -> usize {
        let _ = self.stop.send(());
        self.task.await.unwrap_or(0)
    }
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
    args: &LoadArgs,
    sim: &SimGraphChild,
    server_rt: tokio::runtime::Handle,
) -> Result<ExitCode, String> {
    crate::graph::client::install_tls_provider();
    let duration: Duration = args.duration.into();
    let base = sim.base.clone();
    let server = server_rt
        .spawn(start_server(
            base.clone(),
            args.calls
                .saturating_add(usize::try_from(duration.as_millis() / 5).unwrap_or(usize::MAX))
                .saturating_add(WARM_UP)
                .saturating_add(1_000),
        ))
        .await
        .map_err(|e| e.to_string())??;
    let runtime = server.runtime.clone();
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(args.concurrency.max(32))
        .build()
        .map_err(|e| format!("the HTTP client would not build: {e}"))?;
    let (authorization, sink_stop) = start_sink(&http, &base).await?;
    let _ = sink_stop.send(());

    println!("callflow load");
    println!(
        "  sim-graph     {base} (child process {}, manual clock; signs the notification tokens)",
        sim.pid()
    );
    println!(
        "  callback      {} (tokens verified against sim-graph's keys)",
        server.callback
    );
    println!(
        "  threads       server side {}, load side {} (generator, placement); sim-graph its own \
         process; {} CPUs",
        args.server_threads,
        args.load_threads,
        std::thread::available_parallelism().map_or(0, usize::from)
    );

    // Warm-up calls first (connection buffers, allocator pools: costs that do
    // not grow with the sessions), then the calls, each with a live session,
    // in two halves: this process's RSS is read after the warm-up, at half
    // and at the end (sim-graph's memory is its own process's).
    place_many(&http, &base, &server.callback, WARM_UP_FIRST, WARM_UP, 32).await?;
    live_and_settled(&runtime, &server_rt, WARM_UP).await?;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let rss_before = rss_bytes();
    let placing = Instant::now();
    let half = args.calls / 2;
    let mut ids = place_many(&http, &base, &server.callback, 0, half, 32).await?;
    let live_half = live_and_settled(&runtime, &server_rt, WARM_UP + half)
        .await?
        .saturating_sub(WARM_UP);
    let rss_half = rss_bytes();
    ids.extend(place_many(&http, &base, &server.callback, half, args.calls - half, 32).await?);
    let live = live_and_settled(&runtime, &server_rt, WARM_UP + args.calls)
        .await?
        .saturating_sub(WARM_UP);
    let placed_in = placing.elapsed();
    let rss_after = rss_bytes();
    let sim_rss = rss_of(&sim.pid().to_string());
    println!(
        "  calls         {} placed through sim-graph in {:.2} s, {live} live sessions",
        ids.len(),
        placed_in.as_secs_f64()
    );

    let bodies = Arc::new(bodies(&ids, &server.callback));
    let histogram = &runtime.metrics().dispatch_latency;
    let bounds = histogram.bounds();
    println!(
        "  load          {} notifications at most, {} at most, {} connections; then {} at {}/s",
        args.notifications,
        humantime::format_duration(duration),
        args.concurrency,
        humantime::format_duration(duration),
        args.rate
    );

    // Phase 1: as fast as the server answers (throughput).
    let before = histogram.cumulative();
    let prober = Prober::start(&http, &base, &server.callback, args.calls);
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
    settle(&server_rt, &runtime).await?;
    let after = histogram.cumulative();
    let p50 = delta_quantile(bounds, &before, &after, 0.5);
    let p99 = delta_quantile(bounds, &before, &after, 0.99);
    let dispatched = after.last().copied().unwrap_or(0) - before.last().copied().unwrap_or(0);

    // Phase 2: a sustained rate (latency).
    let sustained = if args.rate > 0 {
        let before = histogram.cumulative();
        let prober = Prober::start(&http, &base, &server.callback, args.calls + probes + 1);
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

    let _ = server.stop.send(());
    let _ = server.served.await;

    let ratio = real.per_second() / bare.per_second().max(1e-9);
    let ms = |s: Option<f64>| match s {
        Some(s) if s.is_finite() => format!("<= {:.1} ms", s * 1000.0),
        Some(_) => "> 10 s".to_owned(),
        None => "n/a".to_owned(),
    };
    let d = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1000.0);
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    println!();
    println!(
        "| {:<40} | {:>16} | {:>16} |",
        "", "callflow server", "bare axum 202"
    );
    println!("|{:-<42}|{:-<18}|{:-<18}|", "", "", "");
    println!(
        "| {:<40} | {:>16} | {:>16} |",
        "requests sent", real.sent, bare.sent
    );
    println!(
        "| {:<40} | {:>16} | {:>16} |",
        "202 answers",
        real.accepted(),
        bare.accepted()
    );
    println!(
        "| {:<40} | {:>16} | {:>16} |",
        "elapsed",
        format!("{:.2} s", real.elapsed.as_secs_f64()),
        format!("{:.2} s", bare.elapsed.as_secs_f64())
    );
    println!(
        "| {:<40} | {:>16.0} | {:>16.0} |",
        "notifications/s (202s per second)",
        real.per_second(),
        bare.per_second()
    );
    println!(
        "| {:<40} | {:>16} | {:>16} |",
        "errors by status",
        real.errors(),
        bare.errors()
    );
    println!(
        "| {:<40} | {:>16} | {:>16} |",
        "round trip p50 (generator)",
        d(real.round_trip(0.5)),
        d(bare.round_trip(0.5))
    );
    println!(
        "| {:<40} | {:>16} | {:>16} |",
        "round trip p99 (generator)",
        d(real.round_trip(0.99)),
        d(bare.round_trip(0.99))
    );
    println!(
        "| {:<40} | {:>16} | {:>16} |",
        "received -> Graph request sent p50",
        ms(p50),
        "-"
    );
    println!(
        "| {:<40} | {:>16} | {:>16} |",
        "received -> Graph request sent p99",
        ms(p99),
        "-"
    );
    println!();
    println!(
        "dispatch latency at full speed: {dispatched} Graph requests ({probes} probe calls placed \
         every 10 ms); runtime histogram, bucket upper bounds"
    );
    if let Some(st) = &sustained {
        println!();
        println!(
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
        println!(
            "  received -> Graph request sent: p50 {}, p99 {} ({} Graph requests, {} probe calls)",
            ms(st.p50),
            ms(st.p99),
            st.dispatched,
            st.probes
        );
    }
    println!("events refused by the runtime (overloaded): {overloaded}");
    let ids_bytes = ids.capacity() * std::mem::size_of::<String>()
        + ids.iter().map(|id| id.capacity() + 16).sum::<usize>();
    let per_session = match (rss_before, rss_half, rss_after) {
        (Some(b), Some(h), Some(a)) if live > 0 => {
            let grown = a.saturating_sub(b);
            let per = grown as f64 / live as f64;
            let kib = |bytes: f64| bytes / 1024.0;
            let mib = |bytes: u64| bytes as f64 / 1024.0 / 1024.0;
            println!(
                "memory per live session: {:.2} KiB = growth of this process's RSS from after \
                 {WARM_UP} warm-up calls to {live} more live sessions ({:.1} MiB) / {live}",
                kib(per),
                mib(grown),
            );
            if live > live_half {
                let second = a.saturating_sub(h) as f64 / (live - live_half) as f64;
                println!(
                    "  second half alone: {:.2} KiB per session (growth from {live_half} to {live} \
                     live sessions)",
                    kib(second)
                );
            }
            println!(
                "  counted: the server, runtime and Graph client, and the generator's list of call \
                 ids (about {:.2} KiB per call)",
                kib(ids_bytes as f64 / live as f64)
            );
            println!(
                "  not counted: sim-graph, in its own process (pid {}, RSS {})",
                sim.pid(),
                sim_rss.map_or("n/a".to_owned(), |r| format!("{:.1} MiB", mib(r)))
            );
            println!(
                "  RSS counts whole pages and the allocator's headers and free space, not only the \
                 bytes asked for (examples/runtime_load counts those)"
            );
            Some(per)
        }
        _ => {
            println!("memory per live session: n/a (no /proc/self/statm)");
            None
        }
    };
    println!();
    println!("targets (issue 5):");
    println!(
        "  >= 20,000 notifications/s        {:>10.0}/s   {}",
        real.per_second(),
        verdict(real.per_second() >= 20_000.0)
    );
    match &sustained {
        Some(st) => println!(
            "  p99 received -> sent < 5 ms      {:>12}   {} (at {}/s sustained)",
            ms(st.p99),
            verdict(
                st.p99.is_some_and(|p| p <= 0.0025)
                    && st.run.per_second() >= 0.95 * args.rate as f64
            ),
            args.rate
        ),
        None => println!("  p99 received -> sent < 5 ms      (no sustained phase: --rate 0)"),
    }
    println!(
        "  ratio to bare axum >= 0.5        {:>12.2}   {}",
        ratio,
        verdict(ratio >= 0.5)
    );
    if let Some(per) = per_session {
        println!(
            "  memory per live session <= 8 KiB {:>9.2} KiB   {}",
            per / 1024.0,
            verdict(per <= 8.0 * 1024.0)
        );
    }
    let sustained_errors = sustained
        .as_ref()
        .is_some_and(|st| st.run.server_errors() > 0 || st.run.transport_errors > 0);
    if real.server_errors() > 0 || real.transport_errors > 0 || sustained_errors {
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
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
