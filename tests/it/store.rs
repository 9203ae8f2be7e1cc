//! Durable sessions: `callflow serve` (the real binary, in a child process)
//! against sim-graph over loopback, with its SQLite store in a temporary
//! folder; killed with `kill -9` or stopped with SIGTERM while calls wait,
//! started again on the same store, and each call finishes as it would
//! have. Also: a corrupt, a locked and a newer store refused with exit 2.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use callflow::sim::graph::BOT_APP_ID;
use callflow::sim::http::{SimGraphConfig, SimGraphServer};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::support::poll::eventually;

pub(crate) const ADMIN: &str = "store-admin-token";
pub(crate) const TENANT: &str = "sim-tenant";
pub(crate) const MENU_NUMBER: &str = "+14255550177";
pub(crate) const TIMEOUT_NUMBER: &str = "+14255550178";
pub(crate) const CONSULT_NUMBER: &str = "+14255550179";

const FLOW: &str = r#"flow: durable
trigger:
  incoming_call:
    to: ["+14255550177"]
start: greet
steps:
  greet:
    answer: {}
    next: menu
  menu:
    menu:
      prompt: https://cdn.contoso.com/menu.wav
      choices: { "1": sales }
      timeout: 1h
      retries: 0
    on_timeout: bye
    on_invalid: bye
  sales:
    transfer: { to: { phone: "+14255550123" } }
    on_failure: bye
  bye:
    hangup: {}
"#;

const TIMEOUT_FLOW: &str = r#"flow: durable-timeout
trigger:
  incoming_call:
    to: ["+14255550178"]
start: greet
steps:
  greet:
    answer: {}
    next: menu
  menu:
    menu:
      prompt: https://cdn.contoso.com/menu.wav
      choices: { "1": bye }
      timeout: 1s
      retries: 0
    on_timeout: bye
    on_invalid: bye
  bye:
    hangup: {}
"#;

/// The number of [`TIMEOUT_FLOW`] with a 3 s timeout (the cluster tests:
/// an instance killed at once, its call taken over before the timeout).
pub(crate) const SLOW_TIMEOUT_NUMBER: &str = "+14255550180";

const CONSULT_FLOW: &str = r#"flow: durable-consult
trigger:
  incoming_call:
    to: ["+14255550179"]
start: greet
steps:
  greet:
    answer: {}
    next: support
  support:
    consultative_transfer:
      to: { user: "550fae72-d251-43ec-868c-373732c2704f", tenant: "sim-tenant" }
      announce: https://cdn.contoso.com/announce.wav
      timeout: 1h
    on_failure: bye
    on_timeout: bye
  bye:
    hangup: {}
"#;

const COLLECT_NUMBER: &str = "+14255550183";
const RING_NUMBER: &str = "+14255550184";
/// The two agents of [`RING_FLOW`], who never answer.
const AGENTS: [&str; 2] = [
    "550fae72-d251-43ec-868c-373732c27051",
    "550fae72-d251-43ec-868c-373732c27052",
];

const COLLECT_FLOW: &str = r#"flow: durable-collect
trigger:
  incoming_call:
    to: ["+14255550183"]
start: greet
steps:
  greet:
    answer: {}
    next: account
  account:
    collect:
      prompt: https://cdn.contoso.com/account.wav
      into: account
      min_digits: 6
      max_digits: 6
      first_digit_timeout: 1m
      digit_timeout: 1m
    next: sales
    on_timeout: bye
    on_invalid: bye
  sales:
    transfer: { to: { phone: "+14255550123" } }
    on_failure: bye
  bye:
    hangup: {}
"#;

const RING_FLOW: &str = r#"flow: durable-ring
trigger:
  incoming_call:
    to: ["+14255550184"]
start: greet
steps:
  greet:
    answer: {}
    next: team
  team:
    ring_group:
      targets:
        - { user: "550fae72-d251-43ec-868c-373732c27051", tenant: "sim-tenant" }
        - { user: "550fae72-d251-43ec-868c-373732c27052", tenant: "sim-tenant" }
      strategy: round_robin
      ring_timeout: 2m
      max_wait: 1h
      hold_prompt: https://cdn.contoso.com/hold.wav
    on_timeout: bye
    on_failure: bye
  bye:
    hangup: {}
"#;

pub(crate) fn flows(dir: &Path) -> PathBuf {
    let flows = dir.join("flows");
    std::fs::create_dir_all(&flows).expect("flows dir");
    std::fs::write(flows.join("durable.yaml"), FLOW).expect("flow");
    std::fs::write(flows.join("durable-timeout.yaml"), TIMEOUT_FLOW).expect("flow");
    let slow = TIMEOUT_FLOW
        .replace("durable-timeout", "durable-slow-timeout")
        .replace(TIMEOUT_NUMBER, SLOW_TIMEOUT_NUMBER)
        .replace("timeout: 1s", "timeout: 3s");
    std::fs::write(flows.join("durable-slow-timeout.yaml"), slow).expect("flow");
    std::fs::write(flows.join("durable-consult.yaml"), CONSULT_FLOW).expect("flow");
    std::fs::write(flows.join("durable-collect.yaml"), COLLECT_FLOW).expect("flow");
    std::fs::write(flows.join("durable-ring.yaml"), RING_FLOW).expect("flow");
    let meeting = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("flows/meeting-join.yaml"),
    )
    .expect("the bundled meeting flow");
    std::fs::write(flows.join("meeting-join.yaml"), meeting).expect("flow");
    flows
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// What most tests here start from: a sim-graph, a temporary folder with
/// the flows and a SQLite store, and the port and callback `serve` will use.
struct Bench {
    sim: SimGraphServer,
    graph: String,
    dir: tempfile::TempDir,
    flows: PathBuf,
    store: String,
    port: u16,
    callback: String,
}

impl Bench {
    /// With sim-graph on a manual clock: it does nothing until moved.
    async fn manual() -> Bench {
        Bench::new(
            sim_with(SimGraphConfig {
                clock: callflow::sim::http::SimClock::Manual,
                ..SimGraphConfig::default()
            })
            .await,
        )
    }

    fn new(sim: SimGraphServer) -> Bench {
        let graph = sim.base_url().to_owned();
        let dir = tempfile::tempdir().expect("tempdir");
        let flows = flows(dir.path());
        let store = format!("sqlite:{}", dir.path().join("callflow.db").display());
        let port = free_port();
        let callback = format!("http://127.0.0.1:{port}/api/calls");
        Bench {
            sim,
            graph,
            dir,
            flows,
            store,
            port,
            callback,
        }
    }
}

/// `callflow serve` in production mode against sim-graph at `graph`.
pub(crate) struct Serve {
    child: Option<Child>,
    pub(crate) public: String,
    /// What it wrote on stderr, read as it goes (a pipe nobody reads fills
    /// up, and a process logging many errors then blocks).
    stderr: Option<std::thread::JoinHandle<Vec<u8>>>,
}

/// Reads `child`'s stderr to its end on a thread of its own.
fn drain_stderr(child: &mut Child) -> Option<std::thread::JoinHandle<Vec<u8>>> {
    let mut pipe = child.stderr.take()?;
    Some(std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = std::io::Read::read_to_end(&mut pipe, &mut out);
        out
    }))
}

