//! Scenario files: dry-run tests of a flow (`callflow test`).
//!
//! A scenario names a flow, a simulated clock, a call (or a recorded
//! notification stream to replay), how Graph behaves, and the requests and
//! end it expects (see `docs/flow-language.md`). [`load`] reads one with
//! serde-saphyr, [`run`] plays it through the simulator and compares, and
//! [`run_paths`] does both for every scenario under some paths, finding the
//! flows they name. A failure carries the expected and actual lines side by
//! side and the whole timeline. [`coverage`] lists the steps and links no
//! scenario reached. Nothing here runs a flow other than through
//! [`crate::sim::runner`], i.e. through `engine::step`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::engine::{BotIdentity, Instance, Party, Timeline};
use crate::flow::Flow;

use super::behaviour::GraphBehaviour;
use super::expect::{Actual, Expectation, actual_lines, match_lines};
pub use super::report::{ScenarioReport, TestReport};
use super::runner::{self, SimRun, SimulateOptions, default_bot, default_identity};

pub use super::coverage::{Coverage, coverage};

/// A party in a scenario: `{phone}` or `{user, tenant?}`, with a display name.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartyDef {
    /// A phone number (E.164).
    #[serde(default)]
    pub phone: Option<String>,
    /// A Teams user id.
    #[serde(default)]
    pub user: Option<String>,
    /// An application instance id.
    #[serde(default)]
    pub application: Option<String>,
    /// The user's tenant.
    #[serde(default)]
    pub tenant: Option<String>,
    /// The name shown.
    #[serde(default)]
    pub display_name: Option<String>,
}

impl From<PartyDef> for Party {
    fn from(p: PartyDef) -> Self {
        Party {
            phone: p.phone,
            user: p.user,
            application: p.application,
            display_name: p.display_name,
            tenant: p.tenant,
        }
    }
}

/// `call: {from, to}`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallDef {
    /// The caller.
    #[serde(default)]
    pub from: Option<PartyDef>,
    /// Who is called.
    #[serde(default)]
    pub to: Option<PartyDef>,
}

/// `bot:`: who the bot is in a scenario, over the simulated default (the
/// seeds' application, tenant and one application instance).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BotDef {
    /// The bot's display name.
    #[serde(default)]
    pub name: Option<String>,
    /// The tenant; `tenant: null` leaves it out of the calls the bot places.
    #[serde(default, deserialize_with = "present")]
    pub tenant: Option<Option<String>>,
    /// The application instances (`[]`: none, the bot speaks as its
    /// application); each `{id, number?, name?}`.
    #[serde(default)]
    pub instances: Option<Vec<Instance>>,
}

/// A field that is present, possibly `null`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

impl BotDef {
    /// The simulated default identity with what this says changed.
    pub fn identity(&self) -> BotIdentity {
        let mut id = default_identity();
        if let Some(name) = &self.name {
            id.display_name = Some(name.clone());
        }
        if let Some(tenant) = &self.tenant {
            id.tenant_id = tenant.clone();
        }
        if let Some(instances) = &self.instances {
            id.instances = instances.clone();
        }
        id
    }
}

/// A scenario file, as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    /// What the scenario shows, in a sentence.
    pub scenario: String,
    /// The flow's name (or a path to its file, relative to the scenario).
    pub flow: String,
    /// More words about it.
    #[serde(default)]
    pub description: Option<String>,
    /// The simulated start time, RFC 3339. Default: Monday 2026-01-05 10:00 in the flow's zone.
    #[serde(default)]
    pub clock: Option<String>,
    /// Who calls whom.
    #[serde(default)]
    pub call: Option<CallDef>,
    /// Parameters, for `api` flows.
    #[serde(default)]
    pub params: Map<String, Value>,
    /// Who the bot is (default: the simulated bot, an application instance).
    #[serde(default)]
    pub bot: Option<BotDef>,
    /// How Graph behaves.
    #[serde(default)]
    pub graph: GraphBehaviour,
    /// What the designer's services answer `fetch` steps, by URL (`*`
    /// matches anything; `POST https://…` only a `POST`): `{status, body,
    /// delay, timeout, unreachable}`, or a list, one per request.
    #[serde(default)]
    pub http: super::behaviour::HttpAnswers,
    /// The turn each `round_robin` ring group of the flow takes in this
    /// call: how many calls it took before (default 0: it rings from its
    /// first target; 1 from its second, …).
    #[serde(default)]
    pub ring_turn: u64,
    /// The requests and end expected, in order.
    #[serde(default)]
    pub expect: Vec<Value>,
    /// Whether `expect` lists every request (no others may happen).
    #[serde(default)]
    pub strict: bool,
    /// A recorded stream to replay instead of `call`/`graph`: JSON lines of
    /// notification bodies, or of `{"at": TIME, "body": BODY}`.
    #[serde(default)]
    pub replay: Option<String>,
}

