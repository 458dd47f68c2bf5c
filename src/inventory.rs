//! R18: what the box polled, counted per top company and local day (billing inventory).
//!
//! The scheduler marks each service the first time it is checked on its company's local day
//! ([`Polled`], written in the commit of the result that shows it); the counts are made from
//! those marks in the store, so a restart or an outage changes nothing and a day counted
//! twice gives the same counts. [`run`] sends one `inventory` record per company for each day
//! that ended (after its local midnight and [`GRACE`]), once: the store remembers which went.
//! `/inventory` counts today's marks so far.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::document::{Category, CheckKind};
use crate::record::{Body, Origin, Record};
use crate::rules::Plan;
use crate::schedule::Clock;
use crate::store::{Control, Store, StoreError};

/// How long after a local midnight the day's record waits: results of checks that began
/// before midnight (and their marks) reach the store first.
pub const GRACE: Duration = Duration::from_secs(120);
/// The sender looks again at least this often (a new company, a zone's change, a clock step).
const LOOK_EVERY: Duration = Duration::from_secs(3600);

/// One service checked on one local day of its top company.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Polled {
    pub company: String,
    pub day: Date,
    /// The company's zone (its IANA name), in which `day` is read.
    pub zone: String,
    /// The device's node: a site, or the company itself for a device placed on it.
    pub site: String,
    pub device: String,
    pub category: Category,
    pub service: String,
    pub kind: CheckKind,
}

/// Devices per category and services per kind: each count its own metric, never a sum.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub devices_by_category: BTreeMap<Category, u64>,
    pub services_by_kind: BTreeMap<CheckKind, u64>,
}

/// One company's day, as the `inventory` record and `/inventory` carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    pub company: String,
    pub day: Date,
    pub zone: String,
    pub devices_by_category: BTreeMap<Category, u64>,
    pub services_by_kind: BTreeMap<CheckKind, u64>,
    /// Per site (the devices' nodes): the same two maps.
    pub sites: BTreeMap<String, Counts>,
}

impl Inventory {
    /// The counts of a company's day from its marks. A device is counted once, in the site and
    /// category of its first mark in `polled` (the store gives them in a fixed order).
    pub fn count(company: &str, day: Date, zone: &str, polled: &[Polled]) -> Inventory {
        let mut whole = Counts::default();
        let mut sites: BTreeMap<String, Counts> = BTreeMap::new();
        let mut devices: BTreeMap<&str, (&str, Category)> = BTreeMap::new();
        for mark in polled {
            *whole.services_by_kind.entry(mark.kind).or_default() += 1;
            let site = sites.entry(mark.site.clone()).or_default();
            *site.services_by_kind.entry(mark.kind).or_default() += 1;
            devices.entry(&mark.device).or_insert((&mark.site, mark.category));
        }
        for (site, category) in devices.into_values() {
            *whole.devices_by_category.entry(category).or_default() += 1;
            if let Some(s) = sites.get_mut(site) {
                *s.devices_by_category.entry(category).or_default() += 1;
            }
        }
        Inventory {
            company: company.to_string(),
            day,
            zone: zone.to_string(),
            devices_by_category: whole.devices_by_category,
            services_by_kind: whole.services_by_kind,
            sites,
        }
    }
}

/// A zone as records name it: its IANA name, else `UTC` for UTC, else its offset now.
pub fn zone_name(zone: &TimeZone) -> String {
    match zone.iana_name() {
        Some(name) => name.to_string(),
        None => zone.to_offset(Timestamp::now()).to_string(),
    }
}

/// The local day of `at` in `zone`.
pub fn day_of(at: Timestamp, zone: &TimeZone) -> Date {
    at.to_zoned(zone.clone()).date()
}

/// When `day` has ended in `zone` (its next local midnight; the first instant of the next
/// day when a DST change skips midnight).
pub fn end_of(day: Date, zone: &TimeZone) -> Option<Timestamp> {
    let next = day.checked_add(1.day()).ok()?;
    next.to_zoned(zone.clone()).ok().map(|z| z.timestamp())
}

