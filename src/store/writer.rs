//! The writer thread: the only code that touches the SQLite connection.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension};
use tokio::sync::mpsc;

use super::cap::is_out_of_space;
use super::commit::Write;
use super::room::Room;
use super::{DeliveryOp, Op, StoreError, schema};
use crate::record::Origin;

/// Requests committed in one transaction, at most.
const BATCH: usize = 512;

/// How often unsaved writes are retried when no new write comes.
const RETRY_EVERY: Duration = Duration::from_secs(1);
/// Writes nobody waits for are committed together, at most one commit per this much time:
/// flash wears by bytes written, and each commit rewrites whole pages (the outbox's last leaf,
/// `sqlite_sequence`) and syncs them, with the filesystem's journal. At 1,000 services a
/// minute, 1 s gave 1,123 bytes written per result, 2 s about half. A crash loses what waits
/// (results of the last 2 s, which no one was told were committed).
const GROUP_COMMIT: Duration = Duration::from_secs(2);
/// Failing commits for this long make the store unhealthy (`/healthz`, the watchdog): longer
/// than a busy database or a released reserve takes, short enough for systemd to act.
pub const UNHEALTHY_AFTER: Duration = Duration::from_secs(10);

/// Figures of the outbox, for the status endpoint and the heartbeat.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Stats {
    pub records: u64,
    pub bytes: u64,
    /// Unix milliseconds of the oldest record still buffered.
    pub oldest_ts: Option<i64>,
    pub dropped: u64,
    pub last_seq: u64,
    pub commits: u64,
    pub errors: u64,
    /// The cap in force: the setting, or less when the filesystem has less room.
    pub cap_bytes: u64,
    /// The filesystem, not the setting, is what limits the outbox now, and it is at its limit
    /// (or a commit failed for lack of space).
    pub disk_full: bool,
    /// Records not committed yet: waiting for their group's commit (at most a second), or
    /// kept in memory after a failed one.
    pub unsaved: u64,
    /// Seconds since commits began failing, while none has succeeded since.
    pub failing_s: Option<u64>,
    /// Why the last commit failed, while none has succeeded since.
    pub commit_error: Option<String>,
}

impl Stats {
    /// A store that has not committed for [`UNHEALTHY_AFTER`] is unhealthy: records pile up in
    /// memory and a crash would lose them.
    pub fn healthy(&self) -> bool {
        self.failing_s.is_none_or(|s| s < UNHEALTHY_AFTER.as_secs())
    }
}

/// Failing commits, while none has succeeded since.
pub(super) struct Failure {
    /// The first failure of this run of failures.
    pub(super) since: Instant,
    /// The last one.
    pub(super) at: Instant,
    pub(super) out_of_space: bool,
    pub(super) error: String,
}

/// The outbox's figures, kept in step with every commit, ack and drop (never counted by a
/// scan on the writer thread).
#[derive(Default)]
pub(super) struct Counts {
    pub(super) records: u64,
    pub(super) oldest_ts: Option<i64>,
    pub(super) dropped: u64,
    pub(super) last_seq: u64,
    pub(super) commits: u64,
    pub(super) errors: u64,
}

pub(super) struct Writer {
    pub(super) conn: Connection,
    pub(super) room: Room,
    /// The WAL is checkpointed often because the disk is short of room.
    pub(super) short_wal: bool,
    /// A commit failed and none has succeeded since.
    pub(super) failure: Option<Failure>,
    /// Writes not committed yet, oldest first: waiting for their group's commit, or kept after
    /// a failed one.
    pub(super) unsaved: Vec<Write>,
    /// When the oldest write of `unsaved` came: its group is committed `group_commit` later.
    pub(super) queued_since: Option<Instant>,
    /// [`GROUP_COMMIT`], or zero when no timer could be had (every write commits at once).
    pub(super) group_commit: Duration,
    /// Results dropped from `unsaved`, added to `meta.dropped` by the next commit.
    pub(super) unsaved_dropped: u64,
    /// Origin ids of committed rows only: an id given inside a transaction that rolls back
    /// would be given again to another origin. Keyed by the scheduler's own `Arc`s: no copy per service.
    pub(super) origins: HashMap<Arc<Origin>, i64>,
    pub(super) origin_names: HashMap<i64, Arc<Origin>>,
    pub(super) counts: Counts,
    /// Bytes of live pages when last measured (`measure_used_bytes`).
    pub(super) used_bytes: u64,
    /// The seq of the last notification record committed: wakes the notifier (R17).
    pub(super) notifications: tokio::sync::watch::Sender<u64>,
}

