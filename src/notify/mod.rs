//! Notifications the box delivers itself (rules.md R17): by mail to the resolved contacts and
//! to webhooks; always when standalone, and when paired only while the central server is out
//! of reach.
//!
//! # Invariants
//!
//! - The box takes a notification on (marks its record `delivered_by: "box"`, stores one
//!   delivery per channel and recipient, and moves its cursor) in one transaction, before
//!   anything is sent. Paired, it does so holding the syncer's outbox gate: no batch read
//!   before the mark is on the wire, so the central server never receives an unmarked copy of
//!   a notification the box delivers (except a batch it stored whose answer was lost).
//! - Each attempt's outcome is committed with its `delivery` record as soon as it is known;
//!   a crash repeats at most the attempts in flight, each with the notification's Message-ID.
//! - Delivery never delays a check, a commit or the sync: it runs in its own task, at most
//!   `max_in_flight` attempts at once, each with a deadline; the store's writes are a few
//!   small transactions per notification.

pub mod message;
pub mod smtp;
pub mod webhook;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::central::SyncState;
use crate::record::Channel;
use crate::rules::Plan;
use crate::settings::Notify;
use crate::store::Store;
use crate::store::deliveries::{Attempt, Claim, CursorStart, Due, NewDelivery, Outcome};
use message::Message;

/// Notifications taken on per scan of the outbox.
const SCAN: usize = 200;
/// The longest wait between two attempts of one delivery.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// Paired: how often the link's state is looked at.
const LINK_TICK: Duration = Duration::from_secs(1);
/// At shutdown, attempts in flight get this long to finish and be recorded.
pub const DRAIN: Duration = Duration::from_secs(3);

/// Why an attempt failed, and whether trying again could help.
#[derive(Debug, Clone)]
pub struct Failure {
    pub permanent: bool,
    pub text: String,
}

/// Who delivers the box's notifications.
#[derive(Clone)]
pub enum Role {
    /// No central server: the box delivers every notification.
    Standalone,
    /// The central server delivers, except while it is out of reach.
    Paired(Arc<SyncState>),
}

/// The configured channels, ready to send.
pub struct Channels {
    pub mailer: Option<smtp::Mailer>,
    pub hooks: Vec<webhook::Hook>,
    /// The `From:` of every message (for Message-IDs), empty without mail.
    from: String,
}

impl Channels {
    pub fn new(settings: &Notify) -> Result<Channels, String> {
        let timeout = Duration::from_secs(u64::from(settings.timeout_s));
        let mailer = settings
            .smtp
            .as_ref()
            .map(|s| smtp::Mailer::new(s, timeout))
            .transpose()?;
        let hooks = settings
            .webhooks
            .iter()
            .enumerate()
            .map(|(i, w)| webhook::Hook::new(i, w, timeout))
            .collect::<Result<_, _>>()?;
        Ok(Channels {
            mailer,
            hooks,
            from: settings.smtp.as_ref().map(|s| s.from.clone()).unwrap_or_default(),
        })
    }

    /// Sends one delivery's message through its channel.
    pub async fn send(&self, channel: Channel, recipient: &str, message: &Message) -> Result<String, Failure> {
        let gone = |what: &str| Failure {
            permanent: true,
            text: format!("{what} is no longer configured"),
        };
        match channel {
            Channel::Smtp => match &self.mailer {
                Some(mailer) => mailer.send(recipient, message).await,
                None => Err(gone("[notify.smtp]")),
            },
            Channel::Webhook => match self.hooks.iter().find(|h| h.webhook.shown() == recipient) {
                Some(hook) => hook.send(message).await,
                None => Err(gone(&format!("the webhook {recipient}"))),
            },
        }
    }

    /// What the status endpoint shows of the channels: no credential.
    pub fn describe(&self, settings: &Notify) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        if let Some(s) = &settings.smtp {
            out.push(serde_json::json!({
                "channel": "smtp", "server": s.server(), "security": s.security,
                "auth": s.user.is_some(), "from": s.from,
            }));
        }
        for w in &settings.webhooks {
            out.push(serde_json::json!({
                "channel": "webhook", "url": w.shown(), "bearer_token": w.bearer_token.is_some(),
            }));
        }
        out
    }
}

