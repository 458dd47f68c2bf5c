//! The SNMP probe against a real agent (Debian's snmpd, started by the test with v2c and v3
//! users) and against hostile UDP peers of the test's own: garbage, truncated, oversized and
//! deeply nested answers, silence, and late replies.

mod common;
#[path = "common/peers.rs"]
mod peers;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use peers::{CISCO_C3560, COMMUNITY, LINUX_HOST, LOCATION, Snmpd, Snmpsim, V3_USERS};
use snbox::document::params::{Direction, SnmpParams, SnmpRead};
use snbox::document::{Snmp, SnmpVersion};
use snbox::probe::Status;
use snbox::probe::snmp::SnmpProber;
use snbox::secret::Secret;
use tokio::net::UdpSocket;

const SYS_UPTIME: &str = "1.3.6.1.2.1.1.3.0";
const SYS_LOCATION: &str = "1.3.6.1.2.1.1.6.0";
const IF_DESCR: &str = "1.3.6.1.2.1.2.2.1.2";
const TIMEOUT: Duration = Duration::from_secs(2);

fn v2c(port: u16) -> Snmp {
    snmp(SnmpVersion::V2c, port)
}

fn snmp(version: SnmpVersion, port: u16) -> Snmp {
    Snmp {
        version,
        ..peers::v2c(port, COMMUNITY)
    }
}

fn v3(port: u16, user: &str) -> Snmp {
    let (name, level, auth, auth_key, privacy, priv_key) =
        V3_USERS.iter().copied().find(|u| u.0 == user).expect("a test user");
    let named = |v: &str| serde_json::Value::String(v.to_string());
    Snmp {
        version: SnmpVersion::V3,
        port: Some(port),
        community: None,
        user: Some(name.to_string()),
        level: serde_json::from_value(named(level)).ok(),
        auth_protocol: serde_json::from_value(named(auth)).ok(),
        auth_key: (!auth_key.is_empty()).then(|| Secret::new(auth_key)),
        priv_protocol: serde_json::from_value(named(privacy)).ok(),
        priv_key: (!priv_key.is_empty()).then(|| Secret::new(priv_key)),
        context: None,
    }
}

fn get(oids: &[&str]) -> SnmpParams {
    SnmpParams {
        read: Some(SnmpRead::Get(oids.iter().map(|s| s.parse().expect("an OID")).collect())),
        ..SnmpParams::default()
    }
}

fn walk(root: &str) -> SnmpParams {
    SnmpParams {
        read: Some(SnmpRead::Walk(root.parse().expect("an OID"))),
        ..SnmpParams::default()
    }
}

/// What net-snmp's own walk finds under `root`.
fn netsnmp_walk_count(port: u16, version: &str, root: &str) -> usize {
    netsnmp_walk_count_as(port, version, COMMUNITY, root)
}

