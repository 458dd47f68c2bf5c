//! A service's state (R9) and its notification decisions (R11, R13, R15, R16), as pure
//! functions of results and instants: no clock, no I/O.
//!
//! - After `max_attempts` consecutive non-OK results the state is HARD; the first OK after a
//!   HARD problem is a HARD recovery. An OK after a SOFT problem is a SOFT recovery.
//! - A HARD change to a problem notifies when the notification period is open, else the
//!   notification is held and sent when the period opens, if the problem is still HARD then.
//!   A recovery is notified only for a problem that was notified; outside the period it is
//!   held the same way, and dropped if the service fails again before the period opens.
//! - `unreachable` (the device's host check is HARD critical) never notifies.
//! - While the service is *quiet* (covered by a maintenance, or flapping) problems and
//!   recoveries are not notified; when it stops being quiet, [`ServiceState::settle`] notifies
//!   the difference between what was last notified and the current HARD state (R13).
//! - An acknowledged problem is not notified again (sticky until the recovery, R16).

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::flapping::{Recent, Thresholds};
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
    /// A problem or recovery notification waiting for the notification period.
    pub held: Option<Held>,
    /// When the current or last problem began (left OK): how long it lasted, in messages.
    #[serde(default)]
    pub problem_since: Option<Timestamp>,
    /// The last statuses, kept only with flap detection (R15).
    #[serde(default, skip_serializing_if = "Recent::is_empty")]
    pub recent: Recent,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub flapping: bool,
    /// A flapping notification waiting for the notification period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_flapping: Option<Held>,
    /// When the current problem was last notified, and how many times it was re-notified (R16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_notice: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub repeat: u32,
    /// Boxed: kept in every service's state, rarely set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack: Option<Box<Ack>>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Held {
    pub kind: NotificationType,
    pub since: Timestamp,
}

/// Someone took a problem in hand (R16).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    pub author: String,
    pub comment: String,
    pub at: Timestamp,
}

/// A notification to emit now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Notice {
    pub kind: NotificationType,
    /// How long it waited for the notification period.
    pub held_s: u64,
    /// 0 for a problem's first notice, then 1, 2… (R16).
    pub repeat: u32,
}

impl Notice {
    fn now(kind: NotificationType) -> Notice {
        Notice {
            kind,
            held_s: 0,
            repeat: 0,
        }
    }
}

/// What the service's settings and the instant say about one result.
#[derive(Debug, Clone, Copy)]
pub struct Context {
    pub max_attempts: u32,
    pub in_notification_period: bool,
    /// Covered by a maintenance (R13): nothing is notified.
    pub in_maintenance: bool,
    /// Flap detection's thresholds, when it is on (R15).
    pub flap: Option<Thresholds>,
}

/// What one result changed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Outcome {
    /// `(from, to, state type)` when the state changed, or became HARD.
    pub change: Option<(State, State, StateType)>,
    /// Notifications to emit now, in order.
    pub notices: Vec<Notice>,
}

