//! Who signed a browser POST form: SigV4 (`x-amz-signature`: the hex HMAC-SHA256 of the base64
//! policy under the key derived from the secret and the credential's scope), SigV2 (`signature`,
//! checked in `sigv2.rs`), or nobody (no signature field: an anonymous upload). Signatures are
//! compared in constant time (aws-lc's HMAC verify). The form's `x-amz-date` is not held to the
//! 15-minute clock skew of signed requests: the policy's `expiration` says how long a form
//! may be used, as on AWS (a form served with a page is often posted long after it was made).

use aws_lc_rs::hmac;
use s3s::{S3Error, S3ErrorCode, S3Result, s3_error};
use zeroize::Zeroizing;

use crate::post_form::field;
use crate::sigv2::SigV2Guard;
use crate::{User, UserDirectory};

const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// The user who signed the form; `None` for an anonymous form. The form's fields were checked
/// for presence before (`post_form::missing_field`): a signature comes with its policy and
/// credential fields.
pub(crate) fn form_signer(
    fields: &[(String, String)],
    users: &UserDirectory,
    sigv2: &SigV2Guard,
) -> S3Result<Option<User>> {
    if field(fields, "x-amz-signature").is_some() {
        return sigv4_signer(fields, users).map(Some);
    }
    sigv2
        .form_signer(|name| field(fields, name))
        .map_err(crate::errors::refusal)
}

fn sigv4_signer(fields: &[(String, String)], users: &UserDirectory) -> S3Result<User> {
    let value = |name| field(fields, name).unwrap_or_default();
    if value("x-amz-algorithm") != ALGORITHM {
        return Err(s3_error!(
            NotImplemented,
            "x-amz-algorithm other than AWS4-HMAC-SHA256 is not implemented"
        ));
    }
    let scope = Scope::parse(value("x-amz-credential"))
        .ok_or_else(|| s3_error!(InvalidRequest, "invalid field: x-amz-credential"))?;
    let date = parse_amz_date(value("x-amz-date"))
        .ok_or_else(|| s3_error!(InvalidRequest, "invalid field: x-amz-date"))?;
    if !date.starts_with(scope.date) {
        return Err(s3_error!(
            SignatureDoesNotMatch,
            "credential scope date does not match x-amz-date"
        ));
    }
    let user = users.by_access_key(scope.access_key).ok_or_else(|| {
        s3_error!(
            InvalidAccessKeyId,
            "The AWS Access Key Id you provided does not exist in our records."
        )
    })?;
    if !matches!(scope.service, "s3" | "sts") {
        return Err(s3_error!(
            NotImplemented,
            "unknown service '{}' in credential scope; expected 's3' or 'sts'",
            scope.service
        ));
    }
    let signed = hex::decode(value("x-amz-signature")).is_ok_and(|tag| {
        let key = signing_key(user.secret_key(), &scope);
        hmac::verify(&key, value("policy").as_bytes(), &tag).is_ok()
    });
    if !signed {
        return Err(S3Error::new(S3ErrorCode::SignatureDoesNotMatch));
    }
    Ok(user)
}

/// `x-amz-credential`: `<access key>/<yyyymmdd>/<region>/<service>/aws4_request`.
struct Scope<'a> {
    access_key: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
}

impl<'a> Scope<'a> {
    fn parse(credential: &'a str) -> Option<Self> {
        let mut parts = credential.split('/');
        let scope = Scope {
            access_key: parts.next()?,
            date: parts.next()?,
            region: parts.next()?,
            service: parts.next()?,
        };
        let valid = parts.next() == Some("aws4_request")
            && parts.next().is_none()
            && !scope.service.is_empty()
            && time::Date::parse(
                scope.date,
                time::macros::format_description!("[year][month][day]"),
            )
            .is_ok();
        valid.then_some(scope)
    }
}

/// `x-amz-date` (`yyyymmddThhmmssZ`), checked; the value itself is what the scope is compared
/// with.
fn parse_amz_date(value: &str) -> Option<&str> {
    time::PrimitiveDateTime::parse(
        value,
        time::macros::format_description!("[year][month][day]T[hour][minute][second]Z"),
    )
    .ok()
    .map(|_| value)
}

