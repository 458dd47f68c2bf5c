//! What the status endpoint and the watchdog see of the running scheduler: a snapshot of every
//! service, built on demand and shared for a second, and the handle that asks for it.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::slot::Slot;
use super::{Figures, Scheduler};
use crate::document::CheckKind;
use crate::record::{State, StateType, Window};
use crate::rules::Plan;

/// A snapshot younger than this is shared by the requests that ask for one.
const SNAPSHOT_REUSE: Duration = Duration::from_secs(1);
/// How long a request waits for the scheduler's answer.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(2);

/// A service's state as the status endpoint shows it: `pending` until its first result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewState {
    Pending,
    Checked(State),
}

impl ViewState {
    pub fn as_str(self) -> &'static str {
        match self {
            ViewState::Pending => "pending",
            ViewState::Checked(state) => state.as_str(),
        }
    }

    /// Checked, and not OK: what an operator looks at first.
    pub fn is_problem(self) -> bool {
        matches!(self, ViewState::Checked(state) if !state.is_ok())
    }
}

impl Serialize for ViewState {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// How much a snapshot holds, each level with all of the one before. A view costs about 140
/// bytes a service and availability 150 more and a walk of its history: only the reports
/// that show them ask for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Detail {
    /// Every service's device and state ([`Snapshot::tally`]), and views of the problems only.
    Summary,
    /// A view of every service.
    States,
    /// And every service's availability.
    Availability,
}

/// One service as the status endpoint shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceView {
    // Shared with the scheduler's slots: a snapshot of 20,000 services copies no text.
    pub id: Arc<str>,
    pub device: Arc<str>,
    /// The device's index in the snapshot's plan.
    #[serde(skip)]
    pub device_index: u32,
    /// The service's index in the snapshot's plan.
    #[serde(skip)]
    pub service_index: u32,
    pub kind: CheckKind,
    pub state: ViewState,
    pub state_type: StateType,
    pub attempt: u32,
    pub since: Timestamp,
    pub last_check: Option<Timestamp>,
    pub next_check: Option<Timestamp>,
    pub output: Arc<str>,
    pub duration_ms: Option<u64>,
    pub in_control_period: bool,
    /// Covered by a maintenance now (R13).
    pub in_maintenance: bool,
    /// Flapping (R15).
    pub flapping: bool,
    /// Who acknowledged its problem, when, and why (R16).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acknowledgement: Option<Box<super::state::Ack>>,
}

/// The live state, built when the status endpoint asks (nobody watching costs nothing).
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// The plan these services come from: views and plan always match.
    #[serde(skip)]
    pub plan: Arc<Plan>,
    pub at: Timestamp,
    /// Every service's device (its index in the plan) and state, in the order of the slots.
    #[serde(skip)]
    pub tally: Vec<(u32, ViewState)>,
    /// Every service, or at [`Detail::Summary`] only those checked and not OK.
    pub services: Vec<ServiceView>,
    /// Each service's availability for the day, 24 h and 30 d, in the order of `services`:
    /// empty unless asked for ([`Detail::Availability`]).
    #[serde(skip)]
    pub availability: Vec<[Figures; 3]>,
    #[serde(skip)]
    pub detail: Detail,
    /// Checks running now.
    pub running: usize,
    /// Services covered by a maintenance, flapping, acknowledged (R13, R15, R16).
    pub quiet: Quiet,
    /// The maintenances applied: the document's, then those of commands and the command line.
    #[serde(skip)]
    pub maintenances: Arc<Vec<super::InForce>>,
}

/// Counts of services whose problems are not notified, and why.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Quiet {
    pub in_maintenance: u64,
    pub flapping: u64,
    pub acknowledged: u64,
}

/// What the status endpoint and the watchdog ask the running scheduler.
pub(super) enum Ask {
    Snapshot(Detail, oneshot::Sender<Arc<Snapshot>>),
    /// Only whether its loop answers: liveness without building 20,000 views.
    Ping(oneshot::Sender<()>),
}

