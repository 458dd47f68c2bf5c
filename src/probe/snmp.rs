//! SNMP checks: GET of one or several OIDs in one PDU, subtree walks, numeric thresholds,
//! counter rates and string expectations, over v1, v2c and v3.
//!
//! snmp2 has no timeout, no retry and one request per session, so:
//! - every call is wrapped in a timeout, and a session that timed out or failed is dropped
//!   and recreated (a late reply would otherwise break the next request);
//! - requests to one agent (address, port and credentials) are serialized behind that agent's
//!   own lock, so a slow agent delays only its own checks;
//! - v3 engine discovery runs when a session is created, and again when the agent answers
//!   that the engine boots or time do not match (a reboot, `notInTimeWindow`).
//!
//! An agent that does not answer, or answers garbage, gives `unknown`: the check could not
//! read the value it was asked to judge.
//!
//! (Over 600 lines: the session cache, the request path and the judging of values share
//! snmp2's message types and the agent lock; the next split is the walk and the counter rates
//! into files of their own when traps and the census bring more SNMP code.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use snmp2::{AsyncSession, Oid, Value};
use tokio::sync::Mutex as AsyncMutex;

use super::pace::Pace;
use super::{CheckResult, Status, Thresholds};
use crate::document::params::{Direction, ObjectId, SnmpParams, SnmpRead};
use crate::document::{AuthProtocol, PrivProtocol, SecurityLevel, Snmp, SnmpVersion};

const DEFAULT_PORT: u16 = 161;
/// Values of one walk, at most.
const MAX_WALK: usize = 10_000;
const BULK_REPETITIONS: u32 = 25;
/// The second sample of a counter with no earlier one is taken this long after the first.
const RATE_GAP: Duration = Duration::from_secs(1);

/// Runs SNMP checks; one per box, shared by every SNMP service.
#[derive(Default)]
pub struct SnmpProber {
    agents: Mutex<HashMap<AgentKey, Arc<AsyncMutex<Option<AsyncSession>>>>>,
    samples: Mutex<HashMap<String, Sample>>,
}

/// One agent as the box talks to it: where, and as whom.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct AgentKey {
    address: String,
    port: u16,
    version: u8,
    /// The community or the v3 user, with the keys: two services with other credentials
    /// get other sessions.
    credentials: Vec<u8>,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    value: u128,
    wrap: Option<u128>,
    at: Instant,
}

/// A value copied out of a response (a response borrows its session's buffer).
#[derive(Debug, Clone, PartialEq)]
enum Val {
    Int(i64),
    Counter32(u32),
    Counter64(u64),
    Unsigned(u32),
    Ticks(u32),
    Bytes(Vec<u8>),
    Oid(String),
    Ip([u8; 4]),
    Null,
    Missing(&'static str),
    Other(String),
}

impl Val {
    fn of(value: &Value<'_>) -> Val {
        match value {
            Value::Integer(i) => Val::Int(*i),
            Value::Counter32(c) => Val::Counter32(*c),
            Value::Counter64(c) => Val::Counter64(*c),
            Value::Unsigned32(u) => Val::Unsigned(*u),
            Value::Timeticks(t) => Val::Ticks(*t),
            Value::OctetString(s) | Value::Opaque(s) => Val::Bytes(s.to_vec()),
            Value::ObjectIdentifier(o) => Val::Oid(o.to_id_string()),
            Value::IpAddress(a) => Val::Ip(*a),
            Value::Boolean(b) => Val::Int(i64::from(*b)),
            Value::Null => Val::Null,
            Value::NoSuchObject => Val::Missing("noSuchObject"),
            Value::NoSuchInstance => Val::Missing("noSuchInstance"),
            Value::EndOfMibView => Val::Missing("endOfMibView"),
            other => Val::Other(format!("{other:?}")),
        }
    }

    fn number(&self) -> Option<f64> {
        match self {
            Val::Int(i) => Some(*i as f64),
            Val::Counter32(c) | Val::Unsigned(c) | Val::Ticks(c) => Some(f64::from(*c)),
            Val::Counter64(c) => Some(*c as f64),
            Val::Bytes(b) => std::str::from_utf8(b).ok().and_then(|s| s.trim().parse().ok()),
            _ => None,
        }
    }

