//! Notifications the box delivers itself (rules.md R17): which notification records it has
//! taken on (`meta.notify_cursor`), the deliveries waiting or done (`deliveries`), and each
//! attempt's outcome as a `delivery` record, all in the transaction that records it.
//!
//! These writes commit at once, outside the group commit: a notification is marked
//! `delivered_by: "box"` before anything is sent, and an attempt is recorded as soon as the
//! server answered, so that a crash can only repeat the last attempt (with the same Message-ID).

use std::sync::Arc;

use jiff::Timestamp;
use rusqlite::{OptionalExtension, params};

use super::writer::Writer;
use crate::record::{Body, Channel, Kind, Origin};

/// A notification record the box has not taken on yet.
#[derive(Debug, Clone)]
pub struct Unclaimed {
    pub seq: u64,
    pub ts: Timestamp,
    pub origin: Arc<Origin>,
    pub body: Body,
}

/// What one scan of the outbox found.
#[derive(Debug, Default)]
pub struct Scan {
    pub notifications: Vec<Unclaimed>,
    /// Every record up to this seq has been looked at: the cursor once these are claimed.
    pub upto: u64,
}

/// A delivery to make.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    /// The notification record it delivers; `None` for a message to the admin addresses.
    pub notification_seq: Option<u64>,
    pub channel: Channel,
    /// A mail address, or the webhook's URL as shown.
    pub recipient: String,
    /// The composed message, as the notifier reads it back (JSON).
    pub message: String,
}

/// The notifications the box takes on, and their deliveries, in one transaction.
#[derive(Debug, Default)]
pub struct Claim {
    /// The new cursor: every notification up to it is taken on (or was not the box's);
    /// `None` leaves it (the admin's messages).
    pub upto: Option<u64>,
    /// Notification records to mark `delivered_by: "box"`.
    pub mark: Vec<u64>,
    pub deliveries: Vec<NewDelivery>,
    pub at: Option<Timestamp>,
}

/// A delivery whose next attempt is due.
#[derive(Debug, Clone)]
pub struct Due {
    pub id: i64,
    pub notification_seq: Option<u64>,
    pub channel: Channel,
    pub recipient: String,
    pub message: String,
    /// Attempts made before this one.
    pub attempts: u32,
    pub created: Timestamp,
}

/// What became of an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Failed; the next attempt at this time.
    Retry(Timestamp),
    /// Failed for good: a permanent refusal, or `retry_for_s` is over.
    GaveUp,
}

impl Outcome {
    fn code(self) -> i64 {
        match self {
            Outcome::Retry(_) => 0,
            Outcome::Delivered => 1,
            Outcome::GaveUp => 2,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Attempt {
    pub id: i64,
    pub at: Timestamp,
    pub outcome: Outcome,
    pub error: Option<String>,
}

/// The deliveries the store holds, by outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub pending: u64,
    pub delivered: u64,
    pub failed: u64,
    /// When the next pending attempt is due (Unix ms).
    pub next_due: Option<i64>,
    /// Paired: since when the box has been delivering because the central server is out of
    /// reach (Unix ms), kept across restarts.
    pub fallback_since: Option<i64>,
    /// Notifications taken on since `fallback_since`.
    pub taken_since_fallback: u64,
}

/// What an attempt's record needs of its delivery: notification seq, origin row, channel,
/// recipient, attempts so far.
type Attempted = (Option<i64>, Option<i64>, i64, String, i64);

/// Where the cursor starts when the store has none yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CursorStart {
    /// Every notification still in the outbox is a candidate (paired: the central server has
    /// not acknowledged it).
    Beginning,
    /// Only notifications made from now on (standalone: older ones are history, and the box
    /// could not deliver when they were made).
    End,
}

impl Writer {
    pub(super) fn delivery_cursor(&mut self, start: CursorStart) -> rusqlite::Result<u64> {
        if let Some(cursor) = self.meta("notify_cursor")? {
            return Ok(cursor as u64);
        }
        let cursor = match start {
            CursorStart::Beginning => 0,
            CursorStart::End => self.counts.last_seq,
        };
        self.set_meta("notify_cursor", Some(cursor as i64))?;
        Ok(cursor)
    }

