//! The technician's page (protocol.md §7) as headless Chromium renders it: a standalone box
//! with problems, a pending service, a rejected device and sites in two zones. Assertions on
//! the DOM Chromium built (grouping, local times, timelines, the problems filter) and a
//! screenshot (`SNBOX_SCREENSHOT_DIR` keeps it; docs/status-page.png was made so).

#[path = "common/central.rs"]
mod central;
#[path = "common/http_server.rs"]
mod http_server;
#[path = "common/peers.rs"]
mod peers;
#[path = "common/snbox.rs"]
mod snbox_daemon;

use std::net::IpAddr;
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use snbox_daemon::Daemon;

const SITE2_TOKEN: &str = "Site2-Token-0123456789abcdef";

/// The weekday before today, in the document's spelling: a period open only then is closed now.
fn yesterday() -> &'static str {
    let today = jiff::Zoned::now().with_time_zone(jiff::tz::TimeZone::UTC).weekday();
    ["sun", "mon", "tue", "wed", "thu", "fri", "sat"][(today.to_sunday_zero_offset() as usize + 6) % 7]
}

/// Client 1 with a site in Paris (a service that went down and came back) and one in
/// Martinique (a service down), a service waiting for a period that never opens today, and a
/// device the box rejects.
fn document(web_port: u16) -> Value {
    let web = json!({ "kind": "http", "criticality": "high", "availability_rate": 99.0, "availability_period": "24x7",
                      "control_period": "24x7", "interval_s": 1, "timeout_s": 1, "max_attempts": 1 });
    let mut later = web.clone();
    later["control_period"] = json!("yesterday");
    let mut templates = vec![web.clone(), later];
    templates[0]["id"] = json!("web");
    templates[1]["id"] = json!("web-later");
    let mut doc = central::document(
        "page-1",
        json!(templates),
        json!([
            { "id": "paris-fw", "node": "s", "name": "Paris firewall", "address": "127.0.0.1" },
            { "id": "fdf-router", "node": "s2", "name": "Fort-de-France router", "address": "127.0.0.1" },
            { "id": "ghost", "node": "nowhere", "name": "Ghost", "address": "127.0.0.1" }
        ]),
        json!([
            { "id": "paris-web", "device": "paris-fw", "template": "web", "params": { "url": format!("http://127.0.0.1:{web_port}/") } },
            { "id": "paris-later", "device": "paris-fw", "template": "web-later", "params": { "url": "http://127.0.0.1:9/" } },
            { "id": "fdf-web", "device": "fdf-router", "template": "web", "params": { "url": "http://127.0.0.1:9/" } },
            { "id": "ghost-web", "device": "ghost", "template": "web", "params": { "url": "http://127.0.0.1:9/" } }
        ]),
    );
    doc["tree"] = json!([
        { "id": "p", "kind": "partner", "name": "Partner", "timezone": "Europe/Paris" },
        { "id": "c", "kind": "company", "name": "Client 1", "parent": "p" },
        { "id": "s", "kind": "site", "name": "Paris", "parent": "c" },
        { "id": "s2", "kind": "site", "name": "Fort-de-France", "parent": "c", "timezone": "America/Martinique" }
    ]);
    doc["time_ranges"].as_array_mut().expect("ranges").push(json!({
        "id": "yesterday", "name": "Yesterday only",
        "weekly": [ { "days": [yesterday()], "from": "00:00", "to": "24:00" } ]
    }));
    doc
}

/// The `<tr>` of `service` in `html`.
fn row(html: &str, service: &str) -> String {
    let at = html
        .find(&format!("data-service=\"{service}\""))
        .unwrap_or_else(|| panic!("no row for {service}"));
    let start = html[..at].rfind("<tr").expect("row start");
    let end = at + html[at..].find("</tr>").expect("row end");
    html[start..end].to_string()
}

/// Headless Chromium on its own profile, bounded to a minute, reaching out to nothing.
fn chromium(profile: &Path) -> Command {
    let mut c = Command::new("timeout");
    c.args(["-k", "5", "60", peers::chromium()])
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
        ])
        .args([
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()));
    c
}

