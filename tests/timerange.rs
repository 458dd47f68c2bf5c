//! R7 (zones) and R8 (time ranges): membership on local wall-clock time, next change across
//! DST gaps and repeated hours, exceptions by local date.

mod common;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;
use serde_json::json;

use snbox::document;
use snbox::rules::Schedule;

const ZONES: [&str; 4] = [
    "Europe/Paris",
    "America/New_York",
    "Australia/Lord_Howe",
    "America/Martinique",
];

fn schedule(json: serde_json::Value) -> Schedule {
    let mut raw = json!({ "id": "t", "name": "t" });
    if let (Some(o), Some(extra)) = (raw.as_object_mut(), json.as_object()) {
        o.extend(extra.clone());
    }
    let raw: document::TimeRange = serde_json::from_value(raw).expect("a time range");
    let mut problems = Vec::new();
    Schedule::compile(&raw, "time_ranges[0]", &mut problems).unwrap_or_else(|| panic!("{problems:?}"))
}

fn ts(s: &str) -> Timestamp {
    s.parse().expect("an instant")
}

fn zone(name: &str) -> TimeZone {
    TimeZone::get(name).expect("a zone")
}

fn hhmm(minutes: i64) -> String {
    if minutes >= 24 * 60 {
        return "24:00".into();
    }
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

fn minute_of_day(t: Timestamp, tz: &TimeZone) -> i64 {
    let dt = tz.to_datetime(t);
    i64::from(dt.hour()) * 60 + i64::from(dt.minute())
}

fn day_name(t: Timestamp, tz: &TimeZone) -> &'static str {
    ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][tz.to_datetime(t).weekday().to_monday_zero_offset() as usize]
}

/// Every offset transition of `tz` in 2026 and 2027.
fn transitions(tz: &TimeZone) -> Vec<Timestamp> {
    tz.following(ts("2026-01-01T00:00:00Z"))
        .map(|t| t.timestamp())
        .take_while(|t| *t < ts("2028-01-01T00:00:00Z"))
        .collect()
}

#[test]
fn r8_boundary_in_a_dst_gap_takes_effect_at_the_end_of_the_gap() {
    let mut seen = 0;
    for name in ZONES {
        let tz = zone(name);
        for t in transitions(&tz) {
            let before = t - SignedDuration::from_mins(1);
            let (wall_before, wall_after) = (minute_of_day(before, &tz) + 1, minute_of_day(t, &tz));
            if wall_after <= wall_before {
                continue; // a fall-back
            }
            seen += 1;
            // A range that opens in the middle of the gap, on the local date of the change.
            let opens = wall_before + (wall_after - wall_before) / 2;
            let day = day_name(t, &tz);
            let s = schedule(json!({ "weekly": [ { "days": [day], "from": hhmm(opens), "to": "24:00" } ] }));
            assert!(!s.is_active(before, &tz), "{name} {t}");
            assert_eq!(
                s.next_change(before, &tz),
                Some(t),
                "{name}: opening at {} in the gap",
                hhmm(opens)
            );
            assert!(s.is_active(t, &tz));
            // And a range that closes in the gap closes at the end of the gap too.
            let s = schedule(json!({ "weekly": [ { "days": [day], "from": "00:00", "to": hhmm(opens) } ] }));
            assert!(s.is_active(before, &tz));
            assert_eq!(
                s.next_change(before, &tz),
                Some(t),
                "{name}: closing at {} in the gap",
                hhmm(opens)
            );
        }
    }
    assert_eq!(seen, 6, "two spring-forwards (2026, 2027) in each of three DST zones");
}

