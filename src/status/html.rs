//! The technician's page: the site at a glance and each problem's story, server-rendered, no
//! JavaScript, no external asset (a box on a customer's LAN has no internet), refreshed every
//! 30 seconds.
//!
//! Companies → sites → devices, with counts per state at each level; each service with its
//! state, since when, attempt, output, last and next check in its device's zone, availability
//! today against its target, and a 24-hour timeline (inline SVG, one segment per state). Then
//! what was rejected and why, and the document's warnings. `?state=problems` keeps what is not
//! OK. Box-wide facts (the link, the buffer, the warnings) only for whole-box readers.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::Value;

use crate::record::State;
use crate::rules::{NodeIdx, Plan};
use crate::schedule::{Figures, ServiceView, ViewState};
use crate::store::history::Change;

/// What the page shows; everything already scoped to the caller.
pub struct Page<'a> {
    pub status: &'a Value,
    pub plan: &'a Plan,
    pub services: Vec<(&'a ServiceView, &'a [Figures; 3])>,
    /// State changes of the last 24 hours, oldest first.
    pub history: &'a [Change],
    pub now: Timestamp,
    /// The maintenances applied (the document's and the operators').
    pub maintenances: &'a [crate::schedule::InForce],
    /// The caller sees the whole box (box-wide facts are shown).
    pub whole_box: bool,
    pub problems_only: bool,
    /// Signed in with the form: offer to sign out.
    pub signed_in: bool,
    /// Devices and services rejected, visible to the caller: (kind, id, name, reason codes).
    pub rejected: Vec<(&'static str, String, String, Vec<String>)>,
}

const STYLE: &str = "body{font-family:sans-serif;margin:1em 1.5em;color:#222}h1{font-size:1.4em}\
h2{font-size:1.2em;margin-top:1.5em;border-bottom:2px solid #ccc}h3{font-size:1.05em;margin:1em 0 .3em}\
h4{font-size:1em;margin:.8em 0 .2em}table{border-collapse:collapse;margin-bottom:.5em}\
td,th{border:1px solid #ddd;padding:.2em .45em;text-align:left;vertical-align:top;font-size:.92em}\
.badge{display:inline-block;padding:0 .4em;border-radius:.3em;font-size:.85em;font-weight:bold}\
.ok{background:#d6f5d6}.warning{background:#fff2b3}.critical{background:#f8c9c9}.unreachable{background:#f0d0e8}.maintenance{background:#d0e0f8}.flapping{background:#ffd9b3}.acknowledged{background:#e0e0e0}\
.unknown{background:#e2e2e2}.pending{background:#fff;border:1px dashed #999;color:#666}\
.counts span{margin-right:.4em}.muted{color:#777}.health td:first-child{font-weight:bold}\
svg.timeline rect.ok{fill:#5cb85c}svg.timeline rect.warning{fill:#f0ad4e}svg.timeline rect.critical{fill:#d9534f}\
svg.timeline rect.unreachable{fill:#b05fa0}svg.timeline rect.unknown{fill:#999}svg.timeline rect.none{fill:#eee}\
nav a{margin-right:1em}form.out{display:inline}";

/// Width of a timeline in pixels: one per 6 minutes.
const TIMELINE_PX: f64 = 240.0;

pub fn render(page: &Page<'_>) -> String {
    let plan = page.plan;
    let mut out = String::with_capacity(8192 + page.services.len() * 700);
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"30\">\
         <meta name=\"viewport\" content=\"width=device-width\"><title>snbox {}</title><style>{STYLE}</style></head><body>",
        esc(&plan.box_id)
    );
    let _ = write!(
        out,
        "<h1>snbox — box {} at {}</h1><p class=\"muted\">document {} · {} mode · up {} · {} services shown",
        esc(&plan.box_id),
        esc(&plan.tree.node(plan.box_node).name),
        esc(&plan.version),
        esc(page.status["mode"].as_str().unwrap_or("?")),
        duration(page.status["uptime_s"].as_u64().unwrap_or(0)),
        page.services.len()
    );
    if page.signed_in {
        out.push_str(" · <form class=\"out\" method=\"post\" action=\"/logout\"><button type=\"submit\">Sign out</button></form>");
    }
    out.push_str("</p><nav>");
    if page.problems_only {
        out.push_str("<a href=\"/\">All services</a><strong>Problems only</strong>");
    } else {
        out.push_str("<strong>All services</strong> <a href=\"/?state=problems\">Problems only</a>");
    }
    out.push_str("</nav>");
    if page.whole_box {
        health(&mut out, page.status);
    }
    groups(&mut out, page);
    rejected(&mut out, page);
    if page.whole_box && !plan.warnings.is_empty() {
        out.push_str("<h2>Document warnings</h2><ul id=\"warnings\">");
        for w in &plan.warnings {
            let _ = write!(out, "<li>{}</li>", esc(w));
        }
        out.push_str("</ul>");
    }
    out.push_str("</body></html>\n");
    out
}

