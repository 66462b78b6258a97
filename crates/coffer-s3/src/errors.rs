//! The one place where Coffer's errors become S3 error codes and HTTP statuses.

use coffer_core::CoreError;
use coffer_sse::SseHeaderError;
use http::{HeaderMap, HeaderValue, StatusCode};
use s3s::{S3Error, S3ErrorCode};

use crate::S3Settings;

pub(crate) fn to_s3_error(err: CoreError, settings: &S3Settings) -> S3Error {
    use S3ErrorCode as C;
    let message = err.to_string();
    let (code, status) = match &err {
        CoreError::NoSuchBucket => (C::NoSuchBucket, None),
        CoreError::NoSuchKey => (C::NoSuchKey, None),
        CoreError::NoSuchUpload => (C::NoSuchUpload, None),
        CoreError::NoSuchVersion => (C::NoSuchVersion, None),
        CoreError::DeleteMarker {
            version_id,
            requested,
            last_modified_ms,
        } => {
            let (code, status, message) = if *requested {
                (C::MethodNotAllowed, StatusCode::METHOD_NOT_ALLOWED, message)
            } else {
                (
                    C::NoSuchKey,
                    StatusCode::NOT_FOUND,
                    "The specified key does not exist.".to_owned(),
                )
            };
            let mut e = S3Error::with_message(code, message);
            e.set_status_code(status);
            let mut headers = HeaderMap::new();
            headers.insert("x-amz-delete-marker", HeaderValue::from_static("true"));
            if let Ok(v) = HeaderValue::from_str(version_id) {
                headers.insert("x-amz-version-id", v);
            }
            if let Ok(v) = HeaderValue::from_str(&crate::object_ops::http_date(*last_modified_ms)) {
                headers.insert(http::header::LAST_MODIFIED, v);
            }
            e.set_headers(headers);
            return e;
        }
        CoreError::InvalidPart(_) => (C::InvalidPart, None),
        CoreError::InvalidPartOrder => (C::InvalidPartOrder, None),
        CoreError::InvalidPartNumber => return invalid_part_number(),
        CoreError::EntityTooSmall => (C::EntityTooSmall, None),
        CoreError::MalformedXml(_) => (C::MalformedXML, None),
        CoreError::InvalidRequest(_) => (C::InvalidRequest, None),
        CoreError::BucketAlreadyOwnedByYou => (C::BucketAlreadyOwnedByYou, None),
        CoreError::BucketAlreadyExists => (C::BucketAlreadyExists, None),
        CoreError::BucketNotEmpty => (C::BucketNotEmpty, None),
        CoreError::InvalidRange { size } => {
            let mut e = S3Error::with_message(C::InvalidRange, message);
            let mut headers = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                headers.insert(http::header::CONTENT_RANGE, v);
            }
            e.set_headers(headers);
            return e;
        }
        CoreError::PreconditionFailed => (C::PreconditionFailed, None),
        CoreError::NotModified {
            etag,
            last_modified_ms,
        } => {
            let mut e = S3Error::new(C::NotModified);
            e.set_status_code(StatusCode::NOT_MODIFIED);
            let mut headers = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&format!("\"{etag}\"")) {
                headers.insert(http::header::ETAG, v);
            }
            if let Ok(v) = HeaderValue::from_str(&crate::object_ops::http_date(*last_modified_ms)) {
                headers.insert(http::header::LAST_MODIFIED, v);
            }
            e.set_headers(headers);
            return e;
        }
        CoreError::BadDigest(_) => (C::BadDigest, None),
        CoreError::InvalidDigest => (C::InvalidDigest, None),
        CoreError::IncompleteBody => (C::IncompleteBody, None),
        CoreError::InvalidArgument(_) => (C::InvalidArgument, None),
        CoreError::InvalidTag(_) => (C::InvalidTag, None),
        CoreError::BadRequest(_) => (
            C::Custom("BadRequest".into()),
            Some(StatusCode::BAD_REQUEST),
        ),
        CoreError::SseKeyRequired | CoreError::SseNotEncrypted => (C::InvalidRequest, None),
        CoreError::SseWrongKey => {
            let status = if settings.ssec_wrong_key_status == 400 {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::FORBIDDEN
            };
            (C::AccessDenied, Some(status))
        }
        CoreError::Account(account) => {
            use coffer_core::accounts::AccountError as A;
            // IAM's codes for the same refusals.
            let (code, status) = match account {
                A::NoSuchEntity(_) => ("NoSuchEntity", StatusCode::NOT_FOUND),
                A::EntityAlreadyExists(_) => ("EntityAlreadyExists", StatusCode::CONFLICT),
                A::DeleteConflict(_) => ("DeleteConflict", StatusCode::CONFLICT),
                A::LimitExceeded(_) => ("LimitExceeded", StatusCode::CONFLICT),
                A::Validation(_) => ("ValidationError", StatusCode::BAD_REQUEST),
            };
            return S3Error::with_message(C::Custom(code.into()), message).with_status(status);
        }
        CoreError::Body(source) => return body_error(source.as_ref()),
        CoreError::Store(_) | CoreError::Io(_) | CoreError::Internal(_) => {
            tracing::error!(error = %err, "internal error");
            return S3Error::with_message(
                C::InternalError,
                "We encountered an internal error. Please try again.",
            );
        }
    };
    let mut e = S3Error::with_message(code, message);
    if let Some(status) = status {
        e.set_status_code(status);
    }
    e
}