/// A scenario ready to run.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Where it was read.
    pub path: PathBuf,
    /// Its name (`scenario:`).
    pub name: String,
    /// The flow it tests (a name, or a path ending in `.yaml`).
    pub flow: String,
    /// The simulated start, if given.
    pub clock: Option<DateTime<chrono::FixedOffset>>,
    /// The caller.
    pub from: Option<Party>,
    /// Who is called.
    pub to: Option<Party>,
    /// Parameters of an `api` start.
    pub params: Map<String, Value>,
    /// Where `params:` and each parameter's name are written (line and
    /// column), for problems with them.
    pub params_at: ParamsAt,
    /// Who the bot is.
    pub bot: BotIdentity,
    /// How Graph behaves.
    pub graph: GraphBehaviour,
    /// The lines expected.
    pub expect: Vec<Expectation>,
    /// Whether `expect` is exhaustive.
    pub strict: bool,
    /// The recording to replay, resolved against the scenario's folder.
    pub replay: Option<PathBuf>,
}

/// Why a scenario file could not be read.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ScenarioError {
    /// The file.
    pub path: String,
    /// What is wrong, and what to write instead.
    pub message: String,
}

fn bad(path: &Path, message: impl Into<String>) -> ScenarioError {
    ScenarioError {
        path: path.display().to_string(),
        message: message.into(),
    }
}

/// The most bytes a scenario or recording file may hold.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

fn read_text(path: &Path) -> Result<String, ScenarioError> {
    let meta =
        std::fs::metadata(path).map_err(|e| bad(path, format!("cannot read the file: {e}")))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(bad(
            path,
            format!("the file is larger than {MAX_FILE_BYTES} bytes"),
        ));
    }
    std::fs::read_to_string(path).map_err(|e| bad(path, format!("cannot read the file: {e}")))
}

/// Reads a scenario file.
pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
    parse(path, &read_text(path)?)
}

