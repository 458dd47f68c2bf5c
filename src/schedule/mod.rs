//! The scheduler: which check runs when (R8, R9), states (R9), availability (R10) and
//! notification decisions (R11), committing every record to the store.
//!
//! One task owns every service's slot. Due times live in a min-heap on tokio's monotonic
//! clock, so a wall-clock step neither stalls nor bursts the schedule; only periods are judged
//! on the wall clock ([`Clock`]). Each service has a stable offset inside its interval
//! (a hash of its id), so thousands of services at 60 s are spread over the minute, and runs at
//! a fixed rate on that grid. Outside its control period a service is not checked: the
//! scheduler sleeps until the period's next change instead of polling the clock.
//!
//! Checks run as their own tasks, bounded by a global, a per-kind and a per-device semaphore,
//! and send their result back on a channel; only the scheduler task touches slots.

pub mod availability;
pub mod clock;
pub mod metrics;
pub mod state;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::document::{Aspect, CheckKind, CheckParams, Snmp};
use crate::probe::http::HttpProber;
use crate::probe::icmp::IcmpProber;
use crate::probe::snmp::SnmpProber;
use crate::probe::{CheckResult, Status};
use crate::record::{Body, Origin, Record, State, StateType, Window};
use crate::rules::{Plan, Schedule};
use crate::settings::Limits;
use crate::store::{Item, Store};

pub use availability::{Availability, Figures};
pub use clock::{Clock, SystemClock, TokioClock};
pub use metrics::Metrics;
pub use state::ServiceState;

/// How often each service's availability is sent as records.
const AVAILABILITY_EVERY: Duration = Duration::from_secs(3600);
/// A snapshot younger than this is shared by the requests that ask for one.
const SNAPSHOT_REUSE: Duration = Duration::from_secs(1);
/// How long a request waits for the scheduler's answer.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(2);
/// How often what the checks produced goes to the store in one request: waking the store's
/// thread for every result cost more CPU than the result (the store commits every 2 s anyway).
const FLUSH_EVERY: Duration = Duration::from_millis(500);
/// How often the scheduler marks the store with the time it is still running and checking:
/// after a crash, availability counts until the last mark (a row of `meta`, with the next
/// group commit: a few bytes a minute).
const ALIVE_EVERY: Duration = Duration::from_secs(60);
/// How often the states (and availability histories) of the services checked since the last
/// save are saved, besides on each change: what a crash can lose of availability (DAEMON.md).
/// Every minute would rewrite every state's pages each minute: about 600 bytes written to
/// flash per result at 1,000 services, more than the result itself.
pub const SAVE_EVERY: Duration = Duration::from_secs(300);
/// Sleeps towards a wall-clock moment (a period opening) last at most this long (see `until_wall`).
const WALL_RECHECK: Duration = Duration::from_secs(60);

/// Runs one check. The daemon's is [`Probers`]; scheduler tests script their own outcomes.
pub trait Runner: Send + Sync + 'static {
    fn run<'a>(&'a self, job: &'a Job)
    -> std::pin::Pin<Box<dyn std::future::Future<Output = CheckResult> + Send + 'a>>;

    /// A new plan is in force: state kept for devices and services it no longer has goes.
    fn retain_for(&self, _plan: &Plan) {}
}

/// The probers, one per protocol, shared by every check.
pub struct Probers {
    pub icmp: IcmpProber,
    pub snmp: SnmpProber,
    pub http: HttpProber,
}

impl Probers {
    /// The daemon's probers: `{status}` in an HTTP URL is `status_endpoint`.
    pub fn for_daemon(limits: &Limits, status_endpoint: std::net::SocketAddr) -> Probers {
        let probers = Probers::new(limits);
        Probers {
            http: probers.http.with_status_endpoint(status_endpoint),
            ..probers
        }
    }

    pub fn new(limits: &Limits) -> Probers {
        Probers {
            icmp: IcmpProber::new(limits.max_concurrent_icmp as usize),
            snmp: SnmpProber::new(),
            http: HttpProber::new(),
        }
    }
}

impl Runner for Probers {
    fn run<'a>(
        &'a self,
        job: &'a Job,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = CheckResult> + Send + 'a>> {
        Box::pin(job.run(self))
    }

    fn retain_for(&self, plan: &Plan) {
        let mut addresses = std::collections::HashSet::new();
        let mut agents = Vec::new();
        let mut http = Vec::new();
        let mut series = std::collections::HashSet::new();
        for (s, service) in plan.accepted_services() {
            let Some(device) = s.device.map(|d| &plan.devices[d]) else {
                continue;
            };
            match &service.params {
                CheckParams::Icmp(_) => addresses.extend(device.address.parse::<std::net::IpAddr>().ok()),
                CheckParams::Snmp(_) => {
                    if let Some(snmp) = device.outcome.as_ref().ok().and_then(|d| d.snmp.as_ref()) {
                        agents.push((device.address.as_str(), snmp));
                        series.insert(s.id.as_str());
                    }
                }
                CheckParams::Http(p) => http.push(p),
            }
        }
        self.icmp.retain(&addresses);
        self.snmp.retain(agents, &series);
        self.http.retain(http);
    }
}

