//! Hostile input ends in a clear diagnostic, within bounded time and
//! memory: never a hang, a crash or a panic.
//!
//! Each case asserts on the diagnostic's code, never on wall-clock time:
//! the bounds are the budgets of `flow::yaml` (4 MiB, depth 64, 500,000
//! values), the step and diagnostic caps of `flow::check`, and the rhai
//! sandbox of `flow::expr`. A proptest feeds arbitrary bytes and mutations
//! of `flows/reception.yaml` to `load_str` and checks every span.

use std::io::Write;
use std::sync::Arc;

use callflow::flow::{Diagnostic, load_file, load_str};
use proptest::prelude::*;

const RECEPTION: &str = include_str!("../../flows/reception.yaml");

/// Loads `text` and returns the codes of its errors, checking spans and
/// that every diagnostic renders.
fn codes(text: &str) -> Vec<&'static str> {
    let loaded = load_str("hostile.yaml", text);
    callflow::fuzzing::spans_valid(&loaded.diagnostics).expect("spans");
    for d in &loaded.diagnostics {
        assert!(!d.render(100).is_empty());
    }
    assert!(loaded.flow.is_none(), "hostile input must not load");
    loaded
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.code)
        .collect()
}

/// A small valid flow around one `switch` case's `when`.
fn with_when(when: &str) -> String {
    format!(
        "flow: f\ntrigger: {{ api: {{}} }}\nstart: a\nsteps:\n  a:\n    switch:\n      - when: '{when}'\n        goto: b\n      - goto: b\n  b:\n    hangup: {{}}\n"
    )
}

/// A small valid flow around one `log` text.
fn with_log(log: &str) -> String {
    format!("flow: f\ntrigger: {{ api: {{}} }}\nstart: a\nsteps:\n  a:\n    log: '{log}'\n")
}

