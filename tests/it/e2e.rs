//! End to end over real loopback HTTP: `sim-graph` places calls and posts
//! signed notifications to the real server, the runtime runs the flows and
//! the production `GraphClient` sends its requests back to `sim-graph`,
//! with faults on (reordered and duplicated notifications, `429`s).
//!
//! - `bundled_scenarios_over_http`: every bundled scenario, each on its own
//!   stack, started as its trigger says (an incoming call placed through
//!   sim-graph's control API, a call the bot already has, an `api` start
//!   through `POST /api/flows/{flow}/runs`, or a recording replayed by
//!   sim-graph), on a manual clock that the runtime and sim-graph share,
//!   checked against its `end:` and its expected request kinds.
//! - `hot_reload_under_load`: a broken then a valid edit of a flow while
//!   calls keep coming: the old set keeps serving, calls in progress finish
//!   on the version they started with, and no notification is refused.
//!
//! The scenarios run on simulated time: the runtime's [`ManualClock`] and
//! sim-graph's manual clock start at the scenario's `clock:` and are moved
//! together, from one deadline to the next, only once nothing is in flight
//! (no notification unanswered, no event or request being handled). A
//! two-hour meeting takes milliseconds, and a flow's timer never races a
//! round trip. No assertion is made on wall-clock durations; waits are
//! bounded only so that a failure fails rather than hangs.

use crate::support::designer::Designer;
use crate::support::poll::eventually;
use callflow::graph::client::recordings::RecordingDelivery;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use callflow::engine::{Party, RequestKind};
use callflow::flow::compiled::Trigger;
use callflow::graph::client::{ClientSecret, Cloud, GraphClient, GraphConfig};
use callflow::runtime::{Clock, ManualClock, Runtime, RuntimeConfig};
use callflow::server::{
    AuthConfig, KeySource, NotificationAuth, ServerConfig, ServerState, Verifier,
};
use callflow::sim::SimulateOptions;
use callflow::sim::behaviour::{GraphBehaviour, SimDuration};
use callflow::sim::expect::{EndName, Expectation};
use callflow::sim::graph::BOT_APP_ID;
use callflow::sim::http::{Faults, SimClock, SimGraphConfig, SimGraphServer};
use callflow::sim::scenario::{self, Scenario};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const TENANT: &str = "sim-tenant";
const ADMIN: &str = "e2e-admin-token";

fn flows_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("flows")
}

/// Copies the flow files of `flows/` (not the scenarios) into a temp folder.
fn copy_flows() -> tempfile::TempDir {
    let temp = tempfile::tempdir().expect("temp dir");
    for entry in std::fs::read_dir(flows_dir()).expect("flows dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            std::fs::copy(&path, temp.path().join(path.file_name().expect("name")))
                .expect("copy flow");
        }
    }
    temp
}

/// The faults every call gets: pairwise reordering, duplicates and `429`s.
fn hostile_faults(throttle: u32) -> Faults {
    Faults {
        throttle,
        retry_after: Some(0),
        reorder: true,
        duplicate: true,
        ..Faults::default()
    }
}

/// sim-graph, the runtime behind the production client, and the server,
/// verifying sim-graph's signed notifications through its OpenID configuration.
struct Stack {
    sim: SimGraphServer,
    runtime: Runtime,
    callback: String,
    base: String,
    http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
    addr: std::net::SocketAddr,
    /// The runtime's clock, when sim-graph's is manual too.
    clock: Option<ManualClock>,
    /// Where `record` steps deliver (downloaded from sim-graph over HTTP).
    recordings: tempfile::TempDir,
    /// Every instance's runtime (`runtime` first); several on PostgreSQL.
    nodes: Vec<Runtime>,
    /// The admin API's base URL: the server's, or the balancer's.
    admin: String,
    /// The other instances' servers, and the balancer in front of all.
    others: Vec<Served>,
    balancer: Option<crate::support::balancer::Balancer>,
    /// A connection to the instances' PostgreSQL schema.
    db: Option<tokio_postgres::Client>,
}

