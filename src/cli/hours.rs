//! `callflow hours`: where a call to a flow goes at each hour of a week.
//!
//! FLOW is a file path, or the name of a flow found in `--flows DIR` (as
//! for `callflow graph`). The week is the one holding `--week DATE`
//! (default: this week, by the machine's clock). Prints the table of
//! [`crate::sim::hours`], or its JSON.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use crate::sim::hours::{table, week};

/// Arguments of `callflow hours`.
#[derive(Debug, Args)]
#[command(
    after_help = "Each cell is the step a call placed at that time reaches first where it waits \
                  for the caller or ends (the flow's default caller and number, no key pressed). \
                  Rows: every hour, and every time a calendar opens or closes."
)]
pub struct HoursArgs {
    /// A flow file, or the name of a flow in --flows.
    #[arg(value_name = "FLOW")]
    pub flow: String,
    /// A date in the week to show (YYYY-MM-DD); default: this week.
    #[arg(long, value_name = "DATE")]
    pub week: Option<chrono::NaiveDate>,
    /// Where to look a flow up by name.
    #[arg(long, value_name = "DIR", default_value = "flows")]
    pub flows: PathBuf,
    /// `text` for people, `json` for tools.
    #[arg(long, value_enum, default_value_t = HoursFormat::Text)]
    pub format: HoursFormat,
}

/// Output formats of `callflow hours`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum HoursFormat {
    // A table.
    Text,
    // The week as JSON.
    Json,
}

/// Finds the flow, plays the week, prints it.
pub fn run(args: &HoursArgs) -> ExitCode {
    let flow = match super::graph::find(&args.flow, &args.flows) {
        Ok(flow) => flow,
        Err(problem) => return super::graph::report(problem),
    };
    let date = args.week.unwrap_or_else(|| {
        chrono::Utc::now()
            .with_timezone(&flow.timezone)
            .date_naive()
    });
    let w = week(&flow, date);
    match args.format {
        HoursFormat::Text => {
            if flow.calendars.is_empty() {
                println!("note: `{}` has no calendars", flow.name);
            }
            print!("{}", table(&w));
        }
        HoursFormat::Json => {
            println!("{}", serde_json::to_string_pretty(&w).unwrap_or_default());
        }
    }
    ExitCode::SUCCESS
}