/// What is saved per service: its state and its availability history.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Saved {
    pub state: ServiceState,
    #[serde(default)]
    pub availability: Availability,
    /// After a restart: availability was counted until then (the box's last mark of life), so
    /// the first check counts from there rather than from its last check.
    #[serde(default)]
    pub counted_until: Option<Timestamp>,
}

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

/// One service as the status endpoint shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceView {
    // Shared with the scheduler's slots: a snapshot of 20,000 services copies no text.
    pub id: Arc<str>,
    pub device: Arc<str>,
    pub kind: &'static str,
    pub state: ViewState,
    pub state_type: StateType,
    pub attempt: u32,
    pub since: Timestamp,
    pub last_check: Option<Timestamp>,
    pub next_check: Option<Timestamp>,
    pub output: Arc<str>,
    pub duration_ms: Option<u64>,
    pub in_control_period: bool,
    pub availability: [Figures; 3],
}

/// The live state, built when the status endpoint asks (nobody watching costs nothing).
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// The plan these services come from: views and plan always match.
    #[serde(skip)]
    pub plan: Arc<Plan>,
    pub at: Timestamp,
    pub services: Vec<ServiceView>,
    /// Checks running now.
    pub running: usize,
}

struct Slot {
    origin: Arc<Origin>,
    id: Arc<str>,
    device_id: Arc<str>,
    kind: CheckKind,
    /// The service's index in the plan, where its parameters are read: never copied.
    service: usize,
    interval: Duration,
    retry: Duration,
    timeout: Duration,
    max_attempts: u32,
    /// Control, availability and notification schedules, and the zone they are read in.
    periods: [Arc<Schedule>; 3],
    tz: TimeZone,
    device: usize,
    /// The device's host check, when this service is not it (R9).
    host: Option<usize>,
    offset: Duration,
    criticality: &'static str,
    target: f64,
    saved: Saved,
    /// When the current wait ends, for each kind of wake-up (stale heap entries are skipped).
    check_due: Option<Instant>,
    release_due: Option<Instant>,
    availability_due: Instant,
    running: bool,
    last_output: Arc<str>,
    last_duration_ms: Option<u64>,
    in_control: bool,
    /// A state change to save with this check's records.
    dirty: bool,
    /// Checked since the last periodic save: its availability history has grown.
    unsaved: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Wake {
    Check,
    Release,
    Availability,
}

struct Done {
    slot: usize,
    /// The plan generation the slot index belongs to; after a re-plan, `service` finds it.
    generation: u64,
    service: Arc<str>,
    result: CheckResult,
}

pub struct Scheduler {
    plan: Arc<Plan>,
    /// New plans to apply while running (SIGHUP, a changed file, the central server).
    plans: Option<watch::Receiver<Arc<Plan>>>,
    generation: u64,
    slots: Vec<Slot>,
    by_id: HashMap<String, usize>,
    heap: BinaryHeap<Reverse<(Instant, Wake, usize)>>,
    probers: Arc<dyn Runner>,
    store: Store,
    clock: Arc<dyn Clock>,
    global: Arc<Semaphore>,
    per_kind: [Arc<Semaphore>; 3],
    /// By device id: indices change with every plan, semaphores must not.
    per_device: HashMap<Arc<str>, Arc<Semaphore>>,
    per_device_limit: usize,
    results_tx: mpsc::UnboundedSender<Done>,
    results_rx: mpsc::UnboundedReceiver<Done>,
    snapshot_requests: mpsc::Receiver<Ask>,
    last_snapshot: Option<(Instant, std::sync::Weak<Snapshot>)>,
    metrics: Arc<Metrics>,
    tracker: TaskTracker,
    /// Records and states waiting for the next flush (every [`FLUSH_EVERY`]).
    outgoing: Vec<Item>,
    outgoing_states: Vec<(String, String)>,
    /// Services no plan has any more, whose saved states go at the next commit.
    outgoing_forgotten: Vec<String>,
}

impl Scheduler {
    /// A scheduler for every accepted service of `plan`; `saved` restores states by service id.
    pub fn new(
        plan: Arc<Plan>,
        mut saved: HashMap<String, Saved>,
        probers: Arc<dyn Runner>,
        store: Store,
        clock: Arc<dyn Clock>,
        limits: &Limits,
        metrics: Arc<Metrics>,
    ) -> (Scheduler, Snapshots) {
        let slots = build_slots(&plan, |id| saved.remove(id), clock.now(), Instant::now());
        let (results_tx, results_rx) = mpsc::unbounded_channel();
        let (requests, snapshot_requests) = mpsc::channel(64);
        let by_id = index_by_id(&slots);
        let mut scheduler = Scheduler {
            plan,
            plans: None,
            generation: 0,
            slots,
            by_id,
            heap: BinaryHeap::new(),
            probers,
            store,
            clock,
            global: Arc::new(Semaphore::new(limits.max_concurrent_checks.max(1) as usize)),
            per_kind: [
                Arc::new(Semaphore::new(limits.max_concurrent_icmp.max(1) as usize)),
                Arc::new(Semaphore::new(limits.max_concurrent_snmp.max(1) as usize)),
                Arc::new(Semaphore::new(limits.max_concurrent_http.max(1) as usize)),
            ],
            per_device: HashMap::new(),
            per_device_limit: limits.max_concurrent_per_device.max(1) as usize,
            results_tx,
            results_rx,
            snapshot_requests,
            last_snapshot: None,
            metrics,
            tracker: TaskTracker::new(),
            outgoing: Vec::new(),
            outgoing_states: Vec::new(),
            outgoing_forgotten: Vec::new(),
        };
        scheduler.schedule_all();
        (scheduler, Snapshots { requests })
    }

