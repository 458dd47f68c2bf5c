//! R13: maintenance windows. A maintenance covers a service when its scope is the service,
//! its device, or the device's node or an ancestor of it. Its window is one-off (two
//! instants) or recurring (a time range read in each covered device's zone, as periods are).
//! A bad maintenance is set aside with a document warning; it never rejects anything.

use std::collections::HashMap;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::plan::Plan;
use super::timerange::Schedule;
use super::tree::NodeIdx;
use crate::document;

/// A maintenance resolved against a plan: indices, instants, a time range.
#[derive(Debug, Clone, PartialEq)]
pub struct Maintenance {
    pub id: String,
    pub scope: Scope,
    pub window: Window,
    pub collect: bool,
    pub counts_in_availability: bool,
    pub comment: Option<String>,
    /// As it was given, for the records and reports that name it.
    pub raw: document::Maintenance,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scope {
    Node(NodeIdx),
    /// By index in the plan's devices and services.
    Device(usize),
    Service(usize),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Window {
    Once {
        start: Timestamp,
        end: Timestamp,
    },
    /// A time range, by index in the plan's.
    Recurring(u32),
}

/// A window made concrete for reading: what availability and the scheduler ask of it.
#[derive(Debug, Clone, Copy)]
pub enum Occurrence<'a> {
    Once { start: Timestamp, end: Timestamp },
    Recurring(&'a Schedule),
}

impl Occurrence<'_> {
    pub fn is_active(&self, t: Timestamp, tz: &TimeZone) -> bool {
        match self {
            Occurrence::Once { start, end } => *start <= t && t < *end,
            Occurrence::Recurring(s) => s.is_active(t, tz),
        }
    }

    /// The next instant after `t` at which [`Occurrence::is_active`] changes.
    pub fn next_change(&self, t: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        match self {
            Occurrence::Once { start, .. } if t < *start => Some(*start),
            Occurrence::Once { end, .. } if t < *end => Some(*end),
            Occurrence::Once { .. } => None,
            Occurrence::Recurring(s) => s.next_change(t, tz),
        }
    }
}

/// Resolves maintenances against `plan`, each alone; the ones set aside give warnings.
pub struct Resolver<'p> {
    plan: &'p Plan,
    devices: HashMap<&'p str, usize>,
    services: HashMap<&'p str, usize>,
}

impl<'p> Resolver<'p> {
    pub fn new(plan: &'p Plan) -> Resolver<'p> {
        Resolver {
            plan,
            devices: plan
                .devices
                .iter()
                .enumerate()
                .map(|(i, d)| (d.id.as_str(), i))
                .collect(),
            services: plan
                .services
                .iter()
                .enumerate()
                .map(|(i, s)| (s.id.as_str(), i))
                .collect(),
        }
    }

    /// The maintenance, or the R13 warning that sets it aside.
    pub fn resolve(&self, raw: &document::Maintenance) -> Result<Maintenance, String> {
        let id = &raw.id;
        let plan = self.plan;
        let s = &raw.scope;
        let (scope, at_node) = match (&s.node, &s.device, &s.service) {
            (Some(n), None, None) => plan
                .tree
                .get(n)
                .map(|n| (Scope::Node(n), n))
                .ok_or_else(|| format!("unknown_maintenance_scope:{id}"))?,
            (None, Some(d), None) => {
                let d = *self
                    .devices
                    .get(d.as_str())
                    .ok_or_else(|| format!("unknown_maintenance_scope:{id}"))?;
                let node = plan.devices[d]
                    .node
                    .ok_or_else(|| format!("unknown_maintenance_scope:{id}"))?;
                (Scope::Device(d), node)
            }
            (None, None, Some(sv)) => {
                let sv = *self
                    .services
                    .get(sv.as_str())
                    .ok_or_else(|| format!("unknown_maintenance_scope:{id}"))?;
                let node = plan.services[sv]
                    .device
                    .and_then(|d| plan.devices[d].node)
                    .ok_or_else(|| format!("unknown_maintenance_scope:{id}"))?;
                (Scope::Service(sv), node)
            }
            _ => return Err(format!("unknown_maintenance_scope:{id}")),
        };
        let bad = || format!("maintenance_bad_window:{id}");
        let window = match (&raw.start, &raw.end, &raw.time_range) {
            (Some(start), Some(end), None) => {
                let start: Timestamp = start.parse().map_err(|_| bad())?;
                let end: Timestamp = end.parse().map_err(|_| bad())?;
                if start >= end {
                    return Err(bad());
                }
                Window::Once { start, end }
            }
            (None, None, Some(tr)) => {
                let index = plan.time_ranges.iter().position(|t| t.id == *tr).ok_or_else(bad)?;
                // R3: visible at the scope's node (for a device or service: to the device).
                if !plan.tree.sees(at_node, plan.time_ranges[index].owner) {
                    return Err(format!("maintenance_time_range_not_visible:{id}:{tr}"));
                }
                Window::Recurring(index as u32)
            }
            _ => return Err(bad()),
        };
        Ok(Maintenance {
            id: id.clone(),
            scope,
            window,
            collect: raw.collect,
            counts_in_availability: raw.counts_in_availability,
            comment: raw.comment.clone(),
            raw: raw.clone(),
        })
    }
}

/// The document's maintenances that hold, and a warning for each set aside (and for an id
/// given twice: the first one stays).
pub fn resolve_all(raw: &[document::Maintenance], plan: &Plan) -> (Vec<Maintenance>, Vec<String>) {
    if raw.is_empty() {
        return (Vec::new(), Vec::new());
    }
    let resolver = Resolver::new(plan);
    let (mut kept, mut warnings) = (Vec::<Maintenance>::new(), Vec::new());
    for m in raw {
        if kept.iter().any(|k| k.id == m.id) {
            warnings.push(format!("maintenance_duplicate:{}", m.id));
            continue;
        }
        match resolver.resolve(m) {
            Ok(m) => kept.push(m),
            Err(w) => warnings.push(w),
        }
    }
    (kept, warnings)
}

impl Plan {
    /// Whether `m` covers the service at index `service` (R13: inherited down the tree).
    pub fn covers(&self, m: &Maintenance, service: usize) -> bool {
        let device = self.services[service].device;
        match m.scope {
            Scope::Service(s) => s == service,
            Scope::Device(d) => device == Some(d),
            Scope::Node(n) => device
                .and_then(|d| self.devices[d].node)
                .is_some_and(|node| self.tree.is_ancestor_or_self(n, node)),
        }
    }

    pub fn occurrence(&self, m: &Maintenance) -> Occurrence<'_> {
        match m.window {
            Window::Once { start, end } => Occurrence::Once { start, end },
            Window::Recurring(tr) => Occurrence::Recurring(&self.time_ranges[tr as usize].schedule),
        }
    }

    /// The zone a maintenance is read in where no device is meant: its scope's node's (R7).
    pub fn scope_zone(&self, m: &Maintenance) -> TimeZone {
        let node = match m.scope {
            Scope::Node(n) => Some(n),
            Scope::Device(d) => self.devices[d].node,
            Scope::Service(s) => self.services[s].device.and_then(|d| self.devices[d].node),
        };
        node.map_or(TimeZone::UTC, |n| self.tree.node(n).zone.clone())
    }

    /// The id of a maintenance's scope, as records and reports name it.
    pub fn scope_id(&self, m: &Maintenance) -> &str {
        match m.scope {
            Scope::Node(n) => self.tree.id(n),
            Scope::Device(d) => &self.devices[d].id,
            Scope::Service(s) => &self.services[s].id,
        }
    }
}
