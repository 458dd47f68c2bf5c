//! A census of address ranges (protocol.md §8): what answers, and what it is. For each
//! address: an ICMP echo; for those that answered (or all, with `snmp_all`) the SNMP system
//! group with each credential in turn, keeping the first that answers, then its interface
//! table; TCP connects to the chosen ports; a suggested category (R18). Every probe waits for
//! the [`Pace`]; nothing outside the ranges is ever sent to; the whole census ends by its
//! deadline or its cancellation with what it found so far.

pub mod category;
pub mod range;
pub mod suggest;
pub mod table;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::document::{Category, Snmp, SnmpVersion};
use crate::probe::icmp::IcmpProber;
use crate::probe::pace::Pace;
use crate::probe::snmp::SnmpProber;
use crate::secret::Secret;
use range::Range;

/// Probes per second unless told otherwise.
pub const DEFAULT_RATE: u32 = 200;
/// Addresses looked at together (each waits for the pace anyway).
const IN_FLIGHT: usize = 128;
/// The system group: sysDescr, sysObjectID, sysContact, sysName, sysLocation.
const SYSTEM: [&str; 5] = [
    "1.3.6.1.2.1.1.1.0",
    "1.3.6.1.2.1.1.2.0",
    "1.3.6.1.2.1.1.4.0",
    "1.3.6.1.2.1.1.5.0",
    "1.3.6.1.2.1.1.6.0",
];
/// ifTable and ifXTable columns read: (column OID, field).
const INTERFACE_COLUMNS: [(&str, Column); 7] = [
    ("1.3.6.1.2.1.2.2.1.2", Column::Descr),
    ("1.3.6.1.2.1.2.2.1.3", Column::Type),
    ("1.3.6.1.2.1.2.2.1.5", Column::Speed),
    ("1.3.6.1.2.1.2.2.1.8", Column::OperStatus),
    ("1.3.6.1.2.1.31.1.1.1.1", Column::Name),
    ("1.3.6.1.2.1.31.1.1.1.15", Column::HighSpeed),
    ("1.3.6.1.2.1.31.1.1.1.18", Column::Alias),
];

#[derive(Debug, Clone, Copy)]
enum Column {
    Descr,
    Type,
    Speed,
    OperStatus,
    Name,
    HighSpeed,
    Alias,
}

/// What to look for, and how fast.
#[derive(Debug, Clone)]
pub struct Options {
    pub ranges: Vec<Range>,
    /// v1/v2c communities, tried in order; only their index is ever shown.
    pub communities: Vec<Secret>,
    /// A v3 user (its `snmp` block), tried after the communities.
    pub v3: Option<Snmp>,
    /// Also try the communities over SNMPv1 when v2c gets no answer.
    pub snmp_v1: bool,
    /// The agents' UDP port.
    pub snmp_port: u16,
    /// SNMP even for addresses that did not answer the echo.
    pub snmp_all: bool,
    pub ports: Vec<u16>,
    pub rate: u32,
    /// How long one probe waits for its answer.
    pub probe_timeout: Duration,
    /// The whole census.
    pub timeout: Duration,
}

/// A census as the central server's `discover` command asks for it (protocol.md §5.6).
#[derive(Debug, Clone)]
pub struct Request {
    pub ranges: Vec<String>,
    pub communities: Vec<Secret>,
    pub v3: Option<Snmp>,
    /// `None`: the command line's default ports.
    pub ports: Option<Vec<u16>>,
    pub rate: Option<u32>,
}

/// Ports tried unless told otherwise: remote access, web, files, printing, SIP.
pub const DEFAULT_PORTS: [u16; 7] = [22, 80, 443, 445, 3389, 9100, 5060];
/// How long a census asked for by the central server may take.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(1800);

impl Request {
    /// The census to run within the box's `[census]` limits: too many addresses is refused,
    /// a faster rate is lowered to `max_rate`.
    pub fn options(&self, limits: crate::settings::CensusLimits) -> Result<Options, range::RangeError> {
        Ok(Options {
            ranges: range::parse_all(&self.ranges, limits.max_addresses)?,
            communities: if self.communities.is_empty() && self.v3.is_none() {
                vec![Secret::new("public")]
            } else {
                self.communities.clone()
            },
            v3: self.v3.clone(),
            snmp_v1: false,
            snmp_port: 161,
            snmp_all: false,
            ports: self.ports.clone().unwrap_or_else(|| DEFAULT_PORTS.to_vec()),
            rate: self.rate.unwrap_or(DEFAULT_RATE).clamp(1, limits.max_rate.max(1)),
            probe_timeout: Duration::from_secs(1),
            timeout: COMMAND_TIMEOUT,
        })
    }
}

