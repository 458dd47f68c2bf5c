//! Rules R1–R6 and R11 of rules.md, each test named after the rule it checks, on small
//! documents over the seed's tree (see `common::seed_doc`).

mod common;

use common::*;
use serde_json::json;

// ---------------------------------------------------------------- R1: the tree

#[test]
fn r1_cycle_rejects_the_document() {
    let mut doc = seed_doc("partner");
    push(
        &mut doc,
        "tree",
        json!({ "id": "a", "kind": "company", "name": "A", "parent": "b" }),
    );
    push(
        &mut doc,
        "tree",
        json!({ "id": "b", "kind": "company", "name": "B", "parent": "a" }),
    );
    let errors = errors(&doc);
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("tree_cycle: tree[") && e.contains("\"a\"") && e.contains("\"b\"")),
        "{errors:?}"
    );
}

#[test]
fn r1_wrong_parent_kinds_reject_the_document() {
    let mut doc = seed_doc("partner");
    push(
        &mut doc,
        "tree",
        json!({ "id": "s-under-s", "kind": "site", "name": "x", "parent": "site1" }),
    );
    push(
        &mut doc,
        "tree",
        json!({ "id": "c-under-s", "kind": "company", "name": "x", "parent": "site1" }),
    );
    push(
        &mut doc,
        "tree",
        json!({ "id": "p-under-c", "kind": "partner", "name": "x", "parent": "client1" }),
    );
    push(
        &mut doc,
        "tree",
        json!({ "id": "orphan-site", "kind": "site", "name": "x" }),
    );
    let errors = errors(&doc);
    for i in 6..=9 {
        let path = format!("wrong_parent_kind: tree[{i}].parent:");
        assert!(errors.iter().any(|e| e.starts_with(&path)), "{path} not in {errors:?}");
    }
}

#[test]
fn r1_duplicate_id_and_unknown_parent_reject_the_document() {
    let mut doc = seed_doc("partner");
    push(
        &mut doc,
        "tree",
        json!({ "id": "site1", "kind": "site", "name": "again", "parent": "client1" }),
    );
    push(
        &mut doc,
        "tree",
        json!({ "id": "lost", "kind": "site", "name": "x", "parent": "nowhere" }),
    );
    let errors = errors(&doc);
    assert!(
        errors.contains(&"duplicate_id: tree[6].id: node id \"site1\" is used more than once".to_string()),
        "{errors:?}"
    );
    assert!(
        errors.contains(&"unknown_parent: tree[7].parent: unknown node \"nowhere\"".to_string()),
        "{errors:?}"
    );
}

#[test]
fn r1_sites_and_subsidiaries_inherit_the_company_mode() {
    let mut doc = seed_doc("partner");
    // A subsidiary of the resale company without a mode of its own is resale too; one that
    // sets managed is managed.
    push(
        &mut doc,
        "tree",
        json!({ "id": "c2sub", "kind": "company", "name": "x", "parent": "client2" }),
    );
    push(
        &mut doc,
        "tree",
        json!({ "id": "c2sub-managed", "kind": "company", "name": "x", "parent": "client2", "mode": "managed" }),
    );
    add_pinged_device(&mut doc, "at-c2site1", "c2site1");
    add_pinged_device(&mut doc, "at-c2sub", "c2sub");
    add_pinged_device(&mut doc, "at-c2sub-managed", "c2sub-managed");
    let r = explain(&doc);
    let resale = vec!["resale_company_not_monitored_by_partner_box".to_string()];
    assert_eq!(reasons(device(&r, "at-c2site1")), resale);
    assert_eq!(reasons(device(&r, "at-c2sub")), resale);
    assert_eq!(device(&r, "at-c2sub-managed")["accepted"], true);
}

#[test]
fn r1_mode_defaults_to_managed() {
    let mut doc = seed_doc("partner");
    push(
        &mut doc,
        "tree",
        json!({ "id": "c3", "kind": "company", "name": "no mode", "parent": "partner" }),
    );
    add_pinged_device(&mut doc, "d", "c3");
    assert_eq!(device(&explain(&doc), "d")["accepted"], true);
}

#[test]
fn r1_mode_on_a_site_is_an_error() {
    let mut doc = seed_doc("partner");
    doc["tree"][2]["mode"] = json!("resale");
    let errors = errors(&doc);
    assert!(
        errors.iter().any(|e| e.starts_with("invalid_value: tree[2].mode:")),
        "{errors:?}"
    );
}

#[test]
fn r1_top_company_is_the_company_under_the_partner() {
    let mut doc = seed_doc("partner");
    push(
        &mut doc,
        "tree",
        json!({ "id": "sub", "kind": "company", "name": "x", "parent": "client1" }),
    );
    push(
        &mut doc,
        "tree",
        json!({ "id": "subsite", "kind": "site", "name": "x", "parent": "sub" }),
    );
    let plan = plan(&doc);
    let company = |id: &str| {
        plan.tree
            .get(id)
            .and_then(|n| plan.tree.company_id(n))
            .map(str::to_string)
    };
    assert_eq!(company("subsite").as_deref(), Some("client1"));
    assert_eq!(company("sub").as_deref(), Some("client1"));
    assert_eq!(company("client1").as_deref(), Some("client1"));
    assert_eq!(company("partner"), None);
}

// ---------------------------------------------------------------- R2: placement

#[test]
fn r2_placement_table_of_the_seed() {
    let expected = [
        (
            "partner",
            [None, None, Some("resale_company_not_monitored_by_partner_box")],
        ),
        ("client1", [None, None, Some("outside_box_subtree")]),
        (
            "site1",
            [None, Some("outside_box_subtree"), Some("outside_box_subtree")],
        ),
    ];
    for (box_node, outcomes) in expected {
        let mut doc = seed_doc(box_node);
        add_pinged_device(&mut doc, "at-site1", "site1");
        add_pinged_device(&mut doc, "at-site2", "site2");
        add_pinged_device(&mut doc, "at-client2", "client2");
        let r = explain(&doc);
        for (id, outcome) in ["at-site1", "at-site2", "at-client2"].into_iter().zip(outcomes) {
            let d = device(&r, id);
            match outcome {
                None => assert_eq!(d["accepted"], true, "box at {box_node}, {id}: {d}"),
                Some(code) => {
                    assert_eq!(d["accepted"], false, "box at {box_node}, {id}");
                    assert_eq!(reasons(d), vec![code.to_string()], "box at {box_node}, {id}");
                    assert_eq!(
                        d.get("control_period"),
                        None,
                        "a rejected device has no effective values"
                    );
                    assert_eq!(
                        reasons(service(&r, &format!("{id}-ping"))),
                        vec!["device_rejected".to_string()]
                    );
                }
            }
        }
    }
}

