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
    /// A census (section 8): run beside the scheduler, not by it.
    Discover(crate::census::Request),
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
        "discover" => {
            return match discover(command) {
                Ok(request) => Parsed::Discover(request),
                Err(why) => Parsed::Refused(format!("discover: {why}")),
            };
        }
        _ => return Parsed::Refused("unknown command kind".into()),
    };
    match parsed {
        Ok(action) => Parsed::Action(action),
        Err(why) => Parsed::Refused(format!("{kind}: {why}")),
    }
}

/// A census's fields; an error never quotes a community or a key.
fn discover(command: &Map<String, Value>) -> Result<crate::census::Request, String> {
    let strings = |key: &str, secret: bool| -> Result<Vec<String>, String> {
        match command.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| format!("{key}: a list of strings")),
            Some(other) if !secret => Err(format!("{key}: a list of strings, not {other}")),
            Some(_) => Err(format!("{key}: a list of strings")),
        }
    };
    let ranges = strings("ranges", false)?;
    if ranges.is_empty() {
        return Err("missing or empty field \"ranges\"".into());
    }
    let communities = strings("communities", true)?
        .into_iter()
        .map(crate::secret::Secret::new)
        .collect();
    let v3 = match command.get("v3") {
        None | Some(Value::Null) => None,
        Some(Value::Object(fields)) => {
            let mut fields = fields.clone();
            fields.entry("version").or_insert_with(|| Value::String("3".into()));
            let snmp: document::Snmp = serde_json::from_value(Value::Object(fields)).map_err(|e| format!("v3: {e}"))?;
            let missing = snmp.missing_fields();
            if !missing.is_empty() {
                return Err(format!("v3: lacks {}", missing.join(", ")));
            }
            Some(snmp)
        }
        Some(_) => return Err("v3: an object (user, level, protocols, keys)".into()),
    };
    let ports = match command.get("ports") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .map(|p| p.as_u64().and_then(|p| u16::try_from(p).ok()).filter(|p| *p > 0))
                .collect::<Option<Vec<u16>>>()
                .ok_or("ports: a list of port numbers")?,
        ),
        Some(_) => return Err("ports: a list of port numbers".into()),
    };
    let rate = match command.get("rate") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|r| u32::try_from(r).ok())
                .filter(|r| *r > 0)
                .ok_or("rate: a whole number of probes per second")?,
        ),
    };
    Ok(crate::census::Request {
        ranges,
        communities,
        v3,
        ports,
        rate,
    })
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
        // A census's communities and keys are secrets: a refusal does not echo them.
        for bad in [
            json!({ "kind": "discover", "communities": ["s3cret"] }),
            json!({ "kind": "discover", "ranges": ["10.0.0.0/24"], "communities": "s3cret" }),
            json!({ "kind": "discover", "ranges": ["10.0.0.0/24"], "communities": ["s3cret", 7] }),
            json!({ "kind": "discover", "ranges": ["10.0.0.0/24"], "v3": { "user": "u", "level": "authPriv", "auth_key": 12345678 } }),
        ] {
            let Parsed::Refused(why) = of(bad.clone()) else {
                panic!("refused: {bad}");
            };
            assert!(
                why.starts_with("discover: ") && !why.contains("s3cret") && !why.contains("12345678"),
                "{why}"
            );
        }
    }

    #[test]
    fn a_census_is_read_with_its_credentials_and_limits() {
        let Parsed::Discover(request) = of(json!({ "kind": "discover", "ranges": ["10.0.0.0/24"],
            "communities": ["a", "b"], "ports": [22, 443], "rate": 5000,
            "v3": { "user": "u", "level": "authNoPriv", "auth_protocol": "sha", "auth_key": "12345678" } }))
        else {
            panic!("a census");
        };
        assert_eq!(request.communities.len(), 2);
        assert!(request.v3.is_some());
        let limits = crate::settings::CensusLimits {
            max_addresses: 256,
            max_rate: 100,
        };
        let options = request.options(limits).expect("within the limits");
        assert_eq!(
            (options.rate, options.ports.clone()),
            (100, vec![22, 443]),
            "the rate is lowered"
        );
        let mut wide = request.clone();
        wide.ranges = vec!["10.0.0.0/23".into()];
        assert!(wide.options(limits).is_err(), "512 addresses over a limit of 256");
    }
}
