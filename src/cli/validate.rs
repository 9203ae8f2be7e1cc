//! `callflow validate`: loads flow files and prints every diagnostic.
//!
//! Exit status 0 when no diagnostic is an error (warnings are shown but do
//! not fail), 1 otherwise. `--format json` prints one JSON object for tools
//! and editors.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use super::output::{Style, count};
use crate::flow::{LoadReport, load_paths};

/// Arguments of `callflow validate`.
#[derive(Debug, Args)]
#[command(
    after_help = "Scenario files (with a top-level `scenario:` key) are skipped. \
                        Exit status: 0 when there is no error, 1 otherwise."
)]
pub struct ValidateArgs {
    /// Flow files or folders (searched recursively for .yaml and .yml).
    #[arg(value_name = "PATH", default_value = "flows")]
    pub paths: Vec<PathBuf>,
    /// `text` for people, `json` for tools and editors.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
}

/// Output formats of `callflow validate`: `text` draws each diagnostic with
/// its source, then a summary line; `json` prints one object
/// `{"files", "errors", "warnings", "diagnostics"}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    // Diagnostics drawn with the source, then a summary line.
    Text,
    // One JSON object for tools and editors.
    Json,
}

/// Loads the paths and prints the report.
pub fn run(args: &ValidateArgs) -> ExitCode {
    let report = load_paths(&args.paths);
    let out = match args.format {
        ReportFormat::Text => text(&report, Style::detect()),
        ReportFormat::Json => json(&report),
    };
    print!("{out}");
    if report.has_errors() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The text report: every diagnostic, then `checked N files: …`.
pub fn text(report: &LoadReport, style: Style) -> String {
    let mut out = String::new();
    for d in &report.diagnostics {
        out.push_str(style.render(d).trim_end());
        out.push_str("\n\n");
    }
    out.push_str(&summary(report));
    out.push('\n');
    out
}

/// `checked 7 files: 7 flows, 0 errors, 1 warning`.
pub fn summary(report: &LoadReport) -> String {
    let (errors, warnings) = tally(report);
    format!(
        "checked {}: {}, {}, {}",
        count(report.files.len(), "file", "files"),
        count(report.flows.len(), "flow", "flows"),
        count(errors, "error", "errors"),
        count(warnings, "warning", "warnings"),
    )
}

fn tally(report: &LoadReport) -> (usize, usize) {
    let errors = report.diagnostics.iter().filter(|d| d.is_error()).count();
    (errors, report.diagnostics.len() - errors)
}

/// The JSON report, pretty-printed, ending with a newline.
pub fn json(report: &LoadReport) -> String {
    let (errors, warnings) = tally(report);
    let value = serde_json::json!({
        "files": report.files.len(),
        "errors": errors,
        "warnings": warnings,
        "diagnostics": report.diagnostics.iter().map(|d| d.to_json()).collect::<Vec<_>>(),
    });
    let mut s = serde_json::to_string_pretty(&value).unwrap_or_default();
    s.push('\n');
    s
}
