//! The DNS probe (protocol.md §3 `dns`) against Debian's `dnsmasq` on loopback (A, AAAA, CNAME,
//! MX, TXT, NXDOMAIN, an answer truncated over UDP and read over TCP) and against servers of
//! the test's own that fail, lie or never answer.

#[path = "common/peers.rs"]
mod peers;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, ResponseCode};
use serde_json::json;

use peers::{Dnsmasq, big_txt};
use snbox::document::params::{self, DnsParams};
use snbox::probe::{CheckResult, Status, dns};

async fn ask(port: u16, v: serde_json::Value) -> CheckResult {
    let mut v = v;
    v["port"] = json!(port);
    let p: DnsParams = params::parse(v).expect("valid params");
    dns::check("127.0.0.1", &p, Duration::from_secs(2)).await
}

#[tokio::test]
#[ignore = "needs dnsmasq (Debian dnsmasq-base)"]
async fn dns_reads_a_aaaa_cname_mx_and_txt_answers_from_dnsmasq() {
    let server = Dnsmasq::start();
    let r = ask(
        server.port,
        json!({ "name": "www.snbox.test", "expect": ["192.0.2.10"] }),
    )
    .await;
    assert_eq!(r.status, Status::Ok, "{r:?}");
    assert_eq!(r.metrics["answers"], 1.0);
    assert!(r.output.contains("192.0.2.10"), "{r:?}");
    assert!(r.metrics.contains_key("time_ms"));
    let r = ask(
        server.port,
        json!({ "name": "www.snbox.test", "record_type": "AAAA", "expect": ["2001:db8:0::10"] }),
    )
    .await;
    assert_eq!(r.status, Status::Ok, "{r:?}");
    let r = ask(
        server.port,
        json!({ "name": "alias.snbox.test", "record_type": "CNAME", "expect": ["WWW.snbox.test."] }),
    )
    .await;
    assert_eq!(r.status, Status::Ok, "{r:?}");
    // An alias asked for A: the address at the end of the chain.
    let r = ask(
        server.port,
        json!({ "name": "alias.snbox.test", "expect": ["192.0.2.10"] }),
    )
    .await;
    assert_eq!(r.status, Status::Ok, "{r:?}");
    let r = ask(
        server.port,
        json!({ "name": "snbox.test", "record_type": "MX", "expect": ["mail.snbox.test"] }),
    )
    .await;
    assert_eq!(r.status, Status::Ok, "{r:?}");
    assert!(r.output.contains("10 mail.snbox.test"), "{r:?}");
    let r = ask(
        server.port,
        json!({ "name": "txt.snbox.test", "record_type": "TXT", "expect": ["v=spf1 -all"] }),
    )
    .await;
    assert_eq!(r.status, Status::Ok, "{r:?}");
}

#[tokio::test]
#[ignore = "needs dnsmasq (Debian dnsmasq-base)"]
async fn dns_nxdomain_a_missing_expected_value_and_no_record_of_the_type_are_critical() {
    let server = Dnsmasq::start();
    let r = ask(server.port, json!({ "name": "nothing.snbox.test" })).await;
    assert_eq!(r.status, Status::Critical, "{r:?}");
    assert!(r.output.contains("NXDOMAIN"), "{r:?}");
    let r = ask(
        server.port,
        json!({ "name": "www2.snbox.test", "expect": ["192.0.2.10"] }),
    )
    .await;
    assert_eq!(r.status, Status::Critical, "{r:?}");
    assert!(
        r.output.contains("\"192.0.2.10\" is not in the answer: 192.0.2.11"),
        "{r:?}"
    );
    let r = ask(server.port, json!({ "name": "txt.snbox.test", "record_type": "A" })).await;
    assert_eq!(r.status, Status::Critical, "{r:?}");
    assert!(r.output.contains("no A record"), "{r:?}");
    // The time thresholds: any answer is slower than 0 ms.
    let r = ask(server.port, json!({ "name": "www.snbox.test", "warn_ms": 0.0 })).await;
    assert_eq!(r.status, Status::Warning, "{r:?}");
}

#[tokio::test]
#[ignore = "needs dnsmasq (Debian dnsmasq-base)"]
async fn dns_a_truncated_udp_answer_is_asked_again_over_tcp() {
    let server = Dnsmasq::start();
    let r = ask(
        server.port,
        json!({ "name": "big.snbox.test", "record_type": "TXT", "expect": [big_txt()] }),
    )
    .await;
    assert_eq!(r.status, Status::Ok, "{r:?}");
    assert!(r.output.contains("over TCP"), "{r:?}");
}

