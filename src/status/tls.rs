//! HTTPS for the status endpoint off loopback (protocol.md §7): the operator's certificate, or
//! one the box makes at its first start and keeps in `state_dir` (0600), renewed before it
//! expires. Its SHA-256 fingerprint is what a technician compares (`snbox status` prints it).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use jiff::{SignedDuration, Timestamp};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::central::identity::write_atomically;
use crate::settings::StatusTls;

/// The certificate the box makes, and its key, in the state directory.
pub const CERT_FILE: &str = "status-cert.pem";
pub const KEY_FILE: &str = "status-key.pem";
/// A made certificate is valid this long…
const VALID_DAYS: i64 = 825;
/// …and made again once it has less than this left (at start, and each day).
const RENEW_DAYS: i64 = 30;

/// The server side of the status endpoint's TLS, swappable when the certificate is renewed.
pub struct ServerTls {
    config: RwLock<Arc<rustls::ServerConfig>>,
    view: RwLock<CertView>,
    source: Source,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct CertView {
    /// `sha256:HEX` of the certificate's DER.
    pub fingerprint: String,
    pub not_after: Option<Timestamp>,
    /// Made by the box (`true`) or the operator's.
    pub generated: bool,
    pub cert_file: PathBuf,
}

enum Source {
    Files { cert: PathBuf, key: PathBuf },
    Generated { dir: PathBuf, names: Vec<String> },
}

impl ServerTls {
    /// The TLS the settings ask for; `None` for plain HTTP. `names`: what a made certificate
    /// is for (the listen address, the host name).
    pub fn new(tls: &StatusTls, state_dir: &Path, names: Vec<String>) -> Result<Option<ServerTls>, String> {
        let source = match tls {
            StatusTls::Plain => return Ok(None),
            StatusTls::Files { cert, key } => Source::Files {
                cert: cert.clone(),
                key: key.clone(),
            },
            StatusTls::Generated => Source::Generated {
                dir: state_dir.to_path_buf(),
                names,
            },
        };
        let (config, view) = source.load(Timestamp::now())?;
        Ok(Some(ServerTls {
            config: RwLock::new(Arc::new(config)),
            view: RwLock::new(view),
            source,
        }))
    }

    /// The configuration for the next handshake.
    pub fn config(&self) -> Option<Arc<rustls::ServerConfig>> {
        self.config.read().ok().map(|c| c.clone())
    }

    pub fn view(&self) -> Option<CertView> {
        self.view.read().ok().map(|v| v.clone())
    }

    /// Makes a new certificate when the made one is close to expiry; true when it did.
    pub fn renew_if_due(&self, now: Timestamp) -> bool {
        if !matches!(self.source, Source::Generated { .. }) {
            return false;
        }
        let due = self
            .view()
            .and_then(|v| v.not_after)
            .is_none_or(|t| t.duration_since(now) < SignedDuration::from_hours(24 * RENEW_DAYS));
        if !due {
            return false;
        }
        match self.source.load(now) {
            Ok((config, view)) => {
                tracing::info!(fingerprint = %view.fingerprint, "the status endpoint's certificate was renewed");
                if let Ok(mut c) = self.config.write() {
                    *c = Arc::new(config);
                }
                if let Ok(mut v) = self.view.write() {
                    *v = view;
                }
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "the status endpoint's certificate could not be renewed");
                false
            }
        }
    }
}

impl Source {
    fn load(&self, now: Timestamp) -> Result<(rustls::ServerConfig, CertView), String> {
        let (cert_path, key_path, generated) = match self {
            Source::Files { cert, key } => (cert.clone(), key.clone(), false),
            Source::Generated { dir, names } => {
                let (cert, key) = (dir.join(CERT_FILE), dir.join(KEY_FILE));
                if !usable(&cert, now) {
                    make(&cert, &key, names, now)?;
                }
                (cert, key, true)
            }
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
            .and_then(|i| i.collect::<Result<_, _>>())
            .map_err(|e| format!("status certificate {}: {e}", cert_path.display()))?;
        let leaf = certs
            .first()
            .ok_or_else(|| format!("status certificate {}: no certificate in it", cert_path.display()))?
            .clone();
        let key =
            PrivateKeyDer::from_pem_file(&key_path).map_err(|e| format!("status key {}: {e}", key_path.display()))?;
        let config = rustls::ServerConfig::builder_with_provider(crate::central::trust::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS configuration: {e}"))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| {
                format!(
                    "status certificate {} and key {}: {e}",
                    cert_path.display(),
                    key_path.display()
                )
            })?;
        let view = CertView {
            fingerprint: crate::tls::fingerprint(&leaf),
            not_after: not_after(&leaf),
            generated,
            cert_file: cert_path,
        };
        Ok((config, view))
    }
}

