//! TCP checks (protocol.md §3 `tcp`): connect to the device's port within the timeout,
//! optionally shake hands in TLS (the certificate verified, its days left judged), send a line,
//! and look for the expected text in what comes back. Refused or timed out is critical; the
//! whole exchange's time is judged by `warn_ms`/`crit_ms`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{CheckResult, Status, Thresholds, ms, tls_expiry};
use crate::document::params::{TcpParams, TcpPort};
use crate::tls::{Check, Verifier, client_config, error_text, pem_certificates, system_roots};

/// What is read of the answer, at most.
const MAX_ANSWER: usize = 8 * 1024;

/// Shared by every TCP check: the TLS settings (verified, or not for `insecure_tls`), and one
/// per `ca_file` in use, made at its first check.
pub struct TcpProber {
    provider: Arc<CryptoProvider>,
    verified: Result<Arc<rustls::ClientConfig>, String>,
    insecure: Result<Arc<rustls::ClientConfig>, String>,
    with_ca: Mutex<HashMap<PathBuf, Arc<rustls::ClientConfig>>>,
    status_endpoint: Option<std::net::SocketAddr>,
}

impl Default for TcpProber {
    fn default() -> Self {
        TcpProber::new()
    }
}

impl TcpProber {
    pub fn new() -> TcpProber {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = Arc::new(system_roots());
        let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|e| format!("cannot build the TLS verifier: {e}"));
        TcpProber {
            verified: webpki.and_then(|v| config(&provider, Check::WebPki(v))),
            insecure: config(&provider, Check::Anything),
            with_ca: Mutex::new(HashMap::new()),
            status_endpoint: None,
            provider,
        }
    }

    /// A new plan: configurations for CA files no TCP service names any more go.
    pub fn retain<'a>(&self, ca_files: impl IntoIterator<Item = &'a str>) {
        let keep: std::collections::HashSet<PathBuf> = ca_files.into_iter().map(PathBuf::from).collect();
        self.with_ca
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|path, _| keep.contains(path));
    }

    /// The TLS settings a check's params ask for.
    fn config_for(&self, p: &TcpParams) -> Result<Arc<rustls::ClientConfig>, String> {
        if p.insecure_tls {
            return self.insecure.clone();
        }
        let Some(ca_file) = &p.ca_file else {
            return self.verified.clone();
        };
        let path = PathBuf::from(ca_file);
        let mut cache = self.with_ca.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(config) = cache.get(&path) {
            return Ok(config.clone());
        }
        let mut roots = system_roots();
        for cert in pem_certificates(&path).map_err(|e| format!("ca_file {e}"))? {
            roots
                .add(cert)
                .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
        }
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
            .build()
            .map_err(|e| format!("cannot build the TLS verifier: {e}"))?;
        let config = config(&self.provider, Check::WebPki(webpki))?;
        cache.insert(path, config.clone());
        Ok(config)
    }

    /// With `{status}` as a port meaning `addr`, the box's own status endpoint.
    pub fn with_status_endpoint(mut self, addr: std::net::SocketAddr) -> TcpProber {
        self.status_endpoint = Some(addr);
        self
    }

    /// Checks `host`'s port as `p` says, within `timeout`.
    pub async fn check(&self, host: &str, p: &TcpParams, timeout: Duration) -> CheckResult {
        let started = Instant::now();
        let status_host;
        let (host, port) = match (p.port, self.status_endpoint) {
            (Some(TcpPort::Number(port)), _) => (host, port),
            (Some(TcpPort::Status), Some(endpoint)) => {
                status_host = endpoint.ip().to_string();
                (status_host.as_str(), endpoint.port())
            }
            (Some(TcpPort::Status), None) => {
                return CheckResult::unknown("{status} names the daemon's status endpoint: none here");
            }
            (None, _) => return CheckResult::unknown("no port to connect to"),
        };
        let target = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let result = match tokio::time::timeout(timeout, self.exchange(host, port, p)).await {
            Ok(Ok((result, not_after))) => tls_expiry(result, not_after, p.tls_warn_days, p.tls_crit_days),
            Ok(Err(why)) => CheckResult::new(Status::Critical, format!("{target}: {why}")),
            Err(_) => CheckResult::new(
                Status::Critical,
                format!("{target}: no answer within {:.0} s", timeout.as_secs_f64()),
            ),
        };
        let took = started.elapsed();
        let result = result.metric("time_ms", ms(took)).took(took);
        judge_time(result, p)
    }

    async fn exchange(&self, host: &str, port: u16, p: &TcpParams) -> Result<(CheckResult, Option<i64>), String> {
        let stream = TcpStream::connect((host, port))
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let _ = stream.set_nodelay(true);
        if !p.tls {
            return Ok((converse(stream, p).await?, None));
        }
        let config = self.config_for(p)?;
        let name = ServerName::try_from(host.to_string()).map_err(|e| format!("not a TLS server name: {e}"))?;
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, stream)
            .await
            .map_err(|e| format!("TLS handshake failed: {}", error_text(&e)))?;
        let not_after = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(|leaf| x509_parser::parse_x509_certificate(leaf).ok())
            .map(|(_, cert)| cert.validity().not_after.timestamp());
        Ok((converse(tls, p).await?, not_after))
    }
}

