//! Daemon benchmarks (issue 4):
//!
//! - `outbox`: the store alone: 1,000,000 ICMP-like results committed one record per request
//!   (as the scheduler sends them) and in requests of 100, then read back and acknowledged in
//!   pages of 1,000 (as the syncer will); records per second and database bytes per result.
//! - `load [SECONDS] [SERVICES]`: the real `snbox run` on SERVICES services (50,000 by default)
//!   for SECONDS (300 by default), all at 60 s: 80% ICMP on loopback addresses, 10% SNMP against
//!   snmpd (50 per device), 10% HTTP against nginx (10 per device). CPU per minute, peak RSS,
//!   scheduling lateness p50/p99 (from its own `/metrics`), records committed per second and
//!   database bytes per result record.
//!
//! - `replay`: 1,000,000 records buffered while the central server was away, sent by the real
//!   `snbox run` to the test central (tests/common/central.rs) over loopback HTTPS with gzip:
//!   records per second, the daemon's CPU and peak RSS.
//!
//! - `outage [SECONDS]`: a long central outage, sped up 60 times: 1,000 ICMP services every
//!   second (60,000 results a minute, i.e. a minute of 1,000 services a minute per second) with
//!   the central down for SECONDS (300 by default: 5 simulated hours; 1,440 for 24 h) and a
//!   16 MiB buffer cap, then the central back with `replay_records_per_s = 5000`: the daemon's
//!   RSS over the outage, the buffer against its cap, results dropped, the catch-up rate and
//!   whether every record left in the buffer arrived.
//!
//! - `quiet [SECONDS]`: the common case on a box's flash: 1,000 ICMP services (3 echoes) at
//!   60 s on loopback for SECONDS (240 by default), measured from the end of the first minute:
//!   bytes written to storage per result (`/proc/<pid>/io` `write_bytes`) beside the bytes a
//!   result takes in the database, and CPU per check; with fping (Debian's `fping`) sending the
//!   same echoes once a minute, side by side.
//!
//! `cargo bench --bench daemon [-- outbox|load [SECONDS] [SERVICES]|replay [RECORDS]|outage [SECONDS]|quiet [SECONDS]]`. `load` needs root (RAW ICMP) and
//! `apt-get install snmpd snmp nginx-light`. Loopback only; every loop is bounded.

#[path = "../tests/common/central.rs"]
mod central;
#[path = "../tests/common/http_server.rs"]
mod http_server;
#[path = "../tests/common/peers.rs"]
mod peers;
#[path = "../tests/common/records.rs"]
mod records;
#[path = "common/snbox_run.rs"]
mod snbox_run;
#[path = "table.rs"]
mod table;

use snbox_run::{daemon_log, get, histogram_quantile_ms, io_and_cpu, metric, rss_now, sample, spawn_snbox};

use table::{f0, f1, f2, header, row};

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde_json::{Value, json};

use snbox::record::{Origin, Record};
use snbox::store::Store;

const OUTBOX_RECORDS: u64 = 1_000_000;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let seconds = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(300u64);
    match args.first().map(String::as_str) {
        Some("outbox") => outbox(),
        Some("load") => load(
            seconds,
            args.get(2).and_then(|n| n.parse().ok()).unwrap_or(LOAD_SERVICES),
        ),
        Some("replay") => replay(args.get(1).and_then(|n| n.parse().ok()).unwrap_or(REPLAY_RECORDS)),
        Some("outage") => outage(seconds),
        Some("quiet") => quiet(args.get(1).and_then(|s| s.parse().ok()).unwrap_or(240)),
        _ => {
            outbox();
            load(seconds, LOAD_SERVICES);
            replay(REPLAY_RECORDS);
        }
    }
}

// ------------------------------------------------------------------ the outbox alone

