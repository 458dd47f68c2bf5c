//! snbox, the ServiceNav Box agent.
//!
//! Data flows one way: settings + monitoring document → plan → scheduler → probes → store →
//! sync, with the status endpoint reading snapshots. See `ARCHITECTURE.md` for the map.
//!
//! | module | owns |
//! |---|---|
//! | [`settings`] | `snbox.toml`: raw text → validated [`settings::Settings`] |
//! | [`document`] | the monitoring document's serde types and loading, every error with its path |
//! | [`rules`] | the pure rules engine (R1–R8, R11): document → resolved [`rules::Plan`] |
//! | [`explain`] | the explain report (protocol.md §4), JSON and text, from a plan |
//! | [`source`] | following the document while running: SIGHUP, a changed file |
//! | [`probe`] | one check of ICMP, SNMP or HTTP(S) → a [`probe::CheckResult`] |
//! | [`schedule`] | which check runs when; states, availability, notifications → records |
//! | [`record`] | the records of protocol.md §5.3 |
//! | [`store`] | the SQLite outbox and saved states, owned by one thread |
//! | [`status`] | the local status endpoint (protocol.md §7) |
//! | [`tls`] | the certificate verifier shared by the HTTP probe and the central client |
//! | [`central`] | pairing, the identity, and the syncer: document pull, ingest, heartbeat, commands |
//! | [`command`] | a command's wire form (central or control socket) → a scheduler action |
//! | [`control`] | the control socket of `snbox maintenance|ack|check` |
//! | [`systemd`] | READY=1, the watchdog, whether stderr is the journal |
//! | [`app`] | `snbox run`: the tasks wired together, start-up and shutdown |
//! | [`secret`] | a string that is never printed |
//! | [`problem`] | one input error: code, path, message |
//!
//! Invariants: the rules engine does no I/O and reads no clock; no secret from the document or
//! the settings ever reaches a log line, an error message or a report.

// One function borrows the ICMP socket's descriptor to size its receive buffer
// (probe::icmp::tune_socket); nothing else may use `unsafe`.
#![deny(unsafe_code)]

pub mod app;
pub mod census;
pub mod central;
pub mod command;
pub mod control;
pub mod document;
pub mod explain;
pub mod input;
pub mod inventory;
pub mod notify;
pub mod planning;
pub mod probe;
pub mod problem;
pub mod record;
pub mod rules;
pub mod schedule;
pub mod secret;
pub mod settings;
pub mod source;
pub mod status;
pub mod store;
pub mod systemd;
pub mod tls;
pub mod traps;

/// This machine's host name, when it is one a certificate or an `EHLO` may carry.
pub fn host_name() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    (!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'))
        .then(|| name.to_string())
}
