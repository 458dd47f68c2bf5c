//! Hostile input (issue 7): fuzz targets driven by proptest's generators, each run for a fixed
//! time (`SNBOX_FUZZ_SECONDS`, 3 s in CI) rather than a fixed count, printing how many inputs
//! it tried. Every input must give a clear error or an `unknown`/`critical` result, in bounded
//! time, never a panic or a hang; the failing input is printed.
//!
//! Targets: the monitoring document's parser and validator with the explain report (text and
//! JSON) of what comes out; SNMP answers (random bytes, and well-formed answers carrying random
//! values, then mutated) through snmp2's decoding and our value handling; HTTP answers (random
//! bytes and mutated responses) through the HTTP probe; the status endpoint's request handling,
//! on the real daemon.

#[path = "common/snbox.rs"]
mod snbox_daemon;

#[path = "common/ber.rs"]
mod ber;

use ber::tlv;
use std::io::{Read, Write};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use serde_json::{Value, json};

use snbox::document::Snmp;
use snbox::document::params::{HttpParams, SnmpParams};
use snbox::explain::{self, Report};
use snbox::input::Format;
use snbox::probe::Status;
use snbox::probe::http::HttpProber;
use snbox::probe::snmp::SnmpProber;

fn budget() -> Duration {
    let seconds = std::env::var("SNBOX_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(3.0);
    Duration::from_secs_f64(seconds)
}

/// Runs `target` on values of `strategy` until the time budget is spent; returns how many.
fn fuzz<S: Strategy>(name: &str, strategy: S, mut target: impl FnMut(&S::Value)) -> u64
where
    S::Value: std::fmt::Debug,
{
    let mut runner = TestRunner::default();
    let deadline = Instant::now() + budget();
    let mut runs = 0u64;
    while Instant::now() < deadline {
        let value = strategy.new_tree(&mut runner).expect("a value").current();
        if std::panic::catch_unwind(AssertUnwindSafe(|| target(&value))).is_err() {
            panic!("{name}: input #{runs} made it panic: {value:?}");
        }
        runs += 1;
    }
    eprintln!("{name}: {runs} inputs in {:?}, no panic, no hang", budget());
    runs
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

// ---------------------------------------------------------------- the monitoring document

fn example() -> Value {
    serde_json::from_str(&std::fs::read_to_string("config/standalone.json").expect("example")).expect("JSON")
}

/// A JSON value of any shape, with the strings the document's references use.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|n| json!(n)),
        Just(json!(u64::MAX)),
        Just(json!(-1)),
        Just(json!(0)),
        "[a-z0-9@_-]{0,12}".prop_map(Value::String),
        prop::sample::select(vec![
            "acme",
            "24x7",
            "ping",
            "ping@acme",
            "partner",
            "company",
            "site",
            "box",
            "mon",
            "25:00",
            "00:00",
            "24:00",
            "Europe/Paris",
            "Mars/Olympus",
            "control",
            "availability",
            "2c",
            "3",
            // R13–R16: maintenances' references and windows.
            "acme-labs",
            "labs-backups",
            "labs-server",
            "labs-server-ping",
            "m-labs-backups",
            "2026-12-12T22:00:00+01:00",
            "2026-12-12T22:00:00",
        ])
        .prop_map(|s| json!(s)),
        ".{0,40}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,10}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[derive(Debug, Clone)]
enum Edit {
    /// Replace the value at this path (indices taken modulo the sizes met) by this one.
    Set(Vec<usize>, Value),
    Delete(Vec<usize>),
    /// Append a copy of an array's element (duplicate ids, references to it).
    Duplicate(Vec<usize>),
}

fn edit() -> impl Strategy<Value = Edit> {
    let path = prop::collection::vec(any::<usize>(), 1..5);
    prop_oneof![
        3 => (path.clone(), any_json()).prop_map(|(p, v)| Edit::Set(p, v)),
        1 => path.clone().prop_map(Edit::Delete),
        1 => path.prop_map(Edit::Duplicate),
    ]
}

/// Walks `path` into `doc`, choosing among the keys or elements met by index modulo count,
/// and applies the edit where the walk ends.
fn apply(doc: &mut Value, edit: &Edit) {
    let path = match edit {
        Edit::Set(p, _) | Edit::Delete(p) | Edit::Duplicate(p) => p.as_slice(),
    };
    apply_at(doc, path, edit);
}

fn apply_at(at: &mut Value, path: &[usize], edit: &Edit) {
    let (i, rest) = match path {
        [i] => (*i, None),
        [i, rest @ ..] => (*i, Some(rest)),
        [] => return,
    };
    match at {
        Value::Object(m) if !m.is_empty() => {
            let key = m.keys().nth(i % m.len()).cloned().unwrap_or_default();
            match (rest, edit) {
                (Some(rest), _) if m.get(&key).is_some_and(|v| v.is_object() || v.is_array()) => {
                    if let Some(next) = m.get_mut(&key) {
                        apply_at(next, rest, edit);
                    }
                }
                (_, Edit::Set(_, v)) => {
                    m.insert(key, v.clone());
                }
                (_, Edit::Delete(_)) => {
                    m.remove(&key);
                }
                (_, Edit::Duplicate(_)) => {}
            }
        }
        Value::Array(a) if !a.is_empty() => {
            let n = a.len();
            match (rest, edit) {
                (Some(rest), _) if a[i % n].is_object() || a[i % n].is_array() => apply_at(&mut a[i % n], rest, edit),
                (_, Edit::Set(_, v)) => a[i % n] = v.clone(),
                (_, Edit::Delete(_)) => {
                    a.remove(i % n);
                }
                (_, Edit::Duplicate(_)) => a.push(a[i % n].clone()),
            }
        }
        _ => {}
    }
}

/// Plans `text` and explains the outcome, as `snbox config explain` does; true if planned.
fn plan_and_explain(text: &str, format: Format) -> bool {
    let zone = jiff::tz::TimeZone::get("Europe/Paris").expect("zone");
    match snbox::planning::plan_from_str(text, format, &zone) {
        Ok(plan) => {
            let report = Report::of_plan(&plan, None);
            assert!(!explain::to_text(&report).is_empty());
            assert!(serde_json::from_str::<Value>(&report.to_json()).is_ok());
            true
        }
        Err(rejected) => {
            assert!(!rejected.problems.0.is_empty(), "rejected without a reason");
            for problem in &rejected.problems.0 {
                assert!(!problem.to_string().trim().is_empty(), "an empty error");
            }
            let version = rejected.document.as_ref().map(|d| d.version.as_str());
            let report = Report::of_errors(version, None, &rejected.problems);
            assert!(!explain::to_text(&report).is_empty());
            assert!(serde_json::from_str::<Value>(&report.to_json()).is_ok());
            false
        }
    }
}

#[test]
fn fuzz_the_document_parser_validator_and_explain_with_edited_documents() {
    let base = example();
    let mut planned = 0u64;
    let runs = fuzz("edited documents", prop::collection::vec(edit(), 1..6), |edits| {
        let mut doc = base.clone();
        for e in edits {
            apply(&mut doc, e);
        }
        planned += u64::from(plan_and_explain(&doc.to_string(), Format::Json));
    });
    eprintln!("edited documents: {planned} of {runs} planned, the rest refused with errors");
    assert!(planned > 0 && planned < runs, "both outcomes must occur");
}

#[test]
fn fuzz_the_document_parser_with_random_and_cut_text() {
    let text = example().to_string();
    let strategy = prop_oneof![
        ".{0,300}".prop_map(|s| (s, Format::Json)),
        ".{0,300}".prop_map(|s| (s, Format::Toml)),
        (0..text.len(), 0..text.len()).prop_map(move |(a, b)| {
            // A cut anywhere (a char boundary at or before it), or a slice.
            let floor = |i: usize| (0..=i).rev().find(|&j| text.is_char_boundary(j)).unwrap_or(0);
            let (a, b) = (floor(a.min(b)), floor(a.max(b)));
            (format!("{}{}", &text[..a], &text[b..]), Format::Json)
        }),
        Just(("[".repeat(100_000), Format::Json)),
        Just(("{\"version\":".repeat(20_000), Format::Json)),
        Just(("a = [".repeat(20_000), Format::Toml)),
    ];
    fuzz("random and cut documents", strategy, |(text, format)| {
        plan_and_explain(text, *format);
    });
}

// ---------------------------------------------------------------- SNMP answers

/// Reads a BER length at `at`; returns (length, where the content starts).
fn ber_len(b: &[u8], at: usize) -> Option<(usize, usize)> {
    let first = *b.get(at)? as usize;
    if first < 0x80 {
        return Some((first, at + 1));
    }
    let n = first & 0x7f;
    let mut len = 0usize;
    for i in 0..n {
        len = (len << 8) | *b.get(at + 1 + i)? as usize;
    }
    Some((len, at + 1 + n))
}

/// The version, community and request id of a v1/v2c request.
fn request_ids(req: &[u8]) -> Option<(Vec<u8>, Vec<u8>, Vec<u8>)> {
    let (_, body) = ber_len(req, 1)?;
    let (vlen, vstart) = ber_len(req, body + 1)?;
    let version = req.get(vstart..vstart + vlen)?.to_vec();
    let at = vstart + vlen;
    let (clen, cstart) = ber_len(req, at + 1)?;
    let community = req.get(cstart..cstart + clen)?.to_vec();
    let pdu = cstart + clen;
    let (_, pdu_body) = ber_len(req, pdu + 1)?;
    let (rlen, rstart) = ber_len(req, pdu_body + 1)?;
    Some((version, community, req.get(rstart..rstart + rlen)?.to_vec()))
}

#[derive(Debug, Clone)]
struct SnmpAnswer {
    error_status: u8,
    /// (tag, content) of each varbind's value; the OIDs are the sysUpTime and its neighbours.
    values: Vec<(u8, Vec<u8>)>,
    /// Byte flips (position, xor) and a cut applied to the encoded answer.
    flips: Vec<(usize, u8)>,
    cut: Option<usize>,
    /// Random bytes instead of an answer.
    garbage: Option<Vec<u8>>,
}

fn snmp_answer() -> impl Strategy<Value = SnmpAnswer> {
    let value = prop_oneof![
        (Just(0x02u8), prop::collection::vec(any::<u8>(), 0..10)),
        (Just(0x04u8), prop::collection::vec(any::<u8>(), 0..300)),
        Just((0x05u8, vec![])),
        (Just(0x06u8), prop::collection::vec(any::<u8>(), 0..12)),
        (
            prop::sample::select(vec![0x40u8, 0x41, 0x42, 0x43, 0x44, 0x46, 0x47]),
            prop::collection::vec(any::<u8>(), 0..10)
        ),
        prop::sample::select(vec![0x80u8, 0x81, 0x82]).prop_map(|t| (t, vec![])),
        (any::<u8>(), prop::collection::vec(any::<u8>(), 0..20)),
    ];
    (
        prop_oneof![8 => Just(0u8), 1 => 0u8..20],
        prop::collection::vec(value, 0..4),
        prop::collection::vec((any::<usize>(), 1u8..=255), 0..3),
        prop::option::weighted(0.2, any::<usize>()),
        prop::option::weighted(0.15, prop::collection::vec(any::<u8>(), 0..200)),
    )
        .prop_map(|(error_status, values, flips, cut, garbage)| SnmpAnswer {
            error_status,
            values,
            flips,
            cut,
            garbage,
        })
}

fn encode(answer: &SnmpAnswer, req: &[u8]) -> Vec<u8> {
    if let Some(g) = &answer.garbage {
        return g.clone();
    }
    let Some((version, community, request_id)) = request_ids(req) else {
        return vec![];
    };
    let mut varbinds = Vec::new();
    for (i, (tag, content)) in answer.values.iter().enumerate() {
        let oid = [0x2b, 6, 1, 2, 1, 1, 3, i as u8];
        let mut vb = tlv(0x06, &oid);
        vb.extend(tlv(*tag, content));
        varbinds.extend(tlv(0x30, &vb));
    }
    let mut pdu = tlv(0x02, &request_id);
    pdu.extend(tlv(0x02, &[answer.error_status]));
    pdu.extend(tlv(0x02, &[u8::from(answer.error_status > 0)]));
    pdu.extend(tlv(0x30, &varbinds));
    let mut message = tlv(0x02, &version);
    message.extend(tlv(0x04, &community));
    message.extend(tlv(0xa2, &pdu));
    let mut bytes = tlv(0x30, &message);
    for (at, xor) in &answer.flips {
        let n = bytes.len();
        bytes[at % n] ^= xor;
    }
    if let Some(cut) = answer.cut {
        bytes.truncate(cut % (bytes.len() + 1));
    }
    bytes
}

#[test]
fn fuzz_snmp_answers_through_snmp2_and_our_value_handling() {
    let rt = runtime();
    let current: Arc<Mutex<Option<SnmpAnswer>>> = Arc::new(Mutex::new(None));
    let agent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = agent.local_addr().expect("addr").port();
    agent
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let answering = {
        let (current, stop) = (current.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok((n, from)) = agent.recv_from(&mut buf) else {
                    continue;
                };
                let answer = current.lock().ok().and_then(|c| c.clone());
                if let Some(answer) = answer {
                    let _ = agent.send_to(&encode(&answer, &buf[..n]), from);
                }
            }
        })
    };
    let prober = SnmpProber::new();
    let oids = ["1.3.6.1.2.1.1.3.0", "1.3.6.1.2.1.1.3.1", "1.3.6.1.2.1.1.3.2"];
    let mut statuses = std::collections::BTreeMap::new();
    fuzz(
        "SNMP answers",
        (snmp_answer(), 0u8..5, any::<bool>()),
        |(answer, shape, v1)| {
            *current.lock().expect("lock") = Some(answer.clone());
            let snmp: Snmp = serde_json::from_value(
                json!({ "version": if *v1 { "1" } else { "2c" }, "port": port, "community": "c" }),
            )
            .expect("snmp");
            let params: SnmpParams = snbox::document::params::parse(match shape {
                0 => json!({ "oid": oids[0] }),
                1 => json!({ "oids": oids }),
                2 => json!({ "walk": "1.3.6.1.2.1.1.3" }),
                3 => json!({ "oid": oids[0], "warn": 10.0, "crit": 20.0, "as_rate": true }),
                _ => json!({ "oid": oids[0], "expect": "x" }),
            })
            .expect("params");
            let result = rt.block_on(async {
                tokio::time::timeout(
                    Duration::from_secs(3),
                    prober.check("fuzz", "127.0.0.1", &snmp, &params, Duration::from_millis(300)),
                )
                .await
            });
            let result = result.expect("the check ended in bounded time");
            assert!(!result.output.trim().is_empty(), "a result without output");
            *statuses.entry(result.status.as_str()).or_insert(0u64) += 1;
        },
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = answering.join();
    eprintln!("SNMP results by status: {statuses:?}");
    assert!(statuses.contains_key(Status::Unknown.as_str()), "{statuses:?}");
    assert!(
        statuses.len() > 1,
        "well-formed answers must get past decoding sometimes: {statuses:?}"
    );
}

// ---------------------------------------------------------------- HTTP answers

#[derive(Debug, Clone)]
enum HttpAnswer {
    Bytes(Vec<u8>),
    /// A response built from parts, some of them wrong.
    Built {
        status: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        flips: Vec<(usize, u8)>,
    },
}

fn http_answer() -> impl Strategy<Value = HttpAnswer> {
    let header = prop_oneof![
        ("[A-Za-z-]{1,20}", "[ -~]{0,40}"),
        Just(("Content-Length".to_string(), "5".to_string())),
        Just(("Content-Length".to_string(), "-1".to_string())),
        Just(("Content-Length".to_string(), "99999999999999999999".to_string())),
        Just(("Transfer-Encoding".to_string(), "chunked".to_string())),
        Just(("Content-Encoding".to_string(), "gzip".to_string())),
        Just(("Location".to_string(), "http://127.0.0.1:9/".to_string())),
        "[ -~]{0,2000}".prop_map(|v| ("X-Long".to_string(), v)),
    ];
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..400).prop_map(HttpAnswer::Bytes),
        4 => (
            prop_oneof![
                Just("HTTP/1.1 200 OK".to_string()),
                Just("HTTP/1.1 302 Found".to_string()),
                Just("HTTP/1.0 500 Oops".to_string()),
                "HTTP/1.1 [0-9]{1,4} [ -~]{0,10}",
                "[ -~]{0,30}",
            ],
            prop::collection::vec(header, 0..6),
            prop::collection::vec(any::<u8>(), 0..300),
            prop::collection::vec((any::<usize>(), 1u8..=255), 0..2),
        )
            .prop_map(|(status, headers, body, flips)| HttpAnswer::Built { status, headers, body, flips }),
    ]
}

