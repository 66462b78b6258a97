//! SSE-C request header validation.
//!
//! Owns: turning the three `x-amz-server-side-encryption-customer-*` headers
//! into a validated [`CustomerKey`], with S3's rule order and error codes.
//!
//! Must never: keep the decoded key anywhere but zeroizing buffers, put key
//! material into an error, a `Debug`/`Display` string or a log line, or hand
//! the raw key bytes out of this crate.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use md5::{Digest as _, Md5};
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

/// The only SSE-C algorithm S3 accepts (compared case-sensitively, as S3 does).
pub const SSE_C_ALGORITHM: &str = "AES256";

/// Length of an SSE-C key in bytes (AES-256).
pub const CUSTOMER_KEY_LEN: usize = 32;

/// A validated customer-provided key.
///
/// The key bytes are wiped when this value is dropped. There is deliberately
/// no `Clone` (so the key is not silently copied around) and no `Display`.
pub struct CustomerKey {
    key: Zeroizing<[u8; CUSTOMER_KEY_LEN]>,
    // Base64 of MD5(key) as S3 echoes it in responses. The client sent it in
    // the clear, so it is not secret *in transit*; it must still never be
    // persisted, because an unsalted hash lets anyone who reads storage test
    // guessed keys offline.
    key_md5_base64: String,
}

impl CustomerKey {
    /// Base64 MD5 of the key, to echo in `x-amz-server-side-encryption-customer-key-MD5`.
    /// Not for storage (see the type's notes).
    pub fn key_md5_base64(&self) -> &str {
        &self.key_md5_base64
    }

    /// Builds a key from raw bytes, computing its MD5. For tests and tools;
    /// request handling goes through [`parse_customer_key`].
    pub fn from_raw_for_tests(raw: [u8; CUSTOMER_KEY_LEN]) -> Self {
        // Move the caller's copy into the zeroizing box straight away.
        let key = Zeroizing::new(raw);
        let key_md5_base64 = STANDARD.encode(Md5::digest(&key[..]));
        Self {
            key,
            key_md5_base64,
        }
    }

    /// A key-wrapping key that is not a customer's: the server's own key for SSE-S3 and
    /// SSE-KMS objects, sealed and opened exactly like a customer key.
    pub fn from_server_key(raw: [u8; CUSTOMER_KEY_LEN]) -> Self {
        Self::from_raw_for_tests(raw)
    }

    /// The raw key, for deriving key-encryption keys inside this crate only.
    pub(crate) fn secret(&self) -> &[u8; CUSTOMER_KEY_LEN] {
        &self.key
    }
}

impl std::fmt::Debug for CustomerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CustomerKey(<redacted>)")
    }
}

/// The raw SSE-C request headers (`None` = header absent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SseCustomerHeaders<'a> {
    /// `x-amz-server-side-encryption-customer-algorithm`
    pub algorithm: Option<&'a str>,
    /// `x-amz-server-side-encryption-customer-key` (base64)
    pub key: Option<&'a str>,
    /// `x-amz-server-side-encryption-customer-key-MD5` (base64)
    pub key_md5: Option<&'a str>,
}

impl SseCustomerHeaders<'_> {
    /// True when none of the three headers is present. A header that is
    /// present with an empty value counts as present.
    pub fn is_empty(&self) -> bool {
        self.algorithm.is_none() && self.key.is_none() && self.key_md5.is_none()
    }
}