/// The SigV4 signing key of a credential scope.
fn signing_key(secret: &str, scope: &Scope<'_>) -> hmac::Key {
    let secret = Zeroizing::new(format!("AWS4{secret}"));
    let step = |key: &[u8], data: &str| {
        hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data.as_bytes())
    };
    let date = step(secret.as_bytes(), scope.date);
    let region = step(date.as_ref(), scope.region);
    let service = step(region.as_ref(), scope.service);
    let signing = step(service.as_ref(), "aws4_request");
    hmac::Key::new(hmac::HMAC_SHA256, signing.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::UserSource;
    use std::sync::Arc;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    fn users() -> Arc<UserDirectory> {
        let users = Arc::new(UserDirectory::default());
        users
            .add(User::new(
                "root",
                "AKIAIOSFODNN7EXAMPLE",
                SECRET,
                UserSource::Root,
            ))
            .expect("user");
        users
    }

    /// AWS's own example of a SigV4 POST policy and its signature (S3 API reference,
    /// "Example: Browser-Based Upload using HTTP POST (Using AWS Signature Version 4)").
    const POLICY: &str = "eyAiZXhwaXJhdGlvbiI6ICIyMDE1LTEyLTMwVDEyOjAwOjAwLjAwMFoiLA0KICAiY29uZGl0aW9ucyI6IFsNCiAgICB7ImJ1Y2tldCI6ICJzaWd2NGV4YW1wbGVidWNrZXQifSwNCiAgICBbInN0YXJ0cy13aXRoIiwgIiRrZXkiLCAidXNlci91c2VyMS8iXSwNCiAgICB7ImFjbCI6ICJwdWJsaWMtcmVhZCJ9LA0KICAgIHsic3VjY2Vzc19hY3Rpb25fcmVkaXJlY3QiOiAiaHR0cDovL3NpZ3Y0ZXhhbXBsZWJ1Y2tldC5zMy5hbWF6b25hd3MuY29tL3N1Y2Nlc3NmdWxfdXBsb2FkLmh0bWwifSwNCiAgICBbInN0YXJ0cy13aXRoIiwgIiRDb250ZW50LVR5cGUiLCAiaW1hZ2UvIl0sDQogICAgeyJ4LWFtei1tZXRhLXV1aWQiOiAiMTQzNjUxMjM2NTEyNzQifSwNCiAgICB7IngtYW16LXNlcnZlci1zaWRlLWVuY3J5cHRpb24iOiAiQUVTMjU2In0sDQogICAgWyJzdGFydHMtd2l0aCIsICIkeC1hbXotbWV0YS10YWciLCAiIl0sDQoNCiAgICB7IngtYW16LWNyZWRlbnRpYWwiOiAiQUtJQUlPU0ZPRE5ON0VYQU1QTEUvMjAxNTEyMjkvdXMtZWFzdC0xL3MzL2F3czRfcmVxdWVzdCJ9LA0KICAgIHsieC1hbXotYWxnb3JpdGhtIjogIkFXUzQtSE1BQy1TSEEyNTYifSwNCiAgICB7IngtYW16LWRhdGUiOiAiMjAxNTEyMjlUMDAwMDAwWiIgfQ0KICBdDQp9";
    const SIGNATURE: &str = "8afdbf4008c03f22c2cd3cdb72e4afbb1f6a588f3255ac628749a66d7f09699e";

    fn form(signature: &str, credential: &str, date: &str) -> Vec<(String, String)> {
        [
            ("policy", POLICY),
            ("x-amz-algorithm", ALGORITHM),
            ("x-amz-credential", credential),
            ("x-amz-date", date),
            ("x-amz-signature", signature),
        ]
        .iter()
        .map(|(a, b)| ((*a).into(), (*b).into()))
        .collect()
    }

    const CREDENTIAL: &str = "AKIAIOSFODNN7EXAMPLE/20151229/us-east-1/s3/aws4_request";

    fn code(fields: &[(String, String)]) -> Option<String> {
        let guard = SigV2Guard::new(users(), None, true);
        form_signer(fields, &users(), &guard)
            .err()
            .map(|e| e.code().as_str().to_owned())
    }

    #[test]
    fn aws_example_signature() {
        assert_eq!(code(&form(SIGNATURE, CREDENTIAL, "20151229T000000Z")), None);
        let mut flipped = SIGNATURE.to_owned();
        flipped.replace_range(..1, "9");
        assert_eq!(
            code(&form(&flipped, CREDENTIAL, "20151229T000000Z")).as_deref(),
            Some("SignatureDoesNotMatch")
        );
        assert_eq!(
            code(&form("not hex", CREDENTIAL, "20151229T000000Z")).as_deref(),
            Some("SignatureDoesNotMatch")
        );
    }

    #[test]
    fn credential_and_date_refusals() {
        let refused = |credential: &str, date: &str| code(&form(SIGNATURE, credential, date));
        assert_eq!(
            refused(
                "AKUNKNOWN/20151229/us-east-1/s3/aws4_request",
                "20151229T000000Z"
            )
            .as_deref(),
            Some("InvalidAccessKeyId")
        );
        assert_eq!(
            refused(CREDENTIAL, "20151230T000000Z").as_deref(),
            Some("SignatureDoesNotMatch")
        );
        for bad in [
            "AKIAIOSFODNN7EXAMPLE/20151229/us-east-1/s3",
            "AKIAIOSFODNN7EXAMPLE/20151329/us-east-1/s3/aws4_request",
            "AKIAIOSFODNN7EXAMPLE/20151229/us-east-1//aws4_request",
            "AKIAIOSFODNN7EXAMPLE/20151229/us-east-1/s3/aws4_request/x",
        ] {
            assert_eq!(
                refused(bad, "20151229T000000Z").as_deref(),
                Some("InvalidRequest"),
                "{bad}"
            );
        }
        assert_eq!(
            refused(CREDENTIAL, "2015-12-29T00:00:00Z").as_deref(),
            Some("InvalidRequest")
        );
        let mut other_algorithm = form(SIGNATURE, CREDENTIAL, "20151229T000000Z");
        other_algorithm[1].1 = "AWS4-HMAC-SHA512".into();
        assert_eq!(code(&other_algorithm).as_deref(), Some("NotImplemented"));
    }

    #[test]
    fn unsigned_forms_are_anonymous() {
        let guard = SigV2Guard::new(users(), None, true);
        let fields = vec![("key".to_owned(), "k".to_owned())];
        assert!(matches!(form_signer(&fields, &users(), &guard), Ok(None)));
    }
}