/// A server serving until told to stop.
struct Served {
    stop: oneshot::Sender<()>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn stack(flows: &Path, sim_config: SimGraphConfig) -> Stack {
    stack_with(flows, sim_config, None).await
}

/// [`stack`], whose runtime makes `fetch` requests as `fetch` says.
async fn stack_with(
    flows: &Path,
    sim_config: SimGraphConfig,
    fetch: Option<callflow::runtime::FetchConfig>,
) -> Stack {
    let clock = match sim_config.clock {
        SimClock::Manual => Some(ManualClock::new(sim_config.start.unwrap_or_else(Utc::now))),
        SimClock::RealTime { .. } => None,
    };
    let sim = SimGraphServer::start(
        sim_config,
        TcpListener::bind("127.0.0.1:0").await.expect("bind"),
    )
    .await
    .expect("sim-graph");
    let base = sim.base_url().to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let callback = format!("http://{addr}/api/calls");
    let mut auth = AuthConfig::new(
        KeySource::OpenIdConfiguration(format!("{base}/.well-known/OpenIdConfiguration")),
        BOT_APP_ID,
    );
    auth.tenant = Some(TENANT.into());
    let auth = NotificationAuth::Verify(Arc::new(Verifier::start(auth).await.expect("keys")));
    let recordings = tempfile::tempdir().expect("a recordings folder");
    let mut graph = GraphConfig::new(Cloud::Global, TENANT, BOT_APP_ID, ClientSecret::new("s"))
        .with_base_urls(&base, &base)
        .expect("urls");
    graph.recordings = Some(RecordingDelivery::Folder(recordings.path().to_path_buf()));
    let client = GraphClient::new(graph).expect("client");
    let runtime = Runtime::start(
        RuntimeConfig {
            flows_dir: flows.to_path_buf(),
            callback_uri: callback.clone(),
            clock: clock.clone().map_or(Clock::System, Clock::Manual),
            bot: callflow::serve::sim_graph_identity(),
            fetch: fetch.map(|f| Arc::new(callflow::runtime::Fetcher::new(f).expect("fetcher"))),
            ..RuntimeConfig::default()
        },
        Arc::new(client),
    )
    .await
    .unwrap_or_else(|d| panic!("flows load: {d:?}"));
    let mut config = ServerConfig::new(auth);
    config.admin_token = Some(ADMIN.into());
    let state = ServerState::new(config, runtime.clone());
    let (stop, stopped) = oneshot::channel::<()>();
    let served = tokio::spawn(callflow::server::serve(listener, state, async move {
        let _ = stopped.await;
    }));
    Stack {
        recordings,
        sim,
        nodes: vec![runtime.clone()],
        admin: format!("http://{addr}"),
        others: Vec::new(),
        balancer: None,
        db: None,
        runtime,
        callback,
        base,
        http: reqwest::Client::new(),
        stop: Some(stop),
        served,
        addr,
        clock,
    }
}

/// [`stack_with`] as `count` instances (runtimes and servers in this
/// process, so that they share the manual clock with sim-graph) on one
/// PostgreSQL schema (`schema`), behind the round-robin balancer: the
/// callback and the admin API are the balancer's.
async fn cluster_stack(
    flows: &Path,
    sim_config: SimGraphConfig,
    fetch: Option<callflow::runtime::FetchConfig>,
    count: usize,
    schema: &str,
) -> Stack {
    use callflow::runtime::store::postgres::PostgresStore;
    let clock = ManualClock::new(sim_config.start.unwrap_or_else(Utc::now));
    let sim = SimGraphServer::start(
        sim_config,
        TcpListener::bind("127.0.0.1:0").await.expect("bind"),
    )
    .await
    .expect("sim-graph");
    let base = sim.base_url().to_owned();
    let mut listeners = Vec::new();
    for _ in 0..count {
        listeners.push(TcpListener::bind("127.0.0.1:0").await.expect("bind"));
    }
    let urls = listeners
        .iter()
        .map(|l| format!("http://{}", l.local_addr().expect("addr")))
        .collect();
    let balancer = crate::support::balancer::Balancer::start(urls, false).await;
    let callback = format!("{}/api/calls", balancer.url);
    let store = crate::support::pg::fresh_schema(schema).await;
    let (db, conn) = tokio_postgres::connect(&store, tokio_postgres::NoTls)
        .await
        .expect("connect to the test PostgreSQL");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let recordings = tempfile::tempdir().expect("a recordings folder");
    let fetcher = fetch.map(|f| Arc::new(callflow::runtime::Fetcher::new(f).expect("fetcher")));
    let mut nodes = Vec::new();
    let mut served = Vec::new();
    let mut addrs = Vec::new();
    for (i, listener) in listeners.into_iter().enumerate() {
        let url = store.clone();
        let opened = tokio::task::spawn_blocking(move || {
            PostgresStore::open_as(&url, &format!("node-{i}"), Duration::from_secs(10))
        })
        .await
        .expect("join")
        .expect("the store opens");
        let cluster = opened.cluster();
        let mut auth = AuthConfig::new(
            KeySource::OpenIdConfiguration(format!("{base}/.well-known/OpenIdConfiguration")),
            BOT_APP_ID,
        );
        auth.tenant = Some(TENANT.into());
        let auth = NotificationAuth::Verify(Arc::new(Verifier::start(auth).await.expect("keys")));
        let mut graph = GraphConfig::new(Cloud::Global, TENANT, BOT_APP_ID, ClientSecret::new("s"))
            .with_base_urls(&base, &base)
            .expect("urls");
        graph.recordings = Some(RecordingDelivery::Folder(recordings.path().to_path_buf()));
        let client = GraphClient::new(graph).expect("client");
        let runtime = Runtime::start(
            RuntimeConfig {
                flows_dir: flows.to_path_buf(),
                callback_uri: callback.clone(),
                clock: Clock::Manual(clock.clone()),
                bot: callflow::serve::sim_graph_identity(),
                fetch: fetcher.clone(),
                store: callflow::runtime::StoreHandle(Arc::new(opened)),
                cluster: Some(cluster),
                ..RuntimeConfig::default()
            },
            Arc::new(client),
        )
        .await
        .unwrap_or_else(|d| panic!("flows load: {d:?}"));
        runtime.recover().await.expect("the cluster is joined");
        let mut config = ServerConfig::new(auth);
        config.admin_token = Some(ADMIN.into());
        let state = ServerState::new(config, runtime.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        addrs.push(listener.local_addr().expect("addr"));
        served.push(Served {
            stop,
            served: tokio::spawn(callflow::server::serve(listener, state, async move {
                let _ = stopped.await;
            })),
        });
        nodes.push(runtime);
    }
    let first = served.remove(0);
    Stack {
        recordings,
        sim,
        runtime: nodes[0].clone(),
        admin: balancer.url.clone(),
        nodes,
        others: served,
        balancer: Some(balancer),
        db: Some(db),
        callback,
        base,
        http: reqwest::Client::new(),
        stop: Some(first.stop),
        served: first.served,
        addr: addrs[0],
        clock: Some(clock),
    }
}

impl Stack {
    /// Places an incoming call through the control API; its id.
    async fn place(&self, from: &Party, to: &Party) -> String {
        let placed = self
            .sim_post(
                "/sim/calls",
                &json!({ "from": from, "to": to, "callbackUri": self.callback }),
                201,
            )
            .await;
        placed["id"].as_str().expect("call id").to_owned()
    }

    /// POSTs `body` to sim-graph's control API, which must answer `want`; the JSON answer.
    async fn sim_post(&self, path: &str, body: &Value, want: u16) -> Value {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        let status = response.status();
        let answer: Value = response.json().await.expect("sim-graph answers JSON");
        assert_eq!(status, want, "POST {path}: {answer}");
        answer
    }

    /// Starts a run of an `api` flow through the admin API; its session id.
    async fn start_run(&self, flow: &str, params: &Value) -> String {
        let response = self
            .http
            .post(format!("{}/api/flows/{flow}/runs", self.admin))
            .bearer_auth(ADMIN)
            .json(&json!({ "params": params }))
            .send()
            .await
            .expect("start a run");
        let status = response.status();
        let answer: Value = response.json().await.expect("run json");
        assert_eq!(status, 201, "starting {flow}: {answer}");
        answer["session"].as_str().expect("session id").to_owned()
    }

    /// Waits until nothing is in flight: every notification answered, every
    /// event handled (with the requests it caused), every woken timer done.
    /// With several instances, also no journal entry waits for the
    /// instance holding its session (journaled elsewhere, not yet applied).
    async fn quiet(&self) -> Result<(), String> {
        let idle = || self.nodes.iter().all(Runtime::is_idle) && self.sim.in_flight() == 0;
        eventually(Duration::from_secs(60), || async {
            if !idle() {
                return None;
            }
            if let Some(db) = &self.db {
                let waiting: i64 = db
                    .query_one(
                        "SELECT count(*) FROM journal j JOIN sessions s ON s.id = j.target
                         WHERE j.session IS NULL AND s.live",
                        &[],
                    )
                    .await
                    .ok()?
                    .get(0);
                if waiting > 0 || !idle() {
                    return None;
                }
            }
            Some(())
        })
        .await
        .ok_or_else(|| "the stack never went quiet".into())
    }

    /// The session `id` as the instance running it (or that ran it last) has it.
    fn session(&self, id: &str) -> Option<callflow::runtime::SessionDetail> {
        let mut found = None;
        for runtime in &self.nodes {
            if let Some(d) = runtime.session(id) {
                if d.summary.state == "ended" {
                    return Some(d);
                }
                found.get_or_insert(d);
            }
        }
        found
    }

    /// The session on any instance whose calls include `call`.
    fn session_with(&self, call: &str) -> Option<String> {
        self.nodes.iter().find_map(|runtime| {
            runtime
                .sessions()
                .into_iter()
                .find(|x| x.calls.iter().any(|c| c == call))
                .map(|x| x.id)
        })
    }

    /// Moves simulated time from one deadline to the next (sim-graph's
    /// happenings and the runtime's timers), each once all is quiet, until
    /// `done` holds. Fails when nothing is left to happen or after `horizon`.
    async fn run_until(
        &self,
        horizon: chrono::Duration,
        mut done: impl FnMut() -> bool,
    ) -> Result<(), String> {
        let clock = self.clock.as_ref().expect("a manual clock");
        let limit = clock.now() + horizon;
        loop {
            self.quiet().await?;
            if done() {
                return Ok(());
            }
            let sim_next = self.sim.next_due().await;
            let runtime_next = clock.next_deadline();
            let next = match (sim_next, runtime_next) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => a.or(b).ok_or("nothing is left to happen")?,
            };
            if next > limit {
                return Err(format!("still not done at {limit} (simulated)"));
            }
            // Graph's side first: on a tie, its notification is posted and
            // handled before the runtime's timer at the same instant fires.
            self.sim.advance_to(next).await;
            if sim_next == Some(next) && runtime_next == Some(next) {
                self.quiet().await?;
            }
            clock.advance_to(next);
        }
    }

    async fn sim_get(&self, path: &str) -> Option<Value> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .ok()?;
        if !response.status().is_success() {
            return None;
        }
        response.json().await.ok()
    }

