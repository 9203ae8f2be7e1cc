//! Parameters are checked by one check wherever a run starts: the HTTP API
//! (in `server.rs`, over loopback), `callflow simulate --param` (the real
//! binary) and a scenario's `params` (a scenario file). The same wrong
//! parameters get the same sentences from each.

use std::path::{Path, PathBuf};
use std::process::Command;

use callflow::sim::scenario;

/// Wrong parameters for `outbound-reminder`: a number with spaces, a
/// misspelt name, a required one left out.
pub(crate) const PHONE: &str = "06 12 34 56 78";
pub(crate) const MISSPELT: &str = "apointment";

/// What every way of starting `outbound-reminder` says of them, in order.
pub(crate) const PROBLEMS: &[&str] = &[
    "unknown parameter `apointment` (did you mean `appointment`?)",
    "parameter `phone`: expected an E.164 phone number like +14255550100, got \"06 12 34 56 78\"",
    "parameter `appointment` is required",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn simulate_refuses_the_parameters_the_api_refuses() {
    let out = Command::new(env!("CARGO_BIN_EXE_callflow"))
        .args([
            "simulate",
            "outbound-reminder",
            "--param",
            &format!("phone={PHONE}"),
            "--param",
            &format!("{MISSPELT}=https://cdn.contoso.com/r.wav"),
        ])
        .current_dir(root())
        .env("NO_COLOR", "1")
        .output()
        .expect("run callflow");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(out.stdout.is_empty(), "no call is simulated");
    let said: Vec<&str> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("error: --param: "))
        .collect();
    assert_eq!(said, PROBLEMS, "{stderr}");

    let good = Command::new(env!("CARGO_BIN_EXE_callflow"))
        .args([
            "simulate",
            "outbound-reminder",
            "--param",
            "phone=+33612345678",
            "--param",
            "appointment=https://cdn.contoso.com/r.wav",
        ])
        .current_dir(root())
        .output()
        .expect("run callflow");
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );

    let not_api = Command::new(env!("CARGO_BIN_EXE_callflow"))
        .args(["simulate", "reception", "--param", "phone=+33612345678"])
        .current_dir(root())
        .output()
        .expect("run callflow");
    assert_eq!(not_api.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&not_api.stderr).contains("not an `api` flow"),
        "{}",
        String::from_utf8_lossy(&not_api.stderr)
    );
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

#[test]
fn a_scenario_with_wrong_params_fails_with_the_same_sentences() {
    let dir = tempfile::tempdir().expect("tempdir");
    let flow_path = root().join("flows/outbound-reminder.yaml");
    let flow = callflow::flow::load_file(&flow_path)
        .flow
        .expect("the bundled flow loads");
    let path = write(
        dir.path(),
        "wrong-params.yaml",
        &format!(
            "scenario: wrong params\nflow: outbound-reminder\nparams:\n  phone: \"{PHONE}\"\n  {MISSPELT}: https://cdn.contoso.com/r.wav\nexpect:\n  - end: hung_up\n"
        ),
    );
    let s = scenario::load(&path).expect("the scenario reads");
    let report = scenario::run(&s, &flow);
    assert!(!report.passed);
    let text = report.render_failure();
    // Each problem at the file, line and column it is about: the
    // undeclared name, the wrong value, the `params:` key for a missing one.
    let file = path.display();
    for (at, problem) in ["5:3", "4:10", "3:1"].iter().zip(PROBLEMS) {
        let line = format!("{file}:{at}: {problem}");
        assert!(text.contains(&line), "no `{line}` in\n{text}");
    }

    let path = write(
        dir.path(),
        "right-params.yaml",
        "scenario: right params\nflow: outbound-reminder\nparams:\n  phone: \"+33612345678\"\n  appointment: https://cdn.contoso.com/r.wav\nexpect:\n  - end: hung_up\n",
    );
    let s = scenario::load(&path).expect("the scenario reads");
    let report = scenario::run(&s, &flow);
    assert!(report.passed, "{}", report.render_failure());
}
