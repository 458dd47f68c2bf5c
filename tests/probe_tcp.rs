//! The TCP probe (protocol.md §3 `tcp`) against real servers on loopback: the tests' HTTP(S)
//! server (generated certificates), a refused port, a port that accepts and never answers, and
//! a host that never answers in a network namespace of the test's own.

#[path = "common/http_server.rs"]
mod http_server;
#[path = "common/peers.rs"]
mod peers;

use std::time::{Duration, Instant};

use serde_json::json;

use http_server::{Cert, start};
use snbox::document::params::{self, TcpParams};
use snbox::probe::tcp::TcpProber;
use snbox::probe::{CheckResult, Status};

fn params(v: serde_json::Value) -> TcpParams {
    params::parse(v).expect("valid params")
}

async fn check(port: u16, v: serde_json::Value) -> CheckResult {
    let mut v = v;
    v["port"] = json!(port);
    TcpProber::new()
        .check("127.0.0.1", &params(v), Duration::from_secs(2))
        .await
}

const GET: &str = "GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";

#[tokio::test]
async fn tcp_connects_sends_and_finds_the_expected_answer() {
    let server = start(None).await;
    let port = server.addr.port();
    let r = check(port, json!({})).await;
    assert_eq!(r.status, Status::Ok, "{r:?}");
    assert!(r.metrics.contains_key("time_ms"));
    let r = check(port, json!({ "send": GET, "expect": "HTTP/1." })).await;
    assert_eq!(r.status, Status::Ok, "{r:?}");
    let r = check(port, json!({ "send": GET, "expect_regex": "^HTTP/1\\.[01] 200" })).await;
    assert_eq!(r.status, Status::Ok, "{r:?}");
    let r = check(port, json!({ "send": GET, "expect": "SSH-2.0" })).await;
    assert_eq!(r.status, Status::Critical, "{r:?}");
    assert!(
        r.output.contains("\"SSH-2.0\" not in the answer \"HTTP/1.1"),
        "{}",
        r.output
    );
    // Any exchange takes more than 0 ms: the limits are judged on the whole exchange.
    let r = check(port, json!({ "warn_ms": 0.0 })).await;
    assert_eq!(r.status, Status::Warning, "{r:?}");
}

#[tokio::test]
async fn tcp_refused_is_critical_at_once() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a port")
        .port(); // closed again: nothing listens
    let started = Instant::now();
    let r = check(port, json!({})).await;
    assert_eq!(r.status, Status::Critical, "{r:?}");
    assert!(r.output.contains("cannot connect"), "{}", r.output);
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn tcp_a_port_that_never_answers_is_critical_within_the_timeout() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("addr").port();
    let started = Instant::now();
    let r = check(port, json!({ "send": "HELO\r\n", "expect": "250" })).await;
    let took = started.elapsed();
    assert_eq!(r.status, Status::Critical, "{r:?}");
    assert!(r.output.contains("no answer within 2 s"), "{}", r.output);
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(3),
        "{took:?}"
    );
    drop(silent);
}

#[tokio::test]
async fn tcp_tls_reports_the_days_left_and_verifies_the_certificate() {
    let server = start(Some(Cert::ExpiresIn(10))).await;
    let port = server.addr.port();
    let r = check(
        port,
        json!({ "tls": true, "insecure_tls": true, "tls_warn_days": 30, "tls_crit_days": 5,
                "send": GET, "expect": "HTTP/1." }),
    )
    .await;
    assert_eq!(r.status, Status::Warning, "{r:?}");
    let days = r.metrics["tls_days_left"];
    assert!((9.0..=10.0).contains(&days), "{days}");
    assert!(r.output.contains("certificate expires in"), "{}", r.output);
    // Verified: the tests' CA is not among the system's, so the handshake is refused…
    let r = check(port, json!({ "tls": true })).await;
    assert_eq!(r.status, Status::Critical, "{r:?}");
    assert!(r.output.contains("TLS handshake failed"), "{}", r.output);
    // …unless the check trusts it.
    let ca = server.ca_file.as_ref().expect("CA").display().to_string();
    let r = check(port, json!({ "tls": true, "ca_file": ca, "tls_warn_days": 30 })).await;
    assert_eq!(r.status, Status::Warning, "verified, 10 days left: {r:?}");
}