/// One address that answered something.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Host {
    pub address: IpAddr,
    pub rtt_ms: Option<f64>,
    pub snmp: Option<SnmpFound>,
    pub open_ports: Vec<u16>,
    pub category: Category,
}

/// The agent found and what it said.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnmpFound {
    /// `1`, `2c` or `3`.
    pub version: String,
    /// The index (from 1) of the community that answered, in the order given; never the community.
    pub community: Option<usize>,
    /// The v3 user that answered.
    pub user: Option<String>,
    pub sys_name: Option<String>,
    pub sys_descr: Option<String>,
    pub sys_object_id: Option<String>,
    pub sys_location: Option<String>,
    pub sys_contact: Option<String>,
    pub interfaces: Vec<Interface>,
}

/// One row of the interface table; `name` (ifName) and `alias` (ifAlias) are the keys to
/// keep: `index` may change at the device's next reboot.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Interface {
    pub index: u32,
    pub name: Option<String>,
    pub descr: Option<String>,
    pub alias: Option<String>,
    #[serde(rename = "type")]
    pub if_type: Option<u32>,
    /// Bits per second (ifHighSpeed × 10⁶ when the agent has it, else ifSpeed).
    pub speed_bps: Option<u64>,
    pub oper_status: Option<String>,
}

/// A census's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub ranges: Vec<String>,
    /// Addresses in the ranges, and those looked at before the end.
    pub addresses: u64,
    pub probed: u64,
    /// `false` when the deadline or a cancellation cut it short.
    pub complete: bool,
    pub duration_ms: u64,
    /// Why no echo could be sent (no ICMP socket), when so: every address was then tried
    /// with SNMP and TCP instead.
    pub icmp_error: Option<String>,
    pub hosts: Vec<Host>,
}

/// Runs the census; `progress` is told how many addresses are done, after each.
pub async fn run(options: &Options, progress: impl Fn(u64) + Send + Sync, cancel: &CancellationToken) -> Report {
    let started = std::time::Instant::now();
    let addresses = range::addresses(&options.ranges);
    let census = Census {
        options,
        icmp: IcmpProber::new(IN_FLIGHT),
        snmp: SnmpProber::new(),
        pace: Pace::per_second(options.rate),
        icmp_error: std::sync::Mutex::new(None),
    };
    let done = AtomicU64::new(0);
    let mut hosts = Vec::new();
    let mut complete = true;
    {
        let looked = futures_util::stream::iter(addresses.iter().copied())
            .map(|address| {
                let census = &census;
                let done = &done;
                let progress = &progress;
                async move {
                    let host = census.look_at(address).await;
                    progress(done.fetch_add(1, Relaxed) + 1);
                    host
                }
            })
            .buffer_unordered(IN_FLIGHT);
        let mut looked = std::pin::pin!(looked);
        let deadline = tokio::time::sleep(options.timeout);
        let mut deadline = std::pin::pin!(deadline);
        loop {
            tokio::select! {
                next = looked.next() => match next {
                    Some(Some(host)) => hosts.push(host),
                    Some(None) => {}
                    None => break,
                },
                _ = &mut deadline => { complete = false; break }
                _ = cancel.cancelled() => { complete = false; break }
            }
        }
    }
    hosts.sort_by_key(|h| h.address);
    let icmp_error = census.icmp_error.lock().map(|e| e.clone()).unwrap_or(None);
    Report {
        ranges: options.ranges.iter().map(|r| r.text.clone()).collect(),
        addresses: addresses.len() as u64,
        probed: done.load(Relaxed),
        complete,
        duration_ms: started.elapsed().as_millis() as u64,
        icmp_error,
        hosts,
    }
}

struct Census<'a> {
    options: &'a Options,
    icmp: IcmpProber,
    snmp: SnmpProber,
    pace: Pace,
    icmp_error: std::sync::Mutex<Option<String>>,
}

