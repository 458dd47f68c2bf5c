//! R8: a time range's weekly schedule with dated exceptions, judged on local wall-clock time.
//!
//! Membership is a function of the wall clock only: `active(t) = inside(wall(t))`. That one
//! choice gives both DST rules of R8 for free: a boundary that falls in a spring-forward gap
//! takes effect when the clock jumps over it (the end of the gap), and during the repeated hour
//! of a fall-back both occurrences read the same wall time and so get the same answer.
//!
//! [`Schedule::next_change`] walks the zone's offset segments: inside one segment the wall
//! clock runs continuously, so the next change is the next wall-clock boundary where
//! membership flips; at a segment's end the wall clock jumps and membership is judged again.

use std::collections::BTreeMap;

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

use crate::document;
use crate::problem::Problem;

const DAY_MINUTES: u16 = 24 * 60;

/// A half-open interval of minutes within a local day: `[from, to)`, `to` ≤ 1440.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    from: u16,
    to: u16,
}

/// A weekly schedule with exceptions, compiled from a document time range.
#[derive(Debug, Clone, Default)]
pub struct Schedule {
    /// Index 0 is Monday. Spans are sorted and merged.
    weekly: [Vec<Span>; 7],
    /// An empty list is a closed day.
    exceptions: BTreeMap<Date, Vec<Span>>,
}

impl Schedule {
    /// Compiles a time range, pushing every problem (with `path` prefixed) to `problems`.
    pub fn compile(raw: &document::TimeRange, path: &str, problems: &mut Vec<Problem>) -> Option<Schedule> {
        let before = problems.len();
        let mut weekly: [Vec<Span>; 7] = Default::default();
        for (i, entry) in raw.weekly.iter().enumerate() {
            let at = format!("{path}.weekly[{i}]");
            if entry.days.is_empty() {
                problems.push(Problem::new("invalid_value", format!("{at}.days"), "no day listed"));
            }
            if let Some(span) = parse_span(&entry.from, &entry.to, &at, problems) {
                for day in &entry.days {
                    weekly[day_index(*day)].push(span);
                }
            }
        }
        let mut exceptions = BTreeMap::new();
        for (i, exception) in raw.exceptions.iter().enumerate() {
            let at = format!("{path}.exceptions[{i}]");
            let date = parse_date(&exception.date, &format!("{at}.date"), problems);
            if exception.closed && !exception.intervals.is_empty() {
                problems.push(Problem::new(
                    "invalid_value",
                    at.clone(),
                    "an exception is either \"closed\": true or has \"intervals\", not both",
                ));
            } else if !exception.closed && exception.intervals.is_empty() {
                problems.push(Problem::new(
                    "invalid_value",
                    at.clone(),
                    "an exception needs \"closed\": true or a list of \"intervals\"",
                ));
            }
            let spans: Vec<Span> = exception
                .intervals
                .iter()
                .enumerate()
                .filter_map(|(j, iv)| parse_span(&iv.from, &iv.to, &format!("{at}.intervals[{j}]"), problems))
                .collect();
            if let Some(date) = date
                && exceptions.insert(date, merge(spans)).is_some()
            {
                problems.push(Problem::new(
                    "duplicate_date",
                    format!("{at}.date"),
                    format!("{date} has another exception in this time range"),
                ));
            }
        }
        if problems.len() > before {
            return None;
        }
        Some(Schedule {
            weekly: weekly.map(merge),
            exceptions,
        })
    }

    /// Whether the instant `t`, read in zone `tz`, is inside the time range.
    pub fn is_active(&self, t: Timestamp, tz: &TimeZone) -> bool {
        self.contains(tz.to_datetime(t))
    }

    /// The first instant after `t` at which [`Schedule::is_active`] differs from its value at
    /// `t`, or `None` when it never changes. Membership is constant on `[t, next_change)`.
    pub fn next_change(&self, t: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let state = self.is_active(t, tz);
        // Past the last exception the schedule repeats every week, so a change not found
        // within eight days of wall time beyond it never comes.
        let horizon_date = self.horizon(tz.to_datetime(t).date());
        let horizon = horizon_date
            .checked_add(2.days())
            .ok()
            .and_then(|d| d.to_zoned(TimeZone::UTC).ok())
            .map(|z| z.timestamp())
            .unwrap_or(Timestamp::MAX);
        let mut cur = t;
        loop {
            let offset = tz.to_offset(cur);
            let segment_end = tz.following(cur).map(|tr| tr.timestamp()).find(|end| *end > cur);
            if let Some(wall) = self.next_wall_change(offset.to_datetime(cur), state, horizon_date)
                && let Ok(at) = offset.to_timestamp(wall)
                && segment_end.is_none_or(|end| at < end)
            {
                return Some(at);
            }
            let end = segment_end?;
            if end > horizon {
                return None;
            }
            if self.is_active(end, tz) != state {
                return Some(end);
            }
            cur = end;
        }
    }

