//! How the commands print diagnostics: colour on a terminal, plain text otherwise.
//!
//! Colour is used only when stdout is a terminal and `NO_COLOR` is unset
//! (<https://no-color.org>); otherwise diagnostics are drawn without colour
//! at a fixed width, so that logs, CI output and snapshots stay stable.

use std::io::IsTerminal;

use crate::flow::Diagnostic;

/// The width used when stdout is not a terminal.
pub const FIXED_WIDTH: usize = 100;

/// How to draw diagnostics on this stdout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// Colours and the terminal's width (from `COLUMNS`, else 100).
    Terminal {
        /// Columns.
        width: usize,
    },
    /// No colour, fixed width.
    Plain,
}

impl Style {
    /// The style for the process's stdout and environment.
    pub fn detect() -> Style {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        if std::io::stdout().is_terminal() && !no_color {
            let width = std::env::var("COLUMNS")
                .ok()
                .and_then(|c| c.parse().ok())
                .filter(|w| *w >= 40)
                .unwrap_or(FIXED_WIDTH);
            Style::Terminal { width }
        } else {
            Style::Plain
        }
    }

    /// Draws one diagnostic.
    pub fn render(self, diagnostic: &Diagnostic) -> String {
        match self {
            Style::Plain => diagnostic.render(FIXED_WIDTH),
            Style::Terminal { width } => {
                let handler =
                    miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode())
                        .with_width(width)
                        .with_links(false);
                let mut out = String::new();
                match handler.render_report(&mut out, diagnostic) {
                    Ok(()) => out,
                    Err(_) => diagnostic.render(width),
                }
            }
        }
    }
}

pub use crate::flow::diagnostic::count;
