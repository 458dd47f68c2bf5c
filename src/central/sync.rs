//! The syncer (protocol.md §5.2–5.4, §6): pulls the monitoring document, pushes the outbox with
//! acknowledged, idempotent delivery, and sends heartbeats. Three loops share one client.
//!
//! # Invariants
//!
//! - Records leave the outbox only up to an `acked_seq` the central server gave for a batch
//!   it was sent; an `acked_seq` outside that batch is a protocol error and deletes nothing.
//! - Batches go oldest first, in `seq` order, at most [`BATCH`] records; after an ack the next
//!   batch starts after it, so a lost answer resends the same records (the server dedups).
//! - Failures back off exponentially with jitter between `retry_min` and `retry_max`; `429` and
//!   `503` wait what `Retry-After` says; `401`/`403` stop every loop (revoked), while polling and
//!   buffering go on.
//! - A pulled document is validated whole before anything changes; a good one is saved as the
//!   last good document (atomically) before it is applied, so a restart without the central
//!   server polls it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::client::{CentralError, Client, SMALL_ANSWER};
use super::identity::{Identity, write_atomically};
use crate::document::Format;
use crate::planning::{self, Rejected};
use crate::rules::Plan;
use crate::schedule::Metrics;
use crate::source::DocumentState;
use crate::store::{Batch, Store};

/// Records per `POST /ingest`, at most (protocol.md §5.3).
pub const BATCH: usize = 1000;
/// The last good document and its ETag, in the state directory.
pub const DOCUMENT_FILE: &str = "monitoring.json";
const ETAG_FILE: &str = "monitoring.etag";
/// A clock difference above this is a warning on the status endpoint (§5.4).
const SKEW_WARNING_S: f64 = 5.0;
/// How long the ingest loop waits when the outbox is empty.
const IDLE: Duration = Duration::from_millis(500);

/// How the syncer paces itself; from `[central]`.
#[derive(Debug, Clone)]
pub struct Pace {
    pub config_poll: Duration,
    pub heartbeat: Duration,
    pub retry_min: Duration,
    pub retry_max: Duration,
    /// Records per second when catching up; `None`: as fast as the server takes them.
    pub replay_per_s: Option<u32>,
    pub timeout: Duration,
}

/// The link to the central server, as `/status.central.state` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LinkState {
    #[default]
    Starting,
    Ok,
    Unreachable,
    /// The server refused the credential: the box stops syncing until paired again.
    Revoked,
}

/// What the status endpoint shows of the link (§7): no credential, ever.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Link {
    pub url: String,
    pub box_id: String,
    pub state: LinkState,
    pub last_sync: Option<Timestamp>,
    pub last_error: Option<String>,
    pub last_error_at: Option<Timestamp>,
    /// Box clock minus server clock, from the last heartbeat.
    pub clock_skew_s: Option<f64>,
    pub clock_warning: Option<String>,
    pub acked_seq: u64,
}

/// The link's state and counters, shared with the status endpoint.
#[derive(Debug, Default)]
pub struct SyncState {
    link: Mutex<Link>,
    pub records_sent: AtomicU64,
    pub sync_errors: AtomicU64,
    revoked: AtomicBool,
    /// The syncer's loops run (from its creation until `Syncer::run` returns).
    running: AtomicBool,
    /// Wakes the loops waiting on `revoked` or back-off when the daemon stops.
    pub stopped: CancellationToken,
    /// Held by the ingest loop from reading a batch until its answer, and by the notifier
    /// while it marks notifications it delivers itself (R17), which bumps the count: the
    /// ingest loop then drops a batch it read before, so no unmarked copy goes out after.
    pub outbox_gate: tokio::sync::Mutex<u64>,
}

impl crate::probe::box_health::Uplink for SyncState {
    fn clock_offset_s(&self) -> Option<f64> {
        self.link.lock().ok().and_then(|l| l.clock_skew_s)
    }
}

impl SyncState {
    pub fn new(url: &str, box_id: &str) -> SyncState {
        SyncState {
            link: Mutex::new(Link {
                url: url.to_string(),
                box_id: box_id.to_string(),
                state: LinkState::Starting,
                ..Link::default()
            }),
            running: AtomicBool::new(true),
            ..SyncState::default()
        }
    }

