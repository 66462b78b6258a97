//! TLS: a given certificate and key, or a local CA and a server certificate generated on first
//! start under `<data-dir>/tls/` (private keys mode 0600) and reused afterwards. The server
//! certificate is re-issued by the same CA when the names it must cover change.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

pub struct TlsMaterial {
    pub config: Arc<ServerConfig>,
    /// The CA clients should trust, when we generated it.
    pub ca_bundle: Option<PathBuf>,
}

fn write_file(path: &Path, contents: &str, mode: u32) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    f.write_all(contents.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    fs::rename(&tmp, path).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn ca_params() -> Result<CertificateParams, String> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "Coffer local CA");
    dn.push(DnType::OrganizationName, "Coffer");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(3650);
    Ok(params)
}

fn server_names(domain: Option<&str>) -> Vec<String> {
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if let Some(d) = domain {
        names.push(d.to_owned());
        names.push(format!("*.{d}"));
    }
    names
}

/// Generates (or reuses) the local CA and server certificate in `<data_dir>/tls`.
fn ensure_generated(
    data_dir: &Path,
    domain: Option<&str>,
) -> Result<(PathBuf, PathBuf, PathBuf), String> {
    let dir = data_dir.join("tls");
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let ca_pem = dir.join("ca.pem");
    let ca_key_pem = dir.join("ca-key.pem");
    let cert_pem = dir.join("server.pem");
    let key_pem = dir.join("server-key.pem");
    let names_file = dir.join("server-names.txt");

    let ca_key = if ca_pem.exists() && ca_key_pem.exists() {
        let text = fs::read_to_string(&ca_key_pem)
            .map_err(|e| format!("cannot read {}: {e}", ca_key_pem.display()))?;
        KeyPair::from_pem(&text).map_err(|e| format!("{}: {e}", ca_key_pem.display()))?
    } else {
        let key = KeyPair::generate().map_err(|e| e.to_string())?;
        let cert = ca_params()?.self_signed(&key).map_err(|e| e.to_string())?;
        write_file(&ca_key_pem, &key.serialize_pem(), 0o600)?;
        write_file(&ca_pem, &cert.pem(), 0o644)?;
        let _ = fs::remove_file(&cert_pem); // a new CA means a new server certificate
        key
    };

    let names = server_names(domain);
    let wanted = names.join("\n");
    let current = fs::read_to_string(&names_file).unwrap_or_default();
    if !(cert_pem.exists() && key_pem.exists() && current == wanted) {
        let issuer = Issuer::new(ca_params()?, ca_key);
        let key = KeyPair::generate().map_err(|e| e.to_string())?;
        let mut params = CertificateParams::new(names).map_err(|e| e.to_string())?;
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "Coffer server");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(1);
        params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(825);
        let cert = params.signed_by(&key, &issuer).map_err(|e| e.to_string())?;
        write_file(&key_pem, &key.serialize_pem(), 0o600)?;
        write_file(&cert_pem, &cert.pem(), 0o644)?;
        write_file(&names_file, &wanted, 0o644)?;
    }
    Ok((cert_pem, key_pem, ca_pem))
}

pub fn load(
    data_dir: &Path,
    given: Option<&(PathBuf, PathBuf)>,
    domain: Option<&str>,
) -> Result<TlsMaterial, String> {
    let (cert_path, key_path, ca_bundle) = match given {
        Some((c, k)) => (c.clone(), k.clone(), None),
        None => {
            let (c, k, ca) = ensure_generated(data_dir, domain)?;
            (c, k, Some(ca))
        }
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .map_err(|e| format!("{}: {e}", cert_path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", cert_path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate found", cert_path.display()));
    }
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .map_err(|e| format!("{}: {e}", key_path.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("TLS certificate/key: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsMaterial {
        config: Arc::new(config),
        ca_bundle,
    })
}