/// What the drained stderr held, once the process exited.
fn drained(stderr: Option<std::thread::JoinHandle<Vec<u8>>>) -> String {
    stderr
        .and_then(|t| t.join().ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

fn serve_command(graph: &str, port: u16, flows: &Path, store: &str) -> Command {
    serve_command_behind(
        graph,
        port,
        &format!("http://127.0.0.1:{port}"),
        flows,
        store,
    )
}

/// `callflow serve` on `port` whose public URL (Graph's callback) is
/// `public`: a load balancer's, in the cluster tests.
pub(crate) fn serve_command_behind(
    graph: &str,
    port: u16,
    public: &str,
    flows: &Path,
    store: &str,
) -> Command {
    let public = public.to_owned();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_callflow"));
    cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args([
            "--public-url",
            &public,
            "--app-id",
            BOT_APP_ID,
            "--tenant",
            TENANT,
        ])
        .args(["--graph-url", graph, "--authority-url", graph])
        .arg("--openid-config-url")
        .arg(format!("{graph}/.well-known/OpenIdConfiguration"))
        .arg("--flows")
        .arg(flows)
        .args(["--store", store])
        .env("CALLFLOW_CLIENT_SECRET", "sim-secret")
        .env("CALLFLOW_ADMIN_TOKEN", ADMIN)
        .env_remove("RUST_LOG")
        .env_remove("CALLFLOW_STORE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

impl Serve {
    pub(crate) async fn start(graph: &str, port: u16, flows: &Path, store: &str) -> Serve {
        Serve::start_with(graph, port, flows, store, &[], &[]).await
    }

    pub(crate) async fn start_with(
        graph: &str,
        port: u16,
        flows: &Path,
        store: &str,
        extra: &[&str],
        env: &[(&str, String)],
    ) -> Serve {
        Serve::spawn(
            serve_command(graph, port, flows, store)
                .args(extra)
                .envs(env.iter().map(|(k, v)| (*k, v.as_str()))),
            port,
        )
        .await
    }

    /// Runs `cmd` (a `serve_command…`) listening on `port`; waits until ready.
    pub(crate) async fn spawn(cmd: &mut Command, port: u16) -> Serve {
        let mut child = cmd.spawn().expect("spawn callflow serve");
        let public = format!("http://127.0.0.1:{port}");
        let stderr = drain_stderr(&mut child);
        let mut serve = Serve {
            child: Some(child),
            public,
            stderr,
        };
        let http = reqwest::Client::new();
        let url = format!("{}/readyz", serve.public);
        let ready = eventually(Duration::from_secs(60), || {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let r = http.get(url).send().await.ok()?;
                (r.status() == 200).then_some(())
            }
        })
        .await;
        if ready.is_none() {
            let mut child = serve.child.take().expect("child");
            let _ = child.kill();
            let _ = child.wait();
            panic!("serve never got ready: {}", drained(serve.stderr.take()));
        }
        serve
    }

    /// A handle on a server this test did not start (a load balancer in
    /// front of several): for its admin API only.
    pub(crate) fn at(public: &str) -> Serve {
        Serve {
            child: None,
            stderr: None,
            public: public.to_owned(),
        }
    }

    pub(crate) async fn session(&self, id: &str) -> Option<Value> {
        let r = reqwest::Client::new()
            .get(format!("{}/api/sessions/{id}", self.public))
            .bearer_auth(ADMIN)
            .send()
            .await
            .ok()?;
        if r.status() != 200 {
            return None;
        }
        r.json().await.ok()
    }

    pub(crate) async fn wait_session(
        &self,
        id: &str,
        what: &str,
        ok: impl Fn(&Value) -> bool,
    ) -> Value {
        let found = eventually(Duration::from_secs(60), || async {
            self.session(id).await.filter(|s| ok(s))
        })
        .await;
        match found {
            Some(s) => s,
            None => panic!("session {id}: never {what}: {:?}", self.session(id).await),
        }
    }

    /// `kill -9`.
    pub(crate) fn kill9(mut self) {
        let mut child = self.child.take().expect("child");
        child.kill().expect("kill -9");
        let _ = child.wait();
    }

    /// SIGTERM; waits for the exit and returns its status and stderr.
    pub(crate) async fn term(mut self) -> (std::process::ExitStatus, String, Duration) {
        let mut child = self.child.take().expect("child");
        let pid = child.id();
        let started = Instant::now();
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        let stderr = self.stderr.take();
        let (status, stderr) = tokio::task::spawn_blocking(move || {
            let status = child.wait().expect("exit status");
            (status, drained(stderr))
        })
        .await
        .expect("join");
        (status, stderr, started.elapsed())
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub(crate) async fn place(graph: &str, to: &str, callback: &str) -> String {
    let placed: Value = reqwest::Client::new()
        .post(format!("{graph}/sim/calls"))
        .json(&json!({
            "from": { "phone": "+15550100" },
            "to": { "phone": to },
            "callbackUri": callback,
        }))
        .send()
        .await
        .expect("place")
        .json()
        .await
        .expect("json");
    placed["id"].as_str().expect("id").to_owned()
}

pub(crate) async fn sim_post(graph: &str, path: &str, body: Value) -> u16 {
    reqwest::Client::new()
        .post(format!("{graph}{path}"))
        .json(&body)
        .send()
        .await
        .expect("sim-graph answers")
        .status()
        .as_u16()
}

/// The requests sim-graph received for `call` and did not throttle, as
/// `METHOD last-path-segment`.
pub(crate) async fn requests(graph: &str, call: &str) -> Vec<String> {
    let v: Value = reqwest::get(format!("{graph}/sim/calls/{call}/requests"))
        .await
        .expect("requests")
        .json()
        .await
        .expect("json");
    v["value"]
        .as_array()
        .expect("requests")
        .iter()
        .filter(|r| r["status"] != 429)
        .map(|r| {
            let path = r["path"].as_str().unwrap_or("");
            let last = path.rsplit('/').next().unwrap_or("");
            let last = if last == call { "call" } else { last };
            format!("{} {last}", r["method"].as_str().unwrap_or(""))
        })
        .filter(|r| !r.starts_with("GET"))
        .collect()
}

/// Whether the call waits in its menu with the prompt played to the end
/// (its completion delivered and answered `202`).
pub(crate) async fn menu_waiting(serve: &Serve, graph: &str, call: &str) -> bool {
    let Some(s) = serve.session(call).await else {
        return false;
    };
    if s["step"] != "menu" {
        return false;
    }
    let Ok(r) = reqwest::get(format!("{graph}/sim/calls/{call}/notifications")).await else {
        return false;
    };
    let v: Value = r.json().await.unwrap_or(Value::Null);
    v["value"].as_array().is_some_and(|list| {
        list.iter().any(|d| {
            let body = d["body"].to_string();
            d["status"] == 202 && body.contains("playPromptOperation") && body.contains("completed")
        })
    })
}

/// The `POST`s sim-graph received for `call`, whole: path and body (a
/// prompt played again after a restart is a new request, with a new
/// `clientContext`; the same request sent twice has the same body).
pub(crate) async fn posts(graph: &str, call: &str) -> Vec<(String, Value)> {
    let v: Value = reqwest::get(format!("{graph}/sim/calls/{call}/requests"))
        .await
        .expect("requests")
        .json()
        .await
        .expect("json");
    v["value"]
        .as_array()
        .expect("requests")
        .iter()
        // A request Graph throttled (`429`) was not carried out: its retry
        // is not the same request sent twice.
        .filter(|r| r["method"] == "POST" && r["status"] != 429)
        .map(|r| {
            (
                r["path"].as_str().unwrap_or("").to_owned(),
                r["body"].clone(),
            )
        })
        .collect()
}

/// No Graph request of `call` was sent twice.
pub(crate) async fn no_request_twice(graph: &str, call: &str) {
    let list = posts(graph, call).await;
    for r in &list {
        let n = list.iter().filter(|x| *x == r).count();
        assert_eq!(n, 1, "{r:?} sent {n} times: {list:?}");
    }
}

pub(crate) async fn sim() -> SimGraphServer {
    sim_with(SimGraphConfig::default()).await
}

pub(crate) async fn sim_with(config: SimGraphConfig) -> SimGraphServer {
    SimGraphServer::start(
        config,
        TcpListener::bind("127.0.0.1:0").await.expect("bind"),
    )
    .await
    .expect("sim-graph")
}

/// A call waits in a menu; `serve` is killed with `kill -9`, started
/// again, stopped with SIGTERM (intake stops, it exits cleanly and in
/// bounded time, the call is not hung up), started again; the caller
/// presses 1 and is transferred: the same outcome and the same requests
/// as a call nobody interrupted, none sent twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_in_a_menu_survives_kill_9_and_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = format!("sqlite:{}", dir.path().join("data/callflow.db").display());
    menu_survives_kill_9_and_sigterm(&store).await;
}

/// [`a_call_in_a_menu_survives_kill_9_and_sigterm`] on the store `store`
/// (the PostgreSQL tests run it too).
pub(crate) async fn menu_survives_kill_9_and_sigterm(store: &str) {
    callflow::graph::client::install_tls_provider();
    let sim = sim().await;
    let graph = sim.base_url().to_owned();
    let dir = tempfile::tempdir().expect("tempdir");
    let flows = flows(dir.path());
    let store = store.to_owned();
    let port = free_port();
    let callback = format!("http://127.0.0.1:{port}/api/calls");

    let serve = Serve::start(&graph, port, &flows, &store).await;
    // The uninterrupted run.
    let plain = place(&graph, MENU_NUMBER, &callback).await;
    eventually(Duration::from_secs(60), || async {
        menu_waiting(&serve, &graph, &plain).await.then_some(())
    })
    .await
    .expect("the plain call waits in its menu");
    assert!(
        (200..300).contains(
            &sim_post(
                &graph,
                &format!("/sim/calls/{plain}/press"),
                json!({"digits": "1"})
            )
            .await
        )
    );
    let ended = serve
        .wait_session(&plain, "ended", |s| s["state"] == "ended")
        .await;
    assert_eq!(ended["outcome"], "transferred", "{ended}");
    let plain_requests = requests(&graph, &plain).await;

    // The interrupted one.
    let call = place(&graph, MENU_NUMBER, &callback).await;
    eventually(Duration::from_secs(60), || async {
        menu_waiting(&serve, &graph, &call).await.then_some(())
    })
    .await
    .expect("the call waits in its menu");
    serve.kill9();

    let serve = Serve::start(&graph, port, &flows, &store).await;
    let s = serve
        .wait_session(&call, "recovered in its menu", |s| {
            s["step"] == "menu" && s["state"] == "running"
        })
        .await;
    assert_eq!(s["flow"], "durable");

    let (status, stderr, took) = serve.term().await;
    assert!(status.success(), "SIGTERM: {status:?}\n{stderr}");
    assert!(took < Duration::from_secs(20), "SIGTERM took {took:?}");
    assert!(
        !requests(&graph, &call)
            .await
            .iter()
            .any(|r| r.starts_with("DELETE")),
        "a graceful stop hung the call up"
    );

    let serve = Serve::start(&graph, port, &flows, &store).await;
    serve
        .wait_session(&call, "recovered again", |s| s["step"] == "menu")
        .await;
    assert!(
        (200..300).contains(
            &sim_post(
                &graph,
                &format!("/sim/calls/{call}/press"),
                json!({"digits": "1"})
            )
            .await
        )
    );
    let ended = serve
        .wait_session(&call, "ended", |s| s["state"] == "ended")
        .await;
    assert_eq!(ended["outcome"], "transferred", "{ended}");
    let list = requests(&graph, &call).await;
    no_request_twice(&graph, &call).await;
    // Each restart found the caller in the menu: its prompt played again.
    let prompts = |l: &[String]| l.iter().filter(|r| *r == "POST playPrompt").count();
    assert_eq!(
        prompts(&list),
        prompts(&plain_requests) + 2,
        "the menu prompt played again after each restart: {list:?}"
    );
    let others = |l: &[String]| {
        l.iter()
            .filter(|r| *r != "POST playPrompt")
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        others(&list),
        others(&plain_requests),
        "otherwise the same requests as the uninterrupted call"
    );
    let s = serve.session(&call).await.expect("session");
    assert!(
        s["timeline_text"]
            .as_str()
            .is_some_and(|t| t.contains("resumed after a restart")
                && t.contains("the menu plays its prompt again")),
        "{s}"
    );
    // Both calls are kept; the list comes a page at a time.
    let page: Value = reqwest::Client::new()
        .get(format!("{}/api/sessions?limit=1", serve.public))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("sessions")
        .json()
        .await
        .expect("json");
    assert_eq!(page["sessions"].as_array().map(Vec::len), Some(1), "{page}");
    assert_eq!(page["next"], 1, "{page}");
    drop(serve);
    let _ = sim.shutdown().await;
}

/// While `serve` is down, one call's menu timeout passes and another call
/// is hung up by its caller. At restart the timeout fires at once (the flow
/// says goodbye and hangs up), and the hung-up call's session ends as
/// `caller_hung_up` after a `GET` of the call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlines_and_hang_ups_while_down_are_applied_at_restart() {
    callflow::graph::client::install_tls_provider();
    let Bench {
        sim,
        graph,
        dir: _dir,
        flows,
        store,
        port,
        callback,
    } = Bench::new(sim().await);

    let serve = Serve::start(&graph, port, &flows, &store).await;
    let hung = place(&graph, MENU_NUMBER, &callback).await;
    eventually(Duration::from_secs(60), || async {
        menu_waiting(&serve, &graph, &hung).await.then_some(())
    })
    .await
    .expect("the first call waits in its menu");
    let timed = place(&graph, TIMEOUT_NUMBER, &callback).await;
    // Killed as soon as the second call's prompt has played: its 1 s
    // timeout runs out while the server is down.
    eventually(Duration::from_secs(60), || async {
        menu_waiting(&serve, &graph, &timed).await.then_some(())
    })
    .await
    .expect("the second call waits in its menu");
    serve.kill9();
    let killed = Instant::now();
    assert!(
        (200..300)
            .contains(&sim_post(&graph, &format!("/sim/calls/{hung}/hangup"), json!({})).await)
    );
    eventually(Duration::from_secs(10), || async {
        (killed.elapsed() > Duration::from_millis(1500)).then_some(())
    })
    .await;

    let serve = Serve::start(&graph, port, &flows, &store).await;
    let ended = serve
        .wait_session(&hung, "ended", |s| s["state"] == "ended")
        .await;
    assert_eq!(ended["outcome"], "caller_hung_up", "{ended}");
    let ended = serve
        .wait_session(&timed, "ended", |s| s["state"] == "ended")
        .await;
    assert_eq!(ended["outcome"], "hung_up", "{ended}");
    assert!(
        ended["timeline_text"].to_string().contains("bye"),
        "the timeout led to bye: {ended}"
    );
    no_request_twice(&graph, &timed).await;
    no_request_twice(&graph, &hung).await;
    // The timed-out menu did not play its prompt again: its timer fired.
    assert_eq!(
        requests(&graph, &timed)
            .await
            .iter()
            .filter(|r| *r == "POST playPrompt")
            .count(),
        1
    );
    drop(serve);
    let _ = sim.shutdown().await;
}

fn refused(flows: &Path, store: &str) -> (i32, String) {
    let port = free_port();
    let out = serve_command("http://127.0.0.1:9", port, flows, store)
        .output()
        .expect("run serve");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A file that is not a store, a store a newer callflow wrote, and a store
/// another server holds: each a clear error, exit status 2, the file left
/// as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_stores_are_refused_and_left_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let flows = flows(dir.path());

    let corrupt = dir.path().join("corrupt.db");
    let garbage = b"this is not a database, it is a file somebody wrote by mistake".repeat(100);
    std::fs::write(&corrupt, &garbage).expect("write");
    let (code, stderr) = refused(&flows, &format!("sqlite:{}", corrupt.display()));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("corrupt"), "{stderr}");
    assert_eq!(
        std::fs::read(&corrupt).expect("read"),
        garbage,
        "the file was changed"
    );

    let newer = dir.path().join("newer.db");
    {
        let conn = rusqlite::Connection::open(&newer).expect("sqlite");
        conn.execute_batch("CREATE TABLE future (x); PRAGMA user_version = 99;")
            .expect("schema");
    }
    let before = std::fs::read(&newer).expect("read");
    let (code, stderr) = refused(&flows, &format!("sqlite:{}", newer.display()));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("newer callflow"), "{stderr}");
    assert_eq!(
        std::fs::read(&newer).expect("read"),
        before,
        "the file was changed"
    );

    let sim = sim().await;
    let graph = sim.base_url().to_owned();
    let held = format!("sqlite:{}", dir.path().join("held.db").display());
    let first = Serve::start(&graph, free_port(), &flows, &held).await;
    let (code, stderr) = refused(&flows, &held);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("locked"), "{stderr}");
    drop(first);
    let _ = sim.shutdown().await;
}