    /// For `/healthz`: the loops run, or stopped on purpose (a revoked credential).
    pub fn is_alive(&self) -> bool {
        self.running.load(Relaxed) || self.is_revoked()
    }

    pub fn link(&self) -> Link {
        self.link.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// When an exchange with the central server last succeeded (none yet: `None`).
    pub fn last_success(&self) -> Option<Timestamp> {
        self.link.lock().ok().and_then(|l| l.last_sync)
    }

    pub fn is_revoked(&self) -> bool {
        self.revoked.load(Relaxed)
    }

    fn update(&self, f: impl FnOnce(&mut Link)) {
        if let Ok(mut link) = self.link.lock() {
            f(&mut link);
        }
    }

    pub(super) fn succeeded(&self) {
        self.update(|l| {
            if l.state != LinkState::Revoked {
                l.state = LinkState::Ok;
            }
            l.last_sync = Some(Timestamp::now());
        });
    }

    pub(super) fn failed(&self, what: &str, e: &CentralError) {
        self.sync_errors.fetch_add(1, Relaxed);
        if e.is_revoked() {
            self.revoked.store(true, Relaxed);
        }
        tracing::warn!(error = %e, "{what}");
        self.update(|l| {
            l.state = if e.is_revoked() {
                LinkState::Revoked
            } else {
                LinkState::Unreachable
            };
            l.last_error = Some(format!("{what}: {e}"));
            l.last_error_at = Some(Timestamp::now());
        });
    }
}

/// Exponential back-off with full jitter above a floor.
pub(super) struct Backoff {
    min: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    pub(super) fn new(pace: &Pace) -> Backoff {
        Backoff {
            min: pace.retry_min,
            max: pace.retry_max.max(pace.retry_min),
            failures: 0,
        }
    }

    fn next(&mut self) -> Duration {
        let cap = self.min.saturating_mul(1u32 << self.failures.min(20)).min(self.max);
        self.failures = self.failures.saturating_add(1);
        let span = cap.saturating_sub(self.min).as_millis() as u64;
        self.min + Duration::from_millis(fastrand::u64(0..=span))
    }

    pub(super) fn reset(&mut self) {
        self.failures = 0;
    }

    /// What the server asked (`Retry-After`), or the next back-off.
    pub(super) fn wait_after(&mut self, e: &CentralError) -> Duration {
        match e {
            CentralError::RetryAfter { after, .. } => *after,
            _ => self.next(),
        }
    }
}

/// Everything the loops need.
pub struct Syncer {
    pub client: Arc<Client>,
    pub identity: Identity,
    pub store: Store,
    pub state: Arc<SyncState>,
    pub pace: Pace,
    pub plans: watch::Sender<Arc<Plan>>,
    pub document: watch::Sender<DocumentState>,
    pub zone: TimeZone,
    pub state_dir: PathBuf,
    pub metrics: Arc<Metrics>,
    pub started: Instant,
    /// The largest document pulled (`limits.max_document_bytes`).
    pub max_document_bytes: u64,
    /// What the box delivers itself (R17), for the heartbeat's `notify` (§5.5).
    pub notify: Arc<crate::notify::NotifyState>,
    /// The commands loop's needs (§5.6); `None`: no commands are asked for.
    pub commands: Option<super::commands::Commands>,
    /// The trap receiver's counters, for the heartbeat's `traps` (§5.5).
    pub traps: Arc<crate::traps::TrapStats>,
}

#[derive(Deserialize)]
struct Acked {
    acked_seq: u64,
}

/// The answer's `acked_seq` judged against the batch it answers: only what the batch holds may
/// be acknowledged, and an answer that acknowledges none of it is no progress, a failure that
/// backs off (resending at once would repeat the same exchange forever).
fn acked_in(acked_seq: u64, first: u64, last: u64) -> Result<u64, CentralError> {
    if acked_seq >= first && acked_seq <= last {
        Ok(acked_seq)
    } else if acked_seq + 1 == first {
        Err(CentralError::Answer(format!(
            "acked_seq {acked_seq} acknowledges none of the batch {first}..={last}"
        )))
    } else {
        Err(CentralError::Answer(format!(
            "acked_seq {acked_seq} is outside the batch {first}..={last}"
        )))
    }
}

#[derive(Deserialize)]
struct ServerTime {
    server_time: Timestamp,
}

impl Syncer {
    /// Runs the loops until `cancel` or a revoked credential.
    pub async fn run(mut self, cancel: CancellationToken) {
        let commands = self.commands.take();
        let me = Arc::new(self);
        let commands = async {
            if let Some(commands) = commands {
                me.clone().commands_loop(commands, cancel.clone()).await;
            }
        };
        tokio::join!(
            me.clone().ingest_loop(cancel.clone()),
            me.clone().config_loop(cancel.clone()),
            me.clone().heartbeat_loop(cancel.clone()),
            commands,
        );
        me.state.running.store(false, Relaxed);
    }

