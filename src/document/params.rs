//! Check parameters (`params`, protocol.md §3), one typed set per check kind.
//!
//! A template's `params` and a service's `params` are each checked on their own (so that an
//! unknown key is reported where it was written), then merged key by key, the service's
//! keys winning, into the parameters of the resolved service.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::secret::Secret;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    Icmp,
    Snmp,
    Http,
    Tcp,
    Dns,
    Plugin,
    Box,
    #[serde(rename = "snmp_trap")]
    SnmpTrap,
}

impl CheckKind {
    /// Every kind, in the order of [`CheckKind::index`]: counters and limits are arrays of it.
    pub const ALL: [CheckKind; 8] = [
        CheckKind::Icmp,
        CheckKind::Snmp,
        CheckKind::Http,
        CheckKind::Tcp,
        CheckKind::Dns,
        CheckKind::Plugin,
        CheckKind::Box,
        CheckKind::SnmpTrap,
    ];

    /// The kind's place in [`CheckKind::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            CheckKind::Icmp => "icmp",
            CheckKind::Snmp => "snmp",
            CheckKind::Http => "http",
            CheckKind::Tcp => "tcp",
            CheckKind::Dns => "dns",
            CheckKind::Plugin => "plugin",
            CheckKind::Box => "box",
            CheckKind::SnmpTrap => "snmp_trap",
        }
    }

    /// The kind named `name` as documents and records write it.
    pub fn from_name(name: &str) -> Option<CheckKind> {
        CheckKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Parses a `params` object for this kind into checked, typed values (compiled regex,
    /// OIDs, bounded counts, ordered thresholds). The error is `(path inside params, message)`.
    pub fn parse_params(self, params: &Map<String, Value>) -> Result<CheckParams, (String, String)> {
        let value = Value::Object(params.clone());
        Ok(match self {
            CheckKind::Icmp => CheckParams::Icmp(parse(value)?),
            CheckKind::Snmp => CheckParams::Snmp(Box::new(parse(value)?)),
            CheckKind::Http => CheckParams::Http(Box::new(parse(value)?)),
            CheckKind::Tcp => CheckParams::Tcp(Box::new(parse(value)?)),
            CheckKind::Dns => CheckParams::Dns(Box::new(parse(value)?)),
            CheckKind::Plugin => CheckParams::Plugin(Box::new(parse(value)?)),
            CheckKind::Box => CheckParams::Box(Box::new(parse(value)?)),
            CheckKind::SnmpTrap => CheckParams::SnmpTrap(Box::new(parse(value)?)),
        })
    }
}

/// Params of one kind from a JSON object, checked: what the document, the CLI and tests use.
pub fn parse<T: Checked>(value: Value) -> Result<T, (String, String)> {
    let raw: T::Fields = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        (path, e.into_inner().to_string())
    })?;
    T::check(raw)
}

/// Params as the document writes them (`Fields`), turned into what probes use.
pub trait Checked: Sized {
    type Fields: for<'de> Deserialize<'de>;
    /// The error is `(field, message)`.
    fn check(fields: Self::Fields) -> Result<Self, (String, String)>;
}

fn invalid(field: &str, message: impl Into<String>) -> (String, String) {
    (field.to_string(), message.into())
}

/// `value` within `range`, when set.
fn within<T: PartialOrd + std::fmt::Display + Copy>(
    field: &str,
    value: Option<T>,
    range: std::ops::RangeInclusive<T>,
) -> Result<(), (String, String)> {
    match value {
        Some(v) if !range.contains(&v) => Err(invalid(
            field,
            format!("{v} is out of range: from {} to {}", range.start(), range.end()),
        )),
        _ => Ok(()),
    }
}

/// A warning limit must be reached before the critical one.
fn ordered(warn: (&str, Option<f64>), crit: (&str, Option<f64>), below: bool) -> Result<(), (String, String)> {
    if let (Some(w), Some(c)) = (warn.1, crit.1) {
        let backwards = if below { w < c } else { w > c };
        if backwards {
            let side = if below { "below" } else { "above" };
            return Err(invalid(
                warn.0,
                format!(
                    "{w} is beyond {} {c}: a warning comes before the critical limit ({side})",
                    crit.0
                ),
            ));
        }
    }
    Ok(())
}