#[test]
fn r8_repeated_hour_is_judged_by_the_same_wall_clock_time_twice() {
    let mut seen = 0;
    for name in ZONES {
        let tz = zone(name);
        for t in transitions(&tz) {
            let before = t - SignedDuration::from_mins(1);
            let (old, new) = (tz.to_offset(before), tz.to_offset(t));
            if new >= old {
                continue; // a spring-forward
            }
            seen += 1;
            // 15 minutes inside the repeated stretch: the range opens and closes twice.
            let start = minute_of_day(t, &tz) + 10;
            let day = day_name(t, &tz);
            let s = schedule(json!({ "weekly": [ { "days": [day], "from": hhmm(start), "to": hhmm(start + 15) } ] }));
            let date = tz.to_datetime(t).date();
            let wall = |m: i64| date.to_datetime(jiff::civil::Time::constant((m / 60) as i8, (m % 60) as i8, 0, 0));
            let first_open = old.to_timestamp(wall(start)).expect("instant");
            let second_open = new.to_timestamp(wall(start)).expect("instant");
            let expected = [
                first_open,
                first_open + SignedDuration::from_mins(15),
                second_open,
                second_open + SignedDuration::from_mins(15),
            ];
            let mut cur = t - SignedDuration::from_hours(3);
            for (i, want) in expected.into_iter().enumerate() {
                let next = s.next_change(cur, &tz);
                assert_eq!(next, Some(want), "{name}: change {i} after {cur}");
                cur = want;
                assert_eq!(s.is_active(cur, &tz), i % 2 == 0, "{name}: state after change {i}");
            }
        }
    }
    assert_eq!(seen, 6, "two fall-backs (2026, 2027) in each of three DST zones");
}

#[test]
fn r8_fixture_night_of_2027_03_28_in_paris() {
    let tz = zone("Europe/Paris");
    let night = schedule(json!({ "weekly": [ { "days": ["sun"], "from": "01:00", "to": "04:00" } ] }));
    let t = ts("2027-03-28T00:30:00Z");
    assert!(night.is_active(t, &tz));
    // 04:00 CEST, one hour after the 02:00 → 03:00 jump.
    assert_eq!(night.next_change(t, &tz), Some(ts("2027-03-28T02:00:00Z")));
}

#[test]
fn r7_martinique_keeps_its_office_hours_without_dst() {
    let tz = zone("America/Martinique");
    let office =
        schedule(json!({ "weekly": [ { "days": ["mon","tue","wed","thu","fri"], "from": "08:00", "to": "18:00" } ] }));
    // Monday 2026-03-30 07:00 local is 11:00Z; Paris changed its clocks the day before.
    let t = ts("2026-03-30T11:00:00Z");
    assert!(!office.is_active(t, &tz));
    assert_eq!(office.next_change(t, &tz), Some(ts("2026-03-30T12:00:00Z")));
    assert_eq!(
        office.next_change(ts("2026-03-30T12:00:00Z"), &tz),
        Some(ts("2026-03-30T22:00:00Z"))
    );
}

#[test]
fn r8_exceptions_replace_the_weekly_entries_of_their_local_date() {
    let tz = zone("Europe/Paris");
    let s = schedule(json!({
        "weekly": [ { "days": ["thu", "fri"], "from": "08:00", "to": "18:00" } ],
        "exceptions": [ { "date": "2026-12-25", "closed": true },
                        { "date": "2026-12-24", "intervals": [ { "from": "08:00", "to": "12:00" } ] },
                        { "date": "2026-12-27", "intervals": [ { "from": "10:00", "to": "11:00" } ] } ]
    }));
    // Thursday 24th: closes at noon instead of 18:00 (11:00Z, CET).
    assert_eq!(
        s.next_change(ts("2026-12-24T08:00:00Z"), &tz),
        Some(ts("2026-12-24T11:00:00Z"))
    );
    // Friday 25th closed, Sunday 27th open 10–11 though Sundays are not in the weekly entries.
    assert_eq!(
        s.next_change(ts("2026-12-24T11:00:00Z"), &tz),
        Some(ts("2026-12-27T09:00:00Z"))
    );
    assert_eq!(
        s.next_change(ts("2026-12-27T09:00:00Z"), &tz),
        Some(ts("2026-12-27T10:00:00Z"))
    );
    // Then back to the weekly entries: Thursday 31st at 08:00 local.
    assert_eq!(
        s.next_change(ts("2026-12-27T10:00:00Z"), &tz),
        Some(ts("2026-12-31T07:00:00Z"))
    );
}

