//! Browser POST uploads (PostObject), handled by Coffer rather than s3s: s3s 0.14.1 reads a
//! form's whole `file` part into memory before its handler runs, and its multipart parser is
//! private. The binary reads the fields before the file (`form_prelude.rs`, at most 20 KiB);
//! this module authenticates the form (`post_auth.rs`), judges its policy (`post_policy.rs`),
//! decides access, then streams the file (`post_file.rs`) into the write path PutObject uses,
//! and answers as S3 does (`success_action_status`, `success_action_redirect`). Everything
//! that can be refused is refused before the first byte of the file is read.

use std::sync::Arc;

use bytes::Bytes;
use coffer_core::{BoxError, ByteStream, Coffer};
use futures::TryStreamExt as _;
use http::{HeaderMap, HeaderValue, StatusCode};
use s3s::dto::{ObjectCannedACL, PutObjectInput, PutObjectOutput};
use s3s::path::S3Path;
use s3s::{S3Result, s3_error};
use zeroize::Zeroize as _;

use crate::access::{PostRequest, decide_post, has_sse_c_headers};
use crate::host::CofferHost;
use crate::object_ops::BodyLength;
use crate::post_file::{FilePart, FileSizeRange};
use crate::post_form::field;
use crate::post_policy::FormPolicy;
use crate::sigv2::SigV2Guard;
use crate::{CofferS3, ConnectionInfo, S3Settings, UserDirectory};

/// The largest file a form may carry: AWS's limit for one PUT or POST (and s3s's).
const MAX_FILE_SIZE: u64 = 5 * 1024 * 1024 * 1024;

const SSE_C_KEY_FIELD: &str = "x-amz-server-side-encryption-customer-key";

/// A browser POST form, as the binary read it.
pub struct PostForm {
    /// The fields before the file part: names lowercased, in form order, `${filename}`
    /// replaced, checked for the fields AWS requires (`post_form::missing_field`).
    pub fields: Vec<(String, String)>,
    pub boundary: String,
    /// The body from the file's first byte: what was read with the fields, then the rest.
    pub first: Bytes,
    pub rest: ByteStream<BoxError>,
}

/// The browser POST handler.
pub struct BrowserPost {
    s3: CofferS3,
    sigv2: Arc<SigV2Guard>,
    host: CofferHost,
}

impl BrowserPost {
    pub fn new(
        coffer: Coffer,
        users: Arc<UserDirectory>,
        settings: S3Settings,
        sigv2: Arc<SigV2Guard>,
    ) -> Self {
        let host = CofferHost::new(settings.domain.clone());
        Self {
            s3: CofferS3 {
                coffer,
                users,
                settings: Arc::new(settings),
            },
            sigv2,
            host,
        }
    }

    /// Handles a form POST; refusals are S3 error answers. The body is dropped (and so
    /// drained, by the binary's wrapper) once the answer is known.
    pub async fn handle(
        &self,
        head: http::request::Parts,
        form: PostForm,
    ) -> http::Response<s3s::Body> {
        let PostForm {
            mut fields,
            boundary,
            first,
            rest,
        } = form;
        let result = self.post(head, &mut fields, &boundary, first, rest).await;
        // Whatever the outcome, no copy of an SSE-C key outlives the request in the fields.
        for (name, value) in &mut fields {
            if name == SSE_C_KEY_FIELD {
                value.zeroize();
            }
        }
        match result {
            Ok(resp) => resp,
            Err(e) => e.to_http_response().unwrap_or_else(|_| {
                let mut r = http::Response::new(s3s::Body::empty());
                *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                r
            }),
        }
    }