#[test]
fn r2_unknown_node_rejects_only_that_device() {
    let mut doc = seed_doc("partner");
    add_pinged_device(&mut doc, "good", "site1");
    add_pinged_device(&mut doc, "lost", "c9");
    let r = explain(&doc);
    assert_eq!(reasons(device(&r, "lost")), vec!["unknown_node".to_string()]);
    assert_eq!(device(&r, "good")["accepted"], true);
    assert_eq!(r["errors"], json!([]));
}

#[test]
fn r2_box_at_a_resale_company_monitors_its_own_devices() {
    let mut doc = seed_doc("client2");
    add_pinged_device(&mut doc, "d", "c2site1");
    assert_eq!(device(&explain(&doc), "d")["accepted"], true);
}

// ---------------------------------------------------------------- R3: visible scope

#[test]
fn r3_managed_device_sees_partner_company_and_own_site_objects() {
    let mut doc = seed_doc("partner");
    push(
        &mut doc,
        "devices",
        json!({ "id": "d", "node": "site1", "name": "d", "address": "127.0.0.1",
        "control_period": "tr-partner", "availability_period": "tr-client1", "notification_period": "tr-site1" }),
    );
    let r = explain(&doc);
    let d = device(&r, "d");
    assert_eq!(d["accepted"], true, "{d}");
    assert_eq!(period(d, "control_period"), pair("tr-partner", "explicit"));
}

#[test]
fn r3_sibling_site_objects_are_not_visible() {
    let mut doc = seed_doc("partner");
    push(
        &mut doc,
        "devices",
        json!({ "id": "d", "node": "site1", "name": "d", "address": "127.0.0.1", "control_period": "tr-site2" }),
    );
    assert_eq!(
        reasons(device(&explain(&doc), "d")),
        vec!["time_range_not_visible:tr-site2".to_string()]
    );
}

#[test]
fn r3_resale_device_does_not_see_partner_objects() {
    let mut doc = seed_doc("client2");
    push(
        &mut doc,
        "devices",
        json!({ "id": "d", "node": "c2site1", "name": "d", "address": "127.0.0.1", "control_period": "tr-partner" }),
    );
    push(
        &mut doc,
        "devices",
        json!({ "id": "ok", "node": "c2site1", "name": "d", "address": "127.0.0.1", "control_period": "tr-client2" }),
    );
    let r = explain(&doc);
    assert_eq!(
        reasons(device(&r, "d")),
        vec!["time_range_not_visible:tr-partner".to_string()]
    );
    assert_eq!(device(&r, "ok")["accepted"], true);
}

#[test]
fn r3_device_at_a_partner_sees_its_partner_ancestors_and_product() {
    let mut doc = seed_doc("top");
    push(
        &mut doc,
        "tree",
        json!({ "id": "top", "kind": "partner", "name": "Top partner" }),
    );
    doc["tree"][0]["parent"] = json!("top");
    push(
        &mut doc,
        "time_ranges",
        json!({ "id": "tr-top", "owner": "top", "name": "T", "weekly": [] }),
    );
    push(
        &mut doc,
        "devices",
        json!({ "id": "d", "node": "partner", "name": "d", "address": "127.0.0.1",
        "control_period": "tr-top", "availability_period": "tr-partner" }),
    );
    push(
        &mut doc,
        "devices",
        json!({ "id": "below", "node": "partner", "name": "d", "address": "127.0.0.1", "control_period": "tr-client1" }),
    );
    let r = explain(&doc);
    assert_eq!(device(&r, "d")["accepted"], true, "{r:#}");
    assert_eq!(
        reasons(device(&r, "below")),
        vec!["time_range_not_visible:tr-client1".to_string()]
    );
}

// ---------------------------------------------------------------- R4: default time ranges

fn with_default(doc: &mut serde_json::Value, node: &str, aspect: &str, tr: &str) {
    push(
        doc,
        "defaults",
        json!({ "node": node, "aspect": aspect, "time_range": tr }),
    );
}

#[test]
fn r4_site_default_wins_for_a_device_at_the_site() {
    let mut doc = seed_doc("partner");
    with_default(&mut doc, "site1", "control", "tr-site1");
    with_default(&mut doc, "client1", "control", "tr-client1");
    with_default(&mut doc, "partner", "control", "tr-partner");
    add_pinged_device(&mut doc, "d", "site1");
    assert_eq!(
        period(device(&explain(&doc), "d"), "control_period"),
        pair("tr-site1", "default:site1")
    );
}

#[test]
fn r4_partner_default_used_when_none_below_in_managed_mode() {
    let mut doc = seed_doc("partner");
    with_default(&mut doc, "partner", "control", "tr-partner");
    add_pinged_device(&mut doc, "d", "site1");
    assert_eq!(
        period(device(&explain(&doc), "d"), "control_period"),
        pair("tr-partner", "default:partner")
    );
}

#[test]
fn r4_configured_at_company_stops_the_walk_before_the_partner() {
    let mut doc = seed_doc("partner");
    with_default(&mut doc, "partner", "control", "tr-partner");
    push(
        &mut doc,
        "devices",
        json!({ "id": "d", "node": "site1", "name": "d", "address": "127.0.0.1", "configured_at": "client1" }),
    );
    let r = explain(&doc);
    assert_eq!(
        period(device(&r, "d"), "control_period"),
        pair("24x7", "default:product")
    );
    assert_eq!(device(&r, "d")["warnings"], json!([]));
}

#[test]
fn r4_configured_at_still_sees_defaults_up_to_its_node() {
    let mut doc = seed_doc("partner");
    with_default(&mut doc, "client1", "availability", "tr-client1");
    push(
        &mut doc,
        "devices",
        json!({ "id": "d", "node": "site1", "name": "d", "address": "127.0.0.1", "configured_at": "client1" }),
    );
    assert_eq!(
        period(device(&explain(&doc), "d"), "availability_period"),
        pair("tr-client1", "default:client1")
    );
}

#[test]
fn r4_partner_default_not_reached_in_resale() {
    let mut doc = seed_doc("client2");
    with_default(&mut doc, "partner", "control", "tr-partner");
    add_pinged_device(&mut doc, "d", "c2site1");
    assert_eq!(
        period(device(&explain(&doc), "d"), "control_period"),
        pair("24x7", "default:product")
    );
}

