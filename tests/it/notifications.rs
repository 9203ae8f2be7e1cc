//! Every notification in an accepted POST reaches a session or is logged and
//! counted by reason (`callflow_notifications_dropped_total{reason}`), and
//! the notifications of a call the bot is creating that overtake its `201`
//! are held for the session whose create is in flight (named in the create's
//! callback URI), for as long as it is in flight, without turning off
//! `state_change` triggers for other calls. Over real loopback HTTP: the
//! server and the runtime, a simulated Graph behind a `CallControl` whose
//! create is held back until the test lets it go, and a manual clock.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use callflow::runtime::{
    Clock, Dropped, MAX_ORPHANS as MAX_HELD, ManualClock, Runtime, RuntimeConfig, SESSION_HINT,
};
use callflow::server::{NotificationAuth, ServerConfig, ServerState};
use callflow::sim::behaviour::GraphBehaviour;
use callflow::sim::graph::{Scheduled, SimGraph};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::runtime::SlowCreate;
use crate::support::poll::eventually;

const ADMIN: &str = "admin-token";
const LIMIT: Duration = Duration::from_secs(20);

fn start_time() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-20T10:00:00+01:00")
        .expect("a date")
        .with_timezone(&Utc)
}

struct Stack {
    runtime: Runtime,
    clock: ManualClock,
    graph: Arc<SimGraph>,
    slow: Arc<SlowCreate>,
    addr: SocketAddr,
    http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Stack {
    async fn start(flows: &[&str]) -> Stack {
        Self::start_with(flows, &[]).await
    }

    /// A stack with bundled `flows` and inline ones (`(file, yaml)`).
    async fn start_with(flows: &[&str], inline: &[(&str, &str)]) -> Stack {
        callflow::graph::client::install_tls_provider();
        let dir = tempfile::tempdir().expect("temp dir");
        for f in flows {
            std::fs::copy(Path::new("flows").join(f), dir.path().join(f)).expect("copy flow");
        }
        for (name, yaml) in inline {
            std::fs::write(dir.path().join(name), yaml).expect("write flow");
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let callback = format!("http://{addr}/api/calls");
        let clock = ManualClock::new(start_time());
        let graph = Arc::new(SimGraph::new(
            GraphBehaviour::default(),
            &callback,
            start_time(),
        ));
        let slow = Arc::new(SlowCreate {
            graph: graph.clone(),
            created: std::sync::Mutex::new(None),
            callback: std::sync::Mutex::new(None),
            gate: tokio::sync::Semaphore::new(0),
        });
        let config = RuntimeConfig {
            flows_dir: dir.path().to_path_buf(),
            callback_uri: callback,
            bot: callflow::sim::default_identity(),
            clock: Clock::Manual(clock.clone()),
            ..RuntimeConfig::default()
        };
        let runtime = Runtime::start(config, slow.clone())
            .await
            .unwrap_or_else(|d| panic!("flows load: {} diagnostics", d.len()));
        let mut server = ServerConfig::new(NotificationAuth::InsecureNoAuth);
        server.admin_token = Some(ADMIN.into());
        let state = ServerState::new(server, runtime.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let served = tokio::spawn(callflow::server::serve(listener, state, async move {
            let _ = stopped.await;
        }));
        Stack {
            runtime,
            clock,
            graph,
            slow,
            addr,
            http: reqwest::Client::new(),
            stop: Some(stop),
            served,
            _dir: dir,
        }
    }

    fn callback(&self) -> String {
        format!("http://{}/api/calls", self.addr)
    }

    /// POSTs `body` to `uri` as Graph would; the status.
    async fn post(&self, uri: &str, body: &Value) -> u16 {
        self.http
            .post(uri)
            .json(body)
            .send()
            .await
            .expect("the callback answers")
            .status()
            .as_u16()
    }

    async fn metrics(&self) -> String {
        self.http
            .get(format!("http://{}/metrics", self.addr))
            .bearer_auth(ADMIN)
            .send()
            .await
            .expect("metrics answer")
            .text()
            .await
            .expect("text")
    }

    async fn settled(&self) {
        tokio::time::timeout(LIMIT, self.runtime.settle())
            .await
            .expect("the runtime settles");
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = self.served.await;
    }
}

/// The line of `/metrics` for a dropped reason.
fn dropped_line(why: Dropped, n: u64) -> String {
    format!(
        "callflow_notifications_dropped_total{{reason=\"{}\"}} {n}",
        why.as_str()
    )
}

/// A state change of call `id`, as Graph posts it.
fn state_body(id: &str, state: &str, direction: &str) -> Value {
    json!({"value": [{
        "changeType": "updated",
        "resource": format!("/communications/calls/{id}"),
        "resourceUrl": format!("/communications/calls/{id}"),
        "resourceData": {
            "@odata.type": "#microsoft.graph.call",
            "id": id,
            "state": state,
            "direction": direction
        }
    }]})
}

#[tokio::test]
async fn a_created_calls_early_notifications_wait_for_its_create_however_long_and_only_for_it() {
    let s = Stack::start(&["outbound-reminder.yaml", "group-handoff.yaml"]).await;
    let Value::Object(params) =
        json!({"phone": "+33612345678", "appointment": "https://cdn.contoso.com/r.wav"})
    else {
        unreachable!()
    };
    let id = s
        .runtime
        .start_api_flow("outbound-reminder", params)
        .await
        .expect("the run starts");
    let call = eventually(LIMIT, || async { s.slow.created.lock().unwrap().clone() })
        .await
        .expect("the create reaches Graph");
    let hinted = s
        .slow
        .callback
        .lock()
        .unwrap()
        .clone()
        .expect("a callbackUri");
    assert_eq!(
        hinted,
        format!("{}?{SESSION_HINT}={id}", s.callback()),
        "the create's callback names its session"
    );

    // Graph says `establishing` and `established` before its 201 arrives,
    // to the callback the create gave it.
    let mut early = 0;
    while let Some((_, Scheduled::Graph(h))) = s.graph.pop() {
        for body in s.graph.happen(h) {
            assert_eq!(s.post(&hinted, &body).await, 202);
            early += 1;
        }
        if early >= 2 {
            break;
        }
    }
    assert!(early >= 1);
    // A stray notification to the same callback, for a call the create is not.
    assert_eq!(
        s.post(
            &hinted,
            &state_body("stray-call", "established", "outgoing")
        )
        .await,
        202
    );
    // Far longer than the old five seconds: still held.
    s.clock.advance(Duration::from_secs(30));
    // Meanwhile an outgoing call nobody owns becomes established, posted to
    // the plain callback: a create in flight elsewhere does not stop its
    // `state_change` flow.
    assert_eq!(
        s.post(
            &s.callback(),
            &state_body("other-call", "established", "outgoing")
        )
        .await,
        202
    );
    // (The run waits on its create: only what it does not wait on settles.)
    eventually(LIMIT, || async {
        s.runtime.session("other-call").map(|_| ())
    })
    .await
    .expect("the state_change flow took the other call");
    assert!(
        s.runtime.session(&call).is_none(),
        "the created call started no flow of its own"
    );
    let m = s.runtime.metrics();
    assert_eq!(
        m.orphans_claimed.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    assert!(s.metrics().await.contains("callflow_orphans_held 3"));
    assert_eq!(m.dropped(Dropped::OrphanExpired), 0);

    // The 201 comes: the session claims its call's events, in order; the
    // stray one is dropped, counted.
    s.slow.gate.add_permits(1);
    eventually(LIMIT, || async {
        (m.orphans_claimed.load(std::sync::atomic::Ordering::Relaxed) == early).then_some(())
    })
    .await
    .expect("the held events are claimed");
    s.settled().await;
    let text = s.metrics().await;
    assert!(
        text.contains(&dropped_line(Dropped::OrphanExpired, 1)),
        "{text}"
    );
    assert!(text.contains("callflow_orphans_held 0"), "{text}");
    let detail = s.runtime.session(&id).expect("the run");
    assert!(
        detail.timeline_text.contains("established"),
        "{}",
        detail.timeline_text
    );
    s.stop().await;
}

#[tokio::test]
async fn the_hold_for_a_create_in_flight_is_bounded_and_what_overflows_is_counted() {
    let s = Stack::start(&["outbound-reminder.yaml"]).await;
    let Value::Object(params) =
        json!({"phone": "+33612345678", "appointment": "https://cdn.contoso.com/r.wav"})
    else {
        unreachable!()
    };
    s.runtime
        .start_api_flow("outbound-reminder", params)
        .await
        .expect("the run starts");
    eventually(LIMIT, || async { s.slow.created.lock().unwrap().clone() })
        .await
        .expect("the create reaches Graph");
    let hinted = s
        .slow
        .callback
        .lock()
        .unwrap()
        .clone()
        .expect("a callbackUri");
    // A flood to the session's callback, for calls its create is not: held
    // up to the bound, then each one more is dropped and counted.
    let over = 3;
    let total = MAX_HELD + over;
    let mut sent = 0;
    while sent < total {
        let n = (total - sent).min(500);
        let batch: Vec<Value> = (sent..sent + n)
            .map(|i| {
                state_body(&format!("flood-{i}"), "established", "outgoing")["value"][0].clone()
            })
            .collect();
        assert_eq!(s.post(&hinted, &json!({ "value": batch })).await, 202);
        sent += n;
    }
    let text = s.metrics().await;
    assert!(
        text.contains(&dropped_line(Dropped::OrphansFull, over as u64)),
        "{text}"
    );
    assert!(
        text.contains(&format!("callflow_orphans_held {MAX_HELD}")),
        "{text}"
    );
    // The create answers: none of the flood is its call's, all of it goes.
    s.slow.gate.add_permits(1);
    s.settled().await;
    let text = s.metrics().await;
    assert!(text.contains("callflow_orphans_held 0"), "{text}");
    assert!(
        text.contains(&dropped_line(Dropped::OrphanExpired, MAX_HELD as u64)),
        "{text}"
    );
    s.stop().await;
}

#[tokio::test]
async fn every_notification_that_reaches_no_session_is_counted_by_reason() {
    let s = Stack::start(&["outbound-reminder.yaml"]).await;
    // No session owns the call and none is creating it.
    assert_eq!(
        s.post(
            &s.callback(),
            &state_body("nobody", "established", "incoming")
        )
        .await,
        202
    );
    // A callback naming a session that does not exist changes nothing.
    let stale = format!("{}?{SESSION_HINT}=run-gone", s.callback());
    assert_eq!(
        s.post(&stale, &state_body("nobody-2", "terminated", "outgoing"))
            .await,
        202
    );
    // An incoming call no flow takes.
    let (_, incoming) = s.graph.incoming_call(
        &callflow::engine::Party::phone("+33600000001"),
        &callflow::engine::Party::phone("+19995550000"),
    );
    assert_eq!(s.post(&s.callback(), &incoming).await, 202);
    // A notification about nothing the engine acts on (content sharing).
    let sharing = json!({"value": [{
        "changeType": "created",
        "resource": "/communications/calls/c-share/contentsharingsessions",
        "resourceUrl": "/communications/calls/c-share/contentsharingsessions",
        "resourceData": [{"@odata.type": "#microsoft.graph.contentSharingSession", "id": "s1"}]
    }]});
    assert_eq!(s.post(&s.callback(), &sharing).await, 202);
    // A refused entry beside a good one (already counted by the server).
    let mixed = json!({"value": [
        state_body("nobody-3", "established", "incoming")["value"][0].clone(),
        {"changeType": "updated", "resource": 7}
    ]});
    assert_eq!(s.post(&s.callback(), &mixed).await, 202);
    s.settled().await;
    let text = s.metrics().await;
    for line in [
        dropped_line(Dropped::UnknownCall, 3),
        dropped_line(Dropped::NoFlow, 1),
        dropped_line(Dropped::IgnoredResource, 1),
        dropped_line(Dropped::OrphanExpired, 0),
    ] {
        assert!(text.contains(&line), "{line} in:\n{text}");
    }
    assert!(
        text.contains("callflow_notifications_refused_total{reason="),
        "{text}"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_late_notification_for_an_ended_session_is_counted_as_such() {
    let s = Stack::start_with(
        &[],
        &[(
            "busy.yaml",
            "flow: busy\ntrigger:\n  incoming_call:\n    to: [\"+14255550199\"]\nstart: no\nsteps:\n  no:\n    reject: { reason: busy }\n",
        )],
    )
    .await;
    let (call, incoming) = s.graph.incoming_call(
        &callflow::engine::Party::phone("+33600000002"),
        &callflow::engine::Party::phone("+14255550199"),
    );
    assert_eq!(s.post(&s.callback(), &incoming).await, 202);
    s.settled().await;
    // Graph ends the rejected call and says so.
    while let Some((_, Scheduled::Graph(h))) = s.graph.pop() {
        for body in s.graph.happen(h) {
            assert_eq!(s.post(&s.callback(), &body).await, 202);
        }
    }
    s.settled().await;
    // The session lingers a few seconds for late notifications, then leaves.
    s.clock.advance(Duration::from_secs(11));
    eventually(LIMIT, || async {
        (s.runtime.live_sessions() == 0).then_some(())
    })
    .await
    .expect("the session retires");
    // Graph repeats its last notification.
    assert_eq!(
        s.post(&s.callback(), &state_body(&call, "terminated", "incoming"))
            .await,
        202
    );
    s.settled().await;
    let text = s.metrics().await;
    assert!(
        text.contains(&dropped_line(Dropped::EndedCall, 1)),
        "{text}"
    );
    assert!(
        text.contains(&dropped_line(Dropped::UnknownCall, 0)),
        "{text}"
    );
    s.stop().await;
}