    /// The requests sim-graph logged about `call`.
    async fn requests(&self, call: &str) -> Vec<Value> {
        self.sim_get(&format!("/sim/calls/{call}/requests"))
            .await
            .and_then(|v| v["value"].as_array().cloned())
            .unwrap_or_default()
    }

    /// The bot's status for each notification posted about `call`.
    async fn delivered(&self, call: &str) -> Vec<Option<u64>> {
        self.sim_get(&format!("/sim/calls/{call}/notifications"))
            .await
            .and_then(|v| v["value"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .map(|d| d["status"].as_u64())
            .collect()
    }

    /// The session that owns `call`, once it exists.
    async fn session_of(&self, call: &str, limit: Duration) -> Option<String> {
        let runtime = self.runtime.clone();
        eventually(limit, || {
            let found = runtime
                .sessions()
                .into_iter()
                .find(|s| s.calls.iter().any(|c| c == call))
                .map(|s| s.id);
            async move { found }
        })
        .await
    }

    /// The kinds of Graph request made about every call of a session, in
    /// the order sim-graph received them.
    async fn request_kinds(&self, calls: &[String]) -> Vec<(u64, &'static str)> {
        let mut all = Vec::new();
        for call in calls {
            for r in self.requests(call).await {
                let Some(kind) = kind_of(&r) else { continue };
                all.push((r["seq"].as_u64().expect("seq"), kind));
            }
        }
        all.sort_unstable();
        all
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = self.served.await;
        for other in self.others.drain(..) {
            let _ = other.stop.send(());
            let _ = other.served.await;
        }
        drop(self.balancer.take());
        if self.db.is_some() {
            // Leaves the cluster: its heartbeat and connections end.
            for runtime in self.nodes.drain(..) {
                runtime.shutdown().await;
            }
        }
        let _ = self.sim.shutdown().await;
        let _ = self.addr;
    }
}

/// A logged Graph request's kind, in scenario words (`GET`s are not requests a flow makes).
fn kind_of(r: &Value) -> Option<&'static str> {
    let method = r["method"].as_str()?;
    let path = r["path"].as_str()?.trim_end_matches('/');
    let kind = match method {
        "DELETE" => RequestKind::Hangup,
        "POST" => {
            let last = path.rsplit('/').next()?;
            match last {
                "answer" => RequestKind::Answer,
                "reject" => RequestKind::Reject,
                "redirect" => RequestKind::Redirect,
                "transfer" => RequestKind::Transfer,
                "playPrompt" => RequestKind::PlayPrompt,
                "subscribeToTone" => RequestKind::SubscribeToTone,
                "invite" => RequestKind::Invite,
                "recordResponse" => RequestKind::RecordResponse,
                "cancelMediaProcessing" => RequestKind::CancelMediaProcessing,
                "keepAlive" => RequestKind::KeepAlive,
                "calls" => RequestKind::CreateCall,
                _ => return None,
            }
        }
        _ => return None,
    };
    Some(kind.as_str())
}

/// Whether `expected` appears in `actual` in order (other requests between).
fn is_subsequence(expected: &[&str], actual: &[&str]) -> bool {
    let mut it = actual.iter();
    expected.iter().all(|e| it.any(|a| a == e))
}

/// The faults a scenario runs under: reordering, duplicates and two `429`s.
fn scenario_faults() -> Faults {
    hostile_faults(2)
}

/// How a scenario's run starts.
enum Start {
    /// sim-graph places an incoming call.
    Incoming { from: Party, to: Party },
    /// sim-graph posts the state of a call the bot already has.
    Existing { state: String },
    /// The admin API starts a run of an `api` flow.
    Api { flow: String, params: Value },
    /// sim-graph replays a recording.
    Replay {
        recording: Vec<(DateTime<Utc>, Value)>,
    },
}

/// A bundled scenario, how it starts, and when its clock starts.
fn plan(
    path: &Path,
    flows: &[Arc<callflow::flow::Flow>],
) -> (Scenario, Arc<callflow::flow::Flow>, Start, DateTime<Utc>) {
    let scenario = scenario::load(path).expect("bundled scenario loads");
    let flow = flows
        .iter()
        .find(|f| f.name == scenario.flow)
        .cloned()
        .unwrap_or_else(|| panic!("{}: names no bundled flow", path.display()));
    let clock = scenario
        .clock
        .map_or_else(|| scenario::default_clock(&flow), |c| c.with_timezone(&Utc));
    if let Some(recording) = &scenario.replay {
        let recording = scenario::read_recording(recording, clock).expect("recording reads");
        let first = recording.first().map_or(clock, |(at, _)| *at);
        return (scenario, flow, Start::Replay { recording }, first);
    }
    let start = match &flow.trigger {
        Trigger::IncomingCall { .. } => {
            let defaults = SimulateOptions::for_flow(&flow, clock);
            Start::Incoming {
                from: scenario.from.clone().unwrap_or(defaults.from),
                to: scenario.to.clone().unwrap_or(defaults.to),
            }
        }
        Trigger::StateChange { states, .. } => Start::Existing {
            state: states
                .first()
                .cloned()
                .unwrap_or_else(|| "established".into()),
        },
        Trigger::Api { .. } => Start::Api {
            flow: flow.name.clone(),
            params: Value::Object(scenario.params.clone()),
        },
    };
    (scenario, flow, start, clock)
}

/// The turn counters of `flow`'s `round_robin` ring groups (`FLOW/STEP`).
fn round_robin_groups(flow: &callflow::flow::Flow) -> Vec<String> {
    use callflow::flow::Action;
    use callflow::flow::actions::ring_group::Strategy;
    flow.steps
        .iter()
        .filter(|s| matches!(&s.action, Action::RingGroup(g) if g.strategy == Strategy::RoundRobin))
        .map(|s| callflow::engine::ring::group(&flow.name, &s.name))
        .collect()
}

/// Runs one scenario on its own stack; `Err` says what differed. The
/// runtime's turn counters of `groups` first hand out the scenario's
/// `ring_turn` turns, as if as many calls had come before.
async fn run_scenario(
    scenario: Scenario,
    start: Start,
    clock: DateTime<Utc>,
    groups: Vec<String>,
) -> Result<(), String> {
    run_scenario_on(scenario, start, clock, &groups, None)
        .await
        .map(drop)
}

/// What a scenario's run came to: its end, and the kinds of the requests
/// Graph carried out (not those it refused with `429`), in order.
#[derive(Debug, PartialEq)]
struct Ran {
    end: String,
    requests: Vec<&'static str>,
}

/// How many instances a scenario ran on, and what it came to.
type RunOn = (usize, Result<Ran, String>);

/// [`run_scenario`] on one instance, or (`cluster`: how many, and the
/// PostgreSQL schema) on several behind the balancer.
async fn run_scenario_on(
    scenario: Scenario,
    start: Start,
    clock: DateTime<Utc>,
    groups: &[String],
    cluster: Option<(usize, String)>,
) -> Result<Ran, String> {
    let dir = copy_flows();
    // The designer's service on loopback, where the flows say `CRM_BASE`.
    let designer = Designer::start(scenario.graph.http.clone(), CRM_BASE).await;
    for entry in std::fs::read_dir(dir.path()).expect("flows copy") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("flow text");
        if text.contains(CRM_BASE) {
            std::fs::write(&path, text.replace(CRM_BASE, &designer.base)).expect("rewrite");
        }
    }
    let fetch = callflow::runtime::FetchConfig {
        allow: vec![designer.base.trim_start_matches("http://").to_owned()],
        secrets: [("crm_token".to_owned(), CRM_TOKEN.to_owned())].into(),
        max_bytes: callflow::runtime::fetch::DEFAULT_MAX_BYTES,
    };
    let sim_config = SimGraphConfig {
        behaviour: scenario.graph.clone(),
        faults: scenario_faults(),
        clock: SimClock::Manual,
        start: Some(clock),
        ..SimGraphConfig::default()
    };
    let s = match cluster {
        None => stack_with(dir.path(), sim_config, Some(fetch)).await,
        Some((count, schema)) => {
            cluster_stack(dir.path(), sim_config, Some(fetch), count, &schema).await
        }
    };
    for group in groups {
        for _ in 0..scenario.graph.ring_turn {
            s.runtime
                .store()
                .take_turn(group)
                .await
                .expect("the store takes turns");
        }
    }
    let result = check_scenario(&s, &scenario, start, &designer).await;
    s.stop().await;
    result
}