    /// Sleeps `d`, or returns false when the daemon stops or the credential is revoked.
    pub(super) async fn pause(&self, cancel: &CancellationToken, d: Duration) -> bool {
        tokio::select! {
            _ = cancel.cancelled() => false,
            _ = tokio::time::sleep(d) => !self.state.is_revoked(),
        }
    }

    async fn ingest_loop(self: Arc<Self>, cancel: CancellationToken) {
        let mut backoff = Backoff::new(&self.pace);
        let mut after = 0u64;
        // Replay pacing: when the next batch may go.
        let mut next_slot = tokio::time::Instant::now();
        // With a replay rate, batches hold at most a second's worth, so that pacing applies.
        let batch = self.pace.replay_per_s.map_or(BATCH, |r| (r as usize).clamp(1, BATCH));
        let box_id = serde_json::to_string(&self.identity.box_id).unwrap_or_default();
        // The next batch, read from the store while the previous one was on the wire.
        let mut prefetched: Option<Batch> = None;
        // The notifier's marks seen so far (see `SyncState::outbox_gate`).
        let mut marks = 0u64;
        while !cancel.is_cancelled() && !self.state.is_revoked() {
            let gate = self.state.outbox_gate.lock().await;
            if *gate != marks {
                marks = *gate;
                prefetched = None;
            }
            let page = match prefetched.take() {
                Some(page) => page,
                None => match self.store.pending_batch(after, batch).await {
                    Ok(page) => page,
                    Err(_) => return, // the store is closed: the daemon is stopping
                },
            };
            let (Some(&first), Some(&last)) = (page.seqs.first(), page.seqs.last()) else {
                drop(gate);
                if !self.pause(&cancel, IDLE).await {
                    return;
                }
                continue;
            };
            if let Some(rate) = self.pace.replay_per_s.filter(|r| *r > 0) {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep_until(next_slot) => {}
                }
                let spacing = Duration::from_secs_f64(page.seqs.len() as f64 / f64::from(rate));
                next_slot = tokio::time::Instant::now().max(next_slot) + spacing;
            }
            let mut body = Vec::with_capacity(page.json.len() + box_id.len() + 24);
            body.extend_from_slice(b"{\"box_id\":");
            body.extend_from_slice(box_id.as_bytes());
            body.extend_from_slice(b",\"records\":");
            body.extend_from_slice(&page.json);
            body.push(b'}');
            let post = self
                .client
                .post_json_text("/ingest", body, SMALL_ANSWER, self.pace.timeout);
            let (sent, next) = tokio::join!(post, self.store.pending_batch(last, batch));
            let acked = sent
                .and_then(|a| a.json::<Acked>())
                .and_then(|a| acked_in(a.acked_seq, first, last));
            match acked {
                Ok(acked_seq) => {
                    backoff.reset();
                    {
                        if let Err(e) = self.store.ack(acked_seq).await {
                            tracing::error!(error = %e, "acknowledged records could not be deleted");
                        }
                        let sent = page.seqs.iter().filter(|s| **s <= acked_seq).count();
                        tracing::debug!(
                            records = sent,
                            first,
                            acked_seq,
                            "records acknowledged by the central server"
                        );
                        self.state.records_sent.fetch_add(sent as u64, Relaxed);
                        after = acked_seq;
                    }
                    if acked_seq == last {
                        prefetched = next.ok();
                    }
                    self.state.update(|l| l.acked_seq = acked_seq.max(l.acked_seq));
                    self.state.succeeded();
                }
                Err(e) => {
                    drop(gate);
                    self.state.failed("ingest", &e);
                    if !self.pause(&cancel, backoff.wait_after(&e)).await {
                        return;
                    }
                }
            }
        }
    }

