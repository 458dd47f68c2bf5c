//! The daemon settings file, `snbox.toml` (protocol.md §3): raw TOML → validated [`Settings`].
//!
//! Every section is checked on its own so that `snbox config check` lists every problem.
//! Relative paths are resolved against the settings file's folder.
//!
//! (Over 600 lines on purpose: each section's raw form, defaults and checks sit together, in
//! the order of protocol.md §3, so one file reads as the reference of `snbox.toml`.)

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use jiff::tz::TimeZone;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::input::{self, Format, typed};
use crate::problem::{Problem, Problems};
use crate::rules::tree::zone_named;
use crate::secret::Secret;

mod notify;
pub use notify::{Notify, Security, Smtp, Webhook, check_address, shown_url};

pub const DEFAULT_PATH: &str = "/etc/snbox/snbox.toml";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/snbox";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8730";

#[derive(Debug, Clone)]
pub struct Settings {
    /// The file these settings came from.
    pub path: PathBuf,
    pub state_dir: PathBuf,
    /// The box's zone (R7), used where the tree sets none.
    pub timezone: TimeZone,
    pub mode: Mode,
    pub status: StatusEndpoint,
    pub limits: Limits,
    pub buffer: Buffer,
    pub log: Log,
    /// `[notify]`: the channels the box delivers notifications through itself (R17).
    pub notify: Notify,
    /// `[control] socket`: the Unix socket of `snbox maintenance|ack|check` (mode 0600).
    pub control_socket: PathBuf,
    /// `[plugins] dirs`: the only places a plugin check's `command` is looked up.
    pub plugin_dirs: Vec<PathBuf>,
    /// `[census]`: limits on the `discover` command.
    pub census: CensusLimits,
    /// `[traps] listen`: where SNMP traps are received while the plan has trap services.
    pub traps_listen: SocketAddr,
    /// Settings that are valid but probably not what was meant (`config check` prints them,
    /// `snbox run` logs them).
    pub warnings: Vec<Problem>,
}

/// Where the monitoring document comes from: the box's mode.
#[derive(Debug, Clone)]
pub enum Mode {
    /// A local file; no central server at all.
    Standalone {
        document: PathBuf,
        /// Records older than this many days are deleted (nothing acknowledges them).
        keep_days: u32,
    },
    Central(Central),
    /// Neither yet: the box waits to be paired.
    Unpaired,
}

#[derive(Debug, Clone)]
pub struct Central {
    pub url: url::Url,
    pub ca_file: Option<PathBuf>,
    pub config_poll_s: u32,
    pub heartbeat_s: u32,
    /// Back-off after a failed exchange: from this floor …
    pub retry_min_ms: u32,
    /// … doubling up to this ceiling.
    pub retry_max_s: u32,
    /// Records per second when catching up on a backlog; 0 is as fast as the server takes them.
    pub replay_records_per_s: u32,
    /// Deadline of one exchange (a document pull gets four times as long).
    pub timeout_s: u32,
}

impl Central {
    /// `[central]` as if only its `url` were written (a paired box whose settings have neither
    /// section).
    pub fn defaults(url: url::Url, config_poll_s: Option<u32>) -> Central {
        Central {
            url,
            ca_file: None,
            config_poll_s: config_poll_s.filter(|s| *s > 0).unwrap_or_else(default_config_poll_s),
            heartbeat_s: default_heartbeat_s(),
            retry_min_ms: default_retry_min_ms(),
            retry_max_s: default_retry_max_s(),
            replay_records_per_s: 0,
            timeout_s: default_timeout_s(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct StatusEndpoint {
    pub listen: SocketAddr,
    pub tokens: Vec<Token>,
    /// Networks whose requests need no token (default: loopback).
    pub no_token_from: Vec<Network>,
    /// Whether the endpoint speaks HTTPS, and with which certificate (protocol.md §7).
    pub tls: StatusTls,
    /// State changes kept for `/history` and the page's timeline, at least this many hours
    /// (a standalone box keeps them as long as its records).
    pub history_hours: u32,
}

/// How the status endpoint protects its tokens on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusTls {
    /// Plain HTTP: on loopback, or off it with `allow_plain_http = true`.
    Plain,
    /// HTTPS with the operator's certificate and key (PEM files).
    Files { cert: PathBuf, key: PathBuf },
    /// HTTPS with a certificate the box makes at its first start and keeps in `state_dir`.
    Generated,
}

/// An address block such as `127.0.0.0/8` or `::1/128`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    pub address: IpAddr,
    pub prefix: u8,
}

impl Network {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.address, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            (IpAddr::V4(_), IpAddr::V6(ip)) => ip.to_ipv4_mapped().is_some_and(|v4| self.contains(IpAddr::V4(v4))),
            _ => false,
        }
    }

