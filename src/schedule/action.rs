//! Operators' requests to the running scheduler, from the central server's commands
//! (protocol.md §5.6) or the box's command line through the control socket: check a service
//! now, acknowledge its problem (R16), start or end a maintenance (R13), list maintenances.
//!
//! The scheduler answers once what the request changed is committed, so an answer "ok" means
//! it survives a restart. A central command's `command_result` record and its mark as done
//! go in that same commit (at most once: `store/control.rs`).

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use super::Scheduler;
use super::cover::Runtime;
use super::state::Ack;
use crate::document;
use crate::record::{ActionSource, Body, MaintenanceEvent, Origin, Record};
use crate::rules::maintenance::{Resolver, Scope};
use crate::store::{Control, Item};

/// How long a caller should wait for the scheduler's answer (a check may take its whole
/// timeout): the callers' deadline, as `ask` itself has none (tests run it on paused time).
pub const ANSWER_WAIT: Duration = Duration::from_secs(150);

/// What an operator asks.
#[derive(Debug, Clone)]
pub enum Action {
    /// Check the service now, off its grid (which is kept).
    CheckNow {
        service: String,
    },
    Acknowledge {
        service: String,
        author: String,
        comment: String,
    },
    /// A maintenance with `start`/`end` or a `time_range` (minutes are turned into instants
    /// by whoever reads the request).
    MaintenanceStart {
        maintenance: document::Maintenance,
        author: Option<String>,
    },
    MaintenanceEnd {
        id: String,
        author: Option<String>,
    },
    /// The maintenances applied now.
    ListMaintenances,
}

/// The answer to a request, as `command_result` records and the control socket carry it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    pub ok: bool,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl Answer {
    fn ok(message: impl Into<String>, data: Option<Value>) -> Answer {
        Answer {
            ok: true,
            message: message.into(),
            data,
        }
    }

    pub fn refused(message: impl Into<String>) -> Answer {
        Answer {
            ok: false,
            message: message.into(),
            data: None,
        }
    }
}

pub(super) struct Request {
    action: Action,
    source: ActionSource,
    /// The central server's command id, whose result and done mark go with the answer.
    command: Option<String>,
    reply: oneshot::Sender<Answer>,
}

/// Someone waiting for a check asked with [`Action::CheckNow`].
pub(super) struct Waiter {
    command: Option<String>,
    reply: oneshot::Sender<Answer>,
}

/// Hands requests to the running scheduler; cheap to clone.
#[derive(Clone)]
pub struct Actions {
    tx: mpsc::Sender<Request>,
}

impl Actions {
    /// Asks and waits for the answer (a refusal when the scheduler is gone); callers bound
    /// the wait with [`ANSWER_WAIT`].
    pub async fn ask(&self, action: Action, source: ActionSource, command: Option<String>) -> Answer {
        let (reply, answer) = oneshot::channel();
        let request = Request {
            action,
            source,
            command,
            reply,
        };
        if self.tx.send(request).await.is_err() {
            return Answer::refused("the scheduler has stopped");
        }
        match answer.await {
            Ok(answer) => answer,
            Err(_) => Answer::refused("the request was dropped (the service left the plan, or the daemon is stopping)"),
        }
    }

    /// [`Actions::ask`] within [`ANSWER_WAIT`].
    pub async fn ask_in_time(&self, action: Action, source: ActionSource, command: Option<String>) -> Answer {
        match tokio::time::timeout(ANSWER_WAIT, self.ask(action, source, command)).await {
            Ok(answer) => answer,
            Err(_) => Answer::refused("no answer in time"),
        }
    }
}

impl Scheduler {
    /// A handle for operators' requests; ask before [`Scheduler::run`].
    pub fn actions(&self) -> Actions {
        match &self.actions_tx {
            Some(tx) => Actions { tx: tx.clone() },
            None => {
                // Only `new` leaves it unset, and it always sets it.
                let (tx, _) = mpsc::channel(1);
                Actions { tx }
            }
        }
    }

