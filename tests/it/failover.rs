//! `kill -9` of one of several `callflow serve` on one PostgreSQL (the real
//! binary, child processes, behind `support::balancer`) at each point the
//! durable-sessions issue lists, with sim-graph on a manual clock so that
//! where each kill falls is chosen exactly: the others finish every call,
//! with the same outcome and requests as a call nobody interrupted, no
//! Graph request sent twice. The instance killed is the one holding the
//! call (its lease), and it is never started again: what it acknowledged
//! and did not apply (`CALLFLOW_TEST_HOLD`) is applied by a survivor.
//!
//! Skipped with one notice when no PostgreSQL answers.

use std::time::Duration;

use callflow::sim::http::{SimClock, SimGraphConfig};
use serde_json::{Value, json};

use crate::cluster::Nodes;
use crate::store::{
    CONSULT_NUMBER, MENU_NUMBER, Serve, acknowledged, count, drive, drive_to_end, graph_token,
    meeting_call, meeting_to_end, menu_waiting, metric, no_request_twice, place, post_notification,
    press, requests, set_call_faults, sim_state, start_meeting,
};
use crate::support::poll::eventually;
use crate::support::require;

fn manual() -> SimGraphConfig {
    SimGraphConfig {
        clock: SimClock::Manual,
        ..SimGraphConfig::default()
    }
}

/// The test hold for one node: `when` (`before-202` or `after-202`) on the
/// first body containing `text`, its mark file in `dir`.
fn hold(dir: &std::path::Path, i: usize, when: &str, text: &str) -> Vec<(String, String)> {
    vec![
        ("CALLFLOW_TEST_HOLD".into(), format!("{when}:{text}")),
        (
            "CALLFLOW_TEST_HOLD_MARK".into(),
            dir.join(format!("held-{i}")).display().to_string(),
        ),
    ]
}

fn mark(dir: &tempfile::TempDir, i: usize) -> Option<String> {
    std::fs::read_to_string(dir.path().join(format!("held-{i}"))).ok()
}

fn node(nodes: &Nodes, i: usize) -> &Serve {
    nodes.nodes[i].as_ref().expect("a running node")
}

/// Whether node `i` itself lists `id` among the sessions it holds.
async fn holds(nodes: &Nodes, i: usize, id: &str) -> bool {
    let view = nodes.view_at(i).await;
    view["nodes"].as_array().is_some_and(|list| {
        list.iter().any(|n| {
            n["node"] == format!("node-{i}")
                && n["sessions"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|x| x == id))
        })
    })
}

/// A call placed so that its incoming notification reaches node `i` (the
/// balancer's next pick), driven until it waits in its menu, held by `i`.
async fn in_menu_on(nodes: &Nodes, i: usize) -> String {
    nodes.balancer.next_to(i);
    let call = place(&nodes.graph, MENU_NUMBER, &nodes.callback).await;
    let serve = node(nodes, i);
    drive(&nodes.sim, "in its menu", || async {
        menu_waiting(serve, &nodes.graph, &call).await
    })
    .await;
    assert!(holds(nodes, i, &call).await, "node-{i} holds {call}");
    call
}

/// The requests of a call other than its prompts (a call taken over in a
/// menu hears the prompt again).
fn without_prompts(list: &[String]) -> Vec<String> {
    list.iter()
        .filter(|r| *r != "POST playPrompt")
        .cloned()
        .collect()
}

