#![allow(dead_code)] // shared by several test crates, each using part of it
//! A central server for the tests (protocol.md §5), in the test process, over HTTPS with a CA
//! made for the test: pairing with one-time tokens, the monitoring document with ETags,
//! config reports, idempotent ingest by `(box_id, seq)`, heartbeats. Faults are injected on
//! demand: 500s, answers lost after the records were stored (the connection is dropped), slow
//! answers, 429 with Retry-After, revoked credentials, a down server, garbage and oversized
//! answers, an `acked_seq` that lies.
//!
//! It speaks just enough HTTP/1.1: one request per connection (`connection: close`), bodies
//! by Content-Length, gzip request bodies. Every connection is bounded in time.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::http_server::{Cert, tls_material};

pub const BOX_ID: &str = "bx-test";
pub const NODE: &str = "p";

/// A monitoring document for the test box: partner `p` (the box's node), company `c`, site `s`,
/// every period 24x7, with these templates, devices and services.
pub fn document(version: &str, templates: Value, devices: Value, services: Value) -> Value {
    json!({
        "version": version,
        "box": { "id": BOX_ID, "node": NODE },
        "tree": [ { "id": "p", "kind": "partner", "name": "P", "timezone": "Europe/Paris" },
                  { "id": "c", "kind": "company", "name": "C", "parent": "p" },
                  { "id": "s", "kind": "site", "name": "S", "parent": "c" } ],
        "time_ranges": [ { "id": "24x7", "name": "24x7", "weekly": [ { "days": ["mon","tue","wed","thu","fri","sat","sun"], "from": "00:00", "to": "24:00" } ] } ],
        "defaults": [ { "aspect": "control", "time_range": "24x7" }, { "aspect": "availability", "time_range": "24x7" },
                      { "aspect": "notification", "time_range": "24x7" } ],
        "service_templates": templates,
        "devices": devices, "services": services
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token {
    Valid,
    Used,
    Expired,
}

/// Faults to inject; each counter is consumed as requests come.
#[derive(Debug, Default, Clone)]
pub struct Faults {
    /// The next N ingests answer 500 without storing anything.
    pub fail_ingest: u32,
    /// Every Nth ingest is stored, then its connection dropped without an answer.
    pub lose_ack_every: u32,
    /// The next N requests of any kind answer 429 with `Retry-After: secs`.
    pub too_many: u32,
    pub retry_after_s: u64,
    /// Every answer waits this long first.
    pub slow_ms: u64,
    /// Every connection is closed at once.
    pub down: bool,
    /// The next N ingests answer 200 with bytes that are not JSON (nothing stored).
    pub garbage: u32,
    /// The next N ingests answer 200 with a 1 MiB body.
    pub oversized: u32,
    /// The next N ingests acknowledge more than they were sent (nothing stored).
    pub lie: u32,
    /// The next N ingests acknowledge nothing of the batch: `acked_seq` is its first seq minus
    /// one (nothing stored).
    pub stall: u32,
}

#[derive(Debug, Default)]
pub struct Inner {
    pub tokens: HashMap<String, Token>,
    pub credentials: Vec<String>,
    pub revoked: Vec<String>,
    /// Stored records by (box, seq): a batch sent twice is stored once.
    pub records: BTreeMap<(String, u64), Value>,
    /// Seqs in the order they were first stored.
    pub arrival: Vec<u64>,
    /// Records received again after being stored.
    pub duplicates: u64,
    /// Records received again with a different content: a seq reused (must stay 0).
    pub conflicts: u64,
    pub ingests: u64,
    pub gzipped: u64,
    pub largest_batch: usize,
    pub document: Option<(String, String)>,
    pub reports: Vec<Value>,
    pub heartbeats: Vec<Value>,
    pub pairings: Vec<Value>,
    /// Every request body received, decompressed, for secret searches.
    pub bodies: Vec<String>,
    pub faults: Faults,
    /// Commands queued for the box (§5.6), served to `GET /commands?after=` in order.
    pub commands: Vec<Value>,
    /// Each poll's `after` (empty: none) and when the answer left, with the ids it carried.
    pub polls: Vec<(String, std::time::Instant, Vec<String>)>,
    /// Each poll's `after` as it arrived (a long poll is in `polls` only once answered).
    pub poll_arrivals: Vec<String>,
    /// Added to the server's clock in heartbeat answers.
    pub clock_offset_s: i64,
    /// The identity pairing hands out (the test box's by default).
    pub box_id: String,
    pub node: String,
    /// Keep seqs only, not record bodies nor request bodies (benchmarks of a million records).
    pub lean: bool,
}

pub struct Central {
    pub addr: SocketAddr,
    pub ca_file: PathBuf,
    /// `sha256:HEX` of the server's leaf certificate.
    pub leaf_sha256: String,
    pub state: Arc<Mutex<Inner>>,
    _dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Central {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Central {
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}/api/box/v1", self.addr.port())
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.state.lock().expect("central state"))
    }

    pub fn set_document(&self, doc: &Value) {
        let version = doc["version"].as_str().unwrap_or("x").to_string();
        self.with(|c| c.document = Some((format!("\"{version}\""), doc.to_string())));
    }

    pub fn seqs(&self) -> Vec<u64> {
        self.with(|c| c.records.keys().map(|(_, s)| *s).collect())
    }
}

/// Starts a central on 127.0.0.1 (an ephemeral port) with `tokens`. Must be called inside a
/// tokio runtime, which then serves it.
pub async fn start(tokens: &[(&str, Token)]) -> Central {
    start_on(0, tokens).await
}

/// [`start`] on a given port of 127.0.0.1 (0: any free one).
pub async fn start_on(port: u16, tokens: &[(&str, Token)]) -> Central {
    let dir = tempfile::tempdir().expect("tempdir");
    let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind loopback");
    let addr = listener.local_addr().expect("addr");
    let (config, ca_pem, leaf) = tls_material(Cert::Valid);
    let ca_file = dir.path().join("central-ca.pem");
    std::fs::write(&ca_file, ca_pem).expect("CA");
    let state = Arc::new(Mutex::new(Inner {
        tokens: tokens.iter().map(|(t, s)| (t.to_string(), *s)).collect(),
        box_id: BOX_ID.to_string(),
        node: NODE.to_string(),
        ..Inner::default()
    }));
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let shared = state.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let (acceptor, state) = (acceptor.clone(), shared.clone());
            tokio::spawn(async move {
                if state.lock().map(|c| c.faults.down).unwrap_or(true) {
                    return; // dropped: connection refused in effect
                }
                let serve = async move {
                    if let Ok(tls) = acceptor.accept(tcp).await {
                        serve(tls, state).await;
                    }
                };
                let _ = tokio::time::timeout(Duration::from_secs(60), serve).await;
            });
        }
    });
    Central {
        addr,
        ca_file,
        leaf_sha256: fingerprint(&leaf),
        state,
        _dir: dir,
        task,
    }
}