fn finite(field: &str, value: Option<f64>) -> Result<(), (String, String)> {
    match value {
        Some(v) if !v.is_finite() || v < 0.0 => Err(invalid(field, format!("{v} is not a number from 0 up"))),
        _ => Ok(()),
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

/// A check's parameters; the large kinds are boxed, so a plan of 50,000 ICMP services does
/// not carry each one at the size of an HTTP check's (256 bytes a service).
#[derive(Debug, Clone)]
pub enum CheckParams {
    Icmp(IcmpParams),
    Snmp(Box<SnmpParams>),
    Http(Box<HttpParams>),
    Tcp(Box<TcpParams>),
    Dns(Box<DnsParams>),
    Plugin(Box<PluginParams>),
    Box(Box<BoxParams>),
    SnmpTrap(Box<SnmpTrapParams>),
}

impl CheckParams {
    pub fn kind(&self) -> CheckKind {
        match self {
            CheckParams::Icmp(_) => CheckKind::Icmp,
            CheckParams::Snmp(_) => CheckKind::Snmp,
            CheckParams::Http(_) => CheckKind::Http,
            CheckParams::Tcp(_) => CheckKind::Tcp,
            CheckParams::Dns(_) => CheckKind::Dns,
            CheckParams::Plugin(_) => CheckKind::Plugin,
            CheckParams::Box(_) => CheckKind::Box,
            CheckParams::SnmpTrap(_) => CheckKind::SnmpTrap,
        }
    }

    /// The parameter a service of this kind cannot do without, when neither the template nor
    /// the service gave it (a template may leave it to its services).
    pub fn missing_field(&self) -> Option<&'static str> {
        match self {
            CheckParams::Snmp(p) => p.read.is_none().then_some("oid"),
            CheckParams::Tcp(p) => p.port.is_none().then_some("port"),
            CheckParams::Dns(p) => p.name.is_none().then_some("name"),
            CheckParams::Plugin(p) => p.command.is_none().then_some("command"),
            CheckParams::SnmpTrap(p) => p.trap_oid.is_none().then_some("trap_oid"),
            CheckParams::Icmp(_) | CheckParams::Http(_) | CheckParams::Box(_) => None,
        }
    }
}

/// Echoes sent per check, at most.
pub const MAX_PACKETS: u32 = 100;

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

impl Checked for IcmpParams {
    type Fields = IcmpParams;

    fn check(p: IcmpParams) -> Result<IcmpParams, (String, String)> {
        within("packets", p.packets, 1..=MAX_PACKETS)?;
        within("interval_ms", p.interval_ms, 1..=10_000)?;
        finite("warn_rtt_ms", p.warn_rtt_ms)?;
        finite("crit_rtt_ms", p.crit_rtt_ms)?;
        within("warn_loss_pct", p.warn_loss_pct, 0.0..=100.0)?;
        within("crit_loss_pct", p.crit_loss_pct, 0.0..=100.0)?;
        ordered(("warn_rtt_ms", p.warn_rtt_ms), ("crit_rtt_ms", p.crit_rtt_ms), false)?;
        ordered(
            ("warn_loss_pct", p.warn_loss_pct),
            ("crit_loss_pct", p.crit_loss_pct),
            false,
        )?;
        Ok(p)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    #[default]
    Above,
    Below,
}

/// An SNMP object identifier, read from its dotted form (`1.3.6.1.2.1.1.3.0`) once.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectId(Vec<u64>);

impl ObjectId {
    pub fn arcs(&self) -> &[u64] {
        &self.0
    }
}

impl std::str::FromStr for ObjectId {
    type Err = String;

    fn from_str(text: &str) -> Result<ObjectId, String> {
        let arcs: Result<Vec<u64>, _> = text.trim_start_matches('.').split('.').map(str::parse::<u64>).collect();
        match arcs {
            // BER encodes the first two arcs as one number: 0, 1 or 2, then below 40 under 0 and 1.
            Ok(arcs) if arcs.len() >= 2 && arcs[0] <= 2 && (arcs[0] == 2 || arcs[1] < 40) => Ok(ObjectId(arcs)),
            _ => Err(format!(
                "{text:?} is not an OID: numbers separated by dots, such as 1.3.6.1.2.1.1.3.0"
            )),
        }
    }
}

impl std::fmt::Display for ObjectId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, arc) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            write!(f, "{arc}")?;
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for ObjectId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ObjectId, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// What an SNMP check reads.
#[derive(Debug, Clone, PartialEq)]
pub enum SnmpRead {
    /// These OIDs in one request (`oid`, then `oids`).
    Get(Vec<ObjectId>),
    /// Every value under this OID.
    Walk(ObjectId),
}

#[derive(Debug, Clone, Default)]
pub struct SnmpParams {
    /// `None` in a template that leaves the OIDs to its services.
    pub read: Option<SnmpRead>,
    pub warn: Option<f64>,
    pub crit: Option<f64>,
    pub direction: Direction,
    /// Judge the rate per second between two samples of a counter.
    pub as_rate: bool,
    /// The exact string the value must equal.
    pub expect: Option<String>,
}

/// The SNMP params as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnmpFields {
    /// One OID to GET.
    #[serde(default)]
    oid: Option<ObjectId>,
    /// Several OIDs to GET in one PDU (each judged by the same thresholds).
    #[serde(default)]
    oids: Option<Vec<ObjectId>>,
    /// A subtree to walk (GETBULK on v2c/v3, GETNEXT on v1).
    #[serde(default)]
    walk: Option<ObjectId>,
    #[serde(default)]
    warn: Option<f64>,
    #[serde(default)]
    crit: Option<f64>,
    /// Whether `warn`/`crit` are upper (`above`, the default) or lower (`below`) limits.
    #[serde(default)]
    direction: Option<Direction>,
    #[serde(default)]
    as_rate: Option<bool>,
    #[serde(default)]
    expect: Option<String>,
}

