//! Every action and outcome of the flow language, on small inline flows,
//! through scenario files run by the simulator.

use std::path::Path;

use callflow::engine::{Entry, Outcome};
use callflow::flow::{Flow, load_str};
use callflow::sim::scenario::{self, ScenarioReport};

pub fn flow(yaml: &str) -> Flow {
    let loaded = load_str("inline.yaml", yaml);
    match loaded.flow {
        Some(f) => f,
        None => panic!(
            "the inline flow does not load: {:#?}",
            loaded
                .diagnostics
                .iter()
                .map(|d| d.message.clone())
                .collect::<Vec<_>>()
        ),
    }
}

fn run(flow: &Flow, scenario_yaml: &str) -> ScenarioReport {
    let s = scenario::parse(Path::new("inline.scenario.yaml"), scenario_yaml)
        .unwrap_or_else(|e| panic!("the inline scenario does not load: {e}"));
    scenario::run(&s, flow)
}

pub fn pass(flow: &Flow, scenario_yaml: &str) -> ScenarioReport {
    let r = run(flow, scenario_yaml);
    assert!(
        r.passed,
        "scenario `{}` failed:\n{}",
        r.name,
        r.render_failure()
    );
    r
}

fn logs(r: &ScenarioReport) -> Vec<String> {
    r.timeline
        .entries
        .iter()
        .filter_map(|e| match &e.what {
            Entry::Log(t) => Some(t.clone()),
            _ => None,
        })
        .collect()
}

const FRONT_DESK: &str = r#"
flow: front-desk
trigger:
  incoming_call:
    to: ["+14255550111"]
vars: { attempts: 0 }
start: screen
steps:
  screen:
    switch:
      - when: 'call.from.phone == "+15550000000"'
        goto: block
      - when: 'call.from.phone.starts_with("+44")'
        goto: forward
      - goto: welcome
  block:
    reject: { reason: busy }
  forward:
    redirect: { to: [{ phone: "+442071234567" }], timeout: 20s }
    on_failure: welcome
  welcome:
    answer: { prefetch: ["https://cdn.contoso.com/welcome.wav"] }
    next: note
  note:
    set: { attempts: 'vars.attempts + 1', who: 'call.from.phone' }
    next: say
  say:
    log: "caller ${vars.who} attempt ${vars.attempts}"
    next: hello
  hello:
    play: { prompt: "https://cdn.contoso.com/welcome.wav" }
    next: pause
  pause:
    wait: { timeout: 2s }
    next: done
  done:
    hangup: {}
"#;

#[test]
fn reject_ends_the_run_rejected() {
    let f = flow(FRONT_DESK);
    pass(
        &f,
        r#"
scenario: a blocked number is rejected as busy
flow: front-desk
call: { from: { phone: "+15550000000" }, to: { phone: "+14255550111" } }
expect:
  - reject: { reason: busy }
  - end: rejected
strict: true
"#,
    );
}

#[test]
fn redirect_ends_the_run_redirected_and_a_refusal_routes_on_failure() {
    let f = flow(FRONT_DESK);
    pass(
        &f,
        r#"
scenario: UK callers are redirected to London
flow: front-desk
call: { from: { phone: "+447700900123" } }
expect:
  - redirect: { to: { phone: "+442071234567" }, timeout: 20s }
  - end: redirected
strict: true
"#,
    );
    pass(
        &f,
        r#"
scenario: a refused redirect falls back to the welcome
flow: front-desk
call: { from: { phone: "+447700900123" } }
graph: { fail: { redirect: 403 } }
expect:
  - redirect
  - answer: { prefetch: ["https://cdn.contoso.com/welcome.wav"] }
  - end: hung_up
"#,
    );
}

