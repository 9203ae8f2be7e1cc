//! Opening hours: weekly periods and holidays, in the flow's time zone.
//!
//! A calendar answers one question, [`Calendar::is_open`], for a local date
//! and time given by the caller; it never reads a clock.

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime};

/// Named opening hours, parsed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Calendar {
    /// Weekly open periods.
    pub hours: Vec<Period>,
    /// Closed days, as inclusive ranges.
    pub closed: Vec<(NaiveDate, NaiveDate)>,
}

/// One weekly period: the days it applies to and a time range.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Period {
    /// Bit `n` set when the period applies to day `n` (0 = Monday).
    pub days: u8,
    /// Opening time, inclusive.
    pub from: NaiveTime,
    /// Closing time, exclusive; `24:00` is written as the end of the day.
    pub to: NaiveTime,
    /// Whether `to` is midnight at the end of the day.
    pub to_end_of_day: bool,
}

impl Calendar {
    /// Whether the calendar is open at `local` (a date and time in the flow's zone).
    pub fn is_open(&self, local: NaiveDateTime) -> bool {
        let date = local.date();
        if self.closed.iter().any(|(a, b)| *a <= date && date <= *b) {
            return false;
        }
        let day = date.weekday().num_days_from_monday();
        let t = local.time();
        self.hours
            .iter()
            .any(|p| p.days & (1 << day) != 0 && t >= p.from && (p.to_end_of_day || t < p.to))
    }
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Parses `mon-fri 09:00-12:30` (days: names, ranges, commas; or `daily`).
pub fn parse_period(spec: &str) -> Result<Period, String> {
    let spec = spec.trim();
    let (days, times) = spec
        .split_once(char::is_whitespace)
        .ok_or_else(|| format!("`{spec}` needs days and hours, e.g. `mon-fri 09:00-17:00`"))?;
    let mut mask = 0u8;
    if days.eq_ignore_ascii_case("daily") {
        mask = 0x7f;
    } else {
        for part in days.split(',') {
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            let a = day_index(a)?;
            let b = day_index(b)?;
            let mut d = a;
            loop {
                mask |= 1 << d;
                if d == b {
                    break;
                }
                d = (d + 1) % 7;
            }
        }
    }
    let (from, to) = times.trim().split_once('-').ok_or_else(|| {
        format!(
            "`{}` is not a time range; write `09:00-17:00`",
            times.trim()
        )
    })?;
    let from = parse_time(from)?;
    let (to, to_end_of_day) = if to.trim() == "24:00" {
        (NaiveTime::MIN, true)
    } else {
        (parse_time(to)?, false)
    };
    if !to_end_of_day && to <= from {
        return Err(format!(
            "the range ends ({}) before it starts ({}); split a night period in two",
            to.format("%H:%M"),
            from.format("%H:%M")
        ));
    }
    Ok(Period {
        days: mask,
        from,
        to,
        to_end_of_day,
    })
}

fn day_index(name: &str) -> Result<u32, String> {
    let n = name.trim().to_ascii_lowercase();
    let short: String = n.chars().take(3).collect();
    DAYS.iter()
        .position(|d| *d == short && (n.len() == 3 || full_day(d).starts_with(&n)))
        .map(|i| i as u32)
        .ok_or_else(|| {
            let name = name.trim();
            if let Some(day) = foreign_day(&n) {
                return format!(
                    "`{name}` is not a day; did you mean `{day}`? (days are written in English)"
                );
            }
            let full = DAYS.map(full_day);
            match super::suggest::closest(name, DAYS.iter().chain(full.iter()).copied()) {
                Some(day) => format!("`{name}` is not a day; did you mean `{}`?", &day[..3]),
                None => format!("`{name}` is not a day; use mon, tue, wed, thu, fri, sat, sun"),
            }
        })
}

/// The English day a French, Spanish, Italian, German or Dutch day name (or
/// its usual abbreviation) means: `lun` is `mon`, not the nearest spelling
/// (`sun`).
fn foreign_day(name: &str) -> Option<&'static str> {
    const NAMES: [(&str, &[&str]); 7] = [
        (
            "mon",
            &[
                "lun", "lundi", "lunes", "lunedì", "lunedi", "mo", "montag", "ma", "maandag",
            ],
        ),
        (
            "tue",
            &[
                "mar", "mardi", "martes", "martedì", "martedi", "di", "dienstag", "dinsdag",
            ],
        ),
        (
            "wed",
            &[
                "mer",
                "mercredi",
                "mié",
                "mie",
                "miércoles",
                "miercoles",
                "mercoledì",
                "mercoledi",
                "mi",
                "mittwoch",
                "wo",
                "woensdag",
            ],
        ),
        (
            "thu",
            &[
                "jeu",
                "jeudi",
                "jue",
                "jueves",
                "gio",
                "giovedì",
                "giovedi",
                "do",
                "donnerstag",
                "donderdag",
            ],
        ),
        (
            "fri",
            &[
                "ven", "vendredi", "vie", "viernes", "venerdì", "venerdi", "fr", "freitag", "vr",
                "vrijdag",
            ],
        ),
        (
            "sat",
            &[
                "sam", "samedi", "sáb", "sab", "sábado", "sabado", "sabato", "sa", "samstag", "za",
                "zaterdag",
            ],
        ),
        (
            "sun",
            &[
                "dim", "dimanche", "dom", "domingo", "domenica", "so", "sonntag", "zo", "zondag",
            ],
        ),
    ];
    let name = name.trim_end_matches('.');
    NAMES
        .iter()
        .find(|(_, names)| names.contains(&name))
        .map(|(day, _)| *day)
}

