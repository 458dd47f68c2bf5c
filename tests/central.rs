//! The box against a central server (protocol.md §5, §6): the real `snbox` binary paired with
//! the test central (HTTPS, a CA made per test), under injected faults. Every sync test ends
//! by comparing the central's record set with the box's outbox: no seq missing, none stored
//! twice.

#[path = "common/central.rs"]
mod central;
#[path = "common/http_server.rs"]
mod http_server;
#[path = "common/peers.rs"]
mod peers;
#[path = "common/snbox.rs"]
mod snbox_daemon;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use central::{BOX_ID, Central, Token};
use peers::Tmpfs;
use snbox_daemon::Daemon;

const TOKEN: &str = "Pair-Token-5f1c2a9e";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn settings(central: &Central, port: u16, extra: &str) -> String {
    format!(
        "state_dir = \"state\"\ntimezone = \"Europe/Paris\"\n[central]\nurl = \"{}\"\nca_file = \"{}\"\n\
         config_poll_s = 1\nheartbeat_s = 1\nretry_min_ms = 100\nretry_max_s = 1\ntimeout_s = 3\n{extra}\n\
         [status]\nlisten = \"127.0.0.1:{port}\"\n",
        central.url(),
        central.ca_file.display()
    )
}

fn snbox(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_snbox"))
        .args(args)
        .output()
        .expect("snbox runs")
}

fn pair(dir: &Path, central: &Central, extra: &[&str]) -> std::process::Output {
    let config = dir.join("snbox.toml");
    if !config.exists() {
        std::fs::write(&config, settings(central, 0, "")).expect("settings");
    }
    let config = config.display().to_string();
    let url = central.url();
    let mut args = vec!["pair", "--central", &url, "--token", TOKEN, "--config", &config];
    args.extend_from_slice(extra);
    snbox(&args)
}

/// A document for the test box: `n` HTTP checks every second of loopback addresses where
/// nothing listens (refused at once: records without needing ICMP privileges).
fn document(version: &str, n: usize) -> Value {
    let devices: Vec<Value> = (0..n)
        .map(|i| json!({ "id": format!("d{i}"), "node": "s", "name": "D", "address": format!("127.0.{}.{}", 3 + i / 250, i % 250 + 1) }))
        .collect();
    let services: Vec<Value> = (0..n)
        .map(|i| json!({ "id": format!("d{i}-web"), "device": format!("d{i}"), "template": "web-down" }))
        .collect();
    central::document(
        version,
        json!([ { "id": "web-down", "kind": "http", "criticality": "high", "availability_rate": 99.0,
            "availability_period": "24x7", "control_period": "24x7", "interval_s": 1, "timeout_s": 1,
            "max_attempts": 1 } ]),
        json!(devices),
        json!(services),
    )
}

