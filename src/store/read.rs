//! What the syncer reads of the outbox, in the wire form, and its acknowledgements.

use std::sync::Arc;

use rusqlite::params;
use rusqlite::types::Value;

use super::writer::Writer;
use super::{Batch, codec};
use crate::record::{self, Origin};

impl Writer {
    /// Up to `limit` records after `after`, oldest first, as one JSON array in the wire form.
    pub(super) fn pending_batch(&mut self, after: u64, limit: usize) -> rusqlite::Result<Batch> {
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

    pub(super) fn pending(&mut self, after: u64, limit: usize) -> rusqlite::Result<Vec<serde_json::Value>> {
        let batch = self.pending_batch(after, limit)?;
        Ok(serde_json::from_slice(&batch.json).unwrap_or_default())
    }

    /// An origin by its row id, from a cache filled on first use.
    pub(super) fn origin_named(&mut self, id: i64) -> rusqlite::Result<Arc<Origin>> {
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

    pub(super) fn ack(&mut self, upto: u64) -> rusqlite::Result<usize> {
        let deleted = self
            .conn
            .execute("DELETE FROM outbox WHERE seq <= ?1", params![upto as i64])?;
        if deleted > 0 {
            self.counts.records = self.counts.records.saturating_sub(deleted as u64);
            self.reread_oldest()?;
            self.measure_used_bytes()?;
        }
        Ok(deleted)
    }
}
