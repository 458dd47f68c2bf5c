//! Check parameters (`params`, protocol.md §3), one typed set per check kind.
//!
//! A template's `params` and a service's `params` are each checked on their own (so that an
//! unknown key is reported where it was written), then merged key by key, the service's
//! keys winning, into the parameters of the resolved service.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::secret::Secret;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    Icmp,
    Snmp,
    Http,
}

impl CheckKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckKind::Icmp => "icmp",
            CheckKind::Snmp => "snmp",
            CheckKind::Http => "http",
        }
    }

    /// Parses a `params` object for this kind. The error is `(path inside params, message)`.
    pub fn parse_params(self, params: &Map<String, Value>) -> Result<CheckParams, (String, String)> {
        let value = Value::Object(params.clone());
        fn typed<T: for<'de> Deserialize<'de>>(value: Value) -> Result<T, (String, String)> {
            serde_path_to_error::deserialize(value).map_err(|e| {
                let path = e.path().to_string();
                let path = if path == "." { String::new() } else { path };
                (path, e.into_inner().to_string())
            })
        }
        Ok(match self {
            CheckKind::Icmp => CheckParams::Icmp(typed(value)?),
            CheckKind::Snmp => CheckParams::Snmp(typed(value)?),
            CheckKind::Http => CheckParams::Http(typed(value)?),
        })
    }
}

/// `template` then `service`, key by key.
pub fn merge(template: Option<&Map<String, Value>>, service: Option<&Map<String, Value>>) -> Map<String, Value> {
    let mut merged = template.cloned().unwrap_or_default();
    if let Some(service) = service {
        for (k, v) in service {
            merged.insert(k.clone(), v.clone());
        }
    }
    merged
}

#[derive(Debug, Clone)]
pub enum CheckParams {
    Icmp(IcmpParams),
    Snmp(SnmpParams),
    Http(HttpParams),
}

impl CheckParams {
    pub fn kind(&self) -> CheckKind {
        match self {
            CheckParams::Icmp(_) => CheckKind::Icmp,
            CheckParams::Snmp(_) => CheckKind::Snmp,
            CheckParams::Http(_) => CheckKind::Http,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IcmpParams {
    #[serde(default)]
    pub packets: Option<u32>,
    #[serde(default)]
    pub interval_ms: Option<u32>,
    #[serde(default)]
    pub warn_rtt_ms: Option<f64>,
    #[serde(default)]
    pub crit_rtt_ms: Option<f64>,
    #[serde(default)]
    pub warn_loss_pct: Option<f64>,
    #[serde(default)]
    pub crit_loss_pct: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Above,
    Below,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnmpParams {
    /// One OID to GET.
    #[serde(default)]
    pub oid: Option<String>,
    /// Several OIDs to GET in one PDU (each judged by the same thresholds).
    #[serde(default)]
    pub oids: Option<Vec<String>>,
    /// A subtree to walk (GETBULK on v2c/v3, GETNEXT on v1).
    #[serde(default)]
    pub walk: Option<String>,
    #[serde(default)]
    pub warn: Option<f64>,
    #[serde(default)]
    pub crit: Option<f64>,
    /// Whether `warn`/`crit` are upper (`above`, the default) or lower (`below`) limits.
    #[serde(default)]
    pub direction: Option<Direction>,
    /// Judge the rate per second between two samples of a counter.
    #[serde(default)]
    pub as_rate: Option<bool>,
    /// The exact string the value must equal.
    #[serde(default)]
    pub expect: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpParams {
    /// Defaults to `http://<device address>/`.
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub expect_status: Option<Vec<u16>>,
    #[serde(default)]
    pub body_contains: Option<String>,
    #[serde(default)]
    pub body_regex: Option<String>,
    #[serde(default)]
    pub warn_ms: Option<f64>,
    #[serde(default)]
    pub crit_ms: Option<f64>,
    #[serde(default)]
    pub tls_warn_days: Option<u32>,
    #[serde(default)]
    pub tls_crit_days: Option<u32>,
    #[serde(default)]
    pub follow_redirects: Option<bool>,
    #[serde(default)]
    pub insecure_tls: Option<bool>,
    /// A PEM file of CA certificates trusted in addition to the system's.
    #[serde(default)]
    pub ca_file: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<Secret>,
}