impl Census<'_> {
    /// One address: `None` when nothing answered.
    async fn look_at(&self, address: IpAddr) -> Option<Host> {
        // The one guard of the whole census: nothing outside the ranges is ever sent to.
        if !self.options.ranges.iter().any(|r| r.contains(address)) {
            return None;
        }
        let no_icmp = || self.icmp_error.lock().map(|e| e.is_some()).unwrap_or(false);
        let rtt = if no_icmp() {
            None
        } else {
            self.pace.wait().await;
            match self.icmp.echo_once(address, self.options.probe_timeout).await {
                Ok(rtt) => rtt,
                Err(why) => {
                    if let Ok(mut e) = self.icmp_error.lock() {
                        e.get_or_insert(why);
                    }
                    None
                }
            }
        };
        let no_icmp = no_icmp();
        let go_on = rtt.is_some() || self.options.snmp_all || no_icmp;
        let snmp = if go_on { self.snmp_of(address).await } else { None };
        let open_ports = if go_on {
            self.open_ports(address).await
        } else {
            Vec::new()
        };
        if rtt.is_none() && snmp.is_none() && open_ports.is_empty() {
            return None;
        }
        let category = category::suggest(snmp.as_ref(), &open_ports);
        Some(Host {
            address,
            rtt_ms: rtt.map(|d| (d.as_secs_f64() * 1000.0 * 100.0).round() / 100.0),
            snmp,
            open_ports,
            category,
        })
    }

    /// The first credential that answers the system group, with what the agent said.
    async fn snmp_of(&self, address: IpAddr) -> Option<SnmpFound> {
        let target = address.to_string();
        let mut tries: Vec<(Snmp, Option<usize>)> = Vec::new();
        let versions: &[SnmpVersion] = if self.options.snmp_v1 {
            &[SnmpVersion::V2c, SnmpVersion::V1]
        } else {
            &[SnmpVersion::V2c]
        };
        for &version in versions {
            for (i, community) in self.options.communities.iter().enumerate() {
                tries.push((
                    Snmp::with_community(version, self.options.snmp_port, community.clone()),
                    Some(i + 1),
                ));
            }
        }
        if let Some(v3) = &self.options.v3 {
            let mut v3 = v3.clone();
            v3.port = Some(self.options.snmp_port);
            tries.push((v3, None));
        }
        for (snmp, community) in tries {
            let Ok(values) = self
                .snmp
                .census_get(&target, &snmp, &SYSTEM, self.options.probe_timeout, &self.pace)
                .await
            else {
                continue;
            };
            let [descr, object_id, contact, name, location]: [Option<String>; 5] = values.try_into().ok()?;
            let interfaces = self.interfaces(&target, &snmp).await;
            return Some(SnmpFound {
                version: snmp.version.as_str().to_string(),
                community,
                user: snmp.user.clone(),
                sys_name: name,
                sys_descr: descr,
                sys_object_id: object_id,
                sys_location: location,
                sys_contact: contact,
                interfaces,
            });
        }
        None
    }

    /// The interface table, one column walk at a time (GETBULK, or GETNEXT for v1).
    async fn interfaces(&self, target: &str, snmp: &Snmp) -> Vec<Interface> {
        let mut rows: std::collections::BTreeMap<u32, Interface> = std::collections::BTreeMap::new();
        // A column walk may take several requests: each waits for the pace.
        let walk_timeout = self.options.probe_timeout * 10;
        for (column, field) in INTERFACE_COLUMNS {
            let Ok(values) = self
                .snmp
                .census_walk(target, snmp, column, walk_timeout, &self.pace)
                .await
            else {
                continue;
            };
            for (oid, text) in values {
                let Some(index) = oid.rsplit('.').next().and_then(|i| i.parse::<u32>().ok()) else {
                    continue;
                };
                let row = rows.entry(index).or_insert_with(|| Interface {
                    index,
                    ..Interface::default()
                });
                let number = text.trim().parse::<u64>().ok();
                match field {
                    Column::Descr => row.descr = Some(text),
                    Column::Name => row.name = Some(text),
                    Column::Alias => row.alias = Some(text).filter(|a| !a.is_empty()),
                    Column::Type => row.if_type = number.and_then(|n| u32::try_from(n).ok()),
                    Column::Speed => {
                        if row.speed_bps.is_none() {
                            row.speed_bps = number;
                        }
                    }
                    // Mbit/s, and set only when the agent has it: ifSpeed stops at 4.29 Gbit/s.
                    Column::HighSpeed => {
                        if let Some(mbps) = number.filter(|n| *n > 0) {
                            row.speed_bps = Some(mbps * 1_000_000);
                        }
                    }
                    Column::OperStatus => row.oper_status = number.map(oper_status),
                }
            }
        }
        rows.into_values().collect()
    }

    async fn open_ports(&self, address: IpAddr) -> Vec<u16> {
        let mut open = Vec::new();
        for &port in &self.options.ports {
            self.pace.wait().await;
            let connect = tokio::net::TcpStream::connect(SocketAddr::new(address, port));
            if let Ok(Ok(_stream)) = tokio::time::timeout(self.options.probe_timeout, connect).await {
                open.push(port);
            }
        }
        open
    }
}

