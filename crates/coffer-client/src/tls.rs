//! CA bundles for rustls clients.

use std::path::{Path, PathBuf};

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

/// Where the CA bundle comes from when `--ca-bundle` is not given: as the aws CLI, then OpenSSL, then Debian.
pub fn default_ca_bundle() -> Option<PathBuf> {
    ["AWS_CA_BUNDLE", "SSL_CERT_FILE"]
        .iter()
        .filter_map(std::env::var_os)
        .map(PathBuf::from)
        .chain(std::iter::once(PathBuf::from(
            "/etc/ssl/certs/ca-certificates.crt",
        )))
        .find(|p| p.is_file())
}

pub fn load_roots(path: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read CA bundle {}: {e}", path.display()))?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("bad certificate in {}: {e}", path.display()))?;
        // Bundles of the system can hold certificates webpki rejects; skip those, as other clients do.
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        return Err(format!("no usable CA certificate in {}", path.display()));
    }
    Ok(roots)
}