impl Writer {
    pub fn open(path: &Path, max_bytes: u64) -> Result<Writer, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open(path).map_err(open_err)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(open_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(open_err)?;
        let mut writer = Writer {
            conn,
            room: Room::new(path.parent().unwrap_or(Path::new(".")), max_bytes),
            short_wal: false,
            failure: None,
            unsaved: Vec::new(),
            queued_since: None,
            group_commit: GROUP_COMMIT,
            unsaved_dropped: 0,
            origins: HashMap::new(),
            origin_names: HashMap::new(),
            counts: Counts::default(),
            used_bytes: 0,
            notifications: tokio::sync::watch::Sender::new(0),
        };
        schema::migrate(&mut writer.conn).map_err(open_err)?;
        writer.counts = writer.read_counts().map_err(open_err)?;
        writer.measure_used_bytes().map_err(open_err)?;
        Ok(writer)
    }

    /// The outbox's figures as the file holds them: once, at open.
    fn read_counts(&self) -> rusqlite::Result<Counts> {
        let q = |sql: &str| self.conn.query_row(sql, [], |r| r.get::<_, Option<i64>>(0)).optional();
        Ok(Counts {
            records: q("SELECT count(*) FROM outbox")?.flatten().unwrap_or(0) as u64,
            oldest_ts: q("SELECT ts FROM outbox ORDER BY seq LIMIT 1")?.flatten(),
            dropped: q("SELECT value FROM meta WHERE key = 'dropped'")?
                .flatten()
                .unwrap_or(0) as u64,
            last_seq: q("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'")?
                .flatten()
                .unwrap_or(0) as u64,
            commits: 0,
            errors: 0,
        })
    }

    /// After rows left the outbox: the oldest one still there.
    pub(super) fn reread_oldest(&mut self) -> rusqlite::Result<()> {
        self.counts.oldest_ts = self
            .conn
            .query_row("SELECT ts FROM outbox ORDER BY seq LIMIT 1", [], |r| r.get(0))
            .optional()?;
        Ok(())
    }