    /// The counter value and where it wraps, for rates.
    fn counter(&self) -> Option<(u128, Option<u128>)> {
        match self {
            Val::Counter32(c) => Some((u128::from(*c), Some(1 << 32))),
            Val::Counter64(c) => Some((u128::from(*c), Some(1 << 64))),
            Val::Int(i) if *i >= 0 => Some((*i as u128, None)),
            Val::Unsigned(c) | Val::Ticks(c) => Some((u128::from(*c), None)),
            _ => None,
        }
    }

    fn text(&self) -> String {
        match self {
            Val::Int(i) => i.to_string(),
            Val::Counter32(c) | Val::Unsigned(c) | Val::Ticks(c) => c.to_string(),
            Val::Counter64(c) => c.to_string(),
            Val::Bytes(b) => match std::str::from_utf8(b) {
                Ok(s) => s.to_string(),
                Err(_) => b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(":"),
            },
            Val::Oid(o) => o.clone(),
            Val::Ip(a) => format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3]),
            Val::Null => "null".into(),
            Val::Missing(m) => (*m).into(),
            Val::Other(o) => o.clone(),
        }
    }
}

/// A value as text, as outputs and trap matching read it.
pub(crate) fn value_text(value: &Value<'_>) -> String {
    Val::of(value).text()
}

/// Why a request gave no values.
#[derive(Debug)]
enum Failure {
    Timeout,
    /// The agent answered with an error status (noSuchName, authorization…).
    Agent(String),
    /// The answer could not be read, or the exchange failed.
    Protocol(String),
}

impl Failure {
    fn into_text(self) -> String {
        match self {
            Failure::Timeout => "no answer".into(),
            Failure::Agent(why) | Failure::Protocol(why) => why,
        }
    }
}

impl SnmpProber {
    pub fn new() -> SnmpProber {
        SnmpProber::default()
    }

    /// For a census: `oids` of a fresh session to `address` as `snmp` says, each value as
    /// text (`None`: the agent has no such object). Paced: one GET, and for v3 its discovery.
    pub async fn census_get(
        &self,
        address: &str,
        snmp: &Snmp,
        oids: &[&str],
        timeout: Duration,
        pace: &Pace,
    ) -> Result<Vec<Option<String>>, String> {
        let parsed = oids.iter().map(|o| parse_oid(o)).collect::<Result<Vec<_>, _>>()?;
        let discovery = if snmp.version == SnmpVersion::V3 { 2 } else { 0 };
        for _ in 0..=discovery {
            pace.wait().await;
        }
        let agent = AsyncMutex::new(None);
        let values = self
            .get(&agent, address, snmp, &parsed, Instant::now() + timeout)
            .await
            .map_err(Failure::into_text)?;
        Ok(values
            .into_iter()
            .map(|(_, v)| match v {
                Val::Missing(_) => None,
                v => Some(v.text()),
            })
            .collect())
    }

    /// For a census: the subtree under `root`, each request paced, as (OID, text) pairs.
    pub async fn census_walk(
        &self,
        address: &str,
        snmp: &Snmp,
        root: &str,
        timeout: Duration,
        pace: &Pace,
    ) -> Result<Vec<(String, String)>, String> {
        let root = parse_oid(root)?;
        let agent = AsyncMutex::new(None);
        let values = self
            .walk(&agent, address, snmp, &root, Instant::now() + timeout, Some(pace))
            .await
            .map_err(Failure::into_text)?;
        Ok(values.into_iter().map(|(oid, v)| (oid, v.text())).collect())
    }