fn netsnmp_walk_count_as(port: u16, version: &str, community: &str, root: &str) -> usize {
    let tool = if version == "1" { "snmpwalk" } else { "snmpbulkwalk" };
    let out = Command::new(tool)
        .args([
            &format!("-v{version}"),
            "-c",
            community,
            "-On",
            "-m",
            "",
            "-t",
            "5",
            "-r",
            "1",
        ])
        .arg(format!("127.0.0.1:{port}"))
        .arg(root)
        .output()
        .expect("net-snmp walk runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with(&format!(".{root}.")))
        .count()
}

#[tokio::test]
#[ignore = "needs snmpd: bash .ci/run installs it and runs this"]
async fn snmp_v2c_get_of_several_oids_in_one_request() {
    let agent = Snmpd::start();
    let r = SnmpProber::new()
        .check(
            "s",
            "127.0.0.1",
            &v2c(agent.port),
            &get(&[SYS_UPTIME, SYS_LOCATION]),
            TIMEOUT,
        )
        .await;
    assert_eq!(r.status, Status::Ok, "{}", r.output);
    assert!(
        r.output.contains(&format!("{SYS_LOCATION} = {LOCATION}")),
        "{}",
        r.output
    );
    assert!(r.metrics[SYS_UPTIME] > 0.0, "{:?}", r.metrics);
}

#[tokio::test]
#[ignore = "needs snmpd: bash .ci/run installs it and runs this"]
async fn snmp_walks_match_net_snmp_with_getbulk_and_getnext() {
    let agent = Snmpd::start();
    for (version, label) in [(SnmpVersion::V2c, "2c"), (SnmpVersion::V1, "1")] {
        let r = SnmpProber::new()
            .check("s", "127.0.0.1", &snmp(version, agent.port), &walk(IF_DESCR), TIMEOUT)
            .await;
        assert_eq!(r.status, Status::Ok, "v{label}: {}", r.output);
        let expected = netsnmp_walk_count(agent.port, label, IF_DESCR);
        assert!(expected >= 1);
        assert_eq!(r.metrics["values"], expected as f64, "v{label}: {}", r.output);
    }
    // A whole subtree across tables: the walk stops at its end, not at the first table.
    let r = SnmpProber::new()
        .check("s", "127.0.0.1", &v2c(agent.port), &walk("1.3.6.1.2.1.1"), TIMEOUT)
        .await;
    assert_eq!(
        r.metrics["values"],
        netsnmp_walk_count(agent.port, "2c", "1.3.6.1.2.1.1") as f64
    );
}

#[tokio::test]
#[ignore = "needs snmpd: bash .ci/run installs it and runs this"]
async fn snmp_v3_every_security_level_and_algorithm() {
    let agent = Snmpd::start();
    let prober = SnmpProber::new();
    for (user, ..) in V3_USERS {
        let r = prober
            .check(user, "127.0.0.1", &v3(agent.port, user), &get(&[SYS_LOCATION]), TIMEOUT)
            .await;
        assert_eq!(r.status, Status::Ok, "{user}: {}", r.output);
        assert!(r.output.contains(LOCATION), "{user}: {}", r.output);
    }
    let mut wrong = v3(agent.port, "sha256-aes");
    wrong.auth_key = Some(Secret::new("Wrong-Key-123456"));
    let r = prober
        .check("w", "127.0.0.1", &wrong, &get(&[SYS_LOCATION]), TIMEOUT)
        .await;
    assert_eq!(r.status, Status::Unknown, "{}", r.output);
    assert!(!r.output.contains("Wrong-Key"), "{}", r.output);
}

#[tokio::test]
#[ignore = "needs snmpd: bash .ci/run installs it and runs this"]
async fn snmp_thresholds_and_expectations() {
    let agent = Snmpd::start();
    let prober = SnmpProber::new();
    let target = v2c(agent.port);
    let at = |p: SnmpParams| {
        let (prober, target) = (&prober, &target);
        async move { prober.check("t", "127.0.0.1", target, &p, TIMEOUT).await }
    };
    let mut p = get(&[SYS_UPTIME]);
    p.warn = Some(1.0);
    assert_eq!(
        at(p.clone()).await.status,
        Status::Warning,
        "uptime in ticks is above 1"
    );
    p.crit = Some(2.0);
    assert_eq!(at(p.clone()).await.status, Status::Critical);
    p.direction = Direction::Below;
    assert_eq!(at(p.clone()).await.status, Status::Ok, "and not below");
    let mut p = get(&[SYS_LOCATION]);
    p.expect = Some(LOCATION.into());
    assert_eq!(at(p.clone()).await.status, Status::Ok);
    p.expect = Some("elsewhere".into());
    let r = at(p.clone()).await;
    assert_eq!(r.status, Status::Critical);
    assert!(r.output.contains("expected \"elsewhere\""), "{}", r.output);
    let mut p = get(&[SYS_LOCATION]);
    p.crit = Some(1.0);
    assert_eq!(
        at(p.clone()).await.status,
        Status::Unknown,
        "a string cannot be compared with a number"
    );
}

#[tokio::test]
#[ignore = "needs snmpd: bash .ci/run installs it and runs this"]
async fn snmp_missing_oid_is_unknown() {
    let agent = Snmpd::start();
    let r = SnmpProber::new()
        .check(
            "s",
            "127.0.0.1",
            &v2c(agent.port),
            &get(&["1.3.6.1.2.1.1.99.0"]),
            TIMEOUT,
        )
        .await;
    assert_eq!(r.status, Status::Unknown);
    assert!(r.output.contains("noSuch"), "{}", r.output);
    let r = SnmpProber::new()
        .check(
            "s",
            "127.0.0.1",
            &snmp(SnmpVersion::V1, agent.port),
            &get(&["1.3.6.1.2.1.1.99.0"]),
            TIMEOUT,
        )
        .await;
    assert_eq!(r.status, Status::Unknown);
    assert!(r.output.contains("noSuchName"), "{}", r.output);
}

#[tokio::test]
#[ignore = "needs snmpd: bash .ci/run installs it and runs this"]
async fn snmp_counter_rate_between_checks() {
    let agent = Snmpd::start();
    let prober = SnmpProber::new();
    // sysUpTime moves by exactly 100 ticks a second: a counter whose rate is known.
    let mut p = get(&[SYS_UPTIME]);
    p.as_rate = true;
    let first = prober
        .check("rate", "127.0.0.1", &v2c(agent.port), &p, Duration::from_secs(3))
        .await;
    assert_eq!(first.status, Status::Ok, "{}", first.output);
    assert!(
        first.duration >= Duration::from_secs(1),
        "a first check takes two samples"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let second = prober
        .check("rate", "127.0.0.1", &v2c(agent.port), &p, Duration::from_secs(3))
        .await;
    assert_eq!(second.status, Status::Ok, "{}", second.output);
    assert!(
        second.duration < Duration::from_millis(900),
        "later checks use the stored sample"
    );
    for r in [&first, &second] {
        assert!((80.0..=120.0).contains(&r.metrics["rate"]), "{:?}", r.metrics);
    }
    p.crit = Some(50.0);
    assert_eq!(
        prober
            .check("rate", "127.0.0.1", &v2c(agent.port), &p, TIMEOUT)
            .await
            .status,
        Status::Critical
    );
    // A Counter32 (ifInOctets of lo) is read as a counter too.
    let mut p = get(&["1.3.6.1.2.1.2.2.1.10.1"]);
    p.as_rate = true;
    let r = prober
        .check("octets", "127.0.0.1", &v2c(agent.port), &p, Duration::from_secs(3))
        .await;
    assert_eq!(r.status, Status::Ok, "{}", r.output);
    assert!(r.metrics["rate"] >= 0.0);
    // A string is not a counter.
    p.read = Some(SnmpRead::Get(vec![SYS_LOCATION.parse().expect("an OID")]));
    assert_eq!(
        prober
            .check("str", "127.0.0.1", &v2c(agent.port), &p, TIMEOUT)
            .await
            .status,
        Status::Unknown
    );
}

/// How a hostile agent answers a request.
type Answer = fn(&[u8]) -> Vec<u8>;

/// A UDP "agent" of the test's own that answers every request with `answer(request)`.
async fn hostile_agent(answer: Answer) -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let port = socket.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        for _ in 0..1000 {
            let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                return;
            };
            let _ = socket.send_to(&answer(&buf[..n]), from).await;
        }
    });
    port
}