/// A UDP server of the test's own: `reply` makes the datagrams sent back for each query.
async fn own_server(reply: fn(&Message, &[u8]) -> Vec<Vec<u8>>) -> u16 {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let port = socket.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let mut buffer = vec![0u8; 1500];
        while let Ok((n, from)) = socket.recv_from(&mut buffer).await {
            let Ok(query) = Message::from_vec(&buffer[..n]) else {
                continue;
            };
            for datagram in reply(&query, &buffer[..n]) {
                let _ = socket.send_to(&datagram, from).await;
            }
        }
    });
    port
}

fn answer(query: &Message, code: ResponseCode) -> Vec<u8> {
    let mut m = Message::new(query.metadata.id, MessageType::Response, query.metadata.op_code);
    m.metadata.response_code = code;
    m.queries = query.queries.clone();
    m.to_vec().expect("encodes")
}

#[tokio::test]
async fn dns_servfail_and_refused_are_critical() {
    let port = own_server(|q, _| vec![answer(q, ResponseCode::ServFail)]).await;
    let r = ask(port, json!({ "name": "www.snbox.test" })).await;
    assert_eq!(r.status, Status::Critical, "{r:?}");
    assert!(r.output.contains("SERVFAIL"), "{r:?}");
    let port = own_server(|q, _| vec![answer(q, ResponseCode::Refused)]).await;
    let r = ask(port, json!({ "name": "www.snbox.test" })).await;
    assert_eq!(r.status, Status::Critical, "{r:?}");
    assert!(r.output.contains("error 5"), "{r:?}");
}

#[tokio::test]
async fn dns_a_server_that_never_answers_is_critical_at_the_timeout() {
    let port = own_server(|_, _| vec![]).await;
    let started = Instant::now();
    let r = ask(port, json!({ "name": "www.snbox.test" })).await;
    let took = started.elapsed();
    assert_eq!(r.status, Status::Critical, "{r:?}");
    assert!(r.output.contains("no answer"), "{r:?}");
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

#[tokio::test]
async fn dns_garbage_and_answers_to_other_queries_are_skipped_and_named() {
    // Garbage, then the right answer: the right answer is taken.
    let port = own_server(|q, _| {
        let mut wrong_id = Message::from_vec(&answer(q, ResponseCode::NoError)).expect("decodes");
        wrong_id.metadata.id = q.metadata.id.wrapping_add(1);
        vec![
            vec![0xff; 7],
            wrong_id.to_vec().expect("encodes"),
            answer(q, ResponseCode::NXDomain),
        ]
    })
    .await;
    let r = ask(port, json!({ "name": "www.snbox.test" })).await;
    assert!(r.output.contains("NXDOMAIN"), "{r:?}");
    // Only garbage: critical at the timeout, and the output says what came.
    let port = own_server(|_, query| vec![query[..5].to_vec()]).await;
    let r = ask(port, json!({ "name": "www.snbox.test" })).await;
    assert_eq!(r.status, Status::Critical, "{r:?}");
    assert!(r.output.contains("unreadable answer"), "{r:?}");
}

#[tokio::test]
async fn dns_a_refused_port_is_critical_at_once() {
    let port = SocketAddr::from(([127, 0, 0, 1], peers::free_udp_port())).port();
    let started = Instant::now();
    let r = ask(port, json!({ "name": "www.snbox.test" })).await;
    assert_eq!(r.status, Status::Critical, "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(1), "{r:?}");
}

#[test]
fn dns_params_are_checked_when_the_document_is_read() {
    for (v, field) in [
        (json!({ "name": "www..example" }), "name"),
        (json!({ "name": "a", "record_type": "SRV" }), "record_type"),
        (json!({ "name": "a", "port": 0 }), "port"),
        (json!({ "name": "a", "warn_ms": 10.0, "crit_ms": 5.0 }), "warn_ms"),
        (json!({ "name": "a", "server": " " }), "server"),
    ] {
        let e = params::parse::<DnsParams>(v.clone()).expect_err("refused");
        assert!(e.0.starts_with(field), "{v}: {e:?}");
    }
}
