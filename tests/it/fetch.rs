//! `fetch`: the runtime's `Fetcher` against a designer's service on
//! loopback (allowed hosts only, secrets in headers, bounded answers,
//! timeouts, no connection, a `POST`'s JSON), and a secret PIN posted to
//! the service: sent, but masked in every text people or the store read.

use std::time::Duration;

use callflow::engine::Command;
use callflow::engine::fetch::{FetchRequest, HeaderValue};
use callflow::flow::actions::fetch::Method;
use callflow::runtime::{FetchConfig, Fetcher};
use callflow::sim::SimulateOptions;
use callflow::sim::behaviour::{HttpAnswer, HttpAnswers, PerAttempt, SimDuration};
use serde_json::json;

use crate::support::designer::Designer;

const TOKEN: &str = "crm-token-9f3e";

fn answers(list: &[(&str, HttpAnswer)]) -> HttpAnswers {
    list.iter()
        .map(|(k, v)| ((*k).to_owned(), PerAttempt::One(v.clone())))
        .collect()
}

fn fetcher(allow: &str, max_bytes: usize) -> Fetcher {
    Fetcher::new(FetchConfig {
        allow: vec![allow.to_owned()],
        secrets: [("crm_token".to_owned(), TOKEN.to_owned())].into(),
        max_bytes,
    })
    .expect("a fetcher")
}

fn get(url: String) -> FetchRequest {
    FetchRequest {
        method: Method::Get,
        url,
        headers: vec![(
            "Authorization".into(),
            vec![
                HeaderValue::Text("Bearer ".into()),
                HeaderValue::Secret("crm_token".into()),
            ],
        )],
        body: None,
        timeout_ms: 5_000,
    }
}

fn authority(d: &Designer) -> String {
    d.base.trim_start_matches("http://").to_owned()
}

#[tokio::test]
async fn an_allowed_host_gets_the_secret_and_its_json_comes_back() {
    let d = Designer::start(
        answers(&[(
            "https://crm.contoso.com/api/accounts/*",
            HttpAnswer {
                body: json!({"vip": true, "name": "Ada"}),
                ..HttpAnswer::default()
            },
        )]),
        "https://crm.contoso.com",
    )
    .await;
    let f = fetcher(&authority(&d), 64 * 1024);
    let answer = f
        .fetch(&get(format!(
            "{}/api/accounts/412345?caller=%2B1206",
            d.base
        )))
        .await
        .expect("an answer");
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, json!({"vip": true, "name": "Ada"}));
    let asked = d.requests();
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].method, "GET");
    assert!(
        asked[0]
            .url
            .ends_with("/api/accounts/412345?caller=%2B1206")
    );
    let auth = asked[0]
        .headers
        .iter()
        .find(|(k, _)| k == "authorization")
        .map(|(_, v)| v.as_str());
    assert_eq!(auth, Some(format!("Bearer {TOKEN}").as_str()));
    // A 4xx is an answer too, with its status, for the engine to route.
    let missing = f
        .fetch(&get(format!("{}/nothing/here", d.base)))
        .await
        .expect("an answer");
    assert_eq!(missing.status, 404);
}

#[tokio::test]
async fn a_host_not_allowed_or_a_missing_secret_is_refused_before_anything_is_sent() {
    let d = Designer::start(HttpAnswers::new(), "https://crm.contoso.com").await;
    let f = fetcher("crm.contoso.com", 64 * 1024);
    let e = f
        .fetch(&get(format!("{}/api", d.base)))
        .await
        .expect_err("refused");
    assert_eq!(e.code, "HostNotAllowed", "{e}");
    let allowed = fetcher(&authority(&d), 64 * 1024);
    let mut req = get(format!("{}/api", d.base));
    req.headers[0].1[1] = HeaderValue::Secret("erp_token".into());
    let e = allowed.fetch(&req).await.expect_err("refused");
    assert_eq!(e.code, "UnknownSecret", "{e}");
    assert!(!e.to_string().contains(TOKEN));
    let e = allowed
        .fetch(&get("ftp://files.contoso.com/x".into()))
        .await
        .expect_err("refused");
    assert_eq!(e.code, "BadUrl", "{e}");
    assert!(d.requests().is_empty(), "{:?}", d.requests());
}