/// What the status endpoint, `/metrics` and the heartbeat show of delivery.
#[derive(Debug, Default)]
pub struct NotifyState {
    view: Mutex<View>,
    /// Attempts that delivered, by channel ([`Channel::ALL`] order), since start.
    pub delivered: [AtomicU64; 2],
    /// Attempts that failed (retried or not), by channel, since start.
    pub failed: [AtomicU64; 2],
    /// Deliveries given up, by channel, since start.
    pub given_up: [AtomicU64; 2],
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct View {
    pub channels: Vec<serde_json::Value>,
    /// The box delivers now (standalone: always; paired: the central server is out of reach).
    pub delivering: bool,
    /// Paired: since when the central server has not answered, once that is `fallback_after_s`.
    pub central_unreachable_since: Option<Timestamp>,
    pub pending: u64,
    pub delivered: u64,
    /// Deliveries given up (kept with the records' retention).
    pub failed: u64,
    pub last_error: Option<String>,
    pub last_error_at: Option<Timestamp>,
}

impl NotifyState {
    pub fn view(&self) -> View {
        self.view.lock().map(|v| v.clone()).unwrap_or_default()
    }

    fn update(&self, f: impl FnOnce(&mut View)) {
        if let Ok(mut v) = self.view.lock() {
            f(&mut v);
        }
    }
}

pub struct Notifier {
    pub store: Store,
    pub settings: Notify,
    pub role: Role,
    pub plans: watch::Receiver<Arc<Plan>>,
    pub channels: Arc<Channels>,
    pub state: Arc<NotifyState>,
}

impl Notifier {
    /// Runs until `cancel`, then lets attempts in flight finish (at most [`DRAIN`]).
    pub async fn run(self, cancel: CancellationToken) {
        let start = match self.role {
            Role::Standalone => CursorStart::End,
            Role::Paired(_) => CursorStart::Beginning,
        };
        let mut cursor = match self.store.delivery_cursor(start).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "the notifier cannot read its cursor: the box delivers nothing");
                return;
            }
        };
        let settings = self.channels.describe(&self.settings);
        self.state.update(|v| v.channels = settings);
        let mut fallback_since = self
            .store
            .delivery_counts()
            .await
            .ok()
            .and_then(|c| c.fallback_since)
            .and_then(|ms| Timestamp::from_millisecond(ms).ok());
        let started = Timestamp::now();
        let mut notifications = self.store.notifications();
        let mut in_flight: JoinSet<(Due, Result<String, Failure>)> = JoinSet::new();
        let mut flying: Vec<i64> = Vec::new();
        // What needs the store this turn: a quiet box asks it nothing (a paired box whose
        // central answers looks at the link once a second, in memory).
        let mut scan = true;
        let mut changed = true;
        let mut next_due: Option<Timestamp> = None;
        loop {
            if let Role::Paired(sync) = &self.role {
                let before = fallback_since;
                fallback_since = self.follow_link(sync, fallback_since, started).await;
                if fallback_since != before {
                    (scan, changed) = (true, true);
                }
            }
            let delivering = matches!(self.role, Role::Standalone) || fallback_since.is_some();
            if delivering && scan {
                cursor = self.take_on(cursor, fallback_since).await;
                changed = true;
            }
            scan = false;
            if changed || next_due.is_some_and(|t| t <= Timestamp::now()) {
                self.start_due(&mut in_flight, &mut flying).await;
                next_due = self.refresh().await;
                changed = false;
                self.state.update(|v| {
                    v.delivering = delivering;
                    v.central_unreachable_since = fallback_since;
                });
            }
            let until_due =
                next_due.map(|at| Duration::try_from(at.duration_since(Timestamp::now())).unwrap_or(Duration::ZERO));
            let tick = match (&self.role, until_due) {
                (Role::Paired(_), Some(d)) => d.min(LINK_TICK),
                (Role::Paired(_), None) => LINK_TICK,
                (Role::Standalone, Some(d)) => d,
                (Role::Standalone, None) => Duration::from_secs(3600),
            };
            // A due delivery that cannot start (all slots busy) waits for a slot, not the clock.
            let tick = if flying.len() >= self.max_in_flight() {
                tick.max(LINK_TICK)
            } else {
                tick
            };
            tokio::select! {
                _ = cancel.cancelled() => break,
                Some(done) = in_flight.join_next() => {
                    if let Ok((due, result)) = done {
                        flying.retain(|id| *id != due.id);
                        self.record(due, result).await;
                    }
                    changed = true;
                }
                committed = notifications.changed() => {
                    if committed.is_err() {
                        break; // the store is closed
                    }
                    scan = true;
                }
                _ = tokio::time::sleep(tick) => {}
            }
        }
        let drained = tokio::time::timeout(DRAIN, async {
            while let Some(done) = in_flight.join_next().await {
                if let Ok((due, result)) = done {
                    self.record(due, result).await;
                }
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                "deliveries still in flight at shutdown are attempted again at the next start (same Message-ID)"
            );
        }
    }

    fn max_in_flight(&self) -> usize {
        self.settings.max_in_flight.max(1) as usize
    }

    /// Paired: starts and ends the fallback, with the admin's messages. Returns since when the
    /// central server has been out of reach, while the box delivers in its place.
    async fn follow_link(&self, sync: &SyncState, since: Option<Timestamp>, started: Timestamp) -> Option<Timestamp> {
        let last = sync.last_success();
        let now = Timestamp::now();
        match since {
            Some(since) => {
                let Some(back) = last.filter(|t| *t > since) else {
                    return Some(since);
                };
                let delivered = self
                    .store
                    .delivery_counts()
                    .await
                    .map(|c| c.taken_since_fallback)
                    .unwrap_or(0);
                tracing::info!(
                    away = %message::lasted(back.duration_since(since)),
                    delivered,
                    "the central server answers again: it delivers the notifications from now on"
                );
                let zone = self.zone();
                let from = &self.channels.from;
                let box_id = self.box_id();
                let text = message::central_back(&box_id, since, back, delivered, &zone, from);
                if self.tell_admin(text).await && self.store.set_fallback(None).await.is_ok() {
                    None
                } else {
                    Some(since)
                }
            }
            None => {
                let reference = last.unwrap_or(started);
                let away = now.duration_since(reference);
                if away < SignedDuration::from_secs(i64::from(self.settings.fallback_after_s)) {
                    return None;
                }
                tracing::warn!(
                    since = %reference,
                    "the central server has been out of reach for notify.fallback_after_s: the box delivers the notifications itself"
                );
                if self.store.set_fallback(Some(reference)).await.is_err() {
                    return None;
                }
                let zone = self.zone();
                let text = message::central_away(&self.box_id(), reference, &zone, &self.channels.from);
                self.tell_admin(text).await;
                Some(reference)
            }
        }
    }

    /// Queues `message` to every admin address; false if it could not be stored.
    async fn tell_admin(&self, message: Message) -> bool {
        if self.channels.mailer.is_none() || self.settings.admin.is_empty() {
            return true;
        }
        let Ok(text) = serde_json::to_string(&message) else {
            return false;
        };
        let claim = Claim {
            upto: None,
            mark: Vec::new(),
            deliveries: self
                .settings
                .admin
                .iter()
                .map(|to| NewDelivery {
                    notification_seq: None,
                    channel: Channel::Smtp,
                    recipient: to.clone(),
                    message: text.clone(),
                })
                .collect(),
            at: None,
        };
        match self.store.claim(claim).await {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(error = %e, "the admin's message could not be stored");
                false
            }
        }
    }

    /// Takes on every notification after `cursor`; returns the new cursor.
    async fn take_on(&self, mut cursor: u64, by_box_since: Option<Timestamp>) -> u64 {
        loop {
            // Paired: no batch the syncer read before the mark may be on the wire after it.
            let gate = match &self.role {
                Role::Paired(sync) => Some(sync.outbox_gate.lock().await),
                Role::Standalone => None,
            };
            let scan = match self.store.unclaimed_notifications(cursor, SCAN).await {
                Ok(scan) => scan,
                Err(e) => {
                    tracing::error!(error = %e, "the notifier cannot read the outbox");
                    return cursor;
                }
            };
            if scan.upto == cursor && scan.notifications.is_empty() {
                return cursor;
            }
            let plan = self.plans.borrow().clone();
            let mut claim = Claim {
                upto: Some(scan.upto),
                ..Claim::default()
            };
            for n in &scan.notifications {
                let Some(composed) = message::compose(n, &plan, &plan.box_id, &self.channels.from, by_box_since) else {
                    continue;
                };
                let Ok(text) = serde_json::to_string(&composed.message) else {
                    continue;
                };
                claim.mark.push(n.seq);
                if self.channels.mailer.is_some() {
                    if composed.emails.is_empty() {
                        tracing::warn!(seq = n.seq, service = %n.origin.service, "a notification has no contact with a mail address");
                    }
                    for to in composed.emails {
                        claim.deliveries.push(NewDelivery {
                            notification_seq: Some(n.seq),
                            channel: Channel::Smtp,
                            recipient: to,
                            message: text.clone(),
                        });
                    }
                }
                for hook in &self.channels.hooks {
                    claim.deliveries.push(NewDelivery {
                        notification_seq: Some(n.seq),
                        channel: Channel::Webhook,
                        recipient: hook.webhook.shown(),
                        message: text.clone(),
                    });
                }
            }
            let taken = claim.mark.len();
            let full = scan.notifications.len() >= SCAN;
            match self.store.claim(claim).await {
                Ok(()) => {
                    if let (Some(mut gate), Role::Paired(_)) = (gate, &self.role) {
                        *gate += 1; // the syncer drops what it read before the mark
                    }
                    if taken > 0 {
                        tracing::info!(notifications = taken, "notifications taken on for delivery by the box");
                    }
                    cursor = scan.upto;
                }
                Err(e) => {
                    tracing::error!(error = %e, "notifications could not be taken on; retried");
                    return cursor;
                }
            }
            if !full {
                return cursor;
            }
        }
    }

    /// Starts due deliveries while slots are free.
    async fn start_due(&self, in_flight: &mut JoinSet<(Due, Result<String, Failure>)>, flying: &mut Vec<i64>) {
        let free = self.max_in_flight().saturating_sub(flying.len());
        if free == 0 {
            return;
        }
        let due = match self.store.due_deliveries(Timestamp::now(), free + flying.len()).await {
            Ok(due) => due,
            Err(e) => {
                tracing::error!(error = %e, "the notifier cannot read its deliveries");
                return;
            }
        };
        let fresh: Vec<Due> = due.into_iter().filter(|d| !flying.contains(&d.id)).take(free).collect();
        for d in fresh {
            flying.push(d.id);
            let channels = self.channels.clone();
            in_flight.spawn(async move {
                let result = match serde_json::from_str::<Message>(&d.message) {
                    Ok(message) => channels.send(d.channel, &d.recipient, &message).await,
                    Err(e) => Err(Failure {
                        permanent: true,
                        text: format!("the stored message cannot be read back ({e})"),
                    }),
                };
                (d, result)
            });
        }
    }

    /// Commits an attempt's outcome and counts it.
    async fn record(&self, due: Due, result: Result<String, Failure>) {
        let now = Timestamp::now();
        let channel = due.channel.index();
        let (outcome, error) = match result {
            Ok(answer) => {
                tracing::info!(channel = due.channel.as_str(), to = %due.recipient, notification = ?due.notification_seq, answer = %answer, "delivered");
                self.state.delivered[channel].fetch_add(1, Relaxed);
                (Outcome::Delivered, None)
            }
            Err(f) => {
                self.state.failed[channel].fetch_add(1, Relaxed);
                let outcome = next_attempt(&self.settings, &due, &f, now);
                match outcome {
                    Outcome::GaveUp => {
                        self.state.given_up[channel].fetch_add(1, Relaxed);
                        tracing::error!(channel = due.channel.as_str(), to = %due.recipient, notification = ?due.notification_seq, attempts = due.attempts + 1, error = %f.text, "delivery given up");
                    }
                    _ => {
                        tracing::warn!(channel = due.channel.as_str(), to = %due.recipient, attempts = due.attempts + 1, error = %f.text, "delivery failed; retried")
                    }
                }
                self.state.update(|v| {
                    v.last_error = Some(f.text.clone());
                    v.last_error_at = Some(now);
                });
                (outcome, Some(f.text))
            }
        };
        let attempt = Attempt {
            id: due.id,
            at: now,
            outcome,
            error,
        };
        if let Err(e) = self.store.attempted(attempt).await {
            tracing::error!(error = %e, "a delivery's outcome could not be recorded; it may be attempted again");
        }
    }

    /// Refreshes the counts shown; returns when the next pending attempt is due.
    async fn refresh(&self) -> Option<Timestamp> {
        let counts = self.store.delivery_counts().await.ok()?;
        self.state.update(|v| {
            v.pending = counts.pending;
            v.delivered = counts.delivered;
            v.failed = counts.failed;
        });
        counts.next_due.and_then(|ms| Timestamp::from_millisecond(ms).ok())
    }

    fn zone(&self) -> jiff::tz::TimeZone {
        let plan = self.plans.borrow();
        plan.tree.node(plan.box_node).zone.clone()
    }

    fn box_id(&self) -> String {
        self.plans.borrow().box_id.clone()
    }
}

/// After a failure: retry later (back-off doubling from `retry_first_s`, up to an hour, with
/// jitter, the last one at `retry_for_s`), or give up.
pub fn next_attempt(settings: &Notify, due: &Due, failure: &Failure, now: Timestamp) -> Outcome {
    let deadline = due.created + SignedDuration::from_secs(i64::from(settings.retry_for_s));
    if failure.permanent || now >= deadline {
        return Outcome::GaveUp;
    }
    let first = Duration::from_secs(u64::from(settings.retry_first_s));
    let wait = first.saturating_mul(1u32 << due.attempts.min(16)).min(MAX_BACKOFF);
    let jitter = 0.8 + fastrand::f64() * 0.4;
    let wait = SignedDuration::try_from(wait.mul_f64(jitter)).unwrap_or(SignedDuration::from_secs(3600));
    let at = (now + wait).min(deadline);
    Outcome::Retry(at)
}
