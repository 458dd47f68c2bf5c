//! Plugin checks (protocol.md §3 `plugin`): a Nagios-compatible plugin found by file name in
//! `[plugins] dirs` only, run without a shell in a process group of its own, with a cleared
//! environment, killed with its group at the timeout; its exit code is the status and its
//! output the text and metrics (see [`super::perfdata`]).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

use super::{CheckResult, Status, perfdata};
use crate::document::params::{PluginParams, plugin_name};

/// What is kept of a plugin's output (more is read and dropped, so that it never blocks).
pub const MAX_OUTPUT: usize = 8 * 1024;

/// The `PATH` plugins get (their environment is otherwise only the check's `env`).
pub const PLUGIN_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The device a plugin checks, for `$ADDRESS$`, `$HOSTNAME$` and `$DEVICE$`.
pub struct Target<'a> {
    pub address: &'a str,
    pub name: &'a str,
    pub id: &'a str,
}

/// Runs plugins from its directories, the only places a `command` is looked up.
pub struct PluginRunner {
    dirs: Vec<PathBuf>,
}

impl PluginRunner {
    pub fn new(dirs: Vec<PathBuf>) -> PluginRunner {
        PluginRunner { dirs }
    }

    pub async fn check(&self, target: &Target<'_>, p: &PluginParams, timeout: Duration) -> CheckResult {
        let started = Instant::now();
        let Some(command) = &p.command else {
            return CheckResult::unknown("no plugin to run");
        };
        let result = match self.find(command) {
            Ok(path) => run(&path, target, p, timeout).await,
            Err(why) => CheckResult::unknown(why),
        };
        let took = started.elapsed();
        result.took(took)
    }

    /// The plugin's file in the first directory that has it, if it is safe to run: a regular,
    /// executable file owned by root and writable by nobody else, in such a directory, and
    /// not reached through a link someone else owns.
    pub fn find(&self, command: &str) -> Result<PathBuf, String> {
        plugin_name(command)?;
        for dir in &self.dirs {
            let path = dir.join(command);
            let Ok(link) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            safe(dir, "the plugin directory")?;
            if link.file_type().is_symlink() && link.uid() != 0 {
                return Err(format!(
                    "refused: {} is a link owned by uid {}, not root",
                    path.display(),
                    link.uid()
                ));
            }
            let file = std::fs::metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            if !file.is_file() {
                return Err(format!("refused: {} is not a regular file", path.display()));
            }
            safe(&path, "the plugin")?;
            if file.permissions().mode() & 0o111 == 0 {
                return Err(format!("refused: {} is not executable", path.display()));
            }
            return Ok(path);
        }
        let dirs: Vec<String> = self.dirs.iter().map(|d| d.display().to_string()).collect();
        Err(format!(
            "plugin {command:?} is not in [plugins] dirs ({})",
            dirs.join(", ")
        ))
    }
}

/// Owned by root and not writable by group or others: only root could have put it there.
fn safe(path: &Path, what: &str) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.uid() != 0 {
        return Err(format!(
            "refused: {what} {} is owned by uid {}, not root",
            path.display(),
            meta.uid()
        ));
    }
    if meta.permissions().mode() & 0o022 != 0 {
        return Err(format!(
            "refused: {what} {} is writable by its group or by everyone (mode {:o})",
            path.display(),
            meta.permissions().mode() & 0o7777
        ));
    }
    Ok(())
}

/// `$ADDRESS$`, `$HOSTNAME$` and `$DEVICE$` replaced in one argument.
fn expand(arg: &str, target: &Target<'_>) -> String {
    arg.replace("$ADDRESS$", target.address)
        .replace("$HOSTNAME$", target.name)
        .replace("$DEVICE$", target.id)
}

async fn run(path: &Path, target: &Target<'_>, p: &PluginParams, timeout: Duration) -> CheckResult {
    let mut command = Command::new(path);
    command
        .args(p.args.iter().map(|a| expand(a, target)))
        .env_clear()
        .env("PATH", PLUGIN_PATH)
        .envs(p.env.iter().map(|(k, v)| (k, v.expose())))
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return CheckResult::unknown(format!("cannot run {}: {e}", path.display())),
    };
    // The group's id is the plugin's pid: it and whatever it started go together.
    let group = child.id();
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        kill_group(group);
        return CheckResult::unknown("the plugin's output could not be read");
    };
    let exchange = async {
        let (out, err, status) = tokio::join!(read_capped(stdout), read_capped(stderr), child.wait());
        (out, err, status)
    };
    let outcome = tokio::time::timeout(timeout, exchange).await;
    // Whatever happened, nothing it started outlives the check.
    kill_group(group);
    let (out, err, status) = match outcome {
        Ok(done) => done,
        Err(_) => {
            let _ = child.start_kill();
            let _ = child.wait().await;
            return CheckResult::unknown(format!(
                "{} killed after {:.0} s (timeout)",
                name_of(path),
                timeout.as_secs_f64()
            ));
        }
    };
    let status = match status {
        Ok(status) => status,
        Err(e) => return CheckResult::unknown(format!("{}: {e}", name_of(path))),
    };
    let shown = if out.trim().is_empty() { &err } else { &out };
    let output = perfdata::parse(shown);
    let text = if output.text.is_empty() {
        format!("{} printed nothing", name_of(path))
    } else {
        output.text
    };
    let result = match status.code() {
        Some(0) => CheckResult::new(Status::Ok, text),
        Some(1) => CheckResult::new(Status::Warning, text),
        Some(2) => CheckResult::new(Status::Critical, text),
        Some(3) => CheckResult::new(Status::Unknown, text),
        Some(code) => CheckResult::unknown(format!("{text} (exit code {code})")),
        None => CheckResult::unknown(format!("{text} (killed by a signal)")),
    };
    output
        .metrics
        .into_iter()
        .fold(result, |r, (label, value)| r.metric(label, value))
}

fn name_of(path: &Path) -> String {
    path.file_name()
        .map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}

/// Up to [`MAX_OUTPUT`] bytes of a pipe, reading (and dropping) the rest to its end.
async fn read_capped(mut pipe: impl AsyncRead + Unpin) -> String {
    let mut kept = Vec::with_capacity(1024);
    let mut buffer = [0u8; 4096];
    loop {
        match pipe.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = MAX_OUTPUT.saturating_sub(kept.len());
                kept.extend_from_slice(&buffer[..n.min(room)]);
            }
        }
    }
    String::from_utf8_lossy(&kept).into_owned()
}

/// SIGKILL to a process group (gone already is fine).
fn kill_group(group: Option<u32>) {
    if let Some(pid) = group
        .and_then(|g| i32::try_from(g).ok())
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}
