//! Load-and-check speed: a generated 1,000-step flow (target < 20 ms) and a
//! folder of 200 flows (target < 200 ms).
//!
//! Run with `cargo bench --bench load`; the figures go in the README.

use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};

use callflow::flow::{load_paths, load_str};

/// A flow of `steps` steps that uses most actions, expressions and templates.
fn generated_flow(name: &str, number: &str, steps: usize) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "flow: {name}\ntimezone: Europe/Paris\ntrigger:\n  incoming_call:\n    to: \"{number}\"\n\
         calendars:\n  office:\n    hours: [\"mon-fri 09:00-12:30\", \"mon-fri 13:30-17:00\"]\n    \
         closed: [\"2026-12-24..2026-12-26\"]\nvars:\n  n: 0\n  night: \"+14255550199\"\n\
         start: s0\nsteps:\n"
    );
    for i in 0..steps {
        let next = if i + 1 < steps {
            format!("s{}", i + 1)
        } else {
            "bye".to_owned()
        };
        let _ = match i % 6 {
            0 => write!(
                s,
                "  s{i}:\n    log: \"step {i} of ${{call.id}} at ${{hour()}}\"\n    next: {next}\n"
            ),
            1 => write!(
                s,
                "  s{i}:\n    set:\n      n: \"vars.n + {i}\"\n    next: {next}\n"
            ),
            2 => write!(
                s,
                "  s{i}:\n    switch:\n      - when: 'open(\"office\") && vars.n > {i}'\n        goto: {next}\n      - goto: {next}\n"
            ),
            3 => write!(
                s,
                "  s{i}:\n    play: {{ prompt: \"https://cdn.contoso.com/p{i}.wav\" }}\n    next: {next}\n    on_failure: bye\n"
            ),
            4 => write!(
                s,
                "  s{i}:\n    menu:\n      prompt: https://cdn.contoso.com/m{i}.wav\n      choices: {{ \"1\": {next}, \"2\": bye }}\n      timeout: 10s\n    on_timeout: {next}\n"
            ),
            _ => write!(
                s,
                "  s{i}:\n    transfer:\n      to: {{ phone: \"${{vars.night}}\" }}\n      timeout: 30s\n    next: {next}\n    on_failure: {next}\n"
            ),
        };
    }
    s.push_str("  bye:\n    hangup: {}\non:\n  terminated:\n    - log: \"ended in ${step}\"\n");
    s
}

fn load(c: &mut Criterion) {
    let big = generated_flow("big", "+14255550100", 1_000);
    let loaded = load_str("big.yaml", &big);
    assert!(loaded.flow.is_some(), "{:#?}", loaded.diagnostics);
    assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
    c.bench_function("load and check a 1,000-step flow", |b| {
        b.iter(|| load_str("big.yaml", black_box(&big)))
    });

    let dir = tempfile::tempdir().expect("tempdir");
    for i in 0..200 {
        let text = generated_flow(&format!("flow-{i}"), &format!("+1425556{i:04}"), 20);
        std::fs::write(dir.path().join(format!("flow-{i}.yaml")), text).expect("write");
    }
    let paths = [dir.path().to_path_buf()];
    let report = load_paths(&paths);
    assert_eq!(report.flows.len(), 200);
    assert!(report.diagnostics.is_empty(), "{:#?}", report.diagnostics);
    c.bench_function("load and check a folder of 200 flows", |b| {
        b.iter(|| load_paths(black_box(&paths)))
    });
}

criterion_group!(benches, load);
criterion_main!(benches);
