//! Everything we ship is tested: bundled flows, examples, the YAML in the
//! docs, the JSON Schema, the diagrams and the command line as users see it.
//!
//! These tests run the real `callflow` binary where a user would, and
//! snapshot (insta, no colour, fixed width) what users read.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use callflow::flow::diagram::{DiagramFormat, diagram};
use callflow::flow::load::is_scenario_text;
use callflow::flow::schema::{flow_schema, flow_schema_text};
use callflow::flow::{load_paths, load_str};

/// The `callflow` binary, run from the crate's root, without colour, 100 columns.
fn callflow(args: &[&str]) -> Output {
    callflow_in(Path::new(env!("CARGO_MANIFEST_DIR")), args)
}

/// The `callflow` binary, run from `dir`, without colour, 100 columns.
fn callflow_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_callflow"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("COLUMNS", "100")
        .output()
        .expect("run callflow")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("stdout is UTF-8")
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The YAML files under `dir`, sorted.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    callflow::flow::load::yaml_files(&[dir.to_path_buf()])
}

/// The bundled flow files (scenario files excluded), sorted.
fn bundled_flows() -> Vec<PathBuf> {
    yaml_files(&root().join("flows"))
        .into_iter()
        .filter(|p| !is_scenario_text(&std::fs::read_to_string(p).expect("read flow")))
        .collect()
}

#[test]
fn bundled_flows_and_examples_are_clean() {
    let report = load_paths(&[root().join("flows"), root().join("examples")]);
    let shown: Vec<String> = report.diagnostics.iter().map(|d| d.render(100)).collect();
    assert!(
        report.diagnostics.is_empty(),
        "bundled flows must have no error and no warning:\n{}",
        shown.join("\n")
    );
    assert!(
        report.flows.len() >= 7,
        "expected the bundled flows, found {}",
        report.flows.len()
    );
}

#[test]
fn bundled_flows_cover_every_trigger_and_action() {
    use callflow::flow::actions::transfer::Transfer;
    use callflow::flow::{Action, Trigger};
    let report = load_paths(&[root().join("flows")]);
    let mut triggers = std::collections::BTreeSet::new();
    let mut actions = std::collections::BTreeSet::new();
    let mut handlers = std::collections::BTreeSet::new();
    let mut transferee = false;
    for flow in &report.flows {
        triggers.insert(match flow.trigger {
            Trigger::IncomingCall { .. } => "incoming_call",
            Trigger::StateChange { .. } => "state_change",
            Trigger::Api { .. } => "api",
        });
        for step in &flow.steps {
            actions.insert(step.action.kind());
            if let Action::Transfer(Transfer {
                transferee: Some(_),
                ..
            }) = &step.action
            {
                transferee = true;
            }
        }
        handlers.extend(flow.on_state.keys().cloned());
        if !flow.on_error.is_empty() {
            handlers.insert("error".to_owned());
        }
    }
    assert_eq!(triggers.len(), 3, "{triggers:?}");
    let all = [
        "answer",
        "reject",
        "redirect",
        "transfer",
        "consultative_transfer",
        "join_meeting",
        "call",
        "play",
        "menu",
        "collect",
        "record",
        "invite",
        "fetch",
        "switch",
        "set",
        "log",
        "hangup",
        "wait",
    ];
    for a in all {
        assert!(actions.contains(a), "no bundled flow uses `{a}`");
    }
    assert!(transferee, "no bundled flow transfers out of a group call");
    assert!(handlers.contains("error") && handlers.contains("terminated"));
}

#[test]
fn bundled_flows_point_at_the_schema() {
    for path in bundled_flows() {
        let text = std::fs::read_to_string(&path).expect("read flow");
        assert!(
            text.starts_with("# yaml-language-server: $schema=../schema/flow.schema.json\n"),
            "{} must start with the yaml-language-server schema comment",
            path.display()
        );
    }
}

/// One fenced ```yaml block of a Markdown file.
struct Block {
    file: PathBuf,
    line: usize,
    text: String,
    invalid: bool,
}

