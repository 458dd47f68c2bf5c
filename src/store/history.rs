//! Each service's state changes, kept after the central server acknowledged them (the
//! outbox forgets them then): `/history` and the page's timeline read them here. Written in
//! the transaction of the state change record itself (`commit.rs`).

use jiff::Timestamp;
use rusqlite::params;
use serde::Serialize;

use super::writer::Writer;

/// One state change, as `/history` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub service: String,
    #[serde(serialize_with = "millis")]
    pub ts: Timestamp,
    pub from: String,
    pub to: String,
    pub state_type: String,
}

fn millis<S: serde::Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::record::rfc3339_millis(*t))
}

impl Writer {
    /// State changes since `since`, oldest first, of one service or of all; at most `limit`.
    pub(super) fn history(
        &mut self,
        service: Option<&str>,
        since: Timestamp,
        limit: usize,
    ) -> rusqlite::Result<Vec<Change>> {
        let row = |r: &rusqlite::Row<'_>| {
            Ok(Change {
                service: r.get(0)?,
                ts: Timestamp::from_millisecond(r.get(1)?).unwrap_or(Timestamp::UNIX_EPOCH),
                from: r.get(2)?,
                to: r.get(3)?,
                state_type: r.get(4)?,
            })
        };
        let since = since.as_millisecond();
        match service {
            Some(service) => {
                let mut stmt = self.conn.prepare_cached(
                    "SELECT service, ts, from_state, to_state, state_type FROM history
                     WHERE service = ?1 AND ts >= ?2 ORDER BY ts LIMIT ?3",
                )?;
                stmt.query_map(params![service, since, limit as i64], row)?.collect()
            }
            None => {
                let mut stmt = self.conn.prepare_cached(
                    "SELECT service, ts, from_state, to_state, state_type FROM history
                     WHERE ts >= ?1 ORDER BY ts LIMIT ?2",
                )?;
                stmt.query_map(params![since, limit as i64], row)?.collect()
            }
        }
    }

    /// Forgets state changes older than `before`.
    pub(super) fn prune_history(&mut self, before: Timestamp) -> rusqlite::Result<usize> {
        self.conn
            .execute("DELETE FROM history WHERE ts < ?1", [before.as_millisecond()])
    }
}
