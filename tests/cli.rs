//! The command line as operators use it: `snbox config check|explain`, exit codes (0 ok,
//! 2 bad input), every error listed with its path, TOML documents, and no secret in any output.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::json;

fn snbox(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_snbox"))
        .args(args)
        .env_remove("SNBOX_CONFIG")
        .output()
        .expect("snbox runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).expect("write");
    path
}

fn base_doc() -> serde_json::Value {
    json!({
        "version": "v1",
        "box": { "id": "bx", "node": "p" },
        "tree": [
            { "id": "p", "kind": "partner", "name": "P", "timezone": "Europe/Paris" },
            { "id": "c", "kind": "company", "name": "C", "parent": "p" },
            { "id": "s", "kind": "site", "name": "S", "parent": "c" }
        ],
        "time_ranges": [ { "id": "24x7", "owner": null, "name": "24x7",
            "weekly": [ { "days": ["mon","tue","wed","thu","fri","sat","sun"], "from": "00:00", "to": "24:00" } ] } ],
        "defaults": [
            { "node": null, "aspect": "control", "time_range": "24x7" },
            { "node": null, "aspect": "availability", "time_range": "24x7" },
            { "node": null, "aspect": "notification", "time_range": "24x7" }
        ],
        "service_templates": [
            { "id": "ping", "owner": null, "kind": "icmp", "criticality": "high", "availability_rate": 99.5,
              "availability_period": "24x7", "control_period": "24x7", "interval_s": 60 },
            { "id": "snmp", "owner": null, "kind": "snmp", "criticality": "low", "availability_rate": 99,
              "availability_period": "24x7", "control_period": "24x7", "interval_s": 300 },
            { "id": "web", "owner": null, "kind": "http", "criticality": "low", "availability_rate": 99,
              "availability_period": "24x7", "control_period": "24x7", "interval_s": 60 }
        ],
        "devices": [ { "id": "d", "node": "s", "name": "D", "address": "127.0.0.1" } ],
        "services": [ { "id": "d-ping", "device": "d", "template": "ping" } ]
    })
}

/// `config check` on a document; the combined output and the exit code.
fn check_doc(doc: &serde_json::Value) -> (String, i32) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), "doc.json", &doc.to_string());
    let out = snbox(&["config", "check", "--monitoring", path.to_str().expect("utf-8")]);
    (text(&out), out.status.code().unwrap_or(-1))
}

