//! HTTPS calls to the central server: one reqwest client on our rustls configuration, every
//! call with a deadline, every answer read up to a limit, request bodies over 1 KiB gzipped,
//! and answers turned into the cases protocol.md §5 names (revoked, retry after, failure).

use std::io::Write;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::trust::{self, Shown, Trust};
use crate::secret::Secret;
use crate::tls::error_text;

/// Bodies this size and above are sent gzipped (protocol.md §5).
const GZIP_FROM: usize = 1024;
/// Answers other than documents are small; anything bigger is a lying server.
pub const SMALL_ANSWER: usize = 64 * 1024;
/// The longest wait a `Retry-After` may impose.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

#[derive(Debug, thiserror::Error)]
pub enum CentralError {
    #[error("the central server refused the credential (HTTP {0})")]
    Unauthorized(u16),
    #[error("the central server is busy (HTTP {status}); retrying in {}s", after.as_secs())]
    RetryAfter { status: u16, after: Duration },
    #[error("the central server answered HTTP {status}: {excerpt}")]
    Status { status: u16, excerpt: String },
    #[error("cannot reach the central server: {0}")]
    Transport(String),
    #[error("no answer from the central server within {0}s")]
    Timeout(u64),
    #[error("the central server's answer does not follow the protocol: {0}")]
    Answer(String),
}

impl CentralError {
    /// The server refused the box's credential (401): not worth retrying.
    pub fn is_revoked(&self) -> bool {
        matches!(self, CentralError::Unauthorized(_))
    }
}

/// A client for one central server.
pub struct Client {
    http: reqwest::Client,
    base: String,
    credential: Option<Secret>,
    /// The last leaf certificate the server showed.
    pub shown: Shown,
}

/// An answer: its status, headers we use, and its body.
pub struct Answer {
    pub status: u16,
    pub etag: Option<String>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, CentralError> {
        serde_json::from_slice(&self.body).map_err(|e| CentralError::Answer(format!("invalid JSON ({e})")))
    }
}

impl Client {
    pub fn new(base: &url::Url, trust: &Trust, credential: Option<Secret>) -> Result<Client, String> {
        let shown = Shown::default();
        let tls = trust::client_config(trust, shown.clone())?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .no_proxy()
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("snbox/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Client {
            http,
            base: base.as_str().trim_end_matches('/').to_string(),
            credential,
            shown,
        })
    }

    /// POSTs `body` as JSON to `path`; the answer's body is read up to `limit` bytes.
    pub async fn post<T: Serialize>(
        &self,
        path: &str,
        body: &T,
        limit: usize,
        timeout: Duration,
    ) -> Result<Answer, CentralError> {
        let json = serde_json::to_vec(body).map_err(|e| CentralError::Answer(e.to_string()))?;
        self.post_json_text(path, json, limit, timeout).await
    }

    /// POSTs a body that is already JSON text.
    pub async fn post_json_text(
        &self,
        path: &str,
        json: Vec<u8>,
        limit: usize,
        timeout: Duration,
    ) -> Result<Answer, CentralError> {
        let mut request = self
            .request(reqwest::Method::POST, path)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        request = if json.len() >= GZIP_FROM {
            let mut gz = flate2::write::GzEncoder::new(Vec::with_capacity(json.len() / 4), flate2::Compression::fast());
            let zipped = gz
                .write_all(&json)
                .and_then(|_| gz.finish())
                .map_err(|e| CentralError::Answer(e.to_string()))?;
            request.header(reqwest::header::CONTENT_ENCODING, "gzip").body(zipped)
        } else {
            request.body(json)
        };
        self.send(request, limit, timeout).await
    }

    /// GETs `path`, with `If-None-Match` when an ETag is known.
    pub async fn get(
        &self,
        path: &str,
        etag: Option<&str>,
        limit: usize,
        timeout: Duration,
    ) -> Result<Answer, CentralError> {
        let mut request = self.request(reqwest::Method::GET, path);
        if let Some(tag) = etag {
            request = request.header(reqwest::header::IF_NONE_MATCH, tag);
        }
        self.send(request, limit, timeout).await
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.credential {
            Some(c) => request.bearer_auth(c.expose()),
            None => request,
        }
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        limit: usize,
        timeout: Duration,
    ) -> Result<Answer, CentralError> {
        let exchange = async {
            let mut response = request
                .send()
                .await
                .map_err(|e| CentralError::Transport(error_text(&e)))?;
            let status = response.status().as_u16();
            let etag = header(&response, reqwest::header::ETAG);
            let retry_after = header(&response, reqwest::header::RETRY_AFTER);
            let mut body = Vec::new();
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|e| CentralError::Transport(error_text(&e)))?
            {
                if body.len() + chunk.len() > limit {
                    return Err(CentralError::Answer(format!("an answer over {limit} bytes")));
                }
                body.extend_from_slice(&chunk);
            }
            Ok((status, etag, retry_after, body))
        };
        let (status, etag, retry_after, body) = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| CentralError::Timeout(timeout.as_secs()))??;
        match status {
            200..=299 | 304 => Ok(Answer { status, etag, body }),
            401 | 403 => Err(CentralError::Unauthorized(status)),
            429 | 503 => match retry_after.as_deref().and_then(parse_retry_after) {
                Some(after) => Err(CentralError::RetryAfter { status, after }),
                None => Err(CentralError::Status {
                    status,
                    excerpt: self.excerpt(&body),
                }),
            },
            _ => Err(CentralError::Status {
                status,
                excerpt: self.excerpt(&body),
            }),
        }
    }

    /// The start of an error body, on one line, without our credential should it echo it.
    fn excerpt(&self, body: &[u8]) -> String {
        let text: String = String::from_utf8_lossy(body)
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(200)
            .collect();
        match &self.credential {
            Some(c) if !c.is_empty() => text.replace(c.expose(), "***"),
            _ => text,
        }
    }
}

fn header(response: &reqwest::Response, name: reqwest::header::HeaderName) -> Option<String> {
    response.headers().get(name)?.to_str().ok().map(str::to_string)
}

/// `Retry-After`: seconds, or an HTTP date; at most an hour.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    let wait = match value.parse::<u64>() {
        Ok(s) => Duration::from_secs(s),
        Err(_) => {
            let at = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
            Duration::try_from(at.duration_since(jiff::Timestamp::now())).unwrap_or(Duration::ZERO)
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}
