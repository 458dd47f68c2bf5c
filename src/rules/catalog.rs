//! The shared objects of a document (time ranges, defaults, contacts, groups, templates),
//! checked once and indexed for the per-device and per-service rules.
//!
//! A broken shared object is a document error: it is referenced from many places, so
//! rejecting only the devices that use it would hide the cause.

use std::collections::HashMap;

use super::plan::{Template as PlanTemplate, TimeRange};
use super::timerange::Schedule;
use super::tree::{NodeIdx, Tree};
use crate::document::{self, Aspect, CheckKind, CheckParams, Document};
use crate::problem::Problem;

pub struct Catalog<'d> {
    pub time_ranges: Vec<TimeRange>,
    pub time_range_ids: HashMap<&'d str, usize>,
    /// `(node, aspect)` → time range; node `None` is the product level.
    pub defaults: HashMap<(Option<NodeIdx>, Aspect), usize>,
    pub contacts: HashMap<&'d str, (&'d document::Contact, Option<NodeIdx>)>,
    pub groups: HashMap<&'d str, (&'d document::ContactGroup, Option<NodeIdx>)>,
    pub templates: Vec<TemplateEntry<'d>>,
    pub template_ids: HashMap<&'d str, usize>,
    /// `(base template, owner)` → usable override.
    pub overrides: HashMap<(usize, NodeIdx), usize>,
    pub warnings: Vec<String>,
}

pub struct TemplateEntry<'d> {
    pub raw: &'d document::Template,
    pub owner: Option<NodeIdx>,
    /// For an override, the template it overrides.
    pub base: Option<usize>,
    /// The check kind (of the base template, for an override).
    pub kind: Option<CheckKind>,
    /// A base template's own params, parsed once (`None` for an override).
    pub params: Option<CheckParams>,
}

