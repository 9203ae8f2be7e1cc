//! The runtime against the in-process simulated Graph, under tokio's paused
//! clock: incoming calls, per-call ordering under reordering and duplicates,
//! `api` starts, unknown calls, hot reload with version pinning, reaping.
//!
//! The test plays Graph's side: it pops what the simulated Graph does next
//! and hands the notification bodies to `Runtime::submit`, as the server
//! would. Nothing here reads the wall clock.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use callflow::engine::{ActionOutcome, Outcome, Party, RequestKind};
use callflow::graph::notification::parse_batch;
use callflow::runtime::{Clock, ManualClock, Metrics, Runtime, RuntimeConfig, StartError};
use callflow::sim::behaviour::GraphBehaviour;
use callflow::sim::graph::{Scheduled, SimGraph};
use serde_json::{Map, Value, json};

const CALLBACK: &str = "https://bot.contoso.com/api/calls";
const RECEPTION_NUMBER: &str = "+14255550100";

/// A flow that answers, waits `wait`, then transfers to `target`.
fn front(target: &str, wait: &str) -> String {
    format!(
        "flow: front
timezone: Europe/Paris
trigger:
  incoming_call:
    to: [\"{RECEPTION_NUMBER}\"]
start: greet
steps:
  greet:
    answer: {{}}
    next: pause
  pause:
    wait: {{ timeout: {wait} }}
    next: desk
  desk:
    transfer: {{ to: {{ phone: \"{target}\" }} }}
"
    )
}

fn config(dir: &Path) -> RuntimeConfig {
    RuntimeConfig {
        flows_dir: dir.to_path_buf(),
        callback_uri: CALLBACK.into(),
        reload_debounce: Duration::from_millis(100),
        idle_reap_after: Duration::from_secs(3600),
        max_sessions: 1000,
        queue_per_call: 64,
        bot: callflow::sim::default_identity(),
        ..RuntimeConfig::default()
    }
}

fn graph(behaviour: GraphBehaviour) -> Arc<SimGraph> {
    Arc::new(SimGraph::new(behaviour, CALLBACK, chrono::Utc::now()))
}

fn deliver(rt: &Runtime, body: &Value) {
    let batch = parse_batch(body.to_string().as_bytes()).expect("sim-graph bodies parse");
    rt.submit(batch).expect("queued");
}

/// Plays Graph until nothing happened for `quiet` seconds of (paused) time.
async fn pump(rt: &Runtime, graph: &SimGraph, quiet: u64) {
    let mut idle = 0;
    while idle < quiet {
        rt.settle().await;
        match graph.pop() {
            Some((_, Scheduled::Graph(h))) => {
                for body in graph.happen(h) {
                    deliver(rt, &body);
                }
                idle = 0;
            }
            Some((_, Scheduled::Timer(_))) => {}
            None => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                idle += 1;
            }
        }
    }
    rt.settle().await;
}

fn call_in(rt: &Runtime, graph: &SimGraph, from: &str) -> String {
    let (id, body) = graph.incoming_call(&Party::phone(from), &Party::phone(RECEPTION_NUMBER));
    deliver(rt, &body);
    id
}

fn transfer_targets(rt: &Runtime, session: &str) -> Vec<String> {
    let detail = rt.session(session).expect("session kept");
    detail
        .timeline
        .iter()
        .filter_map(|e| match &e.what {
            callflow::engine::Entry::Request(line) if line.request == RequestKind::Transfer => {
                Some(line.to_string())
            }
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn an_incoming_call_to_reception_reaches_a_transfer() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy("flows/reception.yaml", dir.path().join("reception.yaml")).unwrap();
    let sim = graph(GraphBehaviour::default());
    let rt = Runtime::start(config(dir.path()), sim.clone())
        .await
        .expect("the bundled reception flow loads");
    let call = call_in(&rt, &sim, "+33123456789");
    pump(&rt, &sim, 120).await;

    let detail = rt
        .session(&call)
        .expect("the session is kept after it ends");
    assert_eq!(detail.summary.flow, "reception");
    assert_eq!(
        detail.summary.outcome,
        Some(Outcome::Transferred),
        "{}",
        detail.timeline_text
    );
    assert!(!transfer_targets(&rt, &call).is_empty());
    let m = rt.metrics();
    assert!(m.requests(RequestKind::Answer, true) == 1);
    assert!(m.requests(RequestKind::Transfer, true) >= 1);
    assert_eq!(m.ended(Outcome::Transferred), 1);
    // Actions by kind and outcome: answered, the hours switch, the menu, a
    // transfer that ended the run.
    assert_eq!(
        m.action("answer", ActionOutcome::Ok),
        1,
        "{:?}",
        m.actions()
    );
    assert_eq!(
        m.action("switch", ActionOutcome::Ok),
        1,
        "{:?}",
        m.actions()
    );
    assert!(
        m.action("transfer", ActionOutcome::Ok) >= 1,
        "{:?}",
        m.actions()
    );
    assert_eq!(
        rt.live_sessions(),
        0,
        "the session is retired once its call is down"
    );
    assert_eq!(Metrics::get(&m.sessions_live), 0);
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
}

#[tokio::test(start_paused = true)]
async fn calls_run_in_parallel_each_in_order_under_reordering_and_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("front.yaml"), front("+14255550123", "3s")).unwrap();
    let behaviour = GraphBehaviour {
        reorder: true,
        duplicate: true,
        ..GraphBehaviour::default()
    };
    let sim = graph(behaviour);
    let rt = Runtime::start(config(dir.path()), sim.clone())
        .await
        .unwrap();
    let calls: Vec<String> = (0..20)
        .map(|i| call_in(&rt, &sim, &format!("+3312345{i:04}")))
        .collect();
    pump(&rt, &sim, 60).await;

    for call in &calls {
        let d = rt.session(call).unwrap();
        assert_eq!(
            d.summary.outcome,
            Some(Outcome::Transferred),
            "{}",
            d.timeline_text
        );
        assert_eq!(transfer_targets(&rt, call).len(), 1, "{}", d.timeline_text);
    }
    let m = rt.metrics();
    assert_eq!(
        m.requests(RequestKind::Answer, true),
        20,
        "one answer per call despite duplicates"
    );
    assert_eq!(m.requests(RequestKind::Transfer, true), 20);
    assert_eq!(m.ended(Outcome::Transferred), 20);
    assert_eq!(rt.live_sessions(), 0);
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
}

#[tokio::test(start_paused = true)]
async fn an_api_start_checks_its_params_and_routes_the_calls_it_creates() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        "flows/outbound-reminder.yaml",
        dir.path().join("outbound-reminder.yaml"),
    )
    .unwrap();
    std::fs::write(dir.path().join("front.yaml"), front("+14255550123", "3s")).unwrap();
    let sim = graph(GraphBehaviour::default());
    let rt = Runtime::start(config(dir.path()), sim.clone())
        .await
        .unwrap();

    let bad = json!({"phone": "0612345678", "retries": "two", "apointment": "x"});
    let Value::Object(bad) = bad else {
        unreachable!()
    };
    let err = rt
        .start_api_flow("outbound-reminder", bad)
        .await
        .unwrap_err();
    let StartError::InvalidParams { problems } = &err else {
        panic!("expected invalid params, got {err:?}");
    };
    let text = err.to_string();
    assert!(
        text.contains("unknown parameter `apointment` (did you mean `appointment`?)"),
        "{text}"
    );
    assert!(
        text.contains("parameter `phone`: expected an E.164 phone number"),
        "{text}"
    );
    assert!(
        text.contains("parameter `retries`: expected a whole number, got \"two\""),
        "{text}"
    );
    assert!(
        text.contains("parameter `appointment` is required"),
        "{text}"
    );
    assert_eq!(problems.len(), 4, "{problems:?}");

    assert!(matches!(
        rt.start_api_flow("nope", Map::new()).await,
        Err(StartError::UnknownFlow { .. })
    ));
    assert!(matches!(
        rt.start_api_flow("front", Map::new()).await,
        Err(StartError::NotApi { .. })
    ));
    assert_eq!(
        rt.live_sessions(),
        0,
        "a refused start leaves nothing behind"
    );

    let good = json!({"phone": "+33612345678", "appointment": "https://cdn.contoso.com/r.wav"});
    let Value::Object(good) = good else {
        unreachable!()
    };
    let id = rt.start_api_flow("outbound-reminder", good).await.unwrap();
    pump(&rt, &sim, 60).await;
    let d = rt.session(&id).unwrap();
    assert_eq!(
        d.params.get("retries"),
        Some(&json!(1)),
        "the default is filled in"
    );
    assert_eq!(
        d.summary.outcome,
        Some(Outcome::HungUp),
        "{}",
        d.timeline_text
    );
    assert_eq!(
        d.summary.calls.len(),
        1,
        "the created call belongs to the session"
    );
    let m = rt.metrics();
    assert_eq!(m.requests(RequestKind::CreateCall, true), 1);
    assert_eq!(m.requests(RequestKind::PlayPrompt, true), 2);
    assert_eq!(
        Metrics::get(&m.unknown_call_events),
        0,
        "every notification of the created call was routed"
    );
}

#[tokio::test(start_paused = true)]
async fn a_notification_for_an_unknown_call_is_counted_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("front.yaml"), front("+14255550123", "3s")).unwrap();
    let sim = graph(GraphBehaviour::default());
    let rt = Runtime::start(config(dir.path()), sim.clone())
        .await
        .unwrap();
    let body = json!({"value": [{
        "changeType": "updated",
        "resourceUrl": "/communications/calls/57dab8b1-894c-409a-b240-bd8beae78896",
        "resourceData": {"@odata.type": "#microsoft.graph.call", "state": "established"}
    }]});
    deliver(&rt, &body);
    // An incoming call no flow takes is counted too, and starts nothing.
    let (_, other) =
        sim.incoming_call(&Party::phone("+33100000000"), &Party::phone("+14255559999"));
    deliver(&rt, &other);
    rt.settle().await;
    let m = rt.metrics();
    assert_eq!(Metrics::get(&m.unknown_call_events), 1);
    assert_eq!(Metrics::get(&m.unmatched_incoming), 1);
    assert_eq!(Metrics::get(&m.notifications[0]), 2);
    assert_eq!(rt.live_sessions(), 0);
}