fn http_bytes(answer: &HttpAnswer) -> Vec<u8> {
    match answer {
        HttpAnswer::Bytes(b) => b.clone(),
        HttpAnswer::Built {
            status,
            headers,
            body,
            flips,
        } => {
            let mut out = format!("{status}\r\n").into_bytes();
            for (k, v) in headers {
                out.extend(format!("{k}: {v}\r\n").into_bytes());
            }
            out.extend(b"\r\n");
            out.extend(body);
            for (at, xor) in flips {
                let n = out.len();
                out[at % n] ^= xor;
            }
            out
        }
    }
}

#[test]
fn fuzz_http_answers_through_the_http_probe() {
    let rt = runtime();
    let current: Arc<Mutex<Vec<u8>>> = Arc::new(Mutex::new(Vec::new()));
    let server = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = server.local_addr().expect("addr").port();
    server.set_nonblocking(true).expect("nonblocking");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let serving = {
        let (current, stop) = (current.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok((mut stream, _)) = server.accept() else {
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                };
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf);
                let bytes = current.lock().map(|c| c.clone()).unwrap_or_default();
                let _ = stream.write_all(&bytes);
            }
        })
    };
    let prober = HttpProber::new();
    let mut statuses = std::collections::BTreeMap::new();
    fuzz(
        "HTTP answers",
        (http_answer(), any::<bool>()),
        |(answer, body_check)| {
            *current.lock().expect("lock") = http_bytes(answer);
            let params: HttpParams = snbox::document::params::parse(if *body_check {
                json!({ "url": format!("http://127.0.0.1:{port}/"), "body_regex": "^ok", "follow_redirects": true })
            } else {
                json!({ "url": format!("http://127.0.0.1:{port}/") })
            })
            .expect("params");
            let result = rt.block_on(async {
                tokio::time::timeout(
                    Duration::from_secs(3),
                    prober.check("127.0.0.1", &params, Duration::from_millis(500)),
                )
                .await
            });
            let result = result.expect("the check ended in bounded time");
            assert!(!result.output.trim().is_empty(), "a result without output");
            *statuses.entry(result.status.as_str()).or_insert(0u64) += 1;
        },
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = serving.join();
    eprintln!("HTTP results by status: {statuses:?}");
}

