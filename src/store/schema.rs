//! The database's schema and its migrations.

use rusqlite::Connection;

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
    // 3: notifications the box delivers itself (R17): one row per channel and recipient,
    // waiting, retried, then delivered or given up. `message` is the composed message (JSON),
    // so a retry after a restart needs no plan.
    "CREATE TABLE deliveries (id INTEGER PRIMARY KEY, notification_seq INTEGER, origin INTEGER,
                              channel INTEGER NOT NULL, recipient TEXT NOT NULL,
                              message TEXT NOT NULL, created INTEGER NOT NULL,
                              next_at INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
                              outcome INTEGER NOT NULL DEFAULT 0, last_error TEXT,
                              finished INTEGER);
     CREATE INDEX deliveries_due ON deliveries (outcome, next_at);",
    // 4: each service's state changes, kept after the central server acknowledged them, for
    // `/history` and the page's timeline; filled from the state changes still in the outbox.
    "CREATE TABLE history (service TEXT NOT NULL, ts INTEGER NOT NULL, from_state TEXT NOT NULL,
                          to_state TEXT NOT NULL, state_type TEXT NOT NULL);
     CREATE INDEX history_service ON history (service, ts);
     CREATE INDEX history_ts ON history (ts);
     INSERT INTO history (service, ts, from_state, to_state, state_type)
       SELECT origins.service, outbox.ts, json_extract(outbox.body, '$.from'),
              json_extract(outbox.body, '$.to'), json_extract(outbox.body, '$.state_type')
       FROM outbox JOIN origins ON origins.id = outbox.origin
       WHERE outbox.kind = 2 AND json_valid(outbox.body);",
    // 5: operators' actions (control.rs): maintenances from commands and the command line,
    // and the central server's command ids (each runs at most once).
    "CREATE TABLE maintenances (id TEXT PRIMARY KEY, body TEXT NOT NULL);
     CREATE TABLE commands (id TEXT PRIMARY KEY, received INTEGER NOT NULL, done INTEGER NOT NULL);",
    // 6: R18's marks (inventory.rs): each service checked on a company's local day (again
    // after a restart: readers keep one per service), and the days whose inventory record has
    // gone. Appended in rowid order, so that a day's first results, which all write a mark,
    // touch the table's last pages only (keyed by service they rewrote a page per mark).
    "CREATE TABLE polled (id INTEGER PRIMARY KEY, company TEXT NOT NULL, day TEXT NOT NULL,
                         service TEXT NOT NULL, zone TEXT NOT NULL, site TEXT NOT NULL,
                         device TEXT NOT NULL, category TEXT NOT NULL, kind TEXT NOT NULL);
     CREATE INDEX polled_day ON polled (company, day);
     CREATE TABLE inventory_sent (company TEXT NOT NULL, day TEXT NOT NULL,
                                  PRIMARY KEY (company, day)) WITHOUT ROWID;",
];

pub(super) fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}
