//! Counters the scheduler keeps for `/metrics` and `/status`: lock-free, read at any time.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::document::CheckKind;
use crate::probe::Status;

/// Upper bounds, in milliseconds, of the lateness and duration histograms' buckets.
/// Sub-millisecond bounds first: a healthy scheduler starts checks within a millisecond.
pub const BUCKETS_MS: [f64; 15] = [
    0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
];
const INF: usize = BUCKETS_MS.len();

#[derive(Default)]
pub struct Histogram {
    /// Cumulative counts per bucket of [`BUCKETS_MS`], then +Inf.
    pub buckets: [AtomicU64; INF + 1],
    pub sum_us: AtomicU64,
    pub count: AtomicU64,
}

impl Histogram {
    pub fn observe_ms(&self, ms: f64) {
        let ms = ms.max(0.0);
        for (i, bound) in BUCKETS_MS.iter().enumerate() {
            if ms <= *bound {
                self.buckets[i].fetch_add(1, Relaxed);
            }
        }
        self.buckets[INF].fetch_add(1, Relaxed);
        self.sum_us.fetch_add((ms * 1000.0) as u64, Relaxed);
        self.count.fetch_add(1, Relaxed);
    }

    /// The bucket bound under which `q` (0..1) of the observations fall.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        let total = self.count.load(Relaxed);
        if total == 0 {
            return None;
        }
        let rank = (q * total as f64).ceil() as u64;
        BUCKETS_MS
            .iter()
            .enumerate()
            .find(|(i, _)| self.buckets[*i].load(Relaxed) >= rank)
            .map(|(_, b)| *b)
            .or(Some(f64::INFINITY))
    }
}

#[derive(Default)]
pub struct Metrics {
    /// Checks by kind (icmp, snmp, http) and status (ok, warning, critical, unknown).
    pub checks: [[AtomicU64; 4]; KIND_COUNT],
    pub durations: [Histogram; KIND_COUNT],
    pub lateness: Histogram,
    /// Records produced by kind, in [`crate::record::Kind`] order (its code - 1).
    pub records: [AtomicU64; 10],
    /// Checks skipped because the control period was closed.
    pub outside_control: AtomicU64,
}

impl Metrics {
    /// Checks run so far, by kind (icmp, snmp, http), whatever their result.
    pub fn checks_by_kind(&self) -> [u64; KIND_COUNT] {
        std::array::from_fn(|k| self.checks[k].iter().map(|c| c.load(Relaxed)).sum())
    }
}

pub fn status_index(status: Status) -> usize {
    match status {
        Status::Ok => 0,
        Status::Warning => 1,
        Status::Critical => 2,
        Status::Unknown => 3,
    }
}

/// Check kinds' names, in [`CheckKind::index`] order.
pub const KINDS: [&str; KIND_COUNT] = {
    let mut names = [""; KIND_COUNT];
    let mut k = 0;
    while k < KIND_COUNT {
        names[k] = CheckKind::ALL[k].as_str();
        k += 1;
    }
    names
};
pub const KIND_COUNT: usize = CheckKind::ALL.len();
pub const STATUSES: [&str; 4] = ["ok", "warning", "critical", "unknown"];
pub const RECORD_KINDS: [&str; 10] = [
    "result",
    "state_change",
    "notification",
    "availability",
    "delivery",
    "maintenance",
    "acknowledgement",
    "command_result",
    "inventory",
    "discovery",
];
