//! What a designer reads when a flow is wrong: one fixture per diagnostic.
//!
//! Each `tests/diagnostics/NAME.yaml` holds one small, realistic mistake
//! (`five_mistakes.yaml` holds five). The test loads it, checks that the
//! expected code is reported at the expected `line:col`, that every span lies
//! inside the text on character boundaries, and snapshots every diagnostic
//! as miette draws it at 100 columns without colour, under a one-line
//! summary that names the exact text each span covers. Cross-flow checks
//! load the folders `set_*/` together.

use std::path::PathBuf;

use callflow::flow::{Diagnostic, load_file, load_paths, load_str};

const DIR: &str = "tests/diagnostics";

/// The summary line and the miette rendering of each diagnostic.
fn report(diags: &[Diagnostic]) -> String {
    let mut out = String::new();
    for d in diags {
        let j = d.to_json();
        let covered = d
            .span
            .and_then(|s| d.file.text.get(s.start..s.end))
            .unwrap_or_default();
        out.push_str(&format!(
            "{} {} at {}:{}..{}:{} {:?}\n",
            serde_json::to_value(j.severity)
                .expect("severity")
                .as_str()
                .unwrap_or_default(),
            j.code,
            j.line.unwrap_or(0),
            j.column.unwrap_or(0),
            j.end_line.unwrap_or(0),
            j.end_column.unwrap_or(0),
            covered,
        ));
    }
    for d in diags {
        out.push('\n');
        out.push_str(&d.render(100));
    }
    out
}

/// Every span lies within its file's text, on character boundaries.
fn assert_spans_valid(diags: &[Diagnostic]) {
    for d in diags {
        let text = &d.file.text;
        let spans = d.span.into_iter().chain(d.related.iter().map(|r| r.span));
        for s in spans {
            assert!(
                s.start <= s.end && s.end <= text.len(),
                "{} span {s:?} out of the text",
                d.code
            );
            assert!(
                text.is_char_boundary(s.start) && text.is_char_boundary(s.end),
                "{} span {s:?} not on a char boundary",
                d.code
            );
        }
    }
}

/// Loads `tests/diagnostics/NAME.yaml`, checks where `code` points, snapshots.
fn fixture(name: &str, code: &str, at: (usize, usize)) {
    let path = format!("{DIR}/{name}.yaml");
    let text = std::fs::read_to_string(&path).expect("fixture");
    let loaded = load_str(&path, &text);
    let diags = loaded.diagnostics;
    insta::assert_snapshot!(name, report(&diags));
    assert_spans_valid(&diags);
    let found = diags.iter().find(|d| d.code == code).unwrap_or_else(|| {
        panic!("{name}: no `{code}` among\n{}", report(&diags));
    });
    let j = found.to_json();
    assert_eq!(
        (j.line.unwrap_or(0), j.column.unwrap_or(0)),
        at,
        "{name}: `{code}` points elsewhere\n{}",
        report(&diags)
    );
    if diags.iter().any(Diagnostic::is_error) {
        assert!(
            loaded.flow.is_none(),
            "{name}: a flow with errors must not load"
        );
    }
}

macro_rules! fixtures {
    ($($name:ident => $code:literal at $line:literal : $col:literal),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                fixture(stringify!($name), $code, ($line, $col));
            }
        )*
        /// Every single-file fixture with a test.
        const FIXTURES: &[&str] = &[$(stringify!($name)),*];
    };
}

