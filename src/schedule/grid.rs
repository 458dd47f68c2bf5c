//! The schedule's arithmetic: each service's place in its interval, the fixed-rate grid, and
//! sleeping towards a wall-clock moment on a monotonic clock.

use std::time::Duration;

use jiff::Timestamp;
use tokio::time::Instant;

/// Sleeps towards a wall-clock moment (a period opening) last at most this long (see `until_wall`).
const WALL_RECHECK: Duration = Duration::from_secs(60);
/// How long to sleep towards a wall-clock moment: at most [`WALL_RECHECK`], after which the
/// wall clock is read again. A step of the clock (NTP, an operator's `date -s`) moves the
/// moment, which a monotonic timer set before the step cannot know.
pub(super) fn until_wall(wall: Timestamp, at: Timestamp) -> Duration {
    duration_between(wall, at).min(WALL_RECHECK)
}

/// The first point of the grid `anchor + k × interval` after `now`.
pub(super) fn next_on_grid(anchor: Instant, interval: Duration, now: Instant) -> Instant {
    let next = anchor + interval;
    if next > now {
        return next;
    }
    // Behind by more than an interval: skip the missed runs rather than burst.
    let behind = now.saturating_duration_since(anchor).as_nanos();
    let step = interval.as_nanos().max(1);
    let k = behind / step + 1;
    anchor + Duration::from_nanos((k * step).min(u64::MAX as u128) as u64)
}

fn duration_between(from: Timestamp, to: Timestamp) -> Duration {
    Duration::try_from(to.duration_since(from)).unwrap_or(Duration::ZERO)
}

/// FNV-1a: a stable spread of services over their interval, the same on every restart.
pub(super) fn stable_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r9_fixed_rate_grid_skips_missed_runs_instead_of_bursting() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        assert_eq!(next_on_grid(t0, 60 * s, t0 + 5 * s), t0 + 60 * s);
        assert_eq!(next_on_grid(t0, 60 * s, t0 + 150 * s), t0 + 180 * s);
    }

    #[test]
    fn services_are_spread_by_a_stable_hash() {
        assert_eq!(stable_hash("svc-1"), stable_hash("svc-1"));
        let offsets: std::collections::HashSet<u64> = (0..1000)
            .map(|i| stable_hash(&format!("svc-{i}")) % 60_000 / 1000)
            .collect();
        assert!(
            offsets.len() >= 55,
            "1,000 services fall in {} of 60 seconds",
            offsets.len()
        );
    }
}