#[test]
fn set_log_play_wait_and_hangup() {
    let f = flow(FRONT_DESK);
    let r = pass(
        &f,
        r#"
scenario: a normal caller hears the welcome, waits, and the bot hangs up
flow: front-desk
call: { from: { phone: "+33612345678" } }
expect:
  - answer
  - play_prompt: { prompt: "https://cdn.contoso.com/welcome.wav" }
  - hangup
  - end: hung_up
strict: true
"#,
    );
    assert_eq!(logs(&r), vec!["caller +33612345678 attempt 1".to_owned()]);
    let steps: Vec<&str> = r.timeline.steps().map(|(s, _)| s).collect();
    assert_eq!(
        steps,
        ["screen", "welcome", "note", "say", "hello", "pause", "done"]
    );
}

const ANNOUNCER: &str = r#"
flow: announcer
trigger:
  api:
    params:
      meeting: { type: string }
      passcode: { type: string, default: "psw123" }
start: join
steps:
  join:
    join_meeting:
      join_meeting_id: "${params.meeting}"
      passcode: "${params.passcode}"
      tenant: "86dc81db-c112-4228-9222-63f3esaa1edb"
    next: announce
    on_failure: gone
  announce:
    play: { prompt: "https://cdn.contoso.com/beep.wav" }
  gone:
    log: "could not join ${params.meeting}"
"#;

#[test]
fn join_meeting_by_id_stays_joined() {
    let f = flow(ANNOUNCER);
    pass(
        &f,
        r#"
scenario: the bot joins by meeting id, beeps, and stays
flow: announcer
params: { meeting: "1234567" }
expect:
  - create_call: { join_meeting_id: "1234567", passcode: psw123, tenant: 86dc81db-c112-4228-9222-63f3esaa1edb }
  - play_prompt: { prompt: "https://cdn.contoso.com/beep.wav" }
  - end: joined
strict: true
"#,
    );
    let r = pass(
        &f,
        r#"
scenario: a meeting that refuses the bot goes on_failure
flow: announcer
params: { meeting: "999" }
graph: { join: fail }
expect:
  - create_call: { join_meeting_id: "999" }
  - end: hung_up
strict: true
"#,
    );
    assert_eq!(logs(&r), vec!["could not join 999".to_owned()]);
}

#[test]
fn join_meeting_by_thread_and_organizer() {
    let f = flow(
        r#"
flow: standup
trigger: { api: {} }
start: join
steps:
  join:
    join_meeting:
      thread_id: "19:meeting_Win6Ydo4wsMijFjZS00ZGVjLTk5MGUtOTRjNWY2NmNkYTFm@thread.v2"
      message_id: "0"
      organizer: "5810cede-f3cc-42eb-b2c1-e9bd5d53ec96"
      tenant: "86dc81db-c112-4228-9222-63f3esaa1edb"
"#,
    );
    let r = pass(
        &f,
        r#"
scenario: join by organizer, with a roster
flow: standup
expect:
  - create_call: { thread_id: "19:meeting_Win6Ydo4wsMijFjZS00ZGVjLTk5MGUtOTRjNWY2NmNkYTFm@thread.v2", message_id: "0", organizer: 5810cede-f3cc-42eb-b2c1-e9bd5d53ec96 }
  - end: joined
strict: true
"#,
    );
    assert!(
        r.timeline
            .entries
            .iter()
            .any(|e| matches!(&e.what, Entry::Event(t) if t.ends_with("roster of 2"))),
        "the roster (an array of participants) is read and recorded:\n{}",
        r.timeline
    );
}

/// A start without a required parameter is refused as the HTTP API
/// refuses it: the scenario fails, naming its file and the parameter, and
/// no call is simulated.
#[test]
fn api_starts_without_a_required_parameter_are_refused() {
    let f = flow(ANNOUNCER);
    let r = run(
        &f,
        r#"
scenario: a start without its meeting id
flow: announcer
expect:
  - end: error
strict: true
"#,
    );
    assert!(!r.passed);
    let text = r.render_failure();
    assert!(
        text.contains("inline.scenario.yaml:1:1: parameter `meeting` is required"),
        "{text}"
    );
    assert!(r.timeline.entries.is_empty(), "nothing ran: {text}");
}

