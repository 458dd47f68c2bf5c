//! The ICMP probe against real addresses: 127.0.0.1, thousands of distinct 127.x.y.z, ::1,
//! and a namespace of the test's own where nothing answers or no ICMP socket may be opened.

#[path = "common/peers.rs"]
mod peers;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use snbox::document::params::IcmpParams;
use snbox::probe::Status;
use snbox::probe::icmp::IcmpProber;

fn params(packets: u32) -> IcmpParams {
    IcmpParams {
        packets: Some(packets),
        interval_ms: Some(20),
        ..IcmpParams::default()
    }
}

#[tokio::test]
#[ignore = "needs root or unprivileged ICMP (net.ipv4.ping_group_range): bash .ci/run runs it"]
async fn icmp_loopback_answers_with_a_measured_rtt() {
    let prober = IcmpProber::new(256);
    for target in ["127.0.0.1", "::1"] {
        let r = prober
            .check(target.parse().expect("ip"), &params(3), Duration::from_secs(2))
            .await;
        assert_eq!(r.status, Status::Ok, "{target}: {}", r.output);
        assert_eq!(r.metrics["packets_received"], 3.0);
        assert_eq!(r.metrics["loss_pct"], 0.0);
        assert!(
            r.metrics["rtt_min_ms"] > 0.0,
            "loopback must not read as 0: {:?}",
            r.metrics
        );
        assert!(r.output.starts_with("3/3 replies, rtt "), "{}", r.output);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root or unprivileged ICMP (net.ipv4.ping_group_range): bash .ci/run runs it"]
async fn icmp_two_thousand_distinct_loopback_addresses_all_answer() {
    let prober = IcmpProber::new(512);
    let targets: Vec<IpAddr> = (0..2000u32)
        .map(|i| IpAddr::from([127, 1 + (i >> 16) as u8, (i >> 8) as u8, i as u8]))
        .collect();
    let p = params(1);
    let checks = targets.iter().map(|t| prober.check(*t, &p, Duration::from_secs(3)));
    let results = futures_util::future::join_all(checks).await;
    let answered = results.iter().filter(|r| r.status == Status::Ok).count();
    let failed: Vec<_> = results
        .iter()
        .filter(|r| r.status != Status::Ok)
        .take(3)
        .map(|r| r.output.clone())
        .collect();
    assert_eq!(answered, 2000, "first failures: {failed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root or unprivileged ICMP (net.ipv4.ping_group_range): bash .ci/run runs it"]
async fn icmp_concurrent_checks_of_one_host_never_collide() {
    // Replies match on host and sequence only: 50 checks of 3 packets at once to one host.
    let prober = IcmpProber::new(512);
    let p = params(3);
    let target: IpAddr = "127.0.0.1".parse().expect("ip");
    let checks = (0..50).map(|_| prober.check(target, &p, Duration::from_secs(3)));
    let results = futures_util::future::join_all(checks).await;
    for r in results {
        assert_eq!(r.status, Status::Ok, "{}", r.output);
        assert_eq!(r.metrics["packets_received"], 3.0);
    }
}

#[tokio::test]
#[ignore = "needs root or unprivileged ICMP (net.ipv4.ping_group_range): bash .ci/run runs it"]
async fn icmp_rtt_thresholds_give_warning_then_critical() {
    let prober = IcmpProber::new(16);
    let mut p = params(2);
    p.warn_rtt_ms = Some(0.000_001);
    let target: IpAddr = "127.0.0.1".parse().expect("ip");
    assert_eq!(
        prober.check(target, &p, Duration::from_secs(2)).await.status,
        Status::Warning
    );
    p.crit_rtt_ms = Some(0.000_002);
    assert_eq!(
        prober.check(target, &p, Duration::from_secs(2)).await.status,
        Status::Critical
    );
    p.warn_rtt_ms = Some(1000.0);
    p.crit_rtt_ms = Some(2000.0);
    assert_eq!(
        prober.check(target, &p, Duration::from_secs(2)).await.status,
        Status::Ok
    );
}

fn probe_json(ns: &peers::Netns, args: &[&str], as_nobody: bool) -> serde_json::Value {
    let mut cmd = if as_nobody {
        let mut c = ns.command("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ]);
        c.arg(env!("CARGO_BIN_EXE_snbox"));
        c
    } else {
        ns.command(env!("CARGO_BIN_EXE_snbox"))
    };
    let out = cmd
        .args(["probe", "icmp"])
        .args(args)
        .args(["--format", "json"])
        .output()
        .expect("snbox runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON")
}

#[test]
#[ignore = "needs root (a network namespace): bash .ci/run runs it"]
fn icmp_target_that_never_answers_is_critical_within_the_timeout() {
    // A namespace of our own whose stack ignores every echo request: a silent host.
    let ns = peers::Netns::new("silent", &["sysctl -qw net.ipv4.icmp_echo_ignore_all=1"]);
    let start = Instant::now();
    let r = probe_json(
        &ns,
        &["127.0.0.1", "--packets", "3", "--interval-ms", "50", "--timeout", "1"],
        false,
    );
    assert!(start.elapsed() < Duration::from_secs(5), "{:?}", start.elapsed());
    assert_eq!(r["status"], "critical", "{r}");
    assert_eq!(r["metrics"]["loss_pct"], 100.0);
    assert_eq!(r["metrics"]["packets_received"], 0.0);
    assert!(
        r["output"].as_str().is_some_and(|o| o.contains("no reply (0 of 3)")),
        "{r}"
    );
}

#[test]
#[ignore = "needs root (drops to another user with setpriv): bash .ci/run runs it"]
fn icmp_without_socket_permission_says_both_ways_to_fix_it() {
    // ping_group_range is per namespace: in ours nobody may open a DGRAM ICMP socket, and an
    // unprivileged user has no CAP_NET_RAW for a RAW one.
    let ns = peers::Netns::new("noperm", &["sysctl -qw net.ipv4.ping_group_range='1 0'"]);
    let r = probe_json(&ns, &["127.0.0.1", "--packets", "1"], true);
    assert_eq!(r["status"], "unknown", "{r}");
    let output = r["output"].as_str().unwrap_or_default();
    assert!(output.contains("ping_group_range"), "{output}");
    assert!(output.contains("CAP_NET_RAW"), "{output}");
}