impl<'d> Catalog<'d> {
    pub fn build(doc: &'d Document, tree: &Tree, problems: &mut Vec<Problem>) -> Catalog<'d> {
        let mut c = Catalog {
            time_ranges: Vec::with_capacity(doc.time_ranges.len()),
            time_range_ids: HashMap::new(),
            defaults: HashMap::new(),
            contacts: HashMap::new(),
            groups: HashMap::new(),
            templates: Vec::with_capacity(doc.service_templates.len()),
            template_ids: HashMap::new(),
            overrides: HashMap::new(),
            warnings: Vec::new(),
        };
        c.add_time_ranges(doc, tree, problems);
        c.add_defaults(doc, tree, problems);
        c.add_contacts(doc, tree, problems);
        c.add_templates(doc, tree, problems);
        c
    }

    pub fn template_id_list(&self) -> Vec<PlanTemplate> {
        self.templates
            .iter()
            .map(|t| PlanTemplate {
                id: t.raw.id.clone(),
                owner: t.owner,
            })
            .collect()
    }

    fn add_time_ranges(&mut self, doc: &'d Document, tree: &Tree, problems: &mut Vec<Problem>) {
        for (i, tr) in doc.time_ranges.iter().enumerate() {
            let at = format!("time_ranges[{i}]");
            let owner = owner_of(tr.owner.as_deref(), tree, &at, problems);
            let schedule = Schedule::compile(tr, &at, problems);
            if self.time_range_ids.contains_key(tr.id.as_str()) {
                problems.push(duplicate(&at, "time range", &tr.id));
                continue;
            }
            self.time_range_ids.insert(&tr.id, self.time_ranges.len());
            self.time_ranges.push(TimeRange {
                id: tr.id.clone(),
                name: tr.name.clone(),
                owner: owner.flatten(),
                schedule: std::sync::Arc::new(schedule.unwrap_or_default()),
            });
        }
    }

    /// R4: at most one default per node and aspect, naming a time range visible at its node.
    fn add_defaults(&mut self, doc: &'d Document, tree: &Tree, problems: &mut Vec<Problem>) {
        for (i, d) in doc.defaults.iter().enumerate() {
            let at = format!("defaults[{i}]");
            let node = match &d.node {
                None => None,
                Some(id) => match tree.get(id) {
                    Some(n) => Some(n),
                    None => {
                        problems.push(Problem::new(
                            "unknown_node",
                            format!("{at}.node"),
                            format!("unknown node {id:?}"),
                        ));
                        continue;
                    }
                },
            };
            let Some(&tr) = self.time_range_ids.get(d.time_range.as_str()) else {
                problems.push(Problem::new(
                    "unknown_time_range",
                    format!("{at}.time_range"),
                    format!("unknown time range {:?}", d.time_range),
                ));
                continue;
            };
            let owner = self.time_ranges[tr].owner;
            let visible = match node {
                None => owner.is_none(),
                Some(n) => tree.sees(n, owner),
            };
            if !visible {
                let level = node.map_or("the product level".to_string(), |n| format!("node {:?}", tree.id(n)));
                let owned = owner.map_or("the product".to_string(), |o| format!("{:?}", tree.id(o)));
                problems.push(Problem::new(
                    "default_not_visible",
                    format!("{at}.time_range"),
                    format!(
                        "time range {:?} (owned by {owned}) is not visible at {level}",
                        d.time_range
                    ),
                ));
                continue;
            }
            if self.defaults.insert((node, d.aspect), tr).is_some() {
                let level = d
                    .node
                    .as_deref()
                    .map_or("the product level".to_string(), |n| format!("node {n:?}"));
                problems.push(Problem::new(
                    "duplicate_default",
                    at,
                    format!("{level} has more than one {} default", d.aspect.as_str()),
                ));
            }
        }
    }

    fn add_contacts(&mut self, doc: &'d Document, tree: &Tree, problems: &mut Vec<Problem>) {
        for (i, ct) in doc.contacts.iter().enumerate() {
            let at = format!("contacts[{i}]");
            let owner = owner_of(ct.owner.as_deref(), tree, &at, problems).flatten();
            if self.contacts.insert(&ct.id, (ct, owner)).is_some() {
                problems.push(duplicate(&at, "contact", &ct.id));
            }
        }
        for (i, g) in doc.contact_groups.iter().enumerate() {
            let at = format!("contact_groups[{i}]");
            let owner = owner_of(g.owner.as_deref(), tree, &at, problems).flatten();
            for (j, m) in g.members.iter().enumerate() {
                if !self.contacts.contains_key(m.as_str()) {
                    problems.push(Problem::new(
                        "unknown_contact",
                        format!("{at}.members[{j}]"),
                        format!("unknown contact {m:?}"),
                    ));
                }
            }
            if self.groups.insert(&g.id, (g, owner)).is_some() {
                problems.push(duplicate(&at, "contact group", &g.id));
            }
        }
    }

    fn add_templates(&mut self, doc: &'d Document, tree: &Tree, problems: &mut Vec<Problem>) {
        for (i, t) in doc.service_templates.iter().enumerate() {
            let at = format!("service_templates[{i}]");
            if self.template_ids.contains_key(t.id.as_str()) {
                problems.push(duplicate(&at, "template", &t.id));
                continue;
            }
            let owner = owner_of(t.owner.as_deref(), tree, &at, problems).flatten();
            for (field, value) in [
                ("control_period", &t.control_period),
                ("availability_period", &t.availability_period),
            ] {
                if let Some(id) = value {
                    self.check_time_range_exists(id, &format!("{at}.{field}"), problems);
                }
            }
            check_numbers(
                &at,
                t.availability_rate,
                [
                    ("interval_s", t.interval_s),
                    ("retry_interval_s", t.retry_interval_s),
                    ("max_attempts", t.max_attempts),
                    ("timeout_s", t.timeout_s),
                ],
                problems,
            );
            if t.overrides.is_none() {
                let kind = t.kind;
                if kind.is_none() {
                    problems.push(Problem::new("invalid_field", at.clone(), "missing field `kind`"));
                }
                let params = kind.and_then(|k| parse_params(k, t.params.as_ref(), &at, problems));
                self.template_ids.insert(&t.id, self.templates.len());
                self.templates.push(TemplateEntry {
                    raw: t,
                    owner,
                    base: None,
                    kind,
                    params,
                });
            }
        }
        // Overrides after every base template, so that order in the document does not matter.
        for (i, t) in doc.service_templates.iter().enumerate() {
            let Some(target) = &t.overrides else { continue };
            if self.template_ids.contains_key(t.id.as_str()) {
                continue; // reported above
            }
            let at = format!("service_templates[{i}]");
            let owner = owner_of(t.owner.as_deref(), tree, &at, problems).flatten();
            let Some(&base) = self.template_ids.get(target.as_str()) else {
                let what = if doc.service_templates.iter().any(|o| &o.id == target) {
                    format!("{target:?} is itself an override; an override names a base template")
                } else {
                    format!("unknown template {target:?}")
                };
                problems.push(Problem::new("unknown_template", format!("{at}.overrides"), what));
                continue;
            };
            let Some(owner) = owner else {
                problems.push(Problem::new(
                    "invalid_value",
                    format!("{at}.owner"),
                    "an override belongs to a node; it cannot be a product object",
                ));
                continue;
            };
            let idx = self.templates.len();
            self.template_ids.insert(&t.id, idx);
            self.templates.push(TemplateEntry {
                raw: t,
                owner: Some(owner),
                base: Some(base),
                kind: self.templates[base].kind,
                params: None,
            });
            let not_allowed = not_overridable_fields(t);
            if !not_allowed.is_empty() {
                // R5: the override is set aside, the base template stays usable.
                for field in not_allowed {
                    self.warnings
                        .push(format!("override_field_not_allowed:{}:{field}", t.id));
                }
                continue;
            }
            if self.overrides.insert((base, owner), idx).is_some() {
                problems.push(Problem::new(
                    "duplicate_override",
                    at,
                    format!("node {:?} overrides template {target:?} more than once", tree.id(owner)),
                ));
            }
        }
    }

    fn check_time_range_exists(&self, id: &str, at: &str, problems: &mut Vec<Problem>) {
        if !self.time_range_ids.contains_key(id) {
            problems.push(Problem::new(
                "unknown_time_range",
                at,
                format!("unknown time range {id:?}"),
            ));
        }
    }
}

fn not_overridable_fields(t: &document::Template) -> Vec<&'static str> {
    [
        ("kind", t.kind.is_some()),
        ("retry_interval_s", t.retry_interval_s.is_some()),
        ("max_attempts", t.max_attempts.is_some()),
        ("timeout_s", t.timeout_s.is_some()),
        ("flap_detection", t.flap_detection.is_some()),
        ("flap_high_pct", t.flap_high_pct.is_some()),
        ("flap_low_pct", t.flap_low_pct.is_some()),
        ("renotify_s", t.renotify_s.is_some()),
        ("params", t.params.is_some()),
    ]
    .into_iter()
    .filter_map(|(field, set)| set.then_some(field))
    .collect()
}

