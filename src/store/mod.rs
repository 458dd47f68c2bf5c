//! The store: the outbox of records and the services' last states, in one SQLite file.
//!
//! # Invariants
//!
//! - One thread owns the connection. Everything else talks to it through a bounded channel;
//!   when the channel is full, senders wait (back-pressure), they never drop silently.
//! - A record counts as produced once its transaction has committed. The database is in WAL
//!   mode with `synchronous=FULL`: a committed transaction survives a crash and a power loss.
//!   Consecutive requests are committed together, so one fsync covers many records.
//! - `seq` is the outbox's `INTEGER PRIMARY KEY AUTOINCREMENT`: strictly increasing, never
//!   reused, even after the rows below it are deleted. Gaps are allowed (dropped results).
//! - A record leaves the outbox only when the central server acknowledged it (`ack`), or when
//!   the size cap is exceeded: then the oldest `result` records go first, and `state_change`,
//!   `notification` and `availability` records are never dropped. Every drop is counted in
//!   `meta.dropped`, which survives restarts.
//! - The cap in force follows the filesystem's free space ([`room`]): the oldest results make
//!   way before the disk is full. A commit that fails anyway (full disk, locked file) loses
//!   nothing: its records wait in memory, in order, and are committed first by the next commit
//!   (results beyond 20,000 in memory are dropped oldest first and counted); on a full disk a
//!   reserve file is released so that commits go on.
//! - A service's state is written in the same transaction as the records it produced, so
//!   after a restart the states and the outbox agree.
//! - The schema has a version (`meta.schema_version`); migrations run in order, each in its
//!   own transaction, before anything else touches the file.
//!
//! # On disk
//!
//! `origins(id, service, device, node, company)` interns who a record is about (R12), so that
//! a result row holds one integer instead of four strings. `outbox(seq, kind, ts, origin,
//! body)`: `kind` 1 result, 2 state_change, 3 notification, 4 availability; `ts` in Unix
//! milliseconds; `body` the kind's own fields: a compact BLOB for results ([`codec`]), JSON
//! text for the other kinds. `service_state(service, state)`.

mod cap;
pub mod codec;
mod commit;
pub mod control;
pub mod deliveries;
pub mod history;
mod inventory;
mod read;
mod room;
mod schema;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::record::{Origin, Record};
use deliveries::{Attempt, Claim, CursorStart, Due, Scan};

pub use control::{Control, Kept};
pub use writer::{Stats, UNHEALTHY_AFTER};

/// How many requests may wait for the writer thread.
const QUEUE: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the database {path}: {source}")]
    Open { path: PathBuf, source: rusqlite::Error },
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the store is closed")]
    Closed,
    #[error("the store failed: {0}")]
    Failed(String),
    #[error("cannot create the state directory {path}: {source}")]
    Dir { path: PathBuf, source: std::io::Error },
}

/// Records ready to send: the JSON array text and the seqs it holds, in order.
#[derive(Debug, Default)]
pub struct Batch {
    pub json: Vec<u8>,
    pub seqs: Vec<u64>,
}

/// One record with the service it is about.
pub type Item = (Arc<Origin>, Record);

enum Op {
    Append {
        items: Vec<Item>,
        states: Vec<(String, String)>,
        control: Vec<Control>,
        done: Option<oneshot::Sender<Result<u64, String>>>,
    },
    Forget {
        services: Vec<String>,
    },
    Alive {
        at: i64,
    },
    Pending {
        after: u64,
        limit: usize,
        reply: oneshot::Sender<Result<Vec<serde_json::Value>, String>>,
    },
    PendingBatch {
        after: u64,
        limit: usize,
        reply: oneshot::Sender<Result<Batch, String>>,
    },
    Ack {
        upto: u64,
        reply: oneshot::Sender<Result<usize, String>>,
    },
    Stats {
        reply: oneshot::Sender<Stats>,
    },
    Deliveries(DeliveryOp),
    History {
        service: Option<String>,
        since: jiff::Timestamp,
        limit: usize,
        reply: oneshot::Sender<rusqlite::Result<Vec<history::Change>>>,
    },
    PruneHistory {
        before: jiff::Timestamp,
        reply: oneshot::Sender<rusqlite::Result<usize>>,
    },
    CommandReceived {
        id: String,
        at_ms: i64,
        reply: oneshot::Sender<rusqlite::Result<bool>>,
    },
    Polled {
        company: String,
        day: jiff::civil::Date,
        reply: oneshot::Sender<rusqlite::Result<Vec<crate::inventory::Polled>>>,
    },
    UnsentInventoryDays {
        reply: oneshot::Sender<rusqlite::Result<Vec<(String, jiff::civil::Date, String)>>>,
    },
}

