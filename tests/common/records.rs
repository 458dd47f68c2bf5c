#![allow(dead_code)] // shared by tests and benches, each using part of it
//! Records as the probes make them, for outbox tests and benchmarks.

use std::borrow::Cow;

use snbox::record::{Body, State, StateType};

/// The `k`-th typical ICMP result: three replies, round-trip times that vary with `k`.
pub fn icmp_result(k: u64) -> Body {
    let rtt = |base: u64| (base + k % 97) as f64 / 1000.0;
    let metrics = [
        ("rtt_min_ms", rtt(40)),
        ("rtt_avg_ms", rtt(60)),
        ("rtt_max_ms", rtt(90)),
        ("loss_pct", 0.0),
        ("packets_sent", 3.0),
        ("packets_received", 3.0),
    ]
    .into_iter()
    .map(|(name, v)| (Cow::Borrowed(name), v))
    .collect();
    Body::Result {
        status: State::Ok,
        state_type: StateType::Hard,
        attempt: 1,
        duration_ms: 400 + k % 13,
        output: format!("3/3 replies, rtt {:.3} ms", rtt(60)),
        metrics,
        in_availability_period: true,
        in_maintenance: false,
        flapping: false,
    }
}