/// Pairs a box in `dir` with `central`, serves it `doc`, and starts the daemon.
fn paired_daemon(dir: &Path, central: &Central, doc: &Value, extra: &str) -> Daemon {
    let out = pair(dir, central, &[]);
    assert!(
        out.status.success(),
        "pairing: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    central.set_document(doc);
    start(dir, central, extra)
}

fn start(dir: &Path, central: &Central, extra: &str) -> Daemon {
    Daemon::start(dir, |port| settings(central, port, extra))
}

fn buffer(daemon: &Daemon) -> Value {
    daemon.json("/status")["buffer"].clone()
}

/// Waits until the box's outbox is empty and nothing more comes, then checks the central
/// holds exactly seqs 1..=last_seq (nothing was dropped here), each once.
fn assert_delivered_exactly_once(daemon: &Daemon, central: &Central) {
    let mut settled = 0;
    let mut last = 0;
    daemon.wait_for(
        || {
            let b = buffer(daemon);
            let seq = b["last_seq"].as_u64().unwrap_or(0);
            if b["records"] == 0 && b["unsaved"] == 0 && seq == last {
                settled += 1;
            } else {
                settled = 0;
            }
            last = seq;
            settled >= 3
        },
        "the outbox drained",
    );
    let b = buffer(daemon);
    assert_eq!(b["dropped"], 0, "nothing may be dropped here: {b}");
    let seqs = central.seqs();
    let expected: Vec<u64> = (1..=last).collect();
    if seqs != expected {
        let missing: Vec<u64> = expected.iter().filter(|s| !seqs.contains(s)).copied().collect();
        panic!(
            "central holds {} records for last_seq {last}; missing {missing:?}",
            seqs.len()
        );
    }
    central.with(|c| assert!(c.records.keys().all(|(b, _)| b == BOX_ID)));
}

#[test]
fn pairing_good_used_and_expired_tokens_force_and_identity_mode_0600() {
    let rt = runtime();
    let central = rt.block_on(central::start(&[
        (TOKEN, Token::Valid),
        ("Old-Token-0001", Token::Expired),
    ]));
    let dir = tempfile::tempdir().expect("tempdir");
    let out = pair(dir.path(), &central, &[]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    let identity_path = dir.path().join("state/identity.json");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&identity_path)
        .expect("identity")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "the identity is readable by its owner only");
    let identity: Value = serde_json::from_str(&std::fs::read_to_string(&identity_path).expect("read")).expect("json");
    assert_eq!(identity["box_id"], BOX_ID);
    let credential = identity["credential"].as_str().expect("credential").to_string();
    assert!(
        !text.contains(TOKEN) && !text.contains(&credential),
        "no secret printed: {text}"
    );
    central.with(|c| {
        let facts = &c.pairings[0];
        assert_eq!(facts["arch"], std::env::consts::ARCH);
        assert!(facts["hostname"].is_string() && facts["agent_version"].is_string() && facts["machine_id"].is_string());
    });

    // Already paired: refused without --force, nothing changed.
    let again = pair(dir.path(), &central, &[]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    // --force with the used token: the central refuses; the old identity stays.
    let used = pair(dir.path(), &central, &["--force"]);
    assert_eq!(used.status.code(), Some(2), "{}", String::from_utf8_lossy(&used.stderr));
    assert!(String::from_utf8_lossy(&used.stderr).contains("refused the pairing token"));
    assert!(!String::from_utf8_lossy(&used.stderr).contains(TOKEN));
    let kept: Value = serde_json::from_str(&std::fs::read_to_string(&identity_path).expect("read")).expect("json");
    assert_eq!(kept["credential"], credential.as_str());
    // --force with a fresh token replaces the credential.
    central.with(|c| c.tokens.insert(TOKEN.to_string(), Token::Valid));
    let forced = pair(dir.path(), &central, &["--force"]);
    assert!(forced.status.success(), "{}", String::from_utf8_lossy(&forced.stderr));
    let replaced: Value = serde_json::from_str(&std::fs::read_to_string(&identity_path).expect("read")).expect("json");
    assert_ne!(replaced["credential"], credential.as_str());

    // An expired token on a fresh box: exit 2, nothing written.
    let fresh = tempfile::tempdir().expect("tempdir");
    std::fs::write(fresh.path().join("snbox.toml"), settings(&central, 0, "")).expect("settings");
    let config = fresh.path().join("snbox.toml").display().to_string();
    let out = snbox(&[
        "pair",
        "--central",
        &central.url(),
        "--token",
        "Old-Token-0001",
        "--config",
        &config,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!fresh.path().join("state/identity.json").exists(), "nothing written");
}

#[test]
fn pairing_pins_the_certificate_by_its_hash_and_refuses_a_wrong_one() {
    let rt = runtime();
    let central = rt.block_on(central::start(&[(TOKEN, Token::Valid)]));
    // No ca_file: only the hash can make this server trusted.
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("snbox.toml");
    std::fs::write(&config, "state_dir = \"state\"\n[status]\nlisten = \"127.0.0.1:0\"\n").expect("settings");
    let config = config.display().to_string();
    let wrong = format!("sha256:{}", "ab".repeat(32));
    let url = central.url();
    let pair_pinned = |hash: &str| {
        snbox(&[
            "pair",
            "--central",
            &url,
            "--token",
            TOKEN,
            "--config",
            &config,
            "--ca-cert-hash",
            hash,
        ])
    };
    let out = pair_pinned(&wrong);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&central.leaf_sha256),
        "says which certificate it saw"
    );
    assert!(!dir.path().join("state/identity.json").exists());
    central.with(|c| assert!(c.pairings.is_empty(), "the token never left the box"));
    let out = pair_pinned(&central.leaf_sha256);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let identity: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("state/identity.json")).expect("read"))
            .expect("json");
    assert_eq!(identity["pin"]["sha256"], central.leaf_sha256.as_str());
    assert!(
        identity["pin"]["certificate_pem"]
            .as_str()
            .is_some_and(|p| p.starts_with("-----BEGIN CERTIFICATE-----"))
    );
}

#[test]
fn every_record_arrives_once_through_lost_acks_500s_429s_garbage_and_lies() {
    let rt = runtime();
    let central = rt.block_on(central::start(&[(TOKEN, Token::Valid)]));
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(pair(dir.path(), &central, &[]).status.success());
    central.with(|c| {
        c.faults = central::Faults {
            fail_ingest: 3,
            lose_ack_every: 3,
            too_many: 2,
            retry_after_s: 1,
            garbage: 1,
            oversized: 1,
            lie: 1,
            ..Default::default()
        }
    });
    central.set_document(&document("v1", 8));
    let daemon = start(dir.path(), &central, "");
    daemon.wait_for(|| central.seqs().len() >= 150, "150 records at the central");
    // Stop producing: a document without services, then let the outbox drain.
    central.with(|c| c.faults = central::Faults::default());
    central.set_document(&document("v2", 0));
    daemon.wait_for(|| daemon.json("/status")["config"]["version"] == "v2", "v2 applied");
    assert_delivered_exactly_once(&daemon, &central);
    central.with(|c| {
        assert!(c.duplicates > 0, "lost acks were resent");
        assert!(c.largest_batch <= 1000);
        assert!(c.gzipped > 0, "bodies over 1 KiB are gzipped");
        let report = c
            .reports
            .iter()
            .find(|r| r["version"] == "v2")
            .expect("a report for v2");
        assert_eq!(report["applied"], true);
    });
    let status = daemon.json("/status");
    assert!(status["central"]["sync_errors"].as_u64().unwrap_or(0) >= 5, "{status}");
    assert_eq!(status["central"]["state"], "ok");
    // Heartbeats (§5.4): buffer figures and check rates; a clock 60 s off is a warning.
    central.with(|c| {
        let h = c.heartbeats.last().expect("heartbeats");
        assert_eq!(h["box_id"], BOX_ID);
        assert!(h["buffer"]["records"].is_u64() && h["buffer"]["dropped"] == 0, "{h}");
        assert!(h["checks"]["http"]["per_min"].is_number(), "{h}");
        c.clock_offset_s = 60;
    });
    daemon.wait_for(
        || daemon.json("/status")["central"]["clock_warning"].is_string(),
        "a clock warning",
    );
    let skew = daemon.json("/status")["central"]["clock_skew_s"]
        .as_f64()
        .unwrap_or(0.0);
    assert!(
        (-61.0..=-59.0).contains(&skew),
        "the box is 60 s behind the central: {skew}"
    );
    let log = daemon.log();
    let credential = central.with(|c| c.credentials[0].clone());
    assert!(
        !log.contains(&credential) && !log.contains(TOKEN),
        "no secret in the log"
    );
    assert_eq!(daemon.terminate(Duration::from_secs(10)), Some(0));
}