/// Reads a scenario from its text (`path` names it and anchors `replay`).
///
/// Every problem found is reported, each rendered as flow diagnostics are
/// (`FILE:LINE:COL` and the lines around it): a YAML syntax error or a
/// field serde refuses stops the reading, the checks after it (clock,
/// `graph`, each `expect` line, `replay`) are all made.
pub fn parse(path: &Path, text: &str) -> Result<Scenario, ScenarioError> {
    use crate::flow::diagnostic::{Diagnostic, SourceFile};
    use crate::flow::span::Span;
    let source = Arc::new(SourceFile::new(path, text));
    let tree = crate::flow::yaml::parse(text, crate::flow::yaml::Budget::default());
    let diagnostic = |span: Span, message: String| {
        Diagnostic::error("callflow::scenario::invalid", &source, span, message).render(100)
    };
    let refuse = |diagnostics: Vec<String>| bad(path, diagnostics.join("\n"));
    let doc = match tree {
        Ok(doc) => doc,
        Err(e) => return Err(refuse(vec![diagnostic(e.span, e.message)])),
    };
    let file: ScenarioFile = match serde_saphyr::from_str(text) {
        Ok(file) => file,
        Err(e) => {
            let span = e.location().map_or(Span::new(0, 0), |l| {
                let offset = offset_of(text, l.line() as usize, l.column() as usize);
                let word = text[offset..]
                    .find(|c: char| c.is_whitespace() || c == ':' || c == ',')
                    .unwrap_or(text.len() - offset);
                Span::new(offset, offset + word)
            });
            let mut message = e.without_snippet().to_string();
            if let Some(l) = e.location() {
                let suffix = format!(" at line {}, column {}", l.line(), l.column());
                if let Some(stripped) = message.strip_suffix(&suffix) {
                    message = stripped.to_owned();
                }
            }
            return Err(refuse(vec![diagnostic(span, message)]));
        }
    };
    let top = |key: &str| -> Option<&crate::flow::yaml::Node> {
        match &doc.root.kind {
            crate::flow::yaml::NodeKind::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    };
    let at = |key: &str| top(key).map_or(Span::new(0, 0), |n| n.span);
    let mut problems = Vec::new();
    let clock = match file.clock.as_deref().map(|c| {
        DateTime::parse_from_rfc3339(c.trim()).map_err(|e| {
            format!("clock `{c}` is not an RFC 3339 time ({e}); write e.g. \"2026-11-21T22:15:00+01:00\"")
        })
    }) {
        Some(Ok(c)) => Some(c),
        Some(Err(message)) => {
            problems.push(diagnostic(at("clock"), message));
            None
        }
        None => None,
    };
    if let Err(e) = file.graph.validate() {
        problems.push(diagnostic(at("graph"), format!("graph: {e}")));
    }
    let expect_items: Vec<Span> = match top("expect").map(|n| &n.kind) {
        Some(crate::flow::yaml::NodeKind::Seq(items)) => items.iter().map(|n| n.span).collect(),
        _ => Vec::new(),
    };
    let mut expect = Vec::new();
    for (i, line) in file.expect.iter().enumerate() {
        match Expectation::parse(line) {
            Ok(e) => expect.push(e),
            Err(e) => problems.push(diagnostic(
                expect_items.get(i).copied().unwrap_or_else(|| at("expect")),
                format!("expect line {}: {e}", i + 1),
            )),
        }
    }
    if file.replay.is_some() && (file.call.is_some() || file.graph != GraphBehaviour::default()) {
        problems.push(diagnostic(
            at("replay"),
            "`replay` plays a recorded stream: it takes no `call` or `graph`; remove them, or remove `replay`".into(),
        ));
    }
    if !problems.is_empty() {
        return Err(refuse(problems));
    }
    let base = path.parent().unwrap_or(Path::new("."));
    let call = file.call.unwrap_or_default();
    Ok(Scenario {
        path: path.to_path_buf(),
        name: file.scenario,
        flow: file.flow,
        clock,
        from: call.from.map(Party::from),
        to: call.to.map(Party::from),
        params: file.params,
        params_at: ParamsAt::find(text),
        bot: file
            .bot
            .as_ref()
            .map_or_else(default_identity, BotDef::identity),
        graph: GraphBehaviour {
            http: file.http,
            ring_turn: file.ring_turn,
            ..file.graph
        },
        expect,
        strict: file.strict,
        replay: file.replay.map(|r| base.join(r)),
    })
}

/// `n` and the noun, singular or plural.
fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The byte offset of a 1-based line and column (in characters).
fn offset_of(text: &str, line: usize, column: usize) -> usize {
    let mut offset = 0;
    for (n, l) in text.split_inclusive('\n').enumerate() {
        if n + 1 == line {
            return offset
                + l.char_indices()
                    .nth(column.saturating_sub(1))
                    .map_or(l.trim_end_matches('\n').len(), |(i, _)| i);
        }
        offset += l.len();
    }
    text.len()
}

/// A line and a column, both 1-based.
pub type LineCol = (usize, usize);

/// Where a scenario's `params:` key and each parameter's name are written.
#[derive(Clone, Debug, Default)]
pub struct ParamsAt {
    /// The `params:` key (line, column).
    pub key: Option<(usize, usize)>,
    /// Each parameter's name, where the name and where its value are
    /// written (line, column).
    pub names: Vec<(String, LineCol, LineCol)>,
}

impl ParamsAt {
    /// Finds them in the scenario's text (nothing when it is not a mapping).
    fn find(text: &str) -> Self {
        use crate::flow::yaml::{self, NodeKind};
        let mut out = ParamsAt::default();
        let Ok(doc) = yaml::parse(text, yaml::Budget::default()) else {
            return out;
        };
        let NodeKind::Map(entries) = &doc.root.kind else {
            return out;
        };
        let at = |offset: usize| crate::flow::span::line_col(text, offset);
        for (k, v) in entries {
            if k.as_str() != Some("params") {
                continue;
            }
            out.key = Some(at(k.span.start));
            if let NodeKind::Map(params) = &v.kind {
                for (name, value) in params {
                    if let Some(n) = name.as_str() {
                        out.names
                            .push((n.to_owned(), at(name.span.start), at(value.span.start)));
                    }
                }
            }
        }
        out
    }

    /// Where a problem with `p` points: an undeclared name, a wrong value,
    /// the `params:` key for a missing one (else the file's start).
    fn of(&self, p: &crate::flow::ParamProblem) -> (usize, usize) {
        use crate::flow::ParamProblemKind;
        let written = self.names.iter().find(|(n, _, _)| *n == p.name);
        let at = match (p.kind, written) {
            (ParamProblemKind::Undeclared, Some((_, name, _))) => Some(*name),
            (ParamProblemKind::Type, Some((_, _, value))) => Some(*value),
            _ => None,
        };
        at.or(self.key).unwrap_or((1, 1))
    }
}

/// A recorded call as a scenario: `name`, the flow it ran, the recording
/// file (relative to the scenario) that replays its notifications, and the
/// requests and end it made, expected in order (not strictly: a replay
/// answers every request at once, and `keep_alive`s are left out, as are
/// prompts played again after a restart, which a replay has no reason to).
/// A `round_robin` ring group's turn is written as `ring_turn`, so that the
/// replay rings from the target the call rang from.
pub fn replay_scenario(
    name: &str,
    flow: &str,
    recording: &str,
    timeline: &[crate::engine::TimelineEntry],
) -> String {
    use crate::engine::command::write_flow;
    let text = |v: &str| {
        let mut s = String::new();
        let _ = write_flow(&mut s, &Value::String(v.into()));
        s
    };
    use crate::engine::{Entry, RequestKind};
    let mut lines = Vec::new();
    let mut resumed = false;
    let mut turn = None;
    for e in timeline {
        match &e.what {
            Entry::Event(t) if t == crate::engine::RESUMED => resumed = true,
            // The ring group's note: `turn N: ringing from target …`.
            Entry::Note(t) if turn.is_none() && t.contains(": ringing from target") => {
                turn = t
                    .strip_prefix("turn ")
                    .and_then(|r| r.split(':').next())
                    .and_then(|n| n.parse::<u64>().ok());
            }
            Entry::Request(r) if r.request == RequestKind::KeepAlive => {}
            Entry::Request(r) if resumed && r.request == RequestKind::PlayPrompt => resumed = false,
            Entry::Request(r) => lines.push(Actual::Request(r.clone())),
            Entry::End { outcome, name, .. } => lines.push(Actual::End(*outcome, name.clone())),
            _ => {}
        }
    }
    let ring_turn = turn
        .filter(|n| *n > 0)
        .map_or_else(String::new, |n| format!("ring_turn: {n}\n"));
    format!(
        "scenario: {}\nflow: {}\nreplay: {}\n{ring_turn}{}",
        text(name),
        text(flow),
        text(recording),
        super::interactive::expect_text(&lines)
    )
}

/// The default simulated start: Monday 2026-01-05 10:00 in the flow's zone.
pub fn default_clock(flow: &Flow) -> DateTime<Utc> {
    let naive = NaiveDate::from_ymd_opt(2026, 1, 5)
        .and_then(|d| d.and_hms_opt(10, 0, 0))
        .unwrap_or_default();
    flow.timezone
        .from_local_datetime(&naive)
        .earliest()
        .map_or_else(|| Utc.from_utc_datetime(&naive), |t| t.with_timezone(&Utc))
}

/// Reads a recording: one JSON body a line, or `{"at": TIME, "body": BODY}`
/// lines; bodies without a time come a second after the previous one.
pub fn read_recording(
    path: &Path,
    start: DateTime<Utc>,
) -> Result<Vec<(DateTime<Utc>, Value)>, ScenarioError> {
    let text = read_text(path)?;
    let mut out = Vec::new();
    let mut at = start;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with("//") {
            continue;
        }
        let v: Value = serde_json::from_str(line)
            .map_err(|e| bad(path, format!("line {}: not JSON: {e}", n + 1)))?;
        let (time, body) = match (v.get("at"), v.get("body")) {
            (Some(Value::String(t)), Some(body)) => {
                let t = DateTime::parse_from_rfc3339(t)
                    .map_err(|e| bad(path, format!("line {}: `at` is not RFC 3339: {e}", n + 1)))?;
                (t.with_timezone(&Utc), body.clone())
            }
            _ => (at + chrono::Duration::seconds(1), v),
        };
        at = time;
        out.push((time, body));
    }
    Ok(out)
}

