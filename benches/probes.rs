//! Probe benchmarks (issue 3), each side by side with its peer tool in one run:
//!
//! - `icmp`: 10,000 loopback targets × 3 echo requests, snbox vs `fping -C 3`;
//! - `snmp`: GETs per second against snmpd (snbox vs `snmpget`), and bulk walks of a recorded
//!   Cisco switch's interface table in snmpsim (snbox vs `snmpbulkwalk`);
//! - `http`: checks per second against a local nginx (snbox vs blackbox_exporter's `http_2xx`).
//!
//! `cargo bench --bench probes [-- icmp|snmp|http]`. Needs root (RAW ICMP, fping), and the
//! peers: `apt-get install fping snmp snmpd nginx-light prometheus-blackbox-exporter time`,
//! plus the snmpsim venv that `.ci/run` creates. Every side runs as its own process under
//! `/usr/bin/time`; snbox runs on one core (a current-thread runtime). Loopback only; every
//! loop is bounded by its count and every process by `timeout`.

#[path = "../tests/common/peers.rs"]
mod peers;
#[path = "table.rs"]
mod table;

use table::{f0, f1, f2, f3, header, row};

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use snbox::document::params::{HttpParams, IcmpParams, SnmpParams, SnmpRead};
use snbox::probe::Status;

const ICMP_TARGETS: usize = 10_000;
const SNMP_GETS: usize = 40_000;
const SNMP_AGENTS: usize = 8;
const SNMPGET_RUNS: usize = 300;
const WALKS: usize = 30;
const HTTP_CHECKS: usize = 20_000;
const HTTP_CONCURRENCY: usize = 32;
const BLACKBOX_PROBES: usize = 5_000;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    if args.first().map(String::as_str) == Some("--child") {
        child(&args[1..]);
        return;
    }
    let modes: Vec<&str> = match args.first().map(String::as_str) {
        Some(m @ ("icmp" | "snmp" | "http")) => vec![m],
        _ => vec!["icmp", "snmp", "http"],
    };
    println!(
        "probe benchmarks — {} cores; each row is a process under /usr/bin/time, median CPU of {RUNS} runs\n",
        cores()
    );
    for mode in modes {
        match mode {
            "icmp" => bench_icmp(),
            "snmp" => bench_snmp(),
            _ => bench_http(),
        }
        println!();
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

// ------------------------------------------------------------------ measuring processes

struct Timing {
    wall: f64,
    cpu: f64,
    rss_mb: f64,
    stdout: String,
    stderr: String,
}

/// Runs of each side; rows show the run with the median CPU time.
const RUNS: usize = 3;

fn timed(program: &str, args: &[String]) -> Timing {
    let mut runs: Vec<Timing> = (0..RUNS).map(|_| timed_once(program, args)).collect();
    runs.sort_by(|a, b| a.cpu.total_cmp(&b.cpu));
    runs.swap_remove(RUNS / 2)
}

fn timed_once(program: &str, args: &[String]) -> Timing {
    let dir = tempfile::tempdir().expect("tempdir");
    let time_file = dir.path().join("time");
    let out = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%e %U %S %M")
        .arg("-o")
        .arg(&time_file)
        .args(["timeout", "600", program])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} does not run under /usr/bin/time: {e}"));
    let times = std::fs::read_to_string(&time_file).unwrap_or_default();
    let line = times.lines().last().unwrap_or_default();
    let f: Vec<f64> = line.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    assert!(
        f.len() == 4,
        "{program}: no timing ({times}); stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Timing {
        wall: f[0],
        cpu: f[1] + f[2],
        rss_mb: f[3] / 1024.0,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn me() -> String {
    std::env::current_exe().expect("own path").display().to_string()
}

fn ours(args: &[&str]) -> Timing {
    let mut all = vec!["--child".to_string()];
    all.extend(args.iter().map(|a| a.to_string()));
    timed(&me(), &all)
}

/// user + system seconds of a running process, from /proc.
fn process_cpu(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<f64> = after.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    // After the command name: state is not numeric, so utime and stime are at 10 and 11.
    (fields.get(10).copied().unwrap_or(0.0) + fields.get(11).copied().unwrap_or(0.0)) / 100.0
}

fn require(binary: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(binary).exists()))
        .unwrap_or(false);
    assert!(
        found,
        "{binary} is missing: apt-get install fping snmp snmpd nginx-light prometheus-blackbox-exporter time"
    );
}

// ------------------------------------------------------------------ the snbox side