fn full_day(short: &str) -> &'static str {
    match short {
        "mon" => "monday",
        "tue" => "tuesday",
        "wed" => "wednesday",
        "thu" => "thursday",
        "fri" => "friday",
        "sat" => "saturday",
        _ => "sunday",
    }
}

fn parse_time(t: &str) -> Result<NaiveTime, String> {
    let t = t.trim();
    NaiveTime::parse_from_str(t, "%H:%M").map_err(|_| match hour_shorthand(t) {
        Some(fixed) => format!("`{t}` is not a time; write `{fixed}`"),
        None => format!("`{t}` is not a time; write HH:MM, e.g. `09:30`"),
    })
}

/// `09:00` for `9h`, `9`, `9am`, `17h30`: the HH:MM a designer meant.
fn hour_shorthand(t: &str) -> Option<String> {
    let lower = t.to_ascii_lowercase();
    let (h, m, pm) = if let Some(h) = lower.strip_suffix("pm") {
        (h, "00", true)
    } else if let Some(h) = lower.strip_suffix("am") {
        (h, "00", false)
    } else if let Some((h, m)) = lower.split_once(['h', '.']) {
        (h, if m.is_empty() { "00" } else { m }, false)
    } else {
        (lower.as_str(), "00", false)
    };
    let h: u32 = h.trim().parse().ok()?;
    let m: u32 = m.trim().parse().ok()?;
    let h = if pm && h < 12 { h + 12 } else { h };
    (h < 24 && m < 60).then(|| format!("{h:02}:{m:02}"))
}

/// Parses a closed day `2026-12-25` or a range `2026-12-24..2026-12-26`.
pub fn parse_closed(spec: &str) -> Result<(NaiveDate, NaiveDate), String> {
    let spec = spec.trim();
    let (a, b) = spec.split_once("..").unwrap_or((spec, spec));
    let date = |s: &str| {
        let s = s.trim();
        NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| {
            no_such_day(s).unwrap_or_else(|| {
                format!("`{s}` is not a date; write YYYY-MM-DD, e.g. `2026-12-25`")
            })
        })
    };
    let (a, b) = (date(a)?, date(b)?);
    if b < a {
        return Err(format!("the range ends ({b}) before it starts ({a})"));
    }
    Ok((a, b))
}

/// Why a well-formed `YYYY-MM-DD` is still not a date (`2026-02-30`).
fn no_such_day(s: &str) -> Option<String> {
    let mut parts = s.splitn(3, '-');
    let y: i32 = parts.next()?.parse().ok()?;
    let m: u32 = parts.next()?.parse().ok()?;
    let d: u32 = parts.next()?.parse().ok()?;
    let first = NaiveDate::from_ymd_opt(y, m, 1);
    let Some(first) = first else {
        return Some(format!("`{s}` is not a date; there is no month {m}"));
    };
    let next = if m == 12 {
        NaiveDate::from_ymd_opt(y + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(y, m + 1, 1)
    }?;
    let days = next.signed_duration_since(first).num_days();
    if (1..=days).contains(&i64::from(d)) {
        return None;
    }
    let month = first.format("%B %Y");
    Some(format!(
        "`{s}` is not a date; {month} has {days} days, not {d}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").expect("test date")
    }

    #[test]
    fn weekly_hours_and_a_holiday_on_a_friday() {
        let cal = Calendar {
            hours: vec![
                parse_period("mon-fri 09:00-12:30").expect("valid"),
                parse_period("mon-fri 13:30-17:00").expect("valid"),
            ],
            closed: vec![parse_closed("2026-12-25").expect("valid")],
        };
        assert!(cal.is_open(at("2026-12-18 10:00")), "a Friday morning");
        assert!(!cal.is_open(at("2026-12-18 12:45")), "lunch");
        assert!(
            !cal.is_open(at("2026-12-18 17:00")),
            "closing time is exclusive"
        );
        assert!(!cal.is_open(at("2026-12-25 10:00")), "Christmas, a Friday");
        assert!(!cal.is_open(at("2026-12-19 10:00")), "a Saturday");
    }

    #[test]
    fn a_day_in_another_language_suggests_its_english_name() {
        for (written, day) in [
            ("lun", "mon"),
            ("Lundi", "mon"),
            ("dim", "sun"),
            ("mié", "wed"),
            ("Do", "thu"),
        ] {
            let e = parse_period(&format!("{written}-fri 09:00-17:00")).expect_err("not a day");
            assert!(
                e.contains(&format!(
                    "did you mean `{day}`? (days are written in English)"
                )),
                "{written}: {e}"
            );
        }
    }

    #[test]
    fn wrapping_day_ranges_and_errors() {
        let p = parse_period("fri-mon 10:00-24:00").expect("valid");
        assert_eq!(p.days, 0b111_0001);
        assert!(parse_period("mon-fry 09:00-17:00").is_err());
        assert!(parse_period("mon-fri 9h-17h").is_err());
        assert!(parse_period("mon-fri 17:00-09:00").is_err());
        assert!(parse_closed("2026-02-30").is_err());
        assert_eq!(
            parse_period("mon-fry 09:00-17:00").unwrap_err(),
            "`fry` is not a day; did you mean `fri`?"
        );
        assert_eq!(
            parse_period("mon-fri 9h-17h").unwrap_err(),
            "`9h` is not a time; write `09:00`"
        );
        assert_eq!(
            parse_closed("2026-02-30").unwrap_err(),
            "`2026-02-30` is not a date; February 2026 has 28 days, not 30"
        );
    }
}