    async fn post(
        &self,
        mut head: http::request::Parts,
        fields: &mut [(String, String)],
        boundary: &str,
        first: Bytes,
        rest: ByteStream<BoxError>,
    ) -> S3Result<http::Response<s3s::Body>> {
        crate::ssec::drop_key_headers(&mut head.headers);
        let path = self.path_of(&head)?;
        let user = crate::post_auth::form_signer(fields, &self.s3.users, &self.sigv2)?;
        let bucket = match path {
            S3Path::Bucket { bucket } => bucket.into_string(),
            S3Path::Root => return Err(s3_error!(NotImplemented, "Unknown operation")),
            S3Path::Object { .. } => return Err(s3_error!(MethodNotAllowed)),
        };
        // SSE-C fields over plain HTTP: the key has crossed the network in clear, and that is
        // what the client must hear first, before any policy verdict on the fields.
        let secure = head
            .extensions
            .get::<ConnectionInfo>()
            .is_some_and(|c| c.secure);
        if !secure
            && !self.s3.settings.ssec_allow_plain_http
            && fields
                .iter()
                .any(|(name, _)| name.starts_with("x-amz-server-side-encryption-customer-"))
        {
            return Err(s3_error!(
                InvalidRequest,
                "{}",
                crate::access::SSE_C_INSECURE_MESSAGE
            ));
        }
        let limit = FileSizeRange {
            min: 0,
            max: MAX_FILE_SIZE,
        };
        let range = match field(fields, "policy") {
            Some(policy) => {
                let policy = FormPolicy::parse(policy)?;
                if field(fields, "x-amz-signature").is_some() {
                    policy.check_signing_fields(fields)?;
                }
                policy.check_expiration(time::OffsetDateTime::now_utc())?;
                policy.check_fields(fields, &bucket)?;
                policy.size_range(limit)
            }
            None => limit,
        };
        // SSE-C headers on the request itself follow the transport rule of every request.
        if !secure && !self.s3.settings.ssec_allow_plain_http && has_sse_c_headers(&head.headers) {
            return Err(s3_error!(
                InvalidRequest,
                "{}",
                crate::access::SSE_C_INSECURE_MESSAGE
            ));
        }
        let answer = Answer::of(fields)?;
        let mut input = put_input(fields, bucket)?;
        let decision = decide_post(
            &self.s3.coffer,
            &self.s3.settings,
            user.as_ref(),
            &head,
            &PostRequest {
                bucket: &input.bucket,
                key: &input.key,
                sse_customer: input.sse_customer_algorithm.is_some()
                    || input.sse_customer_key.is_some()
                    || input.sse_customer_key_md5.is_some(),
                sse_customer_algorithm: input.sse_customer_algorithm.as_deref(),
                server_side_encryption: input.server_side_encryption.as_ref().map(|s| s.as_str()),
                acl: input.acl.as_ref().map(ObjectCannedACL::as_str),
            },
        );
        if let Err(e) = decision {
            // The write, which wipes the key it takes, will not run.
            if let Some(key) = input.sse_customer_key.as_mut() {
                key.zeroize();
            }
            return Err(e);
        }
        let file = FilePart::new(boundary, first, rest, range);
        let body: ByteStream<BoxError> = Box::pin(file.map_err(|e| Box::new(e) as BoxError));
        let output = self
            .s3
            .write_object(
                &mut input,
                body,
                &head.headers,
                BodyLength::Delimited,
                field(fields, "tagging"),
                None,
            )
            .await?;
        Ok(answer.response(&input.bucket, &input.key, output))
    }

    /// The bucket or object the request's path and Host address, as s3s reads them.
    fn path_of(&self, head: &http::request::Parts) -> S3Result<S3Path> {
        let path = percent_encoding::percent_decode_str(head.uri.path())
            .decode_utf8()
            .map_err(|_| s3_error!(InvalidURI))?;
        let host = match head.headers.get(http::header::HOST) {
            Some(v) => Some(
                v.to_str()
                    .map_err(|_| s3_error!(InvalidRequest, "invalid header: Host: {v:?}"))?,
            ),
            None => head.uri.authority().map(http::uri::Authority::as_str),
        };
        // An IP address is never a bucket's name, whatever the configured domain.
        let bucket = host
            .filter(|h| {
                h.parse::<std::net::SocketAddr>().is_err() && h.parse::<std::net::IpAddr>().is_err()
            })
            .and_then(|h| self.host.bucket_of(h));
        s3s::path::parse_virtual_hosted_style(bucket, &path).map_err(|e| match e {
            s3s::path::ParseS3PathError::InvalidPath => s3_error!(InvalidURI),
            s3s::path::ParseS3PathError::InvalidBucketName => s3_error!(InvalidBucketName),
            s3s::path::ParseS3PathError::KeyTooLong => s3_error!(KeyTooLongError),
        })
    }
}

