//! TLS for the admin API: the rustls server configuration (ring, TLS 1.2 and 1.3, ALPN h2 and
//! http/1.1) and the self-signed certificate `init` makes when none is given.
//!
//! It does not renew certificates or support client certificates.

use std::sync::Arc;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use thiserror::Error;
use zeroize::Zeroizing;

/// Why a TLS certificate or key is unusable.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The PEM holds no certificate.
    #[error("no certificate found in the certificate PEM")]
    NoCertificate,
    /// The PEM holds no private key.
    #[error("no private key found in the key PEM")]
    NoKey,
    /// The PEM is malformed.
    #[error("malformed PEM")]
    Pem,
    /// rustls refused the pair (key does not match, unsupported algorithm).
    #[error("certificate and key refused: {0}")]
    Rustls(String),
    /// The self-signed certificate could not be generated.
    #[error("certificate generation failed: {0}")]
    Generate(String),
}

/// A rustls server configuration from PEM bytes.
///
/// # Errors
/// [`TlsError::NoCertificate`], [`TlsError::NoKey`], [`TlsError::Pem`], [`TlsError::Rustls`].
pub fn tls_server_config(
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<rustls::ServerConfig, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|_| TlsError::Pem)?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate);
    }
    let key: PrivateKeyDer<'static> =
        PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| match e {
            pem::Error::NoItemsFound => TlsError::NoKey,
            _ => TlsError::Pem,
        })?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
    .map_err(|e| TlsError::Rustls(e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| TlsError::Rustls(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Loads `<data_dir>/tls/cert.pem` and `key.pem` into a server configuration.
///
/// # Errors
/// [`TlsError::Read`] and those of [`tls_server_config`].
pub fn load_tls(data_dir: &std::path::Path) -> Result<rustls::ServerConfig, TlsError> {
    let read = |rel: &str| {
        let p = data_dir.join(rel);
        std::fs::read(&p).map_err(|source| TlsError::Read {
            path: p.display().to_string(),
            source,
        })
    };
    let cert = read(crate::core::paths::TLS_CERT)?;
    let key = Zeroizing::new(read(crate::core::paths::TLS_KEY)?);
    tls_server_config(&cert, &key)
}

/// A self-signed certificate (PEM) and its key (PEM) for `names` (DNS names or IPs).
///
/// # Errors
/// [`TlsError::Generate`] when a name is unusable.
pub fn self_signed(names: Vec<String>) -> Result<(String, Zeroizing<String>), TlsError> {
    let ck =
        rcgen::generate_simple_self_signed(names).map_err(|e| TlsError::Generate(e.to_string()))?;
    Ok((ck.cert.pem(), Zeroizing::new(ck.key_pair.serialize_pem())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (String, Zeroizing<String>) {
        self_signed(vec!["localhost".into()]).expect("self-signed")
    }

    #[test]
    fn a_generated_pair_makes_a_config() {
        let (cert, key) = pair();
        assert!(tls_server_config(cert.as_bytes(), key.as_bytes()).is_ok());
    }

    #[test]
    fn pem_errors_are_typed() {
        let (cert, key) = pair();
        let no_cert = tls_server_config(key.as_bytes(), key.as_bytes());
        assert!(
            matches!(no_cert, Err(TlsError::NoCertificate)),
            "{no_cert:?}"
        );
        let no_key = tls_server_config(cert.as_bytes(), cert.as_bytes());
        assert!(matches!(no_key, Err(TlsError::NoKey)), "{no_key:?}");
        let bad = b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        let malformed = tls_server_config(bad, key.as_bytes());
        assert!(matches!(malformed, Err(TlsError::Pem)), "{malformed:?}");
        let (other_cert, _) = pair();
        let mismatch = tls_server_config(other_cert.as_bytes(), key.as_bytes());
        assert!(matches!(mismatch, Err(TlsError::Rustls(_))), "{mismatch:?}");
    }
}