#[test]
fn r4_configured_at_not_above_the_device_is_ignored_with_a_warning() {
    let mut doc = seed_doc("partner");
    with_default(&mut doc, "partner", "control", "tr-partner");
    push(
        &mut doc,
        "devices",
        json!({ "id": "d", "node": "site1", "name": "d", "address": "127.0.0.1", "configured_at": "site2" }),
    );
    let r = explain(&doc);
    let d = device(&r, "d");
    assert_eq!(period(d, "control_period"), pair("tr-partner", "default:partner"));
    assert_eq!(
        strings(&d["warnings"]),
        vec!["configured_at_not_above_device:site2".to_string()]
    );
}

#[test]
fn r4_no_default_anywhere_rejects_the_device() {
    let mut doc = seed_doc("partner");
    retain(&mut doc, "defaults", |x| x["aspect"] != "notification");
    add_pinged_device(&mut doc, "d", "site1");
    with_default(&mut doc, "site2", "notification", "tr-site2");
    let r = explain(&doc);
    assert_eq!(
        reasons(device(&r, "d")),
        vec!["no_default_time_range:notification".to_string()]
    );
}

#[test]
fn r4_explicit_period_must_exist_and_be_visible() {
    let mut doc = seed_doc("partner");
    push(
        &mut doc,
        "devices",
        json!({ "id": "a", "node": "site1", "name": "a", "address": "127.0.0.1", "control_period": "tr-client2" }),
    );
    push(
        &mut doc,
        "devices",
        json!({ "id": "b", "node": "site1", "name": "b", "address": "127.0.0.1", "notification_period": "nope" }),
    );
    let r = explain(&doc);
    assert_eq!(
        reasons(device(&r, "a")),
        vec!["time_range_not_visible:tr-client2".to_string()]
    );
    assert_eq!(reasons(device(&r, "b")), vec!["unknown_time_range:nope".to_string()]);
}

#[test]
fn r4_a_default_must_be_visible_at_its_node() {
    let mut doc = seed_doc("partner");
    with_default(&mut doc, "client1", "control", "tr-client2");
    push(
        &mut doc,
        "defaults",
        json!({ "node": null, "aspect": "control", "time_range": "tr-partner" }),
    );
    let errors = errors(&doc);
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("default_not_visible: defaults[3].time_range:")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("default_not_visible: defaults[4].time_range:")),
        "{errors:?}"
    );
}

#[test]
fn r4_at_most_one_default_per_node_and_aspect() {
    let mut doc = seed_doc("partner");
    with_default(&mut doc, "client1", "control", "tr-client1");
    with_default(&mut doc, "client1", "control", "tr-partner");
    let errors = errors(&doc);
    assert!(
        errors.iter().any(|e| e.starts_with("duplicate_default: defaults[4]:")),
        "{errors:?}"
    );
}

// ---------------------------------------------------------------- R5: templates

fn with_overrides(doc: &mut serde_json::Value) {
    push(
        doc,
        "service_templates",
        json!({ "id": "ping@partner", "owner": "partner", "overrides": "ping", "interval_s": 30, "criticality": "critical" }),
    );
    push(
        doc,
        "service_templates",
        json!({ "id": "ping@client1", "owner": "client1", "overrides": "ping", "interval_s": 45 }),
    );
}

#[test]
fn r5_nearest_override_wins_field_by_field() {
    let mut doc = seed_doc("partner");
    with_overrides(&mut doc);
    add_pinged_device(&mut doc, "d", "site1");
    let r = explain(&doc);
    let s = service(&r, "d-ping");
    assert_eq!(value(s, "interval_s"), (json!(45), "template:ping@client1".to_string()));
    assert_eq!(
        value(s, "criticality"),
        (json!("critical"), "template:ping@partner".to_string())
    );
    assert_eq!(
        value(s, "availability_rate"),
        (json!(99.5), "template:ping".to_string())
    );
}

#[test]
fn r5_deleting_an_override_brings_the_next_one_back() {
    let mut doc = seed_doc("partner");
    with_overrides(&mut doc);
    retain(&mut doc, "service_templates", |x| x["id"] != "ping@client1");
    add_pinged_device(&mut doc, "d", "site1");
    let r = explain(&doc);
    assert_eq!(
        value(service(&r, "d-ping"), "interval_s"),
        (json!(30), "template:ping@partner".to_string())
    );
    retain(&mut doc, "service_templates", |x| x["id"] != "ping@partner");
    let r = explain(&doc);
    assert_eq!(
        value(service(&r, "d-ping"), "interval_s"),
        (json!(60), "template:ping".to_string())
    );
}

#[test]
fn r5_partner_override_does_not_reach_a_resale_company() {
    let mut doc = seed_doc("client2");
    with_overrides(&mut doc);
    add_pinged_device(&mut doc, "d", "c2site1");
    let r = explain(&doc);
    let s = service(&r, "d-ping");
    assert_eq!(value(s, "interval_s"), (json!(60), "template:ping".to_string()));
    assert_eq!(value(s, "criticality"), (json!("high"), "template:ping".to_string()));
}

#[test]
fn r5_overrides_outside_the_scope_are_ignored() {
    let mut doc = seed_doc("partner");
    push(
        &mut doc,
        "service_templates",
        json!({ "id": "ping@site2", "owner": "site2", "overrides": "ping", "interval_s": 15 }),
    );
    add_pinged_device(&mut doc, "d", "site1");
    add_pinged_device(&mut doc, "e", "site2");
    let r = explain(&doc);
    assert_eq!(value(service(&r, "d-ping"), "interval_s").0, json!(60));
    assert_eq!(
        value(service(&r, "e-ping"), "interval_s"),
        (json!(15), "template:ping@site2".to_string())
    );
}

#[test]
fn r5_override_with_a_non_overridable_field_is_set_aside() {
    let mut doc = seed_doc("partner");
    push(
        &mut doc,
        "service_templates",
        json!({ "id": "ping@bad", "owner": "client1", "overrides": "ping",
        "interval_s": 5, "max_attempts": 9, "timeout_s": 2 }),
    );
    add_pinged_device(&mut doc, "d", "site1");
    let r = explain(&doc);
    assert_eq!(
        strings(&r["warnings"]),
        vec![
            "override_field_not_allowed:ping@bad:max_attempts",
            "override_field_not_allowed:ping@bad:timeout_s"
        ]
    );
    // The base template stays usable and the rejected override's interval is not applied.
    assert_eq!(
        value(service(&r, "d-ping"), "interval_s"),
        (json!(60), "template:ping".to_string())
    );
}