// ---------------------------------------------------------------- the status endpoint

fn request_head() -> impl Strategy<Value = Vec<u8>> {
    let method = prop_oneof![
        prop::sample::select(vec![
            "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "TRACE", "CONNECT", "get"
        ])
        .prop_map(str::to_string),
        "[A-Z]{0,12}",
    ];
    let path = prop_oneof![
        prop::sample::select(vec![
            "/",
            "/status",
            "/services",
            "/devices",
            "/metrics",
            "/healthz",
            "/services?node=s1",
            "/../etc/passwd",
            "/%00",
            "/status/",
            "//status",
            "*",
            "http://127.0.0.1/status",
        ])
        .prop_map(str::to_string),
        "/[ -~]{0,200}",
        "/[a-z%0-9?=&]{0,3000}",
    ];
    let header = prop_oneof![
        Just("Authorization: Bearer x".to_string()),
        "Authorization: [ -~]{0,80}",
        Just("Content-Length: 10".to_string()),
        Just("Transfer-Encoding: chunked".to_string()),
        Just("Expect: 100-continue".to_string()),
        Just("Connection: keep-alive".to_string()),
        "[A-Za-z-]{1,20}: [ -~]{0,100}",
    ];
    prop_oneof![
        5 => (method, path, prop::sample::select(vec!["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/9", ""]),
              prop::collection::vec(header, 0..8), prop::collection::vec(any::<u8>(), 0..64))
            .prop_map(|(m, p, v, h, body)| {
                let mut out = format!("{m} {p} {v}\r\nHost: 127.0.0.1\r\n{}\r\n", h.iter().map(|x| format!("{x}\r\n")).collect::<String>()).into_bytes();
                out.extend(body);
                out
            }),
        1 => prop::collection::vec(any::<u8>(), 0..512),
    ]
}

