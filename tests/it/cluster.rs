//! Several `callflow serve` (the real binary, child processes) on one
//! PostgreSQL behind a round-robin load balancer (`support::balancer`), with
//! sim-graph over loopback: consecutive notifications of a call land on
//! different instances, and each call finishes as on one instance, no Graph
//! request sent twice; `kill -9` of an instance mid-call, and the others
//! finish its calls; the same notification racing on two instances at once,
//! call after call, never makes two requests for one step; SIGTERM hands an
//! instance's calls to the others.
//!
//! Skipped with one notice when no PostgreSQL answers.

use std::time::{Duration, Instant};

use callflow::sim::http::SimGraphServer;
use serde_json::Value;

use crate::store::{
    ADMIN, MENU_NUMBER, Serve, drive, flows, free_port, menu_waiting, metric, no_request_twice,
    place, press, requests, serve_command_behind, sim_with,
};
use crate::support::balancer::Balancer;
use crate::support::pg::fresh_schema;
use crate::support::poll::eventually;
use crate::support::require;

/// Instances on one store behind one balancer.
pub(crate) struct Nodes {
    pub(crate) sim: SimGraphServer,
    pub(crate) graph: String,
    _dir: tempfile::TempDir,
    pub(crate) balancer: Balancer,
    pub(crate) nodes: Vec<Option<Serve>>,
    pub(crate) callback: String,
    /// Each node's port and store, its flows, the lease and its extra
    /// environment: to start it again.
    ports: Vec<u16>,
    pub(crate) stores: Vec<String>,
    flows: std::path::PathBuf,
    lease: String,
    env: Vec<Vec<(String, String)>>,
}

impl Nodes {
    async fn start(schema: &str, count: usize, lease: &str, mirror: bool) -> Nodes {
        let faults = callflow::sim::http::Faults::default();
        Nodes::start_on(schema, count, lease, mirror, faults, |_, store| {
            store.to_owned()
        })
        .await
    }

    /// [`Nodes::start`], node `i` reaching the store at `store_of(i, url)`.
    async fn start_on(
        schema: &str,
        count: usize,
        lease: &str,
        mirror: bool,
        faults: callflow::sim::http::Faults,
        store_of: impl Fn(usize, &str) -> String,
    ) -> Nodes {
        let sim = callflow::sim::http::SimGraphConfig {
            faults,
            ..Default::default()
        };
        Nodes::start_with(schema, count, lease, mirror, sim, store_of, |_| Vec::new()).await
    }

    /// [`Nodes::start_on`] with sim-graph configured as `sim` and node `i`
    /// started with the environment `env_of(i)` too.
    pub(crate) async fn start_with(
        schema: &str,
        count: usize,
        lease: &str,
        mirror: bool,
        sim: callflow::sim::http::SimGraphConfig,
        store_of: impl Fn(usize, &str) -> String,
        env_of: impl Fn(usize) -> Vec<(String, String)>,
    ) -> Nodes {
        callflow::graph::client::install_tls_provider();
        let store = fresh_schema(schema).await;
        let sim = sim_with(sim).await;
        let graph = sim.base_url().to_owned();
        let dir = tempfile::tempdir().expect("tempdir");
        let flows = flows(dir.path());
        let ports: Vec<u16> = (0..count).map(|_| free_port()).collect();
        let balancer = Balancer::start(
            ports
                .iter()
                .map(|p| format!("http://127.0.0.1:{p}"))
                .collect(),
            mirror,
        )
        .await;
        let callback = format!("{}/api/calls", balancer.url);
        let mut nodes = Nodes {
            stores: (0..count).map(|i| store_of(i, &store)).collect(),
            env: (0..count).map(env_of).collect(),
            sim,
            graph,
            _dir: dir,
            balancer,
            nodes: Vec::new(),
            callback,
            ports,
            flows,
            lease: lease.to_owned(),
        };
        for i in 0..count {
            let serve = nodes.spawn(i).await;
            nodes.nodes.push(Some(serve));
        }
        nodes
    }

