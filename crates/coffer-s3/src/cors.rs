//! CORS: a bucket's cross-origin rules, and how a browser's request is judged against them.
//!
//! Rules are validated here when they are put (AWS's limits and error codes), matched here, and
//! turned into response headers here. A preflight (`OPTIONS`) never reaches s3s, which routes
//! no OPTIONS: the listener hands it to [`CorsResponder::preflight`] unsigned, as browsers send
//! it. Every other request that carries an `Origin` gets [`CorsResponder::actual_request_headers`]
//! added to its answer, errors included, so a page can read the S3 error of a failed upload.
//! CORS never grants anything: it only tells a browser which answers a page may read, while
//! signatures, ACLs and policies still decide what a request may do.

use coffer_core::{Coffer, CoreError, CorsRule};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, Uri, header};
use s3s::dto::{CORSConfiguration, CORSRule};
use s3s::{S3Result, s3_error};

use crate::CofferHost;

/// "You can add up to 100 rules to the configuration."
const MAX_RULES: usize = 100;
/// "The document is limited to 64 KB in size."
pub(crate) const MAX_DOCUMENT_BYTES: u64 = 64 * 1024;
/// The methods a rule may allow, spelled as AWS requires (upper case).
const METHODS: [&str; 5] = ["GET", "PUT", "HEAD", "POST", "DELETE"];
const MAX_ID_CHARS: usize = 255;
/// What every CORS answer varies on, as S3 sends it.
const VARY: &str = "Origin, Access-Control-Request-Headers, Access-Control-Request-Method";

const NOT_ALLOWED: &str = "CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.";

/// Checks a PutBucketCors document as S3 does and turns it into stored rules (order kept).
pub(crate) fn validate(config: CORSConfiguration) -> S3Result<Vec<CorsRule>> {
    let malformed = || {
        s3_error!(
            MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema"
        )
    };
    if config.cors_rules.is_empty() || config.cors_rules.len() > MAX_RULES {
        return Err(malformed());
    }
    let mut rules = Vec::with_capacity(config.cors_rules.len());
    for rule in config.cors_rules {
        if rule.allowed_methods.is_empty() || rule.allowed_origins.is_empty() {
            return Err(malformed());
        }
        if let Some(m) = rule
            .allowed_methods
            .iter()
            .find(|m| !METHODS.contains(&m.as_str()))
        {
            return Err(s3_error!(
                InvalidRequest,
                "Found unsupported HTTP method in CORS config. Unsupported method is {m}"
            ));
        }
        let allowed_headers = rule.allowed_headers.unwrap_or_default();
        for (element, values) in [
            ("AllowedOrigin", &rule.allowed_origins),
            ("AllowedHeader", &allowed_headers),
        ] {
            if let Some(v) = values.iter().find(|v| v.matches('*').count() > 1) {
                return Err(s3_error!(
                    InvalidRequest,
                    "{element} \"{v}\" can not have more than one wildcard."
                ));
            }
        }
        let expose_headers = rule.expose_headers.unwrap_or_default();
        if let Some(h) = expose_headers.iter().find(|h| h.contains('*')) {
            return Err(s3_error!(
                InvalidRequest,
                "ExposeHeader \"{h}\" contains wildcard. We currently do not support wildcard for ExposeHeader."
            ));
        }
        if rule
            .id
            .as_ref()
            .is_some_and(|id| id.chars().count() > MAX_ID_CHARS)
        {
            return Err(s3_error!(
                InvalidArgument,
                "ID length should not exceed allowed limit of {MAX_ID_CHARS}"
            ));
        }
        if rule.max_age_seconds.is_some_and(|s| s < 0) {
            return Err(s3_error!(
                InvalidArgument,
                "MaxAgeSeconds must not be negative"
            ));
        }
        rules.push(CorsRule {
            id: rule.id,
            allowed_origins: rule.allowed_origins,
            allowed_methods: rule.allowed_methods,
            allowed_headers,
            expose_headers,
            max_age_seconds: rule.max_age_seconds,
        });
    }
    Ok(rules)
}

