//! Who may do what, decided before the request body is read: anonymous requests are refused,
//! SSE-C over a connection that is not TLS is refused, and a user other than root may only
//! touch buckets it owns.

use std::collections::HashMap;
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

/// The condition context of a request: the keys bucket policies can test.
pub(crate) fn policy_context(
    headers: &http::HeaderMap,
    uri: &http::Uri,
    info: Option<ConnectionInfo>,
    user: Option<&crate::User>,
) -> HashMap<String, Vec<String>> {
    let mut ctx: HashMap<String, Vec<String>> = HashMap::new();
    let secure = info.is_some_and(|c| c.secure);
    ctx.insert("aws:securetransport".into(), vec![secure.to_string()]);
    if let Some(peer) = info.and_then(|c| c.peer) {
        ctx.insert("aws:sourceip".into(), vec![peer.ip().to_string()]);
    }
    if let Some(u) = user {
        ctx.insert("aws:username".into(), vec![u.name.clone()]);
        ctx.insert("aws:userid".into(), vec![u.name.clone()]);
        ctx.insert("aws:principaltype".into(), vec!["User".into()]);
    } else {
        ctx.insert("aws:principaltype".into(), vec!["Anonymous".into()]);
    }
    if let Some(referer) = headers
        .get(http::header::REFERER)
        .and_then(|v| v.to_str().ok())
    {
        ctx.insert("aws:referer".into(), vec![referer.to_owned()]);
    }
    let now = time::OffsetDateTime::now_utc();
    ctx.insert(
        "aws:epochtime".into(),
        vec![now.unix_timestamp().to_string()],
    );
    if let Ok(t) = now.format(&time::format_description::well_known::Rfc3339) {
        ctx.insert("aws:currenttime".into(), vec![t]);
    }
    // Request headers policies commonly test, under their s3: condition key names.
    for (name, value) in headers {
        let n = name.as_str();
        let wanted = n.starts_with("x-amz-server-side-encryption")
            || n.starts_with("x-amz-copy-source")
            || matches!(
                n,
                "x-amz-acl"
                    | "x-amz-metadata-directive"
                    | "x-amz-content-sha256"
                    | "x-amz-storage-class"
            )
            || n.starts_with("x-amz-grant-");
        // Never put key material into the context.
        let secret = n.ends_with("-customer-key");
        if wanted
            && !secret
            && let Ok(v) = value.to_str()
        {
            ctx.entry(format!("s3:{n}")).or_default().push(v.to_owned());
        }
    }
    if let Some(q) = uri.query() {
        for (k, v) in url_query_pairs(q) {
            let key = match k.as_str() {
                "prefix" => "s3:prefix",
                "delimiter" => "s3:delimiter",
                "max-keys" => "s3:max-keys",
                "versionId" => "s3:versionid",
                _ => continue,
            };
            ctx.entry(key.into()).or_default().push(v);
        }
    }
    ctx
}

fn url_query_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            let dec = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (dec(k), dec(v))
        })
        .collect()
}

/// The decision for a non-root caller on an existing bucket: an explicit Deny in the bucket
/// policy refuses (except the owner managing the policy itself), an Allow grants, and
/// otherwise the owner may and others only what canned ACLs grant.
pub(crate) fn authorize(
    coffer: &Coffer,
    user: Option<&crate::User>,
    info: &coffer_core::BucketInfo,
    key: Option<&str>,
    op: &str,
    action: &str,
    context: &HashMap<String, Vec<String>>,
) -> bool {
    let is_owner = user.is_some_and(|u| u.name == info.owner);
    let decision = match info.policy.as_deref() {
        Some(doc) => match crate::policy::BucketPolicy::parse(doc, &info.name) {
            Ok(policy) => {
                let resource = match key {
                    Some(k) => format!("arn:aws:s3:::{}/{k}", info.name),
                    None => format!("arn:aws:s3:::{}", info.name),
                };
                policy.evaluate(&crate::policy::PolicyRequest {
                    principal: user.map(|u| u.name.as_str()),
                    action,
                    resource: &resource,
                    context,
                })
            }
            // A stored policy always parsed when it was put; fail closed if not.
            Err(_) => crate::policy::Decision::ExplicitDeny,
        },
        None => crate::policy::Decision::NotApplicable,
    };
    // The owner keeps control of the policy itself, so a bad Deny can be undone.
    let policy_op = matches!(
        op,
        "PutBucketPolicy" | "GetBucketPolicy" | "DeleteBucketPolicy"
    );
    match decision {
        crate::policy::Decision::ExplicitDeny => is_owner && policy_op,
        crate::policy::Decision::Allow => true,
        crate::policy::Decision::NotApplicable => {
            is_owner || acl_allows(coffer, info, key, op, user.is_some())
        }
    }
}