#[tokio::test]
async fn tcp_tls_refuses_an_expired_certificate_and_one_for_another_host() {
    for (cert, why) in [(Cert::Expired, "expired"), (Cert::WrongHost, "another host")] {
        let server = start(Some(cert)).await;
        let ca = server.ca_file.as_ref().expect("CA").display().to_string();
        let r = check(server.addr.port(), json!({ "tls": true, "ca_file": ca })).await;
        assert_eq!(r.status, Status::Critical, "{why}: {r:?}");
        assert!(r.output.contains("TLS handshake failed"), "{why}: {}", r.output);
    }
}

#[test]
fn tcp_params_are_checked_when_the_document_is_read() {
    let bad = |v: serde_json::Value| params::parse::<TcpParams>(v).err().map(|(field, _)| field);
    assert_eq!(bad(json!({ "port": 0 })), Some("port".into()));
    assert_eq!(bad(json!({ "port": 70000 })), Some("port".into()));
    assert_eq!(
        bad(json!({ "port": 25, "expect": "a", "expect_regex": "b" })),
        Some("expect_regex".into())
    );
    assert_eq!(bad(json!({ "port": 25, "tls_warn_days": 3 })), Some("tls".into()));
    assert_eq!(bad(json!({ "port": 25, "ca_file": "/etc/ca.pem" })), Some("tls".into()));
    assert_eq!(
        bad(json!({ "port": 25, "warn_ms": 10, "crit_ms": 5 })),
        Some("warn_ms".into())
    );
    assert_eq!(
        bad(json!({ "port": 25, "send": "x".repeat(5000) })),
        Some("send".into())
    );
    assert!(
        params::parse::<TcpParams>(json!({})).is_ok(),
        "a template may leave the port to its services"
    );
}

#[tokio::test]
async fn tcp_status_port_is_the_boxs_own_status_endpoint_whatever_the_device() {
    let server = start(None).await;
    let p: TcpParams = params(json!({ "port": "{status}", "send": GET, "expect": "hello ok" }));
    // The device's address is not used: nothing listens on 127.0.0.99.
    let r = TcpProber::new()
        .with_status_endpoint(server.addr)
        .check("127.0.0.99", &p, Duration::from_secs(2))
        .await;
    assert_eq!(r.status, Status::Ok, "{r:?}");
    // Outside the daemon there is no status endpoint: said, not guessed.
    let r = TcpProber::new().check("127.0.0.1", &p, Duration::from_secs(2)).await;
    assert_eq!(r.status, Status::Unknown, "{r:?}");
    let e = params::parse::<TcpParams>(json!({ "port": "{other}" })).expect_err("not a port");
    assert!(e.1.contains("not a port"), "{e:?}");
}

#[test]
#[ignore = "needs root (a network namespace): bash .ci/run runs it"]
fn tcp_a_host_that_never_answers_in_a_namespace_is_critical_at_the_timeout() {
    // In a namespace of our own, 192.0.2.2 is on the link of a veth pair whose other end has no
    // address: the SYN waits for an ARP answer that never comes, and nothing leaves the
    // namespace.
    let ns = peers::Netns::silent_lan("tcpsilent");
    let started = Instant::now();
    let out = ns
        .command(env!("CARGO_BIN_EXE_snbox"))
        .args([
            "probe",
            "tcp",
            "192.0.2.2",
            "--port",
            "443",
            "--timeout",
            "2",
            "--format",
            "json",
        ])
        .output()
        .expect("snbox probe runs");
    let took = started.elapsed();
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(r["status"], "critical", "{r}");
    assert!(
        r["output"].as_str().is_some_and(|o| o.contains("no answer within 2 s")),
        "{r}"
    );
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(4),
        "{took:?}"
    );
}
