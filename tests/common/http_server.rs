#![allow(dead_code)] // shared by several test crates, each using part of it
//! A real HTTP(S) server on loopback for the HTTP probe tests, with hostile routes.
//!
//! Routes: `/ok` (200 "hello ok"), `/status/N`, `/redirect` (→ `/ok`), `/loop` (redirects to
//! itself), `/slow` (200 after 300 ms), `/hang` (reads the request, never answers),
//! `/endless` (a body that never ends), `/huge-headers` (a 1 MiB header). Every connection is
//! bounded in time: nothing here outlives its test by more than 30 s.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

/// The server certificate a TLS server presents.
#[derive(Debug, Clone, Copy)]
pub enum Cert {
    /// For 127.0.0.1 and localhost, valid for a year.
    Valid,
    /// Valid, but expiring in this many days.
    ExpiresIn(i64),
    /// Expired two days ago.
    Expired,
    /// Valid, for another host name only.
    WrongHost,
}

pub struct TestServer {
    pub addr: SocketAddr,
    /// The PEM file of the CA that signed the server certificate (TLS servers only).
    pub ca_file: Option<PathBuf>,
    _dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.ca_file.is_some() { "https" } else { "http" };
        format!("{scheme}://{}{path}", self.addr)
    }
}

pub async fn start(tls: Option<Cert>) -> TestServer {
    let dir = tempfile::tempdir().expect("tempdir");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let (acceptor, ca_file) = match tls {
        None => (None, None),
        Some(cert) => {
            let (config, ca_pem) = tls_config(cert);
            let path = dir.path().join("ca.pem");
            std::fs::write(&path, ca_pem).expect("write CA");
            (Some(TlsAcceptor::from(Arc::new(config))), Some(path))
        }
    };
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let serve = async move {
                    match acceptor {
                        None => serve(tcp).await,
                        Some(a) => {
                            if let Ok(tls) = a.accept(tcp).await {
                                serve(tls).await;
                            }
                        }
                    }
                };
                let _ = tokio::time::timeout(Duration::from_secs(30), serve).await;
            });
        }
    });
    TestServer {
        addr,
        ca_file,
        _dir: dir,
        task,
    }
}

async fn serve<S: tokio::io::AsyncRead + AsyncWrite + Unpin>(mut s: S) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let request = String::from_utf8_lossy(&head);
    let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
    let auth_ok = request
        .lines()
        .any(|l| l.eq_ignore_ascii_case("authorization: Basic dXNlcjpzM2NyZXQ="));
    let reply = |status: &str, extra: &str, body: &str| {
        format!(
            "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n{extra}\r\n{body}",
            body.len()
        )
    };
    let response = match path.as_str() {
        "/" | "/ok" => reply("200 OK", "", "hello ok"),
        "/slow" => {
            tokio::time::sleep(Duration::from_millis(300)).await;
            reply("200 OK", "", "slow ok")
        }
        "/redirect" => reply("302 Found", "location: /ok\r\n", ""),
        "/loop" => reply("302 Found", "location: /loop\r\n", ""),
        "/auth" if auth_ok => reply("200 OK", "", "welcome"),
        "/auth" => reply("401 Unauthorized", "", ""),
        "/hang" => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            return;
        }
        "/endless" => {
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
                .await;
            let chunk = format!("{:x}\r\n{}\r\n", 8192, "x".repeat(8192));
            // Bounded: at most 256 MiB, and the 30 s connection limit.
            for _ in 0..32768 {
                if s.write_all(chunk.as_bytes()).await.is_err() {
                    return;
                }
            }
            return;
        }
        "/huge-headers" => reply("200 OK", &format!("x-huge: {}\r\n", "h".repeat(1 << 20)), "ok"),
        p if p.starts_with("/status/") => reply(&format!("{} Test", &p[8..]), "", "status"),
        _ => reply("404 Not Found", "", "not found"),
    };
    let _ = s.write_all(response.as_bytes()).await;
    let _ = s.shutdown().await;
}

/// A server configuration with a certificate from a fresh CA, and that CA's PEM.
fn tls_config(cert: Cert) -> (rustls::ServerConfig, String) {
    let (config, ca_pem, _) = tls_material(cert);
    (config, ca_pem)
}

/// A server configuration with a certificate signed by a fresh CA: the configuration, the CA's
/// PEM, and the server certificate's DER (whose hash a client may pin).
pub fn tls_material(cert: Cert) -> (rustls::ServerConfig, String, Vec<u8>) {
    let now = time::OffsetDateTime::now_utc();
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "snbox test CA");
    ca_params.not_before = now - time::Duration::days(30);
    ca_params.not_after = now + time::Duration::days(3650);
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA cert");
    let issuer = Issuer::new(ca_params, ca_key);

    let names = match cert {
        Cert::WrongHost => vec!["other.example".to_string()],
        _ => vec!["127.0.0.1".to_string(), "localhost".to_string()],
    };
    let mut params = CertificateParams::new(names).expect("server params");
    params.distinguished_name.push(DnType::CommonName, "snbox test server");
    let (before, after) = match cert {
        Cert::Valid | Cert::WrongHost => (now - time::Duration::days(1), now + time::Duration::days(365)),
        Cert::ExpiresIn(days) => (now - time::Duration::days(1), now + time::Duration::days(days)),
        Cert::Expired => (now - time::Duration::days(90), now - time::Duration::days(2)),
    };
    params.not_before = before;
    params.not_after = after;
    let key = KeyPair::generate().expect("server key");
    let server_cert = params.signed_by(&key, &issuer).expect("server cert");

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![server_cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).expect("key der"),
        )
        .expect("server config");
    (config, ca_cert.pem(), server_cert.der().to_vec())
}
