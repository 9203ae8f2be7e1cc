//! The what-if clock: where a call goes at each moment of a week.
//!
//! [`week`] places one simulated call (the flow's default caller and
//! number, [`SimulateOptions::for_flow`]) at every hour of a week and at
//! every moment within an hour where one of the flow's calendars opens or
//! closes, runs each as [`Interactive`] does until the caller could act,
//! and records the step it reached, the steps on the way, and what each
//! calendar says then (open, closed, holiday). `callflow hours` prints it
//! as a table and the studio draws it as a week view. Pure: the calls run
//! on the simulated clock; nothing is read from the wall clock.

use std::sync::Arc;

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use serde::Serialize;

use crate::flow::Flow;

use super::interactive::Interactive;
use super::runner::SimulateOptions;

/// What a calendar says at a moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CalendarState {
    /// Within its hours.
    Open,
    /// Outside its hours.
    Closed,
    /// On one of its closed days.
    Holiday,
}

impl CalendarState {
    /// What `calendar` says at `local` (a date and time in the flow's zone).
    pub fn of(calendar: &crate::flow::calendar::Calendar, local: NaiveDateTime) -> Self {
        let date = local.date();
        if calendar
            .closed
            .iter()
            .any(|(a, b)| *a <= date && date <= *b)
        {
            CalendarState::Holiday
        } else if calendar.is_open(local) {
            CalendarState::Open
        } else {
            CalendarState::Closed
        }
    }

    /// `open`, `closed`, `holiday`.
    pub fn as_str(self) -> &'static str {
        match self {
            CalendarState::Open => "open",
            CalendarState::Closed => "closed",
            CalendarState::Holiday => "holiday",
        }
    }
}

/// One moment of the week and where a call placed then goes.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Moment {
    /// The day, 0 = Monday.
    pub day: usize,
    /// The local time, `HH:MM`.
    pub time: String,
    /// The step the call reached when it first waited for the caller, or
    /// ended in; `None` when the local time does not exist (a clock change).
    pub step: Option<String>,
    /// The steps entered on the way, in order.
    pub path: Vec<String>,
    /// Each calendar's state, in the flow's order.
    pub calendars: Vec<CalendarState>,
}

/// A week of moments.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Week {
    /// The flow.
    pub flow: String,
    /// Its time zone.
    pub timezone: String,
    /// The seven dates, Monday first.
    pub days: Vec<NaiveDate>,
    /// The flow's calendars, by name.
    pub calendars: Vec<String>,
    /// The local times of the rows: every hour, and every time a calendar
    /// opens or closes, in order.
    pub times: Vec<String>,
    /// One moment per day and row: `moments[row * 7 + day]`.
    pub moments: Vec<Moment>,
}

impl Week {
    /// The moment of `day` (0 = Monday) at row `row`.
    pub fn at(&self, row: usize, day: usize) -> Option<&Moment> {
        self.moments.get(row * 7 + day)
    }

    /// The days on which calendar `c` is on holiday, as indices.
    pub fn holidays(&self, c: usize) -> Vec<usize> {
        (0..7)
            .filter(|d| {
                self.moments
                    .iter()
                    .any(|m| m.day == *d && m.calendars.get(c) == Some(&CalendarState::Holiday))
            })
            .collect()
    }
}

/// The Monday of the week holding `date`.
pub fn monday_of(date: NaiveDate) -> NaiveDate {
    date - Duration::days(i64::from(date.weekday().num_days_from_monday()))
}

/// Where a call to `flow` goes at every hour (and every calendar change) of
/// the week that holds `date`.
pub fn week(flow: &Arc<Flow>, date: NaiveDate) -> Week {
    let monday = monday_of(date);
    let days: Vec<NaiveDate> = (0..7).map(|d| monday + Duration::days(d)).collect();
    let mut times: Vec<NaiveTime> = (0..24)
        .filter_map(|h| NaiveTime::from_hms_opt(h, 0, 0))
        .collect();
    for cal in flow.calendars.values() {
        for p in &cal.hours {
            times.push(p.from);
            if !p.to_end_of_day {
                times.push(p.to);
            }
        }
    }
    times.sort();
    times.dedup();
    let mut moments = Vec::with_capacity(times.len() * 7);
    for t in &times {
        for (d, date) in days.iter().enumerate() {
            moments.push(moment(flow, d, date.and_time(*t)));
        }
    }
    Week {
        flow: flow.name.clone(),
        timezone: flow.timezone.name().to_owned(),
        days,
        calendars: flow.calendars.keys().cloned().collect(),
        times: times
            .iter()
            .map(|t| t.format("%H:%M").to_string())
            .collect(),
        moments,
    }
}