fn config(provider: &Arc<CryptoProvider>, check: Check) -> Result<Arc<rustls::ClientConfig>, String> {
    let verifier = Verifier::new(check, provider.clone(), Box::new(|_, _| {}));
    client_config(provider, verifier).map(Arc::new)
}

/// Sends `send`, then reads until the expected text shows, the peer closes, or 8 KiB.
async fn converse<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, p: &TcpParams) -> Result<CheckResult, String> {
    if let Some(send) = &p.send {
        stream
            .write_all(send.as_bytes())
            .await
            .map_err(|e| format!("cannot send: {e}"))?;
        let _ = stream.flush().await;
    }
    if p.expect.is_none() && p.expect_regex.is_none() {
        return Ok(CheckResult::new(Status::Ok, "connected"));
    }
    let mut answer = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let text = String::from_utf8_lossy(&answer);
        let found = match (&p.expect, &p.expect_regex) {
            (Some(e), _) => text.contains(e.as_str()),
            (None, Some(re)) => re.is_match(&text),
            (None, None) => true,
        };
        if found {
            return Ok(CheckResult::new(Status::Ok, format!("answered {:?}", excerpt(&text))));
        }
        if answer.len() >= MAX_ANSWER {
            break;
        }
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("cannot read the answer: {e}"))?;
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&chunk[..n.min(MAX_ANSWER - answer.len())]);
    }
    let wanted = p
        .expect
        .clone()
        .or_else(|| p.expect_regex.as_ref().map(|r| format!("/{}/", r.as_str())))
        .unwrap_or_default();
    Ok(CheckResult::new(
        Status::Critical,
        format!(
            "{wanted:?} not in the answer {:?}",
            excerpt(&String::from_utf8_lossy(&answer))
        ),
    ))
}

/// The first line of a peer's answer, at most 80 characters.
fn excerpt(text: &str) -> String {
    let line = text.lines().next().unwrap_or("");
    line.chars().take(80).collect()
}

fn judge_time(mut result: CheckResult, p: &TcpParams) -> CheckResult {
    if result.status != Status::Ok {
        return result;
    }
    let took = ms(result.duration);
    let status = Thresholds {
        warn: p.warn_ms,
        crit: p.crit_ms,
        below: false,
    }
    .judge(took);
    if status != Status::Ok {
        result.status = status;
        result.output = format!("{} in {took} ms (slow)", result.output);
    } else {
        result.output = format!("{} in {took} ms", result.output);
    }
    result
}
