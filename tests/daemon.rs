//! `snbox run`, the real binary, end to end: it polls real peers (ICMP on loopback, the test's
//! HTTP server, snmpd) and failing targets, commits records to its SQLite file, serves the
//! status endpoint (tokens off loopback, node scoping, no secrets), stops on SIGTERM with
//! exit 0, and loses no committed record to a kill -9.

#[path = "common/http_server.rs"]
mod http_server;
#[path = "common/peers.rs"]
mod peers;
#[path = "common/snbox.rs"]
mod snbox_daemon;

use snbox_daemon::Daemon;

use std::net::IpAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

const SECRET_COMMUNITY: &str = peers::COMMUNITY;
const FULL_TOKEN: &str = "Full-Token-0123456789abcdef";
const SITE2_TOKEN: &str = "Site2-Token-0123456789abcdef";

/// Starts `snbox run` on `document` with a status endpoint on a free port.
fn start(dir: &Path, document: &Value, status_extra: &str) -> Daemon {
    std::fs::write(dir.join("doc.json"), document.to_string()).expect("doc");
    Daemon::start(dir, |port| {
        format!(
            "state_dir = \"state\"\ntimezone = \"Europe/Paris\"\n[standalone]\ndocument = \"doc.json\"\n\
             [status]\nlisten = \"127.0.0.1:{port}\"\n{status_extra}\n"
        )
    })
}

fn base_doc() -> Value {
    json!({
        "version": "e2e-1",
        "box": { "id": "bx-e2e", "node": "p" },
        "tree": [
            { "id": "p", "kind": "partner", "name": "P", "timezone": "Europe/Paris" },
            { "id": "c", "kind": "company", "name": "C", "parent": "p" },
            { "id": "s1", "kind": "site", "name": "S1", "parent": "c" },
            { "id": "s2", "kind": "site", "name": "S2", "parent": "c" }
        ],
        "time_ranges": [ { "id": "24x7", "name": "24x7", "weekly": [ { "days": ["mon","tue","wed","thu","fri","sat","sun"], "from": "00:00", "to": "24:00" } ] } ],
        "defaults": [
            { "aspect": "control", "time_range": "24x7" },
            { "aspect": "availability", "time_range": "24x7" },
            { "aspect": "notification", "time_range": "24x7" }
        ],
        "service_templates": [
            { "id": "ping", "kind": "icmp", "criticality": "high", "availability_rate": 99.0, "availability_period": "24x7",
              "control_period": "24x7", "interval_s": 2, "timeout_s": 2, "params": { "packets": 1 } },
            { "id": "web", "kind": "http", "criticality": "medium", "availability_rate": 99.0, "availability_period": "24x7",
              "control_period": "24x7", "interval_s": 2, "timeout_s": 2, "max_attempts": 1 },
            { "id": "uptime", "kind": "snmp", "criticality": "low", "availability_rate": 99.0, "availability_period": "24x7",
              "control_period": "24x7", "interval_s": 2, "timeout_s": 1, "max_attempts": 1, "params": { "oid": "1.3.6.1.2.1.1.3.0" } }
        ],
        "devices": [], "services": []
    })
}

fn push(doc: &mut Value, key: &str, item: Value) {
    doc[key].as_array_mut().expect("list").push(item);
}

/// The device `web1` on s1, with HTTP checks `(id, url, extra fields)`.
fn push_web_checks(doc: &mut Value, checks: &[(&str, &str, Value)]) {
    push(
        doc,
        "devices",
        json!({ "id": "web1", "node": "s1", "name": "W", "address": "127.0.0.1" }),
    );
    for (id, url, extra) in checks {
        let mut service = json!({ "id": id, "device": "web1", "template": "web", "params": { "url": url } });
        if let (Some(s), Some(e)) = (service.as_object_mut(), extra.as_object()) {
            s.extend(e.clone());
        }
        push(doc, "services", service);
    }
}

/// One sample of the exposition format: name, labels, value.
type Sample = (String, Vec<(String, String)>, f64);

/// Parses the Prometheus text format strictly: every sample follows its family's TYPE line.
fn parse_exposition(text: &str) -> Vec<Sample> {
    let mut typed = std::collections::HashSet::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (name, kind) = (parts.next().expect("name"), parts.next().expect("type"));
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            typed.insert(name.to_string());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad sample line {line:?}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => {
                let body = rest
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("unclosed labels in {line:?}"));
                let labels = body
                    .split(',')
                    .filter(|l| !l.is_empty())
                    .map(|l| {
                        let (k, v) = l.split_once('=').unwrap_or_else(|| panic!("bad label in {line:?}"));
                        (k.to_string(), v.trim_matches('"').to_string())
                    })
                    .collect();
                (n.to_string(), labels)
            }
            None => (series.to_string(), Vec::new()),
        };
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .fold(name.clone(), |n, s| n.strip_suffix(s).map(str::to_string).unwrap_or(n));
        assert!(
            typed.contains(&name) || typed.contains(&family),
            "{name} has no TYPE line"
        );
        samples.push((name, labels, value));
    }
    samples
}

