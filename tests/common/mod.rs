//! Shared helpers: small documents built as JSON, resolved by the real engine, and read back
//! through the explain report, the same contract operators and the central server see.
#![allow(dead_code)]

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::{Value, json};

use snbox::explain::Report;
use snbox::planning::plan_from_str;
use snbox::rules::Plan;

/// The seed's tree (rules.md R2): Partner → Client 1 (managed) → Site 1, Site 2;
/// Partner → Client 2 (resale) → Client 2 Site 1. No default periods but the product's.
pub fn seed_doc(box_node: &str) -> Value {
    json!({
        "version": "t1",
        "box": { "id": "bx", "node": box_node },
        "tree": [
            { "id": "partner", "kind": "partner", "name": "Partner", "timezone": "Europe/Paris" },
            { "id": "client1", "kind": "company", "name": "Client 1", "parent": "partner", "mode": "managed" },
            { "id": "site1", "kind": "site", "name": "Client 1 Site 1", "parent": "client1" },
            { "id": "site2", "kind": "site", "name": "Client 1 Site 2", "parent": "client1" },
            { "id": "client2", "kind": "company", "name": "Client 2", "parent": "partner", "mode": "resale" },
            { "id": "c2site1", "kind": "site", "name": "Client 2 Site 1", "parent": "client2" }
        ],
        "time_ranges": [
            { "id": "24x7", "owner": null, "name": "24x7",
              "weekly": [ { "days": ["mon","tue","wed","thu","fri","sat","sun"], "from": "00:00", "to": "24:00" } ] },
            { "id": "tr-partner", "owner": "partner", "name": "P", "weekly": [ { "days": ["mon"], "from": "08:00", "to": "18:00" } ] },
            { "id": "tr-client1", "owner": "client1", "name": "C1", "weekly": [ { "days": ["tue"], "from": "08:00", "to": "18:00" } ] },
            { "id": "tr-site1", "owner": "site1", "name": "S1", "weekly": [ { "days": ["wed"], "from": "08:00", "to": "18:00" } ] },
            { "id": "tr-site2", "owner": "site2", "name": "S2", "weekly": [ { "days": ["thu"], "from": "08:00", "to": "18:00" } ] },
            { "id": "tr-client2", "owner": "client2", "name": "C2", "weekly": [ { "days": ["fri"], "from": "08:00", "to": "18:00" } ] }
        ],
        "defaults": [
            { "node": null, "aspect": "control", "time_range": "24x7" },
            { "node": null, "aspect": "availability", "time_range": "24x7" },
            { "node": null, "aspect": "notification", "time_range": "24x7" }
        ],
        "service_templates": [
            { "id": "ping", "owner": null, "kind": "icmp", "criticality": "high", "availability_rate": 99.5,
              "availability_period": "24x7", "control_period": "24x7", "interval_s": 60 }
        ],
        "devices": [],
        "services": []
    })
}

/// Appends `item` to the list `key` of a document.
pub fn push(doc: &mut Value, key: &str, item: Value) {
    doc[key].as_array_mut().expect("a list").push(item);
}

/// Keeps only the elements of the list `key` for which `keep` holds.
pub fn retain(doc: &mut Value, key: &str, keep: impl Fn(&Value) -> bool) {
    if let Some(items) = doc[key].as_array_mut() {
        items.retain(|x| keep(x));
    }
}

/// A device at `node` with one ping service named `<id>-ping`.
pub fn add_pinged_device(doc: &mut Value, id: &str, node: &str) {
    push(
        doc,
        "devices",
        json!({ "id": id, "node": node, "name": id, "address": "127.0.0.1" }),
    );
    push(
        doc,
        "services",
        json!({ "id": format!("{id}-ping"), "device": id, "template": "ping" }),
    );
}

pub fn plan(doc: &Value) -> Plan {
    plan_in(doc, &TimeZone::UTC)
}

pub fn plan_in(doc: &Value, zone: &TimeZone) -> Plan {
    match plan_from_str(&doc.to_string(), snbox::input::Format::Json, zone) {
        Ok(plan) => plan,
        Err(rejected) => panic!("document rejected:\n{}", rejected.problems),
    }
}

/// The document's problems, as `code: path: message` lines; panics when it is valid.
pub fn errors(doc: &Value) -> Vec<String> {
    match plan_from_str(&doc.to_string(), snbox::input::Format::Json, &TimeZone::UTC) {
        Ok(_) => panic!("document unexpectedly valid"),
        Err(rejected) => rejected.problems.0.iter().map(ToString::to_string).collect(),
    }
}

pub fn explain(doc: &Value) -> Value {
    report(&plan(doc), None)
}

pub fn explain_at(doc: &Value, at: &str) -> Value {
    let t: Timestamp = at.parse().expect("an instant");
    report(&plan(doc), Some(t))
}

pub fn report(plan: &Plan, at: Option<Timestamp>) -> Value {
    serde_json::from_str(&Report::of_plan(plan, at).to_json()).expect("the report is JSON")
}

pub fn device<'a>(report: &'a Value, id: &str) -> &'a Value {
    find(report, "devices", id)
}

pub fn service<'a>(report: &'a Value, id: &str) -> &'a Value {
    find(report, "services", id)
}

fn find<'a>(report: &'a Value, key: &str, id: &str) -> &'a Value {
    report[key]
        .as_array()
        .and_then(|items| items.iter().find(|d| d["id"] == id))
        .unwrap_or_else(|| panic!("no {key} entry {id:?} in {report:#}"))
}

pub fn reasons(entry: &Value) -> Vec<String> {
    entry["reasons"]
        .as_array()
        .map(|r| r.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

pub fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|r| r.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// `(time_range, from)` of a period entry.
pub fn period(entry: &Value, field: &str) -> (String, String) {
    let p = &entry[field];
    (
        p["time_range"].as_str().unwrap_or_default().to_string(),
        p["from"].as_str().unwrap_or_default().to_string(),
    )
}

/// `(value, from)` of a sourced value entry.
pub fn value(entry: &Value, field: &str) -> (Value, String) {
    let v = &entry[field];
    (v["value"].clone(), v["from"].as_str().unwrap_or_default().to_string())
}

pub fn pair(a: &str, b: &str) -> (String, String) {
    (a.to_string(), b.to_string())
}
