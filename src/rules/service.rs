//! Per service: the effective template (R5), the effective settings with their provenance
//! (R6), and which service is its device's host check (R9).

use std::collections::HashMap;

use super::catalog::{Catalog, TemplateEntry};
use super::device::{dedup, reason, visible_time_range};
use super::plan::{Device, DevicePlan, Flap, Period, Periods, Reason, Service, ServicePlan, Source, Sourced};
use super::tree::Tree;
use crate::document::params::merge;
use crate::document::{self, Aspect, CheckKind, CheckParams};

/// Rule defaults of R6 for fields a template may omit.
const DEFAULT_MAX_ATTEMPTS: u32 = 3;
const DEFAULT_TIMEOUT_S: u32 = 10;
const MIN_RETRY_INTERVAL_S: u32 = 10;
/// R15's thresholds when the document gives none (Nagios and Icinga use the same pair).
const DEFAULT_FLAP_HIGH_PCT: f64 = 30.0;
const DEFAULT_FLAP_LOW_PCT: f64 = 25.0;

/// R9: for each accepted device, its host check: the ICMP service flagged `host_check`, else
/// its first ICMP service. Only services whose template the device can see are candidates.
pub fn host_checks(
    services: &[document::Service],
    devices: &[DevicePlan],
    device_ids: &HashMap<&str, usize>,
    tree: &Tree,
    catalog: &Catalog,
    warnings: &mut Vec<String>,
) -> HashMap<usize, usize> {
    let mut flagged: HashMap<usize, usize> = HashMap::new();
    let mut first: HashMap<usize, usize> = HashMap::new();
    for (i, s) in services.iter().enumerate() {
        let entry = catalog
            .template_ids
            .get(s.template.as_str())
            .map(|&t| &catalog.templates[t]);
        let is_icmp = entry.is_some_and(|e| e.kind == Some(CheckKind::Icmp));
        if s.host_check && entry.is_some() && !is_icmp {
            warnings.push(format!("host_check_not_icmp:{}", s.id));
        }
        let Some(&d) = device_ids.get(s.device.as_str()) else {
            continue;
        };
        let Ok(device) = &devices[d].outcome else { continue };
        if !is_icmp || !entry.is_some_and(|e| tree.sees(device.node, e.owner)) {
            continue;
        }
        first.entry(d).or_insert(i);
        if s.host_check {
            match flagged.entry(d) {
                std::collections::hash_map::Entry::Occupied(_) => {
                    warnings.push(format!("host_check_duplicate:{}", s.id));
                }
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(i);
                }
            }
        }
    }
    for (d, s) in flagged {
        first.insert(d, s);
    }
    first
}

pub fn resolve(
    index: usize,
    raw: &document::Service,
    device: Option<(usize, &DevicePlan)>,
    is_host_check: bool,
    tree: &Tree,
    catalog: &Catalog,
) -> ServicePlan {
    let mut plan = ServicePlan {
        id: raw.id.clone(),
        name: raw.name.clone(),
        device_id: raw.device.clone(),
        device: device.map(|(i, _)| i),
        index,
        outcome: Err(Vec::new()),
    };
    let at = Path(index);
    plan.outcome = match device {
        None => Err(vec![reason(format!("unknown_device:{}", raw.device), at.of("device"))]),
        Some((_, DevicePlan { outcome: Err(_), .. })) => Err(vec![reason("device_rejected", at.of("device"))]),
        Some((_, DevicePlan { outcome: Ok(dev), .. })) => Resolver {
            raw,
            dev,
            tree,
            catalog,
            at,
        }
        .resolve(is_host_check),
    };
    plan
}

/// The path of a service's field, built only when a reason needs it.
#[derive(Clone, Copy)]
struct Path(usize);

impl Path {
    fn of(self, field: &str) -> String {
        format!("services[{}].{field}", self.0)
    }
}

struct Resolver<'a> {
    raw: &'a document::Service,
    dev: &'a Device,
    tree: &'a Tree,
    catalog: &'a Catalog<'a>,
    at: Path,
}