impl Checked for SnmpParams {
    type Fields = SnmpFields;

    fn check(f: SnmpFields) -> Result<SnmpParams, (String, String)> {
        let read = match (f.oid, f.oids, f.walk) {
            (None, None, None) => None,
            (None, None, Some(walk)) => Some(SnmpRead::Walk(walk)),
            (_, _, Some(_)) => return Err(invalid("walk", "a walk reads one subtree: give it without oid or oids")),
            (_, Some(list), None) if list.is_empty() => return Err(invalid("oids", "an empty list")),
            (oid, list, None) => Some(SnmpRead::Get(oid.into_iter().chain(list.unwrap_or_default()).collect())),
        };
        let direction = f.direction.unwrap_or_default();
        ordered(("warn", f.warn), ("crit", f.crit), direction == Direction::Below)?;
        for (field, value) in [("warn", f.warn), ("crit", f.crit)] {
            if value.is_some_and(|v| !v.is_finite()) {
                return Err(invalid(field, "not a finite number"));
            }
        }
        let as_rate = f.as_rate.unwrap_or(false);
        if as_rate && matches!(read, Some(SnmpRead::Walk(_))) {
            return Err(invalid(
                "as_rate",
                "rates are read from a GET of counters, not from a walk",
            ));
        }
        Ok(SnmpParams {
            read,
            warn: f.warn,
            crit: f.crit,
            direction,
            as_rate,
            expect: f.expect,
        })
    }
}

/// A regular expression, compiled when the document is read.
#[derive(Debug, Clone)]
pub struct Pattern(regex::Regex);

