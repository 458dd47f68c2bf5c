//! What the scheduler hands the store, and when: records and state changes every half second,
//! the states of checked services once every five minutes (a thirtieth of the services every
//! 10 s, so memory and writes stay flat), a mark of life every minute, every state at
//! shutdown; and availability resumed after a crash.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use jiff::Timestamp;

use super::Scheduler;
use crate::inventory::Polled;
use crate::record::{Kind, Record};
use crate::store::Control;

/// How often what the checks produced goes to the store in one request: waking the store's
/// thread for every result cost more CPU than the result (the store commits every 2 s anyway).
pub(super) const FLUSH_EVERY: Duration = Duration::from_millis(500);
/// How often the scheduler marks the store with the time it is still running and checking:
/// after a crash, availability counts until the last mark (a row of `meta`, with the next
/// group commit: a few bytes a minute).
pub(super) const ALIVE_EVERY: Duration = Duration::from_secs(60);
/// How often the states (and availability histories) of the services checked since the last
/// save are saved, besides on each change: what a crash can lose of availability (DAEMON.md).
/// Every minute would rewrite every state's pages each minute: about 600 bytes written to
/// flash per result at 1,000 services, more than the result itself.
pub const SAVE_EVERY: Duration = Duration::from_secs(300);
/// The periodic save takes a slice of the services this often. Neighbouring services' states
/// share pages: a slice of a thirtieth rewrites about as many pages as saving them all at once
/// (each flush's share, two services at 1,000, cost 400 bytes written per result), and holds
/// a thirtieth of the JSON (all at once was 40 MB at 50,000 services).
pub(super) const SAVE_SLICE_EVERY: Duration = Duration::from_secs(10);
/// States committed at a time at shutdown: 50,000 states at once took 40 MB as JSON.
const SHUTDOWN_SAVE_CHUNK: usize = 2_000;

impl Scheduler {
    /// After a crash: the box ran and checked until `alive_until` (its last mark), and a
    /// service's state then was its saved one (state changes are saved with their records), so
    /// availability counts that state from its last saved check until then.
    pub fn resume_availability(&mut self, alive_until: Timestamp) {
        for slot in 0..self.slots.len() {
            let s = &self.slots[slot];
            let Some(last) = s.saved.state.last_check.filter(|l| *l < alive_until) else {
                continue;
            };
            let state = s.saved.state.state;
            self.count_availability(slot, last, alive_until, state);
            let s = &mut self.slots[slot];
            s.saved.counted_until = Some(alive_until);
            s.unsaved = true;
        }
    }

    pub(super) fn take_dirty(&mut self, slot: usize) -> Vec<(String, String)> {
        let s = &mut self.slots[slot];
        if !std::mem::take(&mut s.dirty) {
            return Vec::new();
        }
        serde_json::to_string(&s.saved)
            .map(|json| vec![(s.origin.service.to_string(), json)])
            .unwrap_or_default()
    }

    /// Queues a check's records and states for the next flush (at most [`FLUSH_EVERY`] away).
    pub(super) fn commit(&mut self, slot: usize, records: Vec<Record>, states: Vec<(String, String)>) {
        for r in &records {
            self.metrics.records[r.body.kind() as usize - 1].fetch_add(1, Relaxed);
        }
        if let Some(at) = records.iter().find(|r| r.body.kind() == Kind::Result).map(|r| r.ts) {
            self.mark_polled(slot, at);
        }
        let origin = &self.slots[slot].origin;
        self.outgoing.extend(records.into_iter().map(|r| (origin.clone(), r)));
        self.outgoing_states.extend(states);
    }

    /// R18: a service's first result of its company's local day marks it polled that day
    /// (written once a day per service, with the result). Later results of the day compare
    /// one instant: no zone is read on the way.
    fn mark_polled(&mut self, slot: usize, at: Timestamp) {
        let s = &self.slots[slot];
        if s.marked_until.is_some_and(|until| at < until) {
            return;
        }
        let device = &self.plan.devices[s.device as usize];
        let tree = &self.plan.tree;
        let company = device
            .outcome
            .as_ref()
            .ok()
            .and_then(|d| tree.company_of(d.node).map(|c| (d.node, c)));
        let Some((node, (company, zone))) = company else {
            // No company (a partner's own device): nothing to count, until the next plan.
            self.slots[slot].marked_until = Some(Timestamp::MAX);
            return;
        };
        let day = crate::inventory::day_of(at, zone);
        let polled = Polled {
            company: company.to_string(),
            day,
            zone: crate::inventory::zone_name(zone),
            site: tree.id(node).to_string(),
            device: s.origin.device.to_string(),
            category: device.category.unwrap_or_default(),
            service: s.origin.service.to_string(),
            kind: s.kind,
        };
        self.slots[slot].marked_until = Some(crate::inventory::end_of(day, zone).unwrap_or(at));
        self.outgoing_control.push(Control::Polled(polled));
    }

    /// Sends what waits to the store: the records and states queued since the last flush.
    pub(super) async fn flush(&mut self) {
        if !self.outgoing_forgotten.is_empty() {
            let services = std::mem::take(&mut self.outgoing_forgotten);
            if let Err(e) = self.store.forget(services).await {
                tracing::error!(error = %e, "removed services' states could not be deleted");
            }
        }
        if self.outgoing.is_empty() && self.outgoing_states.is_empty() && self.outgoing_control.is_empty() {
            return;
        }
        let items = std::mem::take(&mut self.outgoing);
        let states = std::mem::take(&mut self.outgoing_states);
        let control = std::mem::take(&mut self.outgoing_control);
        if let Err(e) = self.store.append_with(items, states, control).await {
            tracing::error!(error = %e, "records could not reach the store");
        }
    }

    /// Queues the states of the next slice of services checked since their last save: every
    /// [`SAVE_SLICE_EVERY`] takes its share of the slots, so each is visited once per
    /// [`SAVE_EVERY`].
    pub(super) fn save_slice(&mut self) {
        let n = self.slots.len();
        if n == 0 {
            return;
        }
        let share = (n as u128 * SAVE_SLICE_EVERY.as_millis()).div_ceil(SAVE_EVERY.as_millis()) as usize;
        for _ in 0..share.min(n) {
            let i = self.save_cursor % n;
            self.save_cursor = (i + 1) % n;
            let s = &mut self.slots[i];
            if std::mem::take(&mut s.unsaved)
                && let Ok(json) = serde_json::to_string(&s.saved)
            {
                self.outgoing_states.push((s.origin.service.to_string(), json));
            }
        }
    }

    /// At shutdown: every state, committed a chunk at a time.
    pub(super) async fn save_all(&mut self) {
        self.flush().await;
        for chunk in self.slots.chunks(SHUTDOWN_SAVE_CHUNK) {
            let states = chunk
                .iter()
                .filter_map(|s| {
                    let json = serde_json::to_string(&s.saved).ok()?;
                    Some((s.origin.service.to_string(), json))
                })
                .collect();
            if let Err(e) = self.store.append_committed(Vec::new(), states).await {
                tracing::error!(error = %e, "the services' states could not be saved");
                return;
            }
        }
    }
}
