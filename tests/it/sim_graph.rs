//! `callflow sim-graph` over real loopback HTTP.
//!
//! Each test starts its own [`SimGraphServer`] on `127.0.0.1:0`, mostly with
//! a manual clock (time moves only when the test says), and a tiny axum
//! receiver standing in for the bot's callback URI. The production
//! [`GraphClient`] talks to sim-graph for every request kind; raw reqwest
//! requests check what the client would never send (no token, bad bodies).
//! No test measures wall-clock time: waits are bounded only to fail rather
//! than hang.

use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use callflow::graph::client::{
    ClientError, ClientSecret, Cloud, GraphClient, GraphConfig, RetryPolicy,
};
use callflow::graph::wire::{
    AnswerRequest, Call, CallState, Identity, IdentitySet, InvitationParticipantInfo,
    InviteParticipantsRequest, MediaConfig, MediaInfo, MediaPrompt, MeetingInfo, OperationStatus,
    ParticipantInfo, PlayPromptRequest, RedirectRequest, RejectReason, RejectRequest,
    SubscribeToToneRequest, TransferRequest,
};
use callflow::sim::graph::BOT_APP_ID;
use callflow::sim::http::{
    Faults, GRAPH_ISSUER, NotificationClaims, NotificationSigner, SimClock, SimGraphConfig,
    SimGraphServer,
};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};
use tokio::sync::mpsc;

const TENANT: &str = "tenant-sim";
/// The bot's application instance (a resource account with a number).
const INSTANCE: &str = "3d913abb-aec0-4964-8fa6-3c6850c4f278";
const CLIENT_ID: &str = "bot-client";
const SECRET: &str = "sim-s3cret";

/// One notification the bot's callback received.
#[derive(Clone, Debug)]
struct Posted {
    path: String,
    authorization: Option<String>,
    body: Value,
}

impl Posted {
    fn notification(&self) -> &Value {
        &self.body["value"][0]
    }

    fn state(&self) -> Option<&str> {
        self.notification()["resourceData"]["state"].as_str()
    }

    fn change(&self) -> &str {
        self.notification()["changeType"].as_str().unwrap_or("")
    }

    fn resource(&self) -> &str {
        self.notification()["resourceUrl"].as_str().unwrap_or("")
    }

    fn bearer(&self) -> &str {
        self.authorization
            .as_deref()
            .and_then(|a| a.strip_prefix("Bearer "))
            .expect("a bearer token")
    }
}

/// The bot's side: a receiver of notifications.
struct Callback {
    base: String,
    rx: mpsc::UnboundedReceiver<Posted>,
}

impl Callback {
    async fn start() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        async fn receive(
            State(tx): State<mpsc::UnboundedSender<Posted>>,
            uri: Uri,
            headers: HeaderMap,
            body: Bytes,
        ) -> StatusCode {
            let posted = Posted {
                path: uri.path().to_owned(),
                authorization: headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
                body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            };
            let _ = tx.send(posted);
            StatusCode::ACCEPTED
        }
        let app = Router::new().fallback(receive).with_state(tx);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Callback { base, rx }
    }

    fn uri(&self, name: &str) -> String {
        format!("{}/callback/{name}", self.base)
    }

    /// The next notification (fails after 10 s of silence).
    async fn next(&mut self) -> Posted {
        tokio::time::timeout(Duration::from_secs(10), self.rx.recv())
            .await
            .expect("a notification within 10 s")
            .expect("the receiver is open")
    }

    /// Notifications until one matches `pred`; returns them all, the match last.
    async fn until(&mut self, pred: impl Fn(&Posted) -> bool) -> Vec<Posted> {
        let mut seen = Vec::new();
        loop {
            let p = self.next().await;
            let done = pred(&p);
            seen.push(p);
            if done {
                return seen;
            }
        }
    }

    /// Whatever arrives within a short while (for "nothing more" checks).
    async fn drain(&mut self) -> Vec<Posted> {
        let mut seen = Vec::new();
        while let Ok(Some(p)) =
            tokio::time::timeout(Duration::from_millis(300), self.rx.recv()).await
        {
            seen.push(p);
        }
        seen
    }
}

struct Bed {
    server: SimGraphServer,
    client: GraphClient,
    http: reqwest::Client,
}

fn config(clock: SimClock) -> SimGraphConfig {
    SimGraphConfig {
        tenant_id: TENANT.into(),
        client_id: Some(CLIENT_ID.into()),
        client_secret: Some(SECRET.into()),
        clock,
        ..SimGraphConfig::default()
    }
}

async fn start(config: SimGraphConfig) -> Bed {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let server = SimGraphServer::start(config, listener)
        .await
        .expect("sim-graph starts");
    let client = client_for(&server, SECRET);
    callflow::graph::client::install_tls_provider();
    let http = reqwest::Client::new();
    Bed {
        server,
        client,
        http,
    }
}

fn client_for(server: &SimGraphServer, secret: &str) -> GraphClient {
    let mut config = GraphConfig::new(Cloud::Global, TENANT, CLIENT_ID, ClientSecret::new(secret))
        .with_base_urls(server.base_url(), server.base_url())
        .expect("valid URLs");
    config.retry = RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        max_total: Duration::from_secs(30),
    };
    GraphClient::new(config).expect("client")
}

impl Bed {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.base_url())
    }

    async fn control(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, self.url(path));
        if let Some(b) = body {
            request = request.json(&b);
        }
        let response = request.send().await.expect("sim-graph answers");
        let status = response.status().as_u16();
        let text = response.text().await.expect("a body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn incoming(&self, callback: &str) -> String {
        let (status, call) = self
            .control(
                reqwest::Method::POST,
                "/sim/calls",
                Some(json!({
                    "from": {"phone": "+15550100"},
                    "to": {"phone": "+14255550100"},
                    "callbackUri": callback,
                })),
            )
            .await;
        assert_eq!(status, 201, "{call}");
        call["id"].as_str().expect("an id").to_owned()
    }

    async fn requests(&self, call: &str) -> Vec<Value> {
        let (status, body) = self
            .control(
                reqwest::Method::GET,
                &format!("/sim/calls/{call}/requests"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["value"].as_array().expect("a list").clone()
    }

    async fn token(&self) -> String {
        let response = self
            .http
            .post(self.url(&format!("/{TENANT}/oauth2/v2.0/token")))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[
                ("grant_type", "client_credentials"),
                ("client_id", CLIENT_ID),
                ("client_secret", SECRET),
                ("scope", "https://graph.microsoft.com/.default"),
            ]))
            .send()
            .await
            .expect("token answer");
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.expect("json");
        body["access_token"].as_str().expect("a token").to_owned()
    }

    async fn advance(&self, secs: u64) {
        self.server.advance(Duration::from_secs(secs)).await;
    }
}

fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// The bot as an application instance: the source of calls to phone numbers.
fn instance() -> ParticipantInfo {
    ParticipantInfo::new(IdentitySet::application_instance(
        Identity::new(INSTANCE).with_display_name("Calling Bot"),
    ))
}

fn media() -> MediaConfig {
    MediaConfig::service_hosted()
}

