//! The systemd side (issue 6): the unit verifies and its exposure score stays low; the daemon
//! says READY=1, pets the watchdog and says STOPPING=1 on a real notify socket; with its
//! stderr being the journal's stream but no journald, it falls back to stderr.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const UNIT: &str = include_str!("../systemd/snbox.service");

fn analyze(args: &[&str]) -> std::process::Output {
    Command::new("systemd-analyze")
        .args(args)
        .output()
        .expect("systemd-analyze is not installed: run `bash .ci/run`, or apt-get install systemd")
}

#[test]
fn the_unit_verifies_and_its_exposure_is_at_most_2_5() {
    let dir = tempfile::tempdir().expect("tempdir");
    // verify checks that the commands exist: point them at the binary under test.
    let unit = dir.path().join("snbox.service");
    std::fs::write(&unit, UNIT.replace("/usr/bin/snbox", env!("CARGO_BIN_EXE_snbox"))).expect("unit");
    let unit = unit.display().to_string();
    let verify = analyze(&["verify", &unit]);
    let said = String::from_utf8_lossy(&verify.stderr);
    assert!(
        verify.status.success() && said.trim().is_empty(),
        "systemd-analyze verify: {said}"
    );
    let security = analyze(&["security", "--offline=true", &unit]);
    let text = String::from_utf8_lossy(&security.stdout);
    let score: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("→ Overall exposure level for snbox.service: "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no overall exposure level in: {text}"));
    eprintln!("exposure level {score}");
    assert!(score <= 2.5, "exposure {score} over 2.5:\n{text}");
    for needed in [
        "Type=notify",
        "WatchdogSec=",
        "CapabilityBoundingSet=CAP_NET_RAW",
        "ExecStartPre=/usr/bin/snbox config check",
    ] {
        assert!(UNIT.contains(needed), "{needed}");
    }
}

fn settings(dir: &Path) -> std::path::PathBuf {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let path = dir.join("snbox.toml");
    let example = std::fs::canonicalize("config/standalone.json").expect("example");
    std::fs::write(
        &path,
        format!(
            "state_dir = \"state\"\n[standalone]\ndocument = \"{}\"\n[status]\nlisten = \"127.0.0.1:{port}\"\n",
            example.display()
        ),
    )
    .expect("settings");
    path
}

#[test]
fn ready_watchdog_and_stopping_reach_the_notify_socket() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("notify socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let mut child = Command::new(env!("CARGO_BIN_EXE_snbox"))
        .args(["run", "--config"])
        .arg(settings(dir.path()))
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "1000000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("snbox run");
    let mut said: Vec<String> = Vec::new();
    let mut buf = [0u8; 4096];
    let mut read_until = |said: &mut Vec<String>, what: &str, within: Duration| {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline && !said.iter().any(|m| m.lines().any(|l| l == what)) {
            if let Ok(n) = socket.recv(&mut buf) {
                said.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
        said.iter().any(|m| m.lines().any(|l| l == what))
    };
    assert!(read_until(&mut said, "READY=1", Duration::from_secs(20)), "{said:?}");
    assert!(read_until(&mut said, "WATCHDOG=1", Duration::from_secs(5)), "{said:?}");
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    assert!(read_until(&mut said, "STOPPING=1", Duration::from_secs(10)), "{said:?}");
    let status = child.wait().expect("exit");
    assert_eq!(status.code(), Some(0));
    let ready = said.iter().find(|m| m.contains("READY=1")).expect("ready");
    assert!(ready.contains("STATUS=polling 6 services"), "{ready}");
}

#[test]
fn with_stderr_as_the_journal_stream_but_no_journald_it_logs_to_stderr() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let log_path = dir.path().join("stderr.log");
    let log = std::fs::File::create(&log_path).expect("log");
    let meta = log.metadata().expect("meta");
    let journald = Path::new("/run/systemd/journal/socket").exists();
    let mut child = Command::new(env!("CARGO_BIN_EXE_snbox"))
        .args(["run", "--config"])
        .arg(settings(dir.path()))
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("snbox run");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut text = String::new();
    while Instant::now() < deadline && !text.contains("snbox started") && !journald {
        std::thread::sleep(Duration::from_millis(100));
        text = std::fs::read_to_string(&log_path).unwrap_or_default();
    }
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log_path).unwrap_or_default();
    if journald {
        assert!(
            !text.contains("snbox started"),
            "with a journald, logs go to the journal: {text}"
        );
    } else {
        assert!(text.contains("the journal is not reachable"), "{text}");
        assert!(text.contains("snbox started"), "{text}");
    }
}
