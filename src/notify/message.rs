//! What a person reads (R17): a notification record and the plan's names → a subject, a
//! text body and a webhook's JSON body. Pure: the instant and the plan are parameters.

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::record::{Body, NotificationType, State, rfc3339_millis};
use crate::rules::Plan;
use crate::store::deliveries::Unclaimed;

/// A composed message, stored with each delivery so that a retry needs no plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub subject: String,
    pub text: String,
    /// `<…>`: the same for every copy of one notification, so mail systems collapse duplicates.
    pub message_id: String,
    /// A webhook's body; `None` for messages that go only to mail (the admin's).
    #[serde(default)]
    pub json: Option<Value>,
}

/// A notification's message and the mail addresses of its resolved contacts (R11).
#[derive(Debug, Clone)]
pub struct Composed {
    pub message: Message,
    pub emails: Vec<String>,
}

/// The names a person reads, looked up in the plan (ids where the plan no longer has them).
struct Names {
    service: String,
    device: String,
    address: String,
    node: String,
    company: Option<String>,
    zone: TimeZone,
}

fn names(n: &Unclaimed, plan: &Plan) -> Names {
    let origin = &n.origin;
    let service = plan
        .services
        .iter()
        .find(|s| s.id == *origin.service)
        .and_then(|s| s.name.clone())
        .unwrap_or_else(|| origin.service.to_string());
    let device = plan.devices.iter().find(|d| d.id == *origin.device);
    let node = plan.tree.get(&origin.node);
    let company = origin.company.as_deref().map(|c| match plan.tree.get(c) {
        Some(idx) => plan.tree.node(idx).name.clone(),
        None => c.to_string(),
    });
    Names {
        service,
        device: device.map_or_else(|| origin.device.to_string(), |d| d.name.clone()),
        address: device.map(|d| d.address.clone()).unwrap_or_default(),
        node: node.map_or_else(|| origin.node.to_string(), |idx| plan.tree.node(idx).name.clone()),
        company,
        zone: node.map_or_else(|| TimeZone::UTC, |idx| plan.tree.node(idx).zone.clone()),
    }
}