#[test]
fn r5_template_must_exist_and_be_visible() {
    let mut doc = seed_doc("partner");
    push(
        &mut doc,
        "service_templates",
        json!({ "id": "c2-ping", "owner": "client2", "kind": "icmp", "criticality": "low",
        "availability_rate": 90, "availability_period": "24x7", "control_period": "24x7", "interval_s": 60 }),
    );
    push(
        &mut doc,
        "devices",
        json!({ "id": "d", "node": "site1", "name": "d", "address": "127.0.0.1" }),
    );
    push(
        &mut doc,
        "services",
        json!({ "id": "s1", "device": "d", "template": "c2-ping" }),
    );
    push(
        &mut doc,
        "services",
        json!({ "id": "s2", "device": "d", "template": "nope" }),
    );
    let r = explain(&doc);
    assert_eq!(
        reasons(service(&r, "s1")),
        vec!["template_not_visible:c2-ping".to_string()]
    );
    assert_eq!(reasons(service(&r, "s2")), vec!["unknown_template:nope".to_string()]);
}

#[test]
fn r5_time_ranges_named_by_a_template_must_be_visible_to_the_device() {
    let mut doc = seed_doc("partner");
    push(
        &mut doc,
        "service_templates",
        json!({ "id": "ping@site2", "owner": "site2", "overrides": "ping", "control_period": "tr-site2" }),
    );
    push(
        &mut doc,
        "service_templates",
        json!({ "id": "web", "owner": "partner", "kind": "http", "criticality": "low",
        "availability_rate": 90, "availability_period": "tr-partner", "control_period": "tr-client1", "interval_s": 60 }),
    );
    push(
        &mut doc,
        "devices",
        json!({ "id": "d", "node": "site1", "name": "d", "address": "127.0.0.1" }),
    );
    push(
        &mut doc,
        "services",
        json!({ "id": "web-d", "device": "d", "template": "web" }),
    );
    add_pinged_device(&mut doc, "e", "site2");
    push(
        &mut doc,
        "services",
        json!({ "id": "e-ping-2", "device": "e", "template": "ping" }),
    );
    let r = explain(&doc);
    // tr-client1 is visible at site1; the partner's and client1's objects are in scope.
    assert_eq!(service(&r, "web-d")["accepted"], true, "{r:#}");
    // The second ping of e takes its control period from ping@site2, visible at site2.
    assert_eq!(
        period(service(&r, "e-ping-2"), "control_period"),
        pair("tr-site2", "template:ping@site2")
    );

    let mut doc = seed_doc("partner");
    push(
        &mut doc,
        "service_templates",
        json!({ "id": "web", "owner": "partner", "kind": "http", "criticality": "low",
        "availability_rate": 90, "availability_period": "24x7", "control_period": "tr-client2", "interval_s": 60 }),
    );
    push(
        &mut doc,
        "devices",
        json!({ "id": "d", "node": "site1", "name": "d", "address": "127.0.0.1" }),
    );
    push(
        &mut doc,
        "services",
        json!({ "id": "web-d", "device": "d", "template": "web" }),
    );
    assert_eq!(
        reasons(service(&explain(&doc), "web-d")),
        vec!["time_range_not_visible:tr-client2".to_string()]
    );
}

// ---------------------------------------------------------------- R6: effective settings

#[test]
fn r6_host_check_takes_the_device_periods_and_other_services_their_template() {
    let mut doc = seed_doc("partner");
    with_default(&mut doc, "site1", "control", "tr-site1");
    push(
        &mut doc,
        "devices",
        json!({ "id": "d", "node": "site1", "name": "d", "address": "127.0.0.1", "availability_period": "tr-client1" }),
    );
    push(
        &mut doc,
        "services",
        json!({ "id": "first", "device": "d", "template": "ping" }),
    );
    push(
        &mut doc,
        "services",
        json!({ "id": "flagged", "device": "d", "template": "ping", "host_check": true }),
    );
    let r = explain(&doc);
    let host = service(&r, "flagged");
    assert_eq!(host["host_check"], true);
    assert_eq!(period(host, "control_period"), pair("tr-site1", "default:site1"));
    assert_eq!(
        period(host, "availability_period"),
        pair("tr-client1", "explicit@device")
    );
    let other = service(&r, "first");
    assert_eq!(other["host_check"], false);
    assert_eq!(period(other, "control_period"), pair("24x7", "template:ping"));
    assert_eq!(period(other, "availability_period"), pair("24x7", "template:ping"));
}

#[test]
fn r6_first_icmp_service_is_the_host_check_when_none_is_flagged() {
    let mut doc = seed_doc("partner");
    push(
        &mut doc,
        "service_templates",
        json!({ "id": "web", "owner": null, "kind": "http", "criticality": "low",
        "availability_rate": 90, "availability_period": "24x7", "control_period": "24x7", "interval_s": 60 }),
    );
    push(
        &mut doc,
        "devices",
        json!({ "id": "d", "node": "site1", "name": "d", "address": "127.0.0.1" }),
    );
    push(
        &mut doc,
        "services",
        json!({ "id": "web", "device": "d", "template": "web" }),
    );
    push(
        &mut doc,
        "services",
        json!({ "id": "p1", "device": "d", "template": "ping" }),
    );
    push(
        &mut doc,
        "services",
        json!({ "id": "p2", "device": "d", "template": "ping" }),
    );
    let r = explain(&doc);
    assert_eq!(service(&r, "web")["host_check"], false);
    assert_eq!(service(&r, "p1")["host_check"], true);
    assert_eq!(service(&r, "p2")["host_check"], false);
}

#[test]
fn r6_notification_period_follows_the_device_unless_the_service_sets_one() {
    let mut doc = seed_doc("partner");
    with_default(&mut doc, "client1", "notification", "tr-client1");
    add_pinged_device(&mut doc, "d", "site1");
    push(
        &mut doc,
        "devices",
        json!({ "id": "e", "node": "site1", "name": "e", "address": "127.0.0.1", "notification_period": "tr-site1" }),
    );
    push(
        &mut doc,
        "services",
        json!({ "id": "e-1", "device": "e", "template": "ping" }),
    );
    push(
        &mut doc,
        "services",
        json!({ "id": "e-2", "device": "e", "template": "ping", "notification_period": "tr-partner" }),
    );
    let r = explain(&doc);
    assert_eq!(
        period(service(&r, "d-ping"), "notification_period"),
        pair("tr-client1", "default:client1")
    );
    assert_eq!(
        period(service(&r, "e-1"), "notification_period"),
        pair("tr-site1", "explicit@device")
    );
    assert_eq!(
        period(service(&r, "e-2"), "notification_period"),
        pair("tr-partner", "explicit")
    );
}