    fn parse(text: &str) -> Option<Network> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, p.parse::<u8>().ok()?),
            None => {
                let a = text.parse::<IpAddr>().ok()?;
                (a, if a.is_ipv4() { 32 } else { 128 })
            }
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(Network { address: addr, prefix })
    }

    pub fn loopback() -> Vec<Network> {
        vec![
            Network {
                address: IpAddr::from([127, 0, 0, 0]),
                prefix: 8,
            },
            Network {
                address: IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
                prefix: 128,
            },
        ]
    }
}

/// A bearer token for the status endpoint, optionally scoped to a node's subtree.
#[derive(Debug, Clone)]
pub struct Token {
    pub token: Secret,
    pub node: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Checks in flight at once, all kinds together.
    pub max_concurrent_checks: u32,
    pub max_concurrent_icmp: u32,
    pub max_concurrent_snmp: u32,
    pub max_concurrent_http: u32,
    pub max_concurrent_tcp: u32,
    pub max_concurrent_dns: u32,
    pub max_concurrent_plugin: u32,
    /// Checks in flight at once against one device.
    pub max_concurrent_per_device: u32,
    /// The largest monitoring document read (a file, or pulled from the central server).
    pub max_document_bytes: u64,
}

impl Limits {
    /// Checks of `kind` in flight at once.
    pub fn max_concurrent(&self, kind: crate::document::CheckKind) -> u32 {
        use crate::document::CheckKind;
        match kind {
            CheckKind::Icmp => self.max_concurrent_icmp,
            CheckKind::Snmp => self.max_concurrent_snmp,
            CheckKind::Http => self.max_concurrent_http,
            CheckKind::Tcp => self.max_concurrent_tcp,
            CheckKind::Dns => self.max_concurrent_dns,
            CheckKind::Plugin => self.max_concurrent_plugin,
            // A few reads of /proc and one of the store; a trap service's clearing: no limit
            // of their own.
            CheckKind::Box | CheckKind::SnmpTrap => self.max_concurrent_checks,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_concurrent_checks: 1024,
            max_concurrent_icmp: 1024,
            max_concurrent_snmp: 256,
            max_concurrent_http: 128,
            max_concurrent_tcp: 128,
            max_concurrent_dns: 128,
            max_concurrent_plugin: 16,
            max_concurrent_per_device: 4,
            max_document_bytes: crate::input::DEFAULT_MAX_DOCUMENT_BYTES,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Buffer {
    /// The outbox size cap; past it the oldest results are dropped first (protocol.md §6).
    pub max_bytes: u64,
}

impl Default for Buffer {
    fn default() -> Self {
        Buffer {
            max_bytes: 256 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    /// `error`, `warn`, `info`, `debug` or `trace`; the `SNBOX_LOG` variable wins.
    pub level: String,
}

impl Default for Log {
    fn default() -> Self {
        Log { level: "info".into() }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStandalone {
    document: PathBuf,
    #[serde(default = "default_keep_days")]
    keep_days: u32,
}

fn default_keep_days() -> u32 {
    30
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCentral {
    url: String,
    #[serde(default)]
    ca_file: Option<PathBuf>,
    #[serde(default = "default_config_poll_s")]
    config_poll_s: u32,
    #[serde(default = "default_heartbeat_s")]
    heartbeat_s: u32,
    #[serde(default = "default_retry_min_ms")]
    retry_min_ms: u32,
    #[serde(default = "default_retry_max_s")]
    retry_max_s: u32,
    #[serde(default)]
    replay_records_per_s: u32,
    #[serde(default = "default_timeout_s")]
    timeout_s: u32,
}

fn default_retry_min_ms() -> u32 {
    1000
}

fn default_retry_max_s() -> u32 {
    300
}

fn default_timeout_s() -> u32 {
    30
}

fn default_config_poll_s() -> u32 {
    60
}

fn default_heartbeat_s() -> u32 {
    30
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStatus {
    #[serde(default = "default_listen")]
    listen: String,
    #[serde(default)]
    tokens: Vec<RawToken>,
    #[serde(default)]
    no_token_from: Option<Vec<String>>,
    #[serde(default)]
    cert_file: Option<PathBuf>,
    #[serde(default)]
    key_file: Option<PathBuf>,
    #[serde(default)]
    allow_plain_http: bool,
    #[serde(default = "default_history_hours")]
    history_hours: u32,
}

fn default_history_hours() -> u32 {
    48
}

fn default_listen() -> String {
    DEFAULT_LISTEN.to_string()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToken {
    token: Secret,
    #[serde(default)]
    node: Option<String>,
}

const KEYS: [&str; 13] = [
    "state_dir",
    "timezone",
    "standalone",
    "central",
    "status",
    "limits",
    "buffer",
    "log",
    "notify",
    "control",
    "plugins",
    "traps",
    "census",
];
/// Where the daemon listens for `snbox maintenance|ack|check` (the unit's RuntimeDirectory).
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/snbox/control.sock";

/// Where plugins are looked up unless `[plugins] dirs` says otherwise: Debian's
/// monitoring-plugins, and the box's own.
pub const DEFAULT_PLUGIN_DIRS: [&str; 2] = ["/usr/lib/nagios/plugins", "/etc/snbox/plugins"];

/// `[plugins]`: the directories plugin checks may run programs from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlugins {
    #[serde(default)]
    dirs: Option<Vec<PathBuf>>,
}

/// `[traps]`: the UDP address traps are received on.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTraps {
    #[serde(default)]
    listen: Option<String>,
}

/// `[census]`: limits on a census the central server asks for (the `discover` command).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCensus {
    #[serde(default)]
    max_addresses: Option<u64>,
    #[serde(default)]
    max_rate: Option<u32>,
}

/// Limits on a census asked for by the central server (protocol.md §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CensusLimits {
    /// Addresses in all, at most (65,536 is the protocol's ceiling).
    pub max_addresses: u64,
    /// Probes per second, at most: a faster `rate` in the command is lowered to it.
    pub max_rate: u32,
}

impl Default for CensusLimits {
    fn default() -> Self {
        CensusLimits {
            max_addresses: 4_096,
            max_rate: 200,
        }
    }
}

/// `[control]`: the box's own command line talks to the daemon on this Unix socket.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawControl {
    #[serde(default)]
    socket: Option<PathBuf>,
}
/// Status tokens shorter than this are refused: they guard the endpoint off loopback.
const MIN_TOKEN_LEN: usize = 16;

/// What keeps `state_dir` from holding the box's state.
#[derive(Debug)]
pub enum StateDirProblem {
    /// Not a directory, or under a file: no user can use it.
    Unusable(Problem),
    /// Not writable (nor creatable) by this user: `snbox run` refuses it; `config check`, which
    /// may run as another user than the daemon, warns.
    NotWritableHere(Problem),
}

/// Whether `state_dir` can hold the box's state for this user.
pub fn state_dir_problem(state_dir: &Path) -> Option<StateDirProblem> {
    use rustix::fs::{Access, access};
    let problem = |message: String| Problem::new("invalid_value", "state_dir", message);
    let writable = |dir: &Path| access(dir, Access::WRITE_OK | Access::EXEC_OK).is_ok();
    match std::fs::metadata(state_dir) {
        Ok(meta) if !meta.is_dir() => Some(StateDirProblem::Unusable(problem(format!(
            "{} is not a directory",
            state_dir.display()
        )))),
        Ok(_) if !writable(state_dir) => Some(StateDirProblem::NotWritableHere(problem(format!(
            "{} is not writable by this user",
            state_dir.display()
        )))),
        Ok(_) => None,
        Err(_) => {
            // The nearest folder that exists must let us create the rest.
            let existing = state_dir.ancestors().skip(1).find(|a| a.exists())?;
            let cannot = |why: &str| {
                problem(format!(
                    "{} does not exist and cannot be created: {} {why}",
                    state_dir.display(),
                    existing.display()
                ))
            };
            if !existing.is_dir() {
                Some(StateDirProblem::Unusable(cannot("is not a directory")))
            } else if !writable(existing) {
                Some(StateDirProblem::NotWritableHere(cannot("is not writable by this user")))
            } else {
                None
            }
        }
    }
}

/// Where to reach a listener from this machine: a wildcard address means loopback.
pub fn local_address(listen: std::net::SocketAddr) -> std::net::SocketAddr {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
    match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), listen.port()),
        IpAddr::V6(ip) if ip.is_unspecified() => SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), listen.port()),
        _ => listen,
    }
}

