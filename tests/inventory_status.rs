//! R18 in the running daemon: `/inventory` shows each top company's counts of its local day
//! so far, scoped like every answer (a site's token sees its site's counts only).

#[path = "common/central.rs"]
mod central;
#[path = "common/http_server.rs"]
mod http_server;
#[path = "common/snbox.rs"]
mod snbox_daemon;

use std::net::IpAddr;
use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::{Value, json};

use snbox_daemon::Daemon;

const SITE2_TOKEN: &str = "Site2-Token-0123456789abcdef";

/// Company `c` (Paris): a server on site `s`, a printer on site `s2`; company `m`
/// (Martinique): a firewall on site `ms`. Each with a TCP service to a closed port, every second.
fn document() -> Value {
    let mut doc = central::document(
        "inv-1",
        json!([ { "id": "port", "kind": "tcp", "criticality": "low", "availability_rate": 99.0,
                  "availability_period": "24x7", "control_period": "24x7", "interval_s": 1, "timeout_s": 1,
                  "max_attempts": 1, "params": { "port": 9 } } ]),
        json!([ { "id": "srv", "node": "s", "name": "Server", "address": "127.0.0.1", "category": "server" },
                { "id": "prn", "node": "s2", "name": "Printer", "address": "127.0.0.1", "category": "printer" },
                { "id": "fw", "node": "ms", "name": "Firewall", "address": "127.0.0.1", "category": "firewall" } ]),
        json!([ { "id": "srv-port", "device": "srv", "template": "port" },
                { "id": "prn-port", "device": "prn", "template": "port" },
                { "id": "fw-port", "device": "fw", "template": "port" } ]),
    );
    let tree = doc["tree"].as_array_mut().expect("tree");
    tree.push(json!({ "id": "s2", "kind": "site", "name": "S2", "parent": "c" }));
    tree.push(json!({ "id": "m", "kind": "company", "name": "M", "parent": "p", "timezone": "America/Martinique" }));
    tree.push(json!({ "id": "ms", "kind": "site", "name": "MS", "parent": "m" }));
    doc
}

fn company<'a>(answer: &'a Value, id: &str) -> Option<&'a Value> {
    answer["inventory"].as_array()?.iter().find(|c| c["company"] == id)
}

fn today(zone: &str) -> String {
    Timestamp::now()
        .to_zoned(TimeZone::get(zone).expect("zone"))
        .date()
        .to_string()
}

#[test]
fn r18_inventory_shows_todays_counts_per_company_and_is_scoped() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("doc.json"), document().to_string()).expect("doc");
    let daemon = Daemon::start(dir.path(), |status| {
        snbox_daemon::standalone_with_scoped_token(status, SITE2_TOKEN, "s2")
    });
    daemon.wait_for(
        || {
            let answer = daemon.json("/inventory");
            company(&answer, "c").is_some_and(|c| c["services_by_kind"]["tcp"] == 2) && company(&answer, "m").is_some()
        },
        "every service counted",
    );
    let all = daemon.json("/inventory");
    let c = company(&all, "c").expect("company c");
    assert_eq!(c["day"], today("Europe/Paris"), "{all:#}");
    assert_eq!(c["zone"], "Europe/Paris");
    assert_eq!(c["devices_by_category"], json!({ "server": 1, "printer": 1 }));
    assert_eq!(c["sites"]["s"]["devices_by_category"], json!({ "server": 1 }));
    assert_eq!(c["sites"]["s2"]["services_by_kind"], json!({ "tcp": 1 }));
    let m = company(&all, "m").expect("company m");
    assert_eq!(m["day"], today("America/Martinique"));
    assert_eq!(m["zone"], "America/Martinique");
    assert_eq!(m["devices_by_category"], json!({ "firewall": 1 }));
    assert_eq!(m["services_by_kind"], json!({ "tcp": 1 }));

    // A site's token: its company, counted over its site only.
    let remote: IpAddr = "127.0.0.2".parse().expect("ip");
    let (code, body) = daemon
        .request("/inventory", Some(remote), Some(SITE2_TOKEN))
        .expect("an answer");
    assert_eq!(code, 200);
    let scoped: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(scoped["inventory"].as_array().map(Vec::len), Some(1), "{scoped:#}");
    let c = company(&scoped, "c").expect("company c");
    assert_eq!(c["devices_by_category"], json!({ "printer": 1 }));
    assert_eq!(c["sites"].as_object().map(|s| s.len()), Some(1));
    let (code, _) = daemon.request("/inventory", Some(remote), None).expect("an answer");
    assert_eq!(code, 401, "off loopback a token is needed");
    assert_eq!(daemon.terminate(Duration::from_secs(10)), Some(0));
}