/// The box's own health: the link, the buffer, the scheduler, delivery, the endpoint.
fn health(out: &mut String, s: &Value) {
    out.push_str("<h2>The box</h2><table class=\"health\" id=\"health\">");
    let mut row = |label: &str, value: String| {
        let _ = write!(out, "<tr><td>{label}</td><td>{value}</td></tr>");
    };
    let c = &s["central"];
    if c.is_object() {
        let mut text = format!(
            "{} — {}, last sync {}",
            esc(c["url"].as_str().unwrap_or("?")),
            esc(c["state"].as_str().unwrap_or("?")),
            esc(c["last_sync"].as_str().unwrap_or("never"))
        );
        if let Some(e) = c["last_error"].as_str() {
            let _ = write!(text, "<br><span class=\"muted\">last error: {}</span>", esc(e));
        }
        row("Central server", text);
    }
    let b = &s["buffer"];
    if b.is_object() {
        let mut text = format!(
            "{} records, {} bytes, {} dropped",
            b["records"], b["bytes"], b["dropped"]
        );
        if b["disk_full"] == true {
            text.push_str(" — <strong>the disk is full</strong>: the oldest results are being dropped");
        }
        if b["healthy"] == false {
            let _ = write!(
                text,
                " — <strong>the store cannot commit</strong>: {}",
                esc(b["commit_error"].as_str().unwrap_or("?"))
            );
        }
        row("Buffer", text);
    }
    row(
        "Scheduling",
        format!(
            "lateness p50 ≤ {} ms, p99 ≤ {} ms",
            s["scheduling"]["lateness_p50_ms"], s["scheduling"]["lateness_p99_ms"]
        ),
    );
    let n = &s["notify"];
    if n.is_object() {
        let mut text = format!(
            "{} pending, {} delivered, {} failed",
            n["pending"], n["delivered"], n["failed"]
        );
        if n["delivering"] == true {
            text.push_str(" — the box delivers itself");
        }
        if let Some(e) = n["last_error"].as_str() {
            let _ = write!(text, "<br><span class=\"muted\">last error: {}</span>", esc(e));
        }
        row("Notifications", text);
    }
    let e = &s["endpoint"];
    if e["https"] == true {
        row(
            "This page",
            format!("HTTPS, certificate {}", esc(e["fingerprint"].as_str().unwrap_or("?"))),
        );
    }
    if let Some(error) = s["config"]["last_error"].as_str() {
        row("Document refused", esc(error));
    }
    out.push_str("</table>");
}