fn prompt() -> PlayPromptRequest {
    PlayPromptRequest::new(vec![MediaPrompt::new(MediaInfo::new(
        "https://cdn.contoso.com/hello.wav",
    ))])
    .with_client_context("ctx-prompt")
}

fn assert_graph_error(status: u16, body: &Value, expected: u16) {
    assert_eq!(status, expected, "{body}");
    let error = &body["error"];
    assert!(
        error["code"].as_str().is_some_and(|c| !c.is_empty()),
        "{body}"
    );
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(error["innerError"]["request-id"].is_string(), "{body}");
    assert!(error["innerError"]["date"].is_string(), "{body}");
}

#[tokio::test]
async fn the_client_drives_every_request_kind() {
    let bed = start(config(SimClock::Manual)).await;
    let mut cb = Callback::start().await;
    let client = &bed.client;

    // Outgoing calls first (with no live incoming call they are not consultations).
    let bot = ParticipantInfo::new(IdentitySet::application(
        Identity::new(BOT_APP_ID).with_display_name("Bot"),
    ));
    let p2p = Call::outgoing(
        cb.uri("out"),
        vec![InvitationParticipantInfo::user(
            "user-1",
            Some(TENANT),
            Some("Ada"),
        )],
        media(),
    )
    .with_source(bot.clone())
    .with_tenant_id(TENANT);
    let created = client.create_call(&p2p).await.expect("created");
    let out = created.call.id.clone().expect("an id");
    assert_eq!(created.call.state, Some(CallState::Establishing));
    assert_eq!(
        created.location.as_deref(),
        Some(format!("{}/v1.0/communications/calls/{out}", bed.server.base_url()).as_str())
    );
    let pstn = Call::outgoing(
        cb.uri("pstn"),
        vec![InvitationParticipantInfo::phone("+12345678901")],
        media(),
    )
    .with_source(instance())
    .with_tenant_id(TENANT);
    let pstn = client
        .create_call(&pstn)
        .await
        .expect("created")
        .call
        .id
        .expect("id");
    let meeting = Call::join_meeting(
        cb.uri("meeting"),
        MeetingInfo::join_meeting_id("1234567", Some("pass")),
        media(),
    )
    .with_tenant_id(TENANT);
    let meeting = client
        .create_call(&meeting)
        .await
        .expect("joined")
        .call
        .id
        .expect("id");

    bed.advance(3).await;
    let seen = cb
        .until(|p| p.path.ends_with("/out") && p.state() == Some("established"))
        .await;
    assert!(
        seen.iter()
            .any(|p| p.path.ends_with("/out") && p.state() == Some("establishing"))
    );
    let got = client.get_call(&out).await.expect("got");
    assert_eq!(got.state, Some(CallState::Established));
    assert_eq!(got.callback_uri.as_deref(), Some(cb.uri("out").as_str()));

    let op = client.play_prompt(&out, &prompt()).await.expect("playing");
    assert_eq!(op.status, Some(OperationStatus::Running));
    assert_eq!(op.client_context.as_deref(), Some("ctx-prompt"));
    let tones = SubscribeToToneRequest {
        client_context: Some("ctx-tone".into()),
    };
    let op = client
        .subscribe_to_tone(&out, &tones)
        .await
        .expect("subscribed");
    assert_eq!(op.status, Some(OperationStatus::Completed));
    client.keep_alive(&out).await.expect("kept alive");
    let invite =
        InviteParticipantsRequest::new(vec![InvitationParticipantInfo::user("user-3", None, None)]);
    let op = client
        .invite_participants(&meeting, &invite)
        .await
        .expect("invited");
    assert!(!op.id.is_empty());
    bed.advance(4).await;
    let seen = cb
        .until(|p| p.path.ends_with("/out") && p.resource().contains("/operations/"))
        .await;
    assert_eq!(
        seen.last().expect("one").notification()["resourceData"]["clientContext"],
        "ctx-prompt"
    );

    // Blind transfer (to a Teams user: the call went out as the
    // application, not as an instance, so Graph would refuse a phone
    // number): transferring, transferAccepted, terminated 0/7015.
    let transfer = TransferRequest::new(InvitationParticipantInfo::user(
        "user-3",
        Some(TENANT),
        None,
    ));
    client
        .transfer(&out, &transfer)
        .await
        .expect("transferring");
    bed.advance(4).await;
    let seen = cb
        .until(|p| p.path.ends_with("/out") && p.state() == Some("terminated"))
        .await;
    let states: Vec<&str> = seen
        .iter()
        .filter(|p| p.path.ends_with("/out"))
        .filter_map(Posted::state)
        .collect();
    assert!(
        states.contains(&"transferring") && states.contains(&"transferAccepted"),
        "{states:?}"
    );
    assert_eq!(seen.last().expect("one").change(), "deleted");
    // A request on a terminated call: Graph's 404.
    let err = client.keep_alive(&out).await.expect_err("gone");
    assert_eq!(err.status(), 404);

    client.delete_call(&pstn).await.expect("hung up");

    // Incoming calls: answer, reject, redirect.
    let answered = bed.incoming(&cb.uri("in-1")).await;
    let first = cb.next().await;
    assert_eq!(first.change(), "created");
    assert_eq!(first.state(), Some("incoming"));
    assert_eq!(first.notification()["callbackUri"], cb.uri("in-1"));
    client
        .answer(
            &answered,
            &AnswerRequest::new(cb.uri("in-1-answered"), media()),
        )
        .await
        .expect("answered");
    let rejected = bed.incoming(&cb.uri("in-2")).await;
    client
        .reject(&rejected, &RejectRequest::new(RejectReason::Busy))
        .await
        .expect("rejected");
    let redirected = bed.incoming(&cb.uri("in-3")).await;
    let redirect = RedirectRequest::new(vec![InvitationParticipantInfo::phone("+33123456789")])
        .with_timeout(30);
    client
        .redirect(&redirected, &redirect)
        .await
        .expect("redirected");
    bed.advance(2).await;
    // After answer, notifications go to the callback given in `answer`.
    cb.until(|p| p.path.ends_with("/in-1-answered") && p.state() == Some("established"))
        .await;
    assert_eq!(
        client.get_call(&rejected).await.expect("got").state,
        Some(CallState::Terminated)
    );

    // The request log names every request, in order, with its status.
    let log = bed.requests(&out).await;
    let lines: Vec<String> = log
        .iter()
        .map(|r| {
            let path = r["path"].as_str().unwrap_or("");
            let tail = path.rsplit('/').next().unwrap_or("");
            format!(
                "{} {} {}",
                r["method"].as_str().unwrap_or(""),
                tail,
                r["status"]
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            "POST calls 201",
            "GET call-1 200",
            "POST playPrompt 200",
            "POST subscribeToTone 200",
            "POST keepAlive 200",
            "POST transfer 202",
            "POST keepAlive 404",
        ],
        "{lines:?}"
    );
    assert!(log[0]["clientRequestId"].is_string());
    let log = bed.requests(&pstn).await;
    assert_eq!(log.last().expect("one")["method"], "DELETE");
    assert_eq!(log.last().expect("one")["status"], 204);
    let (_, calls) = bed.control(reqwest::Method::GET, "/sim/calls", None).await;
    assert_eq!(calls["value"].as_array().map(Vec::len), Some(6), "{calls}");
    bed.server.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn a_token_is_required() {
    let bed = start(config(SimClock::Manual)).await;
    let calls = bed.url("/v1.0/communications/calls");
    let body = json!({
        "callbackUri": "http://127.0.0.1:9/cb",
        "source": {"identity": {"applicationInstance": {"id": INSTANCE}}},
        "targets": [{"identity": {"phone": {"id": "+15550100"}}}],
        "tenantId": TENANT,
    });
    let response = bed
        .http
        .post(&calls)
        .json(&body)
        .send()
        .await
        .expect("answer");
    let status = response.status().as_u16();
    assert_graph_error(status, &response.json().await.expect("json"), 401);
    let response = bed
        .http
        .post(&calls)
        .bearer_auth("made-up")
        .json(&body)
        .send()
        .await
        .expect("answer");
    let status = response.status().as_u16();
    let error: Value = response.json().await.expect("json");
    assert_graph_error(status, &error, 401);
    assert_eq!(error["error"]["code"], "InvalidAuthenticationToken");

    // The issued token works.
    let token = bed.token().await;
    let response = bed
        .http
        .post(&calls)
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 201);

    // A wrong secret gets no token; the client says so and sends nothing.
    let wrong = client_for(&bed.server, "not-the-secret");
    let err = wrong.keep_alive("call-1").await.expect_err("no token");
    assert!(matches!(err, ClientError::Token { .. }), "{err}");
    let response = bed
        .http
        .post(bed.url(&format!("/{TENANT}/oauth2/v2.0/token")))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("grant_type", "password")]))
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"], "unsupported_grant_type");

    // The client fetches one token and reuses it.
    bed.client.keep_alive("call-1").await.expect("kept alive");
    bed.client.get_call("call-1").await.expect("got");
    assert_eq!(bed.client.token_requests(), 1);
}

