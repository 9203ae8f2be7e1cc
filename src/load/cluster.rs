//! `callflow load --store postgres://…`: several real `callflow serve`
//! processes (this binary's, as in production) on one PostgreSQL, behind
//! the round-robin [`Balancer`], against sim-graph in its own process.
//!
//! Each run makes a schema of its own in the database the URL names
//! (`callflow_load_<pid>_<random>`) and drops it at the end, so that runs
//! never see each other's rows. The generator posts through the balancer,
//! so that consecutive notifications of one call land on different
//! instances: the instance that holds the call applies them, the others
//! journal them for it (`NOTIFY`). Latency is read from every instance's
//! `/metrics` histogram (summed); the counts are checked to add up (what
//! the generator and sim-graph posted against what the instances
//! answered). With `--failover N`, N calls wait in a menu across the
//! instances, one instance is killed (`SIGKILL`), and for each of its
//! calls the time until another instance took its lease, sent its first
//! Graph request and played its prompt again is measured.
//!
//! Loopback only; every process it starts is killed when it ends.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::sim::http::client::SimGraphControl;

use super::balancer::Balancer;
use super::child::SimGraphChild;
use super::generator::{Prober, blast, place_many, place_many_to};
use super::{FLOW, LoadOptions, bodies, delta_quantile, start_bare, start_sink};

/// What `--store postgres://…` adds to the options.
#[derive(Clone, Debug)]
pub struct PostgresLoad {
    /// The database (a schema of the run's own is made in it, then dropped).
    pub url: String,
    /// `callflow serve` processes on it.
    pub instances: usize,
    /// Their lease (`serve --lease`).
    pub lease: Duration,
    /// `Some(n)`: measure a failover with `n` calls instead of the load.
    pub failover: Option<usize>,
}

/// The number the failover calls dial (a menu that waits an hour).
const MENU_DIALLED: &str = "+14255550101";