/// The mail addresses of the record's contacts and of its groups' enabled members, each once.
fn emails(contacts: &[String], groups: &[String], device: &str, plan: &Plan) -> Vec<String> {
    let members = plan
        .devices
        .iter()
        .find(|d| d.id == device)
        .and_then(|d| d.outcome.as_ref().ok())
        .map(|d| {
            d.contact_groups
                .iter()
                .filter(|g| groups.contains(&g.id))
                .flat_map(|g| g.members.iter())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let mut out: Vec<String> = Vec::new();
    for id in contacts.iter().chain(members) {
        if let Some(email) = plan.emails.get(id)
            && !out.iter().any(|e| e.eq_ignore_ascii_case(email))
        {
            out.push(email.clone());
        }
    }
    out
}

/// `<snbox.BOX.SEQ@DOMAIN>`: from the box id and the record's seq only (R17's dedupe rule).
pub fn message_id(box_id: &str, what: &str, from: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let domain = from
        .rsplit_once('@')
        .map(|(_, d)| d.trim_end_matches('>').trim())
        .filter(|d| !d.is_empty())
        .unwrap_or("snbox.invalid");
    format!("<snbox.{}.{}@{}>", clean(box_id), clean(what), clean(domain))
}

/// Local time as a person reads it: `2026-11-30 15:42:07 CET`.
pub fn local_time(t: Timestamp, zone: &TimeZone) -> String {
    t.to_zoned(zone.clone()).strftime("%Y-%m-%d %H:%M:%S %Z").to_string()
}

/// `3 min`, `2 h 05 min`, `1 d 4 h`.
pub fn lasted(d: SignedDuration) -> String {
    let s = d.as_secs().max(0);
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86_400 => format!("{} h {:02} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

fn upper(s: State) -> String {
    s.as_str().to_ascii_uppercase()
}

/// The message for a notification record; `None` for any other record. `by_box_since`: the
/// central server has been out of reach since then (paired), said in the text.
pub fn compose(
    n: &Unclaimed,
    plan: &Plan,
    box_id: &str,
    from: &str,
    by_box_since: Option<Timestamp>,
) -> Option<Composed> {
    let Body::Notification {
        kind,
        status,
        criticality,
        contacts,
        contact_groups,
        held_s,
        repeat,
        output,
        problem_since,
        ..
    } = &n.body
    else {
        return None;
    };
    let names = names(n, plan);
    let word = match (kind, repeat) {
        (NotificationType::Problem, 0) => "PROBLEM".to_string(),
        (NotificationType::Problem, n) => format!("PROBLEM (reminder {n})"),
        (NotificationType::Recovery, _) => "RECOVERY".to_string(),
        (NotificationType::FlappingStart, _) => "FLAPPING".to_string(),
        (NotificationType::FlappingEnd, _) => "FLAPPING OVER".to_string(),
    };
    let place = match &names.company {
        Some(c) if *c != names.node => format!("{c}, {}", names.node),
        _ => names.node.clone(),
    };
    let state = match kind {
        NotificationType::FlappingStart => format!("flapping, now {}", upper(*status)),
        NotificationType::FlappingEnd => format!("no longer flapping, now {}", upper(*status)),
        _ => upper(*status),
    };
    let subject = format!("{word}: {} / {} is {state} ({place})", names.device, names.service);
    let criticality = serde_json::to_value(criticality)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let mut text = format!("{subject}\n\n");
    let mut line = |label: &str, value: &str| text.push_str(&format!("{label:<13}{value}\n"));
    line("Service:", &format!("{} ({})", names.service, n.origin.service));
    if names.address.is_empty() {
        line("Device:", &names.device);
    } else {
        line("Device:", &format!("{}, {}", names.device, names.address));
    }
    line("Site:", &names.node);
    if let Some(company) = &names.company {
        line("Company:", company);
    }
    line("Status:", &upper(*status));
    line("Criticality:", &criticality);
    line("Output:", if output.is_empty() { "(none)" } else { output });
    line(
        "Time:",
        &format!(
            "{} ({})",
            local_time(n.ts, &names.zone),
            names.zone.iana_name().unwrap_or("UTC")
        ),
    );
    match (kind, problem_since) {
        (NotificationType::Problem, Some(since)) => line(
            "Since:",
            &format!(
                "{} ({} so far)",
                local_time(*since, &names.zone),
                lasted(n.ts.duration_since(*since))
            ),
        ),
        (NotificationType::Recovery, Some(since)) => line(
            "Lasted:",
            &format!(
                "{} (from {})",
                lasted(n.ts.duration_since(*since)),
                local_time(*since, &names.zone)
            ),
        ),
        _ => {}
    }
    if let NotificationType::FlappingStart = kind {
        line("Note:", "its problems and recoveries are not notified until it settles");
    }
    if *held_s > 0 {
        line("Held:", &format!("{held_s} s, until the notification period opened"));
    }
    text.push_str(&format!("\nSent by the snbox box {box_id}"));
    match by_box_since {
        Some(since) => text.push_str(&format!(
            " itself: the central server has been out of reach since {}.\n",
            local_time(since, &names.zone)
        )),
        None => text.push_str(".\n"),
    }
    let mut json = crate::record::to_wire(n.seq, n.ts, &n.origin, &n.body);
    if let Value::Object(fields) = &mut json {
        for (key, value) in [
            ("box_id", json!(box_id)),
            ("service_name", json!(names.service)),
            ("device_name", json!(names.device)),
            ("device_address", json!(names.address)),
            ("node_name", json!(names.node)),
            ("company_name", json!(names.company)),
            ("zone", json!(names.zone.iana_name().unwrap_or("UTC"))),
            ("local_time", json!(n.ts.to_zoned(names.zone.clone()).to_string())),
            ("subject", json!(subject)),
        ] {
            fields.insert(key.to_string(), value);
        }
        fields.insert("delivered_by".into(), json!("box"));
    }
    Some(Composed {
        emails: emails(contacts, contact_groups, &n.origin.device, plan),
        message: Message {
            subject,
            text,
            message_id: message_id(box_id, &n.seq.to_string(), from),
            json: Some(json),
        },
    })
}

/// The admin's message when the central server has been out of reach for `fallback_after_s`.
pub fn central_away(box_id: &str, since: Timestamp, zone: &TimeZone, from: &str) -> Message {
    let subject = format!("snbox {box_id}: the central server is out of reach");
    let text = format!(
        "{subject}\n\nThe box {box_id} has had no answer from its central server since {}.\n\
         Until it is back, the box delivers its notifications itself.\n",
        local_time(since, zone)
    );
    Message {
        subject,
        text,
        message_id: message_id(box_id, &format!("away-{}", since.as_millisecond()), from),
        json: None,
    }
}

/// The admin's message when the central server answers again.
pub fn central_back(
    box_id: &str,
    since: Timestamp,
    back: Timestamp,
    delivered: u64,
    zone: &TimeZone,
    from: &str,
) -> Message {
    let subject = format!("snbox {box_id}: the central server is back");
    let text = format!(
        "{subject}\n\nThe box {box_id} reached its central server again at {}, after {} out of reach \
         (since {}).\nMeanwhile the box delivered {delivered} notification(s) itself; the central \
         server will not deliver them again.\n",
        local_time(back, zone),
        lasted(back.duration_since(since)),
        local_time(since, zone),
    );
    Message {
        subject,
        text,
        message_id: message_id(box_id, &format!("back-{}", since.as_millisecond()), from),
        json: None,
    }
}

/// `snbox notify test`'s message.
pub fn test_message(box_id: &str, now: Timestamp, zone: &TimeZone, from: &str) -> Message {
    let subject = format!("snbox {box_id}: test message");
    Message {
        text: format!(
            "{subject}\n\nSent by `snbox notify test` at {}: this channel works.\n",
            local_time(now, zone)
        ),
        message_id: message_id(box_id, &format!("test-{}", now.as_millisecond()), from),
        json: Some(json!({ "kind": "test", "box_id": box_id, "ts": rfc3339_millis(now), "subject": subject })),
        subject,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_a_person_writes_them() {
        assert_eq!(lasted(SignedDuration::from_secs(42)), "42 s");
        assert_eq!(lasted(SignedDuration::from_secs(180)), "3 min");
        assert_eq!(lasted(SignedDuration::from_secs(7500)), "2 h 05 min");
        assert_eq!(lasted(SignedDuration::from_secs(100_000)), "1 d 3 h");
    }

    #[test]
    fn r17_message_id_depends_on_box_and_seq_only() {
        let a = message_id("bx-7f3a", "101", "snbox <box@msp.example.net>");
        assert_eq!(a, "<snbox.bx-7f3a.101@msp.example.net>");
        assert_eq!(a, message_id("bx-7f3a", "101", "snbox <box@msp.example.net>"));
        assert_ne!(a, message_id("bx-7f3a", "102", "snbox <box@msp.example.net>"));
        assert_eq!(message_id("b x", "1", "nobody"), "<snbox.b_x.1@snbox.invalid>");
    }
}
