//! One signed request to Coffer's admin API (`POST /` with `x-coffer-admin-action`), over a
//! fresh HTTPS connection. The body is JSON and its SHA-256 is signed, as the server requires.

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::sigv4::{Payload, Signer};
use crate::tls::load_roots;

/// Where and as whom to call.
pub struct AdminTarget<'a> {
    /// `https://host[:port]`.
    pub endpoint: &'a str,
    pub ca_bundle: &'a Path,
    pub access_key: &'a str,
    pub secret_key: &'a str,
    pub region: &'a str,
}

/// The server's answer: status and body (JSON on success, an S3 error document otherwise).
pub struct AdminResponse {
    pub status: u16,
    pub body: String,
}

pub async fn call(
    target: &AdminTarget<'_>,
    action: &str,
    body: &str,
) -> Result<AdminResponse, String> {
    let uri: http::Uri = target
        .endpoint
        .trim_end_matches('/')
        .parse()
        .map_err(|e| format!("endpoint {:?}: {e}", target.endpoint))?;
    if uri.scheme_str() != Some("https") {
        return Err(format!(
            "endpoint {:?}: the admin API is served over https:// only",
            target.endpoint
        ));
    }
    let authority = uri
        .authority()
        .ok_or_else(|| format!("endpoint {:?} has no host", target.endpoint))?
        .clone();
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = authority.port_u16().unwrap_or(443);
    let url = format!("https://{}/", authority.as_str());

    let body_hash = hex::encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        body.as_bytes(),
    ));
    let signer = Signer::new(target.access_key, target.secret_key, target.region);
    let signed = signer.sign(
        "POST",
        &url,
        &[
            ("host", authority.as_str()),
            ("content-type", "application/json"),
            ("x-coffer-admin-action", action),
        ],
        Payload::Sha256Hex(&body_hash),
        SystemTime::now(),
    )?;
    let mut request = http::Request::post("/")
        .header("host", authority.as_str())
        .header("content-type", "application/json")
        .header("x-coffer-admin-action", action);
    for (name, value) in &signed {
        request = request.header(*name, value.as_str());
    }
    let request = request
        .body(Full::new(Bytes::from(body.to_owned())))
        .map_err(|e| format!("request: {e}"))?;

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(load_roots(target.ca_bundle)?)
        .with_no_client_auth();
    let server_name =
        ServerName::try_from(host.clone()).map_err(|e| format!("server name {host:?}: {e}"))?;
    let tcp = TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", authority.as_str()))?;
    let tls = TlsConnector::from(Arc::new(config))
        .connect(server_name, tcp)
        .await
        .map_err(|e| {
            format!(
                "TLS with {}: {e} (the server's certificate was checked against {}: give the CA \
                 that signed it with --ca-bundle, or the server's data dir with --data-dir)",
                authority.as_str(),
                target.ca_bundle.display()
            )
        })?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| format!("HTTP with {}: {e}", authority.as_str()))?;
    let driver = tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("request to {}: {e}", authority.as_str()))?;
    let status = response.status().as_u16();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("response from {}: {e}", authority.as_str()))?
        .to_bytes();
    driver.abort();
    Ok(AdminResponse {
        status,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    })
}
