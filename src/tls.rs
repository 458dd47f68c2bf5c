//! What the box's HTTPS clients (the HTTP probe, the central server) share: the one
//! certificate verifier, trust roots, and error texts.
//!
//! The verifier shows each server's leaf certificate to its owner, then checks it by WebPKI,
//! by a pinned SHA-256, or not at all (`insecure_tls` checks). The handshake's signatures are
//! always verified, so the server holds the certificate's key.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

/// How a server's certificate is judged.
pub enum Check {
    WebPki(Arc<WebPkiServerVerifier>),
    /// Only a leaf whose DER has this SHA-256 (`sha256:HEX`); names and dates are not looked at.
    Pinned(String),
    /// Any certificate (the check asked for `insecure_tls`).
    Anything,
}

/// Called with each leaf certificate a server shows, before it is judged.
pub type OnLeaf = Box<dyn Fn(&CertificateDer<'_>, &ServerName<'_>) + Send + Sync>;

pub struct Verifier {
    check: Check,
    provider: Arc<CryptoProvider>,
    on_leaf: OnLeaf,
}

impl Verifier {
    pub fn new(check: Check, provider: Arc<CryptoProvider>, on_leaf: OnLeaf) -> Verifier {
        Verifier {
            check,
            provider,
            on_leaf,
        }
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let check = match &self.check {
            Check::WebPki(_) => "webpki",
            Check::Pinned(_) => "pinned",
            Check::Anything => "anything",
        };
        f.debug_struct("Verifier").field("check", &check).finish()
    }
}

/// A TLS client configuration that judges servers with `verifier`, with no session resumption:
/// a resumed session shows no certificate, and every check must see the server's own.
pub fn client_config(provider: &Arc<CryptoProvider>, verifier: Verifier) -> Result<rustls::ClientConfig, String> {
    let mut tls = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS configuration: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    tls.resumption = rustls::client::Resumption::disabled();
    Ok(tls)
}

/// The system's trusted roots (rustls-native-certs); empty when the system has none.
pub fn system_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    roots
}

/// The certificates of a PEM file, at least one; errors start with the file's path.
pub fn pem_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .collect();
    let certs = certs.map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate in it", path.display()));
    }
    Ok(certs)
}

/// An HTTP client error's causes on one line, most specific last. reqwest's own top line
/// ("error sending request for url (…)") is left out: it repeats the URL, which may carry
/// credentials.
pub fn error_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let skip = err
            .downcast_ref::<reqwest::Error>()
            .is_some_and(|r| r.url().is_some() && err.source().is_some());
        let text = err.to_string();
        if !skip && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = err.source();
    }
    if parts.is_empty() {
        return "request failed".to_string();
    }
    parts.join(": ")
}

/// `sha256:` and the lowercase hex SHA-256 of `der`.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        (self.on_leaf)(end_entity, server_name);
        match &self.check {
            Check::WebPki(v) => v.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now),
            Check::Pinned(hash) => {
                let seen = fingerprint(end_entity.as_ref());
                if &seen == hash {
                    Ok(ServerCertVerified::assertion())
                } else {
                    Err(rustls::Error::General(format!(
                        "the server's certificate is {seen}, not the pinned {hash}"
                    )))
                }
            }
            Check::Anything => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}
