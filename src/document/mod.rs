//! The monitoring document (protocol.md §3) as it arrives: serde types that mirror the JSON
//! field for field, with unknown fields refused. Nothing here interprets the rules; `rules`
//! turns a [`Document`] into a [`crate::rules::Plan`].
//!
//! Values whose syntax is ours to check (times, dates, zones) stay strings here so that their
//! errors carry our own message and path.

mod load;
pub mod params;

use serde::{Deserialize, Serialize};

use crate::secret::Secret;

pub use crate::input::Format;
pub use load::{Partial, parse_partial, parse_str};
pub use params::{CheckKind, CheckParams};

/// A whole monitoring document.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Document {
    pub version: String,
    #[serde(rename = "box")]
    pub box_: BoxPlacement,
    pub tree: Vec<Node>,
    #[serde(default)]
    pub time_ranges: Vec<TimeRange>,
    #[serde(default)]
    pub defaults: Vec<Default>,
    #[serde(default)]
    pub contacts: Vec<Contact>,
    #[serde(default)]
    pub contact_groups: Vec<ContactGroup>,
    #[serde(default)]
    pub service_templates: Vec<Template>,
    #[serde(default)]
    pub devices: Vec<Device>,
    #[serde(default)]
    pub services: Vec<Service>,
    /// R13: read element by element; one that does not fit is set aside with a warning.
    #[serde(default)]
    pub maintenances: Vec<Maintenance>,
    /// Warnings of the reading itself (maintenances that did not fit), for the plan's list.
    #[serde(skip)]
    pub set_aside: Vec<String>,
}

/// A maintenance window (R13) as the document, a command or the command line gives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Maintenance {
    pub id: String,
    pub scope: MaintenanceScope,
    /// One-off: RFC 3339 instants with an offset (kept as text: their errors are ours).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    /// Recurring: a time range id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_range: Option<String>,
    #[serde(default = "yes")]
    pub collect: bool,
    #[serde(default)]
    pub counts_in_availability: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// Exactly one of the three (checked by the rules, which warn otherwise).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceScope {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoxPlacement {
    pub id: String,
    pub node: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    Partner,
    Company,
    Site,
}

