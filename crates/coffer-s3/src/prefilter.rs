//! Checks made on the raw request before s3s routes it, for cases s3s gets wrong: an XML body
//! too large to buffer (s3s answers 500), and presigned URLs whose `X-Amz-Expires` is
//! negative (s3s calls that malformed, AWS calls it expired) or beyond the 7-day limit (400
//! `AuthorizationQueryParametersError`, as AWS answers).

use http::{HeaderMap, Method, StatusCode, Uri};

/// The largest XML request body (DeleteObjects, CompleteMultipartUpload, configurations).
pub const MAX_XML_BODY: u64 = 20 * 1024 * 1024;
/// Presigned URLs live at most 7 days.
const MAX_PRESIGNED_EXPIRY_SECS: i64 = 604_800;

const XML_SUBRESOURCES: [&str; 14] = [
    "delete",
    "uploadId",
    "versioning",
    "cors",
    "policy",
    "tagging",
    "acl",
    "lifecycle",
    "encryption",
    "website",
    "logging",
    "notification",
    "replication",
    "object-lock",
];

/// An S3 error to send instead of routing the request.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: &'static str,
}

impl Refusal {
    /// The error as an S3 XML body.
    pub fn xml(&self) -> String {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{}</Code><Message>{}</Message></Error>",
            self.code, self.message
        )
    }
}

fn query_params(uri: &Uri) -> Vec<(&str, &str)> {
    uri.query()
        .unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| kv.split_once('=').unwrap_or((kv, "")))
        .collect()
}

pub fn refuse_before_routing(method: &Method, uri: &Uri, headers: &HeaderMap) -> Option<Refusal> {
    // S3 refuses keys with C1 control characters (U+0080..U+009F) as unparsable URIs; C0
    // controls such as tab and newline are valid key characters (listed with encoding-type=url).
    let path = percent_encoding::percent_decode_str(uri.path()).decode_utf8_lossy();
    if path.chars().any(|c| ('\u{80}'..='\u{9f}').contains(&c)) {
        return Some(Refusal {
            status: StatusCode::BAD_REQUEST,
            code: "InvalidURI",
            message: "Couldn't parse the specified URI.",
        });
    }
    let params = query_params(uri);
    if let Some((_, v)) = params
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("X-Amz-Expires"))
    {
        match v.parse::<i64>() {
            Ok(n) if n < 0 => {
                return Some(Refusal {
                    status: StatusCode::FORBIDDEN,
                    code: "AccessDenied",
                    message: "Request has expired",
                });
            }
            Ok(n) if n > MAX_PRESIGNED_EXPIRY_SECS => {
                return Some(Refusal {
                    status: StatusCode::BAD_REQUEST,
                    code: "AuthorizationQueryParametersError",
                    message: "X-Amz-Expires must be less than a week (in seconds); that is, the given X-Amz-Expires must be less than 604800 seconds",
                });
            }
            _ => {}
        }
    }
    let len: u64 = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())?;
    if len <= MAX_XML_BODY || *method == Method::GET {
        return None;
    }
    // PUT ?uploadId is UploadPart (data), not Complete (XML).
    let xml = params.iter().any(|(k, _)| {
        XML_SUBRESOURCES.contains(k) && !(*k == "uploadId" && *method == Method::PUT)
    });
    xml.then_some(Refusal {
        status: StatusCode::BAD_REQUEST,
        code: "MaxMessageLengthExceeded",
        message: "Your request was too big.",
    })
}

/// A message for error codes s3s sends without one (clients print "Unknown" otherwise).
pub fn default_message(code: &str) -> Option<&'static str> {
    Some(match code {
        "KeyTooLongError" => "Your key is too long.",
        "SignatureDoesNotMatch" => {
            "The request signature we calculated does not match the signature you provided. Check your key and signing method."
        }
        "InvalidAccessKeyId" => "The AWS access key Id you provided does not exist in our records.",
        "AccessDenied" => "Access Denied",
        "InvalidBucketName" => "The specified bucket is not valid.",
        "NoSuchBucket" => "The specified bucket does not exist",
        "MethodNotAllowed" => "The specified method is not allowed against this resource.",
        "RequestTimeTooSkewed" => {
            "The difference between the request time and the current time is too large."
        }
        "MalformedXML" => {
            "The XML you provided was not well-formed or did not validate against our published schema."
        }
        "InvalidURI" => "Couldn't parse the specified URI.",
        "NotImplemented" => "A header you provided implies functionality that is not implemented.",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refuse(method: Method, uri: &str, len: Option<u64>) -> Option<&'static str> {
        let mut headers = HeaderMap::new();
        if let Some(l) = len {
            headers.insert(http::header::CONTENT_LENGTH, l.into());
        }
        refuse_before_routing(&method, &uri.parse().unwrap(), &headers).map(|r| r.code)
    }

    #[test]
    fn presigned_expiry_and_xml_size() {
        assert_eq!(
            refuse(Method::GET, "/b/k?X-Amz-Expires=-5", None),
            Some("AccessDenied")
        );
        assert_eq!(
            refuse(Method::GET, "/b/k?X-Amz-Expires=604801", None),
            Some("AuthorizationQueryParametersError")
        );
        assert_eq!(refuse(Method::GET, "/b/k?X-Amz-Expires=604800", None), None);
        let big = MAX_XML_BODY + 1;
        assert_eq!(
            refuse(Method::POST, "/b?delete", Some(big)),
            Some("MaxMessageLengthExceeded")
        );
        assert_eq!(
            refuse(Method::POST, "/b/k?uploadId=x", Some(big)),
            Some("MaxMessageLengthExceeded")
        );
        assert_eq!(
            refuse(Method::PUT, "/b/k?partNumber=1&uploadId=x", Some(big)),
            None
        );
        assert_eq!(refuse(Method::PUT, "/b/k", Some(big)), None);
        assert_eq!(refuse(Method::POST, "/b?delete", Some(10)), None);
        assert_eq!(
            refuse(Method::GET, "/b/%C2%AE%C2%8A-", None),
            Some("InvalidURI")
        );
        assert_eq!(refuse(Method::GET, "/b/caf%C3%A9%20x", None), None);
        assert_eq!(refuse(Method::GET, "/b/tab%09new%0Aline%01", None), None);
    }
}
