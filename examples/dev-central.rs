//! A development central server: pair a local `snbox run` with it and watch what the box
//! sends. It serves a monitoring document from a file over HTTPS on 127.0.0.1 (a certificate
//! made at start, pinned by the box with `--ca-cert-hash`), issues one pairing token, stores
//! records by (box, seq) as the real one must, and prints what arrives.
//!
//! ```text
//! cargo run --example dev-central -- config/standalone.json [PORT]
//! ```
//!
//! It is the tests' central (tests/common/central.rs) without faults. Loopback only.

#[path = "../tests/common/central.rs"]
mod central;
#[path = "../tests/common/http_server.rs"]
mod http_server;

use std::time::Duration;

use central::Token;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.first() else {
        eprintln!("usage: cargo run --example dev-central -- DOCUMENT.json [PORT]");
        std::process::exit(2);
    };
    let port: u16 = args.get(1).and_then(|p| p.parse().ok()).unwrap_or(8731);
    let document: serde_json::Value = match std::fs::read_to_string(path).map(|t| serde_json::from_str(&t)) {
        Ok(Ok(doc)) => doc,
        Ok(Err(e)) => {
            eprintln!("{path}: not JSON: {e}");
            std::process::exit(2);
        }
        Err(e) => {
            eprintln!("{path}: {e}");
            std::process::exit(2);
        }
    };
    let token = format!("dev-{:016x}", fastrand::u64(..));
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let central = runtime.block_on(central::start_on(port, &[(token.as_str(), Token::Valid)]));
    central.with(|c| {
        c.box_id = document["box"]["id"].as_str().unwrap_or("bx-dev").to_string();
        c.node = document["box"]["node"].as_str().unwrap_or("root").to_string();
    });
    central.set_document(&document);
    println!("dev central on {} serving {path}\n", central.url());
    println!("pair a box with it (in another terminal), then run the box:\n");
    println!(
        "  cargo run --release -- pair --config config/central.toml --central {} --token {token} --ca-cert-hash {}",
        central.url(),
        central.leaf_sha256
    );
    println!("  cargo run --release -- run --config config/central.toml\n");
    let mut seen = (0usize, 0usize, 0usize, 0usize);
    loop {
        std::thread::sleep(Duration::from_secs(2));
        central.with(|c| {
            if c.pairings.len() > seen.0 {
                println!(
                    "paired: box {} (hostname {})",
                    c.box_id,
                    c.pairings[c.pairings.len() - 1]["hostname"]
                );
            }
            for r in &c.reports[seen.1.min(c.reports.len())..] {
                println!("config report: {r}");
            }
            if c.records.len() > seen.2 {
                let last = c.records.values().last().cloned().unwrap_or_default();
                println!(
                    "records: {} stored ({} resent and ignored); last: {} {} {}",
                    c.records.len(),
                    c.duplicates,
                    last["kind"],
                    last["service"],
                    last["status"]
                );
            }
            if c.heartbeats.len() > seen.3
                && let Some(h) = c.heartbeats.last()
            {
                println!("heartbeat: buffer {} · checks/min {}", h["buffer"], h["checks"]);
            }
            seen = (c.pairings.len(), c.reports.len(), c.records.len(), c.heartbeats.len());
        });
    }
}