fn outbox() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let origins: Vec<Arc<Origin>> = (0..10_000)
        .map(|i| {
            Arc::new(Origin {
                service: format!("dev-{i}-ping").into(),
                device: format!("dev-{i}").into(),
                node: format!("site-{}", i % 50).into(),
                company: Some(format!("client-{}", i % 7).into()),
            })
        })
        .collect();
    let item = |k: u64| {
        let ts = Timestamp::from_millisecond(1_800_000_000_000 + k as i64 * 6).expect("ts");
        (
            origins[(k % 10_000) as usize].clone(),
            Record {
                ts,
                body: records::icmp_result(k),
            },
        )
    };
    println!("outbox alone: {OUTBOX_RECORDS} ICMP results, WAL, synchronous=FULL, a real file in a temp dir");
    header(&["pattern", "records", "wall s", "records/s", "db bytes/result"]);
    for per_request in [1u64, 100] {
        let dir = tempfile::tempdir().expect("tempdir");
        let opened = Store::open(dir.path(), 1 << 34).expect("store");
        let store = opened.store.clone();
        let start = Instant::now();
        runtime.block_on(async {
            let mut k = 0;
            while k < OUTBOX_RECORDS {
                let items = (k..k + per_request).map(item).collect();
                store.append(items, Vec::new()).await.expect("append");
                k += per_request;
            }
            store.append_committed(Vec::new(), Vec::new()).await.expect("commit");
        });
        let wall = start.elapsed().as_secs_f64();
        let stats = runtime.block_on(store.stats()).expect("stats");
        row(
            &format!("append, {per_request} per request"),
            &[
                stats.records.to_string(),
                f2(wall),
                f0(OUTBOX_RECORDS as f64 / wall),
                f1(stats.bytes as f64 / stats.records as f64),
            ],
        );
        if per_request == 100 {
            let start = Instant::now();
            let read = runtime.block_on(async {
                let mut after = 0u64;
                let mut read = 0usize;
                loop {
                    let page = store.pending(after, 1000).await.expect("pending");
                    let Some(last) = page.last().and_then(|r| r["seq"].as_u64()) else {
                        break;
                    };
                    read += page.len();
                    store.ack(last).await.expect("ack");
                    after = last;
                }
                read
            });
            let wall = start.elapsed().as_secs_f64();
            row(
                "read as wire JSON + ack, pages of 1,000",
                &[read.to_string(), f2(wall), f0(read as f64 / wall), "-".into()],
            );
        }
        drop(store);
        drop(opened.store);
        let _ = opened.writer.join();
    }
    println!();
}

// ------------------------------------------------------------------ the daemon under load

const LOAD_SERVICES: usize = 50_000;

/// The services' mix under load: (ICMP, SNMP, HTTP), all at 60 s.
fn load_mix(services: usize) -> (usize, usize, usize) {
    let snmp = services / 10 / 50 * 50;
    let http = services / 10 / 10 * 10;
    (services - snmp - http, snmp, http)
}