/// Why the SSE-C headers were rejected. Messages are S3's human-readable
/// texts and never contain any part of the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SseHeaderError {
    /// SSE-C headers together with `x-amz-server-side-encryption`.
    #[error(
        "Server Side Encryption with Customer provided key is incompatible with the encryption method specified."
    )]
    ConflictsWithServerSideEncryption,
    /// Key or key-MD5 given, algorithm header missing.
    #[error(
        "Requests specifying Server Side Encryption with Customer provided keys must provide a valid encryption algorithm."
    )]
    KeyWithoutAlgorithm,
    /// Algorithm other than `AES256`.
    #[error("The encryption algorithm specified is not valid.")]
    UnsupportedAlgorithm,
    /// Algorithm given without a key.
    #[error(
        "Requests specifying Server Side Encryption with Customer provided keys must provide an appropriate secret key."
    )]
    MissingKey,
    /// Key given without its MD5.
    #[error(
        "Requests specifying Server Side Encryption with Customer provided keys must provide the client calculated MD5 of the secret key."
    )]
    MissingKeyMd5,
    /// Key or key-MD5 is not valid base64.
    #[error("The secret key was invalid for the specified algorithm.")]
    InvalidKeyEncoding,
    /// MD5 of the decoded key differs from the provided MD5.
    #[error("The calculated MD5 hash of the key did not match the hash that was provided.")]
    KeyMd5Mismatch,
    /// Decoded key is not 32 bytes.
    #[error("The secret key was invalid for the specified algorithm.")]
    InvalidKeyLength,
}

impl SseHeaderError {
    /// The S3 error code for the response body.
    pub fn s3_code(&self) -> &'static str {
        match self {
            Self::UnsupportedAlgorithm => "InvalidEncryptionAlgorithmError",
            Self::ConflictsWithServerSideEncryption
            | Self::KeyWithoutAlgorithm
            | Self::MissingKey
            | Self::MissingKeyMd5
            | Self::InvalidKeyEncoding
            | Self::KeyMd5Mismatch
            | Self::InvalidKeyLength => "InvalidArgument",
        }
    }
}