fn child(args: &[String]) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    match args.first().map(String::as_str) {
        Some("icmp") => runtime.block_on(child_icmp(args[1].parse().expect("count"))),
        Some("snmp-get") => runtime.block_on(child_snmp_get(
            args[1].parse().expect("port"),
            args[2].parse().expect("count"),
        )),
        Some("snmp-walk") => runtime.block_on(child_snmp_walk(
            args[1].parse().expect("port"),
            &args[2],
            args[3].parse().expect("walks"),
        )),
        Some("http") => runtime.block_on(child_http(
            &args[1],
            args[2].parse().expect("count"),
            args[3].parse().expect("concurrency"),
        )),
        other => panic!("unknown child mode {other:?}"),
    }
}

fn icmp_targets(n: usize) -> Vec<IpAddr> {
    (0..n)
        .map(|i| IpAddr::from([127, 1, (i / 254) as u8, (i % 254 + 1) as u8]))
        .collect()
}

async fn child_icmp(n: usize) {
    // One task per check, as the scheduler runs them.
    let prober = Arc::new(snbox::probe::icmp::IcmpProber::new(1024));
    let params = Arc::new(IcmpParams {
        packets: Some(3),
        interval_ms: Some(1000),
        ..IcmpParams::default()
    });
    let mut tasks = tokio::task::JoinSet::new();
    for target in icmp_targets(n) {
        let (prober, params) = (prober.clone(), params.clone());
        tasks.spawn(async move { prober.check(target, &params, Duration::from_secs(5)).await });
    }
    let mut received = 0.0;
    while let Some(result) = tasks.join_next().await {
        received += result
            .ok()
            .and_then(|r| r.metrics.get("packets_received").copied())
            .unwrap_or(0.0);
    }
    println!("received {received}");
}

fn community(i: usize) -> String {
    format!("bench-{i}")
}

async fn child_snmp_get(port: u16, total: usize) {
    let prober = Arc::new(snbox::probe::snmp::SnmpProber::new());
    let params = SnmpParams {
        read: Some(SnmpRead::Get(vec!["1.3.6.1.2.1.1.3.0".parse().expect("an OID")])),
        ..SnmpParams::default()
    };
    let per_agent = total / SNMP_AGENTS;
    let loops = (0..SNMP_AGENTS).map(|i| {
        let (prober, params) = (prober.clone(), params.clone());
        async move {
            let snmp = peers::v2c(port, &community(i));
            let mut ok = 0;
            for _ in 0..per_agent {
                if prober
                    .check("g", "127.0.0.1", &snmp, &params, Duration::from_secs(2))
                    .await
                    .status
                    == Status::Ok
                {
                    ok += 1;
                }
            }
            ok
        }
    });
    let ok: usize = futures_util::future::join_all(loops).await.into_iter().sum();
    println!("ok {ok}");
}

async fn child_snmp_walk(port: u16, device: &str, walks: usize) {
    let prober = snbox::probe::snmp::SnmpProber::new();
    let params = SnmpParams {
        read: Some(SnmpRead::Walk("1.3.6.1.2.1.2.2".parse().expect("an OID"))),
        ..SnmpParams::default()
    };
    let snmp = peers::v2c(port, device);
    let mut values = 0.0;
    for _ in 0..walks {
        let r = prober
            .check("w", "127.0.0.1", &snmp, &params, Duration::from_secs(10))
            .await;
        values += r.metrics.get("values").copied().unwrap_or(0.0);
    }
    println!("values {values}");
}

async fn child_http(url: &str, total: usize, concurrency: usize) {
    let prober = Arc::new(snbox::probe::http::HttpProber::new());
    let params = HttpParams {
        url: Some(url.parse().expect("a URL")),
        ..HttpParams::default()
    };
    let per_loop = total / concurrency;
    let loops = (0..concurrency).map(|_| {
        let (prober, params) = (prober.clone(), params.clone());
        async move {
            let mut ok = 0;
            for _ in 0..per_loop {
                if prober.check("127.0.0.1", &params, Duration::from_secs(5)).await.status == Status::Ok {
                    ok += 1;
                }
            }
            ok
        }
    });
    let ok: usize = futures_util::future::join_all(loops).await.into_iter().sum();
    println!("ok {ok}");
}

fn number_after(text: &str, label: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(label).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(f64::NAN)
}

// ------------------------------------------------------------------ the benchmarks

