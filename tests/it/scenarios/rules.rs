//! Graph's rules, applied by the engine, so `callflow test` agrees with
//! production: the 15-second answer rule and the `keepAlive` schedule.

use std::path::Path;

use callflow::engine::Outcome;
use callflow::sim::scenario;

use super::actions::{flow, pass};

/// A flow that waits 20 s before answering: Graph gives a bot 15 s.
const SLOW: &str = r#"
flow: slow-answer
trigger:
  incoming_call:
    to: ["+14255550100"]
start: think
steps:
  think:
    wait: { timeout: 20s }
    next: greet
  greet:
    answer: {}
    next: hello
  hello:
    play: { prompt: https://cdn.contoso.com/hello.wav }
"#;

#[test]
fn a_flow_that_answers_after_15_seconds_fails_its_scenario_as_graph_ends_the_call() {
    let f = flow(SLOW);
    let s = scenario::parse(
        Path::new("slow.scenario.yaml"),
        "scenario: the caller is greeted\nflow: slow-answer\nexpect:\n  - answer\n  - play_prompt\n  - end: hung_up\n",
    )
    .expect("the scenario loads");
    let r = scenario::run(&s, &f);
    assert!(
        !r.passed,
        "a late answer must fail:\n{}",
        r.render_failure()
    );
    assert_eq!(r.outcome, Some(Outcome::Error), "{}", r.render_failure());
    let text = r.timeline.render(r.timezone);
    assert!(
        text.contains("did not answer within 15 s"),
        "the timeline says why:\n{text}"
    );
    // The call is rejected (busy) before Graph's own 15 s, and nothing is
    // answered after: what production does.
    assert_eq!(r.actual[0], "reject {reason: busy}", "{:?}", r.actual);
    assert!(
        !r.actual.iter().any(|l| l.starts_with("answer")),
        "{:?}",
        r.actual
    );
    let rejected_at = r
        .timeline
        .entries
        .iter()
        .find(|e| e.what.to_string().contains("reject"))
        .map(|e| e.at)
        .expect("a reject in the timeline");
    let started = r.timeline.entries[0].at;
    assert_eq!((rejected_at - started).num_seconds(), 14, "{text}");

    // Said as a scenario, the rule passes.
    pass(
        &f,
        "scenario: too slow\nflow: slow-answer\nexpect:\n  - reject: { reason: busy }\n  - end: error\nstrict: true\n",
    );
}

#[test]
fn a_long_call_gets_a_keep_alive_every_15_minutes_in_the_simulator() {
    let f = flow(
        r#"
flow: long-hold
trigger:
  incoming_call:
    to: ["+14255550100"]
start: greet
steps:
  greet:
    answer: {}
    next: hold
  hold:
    wait: { timeout: 50m }
    next: bye
  bye:
    hangup: {}
"#,
    );
    let r = pass(
        &f,
        "scenario: a 50-minute hold\nflow: long-hold\nexpect:\n  - answer\n  - keep_alive\n  - keep_alive\n  - keep_alive\n  - hangup\n  - end: hung_up\nstrict: true\n",
    );
    let keep: Vec<i64> = r
        .timeline
        .entries
        .iter()
        .filter(|e| e.what.to_string().contains("keep_alive"))
        .map(|e| (e.at - r.timeline.entries[0].at).num_minutes())
        .collect();
    assert_eq!(keep, vec![15, 30, 45], "{}", r.timeline.render(r.timezone));
}

/// An `api` flow that calls again every 10 minutes, forever: its
/// `max_duration` stops it, and its calls are hung up.
const REDIAL_FOREVER: &str = r#"
flow: redial-forever
max_duration: 25m
max_steps: 1000
trigger:
  api: {}
start: dial
steps:
  dial:
    call: { to: { phone: "+33612345678" }, timeout: 30s }
    next: bye
    on_failure: pause
    on_timeout: pause
  pause:
    wait: { timeout: 10m }
    next: dial
  bye:
    hangup: {}
"#;

#[test]
fn a_run_that_outlives_its_calls_is_bounded_by_its_max_duration() {
    let f = flow(REDIAL_FOREVER);
    assert_eq!(f.max_duration, std::time::Duration::from_secs(25 * 60));
    let s = scenario::parse(
        Path::new("redial.scenario.yaml"),
        "scenario: nobody ever answers\nflow: redial-forever\ngraph: { call: no_answer }\nexpect:\n  - create_call\n  - create_call: { call: main-2 }\n  - create_call: { call: main-3 }\n  - end: error\n",
    )
    .expect("the scenario loads");
    let r = scenario::run(&s, &f);
    assert!(r.passed, "{}", r.render_failure());
    let text = r.timeline.render(r.timezone);
    assert!(
        text.contains("+25m00.000s")
            && text.contains("the run lasted its flow's max_duration (25m) and was stopped"),
        "stopped at 25 minutes, saying why:\n{text}"
    );
    // Three calls in 25 minutes (at 0, 10m30s, 21m), each hung up when
    // nobody answered; the run waited between them with no call.
    let placed = r
        .actual
        .iter()
        .filter(|l| l.starts_with("create_call"))
        .count();
    assert_eq!(placed, 3, "{:?}", r.actual);
    assert_eq!(
        text.matches("the run goes on without a call").count(),
        3,
        "{text}"
    );
}

/// A wait longer than the idle reaper's two hours is not idleness.
#[test]
fn a_long_wait_without_a_call_is_not_reaped() {
    let f = flow(
        "flow: later\nmax_duration: 6h\ntrigger:\n  api: {}\nstart: pause\nsteps:\n  pause:\n    wait: { timeout: 3h }\n    next: dial\n  dial:\n    call: { to: { phone: \"+33612345678\" } }\n    next: bye\n  bye:\n    hangup: {}\n",
    );
    let s = scenario::parse(
        Path::new("later.scenario.yaml"),
        "scenario: call in three hours\nflow: later\nexpect:\n  - create_call\n  - hangup\n  - end: hung_up\nstrict: true\n",
    )
    .expect("the scenario loads");
    let r = scenario::run(&s, &f);
    assert!(r.passed, "{}", r.render_failure());
    assert!(
        r.timeline.render(r.timezone).contains("+180m00.000s  dial"),
        "{}",
        r.timeline.render(r.timezone)
    );
}
