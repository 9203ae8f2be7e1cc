//! `callflow graph`: draws one flow as a Mermaid or Graphviz diagram.
//!
//! FLOW is a file path, or the name of a flow found in `--flows DIR`. The
//! flow must load without error; otherwise its diagnostics are printed
//! and the exit status is 1.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, ValueEnum};

use super::output::Style;
use crate::flow::diagram::{DiagramFormat, diagram};
use crate::flow::{Diagnostic, Flow, load_file, load_paths};

/// Arguments of `callflow graph`.
#[derive(Debug, Args)]
#[command(
    after_help = "Paste Mermaid output into any Markdown ```mermaid block; \
                        render dot with `dot -Tsvg`."
)]
pub struct GraphArgs {
    /// A flow file, or the name of a flow in --flows.
    #[arg(value_name = "FLOW")]
    pub flow: String,
    /// The diagram language.
    #[arg(long, value_enum, default_value_t = GraphFormat::Mermaid)]
    pub format: GraphFormat,
    /// Where to look a flow up by name.
    #[arg(long, value_name = "DIR", default_value = "flows")]
    pub flows: PathBuf,
}

/// Diagram languages: a Mermaid flowchart or a Graphviz dot digraph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    // A Mermaid flowchart.
    Mermaid,
    // Graphviz dot.
    Dot,
}

impl From<GraphFormat> for DiagramFormat {
    fn from(f: GraphFormat) -> Self {
        match f {
            GraphFormat::Mermaid => DiagramFormat::Mermaid,
            GraphFormat::Dot => DiagramFormat::Dot,
        }
    }
}

/// Finds the flow, draws it, prints it.
pub fn run(args: &GraphArgs) -> ExitCode {
    match find(&args.flow, &args.flows) {
        Ok(flow) => {
            print!("{}", diagram(&flow, args.format.into()));
            ExitCode::SUCCESS
        }
        Err(problem) => report(problem),
    }
}

/// Prints why a flow could not be found or loaded; exit status 1.
pub fn report(problem: Problem) -> ExitCode {
    match problem {
        Problem::Diagnostics(diags) => {
            let style = Style::detect();
            let mut out = std::io::stdout().lock();
            for d in diags.iter().filter(|d| d.is_error()) {
                let _ = write!(out, "{}", style.render(d));
            }
            ExitCode::FAILURE
        }
        Problem::NotFound(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Why a flow could not be drawn.
#[derive(Debug)]
pub enum Problem {
    /// No file and no flow of that name.
    NotFound(String),
    /// The flow has errors.
    Diagnostics(Vec<Diagnostic>),
}

/// The flow named by `flow`: a file when such a file exists, else a name in `dir`.
pub fn find(flow: &str, dir: &Path) -> Result<Arc<Flow>, Problem> {
    let path = Path::new(flow);
    if path.is_file() {
        let loaded = load_file(path);
        return loaded
            .flow
            .map(Arc::new)
            .ok_or(Problem::Diagnostics(loaded.diagnostics));
    }
    let report = load_paths(&[dir.to_path_buf()]);
    if let Some(found) = report.flows.iter().find(|f| f.name == flow) {
        return Ok(Arc::clone(found));
    }
    let names: Vec<&str> = report.flows.iter().map(|f| f.name.as_str()).collect();
    let mut message = format!(
        "no file `{flow}` and no flow named `{flow}` in {}",
        dir.display()
    );
    if let Some(close) = crate::flow::suggest::did_you_mean(flow, names.iter().copied()) {
        message.push_str(&format!("; {close}"));
    } else if !names.is_empty() {
        message.push_str(&format!(" (flows there: {})", names.join(", ")));
    }
    if report.has_errors() {
        message.push_str("; some files there have errors: run `callflow validate`");
    }
    Err(Problem::NotFound(message))
}