    /// Keeps the sessions of the agents in `agents` (address and SNMP settings) and the counter
    /// samples of the services in `services`; drops the rest (their sockets close): a re-plan
    /// that removes a device or changes its credentials leaves nothing behind.
    pub fn retain<'a>(
        &self,
        agents: impl IntoIterator<Item = (&'a str, &'a Snmp)>,
        services: &std::collections::HashSet<&str>,
    ) {
        let keep: std::collections::HashSet<AgentKey> = agents
            .into_iter()
            .map(|(address, snmp)| agent_key(address, snmp))
            .collect();
        self.agents
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|key, _| keep.contains(key));
        self.samples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|id, _| services.contains(id.as_str()));
    }

    /// Runs one check. `service_id` names the service, for counter rates between checks.
    pub async fn check(
        &self,
        service_id: &str,
        address: &str,
        snmp: &Snmp,
        params: &SnmpParams,
        timeout: Duration,
    ) -> CheckResult {
        let start = Instant::now();
        let result = self.run(service_id, address, snmp, params, timeout).await;
        result.took(start.elapsed())
    }

    async fn run(
        &self,
        service_id: &str,
        address: &str,
        snmp: &Snmp,
        params: &SnmpParams,
        timeout: Duration,
    ) -> CheckResult {
        let (oids, walk): (&[ObjectId], Option<&ObjectId>) = match &params.read {
            Some(SnmpRead::Get(oids)) => (oids, None),
            Some(SnmpRead::Walk(prefix)) => (std::slice::from_ref(prefix), Some(prefix)),
            None => return CheckResult::unknown("no oid, oids or walk to read"),
        };
        let parsed: Result<Vec<Oid<'static>>, String> = oids
            .iter()
            .map(|o| Oid::from(o.arcs()).map_err(|e| format!("invalid OID {o}: {e:?}")))
            .collect();
        let parsed = match parsed {
            Ok(p) => p,
            Err(message) => return CheckResult::unknown(message),
        };
        let agent = self.agent(address, snmp);
        let deadline = Instant::now() + timeout;
        let values = if walk.is_some() {
            self.walk(&agent, address, snmp, &parsed[0], deadline, None).await
        } else {
            self.get(&agent, address, snmp, &parsed, deadline).await
        };
        let values = match values {
            Ok(v) => v,
            Err(Failure::Timeout) => {
                return CheckResult::unknown(format!(
                    "no answer from the SNMP agent at {} within {}s",
                    agent_name(address, snmp),
                    timeout.as_secs_f64()
                ));
            }
            Err(Failure::Agent(why)) | Err(Failure::Protocol(why)) => {
                return CheckResult::unknown(format!("SNMP agent at {}: {why}", agent_name(address, snmp)));
            }
        };
        if params.as_rate && walk.is_none() {
            return self
                .rate(service_id, &agent, address, snmp, &parsed, values, params, deadline)
                .await;
        }
        judge(&values, params, walk.map(ToString::to_string).as_deref())
    }

    fn agent(&self, address: &str, snmp: &Snmp) -> Arc<AsyncMutex<Option<AsyncSession>>> {
        let key = agent_key(address, snmp);
        let mut agents = self.agents.lock().unwrap_or_else(|e| e.into_inner());
        agents.entry(key).or_default().clone()
    }

    async fn get(
        &self,
        agent: &AsyncMutex<Option<AsyncSession>>,
        address: &str,
        snmp: &Snmp,
        oids: &[Oid<'static>],
        deadline: Instant,
    ) -> Result<Vec<(String, Val)>, Failure> {
        let refs: Vec<&Oid<'_>> = oids.iter().collect();
        let mut slot = lock(agent, deadline).await?;
        for attempt in 0..2 {
            let session = open(&mut slot, address, snmp, deadline).await?;
            let outcome = within(deadline, session.get_many(&refs)).await;
            match outcome {
                Ok(Ok(pdu)) => {
                    let values = read_pdu(&pdu)?;
                    if values.len() != oids.len() {
                        *slot = None;
                        return Err(Failure::Protocol(format!(
                            "malformed response: {} values for {} OIDs",
                            values.len(),
                            oids.len()
                        )));
                    }
                    return Ok(values);
                }
                Ok(Err(e)) if attempt == 0 && needs_rediscovery(&e) => *slot = None,
                Ok(Err(e)) => {
                    *slot = None;
                    return Err(Failure::Protocol(describe(&e)));
                }
                Err(f) => {
                    *slot = None;
                    return Err(f);
                }
            }
        }
        Err(Failure::Protocol(
            "the agent kept refusing the v3 engine parameters".into(),
        ))
    }

    async fn walk(
        &self,
        agent: &AsyncMutex<Option<AsyncSession>>,
        address: &str,
        snmp: &Snmp,
        root: &Oid<'static>,
        deadline: Instant,
        pace: Option<&Pace>,
    ) -> Result<Vec<(String, Val)>, Failure> {
        let prefix = root.to_id_string();
        let mut values: Vec<(String, Val)> = Vec::new();
        let mut cursor = root.clone();
        let mut slot = lock(agent, deadline).await?;
        loop {
            let session = open(&mut slot, address, snmp, deadline).await?;
            if let Some(pace) = pace {
                pace.wait().await;
            }
            let bulk = snmp.version != SnmpVersion::V1;
            let batch: Result<Vec<(String, Val)>, Failure> = {
                let outcome = if bulk {
                    within(deadline, session.getbulk(&[&cursor], 0, BULK_REPETITIONS)).await
                } else {
                    within(deadline, session.getnext(&cursor)).await
                };
                match outcome {
                    Ok(Ok(pdu)) => read_pdu(&pdu),
                    Ok(Err(e)) => Err(Failure::Protocol(describe(&e))),
                    Err(f) => Err(f),
                }
            };
            let batch = match batch {
                Ok(b) => b,
                // v1 agents end a walk with noSuchName.
                Err(Failure::Agent(_)) if !bulk => break,
                Err(f) => {
                    *slot = None;
                    return Err(f);
                }
            };
            let mut advanced = false;
            for (oid, val) in batch {
                let inside = oid == prefix || oid.starts_with(&format!("{prefix}."));
                if !inside || matches!(val, Val::Missing(_)) {
                    return Ok(values);
                }
                if values.last().is_some_and(|(last, _)| !oid_after(&oid, last)) {
                    return Err(Failure::Protocol(format!("the walk went backwards at {oid}")));
                }
                cursor = parse_oid(&oid).map_err(Failure::Protocol)?;
                values.push((oid, val));
                advanced = true;
                if values.len() >= MAX_WALK {
                    return Ok(values);
                }
            }
            if !advanced {
                return Ok(values);
            }
        }
        Ok(values)
    }

    #[allow(clippy::too_many_arguments)]
    async fn rate(
        &self,
        service_id: &str,
        agent: &AsyncMutex<Option<AsyncSession>>,
        address: &str,
        snmp: &Snmp,
        oids: &[Oid<'static>],
        mut values: Vec<(String, Val)>,
        params: &SnmpParams,
        deadline: Instant,
    ) -> CheckResult {
        let Some((oid, first)) = values.first().cloned() else {
            return CheckResult::unknown("no value");
        };
        let Some((value, wrap)) = first.counter() else {
            return CheckResult::unknown(format!("{oid} = {} is not a counter; as_rate needs one", first.text()));
        };
        let current = Sample {
            value,
            wrap,
            at: Instant::now(),
        };
        let previous = self
            .samples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(service_id)
            .copied();
        let (earlier, later) = match previous {
            Some(p) if current.at.saturating_duration_since(p.at) >= RATE_GAP => (p, current),
            // No earlier sample, or one too recent for a meaningful rate: sample again one
            // gap after the baseline rather than leave this check undecided.
            _ => {
                let baseline = previous.unwrap_or(current);
                let again = baseline.at + RATE_GAP;
                if again >= deadline {
                    return CheckResult::unknown(format!(
                        "{oid}: a rate needs two samples; the next check will have one"
                    ));
                }
                tokio::time::sleep_until(again.into()).await;
                values = match self.get(agent, address, snmp, oids, deadline).await {
                    Ok(v) => v,
                    Err(_) => return CheckResult::unknown(format!("{oid}: the second sample of the rate failed")),
                };
                let Some((v2, w2)) = values.first().and_then(|(_, v)| v.counter()) else {
                    return CheckResult::unknown(format!("{oid} is no longer a counter"));
                };
                (
                    baseline,
                    Sample {
                        value: v2,
                        wrap: w2,
                        at: Instant::now(),
                    },
                )
            }
        };
        self.samples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(service_id.to_string(), later);
        let Some(rate) = rate_between(earlier, later) else {
            return CheckResult::unknown(format!(
                "{oid}: the counter went backwards (agent restart?); the next check starts again"
            ));
        };
        let status = thresholds(params).judge(rate);
        CheckResult::new(status, format!("{oid} rate {rate:.3}/s")).metric("rate", rate)
    }
}

/// Per second, across one wrap of a 32- or 64-bit counter.
fn rate_between(earlier: Sample, later: Sample) -> Option<f64> {
    let seconds = later.at.saturating_duration_since(earlier.at).as_secs_f64();
    if seconds <= 0.0 {
        return None;
    }
    let delta = if later.value >= earlier.value {
        later.value - earlier.value
    } else {
        let wrap = later.wrap.or(earlier.wrap)?;
        (wrap - earlier.value) + later.value
    };
    Some(delta as f64 / seconds)
}

fn thresholds(params: &SnmpParams) -> Thresholds {
    Thresholds {
        warn: params.warn,
        crit: params.crit,
        below: params.direction == Direction::Below,
    }
}

fn judge(values: &[(String, Val)], params: &SnmpParams, walk: Option<&str>) -> CheckResult {
    if let Some((oid, Val::Missing(what))) = values.iter().find(|(_, v)| matches!(v, Val::Missing(_))) {
        return CheckResult::unknown(format!("{oid}: {what}"));
    }
    let limits = thresholds(params);
    // The worst value decides the status and is the one the output names.
    let mut worst: Option<(Status, String)> = None;
    for (oid, val) in values {
        let (status, why) = if let Some(expected) = &params.expect {
            let ok = val.text() == *expected;
            (
                if ok { Status::Ok } else { Status::Critical },
                format!("{oid} = {:?}, expected {expected:?}", val.text()),
            )
        } else if params.warn.is_some() || params.crit.is_some() {
            match val.number() {
                Some(n) => (limits.judge(n), format!("{oid} = {}", val.text())),
                None => (Status::Unknown, format!("{oid} = {:?} is not a number", val.text())),
            }
        } else {
            (Status::Ok, String::new())
        };
        let current = worst.as_ref().map_or(Status::Ok, |(s, _)| *s);
        if status != Status::Ok && current.worst(status) != current {
            worst = Some((status, why));
        }
    }
    let listing = || {
        values
            .iter()
            .map(|(o, v)| format!("{o} = {}", v.text()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (status, output) = match (walk, worst) {
        (Some(root), Some((s, why))) => (s, format!("walk {root}: {} values; {why}", values.len())),
        (Some(root), None) => (Status::Ok, format!("walk {root}: {} values", values.len())),
        (None, Some((s, why))) => (s, why),
        (None, None) => (Status::Ok, listing()),
    };
    let mut result = CheckResult::new(status, output);
    match (walk, values) {
        (Some(_), _) => result = result.metric("values", values.len() as f64),
        (None, [(_, val)]) => {
            if let Some(n) = val.number() {
                result = result.metric("value", n);
            }
        }
        (None, _) => {
            for (oid, val) in values {
                if let Some(n) = val.number() {
                    result = result.metric(oid.clone(), n);
                }
            }
        }
    }
    result
}

fn read_pdu(pdu: &snmp2::Pdu<'_>) -> Result<Vec<(String, Val)>, Failure> {
    if pdu.error_status != 0 {
        return Err(Failure::Agent(format!(
            "error {} ({}) at value {}",
            pdu.error_status,
            error_status_name(pdu.error_status),
            pdu.error_index
        )));
    }
    Ok(pdu
        .varbinds
        .clone()
        .map(|(oid, value)| (oid.to_id_string(), Val::of(&value)))
        .collect())
}

fn error_status_name(status: u32) -> &'static str {
    match status {
        1 => "tooBig",
        2 => "noSuchName",
        3 => "badValue",
        4 => "readOnly",
        5 => "genErr",
        6 => "noAccess",
        16 => "authorizationError",
        _ => "error",
    }
}

fn needs_rediscovery(e: &snmp2::Error) -> bool {
    use snmp2::v3::AuthErrorKind::*;
    match e {
        snmp2::Error::AuthUpdated => true,
        snmp2::Error::AuthFailure(kind) => matches!(
            kind,
            EngineBootsMismatch | EngineTimeMismatch | NotAuthenticated | EngineIdMismatch
        ),
        _ => false,
    }
}

pub(crate) fn describe(e: &snmp2::Error) -> String {
    match e {
        snmp2::Error::AuthFailure(kind) => format!("v3 authentication failed: {kind}"),
        snmp2::Error::CommunityMismatch => "the answer carries another community".into(),
        snmp2::Error::RequestIdMismatch => "the answer is for another request".into(),
        snmp2::Error::Send => "cannot send the request".into(),
        snmp2::Error::Receive => "cannot receive the answer (port closed?)".into(),
        snmp2::Error::AsnParse
        | snmp2::Error::AsnInvalidLen
        | snmp2::Error::AsnWrongType
        | snmp2::Error::AsnUnsupportedType
        | snmp2::Error::AsnEof
        | snmp2::Error::AsnIntOverflow => format!("invalid answer ({e:?})"),
        other => format!("{other:?}"),
    }
}

async fn lock<'a>(
    agent: &'a AsyncMutex<Option<AsyncSession>>,
    deadline: Instant,
) -> Result<tokio::sync::MutexGuard<'a, Option<AsyncSession>>, Failure> {
    tokio::time::timeout_at(deadline.into(), agent.lock())
        .await
        .map_err(|_| Failure::Timeout)
}

async fn within<F: std::future::Future>(deadline: Instant, f: F) -> Result<F::Output, Failure> {
    tokio::time::timeout_at(deadline.into(), f)
        .await
        .map_err(|_| Failure::Timeout)
}

/// The agent's session, created (and for v3 discovered) when there is none.
async fn open<'s>(
    slot: &'s mut Option<AsyncSession>,
    address: &str,
    snmp: &Snmp,
    deadline: Instant,
) -> Result<&'s mut AsyncSession, Failure> {
    if slot.is_none() {
        // snmp2 panics on a key it cannot derive from (an empty one): never hand it one.
        let missing = snmp.missing_fields();
        if !missing.is_empty() {
            return Err(Failure::Protocol(format!(
                "the SNMP settings lack {}",
                missing.join(", ")
            )));
        }
        let target = socket_address(address, snmp);
        let community = snmp
            .community
            .as_ref()
            .map(|c| c.expose().as_bytes())
            .unwrap_or_default();
        let created = match snmp.version {
            SnmpVersion::V1 => within(deadline, AsyncSession::new_v1(target.as_str(), community, 1)).await?,
            SnmpVersion::V2c => within(deadline, AsyncSession::new_v2c(target.as_str(), community, 1)).await?,
            SnmpVersion::V3 => within(deadline, AsyncSession::new_v3(target.as_str(), 1, security(snmp))).await?,
        };
        let mut session = created.map_err(|e| Failure::Protocol(format!("cannot open a socket to {target}: {e}")))?;
        if snmp.version == SnmpVersion::V3 {
            let mut discovered = within(deadline, session.init()).await?;
            if matches!(discovered, Err(snmp2::Error::AuthUpdated)) {
                discovered = within(deadline, session.init()).await?;
            }
            discovered.map_err(|e| Failure::Protocol(format!("v3 engine discovery failed: {}", describe(&e))))?;
        }
        *slot = Some(session);
    }
    slot.as_mut().ok_or_else(|| Failure::Protocol("no session".into()))
}

