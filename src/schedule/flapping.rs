//! R15: a service's last 21 statuses and their weighted state-change percentage, as Nagios
//! and Icinga compute it: the 20 transitions weigh from 0.8 (oldest) to 1.2 (newest), so
//! recent changes count more, and a service that changes at every result scores 100.

use serde::{Deserialize, Serialize};

use crate::record::State;

/// Results kept: 21 statuses make 20 transitions.
const KEPT: u8 = 21;
const TRANSITIONS: usize = KEPT as usize - 1;

/// The statuses of the last results, newest in the low 3 bits; 21 × 3 = 63 bits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recent {
    bits: u64,
    len: u8,
}

/// When a service starts and stops flapping (percentages; `f32`: kept in every slot).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub high: f32,
    pub low: f32,
}

impl Recent {
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn push(&mut self, state: State) {
        self.bits = (self.bits << 3 | state.code() as u64) & ((1u64 << (3 * KEPT as u32)) - 1);
        self.len = (self.len + 1).min(KEPT);
    }

    fn status(&self, back: usize) -> u64 {
        (self.bits >> (3 * back)) & 0x7
    }

    /// The weighted state-change percentage. With fewer than 21 results, the missing
    /// transitions count as no change (as a history filled with the first status would).
    pub fn change_pct(&self) -> f64 {
        let transitions = usize::from(self.len.saturating_sub(1));
        let mut weighted = 0.0;
        // `back` 0 is the newest transition (weight 1.2), 19 the oldest (0.8).
        for back in 0..transitions {
            if self.status(back) != self.status(back + 1) {
                weighted += 0.8 + 0.4 * (TRANSITIONS - 1 - back) as f64 / (TRANSITIONS - 1) as f64;
            }
        }
        100.0 * weighted / TRANSITIONS as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r15_a_status_that_changes_at_every_result_scores_100() {
        let mut r = Recent::default();
        for i in 0..40 {
            r.push(if i % 2 == 0 { State::Ok } else { State::Critical });
        }
        assert!((r.change_pct() - 100.0).abs() < 1e-9, "{}", r.change_pct());
    }

    #[test]
    fn r15_newer_changes_weigh_more_than_older_ones() {
        let mut newest = Recent::default();
        let mut oldest = Recent::default();
        for i in 0..21 {
            newest.push(if i == 20 { State::Critical } else { State::Ok });
            oldest.push(if i == 0 { State::Critical } else { State::Ok });
        }
        // One change: 1.2 / 20 and 0.8 / 20.
        assert!((newest.change_pct() - 6.0).abs() < 1e-9, "{}", newest.change_pct());
        assert!((oldest.change_pct() - 4.0).abs() < 1e-9, "{}", oldest.change_pct());
    }

    #[test]
    fn r15_only_the_last_21_results_count() {
        let mut r = Recent::default();
        for i in 0..20 {
            r.push(if i % 2 == 0 { State::Ok } else { State::Warning });
        }
        for _ in 0..21 {
            r.push(State::Ok);
        }
        assert_eq!(r.change_pct(), 0.0);
    }
}