/// Where the bundled flows' `fetch` steps ask (their CRM), replaced over
/// HTTP by the loopback [`Designer`].
const CRM_BASE: &str = "https://crm.contoso.com";

/// The secret `crm_token` over HTTP: it must reach the service, and nothing else.
const CRM_TOKEN: &str = "e2e-crm-token-4f1d";

/// Starts the run as `start` says; the session's id (once it exists) and
/// the call the run started on, if any.
async fn begin(s: &Stack, start: Start) -> Result<(String, Option<String>), String> {
    let call = match start {
        Start::Api { flow, params } => return Ok((s.start_run(&flow, &params).await, None)),
        Start::Incoming { from, to } => s.place(&from, &to).await,
        Start::Existing { state } => {
            let placed = s
                .sim_post(
                    "/sim/calls/existing",
                    &json!({ "state": state, "callbackUri": s.callback }),
                    201,
                )
                .await;
            placed["id"].as_str().expect("call id").to_owned()
        }
        Start::Replay { recording } => {
            let recording: Vec<Value> = recording
                .into_iter()
                .map(|(at, body)| json!({ "at": at, "body": body }))
                .collect();
            let replayed = s
                .sim_post(
                    "/sim/replay",
                    &json!({ "callbackUri": s.callback, "recording": recording }),
                    200,
                )
                .await;
            replayed["calls"][0]
                .as_str()
                .expect("a replayed call")
                .to_owned()
        }
    };
    let mut id = None;
    s.run_until(chrono::Duration::minutes(1), || {
        id = s.session_with(&call);
        id.is_some()
    })
    .await
    .map_err(|e| format!("no session started for call {call}: {e}"))?;
    Ok((id.expect("found"), Some(call)))
}