impl Pattern {
    pub fn is_match(&self, text: &str) -> bool {
        self.0.is_match(text)
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Pattern, D::Error> {
        let text = String::deserialize(d)?;
        // The default size limit (10 MiB compiled) bounds what one document may ask.
        regex::Regex::new(&text).map(Pattern).map_err(|e| {
            // regex draws the pattern over several lines; its last one says what is wrong.
            let text = e.to_string();
            let why = text.lines().last().unwrap_or_default().trim_start_matches("error: ");
            serde::de::Error::custom(format!("not a regular expression: {why}"))
        })
    }
}

/// An HTTP method, read once: an upper-case token such as GET, HEAD or POST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Method(reqwest::Method);

impl Method {
    pub fn get() -> Method {
        Method(reqwest::Method::GET)
    }

    pub fn as_reqwest(&self) -> &reqwest::Method {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Method {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Method, D::Error> {
        let text = String::deserialize(d)?;
        let token = !text.is_empty() && text.bytes().all(|b| b.is_ascii_uppercase() || b == b'-');
        match reqwest::Method::from_bytes(text.as_bytes()) {
            Ok(m) if token => Ok(Method(m)),
            _ => Err(serde::de::Error::custom(format!(
                "{text:?} is not an HTTP method such as GET, HEAD or POST"
            ))),
        }
    }
}

/// An `http` or `https` URL (with `{status}` standing for the box's own status endpoint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckUrl(String);

/// In a URL, the box's own status endpoint (`status.listen`, a wildcard read as loopback).
pub const STATUS_ENDPOINT: &str = "{status}";

impl CheckUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for CheckUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<CheckUrl, String> {
        let probe = text.replace(STATUS_ENDPOINT, "127.0.0.1:1");
        let url = url::Url::parse(&probe).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
        match url.scheme() {
            "http" | "https" if url.host().is_some() => Ok(CheckUrl(text.to_string())),
            "http" | "https" => Err(format!("{text:?} names no host")),
            other => Err(format!("the scheme {other:?} is not checked: http or https")),
        }
    }
}

impl<'de> Deserialize<'de> for CheckUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<CheckUrl, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpParams {
    /// Defaults to `http://<device address>/`.
    #[serde(default)]
    pub url: Option<CheckUrl>,
    #[serde(default)]
    pub method: Option<Method>,
    #[serde(default)]
    pub expect_status: Option<Vec<u16>>,
    #[serde(default)]
    pub body_contains: Option<String>,
    #[serde(default)]
    pub body_regex: Option<Pattern>,
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

impl Checked for HttpParams {
    type Fields = HttpParams;

    fn check(p: HttpParams) -> Result<HttpParams, (String, String)> {
        if let Some(codes) = &p.expect_status {
            if codes.is_empty() {
                return Err(invalid("expect_status", "an empty list"));
            }
            if let Some(code) = codes.iter().find(|c| !(100..=599).contains(*c)) {
                return Err(invalid(
                    "expect_status",
                    format!("{code} is not an HTTP status (100 to 599)"),
                ));
            }
        }
        finite("warn_ms", p.warn_ms)?;
        finite("crit_ms", p.crit_ms)?;
        ordered(("warn_ms", p.warn_ms), ("crit_ms", p.crit_ms), false)?;
        ordered(
            ("tls_warn_days", p.tls_warn_days.map(f64::from)),
            ("tls_crit_days", p.tls_crit_days.map(f64::from)),
            true,
        )?;
        Ok(p)
    }
}

/// A TCP check's port: a number, or `{status}`, the box's own status endpoint (its
/// `status.listen`, a wildcard read as loopback), whatever the device's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpPort {
    Number(u16),
    Status,
}

impl<'de> Deserialize<'de> for TcpPort {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<TcpPort, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Number(u16),
            Text(String),
        }
        match Written::deserialize(d)
            .map_err(|_| serde::de::Error::custom(format!("expected a port (1 to 65535) or \"{STATUS_ENDPOINT}\"")))?
        {
            Written::Number(n) => Ok(TcpPort::Number(n)),
            Written::Text(t) if t == STATUS_ENDPOINT => Ok(TcpPort::Status),
            Written::Text(t) => Err(serde::de::Error::custom(format!(
                "{t:?} is not a port: a number from 1 to 65535, or \"{STATUS_ENDPOINT}\""
            ))),
        }
    }
}

/// What a TCP check sends, at most.
pub const MAX_TCP_SEND: usize = 4096;