#[test]
fn r8_exception_date_is_the_local_date_of_the_zone() {
    // 2026-12-25T02:00Z is still the 24th in New York (21:00 EST).
    let s = schedule(json!({
        "weekly": [ { "days": ["mon","tue","wed","thu","fri","sat","sun"], "from": "00:00", "to": "24:00" } ],
        "exceptions": [ { "date": "2026-12-25", "closed": true } ]
    }));
    let ny = zone("America/New_York");
    assert!(s.is_active(ts("2026-12-25T02:00:00Z"), &ny));
    assert_eq!(
        s.next_change(ts("2026-12-25T02:00:00Z"), &ny),
        Some(ts("2026-12-25T05:00:00Z"))
    );
    assert!(!s.is_active(ts("2026-12-25T02:00:00Z"), &TimeZone::UTC));
}

#[test]
fn r8_a_range_that_never_changes_has_no_next_change() {
    let always = schedule(
        json!({ "weekly": [ { "days": ["mon","tue","wed","thu","fri","sat","sun"], "from": "00:00", "to": "24:00" } ] }),
    );
    let never = schedule(json!({}));
    for name in ZONES {
        let tz = zone(name);
        for t in ["2026-03-29T00:59:59Z", "2026-10-25T01:00:00Z", "2027-06-01T12:00:00Z"] {
            assert!(always.is_active(ts(t), &tz));
            assert_eq!(always.next_change(ts(t), &tz), None, "{name} {t}");
            assert!(!never.is_active(ts(t), &tz));
            assert_eq!(never.next_change(ts(t), &tz), None, "{name} {t}");
        }
    }
}

#[test]
fn r8_touching_and_overlapping_entries_are_one_interval() {
    let tz = TimeZone::UTC;
    let s = schedule(json!({ "weekly": [
        { "days": ["mon"], "from": "08:00", "to": "12:00" },
        { "days": ["mon"], "from": "12:00", "to": "14:00" },
        { "days": ["mon"], "from": "10:00", "to": "13:00" },
        { "days": ["sun"], "from": "20:00", "to": "24:00" },
        { "days": ["mon"], "from": "00:00", "to": "02:00" }
    ] }));
    // Sunday 2026-11-22 22:00 → open across midnight until Monday 02:00.
    assert_eq!(
        s.next_change(ts("2026-11-22T22:00:00Z"), &tz),
        Some(ts("2026-11-23T02:00:00Z"))
    );
    assert_eq!(
        s.next_change(ts("2026-11-23T08:00:00Z"), &tz),
        Some(ts("2026-11-23T14:00:00Z"))
    );
}

#[test]
fn r7_device_zone_comes_from_the_nearest_node_that_sets_one_else_the_box() {
    let mut doc = common::seed_doc("partner");
    common::push(
        &mut doc,
        "tree",
        json!({ "id": "fdf", "kind": "site", "name": "Fort-de-France", "parent": "client1", "timezone": "America/Martinique" }),
    );
    common::add_pinged_device(&mut doc, "far", "fdf");
    common::add_pinged_device(&mut doc, "near", "site1");
    let r = common::explain(&doc);
    assert_eq!(common::device(&r, "far")["timezone"], "America/Martinique");
    assert_eq!(common::device(&r, "near")["timezone"], "Europe/Paris");

    // No zone in the tree: the box's zone, else UTC.
    if let Some(o) = doc["tree"][0].as_object_mut() {
        o.remove("timezone");
    }
    let plan = common::plan_in(&doc, &zone("Asia/Tokyo"));
    assert_eq!(
        common::device(&common::report(&plan, None), "near")["timezone"],
        "Asia/Tokyo"
    );
    assert_eq!(common::device(&common::explain(&doc), "near")["timezone"], "UTC");
}