fn load_document(services: usize, snmp_port: u16, http_port: u16) -> Value {
    let window = json!([ { "days": ["mon","tue","wed","thu","fri","sat","sun"], "from": "00:00", "to": "24:00" } ]);
    let template = |id: &str, kind: &str, interval: u32, params: Value| {
        json!({ "id": id, "kind": kind, "criticality": "medium", "availability_rate": 99.0,
                "availability_period": "24x7", "control_period": "24x7", "interval_s": interval,
                "timeout_s": 5, "params": params })
    };
    let (icmp, snmp, http) = load_mix(services);
    let mut devices = Vec::new();
    let mut services = Vec::new();
    for i in 0..icmp {
        let id = format!("icmp-{i}");
        // 127.1.0.1 onwards, 250 addresses per /24.
        let address = format!("127.{}.{}.{}", 1 + i / 62_500, i / 250 % 250, i % 250 + 1);
        devices.push(json!({ "id": id, "node": "site", "name": id, "address": address }));
        services.push(json!({ "id": format!("{id}-ping"), "device": id, "template": "ping" }));
    }
    let oids = [
        "1.3.6.1.2.1.1.3.0",
        "1.3.6.1.2.1.1.5.0",
        "1.3.6.1.2.1.1.6.0",
        "1.3.6.1.2.1.2.1.0",
    ];
    for i in 0..snmp / 50 {
        let id = format!("snmp-{i}");
        devices.push(json!({ "id": id, "node": "site", "name": id, "address": "127.0.0.1",
            "snmp": { "version": "2c", "community": peers::COMMUNITY, "port": snmp_port } }));
        for j in 0..50 {
            services.push(json!({ "id": format!("{id}-{j}"), "device": id, "template": "snmp",
                                  "params": { "oid": oids[j % oids.len()] } }));
        }
    }
    for i in 0..http / 10 {
        let id = format!("web-{i}");
        devices.push(json!({ "id": id, "node": "site", "name": id, "address": "127.0.0.1" }));
        for j in 0..10 {
            services.push(json!({ "id": format!("{id}-{j}"), "device": id, "template": "http",
                "params": { "url": format!("http://127.0.0.1:{http_port}/health?{i}-{j}") } }));
        }
    }
    json!({
        "version": "load",
        "box": { "id": "bx-load", "node": "msp" },
        "tree": [ { "id": "msp", "kind": "partner", "name": "MSP", "timezone": "Europe/Paris" },
                  { "id": "client", "kind": "company", "name": "Client", "parent": "msp" },
                  { "id": "site", "kind": "site", "name": "Site", "parent": "client" } ],
        "time_ranges": [ { "id": "24x7", "name": "Always", "weekly": window } ],
        "defaults": [ { "aspect": "control", "time_range": "24x7" },
                      { "aspect": "availability", "time_range": "24x7" },
                      { "aspect": "notification", "time_range": "24x7" } ],
        "service_templates": [
            template("ping", "icmp", 60, json!({ "packets": 3, "interval_ms": 200 })),
            template("snmp", "snmp", 60, json!({})),
            template("http", "http", 60, json!({ "expect_status": [200] })),
        ],
        "devices": devices,
        "services": services,
    })
}

