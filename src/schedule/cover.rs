//! R13 in the scheduler: which maintenances cover a service now, what that changes (no check
//! with `collect: false`, nothing notified, time left out of availability), the difference
//! rule when coverage ends, and windows recorded after the fact.

use jiff::Timestamp;
use tokio::time::Instant;

use super::Scheduler;
use super::grid::until_wall;
use super::slot::Wake;
use crate::document;
use crate::record::{ActionSource, State};
use crate::rules::Plan;
use crate::rules::maintenance::{Maintenance, Occurrence, Resolver, Window};

/// A maintenance the scheduler applies: the document's, or one from a command or the command
/// line (`runtime`), resolved against the current plan.
#[derive(Debug, Clone)]
pub struct InForce {
    pub maintenance: Maintenance,
    pub source: ActionSource,
    pub author: Option<String>,
}

impl InForce {
    /// As `/maintenances` and `snbox maintenance list` show it: the object as given, its
    /// source and author, whether it is active at `at` (in its scope's zone), its next change.
    pub fn describe(&self, plan: &Plan, at: Timestamp) -> serde_json::Value {
        let m = &self.maintenance;
        let zone = plan.scope_zone(m);
        let o = plan.occurrence(m);
        let mut v = serde_json::to_value(&m.raw).unwrap_or(serde_json::Value::Null);
        if let serde_json::Value::Object(f) = &mut v {
            f.insert("source".into(), self.source.as_str().into());
            if let Some(author) = &self.author {
                f.insert("author".into(), author.as_str().into());
            }
            f.insert("active".into(), o.is_active(at, &zone).into());
            let next = o.next_change(at, &zone).map(crate::explain::rfc3339_utc);
            f.insert("next_change".into(), next.into());
        }
        v
    }

    /// Over: a one-off window whose end has passed.
    pub fn is_over(&self, at: Timestamp) -> bool {
        matches!(self.maintenance.window, Window::Once { end, .. } if end <= at)
    }
}

/// A maintenance from a command or the command line, as kept in the store.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct Runtime {
    pub maintenance: document::Maintenance,
    pub source: ActionSource,
    pub author: Option<String>,
}

/// The document's maintenances, then the runtime ones that still resolve against `plan`.
pub(super) fn in_force(plan: &Plan, runtime: &[Runtime]) -> Vec<InForce> {
    let mut all: Vec<InForce> = plan
        .maintenances
        .iter()
        .map(|m| InForce {
            maintenance: m.clone(),
            source: ActionSource::Document,
            author: None,
        })
        .collect();
    if runtime.is_empty() {
        return all;
    }
    let resolver = Resolver::new(plan);
    for r in runtime {
        if all.iter().any(|m| m.maintenance.id == r.maintenance.id) {
            tracing::warn!(maintenance = %r.maintenance.id, "a runtime maintenance has the id of the document's: set aside");
            continue;
        }
        match resolver.resolve(&r.maintenance) {
            Ok(m) => all.push(InForce {
                maintenance: m,
                source: r.source,
                author: r.author.clone(),
            }),
            Err(warning) => {
                tracing::warn!(maintenance = %r.maintenance.id, %warning, "a runtime maintenance no longer applies")
            }
        }
    }
    all
}

/// A service's coverage at one instant.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Coverage {
    pub covered: bool,
    /// False when a covering maintenance that is active says `collect: false`.
    pub collect: bool,
    /// When any of its maintenances next starts or ends.
    pub next_change: Option<Timestamp>,
}

impl Scheduler {
    pub(super) fn coverage(&self, slot: usize, wall: Timestamp) -> Coverage {
        let s = &self.slots[slot];
        let mut c = Coverage {
            covered: false,
            collect: true,
            next_change: None,
        };
        for &m in s.maintenances.iter() {
            let m = &self.maintenances[m as usize].maintenance;
            let o = self.plan.occurrence(m);
            if o.is_active(wall, &s.tz) {
                c.covered = true;
                c.collect &= m.collect;
            }
            if let Some(next) = o.next_change(wall, &s.tz) {
                c.next_change = Some(c.next_change.map_or(next, |n| n.min(next)));
            }
        }
        c
    }