/// Runs a scenario's call (or replays its recording) against its flow,
/// without comparing.
pub fn simulate(scenario: &Scenario, flow: &Flow) -> Result<SimRun, ScenarioError> {
    let clock = scenario
        .clock
        .map_or_else(|| default_clock(flow), |c| c.with_timezone(&Utc));
    Ok(match &scenario.replay {
        Some(path) => runner::replay(flow, &read_recording(path, clock)?, &default_bot()),
        None => {
            let mut options = SimulateOptions::for_flow(flow, clock);
            if let Some(from) = &scenario.from {
                options.from = from.clone();
            }
            if let Some(to) = &scenario.to {
                options.to = to.clone();
            }
            options.params = scenario.params.clone();
            runner::check_start_params(flow, &mut options).map_err(|e| {
                let file = scenario.path.display();
                let lines: Vec<String> = match &e {
                    crate::flow::ParamsError::Invalid(problems) => problems
                        .iter()
                        .map(|p| {
                            let (line, col) = scenario.params_at.of(p);
                            format!("{file}:{line}:{col}: {}", p.message)
                        })
                        .collect(),
                    e => {
                        let (line, col) = scenario.params_at.key.unwrap_or((1, 1));
                        vec![format!("{file}:{line}:{col}: {e}")]
                    }
                };
                bad(
                    &scenario.path,
                    format!("params:\n    {}", lines.join("\n    ")),
                )
            })?;
            options.bot = scenario.bot.clone();
            options.graph = scenario.graph.clone();
            runner::run(flow, &options)
        }
    })
}

