//! The explain report (protocol.md §4): for every device and service, the decision, the
//! reasons and every effective value with where it came from. The JSON shape is a contract.
//!
//! A report borrows its plan and builds each entry only while it is written, so explaining
//! 200,000 services costs one entry of memory at a time, not a copy of the plan.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Serialize;
use serde::ser::{SerializeStruct, Serializer};

use crate::problem::Problems;
use crate::rules::{DevicePlan, Period, Plan, Reason, ServicePlan, Sourced};

/// The report of a plan, or of a document that could not be resolved.
pub enum Report<'a> {
    Errors {
        version: Option<&'a str>,
        box_node: Option<&'a str>,
        errors: Vec<String>,
    },
    Plan(PlanReport<'a>),
}

/// Whether a period is open at the report's instant, and when that next changes.
type PeriodState = (bool, Option<Timestamp>);

pub struct PlanReport<'a> {
    plan: &'a Plan,
    at: Option<Timestamp>,
    /// (time range, zone) → state at `at`: thousands of services share a handful of pairs.
    memo: RefCell<HashMap<(u32, &'a str), PeriodState>>,
}

impl<'a> Report<'a> {
    /// The report of a document that could not be resolved: its errors and nothing else.
    pub fn of_errors(version: Option<&'a str>, box_node: Option<&'a str>, errors: &Problems) -> Report<'a> {
        Report::Errors {
            version,
            box_node,
            errors: errors.0.iter().map(ToString::to_string).collect(),
        }
    }

    /// The report of a plan; with `at`, every period also says whether it is open then and
    /// when that next changes.
    pub fn of_plan(plan: &'a Plan, at: Option<Timestamp>) -> Report<'a> {
        Report::Plan(PlanReport {
            plan,
            at,
            memo: RefCell::new(HashMap::new()),
        })
    }

    /// Writes the report as indented JSON.
    pub fn write_json(&self, out: impl io::Write) -> io::Result<()> {
        serde_json::to_writer_pretty(out, self).map_err(io::Error::from)
    }

    pub fn to_json(&self) -> String {
        let mut out = Vec::new();
        // Writing into memory cannot fail, and the report holds only strings and numbers.
        let _ = self.write_json(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

impl Serialize for Report<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Report", 6)?;
        match self {
            Report::Errors {
                version,
                box_node,
                errors,
            } => {
                s.serialize_field("version", version)?;
                s.serialize_field("box_node", box_node)?;
                s.serialize_field("errors", errors)?;
                s.serialize_field("warnings", &[] as &[String])?;
                s.serialize_field("devices", &[] as &[String])?;
                s.serialize_field("services", &[] as &[String])?;
            }
            Report::Plan(r) => {
                s.serialize_field("version", &r.plan.version)?;
                s.serialize_field("box_node", r.plan.tree.id(r.plan.box_node))?;
                s.serialize_field("errors", &[] as &[String])?;
                s.serialize_field("warnings", &r.plan.warnings)?;
                s.serialize_field("devices", &Devices(r))?;
                s.serialize_field("services", &Services(r))?;
            }
        }
        s.end()
    }
}

struct Devices<'r, 'a>(&'r PlanReport<'a>);
struct Services<'r, 'a>(&'r PlanReport<'a>);

impl Serialize for Devices<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.plan.devices.iter().map(|d| self.0.device(d)))
    }
}

impl Serialize for Services<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.plan.services.iter().map(|s| self.0.service(s)))
    }
}

#[derive(Debug, Serialize)]
pub struct DeviceEntry<'a> {
    pub id: &'a str,
    pub node: &'a str,
    pub accepted: bool,
    pub reasons: Vec<&'a str>,
    /// Always there for an accepted device; for a rejected one only when not empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warnings: Option<&'a [String]>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub values: Option<DeviceValues<'a>>,
}

#[derive(Debug, Serialize)]
pub struct DeviceValues<'a> {
    pub timezone: &'a str,
    pub control_period: PeriodEntry<'a>,
    pub availability_period: PeriodEntry<'a>,
    pub notification_period: PeriodEntry<'a>,
    pub contacts: &'a [String],
    pub contact_groups: Vec<&'a str>,
    /// Usable parents (R14), shown when the device has any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub parents: Vec<&'a str>,
    /// R18, shown when the document gives one (`other` otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<&'static str>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PeriodEntry<'a> {
    pub time_range: &'a str,
    pub from: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    /// Present (possibly null) only when the report is evaluated at an instant.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "instant")]
    pub next_change: Option<Option<Timestamp>>,
}