    /// Applies each plan sent on `plans` while running.
    pub fn follow(&mut self, plans: watch::Receiver<Arc<Plan>>) {
        self.plans = Some(plans);
    }

    /// Puts every slot's wake-ups on a fresh heap: a slot without a check due starts at its
    /// offset; one waiting on a held notification wakes when the notification period opens.
    fn schedule_all(&mut self) {
        let now = Instant::now();
        self.heap.clear();
        for i in 0..self.slots.len() {
            let s = &self.slots[i];
            let check = s.check_due.unwrap_or(now + s.offset);
            let (availability, release) = (s.availability_due, s.release_due);
            self.schedule(i, Wake::Check, check);
            self.schedule(i, Wake::Availability, availability);
            match release {
                Some(due) => self.schedule(i, Wake::Release, due),
                None if self.slots[i].saved.state.held.is_some() => self.schedule_release(i),
                None => {}
            }
        }
    }

    /// Switches to `plan` (R9 still holds across it): a service that stays (same id) keeps its
    /// state, its availability history and, when its intervals are unchanged, its place in
    /// the schedule; a new one starts at its offset; a removed one is forgotten, state and
    /// all. Checks in flight finish and land on their service if it still exists.
    fn replan(&mut self, plan: Arc<Plan>) {
        let wall = self.clock.now();
        let now = Instant::now();
        let mut old: HashMap<String, Slot> = self.slots.drain(..).map(|s| (s.origin.service.clone(), s)).collect();
        let mut slots = build_slots(&plan, |id| old.get(id).map(|s| s.saved.clone()), wall, now);
        let (mut kept, mut moved) = (0usize, 0usize);
        for slot in &mut slots {
            let Some(before) = old.remove(&slot.origin.service) else {
                continue;
            };
            slot.running = before.running;
            slot.last_output = before.last_output;
            slot.last_duration_ms = before.last_duration_ms;
            slot.in_control = before.in_control;
            slot.release_due = before.release_due;
            slot.availability_due = before.availability_due;
            if before.interval == slot.interval && before.retry == slot.retry {
                slot.check_due = before.check_due;
                kept += 1;
            } else {
                moved += 1;
            }
        }
        let gone: Vec<String> = old.into_keys().collect();
        tracing::info!(
            version = %plan.version,
            services = slots.len(),
            kept,
            rescheduled = moved,
            added = slots.len() - kept - moved,
            removed = gone.len(),
            "new plan applied"
        );
        self.generation += 1;
        self.by_id = index_by_id(&slots);
        self.slots = slots;
        // Semaphores of devices that stay are kept: checks running now hold their permits.
        let devices: std::collections::HashSet<&str> = plan.devices.iter().map(|d| d.id.as_str()).collect();
        self.per_device.retain(|id, _| devices.contains(&**id));
        self.probers.retain_for(&plan);
        self.plan = plan;
        self.schedule_all();
        self.outgoing_forgotten.extend(gone);
        self.last_snapshot = None;
    }

    /// After a crash: the box ran and checked until `alive_until` (its last mark), and a
    /// service's state then was its saved one (state changes are saved with their records), so
    /// availability counts that state from its last saved check until then.
    pub fn resume_availability(&mut self, alive_until: Timestamp) {
        for s in &mut self.slots {
            let Some(last) = s.saved.state.last_check.filter(|l| *l < alive_until) else {
                continue;
            };
            let state = s.saved.state.state;
            s.saved
                .availability
                .count(last, alive_until, state, [&s.periods[1], &s.periods[0]], &s.tz);
            s.saved.counted_until = Some(alive_until);
            s.unsaved = true;
        }
    }

