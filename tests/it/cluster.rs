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