impl Settings {
    pub fn load(path: &Path) -> Result<Settings, Problems> {
        let text = input::read(path, input::MAX_SETTINGS_BYTES, "the largest settings file")?;
        Settings::parse(&text, path)
    }

    /// Parses settings text; `path` is where it came from (relative paths are based on its folder).
    pub fn parse(text: &str, path: &Path) -> Result<Settings, Problems> {
        let Value::Object(mut top) = input::parse(text, Format::Toml)? else {
            return Err(Problems(vec![Problem::new(
                "invalid_field",
                "",
                "expected a TOML table",
            )]));
        };
        let mut problems = Vec::new();
        for key in top.keys() {
            if !KEYS.contains(&key.as_str()) {
                problems.push(Problem::new(
                    "invalid_field",
                    key.clone(),
                    format!("unknown setting, expected one of {}", KEYS.join(", ")),
                ));
            }
        }
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let resolve = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };

        let state_dir = section::<PathBuf>(&mut top, "state_dir", &mut problems)
            .map_or_else(|| PathBuf::from(DEFAULT_STATE_DIR), resolve);
        let timezone = match section::<String>(&mut top, "timezone", &mut problems) {
            Some(name) => zone_named(&name, "timezone", &mut problems).unwrap_or(TimeZone::UTC),
            None => TimeZone::UTC,
        };
        let standalone = section::<RawStandalone>(&mut top, "standalone", &mut problems);
        let central = section::<RawCentral>(&mut top, "central", &mut problems);
        let mode = match (standalone, central) {
            (Some(_), Some(_)) => {
                problems.push(Problem::new(
                    "invalid_value",
                    "central",
                    "[standalone] and [central] exclude each other: a box takes its document from one place",
                ));
                Mode::Unpaired
            }
            (Some(s), None) => {
                if s.keep_days == 0 {
                    problems.push(Problem::new(
                        "invalid_value",
                        "standalone.keep_days",
                        "must be at least 1",
                    ));
                }
                Mode::Standalone {
                    document: resolve(s.document),
                    keep_days: s.keep_days,
                }
            }
            (None, Some(c)) => match central_of(c, &mut problems) {
                Some(c) => Mode::Central(Central {
                    ca_file: c.ca_file.map(resolve),
                    ..c
                }),
                None => Mode::Unpaired,
            },
            (None, None) => Mode::Unpaired,
        };
        let status = section::<RawStatus>(&mut top, "status", &mut problems).unwrap_or(RawStatus {
            listen: default_listen(),
            tokens: Vec::new(),
            no_token_from: None,
            cert_file: None,
            key_file: None,
            allow_plain_http: false,
            history_hours: default_history_hours(),
        });
        let status = status_of(status, &resolve, &mut problems);
        let limits = section::<Limits>(&mut top, "limits", &mut problems).unwrap_or_default();
        check_limits(&limits, &mut problems);
        let buffer = section::<Buffer>(&mut top, "buffer", &mut problems).unwrap_or_default();
        if buffer.max_bytes < 1024 * 1024 {
            problems.push(Problem::new(
                "invalid_value",
                "buffer.max_bytes",
                "must be at least 1048576 (1 MiB)",
            ));
        }
        let log = section::<Log>(&mut top, "log", &mut problems).unwrap_or_default();
        if !["error", "warn", "info", "debug", "trace"].contains(&log.level.as_str()) {
            problems.push(Problem::new(
                "invalid_value",
                "log.level",
                format!(
                    "unknown level {:?}: expected error, warn, info, debug or trace",
                    log.level
                ),
            ));
        }
        let notify = match top.remove("notify") {
            Some(value) => match typed::<notify::RawNotify>(value, "notify") {
                Ok(raw) => notify::notify_of(raw, &resolve, &mut problems),
                Err(p) => {
                    problems.push(p);
                    Notify::default()
                }
            },
            None => Notify::default(),
        };
        let control_socket = section::<RawControl>(&mut top, "control", &mut problems)
            .and_then(|c| c.socket)
            .map_or_else(|| PathBuf::from(DEFAULT_CONTROL_SOCKET), resolve);
        let plugin_dirs = section::<RawPlugins>(&mut top, "plugins", &mut problems)
            .and_then(|p| p.dirs)
            .map_or_else(
                || DEFAULT_PLUGIN_DIRS.iter().map(PathBuf::from).collect(),
                |dirs| dirs.into_iter().map(&resolve).collect::<Vec<_>>(),
            );
        let census = match section::<RawCensus>(&mut top, "census", &mut problems) {
            None => CensusLimits::default(),
            Some(raw) => {
                let defaults = CensusLimits::default();
                let max_addresses = raw.max_addresses.unwrap_or(defaults.max_addresses);
                let max_rate = raw.max_rate.unwrap_or(defaults.max_rate);
                if !(1..=crate::census::range::MAX_ADDRESSES).contains(&max_addresses) {
                    problems.push(Problem::new(
                        "invalid_value",
                        "census.max_addresses",
                        format!("{max_addresses}: from 1 to 65536"),
                    ));
                }
                if !(1..=10_000).contains(&max_rate) {
                    problems.push(Problem::new(
                        "invalid_value",
                        "census.max_rate",
                        format!("{max_rate}: from 1 to 10000 probes per second"),
                    ));
                }
                CensusLimits {
                    max_addresses,
                    max_rate,
                }
            }
        };
        let traps_listen = match section::<RawTraps>(&mut top, "traps", &mut problems).and_then(|t| t.listen) {
            None => crate::traps::DEFAULT_LISTEN,
            Some(text) => text.parse::<SocketAddr>().unwrap_or_else(|_| {
                problems.push(Problem::new(
                    "invalid_value",
                    "traps.listen",
                    format!("{text:?} is not an address and port such as \"[::]:162\" or \"0.0.0.0:162\""),
                ));
                crate::traps::DEFAULT_LISTEN
            }),
        };
        if let Mode::Central(c) = &mode
            && notify.fallback_after_s <= c.heartbeat_s
        {
            problems.push(Problem::new(
                "invalid_value",
                "notify.fallback_after_s",
                format!(
                    "must be more than central.heartbeat_s ({} s): a quiet but reachable central server would look out of reach, and notifications would be delivered twice",
                    c.heartbeat_s
                ),
            ));
        }
        if !problems.is_empty() {
            return Err(Problems(problems));
        }
        let mut warnings = Vec::new();
        if let Some(status) = &status
            && !status.listen.ip().is_loopback()
            && status.tls == StatusTls::Plain
        {
            warnings.push(Problem::new(
                "plain_http",
                "status.allow_plain_http",
                format!(
                    "the status endpoint on {} speaks plain HTTP: every token crosses the network in clear",
                    status.listen
                ),
            ));
        }
        if let Some(status) = &status
            && !status.listen.ip().is_loopback()
            && status.tokens.is_empty()
        {
            warnings.push(Problem::new(
                "no_tokens",
                "status.listen",
                format!(
                    "{} is reachable from other machines but status.tokens is empty: only status.no_token_from can read it",
                    status.listen
                ),
            ));
        }
        if matches!(mode, Mode::Standalone { .. }) && !notify.has_channels() {
            warnings.push(Problem::new(
                "no_channels",
                "notify",
                "a standalone box delivers its notifications itself, but [notify] has neither smtp nor webhook: nobody will be told",
            ));
        }
        Ok(Settings {
            warnings,
            path: path.to_path_buf(),
            state_dir,
            timezone,
            mode,
            status: status.unwrap_or_else(|| StatusEndpoint {
                listen: SocketAddr::from(([127, 0, 0, 1], 8730)),
                tokens: Vec::new(),
                no_token_from: Network::loopback(),
                tls: StatusTls::Plain,
                history_hours: default_history_hours(),
            }),
            limits,
            buffer,
            log,
            notify,
            control_socket,
            plugin_dirs,
            census,
            traps_listen,
        })
    }
}