/// A call from +33100000001, once it waits in its flow's `pause` step.
async fn call_waiting_in_pause(rt: &Runtime, sim: &SimGraph) -> String {
    let call = call_in(rt, sim, "+33100000001");
    pump(rt, sim, 5).await;
    assert_eq!(
        rt.session(&call).unwrap().summary.step.as_deref(),
        Some("pause")
    );
    call
}

#[tokio::test(start_paused = true)]
async fn a_broken_edit_keeps_the_old_set_and_a_call_in_progress_finishes_on_its_version() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("front.yaml");
    std::fs::write(&file, front("+14255550123", "30s")).unwrap();
    let sim = graph(GraphBehaviour::default());
    let rt = Runtime::start(config(dir.path()), sim.clone())
        .await
        .unwrap();
    let v1 = rt.flows().flows[0].sha256.clone();

    // A call starts on version 1 and sits in its 30 s wait.
    let first = call_waiting_in_pause(&rt, &sim).await;

    // A broken edit: refused, every diagnostic shown, the old set serves.
    std::fs::write(
        &file,
        front("+14255550124", "30s").replace("next: desk", "next: dsk"),
    )
    .unwrap();
    let refused = rt.reload();
    assert!(!refused.ok);
    assert!(refused.errors >= 1);
    assert!(
        refused.rendered.iter().any(|r| r.contains("dsk")),
        "{:?}",
        refused.rendered
    );
    let status = rt.flows();
    assert_eq!(status.status, "stale");
    assert_eq!(status.version, 1);
    assert_eq!(status.flows[0].sha256, v1);
    let last_error = status.last_error.expect("the refused reload is shown");
    assert!(!last_error.diagnostics.is_empty());
    assert_eq!(Metrics::get(&rt.metrics().reloads_failed), 1);
    let during = call_in(&rt, &sim, "+33100000002");
    rt.settle().await;
    assert_eq!(
        rt.session(&during).unwrap().summary.version,
        v1,
        "new calls still get the old set"
    );

    // A valid edit swaps the set; the first call stays on version 1.
    std::fs::write(&file, front("+14255550124", "30s")).unwrap();
    let swapped = rt.reload();
    assert!(swapped.ok, "{:?}", swapped.rendered);
    assert_eq!(swapped.version, 2);
    let status = rt.flows();
    assert_eq!(status.status, "ok");
    assert_eq!(status.flows[0].version, 2);
    let v2 = status.flows[0].sha256.clone();
    assert_ne!(v1, v2);
    let after = call_in(&rt, &sim, "+33100000003");
    pump(&rt, &sim, 60).await;

    for (call, version, target) in [
        (&first, &v1, "+14255550123"),
        (&during, &v1, "+14255550123"),
        (&after, &v2, "+14255550124"),
    ] {
        let d = rt.session(call).unwrap();
        assert_eq!(&d.summary.version, version);
        assert_eq!(
            d.summary.outcome,
            Some(Outcome::Transferred),
            "{}",
            d.timeline_text
        );
        let targets = transfer_targets(&rt, call);
        assert!(
            targets.len() == 1 && targets[0].contains(target),
            "{targets:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_session_whose_call_never_ends_is_reaped() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("front.yaml"), front("+14255550123", "3s")).unwrap();
    // A Graph that accepts everything and never says anything again.
    let sim = Arc::new(SimGraph::passive(CALLBACK, chrono::Utc::now()));
    let mut cfg = config(dir.path());
    cfg.idle_reap_after = Duration::from_secs(600);
    let rt = Runtime::start(cfg, sim.clone()).await.unwrap();
    let call = call_in(&rt, &sim, "+33100000009");
    rt.settle().await;
    assert_eq!(rt.live_sessions(), 1);
    tokio::time::sleep(Duration::from_secs(599)).await;
    rt.settle().await;
    assert_eq!(rt.live_sessions(), 1, "not reaped before its time");
    tokio::time::sleep(Duration::from_secs(2)).await;
    rt.settle().await;
    assert_eq!(rt.live_sessions(), 0);
    let d = rt.session(&call).unwrap();
    assert_eq!(d.summary.outcome, Some(Outcome::Error));
    assert!(
        d.reason.as_deref().unwrap_or("").starts_with("reaped"),
        "{:?}",
        d.reason
    );
    let m = rt.metrics();
    assert_eq!(Metrics::get(&m.sessions_reaped), 1);
    assert_eq!(
        m.requests(RequestKind::Hangup, true),
        1,
        "the call left up is hung up"
    );
}

#[tokio::test]
async fn a_broken_folder_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("front.yaml"),
        front("+14255550123", "3s").replace("next: desk", "next: dsk"),
    )
    .unwrap();
    let sim = graph(GraphBehaviour::default());
    let Err(diagnostics) = Runtime::start(config(dir.path()), sim).await else {
        panic!("a broken folder must not start");
    };
    assert!(diagnostics.iter().any(|d| d.is_error()));
}