    /// Runs until `cancel`, then lets the checks in flight finish (within `drain`) and commits
    /// their records and every state.
    pub async fn run(mut self, cancel: CancellationToken, drain: Duration) {
        let mut save_tick = tokio::time::interval(SAVE_EVERY);
        save_tick.tick().await;
        let mut alive_tick = tokio::time::interval(ALIVE_EVERY);
        let mut flush_tick = tokio::time::interval(FLUSH_EVERY);
        flush_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut plans = self.plans.take();
        loop {
            let next = self.heap.peek().map(|Reverse((due, _, _))| *due);
            let sleep = tokio::time::sleep_until(next.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600)));
            let new_plan = async {
                match plans.as_mut() {
                    Some(rx) => match rx.changed().await {
                        Ok(()) => Some(rx.borrow_and_update().clone()),
                        Err(_) => None,
                    },
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                plan = new_plan => match plan {
                    Some(plan) => {
                        self.replan(plan);
                        self.flush().await;
                    }
                    None => plans = None, // the sender is gone: no more plans
                },
                Some(done) = self.results_rx.recv() => self.on_result(done).await,
                _ = sleep => self.on_due(),
                _ = flush_tick.tick() => self.flush().await,
                Some(ask) = self.snapshot_requests.recv() => match ask {
                    Ask::Snapshot(reply) => {
                        let _ = reply.send(self.snapshot());
                    }
                    Ask::Ping(reply) => {
                        let _ = reply.send(());
                    }
                },
                _ = save_tick.tick() => self.save_all(false).await,
                _ = alive_tick.tick() => {
                    if let Err(e) = self.store.mark_alive(self.clock.now()).await {
                        tracing::error!(error = %e, "the store is closed");
                    }
                }
            }
        }
        // Checks still waiting for a permit give up at once; those running finish.
        self.global.close();
        self.per_kind.iter().for_each(|k| k.close());
        self.per_device.values().for_each(|d| d.close());
        self.tracker.close();
        let tracker = self.tracker.clone();
        let deadline = Instant::now() + drain;
        loop {
            tokio::select! {
                Some(done) = self.results_rx.recv() => self.on_result(done).await,
                _ = tracker.wait() => {
                    while let Ok(done) = self.results_rx.try_recv() {
                        self.on_result(done).await;
                    }
                    break;
                }
                _ = tokio::time::sleep_until(deadline) => {
                    tracing::warn!(running = self.tracker.len(), "checks still running at shutdown are abandoned");
                    break;
                }
            }
        }
        self.save_all(true).await;
    }

    fn schedule(&mut self, slot: usize, wake: Wake, due: Instant) {
        let s = &mut self.slots[slot];
        match wake {
            Wake::Check => s.check_due = Some(due),
            Wake::Release => s.release_due = Some(due),
            Wake::Availability => s.availability_due = due,
        }
        self.heap.push(Reverse((due, wake, slot)));
    }

    fn on_due(&mut self) {
        let now = Instant::now();
        while let Some(Reverse((due, wake, slot))) = self.heap.peek().copied() {
            if due > now {
                break;
            }
            self.heap.pop();
            let s = &self.slots[slot];
            let current = match wake {
                Wake::Check => s.check_due == Some(due),
                Wake::Release => s.release_due == Some(due),
                Wake::Availability => s.availability_due == due,
            };
            if !current {
                continue; // rescheduled since
            }
            match wake {
                Wake::Check => self.start_check(slot, due),
                Wake::Release => self.release(slot),
                Wake::Availability => self.availability(slot),
            }
        }
    }