fn chromium_dom(url: &str, profile: &Path) -> String {
    let out = chromium(profile)
        .arg("--dump-dom")
        .arg(url)
        .output()
        .expect("chromium runs");
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
#[ignore = "needs chromium: bash .ci/run installs it and runs this"]
fn the_page_groups_by_company_and_site_in_local_time_with_timelines_and_a_problems_filter() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = peers::free_tcp_port();
    std::fs::write(dir.path().join("doc.json"), document(port).to_string()).expect("doc");
    let daemon = Daemon::start(dir.path(), |status| {
        format!(
            "state_dir = \"state\"\ntimezone = \"Europe/Paris\"\n[standalone]\ndocument = \"doc.json\"\n\
             [status]\nlisten = \"127.0.0.1:{status}\"\nno_token_from = [\"127.0.0.1/32\"]\n\
             [[status.tokens]]\ntoken = \"{SITE2_TOKEN}\"\nnode = \"s2\"\n"
        )
    });
    let changes = |service: &str| {
        daemon.json(&format!("/history?service={service}"))["changes"]
            .as_array()
            .map_or(0, Vec::len)
    };
    daemon.wait_for(|| changes("paris-web") == 1 && changes("fdf-web") == 1, "both down");
    peers::answer_200_on(port);
    daemon.wait_for(|| changes("paris-web") == 2, "paris-web back up");

    let profile = dir.path().join("chromium");
    let dom = chromium_dom(&daemon.url("/"), &profile);
    assert!(dom.contains("<title>snbox bx-test</title>"), "no page: {dom}");
    // Grouping: the company, then its two sites, each device under its site.
    let company = dom.find("data-company=\"c\"").expect("the company's section");
    let (paris, fdf) = (
        dom.find("data-site=\"s\"").expect("Paris"),
        dom.find("data-site=\"s2\"").expect("Fort-de-France"),
    );
    assert!(company < paris.min(fdf), "sites inside their company");
    assert!(dom[fdf..].contains("data-device=\"fdf-router\""));
    assert!(dom.contains("America/Martinique") && dom.contains("Europe/Paris"));
    // Counts per state at each level.
    let company_head = &dom[company..paris.min(fdf)];
    assert!(
        company_head.contains("1 critical") && company_head.contains("1 ok") && company_head.contains("1 pending"),
        "{company_head}"
    );
    // Local times: each device's zone.
    let fdf_row = row(&dom, "fdf-web");
    assert!(
        fdf_row.contains(" AST<") || fdf_row.contains(" AST "),
        "Martinique time: {fdf_row}"
    );
    let paris_row = row(&dom, "paris-web");
    assert!(
        paris_row.contains(" CET") || paris_row.contains(" CEST"),
        "Paris time: {paris_row}"
    );
    // Timelines: one segment per state since the window began, and one more.
    assert_eq!(paris_row.matches("<rect").count(), 3, "ok → critical → ok: {paris_row}");
    assert_eq!(fdf_row.matches("<rect").count(), 2, "ok → critical: {fdf_row}");
    assert!(fdf_row.contains("data-state=\"critical\""));
    // Never checked: pending, not a green OK.
    let later = row(&dom, "paris-later");
    assert!(later.contains("data-state=\"pending\""), "{later}");
    // The rejected device and its reason.
    let rejected = &dom[dom.find("id=\"rejected\"").expect("the rejected table")..];
    assert!(
        rejected.contains("ghost") && rejected.contains("unknown_node"),
        "{rejected}"
    );

    // Problems only.
    let problems = chromium_dom(&daemon.url("/?state=problems"), &profile);
    assert!(problems.contains("data-service=\"fdf-web\""));
    assert!(!problems.contains("data-service=\"paris-web\"") && !problems.contains("data-service=\"paris-later\""));

    // A token scoped to Fort-de-France: its site only, nothing box-wide.
    let remote: IpAddr = "127.0.0.2".parse().expect("ip");
    let (code, scoped) = daemon.request("/", Some(remote), Some(SITE2_TOKEN)).expect("answer");
    assert_eq!(code, 200);
    assert!(scoped.contains("data-service=\"fdf-web\"") && !scoped.contains("data-service=\"paris-web\""));
    assert!(
        !scoped.contains("id=\"health\"") && !scoped.contains("id=\"rejected\""),
        "box-wide facts on a scoped page"
    );

    // The screenshot.
    let shots = std::env::var_os("SNBOX_SCREENSHOT_DIR").map_or_else(|| dir.path().to_path_buf(), Into::into);
    let png = shots.join("status-page.png");
    let status = chromium(&profile)
        .args(["--hide-scrollbars", "--window-size=1280,860"])
        .arg(format!("--screenshot={}", png.display()))
        .arg(daemon.url("/"))
        .output()
        .expect("chromium runs");
    let bytes = std::fs::read(&png)
        .unwrap_or_else(|e| panic!("no screenshot ({e}): {}", String::from_utf8_lossy(&status.stderr)));
    assert!(bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000, "a real picture");
}