#[tokio::test(start_paused = true)]
async fn shutdown_refuses_new_work_and_stops_every_session() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("front.yaml"), front("+14255550123", "30s")).unwrap();
    let sim = graph(GraphBehaviour::default());
    let rt = Runtime::start(config(dir.path()), sim.clone())
        .await
        .unwrap();
    call_in(&rt, &sim, "+33100000001");
    pump(&rt, &sim, 3).await;
    assert_eq!(rt.live_sessions(), 1);
    let probe = rt.clone();
    rt.shutdown().await;
    assert_eq!(probe.live_sessions(), 0);
    let (_, body) = sim.incoming_call(
        &Party::phone("+33100000002"),
        &Party::phone(RECEPTION_NUMBER),
    );
    let batch = parse_batch(body.to_string().as_bytes()).unwrap();
    assert!(probe.submit(batch).is_err());
    assert!(matches!(
        probe.start_api_flow("front", Map::new()).await,
        Err(StartError::ShuttingDown)
    ));
}

/// The watcher reloads on a real file change (real time: the filesystem
/// notifies from its own thread; the test waits for the swap, bounded).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watcher_reloads_after_an_edit() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("front.yaml");
    std::fs::write(&file, front("+14255550123", "3s")).unwrap();
    let sim = graph(GraphBehaviour::default());
    let rt = Runtime::start(config(dir.path()), sim).await.unwrap();
    let watcher = rt.watch();
    tokio::time::sleep(Duration::from_millis(200)).await;
    std::fs::write(&file, front("+14255550124", "3s")).unwrap();
    let mut version = 1;
    for _ in 0..200 {
        version = rt.flows().version;
        if version == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(version, 2, "the edit was picked up");
    rt.shutdown().await;
    tokio::time::timeout(Duration::from_secs(10), watcher)
        .await
        .expect("the watcher stops with the runtime")
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_incoming_call_the_flow_does_not_answer_in_time_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("late.yaml"),
        format!(
            "flow: late
timezone: Europe/Paris
trigger:
  incoming_call:
    to: [\"{RECEPTION_NUMBER}\"]
start: pause
steps:
  pause:
    wait: {{ timeout: 20s }}
    next: greet
  greet:
    answer: {{}}
    next: bye
  bye:
    hangup: {{}}
"
        ),
    )
    .unwrap();
    let sim = graph(GraphBehaviour::default());
    let rt = Runtime::start(config(dir.path()), sim.clone())
        .await
        .unwrap();
    let call = call_in(&rt, &sim, "+33100000001");
    rt.settle().await;
    tokio::time::sleep(Duration::from_secs(13)).await;
    rt.settle().await;
    assert_eq!(rt.metrics().requests(RequestKind::Reject, true), 0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    rt.settle().await;
    let m = rt.metrics();
    assert_eq!(Metrics::get(&m.answer_deadline_missed), 1);
    assert_eq!(
        m.requests(RequestKind::Reject, true),
        1,
        "rejected before Graph's 15 s"
    );
    pump(&rt, &sim, 30).await;
    let d = rt.session(&call).unwrap();
    assert!(d.summary.outcome.is_some(), "{}", d.timeline_text);
    assert!(
        d.timeline_text.contains("did not answer within 15 s"),
        "{}",
        d.timeline_text
    );
    assert_eq!(rt.live_sessions(), 0);
}

/// A Graph whose answer to `POST /communications/calls` is held back until
/// the test lets it go, so that the new call's first notifications arrive
/// before the session knows the call is its own.
pub(crate) struct SlowCreate {
    pub(crate) graph: Arc<SimGraph>,
    pub(crate) created: std::sync::Mutex<Option<String>>,
    /// The `callbackUri` of the last create (where Graph would post its call's notifications).
    pub(crate) callback: std::sync::Mutex<Option<String>>,
    pub(crate) gate: tokio::sync::Semaphore,
}

impl callflow::engine::CallControl for SlowCreate {
    async fn answer(
        &self,
        c: &str,
        b: &callflow::graph::wire::AnswerRequest,
    ) -> Result<(), callflow::engine::ControlError> {
        self.graph.answer(c, b).await
    }
    async fn reject(
        &self,
        c: &str,
        b: &callflow::graph::wire::RejectRequest,
    ) -> Result<(), callflow::engine::ControlError> {
        self.graph.reject(c, b).await
    }
    async fn redirect(
        &self,
        c: &str,
        b: &callflow::graph::wire::RedirectRequest,
    ) -> Result<(), callflow::engine::ControlError> {
        self.graph.redirect(c, b).await
    }
    async fn transfer(
        &self,
        c: &str,
        b: &callflow::graph::wire::TransferRequest,
    ) -> Result<(), callflow::engine::ControlError> {
        self.graph.transfer(c, b).await
    }
    async fn create_call(
        &self,
        b: &callflow::graph::wire::Call,
    ) -> Result<callflow::graph::wire::Call, callflow::engine::ControlError> {
        let call = self.graph.create_call(b).await?;
        *self.callback.lock().unwrap() = b.callback_uri.clone();
        *self.created.lock().unwrap() = call.id.clone();
        self.gate.acquire().await.unwrap().forget();
        Ok(call)
    }
    async fn play_prompt(
        &self,
        c: &str,
        b: &callflow::graph::wire::PlayPromptRequest,
    ) -> Result<callflow::graph::wire::CommsOperation, callflow::engine::ControlError> {
        self.graph.play_prompt(c, b).await
    }
    async fn subscribe_to_tone(
        &self,
        c: &str,
        b: &callflow::graph::wire::SubscribeToToneRequest,
    ) -> Result<callflow::graph::wire::CommsOperation, callflow::engine::ControlError> {
        self.graph.subscribe_to_tone(c, b).await
    }
    async fn cancel_media_processing(
        &self,
        c: &str,
        b: &callflow::graph::wire::CancelMediaProcessingRequest,
    ) -> Result<callflow::graph::wire::CommsOperation, callflow::engine::ControlError> {
        self.graph.cancel_media_processing(c, b).await
    }
    async fn invite(
        &self,
        c: &str,
        b: &callflow::graph::wire::InviteParticipantsRequest,
    ) -> Result<callflow::graph::wire::CommsOperation, callflow::engine::ControlError> {
        self.graph.invite(c, b).await
    }
    async fn record_response(
        &self,
        call_id: &str,
        body: &callflow::graph::wire::RecordResponseRequest,
    ) -> Result<callflow::graph::wire::CommsOperation, callflow::engine::ControlError> {
        self.graph.record_response(call_id, body).await
    }
    async fn download_recording(
        &self,
        location: &str,
        token: &str,
    ) -> Result<Vec<u8>, callflow::engine::ControlError> {
        self.graph.download_recording(location, token).await
    }
    async fn deliver_recording(
        &self,
        name: &str,
        audio: Vec<u8>,
    ) -> Result<String, callflow::engine::ControlError> {
        self.graph.deliver_recording(name, audio).await
    }
    async fn hangup(&self, c: &str) -> Result<(), callflow::engine::ControlError> {
        self.graph.hangup(c).await
    }
    async fn keep_alive(&self, c: &str) -> Result<(), callflow::engine::ControlError> {
        self.graph.keep_alive(c).await
    }
}

#[tokio::test(start_paused = true)]
async fn notifications_that_overtake_the_create_answer_reach_the_session() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        "flows/outbound-reminder.yaml",
        dir.path().join("outbound-reminder.yaml"),
    )
    .unwrap();
    let sim = graph(GraphBehaviour::default());
    let slow = Arc::new(SlowCreate {
        graph: sim.clone(),
        created: std::sync::Mutex::new(None),
        callback: std::sync::Mutex::new(None),
        gate: tokio::sync::Semaphore::new(0),
    });
    let rt = Runtime::start(config(dir.path()), slow.clone())
        .await
        .unwrap();
    let Value::Object(params) =
        json!({"phone": "+33612345678", "appointment": "https://cdn.contoso.com/r.wav"})
    else {
        unreachable!()
    };
    let id = rt
        .start_api_flow("outbound-reminder", params)
        .await
        .unwrap();
    while slow.created.lock().unwrap().is_none() {
        tokio::task::yield_now().await;
    }
    // Graph says `establishing` and `established` before its 201 arrives.
    let mut early = 0;
    while let Some((_, Scheduled::Graph(h))) = sim.pop() {
        for body in sim.happen(h) {
            deliver(&rt, &body);
            early += 1;
        }
        if early >= 2 {
            break;
        }
    }
    assert!(early >= 1);
    assert_eq!(Metrics::get(&rt.metrics().unknown_call_events), early);
    slow.gate.add_permits(1);
    pump(&rt, &sim, 60).await;
    let d = rt.session(&id).unwrap();
    assert_eq!(Metrics::get(&rt.metrics().orphans_claimed), early);
    assert_eq!(
        d.summary.outcome,
        Some(Outcome::HungUp),
        "{}",
        d.timeline_text
    );
    assert_eq!(rt.metrics().requests(RequestKind::PlayPrompt, true), 2);
}