async fn check_scenario(
    s: &Stack,
    scenario: &Scenario,
    start: Start,
    designer: &Designer,
) -> Result<Ran, String> {
    let (id, call) = begin(s, start).await?;
    let ran = s
        .run_until(chrono::Duration::days(1), || {
            s.session(&id).is_some_and(|d| d.summary.state == "ended")
        })
        .await;
    let detail = s.session(&id).ok_or("the session is gone")?;
    if let Err(e) = ran {
        return Err(format!(
            "the session never ended: {e}\n{}",
            detail.timeline_text
        ));
    }
    let want_end = scenario.expect.iter().find_map(|e| match e {
        Expectation::End(o) => Some(o.clone()),
        Expectation::Request { .. } => None,
    });
    let got_end = want_end.as_ref().and_then(|want| match want {
        EndName::Outcome(_) => detail.summary.outcome.map(EndName::Outcome),
        EndName::Named(_) => detail.summary.end.clone().map(EndName::Named),
    });
    let mut problems = Vec::new();
    if want_end.is_some() && got_end != want_end {
        problems.push(format!("outcome {got_end:?}, expected {want_end:?}"));
    }
    // A recording's download is a GET of its `recordingLocation`, not a
    // request on the call: what shows it is the file in the folder.
    let saves = scenario
        .expect
        .iter()
        .filter(|e| matches!(e, Expectation::Request { kind, .. } if *kind == RequestKind::SaveRecording))
        .count();
    let wavs: Vec<Vec<u8>> = std::fs::read_dir(s.recordings.path())
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "wav"))
                .filter_map(|e| std::fs::read(e.path()).ok())
                .collect()
        })
        .unwrap_or_default();
    if wavs.len() != saves
        || wavs
            .iter()
            .any(|w| !w.starts_with(b"RIFF") || w.len() <= 44)
    {
        problems.push(format!(
            "{} recordings delivered to the folder ({:?} bytes), expected {saves}",
            wavs.len(),
            wavs.iter().map(Vec::len).collect::<Vec<_>>()
        ));
    }
    // A fetch is a request to the designer's service, not to Graph: what
    // shows it is the service's log, with the secret in its header.
    let fetches = scenario
        .expect
        .iter()
        .filter(|e| matches!(e, Expectation::Request { kind, .. } if *kind == RequestKind::Fetch))
        .count();
    let asked = designer.requests();
    if asked.len() < fetches {
        problems.push(format!(
            "the service got {} requests, expected {fetches}: {asked:?}",
            asked.len()
        ));
    }
    let bearer = format!("Bearer {CRM_TOKEN}");
    for r in &asked {
        if !r
            .headers
            .iter()
            .any(|(k, v)| k == "authorization" && *v == bearer)
        {
            problems.push(format!(
                "{} {} came without the secret: {:?}",
                r.method, r.url, r.headers
            ));
        }
    }
    let shown = match s
        .http
        .get(format!("{}/api/sessions/{id}", s.admin))
        .bearer_auth(ADMIN)
        .send()
        .await
    {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(e) => format!("the admin API: {e}"),
    };
    if !shown.contains(&id) {
        problems.push(format!("the admin API does not show the session: {shown}"));
    }
    if shown.contains(CRM_TOKEN) || detail.timeline_text.contains(CRM_TOKEN) {
        problems.push("the secret is in the session the admin API shows".into());
    }
    let want: Vec<&str> = scenario
        .expect
        .iter()
        .filter_map(|e| match e {
            // A turn is the runtime's store's, not a request to Graph.
            Expectation::Request { kind, .. }
                if *kind != RequestKind::SaveRecording
                    && *kind != RequestKind::Fetch
                    && *kind != RequestKind::TakeTurn =>
            {
                Some(kind.as_str())
            }
            Expectation::Request { .. } | Expectation::End(_) => None,
        })
        .collect();
    let mut calls = detail.summary.calls.clone();
    if let Some(call) = &call
        && !calls.contains(call)
    {
        calls.push(call.clone());
    }
    let logged = s.request_kinds(&calls).await;
    let kinds: Vec<&str> = logged.iter().map(|(_, k)| *k).collect();
    if !is_subsequence(&want, &kinds) {
        problems.push(format!(
            "requests {kinds:?} do not contain {want:?} in order"
        ));
    }
    // Every notification posted about the session's calls was taken.
    for c in &calls {
        let statuses = s.delivered(c).await;
        if statuses.iter().any(|st| *st != Some(202))
            || (Some(c) == call.as_ref() && statuses.is_empty())
        {
            problems.push(format!(
                "{c}: notification answers {statuses:?}, all should be 202"
            ));
        }
    }
    // The requests Graph carried out (a flow may send the same request
    // again on purpose: an answer refused, a call nobody answered).
    let mut carried = Vec::new();
    for c in &calls {
        for r in s.requests(c).await {
            if r["status"] == 429 {
                continue;
            }
            let Some(kind) = kind_of(&r) else { continue };
            carried.push((r["seq"].as_u64().unwrap_or(0), kind));
        }
    }
    carried.sort_unstable();
    if problems.is_empty() {
        Ok(Ran {
            end: format!("{:?} {:?}", detail.summary.outcome, detail.summary.end),
            requests: carried.into_iter().map(|(_, k)| k).collect(),
        })
    } else {
        Err(format!("{}\n{}", problems.join("\n"), detail.timeline_text))
    }
}