#[tokio::test]
async fn a_large_answer_a_slow_one_and_no_connection_are_failures_of_their_own() {
    let d = Designer::start(
        answers(&[
            (
                "https://crm.contoso.com/big",
                HttpAnswer {
                    body: json!({"blob": "x".repeat(4096)}),
                    ..HttpAnswer::default()
                },
            ),
            (
                "https://crm.contoso.com/slow",
                HttpAnswer {
                    delay: Some(SimDuration(Duration::from_secs(5))),
                    ..HttpAnswer::default()
                },
            ),
            (
                "https://crm.contoso.com/down",
                HttpAnswer {
                    unreachable: true,
                    ..HttpAnswer::default()
                },
            ),
        ]),
        "https://crm.contoso.com",
    )
    .await;
    let f = fetcher(&authority(&d), 1024);
    let e = f
        .fetch(&get(format!("{}/big", d.base)))
        .await
        .expect_err("too large");
    assert_eq!(e.code, "AnswerTooLarge", "{e}");
    let mut slow = get(format!("{}/slow", d.base));
    slow.timeout_ms = 200;
    let e = f.fetch(&slow).await.expect_err("too slow");
    assert_eq!(e.code, "Timeout", "{e}");
    let e = f
        .fetch(&get(format!("{}/down", d.base)))
        .await
        .expect_err("no answer");
    assert_eq!((e.status, e.code.as_str()), (0, "Transport"), "{e}");
    assert!(!e.to_string().contains(TOKEN));
    // Nobody listening: the message says so in a few words, as the
    // timeline shows it (`the fetch failed: Transport: …`).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let port = closed.local_addr().expect("an address").port();
    drop(closed);
    let f = fetcher(&format!("127.0.0.1:{port}"), 1024);
    let e = f
        .fetch(&get(format!(
            "http://127.0.0.1:{port}/api/accounts/1?key=k"
        )))
        .await
        .expect_err("no connection");
    assert_eq!(
        e.message,
        format!("GET http://127.0.0.1:{port}/api/accounts/1: no connection (connection refused)"),
        "{e}"
    );
}

#[tokio::test]
async fn a_post_sends_its_json_body() {
    let d = Designer::start(
        answers(&[(
            "POST https://crm.contoso.com/api/calls",
            HttpAnswer {
                status: 201,
                body: json!({"logged": true}),
                ..HttpAnswer::default()
            },
        )]),
        "https://crm.contoso.com",
    )
    .await;
    let f = fetcher(&authority(&d), 64 * 1024);
    let mut req = get(format!("{}/api/calls", d.base));
    req.method = Method::Post;
    req.body = Some(json!({"caller": "+12065550123", "tries": 2}));
    let answer = f.fetch(&req).await.expect("an answer");
    assert_eq!((answer.status, answer.body), (201, json!({"logged": true})));
    let asked = d.requests();
    assert_eq!(asked[0].method, "POST");
    let sent: serde_json::Value = serde_json::from_str(&asked[0].body).expect("JSON sent");
    assert_eq!(sent, json!({"caller": "+12065550123", "tries": 2}));
    assert!(
        asked[0]
            .headers
            .iter()
            .any(|(k, v)| k == "content-type" && v.starts_with("application/json"))
    );
}

const PIN_FLOW: &str = r#"
flow: pin-check
trigger:
  incoming_call:
    to: "+14255550107"
start: greet
steps:
  greet:
    answer: {}
    next: pin
  pin:
    collect:
      prompt: https://cdn.contoso.com/pin.wav
      into: pin
      min_digits: 4
      max_digits: 4
      secret: true
    next: check
  check:
    fetch:
      url: "https://crm.contoso.com/api/pins/${vars.pin}"
      method: POST
      headers: { Authorization: "Bearer ${secrets.crm_token}" }
      body: { pin: "${vars.pin}", caller: "${call.from.phone}", tries: "${1 + 1}" }
      into: verdict
      shape: { ok: bool }
    next: verdict
  verdict:
    log: "the PIN is ${vars.verdict.ok}"
    next: bye
  bye:
    hangup: {}
"#;