fixtures! {
    yaml_syntax => "callflow::yaml::syntax" at 9:4,
    yaml_unclosed => "callflow::yaml::unclosed" at 4:9,
    yaml_tab => "callflow::yaml::syntax" at 7:1,
    yaml_not_a_mapping => "callflow::field::type" at 1:1,
    yaml_empty => "callflow::yaml::empty" at 1:1,
    unknown_field_step => "callflow::field::unknown" at 9:5,
    unknown_field_top => "callflow::field::unknown" at 2:1,
    wrong_type => "callflow::field::type" at 11:16,
    missing_field => "callflow::field::missing" at 8:5,
    missing_field_top => "callflow::field::missing" at 1:1,
    duplicate_key => "callflow::yaml::duplicate_key" at 12:3,
    flow_name => "callflow::flow::name" at 1:7,
    start_missing => "callflow::start::missing" at 1:7,
    start_unknown => "callflow::step::unknown" at 5:8,
    step_unknown => "callflow::step::unknown" at 9:11,
    step_unreachable => "callflow::step::unreachable" at 12:3,
    step_no_action => "callflow::step::no_action" at 10:3,
    step_two_actions => "callflow::step::two_actions" at 9:5,
    outcome_impossible => "callflow::outcome::impossible" at 13:5,
    phone_letter_o => "callflow::phone::e164" at 11:39,
    phone_spaces => "callflow::phone::e164" at 13:16,
    duration_no_unit => "callflow::duration" at 11:16,
    duration_words => "callflow::duration" at 11:41,
    duration_range => "callflow::duration::range" at 10:16,
    calendar_spec_day => "callflow::calendar::spec" at 7:18,
    calendar_spec_time => "callflow::calendar::spec" at 8:17,
    calendar_holiday => "callflow::calendar::spec" at 8:15,
    calendar_unknown => "callflow::calendar::unknown" at 12:22,
    timezone_unknown => "callflow::timezone" at 2:11,
    expr_syntax_when => "callflow::expr::syntax" at 9:50,
    expr_syntax_template => "callflow::expr::syntax" at 8:54,
    expr_unknown_var_when => "callflow::expr::unknown_var" at 9:15,
    expr_unknown_var_template => "callflow::expr::unknown_var" at 8:32,
    expr_unknown_fn => "callflow::expr::unknown_fn" at 12:30,
    expr_after_accents => "callflow::expr::unknown_var" at 8:39,
    expr_block_scalar => "callflow::expr::unknown_fn" at 14:14,
    expr_escaped_quotes => "callflow::expr::unknown_var" at 9:55,
    expr_multiline_plain => "callflow::expr::unknown_fn" at 9:30,
    expr_assign => "callflow::expr::syntax" at 9:31,
    template_empty => "callflow::expr::syntax" at 8:16,
    template_unclosed => "callflow::expr::syntax" at 8:16,
    prompt_url => "callflow::prompt::url" at 8:21,
    menu_key => "callflow::menu::key" at 10:29,
    switch_no_default => "callflow::switch::no_default" at 11:15,
    switch_unreachable_case => "callflow::switch::unreachable_case" at 9:9,
    state_unknown_wait => "callflow::state::unknown" at 11:20,
    state_unknown_trigger => "callflow::state::unknown" at 4:26,
    handler_unknown => "callflow::handler::unknown" at 10:3,
    target_both => "callflow::target::both" at 12:67,
    meeting_none => "callflow::meeting::incomplete" at 7:5,
    trigger_unknown => "callflow::field::unknown" at 3:3,
    reject_reason => "callflow::field::unknown" at 8:23,
    wrong_type_list => "callflow::field::type" at 6:1,
    hangup_value => "callflow::field::type" at 11:13,
    target_tenant => "callflow::target::tenant" at 12:36,
    meeting_both => "callflow::meeting::both" at 9:7,
    menu_empty => "callflow::menu::empty" at 8:5,
    set_name => "callflow::set::name" at 9:7,
    set_bare_word => "callflow::expr::unknown_var" at 9:15,
    call_too_many => "callflow::target::too_many" at 7:5,
    five_mistakes => "callflow::step::unknown" at 32:35,
    expr_field_call => "callflow::expr::unknown_field" at 11:26,
    expr_field_root => "callflow::expr::unknown_field" at 11:21,
    expr_unknown_vars => "callflow::expr::unknown_field" at 15:21,
    expr_unknown_param => "callflow::expr::unknown_field" at 14:33,
    expr_type_when => "callflow::expr::type" at 11:16,
    expr_type_compare => "callflow::expr::type" at 13:27,
    phone_in_vars => "callflow::phone::e164" at 5:14,
    collect_digits => "callflow::collect::digits" at 12:19,
    collect_finish_on => "callflow::collect::finish_on" at 11:19,
    collect_into => "callflow::set::name" at 10:13,
    record_too_long => "callflow::duration::range" at 9:21,
    order_reject_answered => "callflow::step::order" at 20:3,
    order_transfer_unanswered => "callflow::step::order" at 11:3,
    order_no_call => "callflow::step::order" at 8:3,
    failure_unrouted => "callflow::failure::unrouted" at 10:5,
    fetch_method => "callflow::fetch::method" at 10:15,
    fetch_url => "callflow::fetch::url" at 9:13,
    fetch_secret_outside_headers => "callflow::fetch::secret" at 9:53,
    fetch_shape => "callflow::fetch::shape" at 11:21,
    fetch_field_unknown => "callflow::expr::unknown_field" at 16:28,
    fetch_body_get => "callflow::fetch::retries" at 12:16,
    fetch_unknown_var => "callflow::expr::unknown_field" at 11:57,
    expr_unknown_method => "callflow::expr::unknown_fn" at 13:32,
    end_name => "callflow::end::name" at 17:10,
    order_after_call_ended => "callflow::step::order" at 16:3,
    calendar_file_missing => "callflow::calendar::file" at 4:7,
    calendar_duplicate => "callflow::calendar::duplicate" at 6:3,
    phone_target_national => "callflow::phone::e164" at 5:16,
    expr_phone_literal => "callflow::phone::e164" at 11:36,
    ring_group_too_many => "callflow::ring_group::targets" at 12:7,
    ring_group_no_targets => "callflow::ring_group::targets" at 12:16,
    ring_group_strategy => "callflow::ring_group::strategy" at 13:17,
    ring_group_round_robin_one => "callflow::ring_group::round_robin" at 13:17,
    ring_group_ring_timeout => "callflow::duration::range" at 13:21,
    ring_group_max_wait => "callflow::duration::range" at 13:17,
    ring_group_every => "callflow::duration::range" at 14:72,
    ring_group_unanswered => "callflow::step::order" at 7:3,
}