#[test]
fn fuzz_status_endpoint_requests_on_the_real_daemon() {
    let dir = tempfile::tempdir().expect("tempdir");
    let example = std::fs::canonicalize("config/standalone.json").expect("example");
    let daemon = snbox_daemon::Daemon::start(dir.path(), |port| {
        format!(
            "state_dir = \"state\"\n[standalone]\ndocument = \"{}\"\n[status]\nlisten = \"127.0.0.1:{port}\"\n",
            example.display()
        )
    });
    let mut codes = std::collections::BTreeMap::new();
    fuzz("status requests", request_head(), |head| {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", daemon.port)).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(8))).expect("timeout");
        let _ = stream.write_all(head);
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let mut answer = Vec::new();
        let started = Instant::now();
        let _ = stream.read_to_end(&mut answer);
        assert!(started.elapsed() < Duration::from_secs(7), "the connection hung");
        let code = String::from_utf8_lossy(answer.get(9..12).unwrap_or(b"---")).into_owned();
        *codes.entry(code).or_insert(0u64) += 1;
    });
    eprintln!("status answers by code: {codes:?}");
    assert_eq!(daemon.get("/healthz").map(|r| r.0), Some(200), "the daemon survived");
    assert!(codes.contains_key("200") && codes.len() > 2, "{codes:?}");
    assert_eq!(daemon.terminate(Duration::from_secs(10)), Some(0));
}