/// Runs a scenario against its flow and compares.
pub fn run(scenario: &Scenario, flow: &Flow) -> ScenarioReport {
    let sim = match simulate(scenario, flow) {
        Ok(sim) => sim,
        Err(e) => return ScenarioReport::failed(scenario, &flow.name, e.to_string()),
    };
    let actual = actual_lines(&sim.session.timeline);
    let matched = match_lines(&scenario.expect, &actual);
    let mut failures: Vec<String> = sim.problems.clone();
    if scenario.strict {
        // The real reason first: what happened that was not expected.
        let mut expected_here = vec![false; actual.len()];
        for j in matched.iter().flatten() {
            expected_here[*j] = true;
        }
        let extra: Vec<String> = actual
            .iter()
            .zip(&expected_here)
            .enumerate()
            .filter(|(_, (_, e))| !**e)
            .map(|(j, (a, _))| format!("line {} `{a}`", j + 1))
            .collect();
        if actual.len() != scenario.expect.len() || !extra.is_empty() {
            let mut reason = format!(
                "strict: {} expected, {} happened",
                count(scenario.expect.len(), "line", "lines"),
                actual.len()
            );
            if !extra.is_empty() {
                reason.push_str(&format!("; not expected: {}", extra.join(", ")));
            }
            failures.push(reason);
        }
    }
    for (i, m) in matched.iter().enumerate() {
        if m.is_none() {
            failures.push(format!(
                "expect line {} (`{}`) did not happen{}",
                i + 1,
                scenario.expect[i],
                match matched[..i].iter().rev().flatten().next() {
                    Some(j) => format!(" after `{}`", actual[*j]),
                    None => String::new(),
                }
            ));
        }
    }
    if scenario.expect.is_empty() {
        failures.push(
            "the scenario expects nothing; add `expect:` lines, at least `- end: OUTCOME`".into(),
        );
    }
    ScenarioReport {
        name: scenario.name.clone(),
        path: scenario.path.clone(),
        flow: flow.name.clone(),
        passed: failures.is_empty(),
        failures,
        expected: scenario.expect.iter().map(ToString::to_string).collect(),
        actual: actual.iter().map(Actual::to_string).collect(),
        matched,
        strict: scenario.strict,
        outcome: sim.session.outcome(),
        timeline: sim.session.timeline,
        timezone: flow.timezone,
    }
}

/// Every scenario file under `paths` (files as given, folders recursively).
pub fn discover(paths: &[PathBuf]) -> Vec<PathBuf> {
    crate::flow::load::yaml_files(paths)
        .into_iter()
        .filter(|p| {
            std::fs::read_to_string(p)
                .map(|t| crate::flow::load::is_scenario_text(&t))
                .unwrap_or(false)
        })
        .collect()
}