    /// Maintenances kept from commands and the command line (the store's JSON bodies).
    pub fn keep_maintenances(&mut self, bodies: &[String]) {
        self.runtime = bodies
            .iter()
            .filter_map(|b| match serde_json::from_str::<Runtime>(b) {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::warn!(error = %e, "a kept maintenance could not be read: skipped");
                    None
                }
            })
            .collect();
        self.rebuild_maintenances();
    }

    pub(super) async fn on_action(&mut self, request: Request) {
        let Request {
            action,
            source,
            command,
            reply,
        } = request;
        let wall = self.clock.now();
        let (answer, items, control) = match action {
            Action::CheckNow { service } => match self.by_id.get(service.as_str()) {
                Some(&slot) => {
                    // Answered with the check's result.
                    self.check_now(slot, command, reply);
                    return;
                }
                None => refused(format!("unknown service {service:?}: this box does not poll it")),
            },
            Action::Acknowledge {
                service,
                author,
                comment,
            } => self.acknowledge(&service, author, comment, source, wall),
            Action::MaintenanceStart { maintenance, author } => self.start_maintenance(maintenance, author, source),
            Action::MaintenanceEnd { id, author } => self.end_maintenance(&id, author, source),
            Action::ListMaintenances => (self.list_maintenances(wall), Vec::new(), Vec::new()),
        };
        let origin = items
            .first()
            .map(|(o, _)| o.clone())
            .unwrap_or_else(|| box_origin(&self.plan));
        self.answer(answer, origin, command, Some(reply), items, control).await;
    }

    /// Commits what the request changed with its command's result, then answers.
    async fn answer(
        &mut self,
        answer: Answer,
        origin: Arc<Origin>,
        command: Option<String>,
        reply: Option<oneshot::Sender<Answer>>,
        mut items: Vec<Item>,
        mut control: Vec<Control>,
    ) {
        if let Some(id) = &command {
            items.push((origin, command_result(id, &answer, self.clock.now())));
            control.push(Control::CommandDone { id: id.clone() });
        }
        for (_, r) in &items {
            self.metrics.records[r.body.kind() as usize - 1].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        if items.is_empty() && control.is_empty() {
            if let Some(reply) = reply {
                let _ = reply.send(answer);
            }
            return;
        }
        // What waited goes first, so that the outbox keeps the order things happened in.
        self.flush().await;
        let store = self.store.clone();
        tokio::spawn(async move {
            let answer = match store.append_committed_with(items, Vec::new(), control).await {
                Ok(_) => answer,
                Err(e) => Answer::refused(format!("the store could not commit it: {e}")),
            };
            if let Some(reply) = reply {
                let _ = reply.send(answer);
            }
        });
    }

    /// Starts the slot's check now unless one runs (then its result answers too).
    fn check_now(&mut self, slot: usize, command: Option<String>, reply: oneshot::Sender<Answer>) {
        let id = self.slots[slot].origin.service.clone();
        self.check_waiters
            .entry(id.clone())
            .or_default()
            .push(Waiter { command, reply });
        if !self.slots[slot].running {
            tracing::info!(service = %id, "check now, as asked");
            self.slots[slot].running = true;
            self.spawn_check(slot);
        }
    }

    /// A check asked for has its result: each waiter gets it, each command its record.
    pub(super) async fn answer_waiters(&mut self, slot: usize, status: &str, output: &str, duration_ms: u64) {
        let origin = self.slots[slot].origin.clone();
        let Some(waiters) = self.check_waiters.remove(&origin.service) else {
            return;
        };
        let s = &self.slots[slot].saved.state;
        let data = json!({
            "service": &*origin.service, "status": status, "output": output, "duration_ms": duration_ms,
            "state": s.state.as_str(), "state_type": s.state_type.as_str(), "attempt": s.attempt,
        });
        for w in waiters {
            let answer = Answer::ok(format!("{}: {status}", origin.service), Some(data.clone()));
            self.answer(answer, origin.clone(), w.command, Some(w.reply), Vec::new(), Vec::new())
                .await;
        }
    }

    fn acknowledge(
        &mut self,
        service: &str,
        author: String,
        comment: String,
        source: ActionSource,
        wall: Timestamp,
    ) -> (Answer, Vec<Item>, Vec<Control>) {
        let Some(&slot) = self.by_id.get(service) else {
            return refused(format!("unknown service {service:?}: this box does not poll it"));
        };
        let ack = Ack {
            author: author.clone(),
            comment: comment.clone(),
            at: wall,
        };
        let s = &mut self.slots[slot];
        if let Err(e) = s.saved.state.acknowledge(ack) {
            return refused(format!("{service}: {e}"));
        }
        tracing::info!(service, author = %author, "problem acknowledged");
        s.dirty = true;
        s.renotify_due = None;
        let origin = s.origin.clone();
        let record = Record {
            ts: wall,
            body: Body::Acknowledgement {
                author,
                comment,
                source,
            },
        };
        let states = self.take_dirty(slot);
        self.outgoing_states.extend(states);
        (
            Answer::ok(format!("{service}: acknowledged"), None),
            vec![(origin, record)],
            Vec::new(),
        )
    }

    fn start_maintenance(
        &mut self,
        maintenance: document::Maintenance,
        author: Option<String>,
        source: ActionSource,
    ) -> (Answer, Vec<Item>, Vec<Control>) {
        let id = maintenance.id.clone();
        if self.maintenances.iter().any(|m| m.maintenance.id == id) {
            return refused(format!("a maintenance {id:?} exists already"));
        }
        let resolved = match Resolver::new(&self.plan).resolve(&maintenance) {
            Ok(m) => m,
            Err(warning) => return refused(format!("maintenance refused: {warning}")),
        };
        let runtime = Runtime {
            maintenance,
            source,
            author: author.clone(),
        };
        let body = serde_json::to_string(&runtime).unwrap_or_default();
        let record = self.maintenance_record(&resolved, &runtime, MaintenanceEvent::Created);
        self.runtime.push(runtime);
        self.rebuild_maintenances();
        tracing::info!(maintenance = %id, source = source.as_str(), "maintenance created");
        let covered = self.slots.iter().filter(|s| s.covered).count();
        (
            Answer::ok(
                format!("maintenance {id} created"),
                Some(json!({ "id": id, "covered_now": covered })),
            ),
            vec![record],
            vec![Control::SaveMaintenance { id, body }],
        )
    }

    fn end_maintenance(
        &mut self,
        id: &str,
        author: Option<String>,
        source: ActionSource,
    ) -> (Answer, Vec<Item>, Vec<Control>) {
        if self.plan.maintenances.iter().any(|m| m.id == id) {
            return refused(format!("{id} comes from the monitoring document: change it there"));
        }
        let Some(at) = self.runtime.iter().position(|r| r.maintenance.id == id) else {
            return refused(format!("no maintenance {id:?}"));
        };
        // Its past was left out of availability as it went; from now on nothing is covered.
        let mut ended = self.runtime.remove(at);
        ended.author = author.or(ended.author);
        ended.source = source;
        let record = Resolver::new(&self.plan)
            .resolve(&ended.maintenance)
            .ok()
            .map(|m| self.maintenance_record(&m, &ended, MaintenanceEvent::Cancelled));
        self.rebuild_maintenances();
        tracing::info!(maintenance = %id, source = source.as_str(), "maintenance ended");
        (
            Answer::ok(format!("maintenance {id} ended"), None),
            record.into_iter().collect(),
            vec![Control::RemoveMaintenance { id: id.to_string() }],
        )
    }

    fn list_maintenances(&self, wall: Timestamp) -> Answer {
        let list: Vec<Value> = self
            .maintenances
            .iter()
            .filter(|m| !m.is_over(wall))
            .map(|m| m.describe(&self.plan, wall))
            .collect();
        Answer::ok(format!("{} maintenance(s)", list.len()), Some(json!(list)))
    }

    /// The maintenances applied again after a change: every slot's covering list, its wakes,
    /// and the difference rule for those no longer covered.
    pub(super) fn rebuild_maintenances(&mut self) {
        self.maintenances = Arc::new(super::cover::in_force(&self.plan, &self.runtime));
        for slot in 0..self.slots.len() {
            let index = self.slots[slot].service as usize;
            self.slots[slot].maintenances = super::slot::covering(&self.plan, &self.maintenances, index);
            self.schedule_maintenance(slot);
        }
        self.settle_all();
        self.last_snapshot = None;
    }

    /// Runtime one-off maintenances whose end has passed leave the store, each with its `end`
    /// record (the document's stay in the document).
    pub(super) async fn purge_ended_maintenances(&mut self) {
        let wall = self.clock.now();
        let ended: Vec<crate::rules::Maintenance> = self
            .maintenances
            .iter()
            .filter(|m| m.source != ActionSource::Document && m.is_over(wall))
            .map(|m| m.maintenance.clone())
            .collect();
        if ended.is_empty() {
            return;
        }
        let mut items = Vec::new();
        let mut control = Vec::new();
        for m in &ended {
            let Some(at) = self.runtime.iter().position(|r| r.maintenance.id == m.id) else {
                continue;
            };
            let r = self.runtime.remove(at);
            items.push(self.maintenance_record(m, &r, MaintenanceEvent::End));
            tracing::info!(maintenance = %m.id, "maintenance over");
            control.push(Control::RemoveMaintenance { id: m.id.clone() });
        }
        self.rebuild_maintenances();
        let origin = box_origin(&self.plan);
        self.answer(Answer::ok("", None), origin, None, None, items, control)
            .await;
    }

    fn maintenance_record(&self, m: &crate::rules::Maintenance, runtime: &Runtime, event: MaintenanceEvent) -> Item {
        let plan = &self.plan;
        let (service, device, node) = match m.scope {
            Scope::Node(n) => (None, None, Some(n)),
            Scope::Device(d) => (None, Some(d), plan.devices[d].node),
            Scope::Service(s) => {
                let d = plan.services[s].device;
                (Some(s), d, d.and_then(|d| plan.devices[d].node))
            }
        };
        let node = node.unwrap_or(plan.box_node);
        let origin = Arc::new(Origin {
            service: Arc::from(service.map_or("", |s| plan.services[s].id.as_str())),
            device: Arc::from(device.map_or("", |d| plan.devices[d].id.as_str())),
            node: Arc::from(plan.tree.id(node)),
            company: plan.tree.company_id(node).map(Arc::from),
        });
        let raw = &runtime.maintenance;
        let record = Record {
            ts: self.clock.now(),
            body: Body::Maintenance {
                maintenance: raw.id.clone(),
                event,
                scope: raw.scope.clone(),
                start: raw.start.clone(),
                end: raw.end.clone(),
                time_range: raw.time_range.clone(),
                collect: raw.collect,
                counts_in_availability: raw.counts_in_availability,
                source: runtime.source,
                author: runtime.author.clone(),
                comment: raw.comment.clone(),
            },
        };
        (origin, record)
    }
}

fn refused(message: String) -> (Answer, Vec<Item>, Vec<Control>) {
    (Answer::refused(message), Vec::new(), Vec::new())
}

/// A central command's answer as a record.
pub fn command_result(id: &str, answer: &Answer, at: Timestamp) -> Record {
    Record {
        ts: at,
        body: Body::CommandResult {
            command: id.to_string(),
            ok: answer.ok,
            message: answer.message.clone(),
            data: answer.data.clone(),
        },
    }
}

/// Where a record about no service comes from (a command's answer): the box's own node.
pub fn box_origin(plan: &crate::rules::Plan) -> Arc<Origin> {
    Arc::new(Origin {
        service: Arc::from(""),
        device: Arc::from(""),
        node: Arc::from(plan.tree.id(plan.box_node)),
        company: plan.tree.company_id(plan.box_node).map(Arc::from),
    })
}