#[derive(Debug, Serialize)]
pub struct ServiceEntry<'a> {
    pub id: &'a str,
    pub device: &'a str,
    pub accepted: bool,
    pub reasons: Vec<&'a str>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub values: Option<ServiceValues<'a>>,
}

#[derive(Debug, Serialize)]
pub struct ServiceValues<'a> {
    pub kind: &'static str,
    pub host_check: bool,
    pub criticality: ValueEntry<'a, &'static str>,
    pub availability_rate: ValueEntry<'a, f64>,
    pub interval_s: ValueEntry<'a, u32>,
    pub retry_interval_s: ValueEntry<'a, u32>,
    pub max_attempts: ValueEntry<'a, u32>,
    pub timeout_s: ValueEntry<'a, u32>,
    pub control_period: PeriodEntry<'a>,
    pub availability_period: PeriodEntry<'a>,
    pub notification_period: PeriodEntry<'a>,
    /// R15 and R16, shown when the document sets them (the thresholds when detection is on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flap_detection: Option<ValueEntry<'a, bool>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flap_high_pct: Option<ValueEntry<'a, f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flap_low_pct: Option<ValueEntry<'a, f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renotify_s: Option<ValueEntry<'a, u32>>,
    /// The maintenances covering the service (R13), when there are some.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub maintenances: Vec<MaintenanceEntry<'a>>,
}

/// A covering maintenance: its id, or with `--at` whether it is active then and its next change.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum MaintenanceEntry<'a> {
    Id(&'a str),
    At {
        id: &'a str,
        active: bool,
        #[serde(serialize_with = "instant")]
        next_change: Option<Option<Timestamp>>,
    },
}

#[derive(Debug, Serialize)]
pub struct ValueEntry<'a, T> {
    pub value: T,
    pub from: &'a str,
}

fn instant<S: Serializer>(t: &Option<Option<Timestamp>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(Some(t)) => s.serialize_str(&rfc3339_utc(*t)),
        _ => s.serialize_none(),
    }
}

impl<'a> PlanReport<'a> {
    pub fn device(&self, d: &'a DevicePlan) -> DeviceEntry<'a> {
        let values = d.outcome.as_ref().ok().map(|dev| {
            let tz = self.plan.zone_of(dev);
            let [control, availability, notification] = dev.periods.0.map(|p| self.period(p, tz));
            DeviceValues {
                timezone: zone_name(tz),
                control_period: control,
                availability_period: availability,
                notification_period: notification,
                contacts: &dev.contacts,
                contact_groups: dev.contact_groups.iter().map(|g| g.id.as_str()).collect(),
                parents: dev.parents.iter().map(|&p| self.plan.devices[p].id.as_str()).collect(),
                category: d.category.map(|c| c.as_str()),
            }
        });
        DeviceEntry {
            id: &d.id,
            node: &d.node_id,
            accepted: values.is_some(),
            reasons: codes(&d.outcome),
            warnings: (values.is_some() || !d.warnings.is_empty()).then_some(d.warnings.as_slice()),
            values,
        }
    }

    pub fn service(&self, s: &'a ServicePlan) -> ServiceEntry<'a> {
        let values = s.outcome.as_ref().ok().map(|svc| {
            let tz = self.service_zone(s);
            let [control, availability, notification] = svc.periods.0.map(|p| self.period(p, tz));
            let flap = svc.flap.as_deref();
            let flap_on = flap.filter(|f| f.detection.value);
            ServiceValues {
                kind: svc.kind.as_str(),
                host_check: svc.host_check,
                criticality: ValueEntry {
                    value: svc.criticality.value.as_str(),
                    from: self.plan.source_name(svc.criticality.from),
                },
                availability_rate: self.value(svc.availability_rate),
                interval_s: self.value(svc.interval_s),
                retry_interval_s: self.value(svc.retry_interval_s),
                max_attempts: self.value(svc.max_attempts),
                timeout_s: self.value(svc.timeout_s),
                control_period: control,
                availability_period: availability,
                notification_period: notification,
                flap_detection: flap.map(|f| self.value(f.detection)),
                flap_high_pct: flap_on.map(|f| self.value(f.high_pct)),
                flap_low_pct: flap_on.map(|f| self.value(f.low_pct)),
                renotify_s: svc.renotify_s.map(|r| self.value(r)),
                maintenances: self.maintenances(s.index, tz),
            }
        });
        ServiceEntry {
            id: &s.id,
            device: &s.device_id,
            accepted: values.is_some(),
            reasons: codes(&s.outcome),
            values,
        }
    }

    fn maintenances(&self, service: usize, tz: &TimeZone) -> Vec<MaintenanceEntry<'a>> {
        let plan = self.plan;
        plan.maintenances
            .iter()
            .filter(|m| plan.covers(m, service))
            .map(|m| match self.at {
                None => MaintenanceEntry::Id(&m.id),
                Some(t) => {
                    let o = plan.occurrence(m);
                    MaintenanceEntry::At {
                        id: &m.id,
                        active: o.is_active(t, tz),
                        next_change: Some(o.next_change(t, tz)),
                    }
                }
            })
            .collect()
    }

    fn service_zone(&self, s: &ServicePlan) -> &'a TimeZone {
        s.device
            .and_then(|d| self.plan.devices[d].outcome.as_ref().ok())
            .map_or(&UTC, |dev| self.plan.zone_of(dev))
    }

