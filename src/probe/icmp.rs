//! ICMP echo checks, IPv4 and IPv6, many targets at once on one socket per family.
//!
//! - One surge-ping client per address family, created on first use, shared by every check.
//! - Unprivileged `SOCK_DGRAM` ICMP when `net.ipv4.ping_group_range` allows it, else a RAW
//!   socket (needs `CAP_NET_RAW`), else a result that says both ways to fix it.
//! - DGRAM sockets rewrite the echo identifier, so replies are matched on host and sequence
//!   only: every host has its own sequence counter, so that two checks of the same host never
//!   send the same sequence at once.
//! - A burst of replies overflows the default receive buffer: the socket's is raised to
//!   4 MiB, and the packets in flight are bounded by a semaphore.
//! - On a RAW socket the kernel hands us every ICMP packet, our own echo requests included
//!   (on loopback, one per ping): an ICMP filter keeps only echo replies and errors.
//! - RTT is timed around the whole exchange: surge-ping times from after `send_to` returns,
//!   which reads 0 on loopback where the reply beats the return.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use surge_ping::{Client, Config, ICMP, IcmpPacket, PingIdentifier, PingSequence, SurgeError};
use tokio::sync::{OnceCell, Semaphore};

use super::{CheckResult, Status, Thresholds};
use crate::document::params::{IcmpParams, MAX_PACKETS};

const DEFAULT_PACKETS: u32 = 3;
const DEFAULT_INTERVAL_MS: u32 = 250;
/// How long one echo request waits for its reply, at most (and never past the check's timeout).
const PACKET_TIMEOUT: Duration = Duration::from_secs(2);
const RECEIVE_BUFFER: usize = 4 * 1024 * 1024;
/// 56 data bytes, as ping and fping send.
const PAYLOAD: [u8; 56] = [0; 56];

pub struct IcmpProber {
    v4: OnceCell<Result<Client, String>>,
    v6: OnceCell<Result<Client, String>>,
    sequences: Mutex<HashMap<IpAddr, u16>>,
    in_flight: Arc<Semaphore>,
    ident: u16,
}

impl IcmpProber {
    /// Forgets the sequence numbers of addresses no service pings any more.
    pub fn retain(&self, addresses: &std::collections::HashSet<IpAddr>) {
        self.sequences
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|ip, _| addresses.contains(ip));
    }

    /// At most `max_in_flight` echo requests wait for their reply at once.
    pub fn new(max_in_flight: usize) -> IcmpProber {
        IcmpProber {
            v4: OnceCell::new(),
            v6: OnceCell::new(),
            sequences: Mutex::new(HashMap::new()),
            in_flight: Arc::new(Semaphore::new(max_in_flight.max(1))),
            ident: (std::process::id() & 0xffff) as u16,
        }
    }

    pub async fn check(&self, target: IpAddr, params: &IcmpParams, timeout: Duration) -> CheckResult {
        let start = Instant::now();
        let client = match self.client(target).await {
            Ok(c) => c,
            Err(message) => return CheckResult::unknown(message).took(start.elapsed()),
        };
        let packets = params.packets.unwrap_or(DEFAULT_PACKETS).clamp(1, MAX_PACKETS);
        let interval = Duration::from_millis(u64::from(params.interval_ms.unwrap_or(DEFAULT_INTERVAL_MS)));
        let wait = PACKET_TIMEOUT.min(timeout);
        let sequences: Vec<u16> = {
            let mut map = self.sequences.lock().unwrap_or_else(|e| e.into_inner());
            let next = map.entry(target).or_insert(0);
            (0..packets)
                .map(|_| {
                    *next = next.wrapping_add(1);
                    *next
                })
                .collect()
        };
        let echoes = sequences.into_iter().enumerate().map(|(i, seq)| {
            let client = client.clone();
            let send_at = tokio::time::Instant::from_std(start) + interval * i as u32;
            async move {
                if i > 0 {
                    tokio::time::sleep_until(send_at).await;
                }
                self.echo(&client, target, seq, wait).await
            }
        });
        let outcomes = futures_util::future::join_all(echoes).await;
        judge(target, &outcomes, params).took(start.elapsed())
    }

    /// One echo request for a census: its round trip, `None` without a reply, or why no
    /// request can be sent at all (no ICMP socket).
    pub async fn echo_once(&self, target: IpAddr, wait: Duration) -> Result<Option<Duration>, String> {
        let client = self.client(target).await?;
        let seq = {
            let mut map = self.sequences.lock().unwrap_or_else(|e| e.into_inner());
            let next = map.entry(target).or_insert(0);
            *next = next.wrapping_add(1);
            *next
        };
        Ok(match self.echo(&client, target, seq, wait).await {
            Echo::Reply(rtt) => Some(rtt),
            _ => None,
        })
    }

    async fn echo(&self, client: &Client, target: IpAddr, seq: u16, wait: Duration) -> Echo {
        let Ok(_permit) = self.in_flight.acquire().await else {
            return Echo::Failed("the prober is shutting down".into());
        };
        let mut pinger = client.pinger(target, PingIdentifier(self.ident)).await;
        pinger.timeout(wait);
        let sent = Instant::now();
        match pinger.ping(PingSequence(seq), &PAYLOAD).await {
            Ok((packet, _)) if is_echo_reply(&packet) => Echo::Reply(sent.elapsed()),
            Ok((packet, _)) => Echo::Failed(describe_error_reply(&packet)),
            Err(SurgeError::Timeout { .. }) => Echo::Lost,
            Err(e) => Echo::Failed(e.to_string()),
        }
    }

    async fn client(&self, target: IpAddr) -> Result<Client, String> {
        let (cell, kind) = match target {
            IpAddr::V4(_) => (&self.v4, ICMP::V4),
            IpAddr::V6(_) => (&self.v6, ICMP::V6),
        };
        cell.get_or_init(|| async move { open(kind) }).await.clone()
    }
}

