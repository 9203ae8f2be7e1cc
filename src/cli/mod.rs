//! The `callflow` command line: one file per command, thin.
//!
//! Each command parses its arguments (clap derive), calls the library and
//! prints. No command holds logic that a test of the library could not
//! reach: loading and checking live in [`crate::flow`], diagrams in
//! [`crate::flow::diagram`]. Commands return an [`ExitCode`]; only
//! `main` exits.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod graph;
pub mod hours;
pub mod load;
pub mod output;
pub mod run;
pub mod schema;
pub mod serve;
pub mod sessions;
pub mod sim_graph;
pub mod simulate;
pub mod studio;
pub mod test;
pub mod validate;

/// callflow: declarative call flows for Microsoft Graph calling bots.
#[derive(Debug, Parser)]
#[command(name = "callflow", version, about, long_about = None)]
#[command(max_term_width = 100)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The `callflow` commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check flow files and print every problem with its line and column.
    Validate(validate::ValidateArgs),
    /// Print the JSON Schema of flow files (for editors).
    Schema(schema::SchemaArgs),
    /// Draw a flow as a Mermaid or Graphviz diagram.
    Graph(graph::GraphArgs),
    /// Print where a call to a flow goes at each hour of a week (its calendars, holidays).
    Hours(hours::HoursArgs),
    /// Run every scenario against the simulated Graph.
    Test(test::TestArgs),
    /// Simulate one call of a flow and print its timeline.
    Simulate(simulate::SimulateArgs),
    /// Serve a simulated Microsoft Graph over HTTP (calls, tokens, signed notifications, faults).
    SimGraph(sim_graph::SimGraphArgs),
    /// Open the designer's workbench in the browser: flows, diagrams, calls clicked through.
    Studio(studio::StudioArgs),
    /// Run flows against Graph's webhooks (--simulate: a demo on a local sim-graph).
    Serve(Box<serve::ServeArgs>),
    /// Measure notifications per second through the server on loopback, against sim-graph.
    Load(load::LoadArgs),
    /// Start an `api` flow on a running server; print its session id (--follow: its timeline).
    Run(run::RunArgs),
    /// Stored calls: `export ID` writes one as a scenario replaying it.
    Sessions(sessions::SessionsArgs),
}

impl Cli {
    /// Runs the chosen command.
    pub fn run(self) -> ExitCode {
        match self.command {
            Command::Validate(args) => validate::run(&args),
            Command::Schema(args) => schema::run(&args),
            Command::Graph(args) => graph::run(&args),
            Command::Hours(args) => hours::run(&args),
            Command::Test(args) => test::run(&args),
            Command::Simulate(args) => simulate::run(&args),
            Command::SimGraph(args) => sim_graph::run(&args),
            Command::Studio(args) => studio::run(&args),
            Command::Serve(args) => serve::run(&args),
            Command::Load(args) => load::run(&args),
            Command::Run(args) => run::run(&args),
            Command::Sessions(args) => sessions::run(&args),
        }
    }
}
