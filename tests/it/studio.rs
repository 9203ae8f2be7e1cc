//! The studio's JSON API over loopback HTTP (`callflow studio`), `/ui` in
//! `callflow serve --simulate --keep-running` behind the admin token, and
//! `callflow hours`.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::demo::Demo;
use crate::support::poll::eventually;
use crate::support::studio::{TestStudio, bundled};

/// A client (the TLS provider installed, as the binary does).
fn client() -> reqwest::Client {
    callflow::graph::client::install_tls_provider();
    reqwest::Client::new()
}

async fn get(http: &reqwest::Client, url: String) -> (u16, Value) {
    let r = http.get(url).send().await.expect("the studio answers");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn post(http: &reqwest::Client, url: String, body: Value) -> (u16, Value) {
    let r = http
        .post(url)
        .json(&body)
        .send()
        .await
        .expect("the studio answers");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_the_flows_with_their_status_and_diagram() {
    let s = TestStudio::start().await;
    let http = client();
    let page = http.get(s.url()).send().await.expect("page");
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_owned();
    assert!(csp.starts_with("default-src 'self'"), "{csp}");
    let html = page.text().await.expect("html");
    assert!(html.contains("<script src=\"studio.js\" defer>"), "{html}");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "the page loads nothing from elsewhere"
    );
    for asset in ["studio.js", "studio.css"] {
        let r = http
            .get(format!("{}{asset}", s.url()))
            .send()
            .await
            .expect("asset");
        assert_eq!(r.status(), 200, "{asset}");
    }

    let (status, flows) = get(&http, format!("{}api/flows", s.url())).await;
    assert_eq!(status, 200);
    assert_eq!(
        flows["summary"],
        "checked 12 files: 12 flows, 0 errors, 0 warnings"
    );
    let files = flows["files"].as_array().expect("files");
    assert_eq!(files.len(), 12);
    let reception = files
        .iter()
        .find(|f| f["flow"] == "reception")
        .expect("reception");
    assert_eq!(reception["status"], "valid");
    assert_eq!(reception["trigger"], "incoming_call");

    let (status, flow) = get(&http, format!("{}api/flow?file=reception.yaml", s.url())).await;
    assert_eq!(status, 200);
    let graph = &flow["graph"];
    let menu = graph["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["step"] == "menu")
        .expect("menu");
    assert_eq!(menu["shape"], "decision");
    assert_eq!(flow["calendars"], json!(["office"]));
    // The diagram is the one `callflow graph` draws.
    let f = callflow::flow::load_file(&bundled().join("reception.yaml"))
        .flow
        .expect("loads");
    assert_eq!(
        graph,
        &serde_json::to_value(callflow::flow::diagram::graph(&f)).expect("json")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_clicked_through_the_menu_saved_as_a_scenario_that_callflow_test_passes() {
    let s = TestStudio::start().await;
    let http = client();
    let (status, cal) = get(
        &http,
        format!(
            "{}api/calendars?file=reception.yaml&at=2026-11-20T10:00",
            s.url()
        ),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        cal["calendars"],
        json!([{"name": "office", "state": "open"}])
    );
    let (status, sim) = post(
        &http,
        format!("{}api/sims", s.url()),
        json!({"file": "reception.yaml", "at": "2026-11-20T10:00", "from": "+33612345678"}),
    )
    .await;
    assert_eq!(status, 201, "{sim}");
    assert_eq!(sim["step"], "menu");
    assert_eq!(sim["hears_keys"], true);
    assert_eq!(sim["next"]["what"], "the prompt ends");
    let id = sim["id"].as_str().expect("id").to_owned();
    let (status, sim) = post(
        &http,
        format!("{}api/sims/{id}/press", s.url()),
        json!({"key": "1"}),
    )
    .await;
    assert_eq!(status, 200, "{sim}");
    assert_eq!(sim["ended"], true);
    assert_eq!(sim["outcome"], "transferred");
    assert_eq!(
        sim["walk"]["nodes"],
        json!(["start", "s0", "s1", "s2", "s3"])
    );
    let transfer = sim["requests"]
        .as_array()
        .expect("requests")
        .iter()
        .find(|r| r["kind"] == "transfer")
        .expect("a transfer");
    assert_eq!(transfer["method"], "POST");
    assert_eq!(transfer["path"], "/communications/calls/call-1/transfer");
    assert_eq!(
        transfer["body"]["transferTarget"]["endpointType"],
        "default"
    );
    assert!(
        sim["timeline"]
            .as_array()
            .expect("timeline")
            .iter()
            .any(|e| e["kind"] == "step" && e["text"] == "sales (key 1)")
    );

    let (status, saved) = post(
        &http,
        format!("{}api/sims/{id}/scenario", s.url()),
        json!({"name": "key 1 at 10 reaches sales"}),
    )
    .await;
    assert_eq!(status, 201, "{saved}");
    assert_eq!(saved["passed"], true, "{saved}");
    assert_eq!(
        saved["file"],
        "scenarios/reception/key-1-at-10-reaches-sales.yaml"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_callflow"))
        .arg("test")
        .arg(&s.dir)
        .output()
        .expect("callflow test runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("scenario key 1 at 10 reaches sales ... ok"),
        "{text}"
    );

    let (status, runs) = get(
        &http,
        format!("{}api/scenarios?file=reception.yaml", s.url()),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(runs["failed"], 0, "{runs}");
    assert!(
        runs["runs"]
            .as_array()
            .expect("runs")
            .iter()
            .any(|r| r["name"] == "key 1 at 10 reaches sales")
    );
    assert!(
        runs["coverage"]["uncovered_nodes"]
            .as_array()
            .expect("list")
            .is_empty(),
        "{runs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_passes_the_caller_hangs_up_and_bad_requests_are_refused() {
    let s = TestStudio::start().await;
    let http = client();
    let (_, sim) = post(
        &http,
        format!("{}api/sims", s.url()),
        json!({"file": "reception.yaml", "at": "2026-11-20T10:00", "graph": {"transfer": "fail"}}),
    )
    .await;
    let id = sim["id"].as_str().expect("id").to_owned();
    let (_, sim) = post(
        &http,
        format!("{}api/sims/{id}/advance", s.url()),
        json!({}),
    )
    .await;
    assert_eq!(sim["next"]["what"], "the menu times out");
    let (_, sim) = post(
        &http,
        format!("{}api/sims/{id}/advance", s.url()),
        json!({"by": "2s"}),
    )
    .await;
    assert_eq!(sim["ended"], false);
    let (status, sim) = post(&http, format!("{}api/sims/{id}/hangup", s.url()), json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(sim["outcome"], "caller_hung_up");
    let (status, e) = post(&http, format!("{}api/sims/{id}/hangup", s.url()), json!({})).await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (409, Some("cannotAct"))
    );
    let (status, e) = post(
        &http,
        format!("{}api/sims/{id}/press", s.url()),
        json!({"key": "12"}),
    )
    .await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (400, Some("badRequest"))
    );
    let (status, e) = post(
        &http,
        format!("{}api/sims", s.url()),
        json!({"file": "nope.yaml"}),
    )
    .await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (404, Some("unknownFile"))
    );
    let (status, e) = post(
        &http,
        format!("{}api/sims", s.url()),
        json!({"file": "reception.yaml", "graph": {"transfer": "maybe"}}),
    )
    .await;
    assert_eq!(status, 400, "{e}");
    let (status, e) = post(
        &http,
        format!("{}api/sims", s.url()),
        json!({"file": "reception.yaml", "at": "tomorrow"}),
    )
    .await;
    assert_eq!(status, 400, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .expect("message")
            .contains("2026-11-20T10:00")
    );
    let (status, _) = get(&http, format!("{}api/sims/sim-999", s.url())).await;
    assert_eq!(status, 404);
    let (status, e) = get(&http, format!("{}api/nothing", s.url())).await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (404, Some("notFound"))
    );
    let (status, _) = get(&http, format!("{}api/live", s.url())).await;
    assert_eq!(status, 404, "not attached to a server");
    let r = http
        .post(format!("{}api/sims", s.url()))
        .body("{not json")
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_edit_shows_its_diagnostics_and_keeps_the_last_good_diagram() {
    let s = TestStudio::start().await;
    let http = client();
    let path = s.dir.join("reception.yaml");
    let good = std::fs::read_to_string(&path).expect("read");
    std::fs::write(
        &path,
        good.replace("on_failure: sorry\n  sorry:", "on_failure: sory\n  sorry:"),
    )
    .expect("write");
    let url = format!("{}api/flow?file=reception.yaml", s.url());
    let broken = eventually(Duration::from_secs(10), || async {
        let (_, f) = get(&http, url.clone()).await;
        (f["status"] == "errors").then_some(f)
    })
    .await;
    let Some(broken) = broken else {
        let (_, f) = get(&http, format!("{}api/flows", s.url())).await;
        panic!("the edit is not seen within 10 s: {f}");
    };
    assert_eq!(broken["stale"], true);
    assert!(
        broken["graph"]["nodes"].is_array(),
        "the last good diagram is kept"
    );
    let d = &broken["diagnostics"][0];
    assert_eq!(d["code"], "callflow::step::unknown");
    let line = good
        .lines()
        .position(|l| l.contains("on_failure: sorry"))
        .expect("a line")
        + 1;
    assert_eq!(d["line"], line);
    let rendered = d["rendered"].as_str().expect("rendered");
    assert!(
        rendered.contains("help: did you mean `sorry`?"),
        "{rendered}"
    );
    // Exactly what `callflow validate` prints.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_callflow"))
        .arg("validate")
        .arg(&s.dir)
        .output()
        .expect("validate runs");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(rendered),
        "{rendered}"
    );
    std::fs::write(&path, &good).expect("write");
    let fixed = eventually(Duration::from_secs(10), || async {
        let (_, f) = get(&http, url.clone()).await;
        (f["status"] == "valid").then_some(f)
    })
    .await
    .expect("the fix is seen");
    assert_eq!(fixed["stale"], false);
}

#[test]
fn hours_prints_the_week_of_a_flow() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_callflow"))
        .args(["hours", "reception", "--week", "2026-12-23", "--flows"])
        .arg(bundled())
        .output()
        .expect("hours runs");
    assert!(out.status.success());
    insta::assert_snapshot!(String::from_utf8_lossy(&out.stdout));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_shows_the_studio_read_only_under_ui_behind_the_admin_token() {
    let temp = tempfile::tempdir().expect("temp");
    let dir = temp.path().join("flows");
    crate::support::studio::copy_dir(&bundled(), &dir);
    crate::support::studio::reception_always_open(&dir);
    let demo = Demo::start(&dir);
    callflow::graph::client::install_tls_provider();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let r = http
        .get(format!("{}/ui/", demo.base))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 401);
    assert!(
        r.text()
            .await
            .expect("html")
            .contains("action=\"/ui/login\"")
    );
    let (status, _) = get(&http, format!("{}/ui/api/flows", demo.base)).await;
    assert_eq!(status, 401);
    let r = http
        .post(format!("{}/ui/login", demo.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("token=wrong")
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 401);
    let r = http
        .post(format!("{}/ui/login", demo.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={}", demo.token))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 303);
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_owned();
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && cookie.contains("Path=/ui"),
        "{cookie}"
    );
    let cookie = cookie.split(';').next().expect("name=value").to_owned();
    let with_cookie = |url: String| http.get(url).header("cookie", cookie.clone());
    let r = with_cookie(format!("{}/ui/api/flows", demo.base))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 200);
    let bearer = format!("Bearer {}", demo.token);
    let (_, sim) = {
        let r = http
            .post(format!("{}/ui/api/sims", demo.base))
            .header("authorization", &bearer)
            .json(&json!({"file": "reception.yaml", "at": "2026-11-20T10:00"}))
            .send()
            .await
            .expect("answer");
        (r.status().as_u16(), r.json::<Value>().await.expect("json"))
    };
    let r = http
        .post(format!(
            "{}/ui/api/sims/{}/scenario",
            demo.base,
            sim["id"].as_str().expect("id")
        ))
        .header("authorization", &bearer)
        .json(&json!({"name": "x"}))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 403, "read-only");

    let call = demo.place_call("+14255550100").await;
    let live = eventually(Duration::from_secs(20), || async {
        let v: Value = with_cookie(format!("{}/ui/api/live", demo.base))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        v["sessions"]
            .as_array()?
            .iter()
            .find(|s| {
                s["calls"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|c| c == call.as_str()))
                    && s["step"] == "menu"
            })
            .cloned()
    })
    .await
    .expect("the new call waits in the menu");
    assert_eq!(live["state"], "running");
    let id = live["id"].as_str().expect("id");
    let v: Value = with_cookie(format!("{}/ui/api/live/{id}", demo.base))
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("json");
    assert_eq!(
        v["walk"]["nodes"].as_array().and_then(|n| n.last()),
        Some(&json!("s2")),
        "{v}"
    );
    assert!(v["sessions"].is_null());
    let ended = v["session"]["state"].as_str() == Some("ended");
    assert!(!ended);
}

/// A call of the CRM line clicked through in the studio: the `fetch` gets
/// the simulator's `404` (no `http:` answers in an interactive call), is
/// shown as the service's method and URL, and the call goes on through
/// `on_failure`; saved as a scenario, `callflow test` passes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interactive_call_through_a_fetch_goes_on_and_shows_the_request() {
    let s = TestStudio::start().await;
    let http = client();
    let (status, mut sim) = post(
        &http,
        format!("{}api/sims", s.url()),
        json!({"file": "crm-line.yaml", "at": "2026-11-20T10:00", "from": "+12065550123"}),
    )
    .await;
    assert_eq!(status, 201, "{sim}");
    let id = sim["id"].as_str().expect("id").to_owned();
    for key in ["4", "1", "2", "3", "4", "5"] {
        let (status, next) = post(
            &http,
            format!("{}api/sims/{id}/press", s.url()),
            json!({ "key": key }),
        )
        .await;
        assert_eq!(status, 200, "{next}");
        sim = next;
    }
    for _ in 0..10 {
        if sim["ended"] == true {
            break;
        }
        let (status, next) = post(
            &http,
            format!("{}api/sims/{id}/advance", s.url()),
            json!({}),
        )
        .await;
        assert_eq!(status, 200, "{next}");
        sim = next;
    }
    assert_eq!(sim["ended"], true, "{sim}");
    assert_eq!(sim["outcome"], "transferred", "{sim}");
    let fetch = sim["requests"]
        .as_array()
        .expect("requests")
        .iter()
        .find(|r| r["kind"] == "fetch")
        .cloned()
        .expect("a fetch");
    assert_eq!(fetch["method"], "GET");
    assert_eq!(
        fetch["path"],
        "https://crm.contoso.com/api/accounts/412345?caller=%2B12065550123"
    );
    assert!(
        sim["timeline"]
            .as_array()
            .expect("timeline")
            .iter()
            .any(|e| e["kind"] == "step" && e["text"] == "front_desk (on_failure)"),
        "{sim}"
    );
    let (status, saved) = post(
        &http,
        format!("{}api/sims/{id}/scenario", s.url()),
        json!({"name": "the CRM is not there in the studio"}),
    )
    .await;
    assert_eq!(status, 201, "{saved}");
    assert_eq!(saved["passed"], true, "{saved}");
}