fn not_after(der: &[u8]) -> Option<Timestamp> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Timestamp::from_second(cert.validity().not_after.timestamp()).ok()
}

/// A made certificate that exists, parses and has more than [`RENEW_DAYS`] left.
fn usable(cert: &Path, now: Timestamp) -> bool {
    let Ok(der) = CertificateDer::from_pem_file(cert) else {
        return false;
    };
    not_after(&der).is_some_and(|t| t.duration_since(now) > SignedDuration::from_hours(24 * RENEW_DAYS))
}

/// A self-signed certificate for `names` (host names or addresses), key and certificate
/// written 0600.
fn make(cert_path: &Path, key_path: &Path, names: &[String], now: Timestamp) -> Result<(), String> {
    let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(|e| format!("certificate names: {e}"))?;
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("snbox status {}", names.first().map_or("", |n| n.as_str())),
    );
    let date = |t: Timestamp| {
        let d = t.to_zoned(jiff::tz::TimeZone::UTC).date();
        rcgen::date_time_ymd(i32::from(d.year()), d.month() as u8, d.day() as u8)
    };
    params.not_before = date(now - SignedDuration::from_hours(24));
    params.not_after = date(now + SignedDuration::from_hours(24 * VALID_DAYS));
    let key = rcgen::KeyPair::generate().map_err(|e| format!("a key for the status certificate: {e}"))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| format!("the status certificate: {e}"))?;
    write_atomically(key_path, key.serialize_pem().as_bytes(), 0o600)
        .map_err(|e| format!("{}: {e}", key_path.display()))?;
    write_atomically(cert_path, cert.pem().as_bytes(), 0o600).map_err(|e| format!("{}: {e}", cert_path.display()))?;
    tracing::info!(cert = %cert_path.display(), "the status endpoint has a new certificate, made by the box");
    Ok(())
}

/// What a made certificate is for: the listen address when it is one machine's, the host name,
/// and `localhost` (for `snbox status` on the box).
pub fn names_for(listen: std::net::SocketAddr) -> Vec<String> {
    let mut names = Vec::new();
    if !listen.ip().is_unspecified() {
        names.push(listen.ip().to_string());
    }
    names.extend(crate::host_name());
    names.push("localhost".to_string());
    names.push("127.0.0.1".to_string());
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_made_certificate_is_kept_then_made_again_when_it_nears_expiry() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().expect("tempdir");
        let names = vec!["localhost".to_string()];
        let now = Timestamp::now();
        let first = ServerTls::new(&StatusTls::Generated, dir.path(), names.clone())
            .expect("tls")
            .expect("generated");
        let view = first.view().expect("view");
        assert!(view.generated);
        assert!(
            view.not_after
                .is_some_and(|t| t.duration_since(now) > SignedDuration::from_hours(24 * 800))
        );
        let again = ServerTls::new(&StatusTls::Generated, dir.path(), names.clone())
            .expect("tls")
            .expect("generated");
        assert_eq!(
            again.view().expect("view").fingerprint,
            view.fingerprint,
            "kept across starts"
        );
        // Twenty days before the made one expires, it is made again (at start, or each day).
        let later = now + SignedDuration::from_hours(24 * (VALID_DAYS - 20));
        assert!(again.renew_if_due(later));
        assert_ne!(again.view().expect("view").fingerprint, view.fingerprint, "renewed");
        assert!(!again.renew_if_due(now), "not again while it has long to live");
    }
}
