//! Commands as they arrive (protocol.md §5.6), from the central server or the box's command
//! line through the control socket: `{ "kind": …, … }` → an [`Action`] for the scheduler.
//! Fields that may carry secrets (a census's communities) are never echoed.

use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value};

use crate::document;
use crate::schedule::Action;

/// Longest maintenance the `minutes` form accepts: a year.
const MAX_MINUTES: u64 = 366 * 24 * 60;

/// What a command asks, or why it cannot be run.
#[derive(Debug)]
pub enum Parsed {
    Action(Action),
    /// A kind this box knows but does not run yet (`discover`: issue 18).
    NotYet(&'static str),
    Refused(String),
}

/// Reads one command; `now` turns a maintenance's `minutes` into instants.
pub fn parse(command: &Map<String, Value>, now: Timestamp) -> Parsed {
    let text = |key: &str| command.get(key).and_then(Value::as_str).map(str::to_string);
    let need = |key: &str| text(key).ok_or_else(|| format!("missing or invalid field {key:?}"));
    let kind = command.get("kind").and_then(Value::as_str).unwrap_or("");
    let parsed = match kind {
        "check_now" => need("service").map(|service| Action::CheckNow { service }),
        "acknowledge" => need("service").and_then(|service| {
            Ok(Action::Acknowledge {
                service,
                author: need("author")?,
                comment: text("comment").unwrap_or_default(),
            })
        }),
        "maintenance_start" => match command.get("maintenance") {
            Some(Value::Object(m)) => maintenance(m.clone(), now).map(|maintenance| Action::MaintenanceStart {
                maintenance,
                author: text("author"),
            }),
            _ => Err("missing or invalid field \"maintenance\": an object".into()),
        },
        "maintenance_end" => need("maintenance").map(|id| Action::MaintenanceEnd {
            id,
            author: text("author"),
        }),
        "maintenance_list" => Ok(Action::ListMaintenances),
        "discover" => return Parsed::NotYet("discover"),
        _ => return Parsed::Refused("unknown command kind".into()),
    };
    match parsed {
        Ok(action) => Parsed::Action(action),
        Err(why) => Parsed::Refused(format!("{kind}: {why}")),
    }
}

/// A maintenance object as in the document, or with `minutes` from now instead of a window.
fn maintenance(mut m: Map<String, Value>, now: Timestamp) -> Result<document::Maintenance, String> {
    if let Some(minutes) = m.remove("minutes") {
        let minutes = minutes
            .as_u64()
            .filter(|n| (1..=MAX_MINUTES).contains(n))
            .ok_or_else(|| format!("minutes: a whole number from 1 to {MAX_MINUTES}"))?;
        if m.contains_key("start") || m.contains_key("end") || m.contains_key("time_range") {
            return Err("minutes: give either minutes, or start and end, or a time_range".into());
        }
        // Whole seconds: a person reads these instants.
        let now = Timestamp::from_second(now.as_second()).unwrap_or(now);
        let end = now + SignedDuration::from_mins(minutes as i64);
        m.insert("start".into(), Value::String(now.to_string()));
        m.insert("end".into(), Value::String(end.to_string()));
    }
    serde_json::from_value(Value::Object(m)).map_err(|e| format!("maintenance: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn of(v: Value) -> Parsed {
        let now: Timestamp = "2026-12-01T10:00:00Z".parse().expect("ts");
        parse(v.as_object().expect("object"), now)
    }

    #[test]
    fn minutes_become_a_window_from_now() {
        let Parsed::Action(Action::MaintenanceStart { maintenance, .. }) = of(json!({
            "kind": "maintenance_start",
            "maintenance": { "id": "m1", "scope": { "device": "d" }, "minutes": 60 }
        })) else {
            panic!("a maintenance");
        };
        assert_eq!(maintenance.start.as_deref(), Some("2026-12-01T10:00:00Z"));
        assert_eq!(maintenance.end.as_deref(), Some("2026-12-01T11:00:00Z"));
    }

    #[test]
    fn unknown_kinds_and_bad_fields_are_refused_with_a_reason() {
        assert!(matches!(of(json!({ "kind": "reboot" })), Parsed::Refused(m) if m == "unknown command kind"));
        assert!(matches!(of(json!({ "kind": "check_now" })), Parsed::Refused(m) if m.contains("service")));
        assert!(matches!(
            of(json!({ "kind": "maintenance_start", "maintenance": { "id": "m", "scope": {}, "minutes": 0 } })),
            Parsed::Refused(m) if m.contains("minutes")
        ));
        // A census's communities are secrets: the refusal does not echo them.
        let Parsed::NotYet(kind) = of(json!({ "kind": "discover", "communities": ["s3cret"] })) else {
            panic!("not yet");
        };
        assert_eq!(kind, "discover");
    }
}
