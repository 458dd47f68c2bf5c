//! R18 on paused tokio time: two top companies in zones five hours apart (Paris and
//! Martinique) over three local days, one of them Paris's spring DST change; a device polled on
//! the first day only; a restart in the middle of a day. The scheduler and the inventory
//! sender run on a real SQLite store, and the `inventory` records read back from it are
//! compared with the test's own count of the `result` records. Checks are scripted (the probes
//! have their own real-peer tests).

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use snbox::probe::{CheckResult, Status};
use snbox::schedule::{Clock, Job, Metrics, Runner, Scheduler, TokioClock};
use snbox::settings::Limits;
use snbox::store::Store;

struct AlwaysOk;

impl Runner for AlwaysOk {
    fn run<'a>(
        &'a self,
        _job: &'a Job,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = CheckResult> + Send + 'a>> {
        Box::pin(async { CheckResult::new(Status::Ok, "scripted ok").took(Duration::from_millis(3)) })
    }
}

fn ts(s: &str) -> Timestamp {
    s.parse().expect("instant")
}

/// (device, site, category, [(service, kind, control period)])
type DeviceSpec = (
    &'static str,
    &'static str,
    &'static str,
    Vec<(&'static str, &'static str, &'static str)>,
);

fn devices() -> Vec<DeviceSpec> {
    vec![
        (
            "fw",
            "paris-s1",
            "firewall",
            vec![("fw-ping", "icmp", "24x7"), ("fw-snmp", "snmp", "24x7")],
        ),
        ("srv", "paris-s1", "server", vec![("srv-http", "http", "24x7")]),
        // Polled on Friday (Paris) only.
        (
            "printer",
            "paris-s2",
            "printer",
            vec![("printer-ping", "icmp", "fridays")],
        ),
        ("mq-fw", "mq-s1", "firewall", vec![("mq-fw-ping", "icmp", "24x7")]),
        // On the company node itself, no category: `other`.
        ("mq-nas", "mq", "", vec![("mq-nas-tcp", "tcp", "24x7")]),
    ]
}

fn document() -> Value {
    let week = json!(["mon", "tue", "wed", "thu", "fri", "sat", "sun"]);
    let params = |kind: &str| match kind {
        "icmp" => json!({}),
        "snmp" => json!({ "oid": "1.3.6.1.2.1.1.3.0" }),
        "http" => json!({ "url": "http://127.0.0.1:9/" }),
        _ => json!({ "port": 9 }),
    };
    let templates: Vec<Value> = ["icmp", "snmp", "http", "tcp"]
        .map(|kind| {
            json!({ "id": kind, "kind": kind, "criticality": "low", "availability_rate": 99.0,
                    "availability_period": "24x7", "control_period": "24x7", "interval_s": 1800,
                    "params": params(kind) })
        })
        .to_vec();
    let mut doc = json!({
        "version": "inv-1",
        "box": { "id": "bx", "node": "p" },
        "tree": [
            { "id": "p", "kind": "partner", "name": "P", "timezone": "Europe/Paris" },
            { "id": "paris", "kind": "company", "name": "Paris Co", "parent": "p", "timezone": "Europe/Paris" },
            { "id": "paris-s1", "kind": "site", "name": "S1", "parent": "paris" },
            { "id": "paris-s2", "kind": "site", "name": "S2", "parent": "paris" },
            { "id": "mq", "kind": "company", "name": "Martinique Co", "parent": "p", "timezone": "America/Martinique" },
            { "id": "mq-s1", "kind": "site", "name": "Fort-de-France", "parent": "mq" }
        ],
        "time_ranges": [
            { "id": "24x7", "name": "24x7", "weekly": [ { "days": week, "from": "00:00", "to": "24:00" } ] },
            { "id": "fridays", "name": "Fridays", "weekly": [ { "days": ["fri"], "from": "00:00", "to": "24:00" } ] }
        ],
        "defaults": [
            { "aspect": "control", "time_range": "24x7" },
            { "aspect": "availability", "time_range": "24x7" },
            { "aspect": "notification", "time_range": "24x7" }
        ],
        "service_templates": templates,
        "devices": [], "services": []
    });
    for (i, (device, site, category, services)) in devices().into_iter().enumerate() {
        let mut d = json!({ "id": device, "node": site, "name": device, "address": format!("127.0.3.{}", i + 1),
                            "snmp": { "version": "2c", "community": "public" } });
        if !category.is_empty() {
            d["category"] = json!(category);
        }
        common::push(&mut doc, "devices", d);
        for (service, kind, period) in services {
            common::push(
                &mut doc,
                "services",
                json!({ "id": service, "device": device, "template": kind, "control_period": period }),
            );
        }
    }
    doc
}

/// Runs the scheduler and the inventory sender on `dir`'s store from `start` for `hours`.
async fn run(dir: &std::path::Path, start: Timestamp, hours: u64) -> Vec<Value> {
    let plan = Arc::new(common::plan(&document()));
    let opened = Store::open(dir, 64 << 20).expect("store");
    let clock: Arc<dyn Clock> = Arc::new(TokioClock::starting_at(start));
    let (scheduler, _snapshots) = Scheduler::new(
        plan.clone(),
        HashMap::new(),
        Arc::new(AlwaysOk),
        opened.store.clone(),
        clock.clone(),
        &Limits::default(),
        Arc::new(Metrics::default()),
    );
    let (_plans, plans_rx) = tokio::sync::watch::channel(plan.clone());
    let cancel = CancellationToken::new();
    let inventory = tokio::spawn(snbox::inventory::run(
        plans_rx,
        opened.store.clone(),
        clock,
        cancel.clone(),
    ));
    let scheduler = tokio::spawn(scheduler.run(cancel.clone(), Duration::from_secs(5)));
    tokio::time::sleep(Duration::from_secs(hours * 3600)).await;
    cancel.cancel();
    scheduler.await.expect("scheduler ends");
    inventory.await.expect("inventory ends");
    let records = opened.store.pending(0, 1_000_000).await.expect("records");
    drop(opened.store);
    opened.writer.join().expect("writer ends");
    records
}

type Tally = BTreeMap<String, u64>;

/// What one company-day saw: its services, and its devices with their site and category.
#[derive(Default)]
struct Seen {
    services: BTreeSet<String>,
    devices: BTreeSet<(String, String, String)>,
}

/// The counts the test makes itself: per (company, local day), from the result records.
fn independent_counts(records: &[Value]) -> BTreeMap<(String, String), Value> {
    let zone = |company: &str| {
        TimeZone::get(if company == "mq" {
            "America/Martinique"
        } else {
            "Europe/Paris"
        })
        .expect("zone")
    };
    // service → (device, site, category, kind)
    let mut about: HashMap<&str, (&str, &str, &str, &str)> = HashMap::new();
    for (device, site, category, services) in devices() {
        let category = if category.is_empty() { "other" } else { category };
        for (service, kind, _) in services {
            about.insert(service, (device, site, category, kind));
        }
    }
    let mut seen: BTreeMap<(String, String), Seen> = BTreeMap::new();
    for r in records.iter().filter(|r| r["kind"] == "result") {
        let company = r["company"].as_str().expect("company").to_string();
        let service = r["service"].as_str().expect("service");
        let day = ts(r["ts"].as_str().expect("ts"))
            .to_zoned(zone(&company))
            .date()
            .to_string();
        let (device, site, category, _) = about[service];
        let entry = seen.entry((company, day)).or_default();
        entry.services.insert(service.to_string());
        entry
            .devices
            .insert((device.to_string(), site.to_string(), category.to_string()));
    }
    let mut counts = BTreeMap::new();
    for (key, day) in seen {
        let (mut by_kind, mut by_category) = (Tally::new(), Tally::new());
        let mut sites: BTreeMap<String, (Tally, Tally)> = BTreeMap::new();
        for service in &day.services {
            let (_, site, _, kind) = about[service.as_str()];
            *by_kind.entry(kind.into()).or_default() += 1;
            *sites.entry(site.into()).or_default().1.entry(kind.into()).or_default() += 1;
        }
        for (_, site, category) in &day.devices {
            *by_category.entry(category.clone()).or_default() += 1;
            *sites
                .entry(site.clone())
                .or_default()
                .0
                .entry(category.clone())
                .or_default() += 1;
        }
        let sites: BTreeMap<String, Value> = sites
            .into_iter()
            .map(|(s, (c, k))| (s, json!({ "devices_by_category": c, "services_by_kind": k })))
            .collect();
        counts.insert(
            key,
            json!({ "devices_by_category": by_category, "services_by_kind": by_kind, "sites": sites }),
        );
    }
    counts
}

#[tokio::test(start_paused = true)]
async fn r18_one_inventory_record_per_company_and_local_day_equal_to_an_independent_count() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Friday 2026-03-27 21:00 in Paris (16:00 in Martinique); Paris springs forward on Sunday.
    let start = ts("2026-03-27T20:00:00Z");
    // Stopped on Saturday at 13:00 Paris time, restarted at once.
    let first = run(dir.path(), start, 16).await;
    let all = run(dir.path(), ts("2026-03-28T12:00:00Z"), 42).await; // to Monday 06:00Z
    // The second run's outbox holds the first's records too (nothing was acknowledged).
    assert!(all.len() > first.len());
    let inventories: Vec<&Value> = all.iter().filter(|r| r["kind"] == "inventory").collect();
    let keys: Vec<(String, String)> = inventories
        .iter()
        .map(|r| {
            (
                r["company"].as_str().expect("company").into(),
                r["day"].as_str().expect("day").into(),
            )
        })
        .collect();
    // Three ended days each (Monday's has not ended), once each, in the order their days ended.
    assert_eq!(
        keys,
        [
            ("paris", "2026-03-27"),
            ("mq", "2026-03-27"),
            ("paris", "2026-03-28"),
            ("mq", "2026-03-28"),
            ("paris", "2026-03-29"),
            ("mq", "2026-03-29"),
        ]
        .map(|(c, d)| (c.to_string(), d.to_string()))
    );
    // Each sent after its local midnight (+ the grace), Paris's DST day after 22:00Z.
    let sent_at: Vec<String> = inventories
        .iter()
        .map(|r| r["ts"].as_str().expect("ts").to_string())
        .collect();
    assert_eq!(sent_at[0], "2026-03-27T23:02:00.000Z");
    assert_eq!(sent_at[1], "2026-03-28T04:02:00.000Z");
    assert_eq!(sent_at[4], "2026-03-29T22:02:00.000Z");
    assert_eq!(inventories[0]["zone"], "Europe/Paris");
    assert_eq!(inventories[1]["zone"], "America/Martinique");
    let expected = independent_counts(&all);
    for r in &inventories {
        let key = (
            r["company"].as_str().expect("c").to_string(),
            r["day"].as_str().expect("d").to_string(),
        );
        let mine = &expected[&key];
        for field in ["devices_by_category", "services_by_kind", "sites"] {
            assert_eq!(r[field], mine[field], "{key:?} {field}");
        }
    }
    // The printer counts on Friday only.
    assert_eq!(inventories[0]["devices_by_category"]["printer"], 1);
    assert!(inventories[2]["devices_by_category"].get("printer").is_none());
    assert_eq!(inventories[0]["sites"]["paris-s2"]["services_by_kind"]["icmp"], 1);
    // Never a total across categories or kinds.
    for r in &inventories {
        for field in ["devices", "services", "total"] {
            assert!(r.get(field).is_none(), "{r}");
        }
    }
    // Asked again (a restart, a replay): nothing more is sent, and the same day counted again
    // has the same counts.
    let opened = Store::open(dir.path(), 64 << 20).expect("store");
    let plan = common::plan(&document());
    let again = snbox::inventory::send_ended_days(&opened.store, &plan, ts("2026-03-30T06:00:00Z"))
        .await
        .expect("send");
    assert_eq!(again, 0);
    let polled = opened
        .store
        .polled("mq".into(), jiff::civil::date(2026, 3, 28))
        .await
        .expect("marks");
    let recount =
        snbox::inventory::Inventory::count("mq", jiff::civil::date(2026, 3, 28), "America/Martinique", &polled);
    assert_eq!(
        serde_json::to_value(&recount).expect("json")["services_by_kind"],
        inventories[3]["services_by_kind"]
    );
}
