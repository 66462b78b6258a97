//! AWS Signature Version 2 (HMAC-SHA1), checked by Coffer before s3s sees the request.
//!
//! s3s 0.14.1 compares SigV2 signatures with `!=`, which leaks through timing how much of a
//! guess is right. Coffer recomputes the signature itself, compares it in constant time, and
//! refuses a mismatch with 403 `SignatureDoesNotMatch`, so s3s's own comparison only ever runs
//! on a signature already known to be right. The string to sign is built exactly as s3s builds
//! it (same headers, same sub-resource list, same path and host handling), so both agree on
//! every request. With `--sigv2 off` every SigV2 request (header, presigned query, POST form)
//! is refused with the answer AWS gives where SigV2 is not supported.
//!
//! Header-signed requests must also carry a `Date` (or `x-amz-date`) within 15 minutes of the
//! server's clock, as on AWS; s3s does not check it, so a captured request could be replayed
//! forever.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use aws_lc_rs::hmac;
use base64::Engine as _;
use http::{HeaderMap, Method, StatusCode, Uri};

use crate::host::CofferHost;
use crate::prefilter::Refusal;
use crate::{User, UserDirectory};

/// Sub-resources that are part of the canonicalized resource, in the order they are appended
/// (sorted; the list SigV2 clients sign with).
const SIGNED_SUBRESOURCES: [&str; 35] = [
    "accelerate",
    "acl",
    "analytics",
    "cors",
    "defaultObjectAcl",
    "delete",
    "inventory",
    "lifecycle",
    "location",
    "logging",
    "metrics",
    "notification",
    "object-lock",
    "partNumber",
    "policy",
    "replication",
    "requestPayment",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-language",
    "response-content-type",
    "response-expires",
    "restore",
    "select",
    "select-type",
    "storageClass",
    "tagging",
    "torrent",
    "uploadId",
    "uploads",
    "versionId",
    "versioning",
    "versions",
    "website",
];

/// How far a header-signed request's date may be from the server's clock.
const MAX_CLOCK_SKEW_SECS: i64 = 15 * 60;

const UNSUPPORTED: Refusal = Refusal {
    status: StatusCode::BAD_REQUEST,
    code: "InvalidRequest",
    message: "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.",
};
const MISMATCH: Refusal = Refusal {
    status: StatusCode::FORBIDDEN,
    code: "SignatureDoesNotMatch",
    message: "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
};
const UNKNOWN_KEY: Refusal = Refusal {
    status: StatusCode::FORBIDDEN,
    code: "InvalidAccessKeyId",
    message: "The AWS Access Key Id you provided does not exist in our records.",
};
const SKEWED: Refusal = Refusal {
    status: StatusCode::FORBIDDEN,
    code: "RequestTimeTooSkewed",
    message: "The difference between the request time and the current time is too large.",
};
const BAD_DATE: Refusal = Refusal {
    status: StatusCode::FORBIDDEN,
    code: "AccessDenied",
    message: "AWS authentication requires a valid Date or x-amz-date header",
};

/// Where the date line of the string to sign comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `Authorization: AWS key:signature`: the `Date` header, empty when `x-amz-date` is sent.
    Header,
    /// `?AWSAccessKeyId=..&Expires=..&Signature=..`: the `Expires` parameter.
    Presigned,
}

/// Request headers as SigV2 reads them: lowercase names, stably sorted by name, values that
/// are not UTF-8 left out.
struct SortedHeaders<'a>(Vec<(&'a str, &'a str)>);

impl<'a> SortedHeaders<'a> {
    fn new(map: &'a HeaderMap) -> Self {
        let mut v: Vec<(&str, &str)> = map
            .iter()
            .filter_map(|(n, v)| Some((n.as_str(), std::str::from_utf8(v.as_bytes()).ok()?)))
            .collect();
        v.sort_by(|a, b| a.0.cmp(b.0));
        Self(v)
    }

    fn all<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'a str> + 's {
        self.0
            .iter()
            .filter(move |(n, _)| *n == name)
            .map(|(_, v)| *v)
    }