fn open(kind: ICMP) -> Result<Client, String> {
    let config = Config::builder()
        .kind(kind)
        .sock_type_hint(socket2::Type::DGRAM)
        .build();
    let family = if kind == ICMP::V4 { "IPv4" } else { "IPv6" };
    let client = Client::new(&config).map_err(|e| {
        let version = if kind == ICMP::V4 { "ipv4" } else { "ipv6" };
        if e.kind() == std::io::ErrorKind::PermissionDenied {
            format!(
                "cannot open an {family} ICMP socket: permission denied. Either allow unprivileged ping \
                 (sysctl net.{version}.ping_group_range=\"0 2147483647\") or grant CAP_NET_RAW \
                 (AmbientCapabilities=CAP_NET_RAW in the systemd unit, or setcap cap_net_raw+ep on the binary)"
            )
        } else {
            format!("cannot open an {family} ICMP socket: {e}")
        }
    })?;
    if let Err(e) = tune_socket(&client, kind) {
        tracing::warn!(error = %e, family, "cannot tune the ICMP socket; bursts of replies may cost more or be lost");
    }
    Ok(client)
}

/// ICMP types a RAW socket keeps: echo reply, destination unreachable, time exceeded.
const KEPT_V4: [u32; 3] = [0, 3, 11];
const KEPT_V6: [u32; 3] = [129, 1, 3];