#[test]
fn r6_values_set_on_the_service_win() {
    let mut doc = seed_doc("partner");
    with_overrides(&mut doc);
    push(
        &mut doc,
        "devices",
        json!({ "id": "d", "node": "site1", "name": "d", "address": "127.0.0.1" }),
    );
    push(
        &mut doc,
        "services",
        json!({ "id": "s", "device": "d", "template": "ping", "interval_s": 90, "criticality": "low",
        "max_attempts": 5, "timeout_s": 3, "control_period": "tr-site1" }),
    );
    let r = explain(&doc);
    let s = service(&r, "s");
    assert_eq!(value(s, "interval_s"), (json!(90), "explicit".to_string()));
    assert_eq!(value(s, "retry_interval_s"), (json!(30), "explicit".to_string()));
    assert_eq!(value(s, "criticality"), (json!("low"), "explicit".to_string()));
    assert_eq!(value(s, "max_attempts"), (json!(5), "explicit".to_string()));
    assert_eq!(value(s, "timeout_s"), (json!(3), "explicit".to_string()));
    // The host check still takes an explicit service period over the device's.
    assert_eq!(period(s, "control_period"), pair("tr-site1", "explicit"));
}

#[test]
fn r6_rule_defaults_name_the_source_they_derive_from() {
    let mut doc = seed_doc("partner");
    with_overrides(&mut doc);
    add_pinged_device(&mut doc, "d", "site1");
    push(
        &mut doc,
        "services",
        json!({ "id": "fast", "device": "d", "template": "ping", "interval_s": 20 }),
    );
    let r = explain(&doc);
    let s = service(&r, "d-ping");
    assert_eq!(
        value(s, "retry_interval_s"),
        (json!(15), "template:ping@client1".to_string())
    );
    assert_eq!(value(s, "max_attempts"), (json!(3), "template:ping".to_string()));
    assert_eq!(value(s, "timeout_s"), (json!(10), "template:ping".to_string()));
    // interval 20 / 3 is below the 10 s floor.
    assert_eq!(
        value(service(&r, "fast"), "retry_interval_s"),
        (json!(10), "explicit".to_string())
    );
}

#[test]
fn r6_missing_required_fields_reject_the_service() {
    let mut doc = seed_doc("partner");
    push(
        &mut doc,
        "service_templates",
        json!({ "id": "bare", "owner": null, "kind": "icmp" }),
    );
    push(
        &mut doc,
        "devices",
        json!({ "id": "d", "node": "site1", "name": "d", "address": "127.0.0.1" }),
    );
    push(
        &mut doc,
        "services",
        json!({ "id": "first", "device": "d", "template": "ping" }),
    );
    push(
        &mut doc,
        "services",
        json!({ "id": "s", "device": "d", "template": "bare", "interval_s": 60 }),
    );
    let r = explain(&doc);
    assert_eq!(
        reasons(service(&r, "s")),
        vec![
            "missing_field:criticality",
            "missing_field:availability_rate",
            "missing_field:control_period",
            "missing_field:availability_period"
        ]
    );
}

#[test]
fn r6_explicit_service_period_must_be_visible() {
    let mut doc = seed_doc("partner");
    push(
        &mut doc,
        "devices",
        json!({ "id": "d", "node": "site1", "name": "d", "address": "127.0.0.1" }),
    );
    push(
        &mut doc,
        "services",
        json!({ "id": "s", "device": "d", "template": "ping", "availability_period": "tr-site2" }),
    );
    push(
        &mut doc,
        "services",
        json!({ "id": "t", "device": "d", "template": "ping", "control_period": "gone" }),
    );
    let r = explain(&doc);
    assert_eq!(
        reasons(service(&r, "s")),
        vec!["time_range_not_visible:tr-site2".to_string()]
    );
    assert_eq!(reasons(service(&r, "t")), vec!["unknown_time_range:gone".to_string()]);
}

// ---------------------------------------------------------------- R11: contacts

#[test]
fn r11_invisible_unknown_and_disabled_contacts_are_dropped_with_warnings() {
    let mut doc = seed_doc("partner");
    doc["contacts"] = json!([
        { "id": "noc", "owner": "partner", "name": "NOC", "enabled": true },
        { "id": "gone", "owner": "partner", "name": "Old", "enabled": false },
        { "id": "c1", "owner": "client1", "name": "C1", "enabled": true },
        { "id": "c2", "owner": "client2", "name": "C2", "enabled": true }
    ]);
    doc["contact_groups"] = json!([
        { "id": "g1", "owner": "client1", "name": "G1", "members": ["c1", "gone"] },
        { "id": "g2", "owner": "client2", "name": "G2", "members": ["c2"] }
    ]);
    push(
        &mut doc,
        "devices",
        json!({ "id": "d", "node": "site1", "name": "d", "address": "127.0.0.1",
        "contacts": ["noc", "gone", "c1", "c2", "who"], "contact_groups": ["g1", "g2", "nog"] }),
    );
    let plan = plan(&doc);
    let r = report(&plan, None);
    let d = device(&r, "d");
    assert_eq!(d["accepted"], true, "R11 references never reject a device");
    assert_eq!(strings(&d["contacts"]), vec!["noc", "c1"]);
    assert_eq!(strings(&d["contact_groups"]), vec!["g1"]);
    assert_eq!(
        strings(&d["warnings"]),
        vec![
            "contact_disabled:gone",
            "contact_not_visible:c2",
            "unknown_contact:who",
            "group_member_disabled:g1:gone",
            "contact_not_visible:g2",
            "unknown_contact:nog"
        ]
    );
    // A group notifies only its enabled members.
    let (_, dev) = plan.accepted_devices().next().expect("device d");
    assert_eq!(dev.contact_groups[0].members, vec!["c1".to_string()]);
}

