//! Listeners and connections: HTTPS (rustls) and plain HTTP accept loops, HTTP/1.1 and h2,
//! the connection facts handlers rely on (TLS or not), request ids, and the start-up banner.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use coffer_core::Coffer;
use coffer_core::accounts::SecretSealer;
use coffer_s3::sigv2::SigV2Guard;
use coffer_s3::{
    BrowserPost, ConnectionInfo, CorsResponder, S3Settings, User, UserDirectory, UserSource,
};
use coffer_store::Store;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use s3s::service::S3Service;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::config::Settings;
use crate::drain::ContinueWatch;
use crate::{credentials, tls};

/// How long an unreferenced blob must exist before the periodic GC may remove it: far longer
/// than the gap between a blob's rename and its record's commit.
const GC_GRACE: Duration = Duration::from_secs(3600);
const GC_INTERVAL: Duration = Duration::from_secs(600);
/// Largest error body we rewrite to add `Resource` and `RequestId`.
const MAX_ERROR_BODY: usize = 64 * 1024;

pub async fn run(settings: Settings) -> Result<(), String> {
    let data_dir = settings.data_dir.clone();
    // A new data dir is the owner's alone (0700): plain objects, metadata and sealed secrets
    // are no business of other local users. An existing one keeps the mode it was given.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&data_dir)
        .map_err(|e| format!("cannot create data dir {}: {e}", data_dir.display()))?;
    let data_dir = data_dir
        .canonicalize()
        .map_err(|e| format!("data dir {}: {e}", data_dir.display()))?;

    // Ports first: a start that cannot listen must fail before it generates credentials it
    // would never get to show.
    let https_listener = match settings.https_listen {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };
    let http_listener = match settings.http_listen {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };
    let tls_material = match &https_listener {
        Some(_) => Some(tls::load(
            &data_dir,
            settings.tls_cert.as_ref(),
            settings.domain.as_deref(),
        )?),
        None => None,
    };

    let store = {
        let dir = data_dir.clone();
        tokio::task::spawn_blocking(move || Store::open(&dir))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| {
                let hint = if e.to_string().to_lowercase().contains("already open") {
                    " (another Coffer is running on this data dir: stop it first)"
                } else {
                    ""
                };
                format!("cannot open the store in {}: {e}{hint}", data_dir.display())
            })?
    };
    let master_key_path = settings
        .master_key_file
        .clone()
        .unwrap_or_else(|| data_dir.join("master.key"));
    let master_key = credentials::load_or_generate_master_key(&master_key_path)?;
    let sealer = SecretSealer::new(&master_key).map_err(|e| e.to_string())?;
    let coffer = Coffer::new(store, master_key).map_err(|e| e.to_string())?;

    let root =
        credentials::load_or_generate(&data_dir, settings.root_credentials.clone(), &sealer)?;
    let users = Arc::new(UserDirectory::default());
    users.add(User::new(
        "root",
        root.access_key.clone(),
        root.secret_key.as_str(),
        UserSource::Root,
    ))?;
    for u in &settings.users {
        users.add(User::new(
            u.name.clone(),
            u.access_key.clone(),
            u.secret_key.clone(),
            UserSource::Config,
        ))?;
    }
    for key in coffer
        .load_access_keys()
        .await
        .map_err(|e| format!("cannot load the access keys made with `coffer admin`: {e}"))?
    {
        users
            .add(User::new(
                key.info.user,
                key.info.access_key,
                key.secret.as_str(),
                UserSource::Managed,
            ))
            .map_err(|e| format!("access keys made with `coffer admin`: {e}"))?;
    }

    if settings.ssec_allow_plain_http {
        tracing::warn!(
            "!!! --ssec-allow-plain-http is ON: SSE-C keys are accepted over plain HTTP, where anyone on the path can read them. For test suites only. !!!"
        );
    }
    let s3_settings = S3Settings {
        region: settings.region.clone(),
        domain: settings.domain.clone(),
        ssec_wrong_key_status: settings.ssec_wrong_key_status,
        ssec_allow_plain_http: settings.ssec_allow_plain_http,
    };
    if !settings.sigv2 {
        tracing::info!("SigV2 is off: only AWS4-HMAC-SHA256 requests are accepted");
    }
    let sigv2 = Arc::new(SigV2Guard::new(
        Arc::clone(&users),
        settings.domain.clone(),
        settings.sigv2,
    ));
    let frontend = Frontend {
        cors: Arc::new(CorsResponder::new(
            coffer.clone(),
            s3_settings.domain.clone(),
        )),
        browser_post: Arc::new(BrowserPost::new(
            coffer.clone(),
            Arc::clone(&users),
            s3_settings.clone(),
            Arc::clone(&sigv2),
        )),
        sigv2,
        service: coffer_s3::build_service(coffer.clone(), users, s3_settings)?,
    };

    let mut https_addr = None;
    let mut ca_bundle = None;
    if let (Some(listener), Some(material)) = (https_listener, tls_material) {
        ca_bundle = material.ca_bundle.clone();
        https_addr = Some(listener.local_addr().map_err(|e| e.to_string())?);
        tokio::spawn(accept_loop(
            listener,
            Some(TlsAcceptor::from(material.config)),
            frontend.clone(),
        ));
    }
    let mut http_addr = None;
    if let Some(listener) = http_listener {
        http_addr = Some(listener.local_addr().map_err(|e| e.to_string())?);
        tokio::spawn(accept_loop(listener, None, frontend.clone()));
    }

    print_banner(
        https_addr,
        http_addr,
        ca_bundle.as_deref(),
        &root,
        &settings.region,
    );
    if let Some(path) = &settings.ready_file {
        write_ready_file(path, https_addr, http_addr, ca_bundle.as_deref())?;
    }
    tokio::spawn(periodic_gc(coffer));

    shutdown_signal().await;
    tracing::info!("shutting down");
    Ok(())
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(addr).await.map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::AddrInUse {
            " (another process has it: stop it, or choose other ports with --https-listen and --http-listen)"
        } else {
            ""
        };
        format!("cannot listen on {addr}: {e}{hint}")
    })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
}