/// The instance holding an incoming call acknowledged its first
/// notification (`202`, journaled) and was killed before applying it,
/// before the session was ever stored: there is no lease to expire, and
/// that instance never comes back. One of the two survivors takes the
/// journal entry over (claims it), starts the call's session from it, once,
/// and the call goes on as one nobody interrupted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incoming_call_acknowledged_by_an_instance_killed_before_applying_it_is_answered_by_another()
 {
    if !require::postgres() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut nodes = Nodes::start_with(
        "orphan",
        3,
        "2s",
        false,
        manual(),
        |_, s| s.to_owned(),
        |i| {
            if i == 0 {
                hold(dir.path(), 0, "after-202", "\"state\":\"incoming\"")
            } else {
                Vec::new()
            }
        },
    )
    .await;
    let mark0 = dir.path().join("held-0");
    nodes.balancer.next_to(0);
    let call = place(&nodes.graph, MENU_NUMBER, &nodes.callback).await;
    eventually(Duration::from_secs(30), || async {
        (std::fs::read_to_string(&mark0).ok().as_deref() == Some("after-202")).then_some(())
    })
    .await
    .expect("node-0 journaled the incoming call and did not apply it");
    eventually(Duration::from_secs(30), || async {
        acknowledged(&nodes.graph, &call, "incoming")
            .await
            .then_some(())
    })
    .await
    .expect("the incoming call was answered 202");
    assert!(
        requests(&nodes.graph, &call).await.is_empty(),
        "nothing was applied before the kill"
    );
    assert!(node(&nodes, 0).session(&call).await.is_none());
    nodes.nodes[0].take().expect("node-0").kill9();
    // Graph does nothing until the call is answered (its clock stands):
    // node-1 and node-2 find the orphan once node-0's heartbeat is a lease
    // old; one of them claims it and answers the call.
    eventually(Duration::from_secs(30), || async {
        requests(&nodes.graph, &call)
            .await
            .iter()
            .any(|r| r == "POST answer")
            .then_some(())
    })
    .await
    .expect("a survivor answered the call");
    let any = nodes.any();
    drive(&nodes.sim, "in its menu", || async {
        menu_waiting(&any, &nodes.graph, &call).await
    })
    .await;
    let mut adopted = 0.0;
    for i in 1..3 {
        adopted += metric(node(&nodes, i), "callflow_events_adopted_total").await;
    }
    assert_eq!(adopted, 1.0, "one survivor took the entry, once");
    press(&nodes.graph, &call, "1").await;
    let ended = drive_to_end(&nodes.sim, &any, &call).await;
    assert_eq!(ended["outcome"], "transferred", "{ended}");
    no_request_twice(&nodes.graph, &call).await;
    let list = requests(&nodes.graph, &call).await;
    assert_eq!(count(&list, "POST answer"), 1, "{list:?}");

    // An uninterrupted call on the survivors makes the same requests.
    let plain = nodes.in_menu_manual().await;
    press(&nodes.graph, &plain, "1").await;
    let ended = drive_to_end(&nodes.sim, &any, &plain).await;
    assert_eq!(ended["outcome"], "transferred", "{ended}");
    assert_eq!(list, requests(&nodes.graph, &plain).await);

    // An orphan no flow takes (a call to a number nobody serves) never
    // gets a session: it stays in the journal, and is still taken by one
    // survivor only, once, however many sweeps pass.
    let db = Db::connect(&nodes.stores[1]).await;
    let copied = db
        .count(&format!(
            "INSERT INTO journal (seq, event, received_at, target)
             SELECT seq + 1024, replace(replace(event, '{call}', 'call-nobody'),
               '{MENU_NUMBER}', '+14255550100'), received_at, 'call-nobody'
             FROM journal WHERE target = '{call}' ORDER BY seq LIMIT 1
             RETURNING 1"
        ))
        .await;
    assert_eq!(copied, 1);
    let adopted = || async {
        let mut n = 0.0;
        for i in 1..3 {
            n += metric(node(&nodes, i), "callflow_events_adopted_total").await;
        }
        n
    };
    eventually(Duration::from_secs(30), || async {
        (adopted().await >= 2.0).then_some(())
    })
    .await
    .expect("the orphan no flow takes was taken");
    // Three more heartbeats of each survivor, each followed by its sweep.
    for _ in 0..3 {
        let seen = db.seen().await;
        eventually(Duration::from_secs(30), || async {
            let now = db.seen().await;
            now.iter().zip(&seen).all(|(a, b)| a > b).then_some(())
        })
        .await
        .expect("the survivors heartbeat");
    }
    assert_eq!(adopted().await, 2.0, "taken once");
    let _ = nodes.sim.shutdown().await;
}

/// A connection to a test's schema.
struct Db {
    client: tokio_postgres::Client,
    _task: tokio::task::JoinHandle<()>,
}