    /// Notification records after `after`, oldest first, at most `limit`.
    pub(super) fn unclaimed(&mut self, after: u64, limit: usize) -> rusqlite::Result<Scan> {
        let rows: Vec<(i64, i64, i64, String)> = {
            let mut stmt = self.conn.prepare_cached(
                "SELECT seq, ts, origin, body FROM outbox WHERE seq > ?1 AND kind = ?2 ORDER BY seq LIMIT ?3",
            )?;
            stmt.query_map(params![after as i64, Kind::Notification as i64, limit as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?
            .collect::<Result<_, _>>()?
        };
        let full = rows.len() >= limit;
        let mut scan = Scan {
            notifications: Vec::with_capacity(rows.len()),
            upto: self.counts.last_seq.max(after),
        };
        for (seq, ts, origin, body) in rows {
            if full {
                scan.upto = seq as u64;
            }
            let body = match serde_json::from_str::<Body>(&body) {
                Ok(body) => body,
                Err(error) => {
                    tracing::error!(seq, %error, "a notification record cannot be read back; the box does not deliver it");
                    continue;
                }
            };
            let origin = self.origin_named(origin)?;
            scan.notifications.push(Unclaimed {
                seq: seq as u64,
                ts: Timestamp::from_millisecond(ts).unwrap_or(Timestamp::UNIX_EPOCH),
                origin,
                body,
            });
        }
        Ok(scan)
    }

    pub(super) fn claim(&mut self, claim: &Claim) -> rusqlite::Result<()> {
        let now = claim.at.unwrap_or_else(Timestamp::now).as_millisecond();
        let tx = self.conn.transaction()?;
        {
            let mut mark = tx.prepare_cached(
                "UPDATE outbox SET body = json_set(body, '$.delivered_by', 'box') WHERE seq = ?1 AND kind = ?2",
            )?;
            for seq in &claim.mark {
                mark.execute(params![*seq as i64, Kind::Notification as i64])?;
            }
            let mut insert = tx.prepare_cached(
                "INSERT INTO deliveries (notification_seq, origin, channel, recipient, message, created, next_at)
                 VALUES (?1, (SELECT origin FROM outbox WHERE seq = ?1), ?2, ?3, ?4, ?5, ?5)",
            )?;
            for d in &claim.deliveries {
                insert.execute(params![
                    d.notification_seq.map(|s| s as i64),
                    d.channel.code(),
                    d.recipient,
                    d.message,
                    now
                ])?;
            }
            if let Some(upto) = claim.upto {
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES ('notify_cursor', ?1)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    [upto as i64],
                )?;
            }
        }
        tx.commit()
    }

    /// Pending deliveries due at `now`, soonest first, at most `limit`.
    pub(super) fn due(&mut self, now: Timestamp, limit: usize) -> rusqlite::Result<Vec<Due>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, notification_seq, channel, recipient, message, attempts, created FROM deliveries
             WHERE outcome = 0 AND next_at <= ?1 ORDER BY next_at LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![now.as_millisecond(), limit as i64], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Option<i64>>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, i64>(6)?,
            ))
        })?;
        let mut due = Vec::new();
        for row in rows {
            let (id, seq, channel, recipient, message, attempts, created) = row?;
            let Some(channel) = Channel::from_code(channel) else {
                tracing::error!(id, channel, "a delivery names an unknown channel; it is skipped");
                continue;
            };
            due.push(Due {
                id,
                notification_seq: seq.map(|s| s as u64),
                channel,
                recipient,
                message,
                attempts: attempts.max(0) as u32,
                created: Timestamp::from_millisecond(created).unwrap_or(Timestamp::UNIX_EPOCH),
            });
        }
        Ok(due)
    }

    /// Records an attempt, and for a notification's delivery its `delivery` record, together.
    pub(super) fn attempted(&mut self, attempt: &Attempt) -> rusqlite::Result<()> {
        let row: Option<Attempted> = self
            .conn
            .query_row(
                "SELECT notification_seq, origin, channel, recipient, attempts FROM deliveries WHERE id = ?1",
                [attempt.id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()?;
        let Some((seq, origin, channel, recipient, attempts)) = row else {
            return Ok(());
        };
        let at = attempt.at.as_millisecond();
        let (next_at, finished) = match attempt.outcome {
            Outcome::Retry(next) => (next.as_millisecond(), None),
            Outcome::Delivered | Outcome::GaveUp => (at, Some(at)),
        };
        let tx = self.conn.transaction()?;
        tx.execute(
            "UPDATE deliveries SET attempts = attempts + 1, outcome = ?2, next_at = ?3, last_error = ?4,
             finished = ?5 WHERE id = ?1",
            params![attempt.id, attempt.outcome.code(), next_at, attempt.error, finished],
        )?;
        let mut record_seq = None;
        if let (Some(seq), Some(origin), Some(channel)) = (seq, origin, Channel::from_code(channel)) {
            let body = Body::Delivery {
                notification_seq: seq as u64,
                channel,
                to: recipient,
                ok: attempt.outcome == Outcome::Delivered,
                attempts: (attempts + 1).max(1) as u32,
                error: attempt.error.clone(),
            };
            tx.execute(
                "INSERT INTO outbox (kind, ts, origin, body) VALUES (?1, ?2, ?3, ?4)",
                params![
                    Kind::Delivery as i64,
                    at,
                    origin,
                    serde_json::to_string(&body).unwrap_or_default()
                ],
            )?;
            record_seq = Some(tx.last_insert_rowid() as u64);
        }
        tx.commit()?;
        if let Some(seq) = record_seq {
            self.counts.records += 1;
            self.counts.last_seq = seq;
            self.counts.oldest_ts.get_or_insert(at);
        }
        Ok(())
    }

    pub(super) fn delivery_counts(&mut self) -> rusqlite::Result<Counts> {
        let mut counts = Counts::default();
        {
            let mut stmt = self
                .conn
                .prepare_cached("SELECT outcome, count(*) FROM deliveries GROUP BY outcome")?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))?;
            for row in rows {
                let (outcome, n) = row?;
                match outcome {
                    0 => counts.pending = n as u64,
                    1 => counts.delivered = n as u64,
                    _ => counts.failed += n as u64,
                }
            }
        }
        counts.next_due = self
            .conn
            .query_row("SELECT min(next_at) FROM deliveries WHERE outcome = 0", [], |r| {
                r.get(0)
            })?;
        counts.fallback_since = self.meta("fallback_since")?;
        if let Some(since) = counts.fallback_since {
            counts.taken_since_fallback = self.conn.query_row(
                "SELECT count(DISTINCT notification_seq) FROM deliveries WHERE created >= ?1",
                [since],
                |r| r.get::<_, i64>(0),
            )? as u64;
        }
        Ok(counts)
    }

    pub(super) fn set_fallback(&mut self, since: Option<i64>) -> rusqlite::Result<()> {
        self.set_meta("fallback_since", since)
    }

    /// Standalone retention: records older than `before` go, every kind (nothing acknowledges
    /// them), and so do deliveries finished before it. Returns the records deleted.
    pub(super) fn expire(&mut self, before: Timestamp, outbox: bool) -> rusqlite::Result<usize> {
        let before = before.as_millisecond();
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM deliveries WHERE outcome != 0 AND finished < ?1", [before])?;
        let mut deleted = 0;
        if outbox {
            // Seqs grow with time: the first record young enough bounds what goes, found by
            // walking from the oldest instead of scanning every row's ts.
            let keep_from: Option<i64> = tx
                .query_row(
                    "SELECT seq FROM outbox WHERE ts >= ?1 ORDER BY seq LIMIT 1",
                    [before],
                    |r| r.get(0),
                )
                .optional()?;
            deleted = match keep_from {
                Some(seq) => tx.execute("DELETE FROM outbox WHERE seq < ?1", [seq])?,
                None => tx.execute("DELETE FROM outbox", [])?,
            };
        }
        tx.commit()?;
        if deleted > 0 {
            self.counts.records = self.counts.records.saturating_sub(deleted as u64);
            self.reread_oldest()?;
            self.measure_used_bytes()?;
        }
        Ok(deleted)
    }

    fn meta(&self, key: &str) -> rusqlite::Result<Option<i64>> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
    }

    fn set_meta(&self, key: &str, value: Option<i64>) -> rusqlite::Result<()> {
        match value {
            Some(v) => self.conn.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, v],
            )?,
            None => self.conn.execute("DELETE FROM meta WHERE key = ?1", [key])?,
        };
        Ok(())
    }
}
