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

mod action;
pub mod availability;
pub mod clock;
mod cover;
pub mod flapping;
mod grid;
mod job;
pub mod metrics;
mod passive;
mod persist;
mod slot;
mod snapshot;
pub mod state;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::document::CheckKind;
use crate::probe::CheckResult;
use crate::record::{Body, Record, State, StateType, Window};
use crate::rules::Plan;
use crate::settings::Limits;
use crate::store::{Item, Store};

pub use action::{Action, Actions, Answer, box_origin, command_result};
pub use availability::{Availability, Figures};
pub use clock::{Clock, SystemClock, TokioClock};
pub use cover::InForce;
pub use job::{Job, Probers, Runner};
pub use metrics::Metrics;
pub use persist::SAVE_EVERY;
pub use slot::Saved;
pub use snapshot::{Detail, ServiceView, Snapshot, Snapshots, ViewState};
pub use state::ServiceState;
use state::{Context, Notice};

use grid::{next_on_grid, until_wall};
use persist::{ALIVE_EVERY, FLUSH_EVERY, SAVE_SLICE_EVERY};
use slot::{Slot, Wake, build_slots, index_by_id};
use snapshot::Ask;

/// How often each service's availability is sent as records.
const AVAILABILITY_EVERY: Duration = Duration::from_secs(3600);

/// A passive service's result (a trap) for the scheduler to apply like a check's.
pub struct Passive {
    pub service_id: Arc<str>,
    pub result: CheckResult,
}

/// Passive results waiting for the scheduler, at most: a burst waits at the sender.
const PASSIVE_QUEUE: usize = 1024;

/// A check's result on its way back to the scheduler.
struct Done {
    slot: usize,
    /// The plan generation the slot index belongs to; after a re-plan, `service_id` finds it.
    generation: u64,
    service_id: Arc<str>,
    result: CheckResult,
}

