//! The TLS client configuration every outbound connection uses: the system's root
//! certificates plus the operator's extra CA files (a company CA, a test CA), with rustls.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// The trust roots cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A CA file is unreadable or holds no certificate.
    #[error("CA file {path} (plugins.network.extra_ca_files): {message}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// rustls refused the configuration.
    #[error("TLS setup: {0}")]
    Setup(String),
}

/// A client configuration trusting the system roots and every certificate in `extra_ca_files`
/// (PEM). Unreadable system certificates are skipped with a warning, as other TLS clients do.
pub fn client_config(extra_ca_files: &[PathBuf]) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    if !native.errors.is_empty() {
        tracing::warn!(errors = native.errors.len(), "some system root certificates could not be loaded");
    }
    let (_, ignored) = roots.add_parsable_certificates(native.certs);
    if ignored > 0 {
        tracing::debug!(ignored, "system root certificates rustls cannot use");
    }
    for path in extra_ca_files {
        for certificate in read_certificates(path)? {
            roots.add(certificate).map_err(|e| TlsError::CaFile { path: path.clone(), message: e.to_string() })?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let fail = |message: String| TlsError::CaFile { path: path.to_owned(), message };
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|e| fail(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(e.to_string()))?;
    if certificates.is_empty() {
        return Err(fail("no PEM certificate (-----BEGIN CERTIFICATE-----) found".to_owned()));
    }
    Ok(certificates)
}