#[tokio::test(start_paused = true)]
async fn an_established_call_gets_a_keep_alive_every_15_minutes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("front.yaml"), front("+14255550123", "40m")).unwrap();
    let sim = graph(GraphBehaviour::default());
    let rt = Runtime::start(config(dir.path()), sim.clone())
        .await
        .unwrap();
    let call = call_in(&rt, &sim, "+33100000001");
    pump(&rt, &sim, 5).await;
    assert_eq!(rt.metrics().requests(RequestKind::KeepAlive, true), 0);
    tokio::time::sleep(Duration::from_secs(31 * 60)).await;
    rt.settle().await;
    assert_eq!(rt.metrics().requests(RequestKind::KeepAlive, true), 2);
    pump(&rt, &sim, 15 * 60).await;
    let d = rt.session(&call).unwrap();
    assert_eq!(
        d.summary.outcome,
        Some(Outcome::Transferred),
        "{}",
        d.timeline_text
    );
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
}

#[tokio::test(start_paused = true)]
async fn a_state_change_on_a_call_nobody_owns_starts_a_state_change_flow() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        "flows/group-handoff.yaml",
        dir.path().join("group-handoff.yaml"),
    )
    .unwrap();
    let sim = graph(GraphBehaviour::default());
    let rt = Runtime::start(config(dir.path()), sim.clone())
        .await
        .unwrap();
    // An incoming call's state change is not the flow's (`when` is false).
    let (_, body) = sim.existing_call(&callflow::graph::wire::CallState::Established, "incoming");
    deliver(&rt, &body);
    rt.settle().await;
    assert_eq!(rt.live_sessions(), 0);
    assert_eq!(Metrics::get(&rt.metrics().unknown_call_events), 1);

    let (call, body) =
        sim.existing_call(&callflow::graph::wire::CallState::Established, "outgoing");
    deliver(&rt, &body);
    pump(&rt, &sim, 60).await;
    let d = rt.session(&call).expect("the flow took the call");
    assert_eq!(d.summary.flow, "group-handoff");
    assert_eq!(
        d.summary.outcome,
        Some(Outcome::Transferred),
        "{}",
        d.timeline_text
    );
    assert_eq!(transfer_targets(&rt, &call).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_repeated_incoming_call_after_its_session_ended_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("front.yaml"), front("+14255550123", "3s")).unwrap();
    let sim = graph(GraphBehaviour::default());
    let rt = Runtime::start(config(dir.path()), sim.clone())
        .await
        .unwrap();
    let (call, body) = sim.incoming_call(
        &Party::phone("+33100000001"),
        &Party::phone(RECEPTION_NUMBER),
    );
    deliver(&rt, &body);
    pump(&rt, &sim, 60).await;
    assert_eq!(rt.live_sessions(), 0);
    // Graph retries the batch long after the call ended.
    deliver(&rt, &body);
    rt.settle().await;
    assert_eq!(rt.live_sessions(), 0);
    assert_eq!(Metrics::get(&rt.metrics().sessions_started), 1);
    assert_eq!(
        rt.session(&call).unwrap().summary.outcome,
        Some(Outcome::Transferred)
    );
}

