//! From a file to a plan: read, parse, resolve, with every problem of every stage at once.
//!
//! Shape errors (a wrong type, an unknown field) do not stop the rules from judging the rest
//! of the document, so one `snbox config check` lists everything that is wrong. Only a tree
//! that could not be read stops there: every other rule depends on it.

use std::path::Path;

use jiff::tz::TimeZone;

use crate::document::{self, Document, Format};
use crate::input;
use crate::problem::Problems;
use crate::rules::{self, Plan};

/// A document that could not be resolved: what could be read of it and every problem.
#[derive(Debug)]
pub struct Rejected {
    pub document: Option<Box<Document>>,
    pub problems: Problems,
}

/// Plans the document in `path`, refused past `max_bytes` (`limits.max_document_bytes`).
pub fn plan_from_file(path: &Path, box_zone: &TimeZone, max_bytes: u64) -> Result<Plan, Rejected> {
    let text = input::read(path, max_bytes, "limits.max_document_bytes").map_err(|problems| Rejected {
        document: None,
        problems,
    })?;
    let partial = document::parse_partial(&text, Format::of_path(path)).map_err(|problems| Rejected {
        document: None,
        problems,
    })?;
    // The text is not needed once parsed: 7 MB at 50,000 services, not kept through resolving.
    drop(text);
    plan_from_partial(partial, box_zone)
}

pub fn plan_from_str(text: &str, format: Format, box_zone: &TimeZone) -> Result<Plan, Rejected> {
    let partial = document::parse_partial(text, format).map_err(|problems| Rejected {
        document: None,
        problems,
    })?;
    plan_from_partial(partial, box_zone)
}

fn plan_from_partial(partial: document::Partial, box_zone: &TimeZone) -> Result<Plan, Rejected> {
    let Some(doc) = partial.document else {
        return Err(Rejected {
            document: None,
            problems: Problems(partial.problems),
        });
    };
    let mut problems = partial.problems;
    if problems.is_empty() || partial.tree_complete {
        match rules::resolve(&doc, box_zone) {
            Ok(plan) if problems.is_empty() => return Ok(plan),
            Ok(_) => {}
            Err(more) => problems.extend(more.0),
        }
    }
    Err(Rejected {
        document: Some(Box::new(doc)),
        problems: Problems(problems),
    })
}
