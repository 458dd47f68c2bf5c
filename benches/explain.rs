//! Explain benchmark (issue 2): parse, resolve and report a generated document over a
//! partner → company → subsidiary → site tree, at 10k, 50k and 200k services.
//!
//! `cargo bench --bench explain` writes each size's document to a file and measures it in a
//! fresh child process (so that each peak RSS is its own), one row per size.
//! `-- --write N PATH` only writes a document, to time `snbox config explain` on it.
//! The shape: N/100 companies (half of them subsidiaries, one top company in five in resale
//! mode), 5 sites per company, N/4 devices, 4 services per device (two pings, HTTP, SNMP).

use std::process::Command;
use std::time::Instant;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::{Value, json};

use snbox::explain::Report;
use snbox::input::Format;

const SIZES: [usize; 3] = [10_000, 50_000, 200_000];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `--write N PATH`: only write the generated document, e.g. to time the CLI on it.
    if let Some(i) = args.iter().position(|a| a == "--write") {
        let n = args.get(i + 1).and_then(|s| s.parse().ok()).expect("--write N PATH");
        let path = args.get(i + 2).expect("--write N PATH");
        std::fs::write(path, generate(n).to_string()).expect("write document");
        return;
    }
    if let Some(path) = args.iter().position(|a| a == "--one").and_then(|i| args.get(i + 1)) {
        one(std::path::Path::new(path));
        return;
    }
    let exe = std::env::current_exe().expect("own path");
    println!(
        "explain benchmark — {} cores",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "{:>9} {:>9} {:>8} {:>9} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "services",
        "devices",
        "doc MB",
        "parse ms",
        "resolve ms",
        "report ms",
        "--at ms",
        "total ms",
        "ns/svc",
        "peak MB"
    );
    let dir = std::env::temp_dir().join(format!("snbox-bench-explain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    for n in SIZES {
        let path = dir.join(format!("doc-{n}.json"));
        std::fs::write(&path, generate(n).to_string()).expect("write document");
        let out = Command::new(&exe).arg("--one").arg(&path).output().expect("child runs");
        print!("{}", String::from_utf8_lossy(&out.stdout));
        if !out.status.success() {
            eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        }
        let _ = std::fs::remove_file(&path);
    }
    let _ = std::fs::remove_dir(&dir);
}

/// Measures one document file, read as `snbox config explain` reads it.
fn one(path: &std::path::Path) {
    let start = Instant::now();
    let doc = std::fs::read_to_string(path).expect("read document");
    let read = start.elapsed();
    let mb = doc.len() as f64 / 1e6;

    // The path of `snbox config explain`: text → document → plan → report.
    let start = Instant::now();
    let partial = snbox::document::parse_partial(&doc, Format::Json).expect("JSON");
    assert!(partial.problems.is_empty(), "{:?}", partial.problems.first());
    let document = partial.document.expect("a document");
    let parsed = start.elapsed();

    let start = Instant::now();
    let plan = snbox::rules::resolve(&document, &TimeZone::UTC).expect("valid document");
    let resolved = start.elapsed();
    drop(document);

    // The CLI streams the report to stdout; here it streams into a counter.
    let mut sink = Counter(0);
    let start = Instant::now();
    Report::of_plan(&plan, None).write_json(&mut sink).expect("report");
    let reported = start.elapsed();

    let at: Timestamp = "2026-12-24T16:00:00Z".parse().expect("instant");
    let mut sink_at = Counter(0);
    let start = Instant::now();
    Report::of_plan(&plan, Some(at))
        .write_json(&mut sink_at)
        .expect("report");
    let reported_at = start.elapsed();
    std::hint::black_box((sink.0, sink_at.0));

    let services = plan.services.len();
    let total = read + parsed + resolved + reported;
    let accepted = plan.accepted_services().count();
    assert!(accepted > services / 2, "most services must be accepted ({accepted})");
    println!(
        "{:>9} {:>9} {:>8.1} {:>9.0} {:>10.0} {:>10.0} {:>10.0} {:>10.0} {:>10.0} {:>10.1}",
        services,
        plan.devices.len(),
        mb,
        parsed.as_secs_f64() * 1e3,
        resolved.as_secs_f64() * 1e3,
        reported.as_secs_f64() * 1e3,
        reported_at.as_secs_f64() * 1e3,
        total.as_secs_f64() * 1e3,
        total.as_nanos() as f64 / services as f64,
        peak_rss_mb()
    );
}