/// Validates the SSE-C headers of a request.
///
/// Returns `Ok(None)` when no SSE-C header is present at all.
/// `server_side_encryption_present` says whether the request also carried
/// `x-amz-server-side-encryption`. The first failing rule wins:
/// conflict, algorithm presence/value, key/MD5 presence, then decoding,
/// MD5 match and key length.
pub fn parse_customer_key(
    h: &SseCustomerHeaders<'_>,
    server_side_encryption_present: bool,
) -> Result<Option<CustomerKey>, SseHeaderError> {
    if h.is_empty() {
        return Ok(None);
    }
    if server_side_encryption_present {
        return Err(SseHeaderError::ConflictsWithServerSideEncryption);
    }

    let Some(algorithm) = h.algorithm else {
        return Err(SseHeaderError::KeyWithoutAlgorithm);
    };
    if algorithm != SSE_C_ALGORITHM {
        return Err(SseHeaderError::UnsupportedAlgorithm);
    }

    let Some(key_b64) = h.key else {
        return Err(SseHeaderError::MissingKey);
    };
    let Some(md5_b64) = h.key_md5 else {
        return Err(SseHeaderError::MissingKeyMd5);
    };

    // Reserve the decoder's full estimate up front: `decode_vec` resizes to
    // exactly that estimate, so the Vec never reallocates and no un-wiped
    // copy of the key is left behind in a freed allocation.
    let mut decoded = Zeroizing::new(Vec::with_capacity(base64::decoded_len_estimate(
        key_b64.len(),
    )));
    STANDARD
        .decode_vec(key_b64, &mut decoded)
        .map_err(|_| SseHeaderError::InvalidKeyEncoding)?;
    let provided_md5 = STANDARD
        .decode(md5_b64)
        .map_err(|_| SseHeaderError::InvalidKeyEncoding)?;

    let calculated_md5 = Md5::digest(decoded.as_slice());
    // Constant time so response timing says nothing about how many leading
    // bytes of a forged MD5 matched. `ct_eq` on slices of different lengths
    // is simply false.
    if !bool::from(calculated_md5.as_slice().ct_eq(&provided_md5)) {
        return Err(SseHeaderError::KeyMd5Mismatch);
    }

    if decoded.len() != CUSTOMER_KEY_LEN {
        return Err(SseHeaderError::InvalidKeyLength);
    }
    let mut key = Zeroizing::new([0u8; CUSTOMER_KEY_LEN]);
    key.copy_from_slice(&decoded);

    Ok(Some(CustomerKey {
        key,
        // Canonical re-encoding of the verified digest; equal to what the
        // client sent, because the standard engine rejects non-canonical
        // base64.
        key_md5_base64: STANDARD.encode(calculated_md5),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GUIDE_KEY: &[u8; 32] = b"32bytesOfTotallyRandomCharacters";

    fn b64(bytes: &[u8]) -> String {
        STANDARD.encode(bytes)
    }

    fn md5_b64(bytes: &[u8]) -> String {
        STANDARD.encode(Md5::digest(bytes))
    }

    fn headers<'a>(
        algorithm: Option<&'a str>,
        key: Option<&'a str>,
        key_md5: Option<&'a str>,
    ) -> SseCustomerHeaders<'a> {
        SseCustomerHeaders {
            algorithm,
            key,
            key_md5,
        }
    }

    fn err(h: SseCustomerHeaders<'_>, sse: bool) -> SseHeaderError {
        match parse_customer_key(&h, sse) {
            Err(e) => e,
            Ok(k) => panic!("expected an error, got {k:?}"),
        }
    }

    #[test]
    fn guide_example_key_parses() {
        let key = b64(GUIDE_KEY);
        let md5 = md5_b64(GUIDE_KEY);
        assert_eq!(key, "MzJieXRlc09mVG90YWxseVJhbmRvbUNoYXJhY3RlcnM=");
        let parsed = parse_customer_key(&headers(Some("AES256"), Some(&key), Some(&md5)), false)
            .unwrap()
            .unwrap();
        assert_eq!(parsed.key_md5_base64(), md5);
        assert_eq!(parsed.secret(), GUIDE_KEY);
    }

    #[test]
    fn from_raw_matches_parsed() {
        let raw = CustomerKey::from_raw_for_tests(*GUIDE_KEY);
        assert_eq!(raw.key_md5_base64(), md5_b64(GUIDE_KEY));
        assert_eq!(raw.secret(), GUIDE_KEY);
    }

    #[test]
    fn no_headers_is_none() {
        let h = SseCustomerHeaders::default();
        assert!(h.is_empty());
        assert!(parse_customer_key(&h, false).unwrap().is_none());
        // Plain SSE-S3 without SSE-C is not our business.
        assert!(parse_customer_key(&h, true).unwrap().is_none());
    }

    #[test]
    fn empty_value_counts_as_present() {
        let h = headers(Some(""), None, None);
        assert!(!h.is_empty());
        assert_eq!(err(h, false), SseHeaderError::UnsupportedAlgorithm);
    }

    #[test]
    fn conflict_with_sse_header_wins_over_everything() {
        let key = b64(GUIDE_KEY);
        let md5 = md5_b64(GUIDE_KEY);
        for h in [
            headers(Some("AES256"), Some(&key), Some(&md5)),
            headers(None, Some(&key), None),
            headers(None, None, Some(&md5)),
            headers(Some("aws:kms"), None, None),
            headers(Some("AES256"), Some("!!!"), Some("!!!")),
        ] {
            assert_eq!(
                err(h, true),
                SseHeaderError::ConflictsWithServerSideEncryption
            );
        }
    }

    #[test]
    fn key_without_algorithm() {
        let key = b64(GUIDE_KEY);
        let md5 = md5_b64(GUIDE_KEY);
        assert_eq!(
            err(headers(None, Some(&key), Some(&md5)), false),
            SseHeaderError::KeyWithoutAlgorithm
        );
        assert_eq!(
            err(headers(None, Some(&key), None), false),
            SseHeaderError::KeyWithoutAlgorithm
        );
        assert_eq!(
            err(headers(None, None, Some(&md5)), false),
            SseHeaderError::KeyWithoutAlgorithm
        );
        // Also beats a broken key.
        assert_eq!(
            err(headers(None, Some("***"), None), false),
            SseHeaderError::KeyWithoutAlgorithm
        );
    }

    #[test]
    fn unsupported_algorithm() {
        let key = b64(GUIDE_KEY);
        let md5 = md5_b64(GUIDE_KEY);
        for alg in ["aes256", "AES128", "aws:kms", "AES256 ", ""] {
            assert_eq!(
                err(headers(Some(alg), Some(&key), Some(&md5)), false),
                SseHeaderError::UnsupportedAlgorithm
            );
        }
        // Wins over a missing key.
        assert_eq!(
            err(headers(Some("DES"), None, None), false),
            SseHeaderError::UnsupportedAlgorithm
        );
    }

    #[test]
    fn missing_key_and_md5() {
        let key = b64(GUIDE_KEY);
        let md5 = md5_b64(GUIDE_KEY);
        assert_eq!(
            err(headers(Some("AES256"), None, None), false),
            SseHeaderError::MissingKey
        );
        assert_eq!(
            err(headers(Some("AES256"), None, Some(&md5)), false),
            SseHeaderError::MissingKey
        );
        assert_eq!(
            err(headers(Some("AES256"), Some(&key), None), false),
            SseHeaderError::MissingKeyMd5
        );
        // Presence checks come before decoding.
        assert_eq!(
            err(headers(Some("AES256"), Some("not base64!"), None), false),
            SseHeaderError::MissingKeyMd5
        );
    }

    #[test]
    fn invalid_encoding() {
        let key = b64(GUIDE_KEY);
        let md5 = md5_b64(GUIDE_KEY);
        let unpadded = key.trim_end_matches('=');
        for (k, m) in [
            ("not base64!", md5.as_str()),
            (unpadded, md5.as_str()),
            (key.as_str(), "%%%"),
            // Encoding errors beat an MD5 mismatch.
            ("@@@@", "AAAA"),
        ] {
            assert_eq!(
                err(headers(Some("AES256"), Some(k), Some(m)), false),
                SseHeaderError::InvalidKeyEncoding,
                "key {k:?} md5 {m:?}"
            );
        }
    }

    #[test]
    fn md5_mismatch() {
        let key = b64(GUIDE_KEY);
        let other = md5_b64(b"some other key, 32 bytes long..!");
        assert_eq!(
            err(headers(Some("AES256"), Some(&key), Some(&other)), false),
            SseHeaderError::KeyMd5Mismatch
        );
        // A truncated digest is a mismatch, not a panic.
        let short = b64(&Md5::digest(GUIDE_KEY)[..8]);
        assert_eq!(
            err(headers(Some("AES256"), Some(&key), Some(&short)), false),
            SseHeaderError::KeyMd5Mismatch
        );
        // MD5 check comes before the length check.
        let short_key = b64(&[7u8; 16]);
        assert_eq!(
            err(
                headers(Some("AES256"), Some(&short_key), Some(&other)),
                false
            ),
            SseHeaderError::KeyMd5Mismatch
        );
    }

    #[test]
    fn wrong_key_length_with_correct_md5() {
        for len in [0usize, 1, 16, 31, 33, 64] {
            let raw = vec![0x5au8; len];
            let key = b64(&raw);
            let md5 = md5_b64(&raw);
            assert_eq!(
                err(headers(Some("AES256"), Some(&key), Some(&md5)), false),
                SseHeaderError::InvalidKeyLength,
                "len {len}"
            );
        }
    }

    #[test]
    fn s3_codes() {
        use SseHeaderError::*;
        for e in [
            ConflictsWithServerSideEncryption,
            KeyWithoutAlgorithm,
            MissingKey,
            MissingKeyMd5,
            InvalidKeyEncoding,
            KeyMd5Mismatch,
            InvalidKeyLength,
        ] {
            assert_eq!(e.s3_code(), "InvalidArgument");
            assert!(!e.to_string().is_empty());
        }
        assert_eq!(
            UnsupportedAlgorithm.s3_code(),
            "InvalidEncryptionAlgorithmError"
        );
        assert_eq!(
            KeyMd5Mismatch.to_string(),
            "The calculated MD5 hash of the key did not match the hash that was provided."
        );
    }

    #[test]
    fn debug_is_redacted() {
        let key = CustomerKey::from_raw_for_tests(*GUIDE_KEY);
        let dbg = format!("{key:?}");
        assert_eq!(dbg, "CustomerKey(<redacted>)");
        let pretty = format!("{key:#?}");
        assert!(!pretty.contains("32bytes"));
        assert!(!pretty.contains(&b64(GUIDE_KEY)));
    }
}