/// The v3 security a device's `snmp` block says (the trap receiver uses it too).
pub(crate) fn security(snmp: &Snmp) -> snmp2::v3::Security {
    let user = snmp.user.as_deref().unwrap_or_default().as_bytes();
    let auth_key = snmp
        .auth_key
        .as_ref()
        .map(|k| k.expose().as_bytes())
        .unwrap_or_default();
    let auth_protocol = match snmp.auth_protocol.unwrap_or(AuthProtocol::Sha1) {
        AuthProtocol::Md5 => snmp2::v3::AuthProtocol::Md5,
        AuthProtocol::Sha1 => snmp2::v3::AuthProtocol::Sha1,
        AuthProtocol::Sha224 => snmp2::v3::AuthProtocol::Sha224,
        AuthProtocol::Sha256 => snmp2::v3::AuthProtocol::Sha256,
        AuthProtocol::Sha384 => snmp2::v3::AuthProtocol::Sha384,
        AuthProtocol::Sha512 => snmp2::v3::AuthProtocol::Sha512,
    };
    let mut security = snmp2::v3::Security::new(user, auth_key).with_auth_protocol(auth_protocol);
    let auth = match snmp.level.unwrap_or(SecurityLevel::NoAuthNoPriv) {
        SecurityLevel::NoAuthNoPriv => snmp2::v3::Auth::NoAuthNoPriv,
        SecurityLevel::AuthNoPriv => snmp2::v3::Auth::AuthNoPriv,
        SecurityLevel::AuthPriv => {
            let cipher = match snmp.priv_protocol.unwrap_or(PrivProtocol::Aes128) {
                PrivProtocol::Des => snmp2::v3::Cipher::Des,
                PrivProtocol::Aes128 => snmp2::v3::Cipher::Aes128,
                PrivProtocol::Aes192 => snmp2::v3::Cipher::Aes192,
                PrivProtocol::Aes256 => snmp2::v3::Cipher::Aes256,
            };
            if cipher.priv_key_needs_extension(&auth_protocol) {
                // net-snmp extends short keys the way Reeder's draft says.
                security = security.with_key_extension_method(snmp2::v3::KeyExtension::Reeder);
            }
            snmp2::v3::Auth::AuthPriv {
                cipher,
                privacy_password: snmp
                    .priv_key
                    .as_ref()
                    .map(|k| k.expose().as_bytes().to_vec())
                    .unwrap_or_default(),
            }
        }
    };
    security = security.with_auth(auth);
    if let Some(context) = &snmp.context {
        security = security.with_context_name(context);
    }
    security
}