fn load(seconds: u64, services: usize) {
    let snmpd = peers::Snmpd::start();
    let nginx = peers::Nginx::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let port = peers::free_tcp_port();
    std::fs::write(
        dir.path().join("doc.json"),
        load_document(services, snmpd.port, nginx.port).to_string(),
    )
    .expect("doc");
    std::fs::write(
        dir.path().join("snbox.toml"),
        format!(
            "state_dir = \"state\"\ntimezone = \"Europe/Paris\"\n[standalone]\ndocument = \"doc.json\"\n\
             [status]\nlisten = \"127.0.0.1:{port}\"\n[buffer]\nmax_bytes = 1073741824\n"
        ),
    )
    .expect("settings");
    let (mut child, pid) = spawn_snbox(dir.path(), &dir.path().join("snbox.toml"), seconds + 120);
    let start = Instant::now();
    assert!(
        peers::wait_tcp(port, Duration::from_secs(60)),
        "snbox did not start: {}",
        daemon_log(dir.path())
    );
    let ready = start.elapsed().as_secs_f64();
    let (icmp, snmp, http) = load_mix(services);
    println!(
        "snbox run on {services} services for {seconds} s ({icmp} ICMP on 127.x.y.z, {snmp} SNMP on snmpd, \
         {http} HTTP on nginx, all @60 s); status endpoint up after {ready:.2} s"
    );
    let mut samples = Vec::new();
    let end = start + Duration::from_secs(seconds);
    // The buffer's size and the results made, once every service has run: the slope from
    // there on is what a result costs on disk, without the origins and states tables.
    let mut at_first_interval: Option<(f64, f64)> = None;
    while Instant::now() < end {
        if let Some(s) = sample(pid, start) {
            if at_first_interval.is_none() && s.at >= 60.0 {
                at_first_interval = buffer_and_results(port);
            }
            samples.push(s);
        }
        std::thread::sleep(Duration::from_secs(5).min(end.saturating_duration_since(Instant::now())));
    }
    let last = sample(pid, start).expect("snbox still running");
    let metrics = get(port, "/metrics").unwrap_or_default();
    let at_end = buffer_and_results(port);
    let services: Value = get(port, "/services")
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(Value::Null);
    let mut outputs = std::collections::BTreeMap::<String, usize>::new();
    for s in services.as_array().into_iter().flatten() {
        if s["live"]["state"] != "ok" && !s["live"]["output"].is_null() {
            *outputs
                .entry(s["live"]["output"].as_str().unwrap_or("").chars().take(120).collect())
                .or_default() += 1;
        }
    }
    let status: Value = get(port, "/status")
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(Value::Null);
    let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    let stop = Instant::now();
    let exit = child.wait().ok().and_then(|s| s.code());
    let stopped_in = stop.elapsed().as_secs_f64();

    // Steady state: from the end of the first interval (every service has started) to the end.
    let first = samples.iter().find(|s| s.at >= 60.0).unwrap_or(&samples[0]);
    let steady_cpu = (last.cpu_s - first.cpu_s) / (last.at - first.at) * 60.0;
    let whole_cpu = last.cpu_s / last.at * 60.0;
    let records = status["buffer"]["records"].as_f64().unwrap_or(f64::NAN);
    let bytes = status["buffer"]["bytes"].as_f64().unwrap_or(f64::NAN);
    let checks: f64 = ["icmp", "snmp", "http"]
        .iter()
        .flat_map(|k| ["ok", "warning", "critical", "unknown"].map(|s| (k, s)))
        .map(|(k, s)| metric(&metrics, &format!("snbox_checks_total{{kind=\"{k}\",result=\"{s}\"}}")))
        .sum();
    let ok: f64 = ["icmp", "snmp", "http"]
        .iter()
        .map(|k| metric(&metrics, &format!("snbox_checks_total{{kind=\"{k}\",result=\"ok\"}}")))
        .sum::<f64>();
    header(&["figure", "value", "target"]);
    row(
        "CPU, steady state (s per minute)",
        &[
            format!("{steady_cpu:.2} s = {:.1}% of one core", steady_cpu / 60.0 * 100.0),
            "≤ 40%".into(),
        ],
    );
    row(
        "CPU, whole run incl. start-up (s per minute)",
        &[
            format!("{whole_cpu:.2} s = {:.1}% of one core", whole_cpu / 60.0 * 100.0),
            "".into(),
        ],
    );
    row(
        "peak RSS (VmHWM)",
        &[format!("{:.1} MB", last.rss_mb), "≤ 96 MB at 50,000".into()],
    );
    row(
        "scheduling lateness p50 / p99",
        &[
            format!(
                "≤ {} ms / ≤ {} ms",
                histogram_quantile_ms(&metrics, "snbox_scheduling_lateness_seconds", 0.5),
                histogram_quantile_ms(&metrics, "snbox_scheduling_lateness_seconds", 0.99)
            ),
            "p99 ≤ 50 ms".into(),
        ],
    );
    row(
        "checks run (not ok)",
        &[format!("{checks:.0} ({:.0})", checks - ok), "".into()],
    );
    row(
        "records committed per second",
        &[format!("{:.1}", records / last.at), "".into()],
    );
    row(
        "database bytes per record (mostly results)",
        &[
            format!("{:.1} ({records:.0} records, {:.1} MB)", bytes / records, bytes / 1e6),
            "≤ 80".into(),
        ],
    );
    if let (Some((b0, r0)), Some((b1, r1))) = (at_first_interval, at_end) {
        row(
            "database bytes per result, after the first minute",
            &[
                format!("{:.1} ({:.0} results)", (b1 - b0) / (r1 - r0), r1 - r0),
                "≤ 80".into(),
            ],
        );
    }
    for kind in ["icmp", "snmp", "http"] {
        let not_ok: Vec<String> = ["warning", "critical", "unknown"]
            .iter()
            .map(|s| {
                format!(
                    "{s} {}",
                    metric(
                        &metrics,
                        &format!("snbox_checks_total{{kind=\"{kind}\",result=\"{s}\"}}")
                    )
                )
            })
            .collect();
        row(&format!("{kind} checks not ok"), &[not_ok.join(", "), "".into()]);
    }
    row(
        "SIGTERM → exit",
        &[format!("{stopped_in:.2} s, code {exit:?}"), "≤ 10 s, 0".into()],
    );
    println!(
        "\nRSS over time (MB): {}",
        samples
            .iter()
            .step_by((samples.len() / 12).max(1))
            .map(|s| format!("{:.0}s {:.1}", s.at, s.rss_mb))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if !outputs.is_empty() {
        println!("\nservices not ok at the end, by output: {outputs:?}");
    }
    let log = daemon_log(dir.path());
    let tail: Vec<&str> = log.lines().rev().take(15).collect();
    println!("\nlast lines of the daemon's log (warn and above):");
    for line in tail.iter().rev() {
        println!("  {}", line.chars().take(240).collect::<String>());
    }
    drop(nginx);
    drop(snmpd);
}

const REPLAY_RECORDS: u64 = 1_000_000;

/// A box paired with the test central (lean: it keeps seqs only), on settings with these
/// `[central]` lines and this `[buffer]` cap.
struct BenchBox {
    runtime: tokio::runtime::Runtime,
    central: central::Central,
    dir: tempfile::TempDir,
    port: u16,
    settings: std::path::PathBuf,
}

fn bench_box(central_lines: &str, max_bytes: u64) -> BenchBox {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let token = "Bench-Token-00000001";
    let central = runtime.block_on(central::start(&[(token, central::Token::Valid)]));
    central.with(|c| c.lean = true);
    let dir = tempfile::tempdir().expect("tempdir");
    let port = peers::free_tcp_port();
    let settings = dir.path().join("snbox.toml");
    std::fs::write(
        &settings,
        format!(
            "state_dir = \"state\"\n[central]\nurl = \"{}\"\nca_file = \"{}\"\n{central_lines}\n\
             [status]\nlisten = \"127.0.0.1:{port}\"\n[buffer]\nmax_bytes = {max_bytes}\n",
            central.url(),
            central.ca_file.display()
        ),
    )
    .expect("settings");
    let paired = Command::new(env!("CARGO_BIN_EXE_snbox"))
        .args(["pair", "--central", &central.url(), "--token", token, "--config"])
        .arg(&settings)
        .output()
        .expect("snbox pair");
    assert!(paired.status.success(), "{}", String::from_utf8_lossy(&paired.stderr));
    BenchBox {
        runtime,
        central,
        dir,
        port,
        settings,
    }
}

fn replay(count: u64) {
    let BenchBox {
        runtime,
        central,
        dir,
        port: _,
        settings,
    } = bench_box("config_poll_s = 3600", 1 << 32);
    // The backlog, written through the store as the scheduler would have.
    let filled = Instant::now();
    {
        let opened = Store::open(&dir.path().join("state"), 1 << 34).expect("store");
        let origins: Vec<Arc<Origin>> = (0..10_000)
            .map(|i| {
                Arc::new(Origin {
                    service: format!("dev-{i}-ping").into(),
                    device: format!("dev-{i}").into(),
                    node: "site".into(),
                    company: Some("client".into()),
                })
            })
            .collect();
        runtime.block_on(async {
            for k0 in (0..count).step_by(100) {
                let items = (k0..k0 + 100)
                    .map(|k| {
                        let ts = Timestamp::from_millisecond(1_800_000_000_000 + k as i64 * 6).expect("ts");
                        (
                            origins[(k % 10_000) as usize].clone(),
                            Record {
                                ts,
                                body: records::icmp_result(k),
                            },
                        )
                    })
                    .collect();
                opened.store.append(items, Vec::new()).await.expect("append");
            }
            opened
                .store
                .append_committed(Vec::new(), Vec::new())
                .await
                .expect("commit");
        });
        drop(opened.store);
        let _ = opened.writer.join();
    }
    let db_mb = std::fs::metadata(dir.path().join("state/snbox.db")).map_or(0.0, |m| m.len() as f64 / 1e6);
    println!(
        "replay: {count} buffered results ({db_mb:.0} MB database, filled in {:.1} s) to the test central over loopback HTTPS",
        filled.elapsed().as_secs_f64()
    );
    let empty = json!({
        "version": "replay", "box": { "id": central::BOX_ID, "node": central::NODE },
        "tree": [ { "id": central::NODE, "kind": "partner", "name": "P" } ],
    });
    central.set_document(&empty);
    let me = sample(std::process::id(), Instant::now()).map_or(0.0, |s| s.cpu_s);
    let (mut child, pid) = spawn_snbox(dir.path(), &settings, 600);
    let start = Instant::now();
    let mut last = sample(pid, start);
    let deadline = start + Duration::from_secs(300);
    while central.with(|c| c.records.len() as u64) < count && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        last = sample(pid, start).or(last);
    }
    let wall = start.elapsed().as_secs_f64();
    let central_cpu = sample(std::process::id(), start).map_or(0.0, |s| s.cpu_s) - me;
    let (stored, duplicates, batches, gzipped) =
        central.with(|c| (c.records.len(), c.duplicates, c.ingests, c.gzipped));
    let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    let _ = child.wait();
    let last = last.expect("samples");
    header(&["figure", "value"]);
    row(
        "records stored by the central",
        &[format!("{stored} ({duplicates} resent)")],
    );
    row("wall s (start of snbox run → last record stored)", &[f2(wall)]);
    row("records per second", &[f0(stored as f64 / wall)]);
    row("requests (gzipped)", &[format!("{batches} ({gzipped})")]);
    row("snbox CPU s", &[f2(last.cpu_s)]);
    row("snbox peak RSS MB", &[f1(last.rss_mb)]);
    row(
        "test central CPU s (this process: TLS, gunzip, JSON, storing)",
        &[f2(central_cpu)],
    );
    println!();
}