fn bench_icmp() {
    require("fping");
    let n = ICMP_TARGETS;
    println!("ICMP: {n} loopback targets (127.1.x.y) x 3 echo requests, 1 s apart per target");
    header(&["tool", "wall s", "cpu s", "peak MB", "replies", "loss %"]);
    let ours = ours(&["icmp", &n.to_string()]);
    let received = number_after(&ours.stdout, "received ");
    row(
        "snbox (IcmpProber, 1,024 in flight)",
        &[
            f2(ours.wall),
            f2(ours.cpu),
            f1(ours.rss_mb),
            format!("{received}"),
            f2(100.0 * (1.0 - received / (3 * n) as f64)),
        ],
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let list = dir.path().join("targets");
    let text: String = icmp_targets(n).iter().map(|t| format!("{t}\n")).collect();
    std::fs::write(&list, text).expect("targets");
    let fping = timed(
        "fping",
        &[
            "-C".into(),
            "3".into(),
            "-q".into(),
            "-i".into(),
            "0".into(),
            "-f".into(),
            list.display().to_string(),
        ],
    );
    // -C prints one line per target: "127.1.0.1 : 0.03 0.04 -" ("-" for a lost reply).
    let replies = fping
        .stderr
        .lines()
        .filter_map(|l| l.split_once(" : "))
        .map(|(_, rtts)| rtts.split_whitespace().filter(|r| *r != "-").count())
        .sum::<usize>();
    row(
        "fping -C 3 -i 0",
        &[
            f2(fping.wall),
            f2(fping.cpu),
            f1(fping.rss_mb),
            replies.to_string(),
            f2(100.0 * (1.0 - replies as f64 / (3 * n) as f64)),
        ],
    );
}

fn bench_snmp() {
    require("snmpget");
    require("snmpbulkwalk");
    let communities: Vec<String> = (0..SNMP_AGENTS).map(community).collect();
    let refs: Vec<&str> = communities.iter().map(String::as_str).collect();
    let agent = peers::Snmpd::start_with_communities(&refs);
    println!("SNMP GET of sysUpTime.0 against Debian's snmpd, {SNMP_AGENTS} agents (communities)");
    header(&["tool", "requests", "wall s", "cpu s", "GET/s", "cpu ms/GET"]);
    let t = ours(&["snmp-get", &agent.port.to_string(), &SNMP_GETS.to_string()]);
    let ok = number_after(&t.stdout, "ok ");
    assert_eq!(ok as usize, SNMP_GETS, "{}", t.stderr);
    row(
        "snbox (SnmpProber, one core)",
        &[
            SNMP_GETS.to_string(),
            f2(t.wall),
            f2(t.cpu),
            f0(SNMP_GETS as f64 / t.wall),
            f3(1e3 * t.cpu / SNMP_GETS as f64),
        ],
    );
    let script = format!(
        "for i in $(seq 1 {SNMPGET_RUNS}); do snmpget -v2c -c {} -t 2 -r 0 -On -m '' 127.0.0.1:{} 1.3.6.1.2.1.1.3.0 >/dev/null || exit 1; done",
        peers::COMMUNITY,
        agent.port
    );
    let t = timed("bash", &["-c".into(), script]);
    row(
        "snmpget (one process per GET)",
        &[
            SNMPGET_RUNS.to_string(),
            f2(t.wall),
            f2(t.cpu),
            f0(SNMPGET_RUNS as f64 / t.wall),
            f3(1e3 * t.cpu / SNMPGET_RUNS as f64),
        ],
    );
    drop(agent);

    let sim = peers::Snmpsim::start();
    println!("\nSNMP bulk walk of ifTable (1.3.6.1.2.1.2.2) of snmpsim's Cisco C3560 recording, {WALKS} walks");
    header(&["tool", "values/walk", "wall s", "cpu s", "walks/s", "cpu ms/walk"]);
    // snmpsim is slow on its first reads of a recording: warm it up before either side runs.
    let _ = Command::new("snmpbulkwalk")
        .args(["-v2c", "-c", peers::CISCO_C3560, "-Cr25", "-On", "-m", ""])
        .arg(format!("127.0.0.1:{}", sim.port))
        .arg("1.3.6.1.2.1.2.2")
        .output();
    let t = ours(&[
        "snmp-walk",
        &sim.port.to_string(),
        peers::CISCO_C3560,
        &WALKS.to_string(),
    ]);
    let values = number_after(&t.stdout, "values ") / WALKS as f64;
    row(
        "snbox (GETBULK, 25 repetitions)",
        &[
            f0(values),
            f2(t.wall),
            f2(t.cpu),
            f2(WALKS as f64 / t.wall),
            f1(1e3 * t.cpu / WALKS as f64),
        ],
    );
    let script = format!(
        "for i in $(seq 1 {WALKS}); do snmpbulkwalk -v2c -c {} -Cr25 -t 5 -r 1 -On -m '' 127.0.0.1:{} 1.3.6.1.2.1.2.2 >/dev/null || exit 1; done",
        peers::CISCO_C3560,
        sim.port
    );
    let t2 = timed("bash", &["-c".into(), script]);
    let count = Command::new("snmpbulkwalk")
        .args(["-v2c", "-c", peers::CISCO_C3560, "-Cr25", "-On", "-m", ""])
        .arg(format!("127.0.0.1:{}", sim.port))
        .arg("1.3.6.1.2.1.2.2")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().count())
        .unwrap_or(0);
    row(
        "snmpbulkwalk -Cr25",
        &[
            count.to_string(),
            f2(t2.wall),
            f2(t2.cpu),
            f2(WALKS as f64 / t2.wall),
            f1(1e3 * t2.cpu / WALKS as f64),
        ],
    );
}

