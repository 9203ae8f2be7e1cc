//! `callflow serve` end to end over real loopback HTTP: the server, the
//! runtime, the production Graph client and `sim-graph`.
//!
//! Each test starts its own stack on `127.0.0.1:0`. Notification tokens are
//! either sim-graph's own (verified through its OpenID configuration, as in
//! production) or made here with a locally generated Ed25519 key published
//! as a JWKS file, so that expired, wrong-audience and forged tokens can be
//! made. No test measures wall-clock time: waits are bounded only to fail
//! rather than hang.

use crate::support::poll::eventually;
use crate::support::seeds;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use callflow::graph::client::{ClientSecret, Cloud, GraphClient, GraphConfig};
use callflow::runtime::{Runtime, RuntimeConfig};
use callflow::server::{
    AuthConfig, KeySource, NotificationAuth, ServerConfig, ServerState, Verifier,
};
use callflow::sim::graph::BOT_APP_ID;
use callflow::sim::http::{SimGraphConfig, SimGraphServer};
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const ADMIN: &str = "admin-s3cret-token";
const TENANT: &str = "sim-tenant";

fn flows_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("flows")
}

/// An Ed25519 key made here, and its JWK.
struct TestKey {
    key: EncodingKey,
    jwk: Jwk,
    kid: String,
}

impl TestKey {
    fn new(kid: &str) -> Self {
        let mut seed = [0u8; 32];
        SystemRandom::new().fill(&mut seed).expect("random");
        let mut der = vec![
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        der.extend_from_slice(&seed);
        let key = EncodingKey::from_ed_der(&der);
        let mut jwk = Jwk::from_encoding_key(&key, Algorithm::EdDSA).expect("jwk");
        jwk.common.key_id = Some(kid.to_owned());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        TestKey {
            key,
            jwk,
            kid: kid.to_owned(),
        }
    }

    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key).expect("sign")
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn claims(iss: &str, aud: &str, tid: Option<&str>, exp: u64) -> Value {
    let mut c = json!({ "iss": iss, "aud": aud, "iat": now(), "nbf": now() - 60, "exp": exp });
    if let Some(tid) = tid {
        c["tid"] = json!(tid);
    }
    c
}

fn good_claims() -> Value {
    claims(
        "https://graph.microsoft.com",
        BOT_APP_ID,
        Some(TENANT),
        now() + 3600,
    )
}

/// sim-graph, the runtime behind the production client, and the server.
struct Stack {
    sim: SimGraphServer,
    runtime: Runtime,
    state: ServerState,
    addr: SocketAddr,
    callback: String,
    stop: Option<oneshot::Sender<()>>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
    http: reqwest::Client,
    _jwks_dir: Option<tempfile::TempDir>,
}

enum Keys {
    /// sim-graph's OpenID configuration (production's path).
    SimGraph,
    /// A JWKS file holding this key.
    File(Box<Jwk>),
    /// `--insecure-no-auth`.
    Insecure,
}

async fn stack(keys: Keys, max_body: usize) -> Stack {
    stack_with(keys, max_body, |_| {}).await
}

/// [`stack`], with the server's configuration changed by `tweak`.
async fn stack_with(keys: Keys, max_body: usize, tweak: impl FnOnce(&mut ServerConfig)) -> Stack {
    stack_full(keys, max_body, |_| {}, tweak).await
}

/// [`stack`], with the runtime's and the server's configurations changed.
async fn stack_full(
    keys: Keys,
    max_body: usize,
    runtime_tweak: impl FnOnce(&mut RuntimeConfig),
    tweak: impl FnOnce(&mut ServerConfig),
) -> Stack {
    let sim = SimGraphServer::start(
        SimGraphConfig::default(),
        TcpListener::bind("127.0.0.1:0").await.expect("bind"),
    )
    .await
    .expect("sim-graph");
    let base = sim.base_url().to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let callback = format!("http://{addr}/api/calls");
    let mut dir = None;
    let source = match keys {
        Keys::SimGraph => Some(KeySource::OpenIdConfiguration(format!(
            "{base}/.well-known/OpenIdConfiguration"
        ))),
        Keys::File(jwk) => {
            let temp = tempfile::tempdir().expect("temp dir");
            let path = temp.path().join("jwks.json");
            std::fs::write(
                &path,
                serde_json::to_vec(&JwkSet { keys: vec![*jwk] }).expect("json"),
            )
            .expect("write");
            dir = Some(temp);
            Some(KeySource::JwksFile(path))
        }
        Keys::Insecure => None,
    };
    let auth = match source {
        Some(source) => {
            let mut auth = AuthConfig::new(source, BOT_APP_ID);
            auth.tenant = Some(TENANT.into());
            NotificationAuth::Verify(Arc::new(Verifier::start(auth).await.expect("keys load")))
        }
        None => NotificationAuth::InsecureNoAuth,
    };
    let graph = GraphConfig::new(Cloud::Global, TENANT, BOT_APP_ID, ClientSecret::new("s"))
        .with_base_urls(&base, &base)
        .expect("urls");
    let client = GraphClient::new(graph).expect("client");
    let mut runtime_config = RuntimeConfig {
        flows_dir: flows_dir(),
        callback_uri: callback.clone(),
        bot: callflow::serve::sim_graph_identity(),
        ..RuntimeConfig::default()
    };
    runtime_tweak(&mut runtime_config);
    let runtime = Runtime::start(runtime_config, Arc::new(client))
        .await
        .unwrap_or_else(|d| panic!("bundled flows load: {} diagnostics", d.len()));
    let mut config = ServerConfig::new(auth);
    config.admin_token = Some(ADMIN.into());
    config.max_body = max_body;
    tweak(&mut config);
    let state = ServerState::new(config, runtime.clone());
    let (stop, stopped) = oneshot::channel::<()>();
    let served = tokio::spawn(callflow::server::serve(
        listener,
        state.clone(),
        async move {
            let _ = stopped.await;
        },
    ));
    Stack {
        sim,
        runtime,
        state,
        addr,
        callback,
        stop: Some(stop),
        served,
        http: reqwest::Client::new(),
        _jwks_dir: dir,
    }
}

impl Stack {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Places an incoming call to the reception number through sim-graph; its id.
    async fn place_reception_call(&self) -> String {
        let placed: Value = self
            .http
            .post(format!("{}/sim/calls", self.sim.base_url()))
            .json(&json!({
                "from": { "phone": "+15550142" },
                "to": { "phone": "+14255550100" },
                "callbackUri": self.callback,
            }))
            .send()
            .await
            .expect("place call")
            .json()
            .await
            .expect("call json");
        placed["id"].as_str().expect("call id").to_owned()
    }

    async fn post_callback(
        &self,
        token: Option<&str>,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .post(&self.callback)
            .header("content-type", content_type)
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("callback answers");
        let status = response.status().as_u16();
        let body = response.json::<Value>().await.unwrap_or(Value::Null);
        (status, body)
    }

    async fn admin_get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut request = self.http.get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("admin answers")
    }

    fn notifications_seen(&self) -> u64 {
        self.runtime
            .metrics()
            .notifications
            .iter()
            .map(callflow::runtime::Metrics::get)
            .sum()
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.served
            .await
            .expect("server task")
            .expect("server stops cleanly");
        let _ = self.sim.shutdown().await;
    }
}

