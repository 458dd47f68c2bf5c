//! `/maintenances`: the maintenances in force and coming (R13), each with whether it is active
//! now (in its scope's zone), its next change and how many of the caller's services it covers.
//! A scoped token sees those that cover at least one service of its subtree.

use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{Caller, sees};
use crate::explain::rfc3339_utc;

pub(super) async fn maintenances(caller: Caller) -> Response {
    let snapshot = &caller.snapshot;
    let plan = &snapshot.plan;
    let now = snapshot.at;
    let mut out: Vec<Value> = Vec::new();
    for in_force in snapshot.maintenances.iter().filter(|m| !m.is_over(now)) {
        let m = &in_force.maintenance;
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
        let mut entry = in_force.describe(plan, now);
        if let Value::Object(fields) = &mut entry {
            fields.insert("services".into(), json!(covered));
        }
        out.push(entry);
    }
    axum::Json(json!({ "at": rfc3339_utc(now), "maintenances": out })).into_response()
}