    /// Until when the box last said it was running (`Store::mark_alive`), in Unix ms.
    pub fn alive_until(&self) -> Result<Option<i64>, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'alive_until'", [], |r| r.get(0))
            .optional()?)
    }

    pub fn load_states(&mut self) -> Result<Vec<(String, String)>, StoreError> {
        let mut stmt = self.conn.prepare("SELECT service, state FROM service_state")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Serves requests until every handle is dropped; returns how many records it could not
    /// commit at the end (lost).
    pub fn run(mut self, mut rx: mpsc::Receiver<Op>) -> u64 {
        // Only to wait for the next request with a deadline (the group's commit).
        let timer = tokio::runtime::Builder::new_current_thread().enable_time().build();
        if let Err(e) = &timer {
            tracing::warn!(error = %e, "no timer for group commits: every write commits at once");
            self.group_commit = Duration::ZERO;
        }
        loop {
            let next = match (self.wake_at(), &timer) {
                // The timeout is made inside `block_on`: a timer needs the runtime's context.
                (Some(at), Ok(timer)) => {
                    match timer.block_on(async { tokio::time::timeout_at(at.into(), rx.recv()).await }) {
                        Ok(next) => next,
                        Err(_) => {
                            self.apply(Vec::new());
                            continue;
                        }
                    }
                }
                _ => rx.blocking_recv(),
            };
            let Some(first) = next else { break };
            let mut batch = vec![first];
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(op) => batch.push(op),
                    Err(_) => break,
                }
            }
            self.apply(batch);
        }
        if self.unsaved.is_empty() {
            return 0;
        }
        let mut seqs = Vec::new();
        match self.try_commit(&mut seqs) {
            Ok(()) => 0,
            Err(e) => {
                let records = self.unsaved_items(|_| true) as u64;
                tracing::error!(records, error = %e, "the store closes with records it could not commit: they are lost");
                records
            }
        }
    }

    /// When waiting writes must be committed (their group is due) or retried (after a failure).
    fn wake_at(&self) -> Option<Instant> {
        if self.unsaved.is_empty() {
            return None;
        }
        match &self.failure {
            Some(f) => Some(f.at + RETRY_EVERY),
            None => self.queued_since.map(|t| t + self.group_commit),
        }
    }

    fn apply(&mut self, batch: Vec<Op>) {
        self.read_room(false);
        // Writes join the unsaved ones (usually none); each keeps its place for its reply.
        let mut queries = Vec::new();
        let mut replies = Vec::new();
        for op in batch {
            let write = match op {
                Op::Append {
                    items,
                    states,
                    control,
                    done,
                } => {
                    if let Some(done) = done {
                        replies.push((self.unsaved.len(), done));
                    }
                    Write::Append(items, states, control)
                }
                Op::Forget { services } => Write::Forget(services),
                Op::Alive { at } => Write::Alive(at),
                query => {
                    queries.push(query);
                    continue;
                }
            };
            self.queued_since.get_or_insert_with(Instant::now);
            self.unsaved.push(write);
        }
        let mut seqs = Vec::new();
        // A writer waiting for its commit has it now; others wait for their group. After a
        // failure, retries come only now and then: each may wait out the busy timeout.
        // R18's counts read every mark queued before them (a mark waits no group then).
        let counting = queries
            .iter()
            .any(|q| matches!(q, Op::Polled { .. } | Op::UnsentInventoryDays { .. }));
        let due = match &self.failure {
            Some(f) => !replies.is_empty() || f.at.elapsed() >= RETRY_EVERY,
            None => {
                !replies.is_empty() || counting || self.queued_since.is_some_and(|t| t.elapsed() >= self.group_commit)
            }
        };
        let result = if self.unsaved.is_empty() || !due {
            None
        } else {
            let mut result = self.try_commit(&mut seqs);
            if let Err(e) = &result
                && is_out_of_space(e)
            {
                self.make_room_after_failure();
                seqs.clear();
                result = self.try_commit(&mut seqs);
            }
            Some(result)
        };
        match &result {
            None => {}
            Some(Ok(())) if self.failure.take().is_some() => tracing::info!("the store commits again"),
            Some(Ok(())) => {}
            Some(Err(e)) => {
                if self.failure.is_none() {
                    tracing::error!(error = %e, "the store cannot commit: records are kept in memory and retried");
                }
                let now = Instant::now();
                self.failure = Some(Failure {
                    since: self.failure.as_ref().map_or(now, |f| f.since),
                    at: now,
                    out_of_space: is_out_of_space(e),
                    error: e.to_string(),
                });
                self.trim_unsaved();
            }
        }
        for (index, done) in replies {
            let answer = match &result {
                Some(Ok(())) => Ok(seqs.get(index).copied().unwrap_or(0)),
                Some(Err(e)) => Err(format!("not committed yet (kept in memory): {e}")),
                None => Err("not committed yet (kept in memory)".to_string()),
            };
            let _ = done.send(answer);
        }
        for query in queries {
            match query {
                Op::Pending { after, limit, reply } => {
                    let _ = reply.send(self.pending(after, limit).map_err(|e| e.to_string()));
                }
                Op::PendingBatch { after, limit, reply } => {
                    let _ = reply.send(self.pending_batch(after, limit).map_err(|e| e.to_string()));
                }
                Op::Ack { upto, reply } => {
                    let _ = reply.send(self.ack(upto).map_err(|e| e.to_string()));
                }
                Op::Stats { reply } => {
                    let _ = reply.send(self.stats());
                }
                Op::Deliveries(op) => self.serve_delivery(op),
                Op::History {
                    service,
                    since,
                    limit,
                    reply,
                } => {
                    let _ = reply.send(self.history(service.as_deref(), since, limit));
                }
                Op::PruneHistory { before, reply } => {
                    let _ = reply.send(self.prune_history(before));
                }
                Op::CommandReceived { id, at_ms, reply } => {
                    let _ = reply.send(self.command_received(&id, at_ms));
                }
                Op::Polled { company, day, reply } => {
                    let _ = reply.send(self.polled(&company, day));
                }
                Op::UnsentInventoryDays { reply } => {
                    let _ = reply.send(self.unsent_inventory_days());
                }
                Op::Append { .. } | Op::Forget { .. } | Op::Alive { .. } => {}
            }
        }
        if matches!(result, Some(Ok(())))
            && let Err(e) = self.drop_oldest_results(false)
        {
            tracing::error!(error = %e, "the store could not apply its size cap");
        }
    }

    fn serve_delivery(&mut self, op: DeliveryOp) {
        match op {
            DeliveryOp::Cursor { start, reply } => {
                let _ = reply.send(self.delivery_cursor(start));
            }
            DeliveryOp::Unclaimed { after, limit, reply } => {
                let _ = reply.send(self.unclaimed(after, limit));
            }
            DeliveryOp::Claim { claim, reply } => {
                let _ = reply.send(self.claim(&claim));
            }
            DeliveryOp::Due { now, limit, reply } => {
                let _ = reply.send(self.due(now, limit));
            }
            DeliveryOp::Attempted { attempt, reply } => {
                let _ = reply.send(self.attempted(&attempt));
            }
            DeliveryOp::Counts { reply } => {
                let _ = reply.send(self.delivery_counts());
            }
            DeliveryOp::Fallback { since, reply } => {
                let _ = reply.send(self.set_fallback(since));
            }
            DeliveryOp::Expire { before, outbox, reply } => {
                let _ = reply.send(self.expire(before, outbox));
            }
        }
    }

    fn stats(&self) -> Stats {
        let c = &self.counts;
        Stats {
            records: c.records,
            bytes: self.used_bytes,
            oldest_ts: c.oldest_ts,
            dropped: c.dropped + self.unsaved_dropped,
            last_seq: c.last_seq,
            commits: c.commits,
            errors: c.errors,
            cap_bytes: self.room.cap,
            disk_full: self.failure.as_ref().is_some_and(|f| f.out_of_space) || self.room.disk_full(),
            unsaved: self.unsaved_items(|_| true) as u64,
            failing_s: self.failure.as_ref().map(|f| f.since.elapsed().as_secs()),
            commit_error: self.failure.as_ref().map(|f| f.error.clone()),
        }
    }
}
