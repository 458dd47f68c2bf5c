//! `/inventory` (R18): each top company's counts of its local day so far, from the marks in
//! the store (every mark queued before the request is committed first). A scoped token sees the
//! companies with something polled in its subtree, counted over its subtree only.

use axum::extract::State as AxumState;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{Caller, Scope, Shared, sees};
use crate::explain::rfc3339_utc;
use crate::inventory::{Inventory, day_of, zone_name};

pub(super) async fn inventory(AxumState(shared): AxumState<Shared>, caller: Caller) -> Response {
    let snapshot = &caller.snapshot;
    let plan = &snapshot.plan;
    let tree = &plan.tree;
    let now = snapshot.at;
    let mut out = Vec::new();
    for company in tree.companies() {
        let zone = &tree.node(company).zone;
        let day = day_of(now, zone);
        let mut polled = match shared.store.polled(tree.id(company).to_string(), day).await {
            Ok(polled) => polled,
            Err(e) => {
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("the store does not answer: {e}\n"),
                )
                    .into_response();
            }
        };
        if let Scope::Subtree(_) = caller.scope {
            polled.retain(|p| sees(plan, caller.scope, tree.get(&p.site)));
            if polled.is_empty() {
                continue;
            }
        }
        out.push(Inventory::count(tree.id(company), day, &zone_name(zone), &polled));
    }
    axum::Json(json!({ "at": rfc3339_utc(now), "inventory": out })).into_response()
}
