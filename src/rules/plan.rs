//! The resolved plan: what the box must poll, when, and why — every effective value with the
//! place it came from. Built by [`super::resolve`], read by the explain report, the scheduler
//! and the status endpoint.

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::timerange::Schedule;
use super::tree::{NodeIdx, Tree};
use crate::document::{Aspect, CheckKind, CheckParams, Criticality, Snmp};

/// Where an effective value came from (protocol.md §4 provenance strings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Set on the object itself.
    Explicit,
    /// A service's period taken from its device, which set it explicitly.
    ExplicitAtDevice,
    /// A default time range of a node (`None`: the product level). Indices are `u32` here:
    /// every service carries nine provenances, and 50,000 services felt each byte.
    Default(Option<u32>),
    /// A template or an override, by index in [`Plan::templates`].
    Template(u32),
}

impl Source {
    /// A device's provenance as seen by one of its services (R6 step 2).
    pub fn via_device(self) -> Source {
        match self {
            Source::Explicit => Source::ExplicitAtDevice,
            other => other,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sourced<T> {
    pub value: T,
    pub from: Source,
}

/// A period: a time range, by index in [`Plan::time_ranges`], and where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub time_range: u32,
    pub from: Source,
}

/// The control, availability and notification periods, in [`Aspect::ALL`] order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Periods(pub [Period; 3]);

impl Periods {
    pub fn get(&self, aspect: Aspect) -> Period {
        self.0[aspect as usize]
    }
}

/// Why a device or a service is not polled: a rules.md code (`unknown_node`,
/// `time_range_not_visible:bh-c1`, …) and the path of the value that caused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    pub code: String,
    pub path: String,
}

#[derive(Debug, Clone)]
pub struct TimeRange {
    pub id: String,
    pub name: String,
    pub owner: Option<NodeIdx>,
    /// Shared by every service that uses this range.
    pub schedule: std::sync::Arc<Schedule>,
}

#[derive(Debug, Clone)]
pub struct Template {
    pub id: String,
    pub owner: Option<NodeIdx>,
}

#[derive(Debug, Clone)]
pub struct ContactGroup {
    pub id: String,
    /// The enabled members (R11).
    pub members: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct DevicePlan {
    pub id: String,
    pub name: String,
    pub address: String,
    /// R18; `None` when the document gives none (counted as `other`).
    pub category: Option<crate::document::Category>,
    /// The node id as the document gave it.
    pub node_id: String,
    pub node: Option<NodeIdx>,
    /// Position in the document's `devices`, for messages.
    pub index: usize,
    pub warnings: Vec<String>,
    pub outcome: Result<Device, Vec<Reason>>,
}

#[derive(Debug, Clone)]
pub struct Device {
    pub node: NodeIdx,
    pub periods: Periods,
    pub contacts: Vec<String>,
    pub contact_groups: Vec<ContactGroup>,
    /// Boxed: most devices have none, and it is 128 bytes.
    pub snmp: Option<Box<Snmp>>,
    /// The host check (R9), by index in [`Plan::services`].
    pub host_check: Option<usize>,
    /// Usable parents (R14), by index in [`Plan::devices`]: accepted, with a host check, and
    /// not closing a cycle.
    pub parents: Vec<usize>,
}

#[derive(Debug, Clone)]
pub struct ServicePlan {
    pub id: String,
    pub name: Option<String>,
    /// The device id as the document gave it.
    pub device_id: String,
    /// Index in [`Plan::devices`].
    pub device: Option<usize>,
    pub index: usize,
    pub outcome: Result<Service, Vec<Reason>>,
}

#[derive(Debug, Clone)]
pub struct Service {
    pub kind: CheckKind,
    pub host_check: bool,
    pub criticality: Sourced<Criticality>,
    pub availability_rate: Sourced<f64>,
    pub interval_s: Sourced<u32>,
    pub retry_interval_s: Sourced<u32>,
    pub max_attempts: Sourced<u32>,
    pub timeout_s: Sourced<u32>,
    pub periods: Periods,
    pub params: CheckParams,
    /// R15, when the document sets `flap_detection` (boxed: most services have none).
    pub flap: Option<Box<Flap>>,
    /// R16, when the document sets it.
    pub renotify_s: Option<Sourced<u32>>,
}

/// Flap detection's settings (R15).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Flap {
    pub detection: Sourced<bool>,
    pub high_pct: Sourced<f64>,
    pub low_pct: Sourced<f64>,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub version: String,
    pub box_id: String,
    pub box_node: NodeIdx,
    pub tree: Tree,
    pub time_ranges: Vec<TimeRange>,
    pub templates: Vec<Template>,
    /// Document warnings: what was set aside without rejecting the document.
    pub warnings: Vec<String>,
    pub devices: Vec<DevicePlan>,
    pub services: Vec<ServicePlan>,
    /// The document's maintenances that hold (R13).
    pub maintenances: Vec<super::maintenance::Maintenance>,
    /// The mail address of each enabled contact that has one, by contact id (R17 mails them).
    pub emails: std::collections::HashMap<String, String>,
    /// Provenance strings, made once: `template:<id>` by template, `default:<id>` by node.
    pub(super) source_names: SourceNames,
}

#[derive(Debug, Clone, Default)]
pub(super) struct SourceNames {
    pub templates: Vec<String>,
    pub defaults: Vec<String>,
}

impl SourceNames {
    pub fn new(tree: &Tree, templates: &[Template]) -> SourceNames {
        SourceNames {
            templates: templates.iter().map(|t| format!("template:{}", t.id)).collect(),
            defaults: tree.nodes.iter().map(|n| format!("default:{}", n.id)).collect(),
        }
    }
}

impl Plan {
    /// The provenance string of protocol.md §4.
    pub fn source_name(&self, source: Source) -> &str {
        match source {
            Source::Explicit => "explicit",
            Source::ExplicitAtDevice => "explicit@device",
            Source::Default(None) => "default:product",
            Source::Default(Some(n)) => &self.source_names.defaults[n as usize],
            Source::Template(t) => &self.source_names.templates[t as usize],
        }
    }

    pub fn time_range(&self, period: Period) -> &TimeRange {
        &self.time_ranges[period.time_range as usize]
    }

    /// The zone a device's periods are read in (R7).
    pub fn zone_of(&self, device: &Device) -> &TimeZone {
        &self.tree.node(device.node).zone
    }

    /// Whether `period` is open at `t` in `tz`, and when that next changes (R8).
    pub fn period_state(&self, period: Period, t: Timestamp, tz: &TimeZone) -> (bool, Option<Timestamp>) {
        let schedule = &self.time_range(period).schedule;
        (schedule.is_active(t, tz), schedule.next_change(t, tz))
    }

    pub fn accepted_devices(&self) -> impl Iterator<Item = (&DevicePlan, &Device)> {
        self.devices
            .iter()
            .filter_map(|d| d.outcome.as_ref().ok().map(|r| (d, r)))
    }

    pub fn accepted_services(&self) -> impl Iterator<Item = (&ServicePlan, &Service)> {
        self.services
            .iter()
            .filter_map(|s| s.outcome.as_ref().ok().map(|r| (s, r)))
    }
}