#[tokio::test]
async fn snmp_garbage_truncated_oversized_and_nested_answers_are_unknown_never_a_panic() {
    let answers: [(&str, Answer); 5] = [
        ("garbage", |_| b"this is not BER at all".to_vec()),
        ("truncated", |req| req[..req.len() / 2].to_vec()),
        ("oversized", |_| vec![0x30; 65000]),
        ("nested", |_| [0x30u8, 0x80].repeat(2000)),
        ("echo of the request", |req| req.to_vec()),
    ];
    let prober = SnmpProber::new();
    for (name, answer) in answers {
        let port = hostile_agent(answer).await;
        for version in [SnmpVersion::V1, SnmpVersion::V2c] {
            let r = prober
                .check(
                    name,
                    "127.0.0.1",
                    &snmp(version, port),
                    &get(&[SYS_UPTIME]),
                    Duration::from_secs(1),
                )
                .await;
            assert_eq!(r.status, Status::Unknown, "{name} {version:?}: {}", r.output);
        }
        let r = prober
            .check(name, "127.0.0.1", &v2c(port), &walk(IF_DESCR), Duration::from_secs(1))
            .await;
        assert_eq!(r.status, Status::Unknown, "{name} walk: {}", r.output);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs snmpd: bash .ci/run installs it and runs this"]
async fn snmp_silent_agent_delays_only_its_own_checks() {
    let agent = Snmpd::start();
    let silent = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let silent_port = silent.local_addr().expect("addr").port();
    let prober = Arc::new(SnmpProber::new());
    let slow = {
        let prober = prober.clone();
        tokio::spawn(async move {
            let start = Instant::now();
            let r = prober
                .check(
                    "silent",
                    "127.0.0.1",
                    &v2c(silent_port),
                    &get(&[SYS_UPTIME]),
                    Duration::from_secs(3),
                )
                .await;
            (r, start.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    for i in 0..5 {
        let start = Instant::now();
        let r = prober
            .check(
                &format!("ok{i}"),
                "127.0.0.1",
                &v2c(agent.port),
                &get(&[SYS_UPTIME]),
                TIMEOUT,
            )
            .await;
        assert_eq!(r.status, Status::Ok, "{}", r.output);
        assert!(
            start.elapsed() < Duration::from_millis(500),
            "delayed by the silent agent: {:?}",
            start.elapsed()
        );
    }
    let (r, took) = slow.await.expect("task");
    assert_eq!(r.status, Status::Unknown);
    assert!(r.output.contains("no answer"), "{}", r.output);
    assert!(took < Duration::from_millis(3500), "{took:?}");
    drop(silent);
}

#[tokio::test]
#[ignore = "needs snmpd: bash .ci/run installs it and runs this"]
async fn snmp_a_late_reply_does_not_break_the_next_check() {
    // A relay that holds the first answer back past the timeout, then relays promptly.
    let agent = Snmpd::start();
    let relay = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let relay_port = relay.local_addr().expect("addr").port();
    let upstream = format!("127.0.0.1:{}", agent.port);
    tokio::spawn(async move {
        let relay = Arc::new(relay);
        let mut buf = vec![0u8; 65536];
        for i in 0..100 {
            let Ok((n, from)) = relay.recv_from(&mut buf).await else {
                return;
            };
            let request = buf[..n].to_vec();
            let (relay, upstream) = (relay.clone(), upstream.clone());
            tokio::spawn(async move {
                let up = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
                let _ = up.send_to(&request, &upstream).await;
                let mut answer = vec![0u8; 65536];
                if let Ok(Ok(m)) = tokio::time::timeout(Duration::from_secs(2), up.recv(&mut answer)).await {
                    if i == 0 {
                        tokio::time::sleep(Duration::from_millis(1500)).await;
                    }
                    let _ = relay.send_to(&answer[..m], from).await;
                }
            });
        }
    });
    let prober = SnmpProber::new();
    let snmp = v2c(relay_port);
    let first = prober
        .check("late", "127.0.0.1", &snmp, &get(&[SYS_UPTIME]), Duration::from_secs(1))
        .await;
    assert_eq!(first.status, Status::Unknown, "{}", first.output);
    tokio::time::sleep(Duration::from_millis(800)).await; // the late answer arrives meanwhile
    let second = prober
        .check(
            "late",
            "127.0.0.1",
            &snmp,
            &get(&[SYS_LOCATION]),
            Duration::from_secs(1),
        )
        .await;
    assert_eq!(second.status, Status::Ok, "{}", second.output);
    assert!(second.output.contains(LOCATION), "{}", second.output);
}

fn recorded(device: &str, port: u16) -> Snmp {
    Snmp {
        community: Some(Secret::new(device)),
        ..v2c(port)
    }
}

#[tokio::test]
#[ignore = "needs snmpsim: bash .ci/run installs it and runs this"]
async fn snmp_recorded_cisco_switch_and_linux_host() {
    let sim = Snmpsim::start();
    let prober = SnmpProber::new();
    let timeout = Duration::from_secs(5);
    let r = prober
        .check(
            "c",
            "127.0.0.1",
            &recorded(CISCO_C3560, sim.port),
            &get(&["1.3.6.1.2.1.1.1.0", "1.3.6.1.2.1.1.2.0"]),
            timeout,
        )
        .await;
    assert_eq!(r.status, Status::Ok, "{}", r.output);
    assert!(r.output.contains("C3560 Software"), "{}", r.output);
    assert!(r.output.contains("1.3.6.1.4.1.9.1.617"), "{}", r.output);
    // ifDescr and the whole interfaces table, as net-snmp walks them.
    for root in [IF_DESCR, "1.3.6.1.2.1.2.2"] {
        let r = prober
            .check("c", "127.0.0.1", &recorded(CISCO_C3560, sim.port), &walk(root), timeout)
            .await;
        assert_eq!(r.status, Status::Ok, "{}", r.output);
        let expected = netsnmp_walk_count_as(sim.port, "2c", CISCO_C3560, root);
        assert!(expected > 50, "{root}: {expected}");
        assert_eq!(r.metrics["values"], expected as f64, "{root}");
    }
    let r = prober
        .check(
            "l",
            "127.0.0.1",
            &recorded(LINUX_HOST, sim.port),
            &get(&["1.3.6.1.2.1.1.1.0"]),
            timeout,
        )
        .await;
    assert_eq!(r.status, Status::Ok, "{}", r.output);
    assert!(r.output.contains("Linux DummySystem"), "{}", r.output);
    let r = prober
        .check(
            "l",
            "127.0.0.1",
            &recorded(LINUX_HOST, sim.port),
            &walk("1.3.6.1.2.1.1"),
            timeout,
        )
        .await;
    assert_eq!(
        r.metrics["values"],
        netsnmp_walk_count_as(sim.port, "2c", LINUX_HOST, "1.3.6.1.2.1.1") as f64
    );
}

#[tokio::test]
#[ignore = "needs snmpsim: bash .ci/run installs it and runs this"]
async fn snmp_v3_context_selects_the_recorded_device() {
    let sim = Snmpsim::start();
    let snmp = Snmp {
        version: SnmpVersion::V3,
        port: Some(sim.port),
        community: None,
        user: Some("simulator".into()),
        level: Some(snbox::document::SecurityLevel::AuthNoPriv),
        auth_protocol: Some(snbox::document::AuthProtocol::Sha1),
        auth_key: Some(Secret::new("auctoritas")),
        priv_protocol: None,
        priv_key: None,
        context: Some(CISCO_C3560.into()),
    };
    let r = SnmpProber::new()
        .check(
            "v3",
            "127.0.0.1",
            &snmp,
            &get(&["1.3.6.1.2.1.1.1.0"]),
            Duration::from_secs(5),
        )
        .await;
    assert_eq!(r.status, Status::Ok, "{}", r.output);
    assert!(r.output.contains("C3560"), "{}", r.output);
}

#[tokio::test]
#[ignore = "needs snmpd: bash .ci/run installs it and runs this"]
async fn snmp_v3_first_check_after_an_agent_restart_rediscovers_the_engine() {
    let agent = Snmpd::start();
    let port = agent.port;
    let prober = SnmpProber::new();
    let user = v3(port, "sha256-aes");
    let r = prober
        .check("v3", "127.0.0.1", &user, &get(&[SYS_LOCATION]), TIMEOUT)
        .await;
    assert_eq!(r.status, Status::Ok, "{}", r.output);
    let _agent = agent.restart();
    let r = prober
        .check("v3", "127.0.0.1", &user, &get(&[SYS_LOCATION]), TIMEOUT)
        .await;
    assert_eq!(r.status, Status::Ok, "the first check after the restart: {}", r.output);
}

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

/// A re-plan that changes a device's credentials or removes it drops its session (and socket)
/// and its services' counter samples: 100 re-plans leave the descriptors where they were.
#[tokio::test]
#[ignore = "needs snmpd: bash .ci/run installs it and runs this"]
async fn replans_with_changing_credentials_leave_no_sessions_behind() {
    use snbox::schedule::{Probers, Runner as _};
    let communities: Vec<String> = (0..10).map(|i| format!("c{i}-7f3a")).collect();
    let names: Vec<&str> = communities.iter().map(String::as_str).collect();
    let agent = Snmpd::start_with_communities(&names);
    let probers = Probers::new(&snbox::settings::Limits::default());
    let params = get(&[SYS_UPTIME]);
    let mut baseline = None;
    for round in 0..100 {
        let community = &communities[round % communities.len()];
        let mut doc = common::seed_doc("partner");
        common::push(
            &mut doc,
            "service_templates",
            serde_json::json!({ "id": "up", "owner": null, "kind": "snmp", "criticality": "low",
                "availability_rate": 99.0, "availability_period": "24x7", "control_period": "24x7",
                "interval_s": 60, "params": { "oid": SYS_UPTIME } }),
        );
        common::push(
            &mut doc,
            "devices",
            serde_json::json!({ "id": format!("d{round}"), "node": "site1", "name": "D", "address": "127.0.0.1",
                "snmp": { "version": "2c", "port": agent.port, "community": community } }),
        );
        common::push(
            &mut doc,
            "services",
            serde_json::json!({ "id": format!("d{round}-up"), "device": format!("d{round}"), "template": "up" }),
        );
        let plan = common::plan(&doc);
        probers.retain_for(&plan);
        let r = probers
            .snmp
            .check(
                &format!("d{round}-up"),
                "127.0.0.1",
                &peers::v2c(agent.port, community),
                &params,
                TIMEOUT,
            )
            .await;
        assert_eq!(r.status, Status::Ok, "{}", r.output);
        let open = open_descriptors();
        let first = *baseline.get_or_insert(open);
        assert!(
            open <= first + 2,
            "round {round}: {open} descriptors open, {first} after the first"
        );
    }
}
