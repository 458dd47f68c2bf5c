//! The records the box produces and sends (protocol.md §5.3): results, state changes,
//! notifications and availability figures. Every record names its device, node and top company
//! (R12). The outbox assigns `seq` when it commits one.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::document::Criticality;
use crate::probe::Status;

/// A service's status as records carry it: a check's status, or `unreachable` (R9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Ok,
    Warning,
    Critical,
    Unknown,
    Unreachable,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Ok => "ok",
            State::Warning => "warning",
            State::Critical => "critical",
            State::Unknown => "unknown",
            State::Unreachable => "unreachable",
        }
    }

    pub fn code(self) -> i64 {
        match self {
            State::Ok => 0,
            State::Warning => 1,
            State::Critical => 2,
            State::Unknown => 3,
            State::Unreachable => 4,
        }
    }

    pub fn from_code(code: i64) -> Option<State> {
        Some(match code {
            0 => State::Ok,
            1 => State::Warning,
            2 => State::Critical,
            3 => State::Unknown,
            4 => State::Unreachable,
            _ => return None,
        })
    }

    pub fn is_ok(self) -> bool {
        self == State::Ok
    }
}

impl From<Status> for State {
    fn from(s: Status) -> State {
        match s {
            Status::Ok => State::Ok,
            Status::Warning => State::Warning,
            Status::Critical => State::Critical,
            Status::Unknown => State::Unknown,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StateType {
    Soft,
    Hard,
}

impl StateType {
    pub fn as_str(self) -> &'static str {
        match self {
            StateType::Soft => "soft",
            StateType::Hard => "hard",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationType {
    Problem,
    Recovery,
    /// The service started flapping (R15): its problems and recoveries go unnotified.
    FlappingStart,
    FlappingEnd,
}

impl NotificationType {
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationType::Problem => "problem",
            NotificationType::Recovery => "recovery",
            NotificationType::FlappingStart => "flapping_start",
            NotificationType::FlappingEnd => "flapping_end",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Window {
    #[serde(rename = "day")]
    Day,
    #[serde(rename = "24h")]
    Last24h,
    #[serde(rename = "30d")]
    Last30d,
}

impl Window {
    pub const ALL: [Window; 3] = [Window::Day, Window::Last24h, Window::Last30d];

    pub fn as_str(self) -> &'static str {
        match self {
            Window::Day => "day",
            Window::Last24h => "24h",
            Window::Last30d => "30d",
        }
    }
}

/// Where a record comes from (R12), shared by every record of one service. Its strings are
/// shared too: the scheduler's slots use `service` and `device` as their ids, and every
/// service of a node shares that node's and its company's. A record about a node (a
/// maintenance) or about nothing polled (a command's answer) has empty `service` and
/// `device`, written as null.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Origin {
    pub service: Arc<str>,
    pub device: Arc<str>,
    pub node: Arc<str>,
    pub company: Option<Arc<str>>,
}

/// One record before the outbox numbers it.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub ts: Timestamp,
    pub body: Body,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Body {
    Result {
        status: State,
        state_type: StateType,
        attempt: u32,
        duration_ms: u64,
        output: String,
        metrics: BTreeMap<Cow<'static, str>, f64>,
        in_availability_period: bool,
        /// Covered by a maintenance (R13) when checked (additive).
        #[serde(default)]
        in_maintenance: bool,
        /// The service was flapping (R15) after this result (additive).
        #[serde(default)]
        flapping: bool,
    },
    StateChange {
        from: State,
        to: State,
        state_type: StateType,
    },
    Notification {
        #[serde(rename = "type")]
        kind: NotificationType,
        status: State,
        criticality: Criticality,
        contacts: Vec<String>,
        contact_groups: Vec<String>,
        held_s: u64,
        /// 0 for the first notice of a problem, 1, 2… for its re-notifications (R16; additive).
        #[serde(default)]
        repeat: u32,
        /// The service's last output (additive: the message a person reads quotes it).
        #[serde(default)]
        output: String,
        /// When the problem began (left OK), for "how long it lasted" (additive).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        problem_since: Option<Timestamp>,
        /// The box delivered it itself (R17): the central server must not deliver it again.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        delivered_by: Option<DeliveredBy>,
    },
    Availability {
        window: Window,
        available_s: u64,
        unavailable_s: u64,
        percent: Option<f64>,
        target: f64,
        breached: bool,
    },
    /// One attempt of the box to deliver a notification itself (R17).
    Delivery {
        notification_seq: u64,
        channel: Channel,
        to: String,
        ok: bool,
        attempts: u32,
        error: Option<String>,
    },
    /// A maintenance the box learnt of from a command or its command line (R13).
    Maintenance {
        maintenance: String,
        event: MaintenanceEvent,
        scope: crate::document::MaintenanceScope,
        start: Option<String>,
        end: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        time_range: Option<String>,
        collect: bool,
        counts_in_availability: bool,
        source: ActionSource,
        author: Option<String>,
        comment: Option<String>,
    },
    /// Someone took a service's problem in hand (R16).
    Acknowledgement {
        author: String,
        comment: String,
        source: ActionSource,
    },
    /// R18: a top company's counts for one local day.
    Inventory(crate::inventory::Inventory),
    /// A census (protocol.md §8), in parts of at most 200 hosts.
    Discovery {
        /// The `discover` command's id.
        command: Option<String>,
        ranges: Vec<String>,
        hosts: Vec<crate::census::Host>,
        /// Additive: this part's number (from 1) and how many, whether the census ran to its
        /// end, the addresses in its ranges and those looked at.
        part: u32,
        parts: u32,
        complete: bool,
        addresses: u64,
        probed: u64,
    },
    /// The answer to a central server's command (protocol.md §5.6).
    CommandResult {
        command: String,
        ok: bool,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        data: Option<serde_json::Value>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MaintenanceEvent {
    Start,
    End,
    Created,
    Cancelled,
}

/// Where an operator's action came from: the central server's command, the box's command line
/// (`local`), or the document (maintenances only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionSource {
    Document,
    Central,
    Local,
}

impl ActionSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionSource::Document => "document",
            ActionSource::Central => "central",
            ActionSource::Local => "local",
        }
    }
}

/// Who delivered a notification, when not the central server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveredBy {
    Box,
}

/// The ways the box delivers notifications itself (R17).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Smtp,
    Webhook,
}

