//! Passive services (`snmp_trap`): their results come from the trap receiver, inside their
//! control period, and are applied like a check's (HARD at once: one attempt); a problem with
//! `clear_after_s` is cleared by a timed wake when no new trap came.

use std::time::Duration;

use tokio::time::Instant;

use super::grid::until_wall;
use super::slot::Wake;
use super::{Done, Passive, Scheduler};

impl Scheduler {
    pub(super) async fn on_passive(&mut self, passive: Passive) {
        let Some(&slot) = self.by_id.get(&*passive.service_id) else {
            return; // a plan without it came in between
        };
        let wall = self.clock.now();
        let s = &self.slots[slot];
        if !s.periods[0].is_active(wall, &s.tz) {
            // Outside its control period a trap is not taken (R9), as a check would not run.
            self.metrics
                .outside_control
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return;
        }
        if !s.maintenances.is_empty() {
            let c = self.coverage(slot, wall);
            if c.covered && !c.collect {
                return;
            }
        }
        let done = Done {
            slot,
            generation: self.generation,
            service_id: passive.service_id,
            result: passive.result,
        };
        self.on_result(done).await;
    }

    /// After a trap service's result: its clearing wake when it is in a problem, none when ok.
    pub(super) fn schedule_clear(&mut self, slot: usize) {
        let s = &mut self.slots[slot];
        match s.clear_after() {
            Some(after) if !s.saved.state.state.is_ok() => self.schedule(slot, Wake::Check, Instant::now() + after),
            _ => s.check_due = None,
        }
    }

    /// At a start or a new plan: when a trap service's problem clears, from its last result.
    pub(super) fn pending_clear(&self, slot: usize) -> Option<Instant> {
        let s = &self.slots[slot];
        let after = s.clear_after()?;
        if s.saved.state.state.is_ok() {
            return None;
        }
        let last = s.saved.state.last_check?;
        let clears = last + jiff::SignedDuration::try_from(after).ok()?;
        let wall = self.clock.now();
        Some(
            Instant::now()
                + if clears > wall {
                    until_wall(wall, clears)
                } else {
                    Duration::ZERO
                },
        )
    }
}