fn section<T: DeserializeOwned>(top: &mut Map<String, Value>, key: &str, problems: &mut Vec<Problem>) -> Option<T> {
    let value = top.remove(key)?;
    typed(value, key).map_err(|p| problems.push(p)).ok()
}

/// `https://`, or `http://` to a loopback host (tests, the development central) only.
pub fn check_central_url(url: &url::Url) -> Result<(), String> {
    let loopback = match url.host() {
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err("http:// is allowed only to a loopback address; use https://".into()),
        other => Err(format!("unsupported scheme {other:?}")),
    }
}

fn central_of(raw: RawCentral, problems: &mut Vec<Problem>) -> Option<Central> {
    // Every problem of the section is listed, not only the first.
    let url = match url::Url::parse(&raw.url) {
        Ok(u) => match check_central_url(&u) {
            Ok(()) => Some(u),
            Err(why) => {
                problems.push(Problem::new("invalid_value", "central.url", why));
                None
            }
        },
        Err(e) => {
            problems.push(Problem::new("invalid_value", "central.url", format!("not a URL ({e})")));
            None
        }
    };
    for (field, value) in [
        ("config_poll_s", raw.config_poll_s),
        ("heartbeat_s", raw.heartbeat_s),
        ("retry_min_ms", raw.retry_min_ms),
        ("retry_max_s", raw.retry_max_s),
        ("timeout_s", raw.timeout_s),
    ] {
        if value == 0 {
            problems.push(Problem::new(
                "invalid_value",
                format!("central.{field}"),
                "must be at least 1",
            ));
        }
    }
    Some(Central {
        url: url?,
        ca_file: raw.ca_file,
        config_poll_s: raw.config_poll_s,
        heartbeat_s: raw.heartbeat_s,
        retry_min_ms: raw.retry_min_ms,
        retry_max_s: raw.retry_max_s,
        replay_records_per_s: raw.replay_records_per_s,
        timeout_s: raw.timeout_s,
    })
}

