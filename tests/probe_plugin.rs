//! The plugin probe (protocol.md §3 `plugin`) with Debian's monitoring-plugins (`check_dummy`,
//! `check_tcp`, `check_http` against the tests' server) and plugins of the test's own: one
//! that outlives its timeout (its whole process group goes), one that prints 1 MB, one that
//! shows its environment and arguments, and files the runner must refuse.

#[path = "common/http_server.rs"]
mod http_server;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;

use snbox::document::params::{self, PluginParams};
use snbox::probe::plugin::{PluginRunner, Target};
use snbox::probe::{CheckResult, Status};

const DEBIAN_PLUGINS: &str = "/usr/lib/nagios/plugins";

const TARGET: Target<'static> = Target {
    address: "127.0.0.1",
    name: "core-switch",
    id: "d-sw1",
};

async fn run(dirs: &[&Path], v: serde_json::Value, timeout: Duration) -> CheckResult {
    let p: PluginParams = params::parse(v).expect("valid params");
    PluginRunner::new(dirs.iter().map(|d| d.to_path_buf()).collect())
        .check(&TARGET, &p, timeout)
        .await
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
}

/// A plugin directory of the test's own (0700, the test's user) with `scripts` in it (0755).
fn plugin_dir(scripts: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, body) in scripts {
        let path = dir.path().join(name);
        std::fs::write(&path, body).expect("write plugin");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    dir
}

