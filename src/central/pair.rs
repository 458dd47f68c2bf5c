//! `snbox pair` (protocol.md §5.1): trade a one-time token for the box's identity.
//!
//! Nothing is written unless the central server accepted the token and answered with a
//! complete identity. With `--ca-cert-hash` the server is trusted on first contact only if its
//! leaf certificate has that SHA-256, and the certificate is kept as the only trust for later
//! calls. The token and the credential appear in no message.

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;
use serde_json::json;

use super::client::{CentralError, Client, SMALL_ANSWER};
use super::identity::{Identity, IdentityError, Pin};
use super::trust::{self, Trust};
use crate::secret::Secret;

#[derive(Debug, thiserror::Error)]
pub enum PairError {
    #[error(
        "this box is already paired with {url} as {box_id}; pair again with --force (the old credential is then forgotten)"
    )]
    AlreadyPaired { url: String, box_id: String },
    #[error("the central server refused the pairing token (HTTP {0}): it is invalid, expired or already used")]
    Refused(u16),
    #[error("--central {0}")]
    Url(String),
    #[error("--ca-cert-hash: {0}")]
    Hash(String),
    #[error("the central server's certificate is {seen}, not {expected} (--ca-cert-hash): nothing was written")]
    PinMismatch { seen: String, expected: String },
    #[error("TLS: {0}")]
    Tls(String),
    #[error(transparent)]
    Central(#[from] CentralError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
}

impl PairError {
    /// Bad input or a refusal (exit 2), rather than a failure to reach the server (exit 1).
    pub fn is_bad_input(&self) -> bool {
        !matches!(
            self,
            PairError::Central(_) | PairError::Identity(IdentityError::Write { .. })
        )
    }
}

/// What `snbox pair` was asked.
pub struct Request {
    pub central: String,
    pub token: Secret,
    pub ca_cert_hash: Option<String>,
    pub force: bool,
    /// Trust when no hash is given: the settings' `central.ca_file`, or the system's roots.
    pub trust: Trust,
}

#[derive(Deserialize)]
struct Answer {
    box_id: String,
    node: String,
    credential: String,
    #[serde(default)]
    config_poll_s: Option<u32>,
}

/// An `https://` URL, or `http://` to a loopback host (tests, the development central).
pub fn central_url(text: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(text).map_err(|e| format!("{text:?} is not a URL ({e})"))?;
    crate::settings::check_central_url(&url).map_err(|why| format!("{text}: {why}"))?;
    Ok(url)
}

pub async fn pair(state_dir: &Path, request: Request) -> Result<Identity, PairError> {
    if !request.force
        && let Some(existing) = Identity::load(state_dir)?
    {
        return Err(PairError::AlreadyPaired {
            url: existing.central_url.to_string(),
            box_id: existing.box_id,
        });
    }
    let url = central_url(&request.central).map_err(PairError::Url)?;
    let pinned = match &request.ca_cert_hash {
        Some(text) => {
            if url.scheme() != "https" {
                return Err(PairError::Hash("pinning needs an https:// central URL".into()));
            }
            Some(trust::parse_fingerprint(text).map_err(PairError::Hash)?)
        }
        None => None,
    };
    let trust = pinned.clone().map_or(request.trust.clone(), Trust::Pinned);
    let client = Client::new(&url, &trust, None).map_err(PairError::Tls)?;
    let facts = json!({
        "token": request.token.expose(),
        "hostname": hostname(),
        "machine_id": machine_id(),
        "arch": std::env::consts::ARCH,
        "agent_version": env!("CARGO_PKG_VERSION"),
    });
    let answered = client
        .post("/pair", &facts, SMALL_ANSWER, Duration::from_secs(30))
        .await;
    let shown = client.shown.lock().ok().and_then(|s| s.clone());
    if let (Some(expected), Some(leaf)) = (&pinned, &shown) {
        let seen = trust::fingerprint(leaf.as_ref());
        if &seen != expected {
            return Err(PairError::PinMismatch {
                seen,
                expected: expected.clone(),
            });
        }
    }
    let answer: Answer = match answered {
        Ok(a) => a.json()?,
        Err(CentralError::Unauthorized(status)) => return Err(PairError::Refused(status)),
        Err(e) => return Err(e.into()),
    };
    if answer.box_id.is_empty() || answer.credential.is_empty() || answer.node.is_empty() {
        return Err(CentralError::Answer("box_id, node and credential must not be empty".into()).into());
    }
    let pin = match (pinned, shown) {
        (Some(sha256), Some(leaf)) => Some(Pin {
            sha256,
            certificate_pem: pem(leaf.as_ref()),
        }),
        _ => None,
    };
    let identity = Identity {
        central_url: url,
        box_id: answer.box_id,
        node: answer.node,
        credential: Secret::new(answer.credential),
        pin,
        config_poll_s: answer.config_poll_s,
        paired_at: jiff::Timestamp::now(),
    };
    identity.save(state_dir)?;
    Ok(identity)
}

fn pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

fn machine_id() -> String {
    ["/etc/machine-id", "/var/lib/dbus/machine-id"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|id| id.trim().to_string())
        .unwrap_or_default()
}
