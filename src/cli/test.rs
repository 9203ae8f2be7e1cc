//! `callflow test`: runs every scenario under the given paths against the simulated Graph.
//!
//! Prints `scenario NAME ... ok|FAILED`, then, for each failure, the
//! expected and actual timelines side by side. Exit status 1 on any
//! failure. `--junit FILE` writes a JUnit XML report for CI; `--coverage`
//! lists the steps and links of each flow that no scenario went through.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::output::count;
use crate::sim::coverage::coverage;
use crate::sim::scenario::{TestReport, run_paths};

/// Arguments of `callflow test`.
#[derive(Debug, Args)]
#[command(
    after_help = "Scenarios are YAML files with a top-level `scenario:` key; the flows they \
                        name are found among the paths given and next to the scenarios. \
                        Exit status: 0 when every scenario passes, 1 otherwise."
)]
pub struct TestArgs {
    /// Scenario files or folders (searched recursively).
    #[arg(value_name = "PATH", default_value = "flows")]
    pub paths: Vec<PathBuf>,
    /// Also write a JUnit XML report to FILE.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// List the steps and links of each flow that no scenario reached.
    #[arg(long)]
    pub coverage: bool,
    /// Show every timeline entry of a failing scenario: timers firing,
    /// Graph's operation ids and acknowledgements, the bot's tenant.
    #[arg(short, long)]
    pub verbose: bool,
}

/// Runs the scenarios and prints the report.
pub fn run(args: &TestArgs) -> ExitCode {
    let report = run_paths(&args.paths);
    print!("{}", text_with(&report, args.verbose));
    if args.coverage {
        print!("{}", coverage_text(&report));
    }
    if let Some(path) = &args.junit
        && let Err(e) = std::fs::write(path, junit(&report))
    {
        eprintln!("error: cannot write {}: {e}", path.display());
        return ExitCode::FAILURE;
    }
    if report.reports.is_empty() {
        eprintln!("error: no scenario found (scenario files have a top-level `scenario:` key)");
        return ExitCode::FAILURE;
    }
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// One line per scenario, the failures in detail (timelines in their
/// short form), then a summary.
pub fn text(report: &TestReport) -> String {
    text_with(report, false)
}

/// [`text`], with the failures' timelines in full when `verbose`.
pub fn text_with(report: &TestReport, verbose: bool) -> String {
    let mut out = String::new();
    for r in &report.reports {
        let verdict = if r.passed { "ok" } else { "FAILED" };
        let _ = writeln!(out, "scenario {} ... {verdict}", r.name);
    }
    for r in report.reports.iter().filter(|r| !r.passed) {
        let _ = writeln!(out, "\n--- {} ({})", r.name, r.path.display());
        out.push_str(&r.render_failure_with(verbose));
    }
    let failed = report.failures();
    let _ = writeln!(
        out,
        "\n{}: {} passed, {} failed",
        count(report.reports.len(), "scenario", "scenarios"),
        report.reports.len() - failed,
        failed
    );
    out
}

/// What the scenarios left untested, flow by flow.
pub fn coverage_text(report: &TestReport) -> String {
    let mut out = String::from("\ncoverage:\n");
    let mut flows: Vec<_> = report.flows.iter().collect();
    flows.sort_by(|a, b| a.name.cmp(&b.name));
    for flow in flows {
        let c = coverage(flow, &report.reports);
        if c.is_complete() {
            let _ = writeln!(out, "  {}: every step and link reached", c.flow);
            continue;
        }
        let _ = writeln!(out, "  {}:", c.flow);
        for s in &c.missing_steps {
            let _ = writeln!(out, "    step never entered: {s}");
        }
        for l in &c.missing_links {
            let _ = writeln!(out, "    link never taken:   {l}");
        }
    }
    out
}

/// The report as JUnit XML: one test suite, one test case per scenario.
pub fn junit(report: &TestReport) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuite name=\"callflow\" tests=\"{}\" failures=\"{}\">",
        report.reports.len(),
        report.failures()
    );
    for r in &report.reports {
        let _ = write!(
            out,
            "  <testcase classname=\"{}\" name=\"{}\" file=\"{}\"",
            xml_escape(&r.flow),
            xml_escape(&r.name),
            xml_escape(&r.path.display().to_string())
        );
        if r.passed {
            out.push_str("/>\n");
        } else {
            let message = r.failures.first().map(String::as_str).unwrap_or("failed");
            let _ = writeln!(
                out,
                ">\n    <failure message=\"{}\">{}</failure>\n  </testcase>",
                xml_escape(message),
                xml_escape(&r.render_failure())
            );
        }
    }
    out.push_str("</testsuite>\n");
    out
}

/// Escapes text for XML attributes and content.
pub fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() && c != '\n' && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}