/// Waits (real time, bounded) until the runtime has nothing in flight.
async fn idle(rt: &Runtime) {
    for _ in 0..5000 {
        if rt.is_idle() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("the runtime never went idle");
}

#[tokio::test]
async fn on_a_manual_clock_a_flow_timer_fires_only_when_the_clock_reaches_it() {
    let start = chrono::DateTime::parse_from_rfc3339("2026-11-20T09:00:00Z")
        .expect("a time")
        .with_timezone(&chrono::Utc);
    let clock = ManualClock::new(start);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("front.yaml"), front("+14255550199", "10m")).unwrap();
    let sim = Arc::new(SimGraph::new(GraphBehaviour::default(), CALLBACK, start));
    let rt = Runtime::start(
        RuntimeConfig {
            clock: Clock::Manual(clock.clone()),
            ..config(dir.path())
        },
        sim.clone(),
    )
    .await
    .expect("the flow loads");
    let call = call_in(&rt, &sim, "+33123456789");
    idle(&rt).await;
    // Graph's side of the answer: establishing, then established.
    while sim
        .next_happening()
        .is_some_and(|at| at <= start + chrono::Duration::seconds(2))
    {
        if let Some((_, Scheduled::Graph(h))) = sim.pop() {
            for body in sim.happen(h) {
                deliver(&rt, &body);
            }
        }
        idle(&rt).await;
    }
    let waiting = rt.session(&call).expect("live");
    assert_eq!(
        waiting.summary.step.as_deref(),
        Some("pause"),
        "{}",
        waiting.timeline_text
    );
    // The clock has not moved: the wait ends ten minutes from its start.
    let due = start + chrono::Duration::minutes(10);
    assert_eq!(clock.next_deadline(), Some(due));
    clock.advance(Duration::from_secs(9 * 60));
    idle(&rt).await;
    assert!(transfer_targets(&rt, &call).is_empty(), "not yet");
    clock.advance_to(due);
    idle(&rt).await;
    let detail = rt.session(&call).expect("live");
    assert_eq!(
        transfer_targets(&rt, &call).len(),
        1,
        "{}",
        detail.timeline_text
    );
    let asked = detail
        .timeline
        .iter()
        .find(|e| matches!(&e.what, callflow::engine::Entry::Request(l) if l.request == RequestKind::Transfer))
        .expect("the transfer request");
    assert_eq!(asked.at, due, "engine time is the manual clock's");
}

