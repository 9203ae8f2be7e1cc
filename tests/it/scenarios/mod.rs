//! Scenario tests: every scenario under `flows/`, coverage of the bundled
//! flows, inline flows for every action, the seeds' JSON, and properties.
//!
//! Everything here runs flows through `sim` and `engine::step`; nothing
//! here interprets a flow.

mod actions;
mod properties;
mod refusals;
mod reports;
mod rules;
mod seeds_json;

use std::path::PathBuf;

use callflow::sim::scenario;

fn flows_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("flows")
}

#[test]
fn every_scenario_under_flows_passes() {
    let report = scenario::run_paths(&[flows_dir()]);
    assert!(!report.reports.is_empty(), "no scenario found under flows/");
    let mut text = String::new();
    for r in &report.reports {
        if !r.passed {
            text.push_str(&format!(
                "scenario {} ({}) FAILED\n{}\n",
                r.name,
                r.path.display(),
                r.render_failure()
            ));
        }
    }
    assert!(
        report.passed(),
        "{} of {} scenarios failed:\n{text}",
        report.failures(),
        report.reports.len()
    );
}

#[test]
fn bundled_flows_have_scenarios_reaching_every_step_and_link() {
    let report = scenario::run_paths(&[flows_dir()]);
    assert!(!report.flows.is_empty(), "no flow under flows/");
    for flow in &report.flows {
        let cov = scenario::coverage(flow, &report.reports);
        assert!(
            cov.is_complete(),
            "flow `{}`: no scenario reaches steps {:?} or links {:?}",
            flow.name,
            cov.missing_steps,
            cov.missing_links
        );
        assert!(
            !cov.outcomes.is_empty(),
            "flow `{}` has no scenario",
            flow.name
        );
    }
}

#[test]
fn reception_scenarios_reach_its_outcomes() {
    let report = scenario::run_paths(&[flows_dir()]);
    let flow = report
        .flows
        .iter()
        .find(|f| f.name == "reception")
        .expect("flows/reception.yaml loads");
    let cov = scenario::coverage(flow, &report.reports);
    for o in ["transferred", "hung_up", "caller_hung_up", "error"] {
        assert!(
            cov.outcomes.iter().any(|x| x.as_str() == o),
            "no reception scenario ends with {o}: {:?}",
            cov.outcomes
        );
    }
}

/// What `callflow simulate` prints for an office-hours call to sales.
#[test]
fn a_simulated_call_reads_as_a_timeline() {
    let flows = callflow::flow::load_paths(&[flows_dir().join("reception.yaml")]);
    let flow = flows.flows.first().expect("reception loads");
    let clock = chrono::DateTime::parse_from_rfc3339("2026-11-20T10:00:00+01:00")
        .expect("a date")
        .with_timezone(&chrono::Utc);
    let mut options = callflow::sim::SimulateOptions::for_flow(flow, clock);
    options.graph.dtmf = vec!["1".into()];
    let timeline = callflow::sim::simulate(flow, &options);
    insta::assert_snapshot!(
        "simulated_office_hours_call",
        timeline.render(flow.timezone)
    );
}
