//! R14 on the real daemon: a router down with 50 devices behind it gives one notification and
//! unreachable services; a device with a redundant path is not unreachable while one parent
//! answers. The box runs in a network namespace of the test's own, where 127.0.0.x answers
//! pings and 10.99.0.x has no route (an echo to it fails at once).

#[path = "common/central.rs"]
mod central;
#[path = "common/http_server.rs"]
mod http_server;
#[path = "common/peers.rs"]
mod peers;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// `router-a` down, `router-b` up; 50 devices behind `router-a` only, one (`both`) behind both.
/// Every device but `router-b` pings an address with no route: its host check is down.
fn document() -> Value {
    let ping = |id: &str, attempts: u32| {
        json!({ "id": id, "kind": "icmp", "criticality": "high", "availability_rate": 99.0,
                "availability_period": "24x7", "control_period": "24x7", "interval_s": 2,
                "retry_interval_s": 2, "max_attempts": attempts, "timeout_s": 1, "params": { "packets": 1 } })
    };
    let mut devices = vec![
        json!({ "id": "router-a", "node": "s", "name": "Router A", "address": "10.99.0.1" }),
        json!({ "id": "router-b", "node": "s", "name": "Router B", "address": "127.0.0.2" }),
        json!({ "id": "both", "node": "s", "name": "Both", "address": "10.99.1.1", "parents": ["router-a", "router-b"] }),
    ];
    let mut services = vec![
        json!({ "id": "router-a-ping", "device": "router-a", "template": "router", "host_check": true }),
        json!({ "id": "router-b-ping", "device": "router-b", "template": "router", "host_check": true }),
        json!({ "id": "both-ping", "device": "both", "template": "leaf", "host_check": true }),
    ];
    for i in 0..50 {
        devices.push(json!({ "id": format!("d{i}"), "node": "s", "name": format!("D{i}"),
                             "address": format!("10.99.2.{}", i + 1), "parents": ["router-a"] }));
        services.push(
            json!({ "id": format!("d{i}-ping"), "device": format!("d{i}"), "template": "leaf", "host_check": true }),
        );
    }
    central::document(
        "parents-1",
        json!([ping("router", 1), ping("leaf", 3)]),
        json!(devices),
        json!(services),
    )
}

#[test]
#[ignore = "needs root: a network namespace and RAW ICMP (bash .ci/run runs it)"]
fn r14_a_router_down_with_50_devices_behind_it_gives_one_notification_and_50_unreachable() {
    let ns = peers::Netns::new("parents", &[]);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("doc.json"), document().to_string()).expect("doc");
    std::fs::write(
        dir.path().join("snbox.toml"),
        "state_dir = \"state\"\n[standalone]\ndocument = \"doc.json\"\n[status]\nlisten = \"127.0.0.1:8730\"\n",
    )
    .expect("settings");
    let log = std::fs::File::create(dir.path().join("daemon.log")).expect("log");
    let mut child = ns
        .command(env!("CARGO_BIN_EXE_snbox"))
        .args(["run", "--config"])
        .arg(dir.path().join("snbox.toml"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("snbox run");
    // Three rounds of checks and retries: every leaf's third attempt is HARD.
    std::thread::sleep(Duration::from_secs(14));
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && child.try_wait().ok().flatten().is_none() {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let log = std::fs::read_to_string(dir.path().join("daemon.log")).unwrap_or_default();

    let records = stored(&dir.path().join("state/snbox.db"));
    let notified: Vec<&str> = records
        .iter()
        .filter(|(kind, _, _)| *kind == 3)
        .map(|(_, service, _)| service.as_str())
        .collect();
    let mut notified_sorted = notified.clone();
    notified_sorted.sort();
    assert_eq!(
        notified_sorted,
        vec!["both-ping", "router-a-ping"],
        "the router's problem, and the device with a working path; nothing from behind the router:\n{log}"
    );
    // The last state of each service.
    let mut last: BTreeMap<&str, &str> = BTreeMap::new();
    for (kind, service, body) in &records {
        if *kind == 2 {
            last.insert(service.as_str(), body["to"].as_str().unwrap_or("?"));
        }
    }
    let unreachable = (0..50)
        .filter(|i| last.get(format!("d{i}-ping").as_str()) == Some(&"unreachable"))
        .count();
    assert_eq!(unreachable, 50, "{last:?}");
    assert_eq!(
        last.get("both-ping"),
        Some(&"critical"),
        "router-b still answers: not unreachable"
    );
    assert_eq!(last.get("router-a-ping"), Some(&"critical"));
}

/// (kind, service, body) of every record in the outbox, oldest first.
fn stored(db: &Path) -> Vec<(i64, String, Value)> {
    let conn = rusqlite::Connection::open(db).expect("db");
    let mut stmt = conn
        .prepare(
            "SELECT outbox.kind, origins.service, outbox.body FROM outbox JOIN origins ON origins.id = outbox.origin
             WHERE outbox.kind IN (2, 3) ORDER BY outbox.seq",
        )
        .expect("query");
    stmt.query_map([], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
    })
    .expect("rows")
    .filter_map(Result::ok)
    .map(|(k, s, b)| (k, s, serde_json::from_str(&b).unwrap_or(Value::Null)))
    .collect()
}
