//! Reading a document: JSON or TOML text → [`Document`], with every shape error collected.
//!
//! serde stops at the first error, so each element of each top-level list is deserialized on
//! its own: a document with three bad devices reports three errors, each with the path of the
//! offending value (`devices[3].snmp.port: invalid type: …`).

use std::path::Path;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::Document;
use crate::input::{self, Format, typed};
use crate::problem::{Problem, Problems};

/// Reads and parses a document file, JSON or (for `.toml` files) TOML.
pub fn load_file(path: &Path) -> Result<Document, Problems> {
    let text = input::read(path)?;
    parse_str(&text, Format::of_path(path))
}

pub fn parse_str(text: &str, format: Format) -> Result<Document, Problems> {
    from_value(input::parse(text, format)?)
}

const SECTIONS: [&str; 10] = [
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
];
const REQUIRED: [&str; 3] = ["version", "box", "tree"];

/// A JSON value → a document, reporting every element that does not fit.
pub fn from_value(value: Value) -> Result<Document, Problems> {
    let partial = from_value_partial(value);
    match partial.document {
        Some(doc) if partial.problems.is_empty() => Ok(doc),
        _ => Err(Problems(partial.problems)),
    }
}

/// What could be read of a document: the elements that fit, and a problem for each that did not.
pub struct Partial {
    /// `None` when `version` or `box` is missing or malformed.
    pub document: Option<Document>,
    pub problems: Vec<Problem>,
    /// Whether every node of the tree was read (the rules can then judge the rest).
    pub tree_complete: bool,
}

pub fn from_value_partial(value: Value) -> Partial {
    let Value::Object(mut top) = value else {
        return Partial {
            document: None,
            problems: vec![Problem::new(
                "invalid_field",
                "",
                "a monitoring document must be an object",
            )],
            tree_complete: false,
        };
    };
    let mut problems = Vec::new();
    for key in top.keys() {
        if !SECTIONS.contains(&key.as_str()) {
            problems.push(Problem::new(
                "invalid_field",
                key.clone(),
                format!("unknown field, expected one of {}", SECTIONS.join(", ")),
            ));
        }
    }
    for key in REQUIRED {
        if !top.contains_key(key) {
            problems.push(Problem::new("invalid_field", key, "missing field"));
        }
    }
    let version = match top.remove("version") {
        Some(Value::String(v)) => Some(v),
        Some(_) => {
            problems.push(Problem::new("invalid_field", "version", "expected a string"));
            None
        }
        None => None,
    };
    let box_ = top.remove("box").and_then(|b| keep(typed(b, "box"), &mut problems));
    let mut p = problems;
    let before_tree = p.len();
    let tree = list(&mut top, "tree", &mut p);
    let tree_complete = p.len() == before_tree;
    let time_ranges = list(&mut top, "time_ranges", &mut p);
    let defaults = list(&mut top, "defaults", &mut p);
    let contacts = list(&mut top, "contacts", &mut p);
    let contact_groups = list(&mut top, "contact_groups", &mut p);
    let service_templates = list(&mut top, "service_templates", &mut p);
    let devices = list(&mut top, "devices", &mut p);
    let services = list(&mut top, "services", &mut p);
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
        }),
        _ => None,
    };
    Partial {
        document,
        problems: p,
        tree_complete,
    }
}

fn keep<T>(result: Result<T, Problem>, problems: &mut Vec<Problem>) -> Option<T> {
    result.map_err(|p| problems.push(p)).ok()
}

/// One top-level list, each element deserialized on its own so that every bad one is reported.
fn list<T: DeserializeOwned>(top: &mut Map<String, Value>, key: &str, problems: &mut Vec<Problem>) -> Vec<T> {
    match top.remove(key) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .into_iter()
            .enumerate()
            .filter_map(|(i, item)| keep(typed(item, &format!("{key}[{i}]")), problems))
            .collect(),
        Some(_) => {
            problems.push(Problem::new("invalid_field", key, "expected a list"));
            Vec::new()
        }
    }
}