// ---------------------------------------------------------------- commands (§5.6, the control socket)

/// A command object: a known kind (or not) with fields of any shape.
fn command() -> impl Strategy<Value = Value> {
    let kind = prop::sample::select(vec![
        "check_now",
        "acknowledge",
        "maintenance_start",
        "maintenance_end",
        "maintenance_list",
        "discover",
        "reboot",
        "",
    ]);
    let maintenance = prop_oneof![
        any_json(),
        (any_json(), any_json(), any::<i64>()).prop_map(|(scope, comment, minutes)| {
            json!({ "id": "m", "scope": { "device": scope }, "minutes": minutes, "comment": comment })
        }),
    ];
    let ranges = prop_oneof![
        any_json(),
        prop::collection::vec(
            prop_oneof![
                Just("10.0.0.0/24".to_string()),
                Just("10.0.0.9-10.0.0.1".to_string()),
                Just("fd00::/100".to_string()),
                "[0-9./:-]{0,20}"
            ],
            0..3
        )
        .prop_map(|r| json!(r)),
    ];
    (
        kind,
        any_json(),
        any_json(),
        maintenance,
        ranges,
        any_json(),
        any_json(),
    )
        .prop_map(|(kind, service, author, maintenance, ranges, communities, v3)| {
            json!({ "id": "c-1", "kind": kind, "service": service, "author": author, "maintenance": maintenance,
                    "ranges": ranges, "communities": communities, "v3": v3, "ports": communities, "rate": author })
        })
}

