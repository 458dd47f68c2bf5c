//! The explain report (protocol.md §4): for every device and service, the decision, the
//! reasons and every effective value with where it came from. The JSON shape is a contract.

use std::collections::HashMap;
use std::fmt::Write as _;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Serialize;

use crate::problem::Problems;
use crate::rules::{DevicePlan, Period, Periods, Plan, Reason, ServicePlan, Sourced};

#[derive(Debug, Serialize)]
pub struct Report {
    pub version: Option<String>,
    pub box_node: Option<String>,
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
    pub devices: Vec<DeviceEntry>,
    pub services: Vec<ServiceEntry>,
}

#[derive(Debug, Serialize)]
pub struct DeviceEntry {
    pub id: String,
    pub node: String,
    pub accepted: bool,
    pub reasons: Vec<String>,
    /// Always there for an accepted device; for a rejected one only when not empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warnings: Option<Vec<String>>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub values: Option<DeviceValues>,
}

#[derive(Debug, Serialize)]
pub struct DeviceValues {
    pub timezone: String,
    pub control_period: PeriodEntry,
    pub availability_period: PeriodEntry,
    pub notification_period: PeriodEntry,
    pub contacts: Vec<String>,
    pub contact_groups: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PeriodEntry {
    pub time_range: String,
    pub from: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    /// Present (possibly null) only when the report is evaluated at an instant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_change: Option<Option<String>>,
}

#[derive(Debug, Serialize)]
pub struct ServiceEntry {
    pub id: String,
    pub device: String,
    pub accepted: bool,
    pub reasons: Vec<String>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub values: Option<ServiceValues>,
}

#[derive(Debug, Serialize)]
pub struct ServiceValues {
    pub kind: &'static str,
    pub host_check: bool,
    pub criticality: ValueEntry<&'static str>,
    pub availability_rate: ValueEntry<f64>,
    pub interval_s: ValueEntry<u32>,
    pub retry_interval_s: ValueEntry<u32>,
    pub max_attempts: ValueEntry<u32>,
    pub timeout_s: ValueEntry<u32>,
    pub control_period: PeriodEntry,
    pub availability_period: PeriodEntry,
    pub notification_period: PeriodEntry,
}

#[derive(Debug, Serialize)]
pub struct ValueEntry<T> {
    pub value: T,
    pub from: String,
}

impl Report {
    /// The report of a document that could not be resolved: its errors and nothing else.
    pub fn of_errors(version: Option<&str>, box_node: Option<&str>, errors: &Problems) -> Report {
        Report {
            version: version.map(str::to_string),
            box_node: box_node.map(str::to_string),
            errors: errors.0.iter().map(ToString::to_string).collect(),
            warnings: Vec::new(),
            devices: Vec::new(),
            services: Vec::new(),
        }
    }

    /// The report of a plan; with `at`, every period also says whether it is open then and
    /// when that next changes.
    pub fn of_plan(plan: &Plan, at: Option<Timestamp>) -> Report {
        let mut builder = Builder {
            plan,
            at,
            memo: HashMap::new(),
        };
        Report {
            version: Some(plan.version.clone()),
            box_node: Some(plan.tree.id(plan.box_node).to_string()),
            errors: Vec::new(),
            warnings: plan.warnings.clone(),
            devices: plan.devices.iter().map(|d| builder.device(d)).collect(),
            services: plan.services.iter().map(|s| builder.service(s)).collect(),
        }
    }

    pub fn to_json(&self) -> String {
        // A report of plain strings, numbers and booleans always serializes.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

struct Builder<'p> {
    plan: &'p Plan,
    at: Option<Timestamp>,
    /// (time range, zone) → state at `at`: thousands of services share a handful of pairs.
    memo: HashMap<(usize, String), (bool, Option<Timestamp>)>,
}

impl Builder<'_> {
    fn device(&mut self, d: &DevicePlan) -> DeviceEntry {
        let values = d.outcome.as_ref().ok().map(|dev| {
            let tz = self.plan.zone_of(dev).clone();
            DeviceValues {
                timezone: zone_name(&tz).to_string(),
                control_period: self.period(dev.periods.0[0], &tz),
                availability_period: self.period(dev.periods.0[1], &tz),
                notification_period: self.period(dev.periods.0[2], &tz),
                contacts: dev.contacts.clone(),
                contact_groups: dev.contact_groups.iter().map(|g| g.id.clone()).collect(),
            }
        });
        let warnings = (values.is_some() || !d.warnings.is_empty()).then(|| d.warnings.clone());
        DeviceEntry {
            id: d.id.clone(),
            node: d.node_id.clone(),
            accepted: values.is_some(),
            reasons: codes(&d.outcome),
            warnings,
            values,
        }
    }

    fn service(&mut self, s: &ServicePlan) -> ServiceEntry {
        let values = s.outcome.as_ref().ok().map(|svc| {
            let tz = self.service_zone(s);
            let [control, availability, notification] = self.periods(&svc.periods, &tz);
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
            }
        });
        ServiceEntry {
            id: s.id.clone(),
            device: s.device_id.clone(),
            accepted: values.is_some(),
            reasons: codes(&s.outcome),
            values,
        }
    }

    fn service_zone(&self, s: &ServicePlan) -> TimeZone {
        s.device
            .and_then(|d| self.plan.devices[d].outcome.as_ref().ok())
            .map_or(TimeZone::UTC, |dev| self.plan.zone_of(dev).clone())
    }