fn status_of(
    raw: RawStatus,
    resolve: &dyn Fn(PathBuf) -> PathBuf,
    problems: &mut Vec<Problem>,
) -> Option<StatusEndpoint> {
    let listen = match raw.listen.parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            problems.push(Problem::new(
                "invalid_value",
                "status.listen",
                format!("{:?} is not an address:port such as \"127.0.0.1:8730\"", raw.listen),
            ));
            None
        }
    };
    for (i, t) in raw.tokens.iter().enumerate() {
        let token = t.token.expose();
        if token.chars().count() < MIN_TOKEN_LEN {
            problems.push(Problem::new(
                "invalid_value",
                format!("status.tokens[{i}].token"),
                format!("a status token needs at least {MIN_TOKEN_LEN} characters"),
            ));
        } else if !token.bytes().all(|b| b.is_ascii_graphic()) {
            // A bearer token is sent in a header: spaces and control characters never match.
            problems.push(Problem::new(
                "invalid_value",
                format!("status.tokens[{i}].token"),
                "a status token is printable ASCII without spaces",
            ));
        }
        if t.node.as_deref().is_some_and(|n| n.trim().is_empty()) {
            problems.push(Problem::new(
                "invalid_value",
                format!("status.tokens[{i}].node"),
                "an empty node: leave `node` out for a token that sees the whole box",
            ));
        }
    }
    let no_token_from = match &raw.no_token_from {
        None => Network::loopback(),
        Some(list) => list
            .iter()
            .enumerate()
            .filter_map(|(i, text)| {
                let net = Network::parse(text);
                match net {
                    None => problems.push(Problem::new(
                        "invalid_value",
                        format!("status.no_token_from[{i}]"),
                        format!("{text:?} is not an address or a block such as \"127.0.0.0/8\""),
                    )),
                    Some(n) if n.prefix == 0 => problems.push(Problem::new(
                        "invalid_value",
                        format!("status.no_token_from[{i}]"),
                        format!("{text:?} is every address: anyone could read the status without a token"),
                    )),
                    Some(_) => {}
                }
                net
            })
            .collect(),
    };
    let listen = listen?;
    let tls = match (raw.cert_file, raw.key_file) {
        (Some(cert), Some(key)) => StatusTls::Files {
            cert: resolve(cert),
            key: resolve(key),
        },
        (Some(_), None) | (None, Some(_)) => {
            problems.push(Problem::new(
                "invalid_value",
                "status.cert_file",
                "cert_file and key_file go together: set both, or neither for a certificate the box makes",
            ));
            StatusTls::Plain
        }
        (None, None) if is_loopback(&listen) || raw.allow_plain_http => StatusTls::Plain,
        (None, None) => StatusTls::Generated,
    };
    if raw.history_hours == 0 {
        problems.push(Problem::new(
            "invalid_value",
            "status.history_hours",
            "must be at least 1 (the page's timeline shows 24 hours)",
        ));
    }
    Some(StatusEndpoint {
        history_hours: raw.history_hours,
        tls,
        no_token_from,
        listen,
        tokens: raw
            .tokens
            .into_iter()
            .map(|t| Token {
                token: t.token,
                node: t.node,
            })
            .collect(),
    })
}

