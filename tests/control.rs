//! The control socket and the box's command line (protocol.md §2; R13, R16): `snbox
//! maintenance|ack|check` reach the running daemon with no central server; the socket is
//! 0600 and refuses other users; without a daemon the command line says so.

#[path = "common/central.rs"]
mod central;
#[path = "common/http_server.rs"]
mod http_server;
#[path = "common/snbox.rs"]
mod snbox_daemon;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::{Value, json};

use snbox_daemon::Daemon;

fn document() -> Value {
    central::document(
        "ctl-1",
        json!([ { "id": "web", "kind": "http", "criticality": "high", "availability_rate": 99.0,
                  "availability_period": "24x7", "control_period": "24x7", "interval_s": 1, "timeout_s": 1,
                  "max_attempts": 1 } ]),
        json!([ { "id": "d1", "node": "s", "name": "D1", "address": "127.0.0.1" } ]),
        json!([ { "id": "d1-web", "device": "d1", "template": "web", "params": { "url": "http://127.0.0.1:9/" } } ]),
    )
}

fn start(dir: &Path) -> Daemon {
    std::fs::write(dir.join("doc.json"), document().to_string()).expect("doc");
    Daemon::start(dir, |status| {
        format!(
            "state_dir = \"state\"\n[standalone]\ndocument = \"doc.json\"\n[status]\nlisten = \"127.0.0.1:{status}\"\n\
             [control]\nsocket = \"ctl.sock\"\n"
        )
    })
}

fn snbox(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_snbox"))
        .args(args)
        .arg("--config")
        .arg(dir.join("snbox.toml"))
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

#[test]
fn r13_r16_the_technician_acts_through_the_control_socket_and_it_is_kept_across_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = start(dir.path());
    let mode = std::fs::metadata(dir.path().join("ctl.sock"))
        .expect("socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");

    let out = snbox(
        dir.path(),
        &[
            "maintenance",
            "start",
            "--device",
            "d1",
            "--minutes",
            "60",
            "--comment",
            "swap",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let id = text(&out)
        .split_whitespace()
        .find(|w| w.starts_with("m-local-"))
        .expect("the new maintenance's id")
        .to_string();
    let listed = daemon.json("/maintenances");
    assert_eq!(listed["maintenances"][0]["source"], "local", "{listed}");
    assert_eq!(listed["maintenances"][0]["active"], true);

    daemon.wait_for(
        || daemon.json("/services").to_string().contains("\"critical\""),
        "d1-web HARD critical",
    );
    let out = snbox(dir.path(), &["ack", "d1-web", "--comment", "cable", "--author", "jo"]);
    assert!(out.status.success(), "{}", text(&out));
    let services = daemon.json("/services");
    assert_eq!(services[0]["live"]["acknowledgement"]["author"], "jo", "{services}");
    let out = snbox(dir.path(), &["check", "d1-web", "--format", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    let answer: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(answer["data"]["status"], "critical", "{answer}");
    let out = snbox(dir.path(), &["check", "nope"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("unknown service \"nope\""), "{}", text(&out));

    // A command's secrets (a census's communities) are never echoed nor logged.
    let secret = "Community-s3cret-77";
    let answer = snbox::control::ask(
        &dir.path().join("ctl.sock"),
        &json!({ "kind": "discover", "ranges": ["127.66.0.0/24"], "communities": [secret] }),
    )
    .expect("an answer");
    assert!(!answer.ok && !answer.message.contains(secret), "{answer:?}");
    let garbage = snbox::control::ask(&dir.path().join("ctl.sock"), &json!(["not", "an", "object"])).expect("answer");
    assert!(!garbage.ok, "{garbage:?}");
    assert!(!daemon.log().contains(secret), "a command's secret reached the log");

    // Kept across a restart, until its end.
    assert_eq!(daemon.terminate(Duration::from_secs(10)), Some(0));
    assert!(!dir.path().join("ctl.sock").exists(), "removed at exit");
    let daemon = start(dir.path());
    let out = snbox(dir.path(), &["maintenance", "list"]);
    assert!(text(&out).contains(&id), "{}", text(&out));
    let out = snbox(dir.path(), &["maintenance", "end", &id]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(daemon.json("/maintenances")["maintenances"], json!([]));
    assert_eq!(daemon.terminate(Duration::from_secs(10)), Some(0));
}

#[test]
fn without_a_daemon_the_command_line_says_it_is_not_running() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("snbox.toml"),
        "state_dir = \"state\"\n[standalone]\ndocument = \"doc.json\"\n[control]\nsocket = \"ctl.sock\"\n",
    )
    .expect("settings");
    let out = snbox(dir.path(), &["maintenance", "list"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("the daemon is not running"), "{}", text(&out));
    assert!(text(&out).contains("ctl.sock"), "names the socket: {}", text(&out));
}

#[test]
#[ignore = "needs root (runs the command line as another user)"]
fn the_control_socket_refuses_another_user() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let daemon = start(dir.path());
    std::fs::set_permissions(dir.path().join("snbox.toml"), std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_snbox"))
        .args(["maintenance", "list", "--config"])
        .arg(dir.path().join("snbox.toml"))
        .output()
        .expect("setpriv runs");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("permission denied"), "{}", text(&out));
    assert_eq!(daemon.terminate(Duration::from_secs(10)), Some(0));
}