    async fn config_loop(self: Arc<Self>, cancel: CancellationToken) {
        let mut backoff = Backoff::new(&self.pace);
        let etag_path = self.state_dir.join(ETAG_FILE);
        let mut etag = std::fs::read_to_string(&etag_path).ok().map(|t| t.trim().to_string());
        while !cancel.is_cancelled() && !self.state.is_revoked() {
            let pulled = self
                .client
                .get(
                    "/config",
                    etag.as_deref(),
                    usize::try_from(self.max_document_bytes).unwrap_or(usize::MAX),
                    self.pace.timeout * 4,
                )
                .await;
            let wait = match pulled {
                Ok(answer) if answer.status == 304 => {
                    tracing::debug!("the monitoring document is unchanged");
                    backoff.reset();
                    self.state.succeeded();
                    self.pace.config_poll
                }
                Ok(answer) => {
                    backoff.reset();
                    self.state.succeeded();
                    let tag = answer.etag.clone();
                    if self.apply(answer.body).await {
                        if let Some(tag) = &tag
                            && let Err(e) = write_atomically(&etag_path, tag.as_bytes(), 0o600)
                        {
                            tracing::warn!(error = %e, "the document's ETag could not be saved");
                        }
                        etag = tag;
                    }
                    self.pace.config_poll
                }
                Err(e) => {
                    self.state.failed("document pull", &e);
                    backoff.wait_after(&e)
                }
            };
            if !self.pause(&cancel, wait).await {
                return;
            }
        }
    }

    /// Validates a pulled document; applies and saves it if good; reports either way.
    /// True when it was applied.
    async fn apply(&self, body: Vec<u8>) -> bool {
        let zone = self.zone.clone();
        let box_id = self.identity.box_id.clone();
        let planned = tokio::task::spawn_blocking(move || {
            let text = String::from_utf8(body).map_err(|_| "the document is not UTF-8 text".to_string())?;
            let planned = planning::plan_from_str(&text, Format::Json, &zone);
            Ok::<_, String>((text, planned))
        })
        .await;
        let report = match planned {
            Ok(Ok((_, Ok(plan)))) if plan.box_id != box_id => {
                let why = format!(
                    "document_for_another_box: box.id is {:?} but this box is {box_id:?}",
                    plan.box_id
                );
                self.refuse(&why);
                json!({ "version": plan.version, "applied": false, "errors": [why], "devices": [] })
            }
            Ok(Ok((text, Ok(plan)))) => {
                if let Err(e) = write_atomically(&self.state_dir.join(DOCUMENT_FILE), text.as_bytes(), 0o600) {
                    tracing::error!(error = %e, "the new document could not be saved as the last good one");
                }
                let report = json!({ "version": plan.version, "applied": true, "errors": [],
                                     "devices": rejected_devices(&plan) });
                tracing::info!(version = %plan.version, "new monitoring document from the central server: applying it");
                self.document.send_modify(|s| {
                    s.version = plan.version.clone();
                    s.applied_at = Timestamp::now();
                    s.last_error = None;
                    s.last_error_at = None;
                });
                self.plans.send_replace(Arc::new(plan));
                self.report(report).await;
                return true;
            }
            Ok(Ok((_, Err(Rejected { document, problems })))) => {
                self.refuse(&problems.to_string());
                let version = document.as_ref().map(|d| d.version.clone()).unwrap_or_default();
                let errors: Vec<String> = problems.0.iter().map(ToString::to_string).collect();
                json!({ "version": version, "applied": false, "errors": errors, "devices": [] })
            }
            Ok(Err(why)) => {
                self.refuse(&why);
                json!({ "version": "", "applied": false, "errors": [format!("invalid_document: {why}")], "devices": [] })
            }
            Err(e) => {
                tracing::error!(error = %e, "planning the pulled document failed");
                return false;
            }
        };
        self.report(report).await;
        false
    }