/// A notification of an incoming call, as Graph sends it.
fn incoming_body(call_id: &str) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.commsNotifications",
        "value": [{
            "@odata.type": "#microsoft.graph.commsNotification",
            "changeType": "created",
            "resourceUrl": format!("/communications/calls/{call_id}"),
            "resourceData": {
                "@odata.type": "#microsoft.graph.call",
                "state": "incoming",
                "direction": "incoming",
                "source": { "identity": { "phone": { "id": "+15550100" } } },
                "targets": [{ "identity": { "phone": { "id": "+19995550000" } } }]
            }
        }]
    })
}

#[tokio::test]
async fn bad_tokens_are_refused_and_not_processed() {
    let key = TestKey::new("test-key");
    let s = stack(Keys::File(Box::new(key.jwk.clone())), 1024 * 1024).await;
    let body = incoming_body("c-auth").to_string();
    let json = "application/json";

    let forger = TestKey::new("test-key"); // same kid, another key
    let stranger = TestKey::new("unknown-kid");
    let cases: Vec<(&str, Option<String>, u16, &str)> = vec![
        ("no token", None, 401, "missingToken"),
        ("not a JWT", Some("not.a.jwt".into()), 401, "malformedToken"),
        (
            "forged (wrong key, known kid)",
            Some(forger.sign(&good_claims())),
            401,
            "invalidSignature",
        ),
        (
            "unknown kid",
            Some(stranger.sign(&good_claims())),
            401,
            "unknownKey",
        ),
        (
            "expired",
            Some(key.sign(&claims(
                "https://graph.microsoft.com",
                BOT_APP_ID,
                Some(TENANT),
                now() - 3600,
            ))),
            401,
            "tokenExpired",
        ),
        (
            "wrong audience",
            Some(key.sign(&claims(
                "https://graph.microsoft.com",
                "another-bot",
                Some(TENANT),
                now() + 3600,
            ))),
            403,
            "wrongAudience",
        ),
        (
            "wrong issuer",
            Some(key.sign(&claims(
                "https://evil.example",
                BOT_APP_ID,
                Some(TENANT),
                now() + 3600,
            ))),
            403,
            "wrongIssuer",
        ),
        (
            "no tenant",
            Some(key.sign(&claims(
                "https://graph.microsoft.com",
                BOT_APP_ID,
                None,
                now() + 3600,
            ))),
            403,
            "wrongTenant",
        ),
        (
            "other tenant",
            Some(key.sign(&claims(
                "https://api.botframework.com",
                BOT_APP_ID,
                Some("other-tenant"),
                now() + 3600,
            ))),
            403,
            "wrongTenant",
        ),
        (
            "HMAC token",
            Some(
                jsonwebtoken::encode(
                    &Header::new(Algorithm::HS256),
                    &good_claims(),
                    &EncodingKey::from_secret(b"guess"),
                )
                .expect("sign"),
            ),
            401,
            "unsupportedAlgorithm",
        ),
    ];
    for (name, token, status, code) in cases {
        let (got, answer) = s.post_callback(token.as_deref(), json, body.clone()).await;
        assert_eq!(got, status, "{name}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{name}: {answer}");
    }
    assert_eq!(s.notifications_seen(), 0, "a refused batch was processed");
    assert!(s.runtime.sessions().is_empty());

    // The same body with a good token is taken.
    let (got, answer) = s
        .post_callback(Some(&key.sign(&good_claims())), json, body)
        .await;
    assert_eq!(got, 202, "{answer}");
    assert_eq!(s.notifications_seen(), 1);
    s.stop().await;
}

