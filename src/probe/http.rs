//! HTTP(S) checks: status, body, latency and the server certificate's remaining days.
//!
//! TLS is rustls with the ring provider, no OpenSSL. Our own certificate verifier wraps rustls'
//! WebPKI verifier and records every server certificate it is shown, so that the days left are
//! known for each check and an already expired certificate — whose handshake fails — is still
//! reported with its expiry date. Every check opens a fresh connection (no pooling): a pooled
//! connection could hide a dead listener and would skip the certificate.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustls::RootCertStore;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;

use super::{CheckResult, Status, Thresholds, ms, tls_days_left, tls_expiry, utc_date};
use crate::document::params::{CheckUrl, HttpParams, STATUS_ENDPOINT};
use crate::tls::{Check, OnLeaf, Verifier, client_config, error_text, pem_certificates, system_roots};

/// Bodies are read only when a body check asks for it, and never past this size.
const MAX_BODY: usize = 1024 * 1024;
const MAX_REDIRECTS: usize = 5;

/// The `not_after` (Unix seconds) of the first leaf certificate a check's own connection was
/// shown. Clients are shared by every check, so what a connection sees is handed to the check
/// that made it through a task-local slot: never another service's (another port of the same
/// host) nor an earlier connection's.
type Leaf = Arc<Mutex<Option<i64>>>;

tokio::task_local! {
    static LEAF: Leaf;
}

/// Runs HTTP checks; one per box, shared by every HTTP service.
pub struct HttpProber {
    provider: Arc<CryptoProvider>,
    system_roots: Arc<RootCertStore>,
    /// Why the system store gave nothing, said in every result that needed it.
    system_roots_problem: Option<String>,
    clients: Mutex<HashMap<ClientKey, reqwest::Client>>,
    /// The box's own status endpoint, for URLs that name `{status}` (the shipped example
    /// checks it, wherever `status.listen` puts it).
    status_endpoint: Option<std::net::SocketAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ClientKey {
    insecure: bool,
    follow_redirects: bool,
    ca_file: Option<PathBuf>,
}

impl Default for HttpProber {
    fn default() -> Self {
        HttpProber::new()
    }
}

impl HttpProber {
    pub fn new() -> HttpProber {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        // reqwest's own parts look for a process default; ours is passed explicitly.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let roots = system_roots();
        let problem = roots.is_empty().then(|| {
            "no trusted CA certificates on this system (install the ca-certificates package, or set \
             the check's ca_file)"
                .to_string()
        });
        HttpProber {
            provider,
            system_roots: Arc::new(roots),
            system_roots_problem: problem,
            clients: Mutex::new(HashMap::new()),
            status_endpoint: None,
        }
    }

    /// Where `{status}` in a URL points: the daemon's own status endpoint.
    pub fn with_status_endpoint(mut self, addr: std::net::SocketAddr) -> HttpProber {
        self.status_endpoint = Some(addr);
        self
    }

    /// Runs one check of `params` against `address` (used when `url` is not set), within `timeout`.
    pub async fn check(&self, address: &str, params: &HttpParams, timeout: Duration) -> CheckResult {
        let start = Instant::now();
        let result = self.run(address, params, timeout).await;
        result.took(start.elapsed())
    }

