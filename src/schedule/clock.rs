//! Wall-clock time for periods; scheduling itself runs on tokio's monotonic clock.

use jiff::Timestamp;

/// Where the scheduler reads the wall clock (periods are judged on it, R8).
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

/// The system's clock, steps and all.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A wall clock that starts at `base` and advances with tokio's clock, so that tests on
/// paused time see periods open and close as the scheduler's timers fire.
pub struct TokioClock {
    base: Timestamp,
    start: tokio::time::Instant,
}

impl TokioClock {
    pub fn starting_at(base: Timestamp) -> TokioClock {
        TokioClock {
            base,
            start: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Timestamp {
        let elapsed = tokio::time::Instant::now().saturating_duration_since(self.start);
        self.base
            .checked_add(jiff::SignedDuration::try_from(elapsed).unwrap_or(jiff::SignedDuration::MAX))
            .unwrap_or(self.base)
    }
}