    fn value<T: Copy>(&self, v: Sourced<T>) -> ValueEntry<'a, T> {
        ValueEntry {
            value: v.value,
            from: self.plan.source_name(v.from),
        }
    }

    fn period(&self, period: Period, tz: &'a TimeZone) -> PeriodEntry<'a> {
        let (active, next_change) = match self.at {
            None => (None, None),
            Some(t) => {
                let key = (period.time_range, zone_name(tz));
                let mut memo = self.memo.borrow_mut();
                let (active, next) = *memo.entry(key).or_insert_with(|| self.plan.period_state(period, t, tz));
                (Some(active), Some(next))
            }
        };
        PeriodEntry {
            time_range: &self.plan.time_range(period).id,
            from: self.plan.source_name(period.from),
            active,
            next_change,
        }
    }
}

static UTC: TimeZone = TimeZone::UTC;

fn codes<T>(outcome: &Result<T, Vec<Reason>>) -> Vec<&str> {
    match outcome {
        Ok(_) => Vec::new(),
        Err(reasons) => reasons.iter().map(|r| r.code.as_str()).collect(),
    }
}

pub fn zone_name(tz: &TimeZone) -> &str {
    tz.iana_name().unwrap_or("UTC")
}

/// RFC 3339 in UTC with an explicit `+00:00` offset, as the explain report writes instants.
pub fn rfc3339_utc(t: Timestamp) -> String {
    t.to_zoned(TimeZone::UTC).strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

/// The same report for a person: devices with their services beneath them.
pub fn to_text(report: &Report) -> String {
    let mut out = String::new();
    let r = match report {
        Report::Errors {
            version,
            box_node,
            errors,
        } => {
            let _ = writeln!(
                out,
                "monitoring document {}, box at node {}",
                version.unwrap_or("?"),
                box_node.unwrap_or("?")
            );
            let _ = writeln!(out, "\nthe document is invalid ({} errors):", errors.len());
            for e in errors {
                let _ = writeln!(out, "  {e}");
            }
            return out;
        }
        Report::Plan(r) => r,
    };
    let plan = r.plan;
    let _ = writeln!(
        out,
        "monitoring document {}, box at node {}",
        plan.version,
        plan.tree.id(plan.box_node)
    );
    for w in &plan.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    let _ = writeln!(
        out,
        "{} of {} devices accepted, {} of {} services polled",
        plan.accepted_devices().count(),
        plan.devices.len(),
        plan.accepted_services().count(),
        plan.services.len()
    );
    let mut by_device: HashMap<Option<usize>, Vec<&ServicePlan>> = HashMap::new();
    for s in &plan.services {
        by_device.entry(s.device).or_default().push(s);
    }
    for (i, d) in plan.devices.iter().enumerate() {
        let entry = r.device(d);
        let _ = writeln!(out);
        match &entry.values {
            Some(v) => {
                let _ = writeln!(out, "device {}  at {}  ({})  accepted", d.id, d.node_id, v.timezone);
                for (aspect, p) in [
                    ("control", &v.control_period),
                    ("availability", &v.availability_period),
                    ("notification", &v.notification_period),
                ] {
                    period_line(&mut out, "  ", aspect, p, v.timezone);
                }
                let _ = writeln!(out, "  contacts {:?}  groups {:?}", v.contacts, v.contact_groups);
                if !v.parents.is_empty() {
                    let _ = writeln!(out, "  parents {:?}", v.parents);
                }
                if let Some(category) = v.category {
                    let _ = writeln!(out, "  category {category}");
                }
            }
            None => {
                let _ = writeln!(
                    out,
                    "device {}  at {}  REJECTED: {}",
                    d.id,
                    d.node_id,
                    entry.reasons.join(", ")
                );
            }
        }
        for w in entry.warnings.into_iter().flatten() {
            let _ = writeln!(out, "  warning: {w}");
        }
        let zone = entry.values.as_ref().map_or("UTC", |v| v.timezone);
        for s in by_device.remove(&Some(i)).unwrap_or_default() {
            service_text(&mut out, &r.service(s), zone);
        }
    }
    for s in by_device.into_values().flatten() {
        let _ = writeln!(out);
        service_text(&mut out, &r.service(s), "UTC");
    }
    out
}

fn service_text(out: &mut String, s: &ServiceEntry, zone: &str) {
    let Some(v) = &s.values else {
        let _ = writeln!(out, "  service {}  REJECTED: {}", s.id, s.reasons.join(", "));
        return;
    };
    let host = if v.host_check { ", host check" } else { "" };
    let _ = writeln!(out, "  service {}  ({}{host})  polled", s.id, v.kind);
    let rows: [(&str, String, &str); 6] = [
        ("criticality", v.criticality.value.to_string(), v.criticality.from),
        (
            "availability_rate",
            format!("{}%", v.availability_rate.value),
            v.availability_rate.from,
        ),
        ("interval_s", v.interval_s.value.to_string(), v.interval_s.from),
        (
            "retry_interval_s",
            v.retry_interval_s.value.to_string(),
            v.retry_interval_s.from,
        ),
        ("max_attempts", v.max_attempts.value.to_string(), v.max_attempts.from),
        ("timeout_s", v.timeout_s.value.to_string(), v.timeout_s.from),
    ];
    let optional = [
        v.flap_detection
            .as_ref()
            .map(|e| ("flap_detection", e.value.to_string(), e.from)),
        v.flap_high_pct
            .as_ref()
            .map(|e| ("flap_high_pct", format!("{}%", e.value), e.from)),
        v.flap_low_pct
            .as_ref()
            .map(|e| ("flap_low_pct", format!("{}%", e.value), e.from)),
        v.renotify_s
            .as_ref()
            .map(|e| ("renotify_s", e.value.to_string(), e.from)),
    ];
    for (name, value, from) in rows.into_iter().chain(optional.into_iter().flatten()) {
        let _ = writeln!(out, "    {name:<20} {value:<14} from {from}");
    }
    for (aspect, p) in [
        ("control", &v.control_period),
        ("availability", &v.availability_period),
        ("notification", &v.notification_period),
    ] {
        period_line(out, "    ", aspect, p, zone);
    }
    for m in &v.maintenances {
        let line = match m {
            MaintenanceEntry::Id(id) => id.to_string(),
            MaintenanceEntry::At {
                id,
                active,
                next_change,
            } => {
                let state = if *active { "active" } else { "inactive" };
                match next_change.flatten() {
                    Some(next) => format!("{id}  [{state} until {}]", local_time(next, zone)),
                    None => format!("{id}  [{state}, never changes]"),
                }
            }
        };
        let _ = writeln!(out, "    {:<20} {line}", "maintenance");
    }
}

fn period_line(out: &mut String, indent: &str, aspect: &str, p: &PeriodEntry, zone: &str) {
    let name = format!("{aspect}_period");
    let mut line = format!("{indent}{name:<20} {:<14} from {}", p.time_range, p.from);
    if let Some(active) = p.active {
        let state = if active { "open" } else { "closed" };
        let _ = match p.next_change.flatten() {
            Some(next) => write!(line, "  [{state} until {}]", local_time(next, zone)),
            None => write!(line, "  [{state}, never changes]"),
        };
    }
    let _ = writeln!(out, "{line}");
}

/// An instant shown in the device's zone, for a person.
fn local_time(t: Timestamp, zone: &str) -> String {
    match TimeZone::get(zone) {
        Ok(tz) => t.to_zoned(tz).strftime("%Y-%m-%d %H:%M %Z").to_string(),
        Err(_) => rfc3339_utc(t),
    }
}