/// sim-graph on a manual clock, moved on a quarter second at a time until
/// `ok` holds: Graph does nothing while `serve` is down or restarting, so
/// where each kill falls is chosen exactly.
pub(crate) async fn drive<F, Fut>(sim: &SimGraphServer, what: &str, ok: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let reached = eventually(Duration::from_secs(60), || async {
        sim.advance(Duration::from_millis(250)).await;
        ok().await.then_some(())
    })
    .await;
    assert!(reached.is_some(), "never {what}");
}

/// Whether `serve` answered `202` to a notification of `call` whose body
/// contains `text`.
pub(crate) async fn acknowledged(graph: &str, call: &str, text: &str) -> bool {
    let Ok(r) = reqwest::get(format!("{graph}/sim/calls/{call}/notifications")).await else {
        return false;
    };
    let v: Value = r.json().await.unwrap_or(Value::Null);
    v["value"].as_array().is_some_and(|list| {
        list.iter()
            .any(|d| d["status"] == 202 && d["body"].to_string().contains(text))
    })
}

/// The call's state as sim-graph holds it.
pub(crate) async fn sim_state(graph: &str, call: &str) -> Option<String> {
    let v: Value = reqwest::get(format!("{graph}/sim/calls/{call}"))
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    v["call"]["state"].as_str().map(str::to_owned)
}

pub(crate) async fn press(graph: &str, call: &str, digits: &str) {
    let status = sim_post(
        graph,
        &format!("/sim/calls/{call}/press"),
        json!({ "digits": digits }),
    )
    .await;
    assert!((200..300).contains(&status), "press: {status}");
}

pub(crate) async fn set_call_faults(graph: &str, call: &str, faults: Option<Value>) {
    let http = reqwest::Client::new();
    let url = format!("{graph}/sim/calls/{call}/faults");
    let r = match faults {
        Some(f) => http.put(url).json(&f).send().await,
        None => http.delete(url).send().await,
    }
    .expect("faults");
    assert!(r.status().is_success(), "faults: {}", r.status());
}

/// A call placed into the menu flow and driven until its menu waits.
async fn in_menu(sim: &SimGraphServer, serve: &Serve, callback: &str) -> String {
    let graph = sim.base_url().to_owned();
    let call = place(&graph, MENU_NUMBER, callback).await;
    drive(sim, "in the menu", || menu_waiting(serve, &graph, &call)).await;
    call
}

pub(crate) async fn drive_to_end(sim: &SimGraphServer, serve: &Serve, call: &str) -> Value {
    let ended = std::sync::Mutex::new(None);
    drive(sim, "ended", || async {
        let s = serve.session(call).await.filter(|s| s["state"] == "ended");
        let found = s.is_some();
        if let Some(s) = s {
            *ended.lock().expect("lock") = Some(s);
        }
        found
    })
    .await;
    ended.into_inner().expect("lock").expect("session")
}