    /// Runs a check now, or sleeps until the control period opens (R9).
    fn start_check(&mut self, slot: usize, due: Instant) {
        let wall = self.clock.now();
        let s = &mut self.slots[slot];
        s.check_due = None;
        if s.running {
            // Still running since its last turn (slower than its interval): skip this turn.
            let next = next_on_grid(due, s.interval, Instant::now());
            self.schedule(slot, Wake::Check, next);
            return;
        }
        let control = &s.periods[0];
        if !control.is_active(wall, &s.tz) {
            s.in_control = false;
            self.metrics.outside_control.fetch_add(1, Relaxed);
            if let Some(open) = control.next_change(wall, &s.tz) {
                self.schedule(slot, Wake::Check, Instant::now() + until_wall(wall, open));
            }
            return;
        }
        s.in_control = true;
        s.running = true;
        let lateness = Instant::now().saturating_duration_since(due);
        self.metrics.lateness.observe_ms(lateness.as_secs_f64() * 1e3);
        let kind = s.kind;
        let permits = (
            self.global.clone(),
            self.per_kind[metrics::kind_index(kind)].clone(),
            self.per_device
                .entry(s.device_id.clone())
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_device_limit)))
                .clone(),
        );
        let job = Job {
            slot,
            generation: self.generation,
            series: s.id.clone(),
            plan: self.plan.clone(),
            service: s.service,
            device: s.device,
            timeout: s.timeout,
        };
        let probers = self.probers.clone();
        let tx = self.results_tx.clone();
        // The next run on this service's grid, whatever this one's outcome; a result that
        // asks for a retry moves it earlier.
        let next = next_on_grid(due, s.interval, Instant::now());
        self.slots[slot].check_due = Some(next);
        self.heap.push(Reverse((next, Wake::Check, slot)));
        self.tracker.spawn(async move {
            let (_g, _k, _d) = match (
                permits.0.acquire_owned().await,
                permits.1.acquire_owned().await,
                permits.2.acquire_owned().await,
            ) {
                (Ok(g), Ok(k), Ok(d)) => (g, k, d),
                _ => return,
            };
            let result = probers.run(&job).await;
            let _ = tx.send(Done {
                slot: job.slot,
                generation: job.generation,
                service: job.series.clone(),
                result,
            });
        });
    }

    async fn on_result(&mut self, done: Done) {
        let wall = self.clock.now();
        let Done {
            slot,
            generation,
            service,
            result,
        } = done;
        let slot = if generation == self.generation {
            slot
        } else {
            match self.by_id.get(&*service) {
                Some(slot) => *slot,
                None => return, // removed by a new plan while its check ran
            }
        };
        let host_down = self.slots[slot].host.is_some_and(|h| {
            let st = &self.slots[h].saved.state;
            st.state_type == StateType::Hard && matches!(st.state, State::Critical | State::Unreachable)
        });
        let kind = self.slots[slot].kind;
        self.metrics.checks[metrics::kind_index(kind)][metrics::status_index(result.status)].fetch_add(1, Relaxed);
        self.metrics.durations[metrics::kind_index(kind)].observe_ms(result.duration.as_secs_f64() * 1e3);
        let s = &mut self.slots[slot];
        s.running = false;
        let mut state: State = result.status.into();
        if host_down && !state.is_ok() {
            state = State::Unreachable;
        }
        // R10: the previous state held from the previous check until now (within reason).
        let previous = match (s.saved.counted_until.take(), s.saved.state.last_check) {
            (Some(counted), Some(last)) => Some(counted.max(last)),
            (counted, last) => counted.or(last),
        };
        if let Some(previous) = previous {
            let max_gap = s.interval.max(s.retry) * 2 + s.timeout;
            let until =
                wall.min(previous + jiff::SignedDuration::try_from(max_gap).unwrap_or(jiff::SignedDuration::ZERO));
            let held = s.saved.state.state;
            s.saved
                .availability
                .count(previous, until, held, [&s.periods[1], &s.periods[0]], &s.tz);
        }
        s.unsaved = true;
        let in_availability = s.periods[1].is_active(wall, &s.tz);
        let in_notification = s.periods[2].is_active(wall, &s.tz);
        let was_retrying = s.saved.state.retrying();
        let outcome = s.saved.state.apply(state, s.max_attempts, wall, in_notification);
        tracing::debug!(
            service = %s.id,
            kind = ?kind,
            status = state.as_str(),
            attempt = s.saved.state.attempt,
            duration_ms = result.duration.as_secs_f64() * 1e3,
            output = %result.output,
            "check"
        );
        s.last_output = Arc::from(result.output.as_str());
        s.last_duration_ms = Some(result.duration.as_millis() as u64);
        let mut records = vec![Record {
            ts: wall,
            body: Body::Result {
                status: state,
                state_type: s.saved.state.state_type,
                attempt: s.saved.state.attempt,
                duration_ms: result.duration.as_millis() as u64,
                output: result.output,
                metrics: result.metrics,
                in_availability_period: in_availability,
            },
        }];
        if let Some((from, to, state_type)) = outcome.change {
            tracing::info!(
                service = %s.id,
                device = %s.device_id,
                from = from.as_str(),
                to = to.as_str(),
                state_type = state_type.as_str(),
                output = %s.last_output,
                "state change"
            );
            records.push(Record {
                ts: wall,
                body: Body::StateChange { from, to, state_type },
            });
            s.dirty = true;
        }
        if let Some((kind, held_s)) = outcome.notify {
            records.push(self.notification(slot, kind, held_s, wall));
        }
        let s = &mut self.slots[slot];
        let retrying = s.saved.state.retrying();
        if retrying {
            // R9: retries every retry_interval_s while not OK and not HARD.
            let next = Instant::now() + s.retry;
            s.check_due = Some(next);
            self.heap.push(Reverse((next, Wake::Check, slot)));
        } else if was_retrying {
            let next = next_on_grid(Instant::now(), s.interval, Instant::now());
            s.check_due = Some(next);
            self.heap.push(Reverse((next, Wake::Check, slot)));
        }
        if self.slots[slot].saved.state.held.is_some() {
            self.schedule_release(slot);
        }
        let states = self.take_dirty(slot);
        self.commit(slot, records, states);
    }

    fn notification(&self, slot: usize, kind: crate::record::NotificationType, held_s: u64, wall: Timestamp) -> Record {
        let s = &self.slots[slot];
        tracing::info!(
            service = %s.id,
            device = %s.device_id,
            kind = ?kind,
            status = s.saved.state.state.as_str(),
            held_s,
            output = %s.last_output,
            "notification"
        );
        let (contacts, contact_groups) = match &self.plan.devices[s.device].outcome {
            Ok(dev) => (
                dev.contacts.clone(),
                dev.contact_groups.iter().map(|g| g.id.clone()).collect(),
            ),
            Err(_) => (Vec::new(), Vec::new()),
        };
        Record {
            ts: wall,
            body: Body::Notification {
                kind,
                status: s.saved.state.state,
                criticality: s.criticality.to_string(),
                contacts,
                contact_groups,
                held_s,
            },
        }
    }

    /// Wakes when the notification period next opens, to release a held notification (R11).
    fn schedule_release(&mut self, slot: usize) {
        let wall = self.clock.now();
        let s = &self.slots[slot];
        let period = &s.periods[2];
        let wait = if period.is_active(wall, &s.tz) {
            Some(Duration::ZERO)
        } else {
            period.next_change(wall, &s.tz).map(|open| until_wall(wall, open))
        };
        if let Some(wait) = wait {
            self.schedule(slot, Wake::Release, Instant::now() + wait);
        }
    }

    fn release(&mut self, slot: usize) {
        let wall = self.clock.now();
        let s = &mut self.slots[slot];
        s.release_due = None;
        if !s.periods[2].is_active(wall, &s.tz) {
            self.schedule_release(slot);
            return;
        }
        if let Some((kind, held_s)) = s.saved.state.release(wall) {
            s.dirty = true;
            let record = self.notification(slot, kind, held_s, wall);
            let states = self.take_dirty(slot);
            self.commit(slot, vec![record], states);
        }
    }

    /// Sends this service's availability for the day, 24 h and 30 d (R10).
    fn availability(&mut self, slot: usize) {
        let wall = self.clock.now();
        let s = &self.slots[slot];
        let records: Vec<Record> = Window::ALL
            .iter()
            .map(|w| {
                let f = s.saved.availability.figures(*w, wall, &s.tz, s.target);
                let body = Body::Availability {
                    window: f.window,
                    available_s: f.available_s,
                    unavailable_s: f.unavailable_s,
                    percent: f.percent,
                    target: f.target,
                    breached: f.breached,
                };
                Record { ts: wall, body }
            })
            .collect();
        self.commit(slot, records, Vec::new());
        self.schedule(slot, Wake::Availability, Instant::now() + AVAILABILITY_EVERY);
    }

    fn take_dirty(&mut self, slot: usize) -> Vec<(String, String)> {
        let s = &mut self.slots[slot];
        if !std::mem::take(&mut s.dirty) {
            return Vec::new();
        }
        serde_json::to_string(&s.saved)
            .map(|json| vec![(s.origin.service.clone(), json)])
            .unwrap_or_default()
    }

    /// Queues a check's records and states for the next flush (at most [`FLUSH_EVERY`] away).
    fn commit(&mut self, slot: usize, records: Vec<Record>, states: Vec<(String, String)>) {
        for r in &records {
            self.metrics.records[r.body.kind() as usize - 1].fetch_add(1, Relaxed);
        }
        let origin = &self.slots[slot].origin;
        self.outgoing.extend(records.into_iter().map(|r| (origin.clone(), r)));
        self.outgoing_states.extend(states);
    }

    async fn flush(&mut self) {
        if !self.outgoing_forgotten.is_empty() {
            let services = std::mem::take(&mut self.outgoing_forgotten);
            if let Err(e) = self.store.forget(services).await {
                tracing::error!(error = %e, "removed services' states could not be deleted");
            }
        }
        if self.outgoing.is_empty() && self.outgoing_states.is_empty() {
            return;
        }
        let items = std::mem::take(&mut self.outgoing);
        let states = std::mem::take(&mut self.outgoing_states);
        if let Err(e) = self.store.append(items, states).await {
            tracing::error!(error = %e, "records could not reach the store");
        }
    }

    /// Saves the states of the services checked since the last save, queued: the scheduler
    /// never waits on a commit while it runs. At shutdown (`wait`), every state, committed.
    async fn save_all(&mut self, wait: bool) {
        self.flush().await;
        let states: Vec<(String, String)> = self
            .slots
            .iter_mut()
            .filter(|s| wait || s.unsaved)
            .filter_map(|s| {
                s.unsaved = false;
                serde_json::to_string(&s.saved)
                    .ok()
                    .map(|json| (s.origin.service.clone(), json))
            })
            .collect();
        let saved = if wait {
            self.store.append_committed(Vec::new(), states).await.map(drop)
        } else if states.is_empty() {
            Ok(())
        } else {
            self.store.append(Vec::new(), states).await
        };
        if let Err(e) = saved {
            tracing::error!(error = %e, "the services' states could not be saved");
        }
    }

    /// The live state now, or the one built less than [`SNAPSHOT_REUSE`] ago if a request
    /// still holds it.
    fn snapshot(&mut self) -> Arc<Snapshot> {
        if let Some((at, weak)) = &self.last_snapshot
            && at.elapsed() < SNAPSHOT_REUSE
            && let Some(snapshot) = weak.upgrade()
        {
            return snapshot;
        }
        let snapshot = Arc::new(self.build_snapshot());
        self.last_snapshot = Some((Instant::now(), Arc::downgrade(&snapshot)));
        snapshot
    }

    fn build_snapshot(&self) -> Snapshot {
        let wall = self.clock.now();
        let now = Instant::now();
        let services = self
            .slots
            .iter()
            .map(|s| {
                let st = &s.saved.state;
                ServiceView {
                    id: s.id.clone(),
                    device: s.device_id.clone(),
                    kind: s.kind.as_str(),
                    state: match st.last_check {
                        Some(_) => ViewState::Checked(st.state),
                        None => ViewState::Pending,
                    },
                    state_type: st.state_type,
                    attempt: st.attempt,
                    since: st.since,
                    last_check: st.last_check,
                    next_check: s.check_due.and_then(|due| {
                        wall.checked_add(jiff::SignedDuration::try_from(due.saturating_duration_since(now)).ok()?)
                            .ok()
                    }),
                    output: s.last_output.clone(),
                    duration_ms: s.last_duration_ms,
                    in_control_period: s.in_control,
                    availability: Window::ALL.map(|w| s.saved.availability.figures(w, wall, &s.tz, s.target)),
                }
            })
            .collect();
        let running = self.slots.iter().filter(|s| s.running).count();
        Snapshot {
            plan: self.plan.clone(),
            at: wall,
            services,
            running,
        }
    }
}