/// A `CallControl` with a bug: `playPrompt` panics; everything else is the
/// simulated Graph's.
struct PanicsOnPrompt(Arc<SimGraph>);

impl callflow::engine::CallControl for PanicsOnPrompt {
    async fn answer(
        &self,
        call_id: &str,
        body: &callflow::graph::wire::AnswerRequest,
    ) -> Result<(), callflow::engine::ControlError> {
        self.0.answer(call_id, body).await
    }
    async fn reject(
        &self,
        call_id: &str,
        body: &callflow::graph::wire::RejectRequest,
    ) -> Result<(), callflow::engine::ControlError> {
        self.0.reject(call_id, body).await
    }
    async fn redirect(
        &self,
        call_id: &str,
        body: &callflow::graph::wire::RedirectRequest,
    ) -> Result<(), callflow::engine::ControlError> {
        self.0.redirect(call_id, body).await
    }
    async fn transfer(
        &self,
        call_id: &str,
        body: &callflow::graph::wire::TransferRequest,
    ) -> Result<(), callflow::engine::ControlError> {
        self.0.transfer(call_id, body).await
    }
    async fn create_call(
        &self,
        body: &callflow::graph::wire::Call,
    ) -> Result<callflow::graph::wire::Call, callflow::engine::ControlError> {
        self.0.create_call(body).await
    }
    async fn play_prompt(
        &self,
        _call_id: &str,
        _body: &callflow::graph::wire::PlayPromptRequest,
    ) -> Result<callflow::graph::wire::CommsOperation, callflow::engine::ControlError> {
        panic!("play_prompt is broken")
    }
    async fn subscribe_to_tone(
        &self,
        call_id: &str,
        body: &callflow::graph::wire::SubscribeToToneRequest,
    ) -> Result<callflow::graph::wire::CommsOperation, callflow::engine::ControlError> {
        self.0.subscribe_to_tone(call_id, body).await
    }
    async fn cancel_media_processing(
        &self,
        call_id: &str,
        body: &callflow::graph::wire::CancelMediaProcessingRequest,
    ) -> Result<callflow::graph::wire::CommsOperation, callflow::engine::ControlError> {
        self.0.cancel_media_processing(call_id, body).await
    }
    async fn invite(
        &self,
        call_id: &str,
        body: &callflow::graph::wire::InviteParticipantsRequest,
    ) -> Result<callflow::graph::wire::CommsOperation, callflow::engine::ControlError> {
        self.0.invite(call_id, body).await
    }
    async fn record_response(
        &self,
        call_id: &str,
        body: &callflow::graph::wire::RecordResponseRequest,
    ) -> Result<callflow::graph::wire::CommsOperation, callflow::engine::ControlError> {
        self.0.record_response(call_id, body).await
    }
    async fn download_recording(
        &self,
        location: &str,
        token: &str,
    ) -> Result<Vec<u8>, callflow::engine::ControlError> {
        self.0.download_recording(location, token).await
    }
    async fn deliver_recording(
        &self,
        name: &str,
        audio: Vec<u8>,
    ) -> Result<String, callflow::engine::ControlError> {
        self.0.deliver_recording(name, audio).await
    }
    async fn hangup(&self, call_id: &str) -> Result<(), callflow::engine::ControlError> {
        self.0.hangup(call_id).await
    }
    async fn keep_alive(&self, call_id: &str) -> Result<(), callflow::engine::ControlError> {
        self.0.keep_alive(call_id).await
    }
}