    fn horizon(&self, from: Date) -> Date {
        let last = self.exceptions.keys().next_back().copied().unwrap_or(from).max(from);
        last.checked_add(8.days()).unwrap_or(Date::MAX)
    }

    fn spans_on(&self, date: Date) -> &[Span] {
        match self.exceptions.get(&date) {
            Some(spans) => spans,
            None => &self.weekly[date.weekday().to_monday_zero_offset() as usize],
        }
    }

    fn contains_minute(&self, date: Date, minute: u16) -> bool {
        self.spans_on(date).iter().any(|s| s.from <= minute && minute < s.to)
    }

    fn contains(&self, wall: DateTime) -> bool {
        self.contains_minute(wall.date(), minute_of(wall.time()))
    }

    /// The first wall-clock time after `wall` (up to `horizon`) where membership is not `state`.
    fn next_wall_change(&self, wall: DateTime, state: bool, horizon: Date) -> Option<DateTime> {
        let mut date = wall.date();
        while date <= horizon {
            let spans = self.spans_on(date);
            // Midnight and every span edge are the only places membership can flip; an edge at
            // 24:00 is the next day's midnight.
            let edges = std::iter::once(0).chain(spans.iter().flat_map(|s| [s.from, s.to]));
            let mut found: Option<u16> = None;
            for minute in edges.filter(|m| *m < DAY_MINUTES) {
                let at = date.to_datetime(time_of(minute));
                if at > wall && self.contains_minute(date, minute) != state {
                    found = Some(found.map_or(minute, |f| f.min(minute)));
                }
            }
            if let Some(minute) = found {
                return Some(date.to_datetime(time_of(minute)));
            }
            date = date.tomorrow().ok()?;
        }
        None
    }
}

fn day_index(day: document::Day) -> usize {
    use document::Day::*;
    match day {
        Mon => 0,
        Tue => 1,
        Wed => 2,
        Thu => 3,
        Fri => 4,
        Sat => 5,
        Sun => 6,
    }
}

fn minute_of(t: Time) -> u16 {
    t.hour() as u16 * 60 + t.minute() as u16
}

fn time_of(minute: u16) -> Time {
    Time::constant((minute / 60) as i8, (minute % 60) as i8, 0, 0)
}

/// Sorts and merges overlapping or touching spans so that every edge is a real change.
fn merge(mut spans: Vec<Span>) -> Vec<Span> {
    spans.sort_by_key(|s| s.from);
    let mut out: Vec<Span> = Vec::with_capacity(spans.len());
    for s in spans {
        match out.last_mut() {
            Some(last) if s.from <= last.to => last.to = last.to.max(s.to),
            _ => out.push(s),
        }
    }
    out
}

fn parse_span(from: &str, to: &str, at: &str, problems: &mut Vec<Problem>) -> Option<Span> {
    let f = parse_hhmm(from, false, &format!("{at}.from"), problems);
    let t = parse_hhmm(to, true, &format!("{at}.to"), problems);
    let (f, t) = (f?, t?);
    if f >= t {
        problems.push(Problem::new(
            "invalid_interval",
            at,
            format!("\"from\" {from} is not before \"to\" {to}"),
        ));
        return None;
    }
    Some(Span { from: f, to: t })
}

/// `HH:MM`, 00:00 to 23:59, and 24:00 where `allow_24` (an interval's end).
fn parse_hhmm(text: &str, allow_24: bool, at: &str, problems: &mut Vec<Problem>) -> Option<u16> {
    let parsed = (|| {
        let b = text.as_bytes();
        if b.len() != 5 || b[2] != b':' || !b.iter().enumerate().all(|(i, c)| i == 2 || c.is_ascii_digit()) {
            return None;
        }
        let h = u16::from(b[0] - b'0') * 10 + u16::from(b[1] - b'0');
        let m = u16::from(b[3] - b'0') * 10 + u16::from(b[4] - b'0');
        match (h, m) {
            (24, 0) if allow_24 => Some(DAY_MINUTES),
            (0..=23, 0..=59) => Some(h * 60 + m),
            _ => None,
        }
    })();
    if parsed.is_none() {
        let range = if allow_24 { "00:00 to 24:00" } else { "00:00 to 23:59" };
        problems.push(Problem::new(
            "invalid_time",
            at,
            format!("invalid time {text:?}: expected HH:MM from {range}"),
        ));
    }
    parsed
}

/// `YYYY-MM-DD`, a real calendar date.
pub fn parse_date(text: &str, at: &str, problems: &mut Vec<Problem>) -> Option<Date> {
    let shaped = text.len() == 10
        && text.bytes().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                c == b'-'
            } else {
                c.is_ascii_digit()
            }
        });
    match shaped.then(|| text.parse::<Date>().ok()).flatten() {
        Some(d) => Some(d),
        None => {
            problems.push(Problem::new(
                "invalid_date",
                at,
                format!("invalid date {text:?}: expected an existing date as YYYY-MM-DD"),
            ));
            None
        }
    }
}
