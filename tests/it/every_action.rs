//! Every action of the language is declared everywhere it must be: a field
//! of a step in the schema, a row of the language reference naming its
//! outcomes, and outcomes that are exactly those the engine produces.
//!
//! What the compiler checks (each action states its shape, outcomes and
//! checks; every `match` over actions is exhaustive) is not repeated here;
//! these are the places it cannot see.

use std::collections::BTreeSet;
use std::path::PathBuf;

use callflow::engine::{ActionOutcome, Entry};
use callflow::flow::actions::OutcomeField;
use callflow::flow::schema::flow_schema;
use callflow::flow::{ActionKind, load_paths};
use callflow::sim::scenario;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn every_action_is_a_step_field_of_the_schema() {
    let schema = flow_schema();
    let step = &schema["$defs"]["StepDef"];
    assert_eq!(step["additionalProperties"], false, "{step}");
    let fields: BTreeSet<&str> = step["properties"]
        .as_object()
        .expect("a step has properties")
        .keys()
        .map(String::as_str)
        .collect();
    let mut expected = BTreeSet::from(["description", "end"]);
    expected.extend(ActionKind::ALL.iter().map(|k| k.name()));
    expected.extend(OutcomeField::ALL.iter().map(|o| o.name()));
    assert_eq!(fields, expected);
    for kind in ActionKind::ALL {
        let description = step["properties"][kind.name()]["description"].as_str();
        assert!(
            description.is_some_and(|d| d == kind.doc() && !d.is_empty()),
            "`{}` has no description in the schema",
            kind.name()
        );
    }
}

#[test]
fn every_action_has_a_row_of_the_reference_naming_its_outcomes() {
    let docs = std::fs::read_to_string(root().join("docs/flow-language.md")).expect("the docs");
    let start = docs
        .find("## Steps, actions and outcomes")
        .expect("the section on steps");
    let section = &docs[start..];
    let section = &section[..section[3..].find("\n#").map_or(section.len(), |i| i + 3)];
    let rows: Vec<&str> = section.lines().filter(|l| l.starts_with("| `")).collect();
    for row in &rows {
        let name = row[3..].split([':', '`']).next().unwrap_or_default();
        assert!(
            ActionKind::from_name(name).is_some(),
            "docs/flow-language.md documents `{name}`, which is not an action"
        );
    }
    for kind in ActionKind::ALL {
        let Some(row) = rows
            .iter()
            .find(|r| r.starts_with(&format!("| `{}:", kind.name())))
        else {
            panic!(
                "docs/flow-language.md has no row for `{}` under \"Steps, actions and outcomes\"",
                kind.name()
            );
        };
        let outcomes = row
            .trim_end_matches('|')
            .rsplit('|')
            .next()
            .unwrap_or_default();
        for field in OutcomeField::ALL {
            let named = outcomes.contains(&format!("`{}`", field.name()));
            assert_eq!(
                named,
                kind.outcomes().contains(&field),
                "the row of `{}` says {:?}; the action's outcomes are {:?}",
                kind.name(),
                outcomes.trim(),
                kind.outcomes()
            );
        }
    }
}

/// Where the scenarios are: the bundled ones, and `tests/every_action/` for
/// the outcomes no bundled flow routes.
fn scenario_dirs() -> [PathBuf; 2] {
    [root().join("flows"), root().join("tests/every_action")]
}

#[test]
fn the_scenarios_of_the_outcomes_no_bundled_flow_routes_pass() {
    let dir = root().join("tests/every_action");
    let report = scenario::run_paths(std::slice::from_ref(&dir));
    assert!(
        !report.reports.is_empty(),
        "no scenario in {}",
        dir.display()
    );
    for r in &report.reports {
        assert!(r.passed, "{}:\n{}", r.path.display(), r.render_failure());
    }
    for flow in &report.flows {
        let cov = scenario::coverage(flow, &report.reports);
        assert!(cov.is_complete(), "{cov:?}");
    }
}

/// Every scenario: the engine reports no outcome an action does not list,
/// and every outcome an action lists is taken by some scenario.
#[test]
fn the_outcomes_each_action_lists_are_those_the_engine_produces() {
    let dirs = scenario_dirs();
    let flows = load_paths(&dirs).flows;
    let mut taken = BTreeSet::new();
    for path in scenario::discover(&dirs) {
        let sc = scenario::load(&path).expect("the scenario loads");
        let flow = flows
            .iter()
            .find(|f| f.name == sc.flow)
            .expect("its flow is beside it");
        let sim = scenario::simulate(&sc, flow).expect("it runs");
        for done in &sim.actions {
            let kind = ActionKind::from_name(done.action).expect("a known action");
            let field = match done.outcome {
                ActionOutcome::Timeout => OutcomeField::OnTimeout,
                ActionOutcome::Invalid => OutcomeField::OnInvalid,
                ActionOutcome::Ok | ActionOutcome::Failure | ActionOutcome::Interrupted => {
                    continue;
                }
            };
            assert!(
                kind.outcomes().contains(&field),
                "{}: a `{}` step ended with {:?}, which `{}` does not list",
                path.display(),
                kind.name(),
                field.name(),
                kind.name()
            );
        }
        let mut kind_before = None;
        for e in &sim.session.timeline.entries {
            if let Entry::Enter { step, via } = &e.what {
                if let (Some(kind), Some(field)) = (
                    kind_before,
                    OutcomeField::ALL.into_iter().find(|o| o.name() == via),
                ) {
                    taken.insert((kind, field));
                }
                kind_before = flow
                    .step_id(step)
                    .map(|id| flow.step(id).action.action_kind());
            }
        }
    }
    let mut missing = Vec::new();
    for kind in ActionKind::ALL {
        for field in kind.outcomes() {
            if !taken.contains(&(*kind, *field)) {
                missing.push(format!("`{}` from `{}`", field.name(), kind.name()));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "no scenario takes {}",
        missing.join(", ")
    );
}
