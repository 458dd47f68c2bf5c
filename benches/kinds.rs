//! Benchmarks of issue 17's check kinds, each beside its peer in the same run:
//!
//! - `traps [SERVICES]`: a burst of 10,000 SNMP v2c traps (linkDown and linkUp in turn on one
//!   trap service: a flapping switch port, the worst case, every trap a state change) sent as
//!   fast as loopback takes them to the real `snbox run` while SERVICES (5,000) ICMP services
//!   poll every 30 s. Scheduling lateness p50/p99 before, during and after the burst (from the
//!   deltas of its `/metrics` histogram), RSS before, at its peak during, and after; traps
//!   taken and their rate. Then the same datagrams to Debian's `snmptrapd` (logging each to a
//!   file): its rate.
//! - `plugins [SERVICES]`: SERVICES (200) plugin services running Debian's `check_dummy 0`
//!   every 10 s for 60 s: checks per second, and CPU per check of snbox with its children;
//!   beside the cost of the same fork, exec and wait from a plain loop.
//!
//! `cargo bench --bench kinds [-- traps [SERVICES]|plugins [SERVICES]]`. Needs root (RAW
//! ICMP) and `apt-get install snmp snmptrapd monitoring-plugins-basic`. Loopback only; every
//! loop is bounded in count and time.

#[path = "../tests/common/ber.rs"]
mod ber;
#[path = "../tests/common/central.rs"]
mod central;
#[path = "../tests/common/http_server.rs"]
mod http_server;
#[path = "../tests/common/peers.rs"]
mod peers;
#[path = "common/snbox_run.rs"]
mod snbox_run;
#[path = "table.rs"]
mod table;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use snbox_run::{daemon_log, get, metric, rss_now, spawn_snbox};
use table::{f0, f1, f2, header, row};

const BURST: usize = 10_000;
const COMMUNITY: &[u8] = b"Bench-Traps-1";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let count = |default| args.get(1).and_then(|n| n.parse().ok()).unwrap_or(default);
    match args.first().map(String::as_str) {
        Some("traps") => traps(count(5_000)),
        Some("plugins") => plugins(count(200)),
        _ => {
            traps(5_000);
            plugins(200);
        }
    }
}

/// Starts `snbox run` on `doc` with `extra` settings; its dir, child, pid and status port.
fn start(doc: &Value, extra: &str, seconds: u64) -> (tempfile::TempDir, std::process::Child, u32, u16) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let port = peers::free_tcp_port();
    std::fs::write(dir.path().join("doc.json"), doc.to_string()).expect("doc");
    std::fs::write(
        dir.path().join("snbox.toml"),
        format!(
            "state_dir = \"state\"\n[standalone]\ndocument = \"doc.json\"\n[status]\nlisten = \"127.0.0.1:{port}\"\n\
             [buffer]\nmax_bytes = 1073741824\n{extra}\n"
        ),
    )
    .expect("settings");
    let (child, pid) = spawn_snbox(dir.path(), &dir.path().join("snbox.toml"), seconds);
    assert!(
        peers::wait_tcp(port, Duration::from_secs(60)),
        "snbox did not start: {}",
        daemon_log(dir.path())
    );
    (dir, child, pid, port)
}

/// The lateness histogram's cumulative buckets now: (upper bound in ms, count).
fn lateness(port: u16) -> Vec<(f64, f64)> {
    let metrics = get(port, "/metrics").unwrap_or_default();
    metrics
        .lines()
        .filter(|l| l.starts_with("snbox_scheduling_lateness_seconds_bucket{le=\""))
        .filter_map(|l| {
            let le = l.split('"').nth(1)?;
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse::<f64>().ok()? * 1000.0
            };
            Some((bound, l.rsplit(' ').next()?.parse().ok()?))
        })
        .collect()
}