    /// Starts node `i` (again: the same name, port and store).
    pub(crate) async fn spawn(&self, i: usize) -> Serve {
        let port = self.ports[i];
        let mut cmd = serve_command_behind(
            &self.graph,
            port,
            &self.balancer.url,
            &self.flows,
            &self.stores[i],
        );
        cmd.args(["--node", &format!("node-{i}"), "--lease", &self.lease])
            .envs(self.env[i].iter().map(|(k, v)| (k, v)));
        Serve::spawn(&mut cmd, port).await
    }

    /// The admin API through the balancer: any instance.
    pub(crate) fn any(&self) -> Serve {
        Serve::at(&self.balancer.url)
    }

    pub(crate) async fn in_menu(&self) -> String {
        let call = place(&self.graph, MENU_NUMBER, &self.callback).await;
        let any = self.any();
        eventually(Duration::from_secs(60), || async {
            menu_waiting(&any, &self.graph, &call).await.then_some(())
        })
        .await
        .unwrap_or_else(|| panic!("call {call} never waited in its menu"));
        call
    }

    /// A call placed and driven (sim-graph on a manual clock) until it
    /// waits in its menu.
    pub(crate) async fn in_menu_manual(&self) -> String {
        let call = place(&self.graph, MENU_NUMBER, &self.callback).await;
        let any = self.any();
        drive(&self.sim, "in its menu", || {
            menu_waiting(&any, &self.graph, &call)
        })
        .await;
        call
    }

    /// `n` calls, each waiting in its menu.
    async fn calls_in_menu(&self, n: usize) -> Vec<String> {
        let mut calls = Vec::with_capacity(n);
        for _ in 0..n {
            calls.push(self.in_menu().await);
        }
        calls
    }

    pub(crate) async fn ended(&self, call: &str) -> Value {
        self.any()
            .wait_session(call, "ended", |s| s["state"] == "ended")
            .await
    }

    /// Node `i`'s own view of the cluster (asked directly, not through
    /// the balancer).
    pub(crate) async fn view_at(&self, i: usize) -> Value {
        let node = self.nodes[i].as_ref().expect("a running node");
        reqwest::Client::new()
            .get(format!("{}/api/cluster", node.public))
            .bearer_auth(ADMIN)
            .send()
            .await
            .expect("cluster view")
            .json()
            .await
            .expect("json")
    }

    /// The node holding session `id`, as the cluster lists it.
    pub(crate) async fn holder(&self, id: &str) -> Option<usize> {
        let view = self.nodes_view().await;
        let name = view["nodes"].as_array()?.iter().find_map(|n| {
            n["sessions"]
                .as_array()?
                .iter()
                .any(|s| s == id)
                .then(|| n["node"].as_str().map(str::to_owned))
                .flatten()
        })?;
        name.strip_prefix("node-")?.parse().ok()
    }

    pub(crate) async fn nodes_view(&self) -> Value {
        reqwest::Client::new()
            .get(format!("{}/api/cluster", self.balancer.url))
            .bearer_auth(ADMIN)
            .send()
            .await
            .expect("cluster view")
            .json()
            .await
            .expect("json")
    }
}