impl Channel {
    pub const ALL: [Channel; 2] = [Channel::Smtp, Channel::Webhook];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Smtp => "smtp",
            Channel::Webhook => "webhook",
        }
    }

    /// Its position in [`Channel::ALL`], for counters kept per channel.
    pub fn index(self) -> usize {
        match self {
            Channel::Smtp => 0,
            Channel::Webhook => 1,
        }
    }

    pub fn code(self) -> i64 {
        match self {
            Channel::Smtp => 1,
            Channel::Webhook => 2,
        }
    }

    pub fn from_code(code: i64) -> Option<Channel> {
        match code {
            1 => Some(Channel::Smtp),
            2 => Some(Channel::Webhook),
            _ => None,
        }
    }
}

impl Body {
    pub fn kind(&self) -> Kind {
        match self {
            Body::Result { .. } => Kind::Result,
            Body::StateChange { .. } => Kind::StateChange,
            Body::Notification { .. } => Kind::Notification,
            Body::Availability { .. } => Kind::Availability,
            Body::Delivery { .. } => Kind::Delivery,
            Body::Maintenance { .. } => Kind::Maintenance,
            Body::Acknowledgement { .. } => Kind::Acknowledgement,
            Body::CommandResult { .. } => Kind::CommandResult,
            Body::Inventory(_) => Kind::Inventory,
            Body::Discovery { .. } => Kind::Discovery,
        }
    }
}

