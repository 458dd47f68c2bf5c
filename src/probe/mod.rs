//! Probes: a target plus check parameters in, one typed [`CheckResult`] out.
//!
//! One module per protocol. Probes never touch SQLite or the scheduler, never panic on what a
//! peer sends, and bound every network call with a timeout. A result is `unknown` when the
//! check itself could not run or decide (a bad parameter, no ICMP socket, an SNMP OID that
//! does not exist). A host that does not answer a ping or an HTTP request is `critical`; an
//! SNMP agent that does not answer is `unknown` (the value could not be read: often
//! credentials or an ACL, not the device). docs/PROBES.md has the whole table.

pub mod box_health;
pub mod dns;
pub mod http;
pub mod icmp;
pub mod pace;
pub mod perfdata;
pub mod plugin;
pub mod snmp;
pub mod tcp;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warning,
    Critical,
    Unknown,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warning => "warning",
            Status::Critical => "critical",
            Status::Unknown => "unknown",
        }
    }

    /// The worse of two statuses for a check judged on several values.
    pub fn worst(self, other: Status) -> Status {
        fn rank(s: Status) -> u8 {
            match s {
                Status::Ok => 0,
                Status::Warning => 1,
                Status::Unknown => 2,
                Status::Critical => 3,
            }
        }
        if rank(other) > rank(self) { other } else { self }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one check found.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckResult {
    pub status: Status,
    /// One line for a person.
    pub output: String,
    /// Metric names are mostly fixed words; an SNMP OID is the one that is made per check.
    pub metrics: BTreeMap<Cow<'static, str>, f64>,
    pub duration: Duration,
}

impl CheckResult {
    pub fn new(status: Status, output: impl Into<String>) -> Self {
        let mut output = output.into();
        // One line, whatever a peer sent us.
        if output.contains(['\n', '\r']) {
            output = output.replace(['\n', '\r'], " ");
        }
        CheckResult {
            status,
            output,
            metrics: BTreeMap::new(),
            duration: Duration::ZERO,
        }
    }

    pub fn unknown(output: impl Into<String>) -> Self {
        CheckResult::new(Status::Unknown, output)
    }

    pub fn metric(mut self, name: impl Into<Cow<'static, str>>, value: f64) -> Self {
        if value.is_finite() {
            self.metrics.insert(name.into(), value);
        }
        self
    }

    pub fn took(mut self, duration: Duration) -> Self {
        self.duration = duration;
        self
    }

    /// The JSON of `snbox probe --format json`: `{"status", "output", "metrics", "duration_ms"}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "status": self.status,
            "output": self.output,
            "metrics": self.metrics,
            "duration_ms": (self.duration.as_secs_f64() * 1e6).round() / 1e3,
        })
    }
}

/// Warning and critical limits on one number, upper limits unless `below`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Thresholds {
    pub warn: Option<f64>,
    pub crit: Option<f64>,
    pub below: bool,
}

impl Thresholds {
    pub fn judge(&self, value: f64) -> Status {
        let breaks = |limit: Option<f64>| limit.is_some_and(|l| if self.below { value < l } else { value > l });
        if breaks(self.crit) {
            Status::Critical
        } else if breaks(self.warn) {
            Status::Warning
        } else {
            Status::Ok
        }
    }
}

/// Judges a TLS leaf's `not_after` (Unix seconds) by lower limits in days: metric
/// `tls_days_left`, and a worse status with the expiry in the output when one is crossed
/// (a critical result stays as it is). The HTTP and TCP probes share it.
pub(crate) fn tls_expiry(
    result: CheckResult,
    not_after: Option<i64>,
    warn_days: Option<u32>,
    crit_days: Option<u32>,
) -> CheckResult {
    let Some(not_after) = not_after else {
        return result;
    };
    let days = tls_days_left(not_after);
    let status = Thresholds {
        warn: warn_days.map(f64::from),
        crit: crit_days.map(f64::from),
        below: true,
    }
    .judge(days);
    let mut result = result.metric("tls_days_left", days);
    if status != Status::Ok && result.status != Status::Critical {
        result.status = result.status.worst(status);
        result.output = format!(
            "{}; certificate expires in {days:.1} days ({})",
            result.output,
            utc_date(not_after)
        );
    }
    result
}

/// Days from now until `not_after` (Unix seconds), two decimals.
pub(crate) fn tls_days_left(not_after: i64) -> f64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    ((not_after - now) as f64 / 86_400.0 * 100.0).round() / 100.0
}

/// A Unix instant as a person reads it in an output.
pub(crate) fn utc_date(unix_s: i64) -> String {
    jiff::Timestamp::from_second(unix_s)
        .map_or_else(|_| unix_s.to_string(), |t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
}

/// An IP address as it is, or the first address a host name resolves to (within 5 s).
pub(crate) async fn resolve(address: &str) -> Result<std::net::IpAddr, String> {
    if let Ok(ip) = address.trim_matches(['[', ']']).parse::<std::net::IpAddr>() {
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

/// Milliseconds with two decimals, for outputs.
pub(crate) fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e5).round() / 100.0
}
