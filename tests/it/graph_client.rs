//! `graph::client` over real loopback HTTP.
//!
//! Each test starts a small axum server on `127.0.0.1:0` that answers like
//! Graph does (a token endpoint; `201` + `Location` + call, `202`, `204`,
//! `200` + operation; Graph's error body) and can be scripted to fail
//! (`429`/`503`, hanging, malformed or truncated bodies). The tests check
//! what the server received (method, path, headers, JSON body) and what the
//! client made of the answers. No test measures wall-clock time: timeouts
//! are short and only the kind of error is checked.
//!
//! This server stays small on purpose: the simulated Graph over HTTP
//! (`callflow sim-graph`) will take over the end-to-end tests.

use crate::support::seeds;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use callflow::engine::CallControl;
use callflow::graph::client::{
    ClientError, ClientSecret, Cloud, GraphClient, GraphConfig, RetryPolicy, TokenError,
};
use callflow::graph::wire::{
    AnswerRequest, Call, ChatInfo, IdentitySet, InvitationParticipantInfo,
    InviteParticipantsRequest, MediaConfig, MediaInfo, MediaPrompt, MeetingInfo, OperationStatus,
    ParticipantInfo, PlayPromptRequest, RedirectRequest, RejectReason, RejectRequest,
    SubscribeToToneRequest, TransferRequest,
};
use serde_json::{Value, json};

const SECRET: &str = "s3cr3t-Value~that.must.not.leak";
const TENANT: &str = "tenant-1";
const CLIENT_ID: &str = "app-1";

/// A scripted answer of the fake Graph.
#[derive(Clone, Debug)]
enum Reply {
    /// A status, extra headers and a body.
    With(u16, Vec<(&'static str, String)>, String),
    /// Wait this long, then answer `202`.
    Hang(Duration),
}

/// One request the fake Graph received.
#[derive(Clone, Debug)]
struct Received {
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Bytes,
    peer: SocketAddr,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// The fake Graph's state.
#[derive(Default)]
struct Fake {
    base: Mutex<String>,
    token_requests: AtomicUsize,
    token_forms: Mutex<Vec<String>>,
    token_delay: Mutex<Duration>,
    token_refused: AtomicBool,
    /// `expires_in` of the tokens issued; 3599 when unset.
    token_ttl: Mutex<Option<u64>>,
    issued: AtomicUsize,
    received: Mutex<Vec<Received>>,
    script: Mutex<VecDeque<Reply>>,
}

impl Fake {
    fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.script.lock().unwrap().extend(replies);
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

async fn token(State(fake): State<Arc<Fake>>, form: String) -> Response {
    fake.token_requests.fetch_add(1, Ordering::SeqCst);
    fake.token_forms.lock().unwrap().push(form);
    let delay = *fake.token_delay.lock().unwrap();
    tokio::time::sleep(delay).await;
    if fake.token_refused.load(Ordering::SeqCst) {
        let body = json!({"error": "invalid_client",
            "error_description": "AADSTS7000215: Invalid client secret provided.",
            "trace_id": "t", "correlation_id": "c"});
        return (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
    }
    let n = fake.issued.fetch_add(1, Ordering::SeqCst) + 1;
    let ttl = fake.token_ttl.lock().unwrap().unwrap_or(3599);
    // Some authorities write expires_in as a string.
    axum::Json(
        json!({"token_type": "Bearer", "expires_in": ttl.to_string(),
        "ext_expires_in": ttl, "access_token": format!("tok-{n}")}),
    )
    .into_response()
}

/// What Graph answers when nothing is scripted.
fn graph_default(fake: &Fake, method: &Method, path: &str) -> Reply {
    let base = fake.base.lock().unwrap().clone();
    let call = |id: &str, state: &str| {
        json!({"@odata.type": "#microsoft.graph.call", "id": id, "state": state,
               "direction": "outgoing", "callbackUri": "https://bot.contoso.com/callback"})
        .to_string()
    };
    let operation = |kind: &str| {
        json!({"@odata.type": format!("#microsoft.graph.{kind}"), "id": "op-1",
               "status": "running", "clientContext": "ctx"})
        .to_string()
    };
    let tail = path.rsplit('/').next().unwrap_or_default();
    match (method.as_str(), tail) {
        ("POST", "calls") => Reply::With(
            201,
            vec![
                (
                    "location",
                    format!("{base}/v1.0/communications/calls/new-call-1"),
                ),
                ("content-type", "application/json".into()),
            ],
            call("new-call-1", "establishing"),
        ),
        ("GET", id) => Reply::With(200, vec![], call(id, "established")),
        ("DELETE", _) => Reply::With(204, vec![], String::new()),
        ("POST", "playPrompt") => Reply::With(200, vec![], operation("playPromptOperation")),
        ("POST", "subscribeToTone") => {
            Reply::With(200, vec![], operation("subscribeToToneOperation"))
        }
        ("POST", "invite") => Reply::With(200, vec![], operation("inviteParticipantsOperation")),
        ("POST", "keepAlive") => Reply::With(200, vec![], String::new()),
        _ => Reply::With(202, vec![], String::new()),
    }
}

async fn graph(
    State(fake): State<Arc<Fake>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    fake.received.lock().unwrap().push(Received {
        method: method.clone(),
        path: path.clone(),
        headers,
        body,
        peer,
    });
    let scripted = fake.script.lock().unwrap().pop_front();
    match scripted.unwrap_or_else(|| graph_default(&fake, &method, &path)) {
        Reply::Hang(delay) => {
            tokio::time::sleep(delay).await;
            StatusCode::ACCEPTED.into_response()
        }
        Reply::With(status, extra, body) => {
            let mut response =
                (StatusCode::from_u16(status).expect("a status"), body).into_response();
            for (name, value) in extra {
                response
                    .headers_mut()
                    .insert(name, value.parse().expect("a header value"));
            }
            response
        }
    }
}

/// Starts the fake Graph; returns it and its base URL.
async fn start() -> (Arc<Fake>, String) {
    let fake = Arc::new(Fake::default());
    let app = Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(token))
        .fallback(graph)
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let base = format!("http://{}", listener.local_addr().expect("an address"));
    *fake.base.lock().unwrap() = base.clone();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .expect("the fake Graph runs");
    });
    (fake, base)
}

fn config(base: &str) -> GraphConfig {
    let mut config = GraphConfig::new(Cloud::Global, TENANT, CLIENT_ID, ClientSecret::new(SECRET))
        .with_base_urls(base, base)
        .expect("loopback URLs");
    config.request_timeout = Duration::from_secs(5);
    config.retry = RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        max_total: Duration::from_secs(10),
    };
    config
}

fn client(base: &str) -> GraphClient {
    GraphClient::new(config(base)).expect("a client")
}

fn callback() -> &'static str {
    "https://bot.contoso.com/callback"
}

