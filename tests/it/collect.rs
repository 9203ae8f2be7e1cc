//! `collect`: the digits a caller keys reach `vars`, and secret ones are
//! written nowhere (timeline, log lines, the serialised session that the
//! store and the admin API keep, `Debug`). And what the timeline says of
//! the other steps that wait for a person (`invite`).

use std::path::PathBuf;

use callflow::flow::load_paths;
use callflow::sim::scenario;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(name: &str) -> callflow::sim::SimRun {
    let flows = load_paths(&[root().join("flows/clinic.yaml")]).flows;
    let sc = scenario::load(&root().join("flows/scenarios/clinic").join(name))
        .expect("the scenario loads");
    scenario::simulate(&sc, &flows[0]).expect("it runs")
}

#[test]
fn the_digits_keyed_reach_vars_and_the_secret_pin_is_written_nowhere() {
    let sim = run("verified.yaml");
    let s = &sim.session;
    assert_eq!(s.vars["patient"], "412345");
    // Expressions read the PIN (the session holds it, in memory only).
    assert_eq!(s.secrets.vars["pin"], "9876");
    assert!(!s.vars.contains_key("pin"));
    let timeline = s.timeline.render(chrono_tz::UTC);
    assert!(
        timeline.contains("collected `412345` into `vars.patient`"),
        "{timeline}"
    );
    assert!(
        timeline.contains("patient 412345 verified with PIN ••••"),
        "{timeline}"
    );
    assert!(
        timeline.contains("collected 4 secret digits into `vars.pin`"),
        "{timeline}"
    );
    let stored = serde_json::to_string(s).expect("a session serialises");
    let debug = format!("{s:?}");
    for (what, text) in [
        ("timeline", &timeline),
        ("stored session", &stored),
        ("Debug", &debug),
    ] {
        assert!(!text.contains("9876"), "the PIN is in the {what}: {text}");
        for key in ['9', '8', '7', '6'] {
            assert!(
                !text.contains(&format!("key {key}")),
                "a key of the PIN is in the {what}"
            );
        }
    }
    // The session read back from the store has lost the secret, not the rest.
    let back: callflow::engine::Session = serde_json::from_str(&stored).expect("it reads back");
    assert_eq!(back.vars["patient"], "412345");
    assert!(back.secrets.vars.is_empty());
}

#[test]
fn a_pause_ends_the_input_and_too_few_digits_are_invalid() {
    let sim = run("pin-pause.yaml");
    let timeline = sim.session.timeline.render(chrono_tz::UTC);
    assert!(
        timeline.contains("2 secret digits is fewer than 4 digits in `pin`"),
        "{timeline}"
    );
    assert!(!sim.session.secrets.vars.contains_key("pin"));
    assert!(timeline.contains("front_desk (on_timeout)"), "{timeline}");
}

#[test]
fn an_invitation_nobody_takes_says_so_in_the_timeline() {
    let flows = load_paths(&[root().join("flows/supervisor.yaml")]).flows;
    let sc =
        scenario::load(&root().join("flows/scenarios/supervisor/supervisor-never-answers.yaml"))
            .expect("the scenario loads");
    let sim = scenario::simulate(&sc, &flows[0]).expect("it runs");
    let timeline = sim.session.timeline.render(chrono_tz::UTC);
    assert!(
        timeline.contains("nobody invited joined within"),
        "{timeline}"
    );
}