/// What canned ACLs grant to callers other than the owner: READ (list the bucket, read an
/// object) and, for `public-read-write` buckets, WRITE (create and delete objects).
fn acl_allows(
    coffer: &Coffer,
    bucket: &coffer_core::BucketInfo,
    key: Option<&str>,
    op: &str,
    authenticated: bool,
) -> bool {
    let grants_read = |acl: Option<&str>| match acl {
        Some("public-read" | "public-read-write") => true,
        Some("authenticated-read") => authenticated,
        _ => false,
    };
    let bucket_acl = bucket.acl.as_deref();
    match op {
        "ListObjects"
        | "ListObjectsV2"
        | "ListObjectVersions"
        | "HeadBucket"
        | "GetBucketLocation"
        | "ListMultipartUploads" => grants_read(bucket_acl),
        "PutObject"
        | "PostObject"
        | "DeleteObject"
        | "DeleteObjects"
        | "CreateMultipartUpload"
        | "UploadPart"
        | "CompleteMultipartUpload"
        | "AbortMultipartUpload"
        | "ListParts"
        | "CopyObject"
        | "UploadPartCopy" => bucket_acl == Some("public-read-write"),
        "GetObject" | "HeadObject" => key.is_some_and(|k| {
            coffer
                .object_record(&bucket.name, k, None)
                .is_ok_and(|r| grants_read(r.acl.as_deref()))
        }),
        _ => false,
    }
}

/// The IAM action a request needs.
pub(crate) fn action_of(op: &str, uri: &http::Uri) -> &'static str {
    let action = crate::policy::action_for(op);
    let versioned = uri
        .query()
        .is_some_and(|q| url_query_pairs(q).iter().any(|(k, _)| k == "versionId"));
    if versioned {
        crate::policy::versioned_action(action).unwrap_or(action)
    } else {
        action
    }
}

#[async_trait::async_trait]
impl S3Access for AccessPolicy {
    /// Browser form uploads: the SSE-C transport rule and the authorization decision, with the
    /// form's fields as condition keys (a policy requiring SSE-C must see the form's SSE-C
    /// algorithm field, not just headers).
    async fn post_object(
        &self,
        req: &mut s3s::S3Request<s3s::dto::PostObjectInput>,
    ) -> S3Result<()> {
        let input = &req.input;
        let has_sse_c = input.sse_customer_algorithm.is_some()
            || input.sse_customer_key.is_some()
            || input.sse_customer_key_md5.is_some();
        let conn = req.extensions.get::<ConnectionInfo>().copied();
        let secure = conn.is_some_and(|c| c.secure);
        if has_sse_c && !secure && !self.settings.ssec_allow_plain_http {
            return Err(s3s::s3_error!(InvalidRequest, "{}", SSE_C_INSECURE_MESSAGE));
        }
        let user = match &req.credentials {
            Some(c) => Some(
                self.users
                    .by_access_key(&c.access_key)
                    .ok_or_else(|| s3s::s3_error!(InvalidAccessKeyId))?,
            ),
            None => None,
        };
        if user.as_ref().is_some_and(|u| u.is_root) {
            return Ok(());
        }
        let info = match self.coffer.bucket(&input.bucket) {
            Ok(info) => info,
            Err(CoreError::NoSuchBucket) => return Ok(()),
            Err(e) => return Err(crate::errors::to_s3_error(e, &self.settings)),
        };
        let mut context = policy_context(&req.headers, &req.uri, conn, user.as_ref());
        if let Some(a) = &input.sse_customer_algorithm {
            context.insert(
                "s3:x-amz-server-side-encryption-customer-algorithm".into(),
                vec![a.clone()],
            );
        }
        if let Some(sse) = &input.server_side_encryption {
            context.insert(
                "s3:x-amz-server-side-encryption".into(),
                vec![sse.as_str().to_owned()],
            );
        }
        if let Some(acl) = &input.acl {
            context.insert("s3:x-amz-acl".into(), vec![acl.as_str().to_owned()]);
        }
        if authorize(
            &self.coffer,
            user.as_ref(),
            &info,
            Some(&input.key),
            "PostObject",
            "s3:PutObject",
            &context,
        ) {
            Ok(())
        } else {
            Err(s3s::s3_error!(AccessDenied, "Access Denied"))
        }
    }

    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let user = match cx.credentials() {
            Some(credentials) => Some(
                self.users
                    .by_access_key(&credentials.access_key)
                    .ok_or_else(|| s3s::s3_error!(InvalidAccessKeyId))?,
            ),
            None => None,
        };

