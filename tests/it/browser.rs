//! The studio in a real browser: headless Chromium through WebDriver
//! (`support::browser`). Skips with one notice without Chromium and
//! chromedriver; `.ci/run` installs them and requires these tests.
//!
//! Each test takes screenshots of what it shows into
//! `target/studio-screenshots/`. Timings it prints (page ready, one
//! simulated step) are the README's figures; no test asserts on them.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::browser::Browser;
use crate::support::demo::Demo;
use crate::support::require;
use crate::support::studio::{TestStudio, bundled, copy_dir};

const WAIT: Duration = Duration::from_secs(15);

async fn open_flow(b: &Browser, file: &str) {
    b.click(&format!("button[data-file='{file}']")).await;
    b.wait_for(
        "the flow's diagram",
        &format!("document.getElementById('flow-name').textContent && document.querySelector('#diagram svg') && document.querySelector(\"button[data-file='{file}'][aria-current=true]\")"),
        WAIT,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workbench_opens_on_the_bundled_flows() {
    if !require::chromium() {
        return;
    }
    let s = TestStudio::start().await;
    let b = Browser::start(1280, 800).await;
    // Every flow file of the folder is listed.
    let bundled = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/flows"))
        .expect("flows")
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "yaml"))
        .count();
    let t0 = Instant::now();
    b.client.goto(&s.url()).await.expect("the page opens");
    let ready = format!(
        "document.body.dataset.ready === 'true' && document.querySelectorAll('#flows li').length === {bundled}"
    );
    b.wait_for("the page", &ready, WAIT).await;
    let ready = t0.elapsed();
    eprintln!(
        "studio figure: page ready ({bundled} bundled flows) in {} ms",
        ready.as_millis()
    );
    let names = b
        .eval("Array.from(document.querySelectorAll('#flows .name')).map(e => e.textContent)")
        .await;
    assert!(
        names
            .as_array()
            .expect("names")
            .contains(&json!("reception")),
        "{names}"
    );
    // Keyboard: `/` finds a flow.
    b.client
        .execute("document.body.focus()", vec![])
        .await
        .expect("focus");
    b.type_into("#filter", "recep").await;
    b.wait_for(
        "the filter",
        "document.querySelectorAll('#flows li').length === 1",
        WAIT,
    )
    .await;
    b.shot("01-flows").await;
    b.type_into("#filter", "").await;
    open_flow(&b, "reception.yaml").await;
    let shapes = b.eval("Array.from(document.querySelectorAll('#diagram .node')).map(n => n.dataset.step + ':' + n.classList[1])").await;
    assert!(
        shapes
            .as_array()
            .expect("shapes")
            .contains(&json!("menu:decision")),
        "{shapes}"
    );
    // A node shows its YAML lines.
    b.click("#diagram .node[data-step='menu']").await;
    let lines = b.wait_for("the node's lines", "document.querySelector('#node-lines pre') && document.querySelector('#node-lines pre').textContent", WAIT).await;
    assert!(
        lines
            .as_str()
            .expect("text")
            .contains("prompt: https://cdn.contoso.com/menu.wav"),
        "{lines}"
    );
    b.shot("02-diagram").await;
    // Narrow window.
    b.client.set_window_size(600, 900).await.expect("resize");
    b.shot("03-narrow").await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reception_call_through_the_menu_lights_its_path_and_is_saved_as_a_passing_scenario() {
    if !require::chromium() {
        return;
    }
    let s = TestStudio::start().await;
    let b = Browser::start(1280, 800).await;
    b.client.goto(&s.url()).await.expect("the page opens");
    b.wait_for("the page", "document.body.dataset.ready === 'true'", WAIT)
        .await;
    open_flow(&b, "reception.yaml").await;
    b.client
        .execute("const i = document.getElementById('f-at'); i.value = '2026-11-20T10:00'; i.dispatchEvent(new Event('change'));", vec![])
        .await
        .expect("set the time");
    b.wait_for(
        "the calendar",
        "document.getElementById('f-cal').textContent.includes('office is open')",
        WAIT,
    )
    .await;
    b.click("#start").await;
    b.wait_for(
        "the menu",
        "document.querySelector(\"#diagram .node.current[data-step='menu']\")",
        WAIT,
    )
    .await;
    let keypad = b
        .eval("!document.querySelector(\"#keypad button[data-key='1']\").disabled")
        .await;
    assert_eq!(keypad, json!(true));
    b.shot("04-call-in-menu").await;
    let t0 = Instant::now();
    b.click("#keypad button[data-key='1']").await;
    b.wait_for(
        "the transfer",
        "document.getElementById('c-step').textContent.includes('Ended: transferred')",
        WAIT,
    )
    .await;
    eprintln!(
        "studio figure: a key press simulated and shown in {} ms",
        t0.elapsed().as_millis()
    );
    let lit = b.eval("Array.from(document.querySelectorAll('#diagram .node.lit')).map(n => n.dataset.step).filter(Boolean)").await;
    assert_eq!(lit, json!(["greet", "hours", "menu", "sales"]));
    let lit_edges = b
        .eval("document.querySelectorAll('#diagram .edge.lit path').length")
        .await;
    assert_eq!(lit_edges, json!(4));
    let timeline = b
        .eval("document.getElementById('timeline').textContent")
        .await;
    let timeline = timeline.as_str().expect("text");
    assert!(
        timeline.contains("sales (key 1)") && timeline.contains("transfer {to: {user: \"550fae72"),
        "{timeline}"
    );
    b.click("#requests details summary").await;
    let json_shown = b
        .eval("document.querySelector('#requests details[open] pre').textContent")
        .await;
    assert!(
        json_shown
            .as_str()
            .expect("json")
            .contains("\"callbackUri\""),
        "{json_shown}"
    );
    b.shot("05-call-transferred").await;
    b.type_into("#s-name", "key 1 in office hours reaches sales")
        .await;
    b.click("#save").await;
    let saved = b
        .wait_for(
            "the save",
            "document.getElementById('save-result').textContent",
            WAIT,
        )
        .await;
    assert!(
        saved.as_str().expect("text").contains("it passes"),
        "{saved}"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_callflow"))
        .arg("test")
        .arg(&s.dir)
        .output()
        .expect("callflow test");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && text.contains("scenario key 1 in office hours reaches sales ... ok"),
        "{text}"
    );
    // Scenarios and coverage; the week.
    b.click("#tab-scenarios").await;
    b.click("#run-scenarios").await;
    b.wait_for(
        "the runs",
        "document.querySelectorAll('#scen-list .run').length > 20",
        WAIT,
    )
    .await;
    b.shot("06-scenarios").await;
    b.click("#tab-week").await;
    b.wait_for(
        "the week",
        "document.querySelectorAll('#week td').length >= 7 * 24",
        WAIT,
    )
    .await;
    b.shot("07-week").await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_file_shows_its_diagnostic_at_its_line_and_the_fix_brings_the_diagram_back() {
    if !require::chromium() {
        return;
    }
    let s = TestStudio::start().await;
    let b = Browser::start(1280, 800).await;
    b.client.goto(&s.url()).await.expect("the page opens");
    b.wait_for("the page", "document.body.dataset.ready === 'true'", WAIT)
        .await;
    open_flow(&b, "reception.yaml").await;
    let path = s.dir.join("reception.yaml");
    let good = std::fs::read_to_string(&path).expect("read");
    let line = good
        .lines()
        .position(|l| l.contains("on_failure: sorry"))
        .expect("line")
        + 1;
    let t0 = Instant::now();
    std::fs::write(
        &path,
        good.replacen("on_failure: sorry", "on_failure: sory", 1),
    )
    .expect("break it");
    b.wait_for(
        "the diagnostic",
        "document.getElementById('flow-status').textContent.includes('error')",
        WAIT,
    )
    .await;
    eprintln!(
        "studio figure: a broken edit shown in {} ms",
        t0.elapsed().as_millis()
    );
    assert_eq!(
        b.eval("!document.getElementById('stale').hidden").await,
        json!(true)
    );
    assert_eq!(
        b.eval("document.querySelector('#diagram svg').classList.contains('is-stale')")
            .await,
        json!(true)
    );
    b.click("#tab-source").await;
    let hit = b.eval(&format!("document.getElementById('L{line}').classList.contains('hit') && document.querySelector('#L{line} mark').textContent")).await;
    assert_eq!(hit, json!("sory"));
    let diag = b
        .eval("document.querySelector('#diagnostics .diag').textContent")
        .await;
    let diag = diag.as_str().expect("text");
    assert!(
        diag.contains(&format!("reception.yaml:{line}:")) && diag.contains("did you mean `sorry`?"),
        "{diag}"
    );
    b.shot("08-broken").await;
    std::fs::write(&path, &good).expect("fix it");
    b.wait_for("the fix", "document.getElementById('flow-status').textContent === 'valid' && document.getElementById('stale').hidden", WAIT).await;
    b.click("#tab-call").await;
    assert_eq!(
        b.eval("document.querySelector('#diagram svg').classList.contains('is-stale')")
            .await,
        json!(false)
    );
    b.shot("09-fixed").await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_view_shows_a_live_call_at_its_current_step() {
    if !require::chromium() {
        return;
    }
    let temp = tempfile::tempdir().expect("temp");
    let dir = temp.path().join("flows");
    copy_dir(&bundled(), &dir);
    crate::support::studio::reception_always_open(&dir);
    let demo = Demo::start(&dir);
    let b = Browser::start(1280, 800).await;
    b.client
        .goto(&format!("{}/ui/", demo.base))
        .await
        .expect("the page opens");
    b.wait_for(
        "the sign-in form",
        "document.querySelector(\"input[name='token']\")",
        WAIT,
    )
    .await;
    b.type_into("input[name='token']", &demo.token).await;
    b.click("button[type='submit']").await;
    b.wait_for(
        "the studio",
        "document.body.dataset.ready === 'true' && !document.getElementById('live-link').hidden",
        WAIT,
    )
    .await;
    demo.place_call("+14255550100").await;
    b.click("#live-link").await;
    b.wait_for("the live call in the menu", "Array.from(document.querySelectorAll('#live-list button')).some(x => x.textContent.includes('running') && x.textContent.includes('step menu'))", WAIT).await;
    b.client
        .execute("Array.from(document.querySelectorAll('#live-list button')).find(x => x.textContent.includes('step menu')).click()", vec![])
        .await
        .expect("pick the call");
    b.wait_for(
        "its step on the diagram",
        "document.querySelector(\"#live-diagram .node.current[data-step='menu']\")",
        WAIT,
    )
    .await;
    b.shot("10-live").await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_flows_list_and_filter_without_lag() {
    if !require::chromium() {
        return;
    }
    let temp = tempfile::tempdir().expect("temp");
    for n in 0..200 {
        let text = format!(
            "flow: line-{n:03}\ndescription: generated line {n}\ntrigger:\n  incoming_call:\n    to: \"+1425556{n:04}\"\n\
             start: greet\nsteps:\n  greet:\n    answer: {{}}\n    next: welcome\n  welcome:\n    play: {{ prompt: https://cdn.contoso.com/w{n}.wav }}\n    next: bye\n  bye:\n    hangup: {{}}\n"
        );
        std::fs::write(temp.path().join(format!("line-{n:03}.yaml")), text).expect("write");
    }
    let s = crate::support::studio::TestStudio::start_in(temp.path()).await;
    let b = Browser::start(1280, 800).await;
    let t0 = Instant::now();
    b.client.goto(&s.url()).await.expect("the page opens");
    b.wait_for("200 flows", "document.body.dataset.ready === 'true' && document.querySelectorAll('#flows li').length === 200", WAIT).await;
    eprintln!(
        "studio figure: page ready with 200 flows in {} ms",
        t0.elapsed().as_millis()
    );
    let filter_ms = b
        .eval("(() => { const f = document.getElementById('filter'); const t = performance.now(); f.value = 'line-19'; f.dispatchEvent(new Event('input')); const n = document.querySelectorAll('#flows li').length; return [performance.now() - t, n]; })()")
        .await;
    assert_eq!(filter_ms[1], json!(10), "{filter_ms}");
    eprintln!(
        "studio figure: filtering 200 flows took {:.1} ms",
        filter_ms[0].as_f64().unwrap_or(-1.0)
    );
    let t1 = Instant::now();
    open_flow(&b, "line-199.yaml").await;
    eprintln!(
        "studio figure: a flow opened (diagram drawn) in {} ms",
        t1.elapsed().as_millis()
    );
    b.shot("11-two-hundred").await;
    b.close().await;
}

/// axe-core's violations on the page as it is now, as `id (impact): help —
/// first elements` lines.
async fn audit(b: &Browser) -> Vec<String> {
    let axe = std::fs::read_to_string(require::axe_path()).expect("axe-core reads");
    b.client
        .execute(&format!("{axe}\nreturn 1;"), vec![])
        .await
        .expect("axe-core loads");
    let found = b
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document).then((r) => done(r.violations.map((v) =>
               `${v.id} (${v.impact}): ${v.help} — ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')}`)));",
            vec![],
        )
        .await
        .expect("the audit runs");
    serde_json::from_value(found).expect("a list of lines")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_view_passes_an_accessibility_audit() {
    if !require::axe() {
        return;
    }
    let s = TestStudio::start().await;
    let b = Browser::start(1280, 800).await;
    b.client.goto(&s.url()).await.expect("the page opens");
    b.wait_for("the page", "document.body.dataset.ready === 'true'", WAIT)
        .await;
    open_flow(&b, "reception.yaml").await;
    let mut found = Vec::new();
    let mut look = async |view: &str, b: &Browser| {
        found.extend(audit(b).await.into_iter().map(|v| format!("{view}: {v}")));
    };
    look("diagram", &b).await;
    b.click("#start").await;
    b.wait_for(
        "the call",
        "document.querySelector('#diagram .node.current')",
        WAIT,
    )
    .await;
    look("call", &b).await;
    for tab in ["source", "scenarios", "week"] {
        b.click(&format!("#tab-{tab}")).await;
        b.wait_for(
            "the tab",
            &format!("!document.getElementById('panel-{tab}').hidden"),
            WAIT,
        )
        .await;
        look(tab, &b).await;
    }
    assert!(found.is_empty(), "axe-core finds:\n{}", found.join("\n"));
    b.close().await;
}