/// `tcp`: connect to the device's `port`, optionally TLS, send `send`, look for `expect`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpParams {
    /// Required on the service (a template may leave it to its services).
    #[serde(default)]
    pub port: Option<TcpPort>,
    /// Text sent once connected (`\r\n` as the protocol wants it).
    #[serde(default)]
    pub send: Option<String>,
    /// A substring the answer must contain, or a regex it must match.
    #[serde(default)]
    pub expect: Option<String>,
    #[serde(default)]
    pub expect_regex: Option<Pattern>,
    /// A TLS handshake after connecting (the certificate is verified unless `insecure_tls`).
    #[serde(default)]
    pub tls: bool,
    #[serde(default)]
    pub insecure_tls: bool,
    /// A PEM file of CA certificates trusted in addition to the system's.
    #[serde(default)]
    pub ca_file: Option<String>,
    #[serde(default)]
    pub tls_warn_days: Option<u32>,
    #[serde(default)]
    pub tls_crit_days: Option<u32>,
    #[serde(default)]
    pub warn_ms: Option<f64>,
    #[serde(default)]
    pub crit_ms: Option<f64>,
}

impl Checked for TcpParams {
    type Fields = TcpParams;

    fn check(p: TcpParams) -> Result<TcpParams, (String, String)> {
        if p.port == Some(TcpPort::Number(0)) {
            return Err(invalid("port", "0 is not a port (1 to 65535)"));
        }
        if p.expect.is_some() && p.expect_regex.is_some() {
            return Err(invalid("expect_regex", "give expect or expect_regex, not both"));
        }
        if p.send.as_ref().is_some_and(|t| t.len() > MAX_TCP_SEND) {
            return Err(invalid("send", format!("longer than {MAX_TCP_SEND} bytes")));
        }
        if !p.tls && (p.tls_warn_days.is_some() || p.tls_crit_days.is_some() || p.insecure_tls || p.ca_file.is_some()) {
            return Err(invalid("tls", "tls_*, insecure_tls and ca_file need tls: true"));
        }
        finite("warn_ms", p.warn_ms)?;
        finite("crit_ms", p.crit_ms)?;
        ordered(("warn_ms", p.warn_ms), ("crit_ms", p.crit_ms), false)?;
        ordered(
            ("tls_warn_days", p.tls_warn_days.map(f64::from)),
            ("tls_crit_days", p.tls_crit_days.map(f64::from)),
            true,
        )?;
        Ok(p)
    }
}

/// The record types a `dns` check asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum DnsType {
    #[default]
    A,
    #[serde(rename = "AAAA")]
    Aaaa,
    #[serde(rename = "CNAME")]
    Cname,
    #[serde(rename = "MX")]
    Mx,
    #[serde(rename = "NS")]
    Ns,
    #[serde(rename = "TXT")]
    Txt,
    #[serde(rename = "SOA")]
    Soa,
    #[serde(rename = "PTR")]
    Ptr,
}

impl DnsType {
    pub fn as_str(self) -> &'static str {
        match self {
            DnsType::A => "A",
            DnsType::Aaaa => "AAAA",
            DnsType::Cname => "CNAME",
            DnsType::Mx => "MX",
            DnsType::Ns => "NS",
            DnsType::Txt => "TXT",
            DnsType::Soa => "SOA",
            DnsType::Ptr => "PTR",
        }
    }
}

impl std::str::FromStr for DnsType {
    type Err = String;

    fn from_str(text: &str) -> Result<DnsType, String> {
        DnsType::deserialize(serde::de::value::StrDeserializer::<serde::de::value::Error>::new(
            &text.to_ascii_uppercase(),
        ))
        .map_err(|_| format!("{text:?} is not a record type: A, AAAA, CNAME, MX, NS, TXT, SOA or PTR"))
    }
}

