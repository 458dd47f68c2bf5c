//! `/metrics` in the Prometheus text exposition format (version 0.0.4).

use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;

use crate::central::SyncState;
use crate::notify::NotifyState;
use crate::record::Channel;
use crate::schedule::Snapshot;
use crate::schedule::metrics::{BUCKETS_MS, Histogram, KINDS, Metrics, RECORD_KINDS, STATUSES};
use crate::store::Stats;

pub fn render(
    m: &Metrics,
    store: Option<&Stats>,
    snapshot: &Snapshot,
    sync: Option<&SyncState>,
    notify: &NotifyState,
) -> String {
    let mut out = String::with_capacity(4096);
    header(
        &mut out,
        "snbox_checks_total",
        "counter",
        "Checks run, by kind and result.",
    );
    for (k, kind) in KINDS.iter().enumerate() {
        for (s, status) in STATUSES.iter().enumerate() {
            let _ = writeln!(
                out,
                "snbox_checks_total{{kind=\"{kind}\",result=\"{status}\"}} {}",
                m.checks[k][s].load(Relaxed)
            );
        }
    }
    header(
        &mut out,
        "snbox_check_duration_seconds",
        "histogram",
        "How long checks took, by kind.",
    );
    for (k, kind) in KINDS.iter().enumerate() {
        histogram(
            &mut out,
            "snbox_check_duration_seconds",
            &format!("kind=\"{kind}\","),
            &m.durations[k],
        );
    }
    header(
        &mut out,
        "snbox_scheduling_lateness_seconds",
        "histogram",
        "How late checks started after their due time.",
    );
    histogram(&mut out, "snbox_scheduling_lateness_seconds", "", &m.lateness);
    header(
        &mut out,
        "snbox_records_produced_total",
        "counter",
        "Records produced, by kind.",
    );
    for (i, kind) in RECORD_KINDS.iter().enumerate() {
        let _ = writeln!(
            out,
            "snbox_records_produced_total{{kind=\"{kind}\"}} {}",
            m.records[i].load(Relaxed)
        );
    }
    header(
        &mut out,
        "snbox_checks_outside_control_period_total",
        "counter",
        "Checks not run because the control period was closed.",
    );
    let _ = writeln!(
        out,
        "snbox_checks_outside_control_period_total {}",
        m.outside_control.load(Relaxed)
    );
    header(&mut out, "snbox_services", "gauge", "Services polled, by state.");
    let mut counts = std::collections::BTreeMap::new();
    for (_, state) in &snapshot.tally {
        *counts.entry(state.as_str()).or_insert(0u64) += 1;
    }
    for state in ["pending", "ok", "warning", "critical", "unknown", "unreachable"] {
        let _ = writeln!(
            out,
            "snbox_services{{state=\"{state}\"}} {}",
            counts.get(state).copied().unwrap_or(0)
        );
    }
    let q = snapshot.quiet;
    for (name, help, n) in [
        (
            "snbox_services_in_maintenance",
            "Services covered by a maintenance now (R13).",
            q.in_maintenance,
        ),
        ("snbox_services_flapping", "Services flapping (R15).", q.flapping),
        (
            "snbox_services_acknowledged",
            "Services whose problem is acknowledged (R16).",
            q.acknowledged,
        ),
    ] {
        header(&mut out, name, "gauge", help);
        let _ = writeln!(out, "{name} {n}");
    }
    if let Some(s) = store {
        header(
            &mut out,
            "snbox_buffer_records",
            "gauge",
            "Records in the outbox, not yet acknowledged.",
        );
        let _ = writeln!(out, "snbox_buffer_records {}", s.records);
        header(
            &mut out,
            "snbox_buffer_bytes",
            "gauge",
            "Bytes the outbox database uses.",
        );
        let _ = writeln!(out, "snbox_buffer_bytes {}", s.bytes);
        header(
            &mut out,
            "snbox_records_dropped_total",
            "counter",
            "Results dropped by the buffer's size cap.",
        );
        let _ = writeln!(out, "snbox_records_dropped_total {}", s.dropped);
        header(
            &mut out,
            "snbox_buffer_disk_full",
            "gauge",
            "1 while the filesystem, not the setting, limits the outbox and it is at that limit.",
        );
        let _ = writeln!(out, "snbox_buffer_disk_full {}", u8::from(s.disk_full));
        header(
            &mut out,
            "snbox_buffer_unsaved_records",
            "gauge",
            "Records kept in memory because they could not be committed yet.",
        );
        let _ = writeln!(out, "snbox_buffer_unsaved_records {}", s.unsaved);
        header(&mut out, "snbox_store_errors_total", "counter", "Commits that failed.");
        let _ = writeln!(out, "snbox_store_errors_total {}", s.errors);
        header(
            &mut out,
            "snbox_records_sent_total",
            "counter",
            "Records acknowledged by the central server.",
        );
        let sent = sync.map_or(0, |s| s.records_sent.load(Relaxed));
        let _ = writeln!(out, "snbox_records_sent_total {sent}");
        header(
            &mut out,
            "snbox_sync_errors_total",
            "counter",
            "Failed exchanges with the central server.",
        );
        let errors = sync.map_or(0, |s| s.sync_errors.load(Relaxed));
        let _ = writeln!(out, "snbox_sync_errors_total {errors}");
    }
    deliveries(&mut out, notify);
    out
}

/// R17: what the box delivered itself, by channel, since it started.
fn deliveries(out: &mut String, notify: &NotifyState) {
    for (name, help, counts) in [
        (
            "snbox_notify_delivered_total",
            "Notifications (and admin messages) the box delivered itself.",
            &notify.delivered,
        ),
        (
            "snbox_notify_failed_total",
            "Delivery attempts that failed (retried or given up).",
            &notify.failed,
        ),
        (
            "snbox_notify_given_up_total",
            "Deliveries given up: refused for good, or still failing after notify.retry_for_s.",
            &notify.given_up,
        ),
    ] {
        header(out, name, "counter", help);
        for (i, channel) in Channel::ALL.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}{{channel=\"{}\"}} {}",
                channel.as_str(),
                counts[i].load(Relaxed)
            );
        }
    }
    let view = notify.view();
    header(
        out,
        "snbox_notify_pending",
        "gauge",
        "Deliveries waiting for their next attempt.",
    );
    let _ = writeln!(out, "snbox_notify_pending {}", view.pending);
    header(
        out,
        "snbox_notify_delivering",
        "gauge",
        "1 while the box delivers notifications itself (standalone, or the central server out of reach).",
    );
    let _ = writeln!(out, "snbox_notify_delivering {}", u8::from(view.delivering));
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn histogram(out: &mut String, name: &str, labels: &str, h: &Histogram) {
    for (i, bound) in BUCKETS_MS.iter().enumerate() {
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}le=\"{}\"}} {}",
            *bound / 1000.0,
            h.buckets[i].load(Relaxed)
        );
    }
    let _ = writeln!(
        out,
        "{name}_bucket{{{labels}le=\"+Inf\"}} {}",
        h.buckets[BUCKETS_MS.len()].load(Relaxed)
    );
    let labels = labels.trim_end_matches(',');
    let braces = if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    };
    let _ = writeln!(out, "{name}_sum{braces} {}", h.sum_us.load(Relaxed) as f64 / 1e6);
    let _ = writeln!(out, "{name}_count{braces} {}", h.count.load(Relaxed));
}