fn bench_http() {
    require("prometheus-blackbox-exporter");
    let nginx = peers::Nginx::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let target = format!("http://127.0.0.1:{}/health", nginx.port);

    println!("HTTP checks of {target} (nginx), a new connection per check");
    header(&["tool", "checks", "wall s", "cpu s", "checks/s", "cpu ms/check"]);
    let t = ours(&["http", &target, &HTTP_CHECKS.to_string(), &HTTP_CONCURRENCY.to_string()]);
    let ok = number_after(&t.stdout, "ok ");
    assert_eq!(ok as usize, HTTP_CHECKS, "{}", t.stderr);
    row(
        &format!("snbox (HttpProber, one core, {HTTP_CONCURRENCY} at once)"),
        &[
            HTTP_CHECKS.to_string(),
            f2(t.wall),
            f2(t.cpu),
            f0(HTTP_CHECKS as f64 / t.wall),
            f3(1e3 * t.cpu / HTTP_CHECKS as f64),
        ],
    );

    let bb_port = peers::free_tcp_port();
    let bb_conf = dir.path().join("blackbox.yml");
    std::fs::write(
        &bb_conf,
        "modules:\n  http_2xx:\n    prober: http\n    timeout: 5s\n    http:\n      preferred_ip_protocol: ip4\n",
    )
    .expect("blackbox.yml");
    let blackbox = peers::Daemon::spawn(
        &which("prometheus-blackbox-exporter"),
        &[
            format!("--config.file={}", bb_conf.display()),
            format!("--web.listen-address=127.0.0.1:{bb_port}"),
        ],
        &[],
    );
    let probe_url = format!("http://127.0.0.1:{bb_port}/probe?module=http_2xx&target={target}");
    wait_http(&probe_url);
    let pid = blackbox.program_pid().expect("blackbox pid");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let cpu0 = process_cpu(pid);
    let start = Instant::now();
    let ok = runtime.block_on(drive(&probe_url, BLACKBOX_PROBES, 8));
    let wall = start.elapsed().as_secs_f64();
    let cpu = process_cpu(pid) - cpu0;
    row(
        "blackbox_exporter http_2xx (its own CPU)",
        &[
            format!("{ok}"),
            f2(wall),
            f2(cpu),
            f0(BLACKBOX_PROBES as f64 / wall),
            f3(1e3 * cpu / BLACKBOX_PROBES as f64),
        ],
    );
    drop(blackbox);
    drop(nginx);
}

/// `n` GETs of `url`, `concurrency` at a time; how many said probe_success 1.
async fn drive(url: &str, n: usize, concurrency: usize) -> usize {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder().no_proxy().build().expect("client");
    let loops = (0..concurrency).map(|_| {
        let client = client.clone();
        async move {
            let mut ok = 0;
            for _ in 0..n / concurrency {
                if let Ok(r) = client.get(url).send().await
                    && r.text().await.is_ok_and(|b| b.contains("probe_success 1"))
                {
                    ok += 1;
                }
            }
            ok
        }
    });
    futures_util::future::join_all(loops).await.into_iter().sum()
}

fn wait_http(url: &str) {
    for _ in 0..100 {
        let ok = Command::new("bash")
            .args([
                "-c",
                &format!(
                    "exec 3<>/dev/tcp/127.0.0.1/{}",
                    url.split(':').nth(2).and_then(|p| p.split('/').next()).unwrap_or("0")
                ),
            ])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            std::thread::sleep(Duration::from_millis(200));
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{url} does not answer");
}

fn which(binary: &str) -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|p| std::env::split_paths(&p).map(|d| d.join(binary)).find(|p| p.exists()))
        .unwrap_or_else(|| panic!("{binary} not found"))
}