/// One slot per accepted service of `plan`, in plan order; `saved` gives a service's saved
/// state by id, if any. Nothing is scheduled yet.
fn build_slots(
    plan: &Plan,
    mut saved: impl FnMut(&str) -> Option<Saved>,
    now_wall: Timestamp,
    now: Instant,
) -> Vec<Slot> {
    let mut slots = Vec::new();
    let mut by_service = HashMap::new();
    for (index, (sp, svc)) in plan
        .services
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.outcome.as_ref().ok().map(|o| (i, (s, o))))
    {
        let Some(d) = sp.device else { continue };
        let Ok(dev) = &plan.devices[d].outcome else { continue };
        let tree = &plan.tree;
        let origin = Arc::new(Origin {
            service: sp.id.clone(),
            device: sp.device_id.clone(),
            node: tree.id(dev.node).to_string(),
            company: tree.company_id(dev.node).map(str::to_string),
        });
        let interval = Duration::from_secs(u64::from(svc.interval_s.value.max(1)));
        let period = |aspect: Aspect| plan.time_range(svc.periods.get(aspect)).schedule.clone();
        let saved_state = saved(&sp.id).unwrap_or_else(|| Saved {
            state: ServiceState::new(now_wall),
            availability: Availability::default(),
            counted_until: None,
        });
        let offset = Duration::from_millis(stable_hash(&sp.id) % interval.as_millis().max(1) as u64);
        by_service.insert(index, slots.len());
        slots.push(Slot {
            id: Arc::from(sp.id.as_str()),
            device_id: Arc::from(sp.device_id.as_str()),
            origin,
            kind: svc.kind,
            service: index,
            interval,
            retry: Duration::from_secs(u64::from(svc.retry_interval_s.value.max(1))),
            timeout: Duration::from_secs(u64::from(svc.timeout_s.value.max(1))),
            max_attempts: svc.max_attempts.value,
            periods: [
                period(Aspect::Control),
                period(Aspect::Availability),
                period(Aspect::Notification),
            ],
            tz: plan.zone_of(dev).clone(),
            device: d,
            host: dev.host_check.filter(|h| *h != index),
            offset,
            criticality: svc.criticality.value.as_str(),
            target: svc.availability_rate.value,
            saved: saved_state,
            check_due: None,
            release_due: None,
            availability_due: now + AVAILABILITY_EVERY.min(interval * 60) + offset,
            running: false,
            last_output: Arc::from(""),
            last_duration_ms: None,
            in_control: true,
            dirty: false,
            unsaved: false,
        });
    }
    // Host checks by slot rather than by service index.
    for slot in &mut slots {
        slot.host = slot.host.and_then(|h| by_service.get(&h).copied());
    }
    slots
}