#[test]
fn fuzz_command_bodies_give_an_action_or_a_reason() {
    let now: jiff::Timestamp = "2026-12-01T10:00:00Z".parse().expect("ts");
    fuzz("commands", command(), |c| {
        let Some(object) = c.as_object() else { return };
        match snbox::command::parse(object, now) {
            snbox::command::Parsed::Refused(why) => assert!(!why.is_empty()),
            snbox::command::Parsed::Action(_) => {}
            snbox::command::Parsed::Discover(request) => {
                let _ = request.options(snbox::settings::CensusLimits::default());
            }
        }
    });
}

// ---------------------------------------------------------------- SNMP traps

#[derive(Debug, Clone)]
struct TrapDatagram {
    /// 0: v1 trap, 1: v2c trap, 2: v2c inform, 3: a v3 header with whatever follows.
    form: u8,
    community: Vec<u8>,
    generic: u8,
    varbinds: Vec<(u8, Vec<u8>)>,
    flips: Vec<(usize, u8)>,
    cut: Option<usize>,
    garbage: Option<Vec<u8>>,
}

fn trap_datagram() -> impl Strategy<Value = TrapDatagram> {
    let value = prop_oneof![
        (Just(0x02u8), prop::collection::vec(any::<u8>(), 0..6)),
        (Just(0x04u8), prop::collection::vec(any::<u8>(), 0..80)),
        (Just(0x06u8), prop::collection::vec(any::<u8>(), 0..12)),
        (any::<u8>(), prop::collection::vec(any::<u8>(), 0..12)),
    ];
    (
        0u8..4,
        prop_oneof![Just(b"public".to_vec()), prop::collection::vec(any::<u8>(), 0..12)],
        0u8..9,
        prop::collection::vec(value, 0..4),
        prop::collection::vec((any::<usize>(), 1u8..=255), 0..3),
        prop::option::weighted(0.2, any::<usize>()),
        prop::option::weighted(0.1, prop::collection::vec(any::<u8>(), 0..200)),
    )
        .prop_map(
            |(form, community, generic, varbinds, flips, cut, garbage)| TrapDatagram {
                form,
                community,
                generic,
                varbinds,
                flips,
                cut,
                garbage,
            },
        )
}

