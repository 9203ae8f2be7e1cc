//! `callflow validate`: loads flow files and prints every diagnostic.
//!
//! Exit status 0 when no diagnostic is an error (warnings are shown but do
//! not fail), 1 otherwise. `--format json` prints one JSON object for tools
//! and editors.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use super::output::Style;
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
    /// Check `fetch` steps against the hosts the server allows (as `serve --fetch-allow`):
    /// a URL naming another host is an error. Repeat for several hosts.
    #[arg(long, value_name = "HOST", value_delimiter = ',')]
    pub fetch_allow: Vec<String>,
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
    let mut report = load_paths(&args.paths);
    if !args.fetch_allow.is_empty() {
        let policy = crate::flow::FetchPolicy {
            allow: args.fetch_allow.clone(),
            secrets: None,
        };
        let problems = crate::flow::check_fetch(&report.flows, &policy);
        report.diagnostics.extend(problems);
    }
    let out = match args.format {
        ReportFormat::Text => text(&report, Style::detect()),
        ReportFormat::Json => report.to_json(),
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
    out.push_str(&report.summary());
    out.push('\n');
    out
}