/// An acknowledgement needs a problem to acknowledge.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("the service has no HARD problem to acknowledge (it is {0})")]
pub struct NothingToAcknowledge(pub &'static str);

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
            recent: Recent::default(),
            flapping: false,
            held_flapping: None,
            last_notice: None,
            repeat: 0,
            ack: None,
        }
    }

    /// Whether the next check is a retry (R9: `retry_interval_s` while not OK and not HARD).
    pub fn retrying(&self) -> bool {
        !self.state.is_ok() && self.state_type == StateType::Soft
    }

    fn hard_problem(&self) -> bool {
        self.state_type == StateType::Hard && !self.state.is_ok() && self.state != State::Unreachable
    }

    /// Applies one result at `at`.
    pub fn apply(&mut self, result: State, ctx: Context, at: Timestamp) -> Outcome {
        self.last_check = Some(at);
        let mut notices = Vec::new();
        let flap = self.track_flapping(result, ctx.flap);
        match flap {
            Some(true) => {
                // Its problems go unnotified from now on; the end settles the difference.
                self.held = None;
                self.flapping_notice(NotificationType::FlappingStart, at, ctx, &mut notices);
            }
            Some(false) => self.flapping_notice(NotificationType::FlappingEnd, at, ctx, &mut notices),
            None => {}
        }
        let quiet = self.flapping || ctx.in_maintenance;
        let change = self.transition(result, ctx.max_attempts, at);
        if let Some((_, to, StateType::Hard)) = change {
            let notice = if quiet {
                self.drop_held_against(to);
                None
            } else if to.is_ok() {
                self.recovered(at, ctx.in_notification_period)
            } else {
                self.problem(at, ctx.in_notification_period)
            };
            notices.extend(notice);
        }
        if flap == Some(false) && !ctx.in_maintenance {
            notices.extend(self.settle(at, ctx.in_notification_period));
        }
        Outcome { change, notices }
    }

    /// R9: the new state after `result`, and the change when there is one.
    fn transition(&mut self, result: State, max_attempts: u32, at: Timestamp) -> Option<(State, State, StateType)> {
        let before = (self.state, self.state_type);
        if result.is_ok() {
            if self.state.is_ok() {
                self.attempt = 1;
                return None;
            }
            let kind = self.state_type;
            self.state = State::Ok;
            self.state_type = StateType::Hard;
            self.attempt = 1;
            self.since = at;
            if kind == StateType::Hard {
                self.ack = None; // R16: it ends with the recovery
            }
            return Some((before.0, State::Ok, kind));
        }
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
            return None;
        }
        if before.0 != result {
            self.since = at;
        }
        Some((before.0, result, self.state_type))
    }

    /// R15: keeps the status and says whether flapping started (`true`) or stopped (`false`).
    fn track_flapping(&mut self, result: State, flap: Option<Thresholds>) -> Option<bool> {
        let Some(t) = flap else {
            self.recent = Recent::default();
            // Flap detection was turned off while flapping: that ends it.
            return std::mem::take(&mut self.flapping).then_some(false);
        };
        self.recent.push(result);
        let pct = self.recent.change_pct();
        if !self.flapping && pct >= f64::from(t.high) {
            self.flapping = true;
            Some(true)
        } else if self.flapping && pct < f64::from(t.low) {
            self.flapping = false;
            Some(false)
        } else {
            None
        }
    }

    fn flapping_notice(&mut self, kind: NotificationType, at: Timestamp, ctx: Context, out: &mut Vec<Notice>) {
        if kind == NotificationType::FlappingEnd
            && self
                .held_flapping
                .is_some_and(|h| h.kind == NotificationType::FlappingStart)
        {
            self.held_flapping = None; // nobody was told it started
            return;
        }
        if ctx.in_maintenance {
            return;
        }
        if ctx.in_notification_period {
            self.held_flapping = None;
            out.push(Notice::now(kind));
        } else {
            self.held_flapping = Some(Held { kind, since: at });
        }
    }

    /// A held notification the current state contradicts goes (quiet changes notify nothing).
    fn drop_held_against(&mut self, now: State) {
        let contradicted = match self.held.map(|h| h.kind) {
            Some(NotificationType::Problem) => now.is_ok(),
            Some(NotificationType::Recovery) => !now.is_ok(),
            _ => false,
        };
        if contradicted {
            self.held = None;
        }
    }

    /// A HARD problem began or changed (warning → critical…).
    fn problem(&mut self, at: Timestamp, in_period: bool) -> Option<Notice> {
        if self.held.is_some_and(|h| h.kind == NotificationType::Recovery) {
            // The recovery never went out, so the problem it closed is still the one notified.
            self.held = None;
        }
        if self.state == State::Unreachable || self.ack.is_some() {
            return None;
        }
        if in_period {
            self.held = None;
            Some(self.notified(at, 0))
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

    /// A problem notice goes out now.
    fn notified(&mut self, at: Timestamp, held_s: u64) -> Notice {
        self.notified_problem = true;
        self.last_notice = Some(at);
        self.repeat = 0;
        Notice {
            kind: NotificationType::Problem,
            held_s,
            repeat: 0,
        }
    }

    fn recovered(&mut self, at: Timestamp, in_period: bool) -> Option<Notice> {
        if self.held.is_some_and(|h| h.kind == NotificationType::Problem) {
            self.held = None; // the problem was never notified: no recovery either
        }
        if !self.notified_problem {
            return None;
        }
        if in_period {
            self.recovery_sent();
            Some(Notice::now(NotificationType::Recovery))
        } else {
            self.held = Some(Held {
                kind: NotificationType::Recovery,
                since: at,
            });
            None
        }
    }

    fn recovery_sent(&mut self) {
        self.notified_problem = false;
        self.last_notice = None;
        self.repeat = 0;
    }

    /// R13's difference rule, when the service stops being quiet: notifies a HARD problem that
    /// was not, or the recovery of one that was (held when the period is closed).
    pub fn settle(&mut self, at: Timestamp, in_period: bool) -> Option<Notice> {
        if self.flapping {
            return None;
        }
        if self.hard_problem() && !self.notified_problem {
            self.problem(at, in_period)
        } else if self.state.is_ok() && self.notified_problem {
            self.recovered(at, in_period)
        } else {
            None
        }
    }

    /// The notification period is open at `at`: held notifications go out if they still hold.
    /// Nothing is released while the service is quiet (`settle` decides at its end).
    pub fn release(&mut self, at: Timestamp, in_maintenance: bool) -> Vec<Notice> {
        let mut out = Vec::new();
        if in_maintenance {
            return out;
        }
        let waited = |h: Held| (at.as_second() - h.since.as_second()).max(0) as u64;
        if let Some(held) = self.held_flapping.take() {
            let current = match held.kind {
                NotificationType::FlappingStart => self.flapping,
                _ => !self.flapping,
            };
            if current {
                out.push(Notice {
                    kind: held.kind,
                    held_s: waited(held),
                    repeat: 0,
                });
            }
        }
        if self.flapping {
            self.held = None;
            return out;
        }
        let Some(held) = self.held.take() else {
            return out;
        };
        match held.kind {
            NotificationType::Problem if self.hard_problem() && self.ack.is_none() => {
                out.push(self.notified(at, waited(held)));
            }
            NotificationType::Recovery if self.state.is_ok() && self.notified_problem => {
                self.recovery_sent();
                out.push(Notice {
                    kind: NotificationType::Recovery,
                    held_s: waited(held),
                    repeat: 0,
                });
            }
            _ => {}
        }
        out
    }

    /// Whether anything waits for the notification period.
    pub fn holds(&self) -> bool {
        self.held.is_some() || self.held_flapping.is_some()
    }

    /// R16: when the current problem is due to be notified again (`renotify_s` 0: never).
    pub fn renotify_due(&self, renotify_s: u32) -> Option<Timestamp> {
        if renotify_s == 0 || !self.notified_problem || !self.hard_problem() || self.ack.is_some() || self.flapping {
            return None;
        }
        let last = self.last_notice?;
        last.checked_add(jiff::SignedDuration::from_secs(i64::from(renotify_s)))
            .ok()
    }

    /// R16: the problem is notified again now (the caller checked the period and coverage).
    pub fn renotify(&mut self, at: Timestamp, renotify_s: u32) -> Option<Notice> {
        if self.renotify_due(renotify_s)? > at {
            return None;
        }
        self.last_notice = Some(at);
        self.repeat = self.repeat.saturating_add(1);
        Some(Notice {
            kind: NotificationType::Problem,
            held_s: 0,
            repeat: self.repeat,
        })
    }

    /// R16: acknowledges the current HARD problem: no more re-notifications, and a held problem
    /// notification is dropped. It ends with the recovery.
    pub fn acknowledge(&mut self, ack: Ack) -> Result<(), NothingToAcknowledge> {
        if self.state.is_ok() || self.state_type != StateType::Hard {
            let now = if self.state.is_ok() { "ok" } else { "not yet HARD" };
            return Err(NothingToAcknowledge(now));
        }
        if self.held.is_some_and(|h| h.kind == NotificationType::Problem) {
            self.held = None;
        }
        self.ack = Some(Box::new(ack));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).expect("ts")
    }

    fn cx(max_attempts: u32, in_notification_period: bool) -> Context {
        Context {
            max_attempts,
            in_notification_period,
            in_maintenance: false,
            flap: None,
        }
    }

    fn notice(kind: NotificationType, held_s: u64) -> Notice {
        Notice {
            kind,
            held_s,
            repeat: 0,
        }
    }

    #[test]
    fn r9_max_attempts_non_ok_results_make_a_hard_state() {
        let mut s = ServiceState::new(t(0));
        let o = s.apply(State::Critical, cx(3, true), t(1));
        assert_eq!(o.change, Some((State::Ok, State::Critical, StateType::Soft)));
        assert!(s.retrying());
        assert_eq!(s.apply(State::Critical, cx(3, true), t(2)), Outcome::default());
        assert_eq!(s.attempt, 2);
        let o = s.apply(State::Critical, cx(3, true), t(3));
        assert_eq!(o.change, Some((State::Critical, State::Critical, StateType::Hard)));
        assert_eq!(o.notices, vec![notice(NotificationType::Problem, 0)]);
        assert!(!s.retrying());
        assert_eq!(s.since, t(1), "the state began with the first soft result");
        // Staying HARD critical changes nothing.
        assert_eq!(s.apply(State::Critical, cx(3, true), t(4)), Outcome::default());
    }

    #[test]
    fn r9_first_ok_after_a_hard_problem_is_a_hard_recovery() {
        let mut s = ServiceState::new(t(0));
        s.apply(State::Critical, cx(1, true), t(1));
        let o = s.apply(State::Ok, cx(1, true), t(2));
        assert_eq!(o.change, Some((State::Critical, State::Ok, StateType::Hard)));
        assert_eq!(o.notices, vec![notice(NotificationType::Recovery, 0)]);
        // A soft problem that clears is a soft recovery, never notified.
        s.apply(State::Warning, cx(3, true), t(3));
        let o = s.apply(State::Ok, cx(3, true), t(4));
        assert_eq!(o.change, Some((State::Warning, State::Ok, StateType::Soft)));
        assert_eq!(o.notices, vec![]);
    }

    #[test]
    fn r9_a_hard_problem_that_changes_severity_is_a_hard_change() {
        let mut s = ServiceState::new(t(0));
        s.apply(State::Warning, cx(1, true), t(1));
        let o = s.apply(State::Critical, cx(1, true), t(2));
        assert_eq!(o.change, Some((State::Warning, State::Critical, StateType::Hard)));
        assert_eq!(o.notices, vec![notice(NotificationType::Problem, 0)]);
    }

    #[test]
    fn r11_problem_outside_the_period_is_held_and_released_when_it_opens() {
        let mut s = ServiceState::new(t(0));
        let o = s.apply(State::Critical, cx(1, false), t(10));
        assert_eq!(o.notices, vec![]);
        assert_eq!(s.release(t(70), false), vec![notice(NotificationType::Problem, 60)]);
        assert_eq!(s.release(t(80), false), vec![], "released once");
        // Its recovery is then notified.
        assert_eq!(
            s.apply(State::Ok, cx(1, true), t(90)).notices,
            vec![notice(NotificationType::Recovery, 0)]
        );
    }

    #[test]
    fn r11_held_problem_that_recovered_before_the_period_opens_is_never_sent() {
        let mut s = ServiceState::new(t(0));
        s.apply(State::Critical, cx(1, false), t(10));
        assert_eq!(s.apply(State::Ok, cx(1, false), t(20)).notices, vec![]);
        assert_eq!(s.release(t(70), false), vec![]);
        assert!(!s.notified_problem);
    }

    #[test]
    fn r11_recovery_only_for_a_notified_problem() {
        let mut s = ServiceState::new(t(0));
        s.apply(State::Critical, cx(1, false), t(10)); // held
        assert_eq!(
            s.apply(State::Ok, cx(1, true), t(20)).notices,
            vec![],
            "the problem was never notified"
        );
        // A notified problem whose recovery comes outside the period: held, then sent.
        s.apply(State::Critical, cx(1, true), t(30));
        assert_eq!(s.apply(State::Ok, cx(1, false), t(40)).notices, vec![]);
        assert_eq!(s.release(t(100), false), vec![notice(NotificationType::Recovery, 60)]);
    }

    #[test]
    fn r9_unreachable_services_raise_no_notification() {
        let mut s = ServiceState::new(t(0));
        let o = s.apply(State::Unreachable, cx(1, true), t(1));
        assert_eq!(o.change, Some((State::Ok, State::Unreachable, StateType::Hard)));
        assert_eq!(o.notices, vec![]);
        assert_eq!(s.apply(State::Ok, cx(1, true), t(2)).notices, vec![]);
    }

    fn quiet(max_attempts: u32, in_notification_period: bool) -> Context {
        Context {
            in_maintenance: true,
            ..cx(max_attempts, in_notification_period)
        }
    }

    fn kinds(notices: &[Notice]) -> Vec<NotificationType> {
        notices.iter().map(|n| n.kind).collect()
    }

    #[test]
    fn r13_problem_inside_maintenance_is_not_notified_and_settled_at_its_end() {
        let mut s = ServiceState::new(t(0));
        assert_eq!(s.apply(State::Critical, quiet(1, true), t(1)).notices, vec![]);
        assert!(!s.holds(), "nothing held either");
        // Still HARD when the maintenance ends: notified once.
        assert_eq!(s.settle(t(100), true), Some(notice(NotificationType::Problem, 0)));
        assert_eq!(s.settle(t(101), true), None, "they agree now");
    }

    #[test]
    fn r13_problem_that_recovered_inside_maintenance_is_never_notified() {
        let mut s = ServiceState::new(t(0));
        s.apply(State::Critical, quiet(1, true), t(1));
        assert_eq!(s.apply(State::Ok, quiet(1, true), t(2)).notices, vec![]);
        assert_eq!(s.settle(t(100), true), None);
    }

    #[test]
    fn r13_notified_before_and_recovered_inside_gives_the_recovery_at_the_end() {
        let mut s = ServiceState::new(t(0));
        s.apply(State::Critical, cx(1, true), t(1));
        assert_eq!(s.apply(State::Ok, quiet(1, true), t(2)).notices, vec![]);
        // The period is closed at the end: held, then released.
        assert_eq!(s.settle(t(100), false), None);
        assert_eq!(s.release(t(160), false), vec![notice(NotificationType::Recovery, 60)]);
    }

    #[test]
    fn r13_nothing_held_is_released_inside_a_maintenance() {
        let mut s = ServiceState::new(t(0));
        s.apply(State::Critical, cx(1, false), t(1)); // held
        assert_eq!(s.release(t(50), true), vec![]);
        assert_eq!(s.release(t(60), false), vec![notice(NotificationType::Problem, 59)]);
    }

    fn flappy(max_attempts: u32) -> Context {
        Context {
            flap: Some(Thresholds { high: 30.0, low: 25.0 }),
            ..cx(max_attempts, true)
        }
    }

    use NotificationType::{FlappingEnd, FlappingStart, Problem, Recovery};

    #[test]
    fn r15_a_service_alternating_every_check_flaps_once_and_settles_with_the_difference() {
        let mut s = ServiceState::new(t(0));
        let mut all = Vec::new();
        for i in 0..40 {
            let status = if i % 2 == 0 { State::Critical } else { State::Ok };
            all.extend(s.apply(status, flappy(1), t(i + 1)).notices);
        }
        assert!(s.flapping);
        // Six changes in a row weigh 34% (≥ 30): the 7th result (critical) starts it, and the
        // problem it brings is not notified; nothing else is until it settles.
        assert_eq!(
            kinds(&all),
            vec![Problem, Recovery, Problem, Recovery, Problem, Recovery, FlappingStart]
        );
        // It settles critical: flapping_end, then the difference (a problem never notified).
        let mut end = Vec::new();
        let mut i = 41;
        while s.flapping && i < 100 {
            end.extend(s.apply(State::Critical, flappy(1), t(i)).notices);
            i += 1;
        }
        assert_eq!(kinds(&end), vec![FlappingEnd, Problem]);
        assert!(s.notified_problem);
    }

    #[test]
    fn r15_flapping_that_settles_ok_notifies_the_recovery_of_a_problem_notified_before() {
        let mut s = ServiceState::new(t(0));
        let mut all = Vec::new();
        // OK, critical, OK…: the 7th result (OK) starts flapping, and its recovery goes unsaid.
        for i in 0..7 {
            let status = if i % 2 == 0 { State::Ok } else { State::Critical };
            all.extend(s.apply(status, flappy(1), t(i + 1)).notices);
        }
        assert_eq!(
            kinds(&all),
            vec![Problem, Recovery, Problem, Recovery, Problem, FlappingStart]
        );
        let mut end = Vec::new();
        let mut i = 8;
        while s.flapping && i < 100 {
            end.extend(s.apply(State::Ok, flappy(1), t(i)).notices);
            i += 1;
        }
        assert_eq!(kinds(&end), vec![FlappingEnd, Recovery]);
        assert!(!s.notified_problem, "what was notified and the state agree");
    }

    #[test]
    fn r15_flapping_notices_wait_for_the_notification_period() {
        let mut s = ServiceState::new(t(0));
        let closed = Context {
            in_notification_period: false,
            ..flappy(1)
        };
        let mut i = 1;
        while !s.flapping {
            let status = if i % 2 == 0 { State::Ok } else { State::Warning };
            assert_eq!(s.apply(status, closed, t(i)).notices, vec![]);
            i += 1;
        }
        let released = s.release(t(1000), false);
        assert_eq!(kinds(&released), vec![FlappingStart]);
    }

    #[test]
    fn r16_a_notified_problem_is_due_again_every_renotify_s_until_acknowledged() {
        let mut s = ServiceState::new(t(0));
        assert_eq!(s.renotify_due(600), None);
        s.apply(State::Critical, cx(1, true), t(10));
        assert_eq!(s.renotify_due(0), None, "0 = never");
        assert_eq!(s.renotify_due(600), Some(t(610)));
        assert_eq!(s.renotify(t(300), 600), None, "not due yet");
        let n = s.renotify(t(610), 600).expect("due");
        assert_eq!((n.kind, n.repeat), (NotificationType::Problem, 1));
        assert_eq!(s.renotify(t(1210), 600).map(|n| n.repeat), Some(2));
        let ack = Ack {
            author: "jo".into(),
            comment: "on it".into(),
            at: t(1300),
        };
        s.acknowledge(ack).expect("a HARD problem");
        assert_eq!(s.renotify_due(600), None);
        // Recovery: notified as usual, and the acknowledgement ends with it.
        assert_eq!(
            kinds(&s.apply(State::Ok, cx(1, true), t(1400)).notices),
            vec![NotificationType::Recovery]
        );
        assert_eq!(s.ack, None);
        // The next problem starts at repeat 0 again.
        assert_eq!(s.apply(State::Critical, cx(1, true), t(1500)).notices[0].repeat, 0);
    }

    #[test]
    fn r16_acknowledging_drops_a_held_problem_and_needs_a_hard_problem() {
        let mut s = ServiceState::new(t(0));
        let ack = |at| Ack {
            author: "jo".into(),
            comment: String::new(),
            at: t(at),
        };
        assert_eq!(s.acknowledge(ack(1)), Err(NothingToAcknowledge("ok")));
        s.apply(State::Critical, cx(3, true), t(2));
        assert!(s.acknowledge(ack(3)).is_err(), "soft");
        s.apply(State::Critical, cx(1, false), t(4)); // HARD, held
        assert!(s.holds());
        s.acknowledge(ack(5)).expect("HARD");
        assert_eq!(s.release(t(100), false), vec![]);
        // A change of severity while acknowledged is not notified (sticky until recovery).
        assert_eq!(s.apply(State::Warning, cx(1, true), t(110)).notices, vec![]);
        // Its recovery: the problem was never notified, so nothing.
        assert_eq!(s.apply(State::Ok, cx(1, true), t(120)).notices, vec![]);
    }
}
