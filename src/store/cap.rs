//! The outbox's size cap: the oldest results go when the outbox is over its cap or the
//! filesystem is short of room (see `room`).

use rusqlite::{Connection, params};

use super::writer::Writer;
use crate::record::Kind;

impl Writer {
    /// Reads the filesystem's room (every few seconds, or `now`), and keeps the WAL short
    /// while the disk is short of space.
    pub(super) fn read_room(&mut self, now: bool) {
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
    pub(super) fn make_room_after_failure(&mut self) {
        self.room.release();
        if let Err(e) = self.conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "cannot checkpoint the WAL");
        }
        self.read_room(true);
        if let Err(e) = self.drop_oldest_results(true) {
            tracing::warn!(error = %e, "no room could be made in the outbox");
        }
    }

    /// Bytes used by live pages: what the cap is measured against. Read after each commit
    /// and ack, and kept for the figures (`Stats.bytes`).
    pub(super) fn measure_used_bytes(&mut self) -> rusqlite::Result<u64> {
        let page_size: i64 = self.conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
        let pages: i64 = self.conn.pragma_query_value(None, "page_count", |r| r.get(0))?;
        let free: i64 = self.conn.pragma_query_value(None, "freelist_count", |r| r.get(0))?;
        self.used_bytes = ((pages - free).max(0) * page_size) as u64;
        Ok(self.used_bytes)
    }

    /// Deletes the oldest results while over the cap (or a slice of them when `force`d).
    pub(super) fn drop_oldest_results(&mut self, force: bool) -> rusqlite::Result<()> {
        let mut forced = force;
        while forced || self.measure_used_bytes()? > self.room.limit() {
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
}

/// SQLITE_FULL: the filesystem (or the file-size limit) has no room for the transaction.
pub(super) fn is_out_of_space(e: &rusqlite::Error) -> bool {
    e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull)
}

/// The database file's size.
fn file_bytes(conn: &Connection) -> rusqlite::Result<u64> {
    let page_size: i64 = conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
    let pages: i64 = conn.pragma_query_value(None, "page_count", |r| r.get(0))?;
    Ok((pages.max(0) * page_size) as u64)
}
