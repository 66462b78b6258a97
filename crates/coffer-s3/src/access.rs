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

/// Whether the body is aws-chunked framed (`Content-Encoding` lists `aws-chunked`).
fn is_aws_chunked(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(http::header::CONTENT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| v.trim().eq_ignore_ascii_case("aws-chunked"))
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
    // Tags a write asks for: `s3:RequestObjectTag/<key>` and `s3:RequestObjectTagKeys`.
    if let Some(tags) = headers
        .get("x-amz-tagging")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| coffer_core::tagging::parse_tagging_header(v).ok())
    {
        ctx.extend(request_tag_context(&tags));
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

/// The condition keys of the tags a request sets.
fn request_tag_context(tags: &[(String, String)]) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = tags
        .iter()
        .map(|(k, v)| {
            (
                format!("s3:requestobjecttag/{}", k.to_lowercase()),
                vec![v.clone()],
            )
        })
        .collect();
    out.push((
        "s3:requestobjecttagkeys".into(),
        tags.iter().map(|(k, _)| k.clone()).collect(),
    ));
    out
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

/// The decision on an existing bucket: an explicit Deny in the bucket policy refuses (except
/// the owner, or root, managing the policy itself), an Allow grants, and otherwise the owner
/// (and root) may and others only what canned ACLs grant.
pub(crate) fn authorize(
    coffer: &Coffer,
    user: Option<&crate::User>,
    info: &coffer_core::BucketInfo,
    key: Option<&str>,
    op: &str,
    action: &str,
    context: &HashMap<String, Vec<String>>,
) -> bool {
    // Root acts as the owner of every bucket, and like an account's root on AWS it is still
    // bound by an explicit Deny in a bucket policy (but can always manage the policy itself).
    let is_owner = user.is_some_and(|u| u.is_root || u.name == info.owner);
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
        "GetObject" | "HeadObject" | "GetObjectAttributes" => key.is_some_and(|k| {
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

/// What a browser POST form asks for that bucket policies can test: its fields stand in for
/// the headers of a PUT.
pub(crate) struct PostRequest<'a> {
    pub(crate) bucket: &'a str,
    pub(crate) key: &'a str,
    /// Whether any SSE-C field was sent.
    pub(crate) sse_customer: bool,
    pub(crate) sse_customer_algorithm: Option<&'a str>,
    pub(crate) server_side_encryption: Option<&'a str>,
    pub(crate) acl: Option<&'a str>,
}

/// The access decision for a browser POST upload, made before its file is read: the SSE-C
/// transport rule for the form's SSE-C fields, then the bucket policy and ACLs, with the form's fields as condition keys (a policy requiring SSE-C must see
/// the form's SSE-C algorithm field, not just headers).
pub(crate) fn decide_post(
    coffer: &Coffer,
    settings: &S3Settings,
    user: Option<&crate::User>,
    head: &http::request::Parts,
    post: &PostRequest<'_>,
) -> S3Result<()> {
    let conn = head.extensions.get::<ConnectionInfo>().copied();
    let secure = conn.is_some_and(|c| c.secure);
    if post.sse_customer && !secure && !settings.ssec_allow_plain_http {
        return Err(s3s::s3_error!(InvalidRequest, "{}", SSE_C_INSECURE_MESSAGE));
    }
    let info = match coffer.bucket(post.bucket) {
        Ok(info) => info,
        // The write answers NoSuchBucket.
        Err(CoreError::NoSuchBucket) => return Ok(()),
        Err(e) => return Err(crate::errors::to_s3_error(e, settings)),
    };
    let mut context = policy_context(&head.headers, &head.uri, conn, user);
    let form_keys = [
        (
            "s3:x-amz-server-side-encryption-customer-algorithm",
            post.sse_customer_algorithm,
        ),
        (
            "s3:x-amz-server-side-encryption",
            post.server_side_encryption,
        ),
        ("s3:x-amz-acl", post.acl),
    ];
    for (name, value) in form_keys {
        if let Some(v) = value {
            context.insert(name.into(), vec![v.to_owned()]);
        }
    }
    if authorize(
        coffer,
        user,
        &info,
        Some(post.key),
        "PostObject",
        "s3:PutObject",
        &context,
    ) {
        Ok(())
    } else {
        Err(s3s::s3_error!(AccessDenied, "Access Denied"))
    }
}

#[async_trait::async_trait]
impl S3Access for AccessPolicy {
    /// PutObjectTagging: decided with the body's tags as `s3:RequestObjectTag/<key>`.
    async fn put_object_tagging(
        &self,
        req: &mut s3s::S3Request<s3s::dto::PutObjectTaggingInput>,
    ) -> S3Result<()> {
        let user = match &req.credentials {
            Some(c) => Some(
                self.users
                    .by_access_key(&c.access_key)
                    .ok_or_else(|| s3s::s3_error!(InvalidAccessKeyId))?,
            ),
            None => None,
        };
        let tags = crate::tagging_ops::tag_pairs(&req.input.tagging)?;
        let conn = req.extensions.get::<ConnectionInfo>().copied();
        self.decide(
            user.as_ref(),
            &req.input.bucket,
            Some(&req.input.key),
            "PutObjectTagging",
            &req.headers,
            &req.uri,
            conn,
            request_tag_context(&tags),
        )
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
        if op == "PutObjectTagging" {
            // PutObjectTagging carries its tags in the body: its hook above decides, with them.
            return Ok(());
        }
        if op == "CreateBucket" {
            return if user.is_some() {
                Ok(())
            } else {
                Err(denied())
            };
        }
        let conn = cx.extensions_mut().get::<ConnectionInfo>().copied();
        self.decide(
            user.as_ref(),
            &bucket,
            key.as_deref(),
            &op,
            cx.headers(),
            cx.uri(),
            conn,
            Vec::new(),
        )
    }
}

impl AccessPolicy {
    /// The decision on an object or bucket request: bucket owner check, policy and ACLs. `extra` adds condition keys only the operation's input carries.
    #[allow(clippy::too_many_arguments)]
    fn decide(
        &self,
        user: Option<&crate::User>,
        bucket: &str,
        key: Option<&str>,
        op: &str,
        headers: &http::HeaderMap,
        uri: &http::Uri,
        conn: Option<ConnectionInfo>,
        extra: Vec<(String, Vec<String>)>,
    ) -> S3Result<()> {
        let denied = || s3s::s3_error!(AccessDenied, "Access Denied");
        let info = match self.coffer.bucket(bucket) {
            Ok(info) => info,
            // Let the operation answer NoSuchBucket (to anonymous callers too, as S3 does).
            Err(CoreError::NoSuchBucket) => return Ok(()),
            Err(e) => return Err(crate::errors::to_s3_error(e, &self.settings)),
        };
        // x-amz-expected-bucket-owner: a caller guarding against writing into someone else's
        // bucket gets 403 when the owner differs.
        if let Some(expected) = headers.get("x-amz-expected-bucket-owner")
            && expected.as_bytes() != info.owner.as_bytes()
        {
            return Err(denied());
        }
        // s3s decodes aws-chunked bodies only for signed requests: an anonymous one would reach
        // the handler still framed. Refuse it rather than store the frames as data.
        if user.is_none() && is_aws_chunked(headers) {
            return Err(s3s::s3_error!(
                NotImplemented,
                "Anonymous aws-chunked uploads are not supported: sign the request, or send the body unframed."
            ));
        }
        let mut context = policy_context(headers, uri, conn, user);
        context.extend(extra);
        if let Some(k) = key {
            self.add_existing_tags(&info, k, uri, &mut context);
        }
        // Parts and the Complete of an SSE-C upload need no key headers, yet the object they
        // make is SSE-C: let policies that require SSE-C see the upload's algorithm.
        if matches!(
            op,
            "UploadPart" | "UploadPartCopy" | "CompleteMultipartUpload"
        ) && let (Some(k), Some(q)) = (key, uri.query())
            && let Some((_, upload_id)) = url_query_pairs(q)
                .into_iter()
                .find(|(n, _)| n == "uploadId")
            && let Ok(upload) = self.coffer.upload(bucket, k, &upload_id)
            && let Some(enc) = &upload.encryption
            && enc.scheme == "SSE-C"
        {
            context
                .entry("s3:x-amz-server-side-encryption-customer-algorithm".into())
                .or_insert_with(|| vec![enc.algorithm.clone()]);
        }
        let action = action_of(op, uri);
        // S3 tells a caller that may list the bucket that an object is missing (404); others
        // get 403 whether it exists or not.
        if matches!(op, "GetObject" | "HeadObject" | "GetObjectAttributes")
            && let Some(k) = key
            && matches!(
                self.coffer.object_record(bucket, k, None),
                Err(CoreError::NoSuchKey)
            )
        {
            let mut list_context = context.clone();
            list_context.insert("s3:prefix".into(), vec![k.to_owned()]);
            if authorize(
                &self.coffer,
                user,
                &info,
                None,
                "ListObjects",
                "s3:ListBucket",
                &list_context,
            ) {
                return Ok(());
            }
        }
        if authorize(&self.coffer, user, &info, key, op, action, &context) {
            Ok(())
        } else {
            Err(denied())
        }
    }

    /// `s3:ExistingObjectTag/<key>` for policies that test it (loading the object's record
    /// only then): the tags of the addressed version.
    fn add_existing_tags(
        &self,
        info: &coffer_core::BucketInfo,
        key: &str,
        uri: &http::Uri,
        context: &mut HashMap<String, Vec<String>>,
    ) {
        let tests_tags = info
            .policy
            .as_deref()
            .is_some_and(|p| p.to_ascii_lowercase().contains("existingobjecttag"));
        if !tests_tags {
            return;
        }
        let version = uri.query().and_then(|q| {
            url_query_pairs(q)
                .into_iter()
                .find(|(k, _)| k == "versionId")
                .map(|(_, v)| v)
        });
        if let Ok(record) = self
            .coffer
            .object_record(&info.name, key, version.as_deref())
        {
            for (k, v) in record.tags {
                context
                    .entry(format!("s3:existingobjecttag/{}", k.to_lowercase()))
                    .or_default()
                    .push(v);
            }
        }
    }
}
