//! TLS to the central server (protocol.md §5): rustls with ring, trusting the system's roots,
//! or only a configured CA file, or only the certificate pinned at pairing.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

/// Which servers to trust.
#[derive(Debug, Clone)]
pub enum Trust {
    /// The system's roots (rustls-native-certs).
    System,
    /// Only the CAs of this PEM file.
    CaFile(std::path::PathBuf),
    /// Only a server whose leaf certificate has this SHA-256 (`sha256:HEX`), as pinned at
    /// pairing. Names and dates are not checked: the pin is the trust.
    Pinned(String),
}

/// `sha256:` and the lowercase hex SHA-256 of `der`.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// A `sha256:HEX` argument in canonical form, or why not.
pub fn parse_fingerprint(text: &str) -> Result<String, String> {
    let hex = text
        .strip_prefix("sha256:")
        .ok_or_else(|| format!("{text:?}: expected sha256:<64 hex digits>"))?;
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!("{text:?}: expected sha256:<64 hex digits>"));
    }
    Ok(format!("sha256:{}", hex.to_ascii_lowercase()))
}

/// The leaf certificate the server showed, for pairing to store as the pin.
pub type Shown = Arc<Mutex<Option<CertificateDer<'static>>>>;

pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client configuration for `trust`; `shown` receives the server's leaf certificate.
pub fn client_config(trust: &Trust, shown: Shown) -> Result<rustls::ClientConfig, String> {
    let provider = provider();
    let verifier: Arc<dyn ServerCertVerifier> = match trust {
        Trust::Pinned(hash) => Arc::new(PinnedVerifier {
            hash: hash.clone(),
            provider: provider.clone(),
            shown,
        }),
        Trust::System | Trust::CaFile(_) => {
            let roots = match trust {
                Trust::CaFile(path) => roots_from_file(path)?,
                _ => system_roots()?,
            };
            let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| format!("cannot build the TLS verifier: {e}"))?;
            Arc::new(Showing { inner, shown })
        }
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS configuration: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(config)
}

fn system_roots() -> Result<RootCertStore, String> {
    let loaded = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(loaded.certs);
    if added == 0 {
        return Err(
            "no trusted CA certificates on this system (install ca-certificates, or set central.ca_file)".into(),
        );
    }
    Ok(roots)
}

fn roots_from_file(path: &Path) -> Result<RootCertStore, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("central.ca_file {}: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("central.ca_file {}: {e}", path.display()))?;
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(format!(
            "central.ca_file {}: no usable CA certificate in it",
            path.display()
        ));
    }
    Ok(roots)
}

/// WebPKI verification that also keeps the leaf it was shown.
#[derive(Debug)]
struct Showing {
    inner: Arc<WebPkiServerVerifier>,
    shown: Shown,
}

impl ServerCertVerifier for Showing {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Ok(mut shown) = self.shown.lock() {
            *shown = Some(end_entity.clone().into_owned());
        }
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Accepts exactly the server whose leaf has the pinned hash; the handshake signatures are
/// still verified, so the server must hold the certificate's key.
#[derive(Debug)]
struct PinnedVerifier {
    hash: String,
    provider: Arc<CryptoProvider>,
    shown: Shown,
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Ok(mut shown) = self.shown.lock() {
            *shown = Some(end_entity.clone().into_owned());
        }
        let seen = fingerprint(end_entity.as_ref());
        if seen == self.hash {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "the server's certificate is {seen}, not the pinned {}",
                self.hash
            )))
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
