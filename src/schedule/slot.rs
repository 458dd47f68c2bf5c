//! Each service's slot: what the scheduler keeps of it between checks, built from a plan.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::cover::InForce;
use super::flapping::Thresholds;
use super::grid::stable_hash;
use super::{AVAILABILITY_EVERY, Availability, ServiceState};
use crate::document::{Aspect, CheckKind, Criticality};
use crate::record::Origin;
use crate::rules::{Plan, Schedule};

/// What is saved per service: its state and its availability history.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Saved {
    pub state: ServiceState,
    #[serde(default)]
    pub availability: Availability,
    /// After a restart: availability was counted until then (the box's last mark of life), so
    /// the first check counts from there rather than from its last check.
    #[serde(default)]
    pub counted_until: Option<Timestamp>,
}

/// One service as the scheduler keeps it.
pub(super) struct Slot {
    /// Its ids too: `origin.service` and `origin.device`.
    pub(super) origin: Arc<Origin>,
    pub(super) kind: CheckKind,
    /// The service's index in the plan, where its parameters are read: never copied.
    pub(super) service: u32,
    // Seconds and milliseconds rather than `Duration`s (16 bytes each): 50,000 slots.
    interval_s: u32,
    retry_s: u32,
    timeout_s: u32,
    pub(super) max_attempts: u32,
    /// A trap service's `clear_after_s` (0: none); its only timed wake.
    clear_after_s: u32,
    /// Control, availability and notification schedules, and the zone they are read in.
    pub(super) periods: [Arc<Schedule>; 3],
    pub(super) tz: TimeZone,
    pub(super) device: u32,
    /// The device's host check (a slot), when this service is not it (R9).
    pub(super) host: Option<u32>,
    /// The host checks of the device's usable parents (slots; R14). Empty for most devices.
    pub(super) parent_hosts: Box<[u32]>,
    /// Its place in its interval.
    offset_ms: u32,
    pub(super) criticality: Criticality,
    pub(super) target: f64,
    /// R15's thresholds when flap detection is on; R16's re-notification interval (0: never).
    pub(super) flap: Option<Thresholds>,
    pub(super) renotify_s: u32,
    /// The maintenances that cover it (R13), by index in the plan's; empty for most.
    pub(super) maintenances: Box<[u32]>,
    /// Covered at the last look (its start or end wakes the slot).
    pub(super) covered: bool,
    pub(super) saved: Saved,
    /// When the current wait ends, for each kind of wake-up (stale heap entries are skipped).
    pub(super) check_due: Option<Instant>,
    pub(super) release_due: Option<Instant>,
    pub(super) renotify_due: Option<Instant>,
    pub(super) maintenance_due: Option<Instant>,
    pub(super) availability_due: Instant,
    pub(super) running: bool,
    pub(super) last_output: Arc<str>,
    pub(super) last_duration_ms: Option<u32>,
    pub(super) in_control: bool,
    /// A state change to save with this check's records.
    pub(super) dirty: bool,
    /// Checked since the last periodic save: its availability history has grown.
    pub(super) unsaved: bool,
    /// Until when its last mark of a polled day holds: that day's end in its company's zone
    /// (R18).
    pub(super) marked_until: Option<Timestamp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Wake {
    Check,
    Release,
    Renotify,
    Maintenance,
    Availability,
}

impl Slot {
    pub(super) fn interval(&self) -> Duration {
        Duration::from_secs(u64::from(self.interval_s))
    }

    /// Between checks while not OK and not HARD (R9).
    pub(super) fn retry(&self) -> Duration {
        Duration::from_secs(u64::from(self.retry_s))
    }

    pub(super) fn timeout(&self) -> Duration {
        Duration::from_secs(u64::from(self.timeout_s))
    }

    pub(super) fn offset(&self) -> Duration {
        Duration::from_millis(u64::from(self.offset_ms))
    }

    /// A passive service: results come from outside (traps), never from a timed check.
    pub(super) fn is_passive(&self) -> bool {
        self.kind == CheckKind::SnmpTrap
    }