    /// Counts `[from, to)` of the slot's availability in `state`, leaving out its periods'
    /// closed time and the maintenances that do not count (R10, R13).
    pub(super) fn count_availability(&mut self, slot: usize, from: Timestamp, to: Timestamp, state: State) {
        let (plan, in_force) = (&self.plan, &self.maintenances);
        let s = &mut self.slots[slot];
        let excluded: Vec<Occurrence> = s
            .maintenances
            .iter()
            .map(|&m| &in_force[m as usize].maintenance)
            .filter(|m| !m.counts_in_availability)
            .map(|m| plan.occurrence(m))
            .collect();
        s.saved
            .availability
            .count(from, to, state, [&s.periods[1], &s.periods[0]], &excluded, &s.tz);
    }

    /// Wakes at the slot's next change of coverage, if it has maintenances.
    pub(super) fn schedule_maintenance(&mut self, slot: usize) {
        if self.slots[slot].maintenances.is_empty() {
            self.slots[slot].covered = false;
            self.slots[slot].maintenance_due = None;
            return;
        }
        let wall = self.clock.now();
        let c = self.coverage(slot, wall);
        self.slots[slot].covered = c.covered;
        match c.next_change {
            Some(next) => self.schedule(slot, Wake::Maintenance, Instant::now() + until_wall(wall, next)),
            None => self.slots[slot].maintenance_due = None,
        }
    }

    /// Coverage may have changed: when it ends, the difference rule (R13).
    pub(super) fn maintenance_change(&mut self, slot: usize) {
        let wall = self.clock.now();
        let was = self.slots[slot].covered;
        self.slots[slot].maintenance_due = None;
        self.schedule_maintenance(slot);
        let s = &mut self.slots[slot];
        if !was || s.covered {
            return;
        }
        tracing::info!(service = %s.origin.service, "maintenance over");
        self.settle(slot, wall);
        if self.slots[slot].saved.state.holds() {
            self.schedule_release(slot);
        }
        self.schedule_renotify(slot);
    }

    /// R13's difference rule for one service now; whether it notified.
    pub(super) fn settle(&mut self, slot: usize, wall: Timestamp) -> bool {
        let s = &mut self.slots[slot];
        let in_period = s.periods[2].is_active(wall, &s.tz);
        let Some(notice) = s.saved.state.settle(wall, in_period) else {
            return false;
        };
        s.dirty = true;
        let record = self.notification(slot, notice, wall);
        let states = self.take_dirty(slot);
        self.commit(slot, vec![record], states);
        true
    }

    /// One-off windows that began before now are left out of the availability already counted
    /// ("recorded after the fact"; idempotent, so every plan applies them all again), and the
    /// availability of the services whose figures changed is sent again at once.
    pub(super) fn recorded_after_the_fact(&mut self) {
        let wall = self.clock.now();
        let now = Instant::now();
        for slot in 0..self.slots.len() {
            let mut changed = false;
            for i in 0..self.slots[slot].maintenances.len() {
                let m = &self.maintenances[self.slots[slot].maintenances[i] as usize].maintenance;
                let Window::Once { start, end } = m.window else {
                    continue;
                };
                if m.counts_in_availability || start >= wall {
                    continue;
                }
                changed |= self.slots[slot].saved.availability.exclude(start, end.min(wall));
            }
            if changed {
                let s = &self.slots[slot];
                tracing::info!(service = %s.origin.service, "availability recomputed for a maintenance recorded after the fact");
                self.slots[slot].unsaved = true;
                self.schedule(slot, Wake::Availability, now);
            }
        }
    }
}