#[test]
fn r11_resale_device_does_not_see_partner_contacts() {
    let mut doc = seed_doc("client2");
    doc["contacts"] = json!([{ "id": "noc", "owner": "partner", "name": "NOC" }]);
    push(
        &mut doc,
        "devices",
        json!({ "id": "d", "node": "c2site1", "name": "d", "address": "127.0.0.1", "contacts": ["noc"] }),
    );
    let r = explain(&doc);
    assert_eq!(strings(&device(&r, "d")["warnings"]), vec!["contact_not_visible:noc"]);
}

#[test]
fn r11_group_member_must_exist() {
    let mut doc = seed_doc("partner");
    doc["contact_groups"] = json!([{ "id": "g", "owner": "partner", "name": "G", "members": ["ghost"] }]);
    let errors = errors(&doc);
    assert_eq!(
        errors,
        vec!["unknown_contact: contact_groups[0].members[0]: unknown contact \"ghost\"".to_string()]
    );
}

// ---------------------------------------------------------------- R9: host check choice (plan side)

#[test]
fn r9_host_check_flag_on_a_non_icmp_service_is_ignored_with_a_warning() {
    let mut doc = seed_doc("partner");
    push(
        &mut doc,
        "service_templates",
        json!({ "id": "web", "owner": null, "kind": "http", "criticality": "low",
        "availability_rate": 90, "availability_period": "24x7", "control_period": "24x7", "interval_s": 60 }),
    );
    push(
        &mut doc,
        "devices",
        json!({ "id": "d", "node": "site1", "name": "d", "address": "127.0.0.1" }),
    );
    push(
        &mut doc,
        "services",
        json!({ "id": "web", "device": "d", "template": "web", "host_check": true }),
    );
    push(
        &mut doc,
        "services",
        json!({ "id": "p", "device": "d", "template": "ping" }),
    );
    let r = explain(&doc);
    assert_eq!(strings(&r["warnings"]), vec!["host_check_not_icmp:web"]);
    assert_eq!(service(&r, "p")["host_check"], true);
    assert_eq!(service(&r, "web")["host_check"], false);
}

#[test]
fn snmpv3_with_a_security_level_but_an_empty_key_is_rejected_with_the_missing_field() {
    let mut doc = seed_doc("partner");
    push(
        &mut doc,
        "devices",
        json!({ "id": "v3", "node": "site1", "name": "v3", "address": "127.0.0.1",
                "snmp": { "version": "3", "user": "u", "level": "authPriv", "auth_protocol": "sha",
                          "auth_key": "", "priv_protocol": "aes" } }),
    );
    let r = explain(&doc);
    assert_eq!(
        reasons(device(&r, "v3")),
        vec!["missing_field:snmp.auth_key", "missing_field:snmp.priv_key"]
    );
}

// ---------------------------------------------------------------- R14: parent devices (plan side)

#[test]
fn r14_usable_parents_are_accepted_devices_with_a_host_check_others_are_warned() {
    let mut doc = seed_doc("partner");
    add_pinged_device(&mut doc, "router", "site1");
    for id in ["child", "no-check", "other-box"] {
        push(
            &mut doc,
            "devices",
            json!({ "id": id, "node": if id == "other-box" { "c2site1" } else { "site1" }, "name": id, "address": "127.0.0.1" }),
        );
    }
    // The router's ping is its host check; `no-check` has none; `other-box` is not this box's.
    doc["devices"][1]["parents"] = json!(["router", "no-check", "other-box", "ghost", "router"]);
    doc["services"][0]["host_check"] = json!(true);
    let r = explain(&doc);
    let child = device(&r, "child");
    assert_eq!(strings(&child["parents"]), vec!["router"], "{child}");
    assert_eq!(
        strings(&child["warnings"]),
        vec![
            "parent_not_polled:no-check",
            "parent_not_polled:other-box",
            "unknown_parent:ghost"
        ]
    );
    assert!(device(&r, "router").get("parents").is_none(), "no parents, no field");
}

#[test]
fn r14_a_cycle_of_parents_is_broken_with_a_document_warning() {
    let mut doc = seed_doc("partner");
    for id in ["a", "b", "c"] {
        add_pinged_device(&mut doc, id, "site1");
    }
    for (i, parent) in ["b", "c", "a"].iter().enumerate() {
        doc["devices"][i]["parents"] = json!([parent]);
        doc["services"][i]["host_check"] = json!(true);
    }
    let r = explain(&doc);
    assert_eq!(strings(&r["warnings"]), vec!["parent_cycle:a,b,c,a"]);
    // The link that closed the cycle (c → a) is gone; the others stay.
    assert_eq!(strings(&device(&r, "a")["parents"]), vec!["b"]);
    assert_eq!(strings(&device(&r, "b")["parents"]), vec!["c"]);
    assert!(device(&r, "c").get("parents").is_none());
}

#[test]
fn r15_r16_flap_detection_and_renotify_come_from_the_service_or_its_base_template() {
    let mut doc = seed_doc("partner");
    set_template_field(&mut doc, "ping", "flap_detection", json!(true));
    set_template_field(&mut doc, "ping", "renotify_s", json!(3600));
    add_pinged_device(&mut doc, "d", "site1");
    add_pinged_device(&mut doc, "e", "site1");
    doc["services"][1]["flap_high_pct"] = json!(50);
    doc["services"][1]["renotify_s"] = json!(0);
    let r = explain(&doc);
    let d = service(&r, "d-ping");
    assert_eq!(value(d, "flap_detection"), (json!(true), "template:ping".to_string()));
    assert_eq!(value(d, "flap_high_pct"), (json!(30.0), "default:product".to_string()));
    assert_eq!(value(d, "flap_low_pct"), (json!(25.0), "default:product".to_string()));
    assert_eq!(value(d, "renotify_s"), (json!(3600), "template:ping".to_string()));
    let e = service(&r, "e-ping");
    assert_eq!(value(e, "flap_high_pct"), (json!(50.0), "explicit".to_string()));
    assert_eq!(value(e, "renotify_s"), (json!(0), "explicit".to_string()));
}

#[test]
fn r15_r16_the_fields_are_not_overridable_and_absent_when_unset() {
    let mut doc = seed_doc("partner");
    push(
        &mut doc,
        "service_templates",
        json!({ "id": "ping@flappy", "owner": "client1", "overrides": "ping",
        "flap_detection": true, "renotify_s": 60 }),
    );
    add_pinged_device(&mut doc, "d", "site1");
    let r = explain(&doc);
    assert_eq!(
        strings(&r["warnings"]),
        vec![
            "override_field_not_allowed:ping@flappy:flap_detection",
            "override_field_not_allowed:ping@flappy:renotify_s"
        ]
    );
    let d = service(&r, "d-ping");
    assert!(
        d.get("flap_detection").is_none() && d.get("renotify_s").is_none(),
        "{d:#}"
    );
}