/// Asks the running scheduler for its live state; cheap to clone.
#[derive(Clone)]
pub struct Snapshots {
    pub(super) requests: mpsc::Sender<Ask>,
}

impl Snapshots {
    /// The live state, or `None` when the scheduler does not answer within two seconds
    /// (stopped, or stuck: `/healthz` says so).
    pub async fn get(&self, detail: Detail) -> Option<Arc<Snapshot>> {
        self.ask(|reply| Ask::Snapshot(detail, reply)).await
    }

    /// Whether the scheduler's loop answers within two seconds.
    pub async fn alive(&self) -> bool {
        self.ask(Ask::Ping).await.is_some()
    }

    async fn ask<T>(&self, ask: impl FnOnce(oneshot::Sender<T>) -> Ask) -> Option<T> {
        let (reply, answer) = oneshot::channel();
        let asked = async {
            self.requests.send(ask(reply)).await.ok()?;
            answer.await.ok()
        };
        tokio::time::timeout(SNAPSHOT_WAIT, asked).await.ok().flatten()
    }
}

impl Scheduler {
    /// The live state now, or the one built less than [`SNAPSHOT_REUSE`] ago if a request
    /// still holds it and it has the detail asked for.
    pub(super) fn snapshot(&mut self, detail: Detail) -> Arc<Snapshot> {
        if let Some((at, weak)) = &self.last_snapshot
            && at.elapsed() < SNAPSHOT_REUSE
            && let Some(snapshot) = weak.upgrade()
            && snapshot.detail >= detail
        {
            return snapshot;
        }
        let snapshot = Arc::new(self.build_snapshot(detail));
        self.last_snapshot = Some((Instant::now(), Arc::downgrade(&snapshot)));
        snapshot
    }

    fn build_snapshot(&self, detail: Detail) -> Snapshot {
        let wall = self.clock.now();
        let now = Instant::now();
        let tally = self.slots.iter().map(|s| (s.device, view_state(s))).collect();
        let services = self
            .slots
            .iter()
            .filter(|s| detail > Detail::Summary || view_state(s).is_problem())
            .map(|s| {
                let st = &s.saved.state;
                ServiceView {
                    id: s.origin.service.clone(),
                    device: s.origin.device.clone(),
                    device_index: s.device,
                    service_index: s.service,
                    kind: s.kind,
                    state: view_state(s),
                    state_type: st.state_type,
                    attempt: st.attempt,
                    since: st.since,
                    last_check: st.last_check,
                    next_check: s.check_due.and_then(|due| {
                        wall.checked_add(jiff::SignedDuration::try_from(due.saturating_duration_since(now)).ok()?)
                            .ok()
                    }),
                    output: s.last_output.clone(),
                    duration_ms: s.last_duration_ms.map(u64::from),
                    in_control_period: s.in_control,
                    in_maintenance: s.covered,
                    flapping: st.flapping,
                    acknowledgement: st.ack.clone(),
                }
            })
            .collect();
        let availability = match detail {
            Detail::Summary | Detail::States => Vec::new(),
            Detail::Availability => self
                .slots
                .iter()
                .map(|s| Window::ALL.map(|w| s.saved.availability.figures(w, wall, &s.tz, s.target)))
                .collect(),
        };
        let running = self.slots.iter().filter(|s| s.running).count();
        let mut quiet = Quiet::default();
        for s in &self.slots {
            quiet.in_maintenance += u64::from(s.covered);
            quiet.flapping += u64::from(s.saved.state.flapping);
            quiet.acknowledged += u64::from(s.saved.state.ack.is_some());
        }
        Snapshot {
            plan: self.plan.clone(),
            at: wall,
            tally,
            services,
            availability,
            detail,
            running,
            quiet,
            maintenances: self.maintenances.clone(),
        }
    }
}

/// A service's state as a view shows it: `pending` until its first result.
fn view_state(s: &Slot) -> ViewState {
    match s.saved.state.last_check {
        Some(_) => ViewState::Checked(s.saved.state.state),
        None => ViewState::Pending,
    }
}
