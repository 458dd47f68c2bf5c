//! Per device: placement (R2), periods (R4) and contacts (R11).

use super::catalog::Catalog;
use super::plan::{ContactGroup, Device, DevicePlan, Period, Periods, Reason, Source};
use super::tree::{NodeIdx, Tree};
use crate::document::{self, Aspect, Mode, NodeKind};

pub fn resolve(index: usize, raw: &document::Device, box_node: NodeIdx, tree: &Tree, catalog: &Catalog) -> DevicePlan {
    let at = format!("devices[{index}]");
    let mut reasons = Vec::new();
    let mut warnings = Vec::new();
    let node = tree.get(&raw.node);
    let mut plan = DevicePlan {
        id: raw.id.clone(),
        name: raw.name.clone(),
        address: raw.address.clone(),
        category: raw.category,
        node_id: raw.node.clone(),
        node,
        index,
        warnings: Vec::new(),
        outcome: Err(Vec::new()),
    };
    let Some(d) = node else {
        plan.outcome = Err(vec![reason("unknown_node", format!("{at}.node"))]);
        return plan;
    };
    reasons.extend(
        placement(box_node, d, tree)
            .into_iter()
            .map(|code| reason(code, format!("{at}.node"))),
    );
    if raw.address.trim().is_empty() {
        reasons.push(reason("missing_field:address", format!("{at}.address")));
    } else if address_kind(&raw.address).is_none() {
        reasons.push(reason("invalid_field:address", format!("{at}.address")));
    }
    if let Some(snmp) = &raw.snmp {
        reasons.extend(
            snmp.missing_fields()
                .into_iter()
                .map(|f| reason(format!("missing_field:snmp.{f}"), format!("{at}.snmp.{f}"))),
        );
    }

    let stop = configured_at(raw, d, tree, &mut warnings);
    let mut periods = Vec::with_capacity(3);
    for aspect in Aspect::ALL {
        match period(raw, aspect, d, stop, tree, catalog) {
            Ok(p) => periods.push(p),
            Err(code) => reasons.push(reason(code, format!("{at}.{}", aspect.field()))),
        }
    }
    let (contacts, contact_groups) = contacts(raw, d, tree, catalog, &mut warnings);
    dedup(&mut reasons);
    plan.warnings = warnings;
    plan.outcome = match <[Period; 3]>::try_from(periods) {
        Ok(p) if reasons.is_empty() => Ok(Device {
            node: d,
            periods: Periods(p),
            contacts,
            contact_groups,
            snmp: raw.snmp.clone().map(Box::new),
            host_check: None,
            parents: Vec::new(),
        }),
        _ => Err(reasons),
    };
    plan
}

/// R2: the rejection codes of a device at `d` for a box at `box_node` (empty: accepted).
pub fn placement(box_node: NodeIdx, d: NodeIdx, tree: &Tree) -> Vec<&'static str> {
    let mut codes = Vec::new();
    if !tree.is_ancestor_or_self(box_node, d) {
        codes.push("outside_box_subtree");
    }
    if tree.node(box_node).kind == NodeKind::Partner && tree.node(d).mode != Mode::Managed {
        codes.push("resale_company_not_monitored_by_partner_box");
    }
    codes
}

/// R4: the node where the walk for defaults stops, when `configured_at` is usable.
fn configured_at(raw: &document::Device, d: NodeIdx, tree: &Tree, warnings: &mut Vec<String>) -> Option<NodeIdx> {
    let id = raw.configured_at.as_deref()?;
    match tree.get(id) {
        Some(c) if tree.is_ancestor_or_self(c, d) => Some(c),
        _ => {
            warnings.push(format!("configured_at_not_above_device:{id}"));
            None
        }
    }
}

