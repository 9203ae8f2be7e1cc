//! `callflow load` runs end to end with tiny numbers: the real binary,
//! sim-graph, server, runtime and generator on loopback. Never asserts on
//! speed, only that the report is there and no request got a 5xx.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn load_runs_end_to_end_with_tiny_numbers() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_callflow"))
        .args([
            "load",
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
        ])
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
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
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
    let row = |name: &str| -> Vec<String> {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("| {name}")))
            .unwrap_or_else(|| panic!("no row {name:?} in:\n{stdout}"));
        line.split('|').map(|c| c.trim().to_owned()).collect()
    };
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
