//! What `callflow test` prints: broken scenario files (every one, every
//! problem, at FILE:LINE:COL) and failure reports (the real reason first,
//! expected and actual lined up). Runs the real binary in a folder of its
//! own and snapshots what a designer reads.

use std::path::Path;
use std::process::{Command, Output};

/// `callflow test ARGS` run from `dir`, without colour, 100 columns.
fn callflow_test(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_callflow"))
        .arg("test")
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("COLUMNS", "100")
        .output()
        .expect("run callflow")
}

/// A folder holding the bundled reception flow and the given files.
fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(
        root.join("flows/reception.yaml"),
        dir.path().join("reception.yaml"),
    )
    .expect("copy reception.yaml");
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("write scenario");
    }
    dir
}

const NIGHT_LINE: &str = r#"scenario: after-hours calls go to the night line
flow: reception
clock: "2026-11-21T22:15:00+01:00"
call: { from: { phone: "+33612345678" }, to: { phone: "+14255550100" } }
expect:
  - answer
  - transfer: { to: { phone: "+14255550199" } }
  - end: transferred
strict: true
"#;

#[test]
fn every_broken_scenario_file_is_reported_at_its_line_and_the_good_ones_run() {
    let dir = folder(&[
        ("a-good.yaml", NIGHT_LINE),
        (
            "b-unclosed.yaml",
            "scenario: broken one\nflow: reception\nexpect:\n  - end: transferred\n  - [unclosed\n",
        ),
        (
            "c-two-mistakes.yaml",
            "scenario: two mistakes\nflow: reception\nclock: tomorrow\nexpect:\n  - answr\n  - end: transferred\n  - frobnicate: 1\n",
        ),
        (
            "d-unknown-field.yaml",
            "scenario: unknown field\nflow: reception\nexpectations:\n  - end: transferred\n",
        ),
    ]);
    let out = callflow_test(dir.path(), &["."]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    assert!(!text.contains("<input>"), "{text}");
    assert!(
        text.contains("scenario after-hours calls go to the night line ... ok"),
        "{text}"
    );
    for at in [
        "b-unclosed.yaml:5:5",
        "c-two-mistakes.yaml:3:8",
        "c-two-mistakes.yaml:5:5",
        "c-two-mistakes.yaml:7:5",
        "d-unknown-field.yaml:3:1",
    ] {
        assert!(text.contains(at), "{at} missing:\n{text}");
    }
    insta::assert_snapshot!(text);
}

/// What `callflow test` prints about one scenario, the timeline left out
/// (its times are the scenario's clock, but it is long and not the point).
fn failure_report(name: &str, text: &str) -> String {
    let dir = folder(&[(name, text)]);
    let out = callflow_test(dir.path(), &[name, "reception.yaml"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    let mut kept = Vec::new();
    let mut in_timeline = false;
    for line in text.lines() {
        if line == "  timeline:" {
            in_timeline = true;
        } else if in_timeline && !line.starts_with("    ") {
            in_timeline = false;
        }
        if !in_timeline {
            kept.push(line);
        }
    }
    kept.join("\n")
}

#[test]
fn a_strict_failure_says_first_what_happened_unexpected_and_shows_what_happened_as_happened() {
    // The designer left `answer` out: transfer and end did happen.
    let text = failure_report("strict.yaml", &NIGHT_LINE.replace("  - answer\n", ""));
    let reasons: Vec<&str> = text.lines().filter(|l| l.contains("reason:")).collect();
    assert_eq!(
        reasons,
        ["  reason: strict: 2 lines expected, 3 happened; not expected: line 1 `answer`"],
        "{text}"
    );
    assert!(!text.contains("did not happen"), "{text}");
    assert!(!text.contains('✗'), "{text}");
    insta::assert_snapshot!(text);
}

#[test]
fn a_line_that_did_not_happen_is_shown_where_it_was_looked_for_and_the_later_ones_still_match() {
    // A wrong number: the transfer did not happen, the end did.
    let text = failure_report(
        "wrong-number.yaml",
        &NIGHT_LINE
            .replace("+14255550199", "+14255550000")
            .replace("strict: true\n", ""),
    );
    let end_row = text
        .lines()
        .find(|l| l.contains("end transferred"))
        .expect("an end row");
    assert!(
        end_row.trim_start().starts_with("end transferred") && end_row.ends_with("end transferred"),
        "the end that happened is beside the one expected: {end_row:?}\n{text}"
    );
    assert!(text.contains("(did not happen)"), "{text}");
    insta::assert_snapshot!(text);
}