#[tokio::test]
async fn bad_bodies_get_4xx_never_500() {
    let key = TestKey::new("k");
    let s = stack(Keys::File(Box::new(key.jwk.clone())), 4096).await;
    let token = key.sign(&good_claims());
    let json = "application/json";
    let cases: Vec<(&str, &str, Vec<u8>, u16)> = vec![
        ("not JSON", json, b"{\"value\": [".to_vec(), 400),
        ("garbage", json, b"\xff\xfe hello".to_vec(), 400),
        ("empty", json, Vec::new(), 400),
        ("wrong shape", json, br#"{"hello": "world"}"#.to_vec(), 400),
        (
            "no changeType",
            json,
            br#"{"value": [{"resourceUrl": "/communications/calls/x"}]}"#.to_vec(),
            400,
        ),
        (
            "not a call path",
            json,
            br#"{"value": [{"changeType": "updated", "resourceUrl": "/me/drive"}]}"#.to_vec(),
            400,
        ),
        ("an array", json, b"[1, 2, 3]".to_vec(), 400),
        ("too big", json, vec![b' '; 10_000], 413),
        (
            "wrong content type",
            "text/plain",
            incoming_body("c").to_string().into_bytes(),
            415,
        ),
        (
            "no content type",
            "",
            incoming_body("c").to_string().into_bytes(),
            415,
        ),
    ];
    for (name, content_type, body, status) in cases {
        let (got, answer) = s.post_callback(Some(&token), content_type, body).await;
        assert_eq!(got, status, "{name}: {answer}");
        let code = answer["error"]["code"].as_str().unwrap_or("");
        let message = answer["error"]["message"].as_str().unwrap_or("");
        assert!(
            !code.is_empty() && !message.is_empty(),
            "{name}: no JSON error: {answer}"
        );
    }
    // A body over the limit sent in chunks (no Content-Length) is refused too.
    let status = chunked_post(s.addr, &token, 10, 1000).await;
    assert!(status.starts_with("HTTP/1.1 413"), "{status}");
    assert_eq!(s.notifications_seen(), 0);
    // The notification shapes Graph sends are taken: resourceData as an array.
    let roster = json!({"value": [{"changeType": "updated",
        "resourceUrl": "/communications/calls/c9/participants",
        "resourceData": [{"id": "p1", "info": {"identity": {"user": {"id": "u1"}}}}]}]});
    let (got, answer) = s
        .post_callback(
            Some(&token),
            "application/json; charset=utf-8",
            roster.to_string(),
        )
        .await;
    assert_eq!(got, 202, "{answer}");
    s.stop().await;
}

/// Posts `chunks` chunks of `size` spaces with `Transfer-Encoding: chunked`
/// over a raw connection; returns the status line.
async fn chunked_post(addr: SocketAddr, token: &str, chunks: usize, size: usize) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST /api/calls HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         authorization: Bearer {token}\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    let chunk = format!("{size:x}\r\n{}\r\n", " ".repeat(size));
    for _ in 0..chunks {
        if stream.write_all(chunk.as_bytes()).await.is_err() {
            break; // the server may answer and close early
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned()
}

#[tokio::test]
async fn an_incoming_call_is_answered_and_transferred_through_the_real_server() {
    let s = stack(Keys::SimGraph, 1024 * 1024).await;
    let base = s.sim.base_url().to_owned();
    let call_id = s.place_reception_call().await;
    let runtime = s.runtime.clone();
    let session_id = s.session_of(&call_id).await;
    let session = runtime
        .sessions()
        .into_iter()
        .find(|x| x.id == session_id)
        .expect("the session is listed");
    assert_eq!(session.flow, "reception");

    // The caller presses 1 once the menu listens (office hours), or the
    // flow transfers to the night line (closed): either way it ends.
    let press = format!("{base}/sim/calls/{call_id}/press");
    let http = s.http.clone();
    let pressing = tokio::spawn(async move {
        for _ in 0..500 {
            let ok = http
                .post(&press)
                .json(&json!({"digits": "1"}))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let id = session.id.clone();
    let detail = eventually(Duration::from_secs(60), || {
        let runtime = runtime.clone();
        let id = id.clone();
        async move { runtime.session(&id).filter(|d| d.summary.state == "ended") }
    })
    .await
    .expect("the session ended");
    pressing.abort();
    let outcome = detail.summary.outcome.map(|o| o.as_str().to_owned());
    assert_eq!(
        outcome.as_deref(),
        Some("transferred"),
        "{}",
        detail.timeline_text
    );

    // Graph saw the answer and the transfer, made by the real client.
    let requests: Value = s
        .http
        .get(format!("{base}/sim/calls/{call_id}/requests"))
        .send()
        .await
        .expect("requests")
        .json()
        .await
        .expect("json");
    let text = requests.to_string();
    assert!(text.contains("/answer"), "{text}");
    assert!(text.contains("/transfer"), "{text}");
    // Every notification sim-graph posted was accepted.
    let posted: Value = s
        .http
        .get(format!("{base}/sim/calls/{call_id}/notifications"))
        .send()
        .await
        .expect("notifications")
        .json()
        .await
        .expect("json");
    let statuses: Vec<u64> = posted["value"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|d| d["status"].as_u64())
        .collect();
    assert!(!statuses.is_empty());
    assert!(statuses.iter().all(|s| *s == 202), "{statuses:?}");

    // The admin API shows the session; /metrics counts what happened (the
    // session's task counts its end once it retires).
    let retired = eventually(Duration::from_secs(60), || {
        let runtime = runtime.clone();
        async move {
            (runtime
                .metrics()
                .ended(callflow::engine::Outcome::Transferred)
                >= 1)
                .then_some(())
        }
    })
    .await;
    assert!(retired.is_some(), "the session never retired");
    let listed: Value = s
        .admin_get("/api/sessions", Some(ADMIN))
        .await
        .json()
        .await
        .expect("json");
    assert!(listed.to_string().contains(&session.id));
    let one = s
        .admin_get(&format!("/api/sessions/{}", session.id), Some(ADMIN))
        .await;
    assert_eq!(one.status(), 200);
    let metrics = s.admin_get("/metrics", Some(ADMIN)).await;
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.expect("text");
    let value = |line: &str| -> u64 {
        text.lines()
            .find(|l| l.starts_with(line))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {line} in\n{text}"))
    };
    assert!(value("callflow_notifications_total{kind=\"call\"}") >= 2);
    assert!(value("callflow_graph_requests_total{kind=\"answer\",outcome=\"ok\"}") >= 1);
    assert!(value("callflow_graph_requests_total{kind=\"transfer\",outcome=\"ok\"}") >= 1);
    assert_eq!(
        value("callflow_actions_total{action=\"answer\",outcome=\"ok\"}"),
        1
    );
    assert!(value("callflow_actions_total{action=\"switch\",outcome=\"ok\"}") >= 1);
    assert!(value("callflow_sessions_ended_total{outcome=\"transferred\",end=\"\"}") >= 1);
    assert!(value("callflow_callback_requests_total{status=\"202\"}") >= 2);
    assert!(value("callflow_graph_request_duration_seconds_count") >= 2);
    assert!(text.contains("callflow_sessions_live "));
    assert!(text.contains("callflow_reloads_total{outcome=\"ok\"}"));
    s.stop().await;
}

#[tokio::test]
async fn admin_routes_need_the_token() {
    let s = stack(Keys::SimGraph, 1024 * 1024).await;
    for path in ["/metrics", "/api/flows", "/api/sessions", "/api/sessions/x"] {
        assert_eq!(s.admin_get(path, None).await.status(), 401, "{path}");
        assert_eq!(
            s.admin_get(path, Some("wrong")).await.status(),
            401,
            "{path}"
        );
    }
    assert_eq!(s.admin_get("/healthz", None).await.status(), 200);
    assert_eq!(s.admin_get("/readyz", None).await.status(), 200);
    let flows: Value = s
        .admin_get("/api/flows", Some(ADMIN))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(flows["status"], "ok");
    assert!(flows.to_string().contains("reception"));
    assert_eq!(
        s.admin_get("/api/sessions/nope", Some(ADMIN))
            .await
            .status(),
        404
    );

    let run = |flow: &str, body: Value, token: Option<&str>| {
        let mut r = s
            .http
            .post(s.url(&format!("/api/flows/{flow}/runs")))
            .json(&body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    let r = run("outbound-reminder", json!({}), None)
        .await
        .expect("answer");
    assert_eq!(r.status(), 401);
    let r = run("no-such-flow", json!({}), Some(ADMIN))
        .await
        .expect("answer");
    assert_eq!(r.status(), 404);
    let r = run("reception", json!({}), Some(ADMIN))
        .await
        .expect("answer");
    assert_eq!(
        r.status(),
        400,
        "an incoming_call flow is not started by api"
    );
    let r = run(
        "outbound-reminder",
        json!({"params": {"no_such_param": 1}}),
        Some(ADMIN),
    )
    .await
    .expect("answer");
    assert_eq!(r.status(), 400);
    let answer: Value = r.json().await.expect("json");
    assert_eq!(answer["error"]["code"], "invalidParams", "{answer}");
    // The same wrong parameters as `simulate` and a scenario are given get
    // the same sentences (tests/it/params.rs).
    let r = run(
        "outbound-reminder",
        json!({"params": {"phone": crate::params::PHONE, crate::params::MISSPELT: "https://cdn.contoso.com/r.wav"}}),
        Some(ADMIN),
    )
    .await
    .expect("answer");
    assert_eq!(r.status(), 400);
    let answer: Value = r.json().await.expect("json");
    assert_eq!(answer["error"]["code"], "invalidParams", "{answer}");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&crate::params::PROBLEMS.join("; ")),
        "{answer}"
    );
    let r = run("outbound-reminder", json!("text"), Some(ADMIN))
        .await
        .expect("answer");
    assert_eq!(r.status(), 400);
    assert_eq!(
        s.http
            .get(s.url("/nowhere"))
            .send()
            .await
            .expect("answer")
            .status(),
        404
    );
    s.stop().await;
}

#[tokio::test]
async fn shutdown_stops_intake() {
    let key = TestKey::new("k");
    let s = stack(Keys::File(Box::new(key.jwk.clone())), 1024 * 1024).await;
    s.state.close_intake();
    let response = s
        .http
        .post(&s.callback)
        .bearer_auth(key.sign(&good_claims()))
        .json(&incoming_body("c-late"))
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(s.admin_get("/readyz", None).await.status(), 503);
    assert_eq!(s.notifications_seen(), 0);
    let addr = s.addr;
    s.stop().await;
    // The listener is closed: nothing more is taken.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

/// `callflow serve` in production mode (the real binary), with sim-graph
/// standing in for Graph and its OpenID configuration; SIGTERM stops it
/// cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_binary_in_production_mode() {
    let sim = SimGraphServer::start(
        SimGraphConfig::default(),
        TcpListener::bind("127.0.0.1:0").await.expect("bind"),
    )
    .await
    .expect("sim-graph");
    let base = sim.base_url().to_owned();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let public = format!("http://127.0.0.1:{port}");
    let data = tempfile::tempdir().expect("temp dir");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_callflow"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args([
            "--public-url",
            &public,
            "--app-id",
            BOT_APP_ID,
            "--tenant",
            TENANT,
        ])
        .args(["--graph-url", &base, "--authority-url", &base])
        .arg("--openid-config-url")
        .arg(format!("{base}/.well-known/OpenIdConfiguration"))
        .arg("--flows")
        .arg(flows_dir())
        .env("CALLFLOW_CLIENT_SECRET", "sim-secret")
        .env("CALLFLOW_ADMIN_TOKEN", ADMIN)
        .env("CALLFLOW_DATA_DIR", data.path())
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn callflow");
    let pid = child.id();
    let http = reqwest::Client::new();
    let ready = eventually(Duration::from_secs(60), || {
        let http = http.clone();
        let url = format!("{public}/readyz");
        async move {
            http.get(url)
                .send()
                .await
                .ok()
                .filter(|r| r.status() == 200)
                .map(|_| ())
        }
    })
    .await;
    if ready.is_none() {
        let _ = std::process::Command::new("kill")
            .arg(pid.to_string())
            .status();
        let out = child.wait_with_output().expect("output");
        panic!(
            "serve never got ready: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let placed: Value = http
        .post(format!("{base}/sim/calls"))
        .json(&json!({
            "from": { "phone": "+15550100" },
            "to": { "phone": "+12065550180" },
            "callbackUri": format!("{public}/api/calls"),
        }))
        .send()
        .await
        .expect("place")
        .json()
        .await
        .expect("json");
    let call_id = placed["id"].as_str().expect("id").to_owned();
    let ended = eventually(Duration::from_secs(60), || {
        let http = http.clone();
        let url = format!("{public}/api/sessions");
        let call_id = call_id.clone();
        async move {
            let list: Value = http
                .get(url)
                .bearer_auth(ADMIN)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            list["sessions"]
                .as_array()?
                .iter()
                .find(|x| x["calls"].to_string().contains(&call_id) && x["state"] == "ended")
                .cloned()
        }
    })
    .await
    .expect("the call's session ended");
    assert_eq!(ended["flow"], "branch-office");
    let metrics = http
        .get(format!("{public}/metrics"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("callflow_callback_requests_total{status=\"202\"}"),
        "{metrics}"
    );
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("stopped"), "{stderr}");
    let _ = sim.shutdown().await;
}

#[test]
fn serve_simulate_runs_to_completion() {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_callflow"))
        .args(["serve", "--simulate", "--flows"])
        .arg(flows_dir())
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn callflow");
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "serve --simulate did not finish:\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = child.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(status.success(), "{stdout}\n{stderr}");
    for n in 1..=3 {
        assert!(
            stdout.contains(&format!("[call {n}]")),
            "no timeline for call {n}:\n{stdout}"
        );
    }
    assert!(stdout.contains("answer"), "{stdout}");
    assert!(stdout.contains("all 3 sample calls ended"), "{stdout}");
    // What the demo says is what happened: each call's summary names the
    // path its flow took, and says the caller pressed a key only when a
    // menu listened for one (outside office hours it does not).
    for n in 1..=3 {
        let summary = stdout
            .lines()
            .find(|l| l.starts_with(&format!("[call {n}] => ")))
            .unwrap_or_else(|| panic!("no summary for call {n}:\n{stdout}"));
        assert!(
            summary.contains(" took ") && summary.contains("; ended "),
            "{summary}"
        );
        if summary.contains("=> reception") {
            let menu = summary.contains("→ menu");
            assert_eq!(summary.contains("the caller pressed"), menu, "{summary}");
            assert_eq!(summary.contains("never pressed"), !menu, "{summary}");
        }
    }
    assert!(!stdout.contains("caller presses 1 (sales)\n"), "{stdout}");
}

/// `callflow serve --simulate --keep-running --flows FLOWS EXTRA…`, and its
/// stdout line by line.
fn demo_lines(
    flows: &std::path::Path,
    extra: &[&std::ffi::OsStr],
) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_callflow"))
        .args(["serve", "--simulate", "--keep-running", "--flows"])
        .arg(flows)
        .args(extra)
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .env_remove("CALLFLOW_RECORDINGS")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn callflow");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// `serve --simulate --keep-running` on a copy of the flows: a designer's
/// broken edit is refused (the old set serves, `/api/flows` says why, at
/// the line), and the fix reloads.
#[test]
fn serve_simulate_keep_running_reloads_edits() {
    let dir = tempfile::tempdir().expect("temp dir");
    for entry in std::fs::read_dir(flows_dir()).expect("flows") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            std::fs::copy(&path, dir.path().join(path.file_name().expect("name"))).expect("copy");
        }
    }
    let (mut child, rx) = demo_lines(dir.path(), &[]);
    let mut admin = None;
    let mut seen = Vec::new();
    let ready = loop {
        let Ok(line) = rx.recv_timeout(Duration::from_secs(120)) else {
            break false;
        };
        if let Some(rest) = line.split("admin API     ").nth(1) {
            let url = rest.split_whitespace().next().unwrap_or("").to_owned();
            let token = rest
                .split("Bearer ")
                .nth(1)
                .unwrap_or("")
                .trim_end_matches(')')
                .to_owned();
            admin = Some((url.replace("/api/sessions", "/api/flows"), token));
        }
        let done = line.starts_with("edits to ");
        seen.push(line);
        if done {
            break true;
        }
    };
    callflow::graph::client::install_tls_provider();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let http = reqwest::Client::new();
    let flows = |admin: &(String, String)| -> Value {
        rt.block_on(async {
            match http.get(&admin.0).bearer_auth(&admin.1).send().await {
                Ok(r) => r.json().await.unwrap_or(Value::Null),
                Err(_) => Value::Null,
            }
        })
    };
    let poll = |admin: &(String, String), want: &dyn Fn(&Value) -> bool| -> Value {
        let mut last = Value::Null;
        // Bounded generously: a loaded CI machine may take seconds to reload.
        for _ in 0..600 {
            last = flows(admin);
            if want(&last) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        last
    };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        assert!(ready, "no `edits to` line:\n{}", seen.join("\n"));
        let admin = admin.clone().expect("the admin line");
        let path = dir.path().join("reception.yaml");
        let text = std::fs::read_to_string(&path).expect("reception");
        std::fs::write(&path, text.replacen("+14255550123", "+1425555O123", 1)).expect("edit");
        let stale = poll(&admin, &|v| v["status"] == "stale");
        assert_eq!(stale["status"], "stale", "{stale}");
        assert_eq!(stale["version"], 1, "the old set keeps serving: {stale}");
        let d = &stale["last_error"]["diagnostics"][0];
        assert_eq!(d["code"], "callflow::phone::e164", "{stale}");
        assert!(d["line"].as_u64().is_some_and(|l| l > 1), "{stale}");
        std::fs::write(&path, text).expect("fix");
        let fixed = poll(&admin, &|v| v["status"] == "ok" && v["version"] == 2);
        assert_eq!(fixed["status"], "ok", "{fixed}");
        assert_eq!(fixed["version"], 2, "{fixed}");
    }));
    let _ = child.kill();
    let _ = child.wait();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// A token signed by a key the verifier has not seen makes it read its
/// key source again (a JWKS file here, rewritten as keys rotate); forged
/// kids cannot make it fetch more than once per gap.
#[tokio::test]
async fn keys_are_refreshed_on_an_unknown_kid() {
    let old = TestKey::new("old");
    let new = TestKey::new("new");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("jwks.json");
    let write = |keys: Vec<Jwk>| {
        std::fs::write(&path, serde_json::to_vec(&JwkSet { keys }).expect("json")).expect("write")
    };
    write(vec![old.jwk.clone()]);
    let mut config = AuthConfig::new(KeySource::JwksFile(path.clone()), BOT_APP_ID);
    config.min_refresh_gap = Duration::from_secs(3600);
    let verifier = Verifier::start(config).await.expect("keys");
    let bearer = |key: &TestKey| format!("Bearer {}", key.sign(&good_claims()));
    assert!(verifier.verify(Some(&bearer(&old))).await.is_ok());
    // Rotation: the source now has both keys; the new kid triggers a fetch.
    write(vec![old.jwk.clone(), new.jwk.clone()]);
    let verified = verifier
        .verify(Some(&bearer(&new)))
        .await
        .expect("rotated key");
    assert_eq!(verified.tenant, TENANT);
    assert_eq!(verifier.key_count().await, 2);
    // Within the gap, another unknown kid is refused without a new fetch.
    let later = TestKey::new("later");
    write(vec![later.jwk.clone()]);
    assert_eq!(
        verifier.verify(Some(&bearer(&later))).await,
        Err(callflow::server::AuthError::UnknownKey("later".into()))
    );
    assert_eq!(verifier.key_count().await, 2);
}

#[tokio::test]
async fn insecure_no_auth_takes_unsigned_notifications() {
    let s = stack(Keys::Insecure, 1024 * 1024).await;
    let (status, answer) = s
        .post_callback(
            None,
            "application/json",
            incoming_body("c-open").to_string(),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(s.notifications_seen(), 1);
    s.stop().await;
}

/// A small deterministic generator (xorshift64*), so that a failure names
/// the case that failed and replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// A value a hostile peer might put anywhere.
fn hostile_value(rng: &mut Rng) -> Value {
    match rng.below(12) {
        0 => Value::Null,
        1 => json!(true),
        2 => json!(-1),
        3 => json!(1e308),
        4 => json!(u64::MAX),
        5 => json!(""),
        6 => json!("x".repeat(5000)),
        7 => json!({}),
        8 => json!([]),
        9 => json!("terminated"),
        10 => json!("/communications/calls/../../me"),
        _ => {
            // Nested deeper than any parser should follow.
            let mut v = json!(1);
            for _ in 0..200 {
                v = json!([v]);
            }
            v
        }
    }
}

/// One random edit somewhere in `v`: a node replaced, a key dropped or an
/// array entry repeated.
fn mutate(v: &mut Value, rng: &mut Rng) {
    let descend = rng.below(4) != 0;
    match v {
        Value::Object(map) if !map.is_empty() => {
            let key = map
                .keys()
                .nth(rng.below(map.len()))
                .cloned()
                .unwrap_or_default();
            match rng.below(6) {
                0 => {
                    map.remove(&key);
                }
                1 => {
                    map.insert(key, hostile_value(rng));
                }
                _ if descend => {
                    if let Some(child) = map.get_mut(&key) {
                        mutate(child, rng);
                    }
                }
                _ => *v = hostile_value(rng),
            }
        }
        Value::Array(list) if !list.is_empty() => {
            let i = rng.below(list.len());
            match rng.below(5) {
                0 => {
                    let copy = list[i].clone();
                    for _ in 0..rng.below(50) {
                        list.push(copy.clone());
                    }
                }
                1 => list[i] = hostile_value(rng),
                _ if descend => mutate(&mut list[i], rng),
                _ => *v = hostile_value(rng),
            }
        }
        _ => *v = hostile_value(rng),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutated_seed_notifications_never_get_a_5xx_and_the_server_keeps_serving() {
    if !crate::support::require::seeds() {
        return;
    }
    static PANICS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        previous(info);
    }));
    // Every notification example of Microsoft's reference pages.
    let bodies: Vec<Value> = seeds::all_examples()
        .into_iter()
        .map(|e| e.json)
        .filter(|j| j.get("value").is_some_and(Value::is_array))
        .collect();
    assert!(bodies.len() >= 40, "seed notifications: {}", bodies.len());
    let key = TestKey::new("k");
    let s = stack(Keys::File(Box::new(key.jwk.clone())), 1024 * 1024).await;
    let token = key.sign(&good_claims());
    // Another run: CALLFLOW_FUZZ_SEED=<n> cargo test --test server mutated
    let seed = std::env::var("CALLFLOW_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(0x5EED_CA11_F10E_0001);
    eprintln!("seed {seed}");
    let mut rng = Rng(seed.max(1));
    // A live call: half the hostile bodies are about it, so they reach its session.
    let live = s.place_reception_call().await;
    let mut by_status = std::collections::BTreeMap::<u16, usize>::new();
    for case in 0..600 {
        let mut body = bodies[case % bodies.len()].clone();
        if case % 2 == 0
            && let Some(items) = body["value"].as_array_mut()
        {
            for item in items {
                if let Some(url) = item["resourceUrl"].as_str() {
                    let mut parts: Vec<&str> = url.split('/').collect();
                    if parts.len() > 3 && parts[1] == "communications" {
                        parts[3] = &live;
                        item["resourceUrl"] = json!(parts.join("/"));
                    }
                }
            }
        }
        for _ in 0..=rng.below(3) {
            mutate(&mut body, &mut rng);
        }
        let (status, answer) = s
            .post_callback(Some(&token), "application/json", body.to_string())
            .await;
        assert!(
            status == 202 || (400..500).contains(&status),
            "case {case}: {status} {answer}\nbody: {body}"
        );
        if status != 202 {
            assert!(
                answer["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty()),
                "case {case}: a refusal says why: {answer}"
            );
        }
        *by_status.entry(status).or_default() += 1;
    }
    eprintln!("answers to 600 mutated seed notifications: {by_status:?}");
    assert!(
        by_status.get(&202).is_some_and(|n| *n > 50),
        "{by_status:?}"
    );
    assert!(
        by_status.get(&400).is_some_and(|n| *n > 50),
        "{by_status:?}"
    );
    // Whatever sessions the hostile batches started are handled.
    s.runtime.settle().await;
    let session = s
        .runtime
        .sessions()
        .into_iter()
        .find(|x| x.calls.contains(&live))
        .expect("the live call's session is kept");
    let timeline = s.runtime.session(&session.id).expect("kept").timeline;
    eprintln!(
        "the live call's session: {} timeline entries, outcome {:?}",
        timeline.len(),
        session.outcome
    );
    assert!(
        timeline.len() > 20,
        "hostile events reached the live call's session"
    );
    // Still serving: health, and a real incoming call starts a session.
    let health = s.http.get(s.url("/healthz")).send().await.expect("healthz");
    assert_eq!(health.status(), 200);
    let mut next_call = incoming_body("after-the-storm");
    next_call["value"][0]["resourceData"]["targets"][0]["identity"]["phone"]["id"] =
        json!("+14255550100");
    let (status, answer) = s
        .post_callback(Some(&token), "application/json", next_call.to_string())
        .await;
    assert_eq!(status, 202, "{answer}");
    let runtime = s.runtime.clone();
    let started = eventually(Duration::from_secs(20), || {
        let found = runtime
            .sessions()
            .into_iter()
            .any(|x| x.calls.iter().any(|c| c == "after-the-storm"));
        async move { found.then_some(()) }
    })
    .await;
    assert!(started.is_some(), "a session for the next real call");
    assert_eq!(
        PANICS.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "no thread panicked"
    );
    s.stop().await;
}

/// In production mode, a missing flows folder is reported first, before
/// anything reaches the network.
#[test]
fn serve_without_a_flows_folder_says_so_first() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_callflow"))
        .args([
            "serve",
            "--public-url",
            "https://bot.example.com",
            "--tenant",
            "t",
            "--app-id",
            "a",
            "--client-secret",
            "s",
        ])
        .current_dir(dir.path())
        .env_remove("CALLFLOW_FLOWS")
        .env_remove("CALLFLOW_CONFIG")
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .output()
        .expect("run callflow");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(
        stderr.trim(),
        "error: no flows folder at flows (set --flows DIR or CALLFLOW_FLOWS)"
    );
}

impl Stack {
    /// The session that owns `call_id`, once there is one.
    async fn session_of(&self, call_id: &str) -> String {
        let runtime = self.runtime.clone();
        let call_id = call_id.to_owned();
        eventually(Duration::from_secs(30), || {
            let runtime = runtime.clone();
            let call_id = call_id.clone();
            async move {
                runtime
                    .sessions()
                    .into_iter()
                    .find(|x| x.calls.contains(&call_id))
                    .map(|x| x.id)
            }
        })
        .await
        .expect("the call has a session")
    }

    /// Waits until session `id` has ended; its detail.
    async fn ended(&self, id: &str) -> callflow::runtime::SessionDetail {
        let runtime = self.runtime.clone();
        let id = id.to_owned();
        eventually(Duration::from_secs(30), || {
            let runtime = runtime.clone();
            let id = id.clone();
            async move { runtime.session(&id).filter(|d| d.summary.state == "ended") }
        })
        .await
        .expect("the session ended")
    }

    async fn metrics(&self) -> String {
        self.admin_get("/metrics", Some(ADMIN))
            .await
            .text()
            .await
            .expect("metrics text")
    }
}

/// What Graph may send is read, or refused out loud: `resourceData` as an
/// array on a call (tagged or not), states and change types in any case,
/// a batch whose broken entry does not cost its neighbours, and the legacy
/// Skype-calling first notification answered `204`. Over loopback HTTP,
/// through the real server and runtime.
#[tokio::test]
async fn graphs_other_shapes_are_read_and_broken_entries_refused_out_loud() {
    let s = stack(Keys::Insecure, 1024 * 1024).await;
    let json = "application/json";

    // A tagged array, `Deleted` and `Terminated` capitalised, on the old
    // `/app/calls` path, beside an entry with a bad change type: the valid
    // one is applied (the session ends), the broken one listed and counted.
    let a = s.place_reception_call().await;
    let session_a = s.session_of(&a).await;
    let batch = json!({
        "value": [
            {
                "changeType": "Deleted",
                "resource": format!("/app/calls/{a}"),
                "resourceData": [{
                    "@odata.type": "#microsoft.graph.call",
                    "state": "Terminated",
                    "resultInfo": {"code": 200, "subcode": 4097, "message": "The conversation ended"}
                }]
            },
            {
                "changeType": "moved",
                "resourceUrl": format!("/communications/calls/{a}"),
                "resourceData": {"state": "established"}
            }
        ]
    });
    let (status, body) = s.post_callback(None, json, batch.to_string()).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["accepted"], 1, "{body}");
    assert_eq!(body["refused"][0]["reason"], "bad_change_type", "{body}");
    assert_eq!(body["refused"][0]["callId"], a.as_str(), "{body}");
    let detail = s.ended(&session_a).await;
    assert_eq!(
        detail.summary.outcome.map(|o| o.as_str()),
        Some("caller_hung_up"),
        "{}",
        detail.timeline_text
    );

    // An untagged array (states in Microsoft's own capitalised spelling,
    // `Established`, are read as well: see the reader's unit tests).
    let b = s.place_reception_call().await;
    let session_b = s.session_of(&b).await;
    let ended = json!({"value": [{
        "changeType": "deleted",
        "resourceUrl": format!("/communications/calls/{b}"),
        "resourceData": [{"state": "terminated"}]
    }]});
    let (status, body) = s.post_callback(None, json, ended.to_string()).await;
    assert_eq!(status, 202, "{body}");
    let detail = s.ended(&session_b).await;
    assert_eq!(
        detail.summary.outcome.map(|o| o.as_str()),
        Some("caller_hung_up"),
        "{}",
        detail.timeline_text
    );

    // A batch of nothing but broken entries is a 400.
    let broken = json!({"value": [{"changeType": "updated", "resourceUrl": "/me/drive"}]});
    let (status, body) = s.post_callback(None, json, broken.to_string()).await;
    assert_eq!(status, 400, "{body}");

    // The legacy (Skype calling) first notification: 204, logged, counted;
    // nothing is started.
    let sessions = s.runtime.sessions().len();
    let legacy = json!({
        "id": "3c4a5f2d-3ad6-4d7b-9e9a-c0ffee000001",
        "participants": [
            {"identity": "29:1abcdef", "displayName": "Ada", "languageId": "en-US", "originator": true},
            {"identity": "28:2891555a-92ff-42e6-80fa-6e1300c6b5c6", "originator": false}
        ],
        "isMultiparty": false,
        "presentedModalityTypes": ["audio"],
        "callState": "incoming"
    });
    let response = s
        .http
        .post(&s.callback)
        .header("content-type", json)
        .body(legacy.to_string())
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status(), 204);
    assert_eq!(response.bytes().await.expect("body").len(), 0);
    assert_eq!(s.runtime.sessions().len(), sessions);

    let metrics = s.metrics().await;
    for line in [
        "callflow_notifications_refused_total{reason=\"bad_change_type\"} 1",
        "callflow_notifications_refused_total{reason=\"bad_resource\"} 1",
        "callflow_legacy_notifications_total 1",
        "callflow_callback_requests_total{status=\"204\"} 1",
    ] {
        assert!(metrics.contains(line), "no {line:?} in:\n{metrics}");
    }
    s.stop().await;
}

/// Reads from `stream` until it closes (or `limit` passes); what it read.
async fn read_until_closed(stream: &mut tokio::net::TcpStream, limit: Duration) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let read = tokio::time::timeout(limit, async {
        let mut buf = [0u8; 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok()
        .map(|()| String::from_utf8_lossy(&got).into_owned())
}

/// A slow or stalled client holds neither a connection nor a graceful
/// stop: a stalled body gets `408`, stalled headers a closed connection,
/// and a stop finishes within its grace period although a request is
/// still stuck. Over real loopback sockets.
#[tokio::test]
async fn stalled_clients_are_cut_off_and_cannot_hang_a_stop() {
    use tokio::io::AsyncWriteExt;
    let s = stack_with(Keys::Insecure, 1024 * 1024, |c| {
        c.header_timeout = Duration::from_millis(300);
        c.request_timeout = Duration::from_millis(500);
    })
    .await;
    // A body that stops half way: 408, then the connection closes.
    let mut body = tokio::net::TcpStream::connect(s.addr)
        .await
        .expect("connect");
    body.write_all(
        b"POST /api/calls HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"value\": [",
    )
    .await
    .expect("write");
    let answer = read_until_closed(&mut body, Duration::from_secs(20))
        .await
        .expect("the server answers and closes");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    // Headers that never end: the connection is closed.
    let mut headers = tokio::net::TcpStream::connect(s.addr)
        .await
        .expect("connect");
    headers
        .write_all(b"POST /api/calls HTTP/1.1\r\nhost: x\r\ncontent-ty")
        .await
        .expect("write");
    assert!(
        read_until_closed(&mut headers, Duration::from_secs(20))
            .await
            .is_some(),
        "a client that never finishes its headers is disconnected"
    );
    s.stop().await;

    // A stop with a request stuck in its body finishes after the grace period.
    let s = stack_with(Keys::Insecure, 1024 * 1024, |c| {
        c.request_timeout = Duration::from_secs(3600);
        c.shutdown_grace = Duration::from_millis(200);
    })
    .await;
    let mut stuck = tokio::net::TcpStream::connect(s.addr)
        .await
        .expect("connect");
    stuck
        .write_all(
            b"POST /api/calls HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{",
        )
        .await
        .expect("write");
    // The request has reached the server (its body is being read) once the
    // callback counts nothing yet but a healthz on another connection works.
    let health = s.http.get(s.url("/healthz")).send().await.expect("healthz");
    assert_eq!(health.status(), 200);
    tokio::time::timeout(Duration::from_secs(30), s.stop())
        .await
        .expect("the stop does not hang on a stalled request");
    assert!(
        read_until_closed(&mut stuck, Duration::from_secs(10))
            .await
            .is_some(),
        "the stuck connection was closed"
    );
}

/// A public URL whose path differs from --callback-path is refused at
/// start, with what to change; one with a path alone is served there.
#[test]
fn a_public_url_path_that_contradicts_the_callback_path_is_refused() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_callflow"))
        .args([
            "serve",
            "--public-url",
            "https://bot.example.com/hooks/graph",
        ])
        .args([
            "--callback-path",
            "/api/calls",
            "--app-id",
            "a",
            "--tenant",
            "t",
        ])
        .arg("--flows")
        .arg(flows_dir())
        .env("CALLFLOW_CLIENT_SECRET", "s")
        .env_remove("CALLFLOW_CONFIG")
        .output()
        .expect("callflow runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("the public URL's path is /hooks/graph but --callback-path is /api/calls")
            && stderr.contains("--public-url https://bot.example.com"),
        "{stderr}"
    );
}

/// `serve --simulate --keep-running` on the bundled flows: the child, the
/// server's base URL and its admin token (read from its banner).
fn demo_server() -> (std::process::Child, String, String) {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_callflow"))
        .args(["serve", "--simulate", "--keep-running", "--flows"])
        .arg(flows_dir())
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .env_remove("CALLFLOW_ADMIN_TOKEN")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn callflow");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut admin = None;
    for line in lines.by_ref() {
        let Ok(line) = line else { break };
        if let Some(rest) = line.split("admin API     ").nth(1) {
            let url = rest.split_whitespace().next().unwrap_or("");
            let token = rest
                .split("Bearer ")
                .nth(1)
                .unwrap_or("")
                .trim_end_matches(')');
            admin = Some((url.replace("/api/sessions", ""), token.to_owned()));
        }
        if line.starts_with("edits to ") {
            break;
        }
    }
    // Keep draining its output so that it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    let (url, token) = admin.expect("the banner names the admin API");
    (child, url, token)
}

/// `callflow run` against a real server: prints the session id, and with
/// `--follow` the run's timeline until it ends; a wrong flow or parameter
/// is refused with the server's reason and exit status 2.
#[test]
fn callflow_run_starts_and_follows_an_api_flow() {
    let (mut server, url, token) = demo_server();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_callflow"))
            .arg("run")
            .args(args)
            .args(["--url", &url])
            .env("CALLFLOW_ADMIN_TOKEN", &token)
            .env("NO_COLOR", "1")
            .output()
            .expect("callflow run")
    };
    let outcome = std::panic::catch_unwind(|| {
        let out = run(&[
            "outbound-reminder",
            "--param",
            "phone=+33612345678",
            "--param",
            "appointment=https://cdn.contoso.com/reminders/dentist-tuesday.wav",
            "--follow",
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stdout}\n{stderr}");
        let first = stdout.lines().next().unwrap_or("");
        assert!(first.starts_with("run-"), "the session id first:\n{stdout}");
        for said in [
            "dial",
            "create_call",
            "play_prompt",
            "hangup",
            "ended: reminded (hung_up)",
        ] {
            assert!(stdout.contains(said), "no {said:?} in:\n{stdout}");
        }
        // `/metrics` counts the run by the flow's own name for its end,
        // once its session has retired.
        let named = "callflow_sessions_ended_total{outcome=\"hung_up\",end=\"reminded\"} 1";
        callflow::graph::client::install_tls_provider();
        let metrics = tokio::runtime::Runtime::new()
            .expect("a runtime")
            .block_on(eventually(Duration::from_secs(20), || async {
                let text = reqwest::Client::new()
                    .get(format!("{url}/metrics"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .ok()?
                    .text()
                    .await
                    .ok()?;
                text.contains(named).then_some(text)
            }));
        assert!(metrics.is_some(), "no `{named}` in /metrics");
        // The admin API gives the timeline's short form, and the verbose
        // one when asked.
        let texts = tokio::runtime::Runtime::new()
            .expect("a runtime")
            .block_on(async {
                let mut texts = Vec::new();
                for query in ["", "?verbose=true"] {
                    let detail: serde_json::Value = reqwest::Client::new()
                        .get(format!("{url}/api/sessions/{first}{query}"))
                        .bearer_auth(&token)
                        .send()
                        .await
                        .expect("the session")
                        .json()
                        .await
                        .expect("json");
                    assert_eq!(detail["end"], "reminded", "{detail}");
                    texts.push(
                        detail["timeline_text"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                    );
                }
                texts
            });
        assert!(
            !texts[0].contains(" fired") && !texts[0].contains("tenant: "),
            "{}",
            texts[0]
        );
        assert!(
            texts[1].contains(" fired") && texts[1].contains("tenant: "),
            "{}",
            texts[1]
        );
        // Without --follow: the id alone.
        let out = run(&[
            "outbound-reminder",
            "--param",
            "phone=+33612345678",
            "--param",
            "appointment=https://cdn.contoso.com/x.wav",
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}");
        assert_eq!(stdout.lines().count(), 1, "{stdout}");
        // The server's refusals, said plainly.
        let out = run(&["no-such-flow"]);
        assert_eq!(out.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("no-such-flow was not started: 404"),
            "{stderr}"
        );
        let out = run(&["outbound-reminder", "--param", "phone=12"]);
        assert_eq!(out.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("phone"), "{stderr}");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_callflow"))
            .args(["run", "outbound-reminder", "--url", &url])
            .env_remove("CALLFLOW_ADMIN_TOKEN")
            .output()
            .expect("callflow run");
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("admin token is required"));
    });
    let _ = server.kill();
    let _ = server.wait();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// The instance an incoming call reached is the one its consultation call
/// goes out as: two resource accounts, a call to each, and sim-graph's log
/// of the create-call bodies the real client sent (with `tenantId`).
#[tokio::test]
async fn the_called_instance_places_the_consultation_call() {
    let flows = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        flows.path().join("desk.yaml"),
        "flow: desk\ntrigger: {incoming_call: {}}\nstart: a\nsteps:\n  a: {answer: {}, next: c}\n  c:\n    consultative_transfer: {to: {phone: \"+12345678901\"}}\n    on_failure: bye\n  bye: {hangup: {}}\n",
    )
    .expect("write the flow");
    let dir = flows.path().to_path_buf();
    let s = stack_full(
        Keys::Insecure,
        1024 * 1024,
        move |r| {
            r.flows_dir = dir;
            r.bot.instances = vec![
                "i-reception,+14255550100,Reception"
                    .parse()
                    .expect("an instance"),
                "i-branch,+12065550180,Branch office"
                    .parse()
                    .expect("an instance"),
            ];
        },
        |_| {},
    )
    .await;
    let sim = s.sim.base_url().to_owned();
    for (number, instance, name) in [
        ("+12065550180", "i-branch", "Branch office"),
        ("+14255550100", "i-reception", "Reception"),
    ] {
        let placed: Value = s
            .http
            .post(format!("{sim}/sim/calls"))
            .json(&json!({"from": {"phone": "+15550142"}, "to": {"phone": number}, "callbackUri": s.callback}))
            .send()
            .await
            .expect("placed")
            .json()
            .await
            .expect("json");
        let main = placed["id"].as_str().expect("an id").to_owned();
        let http = s.http.clone();
        let sim = sim.clone();
        let created = eventually(Duration::from_secs(30), || {
            let (http, sim, main) = (http.clone(), sim.clone(), main.clone());
            let instance = instance.to_owned();
            async move {
                let calls: Value = http
                    .get(format!("{sim}/sim/calls"))
                    .send()
                    .await
                    .ok()?
                    .json()
                    .await
                    .ok()?;
                for call in calls["value"].as_array()? {
                    let id = call["id"].as_str()?;
                    if id == main {
                        continue;
                    }
                    let log: Value = http
                        .get(format!("{sim}/sim/calls/{id}/requests"))
                        .send()
                        .await
                        .ok()?
                        .json()
                        .await
                        .ok()?;
                    let Some(create) = log["value"].as_array()?.iter().find(|r| {
                        r["method"] == "POST"
                            && r["path"]
                                .as_str()
                                .is_some_and(|p| p.ends_with("/communications/calls"))
                    }) else {
                        continue;
                    };
                    let instance_id =
                        create["body"]["source"]["identity"]["applicationInstance"]["id"].as_str();
                    if create["body"]["targets"][0]["identity"]["phone"]["id"] == "+12345678901"
                        && instance_id == Some(instance.as_str())
                    {
                        return Some(create.clone());
                    }
                }
                None
            }
        })
        .await;
        let Some(created) = created else {
            let calls: Value = s
                .http
                .get(format!("{sim}/sim/calls"))
                .send()
                .await
                .expect("calls")
                .json()
                .await
                .expect("json");
            let sessions: Vec<String> = s
                .runtime
                .sessions()
                .iter()
                .filter_map(|x| s.runtime.session(&x.id))
                .map(|d| d.timeline_text)
                .collect();
            panic!(
                "no consultation call was created as {instance}: {calls}\n{}",
                sessions.join("\n")
            );
        };
        let body = &created["body"];
        assert_eq!(created["status"], 201, "{created}");
        assert_eq!(
            body["source"]["identity"]["applicationInstance"],
            json!({"id": instance, "displayName": name}),
            "a call to {number}: {body}"
        );
        assert_eq!(body["tenantId"], TENANT, "{body}");
    }
    s.stop().await;
}

/// `serve --simulate --recordings DIR`: the banner says where recordings
/// go, and a voicemail left on a call placed through the demo's sim-graph
/// is downloaded from it and lands in the folder as a WAV file.
#[test]
fn serve_simulate_keeps_recordings_in_its_folder() {
    callflow::graph::client::install_tls_provider();
    let recordings = tempfile::tempdir().expect("temp dir");
    let flows = flows_dir();
    let (mut child, rx) = demo_lines(
        &flows,
        &["--recordings".as_ref(), recordings.path().as_os_str()],
    );
    let (mut sim, mut callback, mut banner) = (None, None, None);
    let mut seen = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(120)) {
        let word = |key: &str| {
            line.split(key)
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
                .map(str::to_owned)
        };
        sim = sim.or_else(|| word("sim-graph     "));
        callback = callback.or_else(|| word("callback      "));
        if line.contains("recordings    ") {
            banner = Some(line.clone());
        }
        let done = line.starts_with("edits to ");
        seen.push(line);
        if done {
            break;
        }
    }
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let banner = banner
            .clone()
            .unwrap_or_else(|| panic!("{}", seen.join("\n")));
        assert!(
            banner.contains(&recordings.path().display().to_string()),
            "{banner}"
        );
        let (sim, callback) = (
            sim.clone().expect("sim-graph"),
            callback.clone().expect("callback"),
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        rt.block_on(async {
            let placed = reqwest::Client::new()
                .post(format!("{sim}/sim/calls"))
                .json(&serde_json::json!({
                    "from": { "phone": "+12065550123" },
                    "to": { "phone": "+14255550104" },
                    "callbackUri": callback,
                }))
                .send()
                .await
                .expect("place a call");
            assert_eq!(placed.status(), 201);
        });
        let dir = recordings.path().to_path_buf();
        let wav = rt.block_on(crate::support::poll::eventually(
            Duration::from_secs(90),
            || {
                let dir = dir.clone();
                async move {
                    std::fs::read_dir(&dir)
                        .ok()?
                        .filter_map(Result::ok)
                        .find_map(|e| {
                            let p = e.path();
                            (p.extension()? == "wav").then(|| std::fs::read(&p).ok())?
                        })
                }
            },
        ));
        let wav = wav.unwrap_or_else(|| panic!("no recording in {}", dir.display()));
        assert!(
            wav.starts_with(b"RIFF") && wav.len() > 44,
            "{} bytes",
            wav.len()
        );
    }));
    let _ = child.kill();
    let _ = child.wait();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