    /// The value of a header sent exactly once.
    fn unique(&self, name: &str) -> Option<&'a str> {
        let mut it = self.all(name);
        let first = it.next()?;
        it.next().is_none().then_some(first)
    }
}

/// Query parameters, form-decoded, stably sorted by name.
struct SortedQuery(Vec<(String, String)>);

impl SortedQuery {
    fn parse(query: &str) -> Self {
        let mut v: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        Self(v)
    }

    fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }

    /// The value of a parameter sent exactly once.
    fn unique(&self, name: &str) -> Option<&str> {
        let mut it = self.0.iter().filter(|(k, _)| k == name);
        let first = it.next()?;
        it.next().is_none().then_some(first.1.as_str())
    }
}

/// The SigV2 string to sign: method, Content-MD5, Content-Type, date (or Expires), the
/// canonicalized `x-amz-*` headers and the canonicalized resource with its sub-resources.
/// `raw_path` is the request path as sent (not decoded); `bucket` the bucket a
/// virtual-hosted-style Host names.
pub fn string_to_sign(
    mode: Mode,
    method: &Method,
    raw_path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    bucket: Option<&str>,
) -> String {
    let hs = SortedHeaders::new(headers);
    let qs = query.map(SortedQuery::parse);
    let mut s = String::with_capacity(256);
    s.push_str(method.as_str());
    s.push('\n');
    s.push_str(hs.unique("content-md5").unwrap_or_default());
    s.push('\n');
    s.push_str(hs.unique("content-type").unwrap_or_default());
    s.push('\n');
    match mode {
        Mode::Header => {
            if hs.unique("x-amz-date").is_none() {
                s.push_str(hs.unique("date").unwrap_or_default());
            }
        }
        Mode::Presigned => {
            s.push_str(
                qs.as_ref()
                    .and_then(|q| q.unique("Expires"))
                    .unwrap_or_default(),
            );
        }
    }
    s.push('\n');
    let mut last = "";
    for &(name, _) in &hs.0 {
        if !name.starts_with("x-amz-") || name == last {
            continue;
        }
        last = name;
        s.push_str(name);
        s.push(':');
        let values: Vec<&str> = hs.all(name).map(str::trim).collect();
        s.push_str(&values.join(","));
        s.push('\n');
    }
    if let Some(b) = bucket {
        s.push('/');
        s.push_str(b);
    }
    s.push_str(raw_path);
    if let Some(qs) = &qs {
        let mut sep = '?';
        for name in SIGNED_SUBRESOURCES {
            if let Some(v) = qs.unique(name) {
                s.push(sep);
                sep = '&';
                s.push_str(name);
                if !v.is_empty() {
                    s.push('=');
                    s.push_str(v);
                }
            }
        }
    }
    s
}

/// The base64 HMAC-SHA1 signature of `string_to_sign` under `secret`.
pub fn sign(secret: &str, string_to_sign: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(hmac::sign(&key, string_to_sign.as_bytes()))
}

/// Whether `provided` (base64) is the signature of `string_to_sign` under `secret`. The tag is
/// compared in constant time (aws-lc's HMAC verify); base64 decoding is canonical, so exactly
/// one string passes.
pub fn verify(secret: &str, string_to_sign: &str, provided: &str) -> bool {
    let Ok(tag) = base64::engine::general_purpose::STANDARD.decode(provided) else {
        return false;
    };
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret.as_bytes());
    hmac::verify(&key, string_to_sign.as_bytes(), &tag).is_ok()
}

/// The SigV2 gate in front of s3s: the on/off switch and the constant-time check.
pub struct SigV2Guard {
    users: Arc<UserDirectory>,
    host: CofferHost,
    enabled: bool,
}