/// The start-up pass over the store (crash leftovers; seconds on a store of millions of objects),
/// in the background, then a GC pass every `GC_INTERVAL`.
async fn periodic_gc(coffer: Coffer) {
    let c = coffer.clone();
    match tokio::task::spawn_blocking(move || c.store().collect_orphans()).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "start-up GC pass failed"),
        Err(e) => tracing::warn!(error = %e, "start-up GC pass panicked"),
    }
    loop {
        tokio::time::sleep(GC_INTERVAL).await;
        let c = coffer.clone();
        match tokio::task::spawn_blocking(move || c.store().collect_garbage(GC_GRACE)).await {
            Ok(Ok(report)) if report.removed > 0 => {
                tracing::info!(removed = report.removed, "GC removed orphaned blobs")
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "GC pass failed"),
            _ => {}
        }
    }
}

/// What every connection serves: the S3 service, the CORS answers around it, the SigV2
/// check before it, and browser POST uploads beside it.
#[derive(Clone)]
struct Frontend {
    service: S3Service,
    cors: Arc<CorsResponder>,
    sigv2: Arc<SigV2Guard>,
    browser_post: Arc<BrowserPost>,
}

async fn accept_loop(listener: TcpListener, tls: Option<TlsAcceptor>, frontend: Frontend) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_connection(
            stream,
            peer,
            tls.clone(),
            frontend.clone(),
        ));
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    frontend: Frontend,
) {
    let info = ConnectionInfo {
        secure: tls.is_some(),
        peer: Some(peer),
    };
    let handler = hyper::service::service_fn(move |req: Request<Incoming>| {
        handle(frontend.clone(), info, req)
    });
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let result =
        match tls {
            Some(acceptor) => {
                let tls_stream =
                    match tokio::time::timeout(Duration::from_secs(30), acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => return,
                    };
                builder
                    .serve_connection(TokioIo::new(tls_stream), handler)
                    .await
            }
            None => {
                builder
                    .serve_connection(TokioIo::new(stream), handler)
                    .await
            }
        };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

fn new_request_id() -> String {
    let mut b = [0u8; 8];
    let _ = aws_lc_rs::rand::fill(&mut b);
    hex::encode_upper(b)
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn call_service(service: &S3Service, req: Request<Incoming>) -> Response<s3s::Body> {
    // s3s buffers whole aws-chunked chunks at their declared size: bound them first. A body
    // refused before it was read is drained, so the client reads the error instead of a reset.
    let watch = req.extensions().get::<ContinueWatch>().cloned();
    let req = if crate::chunk_guard::is_aws_chunked(req.headers()) {
        req.map(|body| {
            s3s::Body::http_body(crate::drain::DrainOnDrop::new(
                crate::chunk_guard::ChunkGuard::new(body),
                watch,
            ))
        })
    } else {
        req.map(|body| s3s::Body::http_body(crate::drain::DrainOnDrop::new(body, watch)))
    };
    match service.call(req).await {
        Ok(resp) => resp,
        Err(e) => {
            tracing::error!(error = ?e, "unhandled service error");
            let mut r = Response::new(s3s::Body::from(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>InternalError</Code><Message>We encountered an internal error. Please try again.</Message></Error>".to_owned(),
            ));
            *r.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
            r
        }
    }
}

/// Checks made before s3s sees the request (see `prefilter.rs` and `sigv2.rs`), then s3s;
/// browser POST forms go to Coffer's own handler instead (`form_prelude.rs`, then
/// `coffer_s3::BrowserPost`), which streams their file rather than buffering it as s3s would.
async fn route(
    frontend: &Frontend,
    form_boundary: Option<&str>,
    mut req: Request<Incoming>,
) -> Response<s3s::Body> {
    if let Some(refusal) = refuse_before_routing(&req) {
        return refusal;
    }
    match frontend
        .sigv2
        .check_request(req.method(), req.uri(), req.headers())
    {
        Ok(None) => {}
        Ok(Some(uri)) => *req.uri_mut() = uri,
        Err(r) => return error_response(r.status, r.xml(), true),
    }
    let Some(boundary) = form_boundary else {
        return call_service(&frontend.service, req).await;
    };
    // A body refused before it was all read is drained when dropped, so the client reads the
    // answer instead of a reset.
    let watch = req.extensions().get::<ContinueWatch>().cloned();
    let req = req.map(|body| crate::drain::DrainOnDrop::new(body, watch));
    match crate::form_prelude::read(req, boundary).await {
        Ok((head, form)) => frontend.browser_post.handle(head, form).await,
        Err(e) => error_response(e.status, e.xml(), false),
    }
}

async fn handle(
    frontend: Frontend,
    info: ConnectionInfo,
    mut req: Request<Incoming>,
) -> Result<Response<s3s::Body>, Infallible> {
    let request_id = new_request_id();
    req.extensions_mut().insert(info);
    let continue_watch = ContinueWatch::for_request(req.headers());
    if let Some(w) = &continue_watch {
        req.extensions_mut().insert(w.clone());
    }
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or_default().to_owned();
    let form_boundary = (method == http::Method::POST)
        .then(|| coffer_s3::post_form::form_boundary(req.headers()))
        .flatten();
    let mut resp = if method == http::Method::OPTIONS {
        // CORS preflights are unsigned and s3s routes no OPTIONS: answered from the rules.
        frontend.cors.preflight(req.uri(), req.headers())
    } else {
        let cors = frontend
            .cors
            .actual_request_headers(&method, req.uri(), req.headers());
        let mut resp = route(&frontend, form_boundary.as_deref(), req).await;
        if method == http::Method::GET
            && resp.status() == http::StatusCode::OK
            && coffer_s3::is_get_object_attributes(&query)
            && let Some(bytes) = resp.body().bytes()
            && let Ok(text) = std::str::from_utf8(&bytes)
        {
            *resp.body_mut() = s3s::Body::from(coffer_s3::unquote_attributes_etag(text));
        }
        // Errors too: a page must be able to read why its upload failed.
        for (name, value) in cors {
            if name == http::header::VARY {
                resp.headers_mut().append(name, value);
            } else {
                resp.headers_mut().insert(name, value);
            }
        }
        resp
    };
    if continue_watch.is_some_and(|w| !w.body_requested()) {
        resp.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
    }
    let status = resp.status();
    // s3s error bodies carry neither Resource nor RequestId; S3 clients show both.
    if status.as_u16() >= 400
        && let Some(bytes) = resp.body().bytes()
        && bytes.len() <= MAX_ERROR_BODY
        && let Ok(text) = std::str::from_utf8(&bytes)
        && let Some(at) = text.rfind("</Error>")
    {
        let mut patched = String::with_capacity(text.len() + 128);
        patched.push_str(&text[..at]);
        if !text.contains("<Message>")
            && let Some(code) = text
                .split("<Code>")
                .nth(1)
                .and_then(|r| r.split("</Code>").next())
            && let Some(msg) = coffer_s3::prefilter::default_message(code)
        {
            patched.push_str(&format!("<Message>{}</Message>", xml_escape(msg)));
        }
        if !text.contains("<Resource>") {
            patched.push_str(&format!("<Resource>{}</Resource>", xml_escape(&path)));
        }
        if !text.contains("<RequestId>") {
            patched.push_str(&format!("<RequestId>{request_id}</RequestId>"));
        }
        patched.push_str(&text[at..]);
        let len = patched.len();
        *resp.body_mut() = s3s::Body::from(patched);
        resp.headers_mut()
            .insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(len));
    }
    if let Ok(v) = http::HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-amz-request-id", v.clone());
        resp.headers_mut().insert("x-amz-id-2", v);
    }
    if status.is_server_error() {
        tracing::error!(%method, %path, status = status.as_u16(), request_id, "request failed");
    } else {
        tracing::debug!(%method, %path, status = status.as_u16(), request_id, "request");
    }
    Ok(resp)
}