fn agent_key(address: &str, snmp: &Snmp) -> AgentKey {
    let mut credentials = Vec::new();
    for part in [
        snmp.community.as_ref().map(|c| c.expose()),
        snmp.user.as_deref(),
        snmp.auth_key.as_ref().map(|k| k.expose()),
        snmp.priv_key.as_ref().map(|k| k.expose()),
        snmp.context.as_deref(),
    ] {
        credentials.extend_from_slice(part.unwrap_or_default().as_bytes());
        credentials.push(0);
    }
    AgentKey {
        address: address.to_string(),
        port: snmp.port.unwrap_or(DEFAULT_PORT),
        version: match snmp.version {
            SnmpVersion::V1 => 1,
            SnmpVersion::V2c => 2,
            SnmpVersion::V3 => 3,
        },
        credentials,
    }
}

fn socket_address(address: &str, snmp: &Snmp) -> String {
    let port = snmp.port.unwrap_or(DEFAULT_PORT);
    if address.contains(':') && !address.starts_with('[') {
        format!("[{address}]:{port}")
    } else {
        format!("{address}:{port}")
    }
}

/// The agent as messages name it: address and port, never the credentials.
fn agent_name(address: &str, snmp: &Snmp) -> String {
    socket_address(address, snmp)
}

/// A numeric OID, with or without a leading dot (read as the document reads them).
fn parse_oid(text: &str) -> Result<Oid<'static>, String> {
    let id: ObjectId = text.parse()?;
    Oid::from(id.arcs()).map_err(|e| format!("invalid OID {text:?}: {e:?}"))
}

