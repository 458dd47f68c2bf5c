//! The trap receiver (protocol.md §3 `snmp_trap`): a UDP socket, open while the plan has trap
//! services, on `[traps] listen` (default `[::]:162`). Each datagram is authenticated with its
//! sender's credentials, matched against the sender's trap services, and their results go to
//! the scheduler as passive results; INFORMs are answered. Counters and the last unmatched
//! notifications are kept for `/status` and the heartbeat.
//!
//! Memory stays bounded under a burst: one datagram is handled at a time, the scheduler's
//! queue is bounded (the kernel drops what the socket cannot take), the unmatched list keeps
//! 100, and the log of bad credentials keeps one line a minute per sender.

pub mod decode;
pub mod engine;
pub mod router;
pub mod usm;

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde::Serialize;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::document::SnmpVersion;
use crate::rules::Plan;
use crate::schedule::Passive;
use decode::{Refused, Trap, Version};
use engine::{Engine, Opened};
use router::Router;

/// Where traps are received unless `[traps] listen` says otherwise: `[::]:162`.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(std::net::IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED), 162);
/// Unmatched notifications kept for `/status`.
pub const UNMATCHED_KEPT: usize = 100;
/// A sender with bad credentials is logged at most this often.
const BAD_AUTH_LOG_EVERY: Duration = Duration::from_secs(60);
/// The trap socket's receive buffer asked for.
const RECEIVE_BUFFER: usize = 4 << 20;
/// The largest SNMP message read (larger datagrams are cut, and then malformed).
const MAX_DATAGRAM: usize = 65_535;

/// An unmatched notification, as `/status` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct Unmatched {
    pub at: Timestamp,
    pub from: IpAddr,
    /// The notification, or why it could not be matched (an unknown sender).
    pub what: String,
}

/// Counters since start (the heartbeat's `traps`), and the last unmatched notifications.
#[derive(Debug, Default)]
pub struct TrapStats {
    pub received: AtomicU64,
    pub matched: AtomicU64,
    pub unmatched: AtomicU64,
    pub bad_auth: AtomicU64,
    pub malformed: AtomicU64,
    last_unmatched: Mutex<VecDeque<Unmatched>>,
    /// The address listened on, or why not.
    listening: Mutex<Option<Result<SocketAddr, String>>>,
}

/// `/status.traps`.
#[derive(Debug, Serialize)]
pub struct TrapsView {
    pub listen: Option<String>,
    pub error: Option<String>,
    pub received: u64,
    pub matched: u64,
    pub unmatched: u64,
    pub bad_auth: u64,
    pub malformed: u64,
    pub last_unmatched: Vec<Unmatched>,
}

impl TrapStats {
    pub fn view(&self) -> TrapsView {
        let listening = self.listening.lock().map(|l| l.clone()).unwrap_or(None);
        TrapsView {
            listen: listening
                .as_ref()
                .and_then(|l| l.as_ref().ok())
                .map(ToString::to_string),
            error: listening.and_then(Result::err),
            received: self.received.load(Relaxed),
            matched: self.matched.load(Relaxed),
            unmatched: self.unmatched.load(Relaxed),
            bad_auth: self.bad_auth.load(Relaxed),
            malformed: self.malformed.load(Relaxed),
            last_unmatched: self
                .last_unmatched
                .lock()
                .map(|l| l.iter().rev().cloned().collect())
                .unwrap_or_default(),
        }
    }

    fn unmatched(&self, from: IpAddr, what: String) {
        self.unmatched.fetch_add(1, Relaxed);
        if let Ok(mut list) = self.last_unmatched.lock() {
            if list.len() == UNMATCHED_KEPT {
                list.pop_front();
            }
            list.push_back(Unmatched {
                at: Timestamp::now(),
                from,
                what,
            });
        }
    }

    fn set_listening(&self, state: Option<Result<SocketAddr, String>>) {
        if let Ok(mut l) = self.listening.lock() {
            *l = state;
        }
    }
}