/// R4: a device's period for one aspect, or the rejection code.
fn period(
    raw: &document::Device,
    aspect: Aspect,
    d: NodeIdx,
    stop: Option<NodeIdx>,
    tree: &Tree,
    catalog: &Catalog,
) -> Result<Period, String> {
    if let Some(id) = raw.period(aspect) {
        return visible_time_range(id, d, tree, catalog).map(|time_range| Period {
            time_range: time_range as u32,
            from: Source::Explicit,
        });
    }
    for &n in &tree.node(d).scope {
        if let Some(&time_range) = catalog.defaults.get(&(Some(n), aspect)) {
            return Ok(Period {
                time_range: time_range as u32,
                from: Source::Default(Some(n as u32)),
            });
        }
        if Some(n) == stop {
            break;
        }
    }
    match catalog.defaults.get(&(None, aspect)) {
        Some(&time_range) => Ok(Period {
            time_range: time_range as u32,
            from: Source::Default(None),
        }),
        None => Err(format!("no_default_time_range:{}", aspect.as_str())),
    }
}

/// A time range named on a device or a service: it must exist and be visible at `d` (R3).
pub fn visible_time_range(id: &str, d: NodeIdx, tree: &Tree, catalog: &Catalog) -> Result<usize, String> {
    match catalog.time_range_ids.get(id) {
        None => Err(format!("unknown_time_range:{id}")),
        Some(&tr) if tree.sees(d, catalog.time_ranges[tr].owner) => Ok(tr),
        Some(_) => Err(format!("time_range_not_visible:{id}")),
    }
}

/// R11: visible, enabled contacts and groups; everything else dropped with a warning.
fn contacts(
    raw: &document::Device,
    d: NodeIdx,
    tree: &Tree,
    catalog: &Catalog,
    warnings: &mut Vec<String>,
) -> (Vec<String>, Vec<ContactGroup>) {
    let mut contacts = Vec::new();
    for id in &raw.contacts {
        match catalog.contacts.get(id.as_str()) {
            None => warnings.push(format!("unknown_contact:{id}")),
            Some((_, owner)) if !tree.sees(d, *owner) => warnings.push(format!("contact_not_visible:{id}")),
            Some((c, _)) if !c.enabled => warnings.push(format!("contact_disabled:{id}")),
            Some(_) if contacts.contains(id) => {}
            Some(_) => contacts.push(id.clone()),
        }
    }
    let mut groups: Vec<ContactGroup> = Vec::new();
    for id in &raw.contact_groups {
        match catalog.groups.get(id.as_str()) {
            None => warnings.push(format!("unknown_contact:{id}")),
            Some((_, owner)) if !tree.sees(d, *owner) => warnings.push(format!("contact_not_visible:{id}")),
            Some(_) if groups.iter().any(|g| &g.id == id) => {}
            Some((g, _)) => {
                let mut members = Vec::new();
                for m in &g.members {
                    match catalog.contacts.get(m.as_str()) {
                        Some((c, _)) if c.enabled => members.push(m.clone()),
                        _ => warnings.push(format!("group_member_disabled:{id}:{m}")),
                    }
                }
                groups.push(ContactGroup {
                    id: id.clone(),
                    members,
                });
            }
        }
    }
    (contacts, groups)
}

/// The fields an SNMP block lacks for its version and security level.
/// What a device's address is: an IP address, or a host name resolved at each check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressKind {
    Ip,
    HostName,
}

/// An IP address, or a host name as RFC 1123 writes one (letters, digits and hyphens in labels
/// of at most 63, 253 in all); anything else (a URL, a port, a space) is no address.
pub fn address_kind(address: &str) -> Option<AddressKind> {
    if address.parse::<std::net::IpAddr>().is_ok() {
        return Some(AddressKind::Ip);
    }
    let name = address.strip_suffix('.').unwrap_or(address);
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    // A name of digits and dots only would be a mistyped IPv4 address.
    let numeric = name.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    (name.len() <= 253 && !numeric && name.split('.').all(label_ok)).then_some(AddressKind::HostName)
}

pub fn reason(code: impl Into<String>, path: impl Into<String>) -> Reason {
    Reason {
        code: code.into(),
        path: path.into(),
    }
}

pub fn dedup(reasons: &mut Vec<Reason>) {
    if reasons.len() < 2 {
        return;
    }
    let mut seen = std::collections::HashSet::new();
    reasons.retain(|r| seen.insert(r.code.clone()));
}
