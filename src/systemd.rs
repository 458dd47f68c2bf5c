//! systemd integration: readiness, an honest watchdog, and whether stderr is the journal.
//!
//! Every call is a no-op outside systemd (no `NOTIFY_SOCKET`, no `WATCHDOG_USEC`), so the
//! daemon behaves the same in a terminal, a test or a container.

use std::time::Duration;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

use crate::schedule::Snapshots;
use crate::store::Store;

/// `READY=1`: the plan is built, the store is open and the status endpoint listens.
pub fn ready(services: usize) {
    let status = format!("polling {services} services");
    let _ = sd_notify::notify(&[NotifyState::Ready, NotifyState::Status(&status)]);
}

pub fn stopping() {
    let _ = sd_notify::notify(&[NotifyState::Stopping]);
}

/// Sends `WATCHDOG=1` at half the watchdog period, but only when the scheduler and the store
/// both answered within that time and the store commits: a stuck daemon stops petting, and
/// systemd restarts it.
pub async fn watchdog(snapshots: Snapshots, store: Store, cancel: CancellationToken) {
    let Some(period) = sd_notify::watchdog_enabled() else {
        return;
    };
    let every = (period / 2).max(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let alive = async { snapshots.alive().await && store.stats().await.is_ok_and(|s| s.healthy()) };
        if tokio::time::timeout(every, alive).await == Ok(true) {
            let _ = sd_notify::notify(&[NotifyState::Watchdog]);
        } else {
            tracing::error!(
                "the scheduler or the store does not answer, or the store cannot commit: WATCHDOG=1 withheld"
            );
        }
    }
}

/// True when stderr is the journal's stream (systemd sets `JOURNAL_STREAM` to its
/// `device:inode`; a child whose stderr was redirected keeps the variable but not the stream).
pub fn stderr_is_journal() -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let Ok(stream) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = stream.split_once(':') else {
        return false;
    };
    let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    let Ok(meta) = std::fs::File::from(fd).metadata() else {
        return false;
    };
    dev.parse::<u64>() == Ok(meta.dev()) && ino.parse::<u64>() == Ok(meta.ino())
}
