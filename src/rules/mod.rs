//! The rules engine: a monitoring document → a resolved [`Plan`] (rules.md R1–R8, R11).
//!
//! Pure: no I/O and no clock. The instant at which periods are judged is always a parameter,
//! and the box's own zone (R7) is passed in by the caller.
//!
//! Document-level problems (a broken tree, a bad shared object, a malformed value) reject the
//! whole document and are all returned at once. A device or a service that breaks a rule is
//! rejected on its own, with rules.md's reason codes, and never rejects the document.

mod catalog;
mod device;
pub mod maintenance;
mod parents;
pub mod plan;
mod service;
pub mod timerange;
pub mod tree;

use std::collections::HashMap;

use jiff::tz::TimeZone;

use crate::document::Document;
use crate::problem::{Problem, Problems};

pub use device::placement;
pub use device::{AddressKind, address_kind};
pub use maintenance::Maintenance;
pub use plan::{Device, DevicePlan, Flap, Period, Periods, Plan, Reason, Service, ServicePlan, Source, Sourced};
pub use timerange::Schedule;
pub use tree::{NodeIdx, Tree};

use catalog::{Catalog, check_numbers, parse_params};

/// Resolves a document for a box whose configured zone is `box_zone` (R7's fallback).
pub fn resolve(doc: &Document, box_zone: &TimeZone) -> Result<Plan, Problems> {
    let mut problems = Vec::new();
    let Some(tree) = Tree::build(&doc.tree, box_zone, &mut problems) else {
        // Most rules need the tree; time ranges' own syntax does not.
        for (i, tr) in doc.time_ranges.iter().enumerate() {
            Schedule::compile(tr, &format!("time_ranges[{i}]"), &mut problems);
        }
        return Err(Problems(problems));
    };
    let box_node = tree.get(&doc.box_.node);
    if box_node.is_none() {
        problems.push(Problem::new(
            "unknown_node",
            "box.node",
            format!("unknown node {:?}", doc.box_.node),
        ));
    }
    let mut catalog = Catalog::build(doc, &tree, &mut problems);
    let device_ids = check_devices_and_services(doc, &catalog, &mut problems);
    let Some(box_node) = box_node.filter(|_| problems.is_empty()) else {
        return Err(Problems(problems));
    };

    let mut devices: Vec<DevicePlan> = doc
        .devices
        .iter()
        .enumerate()
        .map(|(i, d)| device::resolve(i, d, box_node, &tree, &catalog))
        .collect();
    let mut warnings = std::mem::take(&mut catalog.warnings);
    let host_checks = service::host_checks(&doc.services, &devices, &device_ids, &tree, &catalog, &mut warnings);
    for (&d, &s) in &host_checks {
        if let Ok(device) = &mut devices[d].outcome {
            device.host_check = Some(s);
        }
    }
    warnings.extend(parents::resolve(&doc.devices, &mut devices, &device_ids));
    let services = doc
        .services
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let device = device_ids.get(s.device.as_str()).map(|&d| (d, &devices[d]));
            let is_host_check = device.is_some_and(|(d, _)| host_checks.get(&d) == Some(&i));
            service::resolve(i, s, device, is_host_check, &tree, &catalog)
        })
        .collect();
    let templates = catalog.template_id_list();
    let emails = catalog
        .contacts
        .values()
        .filter(|(c, _)| c.enabled)
        .filter_map(|(c, _)| Some((c.id.clone(), c.email.clone()?)))
        .collect();
    warnings.extend(doc.set_aside.iter().cloned());
    let mut plan = Plan {
        emails,
        version: doc.version.clone(),
        box_id: doc.box_.id.clone(),
        box_node,
        source_names: plan::SourceNames::new(&tree, &templates),
        tree,
        time_ranges: std::mem::take(&mut catalog.time_ranges),
        templates,
        warnings,
        devices,
        services,
        maintenances: Vec::new(),
    };
    let (maintenances, set_aside) = maintenance::resolve_all(&doc.maintenances, &plan);
    plan.maintenances = maintenances;
    plan.warnings.extend(set_aside);
    Ok(plan)
}

/// Document-level checks of devices and services: unique ids, sane numbers, params that fit
/// their template's kind. Returns the device index by id.
fn check_devices_and_services<'d>(
    doc: &'d Document,
    catalog: &Catalog,
    problems: &mut Vec<Problem>,
) -> HashMap<&'d str, usize> {
    let mut device_ids = HashMap::with_capacity(doc.devices.len());
    for (i, d) in doc.devices.iter().enumerate() {
        if device_ids.insert(d.id.as_str(), i).is_some() {
            problems.push(Problem::new(
                "duplicate_id",
                format!("devices[{i}].id"),
                format!("device id {:?} is used more than once", d.id),
            ));
        }
    }
    let mut service_ids = HashMap::with_capacity(doc.services.len());
    for (i, s) in doc.services.iter().enumerate() {
        let at = format!("services[{i}]");
        if service_ids.insert(s.id.as_str(), i).is_some() {
            problems.push(Problem::new(
                "duplicate_id",
                format!("{at}.id"),
                format!("service id {:?} is used more than once", s.id),
            ));
        }
        check_numbers(
            &at,
            s.availability_rate,
            [
                ("interval_s", s.interval_s),
                ("retry_interval_s", s.retry_interval_s),
                ("max_attempts", s.max_attempts),
                ("timeout_s", s.timeout_s),
            ],
            problems,
        );
        let kind = catalog
            .template_ids
            .get(s.template.as_str())
            .and_then(|&t| catalog.templates[t].kind);
        if let (Some(kind), Some(_)) = (kind, &s.params) {
            parse_params(kind, s.params.as_ref(), &at, problems);
        }
    }
    // After a duplicate id, the first device keeps the id.
    for (i, d) in doc.devices.iter().enumerate().rev() {
        device_ids.insert(d.id.as_str(), i);
    }
    device_ids
}
