//! The central server's commands (protocol.md §5.6): a long poll of `GET /commands`, each
//! command run at most once across restarts (its id is committed before it runs, and marked
//! done in the commit of its `command_result` record), answered in order.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::sync::{Backoff, Syncer};
use crate::command::{self, Parsed};
use crate::record::ActionSource;
use crate::schedule::{Actions, Answer, box_origin, command_result};
use crate::store::Control;

/// How long the central server may hold a poll open (`wait`); the exchange's deadline adds
/// the usual timeout to it.
const WAIT_S: u64 = 25;
/// A poll's answer, at most.
const MAX_ANSWER: usize = 4 << 20;
/// How long a cancelled census may take to commit what it found.
const CENSUS_DRAIN: Duration = Duration::from_secs(1);
/// A central server without `/commands` (404) is asked again this much later.
const NOT_SUPPORTED_WAIT: Duration = Duration::from_secs(300);

/// What the commands loop needs beyond the syncer.
pub struct Commands {
    pub actions: Actions,
    /// `[census]`: limits on the `discover` command.
    pub census: crate::settings::CensusLimits,
    /// Commands received and never done (the store's), and the last id received.
    pub interrupted: Vec<String>,
    pub last: Option<String>,
}

#[derive(Deserialize)]
struct Polled {
    commands: Vec<Value>,
}

impl Syncer {
    pub(super) async fn commands_loop(self: Arc<Self>, commands: Commands, cancel: CancellationToken) {
        // The census running, if any: one at a time, and waited for at the end (cancelled with
        // the loop, it commits what it found before the store closes).
        let mut running: Option<tokio::task::JoinHandle<()>> = None;
        self.poll_commands(commands, &mut running, &cancel).await;
        if let Some(census) = running
            && tokio::time::timeout(CENSUS_DRAIN, census).await.is_err()
        {
            tracing::warn!("the census did not end in time: what it found is lost");
        }
    }

    async fn poll_commands(
        self: &Arc<Self>,
        commands: Commands,
        running: &mut Option<tokio::task::JoinHandle<()>>,
        cancel: &CancellationToken,
    ) {
        let Commands {
            actions,
            census,
            interrupted,
            mut last,
        } = commands;
        for id in interrupted {
            let answer = Answer::refused(
                "the box restarted while running this command: it was not run again, and may or may not have taken effect",
            );
            self.answer_here(&id, answer).await;
        }
        let mut backoff = Backoff::new(&self.pace);
        while !cancel.is_cancelled() && !self.state.is_revoked() {
            let path = match &last {
                Some(id) => format!("/commands?after={}&wait={WAIT_S}", encode(id)),
                None => format!("/commands?wait={WAIT_S}"),
            };
            let deadline = Duration::from_secs(WAIT_S) + self.pace.timeout;
            let polled = tokio::select! {
                _ = cancel.cancelled() => return,
                polled = self.client.get(&path, None, MAX_ANSWER, deadline) => polled,
            };
            let polled = polled.and_then(|answer| {
                if answer.status == 204 {
                    return Ok(Polled { commands: Vec::new() });
                }
                answer.json::<Polled>()
            });
            match polled {
                Ok(polled) => {
                    backoff.reset();
                    self.state.succeeded();
                    for c in polled.commands {
                        if cancel.is_cancelled() {
                            return;
                        }
                        if let Some(id) = self.run_command(c, &actions, census, running, cancel).await {
                            last = Some(id);
                        }
                    }
                }
                Err(super::client::CentralError::Status { status: 404, .. }) => {
                    tracing::debug!("the central server has no commands route: asking again later");
                    if !self.pause(cancel, NOT_SUPPORTED_WAIT).await {
                        return;
                    }
                }
                Err(e) => {
                    self.state.failed("commands", &e);
                    if !self.pause(cancel, backoff.wait_after(&e)).await {
                        return;
                    }
                }
            }
        }
    }

