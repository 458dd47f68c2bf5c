//! DNS checks (protocol.md §3 `dns`): one query to the device (or `server`) over UDP, again
//! over TCP when the answer comes back truncated; NXDOMAIN, SERVFAIL, any other error code or
//! an answer without a record of the asked type is critical, and so is an expected value
//! missing from it. hickory builds the query and reads the answer; the exchange is ours.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use super::{CheckResult, Status, Thresholds, ms};
use crate::document::params::{DnsParams, DnsType};

/// A UDP answer without EDNS fits in 512 bytes; a larger datagram is read whole all the same.
const MAX_UDP: usize = 4096;

/// Asks `server` (the device's address unless the params name one) as `p` says, within `timeout`.
pub async fn check(device_address: &str, p: &DnsParams, timeout: Duration) -> CheckResult {
    let started = Instant::now();
    let Some(name) = &p.name else {
        return CheckResult::unknown("no name to ask for");
    };
    let host = p.server.as_deref().unwrap_or(device_address);
    let port = p.port.unwrap_or(53);
    let asked = format!("{} {name}", p.record_type.as_str());
    let deadline = tokio::time::Instant::now() + timeout;
    let result = match tokio::time::timeout(timeout, ask(host, port, name, p.record_type, deadline)).await {
        Ok(Ok((answer, transport))) => judge(&asked, &answer, p, transport),
        Ok(Err(why)) => CheckResult::new(Status::Critical, format!("{asked} at {host}: {why}")),
        Err(_) => CheckResult::new(
            Status::Critical,
            format!("{asked} at {host}: no answer within {:.0} s", timeout.as_secs_f64()),
        ),
    };
    let took = started.elapsed();
    let status = Thresholds {
        warn: p.warn_ms,
        crit: p.crit_ms,
        below: false,
    }
    .judge(ms(took));
    let mut result = result.metric("time_ms", ms(took)).took(took);
    if status != Status::Ok && result.status == Status::Ok {
        result.status = status;
        result.output = format!("{} (slow: {:.1} ms)", result.output, ms(took));
    }
    result
}

/// How the answer came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Udp,
    /// UDP came back truncated.
    Tcp,
}

async fn ask(
    host: &str,
    port: u16,
    name: &str,
    record_type: DnsType,
    deadline: tokio::time::Instant,
) -> Result<(Message, Transport), String> {
    let server = SocketAddr::new(super::resolve(host).await?, port);
    let mut name = Name::from_utf8(name).map_err(|e| format!("{name:?} is not a domain name: {e}"))?;
    // Asked as written, from the root: answers name it that way.
    name.set_fqdn(true);
    let id = fastrand::u16(..);
    let mut query = Message::new(id, MessageType::Query, OpCode::Query);
    query.metadata.recursion_desired = true;
    query.add_query(Query::query(name, record_type_of(record_type)));
    let bytes = query.to_vec().map_err(|e| format!("cannot encode the query: {e}"))?;
    let answer = over_udp(server, &bytes, &query, deadline).await?;
    if !answer.metadata.truncation {
        return Ok((answer, Transport::Udp));
    }
    match tokio::time::timeout_at(deadline, over_tcp(server, &bytes, &query)).await {
        Ok(answer) => Ok((answer?, Transport::Tcp)),
        Err(_) => Err("the UDP answer was truncated and none came over TCP in time".to_string()),
    }
}

/// Sends the query and waits for the datagram that answers it: others (wrong id, another
/// question, unreadable) are skipped, and named if nothing better comes before the deadline.
async fn over_udp(
    server: SocketAddr,
    bytes: &[u8],
    query: &Message,
    deadline: tokio::time::Instant,
) -> Result<Message, String> {
    let local: SocketAddr = match server.ip() {
        IpAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local)
        .await
        .map_err(|e| format!("cannot open a UDP socket: {e}"))?;
    socket
        .connect(server)
        .await
        .map_err(|e| format!("cannot reach {server}: {e}"))?;
    socket
        .send(bytes)
        .await
        .map_err(|e| format!("cannot send the query: {e}"))?;
    let mut buffer = vec![0u8; MAX_UDP];
    let mut skipped: Option<String> = None;
    loop {
        let received = match tokio::time::timeout_at(deadline, socket.recv(&mut buffer)).await {
            Ok(Ok(n)) => n,
            // A refused port shows as an ICMP error on the connected socket.
            Ok(Err(e)) => return Err(skipped.unwrap_or_else(|| format!("{server}: {e}"))),
            Err(_) => return Err(skipped.unwrap_or_else(|| "no answer in time".to_string())),
        };
        match Message::from_vec(&buffer[..received]) {
            Ok(answer) if answers(&answer, query) => return Ok(answer),
            Ok(_) => skipped = Some(format!("{server} sent an answer to another query")),
            Err(e) => skipped = Some(format!("{server} sent an unreadable answer ({e})")),
        }
    }
}

/// The same query over TCP (two bytes of length before each message).
async fn over_tcp(server: SocketAddr, bytes: &[u8], query: &Message) -> Result<Message, String> {
    let mut stream = TcpStream::connect(server)
        .await
        .map_err(|e| format!("the UDP answer was truncated and TCP failed: {e}"))?;
    let length = u16::try_from(bytes.len()).map_err(|_| "the query is too long".to_string())?;
    let mut framed = Vec::with_capacity(bytes.len() + 2);
    framed.extend_from_slice(&length.to_be_bytes());
    framed.extend_from_slice(bytes);
    stream
        .write_all(&framed)
        .await
        .map_err(|e| format!("cannot send the query over TCP: {e}"))?;
    let mut length = [0u8; 2];
    stream
        .read_exact(&mut length)
        .await
        .map_err(|e| format!("no answer over TCP: {e}"))?;
    let mut buffer = vec![0u8; u16::from_be_bytes(length) as usize];
    stream
        .read_exact(&mut buffer)
        .await
        .map_err(|e| format!("the answer over TCP was cut short: {e}"))?;
    match Message::from_vec(&buffer) {
        Ok(answer) if answers(&answer, query) => Ok(answer),
        Ok(_) => Err(format!("{server} answered another query over TCP")),
        Err(e) => Err(format!("{server} sent an unreadable answer over TCP ({e})")),
    }
}