#[test]
fn config_check_accepts_the_shipped_settings_and_example() {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/snbox.toml");
    let out = snbox(&["config", "check", "--config", config.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("standalone.json: document standalone-example-1 is valid"));
}

#[test]
fn config_check_lists_every_error_with_its_path() {
    let mut doc = base_doc();
    let tree = doc["tree"].as_array_mut().expect("tree");
    tree.push(json!({ "id": "x", "kind": "company", "name": "X", "parent": "y" }));
    tree.push(json!({ "id": "y", "kind": "company", "name": "Y", "parent": "x" }));
    tree.push(json!({ "id": "s", "kind": "site", "name": "again", "parent": "c" }));
    tree.push(json!({ "id": "s2", "kind": "site", "name": "S2", "parent": "s" }));
    tree.push(json!({ "id": "z", "kind": "site", "name": "Z", "parent": "c", "timezone": "Europe/Pariss" }));
    doc["time_ranges"]
        .as_array_mut()
        .expect("list")
        .push(json!({ "id": "bad", "name": "bad", "weekly": [
        { "days": ["mon"], "from": "25:00", "to": "26:00" },
        { "days": ["tue"], "from": "18:00", "to": "08:00" }
    ] }));
    doc["devices"]
        .as_array_mut()
        .expect("list")
        .push(json!({ "id": "e", "node": "s", "name": "E", "address": "1", "snmp": { "version": "4" } }));
    doc["services"]
        .as_array_mut()
        .expect("list")
        .push(json!({ "id": "d-ping", "device": "d", "template": "ping", "params": { "packetz": 3 } }));
    let (out, code) = check_doc(&doc);
    assert_eq!(code, 2, "{out}");
    for expected in [
        "tree_cycle: tree[",
        "duplicate_id: tree[5].id: node id \"s\" is used more than once",
        "wrong_parent_kind: tree[6].parent: site \"s2\" cannot have the site \"s\" as parent",
        "unknown_timezone: tree[7].timezone: unknown time zone \"Europe/Pariss\"",
        "invalid_time: time_ranges[1].weekly[0].from: invalid time \"25:00\"",
        "invalid_time: time_ranges[1].weekly[0].to: invalid time \"26:00\"",
        "invalid_interval: time_ranges[1].weekly[1]: \"from\" 18:00 is not before \"to\" 08:00",
        "invalid_field: devices[1].snmp.version: unknown variant `4`",
    ] {
        assert!(out.contains(expected), "{expected:?} missing from:\n{out}");
    }
}

#[test]
fn config_check_reports_unknown_references_with_their_path() {
    let mut doc = base_doc();
    doc["defaults"]
        .as_array_mut()
        .expect("list")
        .push(json!({ "node": "c", "aspect": "control", "time_range": "nope" }));
    doc["service_templates"]
        .as_array_mut()
        .expect("list")
        .push(json!({ "id": "o", "owner": "c", "overrides": "ghost", "interval_s": 5 }));
    doc["services"]
        .as_array_mut()
        .expect("list")
        .push(json!({ "id": "x", "device": "d", "template": "ping", "params": { "packetz": 3 } }));
    doc["contact_groups"] = json!([{ "id": "g", "owner": "ghost-node", "name": "G", "members": [] }]);
    let (out, code) = check_doc(&doc);
    assert_eq!(code, 2, "{out}");
    for expected in [
        "unknown_time_range: defaults[3].time_range: unknown time range \"nope\"",
        "unknown_template: service_templates[3].overrides: unknown template \"ghost\"",
        "invalid_field: services[1].params.packetz: unknown field `packetz`",
        "unknown_owner: contact_groups[0].owner: unknown node \"ghost-node\"",
    ] {
        assert!(out.contains(expected), "{expected:?} missing from:\n{out}");
    }
}

#[test]
fn config_check_names_rejected_devices_and_strict_fails_on_them() {
    let mut doc = base_doc();
    doc["devices"]
        .as_array_mut()
        .expect("list")
        .push(json!({ "id": "lost", "node": "c9", "name": "L", "address": "127.0.0.2" }));
    let (out, code) = check_doc(&doc);
    assert_eq!(code, 0, "a rejected device never rejects the document: {out}");
    assert!(
        out.contains("devices[1].node: device \"lost\" rejected: unknown_node"),
        "{out}"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), "doc.json", &doc.to_string());
    let out = snbox(&[
        "config",
        "check",
        "--strict",
        "--monitoring",
        path.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn config_explain_of_an_invalid_document_lists_its_errors_and_exits_2() {
    let mut doc = base_doc();
    doc["tree"][2]["parent"] = json!("nowhere");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), "doc.json", &doc.to_string());
    let out = snbox(&["config", "explain", "--monitoring", path.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(2));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(report["version"], "v1");
    assert_eq!(
        report["errors"],
        json!(["unknown_parent: tree[2].parent: unknown node \"nowhere\""])
    );
    assert_eq!(report["devices"], json!([]));
    assert_eq!(report["services"], json!([]));
}

#[test]
fn config_explain_reports_syntax_errors_with_their_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), "doc.json", "{\n  \"version\": \"1\",\n  oops\n}");
    let out = snbox(&["config", "explain", "--monitoring", path.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(2));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(report["errors"][0], "syntax: line 3 column 3: key must be a string");
}

