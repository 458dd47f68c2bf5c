//! R13 in the running daemon: `/maintenances` (in force and coming, scoped like every answer),
//! `/services`' `in_maintenance`, the page's badge and the `/metrics` gauge.

#[path = "common/central.rs"]
mod central;
#[path = "common/http_server.rs"]
mod http_server;
#[path = "common/peers.rs"]
mod peers;
#[path = "common/snbox.rs"]
mod snbox_daemon;

use std::net::IpAddr;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use snbox_daemon::Daemon;

const SITE2_TOKEN: &str = "Site2-Token-0123456789abcdef";

fn at(offset_h: i64) -> String {
    (Timestamp::now() + SignedDuration::from_hours(offset_h)).to_string()
}

/// Sites `s` and `s2`, one always-down web service on a device of each, and three
/// maintenances: d1's now, s2's in an hour, and one over.
fn document() -> Value {
    let mut doc = central::document(
        "m-1",
        json!([ { "id": "web", "kind": "http", "criticality": "high", "availability_rate": 99.0,
                  "availability_period": "24x7", "control_period": "24x7", "interval_s": 1, "timeout_s": 1,
                  "max_attempts": 1 } ]),
        json!([ { "id": "d1", "node": "s", "name": "D1", "address": "127.0.0.1" },
                { "id": "d2", "node": "s2", "name": "D2", "address": "127.0.0.1" } ]),
        json!([ { "id": "d1-web", "device": "d1", "template": "web", "params": { "url": "http://127.0.0.1:9/" } },
                { "id": "d2-web", "device": "d2", "template": "web", "params": { "url": "http://127.0.0.1:9/" } } ]),
    );
    doc["tree"]
        .as_array_mut()
        .expect("tree")
        .push(json!({ "id": "s2", "kind": "site", "name": "S2", "parent": "c" }));
    doc["maintenances"] = json!([
        { "id": "m-d1", "scope": { "device": "d1" }, "start": at(-1), "end": at(1), "comment": "firmware" },
        { "id": "m-s2", "scope": { "node": "s2" }, "start": at(1), "end": at(2) },
        { "id": "m-over", "scope": { "node": "c" }, "start": at(-3), "end": at(-2) }
    ]);
    doc
}

fn ids(answer: &Value) -> Vec<String> {
    answer["maintenances"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|m| m["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn r13_maintenances_in_force_and_coming_are_shown_scoped_with_the_services_they_cover() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("doc.json"), document().to_string()).expect("doc");
    let daemon = Daemon::start(dir.path(), |status| {
        snbox_daemon::standalone_with_scoped_token(status, SITE2_TOKEN, "s2")
    });
    let all = daemon.json("/maintenances");
    assert_eq!(ids(&all), ["m-d1", "m-s2"], "{all:#}");
    let m = &all["maintenances"][0];
    assert_eq!((m["active"].clone(), m["services"].clone()), (json!(true), json!(1)));
    assert_eq!(m["comment"], "firmware");
    assert_eq!(m["source"], "document");
    assert_eq!(all["maintenances"][1]["active"], false);

    let remote: IpAddr = "127.0.0.2".parse().expect("ip");
    let (code, body) = daemon
        .request("/maintenances", Some(remote), Some(SITE2_TOKEN))
        .expect("an answer");
    assert_eq!(code, 200);
    let scoped: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(ids(&scoped), ["m-s2"], "a site's token sees what covers its site");

    daemon.wait_for(
        || {
            let services = daemon.json("/services");
            services.to_string().contains("\"critical\"")
        },
        "both services checked",
    );
    let services = daemon.json("/services");
    let by_id = |id: &str| {
        services
            .as_array()
            .and_then(|l| l.iter().find(|s| s["id"] == id))
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(by_id("d1-web")["live"]["in_maintenance"], true, "{services:#}");
    assert_eq!(by_id("d2-web")["live"]["in_maintenance"], false);
    assert_eq!(by_id("d1-web")["maintenances"][0]["id"], "m-d1", "explain's view too");
    let (_, page) = daemon.get("/").expect("the page");
    let badge = "<span class=\"badge maintenance\" title=\"m-d1\">maintenance</span>";
    assert_eq!(page.matches("badge maintenance").count(), 1, "one service covered now");
    assert!(page.contains(badge), "the page's badge names what covers it now");
    let (_, metrics) = daemon.get("/metrics").expect("metrics");
    assert!(metrics.contains("\nsnbox_services_in_maintenance 1\n"), "{metrics}");
    assert_eq!(daemon.terminate(Duration::from_secs(10)), Some(0));
}
