//! Load a folder of flows with the library and print what `callflow validate` prints.
//!
//! `cargo run --example validate_folder -- flows`

use std::path::PathBuf;
use std::process::ExitCode;

use callflow::flow::load_paths;

fn main() -> ExitCode {
    let paths: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let paths = if paths.is_empty() {
        vec![PathBuf::from("flows")]
    } else {
        paths
    };
    let report = load_paths(&paths);
    for d in &report.diagnostics {
        print!("{}", d.render(100));
    }
    for flow in &report.flows {
        println!(
            "{:<20} {:>3} steps  sha256 {}",
            flow.name,
            flow.steps.len(),
            &flow.source.sha256[..12]
        );
    }
    if report.has_errors() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
