//! The S3 protocol adapter: the only crate that sees `s3s`.
//!
//! It turns S3 requests into `coffer-core` calls and core errors into S3 error codes (in one
//! place, `errors.rs`), authenticates users, enforces bucket ownership and the SSE-C transport
//! rules, and parses virtual-hosted-style hosts. It must never `Debug`-print an s3s input:
//! those carry the SSE-C key in clear.

mod access;
mod acl_ops;
mod admin;
mod attributes_ops;
mod bucket_ops;
mod copy_ops;
mod cors;
mod cors_ops;
mod errors;
mod host;
mod list_ops;
mod multipart_ops;
mod object_ops;
pub mod policy;
mod policy_ops;
mod post_auth;
mod post_file;
pub mod post_form;
mod post_object;
mod post_policy;
pub mod prefilter;
mod service;
pub mod sigv2;
mod ssec;
mod tagging_ops;
mod users;
mod versioning_ops;

pub use attributes_ops::{is_get_object_attributes, unquote_attributes_etag};
pub use cors::CorsResponder;
pub use host::CofferHost;
pub use post_object::{BrowserPost, PostForm};
pub use users::{User, UserDirectory, UserSource};

use std::net::SocketAddr;
use std::sync::Arc;

use coffer_core::Coffer;
use s3s::service::{S3Service, S3ServiceBuilder};

/// What the accept loop knows about a connection; put in every request's extensions.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionInfo {
    /// TLS terminated by us (or by a trusted proxy that said so).
    pub secure: bool,
    pub peer: Option<SocketAddr>,
}

/// Protocol-level settings.
#[derive(Debug, Clone)]
pub struct S3Settings {
    pub region: String,
    /// Base domain for virtual-hosted-style requests (`<bucket>.<domain>`).
    pub domain: Option<String>,
    /// Status for a wrong SSE-C key: 403 (AWS) or 400 (what ceph/s3-tests expect).
    pub ssec_wrong_key_status: u16,
    /// Test suites only: accept SSE-C over plain HTTP.
    pub ssec_allow_plain_http: bool,
}

#[derive(Clone)]
pub(crate) struct CofferS3 {
    pub(crate) coffer: Coffer,
    pub(crate) users: Arc<UserDirectory>,
    pub(crate) settings: Arc<S3Settings>,
}

/// Builds the S3 service (routing, SigV4, XML) around the engine.
pub fn build_service(
    coffer: Coffer,
    users: Arc<UserDirectory>,
    settings: S3Settings,
) -> Result<S3Service, String> {
    let settings = Arc::new(settings);
    let s3 = CofferS3 {
        coffer: coffer.clone(),
        users: Arc::clone(&users),
        settings: Arc::clone(&settings),
    };
    let mut builder = S3ServiceBuilder::new(s3);
    builder.set_auth(users::Auth(Arc::clone(&users)));
    builder.set_access(access::AccessPolicy {
        coffer: coffer.clone(),
        users: Arc::clone(&users),
        settings: Arc::clone(&settings),
    });
    builder.set_host(CofferHost::new(settings.domain.clone()));
    builder.set_route(admin::AdminRoute {
        coffer,
        users,
        settings: Arc::clone(&settings),
    });
    Ok(builder.build())
}