/// Raises the receive buffer and, on a RAW socket, filters out what is not for us.
#[allow(unsafe_code)]
fn tune_socket(client: &Client, kind: ICMP) -> std::io::Result<()> {
    use std::os::fd::{AsRawFd, BorrowedFd};
    let socket = client.get_socket();
    // SAFETY: the descriptor belongs to `socket`, a handle on the client's socket that we
    // hold until the end of this function, so it stays open while it is borrowed.
    let fd = unsafe { BorrowedFd::borrow_raw(socket.get_native_sock()) };
    socket2::SockRef::from(&fd).set_recv_buffer_size(RECEIVE_BUFFER)?;
    if socket.get_type() != socket2::Type::RAW {
        return Ok(()); // a DGRAM ICMP socket only ever receives its own replies
    }
    // A set bit blocks that ICMP type (ICMP_FILTER in raw(7), ICMP6_FILTER in RFC 3542).
    let (level, name, filter): (libc::c_int, libc::c_int, [u32; 8]) = match kind {
        ICMP::V4 => {
            let mut blocked = u32::MAX;
            for t in KEPT_V4 {
                blocked &= !(1 << t);
            }
            (libc::SOL_RAW, 1, [blocked, 0, 0, 0, 0, 0, 0, 0])
        }
        ICMP::V6 => {
            let mut blocked = [u32::MAX; 8];
            for t in KEPT_V6 {
                blocked[(t >> 5) as usize] &= !(1 << (t & 31));
            }
            (libc::IPPROTO_ICMPV6, 1, blocked)
        }
    };
    let len = match kind {
        ICMP::V4 => std::mem::size_of::<u32>(),
        ICMP::V6 => std::mem::size_of::<[u32; 8]>(),
    };
    // SAFETY: `fd` is open (see above); `filter` outlives the call and `len` is at most its size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            filter.as_ptr().cast(),
            len as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn is_echo_reply(packet: &IcmpPacket) -> bool {
    match packet {
        IcmpPacket::V4(p) => p.get_icmp_type().0 == 0,
        IcmpPacket::V6(p) => p.get_icmpv6_type().0 == 129,
    }
}

fn describe_error_reply(packet: &IcmpPacket) -> String {
    match packet {
        IcmpPacket::V4(p) => match p.get_icmp_type().0 {
            3 => format!(
                "destination unreachable (code {}) from {}",
                p.get_icmp_code().0,
                p.get_source()
            ),
            11 => format!("time exceeded from {}", p.get_source()),
            t => format!("ICMP type {t} from {}", p.get_source()),
        },
        IcmpPacket::V6(p) => match p.get_icmpv6_type().0 {
            1 => format!(
                "destination unreachable (code {}) from {}",
                p.get_icmpv6_code().0,
                p.get_source()
            ),
            3 => format!("time exceeded from {}", p.get_source()),
            t => format!("ICMPv6 type {t} from {}", p.get_source()),
        },
    }
}

#[derive(Debug, Clone)]
enum Echo {
    Reply(Duration),
    Lost,
    Failed(String),
}

fn judge(target: IpAddr, outcomes: &[Echo], params: &IcmpParams) -> CheckResult {
    let sent = outcomes.len();
    let rtts: Vec<f64> = outcomes
        .iter()
        .filter_map(|o| match o {
            Echo::Reply(d) => Some(d.as_secs_f64() * 1e3),
            _ => None,
        })
        .collect();
    let received = rtts.len();
    let loss = 100.0 * (sent - received) as f64 / sent as f64;
    let failure = outcomes.iter().find_map(|o| match o {
        Echo::Failed(why) => Some(why.clone()),
        _ => None,
    });
    let mut result = if received == 0 {
        let why = failure.map_or_else(|| "no reply".to_string(), |f| format!("no reply: {f}"));
        CheckResult::new(Status::Critical, format!("{target}: {why} (0 of {sent})"))
    } else {
        let (min, max) = rtts
            .iter()
            .fold((f64::MAX, 0.0f64), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
        let avg = rtts.iter().sum::<f64>() / received as f64;
        let rtt = Thresholds {
            warn: params.warn_rtt_ms,
            crit: params.crit_rtt_ms,
            below: false,
        }
        .judge(avg);
        let lost = Thresholds {
            warn: params.warn_loss_pct,
            crit: params.crit_loss_pct,
            below: false,
        }
        .judge(loss);
        let status = rtt.worst(lost);
        CheckResult::new(
            status,
            // Short on purpose: it is stored with every result; the figures are in the metrics.
            if received == sent {
                format!("{received}/{sent} replies, rtt {avg:.3} ms")
            } else {
                format!("{received}/{sent} replies ({loss:.0}% loss), rtt {avg:.3} ms")
            },
        )
        .metric("rtt_min_ms", round3(min))
        .metric("rtt_avg_ms", round3(avg))
        .metric("rtt_max_ms", round3(max))
    };
    result = result
        .metric("loss_pct", (loss * 100.0).round() / 100.0)
        .metric("packets_sent", sent as f64)
        .metric("packets_received", received as f64);
    result
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}