        let secure = cx
            .extensions_mut()
            .get::<ConnectionInfo>()
            .is_some_and(|c| c.secure);
        if !secure && !self.settings.ssec_allow_plain_http && has_sse_c_headers(cx.headers()) {
            return Err(s3s::s3_error!(InvalidRequest, "{}", SSE_C_INSECURE_MESSAGE));
        }
        if user.as_ref().is_some_and(|u| u.is_root) {
            return Ok(());
        }
        let denied = || s3s::s3_error!(AccessDenied, "Access Denied");
        let (bucket, key) = match cx.s3_path() {
            S3Path::Root => {
                return if user.is_some() {
                    Ok(())
                } else {
                    Err(denied())
                };
            }
            S3Path::Bucket { bucket } => (bucket.to_string(), None),
            S3Path::Object { bucket, key } => (bucket.to_string(), Some(key.to_string())),
        };
        let op = cx.s3_op().name().to_owned();
        if op == "PostObject" {
            // Browser uploads carry SSE-C and other conditions as form fields, which only the
            // post_object hook below sees: the decision is made there.
            return Ok(());
        }
        if op == "CreateBucket" {
            return if user.is_some() {
                Ok(())
            } else {
                Err(denied())
            };
        }
        let info = match self.coffer.bucket(&bucket) {
            Ok(info) => info,
            // Let the operation answer NoSuchBucket (to anonymous callers too, as S3 does).
            Err(CoreError::NoSuchBucket) => return Ok(()),
            Err(e) => return Err(crate::errors::to_s3_error(e, &self.settings)),
        };
        // x-amz-expected-bucket-owner: a caller guarding against writing into someone else's
        // bucket gets 403 when the owner differs.
        if let Some(expected) = cx.headers().get("x-amz-expected-bucket-owner")
            && expected.as_bytes() != info.owner.as_bytes()
        {
            return Err(denied());
        }
        let conn = cx.extensions_mut().get::<ConnectionInfo>().copied();
        let mut context = policy_context(cx.headers(), cx.uri(), conn, user.as_ref());
        // Parts and the Complete of an SSE-C upload need no key headers, yet the object they
        // make is SSE-C: let policies that require SSE-C see the upload's algorithm.
        if matches!(
            op.as_str(),
            "UploadPart" | "UploadPartCopy" | "CompleteMultipartUpload"
        ) && let (Some(k), Some(q)) = (key.as_deref(), cx.uri().query())
            && let Some((_, upload_id)) = url_query_pairs(q)
                .into_iter()
                .find(|(n, _)| n == "uploadId")
            && let Ok(upload) = self.coffer.upload(&bucket, k, &upload_id)
            && let Some(enc) = &upload.encryption
            && enc.scheme == "SSE-C"
        {
            context
                .entry("s3:x-amz-server-side-encryption-customer-algorithm".into())
                .or_insert_with(|| vec![enc.algorithm.clone()]);
        }
        let action = action_of(&op, cx.uri());
        // S3 tells a caller that may list the bucket that an object is missing (404); others
        // get 403 whether it exists or not.
        if matches!(op.as_str(), "GetObject" | "HeadObject")
            && let Some(k) = key.as_deref()
            && matches!(
                self.coffer.object_record(&bucket, k, None),
                Err(CoreError::NoSuchKey)
            )
        {
            let mut list_context = context.clone();
            list_context.insert("s3:prefix".into(), vec![k.to_owned()]);
            if authorize(
                &self.coffer,
                user.as_ref(),
                &info,
                None,
                "ListObjects",
                "s3:ListBucket",
                &list_context,
            ) {
                return Ok(());
            }
        }
        if authorize(
            &self.coffer,
            user.as_ref(),
            &info,
            key.as_deref(),
            &op,
            action,
            &context,
        ) {
            Ok(())
        } else {
            Err(denied())
        }
    }
}
