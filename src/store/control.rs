//! What operators' actions leave in the store: maintenances from commands and the command
//! line, kept until they end (R13), and the ids of the central server's commands, so that each
//! runs at most once across restarts (protocol.md §5.6).
//!
//! A command is marked received (committed) before it runs; its `command_result` record and
//! its mark as done go in one later transaction. One received and never done was cut short by
//! a crash: it is answered as such, and never run again.

use rusqlite::{Connection, OptionalExtension, params};

use super::StoreError;
use super::writer::Writer;

/// A write that goes with the records of the same commit.
#[derive(Debug, Clone, PartialEq)]
pub enum Control {
    /// A maintenance from a command or the command line (its JSON), kept until it ends.
    SaveMaintenance {
        id: String,
        body: String,
    },
    RemoveMaintenance {
        id: String,
    },
    /// The central server's command has run and its answer is in the same commit.
    CommandDone {
        id: String,
    },
    /// R18: a service checked on its company's local day (no-op after the first).
    Polled(crate::inventory::Polled),
    /// R18: the company's day has its inventory record in the same commit.
    InventorySent {
        company: String,
        day: jiff::civil::Date,
    },
}

/// What the store held of operators' actions when it was opened.
#[derive(Debug, Default)]
pub struct Kept {
    /// Maintenances from commands and the command line, as saved.
    pub maintenances: Vec<String>,
    /// Commands received and never done (a crash cut them short).
    pub interrupted: Vec<String>,
    /// The last command id received, for `GET /commands?after=`.
    pub last_command: Option<String>,
}

pub(super) fn apply(tx: &Connection, write: &Control) -> rusqlite::Result<()> {
    match write {
        Control::SaveMaintenance { id, body } => tx.execute(
            "INSERT INTO maintenances (id, body) VALUES (?1, ?2)
             ON CONFLICT (id) DO UPDATE SET body = excluded.body",
            params![id, body],
        )?,
        Control::RemoveMaintenance { id } => tx.execute("DELETE FROM maintenances WHERE id = ?1", [id])?,
        Control::CommandDone { id } => tx.execute("UPDATE commands SET done = 1 WHERE id = ?1", [id])?,
        Control::Polled(polled) => super::inventory::mark(tx, polled)?,
        Control::InventorySent { company, day } => super::inventory::sent(tx, company, *day)?,
    };
    Ok(())
}

impl Writer {
    pub(super) fn load_kept(&mut self) -> Result<Kept, StoreError> {
        let mut kept = Kept::default();
        let mut stmt = self.conn.prepare("SELECT body FROM maintenances ORDER BY id")?;
        kept.maintenances = stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
        let mut stmt = self
            .conn
            .prepare("SELECT id FROM commands WHERE done = 0 ORDER BY rowid")?;
        kept.interrupted = stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
        kept.last_command = self
            .conn
            .query_row("SELECT id FROM commands ORDER BY rowid DESC LIMIT 1", [], |r| r.get(0))
            .optional()?;
        Ok(kept)
    }

    /// Marks a command received, committed at once; `false` when it was received before.
    pub(super) fn command_received(&mut self, id: &str, at_ms: i64) -> rusqlite::Result<bool> {
        let added = self.conn.execute(
            "INSERT OR IGNORE INTO commands (id, received, done) VALUES (?1, ?2, 0)",
            params![id, at_ms],
        )?;
        Ok(added == 1)
    }
}
