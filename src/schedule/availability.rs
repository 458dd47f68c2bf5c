//! Availability (R10): time inside the availability period counts as available when the
//! service was `ok` or `warning`, as unavailable when `critical` or `unreachable`; `unknown`
//! time, time without data and time outside the period are left out.
//!
//! A result's state holds from its check until the next one, but never longer than `max_gap`
//! (a missed schedule, the box down): past that, time is without data. Time outside the
//! control period has no checks and is left out too.

use std::collections::VecDeque;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use crate::record::{State, Window};
use crate::rules::Schedule;
use crate::rules::maintenance::Occurrence;

/// History kept: enough for the 30-day window.
const KEEP_S: i64 = 31 * 86_400;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Span {
    start: i64,
    end: i64,
    available: bool,
}

/// One service's counted time, as spans of whole seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Availability {
    spans: VecDeque<Span>,
}

/// Availability over one window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Figures {
    pub window: Window,
    pub available_s: u64,
    pub unavailable_s: u64,
    /// `None` when no time counted.
    pub percent: Option<f64>,
    pub target: f64,
    pub breached: bool,
}

impl Availability {
    /// Counts `[from, to)` in `state`, inside both periods and outside every `excluded`
    /// maintenance (R13; all read in `tz`).
    pub fn count(
        &mut self,
        from: Timestamp,
        to: Timestamp,
        state: State,
        periods: [&Schedule; 2],
        excluded: &[Occurrence],
        tz: &TimeZone,
    ) {
        let available = match state {
            State::Ok | State::Warning => true,
            State::Critical | State::Unreachable => false,
            State::Unknown => return,
        };
        let mut cur = from;
        while cur < to {
            let inside = periods.iter().all(|p| p.is_active(cur, tz)) && !excluded.iter().any(|m| m.is_active(cur, tz));
            let next = periods
                .iter()
                .filter_map(|p| p.next_change(cur, tz))
                .chain(excluded.iter().filter_map(|m| m.next_change(cur, tz)))
                .filter(|n| *n < to)
                .min()
                .unwrap_or(to);
            if inside {
                self.push(cur.as_second(), next.as_second(), available);
            }
            cur = next;
        }
        let horizon = to.as_second() - KEEP_S;
        while self.spans.front().is_some_and(|s| s.end <= horizon) {
            self.spans.pop_front();
        }
    }

    /// Leaves `[start, end)` out of what was counted (R13: a maintenance recorded after the
    /// fact). Idempotent; says whether anything was counted there.
    pub fn exclude(&mut self, start: Timestamp, end: Timestamp) -> bool {
        let (start, end) = (start.as_second(), end.as_second());
        if !self.spans.iter().any(|s| s.start < end && start < s.end) {
            return false;
        }
        let mut kept = VecDeque::with_capacity(self.spans.len() + 1);
        for s in self.spans.drain(..) {
            if s.end <= start || end <= s.start {
                kept.push_back(s);
                continue;
            }
            if s.start < start {
                kept.push_back(Span { end: start, ..s });
            }
            if end < s.end {
                kept.push_back(Span { start: end, ..s });
            }
        }
        self.spans = kept;
        true
    }

    fn push(&mut self, start: i64, end: i64, available: bool) {
        if end <= start {
            return;
        }
        match self.spans.back_mut() {
            Some(last) if last.available == available && last.end == start => last.end = end,
            _ => self.spans.push_back(Span { start, end, available }),
        }
    }