/// Receives traps for the plans `plans` brings until `cancel`; `listen` is `[traps] listen`,
/// and the box's SNMP engine (for v3 INFORMs) is kept in `state_dir`.
pub async fn run(
    listen: SocketAddr,
    state_dir: PathBuf,
    mut plans: watch::Receiver<Arc<Plan>>,
    passive: mpsc::Sender<Passive>,
    stats: Arc<TrapStats>,
    cancel: CancellationToken,
) {
    let mut receiver = Receiver::new(Router::new(plans.borrow_and_update().clone()), passive, stats.clone());
    let mut socket: Option<UdpSocket> = None;
    let mut buffer = vec![0u8; MAX_DATAGRAM];
    loop {
        if receiver.router.is_empty() {
            if socket.take().is_some() {
                tracing::info!("no snmp_trap service any more: the trap socket is closed");
            }
            stats.set_listening(None);
        } else if socket.is_none() {
            match UdpSocket::bind(listen).await {
                Ok(s) => {
                    // Room for a storm's first seconds (the kernel caps it at net.core.rmem_max).
                    if let Err(e) = socket2::SockRef::from(&s).set_recv_buffer_size(RECEIVE_BUFFER) {
                        tracing::debug!(error = %e, "the trap socket keeps its default receive buffer");
                    }
                    tracing::info!(listen = %listen, "receiving SNMP traps");
                    if receiver.engine.is_none() {
                        receiver.engine = start_engine(&state_dir);
                    }
                    stats.set_listening(Some(Ok(listen)));
                    socket = Some(s);
                }
                Err(e) => {
                    tracing::error!(listen = %listen, error = %e, "cannot receive SNMP traps: the snmp_trap services stay as they are");
                    stats.set_listening(Some(Err(format!("cannot listen on {listen}: {e}"))));
                }
            }
        }
        let datagram = async {
            match &socket {
                Some(s) => Some(s.recv_from(&mut buffer).await),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => return,
            changed = plans.changed() => match changed {
                Ok(()) => receiver.new_plan(plans.borrow_and_update().clone()),
                Err(_) => return,
            },
            Some(received) = datagram => match received {
                Ok((n, from)) => {
                    let n = n.min(MAX_DATAGRAM);
                    let answer = receiver.on_datagram(&mut buffer[..n], from.ip()).await;
                    if let (Some(answer), Some(s)) = (answer, &socket) {
                        let _ = s.send_to(&answer, from).await;
                    }
                }
                Err(e) => tracing::debug!(error = %e, "trap socket receive error"),
            },
        }
    }
}

/// The box's engine, started once (a failure is logged, and v3 INFORMs go unanswered).
fn start_engine(state_dir: &std::path::Path) -> Option<Engine> {
    match Engine::start(state_dir) {
        Ok(engine) => Some(engine),
        Err(e) => {
            tracing::error!(error = %e, "no SNMP engine of the box: v3 INFORMs will not be answered");
            None
        }
    }
}

/// What a datagram comes to once authenticated.
enum Outcome {
    /// The sending device (by index in the plan), its notification, and what to answer.
    Notification(usize, Trap, Option<Vec<u8>>),
    /// Only an answer: the box's engine told to a v3 sender.
    Answer(Vec<u8>),
    /// Nothing to say of it (an unknown sender: counted as unmatched).
    Nothing,
}

struct Receiver {
    router: Router,
    passive: mpsc::Sender<Passive>,
    stats: Arc<TrapStats>,
    /// v3 credentials per device id: each learns its sender's engine.
    security: HashMap<String, snmp2::v3::Security>,
    /// The box's engine, once the socket is open; v3 keys localized to it per device id.
    engine: Option<Engine>,
    keys: HashMap<String, Option<usm::Keys>>,
    /// When each sender with bad credentials was last logged.
    logged: HashMap<IpAddr, Instant>,
}

impl Receiver {
    fn new(router: Router, passive: mpsc::Sender<Passive>, stats: Arc<TrapStats>) -> Receiver {
        Receiver {
            router,
            passive,
            stats,
            security: HashMap::new(),
            engine: None,
            keys: HashMap::new(),
            logged: HashMap::new(),
        }
    }

    /// A new plan: its senders, and credentials learned afresh (they may have changed).
    fn new_plan(&mut self, plan: Arc<Plan>) {
        self.router = Router::new(plan);
        self.security.clear();
        self.keys.clear();
    }

    /// Handles one datagram; the answer to send back for an INFORM.
    async fn on_datagram(&mut self, datagram: &mut [u8], from: IpAddr) -> Option<Vec<u8>> {
        self.stats.received.fetch_add(1, Relaxed);
        let (device, trap, answer) = match self.authenticate(datagram, from) {
            Ok(Outcome::Notification(device, trap, answer)) => (device, trap, answer),
            Ok(Outcome::Answer(answer)) => return Some(answer),
            Ok(Outcome::Nothing) => return None,
            Err(Refused::Malformed(why)) => {
                self.stats.malformed.fetch_add(1, Relaxed);
                tracing::debug!(from = %from, why, "not a notification");
                return None;
            }
            Err(Refused::BadAuth(why)) => {
                self.bad_auth(from, &why);
                return None;
            }
        };
        let results = self.router.results(device, &trap, from);
        if results.is_empty() {
            self.stats.unmatched(from, router::describe(&trap, from));
        } else {
            self.stats.matched.fetch_add(1, Relaxed);
        }
        for (service_id, result) in results {
            // Bounded: a burst waits here, and the kernel drops what the socket cannot hold.
            if self.passive.send(Passive { service_id, result }).await.is_err() {
                break;
            }
        }
        answer
    }

    fn authenticate(&mut self, datagram: &mut [u8], from: IpAddr) -> Result<Outcome, Refused> {
        let version = decode::version_of(datagram)?;
        if version == Version::V3 {
            return self.authenticate_v3(datagram, from);
        }
        let message = decode::CommunityMessage::read(datagram)?;
        let senders = self.router.senders(from, message.agent());
        if senders.is_empty() {
            self.stats.unmatched(
                from,
                format!("a {} notification from an unknown sender", version.as_str()),
            );
            return Ok(Outcome::Nothing);
        }
        let mut refused = Refused::BadAuth("the device has no snmp block with a community".into());
        for &device in senders {
            let Some(expected) = self.router.snmp(device).and_then(|s| s.community.as_ref()) else {
                continue;
            };
            match message.with_community(expected.expose().as_bytes()) {
                Ok(trap) => return Ok(Outcome::Notification(device, trap, message.inform_response())),
                Err(e) => refused = e,
            }
        }
        Err(refused)
    }

    /// A v3 message: a discovery or an INFORM to the box's engine, or a trap from its
    /// sender's engine.
    fn authenticate_v3(&mut self, datagram: &mut [u8], from: IpAddr) -> Result<Outcome, Refused> {
        let senders: Vec<usize> = self
            .router
            .senders(from, None)
            .iter()
            .copied()
            .filter(|&d| self.router.snmp(d).is_some_and(|s| s.version == SnmpVersion::V3))
            .collect();
        let Some(&first) = senders.first() else {
            if self.router.senders(from, None).is_empty() {
                self.stats
                    .unmatched(from, "a v3 notification from an unknown sender".into());
                return Ok(Outcome::Nothing);
            }
            return Err(Refused::BadAuth("v3, but the device has no v3 user".into()));
        };
        let message = engine::Message::read(datagram)?;
        if let Some(engine) = &mut self.engine {
            if message.engine_id.is_empty() {
                return Ok(engine.discovery(&message).map_or(Outcome::Nothing, Outcome::Answer));
            }
            if message.engine_id == engine.id() {
                return self.inform_to_box(&message, datagram, &senders);
            }
        }
        let snmp = self
            .router
            .snmp(first)
            .ok_or_else(|| Refused::BadAuth("no snmp block".into()))?;
        let id = self.router.device_id(first).to_string();
        let security = self
            .security
            .entry(id.clone())
            .or_insert_with(|| crate::probe::snmp::security(snmp));
        let copy = datagram.to_vec();
        match decode::with_security(datagram, security) {
            Ok(trap) => Ok(Outcome::Notification(first, trap, None)),
            // The sender's engine changed (a reboot, a replacement): learn it once more.
            Err(Refused::BadAuth(_)) if !security.engine_id().is_empty() => {
                let mut fresh = crate::probe::snmp::security(snmp);
                let mut again = copy;
                let trap = decode::with_security(&mut again, &mut fresh)?;
                self.security.insert(id, fresh);
                Ok(Outcome::Notification(first, trap, None))
            }
            Err(e) => Err(e),
        }
    }

    /// A message to the box's engine (an INFORM) from the sender whose v3 user it names.
    fn inform_to_box(
        &mut self,
        message: &engine::Message<'_>,
        datagram: &[u8],
        senders: &[usize],
    ) -> Result<Outcome, Refused> {
        let Some(engine) = &mut self.engine else {
            return Ok(Outcome::Nothing);
        };
        let named = senders.iter().copied().find(|&d| {
            self.router
                .snmp(d)
                .and_then(|s| s.user.as_deref())
                .is_some_and(|u| u.as_bytes() == message.user)
        });
        let Some(device) = named else {
            return Err(Refused::BadAuth("an unknown v3 user".into()));
        };
        let id = self.router.device_id(device).to_string();
        let snmp = self.router.snmp(device);
        let keys = self
            .keys
            .entry(id)
            .or_insert_with(|| snmp.and_then(|s| usm::Keys::localized(s, engine.id())));
        let Some(keys) = keys else {
            return Err(Refused::BadAuth("the device's v3 keys are missing".into()));
        };
        match engine.open(message, datagram, keys)? {
            Opened::Report(report) => Ok(Outcome::Answer(report)),
            Opened::Notification { pdu, answer } => Ok(Outcome::Notification(device, decode::scoped(&pdu)?, answer)),
        }
    }

    fn bad_auth(&mut self, from: IpAddr, why: &str) {
        self.stats.bad_auth.fetch_add(1, Relaxed);
        let now = Instant::now();
        if self.logged.len() > 10_000 {
            self.logged.retain(|_, at| now.duration_since(*at) < BAD_AUTH_LOG_EVERY);
        }
        let due = self
            .logged
            .get(&from)
            .is_none_or(|at| now.duration_since(*at) >= BAD_AUTH_LOG_EVERY);
        if due {
            self.logged.insert(from, now);
            tracing::warn!(from = %from, why, "trap dropped: bad credentials (logged once a minute per sender)");
        }
    }
}