fn graph_error(code: &str, message: &str) -> String {
    json!({"error": {"code": code, "message": message,
        "innerError": {"request-id": "req-42", "date": "2026-11-25T13:00:00",
                       "client-request-id": "whatever"}}})
    .to_string()
}

/// Checks the headers every Graph request must carry.
fn assert_graph_headers(request: &Received, token: &str) {
    assert_eq!(request.header("authorization"), format!("Bearer {token}"));
    let id = request.header("client-request-id");
    let parsed = uuid::Uuid::parse_str(id).expect("client-request-id is a UUID");
    assert_eq!(parsed.get_version_num(), 4, "{id}");
    assert_eq!(request.header("accept"), "application/json");
}

#[tokio::test]
async fn every_request_kind_is_sent_as_graph_expects() {
    let (fake, base) = start().await;
    let client = client(&base);
    let media = MediaConfig::service_hosted();
    let bot = ParticipantInfo::new(IdentitySet::application(
        callflow::graph::wire::Identity::new(CLIENT_ID).with_display_name("Bot"),
    ));

    // Create call: P2P to a user, PSTN, group, join by meeting id, join by organizer.
    let creates = vec![
        Call::outgoing(
            callback(),
            vec![InvitationParticipantInfo::user(
                "user-1",
                Some(TENANT),
                Some("Ada"),
            )],
            media.clone(),
        )
        .with_source(bot.clone())
        .with_tenant_id(TENANT),
        Call::outgoing(
            callback(),
            vec![InvitationParticipantInfo::phone("+12345678901")],
            media.clone(),
        )
        .with_source(bot.clone()),
        Call::outgoing(
            callback(),
            vec![
                InvitationParticipantInfo::user("user-1", None, None),
                InvitationParticipantInfo::user("user-2", None, None),
            ],
            media.clone(),
        )
        .with_subject("group"),
        Call::join_meeting(
            callback(),
            MeetingInfo::join_meeting_id("1234567", Some("pass")),
            media.clone(),
        ),
        Call::join_meeting(
            callback(),
            MeetingInfo::organizer(
                IdentitySet::user(callflow::graph::wire::Identity::new("organizer-1")),
                true,
            ),
            media.clone(),
        )
        .with_chat_info(ChatInfo::new("19:meeting@thread.v2", "0")),
    ];
    for body in &creates {
        let created = client.create_call(body).await.expect("created");
        assert_eq!(created.call.id.as_deref(), Some("new-call-1"));
        assert_eq!(
            created.location.as_deref(),
            Some(format!("{base}/v1.0/communications/calls/new-call-1").as_str())
        );
    }

    let answer = AnswerRequest::new(callback(), media.clone());
    client.answer("c1", &answer).await.expect("answered");
    let reject = RejectRequest::new(RejectReason::Busy);
    client.reject("c1", &reject).await.expect("rejected");
    let redirect = RedirectRequest::new(vec![InvitationParticipantInfo::phone("+33123456789")])
        .with_timeout(30);
    client.redirect("c1", &redirect).await.expect("redirected");
    let transfer = TransferRequest::consultative(
        InvitationParticipantInfo::user("user-2", None, None),
        "consult-1",
    )
    .with_client_context("ctx-transfer");
    client.transfer("c1", &transfer).await.expect("transferred");
    let prompt = PlayPromptRequest::new(vec![MediaPrompt::new(MediaInfo::new(
        "https://cdn.contoso.com/hello.wav",
    ))])
    .with_client_context("ctx-prompt");
    let op = client.play_prompt("c1", &prompt).await.expect("playing");
    assert_eq!(op.id, "op-1");
    assert_eq!(op.status, Some(OperationStatus::Running));
    let tones = SubscribeToToneRequest {
        client_context: Some("ctx-tone".into()),
    };
    client
        .subscribe_to_tone("c1", &tones)
        .await
        .expect("subscribed");
    client.keep_alive("c1").await.expect("kept alive");
    let invite =
        InviteParticipantsRequest::new(vec![InvitationParticipantInfo::user("user-3", None, None)]);
    client
        .invite_participants("c1", &invite)
        .await
        .expect("invited");
    let call = client.get_call("c1").await.expect("a call");
    assert_eq!(call.id.as_deref(), Some("c1"));
    client.delete_call("c1").await.expect("hung up");

    let received = fake.received();
    let calls = "/v1.0/communications/calls";
    let mut expected: Vec<(Method, String, Option<Value>)> = creates
        .iter()
        .map(|c| {
            (
                Method::POST,
                calls.to_owned(),
                Some(serde_json::to_value(c).unwrap()),
            )
        })
        .collect();
    let action = |name: &str, body: Value| (Method::POST, format!("{calls}/c1/{name}"), Some(body));
    expected.extend([
        action("answer", serde_json::to_value(&answer).unwrap()),
        action("reject", json!({"reason": "busy"})),
        action("redirect", serde_json::to_value(&redirect).unwrap()),
        action("transfer", serde_json::to_value(&transfer).unwrap()),
        action("playPrompt", serde_json::to_value(&prompt).unwrap()),
        action("subscribeToTone", json!({"clientContext": "ctx-tone"})),
        (Method::POST, format!("{calls}/c1/keepAlive"), None),
        action(
            "participants/invite",
            serde_json::to_value(&invite).unwrap(),
        ),
        (Method::GET, format!("{calls}/c1"), None),
        (Method::DELETE, format!("{calls}/c1"), None),
    ]);
    assert_eq!(received.len(), expected.len());
    let mut ids = std::collections::HashSet::new();
    for (request, (method, path, body)) in received.iter().zip(&expected) {
        assert_eq!(&request.method, method, "{path}");
        assert_eq!(&request.path, path);
        assert_graph_headers(request, "tok-1");
        assert!(ids.insert(request.header("client-request-id").to_owned()));
        match body {
            Some(body) => {
                assert_eq!(request.header("content-type"), "application/json", "{path}");
                assert_eq!(&request.json(), body, "{path}");
            }
            None => assert!(request.body.is_empty(), "{path} has no body"),
        }
    }
    // The consultative transfer carries replacesCallId; the meeting joins carry meetingInfo.
    assert_eq!(
        received[8].json()["transferTarget"]["replacesCallId"],
        "consult-1"
    );
    assert_eq!(
        received[3].json()["meetingInfo"]["@odata.type"],
        "#microsoft.graph.joinMeetingIdMeetingInfo"
    );
    assert_eq!(
        received[4].json()["chatInfo"]["threadId"],
        "19:meeting@thread.v2"
    );
    // One token for all, connections kept alive: every request on one connection.
    assert_eq!(fake.token_requests.load(Ordering::SeqCst), 1);
    assert_eq!(client.token_requests(), 1);
    let peers: std::collections::HashSet<_> = received.iter().map(|r| r.peer).collect();
    assert_eq!(peers.len(), 1, "one pooled connection: {peers:?}");
}