fn trap_bytes(t: &TrapDatagram) -> Vec<u8> {
    if let Some(g) = &t.garbage {
        return g.clone();
    }
    let oid = |arcs: &[u8]| tlv(0x06, arcs);
    let mut varbinds = Vec::new();
    if t.form == 1 || t.form == 2 {
        // sysUpTime.0 and snmpTrapOID.0 = linkDown
        let mut vb = oid(&[0x2b, 6, 1, 2, 1, 1, 3, 0]);
        vb.extend(tlv(0x43, &[1, 0]));
        varbinds.extend(tlv(0x30, &vb));
        let mut vb = oid(&[0x2b, 6, 1, 6, 3, 1, 1, 4, 1, 0]);
        vb.extend(oid(&[0x2b, 6, 1, 6, 3, 1, 1, 5, 3]));
        varbinds.extend(tlv(0x30, &vb));
    }
    for (i, (tag, content)) in t.varbinds.iter().enumerate() {
        let mut vb = oid(&[0x2b, 6, 1, 2, 1, 2, 2, 1, 1, i as u8]);
        vb.extend(tlv(*tag, content));
        varbinds.extend(tlv(0x30, &vb));
    }
    let mut message = match t.form {
        0 => {
            let mut pdu = oid(&[0x2b, 6, 1, 4, 1, 0x82, 0x37]);
            pdu.extend(tlv(0x40, &[127, 0, 0, 1]));
            pdu.extend(tlv(0x02, &[t.generic]));
            pdu.extend(tlv(0x02, &[7]));
            pdu.extend(tlv(0x43, &[1]));
            pdu.extend(tlv(0x30, &varbinds));
            let mut m = tlv(0x02, &[0]);
            m.extend(tlv(0x04, &t.community));
            m.extend(tlv(0xa4, &pdu));
            m
        }
        1 | 2 => {
            let mut pdu = tlv(0x02, &[5]);
            pdu.extend(tlv(0x02, &[0]));
            pdu.extend(tlv(0x02, &[0]));
            pdu.extend(tlv(0x30, &varbinds));
            let mut m = tlv(0x02, &[1]);
            m.extend(tlv(0x04, &t.community));
            m.extend(tlv(if t.form == 1 { 0xa7 } else { 0xa6 }, &pdu));
            m
        }
        _ => {
            let mut header = tlv(0x02, &[9]);
            header.extend(tlv(0x02, &[0x05, 0xdc]));
            header.extend(tlv(0x04, &[0x07]));
            header.extend(tlv(0x02, &[3]));
            let mut usm = tlv(0x04, &t.community);
            usm.extend(tlv(0x02, &[1]));
            usm.extend(tlv(0x02, &[1]));
            usm.extend(tlv(0x04, b"user"));
            usm.extend(tlv(0x04, &[0; 12]));
            usm.extend(tlv(0x04, &[0; 8]));
            let mut m = tlv(0x02, &[3]);
            m.extend(tlv(0x30, &header));
            m.extend(tlv(0x04, &tlv(0x30, &usm)));
            m.extend(tlv(0x04, &varbinds));
            m
        }
    };
    let mut bytes = tlv(0x30, &std::mem::take(&mut message));
    for (at, xor) in &t.flips {
        let n = bytes.len();
        bytes[at % n] ^= xor;
    }
    if let Some(cut) = t.cut {
        bytes.truncate(cut % (bytes.len() + 1));
    }
    bytes
}