/// Blind transfers, with sim-graph on a manual clock. One call is killed
/// with `kill -9` while its transfer is under way (Graph accepted it and
/// said `transferring`); another while the transfer request had reached
/// Graph and taken effect but its answer had not come back (sim-graph
/// holds it): after the restart, the request in flight is settled by a
/// `GET` of the call (which shows the transfer under way), not sent again.
/// Both end `transferred` with the same requests as a call nobody
/// interrupted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_blind_transfer_and_before_its_answer() {
    callflow::graph::client::install_tls_provider();
    let Bench {
        sim,
        graph,
        dir: _dir,
        flows,
        store,
        port,
        callback,
    } = Bench::new(
        sim_with(SimGraphConfig {
            clock: callflow::sim::http::SimClock::Manual,
            ..SimGraphConfig::default()
        })
        .await,
    );

    let serve = Serve::start(&graph, port, &flows, &store).await;
    let plain = in_menu(&sim, &serve, &callback).await;
    press(&graph, &plain, "1").await;
    let ended = drive_to_end(&sim, &serve, &plain).await;
    assert_eq!(ended["outcome"], "transferred", "{ended}");
    let plain_requests = requests(&graph, &plain).await;
    assert!(plain_requests.contains(&"POST transfer".to_owned()));

    // Killed while the transfer is under way.
    let during = in_menu(&sim, &serve, &callback).await;
    press(&graph, &during, "1").await;
    drive(&sim, "transferring", || {
        acknowledged(&graph, &during, "transferring")
    })
    .await;
    serve.kill9();
    let serve = Serve::start(&graph, port, &flows, &store).await;
    let ended = drive_to_end(&sim, &serve, &during).await;
    assert_eq!(ended["outcome"], "transferred", "{ended}");
    no_request_twice(&graph, &during).await;
    assert_eq!(requests(&graph, &during).await, plain_requests);

    // Killed between the transfer request and its answer.
    let inflight = in_menu(&sim, &serve, &callback).await;
    set_call_faults(&graph, &inflight, Some(json!({ "hold_answers": "10m" }))).await;
    press(&graph, &inflight, "1").await;
    drive(&sim, "transfer sent and under way", || async {
        requests(&graph, &inflight)
            .await
            .contains(&"POST transfer".to_owned())
            && acknowledged(&graph, &inflight, "transferring").await
    })
    .await;
    serve.kill9();
    set_call_faults(&graph, &inflight, None).await;
    let serve = Serve::start(&graph, port, &flows, &store).await;
    let ended = drive_to_end(&sim, &serve, &inflight).await;
    assert_eq!(ended["outcome"], "transferred", "{ended}");
    no_request_twice(&graph, &inflight).await;
    assert_eq!(requests(&graph, &inflight).await, plain_requests);
    drop(serve);
    let _ = sim.shutdown().await;
}

/// A consultative transfer killed with `kill -9` while both legs are up
/// (the caller held, the target answered and hearing the announcement):
/// after the restart both calls are reconciled and the transfer completes,
/// with the same requests on both calls as an uninterrupted one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_consultative_transfer_with_both_legs_up() {
    callflow::graph::client::install_tls_provider();
    let Bench {
        sim,
        graph,
        dir: _dir,
        flows,
        store,
        port,
        callback,
    } = Bench::new(
        sim_with(SimGraphConfig {
            clock: callflow::sim::http::SimClock::Manual,
            ..SimGraphConfig::default()
        })
        .await,
    );

    let serve = Serve::start(&graph, port, &flows, &store).await;
    let plain = place(&graph, CONSULT_NUMBER, &callback).await;
    let ended = drive_to_end(&sim, &serve, &plain).await;
    assert_eq!(ended["outcome"], "transferred", "{ended}");
    let plain_calls = ended["calls"].as_array().expect("calls").clone();
    assert_eq!(plain_calls.len(), 2, "{ended}");
    let plain_main = requests(&graph, &plain).await;
    let plain_consult = requests(&graph, plain_calls[1].as_str().expect("id")).await;

    let call = place(&graph, CONSULT_NUMBER, &callback).await;
    let both_up = || async {
        let Some(s) = serve.session(&call).await else {
            return false;
        };
        let Some(consult) = s["calls"].get(1).and_then(Value::as_str) else {
            return false;
        };
        sim_state(&graph, consult).await.as_deref() == Some("established")
            && acknowledged(&graph, consult, "established").await
            && sim_state(&graph, &call).await.as_deref() == Some("established")
    };
    drive(&sim, "both legs up", both_up).await;
    let consult = serve.session(&call).await.expect("session")["calls"][1]
        .as_str()
        .expect("consult id")
        .to_owned();
    serve.kill9();
    let serve = Serve::start(&graph, port, &flows, &store).await;
    let ended = drive_to_end(&sim, &serve, &call).await;
    assert_eq!(ended["outcome"], "transferred", "{ended}");
    no_request_twice(&graph, &call).await;
    no_request_twice(&graph, &consult).await;
    assert_eq!(requests(&graph, &call).await, plain_main);
    assert_eq!(requests(&graph, &consult).await, plain_consult);
    drop(serve);
    let _ = sim.shutdown().await;
}

pub(crate) async fn start_meeting(serve: &Serve) -> String {
    let r: Value = reqwest::Client::new()
        .post(format!("{}/api/flows/meeting-join/runs", serve.public))
        .bearer_auth(ADMIN)
        .json(&json!({ "params": { "meeting_id": "1234567890", "passcode": "abc" } }))
        .send()
        .await
        .expect("start")
        .json()
        .await
        .expect("json");
    r["session"].as_str().expect("session id").to_owned()
}

pub(crate) async fn meeting_call(serve: &Serve, id: &str) -> Option<String> {
    let s = serve.session(id).await?;
    s["calls"].get(0).and_then(Value::as_str).map(str::to_owned)
}

/// Drives a meeting run until it stays in the meeting, ends the meeting,
/// and drives it to its end.
pub(crate) async fn meeting_to_end(
    sim: &SimGraphServer,
    serve: &Serve,
    id: &str,
) -> (Value, String) {
    let graph = sim.base_url().to_owned();
    drive(sim, "staying in the meeting", || async {
        serve.session(id).await.is_some_and(|s| s["step"] == "stay")
    })
    .await;
    let call = meeting_call(serve, id).await.expect("call");
    assert!(
        (200..300)
            .contains(&sim_post(&graph, &format!("/sim/calls/{call}/hangup"), json!({})).await)
    );
    (drive_to_end(sim, serve, id).await, call)
}

/// The bundled meeting-join flow, killed with `kill -9` while its meeting
/// call is establishing: after the restart the join completes, the notice
/// plays once, and the run ends `joined` when the meeting ends, with the
/// same requests as an uninterrupted join.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_a_meeting_join_is_establishing() {
    callflow::graph::client::install_tls_provider();
    let sim = sim_with(SimGraphConfig {
        clock: callflow::sim::http::SimClock::Manual,
        ..SimGraphConfig::default()
    })
    .await;
    let graph = sim.base_url().to_owned();
    let dir = tempfile::tempdir().expect("tempdir");
    let flows = flows(dir.path());
    let store = format!("sqlite:{}", dir.path().join("callflow.db").display());
    let port = free_port();

    let serve = Serve::start(&graph, port, &flows, &store).await;
    let plain = start_meeting(&serve).await;
    let (ended, plain_call) = meeting_to_end(&sim, &serve, &plain).await;
    assert_eq!(ended["outcome"], "joined", "{ended}");
    let plain_requests = requests(&graph, &plain_call).await;
    assert!(plain_requests.contains(&"POST playPrompt".to_owned()));

    let id = start_meeting(&serve).await;
    drive(&sim, "establishing", || async {
        match meeting_call(&serve, &id).await {
            Some(call) => {
                sim_state(&graph, &call).await.as_deref() == Some("establishing")
                    && acknowledged(&graph, &call, "establishing").await
            }
            None => false,
        }
    })
    .await;
    serve.kill9();
    let serve = Serve::start(&graph, port, &flows, &store).await;
    let (ended, call) = meeting_to_end(&sim, &serve, &id).await;
    assert_eq!(ended["outcome"], "joined", "{ended}");
    no_request_twice(&graph, &call).await;
    assert_eq!(requests(&graph, &call).await, plain_requests);
    drop(serve);
    let _ = sim.shutdown().await;
}

async fn list(serve: &Serve, query: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{}/api/sessions{query}", serve.public))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("sessions")
        .json()
        .await
        .expect("json")
}

fn listed(page: &Value, id: &str) -> bool {
    page["sessions"]
        .as_array()
        .is_some_and(|l| l.iter().any(|s| s["id"] == id))
}

/// Ended calls are read back from the store: after a restart they are
/// still listed by `/api/sessions` (a page at a time) and shown by
/// `/api/sessions/{id}` with their timeline, until `--keep-ended` removes
/// them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ended_sessions_outlive_a_restart_until_keep_ended_removes_them() {
    callflow::graph::client::install_tls_provider();
    let Bench {
        sim,
        graph,
        dir: _dir,
        flows,
        store,
        port,
        callback,
    } = Bench::new(sim().await);

    let serve = Serve::start(&graph, port, &flows, &store).await;
    let mut ended = Vec::new();
    for _ in 0..2 {
        let call = place(&graph, MENU_NUMBER, &callback).await;
        eventually(Duration::from_secs(60), || async {
            menu_waiting(&serve, &graph, &call).await.then_some(())
        })
        .await
        .expect("in the menu");
        press(&graph, &call, "1").await;
        serve
            .wait_session(&call, "ended", |s| s["state"] == "ended")
            .await;
        ended.push(call);
    }
    let (status, stderr, _) = serve.term().await;
    assert!(status.success(), "{stderr}");

    let serve = Serve::start(&graph, port, &flows, &store).await;
    let page = list(&serve, "").await;
    assert_eq!(page["total"], 2, "{page}");
    for call in &ended {
        assert!(
            listed(&page, call),
            "{call} listed after the restart: {page}"
        );
        let s = serve.session(call).await.expect("shown after the restart");
        assert_eq!(s["outcome"], "transferred", "{s}");
        assert_eq!(s["step"], "sales", "{s}");
        assert!(s["timeline_text"].to_string().contains("transfer"), "{s}");
    }
    let first = list(&serve, "?limit=1").await;
    assert_eq!(first["next"], 1, "{first}");
    let second = list(&serve, "?offset=1&limit=1").await;
    assert_eq!(second["next"], Value::Null, "{second}");
    assert_ne!(first["sessions"][0]["id"], second["sessions"][0]["id"]);
    drop(serve);

    // Kept for one second: both are removed, from the list and the store.
    let serve = Serve::start_with(&graph, port, &flows, &store, &["--keep-ended", "1s"], &[]).await;
    eventually(Duration::from_secs(30), || async {
        let page = list(&serve, "").await;
        (page["total"] == 0).then_some(())
    })
    .await
    .expect("ended sessions removed after --keep-ended");
    for call in &ended {
        assert!(serve.session(call).await.is_none(), "{call} still shown");
    }
    drop(serve);
    let _ = sim.shutdown().await;
}

