//! The technician's page: the box, its counts, and every service with its state. Plain HTML,
//! refreshed every 10 seconds, no JavaScript.

use std::fmt::Write as _;

use serde_json::Value;

use crate::rules::Plan;
use crate::schedule::{Figures, ServiceView};

/// The page; each service comes with its availability figures.
pub fn render(status: &Value, services: &[(&ServiceView, &[Figures; 3])], plan: &Plan) -> String {
    let mut out = String::with_capacity(4096 + services.len() * 256);
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"10\">\
         <title>snbox {}</title><style>body{{font-family:sans-serif;margin:1.5em}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:.25em .5em;text-align:left}}.ok{{background:#dfd}}.warning{{background:#ffd}}\
         .critical,.unreachable{{background:#fdd}}.unknown{{background:#eee}}.pending{{background:#fff;color:#666}}</style></head><body>",
        esc(plan.box_id.as_str())
    );
    let _ = write!(
        out,
        "<h1>snbox — box {} at {}</h1><p>document {} · up {} s · {} services polled</p>",
        esc(&plan.box_id),
        esc(plan.tree.id(plan.box_node)),
        esc(&plan.version),
        status["uptime_s"],
        services.len()
    );
    if let Some(states) = status["services"]["states"].as_object() {
        let parts: Vec<String> = states.iter().map(|(k, v)| format!("{} {}", v, esc(k))).collect();
        let _ = write!(out, "<p>states: {}</p>", parts.join(", "));
    }
    if let Some(buffer) = status["buffer"].as_object() {
        let _ = write!(
            out,
            "<p>buffer: {} records, {} bytes, {} dropped{}</p>",
            buffer["records"],
            buffer["bytes"],
            buffer["dropped"],
            if buffer["disk_full"] == true {
                " — <strong>the disk is full</strong>: the oldest results are being dropped"
            } else {
                ""
            }
        );
    }
    out.push_str("<table><thead><tr><th>service</th><th>device</th><th>kind</th><th>state</th><th>output</th><th>last check</th><th>availability today</th></tr></thead><tbody>");
    for (v, availability) in services {
        let class = v.state.as_str();
        let today = availability
            .first()
            .and_then(|f| f.percent)
            .map_or("–".to_string(), |p| format!("{p:.2} %"));
        let last = v
            .last_check
            .map_or("–".to_string(), |t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string());
        let _ = write!(
            out,
            "<tr class=\"{class}\" data-service=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{} {}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&v.id),
            esc(&v.id),
            esc(&v.device),
            v.kind.as_str(),
            class,
            if v.last_check.is_some() {
                v.state_type.as_str()
            } else {
                ""
            },
            esc(&v.output),
            last,
            today
        );
    }
    out.push_str("</tbody></table></body></html>\n");
    out
}

pub(super) fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