/// Parses `params` for a check kind, reporting bad keys with their path.
pub fn parse_params(
    kind: CheckKind,
    params: Option<&serde_json::Map<String, serde_json::Value>>,
    at: &str,
    problems: &mut Vec<Problem>,
) -> Option<CheckParams> {
    let empty = serde_json::Map::new();
    match kind.parse_params(params.unwrap_or(&empty)) {
        Ok(p) => Some(p),
        Err((inner, message)) => {
            let path = if inner.is_empty() {
                format!("{at}.params")
            } else {
                format!("{at}.params.{inner}")
            };
            problems.push(Problem::new(
                "invalid_field",
                path,
                format!("{message} (check kind {})", kind.as_str()),
            ));
            None
        }
    }
}

/// Values every template and service must keep sane when it sets them.
pub fn check_numbers(
    at: &str,
    availability_rate: Option<f64>,
    counts: [(&str, Option<u32>); 4],
    problems: &mut Vec<Problem>,
) {
    if let Some(rate) = availability_rate
        && !(0.0..=100.0).contains(&rate)
    {
        problems.push(Problem::new(
            "invalid_value",
            format!("{at}.availability_rate"),
            format!("{rate} is not a percentage from 0 to 100"),
        ));
    }
    for (field, value) in counts {
        let Some(value) = value else { continue };
        let most = largest(field);
        if !(1..=most).contains(&value) {
            problems.push(Problem::new(
                "invalid_value",
                format!("{at}.{field}"),
                format!("{value} is out of range: from 1 to {most}"),
            ));
        }
    }
}

/// The largest value a counted setting may take: a day between checks, an hour for one.
fn largest(field: &str) -> u32 {
    match field {
        "interval_s" | "retry_interval_s" => 86_400,
        "timeout_s" => 3_600,
        "max_attempts" => 100,
        _ => u32::MAX,
    }
}

/// `Some(None)` for a product object, `Some(Some(n))` for a known node, `None` when unknown.
fn owner_of(owner: Option<&str>, tree: &Tree, at: &str, problems: &mut Vec<Problem>) -> Option<Option<NodeIdx>> {
    match owner {
        None => Some(None),
        Some(id) => match tree.get(id) {
            Some(n) => Some(Some(n)),
            None => {
                problems.push(Problem::new(
                    "unknown_owner",
                    format!("{at}.owner"),
                    format!("unknown node {id:?}"),
                ));
                None
            }
        },
    }
}

fn duplicate(at: &str, what: &str, id: &str) -> Problem {
    Problem::new(
        "duplicate_id",
        format!("{at}.id"),
        format!("{what} id {id:?} is used more than once"),
    )
}
