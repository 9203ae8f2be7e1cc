//! What running scenarios gives: a [`ScenarioReport`] each (expected and
//! actual lines side by side when it fails) and the [`TestReport`] of a run
//! of many. Plain data and text; runs nothing.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use chrono_tz::Tz;

use crate::engine::{Outcome, Timeline};
use crate::flow::Flow;

use super::scenario::Scenario;

/// The outcome of one scenario.
#[derive(Clone, Debug)]
pub struct ScenarioReport {
    /// The scenario's name.
    pub name: String,
    /// Its file.
    pub path: PathBuf,
    /// The flow it ran.
    pub flow: String,
    /// Whether everything expected happened and nothing went wrong.
    pub passed: bool,
    /// Why it failed, one reason a line.
    pub failures: Vec<String>,
    /// The `expect` lines, as text.
    pub expected: Vec<String>,
    /// What the run did (requests and end), as text.
    pub actual: Vec<String>,
    /// For each expected line, the actual line it matched.
    pub matched: Vec<Option<usize>>,
    /// Whether `expect` was to list every line (`strict: true`).
    pub strict: bool,
    /// The run's timeline.
    pub timeline: Timeline,
    /// The flow's time zone, for rendering.
    pub timezone: Tz,
    /// How the run ended.
    pub outcome: Option<Outcome>,
}

impl ScenarioReport {
    pub(super) fn failed(scenario: &Scenario, flow: &str, reason: String) -> Self {
        ScenarioReport {
            name: scenario.name.clone(),
            path: scenario.path.clone(),
            flow: flow.to_owned(),
            passed: false,
            failures: vec![reason],
            expected: scenario.expect.iter().map(ToString::to_string).collect(),
            actual: Vec::new(),
            matched: vec![None; scenario.expect.len()],
            strict: scenario.strict,
            timeline: Timeline::default(),
            timezone: Tz::UTC,
            outcome: None,
        }
    }

    /// Expected and actual lines side by side, in the order things happened
    /// (`✗`: an expected line that did not happen, shown where it was looked
    /// for; `+`: with `strict`, a line that happened unexpected), then the
    /// reasons (with `strict`, what happened unexpected first) and the whole
    /// timeline.
    pub fn render_failure(&self) -> String {
        self.render_failure_with(false)
    }

    /// [`ScenarioReport::render_failure`], the timeline in full when `verbose`.
    pub fn render_failure_with(&self, verbose: bool) -> String {
        let mut out = String::new();
        let width = self
            .expected
            .iter()
            .map(|l| l.chars().count())
            .max()
            .unwrap_or(0)
            .clamp(8, 60);
        let table = !self.expected.is_empty() || !self.actual.is_empty();
        if table {
            let _ = writeln!(out, "  {:<width$}   actual", "expected");
            let _ = writeln!(out, "  {:<width$}   ------", "--------");
        }
        // One row per line, in the order things happened: an expected line
        // beside the actual line it matched, one that did not happen (`✗`)
        // where it was looked for, and with `strict`, what happened without
        // being expected (`+`).
        let mut next = 0;
        let extra = |out: &mut String, line: &str| {
            if self.strict {
                let _ = writeln!(out, "+ {:<width$}   {line}", "(not expected)");
            } else {
                let _ = writeln!(out, "  {:<width$}   {line}", "");
            }
        };
        for (i, m) in self.matched.iter().enumerate() {
            match m {
                Some(j) => {
                    for line in self.actual.get(next..*j).unwrap_or_default() {
                        extra(&mut out, line);
                    }
                    let actual = self.actual.get(*j).map_or("", String::as_str);
                    let _ = writeln!(out, "  {:<width$}   {actual}", self.expected[i]);
                    next = j + 1;
                }
                None => {
                    let _ = writeln!(out, "✗ {:<width$}   (did not happen)", self.expected[i]);
                }
            }
        }
        for line in self.actual.get(next..).unwrap_or_default() {
            extra(&mut out, line);
        }
        for f in &self.failures {
            if f.contains('\n') {
                // A rendered diagnostic: shown whole, indented.
                let _ = writeln!(out, "  reason:");
                for l in f.lines() {
                    let _ = writeln!(out, "    {l}");
                }
            } else {
                let _ = writeln!(out, "  reason: {f}");
            }
        }
        if !self.timeline.entries.is_empty() {
            let _ = writeln!(out, "  timeline:");
            for l in self.timeline.render_with(self.timezone, verbose).lines() {
                let _ = writeln!(out, "    {l}");
            }
        }
        out
    }
}

/// The result of running every scenario under some paths.
#[derive(Debug, Default)]
pub struct TestReport {
    /// One report per scenario, in path order.
    pub reports: Vec<ScenarioReport>,
    /// The flows the scenarios ran.
    pub flows: Vec<Arc<Flow>>,
}

impl TestReport {
    /// Whether every scenario passed.
    pub fn passed(&self) -> bool {
        self.reports.iter().all(|r| r.passed)
    }

    /// How many failed.
    pub fn failures(&self) -> usize {
        self.reports.iter().filter(|r| !r.passed).count()
    }
}