impl NodeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeKind::Partner => "partner",
            NodeKind::Company => "company",
            NodeKind::Site => "site",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Managed,
    Resale,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    pub id: String,
    pub kind: NodeKind,
    pub name: String,
    #[serde(default)]
    pub parent: Option<String>,
    #[serde(default)]
    pub timezone: Option<String>,
    #[serde(default)]
    pub mode: Option<Mode>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Day {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeeklyEntry {
    pub days: Vec<Day>,
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Interval {
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exception {
    pub date: String,
    #[serde(default)]
    pub closed: bool,
    #[serde(default)]
    pub intervals: Vec<Interval>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeRange {
    pub id: String,
    #[serde(default)]
    pub owner: Option<String>,
    pub name: String,
    #[serde(default)]
    pub weekly: Vec<WeeklyEntry>,
    #[serde(default)]
    pub exceptions: Vec<Exception>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Aspect {
    Control,
    Availability,
    Notification,
}

impl Aspect {
    pub const ALL: [Aspect; 3] = [Aspect::Control, Aspect::Availability, Aspect::Notification];

    pub fn as_str(self) -> &'static str {
        match self {
            Aspect::Control => "control",
            Aspect::Availability => "availability",
            Aspect::Notification => "notification",
        }
    }

    /// The field naming this aspect's period on a device or a service.
    pub fn field(self) -> &'static str {
        match self {
            Aspect::Control => "control_period",
            Aspect::Availability => "availability_period",
            Aspect::Notification => "notification_period",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Default {
    #[serde(default)]
    pub node: Option<String>,
    pub aspect: Aspect,
    pub time_range: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    pub id: String,
    #[serde(default)]
    pub owner: Option<String>,
    pub name: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactGroup {
    pub id: String,
    #[serde(default)]
    pub owner: Option<String>,
    pub name: String,
    #[serde(default)]
    pub members: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Criticality {
    Low,
    Medium,
    High,
    Critical,
}

impl Criticality {
    pub fn as_str(self) -> &'static str {
        match self {
            Criticality::Low => "low",
            Criticality::Medium => "medium",
            Criticality::High => "high",
            Criticality::Critical => "critical",
        }
    }
}

/// A service template (seed types PRODUIT and CREE) or an override (SURCHARGE) when
/// `overrides` is set. The settings fields are those of R5; on an override only
/// `criticality`, `availability_rate`, `availability_period`, `control_period` and
/// `interval_s` may be set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    pub id: String,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub overrides: Option<String>,
    #[serde(default)]
    pub kind: Option<CheckKind>,
    #[serde(default)]
    pub criticality: Option<Criticality>,
    #[serde(default)]
    pub availability_rate: Option<f64>,
    #[serde(default)]
    pub availability_period: Option<String>,
    #[serde(default)]
    pub control_period: Option<String>,
    #[serde(default)]
    pub interval_s: Option<u32>,
    #[serde(default)]
    pub retry_interval_s: Option<u32>,
    #[serde(default)]
    pub max_attempts: Option<u32>,
    #[serde(default)]
    pub timeout_s: Option<u32>,
    /// R15 (service or base template only, not overridable).
    #[serde(default)]
    pub flap_detection: Option<bool>,
    #[serde(default)]
    pub flap_high_pct: Option<f64>,
    #[serde(default)]
    pub flap_low_pct: Option<f64>,
    /// R16: re-notify a lasting problem every so many seconds (0: never).
    #[serde(default)]
    pub renotify_s: Option<u32>,
    #[serde(default)]
    pub params: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Device {
    pub id: String,
    pub node: String,
    pub name: String,
    pub address: String,
    #[serde(default)]
    pub snmp: Option<Snmp>,
    #[serde(default)]
    pub contacts: Vec<String>,
    #[serde(default)]
    pub contact_groups: Vec<String>,
    #[serde(default)]
    pub configured_at: Option<String>,
    #[serde(default)]
    pub control_period: Option<String>,
    #[serde(default)]
    pub availability_period: Option<String>,
    #[serde(default)]
    pub notification_period: Option<String>,
    /// The devices this one's traffic passes through (R14); several are redundant paths.
    #[serde(default)]
    pub parents: Vec<String>,
    /// What kind of thing it is, for the billing inventory (R18); `other` when not given.
    #[serde(default)]
    pub category: Option<Category>,
}

/// R18's device categories: each is counted on its own, never summed with another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    Server,
    Network,
    Firewall,
    Printer,
    Ups,
    Storage,
    Phone,
    Workstation,
    #[default]
    Other,
}

impl Category {
    pub const ALL: [Category; 9] = [
        Category::Server,
        Category::Network,
        Category::Firewall,
        Category::Printer,
        Category::Ups,
        Category::Storage,
        Category::Phone,
        Category::Workstation,
        Category::Other,
    ];

    /// The category named `name` as documents and records write it.
    pub fn from_name(name: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Server => "server",
            Category::Network => "network",
            Category::Firewall => "firewall",
            Category::Printer => "printer",
            Category::Ups => "ups",
            Category::Storage => "storage",
            Category::Phone => "phone",
            Category::Workstation => "workstation",
            Category::Other => "other",
        }
    }
}

impl Device {
    pub fn period(&self, aspect: Aspect) -> Option<&str> {
        match aspect {
            Aspect::Control => self.control_period.as_deref(),
            Aspect::Availability => self.availability_period.as_deref(),
            Aspect::Notification => self.notification_period.as_deref(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum SnmpVersion {
    #[serde(rename = "1")]
    V1,
    #[serde(rename = "2c")]
    V2c,
    #[serde(rename = "3")]
    V3,
}

impl SnmpVersion {
    /// As documents write it.
    pub fn as_str(self) -> &'static str {
        match self {
            SnmpVersion::V1 => "1",
            SnmpVersion::V2c => "2c",
            SnmpVersion::V3 => "3",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum SecurityLevel {
    #[serde(rename = "noAuthNoPriv")]
    NoAuthNoPriv,
    #[serde(rename = "authNoPriv")]
    AuthNoPriv,
    #[serde(rename = "authPriv")]
    AuthPriv,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum AuthProtocol {
    #[serde(rename = "md5", alias = "MD5")]
    Md5,
    #[serde(rename = "sha", alias = "SHA", alias = "sha1", alias = "SHA1")]
    Sha1,
    #[serde(rename = "sha224", alias = "SHA-224", alias = "SHA224")]
    Sha224,
    #[serde(rename = "sha256", alias = "SHA-256", alias = "SHA256", alias = "sha-256")]
    Sha256,
    #[serde(rename = "sha384", alias = "SHA-384", alias = "SHA384")]
    Sha384,
    #[serde(rename = "sha512", alias = "SHA-512", alias = "SHA512")]
    Sha512,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum PrivProtocol {
    #[serde(rename = "des", alias = "DES")]
    Des,
    #[serde(rename = "aes", alias = "AES", alias = "aes128", alias = "AES128")]
    Aes128,
    #[serde(rename = "aes192", alias = "AES192")]
    Aes192,
    #[serde(rename = "aes256", alias = "AES256")]
    Aes256,
}

/// How to reach a device's SNMP agent. Communities and keys are [`Secret`]s.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snmp {
    pub version: SnmpVersion,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub community: Option<Secret>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub level: Option<SecurityLevel>,
    #[serde(default)]
    pub auth_protocol: Option<AuthProtocol>,
    #[serde(default)]
    pub auth_key: Option<Secret>,
    #[serde(default)]
    pub priv_protocol: Option<PrivProtocol>,
    #[serde(default)]
    pub priv_key: Option<Secret>,
    #[serde(default)]
    pub context: Option<String>,
}

impl Snmp {
    /// A v1 or v2c block: the community and the port, nothing else.
    pub fn with_community(version: SnmpVersion, port: u16, community: Secret) -> Snmp {
        Snmp {
            version,
            port: Some(port),
            community: Some(community),
            user: None,
            level: None,
            auth_protocol: None,
            auth_key: None,
            priv_protocol: None,
            priv_key: None,
            context: None,
        }
    }

    /// The fields its version and security level need and it lacks (an empty key counts as
    /// missing: snmp2 cannot derive a key from an empty passphrase).
    pub fn missing_fields(&self) -> Vec<&'static str> {
        let snmp = self;
        let mut gaps = Vec::new();
        match snmp.version {
            SnmpVersion::V1 | SnmpVersion::V2c => {
                if snmp.community.as_ref().is_none_or(|c| c.is_empty()) {
                    gaps.push("community");
                }
            }
            SnmpVersion::V3 => {
                if snmp.user.as_deref().is_none_or(str::is_empty) {
                    gaps.push("user");
                }
                let level = snmp.level.unwrap_or(SecurityLevel::NoAuthNoPriv);
                if level != SecurityLevel::NoAuthNoPriv {
                    if snmp.auth_protocol.is_none() {
                        gaps.push("auth_protocol");
                    }
                    if snmp.auth_key.as_ref().is_none_or(|k| k.is_empty()) {
                        gaps.push("auth_key");
                    }
                }
                if level == SecurityLevel::AuthPriv {
                    if snmp.priv_protocol.is_none() {
                        gaps.push("priv_protocol");
                    }
                    if snmp.priv_key.as_ref().is_none_or(|k| k.is_empty()) {
                        gaps.push("priv_key");
                    }
                }
            }
        }
        gaps
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub id: String,
    pub device: String,
    pub template: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub host_check: bool,
    #[serde(default)]
    pub criticality: Option<Criticality>,
    #[serde(default)]
    pub availability_rate: Option<f64>,
    #[serde(default)]
    pub availability_period: Option<String>,
    #[serde(default)]
    pub control_period: Option<String>,
    #[serde(default)]
    pub interval_s: Option<u32>,
    #[serde(default)]
    pub retry_interval_s: Option<u32>,
    #[serde(default)]
    pub max_attempts: Option<u32>,
    #[serde(default)]
    pub timeout_s: Option<u32>,
    #[serde(default)]
    pub notification_period: Option<String>,
    /// R15 (service or base template only, not overridable).
    #[serde(default)]
    pub flap_detection: Option<bool>,
    #[serde(default)]
    pub flap_high_pct: Option<f64>,
    #[serde(default)]
    pub flap_low_pct: Option<f64>,
    /// R16: re-notify a lasting problem every so many seconds (0: never).
    #[serde(default)]
    pub renotify_s: Option<u32>,
    #[serde(default)]
    pub params: Option<serde_json::Map<String, serde_json::Value>>,
}