impl Db {
    async fn connect(url: &str) -> Db {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .expect("connect to the test PostgreSQL");
        let task = tokio::spawn(async move {
            let _ = conn.await;
        });
        Db {
            client,
            _task: task,
        }
    }

    /// Runs `sql`; how many rows it gave.
    async fn count(&self, sql: &str) -> usize {
        self.client.query(sql, &[]).await.expect("sql").len()
    }

    /// Each live instance's last heartbeat, in the order of their names.
    async fn seen(&self) -> Vec<chrono::DateTime<chrono::Utc>> {
        self.client
            .query(
                "SELECT seen_at FROM instances WHERE seen_at > now() - interval '2 seconds'
                 ORDER BY id",
                &[],
            )
            .await
            .expect("instances")
            .iter()
            .map(|r| r.get(0))
            .collect()
    }
}

/// `kill -9` of the instance holding a call, exactly before a `202` and
/// exactly after it (the test hold: the key's notification is journaled
/// and not applied; node-0 never answers it, node-1 answers `202`); the
/// key is posted to the holder itself, as the balancer could have. Before:
/// Graph got no `202` and posts the key again, to the balancer; after: the
/// journal has it. Either way the last instance standing takes the call
/// over when its lease expires and applies the key once: one transfer, the
/// requests of a call nobody interrupted (and the menu prompt again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_holder_exactly_before_and_after_a_202() {
    if !require::postgres() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let nodes = Nodes::start_with(
        "hold202",
        3,
        "2s",
        false,
        manual(),
        |_, s| s.to_owned(),
        |i| match i {
            0 => hold(dir.path(), 0, "before-202", "\"sequenceId\":41,"),
            1 => hold(dir.path(), 1, "after-202", "\"sequenceId\":42,"),
            _ => Vec::new(),
        },
    )
    .await;
    let mut nodes = nodes;
    let token = graph_token(&nodes.sim).await;
    let notifier = |to: &str| callflow::sim::notify::Notifier {
        callback_uri: to.to_owned(),
        legacy: false,
    };
    let any = nodes.any();
    let plain = nodes.in_menu_manual().await;
    press(&nodes.graph, &plain, "1").await;
    let ended = drive_to_end(&nodes.sim, &any, &plain).await;
    assert_eq!(ended["outcome"], "transferred", "{ended}");
    let plain_requests = requests(&nodes.graph, &plain).await;

    // Exactly before the 202, on node-0 holding the call.
    let before = in_menu_on(&nodes, 0).await;
    let node0 = format!("{}/api/calls", node(&nodes, 0).public);
    let key = notifier(&node0).tone(&before, '1', 41);
    let posting = tokio::spawn({
        let (to, token, key) = (node0.clone(), token.clone(), key.clone());
        async move { post_notification(&to, &token, &key).await }
    });
    eventually(Duration::from_secs(30), || async {
        (mark(&dir, 0).as_deref() == Some("before-202")).then_some(())
    })
    .await;
    if posting.is_finished() {
        panic!("node-0 answered the key: {:?}", posting.await);
    }
    assert_eq!(
        mark(&dir, 0).as_deref(),
        Some("before-202"),
        "the key is held before its 202: {key}"
    );
    nodes.nodes[0].take().expect("node-0").kill9();
    let answer = posting.await.expect("join");
    assert!(answer.is_err(), "no answer before the kill: {answer:?}");
    assert_eq!(
        post_notification(&nodes.callback, &token, &key).await,
        Ok((202, None)),
        "Graph posts the key again, through the balancer"
    );
    let ended = drive_to_end(&nodes.sim, &any, &before).await;
    assert_eq!(ended["outcome"], "transferred", "{ended}");
    no_request_twice(&nodes.graph, &before).await;
    let list = requests(&nodes.graph, &before).await;
    assert_eq!(count(&list, "POST transfer"), 1, "applied once: {list:?}");
    assert_eq!(without_prompts(&list), without_prompts(&plain_requests));

    // Exactly after the 202, on node-1 holding the call.
    let after = in_menu_on(&nodes, 1).await;
    let node1 = format!("{}/api/calls", node(&nodes, 1).public);
    let key = notifier(&node1).tone(&after, '1', 42);
    assert_eq!(
        post_notification(&node1, &token, &key).await,
        Ok((202, None))
    );
    assert_eq!(mark(&dir, 1).as_deref(), Some("after-202"));
    nodes.nodes[1].take().expect("node-1").kill9();
    assert!(
        !requests(&nodes.graph, &after)
            .await
            .contains(&"POST transfer".to_owned()),
        "nothing was applied before the kill"
    );
    let ended = drive_to_end(&nodes.sim, &any, &after).await;
    assert_eq!(ended["outcome"], "transferred", "{ended}");
    no_request_twice(&nodes.graph, &after).await;
    let list = requests(&nodes.graph, &after).await;
    assert_eq!(count(&list, "POST transfer"), 1, "applied once: {list:?}");
    assert_eq!(without_prompts(&list), without_prompts(&plain_requests));
    let survivor = node(&nodes, 2);
    assert!(metric(survivor, "callflow_sessions_taken_over_total").await >= 2.0);
    let _ = nodes.sim.shutdown().await;
}