/// The notifier's requests (R17); each write commits at once.
enum DeliveryOp {
    Cursor {
        start: CursorStart,
        reply: oneshot::Sender<rusqlite::Result<u64>>,
    },
    Unclaimed {
        after: u64,
        limit: usize,
        reply: oneshot::Sender<rusqlite::Result<Scan>>,
    },
    Claim {
        claim: Claim,
        reply: oneshot::Sender<rusqlite::Result<()>>,
    },
    Due {
        now: jiff::Timestamp,
        limit: usize,
        reply: oneshot::Sender<rusqlite::Result<Vec<Due>>>,
    },
    Attempted {
        attempt: Attempt,
        reply: oneshot::Sender<rusqlite::Result<()>>,
    },
    Counts {
        reply: oneshot::Sender<rusqlite::Result<deliveries::Counts>>,
    },
    Fallback {
        since: Option<i64>,
        reply: oneshot::Sender<rusqlite::Result<()>>,
    },
    Expire {
        before: jiff::Timestamp,
        outbox: bool,
        reply: oneshot::Sender<rusqlite::Result<usize>>,
    },
}

/// The handle every task uses; cheap to clone.
#[derive(Clone)]
pub struct Store {
    tx: mpsc::Sender<Op>,
    notifications: tokio::sync::watch::Receiver<u64>,
}

/// What the store held when it was opened.
pub struct Opened {
    pub store: Store,
    /// `(service id, state JSON)` of every service saved before.
    pub states: Vec<(String, String)>,
    /// Until when the box was last known to run and check (see [`Store::mark_alive`]).
    pub alive_until: Option<jiff::Timestamp>,
    /// Operators' maintenances and commands (control.rs).
    pub kept: Kept,
    /// Joins the writer thread once every [`Store`] handle is dropped; gives how many records
    /// it could not commit at the end (lost).
    pub writer: std::thread::JoinHandle<u64>,
}