impl SigV2Guard {
    pub fn new(users: Arc<UserDirectory>, domain: Option<String>, enabled: bool) -> Self {
        Self {
            users,
            host: CofferHost::new(domain),
            enabled,
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Checks a SigV2 header or presigned-query signature. `Ok(None)` lets the request go on
    /// to s3s: it is not SigV2, or it is and its signature is right, or s3s refuses it anyway
    /// before comparing anything (missing fields, expired URL, unknown access key).
    ///
    /// `Ok(Some(uri))`: the signature is right for the bucket's path with a trailing slash
    /// (`/bucket/`), which is what botocore signs for path-style bucket requests sent to
    /// `/bucket`. The request must go on with that URI (the same resource), so that s3s signs
    /// the same string and its comparison, too, only sees a right signature.
    pub fn check_request(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Result<Option<Uri>, Refusal> {
        match self.check(method, uri, headers) {
            Some(r) if r.code == MISMATCH.code => {}
            Some(r) => return Err(r),
            None => return Ok(None),
        }
        let path = uri.path();
        let bucket_only = path.len() > 1 && !path[1..].contains('/');
        if !bucket_only || self.virtual_host_bucket(uri, headers).is_some() {
            return Err(MISMATCH);
        }
        let path_and_query = match uri.query() {
            Some(q) => format!("{path}/?{q}"),
            None => format!("{path}/"),
        };
        let mut parts = uri.clone().into_parts();
        parts.path_and_query = Some(path_and_query.parse().map_err(|_| MISMATCH)?);
        let slashed = Uri::from_parts(parts).map_err(|_| MISMATCH)?;
        match self.check(method, &slashed, headers) {
            None => Ok(Some(slashed)),
            Some(r) => Err(r),
        }
    }

    fn check(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> Option<Refusal> {
        // Cheap test first, for the SigV4 requests that are nearly all traffic. A parameter
        // name can be percent-encoded, so any '%' sends the query to the full parse.
        let maybe_presigned = uri
            .query()
            .is_some_and(|q| q.contains("Signature") || q.contains('%'));
        let maybe_header = headers
            .get_all(http::header::AUTHORIZATION)
            .iter()
            .any(|v| v.as_bytes().starts_with(b"AWS "));
        if !maybe_presigned && !maybe_header {
            return None;
        }
        // The order s3s follows: a `Signature` query parameter makes it a presigned SigV2
        // request, else an `Authorization: AWS key:sig` header a header-signed one.
        let qs = uri.query().map(SortedQuery::parse);
        let hs = SortedHeaders::new(headers);
        let (mode, access_key, signature) = if qs.as_ref().is_some_and(|q| q.has("Signature")) {
            if !self.enabled {
                return Some(UNSUPPORTED);
            }
            let q = qs.as_ref()?;
            let access_key = q.unique("AWSAccessKeyId")?;
            let expires: i64 = q.unique("Expires")?.parse().ok().filter(|n| *n >= 0)?;
            let expires = time::OffsetDateTime::from_unix_timestamp(expires).ok()?;
            let signature = percent_encoding::percent_decode_str(q.unique("Signature")?)
                .decode_utf8()
                .ok()?
                .into_owned();
            if time::OffsetDateTime::now_utc() > expires {
                return None; // s3s: 403 AccessDenied "Request has expired", before comparing
            }
            (Mode::Presigned, access_key.to_owned(), signature)
        } else {
            let (access_key, signature) = hs
                .unique("authorization")?
                .strip_prefix("AWS ")?
                .split_once(':')?;
            if !self.enabled {
                return Some(UNSUPPORTED);
            }
            hs.unique("date").or_else(|| hs.unique("x-amz-date"))?;
            (Mode::Header, access_key.to_owned(), signature.to_owned())
        };
        let user = self.users.by_access_key(&access_key)?;
        let bucket = self.virtual_host_bucket(uri, headers);
        let sts = string_to_sign(mode, method, uri.path(), uri.query(), headers, bucket);
        if !verify(user.secret_key(), &sts, &signature) {
            return Some(MISMATCH);
        }
        if mode == Mode::Header {
            // x-amz-date, when sent, is the request time; else Date.
            let date = hs.unique("x-amz-date").or_else(|| hs.unique("date"))?;
            let Some(t) = parse_http_date(date) else {
                return Some(BAD_DATE);
            };
            let skew = (time::OffsetDateTime::now_utc() - t).whole_seconds().abs();
            if skew > MAX_CLOCK_SKEW_SECS {
                return Some(SKEWED);
            }
        }
        None
    }

    /// The user who signed a browser POST form with SigV2 (`AWSAccessKeyId`, `signature`: the
    /// HMAC-SHA1 of the base64 policy); `Ok(None)` for a form without a `signature` field.
    /// `field` looks a form field up by lowercase name. A SigV4 form is not this function's.
    pub(crate) fn form_signer<'a>(
        &self,
        field: impl Fn(&str) -> Option<&'a str>,
    ) -> Result<Option<User>, Refusal> {
        let Some(signature) = field("signature") else {
            return Ok(None);
        };
        if !self.enabled {
            return Err(UNSUPPORTED);
        }
        let user = self
            .users
            .by_access_key(field("awsaccesskeyid").unwrap_or_default())
            .ok_or(UNKNOWN_KEY)?;
        let policy = field("policy").unwrap_or_default();
        if verify(user.secret_key(), policy, signature) {
            Ok(Some(user))
        } else {
            Err(MISMATCH)
        }
    }

    /// The bucket a virtual-hosted-style Host names (as s3s decides it: never for an IP).
    fn virtual_host_bucket<'a>(&self, uri: &'a Uri, headers: &'a HeaderMap) -> Option<&'a str> {
        let host = match headers.get(http::header::HOST) {
            Some(v) => v.to_str().ok()?,
            None => uri.authority()?.as_str(),
        };
        if host.parse::<SocketAddr>().is_ok() || host.parse::<IpAddr>().is_ok() {
            return None;
        }
        self.host.bucket_of(host)
    }
}

/// An HTTP date (`Tue, 27 Mar 2007 19:36:42 GMT`), or the RFC 2822 form SigV2 examples use
/// (`... +0000`).
fn parse_http_date(s: &str) -> Option<time::OffsetDateTime> {
    if let Ok(t) = httpdate::parse_http_date(s) {
        return Some(time::OffsetDateTime::from(t));
    }
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc2822).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example credentials of the AWS SigV2 documentation.
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn header_sts(
        method: Method,
        path: &str,
        query: Option<&str>,
        h: &[(&str, &str)],
        bucket: Option<&str>,
    ) -> String {
        string_to_sign(Mode::Header, &method, path, query, &headers(h), bucket)
    }

    /// The examples of "Signing and authenticating REST requests (AWS signature version 2)".
    #[test]
    fn aws_documentation_examples() {
        let cases: [(String, &str, &str); 6] = [
            (
                header_sts(
                    Method::GET,
                    "/photos/puppy.jpg",
                    None,
                    &[("date", "Tue, 27 Mar 2007 19:36:42 +0000")],
                    Some("awsexamplebucket1"),
                ),
                "GET\n\n\nTue, 27 Mar 2007 19:36:42 +0000\n/awsexamplebucket1/photos/puppy.jpg",
                "qgk2+6Sv9/oM7G3qLEjTH1a1l1g=",
            ),
            (
                header_sts(
                    Method::PUT,
                    "/photos/puppy.jpg",
                    None,
                    &[
                        ("content-type", "image/jpeg"),
                        ("content-length", "94328"),
                        ("date", "Tue, 27 Mar 2007 21:15:45 +0000"),
                    ],
                    Some("awsexamplebucket1"),
                ),
                "PUT\n\nimage/jpeg\nTue, 27 Mar 2007 21:15:45 +0000\n/awsexamplebucket1/photos/puppy.jpg",
                "iqRzw+ileNPu1fhspnRs8nOjjIA=",
            ),
            (
                header_sts(
                    Method::GET,
                    "/",
                    Some("prefix=photos&max-keys=50&marker=puppy"),
                    &[
                        ("user-agent", "Mozilla/5.0"),
                        ("date", "Tue, 27 Mar 2007 19:42:41 +0000"),
                    ],
                    Some("awsexamplebucket1"),
                ),
                "GET\n\n\nTue, 27 Mar 2007 19:42:41 +0000\n/awsexamplebucket1/",
                "m0WP8eCtspQl5Ahe6L1SozdX9YA=",
            ),
            (
                header_sts(
                    Method::GET,
                    "/",
                    Some("acl"),
                    &[("date", "Tue, 27 Mar 2007 19:44:46 +0000")],
                    Some("awsexamplebucket1"),
                ),
                "GET\n\n\nTue, 27 Mar 2007 19:44:46 +0000\n/awsexamplebucket1/?acl",
                "82ZHiFIjc+WbcwFKGUVEQspPn+0=",
            ),
            (
                header_sts(
                    Method::GET,
                    "/",
                    None,
                    &[("date", "Wed, 28 Mar 2007 01:29:59 +0000")],
                    None,
                ),
                "GET\n\n\nWed, 28 Mar 2007 01:29:59 +0000\n/",
                "qGdzdERIC03wnaRNKh6OqZehG9s=",
            ),
            (
                header_sts(
                    Method::GET,
                    "/dictionary/fran%C3%A7ais/pr%c3%a9f%c3%a8re",
                    None,
                    &[("date", "Wed, 28 Mar 2007 01:49:49 +0000")],
                    None,
                ),
                "GET\n\n\nWed, 28 Mar 2007 01:49:49 +0000\n/dictionary/fran%C3%A7ais/pr%c3%a9f%c3%a8re",
                "DNEZGsoieTZ92F3bUfSPQcbGmlM=",
            ),
        ];
        for (sts, want_sts, want_sig) in cases {
            assert_eq!(sts, want_sts);
            assert_eq!(sign(SECRET, &sts), want_sig, "{sts}");
            assert!(verify(SECRET, &sts, want_sig));
        }
    }

    #[test]
    fn amz_headers_are_sorted_merged_and_trimmed() {
        let sts = header_sts(
            Method::PUT,
            "/db-backup.dat.gz",
            None,
            &[
                ("date", "Tue, 27 Mar 2007 21:06:08 +0000"),
                ("x-amz-acl", "public-read"),
                ("content-type", "application/x-download"),
                ("content-md5", "4gJE4saaMU4BqNR0kLY+lw=="),
                ("x-amz-meta-reviewedby", "joe@example.com"),
                ("x-amz-meta-reviewedby", " jane@example.com "),
                ("x-amz-meta-filechecksum", "0x02661779"),
                ("x-amz-meta-checksumalgorithm", "crc32"),
                ("content-disposition", "attachment; filename=database.dat"),
            ],
            Some("static.example.com"),
        );
        assert_eq!(
            sts,
            "PUT\n4gJE4saaMU4BqNR0kLY+lw==\napplication/x-download\nTue, 27 Mar 2007 21:06:08 +0000\n\
             x-amz-acl:public-read\nx-amz-meta-checksumalgorithm:crc32\nx-amz-meta-filechecksum:0x02661779\n\
             x-amz-meta-reviewedby:joe@example.com,jane@example.com\n/static.example.com/db-backup.dat.gz"
        );
        // With x-amz-date the Date line is empty and x-amz-date is signed as an amz header.
        let sts = header_sts(
            Method::DELETE,
            "/awsexamplebucket1/photos/puppy.jpg",
            None,
            &[
                ("date", "Tue, 27 Mar 2007 21:20:27 +0000"),
                ("x-amz-date", "Tue, 27 Mar 2007 21:20:26 +0000"),
            ],
            None,
        );
        assert_eq!(
            sts,
            "DELETE\n\n\n\nx-amz-date:Tue, 27 Mar 2007 21:20:26 +0000\n/awsexamplebucket1/photos/puppy.jpg"
        );
    }

    #[test]
    fn presigned_uses_expires_and_only_signed_subresources() {
        let q = "AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Expires=1175139620&Signature=x&versionId=v1&uploads=&foo=bar&response-content-type=text%2Fplain";
        let sts = string_to_sign(
            Mode::Presigned,
            &Method::GET,
            "/b/k",
            Some(q),
            &HeaderMap::new(),
            None,
        );
        assert_eq!(
            sts,
            "GET\n\n\n1175139620\n/b/k?response-content-type=text/plain&uploads&versionId=v1"
        );
    }

    #[test]
    fn verification_is_exact() {
        let sts = "GET\n\n\nTue, 27 Mar 2007 19:36:42 +0000\n/awsexamplebucket1/photos/puppy.jpg";
        assert!(verify(SECRET, sts, "qgk2+6Sv9/oM7G3qLEjTH1a1l1g="));
        for bad in [
            "qgk2+6Sv9/oM7G3qLEjTH1a1l1h=", // last bits changed: non-canonical base64
            "qgk2+6Sv9/oM7G3qLEjTH1a1l1g",  // unpadded
            "rgk2+6Sv9/oM7G3qLEjTH1a1l1g=",
            "qgk2+6Sv9/oM7G3qLEjTH1a1",
            "",
            "not base64!",
        ] {
            assert!(!verify(SECRET, sts, bad), "{bad}");
        }
        assert!(!verify(
            "another secret",
            sts,
            "qgk2+6Sv9/oM7G3qLEjTH1a1l1g="
        ));
    }

    fn guard(enabled: bool) -> SigV2Guard {
        let users = Arc::new(UserDirectory::default());
        users
            .add(crate::User::new(
                "root",
                "AKIAIOSFODNN7EXAMPLE",
                SECRET,
                crate::UserSource::Root,
            ))
            .unwrap();
        SigV2Guard::new(users, Some("s3.example.com".into()), enabled)
    }

    fn now_http_date() -> String {
        httpdate::fmt_http_date(std::time::SystemTime::now())
    }

    #[test]
    fn header_requests() {
        let g = guard(true);
        let date = now_http_date();
        let uri: Uri = "/photos/puppy.jpg".parse().unwrap();
        let mut h = headers(&[
            ("host", "awsexamplebucket1.s3.example.com"),
            ("date", &date),
        ]);
        let sts = string_to_sign(
            Mode::Header,
            &Method::GET,
            uri.path(),
            None,
            &h,
            Some("awsexamplebucket1"),
        );
        let good = format!("AWS AKIAIOSFODNN7EXAMPLE:{}", sign(SECRET, &sts));
        h.insert("authorization", good.parse().unwrap());
        assert_eq!(g.check_request(&Method::GET, &uri, &h), Ok(None));
        assert_eq!(
            g.check_request(&Method::PUT, &uri, &h)
                .err()
                .map(|r| r.code),
            Some("SignatureDoesNotMatch")
        );
        assert_eq!(
            guard(false)
                .check_request(&Method::GET, &uri, &h)
                .err()
                .map(|r| r.code),
            Some("InvalidRequest")
        );
        // An unknown key and a missing date are s3s's to refuse (before it compares anything).
        let mut other = h.clone();
        other.insert("authorization", "AWS NOSUCHKEY:abc=".parse().unwrap());
        assert_eq!(g.check_request(&Method::GET, &uri, &other), Ok(None));
        // A stale date with a good signature: too skewed.
        let old = "Tue, 27 Mar 2007 19:36:42 +0000";
        let mut stale = headers(&[("host", "awsexamplebucket1.s3.example.com"), ("date", old)]);
        let sts = string_to_sign(
            Mode::Header,
            &Method::GET,
            uri.path(),
            None,
            &stale,
            Some("awsexamplebucket1"),
        );
        stale.insert(
            "authorization",
            format!("AWS AKIAIOSFODNN7EXAMPLE:{}", sign(SECRET, &sts))
                .parse()
                .unwrap(),
        );
        assert_eq!(
            g.check_request(&Method::GET, &uri, &stale)
                .err()
                .map(|r| r.code),
            Some("RequestTimeTooSkewed")
        );
        // SigV4 requests are not this gate's business, even with SigV2 off.
        let v4 = headers(&[(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AK/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00",
        )]);
        assert_eq!(
            guard(false).check_request(&Method::GET, &uri, &v4),
            Ok(None)
        );
    }

    #[test]
    fn presigned_requests() {
        let g = guard(true);
        let expires = (time::OffsetDateTime::now_utc().unix_timestamp() + 300).to_string();
        let sts = format!("GET\n\n\n{expires}\n/b/k");
        let sig = sign(SECRET, &sts);
        let enc = |s: &str| {
            percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
        };
        let uri = |sig: &str| -> Uri {
            format!(
                "/b/k?AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Expires={expires}&Signature={}",
                enc(sig)
            )
            .parse()
            .unwrap()
        };
        let h = headers(&[("host", "127.0.0.1:9443")]);
        assert_eq!(g.check_request(&Method::GET, &uri(&sig), &h), Ok(None));
        let mut bad = sig.clone().into_bytes();
        bad[0] = if bad[0] == b'A' { b'B' } else { b'A' };
        let bad = String::from_utf8(bad).unwrap();
        assert_eq!(
            g.check_request(&Method::GET, &uri(&bad), &h)
                .err()
                .map(|r| r.code),
            Some("SignatureDoesNotMatch")
        );
        assert_eq!(
            g.check_request(&Method::DELETE, &uri(&sig), &h)
                .err()
                .map(|r| r.code),
            Some("SignatureDoesNotMatch")
        );
        assert_eq!(
            guard(false)
                .check_request(&Method::GET, &uri(&sig), &h)
                .err()
                .map(|r| r.code),
            Some("InvalidRequest")
        );
    }

    #[test]
    fn bucket_paths_signed_with_a_trailing_slash() {
        let g = guard(true);
        let date = now_http_date();
        let mut h = headers(&[("host", "127.0.0.1:9443"), ("date", &date)]);
        let sts = format!("GET\n\n\n{date}\n/photos/?acl");
        h.insert(
            "authorization",
            format!("AWS AKIAIOSFODNN7EXAMPLE:{}", sign(SECRET, &sts))
                .parse()
                .unwrap(),
        );
        let uri: Uri = "/photos?acl".parse().unwrap();
        let rewritten = g.check_request(&Method::GET, &uri, &h).unwrap().unwrap();
        assert_eq!(rewritten.to_string(), "/photos/?acl");
        assert_eq!(g.check_request(&Method::GET, &rewritten, &h), Ok(None));
        // Only a bucket's path gets the second chance.
        let object: Uri = "/photos/x?acl".parse().unwrap();
        assert!(g.check_request(&Method::GET, &object, &h).is_err());
    }

    #[test]
    fn post_forms() {
        let g = guard(true);
        let policy = "eyJleHBpcmF0aW9uIjoiMjAzMC0wMS0wMVQwMDowMDowMFoiLCJjb25kaXRpb25zIjpbXX0=";
        let sig = sign(SECRET, policy);
        let form = |signature: &str| -> Vec<(&str, String)> {
            vec![
                ("awsaccesskeyid", "AKIAIOSFODNN7EXAMPLE".into()),
                ("policy", policy.into()),
                ("signature", signature.into()),
            ]
        };
        let check = |g: &SigV2Guard, f: &[(&str, String)]| {
            g.form_signer(|n| {
                f.iter()
                    .rev()
                    .find(|(k, _)| *k == n)
                    .map(|(_, v)| v.as_str())
            })
            .map(|u| u.map(|u| u.name))
            .map_err(|r| r.code)
        };
        assert_eq!(check(&g, &form(&sig)), Ok(Some("root".into())));
        assert_eq!(check(&g, &form("AAAA")), Err("SignatureDoesNotMatch"));
        assert_eq!(check(&guard(false), &form(&sig)), Err("InvalidRequest"));
        let mut unknown = form(&sig);
        unknown[0].1 = "AKNOBODY".into();
        assert_eq!(check(&g, &unknown), Err("InvalidAccessKeyId"));
        // No signature field: not a SigV2 form.
        assert_eq!(check(&guard(false), &form(&sig)[..2]), Ok(None));
    }

    #[test]
    fn http_dates() {
        assert!(parse_http_date("Tue, 27 Mar 2007 19:36:42 GMT").is_some());
        assert!(parse_http_date("Tue, 27 Mar 2007 19:36:42 +0000").is_some());
        assert!(parse_http_date("yesterday").is_none());
    }
}