#[test]
fn a_secret_pin_posted_to_the_service_is_sent_but_masked_everywhere() {
    let loaded = callflow::flow::load_str("pin-check.yaml", PIN_FLOW);
    let flow = loaded
        .flow
        .unwrap_or_else(|| panic!("{:?}", loaded.diagnostics));
    let mut options = SimulateOptions::for_flow(&flow, chrono::Utc::now());
    options.graph.dtmf = vec!["9876".into()];
    options.graph.http = answers(&[(
        "POST https://crm.contoso.com/api/pins/*",
        HttpAnswer {
            body: json!({"ok": true}),
            ..HttpAnswer::default()
        },
    )]);
    let run = callflow::sim::run(&flow, &options);
    let (request, sent) = run
        .commands
        .iter()
        .find_map(|c| match c {
            Command::Fetch { request, sent, .. } => Some((request.clone(), sent.clone())),
            _ => None,
        })
        .expect("a fetch");
    let sent = sent.expect("what is sent differs from what is shown");
    assert_eq!(sent.url, "https://crm.contoso.com/api/pins/9876");
    assert_eq!(
        sent.body,
        Some(json!({"pin": "9876", "caller": "+33612345678", "tries": 2}))
    );
    assert!(
        request
            .url
            .ends_with("/api/pins/%E2%80%A2%E2%80%A2%E2%80%A2%E2%80%A2")
    );
    assert_eq!(
        request.body.as_ref().map(|b| b["pin"].clone()),
        Some(json!("••••"))
    );
    // The secret of the configuration is a name, in both.
    assert_eq!(
        sent.secret_names().collect::<Vec<_>>(),
        ["crm_token"],
        "{sent:?}"
    );
    assert_eq!(run.session.vars["verdict"], json!({"ok": true}));
    let timeline = run.session.timeline.render(chrono_tz::UTC);
    assert!(timeline.contains("the PIN is true"), "{timeline}");
    let stored = serde_json::to_string(&run.session).expect("a session serialises");
    let command = serde_json::to_string(&run.commands).expect("commands serialise");
    let debug = format!("{:?}", run.commands);
    for (what, text) in [
        ("timeline", &timeline),
        ("stored session", &stored),
        ("stored commands", &command),
        ("Debug of the commands", &debug),
    ] {
        assert!(!text.contains("9876"), "the PIN is in the {what}: {text}");
    }
}

/// A line that asks the designer's service who calls, with a secret, and
/// routes VIPs; `BASE` is replaced by the service's address.
const SERVE_FLOW: &str = r#"flow: fetch-line
trigger:
  incoming_call:
    to: "+14255550188"
start: greet
steps:
  greet:
    answer: {}
    next: lookup
  lookup:
    fetch:
      url: "BASE/api/callers/${call.from.phone}"
      headers: { Authorization: "Bearer ${secrets.crm_token}" }
      into: caller
      shape: { vip: bool }
    next: route
    on_failure: bye
    on_timeout: bye
  route:
    switch:
      - when: "vars.caller.vip"
        goto: vip
      - goto: bye
  vip:
    transfer: { to: { phone: "+14255550146" } }
    on_failure: bye
  bye:
    hangup: {}
"#;