// ------------------------------------------------------------------ a long outage

fn outage(seconds: u64) {
    let cap: u64 = 16 << 20;
    let BenchBox {
        runtime: _runtime,
        central,
        dir,
        port,
        settings,
    } = bench_box(
        "config_poll_s = 5\nretry_min_ms = 500\nretry_max_s = 5\nreplay_records_per_s = 5000",
        cap,
    );
    let devices: Vec<Value> = (0..1000)
        .map(|i| {
            json!({ "id": format!("d{i}"), "node": central::NODE, "name": "D",
                         "address": format!("127.2.{}.{}", i / 250, i % 250 + 1) })
        })
        .collect();
    let services: Vec<Value> = (0..1000)
        .map(|i| json!({ "id": format!("d{i}-ping"), "device": format!("d{i}"), "template": "ping" }))
        .collect();
    central.set_document(&central::document(
        "outage",
        json!([ { "id": "ping", "kind": "icmp", "criticality": "high", "availability_rate": 99.0,
            "availability_period": "24x7", "control_period": "24x7", "interval_s": 1, "timeout_s": 1,
            "params": { "packets": 1 } } ]),
        json!(devices),
        json!(services),
    ));
    let (mut child, pid) = spawn_snbox(dir.path(), &settings, seconds + 900);
    // The document arrives, then the central goes away.
    let start = Instant::now();
    while get(port, "/status").is_none_or(|s| !s.contains("\"version\":\"outage\"")) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no document: {}",
            daemon_log(dir.path())
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    central.with(|c| c.faults.down = true);
    println!(
        "outage: 1,000 ICMP services every second, the central down for {seconds} s ({:.1} simulated hours at 1,000 services a minute), buffer cap {} MiB",
        seconds as f64 / 60.0,
        cap >> 20
    );
    let outage = Instant::now();
    let mut rss = Vec::new();
    let mut max_bytes = 0f64;
    while outage.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_secs(1));
        if let Some(s) = sample(pid, outage) {
            rss.push((s.at, rss_now(pid).unwrap_or(s.rss_mb)));
        }
        if let Some((bytes, _)) = buffer_and_results(port) {
            max_bytes = max_bytes.max(bytes);
        }
    }
    let status: Value = get(port, "/status")
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default();
    let buffered = status["buffer"]["records"].as_u64().unwrap_or(0);
    let dropped = status["buffer"]["dropped"].as_u64().unwrap_or(0);
    let last_seq = status["buffer"]["last_seq"].as_u64().unwrap_or(0);
    // Back: the catch-up, paced.
    central.with(|c| c.faults.down = false);
    let back = Instant::now();
    // Caught up when the box has had everything up to `last_seq` acknowledged. Complete when
    // every seq up to it is at the central or was dropped by the cap (drops make the only gaps,
    // and after the outage they still take the oldest results, all below `last_seq`).
    let at_central = || central.with(|c| c.records.range(..=(central::BOX_ID.to_string(), last_seq)).count() as u64);
    let stored_at_return = at_central();
    let mut caught_up = None;
    let mut final_status = Value::Null;
    while back.elapsed() < Duration::from_secs(600) {
        std::thread::sleep(Duration::from_millis(500));
        let Some(status) = get(port, "/status").and_then(|s| serde_json::from_str::<Value>(&s).ok()) else {
            continue;
        };
        if status["central"]["acked_seq"].as_u64().is_some_and(|a| a >= last_seq) {
            caught_up = Some(back.elapsed().as_secs_f64());
            final_status = status;
            break;
        }
    }
    let dropped_in_all = final_status["buffer"]["dropped"].as_u64().unwrap_or(dropped);
    let missing = last_seq.saturating_sub(dropped_in_all + at_central());
    let sent = at_central() - stored_at_return;
    let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    let _ = child.wait();
    let quarter = |from: f64, to: f64| {
        let v: Vec<f64> = rss
            .iter()
            .filter(|(at, _)| *at >= from && *at < to)
            .map(|(_, m)| *m)
            .collect();
        v.iter().copied().fold(0.0, f64::max)
    };
    let s = seconds as f64;
    header(&["figure", "value"]);
    row(
        "snbox RSS MB, max per quarter of the outage",
        &[format!(
            "{} / {} / {} / {}",
            f1(quarter(0.0, s / 4.0)),
            f1(quarter(s / 4.0, s / 2.0)),
            f1(quarter(s / 2.0, 3.0 * s / 4.0)),
            f1(quarter(3.0 * s / 4.0, s + 1.0))
        )],
    );
    row(
        "buffer bytes, max seen (cap)",
        &[format!("{} ({})", f0(max_bytes), cap)],
    );
    row("records buffered at the end of the outage", &[buffered.to_string()]);
    row("results dropped by the cap", &[dropped.to_string()]);
    row("last seq", &[last_seq.to_string()]);
    match caught_up {
        Some(t) => {
            row("catch-up s (acknowledged up to the last seq)", &[f1(t)]);
            row("catch-up records per second (cap 5,000)", &[f0(sent as f64 / t)]);
        }
        None => row("catch-up", &["not finished in 600 s".to_string()]),
    }
    row(
        "results dropped in all (the cap kept dropping the oldest as the catch-up began)",
        &[dropped_in_all.to_string()],
    );
    row(
        "seqs up to the last neither at the central nor dropped",
        &[missing.to_string()],
    );
    println!();
}