// ---------------------------------------------------------------- property: next_change

fn arb_hhmm_pair() -> impl Strategy<Value = (i64, i64)> {
    // Quarter hours, so that DST gaps and repeated hours are hit often.
    (0i64..96, 1i64..=96).prop_filter_map("from < to", |(a, b)| (a < b).then_some((a * 15, b * 15)))
}

fn arb_schedule() -> impl Strategy<Value = serde_json::Value> {
    let days = proptest::sample::subsequence(vec!["mon", "tue", "wed", "thu", "fri", "sat", "sun"], 1..=7);
    let weekly = proptest::collection::vec((days, arb_hhmm_pair()), 0..=3);
    let exception = (0i64..730, proptest::option::of(arb_hhmm_pair()));
    let exceptions = proptest::collection::vec(exception, 0..=2);
    (weekly, exceptions).prop_map(|(weekly, exceptions)| {
        let weekly: Vec<_> = weekly
            .into_iter()
            .map(|(days, (f, t))| json!({ "days": days, "from": hhmm(f), "to": hhmm(t) }))
            .collect();
        let mut seen = std::collections::HashSet::new();
        let exceptions: Vec<_> = exceptions
            .into_iter()
            .filter(|(day, _)| seen.insert(*day))
            .map(|(day, span)| {
                let date = jiff::civil::date(2026, 1, 1) + jiff::Span::new().days(day);
                match span {
                    None => json!({ "date": date.to_string(), "closed": true }),
                    Some((f, t)) => {
                        json!({ "date": date.to_string(), "intervals": [ { "from": hhmm(f), "to": hhmm(t) } ] })
                    }
                }
            })
            .collect();
        json!({ "weekly": weekly, "exceptions": exceptions })
    })
}

/// The first minute-aligned instant after `t` where membership differs, within `limit`:
/// every boundary and every offset change of these zones falls on a whole minute.
fn brute_force_next_change(s: &Schedule, t: Timestamp, tz: &TimeZone, limit: SignedDuration) -> Option<Timestamp> {
    let state = s.is_active(t, tz);
    let secs = t.as_second();
    let mut m = Timestamp::from_second(secs - secs.rem_euclid(60) + 60).expect("instant");
    let end = t + limit;
    while m <= end {
        if s.is_active(m, tz) != state {
            return Some(m);
        }
        m += SignedDuration::from_mins(1);
    }
    None
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn r8_next_change_is_the_first_instant_where_membership_flips(
        raw in arb_schedule(),
        zone_index in 0usize..4,
        offset_s in 0i64..(2 * 365 * 86_400),
    ) {
        let s = schedule(raw);
        let tz = zone(ZONES[zone_index]);
        let t = ts("2026-01-01T00:00:00Z") + SignedDuration::from_secs(offset_s);
        let limit = SignedDuration::from_hours(9 * 24);
        let next = s.next_change(t, &tz);
        let oracle = brute_force_next_change(&s, t, &tz, limit);
        match (next, oracle) {
            (Some(n), Some(o)) => prop_assert_eq!(n, o),
            (Some(n), None) => prop_assert!(n > t + limit, "next_change {n} but membership is constant until {}", t + limit),
            (None, Some(o)) => prop_assert!(false, "next_change is None but membership flips at {o}"),
            (None, None) => {}
        }
        if let Some(n) = next {
            prop_assert_ne!(s.is_active(n, &tz), s.is_active(t, &tz));
        }
    }
}