/// The ```yaml blocks of a Markdown file, each with whether the line before
/// its fence is `<!-- invalid -->`.
fn yaml_blocks(file: &Path) -> Vec<Block> {
    let text = std::fs::read_to_string(file).expect("read markdown");
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let fence = lines[i].trim_start();
        if fence == "```yaml" || fence == "```yml" {
            let invalid = i > 0 && lines[i - 1].trim() == "<!-- invalid -->";
            let start = i + 1;
            let mut end = start;
            while end < lines.len() && lines[end].trim_start() != "```" {
                end += 1;
            }
            out.push(Block {
                file: file.to_path_buf(),
                line: start + 1,
                text: lines[start..end].join("\n") + "\n",
                invalid,
            });
            i = end;
        }
        i += 1;
    }
    out
}

fn markdown_files() -> Vec<PathBuf> {
    let mut files = vec![root().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("docs/")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

#[test]
fn yaml_in_the_docs_is_right() {
    let bundled = load_paths(&[root().join("flows")]);
    let mut checked = 0;
    let mut problems = Vec::new();
    for md in markdown_files() {
        for block in yaml_blocks(&md) {
            let at = format!("{}:{}", block.file.display(), block.line);
            let top_level = |key: &str| block.text.lines().any(|l| l.starts_with(key));
            if top_level("flow:") && !top_level("scenario:") {
                let loaded = load_str(&at, &block.text);
                match (block.invalid, loaded.diagnostics.is_empty()) {
                    (false, false) => problems.push(format!(
                        "{at}: this flow has diagnostics (mark it `<!-- invalid -->` if it shows a mistake):\n{}",
                        loaded
                            .diagnostics
                            .iter()
                            .map(|d| d.render(100))
                            .collect::<String>()
                    )),
                    (true, true) => problems.push(format!(
                        "{at}: marked `<!-- invalid -->` but loads without a diagnostic"
                    )),
                    _ => {}
                }
            } else if top_level("scenario:") && !block.invalid {
                // Scenarios must parse; those of a bundled flow must pass.
                match callflow::sim::scenario::parse(Path::new(&at), &block.text) {
                    Err(e) => problems.push(format!("{at}: not a scenario: {}", e.message)),
                    Ok(scenario) => {
                        if let Some(flow) = bundled.flows.iter().find(|f| f.name == scenario.flow) {
                            let report = callflow::sim::scenario::run(&scenario, flow);
                            if !report.passed {
                                problems.push(format!(
                                    "{at}: the scenario fails:\n{}",
                                    report.render_failure()
                                ));
                            }
                        }
                    }
                }
            } else if !block.invalid {
                // Fragments: they must at least be YAML.
                if let Err(e) = serde_saphyr::from_str::<serde_json::Value>(&block.text) {
                    problems.push(format!("{at}: not valid YAML: {e}"));
                }
            }
            checked += 1;
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
    assert!(
        checked >= 3,
        "expected YAML examples in the docs, found {checked}"
    );
}

#[test]
fn schema_file_is_the_schema_command_output() {
    let shipped = std::fs::read_to_string(root().join("schema/flow.schema.json"))
        .expect("schema/flow.schema.json");
    let printed = stdout(&callflow(&["schema"]));
    assert_eq!(printed, flow_schema_text());
    assert!(
        shipped == printed,
        "schema/flow.schema.json is stale: run `cargo run -- schema > schema/flow.schema.json`"
    );
}

#[test]
fn schema_snapshot() {
    insta::assert_snapshot!("schema", flow_schema_text());
}

#[test]
fn schema_is_a_json_schema_that_accepts_every_bundled_flow() {
    let schema = flow_schema();
    assert!(
        jsonschema::meta::is_valid(&schema),
        "not a valid JSON Schema"
    );
    let validator = jsonschema::validator_for(&schema).expect("compile the schema");
    for path in bundled_flows() {
        let text = std::fs::read_to_string(&path).expect("read flow");
        let value: serde_json::Value = serde_saphyr::from_str(&text).expect("flow is YAML");
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{} is rejected by the schema:\n{}",
            path.display(),
            errors.join("\n")
        );
    }
}

#[test]
fn schema_rejects_an_unknown_field() {
    let validator = jsonschema::validator_for(&flow_schema()).expect("compile the schema");
    let flow = serde_json::json!({
        "flow": "x",
        "trigger": {"api": {}},
        "start": "a",
        "steps": {"a": {"hangup": {}, "nxt": "a"}},
    });
    assert!(!validator.is_valid(&flow));
}

#[test]
fn diagrams_of_bundled_flows() {
    let report = load_paths(&[root().join("flows")]);
    assert!(!report.has_errors());
    for flow in &report.flows {
        insta::assert_snapshot!(
            format!("mermaid_{}", flow.name),
            diagram(flow, DiagramFormat::Mermaid)
        );
        insta::assert_snapshot!(
            format!("dot_{}", flow.name),
            diagram(flow, DiagramFormat::Dot)
        );
    }
}

#[test]
fn graph_command_finds_a_flow_by_name_or_file() {
    let by_name = callflow(&["graph", "reception"]);
    assert!(by_name.status.success());
    let by_file = callflow(&["graph", "flows/reception.yaml", "--format", "mermaid"]);
    assert_eq!(stdout(&by_name), stdout(&by_file));
    assert!(stdout(&by_name).contains("flowchart TD"));
    let dot = callflow(&["graph", "reception", "--format", "dot"]);
    assert!(stdout(&dot).starts_with("digraph \"reception\" {"));
    let missing = callflow(&["graph", "recepton"]);
    assert_eq!(missing.status.code(), Some(1));
    let err = String::from_utf8_lossy(&missing.stderr).into_owned();
    assert!(err.contains("did you mean `reception`?"), "{err}");
}

#[test]
fn help_texts() {
    for (name, args) in [
        ("help", vec!["--help"]),
        ("help_validate", vec!["validate", "--help"]),
        ("help_schema", vec!["schema", "--help"]),
        ("help_graph", vec!["graph", "--help"]),
        ("help_test", vec!["test", "--help"]),
        ("help_simulate", vec!["simulate", "--help"]),
        ("help_sim_graph", vec!["sim-graph", "--help"]),
        ("help_serve", vec!["serve", "--help"]),
        ("help_run", vec!["run", "--help"]),
        ("help_load", vec!["load", "--help"]),
        ("help_studio", vec!["studio", "--help"]),
        ("help_hours", vec!["hours", "--help"]),
    ] {
        let out = callflow(&args);
        assert!(out.status.success(), "{name}");
        insta::assert_snapshot!(name, stdout(&out));
    }
}

#[test]
fn validate_bundled_flows_exits_0() {
    let out = callflow(&["validate", "flows"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let flows = bundled_flows().len();
    assert_eq!(
        text,
        format!("checked {flows} files: {flows} flows, 0 errors, 0 warnings\n")
    );
    // `flows` is the default.
    assert_eq!(stdout(&callflow(&["validate"])), text);
}

/// reception.yaml with one mistake: `on_failure: operater` (a step that does not exist).
fn broken_reception(dir: &Path) -> (PathBuf, usize, usize) {
    let text = std::fs::read_to_string(root().join("flows/reception.yaml")).expect("read");
    let broken = text.replacen(
        "    on_failure: operator\n",
        "    on_failure: operater\n",
        1,
    );
    assert_ne!(text, broken, "reception.yaml changed: update this test");
    let line = broken
        .lines()
        .position(|l| l == "    on_failure: operater")
        .expect("the broken line")
        + 1;
    let path = dir.join("reception.yaml");
    std::fs::write(&path, broken).expect("write");
    (path, line, 17)
}

#[test]
fn validate_a_broken_flow_exits_1_at_the_mistake() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, line, col) = broken_reception(dir.path());
    let path = path.to_str().expect("utf-8 path");

    let out = callflow(&["validate", path]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("callflow::step::unknown"), "{text}");
    assert!(
        text.contains(&format!("reception.yaml:{line}:{col}]")),
        "expected the mistake at {line}:{col}:\n{text}"
    );
    assert!(text.contains("did you mean `operator`?"), "{text}");
    assert!(
        text.ends_with("checked 1 file: 0 flows, 1 error, 0 warnings\n"),
        "{text}"
    );

    let out = callflow(&["validate", "--format", "json", path]);
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON output");
    assert_eq!(json["files"], 1);
    assert_eq!(json["errors"], 1);
    assert_eq!(json["warnings"], 0);
    let d = &json["diagnostics"][0];
    assert_eq!(d["code"], "callflow::step::unknown");
    assert_eq!(d["line"], line);
    assert_eq!(d["column"], col);
}

#[test]
fn validate_json_of_bundled_flows() {
    let out = callflow(&["validate", "--format", "json"]);
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON output");
    assert_eq!(json["files"], bundled_flows().len());
    assert_eq!(json["errors"], 0);
    assert_eq!(json["diagnostics"], serde_json::json!([]));
}

#[test]
fn scenarios_of_bundled_flows_pass_and_cover_every_step() {
    let out = callflow(&["test", "flows", "--coverage"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains(" passed, 0 failed\n"), "{text}");
    for flow in load_paths(&[root().join("flows")]).flows {
        assert!(
            text.contains(&format!("  {}: every step and link reached\n", flow.name)),
            "flow `{}` has steps or links no scenario reaches:\n{text}",
            flow.name
        );
    }
}

#[test]
fn test_writes_junit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let junit = dir.path().join("junit.xml");
    let out = callflow(&[
        "test",
        "flows/scenarios/helpdesk",
        "--junit",
        junit.to_str().expect("utf-8 path"),
    ]);
    assert!(out.status.success(), "{}", stdout(&out));
    let xml = std::fs::read_to_string(&junit).expect("junit.xml");
    assert!(xml.starts_with("<?xml"));
    assert!(xml.contains("<testsuite name=\"callflow\""));
    assert!(xml.contains("failures=\"0\""));
}

#[test]
fn simulate_prints_a_timeline() {
    let out = callflow(&[
        "simulate",
        "reception",
        "--dtmf",
        "1",
        "--graph",
        "transfer=fail",
    ]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("sales (key 1)"), "{text}");
    assert!(text.contains("operator (on_failure)"), "{text}");
    let bad = callflow(&["simulate", "reception", "--graph", "transfer"]);
    assert_eq!(bad.status.code(), Some(2));
    // A run that ends in `error` fails, as in `callflow test`.
    let dir = tempfile::tempdir().expect("a temp dir");
    let flow = dir.path().join("bare-desk.yaml");
    std::fs::write(
        &flow,
        "flow: bare-desk\ntrigger:\n  incoming_call:\n    to: \"+14255550199\"\nstart: greet\n\
         steps:\n  greet:\n    answer: {}\n    next: desk\n  desk:\n    \
         transfer: { to: { phone: \"+14255550123\" } }\n",
    )
    .expect("the flow is written");
    let failed = callflow(&[
        "simulate",
        flow.to_str().expect("a UTF-8 path"),
        "--graph",
        "transfer=fail",
    ]);
    let text = stdout(&failed);
    assert_eq!(failed.status.code(), Some(1), "{text}");
    assert!(
        text.contains("end      error: the transfer failed"),
        "{text}"
    );
}

#[test]
fn readme_diagram_is_the_graph_output() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let start = readme
        .find("```mermaid\n")
        .expect("a mermaid block in the README")
        + 11;
    let len = readme[start..].find("```").expect("the block's end");
    let printed = stdout(&callflow(&["graph", "reception"]));
    assert!(
        readme[start..start + len] == printed,
        "the README's diagram is stale: paste `callflow graph reception` into it"
    );
}

/// Names, descriptions and conditions full of Mermaid and dot syntax.
const HOSTILE_LABELS: &str = r#"
flow: labels
description: "a \"quoted\" <b>bold</b> # | ` }{ ][ %%{init: {}}%%"
trigger:
  api: {}
vars:
  x: 1
start: a-b
steps:
  a-b:
    switch:
      - when: 'vars.x > 1 && "a#b|c" != "<d>" || `e` == "}{][" || "%%{x}%%" == "\\"'
        goto: end
      - goto: end_2
  end:
    log: "end"
    next: end_2
  end_2:
    hangup: {}
on:
  error:
    - goto: end
"#;

#[test]
fn diagram_labels_are_escaped() {
    let loaded = load_str("labels.yaml", HOSTILE_LABELS);
    assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
    let flow = loaded.flow.expect("the flow loads");
    // Checked with the `mermaid` npm package's parser when it changes.
    insta::assert_snapshot!("mermaid_labels", diagram(&flow, DiagramFormat::Mermaid));
    insta::assert_snapshot!("dot_labels", diagram(&flow, DiagramFormat::Dot));
}

#[test]
fn graph_of_a_broken_flow_shows_its_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, line, col) = broken_reception(dir.path());
    let out = callflow(&["graph", path.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains(&format!("reception.yaml:{line}:{col}]")),
        "{text}"
    );
    assert!(!text.contains("flowchart"), "{text}");
}

#[test]
fn validate_a_missing_path_is_an_error() {
    let out = callflow(&["validate", "no/such/flow.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("callflow::input::read"), "{text}");
    assert!(text.contains("no/such/flow.yaml"), "{text}");
}

/// The issue's promise: a new user breaks a bundled flow in five places and
/// `callflow validate` shows all five, at their line and column, with a hint.
#[test]
fn five_mistakes_in_reception_are_all_shown() {
    let mut text = std::fs::read_to_string(root().join("flows/reception.yaml")).expect("read");
    for (good, bad) in [
        ("'open(\"office\")'", "'open(\"ofice\")'"),
        ("      timeout: 10s\n", "      timeout: 10\n"),
        ("      retries: 2\n", "      retrys: 2\n"),
        ("    on_failure: operator\n", "    on_failure: operater\n"),
        (
            "to: { phone: \"+12345678901\" }",
            "to: { phone: \"+1 234 567 8901\" }",
        ),
    ] {
        assert!(
            text.contains(good),
            "reception.yaml changed: update this test"
        );
        text = text.replacen(good, bad, 1);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("reception.yaml"), text).expect("write");
    let out = callflow_in(dir.path(), &["validate", "reception.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    insta::assert_snapshot!("five_mistakes", stdout(&out));
}

/// Every diagnostic code the checker can emit is explained in the language reference.
#[test]
fn every_diagnostic_code_is_documented() {
    let docs = std::fs::read_to_string(root().join("docs/flow-language.md")).expect("the docs");
    let mut codes = Vec::new();
    let mut stack = vec![root().join("src/flow")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("src/flow").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("a source file");
            for piece in text.split("\"callflow::").skip(1) {
                let code: String = piece
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_' || *c == ':')
                    .collect();
                if piece[code.len()..].starts_with('"') {
                    codes.push(format!("callflow::{code}"));
                }
            }
        }
    }
    codes.sort();
    codes.dedup();
    assert!(codes.len() > 40, "found only {} codes", codes.len());
    let missing: Vec<&String> = codes
        .iter()
        .filter(|c| !docs.contains(&format!("`{c}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "not in docs/flow-language.md: {missing:?}"
    );
}

/// The README's `serve.toml` is a config file `serve` reads.
#[test]
fn the_readmes_serve_toml_reads() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README");
    let start = readme
        .find("```toml\n# serve.toml")
        .expect("the serve.toml block")
        + 8;
    let end = start + readme[start..].find("```").expect("its end");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("serve.toml");
    std::fs::write(&path, &readme[start..end]).expect("write");
    let s =
        callflow::serve::Settings::layered(&callflow::serve::ServeOptions::default(), Some(&path))
            .unwrap_or_else(|e| panic!("the README's serve.toml does not read: {e}"));
    assert_eq!(s.instances.len(), 2);
    assert_eq!(s.bot_name.as_deref(), Some("Contoso Bot"));
    assert_eq!(
        s.callback_uri().as_deref(),
        Ok("https://bot.example.com/api/calls")
    );
}

/// The cells of each row of the table after `<!-- functions -->` in the
/// language reference.
fn function_table() -> Vec<Vec<String>> {
    let docs = std::fs::read_to_string(root().join("docs/flow-language.md")).expect("the docs");
    let table = docs
        .split("<!-- functions -->")
        .nth(1)
        .expect("a functions table in docs/flow-language.md");
    table
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(|row| {
            row.trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().trim_matches('`').to_owned())
                .collect()
        })
        .collect()
}

#[test]
fn every_expression_function_is_in_the_reference_with_an_example_that_runs() {
    use callflow::flow::expr::{EvalInput, Expr, FUNCTIONS, compile};
    use chrono::TimeZone;

    let rows = function_table();
    let written: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    let listed: Vec<&str> = FUNCTIONS.iter().map(|f| f.written).collect();
    assert_eq!(
        written, listed,
        "the functions table of docs/flow-language.md lists callflow::flow::expr::FUNCTIONS, in order"
    );
    // The inputs the reference says its examples run with.
    let flow = load_str(
        "f.yaml",
        "flow: f\ntrigger: {api: {}}\ncalendars: {office: {hours: [\"mon-fri 09:00-17:00\"]}}\nstart: a\nsteps:\n  a:\n    hangup: {}\n",
    )
    .flow
    .expect("the flow loads");
    let json = |v: serde_json::Value| -> rhai::Map {
        rhai::serde::to_dynamic(v)
            .expect("a map")
            .try_cast::<rhai::Map>()
            .expect("a map")
    };
    let input = EvalInput {
        call: json(serde_json::json!({"from": {"phone": "+33612345678"}})),
        vars: json(serde_json::json!({
            "vips": ["+14255550100", "+33612345678"],
            "name": "Anne Dupont",
            "patient": "412345",
        })),
        ..EvalInput::default()
    };
    let now = chrono_tz::Tz::UTC
        .with_ymd_and_hms(2026, 1, 5, 10, 30, 0)
        .single()
        .expect("a time");
    for row in &rows {
        let (example, gives) = (&row[2], &row[3]);
        let ast = compile(example, &["office"])
            .unwrap_or_else(|e| panic!("`{example}` does not compile: {e:?}"));
        let value = Expr::new(example.as_str(), Default::default(), ast)
            .eval(&input, now, &flow.calendars)
            .unwrap_or_else(|e| panic!("`{example}`: {e}"));
        let value: serde_json::Value = rhai::serde::from_dynamic(&value).expect("json");
        let expected: serde_json::Value =
            serde_json::from_str(gives).unwrap_or_else(|e| panic!("`{gives}`: {e}"));
        assert_eq!(value, expected, "`{example}` in docs/flow-language.md");
    }
    // A misspelt one is caught at load, with the right name.
    let loaded = load_str(
        "f.yaml",
        "flow: f\ntrigger: {incoming_call: {}}\nstart: a\nsteps:\n  a:\n    log: \"${url_encod(call.from.phone)} ${call.from.phone.strats_with(\\\"+33\\\")}\"\n",
    );
    let hints: Vec<(&str, String)> = loaded
        .diagnostics
        .iter()
        .map(|d| (d.code, d.help.clone().unwrap_or_default()))
        .collect();
    assert_eq!(
        hints,
        [
            ("callflow::expr::unknown_fn", "did you mean `url_encode`?".to_owned()),
            ("callflow::expr::unknown_fn", "did you mean `starts_with`?".to_owned()),
        ]
    );
}