/// Sends each company's ended days until `cancel`, reading companies and zones from the plans
/// `plans` brings.
pub async fn run(
    mut plans: watch::Receiver<Arc<Plan>>,
    store: Store,
    clock: Arc<dyn Clock>,
    cancel: CancellationToken,
) {
    loop {
        let plan = plans.borrow_and_update().clone();
        if let Err(e) = send_ended_days(&store, &plan, clock.now()).await {
            tracing::warn!(error = %e, "inventory records could not be made; tried again later");
        }
        let wait = next_look(&plan, clock.now());
        tokio::select! {
            _ = cancel.cancelled() => return,
            changed = plans.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Until the next company's midnight and grace, or [`LOOK_EVERY`] at most.
fn next_look(plan: &Plan, now: Timestamp) -> Duration {
    let tree = &plan.tree;
    tree.companies()
        .filter_map(|c| {
            let zone = &tree.node(c).zone;
            let end = end_of(day_of(now, zone), zone)?;
            Duration::try_from(end.duration_since(now)).ok()
        })
        .map(|until| until + GRACE)
        .min()
        .unwrap_or(LOOK_EVERY)
        .min(LOOK_EVERY)
}

/// One record per company and ended day not sent yet, each committed with its mark of sent.
pub async fn send_ended_days(store: &Store, plan: &Plan, now: Timestamp) -> Result<usize, StoreError> {
    let mut sent = 0;
    for (company, day, zone_text) in store.unsent_inventory_days().await? {
        // The company's zone now, or the one its marks were made in (a company gone from the
        // document still has its last days sent).
        let zone = plan
            .tree
            .get(&company)
            .map(|c| plan.tree.node(c).zone.clone())
            .or_else(|| TimeZone::get(&zone_text).ok())
            .unwrap_or(TimeZone::UTC);
        let due = end_of(day, &zone).and_then(|end| end.checked_add(GRACE).ok());
        if due.is_none_or(|due| now < due) {
            continue;
        }
        let polled = store.polled(company.clone(), day).await?;
        let inventory = Inventory::count(&company, day, &zone_text, &polled);
        let origin = Arc::new(Origin {
            service: Arc::from(""),
            device: Arc::from(""),
            node: Arc::from(company.as_str()),
            company: Some(Arc::from(company.as_str())),
        });
        let record = Record {
            ts: now,
            body: Body::Inventory(inventory),
        };
        store
            .append_committed_with(
                vec![(origin, record)],
                Vec::new(),
                vec![Control::InventorySent { company, day }],
            )
            .await?;
        sent += 1;
    }
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(device: &str, site: &str, category: Category, service: &str, kind: CheckKind) -> Polled {
        Polled {
            company: "c".into(),
            day: jiff::civil::date(2026, 3, 29),
            zone: "Europe/Paris".into(),
            site: site.into(),
            device: device.into(),
            category,
            service: service.into(),
            kind,
        }
    }

    #[test]
    fn r18_devices_are_counted_once_per_category_and_services_per_kind_per_site() {
        let polled = [
            mark("fw", "s1", Category::Firewall, "fw-ping", CheckKind::Icmp),
            mark("fw", "s1", Category::Firewall, "fw-snmp", CheckKind::Snmp),
            mark("srv", "s1", Category::Server, "srv-ping", CheckKind::Icmp),
            mark("srv2", "s2", Category::Server, "srv2-http", CheckKind::Http),
        ];
        let inventory = Inventory::count("c", jiff::civil::date(2026, 3, 29), "Europe/Paris", &polled);
        assert_eq!(inventory.devices_by_category[&Category::Firewall], 1);
        assert_eq!(inventory.devices_by_category[&Category::Server], 2);
        assert_eq!(inventory.services_by_kind[&CheckKind::Icmp], 2);
        assert_eq!(inventory.sites["s1"].devices_by_category.values().sum::<u64>(), 2);
        assert_eq!(inventory.sites["s2"].services_by_kind[&CheckKind::Http], 1);
        let wire = serde_json::to_value(&inventory).expect("json");
        assert_eq!(wire["day"], "2026-03-29");
        assert_eq!(wire["devices_by_category"]["firewall"], 1);
        assert_eq!(wire["sites"]["s1"]["services_by_kind"]["snmp"], 1);
    }

    #[test]
    fn r18_a_day_ends_at_its_local_midnight_dst_days_included() {
        let paris = TimeZone::get("Europe/Paris").expect("zone");
        let martinique = TimeZone::get("America/Martinique").expect("zone");
        let day = jiff::civil::date(2026, 3, 28);
        // Paris springs forward on 2026-03-29: the day before still ends at 23:00 UTC.
        assert_eq!(
            end_of(day, &paris).map(|t| t.to_string()),
            Some("2026-03-28T23:00:00Z".into())
        );
        assert_eq!(
            end_of(day, &martinique).map(|t| t.to_string()),
            Some("2026-03-29T04:00:00Z".into())
        );
        // The DST day itself lasts 23 hours.
        let dst = jiff::civil::date(2026, 3, 29);
        assert_eq!(
            end_of(dst, &paris).map(|t| t.to_string()),
            Some("2026-03-29T22:00:00Z".into())
        );
    }
}