/// Kills (`kill -9`) the node holding session `id`, which is never started
/// again; returns which it was.
async fn kill_holder(nodes: &mut Nodes, id: &str) -> usize {
    let h = nodes.holder(id).await.expect("a node holds the session");
    nodes.nodes[h].take().expect("node").kill9();
    h
}

/// Three instances; at each point in turn the one holding the call is
/// killed (`kill -9`) and started again once the call is over: while a
/// menu waits for a key, during a blind transfer (Graph said
/// `transferring`), between the transfer request and its answer (sim-graph
/// holds the answer: the request in flight is settled by a `GET` of the
/// call, not sent again), during a consultative transfer with both legs
/// up, while a meeting join is establishing. Each call ends as the same
/// call nobody interrupted, with the same requests, none sent twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_holder_at_each_point_of_a_call_and_the_others_finish_it() {
    if !require::postgres() {
        return;
    }
    let mut nodes = Nodes::start_with(
        "points",
        3,
        "2s",
        false,
        manual(),
        |_, s| s.to_owned(),
        |_| Vec::new(),
    )
    .await;
    let any = nodes.any();
    let graph = nodes.graph.clone();

    // Uninterrupted runs.
    let plain = nodes.in_menu_manual().await;
    press(&graph, &plain, "1").await;
    let ended = drive_to_end(&nodes.sim, &any, &plain).await;
    assert_eq!(ended["outcome"], "transferred", "{ended}");
    let plain_menu = requests(&graph, &plain).await;
    assert!(plain_menu.contains(&"POST transfer".to_owned()));
    let consult_plain = place(&graph, CONSULT_NUMBER, &nodes.callback).await;
    let ended = drive_to_end(&nodes.sim, &any, &consult_plain).await;
    assert_eq!(ended["outcome"], "transferred", "{ended}");
    let legs = ended["calls"].as_array().expect("calls").clone();
    assert_eq!(legs.len(), 2, "{ended}");
    let plain_main = requests(&graph, &consult_plain).await;
    let plain_consult = requests(&graph, legs[1].as_str().expect("id")).await;
    let meeting_plain = start_meeting(&any).await;
    let (ended, plain_meeting_call) = meeting_to_end(&nodes.sim, &any, &meeting_plain).await;
    assert_eq!(ended["outcome"], "joined", "{ended}");
    let plain_meeting = requests(&graph, &plain_meeting_call).await;

    // While the menu waits for a key.
    let waiting = nodes.in_menu_manual().await;
    let h = kill_holder(&mut nodes, &waiting).await;
    press(&graph, &waiting, "1").await;
    let ended = drive_to_end(&nodes.sim, &any, &waiting).await;
    assert_eq!(ended["outcome"], "transferred", "{ended}");
    no_request_twice(&graph, &waiting).await;
    let list = requests(&graph, &waiting).await;
    assert_eq!(without_prompts(&list), without_prompts(&plain_menu));
    // The key was pressed while the holder was dead: a survivor that takes
    // the session over before the key comes plays the prompt again, one
    // that finds the key journaled applies it first and has no prompt to
    // play again. Either way, at most once more.
    let (prompts, plain_prompts) = (
        count(&list, "POST playPrompt"),
        count(&plain_menu, "POST playPrompt"),
    );
    assert!(
        (plain_prompts..=plain_prompts + 1).contains(&prompts),
        "the survivor plays the menu's prompt again at most once: {list:?}"
    );
    nodes.nodes[h] = Some(nodes.spawn(h).await);

    // During a blind transfer.
    let during = nodes.in_menu_manual().await;
    press(&graph, &during, "1").await;
    drive(&nodes.sim, "transferring", || {
        acknowledged(&graph, &during, "transferring")
    })
    .await;
    let h = kill_holder(&mut nodes, &during).await;
    let ended = drive_to_end(&nodes.sim, &any, &during).await;
    assert_eq!(ended["outcome"], "transferred", "{ended}");
    no_request_twice(&graph, &during).await;
    assert_eq!(requests(&graph, &during).await, plain_menu);
    nodes.nodes[h] = Some(nodes.spawn(h).await);

    // Between the transfer request and its answer.
    let inflight = nodes.in_menu_manual().await;
    set_call_faults(&graph, &inflight, Some(json!({ "hold_answers": "10m" }))).await;
    press(&graph, &inflight, "1").await;
    drive(&nodes.sim, "transfer sent and under way", || async {
        requests(&graph, &inflight)
            .await
            .contains(&"POST transfer".to_owned())
            && acknowledged(&graph, &inflight, "transferring").await
    })
    .await;
    let h = kill_holder(&mut nodes, &inflight).await;
    set_call_faults(&graph, &inflight, None).await;
    let ended = drive_to_end(&nodes.sim, &any, &inflight).await;
    assert_eq!(ended["outcome"], "transferred", "{ended}");
    no_request_twice(&graph, &inflight).await;
    assert_eq!(requests(&graph, &inflight).await, plain_menu);
    nodes.nodes[h] = Some(nodes.spawn(h).await);

    // A consultative transfer with both legs up.
    let call = place(&graph, CONSULT_NUMBER, &nodes.callback).await;
    let both_up = || async {
        let Some(s) = any.session(&call).await else {
            return false;
        };
        let Some(consult) = s["calls"].get(1).and_then(Value::as_str) else {
            return false;
        };
        sim_state(&graph, consult).await.as_deref() == Some("established")
            && acknowledged(&graph, consult, "established").await
            && sim_state(&graph, &call).await.as_deref() == Some("established")
    };
    drive(&nodes.sim, "both legs up", both_up).await;
    let consult = any.session(&call).await.expect("session")["calls"][1]
        .as_str()
        .expect("consult id")
        .to_owned();
    let h = kill_holder(&mut nodes, &call).await;
    let ended = drive_to_end(&nodes.sim, &any, &call).await;
    assert_eq!(ended["outcome"], "transferred", "{ended}");
    no_request_twice(&graph, &call).await;
    no_request_twice(&graph, &consult).await;
    assert_eq!(requests(&graph, &call).await, plain_main);
    assert_eq!(requests(&graph, &consult).await, plain_consult);
    nodes.nodes[h] = Some(nodes.spawn(h).await);

    // While a meeting join is establishing.
    let id = start_meeting(&any).await;
    drive(&nodes.sim, "establishing", || async {
        match meeting_call(&any, &id).await {
            Some(call) => {
                sim_state(&graph, &call).await.as_deref() == Some("establishing")
                    && acknowledged(&graph, &call, "establishing").await
            }
            None => false,
        }
    })
    .await;
    let h = kill_holder(&mut nodes, &id).await;
    let (ended, meeting) = meeting_to_end(&nodes.sim, &any, &id).await;
    assert_eq!(ended["outcome"], "joined", "{ended}");
    no_request_twice(&graph, &meeting).await;
    assert_eq!(requests(&graph, &meeting).await, plain_meeting);
    let _ = h;
    let _ = nodes.sim.shutdown().await;
}
