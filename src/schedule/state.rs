//! A service's state (R9) and its notification decisions (R11), as pure functions of results
//! and instants: no clock, no I/O.
//!
//! - After `max_attempts` consecutive non-OK results the state is HARD; the first OK after a
//!   HARD problem is a HARD recovery. An OK after a SOFT problem is a SOFT recovery.
//! - A HARD change to a problem notifies when the notification period is open, else the
//!   notification is held and sent when the period opens, if the problem is still HARD then.
//!   A recovery is notified only for a problem that was notified; outside the period it is
//!   held the same way, and dropped if the service fails again before the period opens.
//! - `unreachable` (the device's host check is HARD critical) never notifies.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::record::{NotificationType, State, StateType};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceState {
    pub state: State,
    pub state_type: StateType,
    /// Consecutive results in the current state (1 for the first).
    pub attempt: u32,
    /// When the state last changed.
    pub since: Timestamp,
    pub last_check: Option<Timestamp>,
    /// A problem was notified and its recovery has not been.
    pub notified_problem: bool,
    /// A notification waiting for the notification period.
    pub held: Option<Held>,
    /// When the current or last problem began (left OK): how long it lasted, in messages.
    #[serde(default)]
    pub problem_since: Option<Timestamp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Held {
    pub kind: NotificationType,
    pub since: Timestamp,
}

/// What one result changed.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Outcome {
    /// `(from, to, state type)` when the state changed, or became HARD.
    pub change: Option<(State, State, StateType)>,
    /// A notification to emit now: its type and how long it waited.
    pub notify: Option<(NotificationType, u64)>,
}

impl ServiceState {
    /// A service never checked: OK, as every monitoring system starts.
    pub fn new(at: Timestamp) -> ServiceState {
        ServiceState {
            state: State::Ok,
            state_type: StateType::Hard,
            attempt: 1,
            since: at,
            last_check: None,
            notified_problem: false,
            held: None,
            problem_since: None,
        }
    }

    /// Whether the next check is a retry (R9: `retry_interval_s` while not OK and not HARD).
    pub fn retrying(&self) -> bool {
        !self.state.is_ok() && self.state_type == StateType::Soft
    }

    /// Applies one result at `at`; `in_notification_period` is the period's state then.
    pub fn apply(&mut self, result: State, max_attempts: u32, at: Timestamp, in_notification_period: bool) -> Outcome {
        let before = (self.state, self.state_type);
        self.last_check = Some(at);
        if result.is_ok() {
            if self.state.is_ok() {
                self.attempt = 1;
                return Outcome::default();
            }
            let kind = self.state_type;
            self.state = State::Ok;
            self.state_type = StateType::Hard;
            self.attempt = 1;
            self.since = at;
            let mut outcome = Outcome {
                change: Some((before.0, State::Ok, kind)),
                notify: None,
            };
            if kind == StateType::Hard {
                outcome.notify = self.recovered(at, in_notification_period);
            }
            return outcome;
        }
        // A problem.
        if self.state.is_ok() {
            self.attempt = 1;
            self.problem_since = Some(at);
        } else if self.state_type == StateType::Soft {
            self.attempt = self.attempt.saturating_add(1);
        }
        let hard = self.state_type == StateType::Hard && !self.state.is_ok() || self.attempt >= max_attempts.max(1);
        self.state = result;
        self.state_type = if hard { StateType::Hard } else { StateType::Soft };
        if before == (self.state, self.state_type) {
            return Outcome::default();
        }
        if before.0 != result {
            self.since = at;
        }
        let mut outcome = Outcome {
            change: Some((before.0, result, self.state_type)),
            notify: None,
        };
        if self.state_type == StateType::Hard {
            outcome.notify = self.problem(at, in_notification_period);
        }
        outcome
    }

    /// A HARD problem began or changed (warning → critical…).
    fn problem(&mut self, at: Timestamp, in_period: bool) -> Option<(NotificationType, u64)> {
        if self.held.is_some_and(|h| h.kind == NotificationType::Recovery) {
            // The recovery never went out, so the problem it closed is still the one notified.
            self.held = None;
        }
        if self.state == State::Unreachable {
            return None;
        }
        if in_period {
            self.held = None;
            self.notified_problem = true;
            Some((NotificationType::Problem, 0))
        } else {
            if self.held.is_none() {
                self.held = Some(Held {
                    kind: NotificationType::Problem,
                    since: at,
                });
            }
            None
        }
    }

    fn recovered(&mut self, at: Timestamp, in_period: bool) -> Option<(NotificationType, u64)> {
        if self.held.is_some_and(|h| h.kind == NotificationType::Problem) {
            self.held = None; // the problem was never notified: no recovery either
        }
        if !self.notified_problem {
            return None;
        }
        if in_period {
            self.notified_problem = false;
            Some((NotificationType::Recovery, 0))
        } else {
            self.held = Some(Held {
                kind: NotificationType::Recovery,
                since: at,
            });
            None
        }
    }

