//! Where plans come from while the daemon runs: the standalone document, re-read on SIGHUP or
//! when the file changes. (The central server's pulls publish on the same channels.)
//!
//! A new document is planned off the runtime (a large one takes a second) and applied only
//! if it is valid as a whole; otherwise the running plan stays, and the error is logged and
//! shown on `/status` until a good document replaces it. A file caught in the middle of a
//! write is not read: a change is taken once the file has stayed the same for one poll.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::planning::{self, Rejected};
use crate::rules::Plan;

/// How often the standalone file is looked at.
pub const POLL: Duration = Duration::from_secs(1);

/// The document the daemon runs, as `/status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct DocumentState {
    /// Where documents come from: the file's path, or the central server.
    pub source: String,
    pub version: String,
    pub applied_at: Timestamp,
    /// Why the latest document was refused, while the previous one keeps running.
    pub last_error: Option<String>,
    pub last_error_at: Option<Timestamp>,
}

impl DocumentState {
    pub fn new(source: String, plan: &Plan) -> DocumentState {
        DocumentState {
            source,
            version: plan.version.clone(),
            applied_at: Timestamp::now(),
            last_error: None,
            last_error_at: None,
        }
    }
}

/// What identifies one version of a file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: m.modified().ok(),
        len: m.len(),
        inode: m.ino(),
    })
}

/// Follows the standalone document at `path` until `cancel`: each valid new version is sent
/// on `plans`, each refusal recorded in `state`.
pub async fn follow_file(
    path: PathBuf,
    zone: TimeZone,
    max_bytes: u64,
    plans: watch::Sender<Arc<Plan>>,
    state: watch::Sender<DocumentState>,
    cancel: CancellationToken,
) {
    let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "SIGHUP cannot be handled; file changes are still followed");
            None
        }
    };
    let mut loaded = stamp(&path);
    let mut seen = loaded;
    let mut tick = tokio::time::interval(POLL);
    loop {
        let forced = tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => false,
            Some(()) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => true,
        };
        let now = stamp(&path);
        let settled = now == seen;
        seen = now;
        if !forced && (now == loaded || !settled) {
            continue;
        }
        if forced {
            tracing::info!(path = %path.display(), "SIGHUP: reading the monitoring document again");
        }
        loaded = now;
        apply(&path, &zone, max_bytes, &plans, &state).await;
    }
}

async fn apply(
    path: &Path,
    zone: &TimeZone,
    max_bytes: u64,
    plans: &watch::Sender<Arc<Plan>>,
    state: &watch::Sender<DocumentState>,
) {
    let (owned_path, owned_zone) = (path.to_path_buf(), zone.clone());
    let planned =
        tokio::task::spawn_blocking(move || planning::plan_from_file(&owned_path, &owned_zone, max_bytes)).await;
    match planned {
        Ok(Ok(plan)) => {
            tracing::info!(path = %path.display(), version = %plan.version, "monitoring document changed: applying it");
            state.send_modify(|s| {
                s.version = plan.version.clone();
                s.applied_at = Timestamp::now();
                s.last_error = None;
                s.last_error_at = None;
            });
            plans.send_replace(Arc::new(plan));
        }
        Ok(Err(Rejected { problems, .. })) => {
            tracing::error!(
                path = %path.display(),
                problems = problems.0.len(),
                "the new monitoring document is invalid; the previous one keeps running:\n{problems}"
            );
            state.send_modify(|s| {
                s.last_error = Some(format!("{}: {problems}", path.display()));
                s.last_error_at = Some(Timestamp::now());
            });
        }
        Err(e) => tracing::error!(error = %e, "planning the new document failed"),
    }
}