/// Stored rules as GetBucketCors answers them (only the members that were set).
pub(crate) fn to_dto(rules: Vec<CorsRule>) -> Vec<CORSRule> {
    let non_empty = |v: Vec<String>| (!v.is_empty()).then_some(v);
    rules
        .into_iter()
        .map(|r| CORSRule {
            allowed_headers: non_empty(r.allowed_headers),
            allowed_methods: r.allowed_methods,
            allowed_origins: r.allowed_origins,
            expose_headers: non_empty(r.expose_headers),
            id: r.id,
            max_age_seconds: r.max_age_seconds,
        })
        .collect()
}

/// `pattern` with at most one `*`, which stands for any run of characters (the empty one too),
/// anchored at both ends.
fn wildcard_match(pattern: &str, value: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == value,
        Some((prefix, suffix)) => {
            value.len() >= prefix.len() + suffix.len()
                && value.starts_with(prefix)
                && value.ends_with(suffix)
        }
    }
}

/// What `Access-Control-Allow-Origin` says for a matched rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AllowOrigin {
    /// The rule allows every origin (`*`): the answer is `*`, without credentials.
    Any,
    /// The request's own origin, echoed, with `Access-Control-Allow-Credentials: true`.
    Echo,
}

/// The first rule that lets `origin` use `method` with every one of `headers` (lower case).
/// Origins match case-sensitively (browsers send them lower case); header names do not.
fn matching_rule<'a>(
    rules: &'a [CorsRule],
    origin: &str,
    method: &str,
    headers: &[String],
) -> Option<(&'a CorsRule, AllowOrigin)> {
    rules.iter().find_map(|rule| {
        let pattern = rule
            .allowed_origins
            .iter()
            .find(|p| wildcard_match(p, origin))?;
        if !rule.allowed_methods.iter().any(|m| m == method) {
            return None;
        }
        let allowed = |name: &String| {
            rule.allowed_headers
                .iter()
                .any(|a| wildcard_match(&a.to_ascii_lowercase(), name))
        };
        if !headers.iter().all(allowed) {
            return None;
        }
        let allow = if pattern == "*" {
            AllowOrigin::Any
        } else {
            AllowOrigin::Echo
        };
        Some((rule, allow))
    })
}

/// The names listed in `Access-Control-Request-Headers`, lower case, in the order sent.
fn requested_headers(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect()
}