fn refuse_before_routing(req: &Request<Incoming>) -> Option<Response<s3s::Body>> {
    let refusal =
        coffer_s3::prefilter::refuse_before_routing(req.method(), req.uri(), req.headers())?;
    Some(error_response(refusal.status, refusal.xml(), true))
}

/// An S3 error answered before s3s; `unread_body` closes the connection after it, for a
/// client that may still be sending a body nobody reads.
fn error_response(status: http::StatusCode, xml: String, unread_body: bool) -> Response<s3s::Body> {
    let mut r = Response::new(s3s::Body::from(xml));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/xml"),
    );
    if unread_body {
        r.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
    }
    r
}

fn print_banner(
    https: Option<SocketAddr>,
    http: Option<SocketAddr>,
    ca: Option<&Path>,
    root: &credentials::RootCredentials,
    region: &str,
) {
    let mut out = String::new();
    out.push_str(&format!("Coffer {} is ready.\n", env!("CARGO_PKG_VERSION")));
    if let Some(a) = https {
        out.push_str(&format!("  HTTPS endpoint : https://{}\n", display_addr(a)));
    }
    if let Some(a) = http {
        out.push_str(&format!(
            "  HTTP endpoint  : http://{}   (SSE-C is refused here)\n",
            display_addr(a)
        ));
    }
    if let Some(ca) = ca {
        out.push_str(&format!("  CA bundle      : {}\n", ca.display()));
    }
    out.push_str(&format!("  Access key     : {}\n", root.access_key));
    if root.given {
        out.push_str("  Secret key     : (as given by COFFER_ROOT_SECRET_KEY or root_secret_key in the config file)\n");
    } else if !root.generated {
        out.push_str("  Secret key     : (shown on first start only; kept sealed in the data dir's credentials.toml: delete that file and restart to get a new one)\n");
    }
    if root.generated {
        out.push_str(&format!(
            "  Secret key     : {}   (generated; shown once: copy it now, the data dir keeps it sealed)\n",
            root.secret_key.as_str()
        ));
        out.push_str("\nPaste to configure the aws CLI (this sets your default aws profile):\n");
        out.push_str(&format!(
            "  aws configure set aws_access_key_id {}\n",
            root.access_key
        ));
        out.push_str(&format!(
            "  aws configure set aws_secret_access_key {}\n",
            root.secret_key.as_str()
        ));
        out.push_str(&format!("  aws configure set region {region}\n"));
    }
    if let Some(a) = https {
        out.push_str("\nThen, for example:\n");
        let ca_arg = ca
            .map(|c| format!(" --ca-bundle {}", c.display()))
            .unwrap_or_default();
        out.push_str(&format!(
            "  aws --endpoint-url https://{}{ca_arg} s3 ls\n",
            display_addr(a)
        ));
    }
    print!("{out}");
}

/// `localhost` names the loopback in the banner so the generated certificate matches.
fn display_addr(a: SocketAddr) -> String {
    if a.ip().is_loopback() && a.is_ipv4() {
        format!("localhost:{}", a.port())
    } else {
        a.to_string()
    }
}

fn write_ready_file(
    path: &Path,
    https: Option<SocketAddr>,
    http: Option<SocketAddr>,
    ca: Option<&Path>,
) -> Result<(), String> {
    let json = serde_json::json!({
        "https": https.map(|a| format!("https://{a}")),
        "http": http.map(|a| format!("http://{a}")),
        "ca_bundle": ca.map(|c| c.display().to_string()),
    });
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, json.to_string())
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot write {}: {e}", path.display()))
}
