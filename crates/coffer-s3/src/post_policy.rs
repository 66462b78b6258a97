//! A browser POST form's policy, judged as AWS judges it and refused in AWS's words: the
//! `expiration`, every condition (`eq`, `starts-with`, the `{"field": "value"}` shorthand,
//! `$bucket`), and every field having a condition. s3s's `PostPolicy` parses the document; the
//! judgement is ours (s3s's is private to it, exempts the SSE fields from the policy, and words
//! its refusals its own way). `content-length-range` becomes the size range the file part is
//! streamed within (`post_file.rs`).

use base64::Engine as _;
use s3s::post_policy::{PostPolicy, PostPolicyCondition as Condition, PostPolicyError};
use s3s::{S3Error, S3ErrorCode, S3Result};

use crate::post_file::FileSizeRange;
use crate::post_form::field;

/// Fields that need no condition: the signature itself, the policy, and what AWS exempts.
fn exempt_from_policy(name: &str) -> bool {
    matches!(
        name,
        "x-amz-signature" | "signature" | "awsaccesskeyid" | "file" | "submit" | "policy"
    ) || name.starts_with("x-ignore-")
}

/// 403 `AccessDenied` "Invalid according to Policy: ...".
fn denied(detail: &str) -> S3Error {
    S3Error::with_message(
        S3ErrorCode::AccessDenied,
        format!("Invalid according to Policy: {detail}"),
    )
}

fn invalid_policy(detail: String) -> S3Error {
    S3Error::with_message(
        S3ErrorCode::InvalidPolicyDocument,
        format!("Invalid Policy: {detail}"),
    )
}

/// A form's policy document, parsed.
pub(crate) struct FormPolicy(PostPolicy);

impl FormPolicy {
    /// Parses the base64 `policy` field. Its `expiration` must be an ISO 8601 UTC date-time
    /// (`2026-12-31T12:00:00.000Z`), as AWS wants (s3s would take other spellings).
    pub(crate) fn parse(policy: &str) -> S3Result<Self> {
        if let Some(e) = invalid_expiration(policy) {
            return Err(e);
        }
        PostPolicy::from_base64(policy.trim())
            .map(Self)
            .map_err(|e| {
                invalid_policy(match e {
                    PostPolicyError::Base64(_) | PostPolicyError::Utf8(_) => {
                        "The policy is not base64-encoded UTF-8 text.".into()
                    }
                    PostPolicyError::Json(_) => "The policy is not a valid policy document.".into(),
                    PostPolicyError::MissingField(name) => format!("Missing '{name}' field."),
                    PostPolicyError::InvalidCondition => "Invalid condition.".into(),
                    PostPolicyError::InvalidExpiration(v) => {
                        format!("Invalid 'expiration' value: '{v}'")
                    }
                })
            })
    }

    /// A SigV4 form's signing fields must be those the policy names (`eq` conditions on
    /// `x-amz-algorithm`, `x-amz-credential`, `x-amz-date`): the signature covers the policy
    /// only, so this binds the fields to it.
    pub(crate) fn check_signing_fields(&self, fields: &[(String, String)]) -> S3Result<()> {
        for name in ["x-amz-date", "x-amz-credential", "x-amz-algorithm"] {
            let named = self.0.conditions.iter().find_map(|c| match c {
                Condition::Eq { field: f, value } if f == name => Some(value.as_str()),
                _ => None,
            });
            if named.is_none() || named != field(fields, name) {
                return Err(denied("Policy Condition failed"));
            }
        }
        Ok(())
    }

    pub(crate) fn check_expiration(&self, now: time::OffsetDateTime) -> S3Result<()> {
        let expiration: time::OffsetDateTime = self.0.expiration.clone().into();
        if now >= expiration {
            return Err(denied("Policy expired."));
        }
        Ok(())
    }

    /// Every `eq` / `starts-with` condition holds, then every field has a condition.
    /// `bucket` is the bucket addressed: a `bucket` condition tests it, and a `bucket` field
    /// naming another bucket fails.
    pub(crate) fn check_fields(&self, fields: &[(String, String)], bucket: &str) -> S3Result<()> {
        for condition in &self.0.conditions {
            let (op, name, expected, holds) = match condition {
                Condition::Eq { field: name, value } => {
                    let actual = value_of(fields, name, bucket)?;
                    ("eq", name, value, actual == Some(value.as_str()))
                }
                Condition::StartsWith {
                    field: name,
                    prefix,
                } => {
                    let actual = value_of(fields, name, bucket)?;
                    let holds = actual.unwrap_or_default().starts_with(prefix.as_str());
                    ("starts-with", name, prefix, holds)
                }
                Condition::ContentLengthRange { .. } => continue,
            };
            if !holds {
                return Err(condition_failed(op, name, expected));
            }
        }
        let mut extra: Vec<&str> = Vec::new();
        for (name, _) in fields {
            if !exempt_from_policy(name) && !self.covers(name) && !extra.contains(&name.as_str()) {
                extra.push(name);
            }
        }
        if extra.is_empty() {
            Ok(())
        } else {
            Err(denied(&format!("Extra input fields: {}", extra.join(", "))))
        }
    }