/// `dns`: ask the device (or `server`) for `name`'s records of `record_type`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsParams {
    /// Required on the service (a template may leave it to its services).
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub record_type: DnsType,
    /// The server asked, when it is not the device's address.
    #[serde(default)]
    pub server: Option<String>,
    #[serde(default)]
    pub port: Option<u16>,
    /// Values that must all be in the answer (written as `snbox probe dns` prints them).
    #[serde(default)]
    pub expect: Vec<String>,
    #[serde(default)]
    pub warn_ms: Option<f64>,
    #[serde(default)]
    pub crit_ms: Option<f64>,
}

impl Checked for DnsParams {
    type Fields = DnsParams;

    fn check(p: DnsParams) -> Result<DnsParams, (String, String)> {
        if let Some(name) = &p.name {
            hickory_proto::rr::Name::from_utf8(name)
                .map_err(|e| invalid("name", format!("{name:?} is not a domain name: {e}")))?;
        }
        if p.port == Some(0) {
            return Err(invalid("port", "0 is not a port (1 to 65535)"));
        }
        if p.server.as_ref().is_some_and(|s| s.trim().is_empty()) {
            return Err(invalid("server", "an empty server: leave it out to ask the device"));
        }
        finite("warn_ms", p.warn_ms)?;
        finite("crit_ms", p.crit_ms)?;
        ordered(("warn_ms", p.warn_ms), ("crit_ms", p.crit_ms), false)?;
        Ok(p)
    }
}

/// Arguments a plugin is given, at most, and their length in all.
pub const MAX_PLUGIN_ARGS: usize = 64;
pub const MAX_PLUGIN_ARGS_BYTES: usize = 16 * 1024;

/// `plugin`: a Nagios-compatible plugin, by file name in one of `[plugins] dirs`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginParams {
    /// Required on the service (a template may leave it to its services). A file name only.
    #[serde(default)]
    pub command: Option<String>,
    /// `$ADDRESS$`, `$HOSTNAME$` (the device's name) and `$DEVICE$` (its id) are replaced.
    #[serde(default)]
    pub args: Vec<String>,
    /// The plugin's whole environment besides `PATH`; values may hold passwords.
    #[serde(default)]
    pub env: std::collections::BTreeMap<String, Secret>,
}

impl Checked for PluginParams {
    type Fields = PluginParams;

    fn check(p: PluginParams) -> Result<PluginParams, (String, String)> {
        if let Some(command) = &p.command {
            plugin_name(command).map_err(|why| invalid("command", why))?;
        }
        if p.args.len() > MAX_PLUGIN_ARGS {
            return Err(invalid("args", format!("more than {MAX_PLUGIN_ARGS} arguments")));
        }
        if p.args.iter().map(String::len).sum::<usize>() > MAX_PLUGIN_ARGS_BYTES {
            return Err(invalid(
                "args",
                format!("longer than {MAX_PLUGIN_ARGS_BYTES} bytes in all"),
            ));
        }
        if let Some(i) = p.args.iter().position(|a| a.contains('\0')) {
            return Err(invalid(
                &format!("args[{i}]"),
                "a NUL byte cannot be passed to a program",
            ));
        }
        for (name, value) in &p.env {
            let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(invalid(
                    &format!("env.{name}"),
                    "not a variable name: letters, digits and _, not starting with a digit",
                ));
            }
            if value.expose().contains('\0') {
                return Err(invalid(
                    &format!("env.{name}"),
                    "a NUL byte cannot be passed to a program",
                ));
            }
        }
        Ok(p)
    }
}

/// A plugin's `command`: a file name, never a path or a shell line.
pub fn plugin_name(command: &str) -> Result<(), String> {
    if command.is_empty() {
        return Err("an empty name".into());
    }
    if command.contains('/') || command.contains("..") {
        return Err(format!(
            "{command:?} is a path: give the file name of a plugin in one of [plugins] dirs"
        ));
    }
    if command.starts_with('.')
        || command.starts_with('-')
        || command.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(format!(
            "{command:?} is not a plugin's file name (no spaces, no leading . or -): arguments go in args"
        ));
    }
    Ok(())
}

/// Upper limits on one of the box's own measures; `{}` measures without judging.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    #[serde(default)]
    pub warn: Option<f64>,
    #[serde(default)]
    pub crit: Option<f64>,
}

