//! Taking the SSE-C key out of an s3s input: validated, moved into a zeroizing `CustomerKey`,
//! and the input's copy of the key wiped first thing, so no later code (or log) can see it.

use coffer_sse::{CustomerKey, SseCustomerHeaders, parse_customer_key};
use s3s::S3Error;
use zeroize::Zeroize as _;

/// Validates the SSE-C trio and wipes the request's copy of the key, whatever the outcome.
pub(crate) fn take_customer_key(
    algorithm: &mut Option<String>,
    key: &mut Option<String>,
    key_md5: &mut Option<String>,
    server_side_encryption_present: bool,
) -> Result<Option<CustomerKey>, S3Error> {
    let result = parse_customer_key(
        &SseCustomerHeaders {
            algorithm: algorithm.as_deref(),
            key: key.as_deref(),
            key_md5: key_md5.as_deref(),
        },
        server_side_encryption_present,
    );
    if let Some(k) = key.as_mut() {
        k.zeroize();
    }
    *key = None;
    result.map_err(crate::errors::sse_header_error)
}

/// Removes the SSE-C key headers from a request's header map (they were parsed into the input).
pub(crate) fn drop_key_headers(headers: &mut http::HeaderMap) {
    headers.remove("x-amz-server-side-encryption-customer-key");
    headers.remove("x-amz-copy-source-server-side-encryption-customer-key");
}

/// The response echo of a customer key: algorithm and key-MD5, never the key.
pub(crate) fn echo(key: Option<&CustomerKey>) -> (Option<String>, Option<String>) {
    match key {
        Some(k) => (
            Some(coffer_sse::SSE_C_ALGORITHM.to_owned()),
            Some(k.key_md5_base64().to_owned()),
        ),
        None => (None, None),
    }
}

/// `x-amz-server-side-encryption` (and its KMS key id) on a write: SSE-S3 or SSE-KMS.
pub(crate) fn server_side(
    sse: Option<&s3s::dto::ServerSideEncryption>,
    kms_key_id: Option<String>,
) -> Result<Option<coffer_core::ServerSide>, S3Error> {
    match sse.map(s3s::dto::ServerSideEncryption::as_str) {
        None if kms_key_id.is_some() => Err(s3s::s3_error!(
            InvalidArgument,
            "x-amz-server-side-encryption-aws-kms-key-id requires x-amz-server-side-encryption: aws:kms."
        )),
        None => Ok(None),
        Some("AES256") if kms_key_id.is_none() => Ok(Some(coffer_core::ServerSide::S3)),
        Some("aws:kms" | "aws:kms:dsse") => Ok(Some(coffer_core::ServerSide::Kms(
            kms_key_id
                .filter(|k| !k.is_empty())
                .unwrap_or_else(|| "aws/s3".to_owned()),
        ))),
        Some(_) => Err(s3s::s3_error!(
            InvalidArgument,
            "The encryption method specified is not supported."
        )),
    }
}

/// Response headers for a server-side encrypted object.
pub(crate) fn server_side_echo(
    side: Option<&coffer_core::ServerSide>,
) -> (Option<s3s::dto::ServerSideEncryption>, Option<String>) {
    match side {
        Some(coffer_core::ServerSide::S3) => (
            Some(s3s::dto::ServerSideEncryption::from_static("AES256")),
            None,
        ),
        Some(coffer_core::ServerSide::Kms(id)) => (
            Some(s3s::dto::ServerSideEncryption::from_static("aws:kms")),
            Some(id.clone()),
        ),
        None => (None, None),
    }
}