fn check_limits(limits: &Limits, problems: &mut Vec<Problem>) {
    for (field, value) in [
        ("max_concurrent_checks", limits.max_concurrent_checks),
        ("max_concurrent_icmp", limits.max_concurrent_icmp),
        ("max_concurrent_snmp", limits.max_concurrent_snmp),
        ("max_concurrent_http", limits.max_concurrent_http),
        ("max_concurrent_tcp", limits.max_concurrent_tcp),
        ("max_concurrent_dns", limits.max_concurrent_dns),
        ("max_concurrent_plugin", limits.max_concurrent_plugin),
        ("max_concurrent_per_device", limits.max_concurrent_per_device),
    ] {
        if value == 0 {
            problems.push(Problem::new(
                "invalid_value",
                format!("limits.{field}"),
                "must be at least 1",
            ));
        }
    }
    if limits.max_document_bytes < 1024 {
        problems.push(Problem::new(
            "invalid_value",
            "limits.max_document_bytes",
            "must be at least 1024",
        ));
    }
}

/// Whether the status endpoint listens where only this machine reaches it.
pub fn is_loopback(addr: &SocketAddr) -> bool {
    match addr.ip() {
        IpAddr::V4(a) => a.is_loopback(),
        IpAddr::V6(a) => a.is_loopback(),
    }
}
