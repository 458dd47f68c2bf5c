//! TLS to the central server (protocol.md §5) and to webhooks (R17): rustls with ring,
//! trusting the system's roots, or only a configured CA file, or only the certificate pinned
//! at pairing.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rustls::RootCertStore;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;

use crate::tls::{Check, OnLeaf, Verifier};

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

pub use crate::tls::fingerprint;

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
    client_config_for(trust, shown, "central.ca_file")
}

/// [`client_config`], naming the setting a CA file came from (`ca_field`) in its errors.
pub fn client_config_for(trust: &Trust, shown: Shown, ca_field: &str) -> Result<rustls::ClientConfig, String> {
    let provider = provider();
    let check = match trust {
        Trust::Pinned(hash) => Check::Pinned(hash.clone()),
        Trust::System | Trust::CaFile(_) => {
            let roots = match trust {
                Trust::CaFile(path) => roots_from_file(path, ca_field)?,
                _ => {
                    let roots = crate::tls::system_roots();
                    if roots.is_empty() {
                        return Err(format!(
                            "no trusted CA certificates on this system (install ca-certificates, or set {ca_field})"
                        ));
                    }
                    roots
                }
            };
            let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| format!("cannot build the TLS verifier: {e}"))?;
            Check::WebPki(inner)
        }
    };
    let on_leaf: OnLeaf = Box::new(move |leaf, _| {
        if let Ok(mut shown) = shown.lock() {
            *shown = Some(leaf.clone().into_owned());
        }
    });
    let verifier = Arc::new(Verifier::new(check, provider.clone(), on_leaf));
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS configuration: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(config)
}

fn roots_from_file(path: &Path, field: &str) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    let certs = crate::tls::pem_certificates(path).map_err(|e| format!("{field} {e}"))?;
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(format!("{field} {}: no usable CA certificate in it", path.display()));
    }
    Ok(roots)
}