#[test]
fn fuzz_trap_datagrams_through_the_trap_decoder() {
    use snbox::traps::{decode, engine, usm};
    let mut read = 0u64;
    // The box's own engine, as for v3 INFORMs: discovery, authentication, decryption.
    let state = tempfile::tempdir().expect("tempdir");
    let mut box_engine = engine::Engine::start(state.path()).expect("engine");
    let snmp: snbox::document::Snmp = serde_json::from_value(serde_json::json!({
        "version": "3", "user": "user", "level": "authPriv", "auth_protocol": "md5",
        "auth_key": "AuthKey-12345678", "priv_protocol": "des", "priv_key": "PrivKey-12345678"
    }))
    .expect("snmp block");
    let keys = usm::Keys::localized(&snmp, box_engine.id()).expect("keys");
    fuzz("traps", trap_datagram(), |t| {
        let mut bytes = trap_bytes(t);
        match decode::version_of(&bytes) {
            Ok(decode::Version::V3) => {
                if let Ok(message) = engine::Message::read(&bytes) {
                    let _ = box_engine.discovery(&message);
                    if let Ok(engine::Opened::Notification { pdu, .. }) = box_engine.open(&message, &bytes, &keys) {
                        let _ = decode::scoped(&pdu);
                    }
                }
                let mut security =
                    snmp2::v3::Security::new(b"user", b"AuthKey-12345678").with_auth(snmp2::v3::Auth::AuthNoPriv);
                let _ = decode::with_security(&mut bytes, &mut security);
            }
            Ok(_) => {
                if let Ok(message) = decode::CommunityMessage::read(&bytes) {
                    let _ = message.agent();
                    if let Ok(trap) = message.with_community(b"public") {
                        assert!(!trap.trap_oid.to_string().is_empty());
                        read += 1;
                    }
                    let _ = message.inform_response();
                }
            }
            Err(_) => {}
        }
    });
    assert!(
        read > 0,
        "no generated datagram was a readable trap: the generator is wrong"
    );
}