#[test]
fn r15_thresholds_out_of_order_reject_the_service() {
    let mut doc = seed_doc("partner");
    add_pinged_device(&mut doc, "d", "site1");
    add_pinged_device(&mut doc, "e", "site1");
    doc["services"][0]["flap_detection"] = json!(true);
    doc["services"][0]["flap_low_pct"] = json!(40);
    doc["services"][1]["flap_detection"] = json!(true);
    doc["services"][1]["flap_high_pct"] = json!(120);
    let r = explain(&doc);
    assert_eq!(
        strings(&service(&r, "d-ping")["reasons"]),
        vec!["invalid_field:flap_low_pct"]
    );
    assert_eq!(
        strings(&service(&r, "e-ping")["reasons"]),
        vec!["invalid_field:flap_high_pct"]
    );
}

fn set_template_field(doc: &mut serde_json::Value, template: &str, field: &str, v: serde_json::Value) {
    let templates = doc["service_templates"].as_array_mut().expect("templates");
    let t = templates.iter_mut().find(|t| t["id"] == template).expect("template");
    t[field] = v;
}

#[test]
fn r13_a_node_scoped_maintenance_covers_its_subsidiaries_sites_and_nothing_else() {
    let mut doc = seed_doc("partner");
    add_pinged_device(&mut doc, "d", "site1");
    add_pinged_device(&mut doc, "e", "site2");
    add_pinged_device(&mut doc, "f", "partner");
    doc["maintenances"] = json!([
        { "id": "m-c1", "scope": { "node": "client1" }, "time_range": "tr-client1" },
        { "id": "m-e", "scope": { "device": "e" },
          "start": "2026-12-12T22:00:00+01:00", "end": "2026-12-13T02:00:00+01:00" },
        { "id": "m-f", "scope": { "service": "f-ping" },
          "start": "2026-12-12T22:00:00+01:00", "end": "2026-12-13T02:00:00+01:00" }
    ]);
    let r = explain(&doc);
    assert_eq!(strings(&r["warnings"]), Vec::<String>::new());
    assert_eq!(strings(&service(&r, "d-ping")["maintenances"]), vec!["m-c1"]);
    assert_eq!(strings(&service(&r, "e-ping")["maintenances"]), vec!["m-c1", "m-e"]);
    assert_eq!(strings(&service(&r, "f-ping")["maintenances"]), vec!["m-f"]);
    // With --at: whether each is active then, and its next change.
    let r = explain_at(&doc, "2026-12-12T22:30:00+01:00");
    assert_eq!(
        service(&r, "e-ping")["maintenances"],
        json!([
            { "id": "m-c1", "active": false, "next_change": "2026-12-15T07:00:00+00:00" },
            { "id": "m-e", "active": true, "next_change": "2026-12-13T01:00:00+00:00" }
        ])
    );
}

#[test]
fn r13_bad_maintenances_are_set_aside_with_warnings_and_never_reject() {
    let mut doc = seed_doc("partner");
    add_pinged_device(&mut doc, "d", "site1");
    add_pinged_device(&mut doc, "f", "c2site1");
    doc["maintenances"] = json!([
        { "id": "m-nobody", "scope": { "device": "nope" }, "time_range": "24x7" },
        { "id": "m-two", "scope": { "device": "d", "node": "site1" }, "time_range": "24x7" },
        { "id": "m-back", "scope": { "device": "d" },
          "start": "2026-12-13T02:00:00+01:00", "end": "2026-12-12T22:00:00+01:00" },
        { "id": "m-nozone", "scope": { "device": "d" },
          "start": "2026-12-12T22:00:00", "end": "2026-12-13T02:00:00" },
        { "id": "m-both", "scope": { "device": "d" }, "time_range": "24x7",
          "start": "2026-12-12T22:00:00Z", "end": "2026-12-13T02:00:00Z" },
        { "id": "m-hidden", "scope": { "device": "f" }, "time_range": "tr-client1" },
        { "id": "m-shape", "scope": { "device": "d" }, "time_range": "24x7", "collect": "yes" }
    ]);
    let r = explain(&doc);
    assert_eq!(r["errors"], json!([]));
    let warnings = strings(&r["warnings"]);
    // What could not be read comes first (the reading), then what the rules set aside.
    assert!(
        warnings[0].starts_with("maintenance_invalid:maintenances[6].collect"),
        "{warnings:?}"
    );
    assert_eq!(
        warnings[1..],
        [
            "unknown_maintenance_scope:m-nobody",
            "unknown_maintenance_scope:m-two",
            "maintenance_bad_window:m-back",
            "maintenance_bad_window:m-nozone",
            "maintenance_bad_window:m-both",
            "maintenance_time_range_not_visible:m-hidden:tr-client1"
        ]
        .map(String::from)
    );
    assert_eq!(service(&r, "d-ping")["accepted"], true);
    assert!(service(&r, "d-ping").get("maintenances").is_none());
}

#[test]
fn tcp_services_need_a_port_from_the_template_or_themselves() {
    let mut doc = seed_doc("partner");
    push(
        &mut doc,
        "service_templates",
        json!({ "id": "tcp", "owner": null, "kind": "tcp", "criticality": "low", "availability_rate": 99.0,
                "availability_period": "24x7", "control_period": "24x7", "interval_s": 60 }),
    );
    add_pinged_device(&mut doc, "d", "site1");
    push(
        &mut doc,
        "services",
        json!({ "id": "d-ssh", "device": "d", "template": "tcp", "params": { "port": 22 } }),
    );
    push(
        &mut doc,
        "services",
        json!({ "id": "d-tcp", "device": "d", "template": "tcp" }),
    );
    let r = explain(&doc);
    assert_eq!(service(&r, "d-ssh")["kind"], "tcp");
    assert_eq!(service(&r, "d-ssh")["accepted"], true);
    assert_eq!(
        strings(&service(&r, "d-tcp")["reasons"]),
        vec!["missing_field:params.port"]
    );
}

