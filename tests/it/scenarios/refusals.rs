//! What Graph refuses, the simulated Graph refuses, and the flow routes it:
//! the scenarios of `tests/scenarios/refusals/` pass, and each refused run
//! shows Graph's code in its timeline and took its `on_failure` route.

use std::path::PathBuf;

use callflow::engine::Entry;
use callflow::sim::runner::{SimulateOptions, run};
use callflow::sim::scenario;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios/refusals")
}

#[test]
fn every_refusal_scenario_passes() {
    let report = scenario::run_paths(&[dir()]);
    assert!(
        report.reports.len() >= 5,
        "{} scenarios",
        report.reports.len()
    );
    let failed: Vec<String> = report
        .reports
        .iter()
        .filter(|r| !r.passed)
        .map(|r| format!("{}\n{}", r.name, r.render_failure()))
        .collect();
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// Runs the scenario at `file` of the refusal folder; its timeline.
fn timeline(file: &str) -> Vec<Entry> {
    let path = dir().join(file);
    let s = scenario::load(&path).expect("the scenario reads");
    let flows = callflow::flow::load_paths(&[dir()]).flows;
    let flow = flows
        .into_iter()
        .find(|f| f.name == s.flow)
        .expect("the scenario's flow loads");
    let mut options = SimulateOptions::for_flow(&flow, scenario::default_clock(&flow));
    if let Some(from) = &s.from {
        options.from = from.clone();
    }
    if let Some(to) = &s.to {
        options.to = to.clone();
    }
    options.params = s.params.clone();
    options.bot = s.bot.clone();
    let sim = run(&flow, &options);
    assert!(sim.problems.is_empty(), "{:?}", sim.problems);
    sim.session
        .timeline
        .entries
        .into_iter()
        .map(|e| e.what)
        .collect()
}

fn refused_with(entries: &[Entry], code: &str, fallback: &str) {
    assert!(
        entries
            .iter()
            .any(|e| matches!(e, Entry::Error(m) if m.contains(code))),
        "no error with Graph's code {code}: {entries:#?}"
    );
    assert!(
        entries.iter().any(|e| matches!(
            e,
            Entry::Enter { step, via } if step == fallback && via == "on_failure"
        )),
        "the flow did not take on_failure to {fallback}: {entries:#?}"
    );
}

#[test]
fn each_refusal_carries_graphs_code_and_takes_the_flows_fallback() {
    refused_with(
        &timeline("transfer-to-a-number-from-the-application.yaml"),
        "7507",
        "sorry",
    );
    refused_with(
        &timeline("consultation-without-an-instance.yaml"),
        "7507",
        "sorry",
    );
    refused_with(
        &timeline("call-a-number-without-an-instance.yaml"),
        "7507",
        "refused",
    );
    refused_with(&timeline("call-without-a-tenant.yaml"), "7505", "refused");
    let through = timeline("transfer-to-a-number-from-an-instance.yaml");
    assert!(
        !through.iter().any(|e| matches!(e, Entry::Error(_))),
        "{through:#?}"
    );
}