    /// How long a trap service's problem lasts without a new trap.
    pub(super) fn clear_after(&self) -> Option<Duration> {
        (self.clear_after_s > 0).then(|| Duration::from_secs(u64::from(self.clear_after_s)))
    }
}

/// One slot per accepted service of `plan`, in plan order; `saved` gives a service's saved
/// state by id, if any. Nothing is scheduled yet.
pub(super) fn build_slots(
    plan: &Plan,
    maintenances: &[InForce],
    mut saved: impl FnMut(&str) -> Option<Saved>,
    now_wall: Timestamp,
    now: Instant,
) -> Vec<Slot> {
    // Sized once: 50,000 slots grown by doubling would hold a quarter more than they use.
    let mut slots = Vec::with_capacity(plan.services.iter().filter(|s| s.outcome.is_ok()).count());
    let mut by_service = HashMap::new();
    // One string per node (and its company) and per device, shared by their services.
    let mut places: HashMap<usize, (Arc<str>, Option<Arc<str>>)> = HashMap::new();
    let mut devices: HashMap<usize, Arc<str>> = HashMap::new();
    for (index, (sp, svc)) in plan
        .services
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.outcome.as_ref().ok().map(|o| (i, (s, o))))
    {
        let Some(d) = sp.device else { continue };
        let Ok(dev) = &plan.devices[d].outcome else { continue };
        let tree = &plan.tree;
        let (node, company) = places
            .entry(dev.node)
            .or_insert_with(|| {
                let company = tree.company_id(dev.node).map(Arc::from);
                (Arc::from(tree.id(dev.node)), company)
            })
            .clone();
        let device_id = devices
            .entry(d)
            .or_insert_with(|| Arc::from(sp.device_id.as_str()))
            .clone();
        let origin = Arc::new(Origin {
            service: Arc::from(sp.id.as_str()),
            device: device_id,
            node,
            company,
        });
        let interval_s = svc.interval_s.value.max(1);
        let interval = Duration::from_secs(u64::from(interval_s));
        let period = |aspect: Aspect| plan.time_range(svc.periods.get(aspect)).schedule.clone();
        let saved_state = saved(&sp.id).unwrap_or_else(|| Saved {
            state: ServiceState::new(now_wall),
            availability: Availability::default(),
            counted_until: None,
        });
        let offset_ms = (stable_hash(&sp.id) % (u64::from(interval_s) * 1000)) as u32;
        let offset = Duration::from_millis(u64::from(offset_ms));
        by_service.insert(index, slots.len());
        slots.push(Slot {
            origin,
            kind: svc.kind,
            service: index as u32,
            interval_s,
            retry_s: svc.retry_interval_s.value.max(1),
            timeout_s: svc.timeout_s.value.max(1),
            // A trap sets the HARD state at once.
            max_attempts: if svc.kind == CheckKind::SnmpTrap {
                1
            } else {
                svc.max_attempts.value
            },
            clear_after_s: match &svc.params {
                crate::document::CheckParams::SnmpTrap(p) => p.clear_after_s.unwrap_or(0),
                _ => 0,
            },
            periods: [
                period(Aspect::Control),
                period(Aspect::Availability),
                period(Aspect::Notification),
            ],
            tz: plan.zone_of(dev).clone(),
            device: d as u32,
            host: dev.host_check.filter(|h| *h != index).map(|h| h as u32),
            // Service indices for now; slots once every slot exists (below).
            parent_hosts: dev
                .parents
                .iter()
                .filter_map(|&p| plan.devices[p].outcome.as_ref().ok()?.host_check)
                .map(|h| h as u32)
                .collect(),
            offset_ms,
            criticality: svc.criticality.value,
            target: svc.availability_rate.value,
            flap: svc.flap.as_deref().filter(|f| f.detection.value).map(|f| Thresholds {
                high: f.high_pct.value as f32,
                low: f.low_pct.value as f32,
            }),
            renotify_s: svc.renotify_s.map_or(0, |r| r.value),
            maintenances: covering(plan, maintenances, index),
            covered: false,
            saved: saved_state,
            check_due: None,
            release_due: None,
            renotify_due: None,
            maintenance_due: None,
            availability_due: now + AVAILABILITY_EVERY.min(interval * 60) + offset,
            running: false,
            last_output: Arc::from(""),
            last_duration_ms: None,
            in_control: true,
            dirty: false,
            unsaved: false,
            marked_until: None,
        });
    }
    // Host checks by slot rather than by service index.
    for slot in &mut slots {
        slot.host = slot.host.and_then(|h| by_service.get(&(h as usize)).map(|&s| s as u32));
        if !slot.parent_hosts.is_empty() {
            slot.parent_hosts = slot
                .parent_hosts
                .iter()
                .filter_map(|h| by_service.get(&(*h as usize)).map(|&s| s as u32))
                .collect();
        }
    }
    slots
}

/// The maintenances (by index in `maintenances`) that cover the plan's service `index`.
pub(super) fn covering(plan: &Plan, maintenances: &[InForce], index: usize) -> Box<[u32]> {
    maintenances
        .iter()
        .enumerate()
        .filter(|(_, m)| plan.covers(&m.maintenance, index))
        .map(|(i, _)| i as u32)
        .collect()
}

pub(super) fn index_by_id(slots: &[Slot]) -> HashMap<Arc<str>, usize> {
    slots
        .iter()
        .enumerate()
        .map(|(i, s)| (s.origin.service.clone(), i))
        .collect()
}