#[tokio::test(start_paused = true)]
async fn a_panicking_call_control_ends_the_session_and_hangs_up_the_call() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("greeter.yaml"),
        format!(
            "flow: greeter
timezone: Europe/Paris
trigger:
  incoming_call:
    to: [\"{RECEPTION_NUMBER}\"]
start: greet
steps:
  greet:
    answer: {{}}
    next: hello
  hello:
    play: {{ prompt: https://cdn.contoso.com/hello.wav }}
    next: bye
  bye:
    hangup: {{}}
"
        ),
    )
    .unwrap();
    let sim = graph(GraphBehaviour::default());
    let rt = Runtime::start(config(dir.path()), Arc::new(PanicsOnPrompt(sim.clone())))
        .await
        .expect("the flow loads");
    let call = call_in(&rt, &sim, "+33123456789");
    pump(&rt, &sim, 60).await;
    let detail = rt.session(&call).expect("kept");
    assert_eq!(
        detail.summary.outcome,
        Some(Outcome::Error),
        "{}",
        detail.timeline_text
    );
    assert_eq!(
        detail.reason.as_deref(),
        Some(
            "internal error: the Graph client panicked (play_prompt is broken); the calls were hung up"
        )
    );
    assert_eq!(Metrics::get(&rt.metrics().internal_errors), 1);
    // The caller is not left in silence: the call was hung up, and Graph said so.
    assert!(
        detail.timeline_text.contains("terminated"),
        "{}",
        detail.timeline_text
    );
    assert_eq!(rt.live_sessions(), 0, "the session is retired");
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
    // The runtime keeps serving: the next call gets a session (and, with
    // the same bug, the same end).
    let next = call_in(&rt, &sim, "+33123456780");
    pump(&rt, &sim, 60).await;
    let next = rt.session(&next).expect("a session for the next call");
    assert_eq!(next.summary.outcome, Some(Outcome::Error));
    assert_eq!(Metrics::get(&rt.metrics().internal_errors), 2);
    assert_eq!(rt.live_sessions(), 0);
}

/// A flow whose calendar lives in a shared file outside the flows folder.
const DESK: &str = "flow: desk
trigger:
  incoming_call:
    to: [\"+14255550100\"]
use: [../calendars/desk.yaml]
start: greet
steps:
  greet:
    answer: {}
    next: pause
  pause:
    wait: { timeout: 30s }
    next: hours
  hours:
    switch:
      - when: 'open(\"desk\")'
        goto: open_desk
      - goto: night
  open_desk:
    transfer: { to: { phone: \"+14255550123\" } }
  night:
    transfer: { to: { phone: \"+14255550199\" } }
";

/// A shared calendar file is checked with the flows that use it: a broken
/// edit is refused at the calendar file's line and column, a valid one is
/// a new version of the flow, and a call that began before it finishes on
/// the calendar it began with, which the SQLite store keeps under the
/// version it is pinned to.
#[tokio::test(start_paused = true)]
async fn a_shared_calendar_edit_is_a_new_flow_version_kept_in_the_store() {
    use callflow::runtime::store::{StoreHandle, sqlite::SqliteStore};
    let dir = tempfile::tempdir().unwrap();
    let flows = dir.path().join("flows");
    let calendars = dir.path().join("calendars");
    std::fs::create_dir_all(&flows).unwrap();
    std::fs::create_dir_all(&calendars).unwrap();
    std::fs::write(flows.join("desk.yaml"), DESK).unwrap();
    let calendar = calendars.join("desk.yaml");
    std::fs::write(
        &calendar,
        "calendars:\n  desk:\n    hours: [\"daily 00:00-24:00\"]\n",
    )
    .unwrap();
    let store = SqliteStore::open(&dir.path().join("callflow.db")).expect("the store opens");
    let sim = graph(GraphBehaviour::default());
    let rt = Runtime::start(
        RuntimeConfig {
            store: StoreHandle(Arc::new(store)),
            ..config(&flows)
        },
        sim.clone(),
    )
    .await
    .unwrap();
    rt.recover().await.expect("recovers");
    let v1 = rt.flows().flows[0].sha256.clone();
    let first = call_waiting_in_pause(&rt, &sim).await;

    // A broken calendar: the flow that uses it is refused, at the file.
    std::fs::write(
        &calendar,
        "calendars:\n  desk:\n    hours: [\"daily 9h-18h\"]\n",
    )
    .unwrap();
    let refused = rt.reload();
    assert!(!refused.ok);
    let at_calendar = refused.diagnostics.iter().any(|d| {
        d["code"] == "callflow::calendar::spec"
            && d["file"]
                .as_str()
                .is_some_and(|f| f.ends_with("calendars/desk.yaml"))
            && d["line"] == 3
    });
    assert!(at_calendar, "{:?}", refused.rendered);
    assert!(
        refused
            .diagnostics
            .iter()
            .any(|d| d["code"] == "callflow::calendar::file"),
        "{:?}",
        refused.rendered
    );

    // Closed from now on: a new version; the first call keeps the old one.
    std::fs::write(&calendar, "calendars:\n  desk:\n    hours: []\n").unwrap();
    let swapped = rt.reload();
    assert!(swapped.ok, "{:?}", swapped.rendered);
    let v2 = rt.flows().flows[0].sha256.clone();
    assert_ne!(v1, v2, "the calendar's edit is a new version of the flow");
    let after = call_in(&rt, &sim, "+33100000003");
    pump(&rt, &sim, 60).await;
    for (call, version, target) in [(&first, &v1, "+14255550123"), (&after, &v2, "+14255550199")] {
        let d = rt.session(call).unwrap();
        assert_eq!(&d.summary.version, version);
        let targets = transfer_targets(&rt, call);
        assert!(
            targets.len() == 1 && targets[0].contains(target),
            "{targets:?}\n{}",
            d.timeline_text
        );
    }

    // The store keeps version 1 with its calendar: what a restart loads a
    // call pinned to it from, though the file on disk has changed.
    rt.store().flush().await.expect("durable");
    let (name, text) = rt
        .store()
        .0
        .flow_source(&v1)
        .expect("the store reads")
        .expect("version 1 is kept");
    assert_eq!(name, "desk");
    let kept = callflow::flow::shared::unbundle("desk (stored)", &text)
        .flow
        .expect("the kept version loads");
    assert_eq!(kept.version, v1);
    let monday_noon = chrono::NaiveDate::from_ymd_opt(2026, 1, 5)
        .unwrap()
        .and_hms_opt(12, 0, 0)
        .unwrap();
    assert!(
        kept.calendars["desk"].is_open(monday_noon),
        "the calendar of version 1"
    );
}
