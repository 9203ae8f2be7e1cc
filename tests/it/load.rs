//! `callflow load` runs end to end with tiny numbers: the real binary,
//! sim-graph, server, runtime and generator on loopback; with PostgreSQL,
//! two `callflow serve` processes behind the balancer, and a failover.
//! Never asserts on speed, only that the report is there, no request got
//! a 5xx and the counts add up.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::require;

/// Runs `callflow load ARGS` (two minutes at most); its standard output,
/// after checking it exited 0.
fn load(args: &[&str]) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_callflow"))
        .arg("load")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if child.try_wait().expect("the child can be polled").is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("callflow load did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("the output is read");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    stdout
}

/// The cells of the report's table row `name`.
fn row(stdout: &str, name: &str) -> Vec<String> {
    let line = stdout
        .lines()
        .find(|l| l.starts_with(&format!("| {name}")))
        .unwrap_or_else(|| panic!("no row {name:?} in:\n{stdout}"));
    line.split('|').map(|c| c.trim().to_owned()).collect()
}

/// The number after `label` in `line`.
fn number_after(line: &str, label: &str) -> u64 {
    let rest = &line[line
        .find(label)
        .unwrap_or_else(|| panic!("no {label:?} in {line:?}"))
        + label.len()..];
    rest.trim_start()
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number after {label:?} in {line:?}"))
}

#[test]
fn load_runs_end_to_end_with_tiny_numbers() {
    let stdout = load(&[
        "--notifications",
        "200",
        "--calls",
        "5",
        "--concurrency",
        "4",
        "--duration",
        "20s",
        "--rate",
        "2000",
    ]);
    for line in [
        "callflow server",
        "bare axum 202",
        "notifications/s (202s per second)",
        "errors by status",
        "received -> Graph request sent p99",
        "sustained phase: 200 notifications offered at 2000/s",
        "memory per live session",
        "ratio to bare axum",
    ] {
        assert!(stdout.contains(line), "no {line:?} in:\n{stdout}");
    }
    let row = |name: &str| row(&stdout, name);
    let answers = row("202 answers");
    assert_eq!(
        answers[2], "200",
        "every notification answered 202:\n{stdout}"
    );
    let errors = row("errors by status");
    assert_eq!(
        errors[2], "none",
        "no error status from the server:\n{stdout}"
    );
}

#[test]
fn load_through_two_postgres_instances_answers_every_notification_and_the_counts_add_up() {
    if !require::postgres() {
        return;
    }
    let url = require::postgres_url();
    let stdout = load(&[
        "--store",
        &url,
        "--instances",
        "2",
        "--notifications",
        "300",
        "--calls",
        "10",
        "--concurrency",
        "4",
        "--duration",
        "20s",
        "--rate",
        "1000",
    ]);
    for line in [
        "2 instances",
        "bare axum 202",
        "received -> Graph request sent p99",
        "sustained phase: 300 notifications offered at 1000/s",
        ">= 5,000 notifications/s",
        "p99 received -> sent < 10 ms",
    ] {
        assert!(stdout.contains(line), "no {line:?} in:\n{stdout}");
    }
    let answers = row(&stdout, "202 answers");
    assert_eq!(
        answers[2], "300",
        "every notification answered 202:\n{stdout}"
    );
    assert_eq!(row(&stdout, "errors by status")[2], "none", "{stdout}");
    // Both instances took requests through the balancer, and the holder of
    // a call was not always the instance a notification reached.
    let instances = stdout
        .lines()
        .find(|l| l.starts_with("instances: "))
        .unwrap_or_else(|| panic!("no instances line in:\n{stdout}"));
    assert!(number_after(instances, "load-0") > 0, "{stdout}");
    assert!(number_after(instances, "load-1") > 0, "{stdout}");
    let counts = stdout
        .lines()
        .find(|l| l.starts_with("  notifications received"))
        .unwrap_or_else(|| panic!("no counts line in:\n{stdout}"));
    assert!(number_after(counts, "(forwarded)") > 0, "{stdout}");
    assert_eq!(number_after(counts, "store errors"), 0, "{stdout}");
    assert_eq!(number_after(counts, "overloaded"), 0, "{stdout}");
    // What the generator and sim-graph posted is what the instances answered.
    let sums = stdout
        .lines()
        .find(|l| l.starts_with("counts: "))
        .unwrap_or_else(|| panic!("no counts line in:\n{stdout}"));
    let generated = number_after(sums, "generator 202s");
    let posted = number_after(sums, "sim-graph notifications");
    let answered = number_after(sums, "the instances answered 202:");
    assert_eq!(generated, 600, "both phases' 300 notifications:\n{stdout}");
    assert!(posted > 0, "{stdout}");
    assert_eq!(generated + posted, answered, "{stdout}");
    assert!(sums.contains("they add up"), "{stdout}");
}

#[test]
fn load_failover_resumes_every_call_of_the_killed_instance_on_the_other() {
    if !require::postgres() {
        return;
    }
    let url = require::postgres_url();
    let stdout = load(&[
        "--store",
        &url,
        "--instances",
        "2",
        "--failover",
        "8",
        "--lease",
        "2s",
    ]);
    let killed = stdout
        .lines()
        .find(|l| l.starts_with("  kill -9"))
        .unwrap_or_else(|| panic!("no kill line in:\n{stdout}"));
    let held = number_after(killed, "which holds");
    assert!(held > 0, "the killed instance held calls:\n{stdout}");
    let resumed = stdout
        .lines()
        .find(|l| l.contains("its prompt played again (resumed)"))
        .unwrap_or_else(|| panic!("no resumed line in:\n{stdout}"));
    assert_eq!(
        number_after(resumed, "(resumed)"),
        held,
        "every call of the killed instance resumed:\n{stdout}"
    );
    assert!(
        resumed.contains(&format!("of {held}")),
        "{resumed:?}\n{stdout}"
    );
}