#[test]
fn an_ingest_answer_that_acknowledges_nothing_backs_off_instead_of_resending_at_once() {
    let rt = runtime();
    let central = rt.block_on(central::start(&[(TOKEN, Token::Valid)]));
    let dir = tempfile::tempdir().expect("tempdir");
    central.with(|c| c.faults.stall = u32::MAX);
    let daemon = paired_daemon(dir.path(), &central, &document("v1", 2), "");
    daemon.wait_for(|| central.with(|c| c.ingests) >= 1, "a first ingest");
    let before = central.with(|c| c.ingests);
    std::thread::sleep(Duration::from_secs(3));
    let during = central.with(|c| c.ingests) - before;
    // Back-off from 100 ms to 1 s: a few a second at most (resending at once: thousands).
    assert!(during <= 30, "{during} ingests in 3 s while none made progress");
    let status = daemon.json("/status");
    assert!(
        status["central"]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("acknowledges none")),
        "{status}"
    );
    central.with(|c| c.faults.stall = 0);
    central.set_document(&document("v2", 0));
    daemon.wait_for(|| daemon.json("/status")["config"]["version"] == "v2", "v2 applied");
    assert_delivered_exactly_once(&daemon, &central);
    assert_eq!(daemon.terminate(Duration::from_secs(10)), Some(0));
}

#[test]
fn a_down_central_is_caught_up_in_seq_order_at_a_set_replay_rate() {
    let rt = runtime();
    let central = rt.block_on(central::start(&[(TOKEN, Token::Valid)]));
    let dir = tempfile::tempdir().expect("tempdir");
    let out = pair(dir.path(), &central, &[]);
    assert!(out.status.success());
    central.set_document(&document("v1", 8));
    // The box got its document once, then the central goes down while records pile up.
    let daemon = start(dir.path(), &central, "replay_records_per_s = 50");
    daemon.wait_for(|| daemon.json("/status")["config"]["version"] == "v1", "v1 applied");
    central.with(|c| c.faults.down = true);
    daemon.wait_for(|| buffer(&daemon)["records"].as_u64().unwrap_or(0) >= 100, "a backlog");
    let status = daemon.json("/status");
    assert_eq!(status["central"]["state"], "unreachable", "{status}");
    central.set_document(&document("v2", 0));
    let backlog = buffer(&daemon)["records"].as_u64().unwrap_or(0);
    let start = Instant::now();
    central.with(|c| c.faults.down = false);
    assert_delivered_exactly_once(&daemon, &central);
    let took = start.elapsed().as_secs_f64();
    central.with(|c| {
        assert!(c.arrival.windows(2).all(|w| w[0] < w[1]), "records arrive in seq order");
    });
    // 50 records/s in batches of 50 a second: a backlog of N takes at least N/50 − 1 s
    // (the first batch goes at once); unpaced, 100 records go in a fraction of a second.
    assert!(
        took >= backlog as f64 / 50.0 - 1.0,
        "{backlog} records caught up in {took:.2} s, faster than the replay rate"
    );
    central.with(|c| assert!(c.largest_batch <= 50, "batches of a second's worth"));
    assert_eq!(daemon.terminate(Duration::from_secs(10)), Some(0));
}

#[test]
fn a_revoked_credential_stops_sync_while_polling_and_buffering_go_on() {
    let rt = runtime();
    let central = rt.block_on(central::start(&[(TOKEN, Token::Valid)]));
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = paired_daemon(dir.path(), &central, &document("v1", 4), "");
    daemon.wait_for(|| !central.seqs().is_empty(), "records at the central");
    central.with(|c| {
        let k = c.credentials[0].clone();
        c.revoked.push(k);
    });
    daemon.wait_for(
        || daemon.json("/status")["central"]["state"] == "revoked",
        "revoked on /status",
    );
    let status = daemon.json("/status");
    assert!(
        status["central"]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("401")),
        "{status}"
    );
    let before = buffer(&daemon)["records"].as_u64().unwrap_or(0);
    daemon.wait_for(
        || buffer(&daemon)["records"].as_u64().unwrap_or(0) > before + 20,
        "records keep buffering",
    );
    let stored = central.seqs().len();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(central.seqs().len(), stored, "nothing is sent once revoked");
    assert_eq!(daemon.terminate(Duration::from_secs(10)), Some(0));
}