fn serve_command(
    graph: &str,
    port: u16,
    flows: &std::path::Path,
    config: &std::path::Path,
) -> std::process::Command {
    let public = format!("http://127.0.0.1:{port}");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_callflow"));
    cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--public-url", &public])
        .args([
            "--app-id",
            callflow::sim::graph::BOT_APP_ID,
            "--tenant",
            "sim-tenant",
        ])
        .args(["--graph-url", graph, "--authority-url", graph])
        .arg("--openid-config-url")
        .arg(format!("{graph}/.well-known/OpenIdConfiguration"))
        .arg("--flows")
        .arg(flows)
        .args(["--store", "memory"])
        .arg("--config")
        .arg(config)
        .env("CALLFLOW_CLIENT_SECRET", "sim-secret")
        .env("CALLFLOW_ADMIN_TOKEN", "fetch-admin")
        .env("RUST_LOG", "debug")
        .env_remove("CALLFLOW_STORE")
        .env_remove("CALLFLOW_FETCH_ALLOW")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    cmd
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// `callflow serve` (the binary) with the service allowed and the secret in
/// its config file, against sim-graph: the VIP is transferred, the service
/// got the secret, and neither the admin API nor the server's log holds it.
/// The same flow with its host not allowed does not load: `serve` exits 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_fetches_from_an_allowed_host_with_the_configured_secret() {
    callflow::graph::client::install_tls_provider();
    use crate::support::poll::eventually;
    let d = Designer::start(
        answers(&[(
            "https://crm.contoso.com/api/callers/*",
            HttpAnswer {
                body: json!({"vip": true}),
                ..HttpAnswer::default()
            },
        )]),
        "https://crm.contoso.com",
    )
    .await;
    let sim = callflow::sim::http::SimGraphServer::start(
        callflow::sim::http::SimGraphConfig::default(),
        tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind"),
    )
    .await
    .expect("sim-graph");
    let graph = sim.base_url().to_owned();
    let dir = tempfile::tempdir().expect("tempdir");
    let flows = dir.path().join("flows");
    std::fs::create_dir_all(&flows).expect("flows");
    std::fs::write(
        flows.join("fetch-line.yaml"),
        SERVE_FLOW.replace("BASE", &d.base),
    )
    .expect("flow");
    let config = dir.path().join("serve.toml");
    std::fs::write(
        &config,
        format!(
            "fetch-allow = [\"{}\"]\n\n[secrets]\ncrm_token = \"{TOKEN}\"\n",
            authority(&d)
        ),
    )
    .expect("config");
    let port = free_port();
    let child = serve_command(&graph, port, &flows, &config)
        .spawn()
        .expect("spawn callflow serve");
    let public = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let ready = eventually(Duration::from_secs(60), || {
        let (http, url) = (http.clone(), format!("{public}/readyz"));
        async move { (http.get(url).send().await.ok()?.status() == 200).then_some(()) }
    })
    .await;
    assert!(ready.is_some(), "serve never got ready");
    let placed: serde_json::Value = http
        .post(format!("{graph}/sim/calls"))
        .json(&json!({
            "from": { "phone": "+12065550123" },
            "to": { "phone": "+14255550188" },
            "callbackUri": format!("{public}/api/calls"),
        }))
        .send()
        .await
        .expect("place")
        .json()
        .await
        .expect("json");
    let call = placed["id"].as_str().expect("call id").to_owned();
    let session = eventually(Duration::from_secs(60), || {
        let (http, url) = (http.clone(), format!("{public}/api/sessions"));
        let call = call.clone();
        async move {
            let page: serde_json::Value = http
                .get(url)
                .bearer_auth("fetch-admin")
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            page["sessions"].as_array()?.iter().find_map(|s| {
                let ended = s["state"] == "ended";
                let ours = s["calls"].as_array()?.iter().any(|c| c == call.as_str());
                (ours && ended).then(|| s["id"].as_str().map(str::to_owned))?
            })
        }
    })
    .await
    .expect("the run ends");
    let shown = http
        .get(format!("{public}/api/sessions/{session}"))
        .bearer_auth("fetch-admin")
        .send()
        .await
        .expect("the session")
        .text()
        .await
        .expect("text");
    assert!(shown.contains("\"outcome\":\"transferred\""), "{shown}");
    assert!(shown.contains("fetch {method: GET"), "{shown}");
    let asked = d.requests();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert!(
        asked[0].url.ends_with("/api/callers/%2B12065550123"),
        "{asked:?}"
    );
    assert!(
        asked[0]
            .headers
            .iter()
            .any(|(k, v)| k == "authorization" && *v == format!("Bearer {TOKEN}"))
    );
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("output");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("flows loaded"), "{log}");
    assert!(
        !shown.contains(TOKEN),
        "the secret is in the admin API: {shown}"
    );
    assert!(
        !log.contains(TOKEN),
        "the secret is in the server's log: {log}"
    );

    // Not allowed: the flow does not load, and serve says why.
    std::fs::write(
        &config,
        format!("fetch-allow = [\"crm.contoso.com\"]\n\n[secrets]\ncrm_token = \"{TOKEN}\"\n"),
    )
    .expect("config");
    let out = serve_command(&graph, free_port(), &flows, &config)
        .output()
        .expect("serve runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("callflow::fetch::host"), "{err}");
    let _ = sim.shutdown().await;
}