impl Store {
    /// Opens (creating and migrating) the database in `state_dir`, and starts its writer thread.
    pub fn open(state_dir: &Path, max_bytes: u64) -> Result<Opened, StoreError> {
        std::fs::create_dir_all(state_dir).map_err(|source| StoreError::Dir {
            path: state_dir.to_path_buf(),
            source,
        })?;
        let path = state_dir.join("snbox.db");
        let mut writer = writer::Writer::open(&path, max_bytes)?;
        let states = writer.load_states()?;
        let kept = writer.load_kept()?;
        let alive_until = writer
            .alive_until()?
            .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok());
        let (tx, rx) = mpsc::channel(QUEUE);
        let notifications = writer.notifications.subscribe();
        let thread = std::thread::Builder::new()
            .name("snbox-store".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| StoreError::Dir {
                path: path.clone(),
                source: e,
            })?;
        Ok(Opened {
            store: Store { tx, notifications },
            states,
            alive_until,
            kept,
            writer: thread,
        })
    }

    /// Queues records and state updates for the next commit; returns once queued.
    pub async fn append(&self, items: Vec<Item>, states: Vec<(String, String)>) -> Result<(), StoreError> {
        self.tx
            .send(Op::Append {
                items,
                states,
                control: Vec::new(),
                done: None,
            })
            .await
            .map_err(|_| StoreError::Closed)
    }

    /// Appends and waits for the commit; returns the last `seq` given.
    pub async fn append_committed(&self, items: Vec<Item>, states: Vec<(String, String)>) -> Result<u64, StoreError> {
        self.ask(|done| Op::Append {
            items,
            states,
            control: Vec::new(),
            done: Some(done),
        })
        .await?
        .map_err(StoreError::Failed)
    }

    /// Appends records with the operators' writes that go with them, and waits for the commit.
    pub async fn append_committed_with(
        &self,
        items: Vec<Item>,
        states: Vec<(String, String)>,
        control: Vec<Control>,
    ) -> Result<u64, StoreError> {
        self.ask(|done| Op::Append {
            items,
            states,
            control,
            done: Some(done),
        })
        .await?
        .map_err(StoreError::Failed)
    }

    /// Appends records with the operators' writes that go with them, in one later commit.
    pub async fn append_with(
        &self,
        items: Vec<Item>,
        states: Vec<(String, String)>,
        control: Vec<Control>,
    ) -> Result<(), StoreError> {
        self.tx
            .send(Op::Append {
                items,
                states,
                control,
                done: None,
            })
            .await
            .map_err(|_| StoreError::Closed)
    }

    /// Marks a central server's command received, committed before it runs; `false` when it
    /// was received before (it never runs twice).
    pub async fn command_received(&self, id: String, at: jiff::Timestamp) -> Result<bool, StoreError> {
        let at_ms = at.as_millisecond();
        self.ask(|reply| Op::CommandReceived { id, at_ms, reply })
            .await?
            .map_err(StoreError::Sqlite)
    }

    /// Records that the box runs and checks at `at`, with the next group commit: after a crash,
    /// availability counts until the last such mark, not only until the last saved states.
    pub async fn mark_alive(&self, at: jiff::Timestamp) -> Result<(), StoreError> {
        self.tx
            .send(Op::Alive {
                at: at.as_millisecond(),
            })
            .await
            .map_err(|_| StoreError::Closed)
    }

    /// Deletes the saved states of services no plan has any more (queued like an append).
    pub async fn forget(&self, services: Vec<String>) -> Result<(), StoreError> {
        self.tx
            .send(Op::Forget { services })
            .await
            .map_err(|_| StoreError::Closed)
    }

    /// Up to `limit` records after `after`, oldest first, in their wire form.
    pub async fn pending(&self, after: u64, limit: usize) -> Result<Vec<serde_json::Value>, StoreError> {
        self.ask(|reply| Op::Pending { after, limit, reply })
            .await?
            .map_err(StoreError::Failed)
    }

    /// Up to `limit` records after `after`, oldest first, as one JSON array of their wire
    /// form, ready to send.
    pub async fn pending_batch(&self, after: u64, limit: usize) -> Result<Batch, StoreError> {
        self.ask(|reply| Op::PendingBatch { after, limit, reply })
            .await?
            .map_err(StoreError::Failed)
    }

    /// Deletes every record up to `upto`, which the central server has stored.
    pub async fn ack(&self, upto: u64) -> Result<usize, StoreError> {
        self.ask(|reply| Op::Ack { upto, reply })
            .await?
            .map_err(StoreError::Failed)
    }

    pub async fn stats(&self) -> Result<Stats, StoreError> {
        self.ask(|reply| Op::Stats { reply }).await
    }

    /// Changes after each commit that wrote a notification record (to its seq).
    pub fn notifications(&self) -> tokio::sync::watch::Receiver<u64> {
        self.notifications.clone()
    }

    /// Where the notifier's scan of notification records resumes (set at `start` the first time).
    pub async fn delivery_cursor(&self, start: CursorStart) -> Result<u64, StoreError> {
        Ok(self
            .ask(|reply| Op::Deliveries(DeliveryOp::Cursor { start, reply }))
            .await??)
    }

    /// Notification records after `after`, at most `limit`, and how far the scan went.
    pub async fn unclaimed_notifications(&self, after: u64, limit: usize) -> Result<Scan, StoreError> {
        Ok(self
            .ask(|reply| Op::Deliveries(DeliveryOp::Unclaimed { after, limit, reply }))
            .await??)
    }

    /// Takes notifications on: marks them, stores their deliveries and moves the cursor, at once.
    pub async fn claim(&self, claim: Claim) -> Result<(), StoreError> {
        Ok(self
            .ask(|reply| Op::Deliveries(DeliveryOp::Claim { claim, reply }))
            .await??)
    }

    /// Pending deliveries due at `now`, soonest first.
    pub async fn due_deliveries(&self, now: jiff::Timestamp, limit: usize) -> Result<Vec<Due>, StoreError> {
        Ok(self
            .ask(|reply| Op::Deliveries(DeliveryOp::Due { now, limit, reply }))
            .await??)
    }

    /// Records an attempt's outcome (and its `delivery` record), committed at once.
    pub async fn attempted(&self, attempt: Attempt) -> Result<(), StoreError> {
        Ok(self
            .ask(|reply| Op::Deliveries(DeliveryOp::Attempted { attempt, reply }))
            .await??)
    }

    pub async fn delivery_counts(&self) -> Result<deliveries::Counts, StoreError> {
        Ok(self.ask(|reply| Op::Deliveries(DeliveryOp::Counts { reply })).await??)
    }

    /// Paired: since when the box delivers in the central server's place (`None`: it does not).
    pub async fn set_fallback(&self, since: Option<jiff::Timestamp>) -> Result<(), StoreError> {
        let since = since.map(jiff::Timestamp::as_millisecond);
        Ok(self
            .ask(|reply| Op::Deliveries(DeliveryOp::Fallback { since, reply }))
            .await??)
    }

    /// Deletes finished deliveries older than `before`, and with `outbox` every record older
    /// than it (standalone retention).
    pub async fn expire(&self, before: jiff::Timestamp, outbox: bool) -> Result<usize, StoreError> {
        Ok(self
            .ask(|reply| Op::Deliveries(DeliveryOp::Expire { before, outbox, reply }))
            .await??)
    }

    /// State changes since `since`, oldest first, of `service` or of every service; at most `limit`.
    pub async fn history(
        &self,
        service: Option<String>,
        since: jiff::Timestamp,
        limit: usize,
    ) -> Result<Vec<history::Change>, StoreError> {
        Ok(self
            .ask(|reply| Op::History {
                service,
                since,
                limit,
                reply,
            })
            .await??)
    }

    /// Forgets state changes older than `before`.
    pub async fn prune_history(&self, before: jiff::Timestamp) -> Result<usize, StoreError> {
        Ok(self.ask(|reply| Op::PruneHistory { before, reply }).await??)
    }

    /// R18: a company's marks of a local day, every mark queued before committed first.
    pub async fn polled(
        &self,
        company: String,
        day: jiff::civil::Date,
    ) -> Result<Vec<crate::inventory::Polled>, StoreError> {
        Ok(self.ask(|reply| Op::Polled { company, day, reply }).await??)
    }

    /// R18: `(company, day, zone)` of each day with marks whose record has not gone, oldest first.
    pub async fn unsent_inventory_days(&self) -> Result<Vec<(String, jiff::civil::Date, String)>, StoreError> {
        Ok(self.ask(|reply| Op::UnsentInventoryDays { reply }).await??)
    }

    /// Sends `op` (built around its reply channel) to the writer and waits for the answer.
    async fn ask<T>(&self, op: impl FnOnce(oneshot::Sender<T>) -> Op) -> Result<T, StoreError> {
        let (reply, wait) = oneshot::channel();
        self.tx.send(op(reply)).await.map_err(|_| StoreError::Closed)?;
        wait.await.map_err(|_| StoreError::Closed)
    }
}
