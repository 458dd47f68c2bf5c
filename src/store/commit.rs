//! Committing the writes that wait: one transaction for all of them, origin ids cached only
//! once committed, counts kept in step, and results dropped from memory, oldest first, while
//! nothing can be committed.

use std::collections::HashMap;
use std::sync::Arc;

use rusqlite::types::Value;
use rusqlite::{Connection, params};

use super::writer::Writer;
use super::{Item, codec};
use crate::record::{Body, Kind, Origin};

/// Results kept in memory, at most, while nothing can be committed; the oldest go first.
pub(super) const UNSAVED_RESULTS: usize = 20_000;

/// Writes that failed to commit, kept in order to be retried with the next commit.
pub(super) enum Write {
    Append(Vec<Item>, Vec<(String, String)>, Vec<super::Control>),
    Forget(Vec<String>),
    /// The box was running and checking until then (Unix milliseconds).
    Alive(i64),
}

impl Writer {
    /// Keeps at most [`UNSAVED_RESULTS`] results in memory, dropping the oldest; state
    /// changes, notifications and availability records are all kept.
    pub(super) fn trim_unsaved(&mut self) {
        let is_result = |(_, r): &Item| r.body.kind() == Kind::Result;
        let results = self.unsaved_items(is_result);
        let mut excess = results.saturating_sub(UNSAVED_RESULTS);
        for write in &mut self.unsaved {
            if excess == 0 {
                break;
            }
            if let Write::Append(items, _, _) = write {
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
    pub(super) fn unsaved_items(&self, counted: impl Fn(&Item) -> bool) -> usize {
        self.unsaved
            .iter()
            .map(|w| match w {
                Write::Append(items, _, _) => items.iter().filter(|i| counted(i)).count(),
                Write::Forget(_) | Write::Alive(_) => 0,
            })
            .sum()
    }

    /// Commits every unsaved write, and keeps the counts in step: one commit or one error.
    pub(super) fn try_commit(&mut self, seqs: &mut Vec<u64>) -> rusqlite::Result<()> {
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
                if committed.last_notification > 0 {
                    self.notifications.send_replace(committed.last_notification);
                }
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
            let mut history = tx.prepare_cached(
                "INSERT INTO history (service, ts, from_state, to_state, state_type) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for write in &self.unsaved {
                let (items, states, controls) = match write {
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
                    Write::Append(items, states, controls) => (items, states, controls),
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
                    // The record's seq, before another insert moves `last_insert_rowid`.
                    last = tx.last_insert_rowid() as u64;
                    if let Body::StateChange { from, to, state_type } = &record.body {
                        history.execute(params![
                            &*origin.service,
                            ts,
                            from.as_str(),
                            to.as_str(),
                            state_type.as_str()
                        ])?;
                    }
                    committed.records += 1;
                    committed.first_ts.get_or_insert(ts);
                    committed.last_seq = last;
                    if record.body.kind() == Kind::Notification {
                        committed.last_notification = last;
                    }
                }
                for (service, json) in states {
                    state.execute(params![service, json])?;
                }
                for c in controls {
                    super::control::apply(&tx, c)?;
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
}

/// What one commit wrote.
#[derive(Default)]
struct Committed {
    records: u64,
    first_ts: Option<i64>,
    last_seq: u64,
    /// The seq of the last notification record it wrote (0: none).
    last_notification: u64,
    /// Origins first inserted by it, cached once it has committed.
    origins: HashMap<Arc<Origin>, i64>,
}

/// The origin's row id: cached, given earlier in this transaction (`new`), or inserted now.
fn origin_id(
    conn: &Connection,
    committed: &HashMap<Arc<Origin>, i64>,
    new: &mut HashMap<Arc<Origin>, i64>,
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
    new.insert(origin.clone(), id);
    Ok(id)
}