impl Limit {
    const fn of(warn: f64, crit: f64) -> Limit {
        Limit {
            warn: Some(warn),
            crit: Some(crit),
        }
    }
}

/// `box`: the box's own health, each measure judged by its limits (defaults when left out).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BoxParams {
    pub cpu_pct: Limit,
    pub memory_pct: Limit,
    /// Of the state directory's filesystem.
    pub disk_pct: Limit,
    /// Of the outbox's cap.
    pub buffer_pct: Limit,
    /// Age of the oldest record the central server has not acknowledged (paired boxes).
    pub unsent_age_s: Limit,
    /// The box's clock against the central server's, either way (paired boxes).
    pub clock_offset_s: Limit,
}

impl Default for BoxParams {
    fn default() -> BoxParams {
        BoxParams {
            cpu_pct: Limit::of(90.0, 98.0),
            memory_pct: Limit::of(90.0, 95.0),
            disk_pct: Limit::of(85.0, 95.0),
            buffer_pct: Limit::of(50.0, 80.0),
            unsent_age_s: Limit::of(3600.0, 86_400.0),
            clock_offset_s: Limit::of(5.0, 60.0),
        }
    }
}

impl Checked for BoxParams {
    type Fields = BoxParams;

    fn check(p: BoxParams) -> Result<BoxParams, (String, String)> {
        for (name, limit) in p.limits() {
            finite(&format!("{name}.warn"), limit.warn)?;
            finite(&format!("{name}.crit"), limit.crit)?;
            ordered(
                (&format!("{name}.warn"), limit.warn),
                (&format!("{name}.crit"), limit.crit),
                false,
            )?;
        }
        Ok(p)
    }
}

impl BoxParams {
    /// Each measure's name and limits, in the order outputs list them.
    pub fn limits(&self) -> [(&'static str, Limit); 6] {
        [
            ("cpu_pct", self.cpu_pct),
            ("memory_pct", self.memory_pct),
            ("disk_pct", self.disk_pct),
            ("buffer_pct", self.buffer_pct),
            ("unsent_age_s", self.unsent_age_s),
            ("clock_offset_s", self.clock_offset_s),
        ]
    }
}

/// A variable binding a trap must carry: its OID (or a prefix of it) and a regex its value
/// (as text) must match.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VarbindMatch {
    pub oid: ObjectId,
    pub regex: Pattern,
}

/// The status a matching trap sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrapStatus {
    Warning,
    #[default]
    Critical,
}

/// `snmp_trap` (passive): what a trap must be to set the service's status, and what clears it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnmpTrapParams {
    /// The notification OID, or a prefix of it. Required on the service.
    #[serde(default)]
    pub trap_oid: Option<ObjectId>,
    #[serde(default)]
    pub varbind: Option<VarbindMatch>,
    #[serde(default)]
    pub status: TrapStatus,
    /// A trap that sets the service back to ok.
    #[serde(default)]
    pub clear_trap_oid: Option<ObjectId>,
    /// Back to ok when no matching trap came for this long.
    #[serde(default)]
    pub clear_after_s: Option<u32>,
}

impl Checked for SnmpTrapParams {
    type Fields = SnmpTrapParams;

    fn check(p: SnmpTrapParams) -> Result<SnmpTrapParams, (String, String)> {
        within("clear_after_s", p.clear_after_s, 1..=31 * 86_400)?;
        if let (Some(t), Some(c)) = (&p.trap_oid, &p.clear_trap_oid)
            && t == c
        {
            return Err(invalid(
                "clear_trap_oid",
                "the same OID as trap_oid: a trap cannot both set and clear",
            ));
        }
        Ok(p)
    }
}

impl ObjectId {
    /// Whether `self` is `other` or begins with it (an OID prefix names a family of traps).
    pub fn starts_with(&self, other: &ObjectId) -> bool {
        self.0.starts_with(&other.0)
    }

    pub fn from_arcs(arcs: Vec<u64>) -> ObjectId {
        ObjectId(arcs)
    }
}
