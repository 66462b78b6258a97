//! SigV4 header signing for S3 requests (and the admin API, which is signed the same way), with the
//! `aws-sigv4` crate.
//!
//! S3 wants single percent-encoding of the path and no path normalization; the payload hash goes in
//! `x-amz-content-sha256`. The caller passes every header it wants signed (at least `host`; S3 also requires
//! the `x-amz-*` ones) and gets back the headers to add: `authorization`, `x-amz-date`, `x-amz-content-sha256`.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;

/// SHA-256 of the empty string, the payload hash of every bodiless request.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// What `x-amz-content-sha256` says about the body.
pub enum Payload<'a> {
    /// `UNSIGNED-PAYLOAD`: the body is not hashed.
    Unsigned,
    /// A hex SHA-256 already computed by the caller.
    Sha256Hex(&'a str),
}

pub struct Signer {
    credentials: Credentials,
    region: String,
}

impl Signer {
    pub fn new(access_key: &str, secret_key: &str, region: &str) -> Signer {
        Signer {
            credentials: Credentials::new(access_key, secret_key, None, None, "coffer"),
            region: region.to_owned(),
        }
    }

    /// The headers to add to a request: `(name, value)` pairs.
    ///
    /// `url` is the absolute URL (`https://host:port/bucket/key?query`); `headers` are the headers to sign,
    /// `host` among them.
    pub fn sign(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        payload: Payload<'_>,
        time: SystemTime,
    ) -> Result<Vec<(&'static str, String)>, String> {
        let mut settings = SigningSettings::default();
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        let identity = self.credentials.clone().into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("s3")
            .time(time)
            .settings(settings)
            .build()
            .map_err(|e| format!("signing parameters: {e}"))?
            .into();
        let body = match payload {
            Payload::Unsigned => SignableBody::UnsignedPayload,
            Payload::Sha256Hex(hex) => SignableBody::Precomputed(hex.to_owned()),
        };
        let request = SignableRequest::new(method, url, headers.iter().copied(), body)
            .map_err(|e| format!("cannot sign {method} {url}: {e}"))?;
        let (instructions, _signature) = sign(request, &params)
            .map_err(|e| format!("cannot sign {method} {url}: {e}"))?
            .into_parts();
        let (signed, _params) = instructions.into_parts();
        Ok(signed
            .into_iter()
            .map(|h| (h.name(), h.value().to_owned()))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// 2013-05-24T00:00:00Z, the date of the S3 documentation examples.
    fn example_time() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_369_353_600)
    }

    fn header<'a>(signed: &'a [(&'static str, String)], name: &str) -> &'a str {
        signed
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    }

    /// "Example: GET Object" from the S3 API reference (Signature Version 4, authenticating requests using the
    /// Authorization header).
    #[test]
    fn s3_documented_get_object_vector() {
        let signer = Signer::new(
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "us-east-1",
        );
        let signed = signer
            .sign(
                "GET",
                "https://examplebucket.s3.amazonaws.com/test.txt",
                &[
                    ("host", "examplebucket.s3.amazonaws.com"),
                    ("range", "bytes=0-9"),
                ],
                Payload::Sha256Hex(EMPTY_SHA256),
                example_time(),
            )
            .unwrap();
        assert_eq!(
            header(&signed, "authorization"),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
        assert_eq!(header(&signed, "x-amz-date"), "20130524T000000Z");
        assert_eq!(header(&signed, "x-amz-content-sha256"), EMPTY_SHA256);
    }

    /// "Example: PUT Object" from the same page: a key that needs percent-encoding and a signed x-amz-* header.
    #[test]
    fn s3_documented_put_object_vector() {
        let signer = Signer::new(
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "us-east-1",
        );
        let signed = signer
            .sign(
                "PUT",
                "https://examplebucket.s3.amazonaws.com/test%24file.text",
                &[
                    ("host", "examplebucket.s3.amazonaws.com"),
                    ("date", "Fri, 24 May 2013 00:00:00 GMT"),
                    ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
                ],
                Payload::Sha256Hex(
                    "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072",
                ),
                example_time(),
            )
            .unwrap();
        assert_eq!(
            header(&signed, "authorization"),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class, \
             Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
        );
    }

    #[test]
    fn unsigned_payload_is_declared() {
        let signer = Signer::new("AK", "SK", "us-east-1");
        let signed = signer
            .sign(
                "PUT",
                "http://127.0.0.1:9000/b/k",
                &[("host", "127.0.0.1:9000")],
                Payload::Unsigned,
                example_time(),
            )
            .unwrap();
        assert_eq!(header(&signed, "x-amz-content-sha256"), "UNSIGNED-PAYLOAD");
        assert!(
            header(&signed, "authorization")
                .contains("SignedHeaders=host;x-amz-content-sha256;x-amz-date, ")
        );
    }
}
