//! Idle sessions evicted from memory (`serve --evict-after`): `callflow
//! serve` (the real binary) on a SQLite file against sim-graph over
//! loopback. A call waiting in a menu is evicted (the admin API and
//! `/metrics` say so), then woken by a key or by its menu's timer, and ends
//! as the same call on a server that keeps every session in memory, with
//! the same Graph requests; an evicted call survives `kill -9`.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::store::{
    ADMIN, MENU_NUMBER, Serve, flows, free_port, menu_waiting, no_request_twice, place, requests,
    sim, sim_post,
};
use crate::support::poll::eventually;

/// A menu whose timeout (long enough for the call to be evicted first)
/// says goodbye.
const TIMER_NUMBER: &str = "+14255550181";

const TIMER_FLOW: &str = r#"flow: evicted-timer
trigger:
  incoming_call:
    to: ["+14255550181"]
start: greet
steps:
  greet:
    answer: {}
    next: menu
  menu:
    menu:
      prompt: https://cdn.contoso.com/menu.wav
      choices: { "1": bye }
      timeout: 6s
      retries: 0
    on_timeout: bye
    on_invalid: bye
  bye:
    hangup: {}
"#;

fn flows_with_timer(dir: &Path) -> std::path::PathBuf {
    let flows = flows(dir);
    std::fs::write(flows.join("evicted-timer.yaml"), TIMER_FLOW).expect("flow");
    flows
}

