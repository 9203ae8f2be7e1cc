//! A session's story: what happened, when, in which step, what was asked of
//! Graph and how the run ended.
//!
//! The engine appends [`TimelineEntry`]s as it handles events; `callflow
//! simulate`, failing scenarios and the admin API print them with
//! [`Timeline::render`]. Entries are bounded ([`Timeline::MAX_ENTRIES`]) so
//! that a session stays small. Rendering reads no clock: offsets are counted
//! from the first entry.

use std::fmt::{self, Write as _};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::command::{RequestKind, RequestLine};
use super::session::Outcome;

/// What one timeline entry records.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Entry {
    /// An event the session received, summarised.
    Event(String),
    /// The run entered a step, and by which outcome (`start`, `next`, `on_failure`, `key 1`, …).
    Enter {
        /// The step.
        step: String,
        /// How it was reached.
        via: String,
    },
    /// A Graph request the engine asked for.
    Request(RequestLine),
    /// A `log` line of the flow.
    Log(String),
    /// Something the engine decided to ignore or noticed (duplicates, stale states).
    Note(String),
    /// A failure (a refused request, an expression error, …).
    Error(String),
    /// The run ended.
    End {
        /// How.
        outcome: Outcome,
        /// Why, when it says more than the outcome.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// The flow's own name for it (a step's `end:`), if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
}

impl Entry {
    /// A short word for the kind of entry, as printed.
    pub fn kind(&self) -> &'static str {
        match self {
            Entry::Event(_) => "event",
            Entry::Enter { .. } => "step",
            Entry::Request(_) => "request",
            Entry::Log(_) => "log",
            Entry::Note(_) => "note",
            Entry::Error(_) => "error",
            Entry::End { .. } => "end",
        }
    }
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Entry::Event(s) | Entry::Log(s) | Entry::Note(s) | Entry::Error(s) => f.write_str(s),
            Entry::Enter { step, via } => write!(f, "{step} ({via})"),
            Entry::Request(line) => write!(f, "{line}"),
            Entry::End {
                outcome,
                reason,
                name,
            } => {
                match name {
                    Some(n) => write!(f, "{n} ({outcome})")?,
                    None => write!(f, "{outcome}")?,
                }
                match reason {
                    Some(r) => write!(f, ": {r}"),
                    None => Ok(()),
                }
            }
        }
    }
}

/// One entry: when, in which step, what.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// When (the `now` of the event being handled).
    pub at: DateTime<Utc>,
    /// The step the run was in, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// What happened.
    pub what: Entry,
}

/// The entries of one session, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    /// The entries kept.
    pub entries: Vec<TimelineEntry>,
    /// How many entries were dropped after [`Timeline::MAX_ENTRIES`].
    #[serde(default)]
    pub dropped: u32,
}

impl Timeline {
    /// The most entries kept; later ones are counted in `dropped`, except
    /// the run's end, which is always kept.
    pub const MAX_ENTRIES: usize = 1000;

    /// Appends an entry.
    pub fn push(&mut self, at: DateTime<Utc>, step: Option<String>, what: Entry) {
        if self.entries.len() >= Self::MAX_ENTRIES && !matches!(what, Entry::End { .. }) {
            self.dropped = self.dropped.saturating_add(1);
            return;
        }
        self.entries.push(TimelineEntry { at, step, what });
    }

    /// Appends a request.
    pub fn push_request(&mut self, at: DateTime<Utc>, step: Option<String>, line: RequestLine) {
        self.push(at, step, Entry::Request(line));
    }

    /// The requests, in order.
    pub fn requests(&self) -> impl Iterator<Item = &RequestLine> {
        self.entries.iter().filter_map(|e| match &e.what {
            Entry::Request(line) => Some(line),
            _ => None,
        })
    }

    /// The recorded outcome, if the run ended.
    pub fn outcome(&self) -> Option<Outcome> {
        self.entries.iter().rev().find_map(|e| match &e.what {
            Entry::End { outcome, .. } => Some(*outcome),
            _ => None,
        })
    }

    /// Steps entered, with how each was reached, in order.
    pub fn steps(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().filter_map(|e| match &e.what {
            Entry::Enter { step, via } => Some((step.as_str(), via.as_str())),
            _ => None,
        })
    }

    /// Whether a request of one of `kinds` was sent on the call tagged `tag`.
    pub fn has_request_for(&self, tag: &str, kinds: &[RequestKind]) -> bool {
        self.requests()
            .any(|r| r.call == tag && kinds.contains(&r.request))
    }

    /// The timeline as readable text, one entry a line: offset from the
    /// first entry, step, kind, text. The first line gives the start time in `tz`.
    pub fn render(&self, tz: Tz) -> String {
        let mut out = String::new();
        let Some(first) = self.entries.first() else {
            return "(empty timeline)\n".into();
        };
        let start = first.at;
        let _ = writeln!(
            out,
            "start {}",
            start.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S%.3f %Z")
        );
        let width = self
            .entries
            .iter()
            .filter_map(|e| e.step.as_ref().map(String::len))
            .max()
            .unwrap_or(1)
            .clamp(1, 24);
        for e in &self.entries {
            let offset = (e.at - start).num_milliseconds();
            let step = e.step.as_deref().unwrap_or("-");
            let _ = writeln!(
                out,
                "{:>11}  {:<width$}  {:<7}  {}",
                format_offset(offset),
                step,
                e.what.kind(),
                e.what
            );
        }
        if self.dropped > 0 {
            let _ = writeln!(out, "({} entries dropped)", self.dropped);
        }
        out
    }
}

/// `+12.345s`, or `+1m02.345s` past a minute.
pub fn format_offset(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "+" };
    let ms = ms.unsigned_abs();
    let (m, s, frac) = (ms / 60_000, (ms / 1000) % 60, ms % 1000);
    if m > 0 {
        format!("{sign}{m}m{s:02}.{frac:03}s")
    } else {
        format!("{sign}{s}.{frac:03}s")
    }
}

impl fmt::Display for Timeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(Tz::UTC))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_offsets_steps_and_kinds() {
        let t0 = DateTime::parse_from_rfc3339("2026-11-20T09:00:00Z")
            .expect("a date")
            .with_timezone(&Utc);
        let mut t = Timeline::default();
        t.push(t0, None, Entry::Event("incoming call".into()));
        t.push(
            t0 + chrono::Duration::milliseconds(61_500),
            Some("bye".into()),
            Entry::End {
                outcome: Outcome::HungUp,
                reason: None,
                name: None,
            },
        );
        let text = t.render(Tz::Europe__Paris);
        assert!(
            text.starts_with("start 2026-11-20 10:00:00.000 CET\n"),
            "{text}"
        );
        assert!(text.contains("+1m01.500s  bye  end      hung_up"), "{text}");
        assert_eq!(t.outcome(), Some(Outcome::HungUp));
        assert_eq!(format_offset(-1500), "-1.500s");
    }
}