/// The buffer's bytes and the result records made so far.
fn buffer_and_results(port: u16) -> Option<(f64, f64)> {
    let status: Value = serde_json::from_str(&get(port, "/status")?).ok()?;
    let metrics = get(port, "/metrics")?;
    Some((
        status["buffer"]["bytes"].as_f64()?,
        metric(&metrics, "snbox_records_produced_total{kind=\"result\"}"),
    ))
}

// ------------------------------------------------------------------ the quiet case on flash

fn quiet(seconds: u64) {
    const SERVICES: usize = 1_000;
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir on the disk");
    let port = peers::free_tcp_port();
    let mut devices = Vec::new();
    let mut services = Vec::new();
    for i in 0..SERVICES {
        let id = format!("d{i}");
        devices.push(
            json!({ "id": id, "node": "site", "name": id, "address": format!("127.3.{}.{}", i / 250, i % 250 + 1) }),
        );
        services.push(json!({ "id": format!("{id}-ping"), "device": id, "template": "ping" }));
    }
    let doc = json!({
        "version": "quiet-1k", "box": { "id": "bx-quiet", "node": "msp" },
        "tree": [ { "id": "msp", "kind": "partner", "name": "MSP", "timezone": "Europe/Paris" },
                  { "id": "client", "kind": "company", "name": "Client", "parent": "msp" },
                  { "id": "site", "kind": "site", "name": "Site", "parent": "client" } ],
        "time_ranges": [ { "id": "24x7", "name": "Always", "weekly": [ { "days": ["mon","tue","wed","thu","fri","sat","sun"], "from": "00:00", "to": "24:00" } ] } ],
        "defaults": [ { "aspect": "control", "time_range": "24x7" }, { "aspect": "availability", "time_range": "24x7" },
                      { "aspect": "notification", "time_range": "24x7" } ],
        "service_templates": [ { "id": "ping", "kind": "icmp", "criticality": "medium", "availability_rate": 99.0,
            "availability_period": "24x7", "control_period": "24x7", "interval_s": 60, "timeout_s": 5,
            "params": { "packets": 3, "interval_ms": 200 } } ],
        "devices": devices, "services": services,
    });
    std::fs::write(dir.path().join("doc.json"), doc.to_string()).expect("doc");
    std::fs::write(
        dir.path().join("snbox.toml"),
        format!(
            "state_dir = \"state\"\n[standalone]\ndocument = \"doc.json\"\n[status]\nlisten = \"127.0.0.1:{port}\"\n\
             [buffer]\nmax_bytes = 1073741824\n"
        ),
    )
    .expect("settings");
    let (mut child, pid) = spawn_snbox(dir.path(), &dir.path().join("snbox.toml"), seconds + 60);
    assert!(
        peers::wait_tcp(port, Duration::from_secs(60)),
        "snbox did not start: {}",
        daemon_log(dir.path())
    );
    // The first minute starts every service (and writes origins and states once).
    std::thread::sleep(Duration::from_secs(60));
    let (written0, cpu0) = io_and_cpu(pid).expect("snbox runs");
    let (bytes0, results0) = buffer_and_results(port).expect("status");
    let window = seconds.saturating_sub(60).max(60);
    std::thread::sleep(Duration::from_secs(window));
    let (written1, cpu1) = io_and_cpu(pid).expect("snbox runs");
    let (bytes1, results1) = buffer_and_results(port).expect("status");
    let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    let _ = child.wait();
    let results = results1 - results0;
    let per_min = 60.0 / window as f64;
    println!(
        "quiet case: {SERVICES} ICMP services (3 echoes, 200 ms apart) every 60 s on loopback; steady state over {window} s after the first minute; state on {}",
        dir.path().display()
    );
    header(&[
        "",
        "results/min",
        "KiB wr/min",
        "B wr/result",
        "DB B/result",
        "CPU ms/min",
        "CPU ms/check",
    ]);
    row(
        "snbox",
        &[
            f0(results * per_min),
            f0((written1 - written0) / 1024.0 * per_min),
            f0((written1 - written0) / results),
            f1((bytes1 - bytes0) / results),
            f0((cpu1 - cpu0) * 1000.0 * per_min),
            f2((cpu1 - cpu0) * 1000.0 / results),
        ],
    );
    fping_side_by_side(SERVICES, window);
}