fn fingerprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    format!(
        "sha256:{}",
        digest.as_ref().iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

async fn read_request<S: AsyncRead + Unpin>(s: &mut S) -> Option<Request> {
    let mut data = Vec::new();
    let mut buf = [0u8; 16384];
    let head_end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if data.len() > 65536 {
            return None;
        }
        let n = s.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).to_string();
    let mut lines = head.lines();
    let mut first = lines.next()?.split_whitespace();
    let (method, path) = (first.next()?.to_string(), first.next()?.to_string());
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = data[head_end + 4..].to_vec();
    while body.len() < length {
        let n = s.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&buf[..n]);
    }
    let mut request = Request {
        method,
        path,
        headers,
        body,
    };
    if request.header("content-encoding") == Some("gzip") {
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(&request.body[..])
            .read_to_end(&mut plain)
            .ok()?;
        request.body = plain;
    }
    Some(request)
}

enum Reply {
    Answer(u16, Vec<(String, String)>, Vec<u8>),
    /// Drop the connection without a word.
    Drop,
}

fn json_reply(status: u16, body: Value) -> Reply {
    Reply::Answer(
        status,
        vec![("content-type".into(), "application/json".into())],
        body.to_string().into_bytes(),
    )
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, state: Arc<Mutex<Inner>>) {
    let Some(request) = read_request(&mut s).await else {
        return;
    };
    if request.method == "GET" && request.path.contains("/commands") {
        long_poll(&request, &state).await;
    }
    let slow = state.lock().map(|c| c.faults.slow_ms).unwrap_or(0);
    if slow > 0 {
        tokio::time::sleep(Duration::from_millis(slow)).await;
    }
    let reply = {
        let mut c = match state.lock() {
            Ok(c) => c,
            Err(_) => return,
        };
        handle(&mut c, &request)
    };
    let Reply::Answer(status, headers, body) = reply else {
        return;
    };
    let mut out = format!(
        "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let _ = s.write_all(out.as_bytes()).await;
    let _ = s.write_all(&body).await;
    let _ = s.shutdown().await;
}

fn handle(c: &mut Inner, r: &Request) -> Reply {
    let route = r.path.trim_start_matches("/api/box/v1");
    if r.header("content-encoding").is_some() || r.body.len() >= 1024 {
        c.gzipped += u64::from(r.header("content-encoding") == Some("gzip"));
    }
    if !c.lean {
        c.bodies.push(String::from_utf8_lossy(&r.body).to_string());
    }
    if c.faults.too_many > 0 {
        c.faults.too_many -= 1;
        return Reply::Answer(
            429,
            vec![("retry-after".into(), c.faults.retry_after_s.to_string())],
            b"slow down".to_vec(),
        );
    }
    if (r.method.as_str(), route) == ("POST", "/pair") {
        return pair(c, r);
    }
    let bearer = r
        .header("authorization")
        .and_then(|a| a.strip_prefix("Bearer "))
        .unwrap_or("");
    if !c.credentials.iter().any(|k| k == bearer) || c.revoked.iter().any(|k| k == bearer) {
        return Reply::Answer(401, vec![], b"credential revoked or unknown".to_vec());
    }
    match (r.method.as_str(), route) {
        ("GET", "/config") => match &c.document {
            None => Reply::Answer(404, vec![], b"no document yet".to_vec()),
            Some((etag, _)) if r.header("if-none-match") == Some(etag.as_str()) => Reply::Answer(304, vec![], vec![]),
            Some((etag, doc)) => Reply::Answer(
                200,
                vec![
                    ("etag".into(), etag.clone()),
                    ("content-type".into(), "application/json".into()),
                ],
                doc.clone().into_bytes(),
            ),
        },
        ("POST", "/config-report") => {
            c.reports.push(serde_json::from_slice(&r.body).unwrap_or(Value::Null));
            Reply::Answer(204, vec![], vec![])
        }
        ("POST", "/heartbeat") => {
            c.heartbeats
                .push(serde_json::from_slice(&r.body).unwrap_or(Value::Null));
            let now = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(c.clock_offset_s);
            json_reply(200, json!({ "server_time": now.to_string() }))
        }
        ("POST", "/ingest") => ingest(c, r),
        ("GET", path) if path.starts_with("/commands") => commands(c, r),
        _ => Reply::Answer(404, vec![], b"no such route".to_vec()),
    }
}

/// `after` and `wait` of a commands poll.
fn poll_query(r: &Request) -> (String, u64) {
    let query = r.path.split_once('?').map(|(_, q)| q).unwrap_or("");
    let mut after = String::new();
    let mut wait = 0;
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("after", v)) => after = v.replace("%2F", "/"),
            Some(("wait", v)) => wait = v.parse().unwrap_or(0),
            _ => {}
        }
    }
    (after, wait)
}