#[test]
fn billion_laughs() {
    let mut src =
        String::from("flow: f\nvars:\n  a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..10 {
        let p = i - 1;
        src.push_str(&format!(
            "  a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    assert_eq!(codes(&src), ["callflow::input::alias_bomb"]);
}

#[test]
fn a_100_mb_file_is_refused_before_parsing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("huge.yaml");
    let f = std::fs::File::create(&path).expect("create");
    // A sparse file: 100 MB of NUL bytes, of which only the budget is read.
    f.set_len(100 * 1024 * 1024).expect("set_len");
    drop(f);
    let loaded = load_file(&path);
    let codes: Vec<_> = loaded.diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(codes, ["callflow::input::too_large"]);
    assert!(loaded.diagnostics[0].message.contains("4194304"));
}

#[test]
fn text_over_the_budget_is_refused() {
    let mut text = String::from("flow: f\ndescription: ");
    text.push_str(&"x".repeat(5 * 1024 * 1024));
    assert_eq!(codes(&text), ["callflow::input::too_large"]);
}

#[test]
fn ten_thousand_levels_of_flow_nesting() {
    let text = format!(
        "flow: f\nvars:\n  x: {}{}\n",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    assert_eq!(codes(&text), ["callflow::input::too_deep"]);
    let text = format!(
        "flow: f\nvars:\n  x: {}{}\n",
        "{a: ".repeat(10_000),
        "}".repeat(10_000)
    );
    assert_eq!(codes(&text), ["callflow::input::too_deep"]);
}

#[test]
fn ten_thousand_levels_of_block_nesting() {
    // `- - - x`: block sequences nested on one line.
    let text = format!("flow: f\nvars:\n  x:\n    {}x\n", "- ".repeat(10_000));
    assert_eq!(codes(&text), ["callflow::input::too_deep"]);
    // Block mappings, one more space of indentation per level (2,000 levels
    // stay under the size budget).
    let mut text = String::from("flow: f\nvars:\n");
    for i in 0..2_000 {
        text.push_str(&" ".repeat(i + 1));
        text.push_str("k:\n");
    }
    assert_eq!(codes(&text), ["callflow::input::too_deep"]);
}

#[test]
fn invalid_utf8_through_load_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.yaml");
    let mut f = std::fs::File::create(&path).expect("create");
    f.write_all(b"flow: f\ntrigger: { api: {} }\ndescription: \xff\xfe caf\xc3\n")
        .expect("write");
    drop(f);
    let loaded = load_file(&path);
    callflow::fuzzing::spans_valid(&loaded.diagnostics).expect("spans");
    let codes: Vec<_> = loaded.diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(codes, ["callflow::input::utf8"]);
    assert!(loaded.diagnostics[0].location().ends_with(":3:14"));
}

#[test]
fn a_nul_byte() {
    let text = RECEPTION.replacen("greet", "gr\0eet", 1);
    let c = codes(&text);
    assert!(!c.is_empty());
    let text = "flow: f\0\ntrigger: { api: {} }\n";
    assert!(!codes(text).is_empty());
}

#[test]
fn a_very_long_line_is_read() {
    let long = "x".repeat(3 * 1024 * 1024);
    let text = format!(
        "flow: f\ndescription: {long}\ntrigger: {{ api: {{}} }}\nstart: a\nsteps:\n  a:\n    hangup: {{}}\n"
    );
    let loaded = load_str("long.yaml", &text);
    assert!(loaded.diagnostics.is_empty());
    assert!(loaded.flow.is_some());
    // The same line with a mistake after it still points at the mistake.
    let text = text.replace("hangup: {}", "hangup: {}\n    nxt: a");
    let loaded = load_str("long.yaml", &text);
    callflow::fuzzing::spans_valid(&loaded.diagnostics).expect("spans");
    assert_eq!(loaded.diagnostics[0].location(), "long.yaml:8:5");
}

#[test]
fn a_mistake_far_along_a_long_line_renders_as_an_excerpt() {
    let text = with_log(&format!("{}${{caller.phone}}", "x".repeat(100_000)));
    let loaded = load_str("long.yaml", &text);
    let d = &loaded.diagnostics[0];
    assert_eq!(d.code, "callflow::expr::unknown_var");
    assert_eq!(d.location(), "long.yaml:6:100013");
    let shown = d.render(100);
    assert!(shown.contains("[long.yaml:6:100013]"), "{shown}");
    assert!(shown.contains("…xxxx"), "{shown}");
    assert!(shown.len() < 2_000, "{shown}");
}

/// 100,000 steps: more than a flow may hold (10,000); refused with one
/// clear error, and without computing 100,000 "did you mean"s.
#[test]
fn a_hundred_thousand_steps_are_refused() {
    let mut text = String::from("flow: f\ntrigger: { api: {} }\nstart: s0\nsteps:\n");
    for i in 0..100_000 {
        text.push_str(&format!("  s{i}: {{log: x, next: t{i}}}\n"));
    }
    let c = codes(&text);
    assert!(
        c == ["callflow::step::too_many"] || c == ["callflow::input::too_large"],
        "{c:?}"
    );
    // Below the node budget, still refused by the step bound.
    let mut text = String::from("flow: f\ntrigger: { api: {} }\nstart: s0\nsteps:\n");
    for i in 0..20_000 {
        text.push_str(&format!("  s{i}: {{log: x, next: t{i}}}\n"));
    }
    assert_eq!(codes(&text), ["callflow::step::too_many"]);
}

/// Thousands of mistakes: the first ones are reported, then a note that
/// there are more, and the rest is not analysed further.
#[test]
fn many_mistakes_are_capped() {
    let mut text = String::from("flow: f\ntrigger: { api: {} }\nstart: s0\nsteps:\n");
    for i in 0..5_000 {
        text.push_str(&format!("  s{i}: {{log: x, next: t{i}}}\n"));
    }
    let loaded = load_str("many.yaml", &text);
    callflow::fuzzing::spans_valid(&loaded.diagnostics).expect("spans");
    assert!(
        loaded.diagnostics.len() <= 201,
        "{}",
        loaded.diagnostics.len()
    );
    let last = loaded.diagnostics.last().expect("diagnostics");
    assert_eq!(last.code, "callflow::input::too_many_problems");
}

/// Thousands of unknown fields: each error costs a re-read of the tree, so
/// reading stops after a bounded number of them.
#[test]
fn many_unknown_fields_are_capped() {
    let mut text = String::from("flow: f\ntrigger: { api: {} }\nstart: s0\nsteps:\n");
    for i in 0..9_000 {
        text.push_str(&format!("  s{i}: {{log: x, nxt: s0}}\n"));
    }
    let c = codes(&text);
    assert!(c.len() <= 201, "{}", c.len());
    assert_eq!(c.last(), Some(&"callflow::input::too_many_problems"));
}

#[test]
fn ten_thousand_parentheses_in_a_when() {
    let when = format!("{}true{}", "(".repeat(10_000), ")".repeat(10_000));
    assert_eq!(codes(&with_when(&when)), ["callflow::expr::syntax"]);
    let deep_calls = format!("{}1{}", "hour(".repeat(5_000), ")".repeat(5_000));
    assert_eq!(codes(&with_when(&deep_calls)), ["callflow::expr::syntax"]);
    let deep_not = format!("{}true", "!".repeat(10_000));
    assert_eq!(codes(&with_when(&deep_not)), ["callflow::expr::syntax"]);
}

#[test]
fn fifty_thousand_template_openers() {
    assert_eq!(
        codes(&with_log(&"${".repeat(50_000))),
        ["callflow::expr::syntax"]
    );
    let closed = "${nope}".repeat(50_000);
    let c = codes(&with_log(&closed));
    assert!(c.len() <= 201);
    assert_eq!(c.last(), Some(&"callflow::input::too_many_problems"));
}

#[test]
fn a_huge_string_in_an_expression() {
    let when = format!("call.id == \"{}\"", "a".repeat(1024 * 1024));
    assert_eq!(codes(&with_when(&when)), ["callflow::expr::syntax"]);
}

#[test]
fn aliases_within_the_budget_still_load() {
    let text = "flow: f\ntrigger: { api: {} }\nvars:\n  a: &a { x: 1 }\n  b: *a\nstart: s\nsteps:\n  s:\n    hangup: {}\n";
    let loaded = load_str("ok.yaml", text);
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
}

/// One random edit of a line-based text.
#[derive(Clone, Debug)]
enum Edit {
    Delete(usize),
    Duplicate(usize),
    Swap(usize, usize),
    Insert(usize, String),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        any::<usize>().prop_map(Edit::Delete),
        any::<usize>().prop_map(Edit::Duplicate),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::Swap(a, b)),
        (
            any::<usize>(),
            "[ -~\\t\\n:{}\\[\\]\"'&*!|>#%@`$-]{1,6}|\\PC{1,3}"
        )
            .prop_map(|(a, s)| Edit::Insert(a, s)),
    ]
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    for e in edits {
        if lines.is_empty() {
            break;
        }
        let n = lines.len();
        match e {
            Edit::Delete(i) => {
                lines.remove(i % n);
            }
            Edit::Duplicate(i) => {
                let l = lines[i % n].clone();
                lines.insert(i % n, l);
            }
            Edit::Swap(a, b) => lines.swap(a % n, b % n),
            Edit::Insert(i, s) => {
                let line = &mut lines[i % n];
                let at = line
                    .char_indices()
                    .map(|(b, _)| b)
                    .nth(i / n % (line.chars().count() + 1))
                    .unwrap_or(line.len());
                line.insert_str(at, s);
            }
        }
    }
    lines.join("\n") + "\n"
}

fn never_panics(text: &str) -> Result<(), TestCaseError> {
    let loaded = load_str("fuzz.yaml", text);
    callflow::fuzzing::spans_valid(&loaded.diagnostics).map_err(TestCaseError::fail)?;
    for d in &loaded.diagnostics {
        prop_assert!(!d.message.is_empty());
        let _ = d.render(100);
        let _ = d.to_json();
    }
    if loaded.diagnostics.iter().any(Diagnostic::is_error) {
        prop_assert!(loaded.flow.is_none());
    }
    Ok(())
}

proptest! {
    // 256 cases each by default; more with `PROPTEST_CASES=N`.
    #![proptest_config(ProptestConfig::default())]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        never_panics(&String::from_utf8_lossy(&bytes))?;
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
        never_panics(&text)?;
    }

    #[test]
    fn mutations_of_reception_never_panic(edits in proptest::collection::vec(edit(), 1..6)) {
        never_panics(&apply(RECEPTION, &edits))?;
    }
}

#[test]
fn reception_is_clean() {
    let loaded = load_str("reception.yaml", RECEPTION);
    assert!(loaded.diagnostics.is_empty());
    let _ = Arc::new(loaded.flow.expect("flow"));
}