/// The bundled scenarios over HTTP through two and through three instances
/// on one PostgreSQL, behind the round-robin balancer (consecutive
/// notifications of a call land on different instances), with the same
/// faults (reordering, duplicates, `429`s): each passes its expectations
/// as on one instance and comes to the same end with the same requests
/// (so none sent twice). The instances run in this process (each its own
/// runtime, store connection pool, cluster membership and HTTP server) so
/// that they share the manual clock with sim-graph, as the one-instance
/// run does; between two moves of the clock, nothing may be waiting in the
/// journal for the instance holding its session.
///
/// Skipped with one notice when no PostgreSQL answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bundled_scenarios_through_two_and_three_instances() {
    if !crate::support::require::postgres() {
        return;
    }
    let flows = callflow::flow::load_paths(&[flows_dir()]).flows;
    let paths = scenario::discover(&[flows_dir().join("scenarios")]);
    assert!(paths.len() >= 40, "bundled scenarios: {}", paths.len());
    // A few instances at a time: each holds up to nine PostgreSQL
    // connections (its pool and its listener), and the server's default
    // `max_connections` is 100, shared with the test running beside this one.
    let slots = Arc::new(tokio::sync::Semaphore::new(6));
    let mut runs = tokio::task::JoinSet::new();
    for (n, path) in paths.iter().enumerate() {
        let name = path
            .strip_prefix(flows_dir())
            .unwrap_or(path)
            .display()
            .to_string();
        for count in [1, 2, 3] {
            let (scenario, flow, start, clock) = plan(path, &flows);
            let groups = round_robin_groups(&flow);
            let (name, slots) = (name.clone(), slots.clone());
            runs.spawn(async move {
                let instances = if count > 1 { count as u32 } else { 0 };
                let _slot = slots.acquire_many_owned(instances).await.expect("slot");
                let cluster = (count > 1).then(|| (count, format!("sc{n}_{count}")));
                let ran = run_scenario_on(scenario, start, clock, &groups, cluster).await;
                (name, count, ran)
            });
        }
    }
    let mut results: std::collections::BTreeMap<String, Vec<RunOn>> =
        std::collections::BTreeMap::new();
    while let Some(joined) = runs.join_next().await {
        let (name, count, ran) = joined.expect("scenario task");
        results.entry(name).or_default().push((count, ran));
    }
    let mut failed = Vec::new();
    for (name, mut runs) in results {
        runs.sort_by_key(|(count, _)| *count);
        let mut one = None;
        for (count, ran) in runs {
            match (ran, &one) {
                (Err(e), _) => failed.push(format!("{name} on {count}: {e}")),
                (Ok(ran), None) if count == 1 => one = Some(ran),
                (Ok(_), None) => failed.push(format!("{name} on {count}: no run on one")),
                (Ok(ran), Some(single)) => {
                    if ran != *single {
                        failed.push(format!(
                            "{name} on {count} instances: {ran:?}\n  on one: {single:?}"
                        ));
                    }
                }
            }
        }
    }
    eprintln!(
        "{} scenarios through 1, 2 and 3 instances, {} differences",
        paths.len(),
        failed.len()
    );
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bundled_scenarios_over_http() {
    let flows = callflow::flow::load_paths(&[flows_dir()]).flows;
    let paths = scenario::discover(&[flows_dir().join("scenarios")]);
    assert!(paths.len() >= 40, "bundled scenarios: {}", paths.len());
    let mut runs = tokio::task::JoinSet::new();
    for path in &paths {
        let name = path
            .strip_prefix(flows_dir())
            .unwrap_or(path)
            .display()
            .to_string();
        let (scenario, flow, start, clock) = plan(path, &flows);
        let groups = round_robin_groups(&flow);
        runs.spawn(async move { (name, run_scenario(scenario, start, clock, groups).await) });
    }
    let mut ran = 0;
    let mut failed = Vec::new();
    while let Some(joined) = runs.join_next().await {
        let (name, result) = joined.expect("scenario task");
        ran += 1;
        if let Err(e) = result {
            failed.push(format!("{name}: {e}"));
        }
    }
    eprintln!("{ran} scenarios run over HTTP, {} failed", failed.len());
    failed.sort();
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
    assert_eq!(ran, paths.len(), "every bundled scenario runs over HTTP");
}

const HOTLINE: &str = "+14255550900";
const OLD_TARGET: &str = "+14255550901";
const NEW_TARGET: &str = "+14255550902";