/// The write's input from the form's fields, named as the headers of a PUT; the canned ACL
/// also as `acl`. The SSE-C key (the last such field, as for every field) is moved out of
/// `fields`; the write wipes it.
fn put_input(fields: &mut [(String, String)], bucket: String) -> S3Result<PutObjectInput> {
    let key = field(fields, "key")
        .map(str::to_owned)
        .ok_or_else(|| s3_error!(InvalidRequest, "missing key"))?;
    check_typed_fields(fields)?;
    let customer_key = fields
        .iter_mut()
        .rev()
        .find(|(name, _)| name == SSE_C_KEY_FIELD)
        .map(|(_, value)| std::mem::take(value));
    let fields = &*fields;
    let text = |name: &str| field(fields, name).map(str::to_owned);
    let metadata: s3s::dto::Metadata = fields
        .iter()
        .filter_map(|(name, value)| {
            let name = name.strip_prefix("x-amz-meta-")?;
            (!name.is_empty()).then(|| (name.to_owned(), value.clone()))
        })
        .collect();
    Ok(PutObjectInput {
        bucket,
        key,
        acl: text("x-amz-acl")
            .or_else(|| text("acl"))
            .map(ObjectCannedACL::from),
        cache_control: text("cache-control"),
        checksum_algorithm: text("x-amz-sdk-checksum-algorithm").map(Into::into),
        checksum_crc32: text("x-amz-checksum-crc32"),
        checksum_crc32c: text("x-amz-checksum-crc32c"),
        checksum_crc64nvme: text("x-amz-checksum-crc64nvme"),
        checksum_sha1: text("x-amz-checksum-sha1"),
        checksum_sha256: text("x-amz-checksum-sha256"),
        content_disposition: text("content-disposition"),
        content_encoding: text("content-encoding"),
        content_language: text("content-language"),
        content_md5: text("content-md5"),
        content_type: text("content-type"),
        metadata: (!metadata.is_empty()).then_some(metadata),
        sse_customer_algorithm: text("x-amz-server-side-encryption-customer-algorithm"),
        sse_customer_key: customer_key,
        sse_customer_key_md5: text("x-amz-server-side-encryption-customer-key-md5"),
        ssekms_key_id: text("x-amz-server-side-encryption-aws-kms-key-id"),
        server_side_encryption: text("x-amz-server-side-encryption").map(Into::into),
        tagging: text("x-amz-tagging"),
        ..Default::default()
    })
}

/// Fields S3 reads as dates, numbers or booleans must parse as such (`InvalidArgument`), as
/// they did when s3s read the form, though Coffer stores none of them.
fn check_typed_fields(fields: &[(String, String)]) -> S3Result<()> {
    use s3s::dto::{Timestamp, TimestampFormat};
    const TYPED: [&str; 4] = [
        "x-amz-server-side-encryption-bucket-key-enabled",
        "expires",
        "x-amz-object-lock-retain-until-date",
        "x-amz-write-offset-bytes",
    ];
    for name in TYPED {
        let Some(value) = field(fields, name) else {
            continue;
        };
        let parses = match name {
            "expires" => Timestamp::parse(TimestampFormat::HttpDate, value).is_ok(),
            "x-amz-object-lock-retain-until-date" => {
                Timestamp::parse(TimestampFormat::DateTime, value).is_ok()
            }
            "x-amz-write-offset-bytes" => value.parse::<i64>().is_ok(),
            _ => value.parse::<bool>().is_ok(),
        };
        if !parses {
            return Err(s3_error!(
                InvalidArgument,
                "invalid field value: {}: {:?}",
                name,
                value
            ));
        }
    }
    Ok(())
}

/// How a successful upload is answered: a 303 to `success_action_redirect` (or `redirect`),
/// else `success_action_status` 200 (empty), 201 (a PostResponse document) or 204, the
/// default for any other value.
struct Answer {
    redirect: Option<url::Url>,
    status: Option<i32>,
}