    fn value<T: Copy>(&self, v: Sourced<T>) -> ValueEntry<T> {
        ValueEntry {
            value: v.value,
            from: self.plan.source_name(v.from),
        }
    }

    fn periods(&mut self, p: &Periods, tz: &TimeZone) -> [PeriodEntry; 3] {
        p.0.map(|period| self.period(period, tz))
    }

    fn period(&mut self, period: Period, tz: &TimeZone) -> PeriodEntry {
        let (active, next_change) = match self.at {
            None => (None, None),
            Some(t) => {
                let plan = self.plan;
                let key = (period.time_range, zone_name(tz).to_string());
                let (active, next) = *self.memo.entry(key).or_insert_with(|| plan.period_state(period, t, tz));
                (Some(active), Some(next.map(rfc3339_utc)))
            }
        };
        PeriodEntry {
            time_range: self.plan.time_range(period).id.clone(),
            from: self.plan.source_name(period.from),
            active,
            next_change,
        }
    }
}

fn codes<T>(outcome: &Result<T, Vec<Reason>>) -> Vec<String> {
    match outcome {
        Ok(_) => Vec::new(),
        Err(reasons) => reasons.iter().map(|r| r.code.clone()).collect(),
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
    let _ = writeln!(
        out,
        "monitoring document {}, box at node {}",
        report.version.as_deref().unwrap_or("?"),
        report.box_node.as_deref().unwrap_or("?")
    );
    if !report.errors.is_empty() {
        let _ = writeln!(out, "\nthe document is invalid ({} errors):", report.errors.len());
        for e in &report.errors {
            let _ = writeln!(out, "  {e}");
        }
        return out;
    }
    for w in &report.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    let accepted = report.devices.iter().filter(|d| d.accepted).count();
    let polled = report.services.iter().filter(|s| s.accepted).count();
    let _ = writeln!(
        out,
        "{accepted} of {} devices accepted, {polled} of {} services polled",
        report.devices.len(),
        report.services.len()
    );
    let mut by_device: HashMap<&str, Vec<&ServiceEntry>> = HashMap::new();
    for s in &report.services {
        by_device.entry(s.device.as_str()).or_default().push(s);
    }
    for d in &report.devices {
        let _ = writeln!(out);
        match &d.values {
            Some(v) => {
                let _ = writeln!(out, "device {}  at {}  ({})  accepted", d.id, d.node, v.timezone);
                period_line(&mut out, "  ", "control", &v.control_period, &v.timezone);
                period_line(&mut out, "  ", "availability", &v.availability_period, &v.timezone);
                period_line(&mut out, "  ", "notification", &v.notification_period, &v.timezone);
                let _ = writeln!(out, "  contacts {:?}  groups {:?}", v.contacts, v.contact_groups);
            }
            None => {
                let _ = writeln!(
                    out,
                    "device {}  at {}  REJECTED: {}",
                    d.id,
                    d.node,
                    d.reasons.join(", ")
                );
            }
        }
        for w in d.warnings.iter().flatten() {
            let _ = writeln!(out, "  warning: {w}");
        }
        let zone = d.values.as_ref().map_or("UTC", |v| v.timezone.as_str());
        for s in by_device.remove(d.id.as_str()).unwrap_or_default() {
            service_text(&mut out, s, zone);
        }
    }
    let mut orphans: Vec<_> = by_device.into_values().flatten().collect();
    orphans.sort_by(|a, b| a.id.cmp(&b.id));
    for s in orphans {
        let _ = writeln!(out);
        service_text(&mut out, s, "UTC");
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
        ("criticality", v.criticality.value.to_string(), &v.criticality.from),
        (
            "availability_rate",
            format!("{}%", v.availability_rate.value),
            &v.availability_rate.from,
        ),
        ("interval_s", v.interval_s.value.to_string(), &v.interval_s.from),
        (
            "retry_interval_s",
            v.retry_interval_s.value.to_string(),
            &v.retry_interval_s.from,
        ),
        ("max_attempts", v.max_attempts.value.to_string(), &v.max_attempts.from),
        ("timeout_s", v.timeout_s.value.to_string(), &v.timeout_s.from),
    ];
    for (name, value, from) in rows {
        let _ = writeln!(out, "    {name:<20} {value:<14} from {from}");
    }
    period_line(out, "    ", "control", &v.control_period, zone);
    period_line(out, "    ", "availability", &v.availability_period, zone);
    period_line(out, "    ", "notification", &v.notification_period, zone);
}

fn period_line(out: &mut String, indent: &str, aspect: &str, p: &PeriodEntry, zone: &str) {
    let name = format!("{aspect}_period");
    let mut line = format!("{indent}{name:<20} {:<14} from {}", p.time_range, p.from);
    if let Some(active) = p.active {
        let state = if active { "open" } else { "closed" };
        let _ = match p.next_change.as_ref().and_then(|n| n.as_deref()) {
            Some(next) => write!(line, "  [{state} until {}]", local_time(next, zone)),
            None => write!(line, "  [{state}, never changes]"),
        };
    }
    let _ = writeln!(out, "{line}");
}

/// An instant of the report shown in the device's zone, for a person.
fn local_time(rfc3339: &str, zone: &str) -> String {
    let parsed = rfc3339.parse::<Timestamp>().ok().zip(TimeZone::get(zone).ok());
    match parsed {
        Some((t, tz)) => t.to_zoned(tz).strftime("%Y-%m-%d %H:%M %Z").to_string(),
        None => rfc3339.to_string(),
    }
}