fn index_by_id(slots: &[Slot]) -> HashMap<String, usize> {
    slots
        .iter()
        .enumerate()
        .map(|(i, s)| (s.origin.service.clone(), i))
        .collect()
}

/// What the status endpoint and the watchdog ask the running scheduler.
enum Ask {
    Snapshot(oneshot::Sender<Arc<Snapshot>>),
    /// Only whether its loop answers: liveness without building 20,000 views.
    Ping(oneshot::Sender<()>),
}

/// Asks the running scheduler for its live state; cheap to clone.
#[derive(Clone)]
pub struct Snapshots {
    requests: mpsc::Sender<Ask>,
}

impl Snapshots {
    /// The live state, or `None` when the scheduler does not answer within two seconds
    /// (stopped, or stuck: `/healthz` says so).
    pub async fn get(&self) -> Option<Arc<Snapshot>> {
        self.ask(Ask::Snapshot).await
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

/// What a check task needs: its service in the plan, which it holds while it runs.
pub struct Job {
    slot: usize,
    generation: u64,
    /// The service's id.
    pub series: Arc<str>,
    plan: Arc<Plan>,
    service: usize,
    device: usize,
    pub timeout: Duration,
}

impl Job {
    pub fn address(&self) -> &str {
        &self.plan.devices[self.device].address
    }

    fn snmp(&self) -> Option<&Snmp> {
        self.plan.devices[self.device].outcome.as_ref().ok()?.snmp.as_ref()
    }

    fn params(&self) -> Option<&CheckParams> {
        Some(&self.plan.services[self.service].outcome.as_ref().ok()?.params)
    }

    async fn run(&self, probers: &Probers) -> CheckResult {
        // A last bound on top of each probe's own: a check never outlives twice its timeout.
        let bound = self.timeout * 2 + Duration::from_secs(1);
        let check = async {
            match self.params() {
                Some(CheckParams::Icmp(p)) => match resolve(self.address()).await {
                    Ok(ip) => probers.icmp.check(ip, p, self.timeout).await,
                    Err(e) => CheckResult::new(Status::Critical, e),
                },
                Some(CheckParams::Snmp(p)) => match self.snmp() {
                    Some(snmp) => {
                        probers
                            .snmp
                            .check(&self.series, self.address(), snmp, p, self.timeout)
                            .await
                    }
                    None => CheckResult::unknown("the device has no snmp settings"),
                },
                Some(CheckParams::Http(p)) => probers.http.check(self.address(), p, self.timeout).await,
                None => CheckResult::unknown("the service is not in the plan"),
            }
        };
        tokio::time::timeout(bound, check).await.unwrap_or_else(|_| {
            CheckResult::unknown(format!("the check did not end within {}s", bound.as_secs())).took(bound)
        })
    }
}

/// An IP address as it is, or the first address a host name resolves to.
async fn resolve(address: &str) -> Result<IpAddr, String> {
    if let Ok(ip) = address.trim_matches(['[', ']']).parse::<IpAddr>() {
        return Ok(ip);
    }
    let lookup = tokio::time::timeout(Duration::from_secs(5), tokio::net::lookup_host((address, 0))).await;
    match lookup {
        Ok(Ok(mut addrs)) => addrs
            .next()
            .map(|a| a.ip())
            .ok_or_else(|| format!("{address}: no address")),
        Ok(Err(e)) => Err(format!("{address}: cannot resolve ({e})")),
        Err(_) => Err(format!("{address}: name resolution timed out")),
    }
}

/// How long to sleep towards a wall-clock moment: at most [`WALL_RECHECK`], after which the
/// wall clock is read again. A step of the clock (NTP, an operator's `date -s`) moves the
/// moment, which a monotonic timer set before the step cannot know.
fn until_wall(wall: Timestamp, at: Timestamp) -> Duration {
    duration_between(wall, at).min(WALL_RECHECK)
}

/// The first point of the grid `anchor + k × interval` after `now`.
fn next_on_grid(anchor: Instant, interval: Duration, now: Instant) -> Instant {
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
fn stable_hash(text: &str) -> u64 {
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