/// A flow that answers, plays a long prompt, then transfers to `target`.
fn hotline(target: &str) -> String {
    format!(
        r#"flow: hotline
description: Answers, holds the caller on a prompt, then transfers
timezone: UTC

trigger:
  incoming_call:
    to: ["{HOTLINE}"]

vars:
  target: "{target}"

start: greet
steps:
  greet:
    answer: {{}}
    next: hold
  hold:
    play: {{ prompt: https://cdn.contoso.com/hold.wav }}
    next: handoff
  handoff:
    transfer: {{ to: {{ phone: "${{vars.target}}" }} }}
    on_failure: bye
  bye:
    hangup: {{}}
"#
    )
}

/// When a call of the hot-reload test was placed.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Phase {
    /// Before any edit; its prompt was playing when the edits were loaded.
    BeforeEdits,
    /// While the broken edit was on disk; its prompt was playing when the
    /// valid edit was loaded.
    WhileBroken,
    /// After the valid edit was loaded.
    AfterEdit,
    /// By the background load, at any time.
    Background,
}

/// One call of the load, and when it was placed.
struct Placed {
    call: String,
    phase: Phase,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hot_reload_under_load() {
    let dir = copy_flows();
    let file = dir.path().join("hotline.yaml");
    std::fs::write(&file, hotline(OLD_TARGET)).expect("write flow");
    // Prompts last ten simulated minutes: calls stay in progress until the
    // clock is moved on at the end.
    let behaviour = GraphBehaviour {
        prompt: Some(SimDuration::secs(600)),
        ..GraphBehaviour::default()
    };
    let s = Arc::new(
        stack(
            dir.path(),
            SimGraphConfig {
                behaviour,
                faults: hostile_faults(3),
                clock: SimClock::RealTime { speed: 1.0 },
                ..SimGraphConfig::default()
            },
        )
        .await,
    );
    let first = s.runtime.flows();
    assert_eq!(first.status, "ok");
    let old_version = first.version;
    let caller = Party::phone("+15550100");
    let hotline_party = Party::phone(HOTLINE);

    // Load: calls keep coming in the background until told to stop.
    let loading = Arc::new(AtomicBool::new(true));
    let load = {
        let s = Arc::clone(&s);
        let loading = Arc::clone(&loading);
        let (caller, to) = (caller.clone(), hotline_party.clone());
        tokio::spawn(async move {
            let mut calls = Vec::new();
            while loading.load(Ordering::Acquire) {
                calls.push(s.place(&caller, &to).await);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            calls
        })
    };

    // Calls in progress (their prompt playing) before any edit.
    let mut tracked: Vec<Placed> = Vec::new();
    let in_prompt = |call: String| {
        let s = Arc::clone(&s);
        async move {
            let ok = eventually(Duration::from_secs(60), || {
                let s = Arc::clone(&s);
                let call = call.clone();
                async move {
                    let r = s.requests(&call).await;
                    r.iter()
                        .any(|r| {
                            kind_of(r) == Some("play_prompt")
                                && r["status"].as_u64().is_some_and(|st| st < 300)
                        })
                        .then_some(())
                }
            })
            .await;
            assert!(ok.is_some(), "call {call} never reached its prompt");
            call
        }
    };
    for _ in 0..5 {
        let call = s.place(&caller, &hotline_party).await;
        tracked.push(Placed {
            call: in_prompt(call).await,
            phase: Phase::BeforeEdits,
        });
    }

    // (a) A broken edit: the reload is refused, the old set keeps serving.
    std::fs::write(
        &file,
        hotline(OLD_TARGET).replace("next: handoff", "next: nowhere"),
    )
    .expect("write broken flow");
    let refused = s.runtime.reload();
    assert!(!refused.ok, "a broken set was loaded: {refused:?}");
    assert!(
        refused.errors > 0 && !refused.diagnostics.is_empty(),
        "{refused:?}"
    );
    assert!(
        refused.rendered.join("\n").contains("nowhere"),
        "{:?}",
        refused.rendered
    );
    let stale = s.runtime.flows();
    assert_eq!(stale.status, "stale");
    assert_eq!(stale.version, old_version, "the old set keeps serving");
    assert!(stale.flows.iter().any(|f| f.name == "hotline"));
    let last_error = stale.last_error.expect("the failed reload is shown");
    assert!(!last_error.ok && !last_error.diagnostics.is_empty());
    // The admin API shows it too.
    let shown: Value = s
        .http
        .get(format!("http://{}/api/flows", s.addr))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("admin")
        .json()
        .await
        .expect("json");
    assert_eq!(shown["status"], "stale", "{shown}");
    // Calls placed while the set is broken run on the old version.
    for _ in 0..5 {
        let call = s.place(&caller, &hotline_party).await;
        tracked.push(Placed {
            call: in_prompt(call).await,
            phase: Phase::WhileBroken,
        });
    }

    // (b) A valid edit that changes the transfer target, while the calls
    // placed so far are still in progress (their prompts playing).
    for p in &tracked {
        let id = s
            .session_of(&p.call, Duration::from_secs(60))
            .await
            .expect("session");
        let live = s.runtime.session(&id).expect("session");
        assert_ne!(live.summary.state, "ended", "{}", live.timeline_text);
    }
    std::fs::write(&file, hotline(NEW_TARGET)).expect("write edited flow");
    let loaded = s.runtime.reload();
    assert!(loaded.ok, "{:?}", loaded.rendered);
    let fresh = s.runtime.flows();
    assert_eq!(fresh.status, "ok");
    assert!(fresh.version > old_version);
    for _ in 0..5 {
        let call = s.place(&caller, &hotline_party).await;
        tracked.push(Placed {
            call: in_prompt(call).await,
            phase: Phase::AfterEdit,
        });
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    loading.store(false, Ordering::Release);
    let background = load.await.expect("load task");
    assert!(!background.is_empty());
    tracked.extend(background.into_iter().map(|call| Placed {
        call,
        phase: Phase::Background,
    }));

    // Every call's session, then let the prompts end: every call transfers.
    let mut sessions = Vec::new();
    for p in &tracked {
        let id = s
            .session_of(&p.call, Duration::from_secs(60))
            .await
            .unwrap_or_else(|| panic!("call {} started no session", p.call));
        sessions.push(id);
    }
    // Every answer at sim-graph before its clock moves: a call still
    // unanswered when the clock jumps is past Graph's answer deadline.
    let placed = &tracked;
    let answered = eventually(Duration::from_secs(60), || {
        let s = Arc::clone(&s);
        async move {
            for p in placed {
                let requests = s.requests(&p.call).await;
                if !requests.iter().any(|r| kind_of(r) == Some("answer")) {
                    return None;
                }
            }
            Some(())
        }
    })
    .await;
    assert!(answered.is_some(), "some calls were never answered");
    let all_ended = eventually(Duration::from_secs(180), || {
        let s = Arc::clone(&s);
        let sessions = sessions.clone();
        async move {
            s.sim.advance(Duration::from_secs(660)).await;
            sessions
                .iter()
                .all(|id| {
                    s.runtime
                        .session(id)
                        .is_some_and(|d| d.summary.state == "ended")
                })
                .then_some(())
        }
    })
    .await;
    assert!(all_ended.is_some(), "some sessions never ended");
    // Let the last notifications (the duplicates of `terminated`) land.
    let mut previous = Vec::new();
    for _ in 0..100 {
        let mut counts = Vec::new();
        for p in &tracked {
            counts.push(s.delivered(&p.call).await.len());
        }
        if counts == previous {
            break;
        }
        previous = counts;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    let mut old_runs = 0;
    let mut new_runs = 0;
    let mut problems = Vec::new();
    for (p, id) in tracked.iter().zip(&sessions) {
        let detail = s.runtime.session(id).expect("session kept");
        let outcome = detail.summary.outcome.map(|o| o.as_str());
        if outcome != Some("transferred") {
            problems.push(format!(
                "{}: outcome {outcome:?}\n{}",
                p.call, detail.timeline_text
            ));
        }
        let transfers: Vec<String> = s
            .requests(&p.call)
            .await
            .iter()
            .filter(|r| kind_of(r) == Some("transfer"))
            .map(|r| r["body"].to_string())
            .collect();
        let to_old = !transfers.is_empty() && transfers.iter().all(|b| b.contains(OLD_TARGET));
        let to_new = !transfers.is_empty() && transfers.iter().all(|b| b.contains(NEW_TARGET));
        let on_old = detail.summary.version == first_version_label(&first, "hotline");
        if on_old {
            old_runs += 1;
        } else {
            new_runs += 1;
        }
        let consistent = if on_old { to_old } else { to_new };
        let right = match p.phase {
            Phase::BeforeEdits | Phase::WhileBroken => on_old && to_old,
            Phase::AfterEdit => !on_old && to_new,
            Phase::Background => consistent,
        };
        if !right {
            problems.push(format!(
                "{} ({:?}): version {}, transfers {transfers:?}",
                p.call, p.phase, detail.summary.version
            ));
        }
        let statuses = s.delivered(&p.call).await;
        if statuses.is_empty() || statuses.iter().any(|st| *st != Some(202)) {
            problems.push(format!("{}: notification answers {statuses:?}", p.call));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(
        old_runs >= 10 && new_runs >= 5,
        "old {old_runs}, new {new_runs}"
    );
    eprintln!(
        "hot reload: {} calls ({old_runs} on the old version, {new_runs} on the new)",
        tracked.len()
    );
    assert_eq!(s.runtime.metrics().overloaded.load(Ordering::Relaxed), 0);
    // The server answered every callback POST 202.
    let metrics = s
        .http
        .get(format!("http://{}/metrics", s.addr))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let answered: Vec<(&str, u64)> = metrics
        .lines()
        .filter_map(|l| l.strip_prefix("callflow_callback_requests_total{status=\""))
        .filter_map(|l| {
            let (status, rest) = l.split_once('"')?;
            Some((status, rest.rsplit(' ').next()?.parse().ok()?))
        })
        .collect();
    assert!(
        answered.iter().any(|(st, n)| *st == "202" && *n > 0)
            && answered.iter().all(|(st, n)| *st == "202" || *n == 0),
        "callback answers: {answered:?}"
    );
    match Arc::try_unwrap(s) {
        Ok(s) => s.stop().await,
        Err(_) => panic!("the stack is still shared"),
    }
}

/// The version a session of `flow` shows when it started on `status`'s set
/// (the flow file's SHA-256).
fn first_version_label(status: &callflow::runtime::FlowsStatus, flow: &str) -> String {
    let f = status
        .flows
        .iter()
        .find(|f| f.name == flow)
        .expect("flow listed");
    f.sha256.clone()
}

/// The clinic's PIN (`collect` with `secret: true`), keyed over real HTTP,
/// is in neither the admin API's session nor its timeline; the patient
/// number (not secret) is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_pin_is_not_in_the_admin_api() {
    let flows = callflow::flow::load_paths(&[flows_dir()]).flows;
    let path = flows_dir().join("scenarios/clinic/verified.yaml");
    let (scenario, _flow, start, clock) = plan(&path, &flows);
    let dir = copy_flows();
    let sim_config = SimGraphConfig {
        behaviour: scenario.graph.clone(),
        faults: scenario_faults(),
        clock: SimClock::Manual,
        start: Some(clock),
        ..SimGraphConfig::default()
    };
    let s = stack(dir.path(), sim_config).await;
    let (id, _) = begin(&s, start).await.expect("the call starts");
    let runtime = s.runtime.clone();
    s.run_until(chrono::Duration::hours(1), || {
        runtime
            .session(&id)
            .is_some_and(|d| d.summary.state == "ended")
    })
    .await
    .expect("the call ends");
    let body = s
        .http
        .get(format!("http://{}/api/sessions/{id}", s.addr))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("the admin API answers")
        .text()
        .await
        .expect("a body");
    s.stop().await;
    assert!(
        body.contains("412345"),
        "the patient number is shown: {body}"
    );
    assert!(body.contains("collected 4 secret digits"), "{body}");
    assert!(
        !body.contains("9876"),
        "the PIN is in the admin API: {body}"
    );
    for key in ['9', '8', '7', '6'] {
        assert!(
            !body.contains(&format!("key {key}")),
            "a PIN key is shown: {body}"
        );
    }
}

/// Who sim-graph was asked to call for the session's calls (the user id or
/// the number of each `POST /communications/calls`), in the order it got them.
async fn users_rung(s: &Stack, calls: &[String]) -> Vec<String> {
    let mut rung = Vec::new();
    for call in calls {
        for r in s.requests(call).await {
            if kind_of(&r) == Some("create_call") {
                let who = &r["body"]["targets"][0]["identity"];
                let id = who["user"]["id"].as_str().or(who["phone"]["id"].as_str());
                rung.push((r["seq"].as_u64().unwrap_or(0), id.unwrap_or("?").to_owned()));
            }
        }
    }
    rung.sort();
    rung.into_iter().map(|(_, u)| u).collect()
}

/// The sales line's `round_robin` group over real HTTP: three calls one
/// after another through the server, the runtime's store handing out the
/// turns, sim-graph placing the consultation calls; each starts one agent
/// further along (Ana, Ben, then the sales desk), each agent answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn round_robin_calls_over_http_each_start_one_agent_further() {
    let dir = copy_flows();
    let start = DateTime::parse_from_rfc3339("2026-11-18T10:00:00-05:00")
        .expect("time")
        .with_timezone(&Utc);
    let sim_config = SimGraphConfig {
        faults: scenario_faults(),
        clock: SimClock::Manual,
        start: Some(start),
        ..SimGraphConfig::default()
    };
    let s = stack(dir.path(), sim_config).await;
    let ana = "6e1f3c2a-7b4d-4e9a-9c5f-1a2b3c4d5e61";
    let ben = "6e1f3c2a-7b4d-4e9a-9c5f-1a2b3c4d5e62";
    let mut first = Vec::new();
    let mut notes = Vec::new();
    for n in 0..3 {
        let call = s
            .place(
                &Party::phone(format!("+120655501{n:02}")),
                &Party::phone("+14255550107"),
            )
            .await;
        let id = s
            .session_of(&call, Duration::from_secs(30))
            .await
            .expect("a session for the call");
        let runtime = s.runtime.clone();
        s.run_until(chrono::Duration::minutes(10), || {
            runtime
                .session(&id)
                .is_some_and(|d| d.summary.state == "ended")
        })
        .await
        .expect("the call ends");
        let detail = s.runtime.session(&id).expect("the session");
        assert_eq!(
            detail.summary.outcome,
            Some(callflow::engine::Outcome::Transferred),
            "{}",
            detail.timeline_text
        );
        let mut calls = detail.summary.calls.clone();
        calls.push(call);
        let rung = users_rung(&s, &calls).await;
        first.push(rung.first().cloned().unwrap_or_default());
        notes.push(
            detail
                .timeline_text
                .lines()
                .find(|l| l.contains("ringing from target"))
                .map(|l| l.split("note").last().unwrap_or(l).trim().to_owned())
                .unwrap_or_default(),
        );
    }
    assert_eq!(first, [ana, ben, "+14255550181"], "{notes:?}");
    assert_eq!(
        notes,
        [
            "turn 0: ringing from target 1 of 3, Ana (sales)",
            "turn 1: ringing from target 2 of 3, Ben (sales)",
            "turn 2: ringing from target 3 of 3, Sales desk",
        ]
    );
    s.stop().await;
}