/// One value of `/metrics`.
async fn metric(serve: &Serve, name: &str) -> Option<f64> {
    let text = reqwest::Client::new()
        .get(format!("{}/metrics", serve.public))
        .bearer_auth(ADMIN)
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

async fn wait_metric(serve: &Serve, name: &str, ok: impl Fn(f64) -> bool) -> f64 {
    let seen = eventually(Duration::from_secs(60), || async {
        metric(serve, name).await.filter(|v| ok(*v))
    })
    .await;
    match seen {
        Some(v) => v,
        None => panic!("{name} never as expected: {:?}", metric(serve, name).await),
    }
}

async fn in_menu(serve: &Serve, graph: &str, number: &str, callback: &str) -> String {
    let call = place(graph, number, callback).await;
    eventually(Duration::from_secs(60), || async {
        menu_waiting(serve, graph, &call).await.then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("call {call} never waited in its menu"));
    call
}

async fn press(graph: &str, call: &str, digits: &str) {
    let status = sim_post(
        graph,
        &format!("/sim/calls/{call}/press"),
        json!({ "digits": digits }),
    )
    .await;
    assert!((200..300).contains(&status), "press {digits}: {status}");
}

/// The live sessions `/api/sessions` lists.
async fn listed(serve: &Serve) -> Vec<Value> {
    let page: Value = reqwest::Client::new()
        .get(format!("{}/api/sessions?limit=100", serve.public))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("sessions")
        .json()
        .await
        .expect("json");
    page["sessions"].as_array().cloned().unwrap_or_default()
}

/// Two servers on the same sim-graph, one evicting sessions idle for
/// 300 ms, the other keeping them. On each, a call waits in a menu: the
/// evicted one is listed as evicted (by the admin API, from the store, on
/// its step) and counted; a key wakes it, and it is transferred exactly as
/// the kept one. Then a call whose menu times out: evicted, woken by its
/// timer, it says goodbye and hangs up as the kept one does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evicted_session_wakes_on_a_key_and_on_its_timer_as_if_kept() {
    callflow::graph::client::install_tls_provider();
    let sim = sim().await;
    let graph = sim.base_url().to_owned();
    let dir = tempfile::tempdir().expect("tempdir");
    let flows = flows_with_timer(dir.path());
    let store_of = |name: &str| format!("sqlite:{}", dir.path().join(name).display());
    let (port_a, port_b) = (free_port(), free_port());
    let evicting = Serve::start_with(
        &graph,
        port_a,
        &flows,
        &store_of("evicting.db"),
        &["--evict-after", "300ms"],
        &[],
    )
    .await;
    let kept = Serve::start_with(
        &graph,
        port_b,
        &flows,
        &store_of("kept.db"),
        &["--evict-after", "off"],
        &[],
    )
    .await;
    let callback = |port: u16| format!("http://127.0.0.1:{port}/api/calls");

    // Woken by a key.
    let a = in_menu(&evicting, &graph, MENU_NUMBER, &callback(port_a)).await;
    let b = in_menu(&kept, &graph, MENU_NUMBER, &callback(port_b)).await;
    let s = evicting
        .wait_session(&a, "evicted", |s| s["evicted"] == true)
        .await;
    assert_eq!(
        (&s["state"], &s["step"]),
        (&json!("running"), &json!("menu")),
        "{s}"
    );
    assert_eq!(
        wait_metric(&evicting, "callflow_sessions_evicted", |v| v >= 1.0).await,
        1.0
    );
    assert!(wait_metric(&evicting, "callflow_sessions_evictions_total", |v| v >= 1.0).await >= 1.0);
    assert_eq!(metric(&evicting, "callflow_sessions_live").await, Some(1.0));
    let list = listed(&evicting).await;
    assert!(
        list.iter()
            .any(|s| s["id"] == a.as_str() && s["evicted"] == true && s["step"] == "menu"),
        "the evicted session is listed: {list:?}"
    );
    let kept_now = kept.session(&b).await.expect("the kept session");
    assert!(kept_now.get("evicted").is_none(), "{kept_now}");
    assert_eq!(metric(&kept, "callflow_sessions_evicted").await, Some(0.0));

    press(&graph, &a, "1").await;
    press(&graph, &b, "1").await;
    let ended_a = evicting
        .wait_session(&a, "ended", |s| s["state"] == "ended")
        .await;
    let ended_b = kept
        .wait_session(&b, "ended", |s| s["state"] == "ended")
        .await;
    assert_eq!(ended_a["outcome"], "transferred", "{ended_a}");
    assert_eq!(ended_b["outcome"], "transferred", "{ended_b}");
    assert_eq!(requests(&graph, &a).await, requests(&graph, &b).await);
    no_request_twice(&graph, &a).await;
    assert!(metric(&evicting, "callflow_sessions_woken_total").await >= Some(1.0));

    // Woken by its timer.
    let ta = in_menu(&evicting, &graph, TIMER_NUMBER, &callback(port_a)).await;
    let tb = in_menu(&kept, &graph, TIMER_NUMBER, &callback(port_b)).await;
    evicting
        .wait_session(&ta, "evicted", |s| {
            s["evicted"] == true && s["state"] == "running"
        })
        .await;
    let ended_a = evicting
        .wait_session(&ta, "ended", |s| s["state"] == "ended")
        .await;
    let ended_b = kept
        .wait_session(&tb, "ended", |s| s["state"] == "ended")
        .await;
    assert_eq!(ended_a["outcome"], "hung_up", "{ended_a}");
    assert_eq!(ended_b["outcome"], "hung_up", "{ended_b}");
    for ended in [&ended_a, &ended_b] {
        let text = ended["timeline_text"].as_str().unwrap_or("");
        assert!(text.contains("bye"), "{text}");
    }
    assert_eq!(requests(&graph, &ta).await, requests(&graph, &tb).await);
    no_request_twice(&graph, &ta).await;
    assert!(metric(&evicting, "callflow_sessions_woken_total").await >= Some(2.0));
    wait_metric(&evicting, "callflow_sessions_evicted", |v| v == 0.0).await;
    // Retired once their linger is over, not lost on the way.
    wait_metric(&evicting, "callflow_sessions_live", |v| v == 0.0).await;
    drop(evicting);
    drop(kept);
    let _ = sim.shutdown().await;
}

/// A call evicted while it waits in its menu; `serve` is killed with
/// `kill -9` and started again: the call is recovered from the store (its
/// menu plays its prompt again, as after any restart), and a key transfers
/// it, no request sent twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evicted_session_survives_kill_9() {
    callflow::graph::client::install_tls_provider();
    let sim = sim().await;
    let graph = sim.base_url().to_owned();
    let dir = tempfile::tempdir().expect("tempdir");
    let flows = flows(dir.path());
    let store = format!("sqlite:{}", dir.path().join("callflow.db").display());
    let port = free_port();
    let callback = format!("http://127.0.0.1:{port}/api/calls");
    let args = ["--evict-after", "300ms"];

    let serve = Serve::start_with(&graph, port, &flows, &store, &args, &[]).await;
    let call = in_menu(&serve, &graph, MENU_NUMBER, &callback).await;
    serve
        .wait_session(&call, "evicted", |s| s["evicted"] == true)
        .await;
    wait_metric(&serve, "callflow_sessions_evicted", |v| v == 1.0).await;
    serve.kill9();

    let serve = Serve::start_with(&graph, port, &flows, &store, &args, &[]).await;
    assert_eq!(
        metric(&serve, "callflow_sessions_recovered_total").await,
        Some(1.0)
    );
    serve
        .wait_session(&call, "recovered in its menu", |s| {
            s["step"] == "menu"
                && s["timeline_text"]
                    .as_str()
                    .is_some_and(|t| t.contains("resumed after a restart"))
        })
        .await;
    // Idle again once its prompt has played: evicted again.
    serve
        .wait_session(&call, "evicted again", |s| s["evicted"] == true)
        .await;
    press(&graph, &call, "1").await;
    let ended = serve
        .wait_session(&call, "ended", |s| s["state"] == "ended")
        .await;
    assert_eq!(ended["outcome"], "transferred", "{ended}");
    no_request_twice(&graph, &call).await;
    let list = requests(&graph, &call).await;
    assert_eq!(
        list.iter().filter(|r| *r == "POST playPrompt").count(),
        2,
        "the prompt, and once more after the restart: {list:?}"
    );
    assert_eq!(
        list.iter().filter(|r| *r == "POST transfer").count(),
        1,
        "{list:?}"
    );
    drop(serve);
    let _ = sim.shutdown().await;
}