#[test]
fn config_explain_rejects_a_bad_instant() {
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/standalone.json");
    let out = snbox(&[
        "config",
        "explain",
        "--monitoring",
        doc.to_str().expect("utf-8"),
        "--at",
        "tomorrow",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("--at \"tomorrow\" is not an RFC 3339 instant"));
}

#[test]
fn toml_documents_read_like_json_ones() {
    let toml = r#"
version = "toml-1"
box = { id = "bx", node = "p" }

[[tree]]
id = "p"
kind = "partner"
name = "P"
timezone = "America/Martinique"

[[tree]]
id = "s"
kind = "company"
name = "C"
parent = "p"

[[time_ranges]]
id = "office"
name = "Office"
weekly = [ { days = ["mon", "tue", "wed", "thu", "fri"], from = "08:00", to = "18:00" } ]
exceptions = [ { date = 2026-12-25, closed = true } ]

[[defaults]]
aspect = "control"
time_range = "office"
[[defaults]]
aspect = "availability"
time_range = "office"
[[defaults]]
aspect = "notification"
time_range = "office"

[[service_templates]]
id = "ping"
kind = "icmp"
criticality = "high"
availability_rate = 99
availability_period = "office"
control_period = "office"
interval_s = 60
params = { packets = 3 }

[[devices]]
id = "d"
node = "s"
name = "D"
address = "127.0.0.1"

[[services]]
id = "d-ping"
device = "d"
template = "ping"
"#;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), "doc.toml", toml);
    let out = snbox(&[
        "config",
        "explain",
        "--monitoring",
        path.to_str().expect("utf-8"),
        "--at",
        "2026-12-25T13:00:00Z",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let d = &report["devices"][0];
    assert_eq!(d["timezone"], "America/Martinique");
    // Christmas is closed (an unquoted TOML date); Monday 28th opens at 08:00 -04:00.
    assert_eq!(d["control_period"]["active"], false);
    assert_eq!(d["control_period"]["next_change"], "2026-12-28T12:00:00+00:00");
    assert_eq!(report["services"][0]["availability_rate"]["value"], 99.0);
}

#[test]
fn toml_syntax_errors_do_not_echo_the_offending_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(
        dir.path(),
        "doc.toml",
        "version = \"1\"\n[devices.snmp]\ncommunity = \"Sup3rS3cretCommunity\n",
    );
    let out = snbox(&["config", "check", "--monitoring", path.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(2));
    let out = text(&out);
    assert!(out.contains("syntax: line 3"), "{out}");
    assert!(!out.contains("Sup3rS3cret"), "{out}");
}

#[test]
fn no_secret_from_the_document_appears_in_any_output() {
    let secrets = [
        "C0mmunity-7f1e2d",
        "AuthKey-9a8b7c6d",
        "PrivKey-1q2w3e4r",
        "HttpPass-z9y8x7",
    ];
    let mut doc = base_doc();
    doc["devices"] = json!([
        { "id": "v2", "node": "s", "name": "V2", "address": "127.0.0.1", "snmp": { "version": "2c", "community": secrets[0] } },
        { "id": "v3", "node": "s", "name": "V3", "address": "127.0.0.1", "snmp": { "version": "3", "user": "mon", "level": "authPriv",
          "auth_protocol": "sha256", "auth_key": secrets[1], "priv_protocol": "aes", "priv_key": secrets[2] } },
        // Wrong types: the error must not quote the value.
        { "id": "bad", "node": "s", "name": "B", "address": "127.0.0.1", "snmp": { "version": "2c", "community": 424242 } }
    ]);
    doc["services"] = json!([
        { "id": "v2-up", "device": "v2", "template": "snmp", "params": { "oid": "1.3.6.1.2.1.1.3.0" } },
        { "id": "v3-up", "device": "v3", "template": "snmp", "params": { "oid": "1.3.6.1.2.1.1.3.0" } },
        { "id": "web", "device": "v2", "template": "web", "params": { "url": "http://127.0.0.1/", "username": "u", "password": secrets[3] } }
    ]);
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = write(dir.path(), "bad.json", &doc.to_string());
    doc["devices"].as_array_mut().expect("list").pop();
    let good = write(dir.path(), "good.json", &doc.to_string());
    let (bad, good) = (bad.to_str().expect("utf-8"), good.to_str().expect("utf-8"));
    let runs = [
        snbox(&["config", "check", "--monitoring", bad]),
        snbox(&["config", "check", "--monitoring", good]),
        snbox(&["config", "explain", "--monitoring", good]),
        snbox(&[
            "config",
            "explain",
            "--monitoring",
            good,
            "--format",
            "text",
            "--at",
            "2026-12-01T00:00:00Z",
        ]),
        snbox(&["config", "explain", "--monitoring", bad]),
    ];
    assert_eq!(runs[0].status.code(), Some(2));
    assert!(
        text(&runs[0]).contains("devices[2].snmp.community: expected a string (the value is secret and not shown)")
    );
    assert!(!text(&runs[0]).contains("424242"));
    assert_eq!(runs[2].status.code(), Some(0), "{}", text(&runs[2]));
    for (i, out) in runs.iter().enumerate() {
        for secret in secrets {
            assert!(!text(out).contains(secret), "run {i} shows {secret}:\n{}", text(out));
        }
    }
}

#[test]
fn settings_errors_are_all_listed_and_tokens_never_shown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(
        dir.path(),
        "snbox.toml",
        r#"
timezone = "Mars/Base"
colour = "blue"
[standalone]
document = "doc.json"
[central]
url = "http://central.example.net/api"
[status]
listen = "localhost"
[[status.tokens]]
token = "short-Tok3n"
[log]
level = "loud"
"#,
    );
    let out = snbox(&["config", "check", "--config", path.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(2));
    let out = text(&out);
    for expected in [
        "invalid_field: colour: unknown setting",
        "unknown_timezone: timezone: unknown time zone \"Mars/Base\"",
        "invalid_value: central: [standalone] and [central] exclude each other",
        "invalid_value: status.listen: \"localhost\" is not an address:port",
        "invalid_value: status.tokens[0].token: a status token needs at least 16 characters",
        "invalid_value: log.level: unknown level \"loud\"",
    ] {
        assert!(out.contains(expected), "{expected:?} missing from:\n{out}");
    }
    assert!(!out.contains("short-Tok3n"), "{out}");
}

#[test]
fn central_url_over_http_is_refused_unless_loopback() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (url, ok) in [
        ("http://central.example.net/api/box/v1", false),
        ("http://127.0.0.1:8443/api/box/v1", true),
        ("http://[::1]:8443/api/box/v1", true),
        ("https://central.example.net/api/box/v1", true),
        ("ftp://central.example.net/", false),
    ] {
        let path = write(dir.path(), "snbox.toml", &format!("[central]\nurl = \"{url}\"\n"));
        let out = snbox(&["config", "check", "--config", path.to_str().expect("utf-8")]);
        assert_eq!(out.status.code() == Some(0), ok, "{url}: {}", text(&out));
    }
}

#[test]
fn zones_resolve_without_a_system_tz_database() {
    // jiff reads the system database from TZDIR; pointing it at an empty folder leaves only
    // the bundled copy, as on a box without /usr/share/zoneinfo.
    let dir = tempfile::tempdir().expect("tempdir");
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/seed-example.json");
    let out = Command::new(env!("CARGO_BIN_EXE_snbox"))
        .args([
            "config",
            "explain",
            "--monitoring",
            doc.to_str().expect("utf-8"),
            "--at",
            "2027-03-28T00:30:00Z",
        ])
        .env("TZDIR", dir.path())
        .env_remove("SNBOX_CONFIG")
        .output()
        .expect("snbox runs");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(report["devices"][1]["timezone"], "America/Martinique");
    assert_eq!(
        report["devices"][0]["control_period"]["next_change"],
        "2027-03-28T02:00:00+00:00"
    );
}

/// A document whose check and explain print far more than a pipe holds: rejected services.
fn chatty_doc(dir: &Path) -> PathBuf {
    let mut doc = base_doc();
    let services: Vec<serde_json::Value> = (0..3000)
        .map(|i| json!({ "id": format!("s{i}"), "device": "nowhere", "template": "ping" }))
        .collect();
    doc["services"] = json!(services);
    write(dir, "chatty.json", &doc.to_string())
}

/// `snbox … | head -1`: the reader goes away; the command ends quietly, not with an abort.
#[test]
fn every_command_ends_quietly_when_its_reader_closes_the_pipe() {
    let dir = tempfile::tempdir().expect("tempdir");
    let doc = chatty_doc(dir.path());
    let doc = doc.to_str().expect("utf-8");
    for args in [
        vec!["config", "check", "--monitoring", doc],
        vec!["config", "explain", "--monitoring", doc],
        vec!["config", "explain", "--monitoring", doc, "--format", "text"],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_snbox"))
            .args(&args)
            .env_remove("SNBOX_CONFIG")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("snbox runs");
        drop(child.stdout.take()); // the reader goes away before (or while) snbox writes
        let out = child.wait_with_output().expect("exit");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(141), "{args:?}: {err}");
        assert!(
            !err.contains("panicked") && !err.contains("failed printing"),
            "{args:?}: {err}"
        );
        assert!(err.is_empty(), "{args:?} says something about a closed pipe: {err}");
    }
}

#[test]
fn a_file_past_its_size_limit_is_refused_with_the_limit_named() {
    let started = std::time::Instant::now();
    let out = snbox(&["config", "check", "--monitoring", "/dev/zero"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("larger than 134217728 bytes (limits.max_document_bytes)"),
        "{}",
        text(&out)
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "read past the limit"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = write(
        dir.path(),
        "snbox.toml",
        "state_dir = \"state\"\n[limits]\nmax_document_bytes = 2048\n",
    );
    let mut doc = base_doc();
    doc["devices"][0]["name"] = json!("x".repeat(4096));
    let big = write(dir.path(), "big.json", &doc.to_string());
    let out = snbox(&[
        "config",
        "check",
        "--config",
        settings.to_str().expect("utf-8"),
        "--monitoring",
        big.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("larger than 2048 bytes"), "{}", text(&out));
    let out = snbox(&["config", "check", "--config", "/dev/zero"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("the largest settings file"), "{}", text(&out));
}

#[test]
fn a_utf8_byte_order_mark_is_not_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let doc = write(dir.path(), "bom.json", &format!("\u{feff}{}", base_doc()));
    let out = snbox(&["config", "check", "--monitoring", doc.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let settings = write(
        dir.path(),
        "bom.toml",
        "\u{feff}state_dir = \"state\"\n[standalone]\ndocument = \"bom.json\"\n",
    );
    let out = snbox(&["config", "check", "--config", settings.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

/// Values that could only fail at run time are refused by `config check`, each with its path
/// (the params are read once, at plan time, into what the probes use).
#[test]
fn config_check_refuses_what_can_never_work_with_its_path() {
    let mut doc = base_doc();
    let templates = doc["service_templates"].as_array_mut().expect("templates");
    templates.push(
        json!({ "id": "bad-oid", "owner": null, "kind": "snmp", "criticality": "low",
        "availability_rate": 99, "availability_period": "24x7", "control_period": "24x7",
        "interval_s": 4294967295u32, "params": { "oid": "1.3.6.1.two" } }),
    );
    templates.push(
        json!({ "id": "many", "owner": null, "kind": "icmp", "criticality": "low",
        "availability_rate": 99, "availability_period": "24x7", "control_period": "24x7",
        "params": { "packets": 1000000000u32 } }),
    );
    let services = doc["services"].as_array_mut().expect("services");
    services.push(json!({ "id": "re", "device": "d", "template": "web", "params": { "body_regex": "(" } }));
    services.push(json!({ "id": "file", "device": "d", "template": "web", "params": { "url": "file:///etc/passwd" } }));
    services.push(json!({ "id": "order", "device": "d", "template": "ping", "params": { "warn_rtt_ms": 500.0, "crit_rtt_ms": 100.0 } }));
    services.push(json!({ "id": "verb", "device": "d", "template": "web", "params": { "method": "GE T" } }));
    let (out, code) = check_doc(&doc);
    assert_eq!(code, 2, "{out}");
    for expected in [
        "service_templates[3].interval_s: 4294967295 is out of range: from 1 to 86400",
        "service_templates[3].params.oid: \"1.3.6.1.two\" is not an OID",
        "service_templates[4].params.packets: 1000000000 is out of range: from 1 to 100",
        "services[1].params.body_regex: not a regular expression",
        "services[2].params.url: the scheme \"file\" is not checked",
        "services[3].params.warn_rtt_ms: 500 is beyond crit_rtt_ms 100",
        "services[4].params.method: \"GE T\" is not an HTTP method",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
}

/// An address is an IP address or a host name (resolved at each check; `--resolve` tries it
/// here); anything else rejects the device.
#[test]
fn config_check_rejects_a_device_address_that_is_neither_an_ip_nor_a_host_name() {
    let mut doc = base_doc();
    let devices = doc["devices"].as_array_mut().expect("devices");
    for (id, address) in [
        ("url", "http://10.0.0.1/"),
        ("port", "127.0.0.1:161"),
        ("space", "core switch"),
        ("dots", "10.0.0"),
    ] {
        devices.push(json!({ "id": id, "node": "s", "name": id, "address": address }));
    }
    devices.push(json!({ "id": "named", "node": "s", "name": "n", "address": "not-an-ip" }));
    devices.push(json!({ "id": "local", "node": "s", "name": "l", "address": "localhost" }));
    let (out, code) = check_doc(&doc);
    assert_eq!(
        code, 0,
        "rejected devices are listed, not fatal without --strict: {out}"
    );
    for i in 1..=4 {
        assert!(
            out.contains(&format!("devices[{i}].address: device")) && out.contains("rejected: invalid_field:address"),
            "devices[{i}] in:\n{out}"
        );
    }
    assert!(
        !out.contains("devices[5].address") && !out.contains("devices[6].address"),
        "{out}"
    );
    // localhost resolves from /etc/hosts: no DNS query leaves the machine.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut doc = base_doc();
    doc["devices"][0]["address"] = json!("localhost");
    let path = write(dir.path(), "doc.json", &doc.to_string());
    let out = snbox(&[
        "config",
        "check",
        "--resolve",
        "--strict",
        "--monitoring",
        path.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn a_nested_field_is_reported_at_its_own_line_in_the_file() {
    let mut doc = base_doc();
    doc["devices"][0]["snmp"] = json!({ "version": "2c", "community": "c", "port": "not-a-port" });
    let pretty = serde_json::to_string_pretty(&doc).expect("json");
    let line = pretty.lines().position(|l| l.contains("not-a-port")).expect("the line") + 1;
    assert!(line > 20, "deep enough to tell: {line}");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), "doc.json", &pretty);
    let out = snbox(&["config", "check", "--monitoring", path.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains(&format!(
            "devices[0].snmp.port: invalid type: string \"not-a-port\", expected u16 at line {line} column"
        )),
        "line {line}: {}",
        text(&out)
    );
}

/// A state_dir that cannot hold the state is refused by `config check` as by `snbox run`,
/// naming the setting, said once.
#[test]
fn a_state_dir_that_is_not_a_directory_is_refused_by_check_and_run_alike() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "file", "");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/standalone.json");
    let settings = write(
        dir.path(),
        "snbox.toml",
        &format!(
            "state_dir = \"file\"\n[standalone]\ndocument = \"{}\"\n[status]\nlisten = \"127.0.0.1:0\"\n",
            example.display()
        ),
    );
    let settings = settings.to_str().expect("utf-8");
    for args in [
        vec!["config", "check", "--config", settings],
        vec!["run", "--config", settings],
    ] {
        let out = snbox(&args);
        let said = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {said}");
        assert!(
            said.contains("state_dir: ") && said.contains("is not a directory"),
            "{args:?}: {said}"
        );
        assert_eq!(
            said.matches("is not a directory").count(),
            1,
            "{args:?} said it more than once: {said}"
        );
    }
    let empty = write(dir.path(), "empty.toml", "state_dir = \"state\"\n");
    for args in [
        vec!["config", "check", "--config", empty.to_str().expect("utf-8")],
        vec!["run", "--config", empty.to_str().expect("utf-8")],
    ] {
        let out = snbox(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(
            text(&out).contains("this box is not paired"),
            "{args:?}: {}",
            text(&out)
        );
    }
}

#[test]
fn status_settings_that_can_only_go_wrong_are_refused_or_warned_about() {
    let dir = tempfile::tempdir().expect("tempdir");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/standalone.json");
    let check = |status: &str, strict: bool| {
        let path = write(
            dir.path(),
            "snbox.toml",
            &format!(
                "state_dir = \"state\"\n[standalone]\ndocument = \"{}\"\n[status]\n{status}\n",
                example.display()
            ),
        );
        let mut args = vec!["config", "check", "--config", path.to_str().expect("utf-8")];
        if strict {
            args.push("--strict");
        }
        let out = snbox(&args);
        (text(&out), out.status.code())
    };
    let (out, code) = check("[[status.tokens]]\ntoken = \"                \"\n", false);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("status.tokens[0].token: a status token is printable ASCII without spaces"),
        "{out}"
    );
    let (out, code) = check("no_token_from = [\"0.0.0.0/0\"]\n", false);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("status.no_token_from[0]: \"0.0.0.0/0\" is every address"),
        "{out}"
    );
    let (out, code) = check("listen = \"0.0.0.0:8730\"\n", false);
    assert_eq!(code, Some(0), "a warning: {out}");
    assert!(
        out.contains("warning: no_tokens: status.listen: 0.0.0.0:8730 is reachable from other machines"),
        "{out}"
    );
    assert_eq!(
        check("listen = \"0.0.0.0:8730\"\n", true).1,
        Some(2),
        "--strict fails on a warning"
    );
    let (out, code) = check(
        "[[status.tokens]]\ntoken = \"Tok-0123456789abcdef\"\nnode = \"nowhere\"\n",
        false,
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("warning: status.tokens[0].node: node \"nowhere\" is not in the document"),
        "{out}"
    );
}
