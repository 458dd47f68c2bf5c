//! The writer thread: the only code that touches the SQLite connection.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::mpsc;

use super::room::Room;
use super::{Batch, Item, Op, StoreError, codec};
use crate::record::{self, Kind, Origin};

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
/// Results kept in memory, at most, while nothing can be committed; the oldest go first.
const UNSAVED_RESULTS: usize = 20_000;
/// Failing commits for this long make the store unhealthy (`/healthz`, the watchdog): longer
/// than a busy database or a released reserve takes, short enough for systemd to act.
pub const UNHEALTHY_AFTER: Duration = Duration::from_secs(10);

/// Each migration brings the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
     CREATE TABLE origins (id INTEGER PRIMARY KEY, service TEXT NOT NULL, device TEXT NOT NULL,
                           node TEXT NOT NULL, company TEXT, UNIQUE (service, device, node, company));
     CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, kind INTEGER NOT NULL,
                          ts INTEGER NOT NULL, origin INTEGER NOT NULL, body TEXT NOT NULL);
     CREATE INDEX outbox_kind ON outbox (kind, seq);
     CREATE TABLE service_state (service TEXT PRIMARY KEY, state TEXT NOT NULL);
     INSERT INTO meta (key, value) VALUES ('dropped', 0);",
    // 2: results become compact BLOBs (codec.rs); the kind index cost 13 bytes a row for a
    // query that walks the oldest rows, which the primary key already orders.
    "DROP INDEX outbox_kind;",
];

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

/// Writes that failed to commit, kept in order to be retried with the next commit.
enum Write {
    Append(Vec<Item>, Vec<(String, String)>),
    Forget(Vec<String>),
    /// The box was running and checking until then (Unix milliseconds).
    Alive(i64),
}

/// Failing commits, while none has succeeded since.
struct Failure {
    /// The first failure of this run of failures.
    since: Instant,
    /// The last one.
    at: Instant,
    out_of_space: bool,
    error: String,
}

/// The outbox's figures, kept in step with every commit, ack and drop (never counted by a
/// scan on the writer thread).
#[derive(Default)]
struct Counts {
    records: u64,
    oldest_ts: Option<i64>,
    dropped: u64,
    last_seq: u64,
    commits: u64,
    errors: u64,
}