/// Whether `answer` is the answer to `query`: same id, a response, the same question.
fn answers(answer: &Message, query: &Message) -> bool {
    answer.metadata.id == query.metadata.id
        && answer.metadata.message_type == MessageType::Response
        && (answer.queries.is_empty() || answer.queries == query.queries)
}

fn record_type_of(t: DnsType) -> RecordType {
    match t {
        DnsType::A => RecordType::A,
        DnsType::Aaaa => RecordType::AAAA,
        DnsType::Cname => RecordType::CNAME,
        DnsType::Mx => RecordType::MX,
        DnsType::Ns => RecordType::NS,
        DnsType::Txt => RecordType::TXT,
        DnsType::Soa => RecordType::SOA,
        DnsType::Ptr => RecordType::PTR,
    }
}

fn judge(asked: &str, answer: &Message, p: &DnsParams, transport: Transport) -> CheckResult {
    let code = answer.metadata.response_code;
    if code != ResponseCode::NoError {
        let text = match code {
            ResponseCode::NXDomain => "NXDOMAIN (no such name)".to_string(),
            ResponseCode::ServFail => "SERVFAIL (the server failed)".to_string(),
            other => format!("error {} ({other})", u16::from(other)),
        };
        return CheckResult::new(Status::Critical, format!("{asked}: {text}"));
    }
    let wanted = record_type_of(p.record_type);
    let values: Vec<String> = answer
        .answers
        .iter()
        .filter(|r| r.record_type() == wanted)
        .filter_map(|r| value_text(&r.data))
        .collect();
    let via = if transport == Transport::Tcp {
        " (over TCP: truncated)"
    } else {
        ""
    };
    let result = if values.is_empty() {
        CheckResult::new(
            Status::Critical,
            format!("{asked}: no {} record in the answer", p.record_type.as_str()),
        )
    } else if let Some(missing) = p.expect.iter().find(|e| !values.iter().any(|v| matches(v, e))) {
        CheckResult::new(
            Status::Critical,
            format!("{asked}: {missing:?} is not in the answer: {}", shown(&values)),
        )
    } else {
        CheckResult::new(Status::Ok, format!("{asked}: {}{via}", shown(&values)))
    };
    result.metric("answers", values.len() as f64)
}

/// One record's value as the output shows it and `expect` names it: an address, a name
/// without its final dot, `10 mail.example.net`, a TXT record's strings joined.
fn value_text(data: &RData) -> Option<String> {
    let name = |n: &Name| n.to_utf8().trim_end_matches('.').to_ascii_lowercase();
    Some(match data {
        RData::A(a) => a.0.to_string(),
        RData::AAAA(a) => a.0.to_string(),
        RData::CNAME(n) => name(&n.0),
        RData::NS(n) => name(&n.0),
        RData::PTR(n) => name(&n.0),
        RData::MX(mx) => format!("{} {}", mx.preference, name(&mx.exchange)),
        RData::TXT(txt) => txt
            .txt_data
            .iter()
            .map(|s| String::from_utf8_lossy(s))
            .collect::<String>(),
        RData::SOA(soa) => format!(
            "{} {} {} {} {} {} {}",
            name(&soa.mname),
            name(&soa.rname),
            soa.serial,
            soa.refresh,
            soa.retry,
            soa.expire,
            soa.minimum
        ),
        _ => return None,
    })
}

/// An expected value matches a value as written, a name in any case and with or without
/// its final dot, an address in any spelling, and an MX exchange without its preference.
fn matches(value: &str, expected: &str) -> bool {
    let expected = expected.trim().trim_end_matches('.');
    if value.eq_ignore_ascii_case(expected) {
        return true;
    }
    if let (Ok(a), Ok(b)) = (value.parse::<IpAddr>(), expected.parse::<IpAddr>()) {
        return a == b;
    }
    value.split_once(' ').is_some_and(|(preference, exchange)| {
        preference.parse::<u16>().is_ok() && exchange.eq_ignore_ascii_case(expected)
    })
}

/// The values for an output line: the first few, and how many more.
fn shown(values: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut text = values
        .iter()
        .take(SHOWN)
        .map(|v| match v.char_indices().nth(100) {
            Some((cut, _)) => format!("{}…", &v[..cut]),
            None => v.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ");
    if values.len() > SHOWN {
        text.push_str(&format!(" and {} more", values.len() - SHOWN));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_values_match_names_addresses_and_mx_exchanges() {
        assert!(matches("www.example.net", "WWW.Example.net."));
        assert!(matches("2001:db8::10", "2001:0db8:0:0::10"));
        assert!(matches("10 mail.example.net", "mail.example.net"));
        assert!(matches("10 mail.example.net", "10 mail.example.net"));
        assert!(!matches("10 mail.example.net", "20 mail.example.net"));
        assert!(!matches("192.0.2.1", "192.0.2.10"));
        assert!(!matches("v=spf1 -all", "spf1"));
    }
}