#[test]
fn dns_services_need_a_name_from_the_template_or_themselves() {
    let mut doc = seed_doc("partner");
    push(
        &mut doc,
        "service_templates",
        json!({ "id": "dns", "owner": null, "kind": "dns", "criticality": "low", "availability_rate": 99.0,
                "availability_period": "24x7", "control_period": "24x7", "interval_s": 60,
                "params": { "record_type": "MX" } }),
    );
    add_pinged_device(&mut doc, "d", "site1");
    push(
        &mut doc,
        "services",
        json!({ "id": "d-mx", "device": "d", "template": "dns", "params": { "name": "example.net", "expect": ["mail.example.net"] } }),
    );
    push(
        &mut doc,
        "services",
        json!({ "id": "d-dns", "device": "d", "template": "dns" }),
    );
    let r = explain(&doc);
    assert_eq!(service(&r, "d-mx")["kind"], "dns");
    assert_eq!(service(&r, "d-mx")["accepted"], true);
    assert_eq!(
        strings(&service(&r, "d-dns")["reasons"]),
        vec!["missing_field:params.name"]
    );
    // A type the kind does not know is refused where it is written, like any params.
    push(
        &mut doc,
        "services",
        json!({ "id": "d-bad", "device": "d", "template": "dns", "params": { "name": "x", "record_type": "SRV" } }),
    );
    let errors = errors(&doc);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("services[3].params.record_type") && e.contains("SRV")),
        "{errors:?}"
    );
}

#[test]
fn plugin_services_need_a_command_from_the_template_or_themselves() {
    let mut doc = seed_doc("partner");
    push(
        &mut doc,
        "service_templates",
        json!({ "id": "plugin", "owner": null, "kind": "plugin", "criticality": "low", "availability_rate": 99.0,
                "availability_period": "24x7", "control_period": "24x7", "interval_s": 300 }),
    );
    add_pinged_device(&mut doc, "d", "site1");
    push(
        &mut doc,
        "services",
        json!({ "id": "d-ssh", "device": "d", "template": "plugin", "params": { "command": "check_ssh", "args": ["$ADDRESS$"] } }),
    );
    push(
        &mut doc,
        "services",
        json!({ "id": "d-plugin", "device": "d", "template": "plugin" }),
    );
    let r = explain(&doc);
    assert_eq!(service(&r, "d-ssh")["kind"], "plugin");
    assert_eq!(service(&r, "d-ssh")["accepted"], true);
    assert_eq!(
        strings(&service(&r, "d-plugin")["reasons"]),
        vec!["missing_field:params.command"]
    );
    // A path is refused where it is written.
    push(
        &mut doc,
        "services",
        json!({ "id": "d-sh", "device": "d", "template": "plugin", "params": { "command": "/bin/sh", "args": ["-c", "reboot"] } }),
    );
    let errors = errors(&doc);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("services[3].params.command") && e.contains("is a path")),
        "{errors:?}"
    );
}

#[test]
fn box_services_are_accepted_with_default_limits_and_refuse_unknown_measures() {
    let mut doc = seed_doc("partner");
    push(
        &mut doc,
        "service_templates",
        json!({ "id": "self", "owner": null, "kind": "box", "criticality": "high", "availability_rate": 99.0,
                "availability_period": "24x7", "control_period": "24x7", "interval_s": 60 }),
    );
    add_pinged_device(&mut doc, "d", "site1");
    push(
        &mut doc,
        "services",
        json!({ "id": "d-self", "device": "d", "template": "self", "params": { "disk_pct": { "warn": 70, "crit": 90 } } }),
    );
    let r = explain(&doc);
    assert_eq!(service(&r, "d-self")["kind"], "box");
    assert_eq!(service(&r, "d-self")["accepted"], true);
    push(
        &mut doc,
        "services",
        json!({ "id": "d-bad", "device": "d", "template": "self", "params": { "load_avg": { "warn": 4 } } }),
    );
    let errors = errors(&doc);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("services[2].params") && e.contains("load_avg")),
        "{errors:?}"
    );
}

#[test]
fn snmp_trap_services_need_a_trap_oid_and_refuse_a_clear_that_sets() {
    let mut doc = seed_doc("partner");
    push(
        &mut doc,
        "service_templates",
        json!({ "id": "link", "owner": null, "kind": "snmp_trap", "criticality": "high", "availability_rate": 99.0,
                "availability_period": "24x7", "control_period": "24x7", "interval_s": 60,
                "params": { "clear_trap_oid": "1.3.6.1.6.3.1.1.5.4" } }),
    );
    add_pinged_device(&mut doc, "d", "site1");
    push(
        &mut doc,
        "services",
        json!({ "id": "d-link", "device": "d", "template": "link", "params": { "trap_oid": "1.3.6.1.6.3.1.1.5.3" } }),
    );
    push(
        &mut doc,
        "services",
        json!({ "id": "d-any", "device": "d", "template": "link" }),
    );
    let r = explain(&doc);
    assert_eq!(service(&r, "d-link")["kind"], "snmp_trap");
    assert_eq!(service(&r, "d-link")["accepted"], true);
    assert_eq!(
        strings(&service(&r, "d-any")["reasons"]),
        vec!["missing_field:params.trap_oid"]
    );
    // Set by the service, cleared by the template: the merged params are refused.
    push(
        &mut doc,
        "services",
        json!({ "id": "d-bad", "device": "d", "template": "link", "params": { "trap_oid": "1.3.6.1.6.3.1.1.5.4" } }),
    );
    let r = explain(&doc);
    assert_eq!(
        strings(&service(&r, "d-bad")["reasons"]),
        vec!["invalid_field:params.clear_trap_oid"]
    );
}

#[test]
fn r18_a_device_category_is_validated_and_shown_in_explain_when_given() {
    let mut doc = seed_doc("partner");
    add_pinged_device(&mut doc, "d-srv", "site1");
    add_pinged_device(&mut doc, "d-any", "site1");
    doc["devices"]
        .as_array_mut()
        .and_then(|d| d.iter_mut().find(|d| d["id"] == "d-srv"))
        .expect("device")["category"] = json!("server");
    let r = explain(&doc);
    assert_eq!(device(&r, "d-srv")["category"], "server");
    // Not given: counted as `other`, and the report stays as it was before R18.
    assert!(device(&r, "d-any").get("category").is_none(), "{}", device(&r, "d-any"));
    doc["devices"]
        .as_array_mut()
        .and_then(|d| d.iter_mut().find(|d| d["id"] == "d-any"))
        .expect("device")["category"] = json!("toaster");
    let errors = errors(&doc);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("devices[1].category") && e.contains("`toaster`") && e.contains("`workstation`")),
        "{errors:?}"
    );
}