/// Whether `a` comes after `b` in OID order.
fn oid_after(a: &str, b: &str) -> bool {
    let arcs = |s: &str| s.split('.').map(|x| x.parse::<u64>().unwrap_or(0)).collect::<Vec<_>>();
    arcs(a) > arcs(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(value: u128, wrap: Option<u128>, at: Instant) -> Sample {
        Sample { value, wrap, at }
    }

    #[test]
    fn counter_rates_survive_32_and_64_bit_wraps() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(10);
        let w32 = Some(1u128 << 32);
        let w64 = Some(1u128 << 64);
        assert_eq!(rate_between(sample(100, w32, t0), sample(1100, w32, t1)), Some(100.0));
        assert_eq!(
            rate_between(sample((1 << 32) - 50, w32, t0), sample(50, w32, t1)),
            Some(10.0)
        );
        assert_eq!(
            rate_between(sample((1 << 64) - 500, w64, t0), sample(500, w64, t1)),
            Some(100.0)
        );
        // A gauge-like integer going backwards has no wrap: no rate.
        assert_eq!(rate_between(sample(500, None, t0), sample(100, None, t1)), None);
    }

    #[test]
    fn oids_parse_with_or_without_a_leading_dot() {
        assert_eq!(
            parse_oid(".1.3.6.1.2.1.1.3.0").map(|o| o.to_id_string()),
            Ok("1.3.6.1.2.1.1.3.0".to_string())
        );
        assert!(parse_oid("1.3.six").is_err());
        assert!(parse_oid("").is_err());
        assert!(!oid_after("1.3.6.1.2.1.2.2.1.10.2", "1.3.6.1.2.1.2.2.1.10.10"));
        assert!(oid_after("1.3.6.1.2.1.2.2.1.10.10", "1.3.6.1.2.1.2.2.1.10.2"));
    }
}