    /// Runs one command unless it ran before; its id, when it has one.
    async fn run_command(
        self: &Arc<Self>,
        c: Value,
        actions: &Actions,
        limits: crate::settings::CensusLimits,
        running: &mut Option<tokio::task::JoinHandle<()>>,
        cancel: &CancellationToken,
    ) -> Option<String> {
        let Value::Object(c) = c else {
            tracing::warn!("a command that is not an object: ignored");
            return None;
        };
        let Some(id) = c.get("id").and_then(Value::as_str).map(str::to_string) else {
            tracing::warn!("a command without an id: ignored");
            return None;
        };
        let kind = c.get("kind").and_then(Value::as_str).unwrap_or("?");
        match self.store.command_received(id.clone(), jiff::Timestamp::now()).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::debug!(command = %id, "already received: not run again");
                return Some(id);
            }
            Err(e) => {
                // Not marked, so not run: the next poll asks for it again.
                tracing::error!(command = %id, error = %e, "a command could not be recorded: not run");
                return None;
            }
        }
        // The kind and id only: other fields may carry secrets (a census's communities).
        tracing::info!(command = %id, kind, "command");
        match command::parse(&c, jiff::Timestamp::now()) {
            Parsed::Action(action) => {
                let answer = actions
                    .ask_in_time(action, ActionSource::Central, Some(id.clone()))
                    .await;
                if !answer.ok {
                    tracing::info!(command = %id, message = %answer.message, "command refused");
                }
            }
            Parsed::Discover(request) => match request.options(limits) {
                Err(e) => self.answer_here(&id, Answer::refused(format!("discover: {e}"))).await,
                Ok(_) if running.as_ref().is_some_and(|r| !r.is_finished()) => {
                    let answer = Answer::refused("discover: a census is already running; ask again when it has ended");
                    self.answer_here(&id, answer).await;
                }
                Ok(options) => {
                    let me = self.clone();
                    let (id, cancel) = (id.clone(), cancel.clone());
                    *running = Some(tokio::spawn(async move { me.census(id, options, cancel).await }));
                }
            },
            Parsed::Refused(why) => self.answer_here(&id, Answer::refused(why)).await,
        }
        Some(id)
    }

    /// Runs a census and commits its `discovery` records with the command's answer; a
    /// shutdown ends it with what it found.
    async fn census(&self, id: String, options: crate::census::Options, cancel: CancellationToken) {
        tracing::info!(command = %id, ranges = ?options.ranges.iter().map(|r| r.text.as_str()).collect::<Vec<_>>(), rate = options.rate, "census started");
        let report = crate::census::run(&options, |_| {}, &cancel).await;
        let origin = box_origin(&self.plans.borrow());
        let now = jiff::Timestamp::now();
        let parts = crate::census::parts(&report);
        let count = parts.len() as u32;
        let mut items: Vec<crate::store::Item> = parts
            .into_iter()
            .enumerate()
            .map(|(i, hosts)| {
                let body = crate::record::Body::Discovery {
                    command: Some(id.clone()),
                    ranges: report.ranges.clone(),
                    hosts,
                    part: i as u32 + 1,
                    parts: count,
                    complete: report.complete,
                    addresses: report.addresses,
                    probed: report.probed,
                };
                (origin.clone(), crate::record::Record { ts: now, body })
            })
            .collect();
        let message = format!(
            "census of {} address(es): {} answered{}",
            report.probed,
            report.hosts.len(),
            if report.complete { "" } else { " (cut short)" }
        );
        let answer = Answer {
            ok: true,
            message,
            data: None,
        };
        tracing::info!(command = %id, hosts = report.hosts.len(), complete = report.complete, "census ended");
        items.push((origin, command_result(&id, &answer, now)));
        let done = vec![Control::CommandDone { id: id.clone() }];
        if let Err(e) = self.store.append_committed_with(items, Vec::new(), done).await {
            tracing::error!(command = %id, error = %e, "a census's records could not be committed");
        }
    }

    /// Answers a command the scheduler does not run: its record and done mark, one commit.
    async fn answer_here(&self, id: &str, answer: Answer) {
        let origin = box_origin(&self.plans.borrow());
        let record = command_result(id, &answer, jiff::Timestamp::now());
        let done = vec![Control::CommandDone { id: id.to_string() }];
        if let Err(e) = self
            .store
            .append_committed_with(vec![(origin, record)], Vec::new(), done)
            .await
        {
            tracing::error!(command = %id, error = %e, "a command's answer could not be committed");
        }
    }
}

/// A command id in a query string: unreserved characters as they are, the rest %-encoded.
fn encode(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