struct Counter(usize);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn generate(services: usize) -> Value {
    let companies = (services / 100).max(2);
    let tops = companies / 2;
    let devices = services / 4;
    let weekdays = json!(["mon", "tue", "wed", "thu", "fri"]);
    let mut tree = vec![json!({ "id": "partner", "kind": "partner", "name": "Partner", "timezone": "Europe/Paris" })];
    let mut time_ranges = vec![
        json!({ "id": "24x7", "owner": null, "name": "24x7",
                "weekly": [ { "days": ["mon","tue","wed","thu","fri","sat","sun"], "from": "00:00", "to": "24:00" } ] }),
        json!({ "id": "office", "owner": "partner", "name": "Office", "weekly": [ { "days": weekdays, "from": "08:00", "to": "19:00" } ] }),
    ];
    let mut defaults = vec![
        json!({ "node": null, "aspect": "control", "time_range": "24x7" }),
        json!({ "node": null, "aspect": "availability", "time_range": "24x7" }),
        json!({ "node": null, "aspect": "notification", "time_range": "24x7" }),
        json!({ "node": "partner", "aspect": "notification", "time_range": "office" }),
    ];
    let mut contacts = vec![json!({ "id": "noc", "owner": "partner", "name": "NOC" })];
    let mut groups = Vec::new();
    let mut templates = vec![
        json!({ "id": "ping", "owner": null, "kind": "icmp", "criticality": "high", "availability_rate": 99.5,
                "availability_period": "24x7", "control_period": "24x7", "interval_s": 60, "params": { "packets": 3 } }),
        json!({ "id": "web", "owner": null, "kind": "http", "criticality": "medium", "availability_rate": 99.0,
                "availability_period": "24x7", "control_period": "24x7", "interval_s": 60, "params": { "expect_status": [200] } }),
        json!({ "id": "uptime", "owner": null, "kind": "snmp", "criticality": "low", "availability_rate": 99.0,
                "availability_period": "24x7", "control_period": "24x7", "interval_s": 300, "params": { "oid": "1.3.6.1.2.1.1.3.0" } }),
        json!({ "id": "ping@partner", "owner": "partner", "overrides": "ping", "criticality": "critical" }),
    ];
    let mut sites = Vec::new();
    for c in 0..companies {
        let id = format!("c{c}");
        let (parent, mode) = if c < tops {
            ("partner".to_string(), if c % 5 == 4 { "resale" } else { "managed" })
        } else {
            (format!("c{}", c - tops), "")
        };
        let mut node = json!({ "id": id, "kind": "company", "name": format!("Company {c}"), "parent": parent });
        if !mode.is_empty() {
            node["mode"] = json!(mode);
        }
        tree.push(node);
        if c < tops {
            time_ranges.push(json!({ "id": format!("{id}-hours"), "owner": id, "name": "Hours",
                "weekly": [ { "days": weekdays, "from": "07:30", "to": "18:30" } ],
                "exceptions": [ { "date": "2026-12-25", "closed": true }, { "date": "2026-12-24", "intervals": [ { "from": "08:00", "to": "12:00" } ] } ] }));
            defaults.push(json!({ "node": id, "aspect": "availability", "time_range": format!("{id}-hours") }));
            contacts.push(json!({ "id": format!("{id}-it"), "owner": id, "name": "IT" }));
            contacts.push(json!({ "id": format!("{id}-old"), "owner": id, "name": "Old", "enabled": false }));
            groups.push(json!({ "id": format!("{id}-oncall"), "owner": id, "name": "On call", "members": [format!("{id}-it"), format!("{id}-old")] }));
            if c % 10 == 0 {
                templates
                    .push(json!({ "id": format!("ping@{id}"), "owner": id, "overrides": "ping", "interval_s": 30 }));
            }
        }
        for s in 0..5 {
            let site = format!("{id}s{s}");
            let mut node = json!({ "id": site, "kind": "site", "name": format!("Site {s}"), "parent": id });
            if s == 4 {
                node["timezone"] = json!("America/Martinique");
            }
            tree.push(node);
            sites.push((site, c.min(c % tops.max(1))));
        }
    }
    let mut device_list = Vec::with_capacity(devices);
    let mut service_list = Vec::with_capacity(services);
    for d in 0..devices {
        let (site, top) = &sites[d % sites.len()];
        let id = format!("d{d}");
        device_list.push(json!({ "id": id, "node": site, "name": format!("Device {d}"),
            "address": format!("127.{}.{}.{}", (d >> 16) & 255, (d >> 8) & 255, d & 255),
            "snmp": { "version": "2c", "community": "public" },
            "contacts": ["noc", format!("c{top}-it")], "contact_groups": [format!("c{top}-oncall")] }));
        service_list.push(json!({ "id": format!("{id}-ping"), "device": id, "template": "ping", "host_check": true }));
        service_list.push(json!({ "id": format!("{id}-ping2"), "device": id, "template": "ping" }));
        service_list.push(json!({ "id": format!("{id}-web"), "device": id, "template": "web" }));
        service_list.push(json!({ "id": format!("{id}-up"), "device": id, "template": "uptime" }));
    }
    json!({
        "version": format!("bench-{services}"),
        "box": { "id": "bx", "node": "partner" },
        "tree": tree, "time_ranges": time_ranges, "defaults": defaults, "contacts": contacts,
        "contact_groups": groups, "service_templates": templates, "devices": device_list, "services": service_list
    })
}