/// Record kinds, numbered as the outbox stores them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Result = 1,
    StateChange = 2,
    Notification = 3,
    Availability = 4,
    Delivery = 5,
    Maintenance = 6,
    Acknowledgement = 7,
    CommandResult = 8,
    Inventory = 9,
    Discovery = 10,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Result => "result",
            Kind::StateChange => "state_change",
            Kind::Notification => "notification",
            Kind::Availability => "availability",
            Kind::Delivery => "delivery",
            Kind::Maintenance => "maintenance",
            Kind::Acknowledgement => "acknowledgement",
            Kind::CommandResult => "command_result",
            Kind::Inventory => "inventory",
            Kind::Discovery => "discovery",
        }
    }

    pub fn from_code(code: i64) -> Option<Kind> {
        Some(match code {
            1 => Kind::Result,
            2 => Kind::StateChange,
            3 => Kind::Notification,
            4 => Kind::Availability,
            5 => Kind::Delivery,
            6 => Kind::Maintenance,
            7 => Kind::Acknowledgement,
            8 => Kind::CommandResult,
            9 => Kind::Inventory,
            10 => Kind::Discovery,
            _ => return None,
        })
    }
}

/// Appends the wire form of protocol.md §5.3 to `out` as JSON text: `seq`, `ts`, `device`,
/// `node`, `company`, `service`, then `kind` and the kind's own fields. Written straight as
/// text: a million records are replayed without building a JSON tree for each.
pub fn write_wire(out: &mut Vec<u8>, seq: u64, ts: Timestamp, origin: &Origin, body: &Body) {
    use std::io::Write as _;
    let _ = write!(out, "{{\"seq\":{seq},\"ts\":\"{}\"", rfc3339_millis(ts));
    // A record about no service (a node's maintenance, a command) has empty ids: null.
    fn named(id: &Arc<str>) -> Option<&Arc<str>> {
        (!id.is_empty()).then_some(id)
    }
    for (key, value) in [
        ("device", named(&origin.device)),
        ("node", Some(&origin.node)),
        ("company", origin.company.as_ref()),
        ("service", named(&origin.service)),
    ] {
        let _ = write!(out, ",\"{key}\":");
        match value {
            Some(text) => {
                let _ = serde_json::to_writer(&mut *out, text);
            }
            None => out.extend_from_slice(b"null"),
        }
    }
    let start = out.len();
    if serde_json::to_writer(&mut *out, body).is_ok() && out.get(start) == Some(&b'{') {
        out[start] = b','; // the body's fields continue this object
    } else {
        out.truncate(start);
        out.push(b'}');
    }
}

/// The wire form as a JSON value (tests and diagnostics; the syncer sends [`write_wire`]'s text).
pub fn to_wire(seq: u64, ts: Timestamp, origin: &Origin, body: &Body) -> serde_json::Value {
    let mut text = Vec::new();
    write_wire(&mut text, seq, ts, origin, body);
    serde_json::from_slice(&text).unwrap_or(serde_json::Value::Null)
}

/// RFC 3339 in UTC with milliseconds, as records carry time.
pub fn rfc3339_millis(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r12_records_name_device_node_and_company_on_the_wire() {
        let origin = Origin {
            service: "s1".into(),
            device: "d1".into(),
            node: "site1".into(),
            company: Some("client1".into()),
        };
        let body = Body::StateChange {
            from: State::Ok,
            to: State::Critical,
            state_type: StateType::Soft,
        };
        let ts: Timestamp = "2026-11-21T10:00:00.5Z".parse().expect("ts");
        let wire = to_wire(7, ts, &origin, &body);
        assert_eq!(
            wire,
            serde_json::json!({ "seq": 7, "kind": "state_change", "ts": "2026-11-21T10:00:00.500Z",
                "device": "d1", "node": "site1", "company": "client1", "service": "s1",
                "from": "ok", "to": "critical", "state_type": "soft" })
        );
    }
}
