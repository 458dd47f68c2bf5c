//! Reading a document: JSON or TOML text → [`Document`], with every shape error collected.
//!
//! serde stops at the first error, so each element of each top-level list is deserialized on
//! its own: a document with three bad devices reports three errors, each with the path of the
//! offending value (`devices[3].snmp.port: invalid type: …`).

use std::collections::HashMap;

use serde::de::DeserializeOwned;
use serde_json::error::Category;
use serde_json::value::RawValue;

use super::Document;
use crate::input::{self, Format, typed_str};
use crate::problem::{Problem, Problems};

pub fn parse_str(text: &str, format: Format) -> Result<Document, Problems> {
    let partial = parse_partial(text, format)?;
    match partial.document {
        Some(doc) if partial.problems.is_empty() => Ok(doc),
        _ => Err(Problems(partial.problems)),
    }
}

const SECTIONS: [&str; 11] = [
    "version",
    "box",
    "tree",
    "time_ranges",
    "defaults",
    "contacts",
    "contact_groups",
    "service_templates",
    "devices",
    "services",
    "maintenances",
];
const REQUIRED: [&str; 3] = ["version", "box", "tree"];

/// What could be read of a document: the elements that fit, and a problem for each that did not.
pub struct Partial {
    /// `None` when `version` or `box` is missing or malformed.
    pub document: Option<Document>,
    pub problems: Vec<Problem>,
    /// Whether every node of the tree was read (the rules can then judge the rest).
    pub tree_complete: bool,
}

/// Parses a document, keeping every element that fits. `Err` only for a text that is not
/// JSON (or TOML) at all.
///
/// Elements are read from borrowed slices of the text (`RawValue`), so no tree of JSON values
/// is built for a document of 200,000 services.
pub fn parse_partial(text: &str, format: Format) -> Result<Partial, Problems> {
    let json = input::as_json_text(text, format)?;
    let mut top: HashMap<String, &RawValue> = match serde_json::from_str(&json) {
        Ok(top) => top,
        Err(e) if e.classify() == Category::Data => {
            return Ok(Partial {
                document: None,
                problems: vec![Problem::new(
                    "invalid_field",
                    "",
                    "a monitoring document must be an object",
                )],
                tree_complete: false,
            });
        }
        Err(e) => return Err(input::json_syntax(&e)),
    };
    let mut p = Vec::new();
    let mut keys: Vec<&String> = top.keys().collect();
    keys.sort();
    for key in keys {
        if !SECTIONS.contains(&key.as_str()) {
            p.push(Problem::new(
                "invalid_field",
                key.clone(),
                format!("unknown field, expected one of {}", SECTIONS.join(", ")),
            ));
        }
    }
    for key in REQUIRED {
        if !top.contains_key(key) {
            p.push(Problem::new("invalid_field", key, "missing field"));
        }
    }
    let version = top.remove("version").and_then(|v| {
        let version = serde_json::from_str::<String>(v.get()).ok();
        if version.is_none() {
            p.push(Problem::new("invalid_field", "version", "expected a string"));
        }
        version
    });
    // Positions are the file's own for JSON; TOML was converted, so only paths are given.
    let file = (format == Format::Json).then_some(json.as_ref());
    let box_ = top
        .remove("box")
        .and_then(|b| keep(typed_str(b.get(), "box", file), &mut p));
    let before_tree = p.len();
    let tree = list(&mut top, "tree", file, &mut p);
    let tree_complete = p.len() == before_tree;
    let time_ranges = list(&mut top, "time_ranges", file, &mut p);
    let defaults = list(&mut top, "defaults", file, &mut p);
    let contacts = list(&mut top, "contacts", file, &mut p);
    let contact_groups = list(&mut top, "contact_groups", file, &mut p);
    let service_templates = list(&mut top, "service_templates", file, &mut p);
    let devices = list(&mut top, "devices", file, &mut p);
    let services = list(&mut top, "services", file, &mut p);
    let (maintenances, set_aside) = maintenances(&mut top, file);
    let document = match (version, box_) {
        (Some(version), Some(box_)) => Some(Document {
            version,
            box_,
            tree,
            time_ranges,
            defaults,
            contacts,
            contact_groups,
            service_templates,
            devices,
            services,
            maintenances,
            set_aside,
        }),
        _ => None,
    };
    Ok(Partial {
        document,
        problems: p,
        tree_complete,
    })
}

/// R13: a maintenance never rejects the document, so one that does not fit is a warning
/// (`maintenance_invalid:<id or path>: <why>`), not a problem.
fn maintenances(top: &mut HashMap<String, &RawValue>, file: Option<&str>) -> (Vec<super::Maintenance>, Vec<String>) {
    let mut problems = Vec::new();
    let read: Vec<super::Maintenance> = list(top, "maintenances", file, &mut problems);
    let warnings = problems
        .into_iter()
        .map(|p| format!("maintenance_invalid:{}: {}", p.path, p.message))
        .collect();
    (read, warnings)
}

fn keep<T>(result: Result<T, Problem>, problems: &mut Vec<Problem>) -> Option<T> {
    result.map_err(|p| problems.push(p)).ok()
}

/// One top-level list, each element deserialized on its own so that every bad one is reported.
fn list<T: DeserializeOwned>(
    top: &mut HashMap<String, &RawValue>,
    key: &str,
    file: Option<&str>,
    problems: &mut Vec<Problem>,
) -> Vec<T> {
    let Some(raw) = top.remove(key) else {
        return Vec::new();
    };
    match serde_json::from_str::<Option<Vec<&RawValue>>>(raw.get()) {
        Ok(None) => Vec::new(),
        Ok(Some(items)) => {
            // Sized up front: growing a list of 20,000 services doubles it into a peak.
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                out.extend(keep(typed_str(item.get(), &format!("{key}[{i}]"), file), problems));
            }
            out
        }
        Err(_) => {
            problems.push(Problem::new("invalid_field", key, "expected a list"));
            Vec::new()
        }
    }
}