/// The same echoes sent by fping, once a minute for `window` seconds: CPU per host checked.
fn fping_side_by_side(hosts: usize, window: u64) {
    let Some(fping) = ["/usr/bin/fping", "/usr/sbin/fping"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        println!("fping is not installed (apt-get install fping): no side-by-side figure");
        return;
    };
    let targets: Vec<String> = (0..hosts)
        .map(|i| format!("127.3.{}.{}", i / 250, i % 250 + 1))
        .collect();
    let rounds = (window / 60).max(1);
    let mut cpu = 0.0;
    for _ in 0..rounds {
        let started = Instant::now();
        let out = Command::new("/usr/bin/time")
            .args(["-f", "%U %S"])
            .arg(fping)
            .args(["-q", "-c", "3", "-p", "200", "-t", "5000"])
            .args(&targets)
            .output()
            .expect("fping runs");
        let times = String::from_utf8_lossy(&out.stderr);
        let last = times.lines().last().unwrap_or_default();
        cpu += last
            .split_whitespace()
            .filter_map(|t| t.parse::<f64>().ok())
            .sum::<f64>();
        std::thread::sleep(Duration::from_secs(60).saturating_sub(started.elapsed()));
    }
    let checks = (hosts as u64 * rounds) as f64;
    let none = || "-".to_string();
    row(
        "fping -c 3 -p 200, once a minute",
        &[
            f0(hosts as f64),
            none(),
            none(),
            none(),
            f0(cpu * 1000.0 / rounds as f64),
            f2(cpu * 1000.0 / checks),
        ],
    );
}
