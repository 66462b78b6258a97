//! Connections to the endpoint: TCP (nodelay), TLS 1.2/1.3 with rustls + aws-lc-rs, HTTP/1.1 with hyper.
//!
//! Each worker owns one connection and reconnects after a transport error, so `--concurrency N` means N
//! connections and N requests in flight, with no pool between them.

use std::path::Path;
use std::sync::Arc;

use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use coffer_client::tls::{default_ca_bundle, load_roots};

use crate::body::ReqBody;

/// Where requests go: `http(s)://host[:port]`, path-style.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub https: bool,
    /// Host to connect to (brackets stripped for IPv6).
    pub host: String,
    pub port: u16,
    /// The `Host` header (and signed host): the authority as given.
    pub authority: String,
    /// `scheme://authority`, to which a path is appended.
    pub base: String,
}

impl Endpoint {
    pub fn parse(s: &str) -> Result<Endpoint, String> {
        let uri: http::Uri = s
            .trim_end_matches('/')
            .parse()
            .map_err(|e| format!("--endpoint {s:?}: {e}"))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => {
                return Err(format!(
                    "--endpoint {s:?} must start with http:// or https://"
                ));
            }
        };
        let authority = uri
            .authority()
            .ok_or_else(|| format!("--endpoint {s:?} has no host"))?;
        if uri.path() != "/" && !uri.path().is_empty() {
            return Err(format!(
                "--endpoint {s:?} must not have a path (addressing is path-style)"
            ));
        }
        if uri.query().is_some() {
            return Err(format!("--endpoint {s:?} must not have a query"));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let scheme = if https { "https" } else { "http" };
        Ok(Endpoint {
            https,
            host,
            port,
            authority: authority.as_str().to_owned(),
            base: format!("{scheme}://{}", authority.as_str()),
        })
    }
}

/// Connects workers to the endpoint.
pub struct Transport {
    endpoint: Endpoint,
    tls: Option<(TlsConnector, ServerName<'static>)>,
}

impl Transport {
    pub fn new(
        endpoint: Endpoint,
        ca_bundle: Option<&Path>,
        insecure: bool,
    ) -> Result<Transport, String> {
        if !endpoint.https {
            return Ok(Transport {
                endpoint,
                tls: None,
            });
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?;
        let mut config = if insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
                .with_no_client_auth()
        } else {
            let bundle = match ca_bundle {
                Some(p) => p.to_path_buf(),
                None => default_ca_bundle()
                    .ok_or("no CA bundle found: give --ca-bundle or --insecure")?,
            };
            builder
                .with_root_certificates(load_roots(&bundle)?)
                .with_no_client_auth()
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let name = ServerName::try_from(endpoint.host.clone())
            .map_err(|e| format!("--endpoint host {:?}: {e}", endpoint.host))?;
        Ok(Transport {
            endpoint,
            tls: Some((TlsConnector::from(Arc::new(config)), name)),
        })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// A new HTTP/1.1 connection; its driver runs as a spawned task until the sender is dropped.
    pub async fn connect(&self) -> Result<SendRequest<ReqBody>, String> {
        let tcp = TcpStream::connect((self.endpoint.host.as_str(), self.endpoint.port))
            .await
            .map_err(|e| format!("connect {}:{}: {e}", self.endpoint.host, self.endpoint.port))?;
        tcp.set_nodelay(true)
            .map_err(|e| format!("TCP_NODELAY: {e}"))?;
        let mut builder = hyper::client::conn::http1::Builder::new();
        builder.max_buf_size(1 << 20);
        match &self.tls {
            None => {
                let (sender, conn) = builder
                    .handshake(TokioIo::new(tcp))
                    .await
                    .map_err(|e| format!("HTTP handshake: {e}"))?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                Ok(sender)
            }
            Some((connector, name)) => {
                let tls = connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| format!("TLS handshake with {}: {e}", self.endpoint.authority))?;
                let (sender, conn) = builder
                    .handshake(TokioIo::new(tls))
                    .await
                    .map_err(|e| format!("HTTP handshake: {e}"))?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                Ok(sender)
            }
        }
    }
}

/// `--insecure`: accept any certificate, but still check the handshake signatures.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let e = Endpoint::parse("https://127.0.0.1:9443").unwrap();
        assert!(e.https);
        assert_eq!((e.host.as_str(), e.port), ("127.0.0.1", 9443));
        assert_eq!(e.authority, "127.0.0.1:9443");
        assert_eq!(e.base, "https://127.0.0.1:9443");
        let e = Endpoint::parse("http://localhost/").unwrap();
        assert_eq!((e.host.as_str(), e.port, e.https), ("localhost", 80, false));
        let e = Endpoint::parse("https://[::1]:7443").unwrap();
        assert_eq!(
            (e.host.as_str(), e.authority.as_str()),
            ("::1", "[::1]:7443")
        );
        assert!(Endpoint::parse("ftp://x").is_err());
        assert!(Endpoint::parse("https://x/bucket").is_err());
        assert!(Endpoint::parse("127.0.0.1:9000").is_err());
    }
}