/// Counts per state, worst first.
#[derive(Default)]
struct Counts(BTreeMap<u8, (&'static str, u32)>);

impl Counts {
    fn add(&mut self, state: ViewState) {
        let rank = match state {
            ViewState::Checked(State::Critical) => 0,
            ViewState::Checked(State::Unreachable) => 1,
            ViewState::Checked(State::Warning) => 2,
            ViewState::Checked(State::Unknown) => 3,
            ViewState::Pending => 4,
            ViewState::Checked(State::Ok) => 5,
        };
        self.0.entry(rank).or_insert((state.as_str(), 0)).1 += 1;
    }

    fn html(&self) -> String {
        let mut out = String::from("<span class=\"counts\">");
        for (name, n) in self.0.values() {
            let _ = write!(
                out,
                "<span class=\"badge {name}\" data-count=\"{name}\">{n} {name}</span>"
            );
        }
        out.push_str("</span>");
        out
    }
}

/// company → site → device → services, each level with its counts.
type Tree = BTreeMap<(String, Option<NodeIdx>), BTreeMap<(String, NodeIdx), BTreeMap<(String, usize), Vec<usize>>>>;

fn groups(out: &mut String, page: &Page<'_>) {
    let plan = page.plan;
    let mut tree: Tree = BTreeMap::new();
    for (i, (v, _)) in page.services.iter().enumerate() {
        if page.problems_only && !v.state.is_problem() {
            continue;
        }
        let device = &plan.devices[v.device_index as usize];
        let Some(node) = device.node else { continue };
        let company = plan.tree.node(node).top_company;
        let company_name = company.map_or_else(|| "(no company)".to_string(), |c| plan.tree.node(c).name.clone());
        tree.entry((company_name, company))
            .or_default()
            .entry((plan.tree.node(node).name.clone(), node))
            .or_default()
            .entry((device.name.clone(), v.device_index as usize))
            .or_default()
            .push(i);
    }
    if tree.is_empty() {
        out.push_str(if page.problems_only {
            "<p id=\"nothing\">Every service is OK.</p>"
        } else {
            "<p id=\"nothing\">No service is polled.</p>"
        });
        return;
    }
    let changes = by_service(page.history);
    for ((company_name, company), sites) in &tree {
        let mut counts = Counts::default();
        sites
            .values()
            .flat_map(|d| d.values())
            .flatten()
            .for_each(|&i| counts.add(page.services[i].0.state));
        let id = company.map_or("", |c| plan.tree.id(c));
        let _ = write!(
            out,
            "<section class=\"company\" data-company=\"{}\"><h2>{} {}</h2>",
            esc(id),
            esc(company_name),
            counts.html()
        );
        for ((site_name, site), devices) in sites {
            let mut counts = Counts::default();
            devices
                .values()
                .flatten()
                .for_each(|&i| counts.add(page.services[i].0.state));
            let zone = &plan.tree.node(*site).zone;
            let _ = write!(
                out,
                "<section class=\"site\" data-site=\"{}\"><h3>{} <span class=\"muted\">({})</span> {}</h3>",
                esc(plan.tree.id(*site)),
                esc(site_name),
                esc(zone.iana_name().unwrap_or("UTC")),
                counts.html()
            );
            for ((device_name, device), services) in devices {
                let mut counts = Counts::default();
                services.iter().for_each(|&i| counts.add(page.services[i].0.state));
                let d = &plan.devices[*device];
                let _ = write!(
                    out,
                    "<div class=\"device\" data-device=\"{}\"><h4>{} <span class=\"muted\">{}</span> {}</h4>\
                     <table><thead><tr><th>service</th><th>state</th><th>since</th><th>attempt</th><th>output</th>\
                     <th>last check</th><th>next check</th><th>availability today</th><th>last 24 h</th></tr></thead><tbody>",
                    esc(&d.id),
                    esc(device_name),
                    esc(&d.address),
                    counts.html()
                );
                for &i in services {
                    let (v, figures) = page.services[i];
                    service_row(
                        out,
                        page,
                        v,
                        figures,
                        zone,
                        changes.get(&*v.id).map_or(&[][..], Vec::as_slice),
                    );
                }
                out.push_str("</tbody></table></div>");
            }
            out.push_str("</section>");
        }
        out.push_str("</section>");
    }
}

fn by_service(history: &[Change]) -> HashMap<&str, Vec<&Change>> {
    let mut map: HashMap<&str, Vec<&Change>> = HashMap::new();
    for c in history {
        map.entry(c.service.as_str()).or_default().push(c);
    }
    map
}

fn service_row(
    out: &mut String,
    page: &Page<'_>,
    v: &ServiceView,
    figures: &[Figures; 3],
    zone: &TimeZone,
    changes: &[&Change],
) {
    let state = v.state.as_str();
    let checked = v.last_check.is_some();
    let mut badges = format!("<span class=\"badge {state}\">{state}</span>");
    if checked && !matches!(v.state, ViewState::Checked(State::Ok)) {
        let _ = write!(badges, " <span class=\"muted\">{}</span>", v.state_type.as_str());
    }
    if matches!(v.state, ViewState::Checked(State::Unreachable)) {
        // R14: behind which parents, when the device has some; else its own host check (R9).
        let plan = page.plan;
        let parents: Vec<&str> = plan.devices[v.device_index as usize]
            .outcome
            .as_ref()
            .map(|d| d.parents.iter().map(|&p| plan.devices[p].name.as_str()).collect())
            .unwrap_or_default();
        let why = if parents.is_empty() {
            "its device's host check is down".to_string()
        } else {
            format!(
                "its device's host check is down, or every parent is: {}",
                parents.join(", ")
            )
        };
        let _ = write!(
            badges,
            " <span class=\"badge unreachable\" title=\"{}\">unreachable</span>",
            esc(&why)
        );
    }
    if v.in_maintenance {
        let ids: Vec<&str> = page
            .maintenances
            .iter()
            .map(|m| &m.maintenance)
            .filter(|m| page.plan.covers(m, v.service_index as usize))
            .filter(|m| page.plan.occurrence(m).is_active(page.now, zone))
            .map(|m| m.id.as_str())
            .collect();
        let _ = write!(
            badges,
            " <span class=\"badge maintenance\" title=\"{}\">maintenance</span>",
            esc(&ids.join(", "))
        );
    }
    if v.flapping {
        badges.push_str(" <span class=\"badge flapping\" title=\"its state changes too often: problems are not notified until it settles\">flapping</span>");
    }
    if let Some(ack) = &v.acknowledgement {
        let _ = write!(
            badges,
            " <span class=\"badge acknowledged\" title=\"{}\">acknowledged by {}</span>",
            esc(&ack.comment),
            esc(&ack.author)
        );
    }
    let today = &figures[0];
    let availability = match today.percent {
        Some(p) => format!(
            "<span class=\"{}\">{p:.2} %</span> <span class=\"muted\">target {:.2} %</span>",
            if today.breached { "badge critical" } else { "" },
            today.target
        ),
        None => format!("– <span class=\"muted\">target {:.2} %</span>", today.target),
    };
    let when = |t: Option<Timestamp>| t.map_or("–".to_string(), |t| local(t, zone, page.now));
    let _ = write!(
        out,
        "<tr class=\"{state}\" data-service=\"{}\" data-state=\"{state}\"><td>{}</td><td>{badges}</td><td>{}</td><td>{}</td>\
         <td>{}</td><td class=\"last\">{}</td><td class=\"next\">{}</td><td>{availability}</td><td>{}</td></tr>",
        esc(&v.id),
        esc(&v.id),
        if checked {
            local(v.since, zone, page.now)
        } else {
            "–".to_string()
        },
        if checked {
            v.attempt.to_string()
        } else {
            "–".to_string()
        },
        esc(&v.output),
        when(v.last_check),
        when(v.next_check),
        timeline(v, changes, page.now, zone)
    );
}

/// The last 24 hours as coloured segments, one per state (the state before the first change
/// is the first change's `from`; with no change, the current state, or blank while pending).
fn timeline(v: &ServiceView, changes: &[&Change], now: Timestamp, zone: &TimeZone) -> String {
    let start = now - jiff::SignedDuration::from_hours(24);
    let span = now.duration_since(start).as_secs_f64();
    let x = |t: Timestamp| ((t.duration_since(start).as_secs_f64() / span) * TIMELINE_PX).clamp(0.0, TIMELINE_PX);
    let mut segments: Vec<(Timestamp, Timestamp, String)> = Vec::new();
    let first = changes.first().map_or_else(
        || match v.state {
            ViewState::Pending => "none".to_string(),
            other => other.as_str().to_string(),
        },
        |c| c.from.clone(),
    );
    let mut from = start;
    let mut state = first;
    for c in changes.iter().filter(|c| c.ts >= start) {
        segments.push((from, c.ts, state));
        from = c.ts;
        state = c.to.clone();
    }
    segments.push((from, now, state));
    let mut svg = format!(
        "<svg class=\"timeline\" width=\"{TIMELINE_PX}\" height=\"14\" viewBox=\"0 0 {TIMELINE_PX} 14\" role=\"img\" \
         aria-label=\"the last 24 hours\">"
    );
    for (a, b, state) in segments {
        let (x0, x1) = (x(a), x(b));
        let _ = write!(
            svg,
            "<rect class=\"{}\" x=\"{x0:.1}\" y=\"0\" width=\"{:.1}\" height=\"14\"><title>{} from {} to {}</title></rect>",
            esc(&state),
            (x1 - x0).max(0.5),
            esc(&state),
            local(a, zone, now),
            local(b, zone, now)
        );
    }
    svg.push_str("</svg>");
    svg
}

fn rejected(out: &mut String, page: &Page<'_>) {
    if page.rejected.is_empty() {
        return;
    }
    out.push_str("<h2>Not polled</h2><table id=\"rejected\"><thead><tr><th>what</th><th>id</th><th>name</th><th>why</th></tr></thead><tbody>");
    for (kind, id, name, reasons) in &page.rejected {
        let _ = write!(
            out,
            "<tr data-rejected=\"{}\"><td>{kind}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(id),
            esc(id),
            esc(name),
            esc(&reasons.join(", "))
        );
    }
    out.push_str("</tbody></table>");
}

/// A time in `zone`: `15:42:07 CET` today, `2026-11-29 15:42 CET` before.
fn local(t: Timestamp, zone: &TimeZone, now: Timestamp) -> String {
    let z = t.to_zoned(zone.clone());
    if z.date() == now.to_zoned(zone.clone()).date() {
        z.strftime("%H:%M:%S %Z").to_string()
    } else {
        z.strftime("%Y-%m-%d %H:%M %Z").to_string()
    }
}

fn duration(s: u64) -> String {
    crate::notify::message::lasted(jiff::SignedDuration::from_secs(s as i64))
}

pub(super) fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