impl Resolver<'_> {
    fn resolve(&self, is_host_check: bool) -> Result<Service, Vec<Reason>> {
        let (raw, catalog) = (self.raw, self.catalog);
        let Some(&named) = catalog.template_ids.get(raw.template.as_str()) else {
            return Err(vec![reason(
                format!("unknown_template:{}", raw.template),
                self.at.of("template"),
            )]);
        };
        if !self.tree.sees(self.dev.node, catalog.templates[named].owner) {
            return Err(vec![reason(
                format!("template_not_visible:{}", raw.template),
                self.at.of("template"),
            )]);
        }
        let base = catalog.templates[named].base.unwrap_or(named);
        let chain = self.effective_template(base);
        let mut reasons = Vec::new();

        let criticality = self.field(&chain, |t| t.criticality, raw.criticality, "criticality", &mut reasons);
        let availability_rate = self.field(
            &chain,
            |t| t.availability_rate,
            raw.availability_rate,
            "availability_rate",
            &mut reasons,
        );
        let interval_s = self.field(&chain, |t| t.interval_s, raw.interval_s, "interval_s", &mut reasons);
        let base_only = [base];
        let retry_interval_s = pick(catalog, &base_only, |t| t.retry_interval_s, raw.retry_interval_s).or_else(|| {
            interval_s.map(|i| Sourced {
                value: (i.value / 3).max(MIN_RETRY_INTERVAL_S),
                from: i.from,
            })
        });
        let max_attempts = pick(catalog, &base_only, |t| t.max_attempts, raw.max_attempts).unwrap_or(Sourced {
            value: DEFAULT_MAX_ATTEMPTS,
            from: Source::Template(base as u32),
        });
        let timeout_s = pick(catalog, &base_only, |t| t.timeout_s, raw.timeout_s).unwrap_or(Sourced {
            value: DEFAULT_TIMEOUT_S,
            from: Source::Template(base as u32),
        });

        let flap = self.flap(base, &mut reasons);
        let renotify_s = pick(catalog, &base_only, |t| t.renotify_s, raw.renotify_s);

        let mut periods = Vec::with_capacity(3);
        for aspect in Aspect::ALL {
            match self.period(aspect, &chain, is_host_check) {
                Ok(p) => periods.push(p),
                Err(r) => reasons.push(r),
            }
        }
        let kind = catalog.templates[base].kind;
        let params = kind.and_then(|k| self.params(k, base, &mut reasons));
        dedup(&mut reasons);
        match (
            criticality,
            availability_rate,
            interval_s,
            retry_interval_s,
            <[Period; 3]>::try_from(periods),
            params,
        ) {
            (
                Some(criticality),
                Some(availability_rate),
                Some(interval_s),
                Some(retry_interval_s),
                Ok(periods),
                Some(params),
            ) if reasons.is_empty() => Ok(Service {
                kind: params.kind(),
                host_check: is_host_check,
                criticality,
                availability_rate,
                interval_s,
                retry_interval_s,
                max_attempts,
                timeout_s,
                periods: Periods(periods),
                params,
                flap,
                renotify_s,
            }),
            _ => Err(reasons),
        }
    }

    /// R15's settings, from the service or its base template, when `flap_detection` is set.
    fn flap(&self, base: usize, reasons: &mut Vec<Reason>) -> Option<Box<Flap>> {
        let (catalog, raw, base_only) = (self.catalog, self.raw, [base]);
        let detection = pick(catalog, &base_only, |t| t.flap_detection, raw.flap_detection)?;
        let product = |value| Sourced {
            value,
            from: Source::Default(None),
        };
        let high_pct =
            pick(catalog, &base_only, |t| t.flap_high_pct, raw.flap_high_pct).unwrap_or(product(DEFAULT_FLAP_HIGH_PCT));
        let low_pct =
            pick(catalog, &base_only, |t| t.flap_low_pct, raw.flap_low_pct).unwrap_or(product(DEFAULT_FLAP_LOW_PCT));
        if !(high_pct.value > 0.0 && high_pct.value <= 100.0) {
            reasons.push(reason("invalid_field:flap_high_pct", self.at.of("flap_high_pct")));
        } else if !(low_pct.value >= 0.0 && low_pct.value < high_pct.value) {
            // Below the start threshold, or a service would start and stop at the same result.
            reasons.push(reason("invalid_field:flap_low_pct", self.at.of("flap_low_pct")));
        }
        Some(Box::new(Flap {
            detection,
            high_pct,
            low_pct,
        }))
    }

    /// R5: the overrides of `base` owned in the device's scope, nearest first, then `base`.
    fn effective_template(&self, base: usize) -> Vec<usize> {
        let mut chain: Vec<usize> = self
            .tree
            .node(self.dev.node)
            .scope
            .iter()
            .filter_map(|n| self.catalog.overrides.get(&(base, *n)).copied())
            .collect();
        chain.push(base);
        chain
    }

    /// A required setting: the service's own value, else the nearest template that sets it.
    fn field<T: Copy>(
        &self,
        chain: &[usize],
        get: impl Fn(&document::Template) -> Option<T>,
        explicit: Option<T>,
        name: &str,
        reasons: &mut Vec<Reason>,
    ) -> Option<Sourced<T>> {
        let found = pick(self.catalog, chain, get, explicit);
        if found.is_none() {
            reasons.push(reason(format!("missing_field:{name}"), self.at.of(name)));
        }
        found
    }

    /// R6: a service's period for one aspect.
    fn period(&self, aspect: Aspect, chain: &[usize], is_host_check: bool) -> Result<Period, Reason> {
        let field = aspect.field();
        let here = self.at;
        let explicit = match aspect {
            Aspect::Control => self.raw.control_period.as_deref(),
            Aspect::Availability => self.raw.availability_period.as_deref(),
            Aspect::Notification => self.raw.notification_period.as_deref(),
        };
        if let Some(id) = explicit {
            return self.visible(id, field, Source::Explicit);
        }
        let device_period = self.dev.periods.get(aspect);
        if aspect == Aspect::Notification || is_host_check {
            return Ok(Period {
                time_range: device_period.time_range,
                from: device_period.from.via_device(),
            });
        }
        let from_template = chain.iter().find_map(|&t| {
            let raw = self.catalog.templates[t].raw;
            let id = match aspect {
                Aspect::Control => raw.control_period.as_deref(),
                _ => raw.availability_period.as_deref(),
            };
            id.map(|id| (t, id))
        });
        match from_template {
            Some((t, id)) => self.visible(id, field, Source::Template(t as u32)),
            None => Err(reason(format!("missing_field:{field}"), here.of(field))),
        }
    }

    fn visible(&self, id: &str, field: &str, from: Source) -> Result<Period, Reason> {
        visible_time_range(id, self.dev.node, self.tree, self.catalog)
            .map(|time_range| Period {
                time_range: time_range as u32,
                from,
            })
            .map_err(|code| reason(code, self.at.of(field)))
    }

    /// The template's params refined by the service's, with what each kind cannot do without.
    fn params(&self, kind: CheckKind, base: usize, reasons: &mut Vec<Reason>) -> Option<CheckParams> {
        let template: &TemplateEntry = &self.catalog.templates[base];
        let params = match (&self.raw.params, &template.params) {
            // Most services refine nothing: the template's params, parsed once.
            (None, Some(parsed)) => parsed.clone(),
            _ => match kind.parse_params(&merge(template.raw.params.as_ref(), self.raw.params.as_ref())) {
                Ok(p) => p,
                Err((inner, _)) => {
                    reasons.push(reason(format!("invalid_field:params.{inner}"), self.at.of("params")));
                    return None;
                }
            },
        };
        if let Some(field) = params.missing_field() {
            let path = format!("params.{field}");
            reasons.push(reason(format!("missing_field:{path}"), self.at.of(&path)));
        }
        if matches!(params, CheckParams::Snmp(_)) && self.dev.snmp.is_none() {
            reasons.push(reason("missing_field:snmp", self.at.of("device")));
        }
        Some(params)
    }
}

/// The explicit value, else the first template in `chain` that sets the field.
fn pick<T: Copy>(
    catalog: &Catalog,
    chain: &[usize],
    get: impl Fn(&document::Template) -> Option<T>,
    explicit: Option<T>,
) -> Option<Sourced<T>> {
    if let Some(value) = explicit {
        return Some(Sourced {
            value,
            from: Source::Explicit,
        });
    }
    chain.iter().find_map(|&t| {
        get(catalog.templates[t].raw).map(|value| Sourced {
            value,
            from: Source::Template(t as u32),
        })
    })
}