    /// The figures of one window ending at `now`; `day` starts at local midnight in `tz`.
    pub fn figures(&self, window: Window, now: Timestamp, tz: &TimeZone, target: f64) -> Figures {
        let end = now.as_second();
        let start = match window {
            Window::Day => tz
                .to_datetime(now)
                .date()
                .to_zoned(tz.clone())
                .map_or(end - 86_400, |z| z.timestamp().as_second()),
            Window::Last24h => end - 86_400,
            Window::Last30d => end - 30 * 86_400,
        };
        let (mut up, mut down) = (0u64, 0u64);
        for s in &self.spans {
            let overlap = (s.end.min(end) - s.start.max(start)).max(0) as u64;
            if s.available {
                up += overlap;
            } else {
                down += overlap;
            }
        }
        let percent = (up + down > 0).then(|| 100.0 * up as f64 / (up + down) as f64);
        Figures {
            window,
            available_s: up,
            unavailable_s: down,
            percent: percent.map(|p| (p * 1000.0).round() / 1000.0),
            target,
            breached: percent.is_some_and(|p| p < target),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document;

    fn schedule(weekly: serde_json::Value) -> Schedule {
        let raw: document::TimeRange =
            serde_json::from_value(serde_json::json!({ "id": "t", "name": "t", "weekly": weekly })).expect("tr");
        Schedule::compile(&raw, "t", &mut Vec::new()).expect("valid")
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("ts")
    }

    #[test]
    fn r10_ok_and_warning_count_as_available_critical_as_unavailable_unknown_not_at_all() {
        let always = schedule(
            serde_json::json!([{ "days": ["mon","tue","wed","thu","fri","sat","sun"], "from": "00:00", "to": "24:00" }]),
        );
        let mut a = Availability::default();
        let tz = TimeZone::UTC;
        a.count(
            ts("2026-11-20T10:00:00Z"),
            ts("2026-11-20T10:30:00Z"),
            State::Ok,
            [&always, &always],
            &[],
            &tz,
        );
        a.count(
            ts("2026-11-20T10:30:00Z"),
            ts("2026-11-20T10:40:00Z"),
            State::Warning,
            [&always, &always],
            &[],
            &tz,
        );
        a.count(
            ts("2026-11-20T10:40:00Z"),
            ts("2026-11-20T10:50:00Z"),
            State::Critical,
            [&always, &always],
            &[],
            &tz,
        );
        a.count(
            ts("2026-11-20T10:50:00Z"),
            ts("2026-11-20T11:00:00Z"),
            State::Unknown,
            [&always, &always],
            &[],
            &tz,
        );
        a.count(
            ts("2026-11-20T11:00:00Z"),
            ts("2026-11-20T11:10:00Z"),
            State::Unreachable,
            [&always, &always],
            &[],
            &tz,
        );
        let f = a.figures(Window::Last24h, ts("2026-11-20T12:00:00Z"), &tz, 99.0);
        assert_eq!((f.available_s, f.unavailable_s), (2400, 1200));
        assert_eq!(f.percent, Some(66.667));
        assert!(f.breached);
    }

    #[test]
    fn r10_only_time_inside_the_availability_period_counts() {
        let always = schedule(
            serde_json::json!([{ "days": ["mon","tue","wed","thu","fri","sat","sun"], "from": "00:00", "to": "24:00" }]),
        );
        let office = schedule(serde_json::json!([{ "days": ["fri"], "from": "09:00", "to": "17:00" }]));
        let mut a = Availability::default();
        let paris = TimeZone::get("Europe/Paris").expect("zone");
        // Friday 2026-11-20, 07:00Z to 17:00Z = 08:00 to 18:00 in Paris: 8 h inside 09:00–17:00.
        a.count(
            ts("2026-11-20T07:00:00Z"),
            ts("2026-11-20T17:00:00Z"),
            State::Critical,
            [&office, &always],
            &[],
            &paris,
        );
        let f = a.figures(Window::Day, ts("2026-11-20T22:00:00Z"), &paris, 99.0);
        assert_eq!((f.available_s, f.unavailable_s), (0, 8 * 3600));
        assert_eq!(f.percent, Some(0.0));
    }

    #[test]
    fn r10_the_day_window_starts_at_local_midnight() {
        let always = schedule(
            serde_json::json!([{ "days": ["mon","tue","wed","thu","fri","sat","sun"], "from": "00:00", "to": "24:00" }]),
        );
        let mut a = Availability::default();
        let ny = TimeZone::get("America/New_York").expect("zone");
        a.count(
            ts("2026-11-20T03:00:00Z"),
            ts("2026-11-20T07:00:00Z"),
            State::Ok,
            [&always, &always],
            &[],
            &ny,
        );
        // Midnight in New York is 05:00Z: two of the four hours fall on the 20th there.
        let f = a.figures(Window::Day, ts("2026-11-20T08:00:00Z"), &ny, 99.0);
        assert_eq!(f.available_s, 2 * 3600);
        assert_eq!(
            a.figures(Window::Last30d, ts("2026-11-20T08:00:00Z"), &ny, 99.0)
                .available_s,
            4 * 3600
        );
        let empty = Availability::default().figures(Window::Day, ts("2026-11-20T08:00:00Z"), &ny, 99.0);
        assert_eq!((empty.percent, empty.breached), (None, false), "no data is no breach");
    }

    #[test]
    fn r13_maintenance_time_is_left_out_and_a_window_recorded_after_the_fact_too() {
        let always = schedule(
            serde_json::json!([{ "days": ["mon","tue","wed","thu","fri","sat","sun"], "from": "00:00", "to": "24:00" }]),
        );
        let tz = TimeZone::UTC;
        let live = Occurrence::Once {
            start: ts("2026-11-20T10:00:00Z"),
            end: ts("2026-11-20T11:00:00Z"),
        };
        let mut a = Availability::default();
        a.count(
            ts("2026-11-20T09:00:00Z"),
            ts("2026-11-20T13:00:00Z"),
            State::Critical,
            [&always, &always],
            &[live],
            &tz,
        );
        let f = a.figures(Window::Day, ts("2026-11-20T13:00:00Z"), &tz, 99.0);
        assert_eq!(f.unavailable_s, 3 * 3600, "the covered hour is left out");
        // Recorded after the fact: 12:00–12:30 goes too, once however often it is applied.
        assert!(a.exclude(ts("2026-11-20T12:00:00Z"), ts("2026-11-20T12:30:00Z")));
        assert!(!a.exclude(ts("2026-11-20T12:00:00Z"), ts("2026-11-20T12:30:00Z")));
        let f = a.figures(Window::Day, ts("2026-11-20T13:00:00Z"), &tz, 99.0);
        assert_eq!(f.unavailable_s, 2 * 3600 + 1800);
    }
}
