//! The central server (protocol.md §5): pairing, the identity it leaves, TLS and HTTP calls,
//! and the syncer that pulls documents and pushes records.

pub mod client;
pub mod commands;
pub mod identity;
pub mod pair;
pub mod sync;
pub mod trust;

pub use client::{CentralError, Client};
pub use identity::Identity;
pub use sync::{Pace, SyncState, Syncer};
