//! `snbox probe icmp|snmp|http` as the technician runs it: the JSON shape of protocol.md §2,
//! secrets taken from the environment and never printed, bad arguments refused with exit 2.

#[path = "common/http_server.rs"]
mod http_server;
#[path = "common/peers.rs"]
mod peers;

use std::process::Output;

use serde_json::Value;
use tokio::process::Command;

async fn snbox(args: &[&str], envs: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_snbox"))
        .args(args)
        .env_remove("SNBOX_SNMP_COMMUNITY")
        .envs(envs.iter().copied())
        .output()
        .await
        .expect("snbox runs")
}

fn json(out: &Output) -> Value {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
    k.sort();
    k
}

#[tokio::test]
async fn probe_json_has_exactly_the_fields_of_the_protocol() {
    let server = http_server::start(None).await;
    let url = server.url("/ok");
    assert_json_fields(&["probe", "http", url.as_str(), "--format", "json"]).await;
}

#[tokio::test]
async fn probe_tcp_json_has_exactly_the_fields_of_the_protocol() {
    let server = http_server::start(None).await;
    let port = server.addr.port().to_string();
    let args = [
        "probe",
        "tcp",
        "127.0.0.1",
        "--port",
        &port,
        "--send",
        "GET / HTTP/1.0\\r\\n\\r\\n",
        "--expect",
        "HTTP/1.",
        "--format",
        "json",
    ];
    assert_json_fields(&args).await;
}

#[tokio::test]
#[ignore = "needs root or unprivileged ICMP (net.ipv4.ping_group_range): bash .ci/run runs it"]
async fn probe_icmp_json_has_exactly_the_fields_of_the_protocol() {
    assert_json_fields(&["probe", "icmp", "127.0.0.1", "--packets", "1", "--format", "json"]).await;
}

async fn assert_json_fields(args: &[&str]) {
    let v = json(&snbox(args, &[]).await);
    assert_eq!(keys(&v), ["duration_ms", "metrics", "output", "status"], "{v}");
    assert_eq!(v["status"], "ok", "{v}");
    assert!(v["duration_ms"].as_f64().is_some_and(|d| d > 0.0), "{v}");
}

#[tokio::test]
#[ignore = "needs snmpd: bash .ci/run installs it and runs this"]
async fn probe_snmp_takes_the_community_from_the_environment_and_never_prints_it() {
    let agent = peers::Snmpd::start();
    let port = agent.port.to_string();
    let args = [
        "probe",
        "snmp",
        "127.0.0.1",
        "--port",
        &port,
        "--oid",
        "1.3.6.1.2.1.1.6.0",
        "--format",
        "json",
    ];
    let out = snbox(&args, &[("SNBOX_SNMP_COMMUNITY", peers::COMMUNITY)]).await;
    let v = json(&out);
    assert_eq!(v["status"], "ok", "{v}");
    assert!(v["output"].as_str().is_some_and(|o| o.contains(peers::LOCATION)), "{v}");
    // A wrong community: the agent stays silent, and no community is echoed anywhere.
    let out = snbox(
        &[&args[..], &["--timeout", "1"]].concat(),
        &[("SNBOX_SNMP_COMMUNITY", "Wr0ngCommunity-zz")],
    )
    .await;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("\"unknown\""), "{text}");
    assert!(
        !text.contains("Wr0ngCommunity") && !text.contains(peers::COMMUNITY),
        "{text}"
    );
    // ADDRESS:PORT as net-snmp's tools take it.
    let at = format!("127.0.0.1:{port}");
    let out = snbox(
        &["probe", "snmp", &at, "--oid", "1.3.6.1.2.1.1.6.0", "--format", "json"],
        &[("SNBOX_SNMP_COMMUNITY", peers::COMMUNITY)],
    )
    .await;
    assert_eq!(json(&out)["status"], "ok", "{}", String::from_utf8_lossy(&out.stdout));
}

#[tokio::test]
async fn probe_https_without_any_trusted_ca_says_so() {
    let server = http_server::start(Some(http_server::Cert::Valid)).await;
    let empty = tempfile::tempdir().expect("tempdir");
    let envs = [
        ("SSL_CERT_FILE", "/nonexistent/ca.pem"),
        ("SSL_CERT_DIR", empty.path().to_str().expect("utf-8")),
    ];
    let v = json(&snbox(&["probe", "http", &server.url("/ok"), "--format", "json"], &envs).await);
    assert_eq!(v["status"], "unknown", "{v}");
    assert!(
        v["output"]
            .as_str()
            .is_some_and(|o| o.contains("no trusted CA certificates")),
        "{v}"
    );
    // A CA file of its own still works there.
    let ca = server.ca_file.as_ref().expect("ca").display().to_string();
    let v = json(
        &snbox(
            &[
                "probe",
                "http",
                &server.url("/ok"),
                "--ca-file",
                &ca,
                "--format",
                "json",
            ],
            &envs,
        )
        .await,
    );
    assert_eq!(v["status"], "ok", "{v}");
}

#[tokio::test]
async fn probe_bad_arguments_exit_2_with_a_message() {
    for (args, says) in [
        (vec!["probe", "snmp", "127.0.0.1"], "--oid"),
        (
            vec!["probe", "snmp", "127.0.0.1", "--oid", "1.3.6.1", "--snmp-version", "3"],
            "--user",
        ),
        (
            vec!["probe", "icmp", "127.0.0.1", "--timeout", "0"],
            "above 0 and at most 3600",
        ),
        (
            vec!["probe", "icmp", "127.0.0.1", "--packets", "0"],
            "--packets: 0 is out of range",
        ),
        (
            vec!["probe", "icmp", "127.0.0.1", "--packets", "100000"],
            "--packets: 100000 is out of range",
        ),
        (vec!["probe", "snmp", "127.0.0.1", "--oid", "abc"], "--oid"),
        (
            vec![
                "probe",
                "snmp",
                "127.0.0.1:161",
                "--port",
                "162",
                "--oid",
                "1.3.6.1.2.1.1.3.0",
            ],
            "disagree",
        ),
        (
            vec!["probe", "http", "http://127.0.0.1:1/", "--body-regex", "("],
            "--body-regex: not a regular expression",
        ),
        (vec!["probe", "http", "file:///etc/passwd"], "URL: the scheme \"file\""),
        (
            vec!["probe", "http", "http://127.0.0.1:1/", "--method", "GE T"],
            "--method",
        ),
        (vec!["probe", "icmp", "not-an-address"], "invalid"),
        (
            vec![
                "probe",
                "snmp",
                "127.0.0.1",
                "--oid",
                "1.3",
                "--level",
                "superPriv",
                "--snmp-version",
                "3",
                "--user",
                "u",
            ],
            "--level",
        ),
        // snmp2 panics on an empty key: refused before it is reached.
        (
            vec![
                "probe",
                "snmp",
                "127.0.0.1",
                "--oid",
                "1.3",
                "--snmp-version",
                "3",
                "--user",
                "u",
                "--level",
                "authNoPriv",
                "--auth-protocol",
                "sha",
            ],
            "--auth-key",
        ),
        (
            vec![
                "probe",
                "snmp",
                "127.0.0.1",
                "--oid",
                "1.3",
                "--snmp-version",
                "3",
                "--user",
                "u",
                "--level",
                "authPriv",
                "--auth-protocol",
                "sha",
                "--auth-key",
                "",
                "--priv-protocol",
                "aes",
                "--priv-key",
                "",
            ],
            "--auth-key, --priv-key",
        ),
    ] {
        let out = snbox(&args, &[]).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
}