/// The failover's flow: answer, then a menu that waits an hour for a key.
const MENU_FLOW: &str = "flow: load-menu
timezone: Europe/Paris
trigger:
  incoming_call:
    to: [\"+14255550101\"]
start: greet
steps:
  greet:
    answer: {}
    next: menu
  menu:
    menu:
      prompt: https://cdn.contoso.com/menu.wav
      choices: { \"1\": bye }
      timeout: 1h
      retries: 0
    on_timeout: bye
    on_invalid: bye
  bye:
    hangup: {}
";

/// The failover target.
const FAILOVER_TARGET: Duration = Duration::from_secs(10);

/// One `callflow serve` child.
struct Instance {
    node: String,
    base: String,
    child: Child,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Everything a run starts, stopped when dropped: the schema is dropped
/// by [`Cluster::finish`].
struct Cluster {
    instances: Vec<Option<Instance>>,
    balancer: Balancer,
    callback: String,
    admin: String,
    dir: PathBuf,
    base_url: String,
    schema: String,
    store: String,
}

/// A run's own schema in the database `url` names: its name and the
/// store URL whose `search_path` is it.
async fn fresh_schema(url: &str) -> Result<(String, String), String> {
    let schema = format!(
        "callflow_load_{}_{}",
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    execute(url, &format!("CREATE SCHEMA {schema}")).await?;
    let sep = if url.contains('?') { '&' } else { '?' };
    Ok((
        schema.clone(),
        format!("{url}{sep}options=-csearch_path%3D{schema}"),
    ))
}

/// Where instance `node` writes its log.
fn log_of(dir: &Path, node: &str) -> PathBuf {
    dir.join(format!("{node}.log"))
}

/// Runs `sql` on the server at `url`.
async fn execute(url: &str, sql: &str) -> Result<(), String> {
    let shown = crate::runtime::store::postgres::shown(url);
    let (client, conn) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_postgres::connect(url, tokio_postgres::NoTls),
    )
    .await
    .map_err(|_| format!("--store: {shown} did not answer within 10 s"))?
    .map_err(|e| format!("--store: cannot connect to {shown}: {e}"))?;
    let task = tokio::spawn(conn);
    let done = client.batch_execute(sql).await;
    drop(client);
    let _ = task.await;
    done.map_err(|e| match e.as_db_error() {
        Some(db) => format!("{shown}: {}", db.message()),
        None => format!("{shown}: {e}"),
    })
}

/// The ids of the live sessions `node` holds, from the store.
async fn held_by(store: &str, node: &str) -> Result<Vec<String>, String> {
    let (client, conn) = tokio_postgres::connect(store, tokio_postgres::NoTls)
        .await
        .map_err(|e| e.to_string())?;
    let task = tokio::spawn(conn);
    let rows = client
        .query(
            "SELECT id FROM sessions WHERE live AND owner = $1 ORDER BY id",
            &[&node],
        )
        .await
        .map_err(|e| e.to_string());
    drop(client);
    let _ = task.await;
    Ok(rows?.iter().map(|r| r.get(0)).collect())
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free loopback port: {e}"))
}

impl Cluster {
    /// A fresh schema, the flows, `count` instances on it behind a balancer
    /// keeping `idle` connections to each, every one ready.
    async fn start(
        pg: &PostgresLoad,
        sim: &str,
        idle: usize,
        balancer_rt: &tokio::runtime::Handle,
    ) -> Result<Cluster, String> {
        let (schema, store) = fresh_schema(&pg.url).await?;
        let dir =
            std::env::temp_dir().join(format!("callflow-load-{}", uuid::Uuid::new_v4().simple()));
        let flows = dir.join("flows");
        std::fs::create_dir_all(&flows)
            .map_err(|e| format!("cannot create {}: {e}", flows.display()))?;
        std::fs::write(flows.join("load.yaml"), FLOW)
            .and_then(|()| std::fs::write(flows.join("load-menu.yaml"), MENU_FLOW))
            .map_err(|e| format!("cannot write the load flows: {e}"))?;
        let ports = (0..pg.instances)
            .map(|_| free_port())
            .collect::<Result<Vec<_>, _>>()?;
        let backends: Vec<String> = ports
            .iter()
            .map(|p| format!("http://127.0.0.1:{p}"))
            .collect();
        let balancer = balancer_rt
            .spawn(Balancer::listen(backends.clone(), false, idle))
            .await
            .map_err(|e| e.to_string())??;
        let mut cluster = Cluster {
            instances: Vec::new(),
            callback: format!("{}/api/calls", balancer.url),
            balancer,
            admin: format!("load-{}", uuid::Uuid::new_v4().simple()),
            dir,
            base_url: pg.url.clone(),
            schema,
            store,
        };
        let exe = std::env::current_exe()
            .map_err(|e| format!("cannot find this executable to run serve: {e}"))?;
        for (i, port) in ports.iter().enumerate() {
            let node = format!("load-{i}");
            let log = log_of(&cluster.dir, &node);
            let stderr = std::fs::File::create(&log)
                .map_err(|e| format!("cannot create {}: {e}", log.display()))?;
            let child = Command::new(&exe)
                .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
                .args(["--public-url", &cluster.balancer.url])
                .args(["--app-id", crate::sim::graph::BOT_APP_ID])
                .args(["--tenant", crate::serve::SIM_GRAPH_TENANT])
                .args(["--graph-url", sim, "--authority-url", sim])
                .arg("--openid-config-url")
                .arg(format!("{sim}/.well-known/OpenIdConfiguration"))
                .arg("--flows")
                .arg(&flows)
                .args(["--store", &cluster.store, "--node", &node])
                .args(["--lease", &humantime::format_duration(pg.lease).to_string()])
                .env("CALLFLOW_CLIENT_SECRET", "sim-secret")
                .env("CALLFLOW_ADMIN_TOKEN", &cluster.admin)
                .env_remove("CALLFLOW_STORE")
                .env_remove("CALLFLOW_CONFIG")
                .env_remove("RUST_LOG")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .map_err(|e| format!("cannot start callflow serve ({}): {e}", exe.display()))?;
            cluster.instances.push(Some(Instance {
                node,
                base: backends[i].clone(),
                child,
            }));
        }
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .map_err(|e| e.to_string())?;
        let deadline = Instant::now() + Duration::from_secs(60);
        for instance in cluster.instances.iter_mut().flatten() {
            loop {
                let ready = http
                    .get(format!("{}/readyz", instance.base))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if ready {
                    break;
                }
                if let Ok(Some(status)) = instance.child.try_wait() {
                    return Err(format!(
                        "instance {} stopped ({status}) before it was ready; its log: {}",
                        instance.node,
                        log_of(&cluster.dir, &instance.node).display()
                    ));
                }
                if Instant::now() > deadline {
                    return Err(format!(
                        "instance {} was not ready within 60 s; its log: {}",
                        instance.node,
                        log_of(&cluster.dir, &instance.node).display()
                    ));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(cluster)
    }

    fn alive(&self) -> impl Iterator<Item = &Instance> {
        self.instances.iter().flatten()
    }

    /// Every live instance's `/metrics`, summed by series.
    async fn metrics(&self, http: &reqwest::Client) -> Result<Metrics, String> {
        let mut sum = Metrics::default();
        for instance in self.alive() {
            let text = http
                .get(format!("{}/metrics", instance.base))
                .bearer_auth(&self.admin)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .map_err(|e| format!("{}'s /metrics: {e}", instance.node))?
                .text()
                .await
                .map_err(|e| format!("{}'s /metrics: {e}", instance.node))?;
            sum.add(&Metrics::parse(&text));
        }
        Ok(sum)
    }

    /// Stops every instance and drops the run's schema.
    async fn finish(mut self) -> Result<(), String> {
        self.instances.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
        execute(
            &self.base_url,
            &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema),
        )
        .await
    }
}

/// Prometheus series (name with labels → value), as `/metrics` writes them.
#[derive(Clone, Debug, Default)]
struct Metrics(BTreeMap<String, f64>);

impl Metrics {
    fn parse(text: &str) -> Metrics {
        Metrics(
            text.lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| {
                    let (name, value) = l.rsplit_once(' ')?;
                    Some((name.to_owned(), value.parse().ok()?))
                })
                .collect(),
        )
    }

    fn add(&mut self, other: &Metrics) {
        for (k, v) in &other.0 {
            *self.0.entry(k.clone()).or_default() += v;
        }
    }

    fn get(&self, series: &str) -> u64 {
        self.0.get(series).copied().unwrap_or(0.0) as u64
    }

    /// The series of one family whose name starts with `prefix`, summed.
    fn sum_of(&self, prefix: &str) -> u64 {
        self.0
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| *v)
            .sum::<f64>() as u64
    }

    /// A histogram's bucket bounds and cumulative counts (`+Inf` last).
    fn histogram(&self, name: &str) -> (Vec<f64>, Vec<u64>) {
        let prefix = format!("{name}_bucket{{le=\"");
        let mut buckets: Vec<(f64, u64)> = self
            .0
            .iter()
            .filter_map(|(k, v)| {
                let le = k.strip_prefix(&prefix)?.strip_suffix("\"}")?;
                let bound = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().ok()?
                };
                Some((bound, *v as u64))
            })
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        let bounds = buckets
            .iter()
            .map(|b| b.0)
            .filter(|b| b.is_finite())
            .collect();
        (bounds, buckets.iter().map(|b| b.1).collect())
    }
}

const DISPATCH: &str = "callflow_dispatch_latency_seconds";

/// Quantile `q` of the dispatch latency between two scrapes.
fn dispatch_quantile(before: &Metrics, after: &Metrics, q: f64) -> Option<f64> {
    let (bounds, b) = before.histogram(DISPATCH);
    let (_, a) = after.histogram(DISPATCH);
    if a.len() != b.len() {
        return None;
    }
    delta_quantile(&bounds, &b, &a, q)
}

fn ms(s: Option<f64>) -> String {
    match s {
        Some(s) if s.is_finite() => format!("<= {:.1} ms", s * 1000.0),
        Some(_) => "> 10 s".to_owned(),
        None => "n/a".to_owned(),
    }
}

/// Waits (a minute at most) until the instances hold `live` live sessions
/// and sim-graph has no notification unanswered.
async fn settled(
    cluster: &Cluster,
    http: &reqwest::Client,
    control: &SimGraphControl,
    live: u64,
) -> Result<u64, String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = cluster.metrics(http).await?.get("callflow_sessions_live");
        let in_flight = control.clock().await.map_or(1, |c| c.in_flight);
        if (now >= live && in_flight == 0) || Instant::now() > deadline {
            return Ok(now);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The notifications sim-graph posted to `callback` so far.
async fn sim_posted(control: &SimGraphControl, callback: &str) -> Result<u64, String> {
    Ok(control
        .calls()
        .await
        .map_err(|e| e.to_string())?
        .iter()
        .filter(|c| c.callback_uri.starts_with(callback))
        .map(|c| c.notifications as u64)
        .sum())
}

/// Runs the cluster measurement (or the failover one), on `load_rt`'s
/// side; the balancer and the bare handlers run on `server_rt`.
pub(super) async fn go(
    args: &LoadOptions,
    pg: &PostgresLoad,
    sim: &SimGraphChild,
    server_rt: tokio::runtime::Handle,
    out: &mut (dyn Write + Send),
) -> Result<bool, String> {
    crate::graph::client::install_tls_provider();
    if pg.instances == 0 {
        return Err("--instances must be at least 1".into());
    }
    let base = sim.base().to_owned();
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(args.concurrency.max(32))
        .build()
        .map_err(|e| format!("the HTTP client would not build: {e}"))?;
    let control = SimGraphControl::new(&base, http.clone());
    let mut cluster = Cluster::start(pg, &base, args.concurrency.max(8), &server_rt).await?;
    say!(out, "callflow load");
    say!(
        out,
        "  sim-graph     {base} (child process {}, manual clock; signs the notification tokens)",
        sim.pid()
    );
    say!(
        out,
        "  instances     {} `callflow serve` processes ({}), lease {}",
        pg.instances,
        cluster
            .alive()
            .map(|i| format!("{} pid {}", i.node, i.child.id()))
            .collect::<Vec<_>>()
            .join(", "),
        humantime::format_duration(pg.lease)
    );
    say!(
        out,
        "  store         {} (schema {}, made for this run, dropped at the end)",
        crate::runtime::store::postgres::shown(&pg.url),
        cluster.schema
    );
    say!(
        out,
        "  callback      {} (round-robin balancer in this process, no affinity)",
        cluster.callback
    );
    let outcome = match pg.failover {
        Some(calls) => failover(pg, &mut cluster, &http, &control, calls, out).await,
        None => load(args, pg, &cluster, &http, &control, &server_rt, out).await,
    };
    if outcome.is_err() {
        say!(
            out,
            "the instances' logs are in {} (kept)",
            cluster.dir.display()
        );
        return outcome;
    }
    cluster.finish().await?;
    outcome
}

/// The throughput and latency phases through the balancer.
#[allow(clippy::too_many_lines)]
async fn load(
    args: &LoadOptions,
    pg: &PostgresLoad,
    cluster: &Cluster,
    http: &reqwest::Client,
    control: &SimGraphControl,
    server_rt: &tokio::runtime::Handle,
    out: &mut (dyn Write + Send),
) -> Result<bool, String> {
    let duration = args.duration;
    let (authorization, sink_stop) = start_sink(control).await?;
    let _ = sink_stop.send(());
    let placing = Instant::now();
    let ids = place_many(control, &cluster.callback, 0, args.calls, 32).await?;
    let live = settled(cluster, http, control, args.calls as u64).await?;
    say!(
        out,
        "  calls         {} placed through sim-graph in {:.2} s, {live} live sessions in the \
         cluster",
        ids.len(),
        placing.elapsed().as_secs_f64()
    );
    say!(
        out,
        "  load          {} notifications at most, {} at most, {} connections; then {} at {}/s",
        args.notifications,
        humantime::format_duration(duration),
        args.concurrency,
        humantime::format_duration(duration),
        args.rate
    );
    let bodies = Arc::new(bodies(&ids, &cluster.callback));
    let first = cluster.metrics(http).await?;
    let sim_first = sim_posted(control, &cluster.callback).await?;

    // Phase 1: as fast as the cluster answers.
    let prober = Prober::start(control, &cluster.callback, args.calls);
    let real = blast(
        http,
        &cluster.callback,
        &authorization,
        &bodies,
        args.notifications,
        duration,
        args.concurrency,
        None,
    )
    .await;
    let probes = prober.stop().await;
    settled(cluster, http, control, 0).await?;
    let full = cluster.metrics(http).await?;

    // Phase 2: a sustained rate.
    let sustained = if args.rate > 0 {
        let prober = Prober::start(control, &cluster.callback, args.calls + probes + 1);
        let run = blast(
            http,
            &cluster.callback,
            &authorization,
            &bodies,
            args.notifications,
            duration,
            args.concurrency,
            Some(args.rate),
        )
        .await;
        let probes = prober.stop().await;
        settled(cluster, http, control, 0).await?;
        Some((run, probes))
    } else {
        None
    };
    let last = cluster.metrics(http).await?;
    let sim_last = sim_posted(control, &cluster.callback).await?;
    let answered = cluster.balancer.answered();

    // The same generator against as many bare 202 handlers behind the same
    // kind of balancer.
    let mut bare_stops = Vec::new();
    let mut bare_urls = Vec::new();
    for _ in 0..pg.instances {
        let (url, stop) = server_rt
            .spawn(start_bare())
            .await
            .map_err(|e| e.to_string())??;
        bare_urls.push(url.trim_end_matches("/api/calls").to_owned());
        bare_stops.push(stop);
    }
    let bare_balancer = server_rt
        .spawn(Balancer::listen(bare_urls, false, args.concurrency.max(8)))
        .await
        .map_err(|e| e.to_string())??;
    let bare = blast(
        http,
        &format!("{}/api/calls", bare_balancer.url),
        &authorization,
        &bodies,
        args.notifications,
        duration,
        args.concurrency,
        None,
    )
    .await;
    drop(bare_balancer);
    for stop in bare_stops {
        let _ = stop.send(());
    }

    let d = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1000.0);
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    let ratio = real.per_second() / bare.per_second().max(1e-9);
    let p50 = dispatch_quantile(&first, &full, 0.5);
    let p99 = dispatch_quantile(&first, &full, 0.99);
    let column = format!("{} instances", pg.instances);
    say!(out);
    say!(
        out,
        "| {:<40} | {:>16} | {:>16} |",
        "",
        column,
        "bare axum 202"
    );
    say!(out, "|{:-<42}|{:-<18}|{:-<18}|", "", "", "");
    let row = |out: &mut (dyn Write + Send), name: &str, a: String, b: String| {
        say!(out, "| {name:<40} | {a:>16} | {b:>16} |");
    };
    row(
        out,
        "requests sent",
        real.sent.to_string(),
        bare.sent.to_string(),
    );
    row(
        out,
        "202 answers",
        real.accepted().to_string(),
        bare.accepted().to_string(),
    );
    row(
        out,
        "elapsed",
        format!("{:.2} s", real.elapsed.as_secs_f64()),
        format!("{:.2} s", bare.elapsed.as_secs_f64()),
    );
    row(
        out,
        "notifications/s (202s per second)",
        format!("{:.0}", real.per_second()),
        format!("{:.0}", bare.per_second()),
    );
    row(out, "errors by status", real.errors(), bare.errors());
    row(
        out,
        "round trip p50 (generator)",
        d(real.round_trip(0.5)),
        d(bare.round_trip(0.5)),
    );
    row(
        out,
        "round trip p99 (generator)",
        d(real.round_trip(0.99)),
        d(bare.round_trip(0.99)),
    );
    row(
        out,
        "received -> Graph request sent p50",
        ms(p50),
        "-".into(),
    );
    row(
        out,
        "received -> Graph request sent p99",
        ms(p99),
        "-".into(),
    );
    say!(out);
    let dispatched = |a: &Metrics, b: &Metrics| {
        b.get(&format!("{DISPATCH}_count"))
            .saturating_sub(a.get(&format!("{DISPATCH}_count")))
    };
    say!(
        out,
        "dispatch latency at full speed: {} Graph requests ({probes} probe calls placed every 10 \
         ms); the instances' histograms summed, bucket upper bounds",
        dispatched(&first, &full)
    );
    let mut sustained_ok = true;
    let mut sustained_errors = false;
    if let Some((run, probes)) = &sustained {
        let p50 = dispatch_quantile(&full, &last, 0.5);
        let p99 = dispatch_quantile(&full, &last, 0.99);
        say!(out);
        say!(
            out,
            "sustained phase: {} notifications offered at {}/s for {}: {} answered 202 ({:.0}/s), \
             errors {}, round trip p50 {} / p99 {}",
            run.sent,
            args.rate,
            humantime::format_duration(duration),
            run.accepted(),
            run.per_second(),
            run.errors(),
            d(run.round_trip(0.5)),
            d(run.round_trip(0.99)),
        );
        say!(
            out,
            "  received -> Graph request sent: p50 {}, p99 {} ({} Graph requests, {probes} probe \
             calls)",
            ms(p50),
            ms(p99),
            dispatched(&full, &last)
        );
        sustained_ok =
            p99.is_some_and(|p| p <= 0.01) && run.per_second() >= 0.95 * args.rate as f64;
        sustained_errors = run.server_errors() > 0 || run.transport_errors > 0;
    }

    // What went where, and whether the counts add up: every request the
    // generator and sim-graph posted through the balancer was answered 202
    // by one instance.
    let delta = |series: &str| last.get(series).saturating_sub(first.get(series));
    let generated = real.accepted() + sustained.as_ref().map_or(0, |(r, _)| r.accepted());
    let posted = sim_last.saturating_sub(sim_first);
    let by_instances = delta("callflow_callback_requests_total{status=\"202\"}");
    let notifications = last
        .sum_of("callflow_notifications_total")
        .saturating_sub(first.sum_of("callflow_notifications_total"));
    let forwarded = delta("callflow_events_forwarded_total");
    say!(out);
    say!(
        out,
        "instances: {} (requests each answered through the balancer, since it started)",
        cluster
            .alive()
            .zip(&answered)
            .map(|(i, n)| format!("{} {n}", i.node))
            .collect::<Vec<_>>()
            .join(", ")
    );
    say!(
        out,
        "  notifications received {notifications}; events journaled for the instance holding \
         their call (forwarded) {forwarded} ({:.0}%); sessions taken over {}; fenced {}; store \
         errors {}; overloaded {}",
        100.0 * forwarded as f64 / notifications.max(1) as f64,
        delta("callflow_sessions_taken_over_total"),
        delta("callflow_sessions_fenced_total"),
        delta("callflow_store_errors_total"),
        delta("callflow_overloaded_total"),
    );
    let adds_up = generated + posted == by_instances;
    say!(
        out,
        "counts: generator 202s {generated} + sim-graph notifications {posted} = {}; the \
         instances answered 202: {by_instances} ({})",
        generated + posted,
        if adds_up {
            "they add up"
        } else {
            "they DO NOT add up"
        }
    );
    say!(out);
    say!(out, "targets:");
    say!(
        out,
        "  >= 5,000 notifications/s         {:>10.0}/s   {}",
        real.per_second(),
        verdict(real.per_second() >= 5_000.0)
    );
    match &sustained {
        Some(_) => say!(
            out,
            "  p99 received -> sent < 10 ms     {:>12}   {} (at {}/s sustained; met when the \
             p99's bucket ends at <= 10 ms and 95% of the rate was kept)",
            ms(dispatch_quantile(&full, &last, 0.99)),
            verdict(sustained_ok),
            args.rate
        ),
        None => say!(
            out,
            "  p99 received -> sent < 10 ms     (no sustained phase: --rate 0)"
        ),
    }
    say!(out, "  ratio to bare axum (same balancer) {:>10.2}", ratio);
    let errors = real.server_errors() > 0 || real.transport_errors > 0 || sustained_errors;
    Ok(!errors && adds_up)
}

/// Quantile `q` of sorted durations.
fn quantile(sorted: &[Duration], q: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    Some(sorted[i])
}

/// `min / p50 / p90 / max` of `times`, with how many of `of`.
fn distribution(times: &mut [Duration], of: usize) -> String {
    times.sort_unstable();
    let s =
        |d: Option<Duration>| d.map_or("n/a".to_owned(), |d| format!("{:.2} s", d.as_secs_f64()));
    format!(
        "{:>4} of {of:<4}  min {:>8}  p50 {:>8}  p90 {:>8}  max {:>8}",
        times.len(),
        s(times.first().copied()),
        s(quantile(times, 0.5)),
        s(quantile(times, 0.9)),
        s(times.last().copied())
    )
}

/// `calls` calls wait in a menu across the instances; the first instance
/// is killed; for each of its calls, the time until another instance held
/// its lease, sent its first Graph request (reconciling it) and played its
/// prompt again.
#[allow(clippy::too_many_lines)]
async fn failover(
    pg: &PostgresLoad,
    cluster: &mut Cluster,
    http: &reqwest::Client,
    control: &SimGraphControl,
    calls: usize,
    out: &mut (dyn Write + Send),
) -> Result<bool, String> {
    if pg.instances < 2 {
        return Err("--failover needs --instances 2 or more".into());
    }
    if calls == 0 {
        return Err("--failover needs at least 1 call".into());
    }
    let placing = Instant::now();
    let ids = place_many_to(control, &cluster.callback, 0, calls, 32, MENU_DIALLED).await?;
    // Every call answered and its prompt asked for (two requests) and
    // played (sim-graph's clock moved to each thing due), nothing in flight.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut moved = 0;
    loop {
        let list = control.calls().await.map_err(|e| e.to_string())?;
        let waiting = list
            .iter()
            .filter(|c| c.callback_uri.starts_with(&cluster.callback) && c.requests >= 2)
            .count();
        let clock = control.clock().await.map_err(|e| e.to_string())?;
        if clock.in_flight == 0 {
            if waiting >= calls && (clock.next_due.is_none() || moved >= 20) {
                break;
            }
            if let Some(due) = clock.next_due {
                control.advance_to(due).await.map_err(|e| e.to_string())?;
                moved += 1;
            }
        }
        if Instant::now() > deadline {
            return Err(format!(
                "only {waiting} of {calls} calls waited in their menu within 60 s"
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Their states stored, their leases held (a state write takes the lease).
    let live = settled(cluster, http, control, calls as u64).await?;
    say!(
        out,
        "  calls         {} placed through sim-graph in {:.2} s, each waiting in a menu ({live} \
         live sessions)",
        ids.len(),
        placing.elapsed().as_secs_f64()
    );
    let victim = cluster
        .alive()
        .next()
        .ok_or("no instance to kill")?
        .node
        .clone();
    let victims = held_by(&cluster.store, &victim).await?;
    let before: BTreeMap<String, usize> = control
        .calls()
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|c| victims.contains(&c.id))
        .map(|c| (c.id, c.requests))
        .collect();
    let others: Vec<String> = cluster
        .alive()
        .filter(|i| i.node != victim)
        .map(|i| i.node.clone())
        .collect();
    say!(
        out,
        "  kill -9       {victim}, which holds {} of the {calls} calls; the others: {}",
        victims.len(),
        others.join(", ")
    );
    // SIGKILL: no drain, no lease handed back.
    let killed = Instant::now();
    // Dropping it kills it (`Child::kill` is SIGKILL on Unix) and reaps it.
    drop(cluster.instances.first_mut().and_then(Option::take));

    let (client, conn) = tokio_postgres::connect(&cluster.store, tokio_postgres::NoTls)
        .await
        .map_err(|e| e.to_string())?;
    let conn_task = tokio::spawn(conn);
    let mut leased: BTreeMap<String, Duration> = BTreeMap::new();
    let mut requested: BTreeMap<String, Duration> = BTreeMap::new();
    let mut resumed: BTreeMap<String, Duration> = BTreeMap::new();
    let give_up = killed + Duration::from_secs(60);
    while resumed.len() < victims.len() && Instant::now() < give_up {
        let now = killed.elapsed();
        if leased.len() < victims.len()
            && let Ok(rows) = client
                .query(
                    "SELECT id FROM sessions WHERE id = ANY($1) AND owner <> $2",
                    &[&victims, &victim],
                )
                .await
        {
            for row in rows {
                leased.entry(row.get(0)).or_insert(now);
            }
        }
        let list = control.calls().await.map_err(|e| e.to_string())?;
        for c in list {
            let Some(was) = before.get(&c.id) else {
                continue;
            };
            if c.requests <= *was || resumed.contains_key(&c.id) {
                continue;
            }
            requested.entry(c.id.clone()).or_insert(now);
            let requests = control.requests(&c.id).await.map_err(|e| e.to_string())?;
            let posted = requests
                .iter()
                .skip(*was)
                .any(|r| r["method"] != "GET" && r["status"] != 429);
            if posted {
                resumed.insert(c.id.clone(), now);
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(client);
    let _ = conn_task.await;
    let after = cluster.metrics(http).await?;
    let n = victims.len();
    let mut leased: Vec<Duration> = leased.into_values().collect();
    let mut requested: Vec<Duration> = requested.into_values().collect();
    let mut resumed: Vec<Duration> = resumed.into_values().collect();
    say!(out);
    say!(
        out,
        "from the kill to, for each of its calls (polled every 20 ms):"
    );
    say!(
        out,
        "  its lease held by another instance   {}",
        distribution(&mut leased, n)
    );
    say!(
        out,
        "  its first Graph request from there   {}",
        distribution(&mut requested, n)
    );
    say!(
        out,
        "  its prompt played again (resumed)    {}",
        distribution(&mut resumed, n)
    );
    say!(
        out,
        "  sessions taken over by the others: {}",
        after.get("callflow_sessions_taken_over_total")
    );
    let met = resumed.len() == n && resumed.last().is_none_or(|d| *d <= FAILOVER_TARGET);
    say!(out);
    say!(out, "targets:");
    say!(
        out,
        "  every call resumed within 10 s   {:>10}   {} (lease {}, the sweep every third of it)",
        resumed
            .last()
            .map_or("n/a".to_owned(), |d| format!("{:.2} s", d.as_secs_f64())),
        if met { "met" } else { "MISSED" },
        humantime::format_duration(pg.lease)
    );
    Ok(resumed.len() == n)
}