#[tokio::test]
async fn seed_bodies_are_sent_verbatim() {
    if !crate::support::require::seeds() {
        return;
    }
    let (fake, base) = start().await;
    let client = client(&base);
    let mut sent = Vec::new();
    for example in seeds::all_examples() {
        let Some(http) = example.http.as_deref() else {
            continue;
        };
        let Some(target) = http.strip_prefix("POST https://graph.microsoft.com/") else {
            continue;
        };
        let path = target.split_once('/').map(|(_, p)| p).unwrap_or_default();
        if path == "communications/calls" {
            let body: Call = serde_json::from_value(example.json.clone())
                .unwrap_or_else(|e| panic!("{}: {e}", example.location()));
            client
                .create_call(&body)
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", example.location()));
            sent.push(example);
        } else if path.starts_with("communications/calls/") && path.ends_with("/transfer") {
            let body: TransferRequest = serde_json::from_value(example.json.clone())
                .unwrap_or_else(|e| panic!("{}: {e}", example.location()));
            client
                .transfer("341a0500-d4bf-4224-8b19-1581168d328b", &body)
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", example.location()));
            sent.push(example);
        }
    }
    let received = fake.received();
    assert!(
        sent.len() >= 10,
        "the seeds have create and transfer examples: {}",
        sent.len()
    );
    assert_eq!(received.len(), sent.len());
    for (request, example) in received.iter().zip(&sent) {
        assert_eq!(
            seeds::normalize(&request.json()),
            seeds::normalize(&example.json),
            "{}",
            example.location()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_requests_on_a_cold_cache_fetch_one_token() {
    let (fake, base) = start().await;
    *fake.token_delay.lock().unwrap() = Duration::from_millis(100);
    let client = client(&base);
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move { client.get_call(&format!("call-{i}")).await })
        })
        .collect();
    for task in tasks {
        task.await.expect("joined").expect("a call");
    }
    assert_eq!(fake.token_requests.load(Ordering::SeqCst), 1);
    assert_eq!(client.token_requests(), 1);
    assert!(
        fake.received()
            .iter()
            .all(|r| r.header("authorization") == "Bearer tok-1")
    );
    let forms = fake.token_forms.lock().unwrap().clone();
    let form: Vec<(String, String)> = url::form_urlencoded::parse(forms[0].as_bytes())
        .into_owned()
        .collect();
    let field = |k: &str| {
        form.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(field("grant_type"), "client_credentials");
    assert_eq!(field("client_id"), CLIENT_ID);
    assert_eq!(field("client_secret"), SECRET);
    assert_eq!(field("scope"), format!("{base}/.default"));
}

#[tokio::test]
async fn throttled_with_retry_after_then_success() {
    let (fake, base) = start().await;
    fake.script([Reply::With(
        429,
        vec![("retry-after", "1".into())],
        graph_error("TooManyRequests", "slow down"),
    )]);
    let client = client(&base);
    let transfer = TransferRequest::new(InvitationParticipantInfo::phone("+12345678901"));
    client
        .transfer("c1", &transfer)
        .await
        .expect("second try succeeds");
    let received = fake.received();
    assert_eq!(received.len(), 2);
    // Both attempts are one request: same client-request-id, same body.
    assert_eq!(
        received[0].header("client-request-id"),
        received[1].header("client-request-id")
    );
    assert_eq!(received[0].body, received[1].body);
}

#[tokio::test]
async fn retry_after_beyond_the_budget_gives_up_at_once() {
    let (fake, base) = start().await;
    fake.script([Reply::With(
        429,
        vec![("retry-after", "3600".into())],
        String::new(),
    )]);
    let client = client(&base);
    let error = client.get_call("c1").await.expect_err("no hour-long wait");
    match &error {
        ClientError::RetriesExhausted {
            attempts,
            status,
            retry_after,
            ..
        } => {
            assert_eq!((*attempts, *status), (1, 429));
            assert_eq!(*retry_after, Some(Duration::from_secs(3600)));
        }
        other => panic!("expected RetriesExhausted, got {other:?}"),
    }
    assert!(error.to_string().contains("Retry-After 3600s"), "{error}");
    assert_eq!(fake.received().len(), 1);
}

#[tokio::test]
async fn unavailable_then_success() {
    let (fake, base) = start().await;
    fake.script([
        Reply::With(503, vec![], String::new()),
        Reply::With(503, vec![], "Service Unavailable".into()),
    ]);
    let client = client(&base);
    let op = client
        .play_prompt(
            "c1",
            &PlayPromptRequest::new(vec![MediaPrompt::new(MediaInfo::new("https://x/a.wav"))]),
        )
        .await
        .expect("third try succeeds");
    assert_eq!(op.id, "op-1");
    assert_eq!(fake.received().len(), 3);
}

#[tokio::test]
async fn retries_give_up_after_the_bound() {
    let (fake, base) = start().await;
    fake.script((0..10).map(|_| Reply::With(503, vec![], String::new())));
    let client = client(&base);
    let error = client.delete_call("c9").await.expect_err("gives up");
    assert!(
        matches!(
            error,
            ClientError::RetriesExhausted {
                attempts: 3,
                status: 503,
                retry_after: None,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(error.call_id(), Some("c9"));
    assert_eq!(
        error.to_string(),
        "DELETE /v1.0/communications/calls/c9 for call c9 gave up after 3 attempts: Graph kept answering HTTP 503"
    );
    assert_eq!(fake.received().len(), 3);
}

#[tokio::test]
async fn a_post_that_times_out_is_maybe_sent_and_not_repeated() {
    let (fake, base) = start().await;
    fake.script([Reply::Hang(Duration::from_secs(30))]);
    let mut config = config(&base);
    config.request_timeout = Duration::from_millis(300);
    let client = GraphClient::new(config).expect("a client");
    let transfer = TransferRequest::new(InvitationParticipantInfo::phone("+12345678901"));
    let error = client
        .transfer("c1", &transfer)
        .await
        .expect_err("timed out");
    match &error {
        ClientError::MaybeSent {
            timed_out,
            client_request_id,
            ..
        } => {
            assert!(*timed_out);
            assert_eq!(
                client_request_id,
                fake.received()[0].header("client-request-id")
            );
        }
        other => panic!("expected MaybeSent, got {other:?}"),
    }
    assert!(error.may_have_acted());
    assert_eq!(error.code(), "MaybeSent");
    assert_eq!(fake.received().len(), 1, "a POST is never blindly repeated");

    // Through the engine's seam, the runtime sees status 0 and code MaybeSent.
    fake.script([Reply::Hang(Duration::from_secs(30))]);
    let control = CallControl::create_call(&client, &Call::default())
        .await
        .expect_err("timed out");
    assert_eq!((control.status, control.code.as_str()), (0, "MaybeSent"));
}

#[tokio::test]
async fn a_get_that_times_out_is_retried_then_reported() {
    let (fake, base) = start().await;
    fake.script((0..3).map(|_| Reply::Hang(Duration::from_secs(30))));
    let mut config = config(&base);
    config.request_timeout = Duration::from_millis(200);
    let client = GraphClient::new(config).expect("a client");
    let error = client.get_call("c1").await.expect_err("timed out");
    assert!(
        matches!(error, ClientError::Timeout { attempts: 3, .. }),
        "{error:?}"
    );
    assert_eq!(fake.received().len(), 3);
}

#[tokio::test]
async fn a_malformed_body_is_a_clear_error() {
    let (fake, base) = start().await;
    fake.script([
        Reply::With(200, vec![], "<html>not json</html>".into()),
        Reply::With(200, vec![], r#"{"id":"op-1","status":"runn"#.into()),
        Reply::With(200, vec![], String::new()),
        Reply::With(201, vec![], r#"{"state":"establishing"}"#.into()),
    ]);
    let client = client(&base);
    let tones = SubscribeToToneRequest::default();
    let error = client
        .subscribe_to_tone("c1", &tones)
        .await
        .expect_err("not json");
    assert!(
        matches!(error, ClientError::MalformedResponse { status: 200, .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("not valid JSON"), "{error}");
    assert!(error.to_string().contains("/c1/subscribeToTone"), "{error}");

    let error = client
        .subscribe_to_tone("c1", &tones)
        .await
        .expect_err("truncated");
    assert!(error.to_string().contains("truncated"), "{error}");

    let error = client
        .subscribe_to_tone("c1", &tones)
        .await
        .expect_err("empty");
    assert!(error.to_string().contains("empty"), "{error}");

    let error = client
        .create_call(&Call::default())
        .await
        .expect_err("no id");
    assert!(error.to_string().contains("Location"), "{error}");
    assert!(error.may_have_acted());
}

/// A raw server that answers each connection with `answer` and closes.
async fn raw_server(answer: &'static str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let base = format!("http://{}", listener.local_addr().expect("an address"));
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 64 * 1024];
                let mut seen = Vec::new();
                // Read the head and whatever body arrives with it.
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buffer[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&seen);
                let reply = if text.contains("/oauth2/v2.0/token") {
                    let body = r#"{"access_token":"raw","expires_in":3600}"#;
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    )
                } else {
                    answer.to_owned()
                };
                let _ = socket.write_all(reply.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    base
}

#[tokio::test]
async fn a_truncated_body_is_a_clear_error() {
    let base = raw_server(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 200\r\n\r\n{\"id\":\"op-1\",\"sta",
    )
    .await;
    let client = client(&base);
    let error = client
        .subscribe_to_tone("c1", &SubscribeToToneRequest::default())
        .await
        .expect_err("truncated");
    assert!(
        matches!(error, ClientError::MalformedResponse { status: 200, .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("ended early"), "{error}");
}

#[tokio::test]
async fn a_graph_error_body_becomes_a_typed_error() {
    let (fake, base) = start().await;
    fake.script([
        Reply::With(
            404,
            vec![("request-id", "header-id".into())],
            graph_error("NotFound", "Call not found"),
        ),
        Reply::With(400, vec![("request-id", "header-id".into())], "oops".into()),
    ]);
    let client = client(&base);
    let transfer = TransferRequest::new(InvitationParticipantInfo::phone("+12345678901"));
    let error = client.transfer("gone-1", &transfer).await.expect_err("404");
    match &error {
        ClientError::Graph {
            request,
            call_id,
            status,
            error: body,
            request_id,
        } => {
            assert_eq!(request.method, "POST");
            assert_eq!(request.path, "/v1.0/communications/calls/gone-1/transfer");
            assert_eq!(call_id.as_deref(), Some("gone-1"));
            assert_eq!(*status, 404);
            assert_eq!(body.error.code, "NotFound");
            assert_eq!(request_id.as_deref(), Some("req-42"));
            assert_eq!(
                body.error
                    .inner_error
                    .as_ref()
                    .and_then(|i| i.date.as_deref()),
                Some("2026-11-25T13:00:00")
            );
        }
        other => panic!("expected a Graph error, got {other:?}"),
    }
    assert_eq!(
        error.to_string(),
        "POST /v1.0/communications/calls/gone-1/transfer for call gone-1 failed: HTTP 404, \
         Graph error NotFound: Call not found (request-id req-42)"
    );
    assert_eq!(fake.received().len(), 1, "a 404 is not retried");

    let error = client.transfer("c2", &transfer).await.expect_err("400");
    assert!(
        matches!(&error, ClientError::Status { status: 400, body, .. } if body == "oops"),
        "{error:?}"
    );

    // Through the seam: status and Graph's code.
    fake.script([Reply::With(404, vec![], graph_error("NotFound", "gone"))]);
    let control = CallControl::hangup(&client, "c3").await.expect_err("404");
    assert_eq!((control.status, control.code.as_str()), (404, "NotFound"));
}

#[tokio::test]
async fn an_invalid_body_is_not_sent() {
    let (fake, base) = start().await;
    let client = client(&base);
    let transfer = TransferRequest::new(InvitationParticipantInfo::phone("0612345678"));
    let error = client
        .transfer("c1", &transfer)
        .await
        .expect_err("not E.164");
    assert!(
        matches!(error, ClientError::InvalidRequest { .. }),
        "{error:?}"
    );
    let error = client.get_call(" ").await.expect_err("empty id");
    assert_eq!(error.code(), "InvalidRequest");
    assert!(fake.received().is_empty());
    assert_eq!(fake.token_requests.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn call_ids_are_one_path_segment() {
    let (fake, base) = start().await;
    let client = client(&base);
    client.get_call("../../x?y#z").await.expect("a call");
    assert_eq!(
        fake.received()[0].path,
        "/v1.0/communications/calls/..%2F..%2Fx%3Fy%23z"
    );
}

#[tokio::test]
async fn a_refused_token_is_reported_and_a_401_refreshes_once() {
    let (fake, base) = start().await;
    fake.token_refused.store(true, Ordering::SeqCst);
    let client = client(&base);
    let error = client.get_call("c1").await.expect_err("no token");
    match &error {
        ClientError::Token {
            source: TokenError::Refused { status, error, .. },
            ..
        } => assert_eq!((*status, error.as_str()), (401, "invalid_client")),
        other => panic!("expected a token error, got {other:?}"),
    }
    assert!(fake.received().is_empty());
    let text = format!("{error} {error:?}");
    assert!(!text.contains(SECRET), "{text}");

    fake.token_refused.store(false, Ordering::SeqCst);
    fake.script([Reply::With(
        401,
        vec![],
        graph_error("InvalidAuthenticationToken", "expired"),
    )]);
    client.get_call("c1").await.expect("a fresh token works");
    let received = fake.received();
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].header("authorization"), "Bearer tok-1");
    assert_eq!(received[1].header("authorization"), "Bearer tok-2");
}

#[tokio::test]
async fn the_secret_never_appears_in_debug_output() {
    let (_fake, base) = start().await;
    let config = config(&base);
    let client = GraphClient::new(config.clone()).expect("a client");
    client.get_call("c1").await.expect("a call");
    let printed = format!("{config:?} {client:?} {:?}", config.client_secret);
    assert!(!printed.contains(SECRET), "{printed}");
    assert!(!printed.contains("tok-1"), "{printed}");
    assert!(printed.contains("***"));
    assert_eq!(config.client_secret.expose(), SECRET);
}

#[tokio::test]
async fn engine_commands_run_through_the_client() {
    use callflow::engine::{Command, CommandId, Event, execute};
    let (fake, base) = start().await;
    let client = client(&base);
    let created = execute(
        &client,
        &Command::CreateCall {
            id: CommandId(1),
            tag: "consult".into(),
            body: Call::outgoing(
                callback(),
                vec![InvitationParticipantInfo::phone("+12345678901")],
                MediaConfig::service_hosted(),
            ),
        },
    )
    .await;
    assert_eq!(
        created,
        Some(Event::CallCreated {
            tag: "consult".into(),
            call_id: "new-call-1".into()
        })
    );
    let prompt = PlayPromptRequest::new(vec![MediaPrompt::new(MediaInfo::new("https://x/a.wav"))]);
    let played = execute(
        &client,
        &Command::PlayPrompt {
            id: CommandId(2),
            call_id: "c1".into(),
            body: prompt,
        },
    )
    .await;
    assert!(
        matches!(&played, Some(Event::Accepted { command: CommandId(2), operation: Some(op) }) if op.id == "op-1"),
        "{played:?}"
    );
    fake.script([Reply::With(
        403,
        vec![],
        graph_error("Forbidden", "not allowed"),
    )]);
    let failed = execute(
        &client,
        &Command::Hangup {
            id: CommandId(3),
            call_id: "c1".into(),
        },
    )
    .await;
    match failed {
        Some(Event::RequestFailed {
            command,
            status,
            code,
            message,
        }) => {
            assert_eq!(
                (command, status, code.as_str()),
                (CommandId(3), 403, "Forbidden")
            );
            assert!(
                message.contains("DELETE /v1.0/communications/calls/c1"),
                "{message}"
            );
            assert!(message.contains("req-42"), "{message}");
        }
        other => panic!("expected RequestFailed, got {other:?}"),
    }
}

#[tokio::test]
async fn an_expiring_token_is_replaced_before_use() {
    let (fake, base) = start().await;
    // A token that must be refreshed at once: every request fetches anew.
    *fake.token_ttl.lock().unwrap() = Some(0);
    let client = client(&base);
    client.get_call("c1").await.expect("a call");
    client.get_call("c1").await.expect("a call");
    let received = fake.received();
    assert_eq!(received[0].header("authorization"), "Bearer tok-1");
    assert_eq!(received[1].header("authorization"), "Bearer tok-2");
    assert_eq!(fake.token_requests.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_unreachable_graph_is_retried_and_reported_as_nothing_sent() {
    let (fake, base) = start().await;
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let closed_base = format!("http://{}", closed.local_addr().expect("an address"));
    drop(closed);
    let config = config(&base)
        .with_base_urls(&closed_base, &base)
        .expect("loopback URLs");
    let client = GraphClient::new(config).expect("a client");
    let error = client
        .create_call(&Call::default())
        .await
        .expect_err("unreachable");
    assert!(
        matches!(error, ClientError::Unreachable { .. }),
        "{error:?}"
    );
    assert!(!error.may_have_acted());
    assert_eq!(fake.token_requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn beta_and_national_clouds_change_the_urls() {
    let (fake, base) = start().await;
    let mut config = config(&base);
    config.api_version = callflow::graph::client::ApiVersion::Beta;
    let client = GraphClient::new(config).expect("a client");
    client.keep_alive("c1").await.expect("kept alive");
    assert_eq!(
        fake.received()[0].path,
        "/beta/communications/calls/c1/keepAlive"
    );
    let china = GraphConfig::new(Cloud::China, TENANT, CLIENT_ID, SECRET.into());
    assert_eq!(
        china.token_url().as_str(),
        "https://login.chinacloudapi.cn/tenant-1/oauth2/v2.0/token"
    );
    assert_eq!(
        china.scope(),
        "https://microsoftgraph.chinacloudapi.cn/.default"
    );
}

/// A client whose requests time out quickly.
fn impatient_client(base: &str) -> GraphClient {
    let mut config = config(base);
    config.request_timeout = Duration::from_millis(300);
    GraphClient::new(config).expect("a client")
}

fn call_in(state: &str) -> String {
    json!({"@odata.type": "#microsoft.graph.call", "id": "c1", "state": state,
           "direction": "incoming", "callbackUri": "https://bot.contoso.com/callback"})
    .to_string()
}

#[tokio::test]
async fn a_lost_transfer_that_took_effect_is_reconciled_with_a_get() {
    let (fake, base) = start().await;
    fake.script([
        Reply::Hang(Duration::from_secs(30)),
        Reply::With(200, vec![], call_in("transferring")),
    ]);
    let client = impatient_client(&base);
    let transfer = TransferRequest::new(InvitationParticipantInfo::phone("+12345678901"));
    CallControl::transfer(&client, "c1", &transfer)
        .await
        .expect("the GET shows the transfer under way");
    let seen: Vec<(String, String)> = fake
        .received()
        .iter()
        .map(|r| (r.method.to_string(), r.path.clone()))
        .collect();
    assert_eq!(
        seen,
        [
            (
                "POST".into(),
                "/v1.0/communications/calls/c1/transfer".into()
            ),
            ("GET".into(), "/v1.0/communications/calls/c1".into()),
        ],
        "the POST is not repeated"
    );
}

#[tokio::test]
async fn a_lost_transfer_that_did_not_show_stays_maybe_sent() {
    let (fake, base) = start().await;
    fake.script([
        Reply::Hang(Duration::from_secs(30)),
        Reply::With(200, vec![], call_in("established")),
    ]);
    let client = impatient_client(&base);
    let transfer = TransferRequest::new(InvitationParticipantInfo::phone("+12345678901"));
    let error = CallControl::transfer(&client, "c1", &transfer)
        .await
        .expect_err("nothing shows the transfer");
    assert_eq!((error.status, error.code.as_str()), (0, "MaybeSent"));
    assert_eq!(fake.received().len(), 2, "one POST, one GET, no repeat");
}

#[tokio::test]
async fn a_lost_reject_of_a_call_that_is_gone_is_reconciled() {
    let (fake, base) = start().await;
    fake.script([
        Reply::Hang(Duration::from_secs(30)),
        Reply::With(
            404,
            vec![("content-type", "application/json".into())],
            json!({"error": {"code": "itemNotFound", "message": "no such call"}}).to_string(),
        ),
    ]);
    let client = impatient_client(&base);
    CallControl::reject(&client, "c1", &RejectRequest::new(RejectReason::Busy))
        .await
        .expect("a rejected call is gone");
    assert_eq!(fake.received().len(), 2);
}

#[tokio::test]
async fn a_lost_answer_is_confirmed_by_an_established_call() {
    let (fake, base) = start().await;
    fake.script([
        Reply::Hang(Duration::from_secs(30)),
        Reply::With(200, vec![], call_in("established")),
    ]);
    let client = impatient_client(&base);
    let answer = AnswerRequest::new(callback(), MediaConfig::service_hosted());
    CallControl::answer(&client, "c1", &answer)
        .await
        .expect("the call is established");
}
