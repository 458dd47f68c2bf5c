//! `--suggest TEMPLATES`: a document fragment from a census — its devices (address, category,
//! an `snmp` block naming the credential that answered) and, for each, a service of each
//! template given — to paste into a standalone document or send to the central server.
//! Secrets are never written: a community is `{community-N}` (the Nth one given) and v3 keys
//! `{v3-auth-key}` / `{v3-priv-key}`, placeholders to replace.

use std::collections::HashSet;

use serde_json::{Value, json};

use super::{Host, Options, Report};

pub fn fragment(report: &Report, options: &Options, templates: &[String], node: &str) -> Value {
    let mut ids = HashSet::new();
    let mut devices = Vec::new();
    let mut services = Vec::new();
    for host in &report.hosts {
        let id = unique(device_id(host), &mut ids);
        let name = host
            .snmp
            .as_ref()
            .and_then(|s| s.sys_name.clone())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| host.address.to_string());
        let mut device = json!({
            "id": id, "node": node, "name": name, "address": host.address.to_string(),
            "category": host.category.as_str(),
        });
        if let Some(snmp) = &host.snmp {
            device["snmp"] = match (snmp.community, &options.v3) {
                (Some(index), _) => json!({ "version": snmp.version, "community": format!("{{community-{index}}}") }),
                (None, Some(v3)) => v3_block(v3),
                (None, None) => Value::Null,
            };
            if options.snmp_port != 161 {
                device["snmp"]["port"] = json!(options.snmp_port);
            }
        }
        for template in templates {
            services.push(json!({ "id": format!("{id}-{template}"), "device": id, "template": template }));
        }
        devices.push(device);
    }
    json!({ "devices": devices, "services": services })
}

fn v3_block(v3: &crate::document::Snmp) -> Value {
    let mut block = json!({ "version": "3", "user": v3.user });
    if let Some(level) = v3.level {
        block["level"] = serde_json::to_value(level).unwrap_or(Value::Null);
    }
    if v3.auth_key.is_some() {
        block["auth_protocol"] = serde_json::to_value(v3.auth_protocol).unwrap_or(Value::Null);
        block["auth_key"] = json!("{v3-auth-key}");
    }
    if v3.priv_key.is_some() {
        block["priv_protocol"] = serde_json::to_value(v3.priv_protocol).unwrap_or(Value::Null);
        block["priv_key"] = json!("{v3-priv-key}");
    }
    block
}

/// The host's name as an id (lower case, `-` for the rest), else its address.
fn device_id(host: &Host) -> String {
    let name = host.snmp.as_ref().and_then(|s| s.sys_name.as_deref()).unwrap_or("");
    let slug = |text: &str| {
        text.to_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect::<String>()
            .trim_matches('-')
            .to_string()
    };
    let from_name = slug(name);
    if from_name.is_empty() {
        format!("host-{}", slug(&host.address.to_string()))
    } else {
        from_name
    }
}

fn unique(id: String, taken: &mut HashSet<String>) -> String {
    let mut candidate = id.clone();
    let mut n = 2;
    while !taken.insert(candidate.clone()) {
        candidate = format!("{id}-{n}");
        n += 1;
    }
    candidate
}