/// The requests a call in the menu flow makes when the caller presses 1,
/// as one instance makes them.
async fn through_the_menu(nodes: &Nodes, call: &str) -> Vec<String> {
    press(&nodes.graph, call, "1").await;
    let ended = nodes.ended(call).await;
    assert_eq!(ended["outcome"], "transferred", "{ended}");
    no_request_twice(&nodes.graph, call).await;
    requests(&nodes.graph, call).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_through_two_instances_finish_as_on_one_with_no_request_twice() {
    if !require::postgres() {
        return;
    }
    let nodes = Nodes::start("two_nodes", 2, "10s", false).await;
    let mut seen = Vec::new();
    for _ in 0..4 {
        let call = nodes.in_menu().await;
        seen.push(through_the_menu(&nodes, &call).await);
    }
    for list in &seen {
        assert_eq!(list, &seen[0], "every call made the same requests");
    }
    assert!(
        seen[0].iter().any(|r| r == "POST answer") && seen[0].iter().any(|r| r == "POST transfer"),
        "{:?}",
        seen[0]
    );
    let answered = nodes.balancer.answered();
    assert!(
        answered.iter().all(|n| *n > 4),
        "both instances took notifications: {answered:?}"
    );
    let view = nodes.nodes_view().await;
    let listed = view["nodes"].as_array().expect("nodes");
    assert_eq!(listed.len(), 2, "{view}");
    assert!(listed.iter().all(|n| n["alive"] == true), "{view}");
    assert!(
        listed.iter().all(|n| n["flows"]["durable"].is_string()),
        "each node says which version of each flow it runs: {view}"
    );
    assert_eq!(view["flows_disagree"], serde_json::json!([]), "{view}");
    let _ = nodes.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_an_instance_mid_call_and_the_other_finishes_its_calls() {
    if !require::postgres() {
        return;
    }
    let mut nodes = Nodes::start("kill_node", 2, "2s", false).await;
    let calls = nodes.calls_in_menu(4).await;
    // Which instance holds what, then one of them dies.
    let view = nodes.nodes_view().await;
    let held: Vec<usize> = view["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| n["sessions"].as_array().map_or(0, Vec::len))
        .collect();
    assert_eq!(held.iter().sum::<usize>(), 4, "{view}");
    // Any instance lists every live call of the cluster, a page at a time.
    for node in nodes.nodes.iter().flatten() {
        let mut seen = Vec::new();
        let mut offset = 0;
        loop {
            let page: Value = reqwest::Client::new()
                .get(format!(
                    "{}/api/sessions?limit=3&offset={offset}",
                    node.public
                ))
                .bearer_auth(ADMIN)
                .send()
                .await
                .expect("sessions")
                .json()
                .await
                .expect("json");
            for s in page["sessions"].as_array().expect("sessions") {
                if s["state"] == "running" {
                    assert_eq!(s["step"], "menu", "{s}");
                    seen.push(s["id"].as_str().expect("id").to_owned());
                }
            }
            match page["next"].as_u64() {
                Some(next) => offset = next,
                None => break,
            }
        }
        seen.sort();
        let mut want = calls.clone();
        want.sort();
        assert_eq!(seen, want, "{}", node.public);
    }
    let victim = usize::from(held[1] > held[0]);
    let killed = Instant::now();
    nodes.nodes[victim].take().expect("node").kill9();
    for call in &calls {
        press(&nodes.graph, call, "1").await;
    }
    for call in &calls {
        let ended = nodes.ended(call).await;
        assert_eq!(ended["outcome"], "transferred", "{call}: {ended}");
        no_request_twice(&nodes.graph, call).await;
    }
    let took = killed.elapsed();
    let survivor = nodes.nodes[1 - victim].as_ref().expect("node");
    assert!(
        metric(survivor, "callflow_sessions_taken_over_total").await >= held[victim] as f64,
        "the survivor took the dead instance's sessions over"
    );
    eprintln!(
        "kill -9 of node-{victim} holding {} calls: all finished on the other in {took:.1?}",
        held[victim]
    );
    let s = nodes.any().session(&calls[0]).await.expect("session");
    assert!(
        s["timeline_text"].as_str().is_some(),
        "the timeline is there: {s}"
    );
    let _ = nodes.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_notification_racing_on_two_instances_never_sends_a_request_twice() {
    if !require::postgres() {
        return;
    }
    // Every notification goes to both instances at the same moment.
    let nodes = Nodes::start("race", 2, "10s", true).await;
    let mut first = None;
    for round in 0..6 {
        let call = nodes.in_menu().await;
        let list = through_the_menu(&nodes, &call).await;
        let first = first.get_or_insert_with(|| list.clone());
        assert_eq!(
            &list, first,
            "round {round}: the same requests as one instance"
        );
    }
    // Each round's incoming call reached both at once: one of them lost the
    // race (its first write fenced) or found the session held and forwarded.
    let mut lost = 0.0;
    for node in nodes.nodes.iter().flatten() {
        lost += metric(node, "callflow_sessions_fenced_total").await
            + metric(node, "callflow_events_forwarded_total").await;
    }
    assert!(lost >= 6.0, "the races were run: {lost}");
    let _ = nodes.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hands_an_instances_calls_to_the_others() {
    if !require::postgres() {
        return;
    }
    let mut nodes = Nodes::start("drain", 2, "10s", false).await;
    let calls = nodes.calls_in_menu(3).await;
    let (status, stderr, took) = nodes.nodes[0].take().expect("node").term().await;
    assert!(status.success(), "{stderr}");
    assert!(took < Duration::from_secs(20), "SIGTERM took {took:?}");
    // Handed back: taken by node-1 within its next sweep, well within a lease.
    let view = eventually(Duration::from_secs(20), || async {
        let view = nodes.nodes_view().await;
        let node1 = view["nodes"]
            .as_array()?
            .iter()
            .find(|n| n["node"] == "node-1")?
            .clone();
        (node1["sessions"].as_array()?.len() == 3).then_some(view)
    })
    .await
    .expect("node-1 holds every call");
    assert!(
        !view["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .any(|n| n["node"] == "node-0" && n["alive"] == true),
        "{view}"
    );
    for call in &calls {
        through_the_menu(&nodes, call).await;
    }
    let _ = nodes.sim.shutdown().await;
}

/// node-0 loses its link to PostgreSQL (the balancer still reaches it): it
/// says not ready and answers `503`, so the balancer asks node-1, which
/// takes node-0's calls over once their leases expire and finishes them;
/// node-0, back on the store, finds them held elsewhere and sends nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_cut_off_from_postgres_stops_acknowledging_and_its_calls_go_on_elsewhere() {
    use crate::support::proxy::Proxy;
    if !require::postgres() {
        return;
    }
    let url = url::Url::parse(&require::postgres_url()).expect("url");
    let upstream = std::net::ToSocketAddrs::to_socket_addrs(&(
        url.host_str().unwrap_or("127.0.0.1"),
        url.port().unwrap_or(5432),
    ))
    .expect("address")
    .next()
    .expect("address");
    let proxy = Proxy::start(upstream).await;
    let port = proxy.addr().port();
    let faults = callflow::sim::http::Faults::default();
    let nodes = Nodes::start_on("cut_node", 2, "2s", false, faults, |i, store| {
        if i == 0 {
            let mut u = url::Url::parse(store).expect("url");
            u.set_host(Some("127.0.0.1")).expect("host");
            u.set_port(Some(port)).expect("port");
            u.to_string()
        } else {
            store.to_owned()
        }
    })
    .await;
    let calls = nodes.calls_in_menu(4).await;
    let node0 = nodes.nodes[0].as_ref().expect("node-0");
    proxy.cut();
    eventually(Duration::from_secs(20), || async {
        let r = reqwest::get(format!("{}/readyz", node0.public))
            .await
            .ok()?;
        (r.status() == 503).then_some(())
    })
    .await
    .expect("node-0 says it is not ready");
    for call in &calls {
        press(&nodes.graph, call, "1").await;
    }
    for call in &calls {
        let ended = nodes.ended(call).await;
        assert_eq!(ended["outcome"], "transferred", "{call}: {ended}");
    }
    proxy.restore();
    eventually(Duration::from_secs(20), || async {
        let r = reqwest::get(format!("{}/readyz", node0.public))
            .await
            .ok()?;
        (r.status() == 200).then_some(())
    })
    .await
    .expect("node-0 is ready again");
    for call in &calls {
        no_request_twice(&nodes.graph, call).await;
    }
    let _ = nodes.sim.shutdown().await;
}

/// Three instances, Graph posting every notification twice and refusing
/// requests with `429` now and then: each instance in turn is stopped with
/// SIGTERM and started again while calls wait in their menus (a rolling
/// deploy), a new call placed after each restart; then every caller
/// presses 1: every call is transferred, none lost, no request sent twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_of_three_instances_with_duplicates_and_429s_loses_no_call() {
    if !require::postgres() {
        return;
    }
    let faults = callflow::sim::http::Faults {
        duplicate: true,
        throttle: 2,
        retry_after: Some(0),
        ..Default::default()
    };
    let mut nodes = Nodes::start_on("rolling", 3, "3s", false, faults, |_, s| s.to_owned()).await;
    let mut calls = nodes.calls_in_menu(3).await;
    for i in 0..3 {
        let (status, stderr, _) = nodes.nodes[i].take().expect("node").term().await;
        assert!(status.success(), "node-{i}: {stderr}");
        let serve = nodes.spawn(i).await;
        nodes.nodes[i] = Some(serve);
        calls.push(nodes.in_menu().await);
    }
    let mut first: Option<Vec<String>> = None;
    for call in &calls {
        let list = through_the_menu(&nodes, call).await;
        let without_prompts = |l: &[String]| {
            l.iter()
                .filter(|r| *r != "POST playPrompt")
                .cloned()
                .collect::<Vec<_>>()
        };
        let first = first.get_or_insert_with(|| without_prompts(&list));
        assert_eq!(&without_prompts(&list), first, "{call}");
    }
    let _ = nodes.sim.shutdown().await;
}

/// The instance holding a call whose menu times out in 3 s is killed
/// (`kill -9`) just after the prompt played: the other instance takes the
/// call over (the caller hears the prompt again, with a fresh timeout) and
/// the timer fires there, once: the flow says goodbye and hangs up, one
/// hang-up, nothing sent twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timer_of_a_killed_instance_fires_once_on_the_survivor() {
    use crate::store::SLOW_TIMEOUT_NUMBER;
    if !require::postgres() {
        return;
    }
    let mut nodes = Nodes::start("timers", 2, "2s", false).await;
    let timed = place(&nodes.graph, SLOW_TIMEOUT_NUMBER, &nodes.callback).await;
    let any = nodes.any();
    eventually(Duration::from_secs(60), || async {
        menu_waiting(&any, &nodes.graph, &timed).await.then_some(())
    })
    .await
    .expect("the call waits in its menu");
    let view = nodes.nodes_view().await;
    let holder = view["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .position(|n| {
            n["sessions"]
                .as_array()
                .is_some_and(|s| s.iter().any(|id| *id == *timed))
        })
        .expect("a node holds the call");
    nodes.nodes[holder].take().expect("node").kill9();
    let ended = nodes.ended(&timed).await;
    assert_eq!(ended["outcome"], "hung_up", "{ended}");
    assert!(
        ended["timeline_text"].to_string().contains("bye"),
        "the timeout led to bye: {ended}"
    );
    // The run is over once its hang-up is decided and stored, a moment
    // before the request reaches Graph.
    let list = eventually(Duration::from_secs(20), || async {
        let list = requests(&nodes.graph, &timed).await;
        list.iter().any(|r| r == "DELETE call").then_some(list)
    })
    .await
    .expect("the call is hung up");
    no_request_twice(&nodes.graph, &timed).await;
    let count = |what: &str| list.iter().filter(|r| r.as_str() == what).count();
    assert_eq!(count("DELETE call"), 1, "{list:?}");
    assert_eq!(count("POST playPrompt"), 2, "{list:?}");
    let survivor = nodes.nodes[1 - holder].as_ref().expect("node");
    assert!(metric(survivor, "callflow_sessions_taken_over_total").await >= 1.0);
    let _ = nodes.sim.shutdown().await;
}

/// The bot's status for each notification sim-graph posted about `call`
/// (`None`: no answer).
async fn statuses(graph: &str, call: &str) -> Vec<Option<u64>> {
    let Ok(r) = reqwest::get(format!("{graph}/sim/calls/{call}/notifications")).await else {
        return Vec::new();
    };
    let v: Value = r.json().await.unwrap_or(Value::Null);
    v["value"]
        .as_array()
        .map(|l| l.iter().map(|d| d["status"].as_u64()).collect())
        .unwrap_or_default()
}

/// One caller of the steady load: places a call, presses 1 once the menu
/// waits, and waits for the end; gives up as soon as one of the call's
/// notifications was not acknowledged (Graph does not post it again).
async fn caller(graph: String, any: String, callback: String) -> (String, Option<Value>) {
    let call = place(&graph, MENU_NUMBER, &callback).await;
    let any = Serve::at(&any);
    let refused = |s: &[Option<u64>]| s.iter().any(|st| *st != Some(202));
    let waiting = eventually(Duration::from_secs(40), || async {
        if refused(&statuses(&graph, &call).await) {
            return Some(false);
        }
        menu_waiting(&any, &graph, &call).await.then_some(true)
    })
    .await;
    if waiting != Some(true) {
        return (call, None);
    }
    press(&graph, &call, "1").await;
    let ended = eventually(Duration::from_secs(40), || async {
        if refused(&statuses(&graph, &call).await) {
            return Some(None);
        }
        let s = any.session(&call).await?;
        (s["state"] == "ended").then_some(Some(s))
    })
    .await
    .flatten();
    (call, ended)
}

/// PostgreSQL out of reach of every instance at once under a steady load
/// of calls (every connection to it cut, new ones refused: what a restart
/// of the server looks like to its clients, without restarting the server
/// other tests share), then back. While it is away both instances say they
/// are not ready and notifications get `503`, never a `202`; nothing that
/// was acknowledged is lost (every call whose notifications were all
/// answered `202` is transferred, including those whose sessions stopped
/// when their state could not be stored and were taken over once their
/// lease ran out); service resumes by itself (calls placed after it came
/// back run normally, and calls that waited in their menus all along are
/// transferred when their callers press 1 afterwards); no request is sent
/// twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_away_from_every_instance_under_load_503_nothing_lost_service_resumes() {
    use crate::support::proxy::Proxy;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    if !require::postgres() {
        return;
    }
    let url = url::Url::parse(&require::postgres_url()).expect("url");
    let upstream = std::net::ToSocketAddrs::to_socket_addrs(&(
        url.host_str().unwrap_or("127.0.0.1"),
        url.port().unwrap_or(5432),
    ))
    .expect("address")
    .next()
    .expect("address");
    let proxy = Proxy::start(upstream).await;
    let port = proxy.addr().port();
    let faults = callflow::sim::http::Faults::default();
    let nodes = Nodes::start_on("store_away", 2, "3s", false, faults, |_, store| {
        let mut u = url::Url::parse(store).expect("url");
        u.set_host(Some("127.0.0.1")).expect("host");
        u.set_port(Some(port)).expect("port");
        u.to_string()
    })
    .await;
    let ready = |want: u16| {
        let nodes = &nodes;
        async move {
            for node in nodes.nodes.iter().flatten() {
                let r = reqwest::get(format!("{}/readyz", node.public)).await.ok()?;
                if r.status() != want {
                    return None;
                }
            }
            Some(())
        }
    };
    // Calls waiting in their menus all through, their keys pressed after.
    let mut waiting = Vec::new();
    for _ in 0..3 {
        waiting.push(place(&nodes.graph, MENU_NUMBER, &nodes.callback).await);
    }
    let any = nodes.any();
    for call in &waiting {
        eventually(Duration::from_secs(60), || async {
            menu_waiting(&any, &nodes.graph, call).await.then_some(())
        })
        .await
        .expect("the call waits in its menu");
    }
    // The steady load: a call every 150 ms, each pressing 1 in its menu.
    let loading = Arc::new(AtomicBool::new(true));
    let placed = Arc::new(AtomicUsize::new(0));
    let load = {
        let (graph, any, callback) = (
            nodes.graph.clone(),
            nodes.balancer.url.clone(),
            nodes.callback.clone(),
        );
        let (loading, placed) = (loading.clone(), placed.clone());
        tokio::spawn(async move {
            let mut callers = Vec::new();
            while loading.load(Ordering::Acquire) {
                callers.push(tokio::spawn(caller(
                    graph.clone(),
                    any.clone(),
                    callback.clone(),
                )));
                placed.fetch_add(1, Ordering::AcqRel);
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
            let mut calls = Vec::new();
            for c in callers {
                calls.push(c.await.expect("caller"));
            }
            calls
        })
    };
    let placed_by = |n: usize| {
        let placed = placed.clone();
        async move {
            eventually(Duration::from_secs(60), || {
                let done = placed.load(Ordering::Acquire) >= n;
                async move { done.then_some(()) }
            })
            .await
            .expect("the load goes on");
        }
    };
    placed_by(8).await;
    proxy.cut();
    eventually(Duration::from_secs(20), || ready(503))
        .await
        .expect("neither instance is ready while the store is away");
    let during = placed.load(Ordering::Acquire);
    // A notification while it is away: refused with 503 and Retry-After.
    let token = graph_token_real(&nodes).await;
    let refused = reqwest::Client::new()
        .post(&nodes.callback)
        .header("authorization", &token)
        .json(
            &callflow::sim::notify::Notifier {
                callback_uri: nodes.callback.clone(),
                legacy: false,
            }
            .incoming(
                "call-while-away",
                &callflow::engine::Party::phone("+15550100"),
                &callflow::engine::Party::phone(MENU_NUMBER),
            ),
        )
        .send()
        .await
        .expect("the balancer answers");
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    placed_by(during + 10).await;
    proxy.restore();
    eventually(Duration::from_secs(20), || ready(200))
        .await
        .expect("both instances are ready again, by themselves");
    let back = placed.load(Ordering::Acquire);
    placed_by(back + 8).await;
    loading.store(false, Ordering::Release);
    let calls = load.await.expect("load");
    for call in &waiting {
        through_the_menu(&nodes, call).await;
    }

    let mut acknowledged = 0;
    let mut refused_calls = 0;
    let mut after = 0;
    for (i, (call, ended)) in calls.iter().enumerate() {
        let st = statuses(&nodes.graph, call).await;
        assert!(
            st.iter().all(|s| matches!(s, Some(202 | 503))),
            "{call}: answered {st:?}"
        );
        no_request_twice(&nodes.graph, call).await;
        if st.iter().all(|s| *s == Some(202)) {
            acknowledged += 1;
            let Some(ended) = ended.as_ref() else {
                panic!(
                    "{call} (all acknowledged) never ended: {st:?}, requests {:?}, session {:?}",
                    requests(&nodes.graph, call).await,
                    nodes.any().session(call).await
                );
            };
            assert_eq!(ended["outcome"], "transferred", "{call}: {ended}");
            if i >= back {
                after += 1;
            }
        } else {
            refused_calls += 1;
        }
    }
    eprintln!(
        "store away under load: {} calls, {acknowledged} acknowledged and transferred, \
         {refused_calls} refused (503) while it was away, {after} after it came back",
        calls.len()
    );
    assert!(
        refused_calls >= 5,
        "the outage refused calls: {refused_calls}"
    );
    assert!(after >= 5, "calls placed after it came back ran: {after}");
    let _ = nodes.sim.shutdown().await;
}

/// A bearer token sim-graph signs its notifications with, on a real-time
/// sim-graph: its first notification to a sink of the test's own.
async fn graph_token_real(nodes: &Nodes) -> String {
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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let sink = format!("http://{}/sink", listener.local_addr().expect("addr"));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    place(&nodes.graph, "+14255550999", &sink).await;
    let token = tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .ok()
        .flatten()
        .expect("sim-graph signs a notification to the sink");
    server.abort();
    token
}