#[test]
fn every_fixture_file_has_a_test() {
    let mut files: Vec<String> = std::fs::read_dir(DIR)
        .expect("fixtures")
        .filter_map(|e| {
            let p = e.ok()?.path();
            let stem = p.file_stem()?.to_string_lossy().into_owned();
            (p.extension()? == "yaml").then_some(stem)
        })
        .collect();
    files.sort();
    let mut listed: Vec<String> = FIXTURES.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(files, listed);
}

#[test]
fn five_mistakes_all_at_their_place() {
    let path = format!("{DIR}/five_mistakes.yaml");
    let text = std::fs::read_to_string(&path).expect("fixture");
    let diags = load_str(&path, &text).diagnostics;
    let json: Vec<_> = diags.iter().map(Diagnostic::to_json).collect();
    let at: Vec<_> = json
        .iter()
        .map(|j| (j.code, j.line.unwrap_or(0), j.column.unwrap_or(0)))
        .collect();
    assert_eq!(
        at,
        [
            ("callflow::calendar::unknown", 26, 22),
            ("callflow::step::unknown", 32, 35),
            ("callflow::duration", 33, 16),
            ("callflow::field::unknown", 37, 5),
            ("callflow::phone::e164", 50, 39),
        ]
    );
    insta::assert_json_snapshot!("five_mistakes_json", json);
}

/// Loads a folder of flows together.
fn load_set(dir: &str) -> Vec<Diagnostic> {
    let report = load_paths(&[PathBuf::from(DIR).join(dir)]);
    assert_spans_valid(&report.diagnostics);
    report.diagnostics
}

#[test]
fn set_trigger_overlap() {
    let diags = load_set("set_trigger_overlap");
    assert!(diags.iter().any(|d| d.code == "callflow::trigger::overlap"));
    insta::assert_snapshot!("set_trigger_overlap", report(&diags));
}

#[test]
fn set_duplicate_name() {
    let diags = load_set("set_duplicate_name");
    assert!(diags.iter().any(|d| d.code == "callflow::flow::duplicate"));
    insta::assert_snapshot!("set_duplicate_name", report(&diags));
}

/// A `fetch` checked against the server's policy (as `serve` and
/// `validate --fetch-allow` do): a host not allowed, a secret not configured.
#[test]
fn set_fetch_policy() {
    let loaded = load_paths(&[PathBuf::from(DIR).join("set_fetch_policy")]);
    assert!(
        loaded.diagnostics.is_empty(),
        "{}",
        report(&loaded.diagnostics)
    );
    let policy = callflow::flow::FetchPolicy {
        allow: vec!["crm.contoso.com".into()],
        secrets: Some(vec!["crm_token".into()]),
    };
    let diags = callflow::flow::check_fetch(&loaded.flows, &policy);
    assert_spans_valid(&diags);
    let at: Vec<_> = diags
        .iter()
        .map(|d| {
            let j = d.to_json();
            (j.code, j.line.unwrap_or(0), j.column.unwrap_or(0))
        })
        .collect();
    assert_eq!(
        at,
        [
            ("callflow::fetch::host", 9, 21),
            ("callflow::fetch::secret", 11, 32),
        ]
    );
    insta::assert_snapshot!("set_fetch_policy", report(&diags));
    let allowed = callflow::flow::FetchPolicy {
        allow: vec!["*.contoso.net".into()],
        secrets: None,
    };
    assert!(callflow::flow::check_fetch(&loaded.flows, &allowed).is_empty());
}

#[test]
fn invalid_utf8() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("latin1.yaml");
    std::fs::write(&path, b"flow: r\xe9ception\ntrigger: { api: {} }\n").expect("write");
    let diags = load_file(&path).diagnostics;
    assert_spans_valid(&diags);
    assert_eq!(diags.len(), 1);
    let shown = report(&diags).replace(&dir.path().display().to_string(), "$TMP");
    insta::assert_snapshot!("invalid_utf8", shown);
}

/// A calendar file two flows use is checked once: its mistake is reported
/// once, at the calendar file's line and column, and each flow that uses
/// it is an error at its `use:` entry.
#[test]
fn set_shared_calendar() {
    let diags = load_set("set_shared_calendar");
    let at: Vec<(&str, String, usize, usize)> = diags
        .iter()
        .map(|d| {
            let j = d.to_json();
            (
                d.code,
                d.file.name(),
                j.line.unwrap_or(0),
                j.column.unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        at,
        [
            (
                "callflow::calendar::file",
                "tests/diagnostics/set_shared_calendar/clinic-north.yaml".to_owned(),
                4,
                7
            ),
            (
                "callflow::calendar::file",
                "tests/diagnostics/set_shared_calendar/clinic-south.yaml".to_owned(),
                4,
                7
            ),
            (
                "callflow::calendar::spec",
                "tests/diagnostics/set_shared_calendar/calendars/clinic-group.yaml".to_owned(),
                4,
                45
            ),
        ]
    );
    insta::assert_snapshot!("set_shared_calendar", report(&diags));
}