/// The quantile `q` of the checks started between two readings of the histogram (ms), and
/// how many started.
fn window_quantile(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> (f64, f64) {
    let delta: Vec<(f64, f64)> = after
        .iter()
        .zip(before)
        .map(|((bound, a), (_, b))| (*bound, a - b))
        .collect();
    let total = delta.last().map_or(0.0, |d| d.1);
    let at = delta
        .iter()
        .find(|(_, count)| *count >= q * total)
        .map_or(f64::NAN, |(bound, _)| *bound);
    (at, total)
}

fn traps_view(port: u16) -> Value {
    get(port, "/status")
        .and_then(|s| serde_json::from_str::<Value>(&s).ok())
        .map(|s| s["traps"].clone())
        .unwrap_or(Value::Null)
}

/// The burst: linkDown and linkUp in turn, 10 a millisecond (10,000 a second: a storm; sent
/// unpaced, in 20 ms, most would overflow any receiver's socket buffer).
fn send_burst(to: u16) -> Duration {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let down = ber::v2c_trap(COMMUNITY, 1, &ber::LINK_DOWN);
    let up = ber::v2c_trap(COMMUNITY, 2, &ber::LINK_UP);
    let started = Instant::now();
    for i in 0..BURST {
        let datagram = if i % 2 == 0 { &down } else { &up };
        let _ = socket.send_to(datagram, ("127.0.0.1", to));
        if i % 10 == 9 {
            let due = Duration::from_micros(100 * (i as u64 + 1));
            std::thread::sleep(due.saturating_sub(started.elapsed()));
        }
    }
    started.elapsed()
}

fn traps(services: usize) {
    let trap_port = peers::free_udp_port();
    let mut devices = vec![
        json!({ "id": "switch", "node": "s", "name": "switch", "address": "127.0.0.1",
                                   "snmp": { "version": "2c", "community": String::from_utf8_lossy(COMMUNITY) } }),
    ];
    let mut list = vec![json!({ "id": "switch-port-2", "device": "switch", "template": "link" })];
    for i in 0..services {
        let id = format!("d{i}");
        devices.push(
            json!({ "id": id, "node": "s", "name": id, "address": format!("127.5.{}.{}", i / 250, i % 250 + 1) }),
        );
        list.push(json!({ "id": format!("{id}-ping"), "device": id, "template": "ping" }));
    }
    let templates = json!([
        { "id": "ping", "kind": "icmp", "criticality": "medium", "availability_rate": 99.0, "availability_period": "24x7",
          "control_period": "24x7", "interval_s": 30, "timeout_s": 5, "params": { "packets": 1 } },
        { "id": "link", "kind": "snmp_trap", "criticality": "high", "availability_rate": 99.0, "availability_period": "24x7",
          "control_period": "24x7", "interval_s": 60,
          "params": { "trap_oid": "1.3.6.1.6.3.1.1.5.3", "clear_trap_oid": "1.3.6.1.6.3.1.1.5.4" } }
    ]);
    let doc = central::document("bench-kinds", templates, json!(devices), json!(list));
    let (dir, mut child, pid, port) = start(&doc, &format!("[traps]\nlisten = \"127.0.0.1:{trap_port}\""), 400);
    // A first interval starts every service; then a quiet window, the burst, and after.
    std::thread::sleep(Duration::from_secs(35));
    let h0 = lateness(port);
    let rss_before = rss_now(pid).unwrap_or(f64::NAN);
    std::thread::sleep(Duration::from_secs(30));
    let h1 = lateness(port);
    let sending = send_burst(trap_port);
    let burst_started = Instant::now();
    let mut peak = rss_before;
    // When the last trap was taken: the count stops growing.
    let mut taken = (0u64, Duration::ZERO);
    while burst_started.elapsed() < Duration::from_secs(30) {
        peak = peak.max(rss_now(pid).unwrap_or(0.0));
        let n = traps_view(port)["received"].as_u64().unwrap_or(0);
        if n > taken.0 {
            taken = (n, burst_started.elapsed() + sending);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let h2 = lateness(port);
    std::thread::sleep(Duration::from_secs(30));
    let h3 = lateness(port);
    let rss_after = rss_now(pid).unwrap_or(f64::NAN);
    let t = traps_view(port);
    let metrics = get(port, "/metrics").unwrap_or_default();
    let results = metric(&metrics, "snbox_records_produced_total{kind=\"result\"}");
    let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    let _ = child.wait();
    let received = t["received"].as_f64().unwrap_or(0.0);
    println!(
        "trap burst: {BURST} v2c traps (linkDown/linkUp in turn on one service) sent in {:.0} ms, while {services} ICMP services poll every 30 s; state on {}",
        sending.as_secs_f64() * 1e3,
        dir.path().display()
    );
    header(&["window (30 s each)", "checks", "late p50 ms", "late p99 ms", "RSS MiB"]);
    for (label, a, b, rss) in [
        ("before the burst", &h0, &h1, rss_before),
        ("during (from the first trap)", &h1, &h2, peak),
        ("after", &h2, &h3, rss_after),
    ] {
        let (p50, n) = window_quantile(a, b, 0.5);
        let (p99, _) = window_quantile(a, b, 0.99);
        row(label, &[f0(n), f2(p50), f2(p99), f1(rss)]);
    }
    header(&["receiver", "received", "matched", "taken in s", "traps/s"]);
    let taken = taken.1.as_secs_f64();
    row(
        "snbox (auth, match, state, records)",
        &[
            f0(received),
            f0(t["matched"].as_f64().unwrap_or(0.0)),
            f2(taken),
            f0(received / taken),
        ],
    );
    println!(
        "  results recorded in all: {results:.0}; bad_auth {}, malformed {}",
        t["bad_auth"], t["malformed"]
    );
    snmptrapd_side_by_side();
}

/// The same burst to Debian's snmptrapd, logging each trap to a file: traps logged per second.
fn snmptrapd_side_by_side() {
    let Some(snmptrapd) = ["/usr/sbin/snmptrapd", "/usr/bin/snmptrapd"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        println!("snmptrapd is not installed (apt-get install snmptrapd): no side-by-side figure");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let port = peers::free_udp_port();
    let conf = dir.path().join("snmptrapd.conf");
    std::fs::write(
        &conf,
        format!("authCommunity log {}\n", String::from_utf8_lossy(COMMUNITY)),
    )
    .expect("conf");
    let log = dir.path().join("traps.log");
    let mut daemon = Command::new("timeout")
        .args(["-k", "5", "120"])
        .arg(snmptrapd)
        .args(["-f", "-n", "-On", "-m", "", "-C", "-c"])
        .arg(&conf)
        .args(["-Lf"])
        .arg(&log)
        .args(["-F", "%v\n"])
        .arg(format!("udp:127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("snmptrapd");
    std::thread::sleep(Duration::from_secs(2));
    let logged = |log: &Path| {
        std::fs::read_to_string(log)
            .map(|t| t.lines().filter(|l| l.contains("6.3.1.1.5.")).count())
            .unwrap_or(0)
    };
    let started = Instant::now();
    let sending = send_burst(port);
    let mut last = (0, Duration::ZERO);
    while started.elapsed() < Duration::from_secs(60) {
        let n = logged(&log);
        if n > last.0 {
            last = (n, started.elapsed());
        }
        if n >= BURST || (n > 0 && started.elapsed() > last.1 + Duration::from_secs(3)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = daemon.kill();
    let _ = daemon.wait();
    let taken = last.1.max(sending).as_secs_f64();
    row(
        "snmptrapd -f (community check, log to file)",
        &[f0(last.0 as f64), "-".into(), f2(taken), f0(last.0 as f64 / taken)],
    );
}

/// CPU seconds of a process and of its children it waited for (`/proc/<pid>/stat`).
fn cpu_with_children(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<f64> = stat
        .rsplit_once(')')?
        .1
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    // utime, stime, cutime, cstime are fields 14 to 17 (11 to 14 after the state letter).
    Some(fields.get(10..14)?.iter().sum::<f64>() / 100.0)
}

fn plugins(services: usize) {
    const WINDOW: u64 = 60;
    let mut devices = Vec::new();
    let mut list = Vec::new();
    for i in 0..services {
        let id = format!("d{i}");
        devices.push(json!({ "id": id, "node": "s", "name": id, "address": "127.0.0.1" }));
        list.push(json!({ "id": format!("{id}-dummy"), "device": id, "template": "dummy" }));
    }
    let templates = json!([
        { "id": "dummy", "kind": "plugin", "criticality": "low", "availability_rate": 99.0, "availability_period": "24x7",
          "control_period": "24x7", "interval_s": 10, "timeout_s": 5,
          "params": { "command": "check_dummy", "args": ["0", "fine | value=1"] } }
    ]);
    let doc = central::document("bench-kinds", templates, json!(devices), json!(list));
    // The plugin limit stays the default (16 at once).
    let (dir, mut child, pid, port) = start(&doc, "", WINDOW + 60);
    std::thread::sleep(Duration::from_secs(15));
    let results = |port| {
        metric(
            &get(port, "/metrics").unwrap_or_default(),
            "snbox_checks_total{kind=\"plugin\",result=\"ok\"}",
        )
    };
    let (n0, cpu0) = (results(port), cpu_with_children(pid).unwrap_or(0.0));
    std::thread::sleep(Duration::from_secs(WINDOW));
    let (n1, cpu1) = (results(port), cpu_with_children(pid).unwrap_or(0.0));
    let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    let _ = child.wait();
    let checks = n1 - n0;
    println!(
        "plugins: {services} services running check_dummy every 10 s, over {WINDOW} s; state on {}",
        dir.path().display()
    );
    header(&["", "checks/s", "CPU ms/check"]);
    row(
        "snbox (with the plugins' own CPU)",
        &[f1(checks / WINDOW as f64), f2((cpu1 - cpu0) * 1000.0 / checks)],
    );
    // The floor: the same program started and waited for by a plain loop.
    const RUNS: u32 = 1_000;
    let before = children_cpu();
    let started = Instant::now();
    for _ in 0..RUNS {
        let _ = Command::new("/usr/lib/nagios/plugins/check_dummy")
            .args(["0", "fine | value=1"])
            .stdout(Stdio::null())
            .status();
    }
    let took = started.elapsed().as_secs_f64();
    let cpu = children_cpu() - before;
    row(
        "fork+exec+wait of check_dummy alone",
        &[f0(f64::from(RUNS) / took), f2(cpu * 1000.0 / f64::from(RUNS))],
    );
}

/// CPU seconds of this process's waited-for children so far.
fn children_cpu() -> f64 {
    cpu_with_children(std::process::id()).unwrap_or(0.0) - own_cpu()
}

fn own_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<f64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().filter_map(|f| f.parse().ok()).collect())
        .unwrap_or_default();
    fields.get(10..12).map_or(0.0, |f| f.iter().sum::<f64>() / 100.0)
}