#[tokio::test]
#[ignore = "needs monitoring-plugins (Debian monitoring-plugins-basic)"]
async fn plugin_exit_codes_are_the_status() {
    let dir = Path::new(DEBIAN_PLUGINS);
    for (code, status) in [
        (0, Status::Ok),
        (1, Status::Warning),
        (2, Status::Critical),
        (3, Status::Unknown),
    ] {
        let r = run(
            &[dir],
            json!({ "command": "check_dummy", "args": [code.to_string(), "said so"] }),
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(r.status, status, "{r:?}");
        assert!(r.output.ends_with("said so"), "{r:?}");
    }
    // check_dummy refuses a code above 3 with its own UNKNOWN.
    let r = run(
        &[dir],
        json!({ "command": "check_dummy", "args": ["7"] }),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(r.status, Status::Unknown, "{r:?}");
}

#[tokio::test]
#[ignore = "needs monitoring-plugins (Debian monitoring-plugins-basic)"]
async fn plugin_check_tcp_and_check_http_report_with_performance_data() {
    let server = http_server::start(None).await;
    let port = server.addr.port().to_string();
    let dir = Path::new(DEBIAN_PLUGINS);
    let r = run(
        &[dir],
        json!({ "command": "check_tcp", "args": ["-H", "$ADDRESS$", "-p", port] }),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(r.status, Status::Ok, "{r:?}");
    assert!(r.metrics.contains_key("time"), "{r:?}");
    assert!(!r.output.contains('|'), "{r:?}");
    let r = run(
        &[dir],
        json!({ "command": "check_http", "args": ["-H", "$ADDRESS$", "-p", port, "-u", "/ok", "-s", "hello ok"] }),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(r.status, Status::Ok, "{r:?}");
    assert!(
        r.metrics.contains_key("time") && r.metrics.contains_key("size"),
        "{r:?}"
    );
    let r = run(
        &[dir],
        json!({ "command": "check_http", "args": ["-H", "$ADDRESS$", "-p", port, "-u", "/ok", "-s", "absent"] }),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(r.status, Status::Critical, "{r:?}");
    // A closed port: check_tcp's own CRITICAL.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let r = run(
        &[dir],
        json!({ "command": "check_tcp", "args": ["-H", "$ADDRESS$", "-p", closed.to_string()] }),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(r.status, Status::Critical, "{r:?}");
}

/// The pids of `/proc` entries that are alive (not gone, not zombies).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .is_some_and(|zombie| !zombie)
}

#[tokio::test]
#[ignore = "needs root: a plugin runs only when it and its directory are owned by root"]
async fn plugin_past_its_timeout_is_killed_with_its_whole_process_group() {
    let dir = plugin_dir(&[(
        "sleeper",
        "#!/bin/sh\nsleep 60 &\necho $! > \"$PIDS\"\necho $$ >> \"$PIDS\"\nsleep 60\necho never\n",
    )]);
    let pids = dir.path().join("pids");
    let started = Instant::now();
    let r = run(
        &[dir.path()],
        json!({ "command": "sleeper", "env": { "PIDS": pids.display().to_string() } }),
        Duration::from_secs(1),
    )
    .await;
    let took = started.elapsed();
    assert_eq!(r.status, Status::Unknown, "{r:?}");
    assert!(r.output.contains("killed after 1 s (timeout)"), "{r:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    let pids: Vec<u32> = std::fs::read_to_string(&pids)
        .expect("the plugin wrote its pids")
        .split_whitespace()
        .map(|p| p.parse().expect("a pid"))
        .collect();
    assert_eq!(pids.len(), 2);
    let deadline = Instant::now() + Duration::from_secs(2);
    while pids.iter().any(|p| alive(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    for pid in pids {
        assert!(!alive(pid), "process {pid} of the plugin's group outlived the check");
    }
}

#[tokio::test]
#[ignore = "needs root: a plugin runs only when it and its directory are owned by root"]
async fn plugin_printing_a_megabyte_is_read_to_its_end_without_blocking() {
    let dir = plugin_dir(&[(
        "chatty",
        "#!/bin/sh\nprintf 'CHATTY OK | lines=1048576\\n'\nhead -c 1048576 /dev/zero | tr '\\0' x\nexit 0\n",
    )]);
    let started = Instant::now();
    let r = run(&[dir.path()], json!({ "command": "chatty" }), Duration::from_secs(10)).await;
    assert_eq!(r.status, Status::Ok, "{r:?}");
    assert_eq!(r.output, "CHATTY OK");
    assert_eq!(r.metrics["lines"], 1_048_576.0);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
#[ignore = "needs root: a plugin runs only when it and its directory are owned by root"]
async fn plugin_gets_a_cleared_environment_its_env_and_the_devices_names() {
    let dir = plugin_dir(&[(
        "show",
        "#!/bin/sh\necho \"SHOW OK: $* env=$(env | grep -v '^PWD=' | sort | tr '\\n' ' ')\"\nexit 1\n",
    )]);
    let r = run(
        &[dir.path()],
        json!({ "command": "show", "args": ["-H", "$ADDRESS$", "--name=$HOSTNAME$", "$DEVICE$"], "env": { "SNBOX_TEST": "a b" } }),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(r.status, Status::Warning, "{r:?}");
    assert!(
        r.output
            .starts_with("SHOW OK: -H 127.0.0.1 --name=core-switch d-sw1 env="),
        "{r:?}"
    );
    let env: Vec<&str> = r
        .output
        .split("env=")
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert!(
        env.contains(&"SNBOX_TEST=a") && env.iter().any(|v| v.starts_with("PATH=")),
        "{r:?}"
    );
    assert!(
        !env.iter().any(|v| v.starts_with("HOME=") || v.starts_with("CARGO")),
        "{r:?}"
    );
}

#[tokio::test]
async fn plugin_files_anyone_else_could_change_are_refused_with_their_name() {
    let dir = plugin_dir(&[("check_ok", "#!/bin/sh\necho OK\n")]);
    let path = dir.path().join("check_ok");
    if is_root() {
        // Owned by someone else than root.
        std::process::Command::new("chown")
            .args(["65534", &path.display().to_string()])
            .status()
            .expect("chown");
    }
    let r = run(&[dir.path()], json!({ "command": "check_ok" }), Duration::from_secs(5)).await;
    assert_eq!(r.status, Status::Unknown, "{r:?}");
    // As root, the file is someone else's; as another user, the directory is (checked first).
    assert!(r.output.starts_with("refused: the plugin"), "{r:?}");
    assert!(
        r.output.contains("owned by uid") && r.output.contains(&dir.path().display().to_string()),
        "{r:?}"
    );
}

#[tokio::test]
#[ignore = "needs root: a plugin runs only when it and its directory are owned by root"]
async fn plugin_writable_by_everyone_or_in_such_a_directory_is_refused() {
    let dir = plugin_dir(&[("check_ok", "#!/bin/sh\necho OK\n")]);
    let path = dir.path().join("check_ok");
    let r = run(&[dir.path()], json!({ "command": "check_ok" }), Duration::from_secs(5)).await;
    assert_eq!(r.status, Status::Ok, "the same plugin, safe: {r:?}");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let r = run(&[dir.path()], json!({ "command": "check_ok" }), Duration::from_secs(5)).await;
    assert_eq!(r.status, Status::Unknown, "{r:?}");
    assert!(
        r.output
            .contains(&format!("refused: the plugin {} is writable", path.display())),
        "{r:?}"
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let r = run(&[dir.path()], json!({ "command": "check_ok" }), Duration::from_secs(5)).await;
    assert!(r.output.contains("refused: the plugin directory"), "{r:?}");
    // A link someone else made to a root-owned program.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let link = dir.path().join("check_sh");
    std::os::unix::fs::symlink("/bin/sh", &link).expect("symlink");
    std::process::Command::new("chown")
        .args(["-h", "65534", &link.display().to_string()])
        .status()
        .expect("chown");
    let r = run(&[dir.path()], json!({ "command": "check_sh" }), Duration::from_secs(5)).await;
    assert!(r.output.contains("is a link owned by uid 65534"), "{r:?}");
}

#[tokio::test]
async fn plugin_not_in_the_directories_is_unknown_and_names_them() {
    let dir = plugin_dir(&[]);
    let r = run(
        &[dir.path()],
        json!({ "command": "check_nothing" }),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(r.status, Status::Unknown, "{r:?}");
    assert!(r.output.contains(&dir.path().display().to_string()), "{r:?}");
}

#[test]
fn plugin_commands_are_file_names_never_paths_or_shell_lines() {
    for command in [
        "/bin/sh",
        "../check_x",
        "check..x",
        "sub/check",
        "check_x -H a",
        "",
        ".hidden",
        "-x",
    ] {
        let e = params::parse::<PluginParams>(json!({ "command": command })).expect_err(command);
        assert_eq!(e.0, "command", "{command}: {e:?}");
    }
    assert!(params::parse::<PluginParams>(json!({ "command": "check_tcp", "args": ["-H", "$ADDRESS$"] })).is_ok());
    let e = params::parse::<PluginParams>(json!({ "command": "c", "env": { "1X": "y" } })).expect_err("env name");
    assert_eq!(e.0, "env.1X");
    let e = params::parse::<PluginParams>(json!({ "command": "c", "env": { "PASS": 5 } })).expect_err("env value");
    assert!(!e.1.contains('5'), "a secret's value is never echoed: {e:?}");
}