fn callflow(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_callflow"))
        .args(args)
        .env("CALLFLOW_ADMIN_TOKEN", ADMIN)
        .env_remove("CALLFLOW_URL")
        .output()
        .expect("run callflow");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// A call that went through a menu to a transfer (with a `kill -9` on
/// the way) is exported by `callflow sessions export` (through the admin
/// API: the server holds the store) as a scenario replaying its recorded
/// notifications; `callflow test` passes it against the flow, and fails
/// it against an edited flow that sends the key elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_call_is_exported_as_a_replay_scenario_that_callflow_test_runs() {
    callflow::graph::client::install_tls_provider();
    let Bench {
        sim,
        graph,
        dir,
        flows,
        store,
        port,
        callback,
    } = Bench::new(sim().await);

    let serve = Serve::start(&graph, port, &flows, &store).await;
    let call = place(&graph, MENU_NUMBER, &callback).await;
    eventually(Duration::from_secs(60), || async {
        menu_waiting(&serve, &graph, &call).await.then_some(())
    })
    .await
    .expect("in the menu");
    serve.kill9();
    let serve = Serve::start(&graph, port, &flows, &store).await;
    serve
        .wait_session(&call, "recovered", |s| s["step"] == "menu")
        .await;
    press(&graph, &call, "1").await;
    serve
        .wait_session(&call, "ended", |s| s["state"] == "ended")
        .await;

    let out = dir.path().join("exported");
    let (ok, text) = callflow(&[
        "sessions",
        "export",
        &call,
        "--out",
        &out.display().to_string(),
        "--url",
        &serve.public,
    ]);
    assert!(ok, "{text}");
    let scenario_path = out.join(format!("{call}.yaml"));
    let scenario = std::fs::read_to_string(&scenario_path).expect("the scenario");
    assert!(
        text.contains(&scenario_path.display().to_string()),
        "{text}"
    );
    assert!(scenario.contains("flow: durable"), "{scenario}");
    assert!(
        scenario.contains(&format!("replay: recordings/{call}.jsonl")),
        "{scenario}"
    );
    assert!(scenario.contains("transfer"), "{scenario}");
    assert!(scenario.contains("end: transferred"), "{scenario}");
    let recording =
        std::fs::read_to_string(out.join(format!("recordings/{call}.jsonl"))).expect("recording");
    assert!(recording.lines().count() >= 4, "{recording}");
    assert!(recording.contains("\"incoming\""), "{recording}");

    let (ok, text) = callflow(&[
        "test",
        &flows.display().to_string(),
        &out.display().to_string(),
    ]);
    assert!(
        ok,
        "the exported call replays as it ran:\n{text}\n{scenario}"
    );

    // The same call against a flow where 1 now hangs up: the replay fails.
    let edited = dir.path().join("edited");
    std::fs::create_dir_all(&edited).expect("dir");
    std::fs::write(
        edited.join("durable.yaml"),
        FLOW.replace(r#"choices: { "1": sales }"#, r#"choices: { "1": bye }"#),
    )
    .expect("edited flow");
    let (ok, text) = callflow(&[
        "test",
        &edited.display().to_string(),
        &out.display().to_string(),
    ]);
    assert!(!ok, "an edited flow fails the replay:\n{text}");
    drop(serve);
    let _ = sim.shutdown().await;
}

/// A store written by the previous schema (version 1: applied journal
/// entries were deleted, no bodies kept) is migrated in place: its live
/// session and its unapplied journal entry come back.
#[test]
fn a_store_of_the_previous_schema_is_migrated() {
    use callflow::runtime::store::{Store, sqlite};
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("v1.db");
    {
        let conn = rusqlite::Connection::open(&path).expect("sqlite");
        conn.execute_batch(sqlite::MIGRATIONS[0])
            .expect("v1 schema");
        conn.execute_batch(
            "PRAGMA user_version = 1;
             INSERT INTO sessions VALUES ('s1', 'f', 'h', 1, '{}', '2026-01-01T00:00:00Z', NULL);
             INSERT INTO journal VALUES (7, '\"resumed\"', '2026-01-01T00:00:00Z');",
        )
        .expect("v1 rows");
    }
    let store = sqlite::SqliteStore::open(&path).expect("migrated");
    let recovered = store.recover().expect("recover");
    assert_eq!(recovered.sessions.len(), 1);
    assert_eq!(recovered.journal.len(), 1);
    assert_eq!(recovered.journal[0].seq, 7);
    drop(store);
    let conn = rusqlite::Connection::open(&path).expect("sqlite");
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(version as usize, sqlite::MIGRATIONS.len());
}

/// A store of schema 4 (journal entries marked in their own rows with the
/// session that applied them) is migrated to the tables of version 5: the
/// entry no session applied is replayed, the others stay the session's
/// (its recording), and a purge removes them with it.
#[test]
fn a_store_of_schema_4_keeps_its_applied_and_pending_entries() {
    use callflow::runtime::store::{Store, Write, sqlite};
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("v4.db");
    {
        let conn = rusqlite::Connection::open(&path).expect("sqlite");
        for sql in &sqlite::MIGRATIONS[..4] {
            conn.execute_batch(sql).expect("schema 4");
        }
        conn.execute_batch(
            "PRAGMA user_version = 4;
             INSERT INTO sessions VALUES ('s1', 'f', 'h', 0, '{}', '2026-01-01T00:00:00Z',
               '2026-01-01T00:00:00Z');
             INSERT INTO journal VALUES (1, '\"a\"', '2026-01-01T00:00:00Z', 's1', 'body 1');
             INSERT INTO journal VALUES (2, '\"b\"', '2026-01-01T00:00:01Z', 's1', NULL);
             INSERT INTO journal VALUES (3, '\"c\"', '2026-01-01T00:00:02Z', NULL, 'body 3');",
        )
        .expect("v4 rows");
    }
    let store = sqlite::SqliteStore::open(&path).expect("migrated");
    let recovered = store.recover().expect("recover");
    assert_eq!(
        recovered.journal.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [3],
        "only the entry no session applied is replayed"
    );
    let recording = store.recording("s1").expect("recording");
    assert_eq!(
        recording
            .iter()
            .map(|(_, b)| b.as_str())
            .collect::<Vec<_>>(),
        ["body 1"],
        "the bodies s1 applied stay its own"
    );
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let far = chrono::DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z")
        .expect("time")
        .with_timezone(&chrono::Utc);
    rt.block_on(store.write(vec![Write::Purge {
        ended_before: far,
        journal_before: far,
    }]))
    .expect("purge");
    assert_eq!(store.session("s1").expect("read"), None);
    assert!(store.recover().expect("recover").journal.is_empty());
    drop(store);
    let conn = rusqlite::Connection::open(&path).expect("sqlite");
    let left: i64 = conn
        .query_row(
            "SELECT (SELECT count(*) FROM journal) + (SELECT count(*) FROM pending)
               + (SELECT count(*) FROM applied) + (SELECT count(*) FROM unpend)",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(
        left, 0,
        "the purge leaves no journal row, pending or applied mark"
    );
}

/// A small filesystem of its own (`tmpfs`, `size=`), for the full-disk
/// test; `None` (with one notice) where mounting is not permitted.
struct SmallDisk {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().ok()?;
        let path = dir.path().join("disk");
        std::fs::create_dir_all(&path).ok()?;
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            eprintln!("skipped: mounting a size-limited tmpfs is not permitted here");
            return None;
        }
        Some(SmallDisk { path, _dir: dir })
    }

    /// Fills what space is left with a file; returns its path.
    fn fill(&self) -> PathBuf {
        use std::io::Write as _;
        let filler = self.path.join("filler");
        let mut f = std::fs::File::create(&filler).expect("filler");
        let chunk = vec![0u8; 4096];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.sync_all();
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// A new call placed while `serve`'s store cannot write: its first
/// notification is answered `503`, nothing runs, the error is counted.
pub(crate) async fn refused_while_unstored(serve: &Serve, graph: &str, callback: &str) {
    let refused = place(graph, MENU_NUMBER, callback).await;
    let delivery = eventually(Duration::from_secs(30), || async {
        let v: Value = reqwest::get(format!("{graph}/sim/calls/{refused}/notifications"))
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        v["value"].as_array()?.first().cloned()
    })
    .await
    .expect("the incoming call was posted");
    assert_eq!(delivery["status"], 503, "{delivery}");
    assert!(
        serve.session(&refused).await.is_none(),
        "nothing runs that was not stored"
    );
    assert!(metric(serve, "callflow_store_errors_total").await >= 1.0);
}

pub(crate) async fn metric(serve: &Serve, name: &str) -> f64 {
    let text = reqwest::Client::new()
        .get(format!("{}/metrics", serve.public))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// The store's disk fills up while `serve` runs: notifications are
/// answered `503` with `Retry-After` (nothing acknowledged that is not
/// stored), counted and logged; once space is freed, new calls are
/// journaled and run again, with no restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_turns_notifications_into_503_until_space_returns() {
    let Some(disk) = SmallDisk::mount("4m") else {
        return;
    };
    callflow::graph::client::install_tls_provider();
    let sim = sim().await;
    let graph = sim.base_url().to_owned();
    let dir = tempfile::tempdir().expect("tempdir");
    let flows = flows(dir.path());
    let store = format!("sqlite:{}", disk.path.join("callflow.db").display());
    let port = free_port();
    let callback = format!("http://127.0.0.1:{port}/api/calls");
    let serve = Serve::start(&graph, port, &flows, &store).await;

    let filler = disk.fill();
    refused_while_unstored(&serve, &graph, &callback).await;

    std::fs::remove_file(&filler).expect("free the space");
    let call = place(&graph, MENU_NUMBER, &callback).await;
    eventually(Duration::from_secs(60), || async {
        menu_waiting(&serve, &graph, &call).await.then_some(())
    })
    .await
    .expect("a call after the space returned runs");
    let (_, stderr, _) = serve.term().await;
    assert!(
        stderr.contains("could not be journaled") && stderr.contains("full"),
        "logged: {stderr}"
    );
    drop(disk);
    let _ = sim.shutdown().await;
}

/// A bearer token sim-graph signs its notifications with: a call placed to
/// a loopback sink of the test's own, whose first notification carries it.
/// What the test needs to post a notification again, as Graph would.
pub(crate) async fn graph_token(sim: &SimGraphServer) -> String {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let app = axum::Router::new().fallback(move |headers: axum::http::HeaderMap| {
        let tx = tx.clone();
        async move {
            if let Some(v) = headers.get("authorization").and_then(|v| v.to_str().ok()) {
                let _ = tx.send(v.to_owned());
            }
            axum::http::StatusCode::ACCEPTED
        }
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let sink = format!("http://{}/sink", listener.local_addr().expect("addr"));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    place(sim.base_url(), "+14255550999", &sink).await;
    let token = eventually(Duration::from_secs(20), || {
        let got = rx.try_recv().ok();
        async move {
            if got.is_none() {
                sim.advance(Duration::from_millis(100)).await;
            }
            got
        }
    })
    .await
    .expect("sim-graph signs a notification to the sink");
    server.abort();
    token
}

/// POSTs a notification body to the callback with `authorization`: its
/// status and `Retry-After`, or why it got none.
pub(crate) async fn post_notification(
    callback: &str,
    authorization: &str,
    body: &Value,
) -> Result<(u16, Option<String>), String> {
    let r = reqwest::Client::new()
        .post(callback)
        .header("authorization", authorization)
        .json(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let retry = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Ok((r.status().as_u16(), retry))
}

pub(crate) fn count(list: &[String], what: &str) -> usize {
    list.iter().filter(|r| *r == what).count()
}

/// `kill -9` exactly before a `202` goes out and exactly after it, with
/// the server's test hold (`CALLFLOW_TEST_HOLD`: the key's notification
/// is journaled and not applied; `before-202` never answers it). Before:
/// the caller's key got no `202`, so it is posted again, as Graph would,
/// after the restart; the journal already had it: it is applied once (one
/// transfer). After: the `202` went out and nothing was applied before the
/// kill; the restart applies it from the journal. Both calls end as one
/// nobody interrupted, with the same requests, none sent twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_exactly_before_and_after_a_202() {
    callflow::graph::client::install_tls_provider();
    let Bench {
        sim,
        graph,
        dir,
        flows,
        store,
        port,
        callback,
    } = Bench::manual().await;
    let token = graph_token(&sim).await;
    let notifier = callflow::sim::notify::Notifier {
        callback_uri: callback.clone(),
        legacy: false,
    };
    let mark = dir.path().join("held");
    let hold = |when: &str| {
        vec![
            ("CALLFLOW_TEST_HOLD", format!("{when}:\"tone\":\"tone1\"")),
            ("CALLFLOW_TEST_HOLD_MARK", mark.display().to_string()),
        ]
    };

    let serve = Serve::start(&graph, port, &flows, &store).await;
    let plain = in_menu(&sim, &serve, &callback).await;
    let key = notifier.tone(&plain, '1', 1);
    let answered = post_notification(&callback, &token, &key).await;
    assert_eq!(answered, Ok((202, None)));
    let ended = drive_to_end(&sim, &serve, &plain).await;
    assert_eq!(ended["outcome"], "transferred", "{ended}");
    let plain_requests = requests(&graph, &plain).await;
    assert_eq!(
        count(&plain_requests, "POST transfer"),
        1,
        "{plain_requests:?}"
    );
    serve.kill9();

    // Exactly before the 202: journaled, not answered, killed.
    let serve = Serve::start_with(&graph, port, &flows, &store, &[], &hold("before-202")).await;
    let before = in_menu(&sim, &serve, &callback).await;
    let key = notifier.tone(&before, '1', 1);
    let posting = tokio::spawn({
        let (callback, token, key) = (callback.clone(), token.clone(), key.clone());
        async move { post_notification(&callback, &token, &key).await }
    });
    eventually(Duration::from_secs(30), || async {
        (std::fs::read_to_string(&mark).ok().as_deref() == Some("before-202")).then_some(())
    })
    .await
    .expect("the key's notification is held before its 202");
    serve.kill9();
    let answer = posting.await.expect("join");
    assert!(
        answer.is_err(),
        "no answer went out before the kill: {answer:?}"
    );
    assert!(
        !requests(&graph, &before)
            .await
            .contains(&"POST transfer".to_owned())
    );
    std::fs::remove_file(&mark).expect("mark");
    let serve = Serve::start(&graph, port, &flows, &store).await;
    // Graph had no 202: it posts the notification again.
    let again = post_notification(&callback, &token, &key).await;
    assert_eq!(again, Ok((202, None)));
    let ended = drive_to_end(&sim, &serve, &before).await;
    assert_eq!(ended["outcome"], "transferred", "{ended}");
    no_request_twice(&graph, &before).await;
    let list = requests(&graph, &before).await;
    assert_eq!(count(&list, "POST transfer"), 1, "applied once: {list:?}");
    assert_eq!(list, plain_requests);
    serve.kill9();

    // Exactly after the 202: answered, not applied, killed.
    let serve = Serve::start_with(&graph, port, &flows, &store, &[], &hold("after-202")).await;
    let after = in_menu(&sim, &serve, &callback).await;
    let key = notifier.tone(&after, '1', 1);
    let answered = post_notification(&callback, &token, &key).await;
    assert_eq!(answered, Ok((202, None)));
    assert_eq!(
        std::fs::read_to_string(&mark).ok().as_deref(),
        Some("after-202")
    );
    serve.kill9();
    assert!(
        !requests(&graph, &after)
            .await
            .contains(&"POST transfer".to_owned()),
        "nothing was applied before the kill"
    );
    let serve = Serve::start(&graph, port, &flows, &store).await;
    let ended = drive_to_end(&sim, &serve, &after).await;
    assert_eq!(ended["outcome"], "transferred", "{ended}");
    no_request_twice(&graph, &after).await;
    let list = requests(&graph, &after).await;
    assert_eq!(count(&list, "POST transfer"), 1, "{list:?}");
    // The journal's key was applied before the session resumed: the caller
    // is transferred, the menu is not played again.
    assert_eq!(list, plain_requests);
    drop(serve);
    let _ = sim.shutdown().await;
}

/// SIGTERM under load: eight calls wait in their menu; keys are posted
/// for half of them, then SIGTERM while their transfers are in flight
/// (sim-graph holds its answers 2 s) and while the other half's keys and a
/// stream of other notifications keep coming. Intake answers `503` with
/// `Retry-After` (never anything else but `202`), the work in flight is
/// finished and stored, the process exits cleanly. At restart, what got no
/// `202` is posted again (as Graph would); every call resumes and is
/// transferred exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_answers_503_and_the_restart_resumes_every_call() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    callflow::graph::client::install_tls_provider();
    let Bench {
        sim,
        graph,
        dir: _dir,
        flows,
        store,
        port,
        callback,
    } = Bench::manual().await;
    let token = graph_token(&sim).await;
    let notifier = callflow::sim::notify::Notifier {
        callback_uri: callback.clone(),
        legacy: false,
    };
    let serve = Serve::start(&graph, port, &flows, &store).await;
    let mut calls = Vec::new();
    for _ in 0..8 {
        calls.push(in_menu(&sim, &serve, &callback).await);
    }
    let held = reqwest::Client::new()
        .put(format!("{graph}/sim/faults"))
        .json(&json!({ "hold_answers": "2s" }))
        .send()
        .await
        .expect("faults");
    assert!(held.status().is_success(), "faults: {}", held.status());

    // A stream of notifications that change nothing, until the process is gone.
    let gone = Arc::new(AtomicBool::new(false));
    let stream = tokio::spawn({
        let (callback, token, gone) = (callback.clone(), token.clone(), gone.clone());
        let bodies: Vec<Value> = calls.iter().map(|c| notifier.media(c, "active")).collect();
        async move {
            let mut answers = Vec::new();
            for body in bodies.iter().cycle() {
                match post_notification(&callback, &token, body).await {
                    Ok(answer) => answers.push(answer),
                    Err(_) if gone.load(Ordering::Acquire) => break,
                    Err(e) => answers.push((0, Some(e))),
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            answers
        }
    });
    let keys: Vec<Value> = calls.iter().map(|c| notifier.tone(c, '1', 1)).collect();
    for key in &keys[..4] {
        assert_eq!(
            post_notification(&callback, &token, key).await,
            Ok((202, None))
        );
    }
    // Their transfers are on their way (held by sim-graph): SIGTERM now.
    eventually(Duration::from_secs(30), || async {
        let mut sent = 0;
        for c in &calls[..4] {
            sent += count(&requests(&graph, c).await, "POST transfer");
        }
        (sent == 4).then_some(())
    })
    .await
    .expect("the first four transfers were sent");
    let stopping = tokio::spawn(serve.term());
    let mut late = Vec::new();
    for key in &keys[4..] {
        late.push(post_notification(&callback, &token, key).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, stderr, took) = stopping.await.expect("join");
    gone.store(true, Ordering::Release);
    assert!(status.success(), "SIGTERM: {status:?}\n{stderr}");
    assert!(took < Duration::from_secs(20), "SIGTERM took {took:?}");
    let answers = stream.await.expect("join");
    // 202s, then (once the stop began) 503s, then (once the process was
    // gone) refused connections: nothing else.
    let stopped_at = answers.iter().position(|(status, _)| *status == 503);
    assert!(
        answers
            .iter()
            .enumerate()
            .all(|(i, (status, _))| match status {
                202 => stopped_at.is_none_or(|s| i < s),
                503 => true,
                _ => stopped_at.is_some_and(|s| i > s),
            }),
        "only 202, then 503, then no answer: {answers:?}"
    );
    assert!(
        answers.iter().any(|(status, _)| *status == 503),
        "intake answered 503 while the work in flight finished: {answers:?}"
    );
    assert!(
        answers
            .iter()
            .filter(|(status, _)| *status == 503)
            .all(|(_, retry)| retry.is_some()),
        "every 503 says when to retry: {answers:?}"
    );
    for answer in &late {
        match answer {
            Ok((202, _)) | Err(_) => {}
            Ok((503, retry)) => assert!(retry.is_some(), "{answer:?}"),
            other => panic!("a key during the stop got {other:?}"),
        }
    }
    // Nothing in the calls was hung up by the stop.
    for c in &calls {
        assert!(
            !requests(&graph, c)
                .await
                .iter()
                .any(|r| r.starts_with("DELETE"))
        );
    }
    let cleared = reqwest::Client::new()
        .put(format!("{graph}/sim/faults"))
        .json(&json!({}))
        .send()
        .await
        .expect("faults");
    assert!(cleared.status().is_success());

    let serve = Serve::start(&graph, port, &flows, &store).await;
    // Graph posts again what got no 202.
    for (key, answer) in keys[4..].iter().zip(&late) {
        if !matches!(answer, Ok((202, _))) {
            assert_eq!(
                post_notification(&callback, &token, key).await,
                Ok((202, None))
            );
        }
    }
    for c in &calls {
        let ended = drive_to_end(&sim, &serve, c).await;
        assert_eq!(ended["outcome"], "transferred", "{c}: {ended}");
        no_request_twice(&graph, c).await;
        let list = requests(&graph, c).await;
        assert_eq!(count(&list, "POST transfer"), 1, "{c}: {list:?}");
    }
    drop(serve);
    let _ = sim.shutdown().await;
}

/// A store written by schema version 2 (each session's timeline inside its
/// state's JSON) is migrated: the call waiting in its menu comes back with
/// its whole timeline, carries on, and its entries are then kept in rows
/// of their own, the state's JSON holding none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_of_schema_2_with_timelines_in_the_state_is_migrated() {
    callflow::graph::client::install_tls_provider();
    let Bench {
        sim,
        graph,
        dir,
        flows,
        store,
        port,
        callback,
    } = Bench::manual().await;
    let serve = Serve::start(&graph, port, &flows, &store).await;
    let call = in_menu(&sim, &serve, &callback).await;
    serve.kill9();
    let path = dir.path().join("callflow.db");
    // Made into what version 2 wrote: the rows back in the state, no table.
    {
        let conn = rusqlite::Connection::open(&path).expect("sqlite");
        let sessions: Vec<(String, String)> = conn
            .prepare("SELECT id, state FROM sessions")
            .expect("query")
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("sessions");
        assert!(!sessions.is_empty());
        for (id, state) in sessions {
            let rows: Vec<String> = conn
                .prepare("SELECT entry FROM timeline WHERE session = ?1 ORDER BY n")
                .expect("query")
                .query_map([&id], |r| r.get(0))
                .expect("rows")
                .collect::<Result<_, _>>()
                .expect("entries");
            let mut state: Value = serde_json::from_str(&state).expect("state");
            let entries: Vec<Value> = rows
                .iter()
                .map(|r| serde_json::from_str(r).expect("entry"))
                .collect();
            state["session"]["timeline"]["entries"] = Value::Array(entries);
            conn.execute(
                "UPDATE sessions SET state = ?2 WHERE id = ?1",
                [&id, &state.to_string()],
            )
            .expect("update");
        }
        // What schema 2 did not have: the timeline rows, the turn counters,
        // and the tables of applied and pending entries (it marked the
        // journal rows).
        conn.execute_batch(
            "UPDATE journal SET session = (SELECT a.session FROM applied a WHERE a.seq = journal.seq);
             DROP TABLE pending; DROP TABLE unpend; DROP TABLE applied;
             CREATE INDEX journal_by_session ON journal (session, seq);
             DROP TABLE timeline; DROP TABLE ring_turns; PRAGMA user_version = 2;",
        )
        .expect("version 2");
    }
    let serve = Serve::start(&graph, port, &flows, &store).await;
    let s = serve
        .wait_session(&call, "recovered in its menu", |s| s["step"] == "menu")
        .await;
    let text = s["timeline_text"].as_str().unwrap_or("").to_owned();
    assert!(
        text.contains("answer") && text.contains("resumed after a restart"),
        "the timeline from before the restart, and after: {text}"
    );
    press(&graph, &call, "1").await;
    let ended = drive_to_end(&sim, &serve, &call).await;
    assert_eq!(ended["outcome"], "transferred", "{ended}");
    let entries = ended["timeline"].as_array().map_or(0, Vec::len);
    let (status, stderr, _) = serve.term().await;
    assert!(status.success(), "SIGTERM: {status:?}\n{stderr}");
    let conn = rusqlite::Connection::open(&path).expect("sqlite");
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(
        version as usize,
        callflow::runtime::store::sqlite::MIGRATIONS.len()
    );
    let rows: i64 = conn
        .query_row(
            "SELECT count(*) FROM timeline WHERE session = ?1",
            [&call],
            |r| r.get(0),
        )
        .expect("rows");
    assert_eq!(rows as usize, entries, "every entry in a row of its own");
    let state: String = conn
        .query_row("SELECT state FROM sessions WHERE id = ?1", [&call], |r| {
            r.get(0)
        })
        .expect("state");
    let state: Value = serde_json::from_str(&state).expect("json");
    assert_eq!(
        state["session"]["timeline"]["entries"],
        json!([]),
        "{state}"
    );
    let _ = sim.shutdown().await;
}

/// The session's timeline, as the admin API shows it.
async fn timeline(serve: &Serve, call: &str) -> String {
    serve
        .session(call)
        .await
        .and_then(|s| s["timeline_text"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// A call keying its account number is killed with `kill -9` after two
/// digits: after the restart the collect plays its prompt again (the
/// caller heard silence), the two digits dropped, and the whole number
/// keyed again is taken (the caller is transferred).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_a_collect_waits_plays_its_prompt_again() {
    callflow::graph::client::install_tls_provider();
    let Bench {
        sim,
        graph,
        dir: _dir,
        flows,
        store,
        port,
        callback,
    } = Bench::new(sim().await);
    let serve = Serve::start(&graph, port, &flows, &store).await;
    let call = place(&graph, COLLECT_NUMBER, &callback).await;
    eventually(Duration::from_secs(60), || async {
        timeline(&serve, &call)
            .await
            .contains("main: operation")
            .then_some(())
    })
    .await
    .expect("the collect's prompt played");
    let press = |digits: &'static str| {
        let (graph, call) = (graph.clone(), call.clone());
        async move {
            sim_post(
                &graph,
                &format!("/sim/calls/{call}/press"),
                json!({ "digits": digits }),
            )
            .await
        }
    };
    assert!((200..300).contains(&press("41").await));
    eventually(Duration::from_secs(30), || async {
        (timeline(&serve, &call).await.matches(": key ").count() >= 2).then_some(())
    })
    .await
    .expect("two keys taken");
    let prompts_before = requests(&graph, &call)
        .await
        .iter()
        .filter(|r| *r == "POST playPrompt")
        .count();
    serve.kill9();

    let serve = Serve::start(&graph, port, &flows, &store).await;
    let text = eventually(Duration::from_secs(60), || async {
        let t = timeline(&serve, &call).await;
        t.contains("resumed after a restart").then_some(t)
    })
    .await
    .expect("the session resumed");
    assert!(
        text.contains(
            "the collect plays its prompt again; the digits keyed before the restart are dropped"
        ),
        "{text}"
    );
    let prompts_after = requests(&graph, &call)
        .await
        .iter()
        .filter(|r| *r == "POST playPrompt")
        .count();
    assert_eq!(prompts_after, prompts_before + 1, "the prompt played again");
    assert!((200..300).contains(&press("412345").await));
    let ended = serve
        .wait_session(&call, "ended", |s| s["state"] == "ended")
        .await;
    assert_eq!(ended["outcome"], "transferred", "{ended}");
    let text = timeline(&serve, &call).await;
    assert!(text.contains("collected `412345`"), "{text}");
    no_request_twice(&graph, &call).await;
    drop(serve);
    let _ = sim.shutdown().await;
}

/// sim-graph's behaviour with both [`AGENTS`] answering their calls as
/// `how` says (`answer`, `no_answer`, ...).
fn both_agents(how: &str) -> callflow::sim::behaviour::GraphBehaviour {
    serde_saphyr::from_str(&format!(
        "agents: {{\"{}\": {how}, \"{}\": {how}}}\n",
        AGENTS[0], AGENTS[1]
    ))
    .expect("behaviour")
}

/// A caller held by a `round_robin` ring group when `serve` is killed
/// with `kill -9` hears the hold music again after the restart, and the
/// group's counter, in the SQLite file, survived: the next call takes the
/// next turn and rings the other agent first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_held_in_a_ring_group_plays_the_music_again_and_keeps_the_turns() {
    callflow::graph::client::install_tls_provider();
    let behaviour = both_agents("no_answer");
    let Bench {
        sim,
        graph,
        dir: _dir,
        flows,
        store,
        port,
        callback,
    } = Bench::new(
        sim_with(SimGraphConfig {
            behaviour,
            ..SimGraphConfig::default()
        })
        .await,
    );
    let serve = Serve::start(&graph, port, &flows, &store).await;
    let held = place(&graph, RING_NUMBER, &callback).await;
    let rings = eventually(Duration::from_secs(60), || async {
        let t = timeline(&serve, &held).await;
        t.contains("consultation created").then_some(t)
    })
    .await;
    let Some(text) = rings else {
        panic!("the group never rings:\n{}", timeline(&serve, &held).await);
    };
    assert!(
        text.contains(&format!(
            "turn 0: ringing from target 1 of 2, {}",
            AGENTS[0]
        )),
        "{text}"
    );
    serve.kill9();

    let serve = Serve::start(&graph, port, &flows, &store).await;
    let text = eventually(Duration::from_secs(60), || async {
        let t = timeline(&serve, &held).await;
        t.contains("resumed after a restart").then_some(t)
    })
    .await
    .expect("the held call resumed");
    assert!(text.contains("the hold music plays again"), "{text}");
    let s = serve.session(&held).await.expect("session");
    assert_eq!(s["step"], "team", "still held: {s}");
    // The counter is in the file: the next call takes turn 1.
    let next = place(&graph, RING_NUMBER, &callback).await;
    let text = eventually(Duration::from_secs(60), || async {
        let t = timeline(&serve, &next).await;
        t.contains("ringing from target").then_some(t)
    })
    .await
    .expect("the next call rings");
    assert!(
        text.contains(&format!(
            "turn 1: ringing from target 2 of 2, {}",
            AGENTS[1]
        )),
        "{text}"
    );
    for call in [&held, &next] {
        assert!(
            (200..300)
                .contains(&sim_post(&graph, &format!("/sim/calls/{call}/hangup"), json!({})).await)
        );
        let ended = serve
            .wait_session(call, "ended", |s| s["state"] == "ended")
            .await;
        assert_eq!(ended["outcome"], "caller_hung_up", "{ended}");
    }
    no_request_twice(&graph, &held).await;
    drop(serve);
    let _ = sim.shutdown().await;
}

/// An agent who picks up a ring group's call while `serve` is down (its
/// `established` never reaches the bot: nobody listens) gets the caller
/// after the restart, since the restart asks Graph about every call: the
/// agent's call is up, so the caller is transferred, not left ringing until
/// `ring_timeout` and the agent hung up on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_who_answers_while_the_server_is_down_gets_the_caller() {
    callflow::graph::client::install_tls_provider();
    let behaviour = both_agents("answer");
    let Bench {
        sim,
        graph,
        dir: _dir,
        flows,
        store,
        port,
        callback,
    } = Bench::new(
        sim_with(SimGraphConfig {
            behaviour,
            ..SimGraphConfig::default()
        })
        .await,
    );
    let serve = Serve::start(&graph, port, &flows, &store).await;
    let held = place(&graph, RING_NUMBER, &callback).await;
    let rings = eventually(Duration::from_secs(60), || async {
        let t = timeline(&serve, &held).await;
        t.contains("consultation created").then_some(t)
    })
    .await;
    assert!(
        rings.is_some(),
        "the group never rings:\n{}",
        timeline(&serve, &held).await
    );
    serve.kill9();
    // sim-graph's agent picks up with nobody to tell.
    let agent = eventually(Duration::from_secs(30), || async {
        let calls: Value = reqwest::get(format!("{graph}/sim/calls"))
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        calls["value"].as_array()?.iter().find_map(|c| {
            (c["id"] != held.as_str() && c["state"] == "established")
                .then(|| c["id"].as_str().unwrap_or_default().to_owned())
        })
    })
    .await;
    let Some(agent) = agent else {
        let calls = reqwest::get(format!("{graph}/sim/calls"))
            .await
            .expect("sim-graph")
            .text()
            .await
            .expect("text");
        panic!("the agent never picked up while the server was down: {calls}");
    };

    let serve = Serve::start(&graph, port, &flows, &store).await;
    let ended = serve
        .wait_session(&held, "ended", |s| s["state"] == "ended")
        .await;
    let text = timeline(&serve, &held).await;
    assert_eq!(ended["outcome"], "transferred", "{text}");
    assert!(text.contains("resumed after a restart"), "{text}");
    assert!(!text.contains("hangup on consultation"), "{text}");
    let requests: Value = reqwest::get(format!("{graph}/sim/calls/{held}/requests"))
        .await
        .expect("requests")
        .json()
        .await
        .expect("JSON");
    let transfers: Vec<&Value> = requests["value"]
        .as_array()
        .expect("a list")
        .iter()
        .filter(|r| r["path"].as_str().is_some_and(|p| p.ends_with("/transfer")))
        .collect();
    assert_eq!(transfers.len(), 1, "{requests}");
    assert_eq!(
        transfers[0]["body"]["transferTarget"]["replacesCallId"], agent,
        "the transfer replaces the agent's call: {requests}"
    );
    no_request_twice(&graph, &held).await;
    drop(serve);
    let _ = sim.shutdown().await;
}

/// The README's backup: SQLite's online backup of the store while `serve`
/// runs and a call waits in its menu (the server is not stopped, nothing
/// waits for a lock), then the copy moved to another folder, where a
/// server started on it finishes the call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_store_is_backed_up_online_and_the_copy_carries_the_call() {
    callflow::graph::client::install_tls_provider();
    let sim = sim().await;
    let graph = sim.base_url().to_owned();
    let dir = tempfile::tempdir().expect("tempdir");
    let flows = flows(dir.path());
    let live = dir.path().join("data/callflow.db");
    let store = format!("sqlite:{}", live.display());
    let port = free_port();
    let callback = format!("http://127.0.0.1:{port}/api/calls");

    let serve = Serve::start(&graph, port, &flows, &store).await;
    let call = place(&graph, MENU_NUMBER, &callback).await;
    eventually(Duration::from_secs(60), || async {
        menu_waiting(&serve, &graph, &call).await.then_some(())
    })
    .await
    .expect("the call waits in its menu");

    // `sqlite3 callflow.db ".backup copy.db"` is this API.
    let moved = dir.path().join("moved");
    std::fs::create_dir_all(&moved).expect("mkdir");
    let copy = moved.join("callflow.db");
    {
        let src = rusqlite::Connection::open(&live).expect("open the live store");
        let mut dst = rusqlite::Connection::open(&copy).expect("open the copy");
        rusqlite::backup::Backup::new(&src, &mut dst)
            .expect("backup")
            .run_to_completion(1000, Duration::from_millis(1), None)
            .expect("an online backup of the running store");
    }
    // The server served on through the backup.
    assert!(
        serve.session(&call).await.is_some(),
        "serve answers after the backup"
    );
    serve.kill9();

    let moved_store = format!("sqlite:{}", copy.display());
    let serve = Serve::start(&graph, port, &flows, &moved_store).await;
    serve
        .wait_session(&call, "recovered from the copy in its menu", |s| {
            s["step"] == "menu" && s["state"] == "running"
        })
        .await;
    press(&graph, &call, "1").await;
    let ended = serve
        .wait_session(&call, "ended", |s| s["state"] == "ended")
        .await;
    assert_eq!(ended["outcome"], "transferred", "{ended}");
    no_request_twice(&graph, &call).await;
    drop(serve);
    let _ = sim.shutdown().await;
}
