//! `/history` (protocol.md §7): a service's state changes from the store, kept after the
//! central server acknowledged them, scoped like every other answer.

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

use serde_json::{Value, json};

use snbox_daemon::Daemon;

const FULL_TOKEN: &str = "Full-Token-0123456789abcdef";
const SITE2_TOKEN: &str = "Site2-Token-0123456789abcdef";

/// Site `s` with a web service on `port`, site `s2` with one that is always down.
fn document(port: u16) -> Value {
    let mut doc = central::document(
        "h-1",
        json!([ { "id": "web", "kind": "http", "criticality": "high", "availability_rate": 99.0,
                  "availability_period": "24x7", "control_period": "24x7", "interval_s": 1, "timeout_s": 1,
                  "max_attempts": 1 } ]),
        json!([ { "id": "d1", "node": "s", "name": "D1", "address": "127.0.0.1" },
                { "id": "d2", "node": "s2", "name": "D2", "address": "127.0.0.1" } ]),
        json!([ { "id": "d1-web", "device": "d1", "template": "web", "params": { "url": format!("http://127.0.0.1:{port}/") } },
                { "id": "d2-web", "device": "d2", "template": "web", "params": { "url": "http://127.0.0.1:9/" } } ]),
    );
    doc["tree"]
        .as_array_mut()
        .expect("tree")
        .push(json!({ "id": "s2", "kind": "site", "name": "S2", "parent": "c" }));
    doc
}

fn changes(daemon: &Daemon, service: &str) -> Vec<(String, String, String)> {
    let h = daemon.json(&format!("/history?service={service}&hours=24"));
    h["changes"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
            (s("from"), s("to"), s("state_type"))
        })
        .collect()
}

fn pair(a: &str, b: &str, t: &str) -> (String, String, String) {
    (a.to_string(), b.to_string(), t.to_string())
}

#[test]
fn history_lists_a_services_state_changes_oldest_first_and_is_scoped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = peers::free_tcp_port();
    std::fs::write(dir.path().join("doc.json"), document(port).to_string()).expect("doc");
    let daemon = Daemon::start(dir.path(), |status| {
        format!(
            "state_dir = \"state\"\n[standalone]\ndocument = \"doc.json\"\n[status]\nlisten = \"127.0.0.1:{status}\"\n\
             no_token_from = [\"127.0.0.1/32\"]\n[[status.tokens]]\ntoken = \"{FULL_TOKEN}\"\n\
             [[status.tokens]]\ntoken = \"{SITE2_TOKEN}\"\nnode = \"s2\"\n"
        )
    });
    daemon.wait_for(|| changes(&daemon, "d1-web").len() == 1, "the problem in the history");
    peers::answer_200_on(port);
    daemon.wait_for(|| changes(&daemon, "d1-web").len() == 2, "the recovery in the history");
    assert_eq!(
        changes(&daemon, "d1-web"),
        vec![pair("ok", "critical", "hard"), pair("critical", "ok", "hard")]
    );
    let h = daemon.json("/history?service=d1-web");
    assert_eq!(h["hours"], 24, "24 hours by default");
    assert_eq!(h["state"], "ok");

    // Unknown, and invisible to a token scoped to another site: the same 404.
    assert_eq!(daemon.get("/history?service=nope").map(|r| r.0), Some(404));
    let remote: IpAddr = "127.0.0.2".parse().expect("ip");
    let scoped = |service: &str| {
        daemon
            .request(&format!("/history?service={service}"), Some(remote), Some(SITE2_TOKEN))
            .map(|r| r.0)
    };
    assert_eq!(scoped("d1-web"), Some(404));
    assert_eq!(scoped("d2-web"), Some(200));
    assert_eq!(daemon.get("/history").map(|r| r.0), Some(400), "service is required");
    assert_eq!(daemon.terminate(Duration::from_secs(10)), Some(0));
}