/// ifOperStatus (RFC 2863) by name.
fn oper_status(n: u64) -> String {
    match n {
        1 => "up",
        2 => "down",
        3 => "testing",
        4 => "unknown",
        5 => "dormant",
        6 => "notPresent",
        7 => "lowerLayerDown",
        _ => return n.to_string(),
    }
    .to_string()
}

/// A `discovery` record holds at most this many hosts…
pub const HOSTS_PER_RECORD: usize = 200;
/// …and about this many bytes of them (a switch's interface table is long).
pub const BYTES_PER_RECORD: usize = 512 << 10;

/// The report's hosts cut into parts of at most [`HOSTS_PER_RECORD`] hosts and about
/// [`BYTES_PER_RECORD`] (a single larger host makes a part of its own); at least one part.
pub fn parts(report: &Report) -> Vec<Vec<Host>> {
    let mut parts = vec![Vec::new()];
    let mut bytes = 0;
    for host in &report.hosts {
        let size = serde_json::to_vec(host).map_or(0, |b| b.len());
        let last = parts.last().map_or(0, Vec::len);
        if last > 0 && (last == HOSTS_PER_RECORD || bytes + size > BYTES_PER_RECORD) {
            parts.push(Vec::new());
            bytes = 0;
        }
        bytes += size;
        if let Some(part) = parts.last_mut() {
            part.push(host.clone());
        }
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(last: u8, interfaces: usize) -> Host {
        Host {
            address: IpAddr::from([192, 0, 2, last]),
            rtt_ms: Some(0.5),
            snmp: Some(SnmpFound {
                version: "2c".into(),
                community: Some(1),
                user: None,
                sys_name: None,
                sys_descr: None,
                sys_object_id: None,
                sys_location: None,
                sys_contact: None,
                interfaces: (0..interfaces)
                    .map(|i| Interface {
                        index: i as u32,
                        descr: Some("GigabitEthernet1/0/1 with a long description".into()),
                        ..Interface::default()
                    })
                    .collect(),
            }),
            open_ports: Vec::new(),
            category: Category::Network,
        }
    }

    fn report(hosts: Vec<Host>) -> Report {
        Report {
            ranges: vec!["192.0.2.0/24".into()],
            addresses: 256,
            probed: 256,
            complete: true,
            duration_ms: 1,
            icmp_error: None,
            hosts,
        }
    }

    #[test]
    fn a_large_census_is_cut_into_parts_by_count_and_by_size() {
        assert_eq!(parts(&report(Vec::new())), vec![Vec::<Host>::new()], "one empty part");
        let many = report((0..=250).map(|i| host(i as u8, 0)).collect());
        let cut = parts(&many);
        assert_eq!(cut.iter().map(Vec::len).collect::<Vec<_>>(), [200, 51]);
        // Switches of 2,000 interfaces: about 200 KB each, two to a part.
        let big = report((0..5).map(|i| host(i, 2_000)).collect());
        let cut = parts(&big);
        assert!(cut.len() >= 3, "{}", cut.len());
        for part in &cut {
            let bytes: usize = part.iter().map(|h| serde_json::to_vec(h).map_or(0, |b| b.len())).sum();
            assert!(part.len() == 1 || bytes <= BYTES_PER_RECORD, "{bytes}");
        }
        assert_eq!(cut.iter().map(Vec::len).sum::<usize>(), 5);
    }
}