/// The commands queued after `after`.
fn commands_after(c: &Inner, after: &str) -> Vec<Value> {
    let start = c.commands.iter().position(|x| x["id"] == after).map_or(0, |i| i + 1);
    c.commands[start..].to_vec()
}

/// Holds a commands poll until a command is queued after `after`, or `wait` (at most 30 s).
async fn long_poll(r: &Request, state: &Arc<Mutex<Inner>>) {
    let (after, wait) = poll_query(r);
    if let Ok(mut c) = state.lock() {
        c.poll_arrivals.push(after.clone());
    }
    let until = std::time::Instant::now() + Duration::from_secs(wait.min(30));
    while std::time::Instant::now() < until {
        let waiting = state
            .lock()
            .map(|c| commands_after(&c, &after).is_empty())
            .unwrap_or(false);
        if !waiting {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn commands(c: &mut Inner, r: &Request) -> Reply {
    let (after, _) = poll_query(r);
    let list = commands_after(c, &after);
    let ids = list
        .iter()
        .map(|x| x["id"].as_str().unwrap_or("").to_string())
        .collect();
    c.polls.push((after, std::time::Instant::now(), ids));
    json_reply(200, json!({ "commands": list }))
}

fn pair(c: &mut Inner, r: &Request) -> Reply {
    let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    c.pairings.push(body.clone());
    let token = body["token"].as_str().unwrap_or("");
    match c.tokens.get(token).copied() {
        Some(Token::Valid) => {
            c.tokens.insert(token.to_string(), Token::Used);
            let credential = format!("Cred-{}-{:016x}", c.credentials.len(), fastrand::u64(..));
            c.credentials.push(credential.clone());
            json_reply(
                200,
                json!({ "box_id": c.box_id, "node": c.node, "credential": credential, "config_poll_s": 1 }),
            )
        }
        Some(Token::Used) | Some(Token::Expired) => Reply::Answer(403, vec![], b"token used or expired".to_vec()),
        None => Reply::Answer(401, vec![], b"unknown token".to_vec()),
    }
}

fn ingest(c: &mut Inner, r: &Request) -> Reply {
    c.ingests += 1;
    let f = &mut c.faults;
    if f.fail_ingest > 0 {
        f.fail_ingest -= 1;
        return Reply::Answer(500, vec![], b"internal error".to_vec());
    }
    if f.garbage > 0 {
        f.garbage -= 1;
        return Reply::Answer(200, vec![], b"\x00\xffnot json{{{".to_vec());
    }
    if f.oversized > 0 {
        f.oversized -= 1;
        return Reply::Answer(200, vec![], vec![b' '; 1 << 20]);
    }
    let body: Value = if c.lean {
        // Seqs only: a benchmark measures the box, not this server's JSON trees.
        #[derive(serde::Deserialize)]
        struct Seq {
            seq: u64,
        }
        #[derive(serde::Deserialize)]
        struct Lean {
            box_id: String,
            records: Vec<Seq>,
        }
        match serde_json::from_slice::<Lean>(&r.body) {
            Ok(l) => {
                json!({ "box_id": l.box_id, "records": l.records.iter().map(|s| json!({ "seq": s.seq })).collect::<Vec<_>>() })
            }
            Err(_) => return Reply::Answer(400, vec![], b"bad json".to_vec()),
        }
    } else {
        match serde_json::from_slice(&r.body) {
            Ok(v) => v,
            Err(_) => return Reply::Answer(400, vec![], b"bad json".to_vec()),
        }
    };
    let records = body["records"].as_array().cloned().unwrap_or_default();
    let box_id = body["box_id"].as_str().unwrap_or("").to_string();
    let max = records.iter().filter_map(|x| x["seq"].as_u64()).max().unwrap_or(0);
    if c.faults.stall > 0 {
        c.faults.stall -= 1;
        let min = records.iter().filter_map(|x| x["seq"].as_u64()).min().unwrap_or(1);
        return json_reply(200, json!({ "acked_seq": min.saturating_sub(1) }));
    }
    if c.faults.lie > 0 {
        c.faults.lie -= 1;
        return json_reply(200, json!({ "acked_seq": max + 1000 }));
    }
    c.largest_batch = c.largest_batch.max(records.len());
    for record in records {
        let Some(seq) = record["seq"].as_u64() else { continue };
        match c.records.entry((box_id.clone(), seq)) {
            std::collections::btree_map::Entry::Occupied(o) => {
                c.duplicates += 1;
                if !c.lean && *o.get() != record {
                    c.conflicts += 1;
                }
            }
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(if c.lean { Value::Null } else { record });
                c.arrival.push(seq);
            }
        }
    }
    let every = c.faults.lose_ack_every;
    if every > 0 && c.ingests.is_multiple_of(u64::from(every)) {
        return Reply::Drop;
    }
    json_reply(200, json!({ "acked_seq": max }))
}
