#![allow(dead_code)] // shared by the benches, each using part of it
//! The real `snbox run` as the benchmarks drive it: started under `timeout`, asked over its
//! status endpoint, measured from `/proc`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use super::peers;

pub struct Sample {
    pub at: f64,
    pub cpu_s: f64,
    pub rss_mb: f64,
}

pub fn sample(pid: u32, start: Instant) -> Option<Sample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    Some(Sample {
        at: start.elapsed().as_secs_f64(),
        cpu_s: ticks / 100.0,
        rss_mb: kb("VmHWM:").max(kb("VmRSS:")) / 1024.0,
    })
}

pub fn get(port: u16, path: &str) -> Option<String> {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10", &format!("http://127.0.0.1:{port}{path}")])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The quantile `q` of a Prometheus histogram, as the upper bound of its bucket, in ms.
pub fn histogram_quantile_ms(metrics: &str, name: &str, q: f64) -> f64 {
    let buckets: Vec<(f64, f64)> = metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{name}_bucket{{le=\"")))
        .filter_map(|l| {
            let le = l.split('"').nth(1)?;
            let bound = if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? };
            Some((bound, l.rsplit(' ').next()?.parse().ok()?))
        })
        .collect();
    let total = buckets.last().map_or(0.0, |b| b.1);
    buckets
        .iter()
        .find(|(_, count)| *count >= q * total)
        .map_or(f64::NAN, |(bound, _)| bound * 1000.0)
}

pub fn metric(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// The resident set now (VmRSS), not the peak.
pub fn rss_now(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<f64>().ok()? / 1024.0)
}

/// `snbox run` on `settings` under `timeout` (so it never outlives the bench), logging
/// warnings to `dir/daemon.log`: the wrapper and snbox's own pid.
pub fn spawn_snbox(dir: &Path, settings: &Path, seconds: u64) -> (std::process::Child, u32) {
    let log = std::fs::File::create(dir.join("daemon.log")).expect("log");
    // A diagnosis tool to run snbox under (`SNBOX_BENCH_WRAP="heaptrack -o /tmp/ht"`): the
    // figures are then the tool's as much as snbox's.
    let wrap = std::env::var("SNBOX_BENCH_WRAP").unwrap_or_default();
    let child = Command::new("timeout")
        .args(["-s", "TERM", &seconds.to_string()])
        .args(wrap.split_whitespace())
        .arg(env!("CARGO_BIN_EXE_snbox"))
        .args(["run", "--config"])
        .arg(settings)
        .env("SNBOX_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("snbox run");
    let pid = peers::child_of(child.id()).expect("snbox starts under timeout");
    (child, pid)
}

pub fn daemon_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("daemon.log")).unwrap_or_default()
}

/// Bytes this process has caused to be written to storage (`/proc/<pid>/io`), and its CPU
/// seconds.
pub fn io_and_cpu(pid: u32) -> Option<(f64, f64)> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    let written = io
        .lines()
        .find_map(|l| l.strip_prefix("write_bytes: "))?
        .trim()
        .parse::<f64>()
        .ok()?;
    Some((written, sample(pid, Instant::now())?.cpu_s))
}