fn header_str<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The CORS headers for a matched rule. `requested` is non-empty only for a preflight that
/// asked for headers.
fn rule_headers(
    rule: &CorsRule,
    allow: AllowOrigin,
    origin: &str,
    requested: &[String],
) -> Vec<(HeaderName, HeaderValue)> {
    let mut out = Vec::new();
    let mut push = |name: HeaderName, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            out.push((name, v));
        }
    };
    match allow {
        AllowOrigin::Any => push(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        AllowOrigin::Echo => {
            push(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            push(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true");
        }
    }
    push(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        &rule.allowed_methods.join(", "),
    );
    if !requested.is_empty() {
        push(header::ACCESS_CONTROL_ALLOW_HEADERS, &requested.join(", "));
    }
    if !rule.expose_headers.is_empty() {
        push(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            &rule.expose_headers.join(", "),
        );
    }
    if let Some(age) = rule.max_age_seconds {
        push(header::ACCESS_CONTROL_MAX_AGE, &age.to_string());
    }
    push(header::VARY, VARY);
    out
}

/// The bucket a request names, and whether it names an object in it.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    bucket: String,
    object: bool,
}

/// The bucket a request names: the Host's for virtual-hosted style, else the first path segment.
fn target(host: &CofferHost, uri: &Uri, headers: &HeaderMap) -> Option<Target> {
    let authority =
        header_str(headers, &header::HOST).or_else(|| uri.authority().map(|a| a.as_str()));
    let path = uri.path().trim_start_matches('/');
    if let Some(bucket) = authority.and_then(|h| host.bucket_of(h)) {
        return Some(Target {
            bucket: bucket.to_owned(),
            object: !path.is_empty(),
        });
    }
    let (bucket, rest) = path.split_once('/').unwrap_or((path, ""));
    let bucket = percent_encoding::percent_decode_str(bucket)
        .decode_utf8()
        .ok()?
        .into_owned();
    (!bucket.is_empty()).then_some(Target {
        bucket,
        object: !rest.is_empty(),
    })
}

/// Answers preflights and adds CORS headers to actual requests, from the bucket's stored rules.
pub struct CorsResponder {
    coffer: Coffer,
    host: CofferHost,
}

impl CorsResponder {
    pub fn new(coffer: Coffer, domain: Option<String>) -> Self {
        Self {
            coffer,
            host: CofferHost::new(domain),
        }
    }

    /// The answer to an `OPTIONS` request. It needs no signature.
    pub fn preflight(&self, uri: &Uri, headers: &HeaderMap) -> Response<s3s::Body> {
        let Some(origin) = header_str(headers, &header::ORIGIN) else {
            return error_response(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "Insufficient information. Origin request header needed.",
                None,
            );
        };
        let method = header_str(headers, &header::ACCESS_CONTROL_REQUEST_METHOD);
        let forbidden = |message: &str, resource_type: &str| {
            error_response(
                StatusCode::FORBIDDEN,
                "AccessForbidden",
                message,
                Some((method.unwrap_or("OPTIONS"), resource_type)),
            )
        };
        let Some(target) = target(&self.host, uri, headers) else {
            return forbidden("CORSResponse: Bucket not found", "BUCKET");
        };
        let rules = match self.coffer.bucket(&target.bucket) {
            Ok(info) => info.cors,
            Err(CoreError::NoSuchBucket) => {
                return forbidden("CORSResponse: Bucket not found", "BUCKET");
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading a bucket's CORS rules failed");
                return error_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalError",
                    "We encountered an internal error. Please try again.",
                    None,
                );
            }
        };
        let Some(rules) = rules else {
            return forbidden(
                "CORSResponse: CORS is not enabled for this bucket.",
                "BUCKET",
            );
        };
        let Some(method) = method else {
            return error_response(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "Insufficient information. Access-Control-Request-Method request header needed.",
                None,
            );
        };
        let requested = requested_headers(headers);
        match matching_rule(&rules, origin, method, &requested) {
            Some((rule, allow)) => {
                let mut resp = Response::new(s3s::Body::empty());
                resp.headers_mut()
                    .extend(rule_headers(rule, allow, origin, &requested));
                resp.headers_mut()
                    .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
                resp
            }
            None => forbidden(NOT_ALLOWED, if target.object { "OBJECT" } else { "BUCKET" }),
        }
    }

    /// The CORS headers for the answer to a request that is not a preflight: none unless it
    /// carries an `Origin` that a rule of its bucket allows for its method. As S3 does, an
    /// `Access-Control-Request-Method` header stands for the method, and the request's own
    /// headers are not checked.
    pub fn actual_request_headers(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Vec<(HeaderName, HeaderValue)> {
        let Some(origin) = header_str(headers, &header::ORIGIN) else {
            return Vec::new();
        };
        let Some(target) = target(&self.host, uri, headers) else {
            return Vec::new();
        };
        let Ok(Some(rules)) = self.coffer.bucket(&target.bucket).map(|info| info.cors) else {
            return Vec::new();
        };
        let method =
            header_str(headers, &header::ACCESS_CONTROL_REQUEST_METHOD).unwrap_or(method.as_str());
        match matching_rule(&rules, origin, method, &[]) {
            Some((rule, allow)) => rule_headers(rule, allow, origin, &[]),
            None => Vec::new(),
        }
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An S3 error document; a refused preflight also names the method and resource type.
fn error_response(
    status: StatusCode,
    code: &str,
    message: &str,
    method_and_type: Option<(&str, &str)>,
) -> Response<s3s::Body> {
    let mut body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{}</Message>",
        xml_escape(message)
    );
    if let Some((method, resource_type)) = method_and_type {
        body.push_str(&format!(
            "<Method>{}</Method><ResourceType>{resource_type}</ResourceType>",
            xml_escape(method)
        ));
    }
    body.push_str("</Error>");
    let mut resp = Response::new(s3s::Body::from(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(origins: &[&str], methods: &[&str]) -> CORSRule {
        CORSRule {
            allowed_headers: None,
            allowed_methods: methods.iter().map(|s| (*s).to_owned()).collect(),
            allowed_origins: origins.iter().map(|s| (*s).to_owned()).collect(),
            expose_headers: None,
            id: None,
            max_age_seconds: None,
        }
    }

    fn config(rules: Vec<CORSRule>) -> CORSConfiguration {
        CORSConfiguration { cors_rules: rules }
    }

    fn refusal(config: CORSConfiguration) -> (String, String) {
        let e = validate(config).expect_err("should be refused");
        (
            e.code().as_str().to_owned(),
            e.message().unwrap_or_default().to_owned(),
        )
    }

    #[test]
    fn validation_follows_s3() {
        let ok = validate(config(vec![rule(
            &["https://*.example.com", ""],
            &["GET", "PUT"],
        )]))
        .unwrap();
        assert_eq!(ok[0].allowed_origins, ["https://*.example.com", ""]);
        assert!(ok[0].allowed_headers.is_empty());

        assert_eq!(refusal(config(vec![])).0, "MalformedXML");
        assert_eq!(
            refusal(config(vec![rule(&["*"], &["GET"]); 101])).0,
            "MalformedXML"
        );
        assert!(validate(config(vec![rule(&["*"], &["GET"]); 100])).is_ok());
        assert_eq!(refusal(config(vec![rule(&[], &["GET"])])).0, "MalformedXML");
        assert_eq!(refusal(config(vec![rule(&["*"], &[])])).0, "MalformedXML");

        for bad in ["OPTIONS", "get", "MYMETHOD", ""] {
            assert_eq!(
                refusal(config(vec![rule(&["*"], &["GET", bad])])),
                (
                    "InvalidRequest".to_owned(),
                    format!(
                        "Found unsupported HTTP method in CORS config. Unsupported method is {bad}"
                    )
                )
            );
        }
        assert_eq!(
            refusal(config(vec![rule(&["*example*.com"], &["GET"])])),
            (
                "InvalidRequest".to_owned(),
                "AllowedOrigin \"*example*.com\" can not have more than one wildcard.".to_owned()
            )
        );
        let mut two_stars = rule(&["*"], &["GET"]);
        two_stars.allowed_headers = Some(vec!["x-amz-*".into(), "x-*-*".into()]);
        assert_eq!(
            refusal(config(vec![two_stars])).1,
            "AllowedHeader \"x-*-*\" can not have more than one wildcard."
        );
        let mut expose_star = rule(&["*"], &["GET"]);
        expose_star.expose_headers = Some(vec!["*".into()]);
        assert_eq!(refusal(config(vec![expose_star])).0, "InvalidRequest");
        let mut long_id = rule(&["*"], &["GET"]);
        long_id.id = Some("i".repeat(256));
        assert_eq!(refusal(config(vec![long_id])).0, "InvalidArgument");
        let mut negative = rule(&["*"], &["GET"]);
        negative.max_age_seconds = Some(-1);
        assert_eq!(refusal(config(vec![negative])).0, "InvalidArgument");
    }

    #[test]
    fn wildcards_are_anchored_and_may_match_nothing() {
        // The patterns and origins of ceph/s3-tests' test_cors_origin_response.
        assert!(wildcard_match("*suffix", "foo.suffix"));
        assert!(!wildcard_match("*suffix", "foo.suffix.get"));
        assert!(wildcard_match("start*end", "startend"));
        assert!(wildcard_match("start*end", "start12end"));
        assert!(!wildcard_match("start*end", "0start12end"));
        assert!(wildcard_match("prefix*", "prefix"));
        assert!(!wildcard_match("prefix*", "bla.prefix"));
        assert!(!wildcard_match("ab*ba", "aba"));
        assert!(wildcard_match(
            "http://*.origin.com",
            "http://test.origin.com"
        ));
        assert!(!wildcard_match(
            "http://*.origin.com",
            "http://test.origin.com/"
        ));
        assert!(!wildcard_match(
            "http://www.example.com",
            "https://www.example.com"
        ));
        assert!(wildcard_match("", ""));
    }

    fn stored(origins: &[&str], methods: &[&str], headers: &[&str]) -> CorsRule {
        let mut r = rule(origins, methods);
        r.allowed_headers = Some(headers.iter().map(|s| (*s).to_owned()).collect());
        validate(config(vec![r])).unwrap().remove(0)
    }

    #[test]
    fn the_first_rule_allowing_origin_method_and_every_header_wins() {
        let rules = vec![
            stored(
                &["https://app.example"],
                &["PUT"],
                &["x-amz-*", "Content-Type"],
            ),
            stored(&["https://*.example"], &["GET", "PUT"], &[]),
            stored(&["*"], &["GET"], &["*"]),
        ];
        let hdrs = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let (r, allow) = matching_rule(
            &rules,
            "https://app.example",
            "PUT",
            &hdrs(&["content-type", "x-amz-meta-a"]),
        )
        .unwrap();
        assert!(std::ptr::eq(r, &rules[0]));
        assert_eq!(allow, AllowOrigin::Echo);
        // A header the first rule does not allow: the second rule allows no headers at all.
        assert!(matching_rule(&rules, "https://app.example", "PUT", &hdrs(&["x-other"])).is_none());
        let (r, _) = matching_rule(&rules, "https://b.example", "PUT", &[]).unwrap();
        assert!(std::ptr::eq(r, &rules[1]));
        let (r, allow) =
            matching_rule(&rules, "http://elsewhere", "GET", &hdrs(&["x-anything"])).unwrap();
        assert!(std::ptr::eq(r, &rules[2]));
        assert_eq!(allow, AllowOrigin::Any);
        assert!(matching_rule(&rules, "http://elsewhere", "DELETE", &[]).is_none());
        // Methods match exactly: a browser upper-cases the standard ones.
        assert!(matching_rule(&rules, "http://elsewhere", "get", &[]).is_none());
    }

    #[test]
    fn response_headers_echo_or_star() {
        let mut r = stored(&["https://app.example"], &["GET", "POST"], &["*"]);
        r.expose_headers = vec!["ETag".into(), "x-amz-request-id".into()];
        r.max_age_seconds = Some(3000);
        let requested = vec!["content-type".to_owned(), "x-amz-date".to_owned()];
        let h: HeaderMap = rule_headers(&r, AllowOrigin::Echo, "https://app.example", &requested)
            .into_iter()
            .collect();
        let get = |n: HeaderName| h.get(n).and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert_eq!(
            get(header::ACCESS_CONTROL_ALLOW_ORIGIN),
            "https://app.example"
        );
        assert_eq!(get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS), "true");
        assert_eq!(get(header::ACCESS_CONTROL_ALLOW_METHODS), "GET, POST");
        assert_eq!(
            get(header::ACCESS_CONTROL_ALLOW_HEADERS),
            "content-type, x-amz-date"
        );
        assert_eq!(
            get(header::ACCESS_CONTROL_EXPOSE_HEADERS),
            "ETag, x-amz-request-id"
        );
        assert_eq!(get(header::ACCESS_CONTROL_MAX_AGE), "3000");
        assert_eq!(get(header::VARY), VARY);

        let h: HeaderMap = rule_headers(&r, AllowOrigin::Any, "https://x", &[])
            .into_iter()
            .collect();
        assert_eq!(get_owned(&h, header::ACCESS_CONTROL_ALLOW_ORIGIN), "*");
        assert!(!h.contains_key(header::ACCESS_CONTROL_ALLOW_CREDENTIALS));
        assert!(!h.contains_key(header::ACCESS_CONTROL_ALLOW_HEADERS));
    }

    fn get_owned(h: &HeaderMap, n: HeaderName) -> String {
        h.get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }

    #[test]
    fn the_bucket_comes_from_the_host_or_the_path() {
        let host = CofferHost::new(Some("s3.example.com".into()));
        let at = |uri: &str, h: Option<&str>| {
            let mut headers = HeaderMap::new();
            if let Some(h) = h {
                headers.insert(header::HOST, HeaderValue::from_str(h).unwrap());
            }
            target(&host, &uri.parse().unwrap(), &headers)
        };
        let t = |bucket: &str, object: bool| {
            Some(Target {
                bucket: bucket.into(),
                object,
            })
        };
        assert_eq!(at("/b", Some("localhost:9443")), t("b", false));
        assert_eq!(at("/b/", Some("localhost:9443")), t("b", false));
        assert_eq!(at("/b/k/x?uploads", None), t("b", true));
        assert_eq!(at("/my%2Ebucket/k", None), t("my.bucket", true));
        assert_eq!(at("/", Some("localhost")), None);
        assert_eq!(at("/", Some("photos.s3.example.com")), t("photos", false));
        assert_eq!(
            at("/a/b", Some("photos.s3.example.com:9443")),
            t("photos", true)
        );
    }

    #[test]
    fn requested_header_lists_are_split_trimmed_and_lowered() {
        let mut h = HeaderMap::new();
        h.append(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            HeaderValue::from_static("X-Amz-Date, content-type,,"),
        );
        h.append(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            HeaderValue::from_static("x-amz-meta-a"),
        );
        assert_eq!(
            requested_headers(&h),
            ["x-amz-date", "content-type", "x-amz-meta-a"]
        );
    }
}