    async fn run(&self, address: &str, params: &HttpParams, timeout: Duration) -> CheckResult {
        let url = match target_url(address, params, self.status_endpoint) {
            Ok(url) => url,
            Err(message) => return CheckResult::unknown(message),
        };
        let method = params
            .method
            .as_ref()
            .map_or(reqwest::Method::GET, |m| m.as_reqwest().clone());
        let is_https = url.scheme() == "https";
        let key = client_key(params);
        if is_https
            && !key.insecure
            && key.ca_file.is_none()
            && let Some(problem) = &self.system_roots_problem
        {
            return CheckResult::unknown(problem.clone());
        }
        let client = match self.client(&key) {
            Ok(c) => c,
            Err(message) => return CheckResult::unknown(message),
        };
        let mut request = client.request(method, url.clone()).timeout(timeout);
        if let Some(user) = &params.username {
            request = request.basic_auth(user, params.password.as_ref().map(|p| p.expose()));
        }

        let start = Instant::now();
        let leaf = Leaf::default();
        let sent = LEAF
            .scope(leaf.clone(), tokio::time::timeout(timeout, request.send()))
            .await;
        let not_after = *leaf.lock().unwrap_or_else(|e| e.into_inner());
        let response = match sent {
            Err(_) => {
                return CheckResult::new(Status::Critical, format!("no answer within {}s", timeout.as_secs_f64()));
            }
            Ok(Err(e)) => return failure(&e, not_after, params),
            Ok(Ok(r)) => r,
        };
        let code = response.status().as_u16();
        let final_url = response.url().clone();
        let mut result = judge_status(code, params);
        let mut body_bytes = None;
        if params.body_contains.is_some() || params.body_regex.is_some() {
            let left = timeout.saturating_sub(start.elapsed());
            match tokio::time::timeout(left, read_body(response)).await {
                Err(_) => {
                    result = CheckResult::new(
                        Status::Critical,
                        format!("HTTP {code}: body not received within {}s", timeout.as_secs_f64()),
                    );
                }
                Ok(Err(e)) => {
                    result = CheckResult::new(
                        Status::Critical,
                        format!("HTTP {code}: reading the body failed: {}", error_text(&e)),
                    );
                }
                Ok(Ok(body)) => {
                    body_bytes = Some(body.len());
                    if result.status == Status::Ok {
                        result = judge_body(&body, code, params);
                    }
                }
            }
        }
        let elapsed = start.elapsed();
        let latency = Thresholds {
            warn: params.warn_ms,
            crit: params.crit_ms,
            below: false,
        }
        .judge(ms(elapsed));
        if latency != Status::Ok && result.status != Status::Critical {
            result = CheckResult::new(
                result.status.worst(latency),
                format!("{} in {:.1} ms (slow)", result.output, ms(elapsed)),
            );
        } else {
            result.output = format!("{} in {:.1} ms", result.output, ms(elapsed));
        }
        // reqwest takes the credentials out of the URL it reports: compare without them.
        if redacted(&final_url) != redacted(&url) {
            result.output = format!("{} (redirected to {})", result.output, redacted(&final_url));
        }
        let mut result = result
            .metric("status_code", f64::from(code))
            .metric("time_ms", ms(elapsed));
        if let Some(n) = body_bytes {
            result = result.metric("body_bytes", n as f64);
        }
        if is_https {
            result = tls_expiry(result, not_after, params.tls_warn_days, params.tls_crit_days);
        }
        result
    }

    /// Keeps the clients that checks of `in_use` need; drops the rest.
    pub fn retain<'a>(&self, in_use: impl IntoIterator<Item = &'a HttpParams>) {
        let keep: std::collections::HashSet<ClientKey> = in_use.into_iter().map(client_key).collect();
        self.clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|key, _| keep.contains(key));
    }

    fn client(&self, key: &ClientKey) -> Result<reqwest::Client, String> {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(client) = clients.get(key) {
            return Ok(client.clone());
        }
        let roots = match &key.ca_file {
            None => self.system_roots.clone(),
            Some(path) => {
                let mut roots = (*self.system_roots).clone();
                for cert in pem_certificates(path).map_err(|e| format!("ca_file {e}"))? {
                    roots
                        .add(cert)
                        .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
                }
                Arc::new(roots)
            }
        };
        let inner = if key.insecure {
            None
        } else {
            Some(
                WebPkiServerVerifier::builder_with_provider(roots, self.provider.clone())
                    .build()
                    .map_err(|e| format!("cannot build the TLS verifier: {e}"))?,
            )
        };
        let on_leaf: OnLeaf = Box::new(|leaf, _server_name| {
            let Ok((_, cert)) = x509_parser::parse_x509_certificate(leaf) else {
                return;
            };
            let not_after = cert.validity().not_after.timestamp();
            // The first leaf is the URL's own server (later ones: redirects).
            let _ = LEAF.try_with(|slot| {
                slot.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(not_after);
            });
        });
        let check = inner.map_or(Check::Anything, Check::WebPki);
        let mut tls = client_config(&self.provider, Verifier::new(check, self.provider.clone(), on_leaf))?;
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let redirects = if key.follow_redirects {
            reqwest::redirect::Policy::limited(MAX_REDIRECTS)
        } else {
            reqwest::redirect::Policy::none()
        };
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .redirect(redirects)
            .pool_max_idle_per_host(0)
            .no_proxy()
            .user_agent(concat!("snbox/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {}", error_text(&e)))?;
        clients.insert(key.clone(), client.clone());
        Ok(client)
    }
}