/// A failed request body: a bad chunk signature, a malformed aws-chunked frame, a client
/// that went away, or a browser form's file outside its policy's size range. s3s reports its
/// errors as opaque stream errors; tell them apart by their text.
fn body_error(source: &(dyn std::error::Error + Send + Sync + 'static)) -> S3Error {
    use crate::post_file::FilePartError;
    match source.downcast_ref::<FilePartError>() {
        Some(FilePartError::AboveRange) => {
            return S3Error::with_message(
                S3ErrorCode::EntityTooLarge,
                "Your proposed upload exceeds the maximum allowed object size.",
            );
        }
        Some(FilePartError::BelowRange) => {
            return S3Error::with_message(
                S3ErrorCode::EntityTooSmall,
                "Your proposed upload is smaller than the minimum allowed object size.",
            );
        }
        Some(FilePartError::Unterminated) => {
            return S3Error::with_message(
                S3ErrorCode::MalformedPOSTRequest,
                "The body of your POST request is not well-formed multipart/form-data.",
            );
        }
        Some(FilePartError::Body(inner)) => return body_error(inner.as_ref()),
        None => {}
    }
    let text = source.to_string();
    if text.contains("Sha256Mismatch") {
        S3Error::with_message(
            S3ErrorCode::Custom("XAmzContentSHA256Mismatch".into()),
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        )
        .with_status(StatusCode::BAD_REQUEST)
    } else if text.contains("SignatureMismatch") {
        S3Error::with_message(
            S3ErrorCode::SignatureDoesNotMatch,
            "The request signature we calculated does not match the signature you provided.",
        )
    } else if text.contains("FormatError") || text.contains("TooLarge") || text.contains("TooMany")
    {
        S3Error::with_message(
            S3ErrorCode::InvalidRequest,
            "Malformed aws-chunked request body.",
        )
    } else {
        tracing::debug!(error = %text, "request body ended early");
        S3Error::with_message(
            S3ErrorCode::IncompleteBody,
            "You did not provide the number of bytes specified by the Content-Length HTTP header.",
        )
    }
}

/// A refusal made outside s3s (`prefilter.rs`, `sigv2.rs`) as an S3 error.
pub(crate) fn refusal(r: crate::prefilter::Refusal) -> S3Error {
    let code = S3ErrorCode::from_bytes(r.code.as_bytes())
        .unwrap_or_else(|| S3ErrorCode::Custom(r.code.into()));
    S3Error::with_message(code, r.message).with_status(r.status)
}

pub(crate) fn sse_header_error(err: SseHeaderError) -> S3Error {
    let code = match err {
        SseHeaderError::UnsupportedAlgorithm => S3ErrorCode::InvalidEncryptionAlgorithmError,
        _ => S3ErrorCode::InvalidArgument,
    };
    S3Error::with_message(code, err.to_string())
}

/// A `partNumber` the object does not have: 400 `InvalidPart`, what ceph/s3-tests and Apache
/// Ozone's reading of AWS expect (AWS's error table also lists a 416 `InvalidPartNumber`).
pub(crate) fn invalid_part_number() -> S3Error {
    S3Error::with_message(
        S3ErrorCode::InvalidPart,
        "The requested part number is not satisfiable for this object.",
    )
}

trait WithStatus {
    fn with_status(self, status: StatusCode) -> Self;
}

impl WithStatus for S3Error {
    fn with_status(mut self, status: StatusCode) -> Self {
        self.set_status_code(status);
        self
    }
}
