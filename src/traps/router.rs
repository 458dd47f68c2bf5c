//! Which services a notification is for: the sender is the device whose address is the
//! datagram's source (or a v1 trap's agent address), and each of its `snmp_trap` services
//! says which notifications set it and which clear it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use super::decode::Trap;
use crate::document::params::{SnmpTrapParams, TrapStatus, VarbindMatch};
use crate::document::{CheckParams, Snmp};
use crate::probe::{CheckResult, Status};
use crate::rules::Plan;

/// The trap services of one plan, by sender address.
pub struct Router {
    plan: Arc<Plan>,
    /// Device indices by address (several devices may share one).
    by_address: HashMap<IpAddr, Vec<usize>>,
    /// Trap service indices by device index.
    services: HashMap<usize, Vec<usize>>,
}

impl Router {
    pub fn new(plan: Arc<Plan>) -> Router {
        let mut services: HashMap<usize, Vec<usize>> = HashMap::new();
        for (i, service) in plan.services.iter().enumerate() {
            if let (Ok(s), Some(device)) = (&service.outcome, service.device)
                && matches!(s.params, CheckParams::SnmpTrap(_))
            {
                services.entry(device).or_default().push(i);
            }
        }
        let mut by_address: HashMap<IpAddr, Vec<usize>> = HashMap::new();
        for device in services.keys() {
            if let Ok(ip) = plan.devices[*device].address.trim_matches(['[', ']']).parse::<IpAddr>() {
                by_address.entry(ip.to_canonical()).or_default().push(*device);
            }
        }
        Router {
            plan,
            by_address,
            services,
        }
    }

    /// Whether the plan has any trap service (the listener runs only then).
    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }

    /// The devices a datagram from `source` (or, v1, from `agent`) may come from.
    pub fn senders(&self, source: IpAddr, agent: Option<IpAddr>) -> &[usize] {
        let found = self.by_address.get(&source.to_canonical());
        match (found, agent) {
            (Some(devices), _) => devices,
            (None, Some(agent)) => self.by_address.get(&agent.to_canonical()).map_or(&[], Vec::as_slice),
            (None, None) => &[],
        }
    }

    pub fn device_id(&self, device: usize) -> &str {
        &self.plan.devices[device].id
    }

    /// The device's credentials, if it has an `snmp` block.
    pub fn snmp(&self, device: usize) -> Option<&Snmp> {
        self.plan.devices[device].outcome.as_ref().ok()?.snmp.as_deref()
    }

    /// What `trap` does to each of the device's trap services: (service id, result).
    pub fn results(&self, device: usize, trap: &Trap, from: IpAddr) -> Vec<(Arc<str>, CheckResult)> {
        let Some(services) = self.services.get(&device) else {
            return Vec::new();
        };
        let mut results = Vec::new();
        for &i in services {
            let Ok(service) = &self.plan.services[i].outcome else {
                continue;
            };
            let CheckParams::SnmpTrap(p) = &service.params else {
                continue;
            };
            if let Some(result) = effect(p, trap, from) {
                results.push((Arc::from(self.plan.services[i].id.as_str()), result));
            }
        }
        results
    }
}

/// The result a trap gives a service with these params, if it concerns it.
fn effect(p: &SnmpTrapParams, trap: &Trap, from: IpAddr) -> Option<CheckResult> {
    if !p.varbind.as_ref().is_none_or(|v| carries(trap, v)) {
        return None;
    }
    let text = describe(trap, from);
    if p.clear_trap_oid.as_ref().is_some_and(|c| trap.trap_oid.starts_with(c)) {
        return Some(CheckResult::new(Status::Ok, format!("cleared by {text}")));
    }
    if p.trap_oid.as_ref().is_some_and(|t| trap.trap_oid.starts_with(t)) {
        let status = match p.status {
            TrapStatus::Warning => Status::Warning,
            TrapStatus::Critical => Status::Critical,
        };
        return Some(CheckResult::new(status, text));
    }
    None
}

/// Whether a variable binding under `v.oid` has a value `v.regex` matches.
fn carries(trap: &Trap, v: &VarbindMatch) -> bool {
    trap.varbinds
        .iter()
        .any(|(oid, value)| oid.starts_with(&v.oid) && v.regex.is_match(value))
}

/// `trap 1.3.6.1.6.3.1.1.5.3 (v2c) from 127.0.0.1: 1.3.6.1.2.1.2.2.1.1.2=2, …`
pub fn describe(trap: &Trap, from: IpAddr) -> String {
    const SHOWN: usize = 4;
    let mut text = format!("trap {} ({}) from {from}", trap.trap_oid, trap.version.as_str());
    for (i, (oid, value)) in trap.varbinds.iter().take(SHOWN).enumerate() {
        text.push_str(if i == 0 { ": " } else { ", " });
        let value: String = value.chars().take(64).collect();
        text.push_str(&format!("{oid}={value}"));
    }
    if trap.varbinds.len() > SHOWN {
        text.push_str(&format!(" and {} more", trap.varbinds.len() - SHOWN));
    }
    text
}