    /// The notification period is open at `at`: a held notification goes out if it still holds.
    pub fn release(&mut self, at: Timestamp) -> Option<(NotificationType, u64)> {
        let held = self.held.take()?;
        let waited = (at.as_second() - held.since.as_second()).max(0) as u64;
        match held.kind {
            NotificationType::Problem
                if self.state_type == StateType::Hard && !self.state.is_ok() && self.state != State::Unreachable =>
            {
                self.notified_problem = true;
                Some((NotificationType::Problem, waited))
            }
            NotificationType::Recovery if self.state.is_ok() && self.notified_problem => {
                self.notified_problem = false;
                Some((NotificationType::Recovery, waited))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).expect("ts")
    }

    #[test]
    fn r9_max_attempts_non_ok_results_make_a_hard_state() {
        let mut s = ServiceState::new(t(0));
        let o = s.apply(State::Critical, 3, t(1), true);
        assert_eq!(o.change, Some((State::Ok, State::Critical, StateType::Soft)));
        assert!(s.retrying());
        assert_eq!(s.apply(State::Critical, 3, t(2), true), Outcome::default());
        assert_eq!(s.attempt, 2);
        let o = s.apply(State::Critical, 3, t(3), true);
        assert_eq!(o.change, Some((State::Critical, State::Critical, StateType::Hard)));
        assert_eq!(o.notify, Some((NotificationType::Problem, 0)));
        assert!(!s.retrying());
        assert_eq!(s.since, t(1), "the state began with the first soft result");
        // Staying HARD critical changes nothing.
        assert_eq!(s.apply(State::Critical, 3, t(4), true), Outcome::default());
    }

    #[test]
    fn r9_first_ok_after_a_hard_problem_is_a_hard_recovery() {
        let mut s = ServiceState::new(t(0));
        s.apply(State::Critical, 1, t(1), true);
        let o = s.apply(State::Ok, 1, t(2), true);
        assert_eq!(o.change, Some((State::Critical, State::Ok, StateType::Hard)));
        assert_eq!(o.notify, Some((NotificationType::Recovery, 0)));
        // A soft problem that clears is a soft recovery, never notified.
        s.apply(State::Warning, 3, t(3), true);
        let o = s.apply(State::Ok, 3, t(4), true);
        assert_eq!(o.change, Some((State::Warning, State::Ok, StateType::Soft)));
        assert_eq!(o.notify, None);
    }

    #[test]
    fn r9_a_hard_problem_that_changes_severity_is_a_hard_change() {
        let mut s = ServiceState::new(t(0));
        s.apply(State::Warning, 1, t(1), true);
        let o = s.apply(State::Critical, 1, t(2), true);
        assert_eq!(o.change, Some((State::Warning, State::Critical, StateType::Hard)));
        assert_eq!(o.notify, Some((NotificationType::Problem, 0)));
    }

    #[test]
    fn r11_problem_outside_the_period_is_held_and_released_when_it_opens() {
        let mut s = ServiceState::new(t(0));
        let o = s.apply(State::Critical, 1, t(10), false);
        assert_eq!(o.notify, None);
        assert_eq!(s.release(t(70)), Some((NotificationType::Problem, 60)));
        assert_eq!(s.release(t(80)), None, "released once");
        // Its recovery is then notified.
        assert_eq!(
            s.apply(State::Ok, 1, t(90), true).notify,
            Some((NotificationType::Recovery, 0))
        );
    }

    #[test]
    fn r11_held_problem_that_recovered_before_the_period_opens_is_never_sent() {
        let mut s = ServiceState::new(t(0));
        s.apply(State::Critical, 1, t(10), false);
        assert_eq!(s.apply(State::Ok, 1, t(20), false).notify, None);
        assert_eq!(s.release(t(70)), None);
        assert!(!s.notified_problem);
    }

    #[test]
    fn r11_recovery_only_for_a_notified_problem() {
        let mut s = ServiceState::new(t(0));
        s.apply(State::Critical, 1, t(10), false); // held
        assert_eq!(
            s.apply(State::Ok, 1, t(20), true).notify,
            None,
            "the problem was never notified"
        );
        // A notified problem whose recovery comes outside the period: held, then sent.
        s.apply(State::Critical, 1, t(30), true);
        assert_eq!(s.apply(State::Ok, 1, t(40), false).notify, None);
        assert_eq!(s.release(t(100)), Some((NotificationType::Recovery, 60)));
    }

    #[test]
    fn r9_unreachable_services_raise_no_notification() {
        let mut s = ServiceState::new(t(0));
        let o = s.apply(State::Unreachable, 1, t(1), true);
        assert_eq!(o.change, Some((State::Ok, State::Unreachable, StateType::Hard)));
        assert_eq!(o.notify, None);
        assert_eq!(s.apply(State::Ok, 1, t(2), true).notify, None);
    }
}