impl Answer {
    /// Read from the fields, and checked before anything is written.
    fn of(fields: &[(String, String)]) -> S3Result<Self> {
        let status = match field(fields, "success_action_status") {
            Some(v) => Some(v.parse::<i32>().map_err(|_| {
                s3_error!(
                    InvalidArgument,
                    "invalid field value: success_action_status: {:?}",
                    v
                )
            })?),
            None => None,
        };
        let redirect =
            match field(fields, "success_action_redirect").or_else(|| field(fields, "redirect")) {
                // A control character could split the Location header.
                Some(r) if r.chars().any(char::is_control) => {
                    return Err(s3_error!(
                        InvalidArgument,
                        "success_action_redirect contains invalid control characters"
                    ));
                }
                Some(r) => Some(
                    url::Url::parse(r)
                        .map_err(|e| s3_error!(e, InvalidArgument, "Invalid redirect URL"))?,
                ),
                None => None,
            };
        Ok(Self { redirect, status })
    }

    /// The answer, with the headers a PUT answers with. AWS quotes the ETag everywhere here,
    /// in the 201 document and the redirect's `etag` parameter too.
    fn response(
        self,
        bucket: &str,
        key: &str,
        output: PutObjectOutput,
    ) -> http::Response<s3s::Body> {
        let etag = output
            .e_tag
            .as_ref()
            .map(|e| format!("\"{}\"", e.value()))
            .unwrap_or_default();
        let mut headers = HeaderMap::new();
        let values = [
            ("etag", Some(etag.as_str())),
            ("x-amz-version-id", output.version_id.as_deref()),
            (
                "x-amz-server-side-encryption",
                output.server_side_encryption.as_ref().map(|s| s.as_str()),
            ),
            (
                "x-amz-server-side-encryption-aws-kms-key-id",
                output.ssekms_key_id.as_deref(),
            ),
            (
                "x-amz-server-side-encryption-customer-algorithm",
                output.sse_customer_algorithm.as_deref(),
            ),
            (
                "x-amz-server-side-encryption-customer-key-md5",
                output.sse_customer_key_md5.as_deref(),
            ),
        ];
        for (name, value) in values {
            if let Some(v) = value.and_then(|v| HeaderValue::from_str(v).ok()) {
                headers.insert(name, v);
            }
        }
        let (status, body) = if let Some(mut url) = self.redirect {
            url.query_pairs_mut()
                .append_pair("bucket", bucket)
                .append_pair("key", key)
                .append_pair("etag", &etag);
            if let Ok(v) = HeaderValue::from_str(url.as_str()) {
                headers.insert(http::header::LOCATION, v);
            }
            (StatusCode::SEE_OTHER, s3s::Body::empty())
        } else {
            match self.status {
                Some(200) => (StatusCode::OK, s3s::Body::empty()),
                Some(201) => {
                    headers.insert(
                        http::header::CONTENT_TYPE,
                        HeaderValue::from_static("application/xml"),
                    );
                    (
                        StatusCode::CREATED,
                        s3s::Body::from(post_response_xml(bucket, key, &etag)),
                    )
                }
                _ => (StatusCode::NO_CONTENT, s3s::Body::empty()),
            }
        };
        let mut resp = http::Response::new(body);
        *resp.status_mut() = status;
        *resp.headers_mut() = headers;
        resp
    }
}

/// The 201 answer's document.
fn post_response_xml(bucket: &str, key: &str, etag: &str) -> Vec<u8> {
    use s3s::xml::Serialize as _;
    let location = format!("/{bucket}/{key}");
    let doc = s3s::dto::PostResponse {
        location: &location,
        bucket,
        key,
        etag,
    };
    let mut buf = Vec::with_capacity(256);
    let mut ser = s3s::xml::Serializer::new(&mut buf);
    // Writing into a Vec cannot fail.
    let _ = ser.decl().and_then(|()| doc.serialize(&mut ser));
    buf
}

#[cfg(test)]
mod tests {
    use super::*;
    use s3s::dto::ETag;

    fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| ((*a).into(), (*b).into()))
            .collect()
    }

    #[test]
    fn the_input_from_the_fields() {
        let mut f = fields(&[
            ("key", "a/b.txt"),
            ("acl", "public-read"),
            ("content-type", "text/plain"),
            ("x-amz-meta-color", "red"),
            ("x-amz-meta-color", "blue"),
            ("x-amz-meta-", "ignored"),
            (SSE_C_KEY_FIELD, "first-copy"),
            (SSE_C_KEY_FIELD, "the-key"),
        ]);
        let input = put_input(&mut f, "bkt".into()).expect("an input");
        assert_eq!(
            (input.bucket.as_str(), input.key.as_str()),
            ("bkt", "a/b.txt")
        );
        assert_eq!(
            input.acl.as_ref().map(ObjectCannedACL::as_str),
            Some("public-read")
        );
        assert_eq!(input.content_type.as_deref(), Some("text/plain"));
        let meta = input.metadata.expect("metadata");
        assert_eq!(meta.len(), 1);
        assert_eq!(meta.get("color").map(String::as_str), Some("blue"));
        // The last key field went into the input, out of the fields.
        assert_eq!(input.sse_customer_key.as_deref(), Some("the-key"));
        assert_eq!(f.last().map(|(_, v)| v.as_str()), Some(""));
    }

    #[test]
    fn typed_fields_must_parse() {
        let refused = |pairs: &[(&str, &str)]| {
            let mut f = fields(pairs);
            put_input(&mut f, "b".into())
                .err()
                .map(|e| e.code().as_str().to_owned())
        };
        assert_eq!(
            refused(&[("key", "k"), ("expires", "Thu, 01 Dec 1994 16:00:00 GMT")]),
            None
        );
        assert_eq!(
            refused(&[("key", "k"), ("expires", "tomorrow")]).as_deref(),
            Some("InvalidArgument")
        );
        assert_eq!(
            refused(&[("key", "k"), ("x-amz-write-offset-bytes", "x")]).as_deref(),
            Some("InvalidArgument")
        );
    }

    fn output() -> PutObjectOutput {
        PutObjectOutput {
            e_tag: Some(ETag::Strong("abc".into())),
            sse_customer_algorithm: Some("AES256".into()),
            sse_customer_key_md5: Some("bWQ1".into()),
            ..Default::default()
        }
    }

    #[test]
    fn answers() {
        let answer = |pairs: &[(&str, &str)]| {
            Answer::of(&fields(pairs))
                .expect("an answer")
                .response("bkt", "dir/k", output())
        };
        let r = answer(&[]);
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        assert_eq!(r.headers()["etag"], "\"abc\"");
        assert_eq!(
            r.headers()["x-amz-server-side-encryption-customer-key-md5"],
            "bWQ1"
        );
        assert_eq!(
            answer(&[("success_action_status", "200")]).status(),
            StatusCode::OK
        );
        assert_eq!(
            answer(&[("success_action_status", "404")]).status(),
            StatusCode::NO_CONTENT
        );
        let r = answer(&[("success_action_status", "201")]);
        assert_eq!(r.status(), StatusCode::CREATED);
        let body = r.body().bytes().expect("a whole body");
        assert_eq!(
            std::str::from_utf8(&body).expect("utf-8"),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><PostResponse><Location>/bkt/dir/k</Location><Bucket>bkt</Bucket><Key>dir/k</Key><ETag>&quot;abc&quot;</ETag></PostResponse>"
        );
        let r = answer(&[("success_action_redirect", "https://app.example/done?x=1")]);
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            r.headers()[http::header::LOCATION],
            "https://app.example/done?x=1&bucket=bkt&key=dir%2Fk&etag=%22abc%22"
        );
        for bad in [
            &[("success_action_redirect", "not a url")][..],
            &[("success_action_redirect", "https://a.example/\r\nX: y")],
            &[("success_action_status", "two hundred")],
        ] {
            assert_eq!(
                Answer::of(&fields(bad))
                    .err()
                    .map(|e| e.code().as_str().to_owned())
                    .as_deref(),
                Some("InvalidArgument")
            );
        }
    }
}