    fn covers(&self, name: &str) -> bool {
        self.0.conditions.iter().any(|c| match c {
            Condition::Eq { field, .. } | Condition::StartsWith { field, .. } => field == name,
            Condition::ContentLengthRange { .. } => false,
        })
    }

    /// The sizes every `content-length-range` condition allows, within `limit`.
    pub(crate) fn size_range(&self, limit: FileSizeRange) -> FileSizeRange {
        self.0.conditions.iter().fold(limit, |range, c| match *c {
            Condition::ContentLengthRange { min, max } => FileSizeRange {
                min: range.min.max(min),
                max: range.max.min(max),
            },
            _ => range,
        })
    }
}

/// The value a condition tests: the form field, except that `bucket` is the bucket addressed.
fn value_of<'a>(
    fields: &'a [(String, String)],
    name: &str,
    bucket: &'a str,
) -> S3Result<Option<&'a str>> {
    let value = field(fields, name);
    if name != "bucket" {
        return Ok(value);
    }
    match value {
        Some(named) if named != bucket => Err(denied("Policy Condition failed")),
        _ => Ok(Some(bucket)),
    }
}

/// AWS's refusal naming the condition: `["eq", "$field", "value"]`. A condition on the SSE-C
/// key field names the field only: its value is a key.
fn condition_failed(op: &str, name: &str, expected: &str) -> S3Error {
    let expected = if name.ends_with("-customer-key") {
        ""
    } else {
        expected
    };
    let json = |s: &str| serde_json::to_string(s).unwrap_or_default();
    denied(&format!(
        "Policy Condition failed: [{}, {}, {}]",
        json(op),
        json(&format!("${name}")),
        json(expected)
    ))
}