pub struct Scheduler {
    plan: Arc<Plan>,
    /// New plans to apply while running (SIGHUP, a changed file, the central server).
    plans: Option<watch::Receiver<Arc<Plan>>>,
    generation: u64,
    slots: Vec<Slot>,
    by_id: HashMap<Arc<str>, usize>,
    heap: BinaryHeap<Reverse<(Instant, Wake, usize)>>,
    probers: Arc<dyn Runner>,
    store: Store,
    clock: Arc<dyn Clock>,
    global: Arc<Semaphore>,
    per_kind: [Arc<Semaphore>; metrics::KIND_COUNT],
    /// By device id, while a check of the device runs: indices change with every plan,
    /// semaphores must not.
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
    /// R18's marks of services polled, written with the next flush.
    outgoing_control: Vec<crate::store::Control>,
    /// Services no plan has any more, whose saved states go at the next commit.
    outgoing_forgotten: Vec<String>,
    /// The next slot the periodic save looks at.
    save_cursor: usize,
    /// The maintenances applied (R13): the plan's, then `runtime`'s; slots index into it.
    maintenances: Arc<Vec<cover::InForce>>,
    runtime: Vec<cover::Runtime>,
    /// Operators' requests (commands, the command line), and those waiting for a check.
    actions: mpsc::Receiver<action::Request>,
    /// Handed out by [`Scheduler::actions`]; dropped when the loop starts, so that the channel
    /// closes with the last handle.
    actions_tx: Option<mpsc::Sender<action::Request>>,
    check_waiters: HashMap<Arc<str>, Vec<action::Waiter>>,
    passive: mpsc::Receiver<Passive>,
    /// Handed out by [`Scheduler::passive`].
    passive_tx: mpsc::Sender<Passive>,
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
        let maintenances = Arc::new(cover::in_force(&plan, &[]));
        let slots = build_slots(&plan, &maintenances, |id| saved.remove(id), clock.now(), Instant::now());
        let (results_tx, results_rx) = mpsc::unbounded_channel();
        let (requests, snapshot_requests) = mpsc::channel(64);
        let (actions_tx, actions) = mpsc::channel(64);
        let (passive_tx, passive) = mpsc::channel(PASSIVE_QUEUE);
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
            per_kind: CheckKind::ALL.map(|kind| Arc::new(Semaphore::new(limits.max_concurrent(kind).max(1) as usize))),
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
            outgoing_control: Vec::new(),
            outgoing_forgotten: Vec::new(),
            save_cursor: 0,
            maintenances,
            runtime: Vec::new(),
            actions,
            actions_tx: None,
            check_waiters: HashMap::new(),
            passive,
            passive_tx,
        };
        scheduler.schedule_all();
        scheduler.settle_all();
        scheduler.actions_tx = Some(actions_tx);
        (scheduler, Snapshots { requests })
    }

    /// Where passive results (traps) are sent.
    pub fn passive(&self) -> mpsc::Sender<Passive> {
        self.passive_tx.clone()
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
            let check = match s.check_due {
                Some(due) => Some(due),
                None if s.is_passive() => self.pending_clear(i),
                None => Some(now + s.offset()),
            };
            let (availability, release) = (self.slots[i].availability_due, self.slots[i].release_due);
            if let Some(check) = check {
                self.schedule(i, Wake::Check, check);
            }
            self.schedule(i, Wake::Availability, availability);
            match release {
                Some(due) => self.schedule(i, Wake::Release, due),
                None if self.slots[i].saved.state.holds() => self.schedule_release(i),
                None => {}
            }
            self.schedule_renotify(i);
            self.schedule_maintenance(i);
        }
    }

    /// After a start or a new plan: R13's difference rule for every service not covered now,
    /// so that a maintenance that ended while the box was down, or that the new plan removed,
    /// is settled too (where notifications and state agree, as they do outside maintenances,
    /// it does nothing); and windows recorded after the fact.
    fn settle_all(&mut self) {
        let wall = self.clock.now();
        for slot in 0..self.slots.len() {
            if !self.slots[slot].covered && self.settle(slot, wall) {
                if self.slots[slot].saved.state.holds() {
                    self.schedule_release(slot);
                }
                self.schedule_renotify(slot);
            }
        }
        self.recorded_after_the_fact();
    }

    /// Switches to `plan` (R9 still holds across it): a service that stays (same id) keeps its
    /// state, its availability history and, when its intervals are unchanged, its place in
    /// the schedule; a new one starts at its offset; a removed one is forgotten, state and
    /// all. Checks in flight finish and land on their service if it still exists.
    fn replan(&mut self, plan: Arc<Plan>) {
        let wall = self.clock.now();
        let now = Instant::now();
        let mut old: HashMap<Arc<str>, Slot> = self.slots.drain(..).map(|s| (s.origin.service.clone(), s)).collect();
        self.maintenances = Arc::new(cover::in_force(&plan, &self.runtime));
        let mut slots = build_slots(
            &plan,
            &self.maintenances,
            |id| old.get(id).map(|s| s.saved.clone()),
            wall,
            now,
        );
        let (mut kept, mut moved) = (0usize, 0usize);
        for slot in &mut slots {
            let Some(before) = old.remove(&slot.origin.service) else {
                continue;
            };
            let same_grid = before.interval() == slot.interval() && before.retry() == slot.retry();
            slot.running = before.running;
            slot.last_output = before.last_output;
            slot.last_duration_ms = before.last_duration_ms;
            slot.in_control = before.in_control;
            slot.release_due = before.release_due;
            slot.covered = before.covered;
            slot.availability_due = before.availability_due;
            if same_grid {
                slot.check_due = before.check_due;
                kept += 1;
            } else {
                moved += 1;
            }
        }
        let gone: Vec<String> = old.into_keys().map(|id| id.to_string()).collect();
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
        self.settle_all();
        self.outgoing_forgotten.extend(gone);
        self.last_snapshot = None;
    }

    /// Runs until `cancel`, then lets the checks in flight finish (within `drain`) and commits
    /// their records and every state.
    pub async fn run(mut self, cancel: CancellationToken, drain: Duration) {
        let mut alive_tick = tokio::time::interval(ALIVE_EVERY);
        let mut save_tick = tokio::time::interval(SAVE_SLICE_EVERY);
        let mut flush_tick = tokio::time::interval(FLUSH_EVERY);
        flush_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut plans = self.plans.take();
        // One timer for the next due time, moved rather than made anew at each turn of the loop.
        let sleep = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(sleep);
        loop {
            let next = self.heap.peek().map(|Reverse((due, _, _))| *due);
            let next = next.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            if sleep.deadline() != next || sleep.is_elapsed() {
                sleep.as_mut().reset(next);
            }
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
                Some(request) = self.actions.recv() => self.on_action(request).await,
                Some(passive) = self.passive.recv() => self.on_passive(passive).await,
                _ = &mut sleep => self.on_due(),
                _ = flush_tick.tick() => self.flush().await,
                _ = save_tick.tick() => self.save_slice(),
                Some(ask) = self.snapshot_requests.recv() => match ask {
                    Ask::Snapshot(detail, reply) => {
                        let _ = reply.send(self.snapshot(detail));
                    }
                    Ask::Ping(reply) => {
                        let _ = reply.send(());
                    }
                },
                _ = alive_tick.tick() => {
                    if let Err(e) = self.store.mark_alive(self.clock.now()).await {
                        tracing::error!(error = %e, "the store is closed");
                    }
                    if !self.runtime.is_empty() {
                        self.purge_ended_maintenances().await;
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
        self.save_all().await;
    }

    fn schedule(&mut self, slot: usize, wake: Wake, due: Instant) {
        let s = &mut self.slots[slot];
        match wake {
            Wake::Check => s.check_due = Some(due),
            Wake::Release => s.release_due = Some(due),
            Wake::Renotify => s.renotify_due = Some(due),
            Wake::Maintenance => s.maintenance_due = Some(due),
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
                Wake::Renotify => s.renotify_due == Some(due),
                Wake::Maintenance => s.maintenance_due == Some(due),
                Wake::Availability => s.availability_due == due,
            };
            if !current {
                continue; // rescheduled since
            }
            match wake {
                Wake::Check => self.start_check(slot, due),
                Wake::Release => self.release(slot),
                Wake::Renotify => self.renotify(slot),
                Wake::Maintenance => self.maintenance_change(slot),
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
            let next = next_on_grid(due, s.interval(), Instant::now());
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
        if !s.maintenances.is_empty() {
            let c = self.coverage(slot, wall);
            if c.covered && !c.collect {
                // R13 `collect: false`: not checked, as outside its control period.
                if let Some(change) = c.next_change {
                    self.schedule(slot, Wake::Check, Instant::now() + until_wall(wall, change));
                }
                return;
            }
        }
        let s = &mut self.slots[slot];
        s.running = true;
        let lateness = Instant::now().saturating_duration_since(due);
        self.metrics.lateness.observe_ms(lateness.as_secs_f64() * 1e3);
        // The next run on this service's grid, whatever this one's outcome; a result that
        // asks for a retry moves it earlier. A passive service's only run is its clearing.
        if !s.is_passive() {
            let next = next_on_grid(due, s.interval(), Instant::now());
            s.check_due = Some(next);
            self.heap.push(Reverse((next, Wake::Check, slot)));
        }
        self.spawn_check(slot);
    }

    /// Runs the slot's check as its own task, within the global, per-kind and per-device
    /// limits; its result comes back on the results channel.
    fn spawn_check(&mut self, slot: usize) {
        let s = &self.slots[slot];
        let permits = (
            self.global.clone(),
            self.per_kind[s.kind.index()].clone(),
            self.per_device
                .entry(s.origin.device.clone())
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_device_limit)))
                .clone(),
        );
        let job = Job {
            slot,
            generation: self.generation,
            service_id: s.origin.service.clone(),
            plan: self.plan.clone(),
            service: s.service as usize,
            device: s.device as usize,
            timeout: s.timeout(),
        };
        let probers = self.probers.clone();
        let tx = self.results_tx.clone();
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
                service_id: job.service_id.clone(),
                result,
            });
        });
    }

    async fn on_result(&mut self, done: Done) {
        let wall = self.clock.now();
        let Done {
            slot,
            generation,
            service_id,
            result,
        } = done;
        let slot = if generation == self.generation {
            slot
        } else {
            match self.by_id.get(&*service_id) {
                Some(slot) => *slot,
                None => return, // removed by a new plan while its check ran
            }
        };
        // R9: the device's host check is down; R14: every usable parent is down (its host
        // check HARD critical, or itself unreachable: the chain needs no walk).
        let down = |h: &u32| {
            let st = &self.slots[*h as usize].saved.state;
            st.state_type == StateType::Hard && matches!(st.state, State::Critical | State::Unreachable)
        };
        let s = &self.slots[slot];
        let host_down =
            s.host.as_ref().is_some_and(down) || (!s.parent_hosts.is_empty() && s.parent_hosts.iter().all(down));
        let kind = self.slots[slot].kind;
        self.metrics.checks[kind.index()][metrics::status_index(result.status)].fetch_add(1, Relaxed);
        self.metrics.durations[kind.index()].observe_ms(result.duration.as_secs_f64() * 1e3);
        // A device's semaphore lives while its checks run (or wait): 45,000 idle ones took 5 MB.
        let device_id = &self.slots[slot].origin.device;
        if self
            .per_device
            .get(device_id)
            .is_some_and(|d| Arc::strong_count(d) == 1)
        {
            self.per_device.remove(device_id);
        }
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
            let max_gap = s.interval().max(s.retry()) * 2 + s.timeout();
            let until =
                wall.min(previous + jiff::SignedDuration::try_from(max_gap).unwrap_or(jiff::SignedDuration::ZERO));
            let held = s.saved.state.state;
            self.count_availability(slot, previous, until, held);
        }
        // The wake at the end of a maintenance settles it: a result just before does not.
        let in_maintenance = !self.slots[slot].maintenances.is_empty() && self.coverage(slot, wall).covered;
        let s = &mut self.slots[slot];
        s.unsaved = true;
        let in_availability = s.periods[1].is_active(wall, &s.tz);
        let ctx = Context {
            max_attempts: s.max_attempts,
            in_notification_period: s.periods[2].is_active(wall, &s.tz),
            in_maintenance,
            flap: s.flap,
        };
        let was_retrying = s.saved.state.retrying();
        let outcome = s.saved.state.apply(state, ctx, wall);
        tracing::debug!(
            service = %s.origin.service,
            kind = ?kind,
            status = state.as_str(),
            attempt = s.saved.state.attempt,
            duration_ms = result.duration.as_secs_f64() * 1e3,
            output = %result.output,
            "check"
        );
        s.last_output = Arc::from(result.output.as_str());
        s.last_duration_ms = Some(result.duration.as_millis().min(u128::from(u32::MAX)) as u32);
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
                in_maintenance: ctx.in_maintenance,
                flapping: s.saved.state.flapping,
            },
        }];
        if let Some((from, to, state_type)) = outcome.change {
            tracing::info!(
                service = %s.origin.service,
                device = %s.origin.device,
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
        s.dirty |= !outcome.notices.is_empty();
        for notice in outcome.notices {
            records.push(self.notification(slot, notice, wall));
        }
        let s = &mut self.slots[slot];
        let retrying = s.saved.state.retrying();
        if retrying {
            // R9: retries every retry_interval_s while not OK and not HARD.
            let next = Instant::now() + s.retry();
            s.check_due = Some(next);
            self.heap.push(Reverse((next, Wake::Check, slot)));
        } else if was_retrying {
            let next = next_on_grid(Instant::now(), s.interval(), Instant::now());
            s.check_due = Some(next);
            self.heap.push(Reverse((next, Wake::Check, slot)));
        }
        if self.slots[slot].saved.state.holds() {
            self.schedule_release(slot);
        }
        self.schedule_renotify(slot);
        if self.slots[slot].is_passive() {
            self.schedule_clear(slot);
        }
        let states = self.take_dirty(slot);
        self.commit(slot, records, states);
        if !self.check_waiters.is_empty() {
            let s = &self.slots[slot];
            let (output, duration) = (s.last_output.clone(), u64::from(s.last_duration_ms.unwrap_or(0)));
            self.answer_waiters(slot, state.as_str(), &output, duration).await;
        }
    }

    fn notification(&self, slot: usize, notice: Notice, wall: Timestamp) -> Record {
        let s = &self.slots[slot];
        tracing::info!(
            service = %s.origin.service,
            device = %s.origin.device,
            kind = notice.kind.as_str(),
            status = s.saved.state.state.as_str(),
            held_s = notice.held_s,
            repeat = notice.repeat,
            output = %s.last_output,
            "notification"
        );
        let (contacts, contact_groups) = match &self.plan.devices[s.device as usize].outcome {
            Ok(dev) => (
                dev.contacts.clone(),
                dev.contact_groups.iter().map(|g| g.id.clone()).collect(),
            ),
            Err(_) => (Vec::new(), Vec::new()),
        };
        Record {
            ts: wall,
            body: Body::Notification {
                kind: notice.kind,
                status: s.saved.state.state,
                criticality: s.criticality,
                contacts,
                contact_groups,
                held_s: notice.held_s,
                repeat: notice.repeat,
                output: s.last_output.to_string(),
                problem_since: s.saved.state.problem_since,
                delivered_by: None,
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
        let notices = s.saved.state.release(wall, s.covered);
        if !notices.is_empty() {
            s.dirty = true;
            let records = notices.into_iter().map(|n| self.notification(slot, n, wall)).collect();
            self.schedule_renotify(slot);
            let states = self.take_dirty(slot);
            self.commit(slot, records, states);
        }
    }

    /// Wakes when the current problem is due to be notified again (R16), if ever.
    fn schedule_renotify(&mut self, slot: usize) {
        let s = &mut self.slots[slot];
        match s.saved.state.renotify_due(s.renotify_s) {
            Some(due) => {
                let wait = until_wall(self.clock.now(), due);
                self.schedule(slot, Wake::Renotify, Instant::now() + wait);
            }
            None => s.renotify_due = None,
        }
    }

    /// R16: the problem again, inside the notification period (when it opens, if closed now).
    fn renotify(&mut self, slot: usize) {
        let wall = self.clock.now();
        let s = &mut self.slots[slot];
        s.renotify_due = None;
        if s.covered {
            return; // the end of the maintenance schedules it again
        }
        let period = &s.periods[2];
        if !period.is_active(wall, &s.tz) {
            if let Some(open) = period.next_change(wall, &s.tz) {
                self.schedule(slot, Wake::Renotify, Instant::now() + until_wall(wall, open));
            }
            return;
        }
        if let Some(notice) = s.saved.state.renotify(wall, s.renotify_s) {
            s.dirty = true;
            let record = self.notification(slot, notice, wall);
            let states = self.take_dirty(slot);
            self.commit(slot, vec![record], states);
        }
        self.schedule_renotify(slot);
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
}