fn sample(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l.iter().any(|(a, b)| a == k && b == v)))
        .map(|(_, _, v)| v)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs snmpd, and root or unprivileged ICMP: bash .ci/run runs it"]
async fn daemon_polls_real_peers_buffers_records_and_serves_its_status() {
    let web = http_server::start(None).await;
    let agent = peers::Snmpd::start();
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port");
    let mut doc = base_doc();
    let snmp = |port: u16| json!({ "version": "2c", "community": SECRET_COMMUNITY, "port": port });
    push(
        &mut doc,
        "devices",
        json!({ "id": "good", "node": "s1", "name": "Good", "address": "127.0.0.1", "snmp": snmp(agent.port) }),
    );
    push(
        &mut doc,
        "devices",
        json!({ "id": "bad", "node": "s2", "name": "Bad", "address": "127.0.0.2",
        "snmp": snmp(silent.local_addr().expect("addr").port()) }),
    );
    push(
        &mut doc,
        "services",
        json!({ "id": "good-ping", "device": "good", "template": "ping" }),
    );
    push(
        &mut doc,
        "services",
        json!({ "id": "good-web", "device": "good", "template": "web", "params": { "url": web.url("/ok") } }),
    );
    push(
        &mut doc,
        "services",
        json!({ "id": "good-uptime", "device": "good", "template": "uptime" }),
    );
    push(
        &mut doc,
        "services",
        json!({ "id": "bad-ping", "device": "bad", "template": "ping" }),
    );
    push(
        &mut doc,
        "services",
        json!({ "id": "bad-web", "device": "bad", "template": "web", "params": { "url": format!("http://{closed}/") } }),
    );
    push(
        &mut doc,
        "services",
        json!({ "id": "bad-uptime", "device": "bad", "template": "uptime" }),
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = tokio::task::spawn_blocking({
        let (dir, doc) = (dir.path().to_path_buf(), doc.clone());
        move || start(&dir, &doc, "")
    })
    .await
    .expect("start");
    let daemon = tokio::task::spawn_blocking(move || {
        daemon.wait_for(
            || {
                daemon
                    .json("/services")
                    .as_array()
                    .is_some_and(|s| s.iter().all(|x| !x["live"]["last_check"].is_null()))
                    // and committed: writes are committed in groups, every 2 s at most
                    && daemon.json("/status")["buffer"]["records"].as_u64() >= Some(6)
            },
            "a first result of every service, committed",
        );
        daemon
    })
    .await
    .expect("wait");
    let (daemon, services, metrics, status, page, devices) = tokio::task::spawn_blocking(move || {
        let services = daemon.json("/services");
        let metrics = daemon.get("/metrics").expect("metrics").1;
        let status = daemon.json("/status");
        let page = daemon.get("/").expect("page").1;
        let devices = daemon.json("/devices");
        (daemon, services, metrics, status, page, devices)
    })
    .await
    .expect("read");

    let state_of = |id: &str| -> String {
        services
            .as_array()
            .and_then(|s| s.iter().find(|x| x["id"] == id))
            .map(|x| x["live"]["state"].as_str().unwrap_or("").to_string())
            .unwrap_or_default()
    };
    assert_eq!(state_of("good-ping"), "ok");
    assert_eq!(state_of("good-web"), "ok");
    assert_eq!(state_of("good-uptime"), "ok");
    assert_eq!(state_of("bad-ping"), "ok", "127.0.0.2 answers too");
    assert_eq!(state_of("bad-web"), "critical");
    assert_eq!(state_of("bad-uptime"), "unknown");
    // The explain values ride along with the live state.
    let good_web = services
        .as_array()
        .and_then(|s| s.iter().find(|x| x["id"] == "good-web"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(good_web["interval_s"], json!({ "value": 2, "from": "template:web" }));

    let samples = parse_exposition(&metrics);
    assert!(sample(&samples, "snbox_checks_total", &[("kind", "icmp"), ("result", "ok")]) >= 2.0);
    assert!(
        sample(
            &samples,
            "snbox_checks_total",
            &[("kind", "http"), ("result", "critical")]
        ) >= 1.0
    );
    assert!(
        sample(
            &samples,
            "snbox_checks_total",
            &[("kind", "snmp"), ("result", "unknown")]
        ) >= 1.0
    );
    assert!(sample(&samples, "snbox_scheduling_lateness_seconds_count", &[]) >= 6.0);
    assert!(sample(&samples, "snbox_buffer_records", &[]) >= 6.0);
    assert_eq!(sample(&samples, "snbox_services", &[("state", "critical")]), 1.0);

    assert_eq!(status["mode"], "standalone");
    assert_eq!(status["box"], json!({ "id": "bx-e2e", "node": "p" }));
    assert!(
        status["buffer"]["last_seq"].as_u64().is_some_and(|s| s >= 6),
        "{status}"
    );
    assert!(page.contains("good-web") && page.contains("bad-uptime"), "{page}");
    assert_eq!(devices.as_array().map(Vec::len), Some(2));
    for answer in [
        services.to_string(),
        metrics.clone(),
        status.to_string(),
        page.clone(),
        devices.to_string(),
    ] {
        assert!(
            !answer.contains(SECRET_COMMUNITY),
            "the community leaked into an answer"
        );
    }

    let db_dir = dir.path().to_path_buf();
    let code = tokio::task::spawn_blocking(move || daemon.terminate(Duration::from_secs(10)))
        .await
        .expect("stop");
    assert_eq!(code, Some(0), "SIGTERM: exit 0 within 10 s");
    let db = rusqlite::Connection::open(db_dir.join("state/snbox.db")).expect("db");
    let check: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity");
    assert_eq!(check, "ok");
    let per_service: Vec<(String, i64)> = db
        .prepare("SELECT g.service, count(*) FROM outbox o JOIN origins g ON g.id = o.origin WHERE o.kind = 1 GROUP BY g.service ORDER BY 1")
        .expect("query")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(per_service.len(), 6, "{per_service:?}");
    let origin: (String, String, Option<String>) = db
        .query_row(
            "SELECT device, node, company FROM origins WHERE service = 'bad-web'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("origin");
    assert_eq!(origin, ("bad".into(), "s2".into(), Some("c".into())), "R12");
    let states: i64 = db
        .query_row("SELECT count(*) FROM service_state", [], |r| r.get(0))
        .expect("states");
    assert_eq!(states, 6, "every state saved at shutdown");
    let all_rows: String = db
        .prepare("SELECT body FROM outbox")
        .expect("q")
        .query_map([], |r| {
            // Results are compact BLOBs whose texts are stored as they are; the rest is JSON.
            Ok(match r.get::<_, rusqlite::types::Value>(0)? {
                rusqlite::types::Value::Blob(b) => String::from_utf8_lossy(&b).into_owned(),
                rusqlite::types::Value::Text(t) => t,
                other => format!("{other:?}"),
            })
        })
        .expect("rows")
        .collect::<Result<Vec<_>, _>>()
        .expect("rows")
        .join("\n");
    assert!(
        !all_rows.contains(SECRET_COMMUNITY),
        "the community leaked into the outbox"
    );
    drop(silent);
}

#[test]
fn status_needs_a_token_off_loopback_and_a_scoped_token_sees_its_subtree() {
    let mut doc = base_doc();
    push(
        &mut doc,
        "devices",
        json!({ "id": "one", "node": "s1", "name": "One", "address": "127.0.0.1" }),
    );
    push(
        &mut doc,
        "devices",
        json!({ "id": "two", "node": "s2", "name": "Two", "address": "127.0.0.1" }),
    );
    push(
        &mut doc,
        "services",
        json!({ "id": "one-ping", "device": "one", "template": "ping" }),
    );
    push(
        &mut doc,
        "services",
        json!({ "id": "two-ping", "device": "two", "template": "ping" }),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let extra = format!(
        "no_token_from = [\"127.0.0.1/32\"]\n[[status.tokens]]\ntoken = \"{FULL_TOKEN}\"\n[[status.tokens]]\ntoken = \"{SITE2_TOKEN}\"\nnode = \"s2\"\n"
    );
    let daemon = start(dir.path(), &doc, &extra);
    let remote: IpAddr = "127.0.0.2".parse().expect("ip");
    for path in ["/status", "/services", "/devices", "/metrics", "/"] {
        assert_eq!(
            daemon.request(path, Some(remote), None).map(|r| r.0),
            Some(401),
            "{path} without a token"
        );
        assert_eq!(
            daemon
                .request(path, Some(remote), Some("Wrong-Token-0123456789"))
                .map(|r| r.0),
            Some(401),
            "{path}"
        );
        assert_eq!(
            daemon.request(path, Some(remote), Some(FULL_TOKEN)).map(|r| r.0),
            Some(200),
            "{path} with the token"
        );
    }
    let ids = |body: &str| -> Vec<String> {
        serde_json::from_str::<Value>(body)
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|x| x["id"].as_str().map(str::to_string))
            .collect()
    };
    let all = daemon
        .request("/services", Some(remote), Some(FULL_TOKEN))
        .expect("answer")
        .1;
    assert_eq!(ids(&all), ["one-ping", "two-ping"]);
    let scoped = daemon
        .request("/services", Some(remote), Some(SITE2_TOKEN))
        .expect("answer")
        .1;
    assert_eq!(ids(&scoped), ["two-ping"], "a token of s2 sees only s2");
    let devices = daemon
        .request("/devices", Some(remote), Some(SITE2_TOKEN))
        .expect("answer")
        .1;
    assert_eq!(ids(&devices), ["two"]);
    // Every path: a scoped token sees its subtree, or is refused what covers the whole box.
    daemon.wait_for(
        || daemon.json("/status")["services"]["states"]["pending"].is_null(),
        "both services checked",
    );
    for path in ["/status", "/", "/healthz", "/services", "/devices"] {
        let (code, body) = daemon.request(path, Some(remote), Some(SITE2_TOKEN)).expect("answer");
        assert_eq!(code, 200, "{path}: {body}");
        assert!(
            !body.contains("one-ping") && !body.contains("\"one\""),
            "{path} shows s1: {body}"
        );
    }
    let status: Value = serde_json::from_str(
        &daemon
            .request("/status", Some(remote), Some(SITE2_TOKEN))
            .expect("answer")
            .1,
    )
    .expect("json");
    assert_eq!(status["services"]["polled"], 1, "{status}");
    assert_eq!(status["devices"]["accepted"], 1, "{status}");
    for box_wide in ["buffer", "central", "scheduling"] {
        assert!(
            status.get(box_wide).is_none(),
            "{box_wide} shown to a scoped token: {status}"
        );
    }
    assert!(status["config"].get("last_error").is_none(), "{status}");
    assert_eq!(
        daemon.request("/metrics", Some(remote), Some(SITE2_TOKEN)).map(|r| r.0),
        Some(403),
        "/metrics is box-wide"
    );
    // 127.0.0.1 is still trusted.
    assert_eq!(daemon.get("/services").map(|r| r.0), Some(200));
    for (_, body) in [
        daemon.get("/status"),
        daemon.request("/", Some(remote), Some(FULL_TOKEN)),
    ]
    .into_iter()
    .flatten()
    {
        assert!(
            !body.contains(FULL_TOKEN) && !body.contains(SITE2_TOKEN),
            "a token leaked"
        );
    }
    assert!(
        !daemon.log().contains(FULL_TOKEN) && !daemon.log().contains(SITE2_TOKEN),
        "a token reached the log"
    );
}

#[test]
fn kill_9_during_a_burst_loses_no_committed_record_and_seq_continues() {
    let mut doc = base_doc();
    doc["service_templates"][0]["interval_s"] = json!(1);
    for i in 0..100 {
        push(
            &mut doc,
            "devices",
            json!({ "id": format!("d{i}"), "node": "s1", "name": "D", "address": format!("127.0.2.{}", i + 1) }),
        );
        push(
            &mut doc,
            "services",
            json!({ "id": format!("d{i}-ping"), "device": format!("d{i}"), "template": "ping" }),
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut highest = 0u64;
    for round in 0..3 {
        let daemon = start(dir.path(), &doc, "");
        daemon.wait_for(
            || {
                daemon.json("/status")["buffer"]["last_seq"]
                    .as_u64()
                    .is_some_and(|s| s > highest + 150)
            },
            "a burst of commits",
        );
        // Every seq the daemon reported as committed must survive the kill.
        let reported = daemon.json("/status")["buffer"]["last_seq"].as_u64().unwrap_or(0);
        std::thread::sleep(Duration::from_millis(150 * round + 100));
        let db_path = daemon.dir.join("state/snbox.db");
        daemon.kill9();
        let db = rusqlite::Connection::open(&db_path).expect("db");
        let check: String = db
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .expect("integrity");
        assert_eq!(check, "ok", "round {round}");
        let max: i64 = db
            .query_row("SELECT max(seq) FROM outbox", [], |r| r.get(0))
            .expect("max");
        let count: i64 = db
            .query_row("SELECT count(*) FROM outbox WHERE seq <= ?1", [reported as i64], |r| {
                r.get(0)
            })
            .expect("count");
        assert!(
            max as u64 >= reported,
            "round {round}: reported {reported}, found up to {max}"
        );
        assert!(
            max as u64 > highest,
            "round {round}: seq continues after a restart ({max} after {highest})"
        );
        assert_eq!(
            count as u64, reported,
            "round {round}: every seq up to the reported one is there (nothing was acknowledged)"
        );
        highest = max as u64;
    }
}

#[test]
fn a_changed_document_is_applied_live_a_bad_one_refused_and_sighup_rereads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut doc = base_doc();
    push(
        &mut doc,
        "devices",
        json!({ "id": "d1", "node": "s1", "name": "D1", "address": "127.0.0.1" }),
    );
    push(
        &mut doc,
        "services",
        json!({ "id": "d1-ping", "device": "d1", "template": "ping" }),
    );
    let daemon = start(dir.path(), &doc, "");
    let live = |d: &Daemon, id: &str| -> Option<Value> {
        d.json("/services")
            .as_array()?
            .iter()
            .find(|s| s["id"] == id)
            .map(|s| s["live"].clone())
    };
    daemon.wait_for(
        || live(&daemon, "d1-ping").is_some_and(|l| !l["last_check"].is_null()),
        "d1-ping checked",
    );
    let since = live(&daemon, "d1-ping").expect("d1-ping")["since"].clone();

    // A new version adds a device: applied without a restart, d1-ping keeps its state.
    doc["version"] = json!("e2e-2");
    push(
        &mut doc,
        "devices",
        json!({ "id": "d2", "node": "s2", "name": "D2", "address": "127.0.0.2" }),
    );
    push(
        &mut doc,
        "services",
        json!({ "id": "d2-ping", "device": "d2", "template": "ping" }),
    );
    std::fs::write(dir.path().join("doc.json"), doc.to_string()).expect("doc v2");
    daemon.wait_for(
        || live(&daemon, "d2-ping").is_some_and(|l| !l["last_check"].is_null()),
        "the new service checked",
    );
    assert_eq!(daemon.json("/status")["config"]["version"], "e2e-2");
    assert_eq!(live(&daemon, "d1-ping").expect("d1-ping")["since"], since, "state kept");

    // A broken version is refused with its reasons; e2e-2 keeps running.
    let mut broken = doc.clone();
    broken["version"] = json!("e2e-3");
    push(
        &mut broken,
        "service_templates",
        json!({ "id": "late", "kind": "icmp", "criticality": "low", "availability_rate": 99.0,
                "availability_period": "24x7", "control_period": "no-such-range", "interval_s": 60 }),
    );
    std::fs::write(dir.path().join("doc.json"), broken.to_string()).expect("doc v3");
    daemon.wait_for(
        || !daemon.json("/status")["config"]["last_error"].is_null(),
        "the refusal on /status",
    );
    let config = daemon.json("/status")["config"].clone();
    assert_eq!(config["version"], "e2e-2", "{config}");
    assert!(
        config["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("no-such-range") && e.contains("doc.json")),
        "the error names the file and the reference: {config}"
    );
    let checked = live(&daemon, "d2-ping").expect("d2-ping")["last_check"].clone();
    daemon.wait_for(
        || live(&daemon, "d2-ping").is_some_and(|l| l["last_check"] != checked),
        "polling goes on under the previous document",
    );

    // Fixed again, then SIGHUP re-reads an unchanged file.
    std::fs::write(dir.path().join("doc.json"), doc.to_string()).expect("doc v2 again");
    daemon.wait_for(
        || daemon.json("/status")["config"]["last_error"].is_null(),
        "the refusal cleared by a good document",
    );
    let applied = daemon.json("/status")["config"]["applied_at"].clone();
    std::thread::sleep(Duration::from_millis(20));
    let _ = Command::new("kill")
        .args(["-HUP", &daemon.child.id().to_string()])
        .status();
    daemon.wait_for(
        || daemon.json("/status")["config"]["applied_at"] != applied,
        "SIGHUP applies the document again",
    );
    assert!(daemon.log().contains("SIGHUP"), "{}", daemon.log());
    assert_eq!(daemon.terminate(Duration::from_secs(10)), Some(0));
}

/// The technician's page as a real browser renders it: Debian's chromium, headless, dumps
/// the DOM it built from `/`; every polled service is a row with its state.
#[test]
#[ignore = "needs chromium: bash .ci/run installs it and runs this"]
fn the_status_page_renders_every_service_in_headless_chromium() {
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("chromium is not installed: run `bash .ci/run`, or apt-get install chromium");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut doc = base_doc();
    for (id, address) in [("d1", "127.0.0.1"), ("d2", "127.0.0.2")] {
        push(
            &mut doc,
            "devices",
            json!({ "id": id, "node": "s1", "name": id, "address": address }),
        );
        push(
            &mut doc,
            "services",
            json!({ "id": format!("{id}-ping"), "device": id, "template": "ping" }),
        );
    }
    push(
        &mut doc,
        "devices",
        json!({ "id": "dead", "node": "s2", "name": "Dead", "address": "127.0.0.1" }),
    );
    push(
        &mut doc,
        "services",
        json!({ "id": "dead-web", "device": "dead", "template": "web", "params": { "url": "http://127.0.0.1:9/" } }),
    );
    let daemon = start(dir.path(), &doc, "");
    daemon.wait_for(
        || {
            daemon
                .json("/services")
                .as_array()
                .is_some_and(|all| all.iter().all(|s| !s["live"]["last_check"].is_null()))
        },
        "every service checked",
    );
    let out = Command::new("timeout")
        .args(["-k", "5", "60"])
        .arg(chromium)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        // No reaching out: the machine's network is closed, and the test wants only our page.
        .args([
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", dir.path().join("chromium").display()))
        .arg("--dump-dom")
        .arg(daemon.url("/"))
        .output()
        .expect("chromium runs");
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("<title>snbox bx-e2e</title>"),
        "no page: {dom}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = |service: &str| -> Option<String> {
        let start = dom.find(&format!("data-service=\"{service}\""))?;
        let row_start = dom[..start].rfind("<tr")?;
        let row_end = start + dom[start..].find("</tr>")?;
        Some(dom[row_start..row_end].to_string())
    };
    for (service, state) in [("d1-ping", "ok"), ("d2-ping", "ok"), ("dead-web", "critical")] {
        let row = row(service).unwrap_or_else(|| panic!("{service} is not on the page: {dom}"));
        assert!(
            row.starts_with(&format!("<tr class=\"{state}\"")),
            "{service} should be {state}: {row}"
        );
        assert!(row.contains(&format!("data-state=\"{state}\"")), "{row}");
        assert!(
            row.contains(&format!("<span class=\"badge {state}\">{state}</span>")),
            "{row}"
        );
    }
    assert!(!dom.contains(SECRET_COMMUNITY));
    assert_eq!(daemon.terminate(Duration::from_secs(10)), Some(0));
}

/// Sends `head` on a new connection from 127.0.0.1 and returns what came back before the
/// server closed it (or `within` passed).
fn raw_exchange(port: u16, head: &[u8], within: Duration) -> String {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = stream.set_read_timeout(Some(within));
    let _ = stream.write_all(head);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// protocol.md §7 and issue 7: off the trusted addresses every path, `/healthz` included,
/// needs a token; the listener bounds connections (64), request heads (16 KiB, 32 headers)
/// and the time to send one (5 s), so a hostile LAN cannot starve the technician's page.
#[test]
fn status_endpoint_bounds_connections_request_heads_and_slow_clients() {
    let mut doc = base_doc();
    push(
        &mut doc,
        "devices",
        json!({ "id": "one", "node": "s1", "name": "One", "address": "127.0.0.1" }),
    );
    push(
        &mut doc,
        "services",
        json!({ "id": "one-ping", "device": "one", "template": "ping" }),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let extra = format!("no_token_from = [\"127.0.0.1/32\"]\n[[status.tokens]]\ntoken = \"{FULL_TOKEN}\"\n");
    let daemon = start(dir.path(), &doc, &extra);
    let remote: IpAddr = "127.0.0.2".parse().expect("ip");
    assert_eq!(daemon.request("/healthz", Some(remote), None).map(|r| r.0), Some(401));
    assert_eq!(
        daemon.request("/healthz", Some(remote), Some(FULL_TOKEN)).map(|r| r.0),
        Some(200)
    );

    // A head over 16 KiB, and one with too many headers: refused, the daemon unharmed.
    let big = format!(
        "GET /status HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(64 << 10)
    );
    let answer = raw_exchange(daemon.port, big.as_bytes(), Duration::from_secs(5));
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "a 64 KiB head was answered: {}",
        answer.lines().next().unwrap_or("")
    );
    let many: String = (0..100).map(|i| format!("X-H{i}: v\r\n")).collect();
    let answer = raw_exchange(
        daemon.port,
        format!("GET /status HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes(),
        Duration::from_secs(5),
    );
    assert!(!answer.starts_with("HTTP/1.1 200"), "100 headers were served");
    assert_eq!(daemon.get("/healthz").map(|r| r.0), Some(200));

    // Slow-loris: a head that never ends is cut off after 5 s.
    let started = std::time::Instant::now();
    let answer = raw_exchange(
        daemon.port,
        b"GET /status HTTP/1.1\r\nHost: x\r\n",
        Duration::from_secs(15),
    );
    let took = started.elapsed();
    assert!(!answer.contains("200 OK"), "{answer}");
    assert!(
        took < Duration::from_secs(10),
        "a slow head held the connection {took:?}"
    );

    // 64 silent connections fill the endpoint; one more is closed at once; once the silent
    // ones are cut off (5 s), the endpoint answers again.
    let silent: Vec<std::net::TcpStream> = (0..64)
        .filter_map(|_| std::net::TcpStream::connect(("127.0.0.1", daemon.port)).ok())
        .collect();
    assert_eq!(silent.len(), 64);
    std::thread::sleep(Duration::from_millis(300));
    let answer = raw_exchange(
        daemon.port,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        Duration::from_secs(2),
    );
    assert!(answer.is_empty(), "a 65th connection was served: {answer}");
    daemon.wait_for(
        || daemon.get("/healthz").is_some_and(|r| r.0 == 200),
        "the endpoint answers once the silent connections are cut off",
    );
    drop(silent);
    assert_eq!(daemon.terminate(Duration::from_secs(10)), Some(0));
}

/// A store that cannot commit (here every outbox insert is refused by a trigger another
/// connection added, as a read-only or broken file refuses it) is unhealthy once the grace is
/// over, says why on `/status`, and a shutdown that loses its records exits non-zero.
#[test]
fn a_store_that_cannot_commit_is_unhealthy_and_a_shutdown_that_loses_records_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut doc = base_doc();
    push_web_checks(&mut doc, &[("web1-http", "http://127.0.0.1:1/", json!({}))]);
    let daemon = start(dir.path(), &doc, "");
    daemon.wait_for(
        || daemon.json("/status")["buffer"]["records"].as_u64() > Some(0),
        "a record committed",
    );
    let db = rusqlite::Connection::open(dir.path().join("state/snbox.db")).expect("db");
    db.busy_timeout(Duration::from_secs(5)).expect("busy");
    db.execute_batch(
        "CREATE TRIGGER refuse BEFORE INSERT ON outbox BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
    )
    .expect("trigger");
    daemon.wait_for(
        || daemon.get("/healthz").is_some_and(|(code, _)| code == 503),
        "/healthz unhealthy",
    );
    let buffer = daemon.json("/status")["buffer"].clone();
    assert_eq!(buffer["healthy"], false, "{buffer}");
    assert!(buffer["failing_s"].as_u64() >= Some(10), "{buffer}");
    assert!(
        buffer["commit_error"]
            .as_str()
            .is_some_and(|e| e.contains("refused by the test")),
        "{buffer}"
    );
    assert!(buffer["unsaved"].as_u64() > Some(0), "{buffer}");
    let log_path = dir.path().join("daemon.log");
    let code = daemon.terminate(Duration::from_secs(15));
    assert!(
        matches!(code, Some(c) if c != 0),
        "a shutdown that loses records exits {code:?}"
    );
    let log = std::fs::read_to_string(log_path).unwrap_or_default();
    assert!(log.contains("they are lost"), "{log}");
}

/// A service never checked is `pending` (not a green "ok hard") in `/status`, `/metrics`, the
/// page and `snbox status`, which also lists the services that are not OK and sends a token.
#[test]
fn a_service_never_checked_is_pending_and_snbox_status_lists_problems_with_a_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut doc = base_doc();
    // A control period open one minute a week, on another day than today: never open now.
    let other_day = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        [(jiff::Zoned::now().weekday().to_monday_zero_offset() as usize + 3) % 7];
    push(
        &mut doc,
        "time_ranges",
        json!({ "id": "later", "name": "later", "weekly": [ { "days": [other_day], "from": "03:00", "to": "03:01" } ] }),
    );
    push_web_checks(
        &mut doc,
        &[
            ("closed-web", "http://127.0.0.1:9/", json!({})),
            ("later-web", "http://127.0.0.1:9/", json!({ "control_period": "later" })),
        ],
    );
    let extra = format!("no_token_from = []\n[[status.tokens]]\ntoken = \"{FULL_TOKEN}\"\n");
    let daemon = start(dir.path(), &doc, &extra);
    let get = |path: &str| daemon.request(path, None, Some(FULL_TOKEN)).expect("answer").1;
    daemon.wait_for(
        || serde_json::from_str::<Value>(&get("/status")).is_ok_and(|s| s["services"]["states"]["critical"] == 1),
        "closed-web critical",
    );
    let status: Value = serde_json::from_str(&get("/status")).expect("json");
    assert_eq!(status["services"]["states"]["pending"], 1, "{status}");
    assert!(status["services"]["states"].get("ok").is_none(), "{status}");
    let problems = status["services"]["problems"].as_array().expect("problems");
    assert_eq!(problems.len(), 1, "{status}");
    assert_eq!(problems[0]["service"], "closed-web");
    let samples = parse_exposition(&get("/metrics"));
    assert_eq!(sample(&samples, "snbox_services", &[("state", "pending")]), 1.0);
    assert_eq!(sample(&samples, "snbox_services", &[("state", "ok")]), 0.0);
    assert!(get("/").contains("<tr class=\"pending\" data-service=\"later-web\" data-state=\"pending\">"));
    let config = dir.path().join("snbox.toml");
    let status_cmd = |token: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_snbox"));
        cmd.args(["status", "--config"])
            .arg(&config)
            .env_remove("SNBOX_STATUS_TOKEN");
        if let Some(token) = token {
            cmd.env("SNBOX_STATUS_TOKEN", token);
        }
        cmd.output().expect("snbox status")
    };
    let refused = status_cmd(None);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{err}");
    assert!(err.contains("answered 401") && err.contains("--token"), "{err}");
    assert!(!err.contains("is `snbox run` running"), "{err}");
    let shown = status_cmd(Some(FULL_TOKEN));
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.status.success(), "{}", String::from_utf8_lossy(&shown.stderr));
    assert!(text.contains("services: 2 polled (1 critical, 1 pending)"), "{text}");
    assert!(text.contains("closed-web on web1: critical hard"), "{text}");
    assert!(!text.contains(FULL_TOKEN));
    // At level info the journal shows the change and its notification, once each.
    let log = daemon.log();
    let lines = |what: &str| -> Vec<&str> {
        log.lines()
            .filter(|l| l.contains(" INFO ") && l.contains(what) && l.contains("service=closed-web"))
            .collect()
    };
    let changes = lines("state change");
    assert_eq!(changes.len(), 1, "{log}");
    assert!(
        changes[0].contains("device=web1")
            && changes[0].contains("to=\"critical\"")
            && changes[0].contains("Connection refused"),
        "{}",
        changes[0]
    );
    assert_eq!(lines("notification").len(), 1, "{log}");
    assert_eq!(daemon.terminate(Duration::from_secs(10)), Some(0));
}

/// The shipped example's HTTP check asks the box's own status endpoint through `{status}`:
/// it stays OK wherever `status.listen` is.
#[test]
fn the_shipped_example_http_check_follows_status_listen() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The example as shipped, checked every 2 s rather than every minute.
    let mut doc: Value =
        serde_json::from_str(&std::fs::read_to_string("config/standalone.json").expect("example")).expect("JSON");
    for template in doc["service_templates"].as_array_mut().expect("templates") {
        template["interval_s"] = json!(2);
    }
    let example = dir.path().join("example.json");
    std::fs::write(&example, doc.to_string()).expect("write");
    let daemon = Daemon::start(dir.path(), |port| {
        assert_ne!(port, 8730);
        format!(
            "state_dir = \"state\"\n[standalone]\ndocument = \"{}\"\n[status]\nlisten = \"127.0.0.1:{port}\"\n",
            example.display()
        )
    });
    let state = |daemon: &Daemon| -> Value {
        daemon
            .json("/services")
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .find(|s| s["id"] == "paris-gw-status")
            .map(|s| s["live"]["state"].clone())
            .unwrap_or(Value::Null)
    };
    daemon.wait_for(
        || state(&daemon) != "pending" && !state(&daemon).is_null(),
        "paris-gw-status checked",
    );
    assert_eq!(state(&daemon), "ok", "{}", daemon.json("/services"));
    assert_eq!(daemon.terminate(Duration::from_secs(10)), Some(0));
}

/// The kinds of issue 17 run in the daemon like the others: a TCP connect to the tests'
/// server, a DNS query to dnsmasq, and Debian's `check_dummy` from `[plugins] dirs`, each with
/// its state on `/services` and its counter on `/metrics`.
#[tokio::test]
#[ignore = "needs dnsmasq and monitoring-plugins (bash .ci/run installs them)"]
async fn the_daemon_runs_tcp_dns_and_plugin_checks() {
    let web = http_server::start(None).await;
    let dns = peers::Dnsmasq::start();
    let mut doc = base_doc();
    for template in [
        json!({ "id": "tcp", "kind": "tcp", "criticality": "low", "availability_rate": 99.0, "availability_period": "24x7",
                "control_period": "24x7", "interval_s": 2, "timeout_s": 2, "max_attempts": 1 }),
        json!({ "id": "dns", "kind": "dns", "criticality": "low", "availability_rate": 99.0, "availability_period": "24x7",
                "control_period": "24x7", "interval_s": 2, "timeout_s": 2, "max_attempts": 1, "params": { "port": dns.port } }),
        json!({ "id": "plugin", "kind": "plugin", "criticality": "low", "availability_rate": 99.0, "availability_period": "24x7",
                "control_period": "24x7", "interval_s": 2, "timeout_s": 2, "max_attempts": 1 }),
    ] {
        push(&mut doc, "service_templates", template);
    }
    push(
        &mut doc,
        "devices",
        json!({ "id": "lo", "node": "s1", "name": "Loopback", "address": "127.0.0.1" }),
    );
    for service in [
        json!({ "id": "lo-tcp", "device": "lo", "template": "tcp", "params": { "port": web.addr.port() } }),
        json!({ "id": "lo-dns", "device": "lo", "template": "dns", "params": { "name": "www.snbox.test", "expect": ["192.0.2.10"] } }),
        json!({ "id": "lo-nx", "device": "lo", "template": "dns", "params": { "name": "nothing.snbox.test" } }),
        json!({ "id": "lo-plugin", "device": "lo", "template": "plugin",
                "params": { "command": "check_dummy", "args": ["1", "$HOSTNAME$ is so-so"] } }),
    ] {
        push(&mut doc, "services", service);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (daemon, services, metrics) = tokio::task::spawn_blocking({
        let dir = dir.path().to_path_buf();
        move || {
            let daemon = start(&dir, &doc, "[plugins]\ndirs = [\"/usr/lib/nagios/plugins\"]");
            daemon.wait_for(
                || {
                    daemon
                        .json("/services")
                        .as_array()
                        .is_some_and(|s| s.iter().all(|x| x["live"]["state"] != "pending"))
                },
                "a first result of every service",
            );
            let services = daemon.json("/services");
            let metrics = daemon.get("/metrics").expect("metrics").1;
            (daemon, services, metrics)
        }
    })
    .await
    .expect("run");
    let live = |id: &str| -> Value {
        services
            .as_array()
            .and_then(|s| s.iter().find(|x| x["id"] == id))
            .map(|x| x["live"].clone())
            .unwrap_or_default()
    };
    assert_eq!(live("lo-tcp")["state"], "ok", "{services}");
    assert_eq!(live("lo-dns")["state"], "ok", "{services}");
    assert_eq!(live("lo-nx")["state"], "critical", "{services}");
    assert_eq!(live("lo-plugin")["state"], "warning", "{services}");
    assert!(
        live("lo-plugin")["output"]
            .as_str()
            .is_some_and(|o| o.contains("Loopback is so-so")),
        "{services}"
    );
    let samples = parse_exposition(&metrics);
    for kind in ["tcp", "dns", "plugin"] {
        let total: f64 = ["ok", "warning", "critical", "unknown"]
            .iter()
            .map(|r| sample(&samples, "snbox_checks_total", &[("kind", kind), ("result", r)]))
            .sum();
        assert!(total >= 1.0, "{kind}: {metrics}");
    }
    tokio::task::spawn_blocking(move || assert_eq!(daemon.terminate(Duration::from_secs(10)), Some(0)))
        .await
        .expect("stop");
}