/// R13 with R8: a recurring maintenance "Sunday 02:00–04:00" opens and closes at the right
/// instants on both DST Sundays of 2026 and 2027 in three zones, checked minute by minute
/// against an oracle that reads the local wall clock (a gap moves a boundary to the gap's end;
/// a repeated hour is inside both times).
#[test]
fn r13_a_recurring_sunday_night_maintenance_follows_each_devices_zone_across_dst() {
    let zones = ["Europe/Paris", "America/New_York", "Australia/Sydney"];
    let mut doc = json!({
        "version": "dst", "box": { "id": "bx", "node": "p" },
        "tree": [ { "id": "p", "kind": "partner", "name": "P", "timezone": "UTC" } ],
        "time_ranges": [
            { "id": "24x7", "name": "24x7", "weekly": [ { "days": ["mon","tue","wed","thu","fri","sat","sun"], "from": "00:00", "to": "24:00" } ] },
            { "id": "sun-night", "name": "Sunday night", "weekly": [ { "days": ["sun"], "from": "02:00", "to": "04:00" } ] }
        ],
        "defaults": [
            { "aspect": "control", "time_range": "24x7" },
            { "aspect": "availability", "time_range": "24x7" },
            { "aspect": "notification", "time_range": "24x7" }
        ],
        "service_templates": [ { "id": "t", "kind": "icmp", "criticality": "high", "availability_rate": 99.0,
            "availability_period": "24x7", "control_period": "24x7", "interval_s": 60 } ],
        "devices": [], "services": [],
        "maintenances": [ { "id": "m-sun", "scope": { "node": "p" }, "time_range": "sun-night" } ]
    });
    for (i, z) in zones.iter().enumerate() {
        common::push(
            &mut doc,
            "tree",
            json!({ "id": format!("c{i}"), "kind": "company", "name": z, "parent": "p", "timezone": z }),
        );
        common::push(
            &mut doc,
            "devices",
            json!({ "id": format!("d{i}"), "node": format!("c{i}"), "name": "d", "address": "127.0.0.1" }),
        );
        common::push(
            &mut doc,
            "services",
            json!({ "id": format!("s{i}"), "device": format!("d{i}"), "template": "t" }),
        );
    }
    let plan = common::plan(&doc);
    let m = &plan.maintenances[0];
    let occurrence = plan.occurrence(m);
    for (i, name) in zones.iter().enumerate() {
        assert!(plan.covers(m, i), "{name}: the node scope covers s{i}");
        let tz = zone(name);
        let dst_sundays: Vec<Timestamp> = transitions(&tz)
            .into_iter()
            .filter(|t| day_name(*t, &tz) == "sun")
            .collect();
        assert_eq!(dst_sundays.len(), 4, "{name}: two DST Sundays a year");
        for change in dst_sundays {
            let oracle = |t: Timestamp| day_name(t, &tz) == "sun" && (120..240).contains(&minute_of_day(t, &tz));
            // From 12 hours before the transition to 12 hours after, minute by minute.
            let from = change - SignedDuration::from_hours(12);
            let minutes: Vec<Timestamp> = (0..=24 * 60).map(|k| from + SignedDuration::from_mins(k)).collect();
            let inside: Vec<bool> = minutes.iter().map(|t| oracle(*t)).collect();
            // The oracle's next flip after each minute, found walking backwards.
            let mut next_flip = vec![None; minutes.len()];
            for k in (0..minutes.len() - 1).rev() {
                next_flip[k] = if inside[k + 1] != inside[k] {
                    Some(minutes[k + 1])
                } else {
                    next_flip[k + 1]
                };
            }
            let mut opened = Vec::new();
            for (k, t) in minutes.iter().enumerate() {
                assert_eq!(occurrence.is_active(*t, &tz), inside[k], "{name} at {t}");
                if let Some(flip) = next_flip[k] {
                    assert_eq!(occurrence.next_change(*t, &tz), Some(flip), "{name} from {t}");
                }
                if k > 0 && inside[k] && !inside[k - 1] {
                    opened.push(*t);
                }
            }
            assert_eq!(opened.len(), 1, "{name}: the window opens once around {change}");
        }
    }
}