const CALLBACK: &str = r#"
flow: callback
trigger:
  api:
    params:
      number: { type: phone }
start: dial
steps:
  dial:
    call: { to: { phone: "${params.number}" }, subject: "Your callback", timeout: 20s }
    next: message
    on_timeout: missed
    on_failure: unreachable
  message:
    play: { prompt: "https://cdn.contoso.com/callback.wav" }
  missed:
    log: "no answer from ${params.number}"
  unreachable:
    log: "cannot reach ${params.number}"
"#;

#[test]
fn outgoing_calls_answered_missed_and_unreachable() {
    let f = flow(CALLBACK);
    pass(
        &f,
        r#"
scenario: the callee answers, hears the message, and the bot hangs up
flow: callback
params: { number: "+12345678901" }
expect:
  - create_call: { to: { phone: "+12345678901" }, subject: Your callback }
  - play_prompt: { prompt: "https://cdn.contoso.com/callback.wav" }
  - hangup
  - end: hung_up
strict: true
"#,
    );
    let r = pass(
        &f,
        r#"
scenario: nobody answers within 20 s
flow: callback
params: { number: "+12345678901" }
graph: { call: no_answer }
expect:
  - create_call
  - hangup
  - end: hung_up
strict: true
"#,
    );
    assert_eq!(logs(&r), vec!["no answer from +12345678901".to_owned()]);
    let r = pass(
        &f,
        r#"
scenario: the number does not exist (480/10037)
flow: callback
params: { number: "+12345678901" }
graph: { call: unreachable }
expect:
  - create_call
  - end: hung_up
strict: true
"#,
    );
    assert_eq!(logs(&r), vec!["cannot reach +12345678901".to_owned()]);
}

const GROUP_DESK: &str = r#"
flow: group-desk
trigger:
  incoming_call:
    to: ["+14255550112"]
start: pick
steps:
  pick:
    answer: {}
    next: hold
  hold:
    wait: { state: transferring, timeout: 1s }
    on_timeout: move
  move:
    transfer:
      to: { user: "550fae72-d251-43ec-868c-373732c2704f", display_name: "Heidi Steen" }
      transferee:
        participant_id: "909c6581-5130-43e9-88f3-fcb3582cde37"
        user: "751f6800-3180-414d-bd94-333364659951"
        tenant: "72f988bf-86f1-41af-91ab-2d7cd011db47"
      client_context: "ctx-${call.id}"
    next: after
  after:
    log: "moved ${call.id}"
on:
  established:
    - log: "connected"
"#;

#[test]
fn group_transfer_with_transferee_then_next_after_the_call() {
    let f = flow(GROUP_DESK);
    let r = pass(
        &f,
        r#"
scenario: a participant is transferred out of a group call
flow: group-desk
call: { to: { phone: "+14255550112" } }
expect:
  - answer
  - transfer:
      to: { user: 550fae72-d251-43ec-868c-373732c2704f, display_name: Heidi Steen }
      transferee: { participant_id: 909c6581-5130-43e9-88f3-fcb3582cde37, user: 751f6800-3180-414d-bd94-333364659951 }
      client_context: ctx-call-1
  - end: transferred
strict: true
"#,
    );
    assert_eq!(
        logs(&r),
        vec!["connected".to_owned(), "moved call-1".to_owned()]
    );
    let after = r.timeline.steps().last().expect("steps were entered");
    assert_eq!(
        after,
        ("after", "next"),
        "`next` runs after a completed transfer"
    );
}