/// Finds the flow a scenario names: among `flows`, else a file named after
/// it in the scenario's folder or up to three folders above.
fn find_flow(scenario: &Scenario, flows: &mut Vec<Arc<Flow>>) -> Result<Arc<Flow>, String> {
    let base = scenario.path.parent().unwrap_or(Path::new("."));
    if scenario.flow.ends_with(".yaml") || scenario.flow.ends_with(".yml") {
        let path = base.join(&scenario.flow);
        return load_flow_file(&path);
    }
    if let Some(f) = flows.iter().find(|f| f.name == scenario.flow) {
        return Ok(Arc::clone(f));
    }
    let mut dir = Some(base);
    for _ in 0..4 {
        let Some(d) = dir else { break };
        for ext in ["yaml", "yml"] {
            let candidate = d.join(format!("{}.{ext}", scenario.flow));
            if candidate.is_file() {
                let flow = load_flow_file(&candidate)?;
                if flow.name == scenario.flow {
                    flows.push(Arc::clone(&flow));
                    return Ok(flow);
                }
            }
        }
        dir = d.parent();
    }
    let known: Vec<&str> = flows.iter().map(|f| f.name.as_str()).collect();
    let hint = crate::flow::suggest::did_you_mean(&scenario.flow, known.iter().copied())
        .unwrap_or_else(|| {
            "put the flow file next to the scenario's folder, or pass its folder too".into()
        });
    Err(format!(
        "no flow named `{}` was found; {hint}",
        scenario.flow
    ))
}

fn load_flow_file(path: &Path) -> Result<Arc<Flow>, String> {
    let loaded = crate::flow::load_file(path);
    match loaded.flow {
        Some(f) => Ok(Arc::new(f)),
        None => {
            let first = loaded
                .diagnostics
                .iter()
                .find(|d| d.is_error())
                .map_or_else(|| "it does not load".to_owned(), |d| d.message.clone());
            Err(format!(
                "the flow file {} has errors: {first}",
                path.display()
            ))
        }
    }
}

/// Runs every scenario under `paths`, finding the flows they name among the
/// flow files under `paths` and next to the scenarios.
pub fn run_paths(paths: &[PathBuf]) -> TestReport {
    let mut flows = crate::flow::load_paths(paths).flows;
    let mut report = TestReport::default();
    for path in discover(paths) {
        let r = match load(&path) {
            Ok(scenario) => match find_flow(&scenario, &mut flows) {
                Ok(flow) => run(&scenario, &flow),
                Err(e) => ScenarioReport::failed(&scenario, &scenario.flow, e),
            },
            Err(e) => ScenarioReport {
                name: path.display().to_string(),
                path: path.clone(),
                flow: String::new(),
                passed: false,
                failures: vec![e.message],
                expected: Vec::new(),
                actual: Vec::new(),
                matched: Vec::new(),
                strict: false,
                timeline: Timeline::default(),
                timezone: Tz::UTC,
                outcome: None,
            },
        };
        report.reports.push(r);
    }
    report.flows = flows;
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A call that took turn 2 of the sales line's group is exported with
    /// `ring_turn: 2`, so that its replay rings from the same agent.
    #[test]
    fn a_replay_scenario_keeps_the_turn_the_call_took() {
        let text =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("flows/sales.yaml"))
                .expect("the sales flow");
        let flow = crate::flow::load_str("sales.yaml", &text)
            .flow
            .expect("it loads");
        let mut options = super::super::SimulateOptions::for_flow(&flow, default_clock(&flow));
        options.graph.ring_turn = 2;
        let run = super::super::runner::run(&flow, &options);
        let scenario = replay_scenario("a call", "sales", "r.jsonl", &run.session.timeline.entries);
        assert!(scenario.contains("\nring_turn: 2\n"), "{scenario}");
        assert!(scenario.contains("take_turn"), "{scenario}");
        options.graph.ring_turn = 0;
        let run = super::super::runner::run(&flow, &options);
        let scenario = replay_scenario("a call", "sales", "r.jsonl", &run.session.timeline.entries);
        assert!(
            !scenario.contains("ring_turn"),
            "turn 0 is the default: {scenario}"
        );
    }
}
