//! `callflow simulate`: one simulated call of one flow, printed as a timeline.
//!
//! The call runs through the same interpreter as production, against the
//! simulated Graph, under a simulated clock: nothing leaves the machine.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::Args;

use super::graph::{Problem, find};
use super::output::Style;
use crate::engine::Party;
use crate::sim::scenario::default_clock;
use crate::sim::{SimulateOptions, simulate};

/// Arguments of `callflow simulate`.
#[derive(Debug, Args)]
#[command(
    after_help = "Exit status: 0 when the run ends, 1 when it ends in `error`, \
                        2 when the flow or an argument is wrong.\n\n\
                        Example: callflow simulate reception --at 2026-12-24T18:30:00+01:00 \
                        --dtmf 1 --graph transfer=fail"
)]
pub struct SimulateArgs {
    /// A flow file, or the name of a flow in --flows.
    #[arg(value_name = "FLOW")]
    pub flow: String,
    /// Where to look a flow up by name.
    #[arg(long, value_name = "DIR", default_value = "flows")]
    pub flows: PathBuf,
    /// The caller: a number (+E.164) or a Teams user id (default +33612345678, a French mobile).
    #[arg(long, value_name = "WHO")]
    pub from: Option<String>,
    /// Who is called: a number (+E.164), a user or application-instance id.
    #[arg(long, value_name = "WHO")]
    pub to: Option<String>,
    /// When the call starts, RFC 3339 (default: Monday 2026-01-05 10:00 in the flow's zone).
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// Keys the caller presses, in order, e.g. `1,2`.
    #[arg(long, value_name = "KEYS")]
    pub dtmf: Option<String>,
    /// How the simulated Graph behaves, e.g. `transfer=fail`, `hangup=20s` (repeatable).
    /// A list is comma-separated, one item per attempt or prompt:
    /// `call=no_answer,answer`, `dtmf=1,2`, `presses=4s:1,9s:2`.
    #[arg(long = "graph", value_name = "KEY=VALUE")]
    pub graph: Vec<String>,
    /// A parameter of an `api` flow (JSON value or text; repeatable).
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
}

/// Runs one simulated call and prints its timeline.
pub fn run(args: &SimulateArgs) -> ExitCode {
    let flow = match find(&args.flow, &args.flows) {
        Ok(flow) => flow,
        Err(Problem::Diagnostics(diags)) => {
            let style = Style::detect();
            for d in diags.iter().filter(|d| d.is_error()) {
                print!("{}", style.render(d));
            }
            return ExitCode::FAILURE;
        }
        Err(Problem::NotFound(message)) => {
            eprintln!("error: {message}");
            return ExitCode::FAILURE;
        }
    };
    let clock = match &args.at {
        None => default_clock(&flow),
        Some(at) => match DateTime::parse_from_rfc3339(at) {
            Ok(t) => t.with_timezone(&Utc),
            Err(e) => {
                eprintln!(
                    "error: `--at {at}` is not an RFC 3339 time ({e}), e.g. 2026-12-24T18:30:00+01:00"
                );
                return ExitCode::from(2);
            }
        },
    };
    let mut options = SimulateOptions::for_flow(&flow, clock);
    if let Some(from) = &args.from {
        options.from = party(from);
    }
    if let Some(to) = &args.to {
        options.to = party(to);
    }
    let mut settings: Vec<String> = args.graph.clone();
    if let Some(keys) = &args.dtmf {
        settings.push(format!("dtmf={keys}"));
    }
    for pair in &settings {
        if let Err(e) = options.graph.set(pair) {
            eprintln!("error: --graph {pair}: {e}");
            return ExitCode::from(2);
        }
    }
    match crate::serve::admin::parse_params(&args.params) {
        Ok(params) => options.params.extend(params),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    }
    if let Err(e) = crate::sim::check_start_params(&flow, &mut options) {
        for p in e.sentences() {
            eprintln!("error: --param: {p}");
        }
        return ExitCode::from(2);
    }
    let timeline = simulate(&flow, &options);
    print!("{}", timeline.render(flow.timezone));
    // As `callflow test`: a run that ends in `error` fails.
    if timeline.outcome() == Some(crate::engine::Outcome::Error) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// A party from the command line: `+…` is a number, anything else a user id.
fn party(who: &str) -> Party {
    if who.starts_with('+') {
        Party::phone(who)
    } else {
        Party::user(who)
    }
}