/// A policy whose `expiration` is not an ISO 8601 UTC date-time: AWS refuses it as an invalid
/// policy document. A policy that is not base64 JSON is left to the parser, which refuses it.
fn invalid_expiration(policy: &str) -> Option<S3Error> {
    let doc = base64::engine::general_purpose::STANDARD
        .decode(policy.trim())
        .ok()?;
    let doc: serde_json::Value = serde_json::from_slice(&doc).ok()?;
    let expiration = doc.get("expiration")?;
    let valid = expiration.as_str().is_some_and(|e| {
        e.len() >= 20
            && e.as_bytes().get(10) == Some(&b'T')
            && e.ends_with('Z')
            && time::OffsetDateTime::parse(e, &time::format_description::well_known::Rfc3339)
                .is_ok()
    });
    (!valid).then(|| {
        invalid_policy(format!(
            "Invalid 'expiration' value: '{}'",
            expiration.as_str().unwrap_or_default()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(doc: serde_json::Value) -> String {
        base64::engine::general_purpose::STANDARD.encode(doc.to_string())
    }

    fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| ((*a).into(), (*b).into()))
            .collect()
    }

    fn message(e: &S3Error) -> (&str, &str) {
        (e.code().as_str(), e.message().unwrap_or_default())
    }

    #[test]
    fn expiration_must_be_iso8601_utc_and_in_the_future() {
        let with = |expiration: serde_json::Value| {
            FormPolicy::parse(&policy(
                serde_json::json!({"expiration": expiration, "conditions": []}),
            ))
        };
        for good in ["2030-01-01T00:00:00Z", "2030-01-01T00:00:00.000Z"] {
            assert!(with(good.into()).is_ok(), "{good}");
        }
        for bad in [
            serde_json::json!("2030-01-01 00:00:00.123+00:00"),
            serde_json::json!("2030-01-01T00:00:00+01:00"),
            serde_json::json!("tomorrow"),
            serde_json::json!(1893456000),
        ] {
            let e = with(bad.clone()).err().expect("refused");
            assert_eq!(e.code(), &S3ErrorCode::InvalidPolicyDocument, "{bad}");
        }
        let past = with("2020-01-01T00:00:00Z".into()).expect("parses");
        let e = past
            .check_expiration(time::OffsetDateTime::now_utc())
            .expect_err("expired");
        assert_eq!(
            message(&e),
            (
                "AccessDenied",
                "Invalid according to Policy: Policy expired."
            )
        );
    }

    #[test]
    fn unparsable_policies() {
        for bad in [
            "not base64!".to_owned(),
            policy(serde_json::json!({"conditions": []})),
            policy(serde_json::json!({"expiration": "2030-01-01T00:00:00Z"})),
            policy(serde_json::json!({"expiration": "2030-01-01T00:00:00Z", "conditions": [{}]})),
            policy(serde_json::json!({"expiration": "2030-01-01T00:00:00Z",
                "conditions": [["content-length-range", -1, 0]]})),
        ] {
            let e = FormPolicy::parse(&bad).err().expect("refused");
            assert_eq!(e.code(), &S3ErrorCode::InvalidPolicyDocument, "{bad}");
        }
    }

    fn checked(conditions: serde_json::Value, form: &[(&str, &str)]) -> S3Result<()> {
        FormPolicy::parse(&policy(serde_json::json!({
            "expiration": "2030-01-01T00:00:00Z", "conditions": conditions})))
        .expect("parses")
        .check_fields(&fields(form), "photos")
    }

    #[test]
    fn conditions_in_aws_words() {
        let conditions = serde_json::json!([
            {"bucket": "photos"},
            ["starts-with", "$key", "up/"],
            ["eq", "$x-amz-meta-color", "red"],
            ["starts-with", "$Content-Type", ""],
            ["content-length-range", 1, 10],
        ]);
        let ok = [("key", "up/a"), ("x-amz-meta-color", "red")];
        assert!(checked(conditions.clone(), &ok).is_ok());
        assert!(
            checked(
                conditions.clone(),
                &[
                    ("key", "up/a"),
                    ("x-amz-meta-color", "red"),
                    ("bucket", "photos"),
                    ("content-type", "text/plain")
                ]
            )
            .is_ok()
        );
        let e = checked(
            conditions.clone(),
            &[("key", "x"), ("x-amz-meta-color", "red")],
        )
        .expect_err("starts-with");
        assert_eq!(
            message(&e),
            (
                "AccessDenied",
                "Invalid according to Policy: Policy Condition failed: [\"starts-with\", \"$key\", \"up/\"]"
            )
        );
        let e = checked(conditions.clone(), &[("key", "up/a")]).expect_err("missing field");
        assert!(
            message(&e)
                .1
                .contains("[\"eq\", \"$x-amz-meta-color\", \"red\"]")
        );
        let e = checked(
            conditions.clone(),
            &[
                ("key", "up/a"),
                ("x-amz-meta-color", "red"),
                ("bucket", "other"),
            ],
        )
        .expect_err("another bucket");
        assert_eq!(
            message(&e),
            (
                "AccessDenied",
                "Invalid according to Policy: Policy Condition failed"
            )
        );
        // Every field needs a condition, SSE fields too; x-ignore- fields and the signature
        // fields do not.
        let e = checked(
            conditions.clone(),
            &[
                ("key", "up/a"),
                ("x-amz-meta-color", "red"),
                ("x-amz-meta-extra", "1"),
                ("x-amz-server-side-encryption-customer-algorithm", "AES256"),
                ("x-amz-meta-extra", "2"),
                ("x-ignore-note", "n"),
                ("signature", "s"),
                ("awsaccesskeyid", "a"),
                ("policy", "p"),
            ],
        )
        .expect_err("extra fields");
        assert_eq!(
            message(&e).1,
            "Invalid according to Policy: Extra input fields: x-amz-meta-extra, x-amz-server-side-encryption-customer-algorithm"
        );
    }

    #[test]
    fn a_key_condition_is_not_echoed() {
        let e = checked(
            serde_json::json!([["eq", "$x-amz-server-side-encryption-customer-key", "SECRET"]]),
            &[("x-amz-server-side-encryption-customer-key", "OTHER")],
        )
        .expect_err("refused");
        let m = message(&e).1;
        assert!(!m.contains("SECRET") && !m.contains("OTHER"), "{m}");
    }

    #[test]
    fn size_ranges_intersect() {
        let p = |conditions: serde_json::Value| {
            FormPolicy::parse(&policy(serde_json::json!({
                "expiration": "2030-01-01T00:00:00Z", "conditions": conditions})))
            .expect("parses")
        };
        let limit = FileSizeRange { min: 0, max: 1000 };
        assert_eq!(p(serde_json::json!([])).size_range(limit), limit);
        assert_eq!(
            p(serde_json::json!([["content-length-range", 5, 5000]])).size_range(limit),
            FileSizeRange { min: 5, max: 1000 }
        );
        assert_eq!(
            p(serde_json::json!([
                ["content-length-range", 5, 50],
                ["content-length-range", 10, 100]
            ]))
            .size_range(limit),
            FileSizeRange { min: 10, max: 50 }
        );
    }

    #[test]
    fn signing_fields_must_be_named_by_the_policy() {
        let p = FormPolicy::parse(&policy(serde_json::json!({
            "expiration": "2030-01-01T00:00:00Z", "conditions": [
                {"x-amz-date": "20300101T000000Z"},
                {"x-amz-credential": "AK/20300101/us-east-1/s3/aws4_request"},
                {"x-amz-algorithm": "AWS4-HMAC-SHA256"}]})))
        .expect("parses");
        let mut form = fields(&[
            ("x-amz-date", "20300101T000000Z"),
            ("x-amz-credential", "AK/20300101/us-east-1/s3/aws4_request"),
            ("x-amz-algorithm", "AWS4-HMAC-SHA256"),
        ]);
        assert!(p.check_signing_fields(&form).is_ok());
        form[0].1 = "20300102T000000Z".into();
        let e = p.check_signing_fields(&form).expect_err("another date");
        assert_eq!(e.code(), &S3ErrorCode::AccessDenied);
    }
}
