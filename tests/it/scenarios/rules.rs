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
