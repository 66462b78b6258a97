//! Who may do what, decided before the request body is read: anonymous requests are refused,
//! SSE-C over a connection that is not TLS is refused, and a user other than root may only
//! touch buckets it owns.

use std::sync::Arc;

use coffer_core::{Coffer, CoreError};
use s3s::S3Result;
use s3s::access::{S3Access, S3AccessContext};
use s3s::path::S3Path;

use crate::{ConnectionInfo, S3Settings, UserDirectory};

pub(crate) struct AccessPolicy {
    pub(crate) coffer: Coffer,
    pub(crate) users: Arc<UserDirectory>,
    pub(crate) settings: Arc<S3Settings>,
}

const SSE_C_HEADER_PREFIXES: [&str; 2] = [
    "x-amz-server-side-encryption-customer-",
    "x-amz-copy-source-server-side-encryption-customer-",
];

pub(crate) const SSE_C_INSECURE_MESSAGE: &str = "Requests specifying Server Side Encryption with Customer provided keys must be made over a secure connection.";

pub(crate) fn has_sse_c_headers(headers: &http::HeaderMap) -> bool {
    headers.keys().any(|name| {
        SSE_C_HEADER_PREFIXES
            .iter()
            .any(|p| name.as_str().starts_with(p))
    })
}

#[async_trait::async_trait]
impl S3Access for AccessPolicy {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let Some(credentials) = cx.credentials() else {
            return Err(s3s::s3_error!(AccessDenied, "Access Denied"));
        };
        let user = self
            .users
            .by_access_key(&credentials.access_key)
            .ok_or_else(|| s3s::s3_error!(InvalidAccessKeyId))?
            .clone();

        let secure = cx
            .extensions_mut()
            .get::<ConnectionInfo>()
            .is_some_and(|c| c.secure);
        if !secure && !self.settings.ssec_allow_plain_http && has_sse_c_headers(cx.headers()) {
            return Err(s3s::s3_error!(InvalidRequest, "{}", SSE_C_INSECURE_MESSAGE));
        }

        if user.is_root {
            return Ok(());
        }
        let bucket = match cx.s3_path() {
            S3Path::Root => return Ok(()),
            S3Path::Bucket { bucket } | S3Path::Object { bucket, .. } => bucket.to_string(),
        };
        if cx.s3_op().name() == "CreateBucket" {
            return Ok(());
        }
        match self.coffer.bucket(&bucket) {
            Ok(info) if info.owner != user.name => {
                Err(s3s::s3_error!(AccessDenied, "Access Denied"))
            }
            Ok(_) | Err(CoreError::NoSuchBucket) => Ok(()),
            Err(e) => Err(crate::errors::to_s3_error(e, &self.settings)),
        }
    }
}