#[tokio::test]
async fn throttling_and_unavailability_are_retried() {
    let bed = start(config(SimClock::Manual)).await;
    let cb = Callback::start().await;
    let (status, _) = bed
        .control(
            reqwest::Method::PUT,
            "/sim/faults",
            Some(json!({"throttle": 1, "retry_after": 0})),
        )
        .await;
    assert_eq!(status, 200);
    let body = Call::outgoing(
        cb.uri("out"),
        vec![InvitationParticipantInfo::phone("+12345678901")],
        media(),
    )
    .with_source(instance())
    .with_tenant_id(TENANT);
    let created = bed
        .client
        .create_call(&body)
        .await
        .expect("created after a 429");
    let id = created.call.id.expect("id");
    let (_, unassigned) = bed
        .control(reqwest::Method::GET, "/sim/requests", None)
        .await;
    let refused = &unassigned["value"][0];
    assert_eq!(refused["status"], 429, "{unassigned}");
    assert_eq!(refused["error"], "TooManyRequests");
    assert_eq!(bed.requests(&id).await[0]["status"], 201);

    // One call's own fault: 503 then success.
    let (status, _) = bed
        .control(
            reqwest::Method::PUT,
            &format!("/sim/calls/{id}/faults"),
            Some(json!({"unavailable": 1, "retry_after": 0})),
        )
        .await;
    assert_eq!(status, 200);
    bed.client
        .keep_alive(&id)
        .await
        .expect("kept alive after a 503");
    let statuses: Vec<Value> = bed
        .requests(&id)
        .await
        .iter()
        .map(|r| r["status"].clone())
        .collect();
    assert_eq!(statuses, [json!(201), json!(503), json!(200)]);

    // The raw answer: Retry-After and Graph's error body.
    let (status, _) = bed
        .control(
            reqwest::Method::PUT,
            &format!("/sim/calls/{id}/faults"),
            Some(json!({"throttle": 1, "retry_after": 7})),
        )
        .await;
    assert_eq!(status, 200);
    let token = bed.token().await;
    let response = bed
        .http
        .post(bed.url(&format!("/v1.0/communications/calls/{id}/keepAlive")))
        .bearer_auth(token)
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "7");
    let status = response.status().as_u16();
    assert_graph_error(status, &response.json().await.expect("json"), 429);

    // A fault that outlasts the retry budget reaches the caller.
    let (status, _) = bed
        .control(
            reqwest::Method::PUT,
            &format!("/sim/calls/{id}/faults"),
            Some(json!({"unavailable": 10, "retry_after": 0})),
        )
        .await;
    assert_eq!(status, 200);
    let err = bed.client.keep_alive(&id).await.expect_err("gave up");
    assert!(
        matches!(err, ClientError::RetriesExhausted { status: 503, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn notifications_carry_a_jwt_that_verifies_against_the_published_keys() {
    let bed = start(config(SimClock::Manual)).await;
    let mut cb = Callback::start().await;
    let id = bed.incoming(&cb.uri("bot")).await;
    let posted = cb.next().await;
    assert_eq!(posted.path, "/callback/bot");
    assert_eq!(posted.notification()["resourceData"]["id"], id);
    assert_eq!(
        posted.body["@odata.type"],
        "#microsoft.graph.commsNotifications"
    );

    // The keys, found the way a bot finds Graph's: OpenID configuration, then jwks_uri.
    let (status, openid) = bed
        .control(
            reqwest::Method::GET,
            "/.well-known/OpenIdConfiguration",
            None,
        )
        .await;
    assert_eq!(status, 200);
    let jwks_uri = openid["jwks_uri"].as_str().expect("a jwks_uri");
    let jwks: JwkSet = bed
        .http
        .get(jwks_uri)
        .send()
        .await
        .expect("keys")
        .json()
        .await
        .expect("a JWKS");
    assert_eq!(jwks.keys.len(), 1);

    let token = posted.bearer();
    let header = jsonwebtoken::decode_header(token).expect("a JWT header");
    let jwk = jwks
        .find(header.kid.as_deref().expect("a kid"))
        .expect("the key");
    let key = DecodingKey::from_jwk(jwk).expect("a decoding key");
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_audience(&[BOT_APP_ID]);
    validation.set_issuer(&[GRAPH_ISSUER]);
    let claims = jsonwebtoken::decode::<NotificationClaims>(token, &key, &validation)
        .expect("a valid signature")
        .claims;
    assert_eq!(claims.tid, TENANT);
    assert_eq!(claims.aud, BOT_APP_ID);
    assert!(claims.exp > claims.iat);

    // Another key does not verify it; nor does another audience.
    let other = NotificationSigner::generate().expect("a key");
    let other_key = DecodingKey::from_jwk(other.jwk()).expect("a decoding key");
    assert!(jsonwebtoken::decode::<NotificationClaims>(token, &other_key, &validation).is_err());
    let mut wrong_audience = Validation::new(Algorithm::EdDSA);
    wrong_audience.set_audience(&["someone-else"]);
    assert!(jsonwebtoken::decode::<NotificationClaims>(token, &key, &wrong_audience).is_err());
    assert_eq!(bed.server.jwks().keys.len(), 1);
}

#[tokio::test]
async fn the_caller_presses_keys_and_hangs_up() {
    let bed = start(config(SimClock::Manual)).await;
    let mut cb = Callback::start().await;
    let id = bed.incoming(&cb.uri("bot")).await;
    cb.next().await;
    // Not answered yet: no key can be pressed.
    let (status, body) = bed
        .control(
            reqwest::Method::POST,
            &format!("/sim/calls/{id}/press"),
            Some(json!({"digits": "1"})),
        )
        .await;
    assert_graph_error(status, &body, 409);
    bed.client
        .answer(&id, &AnswerRequest::new(cb.uri("bot"), media()))
        .await
        .expect("answered");
    bed.advance(2).await;
    cb.until(|p| p.state() == Some("established")).await;
    bed.client
        .subscribe_to_tone(&id, &SubscribeToToneRequest::default())
        .await
        .expect("subscribed");
    let (status, body) = bed
        .control(
            reqwest::Method::POST,
            &format!("/sim/calls/{id}/press"),
            Some(json!({"digits": "1#"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let one = cb.next().await;
    let pound = cb.next().await;
    assert_eq!(
        one.notification()["resourceData"]["toneInfo"]["tone"],
        "tone1"
    );
    assert_eq!(
        pound.notification()["resourceData"]["toneInfo"]["tone"],
        "pound"
    );
    assert_eq!(
        pound.notification()["resourceData"]["toneInfo"]["sequenceId"],
        2
    );

    let (status, _) = bed
        .control(
            reqwest::Method::POST,
            &format!("/sim/calls/{id}/hangup"),
            None,
        )
        .await;
    assert_eq!(status, 202);
    let ended = cb.next().await;
    assert_eq!(ended.change(), "deleted");
    assert_eq!(
        ended.notification()["resourceData"]["resultInfo"]["subcode"],
        4097
    );
    let call = bed.client.get_call(&id).await.expect("got");
    assert_eq!(call.state, Some(CallState::Terminated));
    let (status, body) = bed
        .control(
            reqwest::Method::POST,
            &format!("/sim/calls/{id}/hangup"),
            None,
        )
        .await;
    assert_graph_error(status, &body, 409);
    let (status, body) = bed
        .control(reqwest::Method::POST, "/sim/calls/call-99/hangup", None)
        .await;
    assert_graph_error(status, &body, 404);
    // The delivery log shows the bot's answers.
    let (_, delivered) = bed
        .control(
            reqwest::Method::GET,
            &format!("/sim/calls/{id}/notifications"),
            None,
        )
        .await;
    let statuses: Vec<&Value> = delivered["value"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|d| &d["status"])
        .collect();
    assert!(
        statuses.len() >= 5 && statuses.iter().all(|s| **s == 202),
        "{delivered}"
    );
}

#[tokio::test]
async fn transfer_faults_and_callees_that_never_answer() {
    let bed = start(config(SimClock::Manual)).await;
    let mut cb = Callback::start().await;
    let id = bed.incoming(&cb.uri("bot")).await;
    bed.client
        .answer(&id, &AnswerRequest::new(cb.uri("bot"), media()))
        .await
        .expect("answered");
    bed.advance(2).await;
    cb.until(|p| p.state() == Some("established")).await;
    let (status, _) = bed
        .control(
            reqwest::Method::PUT,
            &format!("/sim/calls/{id}/faults"),
            Some(json!({"transfer": "fail"})),
        )
        .await;
    assert_eq!(status, 200);
    let transfer = TransferRequest::new(InvitationParticipantInfo::phone("+33123456789"));
    bed.client.transfer(&id, &transfer).await.expect("accepted");
    bed.advance(3).await;
    let transferring = cb.next().await;
    assert_eq!(transferring.state(), Some("transferring"));
    let back = cb.next().await;
    assert_eq!(back.state(), Some("established"));
    let result = &back.notification()["resourceData"]["resultInfo"];
    assert_eq!(
        (result["code"].clone(), result["subcode"].clone()),
        (json!(500), json!(7000))
    );
    assert_eq!(
        bed.client.get_call(&id).await.expect("got").state,
        Some(CallState::Established)
    );

    // The target never answers: transferring, and nothing more.
    let (status, _) = bed
        .control(
            reqwest::Method::PUT,
            &format!("/sim/calls/{id}/faults"),
            Some(json!({"transfer": "no_answer"})),
        )
        .await;
    assert_eq!(status, 200);
    bed.client.transfer(&id, &transfer).await.expect("accepted");
    bed.advance(10).await;
    let after = cb.drain().await;
    let states: Vec<&str> = after.iter().filter_map(Posted::state).collect();
    assert_eq!(states, ["transferring"]);

    // An outgoing call whose callee never answers: establishing only.
    let (status, _) = bed
        .control(
            reqwest::Method::PUT,
            "/sim/faults",
            Some(json!({"never_answer": true})),
        )
        .await;
    assert_eq!(status, 200);
    let body = Call::outgoing(
        cb.uri("ringing"),
        vec![InvitationParticipantInfo::phone("+12345678901")],
        media(),
    )
    .with_source(instance())
    .with_tenant_id(TENANT);
    let out = bed
        .client
        .create_call(&body)
        .await
        .expect("created")
        .call
        .id
        .expect("id");
    bed.advance(10).await;
    let states: Vec<String> = cb
        .drain()
        .await
        .iter()
        .filter(|p| p.path.ends_with("/ringing"))
        .filter_map(|p| p.state().map(str::to_owned))
        .collect();
    assert_eq!(states, ["establishing"]);
    assert_eq!(
        bed.client.get_call(&out).await.expect("got").state,
        Some(CallState::Establishing)
    );
}

#[tokio::test]
async fn duplicated_and_reordered_notifications() {
    let bed = start(config(SimClock::Manual)).await;
    let mut cb = Callback::start().await;
    let id = bed.incoming(&cb.uri("bot")).await;
    cb.next().await;
    let (status, _) = bed
        .control(
            reqwest::Method::PUT,
            &format!("/sim/calls/{id}/faults"),
            Some(json!({"reorder": true})),
        )
        .await;
    assert_eq!(status, 200);
    bed.client
        .answer(&id, &AnswerRequest::new(cb.uri("bot"), media()))
        .await
        .expect("answered");
    bed.advance(2).await;
    let first = cb.next().await;
    let second = cb.next().await;
    assert_eq!(
        (first.state(), second.state()),
        (Some("established"), Some("establishing"))
    );

    let (status, _) = bed
        .control(
            reqwest::Method::PUT,
            &format!("/sim/calls/{id}/faults"),
            Some(json!({"duplicate": true, "delay": "5s"})),
        )
        .await;
    assert_eq!(status, 200);
    bed.client
        .play_prompt(&id, &prompt())
        .await
        .expect("playing");
    bed.advance(4).await;
    assert!(cb.drain().await.is_empty(), "held back by the delay");
    bed.advance(5).await;
    let a = cb.next().await;
    let b = cb.next().await;
    assert_eq!(a.body, b.body);
    assert!(a.resource().contains("/operations/"));
}

#[tokio::test]
async fn bad_requests_get_graphs_error_never_a_500() {
    let bed = start(config(SimClock::Manual)).await;
    let cb = Callback::start().await;
    let id = bed.incoming(&cb.uri("bot")).await;
    let token = bed.token().await;
    let bad_bodies: [&[u8]; 7] = [
        b"",
        b"{",
        b"[1, 2]",
        b"null",
        b"{\"callbackUri\": 42, \"reason\": 7, \"clientContext\": []}",
        b"\xff\xfe not utf-8",
        b"{\"prompts\": \"many\", \"transferTarget\": [], \"reason\": 1, \"targets\": 3, \"participants\": 2, \"clientContext\": {}}",
    ];
    let actions = [
        "answer",
        "reject",
        "redirect",
        "transfer",
        "playPrompt",
        "subscribeToTone",
        "participants/invite",
    ];
    for action in actions {
        for body in bad_bodies {
            let response = bed
                .http
                .post(bed.url(&format!("/v1.0/communications/calls/{id}/{action}")))
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body(body.to_vec())
                .send()
                .await
                .expect("an answer");
            let status = response.status().as_u16();
            let text = response.text().await.expect("a body");
            let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            assert_eq!(
                status,
                400,
                "{action} {:?}: {text}",
                String::from_utf8_lossy(body)
            );
            assert_graph_error(status, &json, 400);
        }
    }
    for body in bad_bodies {
        let response = bed
            .http
            .post(bed.url("/v1.0/communications/calls"))
            .bearer_auth(&token)
            .body(body.to_vec())
            .send()
            .await
            .expect("an answer");
        let status = response.status().as_u16();
        assert_graph_error(status, &response.json().await.expect("json"), 400);
    }
    // Unknown calls, actions, paths and versions: 404 with Graph's body.
    for (method, path) in [
        (
            reqwest::Method::GET,
            "/v1.0/communications/calls/call-404".to_owned(),
        ),
        (
            reqwest::Method::DELETE,
            "/v1.0/communications/calls/call-404".to_owned(),
        ),
        (
            reqwest::Method::POST,
            "/v1.0/communications/calls/call-404/keepAlive".to_owned(),
        ),
        (
            reqwest::Method::POST,
            format!("/v1.0/communications/calls/{id}/dance"),
        ),
        (
            reqwest::Method::GET,
            "/v2.0/communications/calls/x".to_owned(),
        ),
        (reqwest::Method::GET, "/nothing/here".to_owned()),
    ] {
        let response = bed
            .http
            .request(method, bed.url(&path))
            .bearer_auth(&token)
            .send()
            .await
            .expect("an answer");
        let status = response.status().as_u16();
        assert_graph_error(status, &response.json().await.expect("json"), 404);
    }
    // A known path with the wrong method: 405, still Graph's body.
    let response = bed
        .http
        .put(bed.url(&format!("/v1.0/communications/calls/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .expect("an answer");
    let status = response.status().as_u16();
    assert_graph_error(status, &response.json().await.expect("json"), 405);
    // The control API refuses bad bodies the same way.
    for (path, body) in [
        (
            "/sim/calls",
            json!({"from": {"phone_number": "+1"}, "callbackUri": "http://x/cb"}),
        ),
        (
            "/sim/calls",
            json!({"from": {"phone": "+1"}, "callbackUri": "not a url"}),
        ),
        ("/sim/calls", json!({"caller": "me"})),
        ("/sim/faults", json!({"throttle": "lots"})),
        ("/sim/clock/advance", json!({"by": "soon"})),
    ] {
        let method = if path == "/sim/faults" {
            reqwest::Method::PUT
        } else {
            reqwest::Method::POST
        };
        let (status, answer) = bed.control(method, path, Some(body)).await;
        assert_graph_error(status, &answer, 400);
    }
    let (status, answer) = bed
        .control(
            reqwest::Method::POST,
            &format!("/sim/calls/{id}/press"),
            Some(json!({"digits": "9x"})),
        )
        .await;
    assert_graph_error(status, &answer, 400);
    // sim-graph still serves after all that.
    bed.client.get_call(&id).await.expect("still serving");
}

#[tokio::test]
async fn the_real_clock_releases_what_falls_due() {
    let bed = start(config(SimClock::RealTime { speed: 20.0 })).await;
    let mut cb = Callback::start().await;
    let id = bed.incoming(&cb.uri("bot")).await;
    cb.next().await;
    bed.client
        .answer(&id, &AnswerRequest::new(cb.uri("bot"), media()))
        .await
        .expect("answered");
    // No advance: the clock moves on its own.
    cb.until(|p| p.state() == Some("established")).await;
    let (status, clock) = bed.control(reqwest::Method::GET, "/sim/clock", None).await;
    assert_eq!(status, 200);
    assert_eq!(clock["mode"]["realTime"]["speed"], 20.0);
    let faults = Faults {
        throttle: 1,
        retry_after: Some(0),
        ..Faults::default()
    };
    let (status, _) = bed
        .control(
            reqwest::Method::PUT,
            "/sim/faults",
            Some(serde_json::to_value(faults).expect("json")),
        )
        .await;
    assert_eq!(status, 200);
    bed.client
        .keep_alive(&id)
        .await
        .expect("kept alive after a 429");
    bed.server.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn concurrent_requests_on_a_cold_cache_fetch_one_token() {
    let bed = start(config(SimClock::Manual)).await;
    let cb = Callback::start().await;
    let id = bed.incoming(&cb.uri("bot")).await;
    let client = client_for(&bed.server, SECRET);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let client = client.clone();
        let id = id.clone();
        tasks.spawn(async move { client.get_call(&id).await.map(|c| c.state) });
    }
    while let Some(done) = tasks.join_next().await {
        let state = done.expect("no panic").expect("got the call");
        assert_eq!(state, Some(CallState::Incoming));
    }
    assert_eq!(client.token_requests(), 1);
    assert_eq!(bed.server.token_requests(), 1);
    assert_eq!(bed.requests(&id).await.len(), 100);
}

#[tokio::test]
async fn a_consultative_transfer_replaces_the_consultation_call() {
    let bed = start(config(SimClock::Manual)).await;
    let mut cb = Callback::start().await;
    let id = bed.incoming(&cb.uri("main")).await;
    bed.client
        .answer(&id, &AnswerRequest::new(cb.uri("main"), media()))
        .await
        .expect("answered");
    bed.advance(2).await;
    cb.until(|p| p.path.ends_with("/main") && p.state() == Some("established"))
        .await;
    // The bot calls the target first (a consultation call) ...
    let target = InvitationParticipantInfo::user("user-2", Some(TENANT), Some("Grace"));
    let consult =
        Call::outgoing(cb.uri("consult"), vec![target.clone()], media()).with_tenant_id(TENANT);
    let consult = bed
        .client
        .create_call(&consult)
        .await
        .expect("created")
        .call
        .id
        .expect("id");
    bed.advance(3).await;
    cb.until(|p| p.path.ends_with("/consult") && p.state() == Some("established"))
        .await;
    // ... then transfers the caller to it.
    let transfer = TransferRequest::consultative(target, consult.clone());
    bed.client.transfer(&id, &transfer).await.expect("accepted");
    bed.advance(4).await;
    let mut ended = Vec::new();
    while ended.len() < 2 {
        let p = cb.next().await;
        if p.state() == Some("terminated") {
            ended.push(p);
        }
    }
    for p in &ended {
        assert_eq!(p.change(), "deleted");
        assert_eq!(
            p.notification()["resourceData"]["terminationReason"],
            "AppTransferred"
        );
    }
    assert_eq!(
        bed.client.get_call(&consult).await.expect("got").state,
        Some(CallState::Terminated)
    );
    // Transferring with a call that is no consultation is refused.
    let again = TransferRequest::consultative(
        InvitationParticipantInfo::user("user-2", None, None),
        "call-77",
    );
    let other = bed.incoming(&cb.uri("other")).await;
    bed.client
        .answer(&other, &AnswerRequest::new(cb.uri("other"), media()))
        .await
        .expect("answered");
    bed.advance(2).await;
    let err = bed
        .client
        .transfer(&other, &again)
        .await
        .expect_err("refused");
    assert_eq!(err.status(), 400);
}

#[tokio::test]
async fn anonymous_existing_and_replayed_calls_on_the_manual_clock() {
    let start_at = chrono::DateTime::parse_from_rfc3339("2026-11-21T22:15:00+01:00")
        .expect("a time")
        .with_timezone(&chrono::Utc);
    let bed = start(SimGraphConfig {
        start: Some(start_at),
        ..config(SimClock::Manual)
    })
    .await;
    let mut cb = Callback::start().await;

    // An anonymous caller: no number, no identity.
    let (status, call) = bed
        .control(
            reqwest::Method::POST,
            "/sim/calls",
            Some(json!({"from": {}, "callbackUri": cb.uri("bot")})),
        )
        .await;
    assert_eq!(status, 201, "{call}");
    let incoming = cb.next().await;
    assert_eq!(incoming.state(), Some("incoming"));
    let identity = &incoming.notification()["resourceData"]["source"]["identity"];
    assert!(
        identity.get("phone").is_none() && identity.get("user").is_none(),
        "{identity}"
    );
    // A misspelt party is refused, not read as anonymous.
    let (status, body) = bed
        .control(
            reqwest::Method::POST,
            "/sim/calls",
            Some(json!({"from": {"phon": "+15550100"}, "callbackUri": cb.uri("bot")})),
        )
        .await;
    assert_graph_error(status, &body, 400);

    // A call the bot already has: its state is posted.
    let (status, existing) = bed
        .control(
            reqwest::Method::POST,
            "/sim/calls/existing",
            Some(json!({"callbackUri": cb.uri("bot")})),
        )
        .await;
    assert_eq!(status, 201, "{existing}");
    let id = existing["id"].as_str().expect("an id");
    let posted = cb.next().await;
    assert_eq!(posted.state(), Some("established"));
    assert_eq!(
        posted.notification()["resourceData"]["direction"],
        "outgoing"
    );
    assert!(posted.resource().ends_with(id), "{}", posted.resource());
    let (status, body) = bed
        .control(
            reqwest::Method::POST,
            "/sim/calls/existing",
            Some(json!({"state": "ringing", "callbackUri": cb.uri("bot")})),
        )
        .await;
    assert_graph_error(status, &body, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("`ringing`")),
        "{body}"
    );

    // A replay: the first body now, the second only once the clock has
    // moved a second and a half; the clock says what is due next.
    let recorded = |state: &str| {
        json!({"value": [{
            "changeType": "updated",
            "resourceUrl": "/communications/calls/rec-1",
            "resourceData": {"@odata.type": "#microsoft.graph.call", "state": state},
        }]})
    };
    let (status, replay) = bed
        .control(
            reqwest::Method::POST,
            "/sim/replay",
            Some(json!({
                "callbackUri": cb.uri("replay"),
                "recording": [
                    {"at": "2026-11-21T22:15:00+01:00", "body": recorded("establishing")},
                    {"at": "2026-11-21T22:15:01.500+01:00", "body": recorded("established")},
                ],
            })),
        )
        .await;
    assert_eq!(status, 200, "{replay}");
    assert_eq!(replay["scheduled"], 2);
    assert_eq!(replay["calls"], json!(["rec-1"]));
    let first = cb.next().await;
    assert_eq!(first.state(), Some("establishing"));
    assert_eq!(first.path, "/callback/replay");
    let (_, clock) = bed.control(reqwest::Method::GET, "/sim/clock", None).await;
    assert_eq!(clock["nextDue"], "2026-11-21T21:15:01.500Z", "{clock}");
    assert_eq!(
        bed.server.next_due().await,
        Some(start_at + chrono::Duration::milliseconds(1500))
    );
    assert!(
        cb.drain().await.is_empty(),
        "nothing before the clock moves"
    );
    let (status, moved) = bed
        .control(
            reqwest::Method::POST,
            "/sim/clock/advance",
            Some(json!({"to": "2026-11-21T22:15:01.500+01:00"})),
        )
        .await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(cb.next().await.state(), Some("established"));
    // Requests about a replayed call are accepted, and numbered across calls.
    bed.client
        .answer("rec-1", &AnswerRequest::new(cb.uri("replay"), media()))
        .await
        .expect("a replayed call accepts every request");
    let logged = bed.requests("rec-1").await;
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert!(
        logged[0]["seq"].as_u64().is_some_and(|n| n >= 1),
        "{logged:?}"
    );
    let (status, body) = bed
        .control(
            reqwest::Method::POST,
            "/sim/clock/advance",
            Some(json!({"by": "1s", "to": "2026-11-21T22:16:00+01:00"})),
        )
        .await;
    assert_graph_error(status, &body, 400);
    let (status, body) = bed
        .control(
            reqwest::Method::POST,
            "/sim/replay",
            Some(json!({"callbackUri": cb.uri("replay"), "recording": [{"at": "2026-11-21T22:15:00Z", "body": {"value": []}}]})),
        )
        .await;
    assert_graph_error(status, &body, 400);
    // Everything posted gets answered: then nothing is in flight.
    let mut waited = 0;
    while bed.server.in_flight() > 0 && waited < 1000 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited += 1;
    }
    assert_eq!(bed.server.in_flight(), 0);
}

/// One Graph request over HTTP with a valid token: status and body.
async fn graph_post(bed: &Bed, token: &str, path: &str, body: &Value) -> (u16, Value) {
    let response = bed
        .http
        .post(bed.url(path))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("sim-graph answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Asserts Graph's error body with `status` and `code` (and that the
/// message says `says`).
fn refused(answer: &(u16, Value), status: u16, code: &str, says: &str) {
    let (got, body) = answer;
    assert_graph_error(*got, body, status);
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains(says), "{message:?} does not say {says:?}");
}

/// Every refusal of issue 9 over HTTP, with Graph's status and error body:
/// what real Graph refuses, sim-graph refuses, so a dry run cannot pass
/// where production fails. Raw requests, so that no client-side check
/// stands in for the server's.
#[tokio::test]
async fn sim_graph_refuses_what_graph_refuses() {
    let bed = start(config(SimClock::Manual)).await;
    let mut cb = Callback::start().await;
    let token = bed.token().await;
    let calls = "/v1.0/communications/calls";
    let instance = json!({"identity": {"applicationInstance": {"id": INSTANCE, "displayName": "Calling Bot"}}});
    let application = json!({"identity": {"application": {"id": BOT_APP_ID}}});
    let phone = json!({"identity": {"phone": {"id": "+12345678901"}}});
    let user = |id: &str| json!({"identity": {"user": {"id": id, "tenantId": TENANT}}});
    let create = |source: &Value, targets: Vec<Value>, tenant: Option<&str>| {
        let mut body = json!({
            "callbackUri": cb.uri("out"),
            "source": source,
            "targets": targets,
            "requestedModalities": ["audio"],
            "mediaConfig": {"@odata.type": "#microsoft.graph.serviceHostedMediaConfig"},
        });
        if let Some(t) = tenant {
            body["tenantId"] = json!(t);
        }
        body
    };

    // A call to a phone number needs an application instance as its source.
    let a = graph_post(
        &bed,
        &token,
        calls,
        &create(&application, vec![phone.clone()], Some(TENANT)),
    )
    .await;
    refused(&a, 400, "7507", "Call source identity invalid.");
    // Every create call carries tenantId.
    let a = graph_post(
        &bed,
        &token,
        calls,
        &create(&instance, vec![phone.clone()], None),
    )
    .await;
    refused(&a, 403, "7505", "Request authorization tenant mismatch.");
    // A group call takes at most five targets.
    let six: Vec<Value> = (1..=6).map(|n| user(&format!("user-{n}"))).collect();
    let a = graph_post(
        &bed,
        &token,
        calls,
        &create(&application, six, Some(TENANT)),
    )
    .await;
    refused(&a, 400, "BadRequest", "at most 5 targets");
    // ... while the same bodies within the rules are created.
    let ok = graph_post(
        &bed,
        &token,
        calls,
        &create(&instance, vec![phone.clone()], Some(TENANT)),
    )
    .await;
    assert_eq!(ok.0, 201, "{}", ok.1);
    let five: Vec<Value> = (1..=5).map(|n| user(&format!("user-{n}"))).collect();
    let ok = graph_post(
        &bed,
        &token,
        calls,
        &create(&application, five, Some(TENANT)),
    )
    .await;
    assert_eq!(ok.0, 201, "{}", ok.1);

    // A redirect: at most 25 targets, a timeout of 15 to 90 s.
    let id = bed.incoming(&cb.uri("bot")).await;
    let redirect = format!("{calls}/{id}/redirect");
    let many: Vec<Value> = (0..26).map(|n| user(&format!("u{n}"))).collect();
    let a = graph_post(
        &bed,
        &token,
        &redirect,
        &json!({"targets": many, "timeout": 30}),
    )
    .await;
    refused(&a, 400, "BadRequest", "25");
    for timeout in [10, 91] {
        let a = graph_post(
            &bed,
            &token,
            &redirect,
            &json!({"targets": [user("u1")], "timeout": timeout}),
        )
        .await;
        refused(&a, 400, "BadRequest", &timeout.to_string());
    }
    // Neither refusal decided the call: it can still be answered.
    let answer = json!({"callbackUri": cb.uri("bot"), "acceptedModalities": ["audio"], "mediaConfig": {"@odata.type": "#microsoft.graph.serviceHostedMediaConfig"}});
    let a = graph_post(&bed, &token, &format!("{calls}/{id}/answer"), &answer).await;
    assert_eq!(a.0, 202, "{}", a.1);
    bed.advance(2).await;
    cb.until(|p| p.state() == Some("established")).await;

    // At most 20 prompts.
    let prompt = json!({"@odata.type": "#microsoft.graph.mediaPrompt", "mediaInfo": {"uri": "https://cdn.contoso.com/a.wav"}});
    let prompts: Vec<Value> = (0..21).map(|_| prompt.clone()).collect();
    let a = graph_post(
        &bed,
        &token,
        &format!("{calls}/{id}/playPrompt"),
        &json!({"prompts": prompts}),
    )
    .await;
    refused(&a, 400, "BadRequest", "20");
    // A replacesCallId that names no live consultation call.
    let transfer = json!({"transferTarget": {"endpointType": "default", "identity": {"user": {"id": "u2", "tenantId": TENANT}}, "replacesCallId": "call-999"}});
    let a = graph_post(&bed, &token, &format!("{calls}/{id}/transfer"), &transfer).await;
    refused(&a, 400, "BadRequest", "call-999");

    // Any request on a terminated call: Graph's 404 8522.
    let (status, _) = bed
        .control(
            reqwest::Method::POST,
            &format!("/sim/calls/{id}/hangup"),
            None,
        )
        .await;
    assert_eq!(status, 202);
    let a = graph_post(&bed, &token, &format!("{calls}/{id}/keepAlive"), &json!({})).await;
    refused(&a, 404, "8522", "Call not found.");
    let a = graph_post(
        &bed,
        &token,
        &format!("{calls}/{id}/playPrompt"),
        &json!({"prompts": [prompt]}),
    )
    .await;
    refused(&a, 404, "8522", "Call not found.");

    // An answer after 15 s: the call is gone.
    let late = bed.incoming(&cb.uri("late")).await;
    bed.advance(16).await;
    let a = graph_post(&bed, &token, &format!("{calls}/{late}/answer"), &answer).await;
    refused(&a, 404, "8522", "Call not found.");

    // A transfer to a phone number of a call that reached the bot's
    // application (not an instance).
    let (status, placed) = bed
        .control(
            reqwest::Method::POST,
            "/sim/calls",
            Some(json!({"from": {"user": "caller"}, "callbackUri": cb.uri("app")})),
        )
        .await;
    assert_eq!(status, 201, "{placed}");
    let app_call = placed["id"].as_str().expect("an id").to_owned();
    let a = graph_post(&bed, &token, &format!("{calls}/{app_call}/answer"), &answer).await;
    assert_eq!(a.0, 202, "{}", a.1);
    bed.advance(2).await;
    let to_phone = json!({"transferTarget": {"endpointType": "default", "identity": {"phone": {"id": "+33123456789"}}}});
    let a = graph_post(
        &bed,
        &token,
        &format!("{calls}/{app_call}/transfer"),
        &to_phone,
    )
    .await;
    refused(&a, 400, "7507", "application instance");
    bed.server.shutdown().await.expect("clean shutdown");
}

/// The in-process simulated Graph (what `callflow test` runs against)
/// refuses the same requests with the same codes.
#[tokio::test]
async fn the_in_process_graph_refuses_the_same() {
    use callflow::engine::{CallControl, Party};
    use callflow::graph::wire::{MediaInfo, MediaPrompt, PlayPromptRequest, RedirectRequest};
    use callflow::sim::SimGraph;
    use callflow::sim::behaviour::GraphBehaviour;
    let g = SimGraph::new(
        GraphBehaviour::default(),
        "https://bot/cb",
        chrono::Utc::now(),
    );
    let phone = || vec![InvitationParticipantInfo::phone("+12345678901")];
    let app = ParticipantInfo::new(IdentitySet::application(Identity::new(BOT_APP_ID)));
    let e = g
        .create_call(
            &Call::outgoing("https://bot/cb", phone(), media())
                .with_source(app.clone())
                .with_tenant_id(TENANT),
        )
        .await
        .expect_err("no instance");
    assert_eq!((e.status, e.code.as_str()), (400, "7507"));
    let e = g
        .create_call(&Call::outgoing("https://bot/cb", phone(), media()).with_source(instance()))
        .await
        .expect_err("no tenant");
    assert_eq!((e.status, e.code.as_str()), (403, "7505"));
    let six = (0..6)
        .map(|n| InvitationParticipantInfo::user(format!("u{n}"), Some(TENANT), None))
        .collect();
    let e = g
        .create_call(
            &Call::outgoing("https://bot/cb", six, media())
                .with_source(app)
                .with_tenant_id(TENANT),
        )
        .await
        .expect_err("six targets");
    assert_eq!((e.status, e.code.as_str()), (400, "BadRequest"));
    let (id, _) = g.incoming_call(&Party::phone("+15550100"), &Party::phone("+14255550100"));
    let many = (0..26)
        .map(|n| InvitationParticipantInfo::user(format!("u{n}"), None, None))
        .collect();
    let e = g
        .redirect(&id, &RedirectRequest::new(many).with_timeout(30))
        .await
        .expect_err("26 targets");
    assert_eq!((e.status, e.code.as_str()), (400, "BadRequest"));
    g.answer(
        &id,
        &callflow::graph::wire::AnswerRequest::new("https://bot/cb", media()),
    )
    .await
    .expect("the refusal decided nothing");
    g.happen(callflow::sim::graph::Happening::State {
        call: id.clone(),
        state: CallState::Established,
        result: None,
        termination_reason: None,
        replaces_context: None,
    });
    let prompts = (0..21)
        .map(|_| MediaPrompt::new(MediaInfo::new("https://cdn.contoso.com/a.wav")))
        .collect();
    let e = g
        .play_prompt(&id, &PlayPromptRequest::new(prompts))
        .await
        .expect_err("21 prompts");
    assert_eq!((e.status, e.code.as_str()), (400, "BadRequest"));
    let bogus = TransferRequest::consultative(
        InvitationParticipantInfo::user("u2", Some(TENANT), None),
        "call-999",
    );
    let e = g.transfer(&id, &bogus).await.expect_err("no consultation");
    assert_eq!((e.status, e.code.as_str()), (400, "BadRequest"));
    g.hangup(&id).await.expect("hung up");
    g.happen(callflow::sim::graph::Happening::State {
        call: id.clone(),
        state: CallState::Terminated,
        result: None,
        termination_reason: None,
        replaces_context: None,
    });
    let e = g.keep_alive(&id).await.expect_err("terminated");
    assert_eq!((e.status, e.code.as_str()), (404, "8522"));
}

/// The banner of `callflow sim-graph` says how to point `callflow serve` at
/// it; following that advice with the real binaries works: serve starts,
/// takes the call the banner's curl line places, and answers it through
/// sim-graph (the only change: a free port instead of 8080).
#[test]
fn the_banners_advice_works_when_followed() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let bin = env!("CARGO_BIN_EXE_callflow");
    /// Kills the child when dropped, also when an assertion fails.
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut sim = Killed(
        Command::new(bin)
            .args(["sim-graph", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("sim-graph starts"),
    );
    let mut lines = BufReader::new(sim.0.stdout.take().expect("stdout")).lines();
    let mut banner = Vec::new();
    for line in lines.by_ref() {
        let line = line.expect("a line");
        let done = line.trim_start().starts_with("curl ");
        banner.push(line);
        if done {
            break;
        }
    }
    let serve_line = banner
        .iter()
        .find(|l| l.trim_start().starts_with("CALLFLOW_"))
        .unwrap_or_else(|| panic!("no serve line in the banner:\n{}", banner.join("\n")))
        .clone();
    let curl_line = banner.last().expect("the curl line").clone();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let ours = |text: &str| text.replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"));
    let (env_part, args_part) = serve_line
        .trim()
        .split_once("callflow serve")
        .expect("env, then the command");
    let mut serve = Command::new(bin);
    serve.current_dir(env!("CARGO_MANIFEST_DIR")).arg("serve");
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("CALLFLOW_")) {
        serve.env_remove(key);
    }
    for pair in env_part.split_whitespace() {
        let (name, value) = pair.split_once('=').expect("NAME=value");
        serve.env(name, value);
    }
    serve.args(ours(args_part).split_whitespace());
    // The default store (./callflow-data) in a folder of the test's own.
    let data = tempfile::tempdir().expect("temp dir");
    serve.env("CALLFLOW_DATA_DIR", data.path());
    let mut serve = serve
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve starts");
    let outcome = std::panic::catch_unwind(|| {
        callflow::graph::client::install_tls_provider();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        rt.block_on(async {
            let http = reqwest::Client::new();
            let ready = crate::support::poll::eventually(Duration::from_secs(60), || {
                let http = http.clone();
                async move {
                    http.get(format!("http://127.0.0.1:{port}/readyz"))
                        .send()
                        .await
                        .ok()
                        .filter(|r| r.status() == 200)
                }
            })
            .await;
            assert!(
                ready.is_some(),
                "serve, started as the banner says, never got ready"
            );
            // The banner's curl line: its URL and its body.
            let url = curl_line
                .split_whitespace()
                .find(|w| w.starts_with("http://") && w.ends_with("/sim/calls"))
                .expect("the curl URL")
                .to_owned();
            let body = ours(
                curl_line
                    .split_once("-d '")
                    .and_then(|(_, b)| b.strip_suffix('\''))
                    .expect("the curl body"),
            );
            let placed: Value = http
                .post(&url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .expect("placed")
                .json()
                .await
                .expect("json");
            let id = placed["id"].as_str().expect("a call id").to_owned();
            let requests = url.replace("/sim/calls", &format!("/sim/calls/{id}/requests"));
            let answered = crate::support::poll::eventually(Duration::from_secs(60), || {
                let (http, requests) = (http.clone(), requests.clone());
                async move {
                    let list: Value = http.get(&requests).send().await.ok()?.json().await.ok()?;
                    list["value"]
                        .as_array()?
                        .iter()
                        .find(|r| r["path"].as_str().is_some_and(|p| p.ends_with("/answer")))
                        .cloned()
                }
            })
            .await
            .expect("serve answered the call through sim-graph");
            assert_eq!(answered["status"], 202, "{answered}");
        });
    });
    let _ = serve.kill();
    let out = serve.wait_with_output().expect("serve's output");
    drop(sim);
    if let Err(panic) = outcome {
        eprintln!("serve's log:\n{}", String::from_utf8_lossy(&out.stderr));
        std::panic::resume_unwind(panic);
    }
}