pub(super) struct Writer {
    conn: Connection,
    room: Room,
    /// The WAL is checkpointed often because the disk is short of room.
    short_wal: bool,
    /// A commit failed and none has succeeded since.
    failure: Option<Failure>,
    /// Writes not committed yet, oldest first: waiting for their group's commit, or kept after
    /// a failed one.
    unsaved: Vec<Write>,
    /// When the oldest write of `unsaved` came: its group is committed `group_commit` later.
    queued_since: Option<Instant>,
    /// [`GROUP_COMMIT`], or zero when no timer could be had (every write commits at once).
    group_commit: Duration,
    /// Results dropped from `unsaved`, added to `meta.dropped` by the next commit.
    unsaved_dropped: u64,
    /// Origin ids of committed rows only: an id given inside a transaction that rolls back
    /// would be given again to another origin.
    origins: HashMap<Origin, i64>,
    origin_names: HashMap<i64, Arc<Origin>>,
    counts: Counts,
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
        };
        writer.migrate().map_err(open_err)?;
        writer.counts = writer.read_counts().map_err(open_err)?;
        Ok(writer)
    }

    fn migrate(&mut self) -> rusqlite::Result<()> {
        let version: i64 = self.conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
            let tx = self.conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        Ok(())
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
    fn reread_oldest(&mut self) -> rusqlite::Result<()> {
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
                Op::Append { items, states, done } => {
                    if let Some(done) = done {
                        replies.push((self.unsaved.len(), done));
                    }
                    Write::Append(items, states)
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
        let due = match &self.failure {
            Some(f) => !replies.is_empty() || f.at.elapsed() >= RETRY_EVERY,
            None => !replies.is_empty() || self.queued_since.is_some_and(|t| t.elapsed() >= self.group_commit),
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
                Op::Append { .. } | Op::Forget { .. } | Op::Alive { .. } => {}
            }
        }
        if matches!(result, Some(Ok(())))
            && let Err(e) = self.drop_oldest_results(false)
        {
            tracing::error!(error = %e, "the store could not apply its size cap");
        }
    }

    /// Reads the filesystem's room (every few seconds, or `now`), and keeps the WAL short
    /// while the disk is short of space.
    fn read_room(&mut self, now: bool) {
        let conn = &self.conn;
        if !self.room.read(|| file_bytes(conn).unwrap_or(0), now) {
            return;
        }
        if self.room.tight() != self.short_wal {
            self.short_wal = self.room.tight();
            let pages = if self.short_wal { 64 } else { 1000 };
            if let Err(e) = self.conn.pragma_update(None, "wal_autocheckpoint", pages) {
                tracing::warn!(error = %e, "cannot set wal_autocheckpoint");
            }
        }
    }

    /// After a commit failed for lack of space: the reserve goes, the WAL is folded into the
    /// database and truncated, and the oldest results go, which frees pages for the retry.
    fn make_room_after_failure(&mut self) {
        self.room.release();
        if let Err(e) = self.conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "cannot checkpoint the WAL");
        }
        self.read_room(true);
        if let Err(e) = self.drop_oldest_results(true) {
            tracing::warn!(error = %e, "no room could be made in the outbox");
        }
    }

    /// Keeps at most [`UNSAVED_RESULTS`] results in memory, dropping the oldest; state
    /// changes, notifications and availability records are all kept.
    fn trim_unsaved(&mut self) {
        let is_result = |(_, r): &Item| r.body.kind() == Kind::Result;
        let results = self.unsaved_items(is_result);
        let mut excess = results.saturating_sub(UNSAVED_RESULTS);
        for write in &mut self.unsaved {
            if excess == 0 {
                break;
            }
            if let Write::Append(items, _) = write {
                items.retain(|item| {
                    if excess > 0 && is_result(item) {
                        excess -= 1;
                        false
                    } else {
                        true
                    }
                });
            }
        }
        let dropped = results.saturating_sub(UNSAVED_RESULTS) as u64;
        if dropped > 0 {
            self.unsaved_dropped += dropped;
            tracing::warn!(dropped, "results waiting in memory were dropped, oldest first");
        }
    }

    /// How many unsaved records `counted` says yes to.
    fn unsaved_items(&self, counted: impl Fn(&Item) -> bool) -> usize {
        self.unsaved
            .iter()
            .map(|w| match w {
                Write::Append(items, _) => items.iter().filter(|i| counted(i)).count(),
                Write::Forget(_) | Write::Alive(_) => 0,
            })
            .sum()
    }

    /// Commits every unsaved write, and keeps the counts in step: one commit or one error.
    fn try_commit(&mut self, seqs: &mut Vec<u64>) -> rusqlite::Result<()> {
        match self.commit_unsaved(seqs) {
            Ok(committed) => {
                self.counts.commits += 1;
                self.counts.records += committed.records;
                self.counts.dropped += self.unsaved_dropped;
                self.unsaved_dropped = 0;
                if committed.last_seq > 0 {
                    self.counts.last_seq = committed.last_seq;
                }
                if self.counts.oldest_ts.is_none() {
                    self.counts.oldest_ts = committed.first_ts;
                }
                self.origins.extend(committed.origins);
                self.unsaved.clear();
                self.queued_since = None;
                Ok(())
            }
            Err(e) => {
                self.counts.errors += 1;
                Err(e)
            }
        }
    }

    /// Commits every unsaved write in one transaction; `seqs` gets each one's last seq.
    fn commit_unsaved(&mut self, seqs: &mut Vec<u64>) -> rusqlite::Result<Committed> {
        let mut committed = Committed::default();
        let tx = self.conn.transaction()?;
        {
            let mut insert =
                tx.prepare_cached("INSERT INTO outbox (kind, ts, origin, body) VALUES (?1, ?2, ?3, ?4)")?;
            let mut state = tx.prepare_cached(
                "INSERT INTO service_state (service, state) VALUES (?1, ?2)
                 ON CONFLICT (service) DO UPDATE SET state = excluded.state",
            )?;
            let mut forget = tx.prepare_cached("DELETE FROM service_state WHERE service = ?1")?;
            for write in &self.unsaved {
                let (items, states) = match write {
                    Write::Alive(at) => {
                        tx.execute(
                            "INSERT INTO meta (key, value) VALUES ('alive_until', ?1)
                             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                            [at],
                        )?;
                        seqs.push(0);
                        continue;
                    }
                    Write::Forget(services) => {
                        for service in services {
                            forget.execute([service])?;
                        }
                        seqs.push(0);
                        continue;
                    }
                    Write::Append(items, states) => (items, states),
                };
                let mut last = 0;
                for (origin, record) in items {
                    let origin_id = origin_id(&tx, &self.origins, &mut committed.origins, origin)?;
                    let body = match codec::encode_result(&record.body) {
                        Some(blob) => Value::Blob(blob),
                        None => Value::Text(serde_json::to_string(&record.body).unwrap_or_default()),
                    };
                    let ts = record.ts.as_millisecond();
                    insert.execute(params![record.body.kind() as i64, ts, origin_id, body])?;
                    last = tx.last_insert_rowid() as u64;
                    committed.records += 1;
                    committed.first_ts.get_or_insert(ts);
                    committed.last_seq = last;
                }
                for (service, json) in states {
                    state.execute(params![service, json])?;
                }
                seqs.push(last);
            }
            if self.unsaved_dropped > 0 {
                tx.execute(
                    "UPDATE meta SET value = value + ?1 WHERE key = 'dropped'",
                    [self.unsaved_dropped as i64],
                )?;
            }
        }
        tx.commit()?;
        Ok(committed)
    }

    /// Up to `limit` records after `after`, oldest first, as one JSON array in the wire form.
    fn pending_batch(&mut self, after: u64, limit: usize) -> rusqlite::Result<Batch> {
        let rows: Vec<(i64, i64, i64, Value)> = {
            let mut stmt = self
                .conn
                .prepare_cached("SELECT seq, ts, origin, body FROM outbox WHERE seq > ?1 ORDER BY seq LIMIT ?2")?;
            stmt.query_map(params![after as i64, limit as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?
            .collect::<Result<_, _>>()?
        };
        let mut batch = Batch {
            json: Vec::with_capacity(rows.len() * 256 + 2),
            seqs: Vec::with_capacity(rows.len()),
        };
        batch.json.push(b'[');
        for (seq, ts, origin, body) in rows {
            let body = match body {
                Value::Blob(b) => codec::decode_result(&b).map_err(|e| e.to_string()),
                Value::Text(t) => serde_json::from_str::<record::Body>(&t).map_err(|e| e.to_string()),
                _ => Err("neither a BLOB nor a text".to_string()),
            };
            let (body, origin) = match (body, self.origin_named(origin)) {
                (Ok(body), Ok(origin)) => (body, origin),
                (Err(error), _) => {
                    tracing::error!(seq, %error, "an outbox record cannot be read back; it is skipped");
                    continue;
                }
                (_, Err(error)) => {
                    tracing::error!(seq, %error, "an outbox record's origin is missing; it is skipped");
                    continue;
                }
            };
            if !batch.seqs.is_empty() {
                batch.json.push(b',');
            }
            let ts = jiff::Timestamp::from_millisecond(ts).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
            record::write_wire(&mut batch.json, seq as u64, ts, &origin, &body);
            batch.seqs.push(seq as u64);
        }
        batch.json.push(b']');
        Ok(batch)
    }

    fn pending(&mut self, after: u64, limit: usize) -> rusqlite::Result<Vec<serde_json::Value>> {
        let batch = self.pending_batch(after, limit)?;
        Ok(serde_json::from_slice(&batch.json).unwrap_or_default())
    }

    /// An origin by its row id, from a cache filled on first use.
    fn origin_named(&mut self, id: i64) -> rusqlite::Result<Arc<Origin>> {
        if let Some(origin) = self.origin_names.get(&id) {
            return Ok(origin.clone());
        }
        let origin = Arc::new(self.conn.query_row(
            "SELECT service, device, node, company FROM origins WHERE id = ?1",
            [id],
            |r| {
                Ok(Origin {
                    service: r.get(0)?,
                    device: r.get(1)?,
                    node: r.get(2)?,
                    company: r.get(3)?,
                })
            },
        )?);
        self.origin_names.insert(id, origin.clone());
        Ok(origin)
    }

    fn ack(&mut self, upto: u64) -> rusqlite::Result<usize> {
        let deleted = self
            .conn
            .execute("DELETE FROM outbox WHERE seq <= ?1", params![upto as i64])?;
        if deleted > 0 {
            self.counts.records = self.counts.records.saturating_sub(deleted as u64);
            self.reread_oldest()?;
        }
        Ok(deleted)
    }

    /// Bytes used by live pages: what the cap is measured against.
    fn used_bytes(&self) -> rusqlite::Result<u64> {
        let page_size: i64 = self.conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
        let pages: i64 = self.conn.pragma_query_value(None, "page_count", |r| r.get(0))?;
        let free: i64 = self.conn.pragma_query_value(None, "freelist_count", |r| r.get(0))?;
        Ok(((pages - free).max(0) * page_size) as u64)
    }

    /// Deletes the oldest results while over the cap (or a slice of them when `force`d).
    fn drop_oldest_results(&mut self, force: bool) -> rusqlite::Result<()> {
        let mut forced = force;
        while forced || self.used_bytes()? > self.room.limit() {
            forced = false;
            // A twentieth of the outbox a round: the records count stands in for the results'.
            let n = (self.counts.records / 20).max(100);
            let tx = self.conn.transaction()?;
            let dropped = tx.execute(
                "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox WHERE kind = ?1 ORDER BY seq LIMIT ?2)",
                params![Kind::Result as i64, n as i64],
            )?;
            if dropped == 0 {
                return Ok(()); // only records that are never dropped are left
            }
            tx.execute(
                "UPDATE meta SET value = value + ?1 WHERE key = 'dropped'",
                [dropped as i64],
            )?;
            tx.commit()?;
            self.counts.records = self.counts.records.saturating_sub(dropped as u64);
            self.counts.dropped += dropped as u64;
            self.reread_oldest()?;
            tracing::warn!(dropped, "outbox over its size cap: the oldest results were dropped");
        }
        Ok(())
    }

    fn stats(&self) -> Stats {
        let c = &self.counts;
        Stats {
            records: c.records,
            bytes: self.used_bytes().unwrap_or(0),
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

/// What one commit wrote.
#[derive(Default)]
struct Committed {
    records: u64,
    first_ts: Option<i64>,
    last_seq: u64,
    /// Origins first inserted by it, cached once it has committed.
    origins: HashMap<Origin, i64>,
}

/// The origin's row id: cached, given earlier in this transaction (`new`), or inserted now.
fn origin_id(
    conn: &Connection,
    committed: &HashMap<Origin, i64>,
    new: &mut HashMap<Origin, i64>,
    origin: &Arc<Origin>,
) -> rusqlite::Result<i64> {
    if let Some(id) = committed.get(origin.as_ref()).or_else(|| new.get(origin.as_ref())) {
        return Ok(*id);
    }
    conn.execute(
        "INSERT OR IGNORE INTO origins (service, device, node, company) VALUES (?1, ?2, ?3, ?4)",
        params![origin.service, origin.device, origin.node, origin.company],
    )?;
    let id = conn.query_row(
        "SELECT id FROM origins WHERE service = ?1 AND device = ?2 AND node = ?3 AND company IS ?4",
        params![origin.service, origin.device, origin.node, origin.company],
        |r| r.get(0),
    )?;
    new.insert(origin.as_ref().clone(), id);
    Ok(id)
}

/// SQLITE_FULL: the filesystem (or the file-size limit) has no room for the transaction.
fn is_out_of_space(e: &rusqlite::Error) -> bool {
    e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull)
}

/// The database file's size.
fn file_bytes(conn: &Connection) -> rusqlite::Result<u64> {
    let page_size: i64 = conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
    let pages: i64 = conn.pragma_query_value(None, "page_count", |r| r.get(0))?;
    Ok((pages.max(0) * page_size) as u64)
}