#[test]
fn on_error_takes_unrouted_failures() {
    let f = flow(
        r#"
flow: fallback
trigger: { incoming_call: {} }
start: a
steps:
  a:
    answer: {}
    next: b
  b:
    transfer: { to: { phone: "+14255550123" } }
  apology:
    play: { prompt: "https://cdn.contoso.com/sorry.wav" }
on:
  error:
    - log: "failure in ${step}"
    - goto: apology
"#,
    );
    let r = pass(
        &f,
        r#"
scenario: a failed transfer with no on_failure goes to on.error
flow: fallback
graph: { transfer: fail }
expect:
  - answer
  - transfer
  - play_prompt: { prompt: "https://cdn.contoso.com/sorry.wav" }
  - hangup
  - end: hung_up
strict: true
"#,
    );
    assert_eq!(logs(&r), vec!["failure in b".to_owned()]);
}

#[test]
fn an_unrouted_failure_without_on_error_hangs_up_with_error() {
    let f = flow(
        r#"
flow: bare
trigger: { incoming_call: {} }
start: a
steps:
  a:
    answer: {}
    next: b
  b:
    transfer: { to: { phone: "+14255550123" } }
"#,
    );
    let r = pass(
        &f,
        r#"
scenario: the caller is never left in silence
flow: bare
graph: { transfer: fail }
expect:
  - answer
  - transfer
  - hangup
  - end: error
strict: true
"#,
    );
    assert_eq!(r.outcome, Some(Outcome::Error));
}

#[test]
fn the_step_limit_stops_a_loop() {
    let f = flow(
        r#"
flow: loop
max_steps: 20
trigger: { incoming_call: {} }
vars: { n: 0 }
start: a
steps:
  a:
    answer: {}
    next: b
  b:
    set: { n: 'vars.n + 1' }
    next: c
  c:
    switch:
      - when: 'vars.n < 1000'
        goto: b
      - goto: a
"#,
    );
    let r = pass(
        &f,
        r#"
scenario: a loop is stopped by max_steps and the bot hangs up
flow: loop
expect:
  - answer
  - hangup
  - end: error
strict: true
"#,
    );
    let steps = r.timeline.steps().count();
    assert!(steps <= 21, "{steps} steps entered");
}

#[test]
fn a_caller_hanging_up_mid_wait_ends_the_run() {
    let f = flow(GROUP_DESK);
    pass(
        &f,
        r#"
scenario: hang-up during the wait
flow: group-desk
graph: { hangup: 1500ms }
expect:
  - answer
  - end: caller_hung_up
strict: true
"#,
    );
}

#[test]
fn a_failing_scenario_shows_expected_and_actual_side_by_side() {
    let f = flow(FRONT_DESK);
    let r = run(
        &f,
        r#"
scenario: wrong on purpose
flow: front-desk
call: { from: { phone: "+15550000000" } }
expect:
  - reject: { reason: forbidden }
  - end: rejected
"#,
    );
    assert!(!r.passed);
    let text = r.render_failure();
    assert!(text.contains("✗ reject {reason: forbidden}"), "{text}");
    assert!(text.contains("reject {reason: busy}"), "{text}");
    assert!(text.contains("timeline:"), "{text}");
}

#[test]
fn scenario_files_refuse_unknown_fields_and_bad_lines() {
    let bad = [
        ("scenario: x\nflow: y\nexpect: [answr]\n", "answer"),
        (
            "scenario: x\nflow: y\ngraph: { transfer: maybe }\nexpect: [answer]\n",
            "maybe",
        ),
        (
            "scenario: x\nflow: y\nclock: tomorrow\nexpect: [answer]\n",
            "RFC 3339",
        ),
        ("scenario: x\nflow: y\nexpectations: []\n", "expectations"),
        (
            "scenario: x\nflow: y\nreplay: a.jsonl\ncall: {}\nexpect: [answer]\n",
            "replay",
        ),
    ];
    for (text, hint) in bad {
        let e = scenario::parse(Path::new("bad.yaml"), text).expect_err(text);
        assert!(e.to_string().contains(hint), "{text}: {e}");
    }
}