#[test]
fn a_bad_document_is_refused_and_reported_and_the_last_good_one_survives_a_restart() {
    let rt = runtime();
    let central = rt.block_on(central::start(&[(TOKEN, Token::Valid)]));
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = paired_daemon(dir.path(), &central, &document("v1", 3), "");
    daemon.wait_for(|| daemon.json("/status")["config"]["version"] == "v1", "v1 applied");
    let mut bad = document("v2", 3);
    bad["service_templates"][0]["control_period"] = json!("no-such-range");
    central.set_document(&bad);
    daemon.wait_for(
        || central.with(|c| c.reports.iter().any(|r| r["version"] == "v2")),
        "a report for v2",
    );
    central.with(|c| {
        let report = c.reports.iter().find(|r| r["version"] == "v2").expect("report");
        assert_eq!(report["applied"], false);
        assert!(report["errors"].to_string().contains("no-such-range"), "{report}");
    });
    let status = daemon.json("/status");
    assert_eq!(status["config"]["version"], "v1");
    assert!(
        status["config"]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("no-such-range"))
    );
    // Bodies that are not a document at all: garbage, and JSON of another shape.
    for (etag, body) in [
        ("\"garbage\"", "{\"version\": \"v3\", \u{0}]]] not json"),
        ("\"array\"", "[1, 2, 3]"),
    ] {
        let errors_before = daemon.json("/status")["config"]["last_error_at"].clone();
        central.with(|c| c.document = Some((etag.to_string(), body.to_string())));
        daemon.wait_for(
            || daemon.json("/status")["config"]["last_error_at"] != errors_before,
            "the document that is not one refused",
        );
        assert_eq!(daemon.json("/status")["config"]["version"], "v1", "{etag}");
        assert_eq!(daemon.get("/healthz").map(|r| r.0), Some(200));
    }
    assert_eq!(daemon.terminate(Duration::from_secs(10)), Some(0));

    // The central goes away; the box restarts on its last good document and polls it.
    central.with(|c| c.faults.down = true);
    let daemon = start(dir.path(), &central, "");
    assert_eq!(daemon.json("/status")["config"]["version"], "v1");
    daemon.wait_for(
        || {
            daemon
                .json("/services")
                .as_array()
                .is_some_and(|s| s.len() == 3 && s.iter().all(|x| !x["live"]["last_check"].is_null()))
        },
        "v1's services polled without the central",
    );
    assert_eq!(daemon.terminate(Duration::from_secs(10)), Some(0));
}

/// One of the faults the crash harness injects, chosen at random for each run of the box.
fn random_faults(c: &mut central::Inner) {
    c.faults = central::Faults::default();
    match fastrand::u8(0..7) {
        0 => {}
        1 => c.faults.slow_ms = 150,
        2 => c.faults.lose_ack_every = 2,
        3 => c.faults.fail_ingest = 3,
        4 => {
            c.faults.too_many = 2;
            c.faults.retry_after_s = 1;
        }
        5 => c.faults.garbage = 2,
        _ => c.faults.lie = 2,
    }
}

