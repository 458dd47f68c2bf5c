//! `/maintenances`: the maintenances in force and coming (R13), each with whether it is active
//! now (in its scope's zone), its next change and how many of the caller's services it covers.
//! A scoped token sees those that cover at least one service of its subtree.

use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{Caller, sees};
use crate::explain::rfc3339_utc;
use crate::rules::maintenance::{Scope, Window};

pub(super) async fn maintenances(caller: Caller) -> Response {
    let snapshot = &caller.snapshot;
    let plan = &snapshot.plan;
    let now = snapshot.at;
    let mut out: Vec<Value> = Vec::new();
    for in_force in snapshot.maintenances.iter() {
        let m = &in_force.maintenance;
        if matches!(m.window, Window::Once { end, .. } if end <= now) {
            continue; // over: only what is in force or coming
        }
        let covered = plan
            .services
            .iter()
            .enumerate()
            .filter(|(i, s)| {
                s.outcome.is_ok()
                    && plan.covers(m, *i)
                    && sees(plan, caller.scope, s.device.and_then(|d| plan.devices[d].node))
            })
            .count();
        if covered == 0 {
            continue;
        }
        let node = match m.scope {
            Scope::Node(n) => Some(n),
            Scope::Device(d) => plan.devices[d].node,
            Scope::Service(s) => plan.services[s].device.and_then(|d| plan.devices[d].node),
        };
        let zone = node.map_or(jiff::tz::TimeZone::UTC, |n| plan.tree.node(n).zone.clone());
        let o = plan.occurrence(m);
        let mut entry = serde_json::to_value(&m.raw).unwrap_or(Value::Null);
        if let Value::Object(fields) = &mut entry {
            fields.insert("source".into(), json!(in_force.source.as_str()));
            if let Some(author) = &in_force.author {
                fields.insert("author".into(), json!(author));
            }
            fields.insert("active".into(), json!(o.is_active(now, &zone)));
            fields.insert("next_change".into(), json!(o.next_change(now, &zone).map(rfc3339_utc)));
            fields.insert("services".into(), json!(covered));
        }
        out.push(entry);
    }
    axum::Json(json!({ "at": rfc3339_utc(now), "maintenances": out })).into_response()
}