fn moment(flow: &Arc<Flow>, day: usize, local: NaiveDateTime) -> Moment {
    let calendars = flow
        .calendars
        .values()
        .map(|c| CalendarState::of(c, local))
        .collect();
    let time = local.format("%H:%M").to_string();
    let Some(at) = flow.timezone.from_local_datetime(&local).earliest() else {
        return Moment {
            day,
            time,
            step: None,
            path: Vec::new(),
            calendars,
        };
    };
    let options = SimulateOptions::for_flow(flow, at.with_timezone(&Utc));
    let sim = Interactive::start(Arc::clone(flow), options);
    let session = sim.session();
    Moment {
        day,
        time,
        step: session.step_name(flow).map(str::to_owned),
        path: session
            .timeline
            .steps()
            .map(|(s, _)| s.to_owned())
            .collect(),
        calendars,
    }
}

/// The week as a table: a row per time, a column per day, the step a call
/// reaches in each cell (`*` on a holiday of some calendar).
pub fn table(week: &Week) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} ({}), week of {}: the step a call reaches at each time",
        week.flow,
        week.timezone,
        week.days
            .first()
            .map(|d| d.format("%a %Y-%m-%d").to_string())
            .unwrap_or_default()
    );
    let width = week
        .moments
        .iter()
        .filter_map(|m| m.step.as_ref().map(|s| s.chars().count() + 1))
        .max()
        .unwrap_or(1)
        .max(6);
    let _ = write!(out, "\n{:<6}", "time");
    for d in &week.days {
        let _ = write!(out, "  {:<width$}", d.format("%a %d").to_string());
    }
    let line = out.trim_end().len();
    out.truncate(line);
    out.push('\n');
    for (row, time) in week.times.iter().enumerate() {
        let _ = write!(out, "{time:<6}");
        for day in 0..7 {
            let cell = week.at(row, day).map_or_else(String::new, |m| {
                let holiday = m.calendars.contains(&CalendarState::Holiday);
                match &m.step {
                    Some(s) if holiday => format!("{s}*"),
                    Some(s) => s.clone(),
                    None => "-".into(),
                }
            });
            let _ = write!(out, "  {cell:<width$}");
        }
        let line = out.trim_end().len();
        out.truncate(line);
        out.push('\n');
    }
    for (c, name) in week.calendars.iter().enumerate() {
        let holidays = week.holidays(c);
        if !holidays.is_empty() {
            let dates: Vec<String> = holidays
                .iter()
                .map(|d| week.days[*d].format("%a %Y-%m-%d").to_string())
                .collect();
            let _ = writeln!(out, "* a holiday of `{name}`: {}", dates.join(", "));
        }
    }
    if week.moments.iter().any(|m| m.step.is_none()) {
        out.push_str("- the local time does not exist (the clock changes)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn christmas_week_at_reception() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("flows/reception.yaml");
        let flow = Arc::new(crate::flow::load_file(&path).flow.expect("reception loads"));
        let w = week(
            &flow,
            NaiveDate::from_ymd_opt(2026, 12, 23).expect("a date"),
        );
        assert_eq!(
            w.days[0],
            NaiveDate::from_ymd_opt(2026, 12, 21).expect("a date")
        );
        assert!(w.times.contains(&"12:30".to_owned()) && w.times.contains(&"13:30".to_owned()));
        let row = |t: &str| w.times.iter().position(|x| x == t).expect("a row");
        let step = |t: &str, d: usize| w.at(row(t), d).and_then(|m| m.step.clone());
        assert_eq!(step("10:00", 0).as_deref(), Some("menu"));
        assert_eq!(step("12:30", 0).as_deref(), Some("closed"));
        assert_eq!(step("10:00", 4).as_deref(), Some("closed"), "Christmas");
        assert_eq!(
            w.at(row("10:00"), 4).map(|m| m.calendars[0]),
            Some(CalendarState::Holiday)
        );
        assert_eq!(step("10:00", 5).as_deref(), Some("closed"), "Saturday");
        assert_eq!(w.holidays(0), vec![4]);
    }
}