/// Crash consistency (issue 7): the real box against the test central under random faults,
/// killed with SIGKILL at random moments (during checks, commits, batches in flight and
/// document changes) and restarted each time. At the end the central holds every record the
/// box ever reported committed, each once, none with two contents. `SNBOX_KILLS` sets the
/// number of kills (CI: 15; docs/RELIABILITY.md: 100).
#[test]
fn crash_consistency_kill_9_at_random_points_under_random_faults() {
    let rt = runtime();
    let central = rt.block_on(central::start(&[(TOKEN, Token::Valid)]));
    let dir = tempfile::tempdir().expect("tempdir");
    let mut daemon = paired_daemon(dir.path(), &central, &document("v1", 20), "");
    let kills: u64 = std::env::var("SNBOX_KILLS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(15);
    if let Some(seed) = std::env::var("SNBOX_SEED").ok().and_then(|s| s.parse().ok()) {
        fastrand::seed(seed);
    }
    let seed = fastrand::get_seed();
    eprintln!("{kills} kills, seed {seed}");
    let mut reported = 0u64;
    for i in 0..kills {
        central.with(random_faults);
        if i % 3 == 1 {
            // A new document, so that some kills land while it is pulled and applied.
            central.set_document(&document(&format!("v1.{i}"), 16 + (i as usize % 8)));
        }
        std::thread::sleep(Duration::from_millis(200 + fastrand::u64(0..1000)));
        if let Some(seq) = daemon
            .get("/status")
            .and_then(|(_, body)| serde_json::from_str::<Value>(&body).ok())
            .and_then(|s| s["buffer"]["last_seq"].as_u64())
        {
            reported = reported.max(seq);
        }
        std::thread::sleep(Duration::from_millis(fastrand::u64(0..300)));
        daemon.kill9();
        daemon = start(dir.path(), &central, "");
    }
    central.with(|c| c.faults = central::Faults::default());
    central.set_document(&document("v2", 0));
    daemon.wait_for(|| daemon.json("/status")["config"]["version"] == "v2", "v2 applied");
    assert_delivered_exactly_once(&daemon, &central);
    let last = buffer(&daemon)["last_seq"].as_u64().unwrap_or(0);
    assert!(
        last >= reported,
        "seq {reported} was reported committed, the box is at {last}"
    );
    central.with(|c| assert_eq!(c.conflicts, 0, "a seq arrived twice with two contents"));
    let db = rusqlite::Connection::open(dir.path().join("state/snbox.db")).expect("db");
    let check: String = db.query_row("PRAGMA integrity_check", [], |r| r.get(0)).expect("check");
    assert_eq!(check, "ok");
    eprintln!(
        "{kills} kills: {last} records, {} sent again",
        central.with(|c| c.duplicates)
    );
    assert_eq!(daemon.terminate(Duration::from_secs(10)), Some(0));
}

/// Power loss (issue 7), at the storage level: the running box is frozen (SIGSTOP) at random
/// moments, its database and WAL copied as they are on disk, and thawed. Each copy must open,
/// pass `PRAGMA integrity_check`, and hold a prefix of the history: every record in it is the
/// record the central finally holds under that seq. `SNBOX_POWER_CUTS` sets the number of
/// copies (CI: 20).
#[test]
fn power_loss_copies_taken_mid_write_open_intact_and_hold_a_prefix() {
    let rt = runtime();
    let central = rt.block_on(central::start(&[(TOKEN, Token::Valid)]));
    let dir = tempfile::tempdir().expect("tempdir");
    // Lost answers and slow ones keep records pending and batches in flight.
    central.with(|c| {
        c.faults.lose_ack_every = 3;
        c.faults.slow_ms = 50;
    });
    let daemon = paired_daemon(dir.path(), &central, &document("v1", 60), "");
    let cuts: usize = std::env::var("SNBOX_POWER_CUTS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(20);
    let copies = tempfile::tempdir().expect("copies");
    let pid = daemon.child.id().to_string();
    for i in 0..cuts {
        std::thread::sleep(Duration::from_millis(100 + fastrand::u64(0..500)));
        let _ = Command::new("kill").args(["-STOP", &pid]).status();
        let copy = copies.path().join(i.to_string());
        std::fs::create_dir_all(&copy).expect("copy dir");
        for name in ["snbox.db", "snbox.db-wal"] {
            let from = dir.path().join("state").join(name);
            if from.exists() {
                std::fs::copy(&from, copy.join(name)).expect("copy");
            }
        }
        let _ = Command::new("kill").args(["-CONT", &pid]).status();
    }
    central.with(|c| c.faults = central::Faults::default());
    central.set_document(&document("v2", 0));
    daemon.wait_for(|| daemon.json("/status")["config"]["version"] == "v2", "v2 applied");
    assert_delivered_exactly_once(&daemon, &central);

    let mut held = 0;
    for i in 0..cuts {
        let copy = copies.path().join(i.to_string());
        let db = rusqlite::Connection::open(copy.join("snbox.db")).expect("a copy opens");
        let check: String = db.query_row("PRAGMA integrity_check", [], |r| r.get(0)).expect("check");
        assert_eq!(check, "ok", "copy {i}");
        drop(db);
        let records = rt.block_on(async {
            let store = snbox::store::Store::open(&copy, 1 << 30)
                .expect("the store opens a copy")
                .store;
            store.pending(0, 1_000_000).await.expect("records of a copy")
        });
        central.with(|c| {
            for record in &records {
                let seq = record["seq"].as_u64().expect("seq");
                let at_central = c.records.get(&(BOX_ID.to_string(), seq));
                assert_eq!(
                    at_central,
                    Some(record),
                    "copy {i}: seq {seq} differs from the central's"
                );
            }
        });
        held += records.len();
    }
    eprintln!("{cuts} copies, {held} records checked against the central");
    assert_eq!(daemon.terminate(Duration::from_secs(10)), Some(0));
}

/// Writes to `path` until the filesystem refuses more.
fn fill(path: &Path) -> u64 {
    use std::io::Write;
    let mut file = std::fs::File::create(path).expect("ballast");
    let chunk = vec![0x5au8; 64 << 10];
    let mut written = 0u64;
    while file.write_all(&chunk).and_then(|_| file.sync_data()).is_ok() {
        written += chunk.len() as u64;
    }
    // The last partial chunk may hold a few KiB more; the point is that nothing is left.
    written
}

/// The central's state changes of `service`, in seq order, as (from, to).
fn state_changes(central: &Central, service: &str) -> Vec<(String, String)> {
    central.with(|c| {
        c.records
            .values()
            .filter(|r| r["kind"] == "state_change" && r["service"] == service)
            .map(|r| {
                (
                    r["from"].as_str().unwrap_or("").to_string(),
                    r["to"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    })
}

#[test]
#[ignore = "needs root (mounts a tmpfs): bash .ci/run runs it"]
fn full_disk_drops_the_oldest_results_keeps_state_changes_says_so_and_recovers() {
    let rt = runtime();
    let central = rt.block_on(central::start(&[(TOKEN, Token::Valid)]));
    let web = rt.block_on(http_server::start(None));
    let dir = tempfile::tempdir().expect("tempdir");
    let _tmpfs = Tmpfs::mount(&dir.path().join("state"), "24m");
    // Nothing is acknowledged while the disk fills: the outbox only grows.
    central.with(|c| c.faults.fail_ingest = u32::MAX);
    let mut doc = document("v1", 300);
    doc["service_templates"].as_array_mut().expect("templates").push(json!({
        "id": "web", "kind": "http", "criticality": "medium", "availability_rate": 99.0,
        "availability_period": "24x7", "control_period": "24x7", "interval_s": 1, "timeout_s": 1,
        "max_attempts": 1 }));
    doc["services"]
        .as_array_mut()
        .expect("services")
        .push(json!({ "id": "web-check", "device": "d0", "template": "web", "params": { "url": web.url("/ok") } }));
    let daemon = paired_daemon(dir.path(), &central, &doc, "");
    // The WAL holds what group commits wrote until a checkpoint: count both files.
    let db_bytes = || {
        ["state/snbox.db", "state/snbox.db-wal"]
            .iter()
            .map(|f| std::fs::metadata(dir.path().join(f)).map_or(0, |m| m.len()))
            .sum::<u64>()
    };
    daemon.wait_for(|| db_bytes() > 512 << 10, "half a MiB of outbox");

    let ballast = dir.path().join("state/ballast");
    let filled = fill(&ballast);
    eprintln!("ballast {filled} bytes; database {} bytes", db_bytes());
    daemon.wait_for(|| buffer(&daemon)["disk_full"] == true, "/status says the disk is full");
    daemon.wait_for(
        || central.with(|c| c.heartbeats.last().is_some_and(|h| h["buffer"]["disk_full"] == true)),
        "the heartbeat says the disk is full",
    );
    let full = buffer(&daemon);
    // A state change and a notification while the disk is full.
    drop(web);
    daemon.wait_for(
        || {
            daemon
                .json("/services")
                .as_array()
                .and_then(|s| s.iter().find(|x| x["id"] == "web-check").cloned())
                .is_some_and(|x| x["live"]["state"] == "critical")
        },
        "the web check goes critical",
    );
    daemon.wait_for(
        || {
            let b = buffer(&daemon);
            b["last_seq"].as_u64() > full["last_seq"].as_u64().map(|s| s + 3000)
                && b["dropped"].as_u64() > full["dropped"].as_u64()
        },
        "polling and committing go on while the oldest results are dropped",
    );
    let metrics = daemon.get("/metrics").expect("metrics").1;
    assert!(metrics.contains("snbox_buffer_disk_full 1"), "{metrics}");

    // Room returns: the box says so, and everything still held reaches the central.
    std::fs::remove_file(&ballast).expect("ballast removed");
    daemon.wait_for(|| buffer(&daemon)["disk_full"] == false, "the disk is no longer full");
    central.with(|c| c.faults.fail_ingest = 0);
    // Polling stops (an empty document), so that the outbox can drain to nothing.
    let services = daemon.json("/services");
    central.set_document(&document("v2", 0));
    daemon.wait_for(|| daemon.json("/status")["config"]["version"] == "v2", "v2 applied");
    let mut last = 0;
    let mut settled = 0;
    daemon.wait_for(
        || {
            let b = buffer(&daemon);
            let seq = b["last_seq"].as_u64().unwrap_or(0);
            settled = if b["records"] == 0 && b["unsaved"] == 0 && seq == last {
                settled + 1
            } else {
                0
            };
            last = seq;
            settled >= 3
        },
        "the outbox drained",
    );
    let b = buffer(&daemon);
    assert!(b["dropped"].as_u64().unwrap_or(0) >= 100, "{b}");
    assert_eq!(b["unsaved"], 0, "{b}");
    central.with(|c| {
        assert_eq!(c.duplicates, 0);
        // The oldest results went first: none of the first hundred seqs' results arrived.
        let early = c
            .records
            .iter()
            .filter(|((_, seq), r)| *seq <= 100 && r["kind"] == "result")
            .count();
        assert_eq!(early, 0, "the oldest results are the ones dropped");
    });
    // No state change was lost: each service's changes form an unbroken chain from `ok` (a
    // service starts ok) through the state the box showed last.
    for service in services.as_array().expect("services") {
        let id = service["id"].as_str().expect("id");
        let mut state = "ok".to_string();
        let chain = state_changes(&central, id);
        for (from, to) in &chain {
            assert_eq!(from, &state, "{id}: a state change is missing: {chain:?}");
            state = to.clone();
        }
        // The state shown before the switch is in the chain (it may have changed since).
        let shown = service["live"]["state"].as_str().unwrap_or("");
        assert!(
            shown == "ok" || chain.iter().any(|(_, to)| to == shown),
            "{id} showed {shown}, never reached by its changes {chain:?}"
        );
    }
    assert!(
        !state_changes(&central, "web-check").is_empty(),
        "the state change made while the disk was full arrived"
    );
    assert!(
        central.with(|c| c
            .records
            .values()
            .any(|r| r["kind"] == "notification" && r["service"] == "web-check" && r["type"] == "problem")),
        "the notification sent while the disk was full arrived"
    );
    assert_eq!(daemon.terminate(Duration::from_secs(10)), Some(0));
}

/// `/history` keeps a paired box's state changes after the central server acknowledged them
/// (the outbox forgets them then).
#[test]
fn history_keeps_state_changes_the_central_acknowledged() {
    let runtime = runtime();
    let central = runtime.block_on(central::start(&[(TOKEN, Token::Valid)]));
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = paired_daemon(dir.path(), &central, &document("h-1", 1), "");
    daemon.wait_for(
        || central.with(|c| c.records.values().any(|r| r["kind"] == "state_change")),
        "the state change at the central",
    );
    daemon.wait_for(|| buffer(&daemon)["records"] == 0, "the outbox acknowledged");
    let h = daemon.json("/history?service=d0-web");
    let changes = h["changes"].as_array().cloned().unwrap_or_default();
    assert_eq!(changes.len(), 1, "{h}");
    assert_eq!(changes[0]["from"], "ok");
    assert_eq!(changes[0]["to"], "critical");
}

/// The `command_result` records the central holds for a command.
fn results_of(central: &Central, command: &str) -> Vec<Value> {
    central.with(|c| {
        c.records
            .values()
            .filter(|r| r["kind"] == "command_result" && r["command"] == command)
            .cloned()
            .collect()
    })
}

fn queue(central: &Central, command: Value) -> Instant {
    central.with(|c| c.commands.push(command));
    Instant::now()
}

#[test]
fn s56_commands_reach_a_connected_box_within_5_s_run_and_are_answered() {
    let runtime = runtime();
    let central = runtime.block_on(central::start(&[(TOKEN, Token::Valid)]));
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = paired_daemon(dir.path(), &central, &document("cmd-1", 1), "");
    daemon.wait_for(
        || central.with(|c| !c.poll_arrivals.is_empty()),
        "the box polling for commands",
    );
    daemon.wait_for(
        || central.with(|c| c.records.values().any(|r| r["kind"] == "notification")),
        "d0-web's HARD problem notified",
    );
    // Let the first poll be a held one, then queue.
    std::thread::sleep(Duration::from_millis(300));
    let queued = queue(
        &central,
        json!({ "id": "c-1", "kind": "check_now", "service": "d0-web" }),
    );
    daemon.wait_for(|| !results_of(&central, "c-1").is_empty(), "c-1's result");
    let served = central.with(|c| {
        c.polls
            .iter()
            .find(|(_, _, ids)| ids.contains(&"c-1".to_string()))
            .map(|(_, at, _)| *at)
    });
    let latency = served.expect("c-1 served").duration_since(queued);
    assert!(latency < Duration::from_secs(5), "reached the box after {latency:?}");
    let r = &results_of(&central, "c-1")[0];
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["data"]["status"], "critical", "{r}");
    assert_eq!(r["service"], "d0-web", "about the service it checked: {r}");

    let secret = "Community-s3cret-42";
    for c in [
        json!({ "id": "c-2", "kind": "reboot" }),
        json!({ "id": "c-3", "kind": "check_now", "service": "nope" }),
        json!({ "id": "c-4", "kind": "acknowledge", "service": "d0-web", "author": "noc", "comment": "on it" }),
        json!({ "id": "c-5", "kind": "maintenance_start",
                "maintenance": { "id": "m-c5", "scope": { "device": "d0" }, "minutes": 30, "comment": "swap" } }),
        json!({ "id": "c-6", "kind": "discover", "ranges": ["127.66.2.1-127.66.2.4"], "communities": [secret],
                "ports": [9], "rate": 100 }),
        json!({ "id": "c-7", "kind": "discover", "ranges": ["10.0.0.0/8"], "communities": [secret] }),
    ] {
        queue(&central, c);
    }
    daemon.wait_for(|| !results_of(&central, "c-6").is_empty(), "every command answered");
    let answer = |id: &str| {
        let r = results_of(&central, id);
        assert_eq!(r.len(), 1, "{id} answered once: {r:?}");
        (
            r[0]["ok"].as_bool().unwrap_or(true),
            r[0]["message"].as_str().unwrap_or("").to_string(),
        )
    };
    assert_eq!(answer("c-2"), (false, "unknown command kind".to_string()));
    let (ok, message) = answer("c-3");
    assert!(!ok && message.contains("nope"), "{message}");
    assert!(answer("c-4").0);
    assert!(answer("c-5").0);
    // A census: its discovery record (one part: four addresses), then its answer; one over
    // the box's `[census] max_addresses` is refused.
    let (ok, message) = answer("c-6");
    assert!(ok && message.contains("census of 4 address(es)"), "{message}");
    daemon.wait_for(|| !results_of(&central, "c-7").is_empty(), "c-7 answered");
    let (ok, message) = answer("c-7");
    assert!(!ok && message.contains("more than the 4096"), "{message}");
    let kinds = |kind: &str| -> Vec<Value> {
        central.with(|c| c.records.values().filter(|r| r["kind"] == kind).cloned().collect())
    };
    let discovery = kinds("discovery");
    assert_eq!(discovery.len(), 1, "{discovery:?}");
    assert_eq!(discovery[0]["command"], "c-6");
    assert_eq!(discovery[0]["ranges"], json!(["127.66.2.1-127.66.2.4"]));
    assert_eq!(
        (discovery[0]["part"].clone(), discovery[0]["parts"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(
        (discovery[0]["probed"].clone(), discovery[0]["complete"].clone()),
        (json!(4), json!(true))
    );
    assert!(discovery[0]["hosts"].is_array());
    let acks = kinds("acknowledgement");
    assert_eq!(acks.len(), 1, "{acks:?}");
    assert_eq!(
        (acks[0]["author"].clone(), acks[0]["source"].clone()),
        (json!("noc"), json!("central"))
    );
    let created = kinds("maintenance");
    assert_eq!(created.len(), 1, "{created:?}");
    assert_eq!(created[0]["event"], "created");
    assert_eq!(created[0]["device"], "d0");
    assert_eq!(created[0]["service"], Value::Null);
    // The maintenance covers d0 now: its results say so.
    daemon.wait_for(
        || kinds("result").iter().any(|r| r["in_maintenance"] == true),
        "a result in maintenance",
    );
    let log = std::fs::read_to_string(dir.path().join("daemon.log")).unwrap_or_default();
    assert!(!log.contains(secret), "a command's secret reached the log");
    assert!(
        !central.with(|c| c.bodies.iter().any(|b| b.contains(secret))),
        "echoed to the central"
    );
}

#[test]
fn s56_a_command_cut_short_by_kill_9_is_answered_after_the_restart_and_never_run_again() {
    let runtime = runtime();
    let central = runtime.block_on(central::start(&[(TOKEN, Token::Valid)]));
    let dir = tempfile::tempdir().expect("tempdir");
    // A server that accepts and never answers: the check runs for its whole timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("addr").port();
    let mut doc = document("cmd-2", 1);
    doc["service_templates"][0]["timeout_s"] = json!(10);
    doc["service_templates"][0]["interval_s"] = json!(3600);
    doc["services"][0]["params"] = json!({ "url": format!("http://127.0.0.1:{port}/") });
    let daemon = paired_daemon(dir.path(), &central, &doc, "");
    daemon.wait_for(
        || central.with(|c| !c.poll_arrivals.is_empty()),
        "the box polling for commands",
    );
    std::thread::sleep(Duration::from_millis(300));
    queue(
        &central,
        json!({ "id": "c-slow", "kind": "check_now", "service": "d0-web" }),
    );
    daemon.wait_for(
        || central.with(|c| c.polls.iter().any(|(_, _, ids)| ids.contains(&"c-slow".to_string()))),
        "c-slow served",
    );
    // Received (committed), its check hanging: killed before any result.
    std::thread::sleep(Duration::from_secs(1));
    daemon.kill9();
    let polls_before = central.with(|c| c.poll_arrivals.len());
    let daemon = start(dir.path(), &central, "");
    daemon.wait_for(|| !results_of(&central, "c-slow").is_empty(), "c-slow answered");
    let r = results_of(&central, "c-slow");
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0]["ok"], false);
    assert!(r[0]["message"].as_str().unwrap_or("").contains("restarted"), "{}", r[0]);
    daemon.wait_for(
        || central.with(|c| c.poll_arrivals.len() > polls_before),
        "polling again",
    );
    let after = central.with(|c| c.poll_arrivals[polls_before].clone());
    assert_eq!(after, "c-slow", "the box asks for what follows it");
    // Not run again: the restarted daemon never started a check for it.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(results_of(&central, "c-slow").len(), 1);
    let log = std::fs::read_to_string(dir.path().join("daemon.log")).unwrap_or_default();
    assert!(
        !log.contains("check now, as asked"),
        "run again after the restart:\n{log}"
    );
    drop(silent);
}

/// The wall clock `offset` away from the real one: the whole box, in this process, at another
/// time of day (its network and SQLite stay real).
struct Shifted(jiff::SignedDuration);

impl snbox::schedule::Clock for Shifted {
    fn now(&self) -> jiff::Timestamp {
        jiff::Timestamp::now() + self.0
    }
}

/// Runs the paired box of `config` in this process, its clock showing `at` when it starts,
/// until `done` holds (or 30 s).
fn run_box_at(config: &Path, at: &str, done: impl Fn() -> bool) {
    let settings = snbox::settings::Settings::load(config).expect("settings");
    let at: jiff::Timestamp = at.parse().expect("instant");
    let clock = std::sync::Arc::new(Shifted(at.duration_since(jiff::Timestamp::now())));
    let runtime = runtime();
    runtime.block_on(async {
        let cancel = tokio_util::sync::CancellationToken::new();
        let app = tokio::spawn(snbox::app::run_until(settings, clock, cancel.clone()));
        let deadline = Instant::now() + Duration::from_secs(30);
        while !done() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        cancel.cancel();
        let ended = app.await.expect("the box's task");
        assert!(ended.is_ok(), "the box stopped with {ended:?}");
    });
}

#[test]
fn r18_inventory_records_reach_the_central_once_per_company_day() {
    let runtime = runtime();
    let central = runtime.block_on(central::start(&[(TOKEN, Token::Valid)]));
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("snbox.toml");
    std::fs::write(&config, settings(&central, 0, "[control]\nsocket = \"control.sock\"")).expect("settings");
    let out = pair(dir.path(), &central, &[]);
    assert!(
        out.status.success(),
        "pairing: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    central.set_document(&document("inv-1", 2));
    let records = |kind: &str| -> Vec<Value> {
        central.with(|c| c.records.values().filter(|r| r["kind"] == kind).cloned().collect())
    };
    // Saturday 2026-03-28, 23:59:30 in Paris (company `c`'s zone): both services checked.
    run_box_at(&config, "2026-03-28T22:59:30Z", || {
        records("result")
            .iter()
            .map(|r| r["service"].clone())
            .collect::<std::collections::HashSet<_>>()
            .len()
            == 2
    });
    assert!(records("inventory").is_empty(), "the day has not ended");
    // Sunday (Paris's DST day) at 00:02:10, after the midnight and its grace: Saturday goes.
    run_box_at(&config, "2026-03-28T23:02:10Z", || !records("inventory").is_empty());
    // Restarted later that night: not sent again.
    run_box_at(&config, "2026-03-28T23:30:00Z", || {
        records("result")
            .iter()
            .any(|r| r["ts"].as_str() > Some("2026-03-28T23:30"))
    });
    let inventory = records("inventory");
    assert_eq!(inventory.len(), 1, "{inventory:#?}");
    let saturday = &inventory[0];
    assert_eq!(
        (saturday["company"].clone(), saturday["day"].clone()),
        (json!("c"), json!("2026-03-28"))
    );
    assert_eq!(saturday["zone"], "Europe/Paris");
    assert_eq!(saturday["devices_by_category"], json!({ "other": 2 }));
    assert_eq!(saturday["services_by_kind"], json!({ "http": 2 }));
    assert_eq!(saturday["sites"]["s"]["services_by_kind"], json!({ "http": 2 }));
    assert_eq!(
        (saturday["device"].clone(), saturday["node"].clone()),
        (Value::Null, json!("c"))
    );
}

#[test]
fn s56_a_census_cut_short_by_a_shutdown_is_recorded_with_what_it_found() {
    let runtime = runtime();
    let central = runtime.block_on(central::start(&[(TOKEN, Token::Valid)]));
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = paired_daemon(dir.path(), &central, &document("cen-1", 1), "");
    daemon.wait_for(
        || central.with(|c| !c.poll_arrivals.is_empty()),
        "the box polling for commands",
    );
    // 64 addresses at 2 probes a second: half a minute at least.
    queue(
        &central,
        json!({ "id": "c-slow", "kind": "discover", "ranges": ["127.66.4.0/26"], "ports": [9], "rate": 2 }),
    );
    daemon.wait_for(
        || std::fs::read_to_string(dir.path().join("daemon.log")).is_ok_and(|l| l.contains("census started")),
        "the census running",
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(daemon.terminate(Duration::from_secs(10)), Some(0), "a clean stop");
    // Committed before the stop, sent once the box is back.
    let daemon = start(dir.path(), &central, "");
    daemon.wait_for(|| !results_of(&central, "c-slow").is_empty(), "c-slow's answer");
    let r = &results_of(&central, "c-slow")[0];
    assert_eq!(r["ok"], true, "{r}");
    assert!(r["message"].as_str().is_some_and(|m| m.contains("cut short")), "{r}");
    let discovery: Vec<Value> = central.with(|c| {
        c.records
            .values()
            .filter(|r| r["kind"] == "discovery")
            .cloned()
            .collect()
    });
    assert_eq!(discovery.len(), 1, "{discovery:?}");
    assert_eq!(discovery[0]["complete"], false);
    assert!(
        discovery[0]["probed"].as_u64().is_some_and(|p| p < 64),
        "{}",
        discovery[0]
    );
    assert_eq!(daemon.terminate(Duration::from_secs(10)), Some(0));
}
