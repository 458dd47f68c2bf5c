//! `snbox discover` (protocol.md §8) against real peers on loopback: snmpd agents with
//! different communities and a v3 user, snmpsim serving a Cisco switch's recording, a TCP
//! listener that counts what reaches it (the pace, and nothing outside the range), a silent
//! range in a network namespace, and ranges over the limit.

#[path = "common/peers.rs"]
mod peers;

use std::net::{IpAddr, TcpListener};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

fn discover(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_snbox"))
        .arg("discover")
        .args(args)
        .output()
        .expect("snbox discover runs")
}

fn json_of(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "snbox discover failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

#[test]
fn census_ranges_over_65536_addresses_are_refused_with_a_clear_message() {
    for ranges in [
        vec!["10.0.0.0/15"],
        vec!["10.0.0.0/16", "10.1.0.0-10.1.0.0"],
        vec!["fd00::/112", "fd01::/127"],
    ] {
        let out = discover(&ranges);
        assert_eq!(out.status.code(), Some(2), "{ranges:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("more than the 65536"), "{err}");
    }
    let out = discover(&["printer.local"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a range"));
}

/// A TCP listener on every loopback address at one port: when and where each connection came.
fn count_connections(listener: TcpListener, expected: usize, within: Duration) -> Vec<(Instant, IpAddr)> {
    listener.set_nonblocking(true).expect("nonblocking");
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    while seen.len() < expected && Instant::now() < deadline {
        match listener.accept() {
            Ok((stream, _)) => {
                let to = stream.local_addr().expect("local address").ip();
                seen.push((Instant::now(), to));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
    seen
}

#[test]
fn census_never_probes_faster_than_its_rate_and_never_outside_its_range() {
    let listener = TcpListener::bind("0.0.0.0:0").expect("listener");
    let port = listener.local_addr().expect("port").port();
    let counter = std::thread::spawn(move || count_connections(listener, 64, Duration::from_secs(60)));
    let started = Instant::now();
    let out = discover(&[
        "127.66.1.0/26",
        "--rate",
        "40",
        "--ports",
        &port.to_string(),
        "--community",
        "nobody-listens",
        "--snmp-port",
        "9",
        "--format",
        "json",
    ]);
    let took = started.elapsed();
    let report = json_of(&out);
    let seen = counter.join().expect("counter");
    // Every address reached once at that port, and only addresses of the range.
    assert_eq!(seen.len(), 64, "{report:#}");
    for (_, to) in &seen {
        let to = to.to_string();
        assert!(
            to.starts_with("127.66.1.") && to["127.66.1.".len()..].parse::<u8>().is_ok_and(|n| n < 64),
            "{to}"
        );
    }
    // Never more than 40 in a second, as the listener saw them.
    for (i, (at, _)) in seen.iter().enumerate() {
        let in_second = seen[i..]
            .iter()
            .take_while(|(t, _)| *t < *at + Duration::from_secs(1))
            .count();
        assert!(in_second <= 40, "{in_second} connections in the second from the {i}th");
    }
    // The echoes and SNMP requests share the pace: 64 × 3 probes at 40/s take at least 3.8 s
    // (64 × 2 in 2.2 s when this user may not send echoes).
    let least = if report["icmp_error"].is_null() { 3800 } else { 2200 };
    assert!(
        took >= Duration::from_millis(least),
        "{took:?}, {}",
        report["icmp_error"]
    );
    assert_eq!(report["addresses"], 64);
    assert_eq!(report["probed"], 64);
    assert_eq!(report["complete"], true);
    let hosts = report["hosts"].as_array().expect("hosts");
    assert_eq!(hosts.len(), 64, "each answered on the port");
    assert!(hosts.iter().all(|h| h["open_ports"] == serde_json::json!([port])));
    // The community is never printed.
    assert!(!String::from_utf8_lossy(&out.stdout).contains("nobody-listens"));
}

#[test]
#[ignore = "needs root (ICMP), snmpd and snmpsim (Debian snmpd, PyPI snmpsim)"]
fn census_finds_agents_by_community_and_v3_user_and_reads_a_cisco_interface_table() {
    let port = peers::free_udp_port();
    let _a = peers::Snmpd::start_at("127.66.0.10", port, &["Census-A-1f"], false);
    let _b = peers::Snmpd::start_at("127.66.0.11", port, &["Census-B-2e"], false);
    let _v3 = peers::Snmpd::start_at("127.66.0.12", port, &[], false);
    let _switch = peers::Snmpsim::start_at("127.66.0.20", port);
    let (user, _, _, auth_key, _, priv_key) = peers::V3_USERS[2]; // sha256-aes, authPriv
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_snbox"))
        .args([
            "discover",
            "127.66.0.0/24",
            "--community",
            "Census-A-1f",
            "--community",
            "Census-B-2e",
        ])
        .args(["--community", peers::CISCO_C3560])
        .args([
            "--v3-user",
            user,
            "--v3-level",
            "authPriv",
            "--v3-auth-protocol",
            "sha256",
        ])
        .args(["--v3-priv-protocol", "aes", "--snmp-port", &port.to_string()])
        .args([
            "--ports",
            "none",
            "--rate",
            "1000",
            "--format",
            "json",
            "--suggest",
            "ping,uptime",
        ])
        .env("SNBOX_SNMP_AUTH_KEY", auth_key)
        .env("SNBOX_SNMP_PRIV_KEY", priv_key)
        .output()
        .expect("snbox discover runs");
    eprintln!("census took {:?}", started.elapsed());
    let report = json_of(&out);
    let hosts = report["hosts"].as_array().expect("hosts");
    assert_eq!(hosts.len(), 256, "every loopback address answers the echo");
    let host = |last: u8| {
        hosts
            .iter()
            .find(|h| h["address"] == format!("127.66.0.{last}"))
            .unwrap_or_else(|| panic!("127.66.0.{last} in {report:#}"))
    };
    let a = &host(10)["snmp"];
    assert_eq!(
        (a["version"].clone(), a["community"].clone()),
        (serde_json::json!("2c"), serde_json::json!(1))
    );
    assert_eq!(a["sys_location"], peers::LOCATION);
    assert_eq!(a["sys_name"], "snmpd-127.66.0.10");
    assert!(a["interfaces"].as_array().is_some_and(|i| !i.is_empty()), "{a:#}");
    assert_eq!(host(10)["category"], "server", "net-snmp on Linux");
    assert_eq!(host(11)["snmp"]["community"], 2);
    let v3 = &host(12)["snmp"];
    assert_eq!(
        (v3["version"].clone(), v3["user"].clone()),
        (serde_json::json!("3"), serde_json::json!(user))
    );
    assert_eq!(v3["community"], Value::Null);
    let switch = &host(20);
    assert_eq!(switch["snmp"]["community"], 3);
    assert!(
        switch["snmp"]["sys_object_id"]
            .as_str()
            .is_some_and(|o| o.starts_with("1.3.6.1.4.1.9."))
    );
    assert_eq!(switch["category"], "network");
    let interfaces = switch["snmp"]["interfaces"].as_array().expect("interfaces");
    assert!(interfaces.len() > 10, "a switch's ports: {}", interfaces.len());
    let named = interfaces
        .iter()
        .filter(|i| i["name"].is_string() && i["descr"].is_string())
        .count();
    assert!(named > 10, "{interfaces:?}");
    assert!(interfaces.iter().any(|i| i["oper_status"] == "up") && interfaces.iter().any(|i| i["speed_bps"].is_u64()));
    assert!(host(30)["snmp"].is_null(), "no agent there");
    // Never a community or a key in the output.
    let text = String::from_utf8_lossy(&out.stdout);
    for secret in ["Census-A-1f", "Census-B-2e", auth_key, priv_key] {
        assert!(!text.contains(secret), "{secret} printed");
    }
    // The document fragment: devices with their credential named, services per template.
    let suggested = &report["suggested"];
    let devices = suggested["devices"].as_array().expect("devices");
    let a = devices
        .iter()
        .find(|d| d["address"] == "127.66.0.10")
        .expect("device a");
    assert_eq!(a["snmp"]["community"], "{community-1}");
    assert_eq!(a["category"], "server");
    let v3 = devices
        .iter()
        .find(|d| d["address"] == "127.66.0.12")
        .expect("device v3");
    assert_eq!(v3["snmp"]["auth_key"], "{v3-auth-key}");
    let services = suggested["services"].as_array().expect("services");
    assert_eq!(services.len(), devices.len() * 2);
    // The table: one line per host, readable.
    let table = Command::new(env!("CARGO_BIN_EXE_snbox"))
        .args([
            "discover",
            "127.66.0.8-127.66.0.12",
            "--community",
            "Census-A-1f",
            "--ports",
            "none",
        ])
        .args(["--snmp-port", &port.to_string()])
        .output()
        .expect("snbox discover runs");
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("127.66.0.10") && table.contains("v2c #1") && table.contains("snmpd-127.66.0.10"),
        "{table}"
    );
}

#[test]
#[ignore = "needs root (a network namespace)"]
fn census_of_a_silent_range_ends_within_its_timeout() {
    let ns = peers::Netns::silent_lan("census");
    // A census of 64 addresses where nothing answers (ARP goes unanswered): every probe times out.
    let silent = |flags: &[&str]| {
        let started = Instant::now();
        let out = ns
            .command(env!("CARGO_BIN_EXE_snbox"))
            .args(["discover", "192.0.2.64/26", "--snmp-all", "--format", "json"])
            .args(flags)
            .output()
            .expect("snbox discover runs");
        (json_of(&out), started.elapsed())
    };
    let (report, took) = silent(&["--ports", "443", "--probe-timeout-ms", "500", "--timeout", "20"]);
    assert_eq!(report["hosts"], serde_json::json!([]));
    assert_eq!(report["complete"], true);
    assert!(took < Duration::from_secs(20), "{took:?}");
    // Cut short by its own deadline: what it found so far, said to be incomplete.
    let (report, took) = silent(&["--rate", "20", "--timeout", "1"]);
    assert_eq!(report["complete"], false);
    assert!(report["probed"].as_u64().is_some_and(|p| p < 64), "{report}");
    assert!(took < Duration::from_secs(3), "{took:?}");
}