fn client_key(params: &HttpParams) -> ClientKey {
    ClientKey {
        insecure: params.insecure_tls.unwrap_or(false),
        follow_redirects: params.follow_redirects.unwrap_or(true),
        ca_file: params.ca_file.as_ref().map(PathBuf::from),
    }
}

fn target_url(
    address: &str,
    params: &HttpParams,
    status_endpoint: Option<std::net::SocketAddr>,
) -> Result<reqwest::Url, String> {
    let text = match (params.url.as_ref().map(CheckUrl::as_str), status_endpoint) {
        (Some(url), Some(status)) if url.contains(STATUS_ENDPOINT) => url.replace(STATUS_ENDPOINT, &status.to_string()),
        (Some(url), _) => url.to_string(),
        (None, _) if address.contains(':') => format!("http://[{address}]/"),
        (None, _) => format!("http://{address}/"),
    };
    let url = reqwest::Url::parse(&text).map_err(|e| format!("invalid url: {e}"))?;
    match url.scheme() {
        "http" | "https" => Ok(url),
        other => Err(format!("unsupported url scheme {other:?}: expected http or https")),
    }
}

fn judge_status(code: u16, params: &HttpParams) -> CheckResult {
    let expected = match &params.expect_status {
        Some(list) if !list.is_empty() => list.contains(&code),
        _ => (200..300).contains(&code),
    };
    if expected {
        CheckResult::new(Status::Ok, format!("HTTP {code}"))
    } else {
        let wanted = match &params.expect_status {
            Some(list) if !list.is_empty() => format!("{list:?}"),
            _ => "2xx".to_string(),
        };
        CheckResult::new(Status::Critical, format!("HTTP {code}, expected {wanted}"))
    }
}

fn judge_body(body: &[u8], code: u16, params: &HttpParams) -> CheckResult {
    let text = String::from_utf8_lossy(body);
    if let Some(needle) = &params.body_contains
        && !text.contains(needle.as_str())
    {
        return CheckResult::new(
            Status::Critical,
            format!("HTTP {code}, body does not contain {needle:?}"),
        );
    }
    if let Some(pattern) = &params.body_regex
        && !pattern.is_match(&text)
    {
        return CheckResult::new(
            Status::Critical,
            format!("HTTP {code}, body does not match /{}/", pattern.as_str()),
        );
    }
    CheckResult::new(Status::Ok, format!("HTTP {code}, body matches"))
}

/// At most [`MAX_BODY`] bytes: an endless body is cut, not waited for.
async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_BODY - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_BODY {
            break;
        }
    }
    Ok(body)
}

/// A request that got no response: the connection, TLS or protocol failed.
fn failure(e: &reqwest::Error, not_after: Option<i64>, params: &HttpParams) -> CheckResult {
    if let Some(not_after) = not_after.filter(|t| *t < now_s())
        && params.insecure_tls != Some(true)
    {
        return CheckResult::new(
            Status::Critical,
            format!("TLS certificate expired on {}", utc_date(not_after)),
        )
        .metric("tls_days_left", tls_days_left(not_after));
    }
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_redirect() {
        "too many redirects"
    } else {
        "request failed"
    };
    CheckResult::new(Status::Critical, format!("{what}: {}", error_text(e)))
}

/// A URL without its user and password.
fn redacted(url: &reqwest::Url) -> String {
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.to_string()
}

fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