    fn refuse(&self, why: &str) {
        tracing::error!("the central server's new document is invalid; the previous one keeps running:\n{why}");
        self.document.send_modify(|s| {
            s.last_error = Some(why.to_string());
            s.last_error_at = Some(Timestamp::now());
        });
    }

    async fn report(&self, report: Value) {
        if let Err(e) = self
            .client
            .post("/config-report", &report, SMALL_ANSWER, self.pace.timeout)
            .await
        {
            self.state.failed("config report", &e);
        }
    }

    async fn heartbeat_loop(self: Arc<Self>, cancel: CancellationToken) {
        let mut previous = (Instant::now(), self.metrics.checks_by_kind());
        while !cancel.is_cancelled() && !self.state.is_revoked() {
            let stats = self.store.stats().await.unwrap_or_default();
            let now = Instant::now();
            let totals = self.metrics.checks_by_kind();
            let minutes = now.duration_since(previous.0).as_secs_f64().max(1.0) / 60.0;
            let before = previous.1;
            let per_min = |k: usize| (totals[k].saturating_sub(before[k]) as f64 / minutes).round();
            previous = (now, totals);
            let sent_at = Timestamp::now();
            let notify = self.notify.view();
            let body = json!({
                "box_id": self.identity.box_id,
                "agent_version": env!("CARGO_PKG_VERSION"),
                "uptime_s": self.started.elapsed().as_secs(),
                "config_version": self.document.borrow().version,
                "buffer": {
                    "records": stats.records, "bytes": stats.bytes, "dropped": stats.dropped, "disk_full": stats.disk_full,
                    "oldest_ts": stats.oldest_ts.and_then(|t| Timestamp::from_millisecond(t).ok()).map(crate::record::rfc3339_millis),
                },
                "checks": crate::schedule::metrics::KINDS.iter().enumerate()
                    .map(|(k, kind)| (kind.to_string(), json!({ "per_min": per_min(k) })))
                    .collect::<serde_json::Map<_, _>>(),
                "box_time": crate::record::rfc3339_millis(sent_at),
                "traps": {
                    "received": self.traps.received.load(std::sync::atomic::Ordering::Relaxed),
                    "matched": self.traps.matched.load(std::sync::atomic::Ordering::Relaxed),
                    "unmatched": self.traps.unmatched.load(std::sync::atomic::Ordering::Relaxed),
                    "bad_auth": self.traps.bad_auth.load(std::sync::atomic::Ordering::Relaxed),
                },
                "notify": {
                    "pending": notify.pending, "failed": notify.failed,
                    "central_unreachable_since": notify.central_unreachable_since.map(crate::record::rfc3339_millis),
                },
            });
            let start = Instant::now();
            match self
                .client
                .post("/heartbeat", &body, SMALL_ANSWER, self.pace.timeout)
                .await
                .and_then(|a| a.json::<ServerTime>())
            {
                Ok(answer) => {
                    // The server read its clock about half the round trip after we read ours.
                    let midpoint = sent_at.as_millisecond() as f64 + start.elapsed().as_millis() as f64 / 2.0;
                    let skew = (midpoint - answer.server_time.as_millisecond() as f64) / 1000.0;
                    self.state.succeeded();
                    self.state.update(|l| {
                        l.clock_skew_s = Some((skew * 10.0).round() / 10.0);
                        l.clock_warning = (skew.abs() > SKEW_WARNING_S)
                            .then(|| format!("the box's clock is {skew:+.1} s off the central server's"));
                    });
                }
                Err(e) => self.state.failed("heartbeat", &e),
            }
            if !self.pause(&cancel, self.pace.heartbeat).await {
                return;
            }
        }
    }
}

fn rejected_devices(plan: &Plan) -> Vec<Value> {
    plan.devices
        .iter()
        .filter_map(|d| match &d.outcome {
            Ok(_) => None,
            Err(reasons) => Some(json!({
                "id": d.id, "accepted": false,
                "reasons": reasons.iter().map(|r| r.code.clone()).collect::<Vec<_>>(),
            })),
        })
        .collect()
}
