//! The glue between object records and SSE-C: sealing a fresh data key for a new object and
//! checking a customer key against a stored one. The cipher itself lives in `coffer-sse`.

use coffer_sse::{CustomerKey, DataKey, KeyBinding, OpenError, SSE_C_ALGORITHM, SealedDataKey};
use coffer_store::{EncryptionRecord, ObjectRecord};

use crate::CoreError;

const SEALED_KEY_LEN: usize = 1 + 32 + 12 + 48;

fn encode_sealed(s: &SealedDataKey) -> Vec<u8> {
    let mut out = Vec::with_capacity(SEALED_KEY_LEN);
    out.push(s.format);
    out.extend_from_slice(&s.kdf_salt);
    out.extend_from_slice(&s.nonce);
    out.extend_from_slice(&s.sealed);
    out
}

fn decode_sealed(b: &[u8]) -> Result<SealedDataKey, CoreError> {
    let corrupt = || CoreError::Internal("corrupt sealed data key record".into());
    if b.len() != SEALED_KEY_LEN {
        return Err(corrupt());
    }
    let (format, rest) = b.split_first().ok_or_else(corrupt)?;
    let (salt, rest) = rest.split_at(32);
    let (nonce, sealed) = rest.split_at(12);
    Ok(SealedDataKey {
        format: *format,
        kdf_salt: salt.try_into().map_err(|_| corrupt())?,
        nonce: nonce.try_into().map_err(|_| corrupt())?,
        sealed: sealed.to_vec(),
    })
}

/// Makes a fresh data key for a new object version and seals it under the customer key.
pub(crate) fn seal_new_data_key(
    customer: &CustomerKey,
    bucket: &str,
    key: &str,
    binding_id: &str,
) -> Result<(DataKey, EncryptionRecord), CoreError> {
    let dek = DataKey::generate().map_err(|e| CoreError::Internal(e.to_string()))?;
    let binding = KeyBinding {
        bucket,
        key,
        id: binding_id,
    };
    let sealed = coffer_sse::seal_data_key(customer, &dek, &binding)
        .map_err(|e| CoreError::Internal(e.to_string()))?;
    let record = EncryptionRecord {
        algorithm: SSE_C_ALGORITHM.to_owned(),
        binding_id: binding_id.to_owned(),
        sealed_key: encode_sealed(&sealed),
    };
    Ok((dek, record))
}

/// Opens a sealed data key with the customer key (the key check): wrong key → `SseWrongKey`.
pub(crate) fn open_sealed(
    customer: &CustomerKey,
    enc: &EncryptionRecord,
    bucket: &str,
    key: &str,
) -> Result<DataKey, CoreError> {
    let sealed = decode_sealed(&enc.sealed_key)?;
    let binding = KeyBinding {
        bucket,
        key,
        id: &enc.binding_id,
    };
    match coffer_sse::open_data_key(customer, &sealed, &binding) {
        Ok(dek) => Ok(dek),
        Err(OpenError::WrongKey) => Err(CoreError::SseWrongKey),
        Err(e) => Err(CoreError::Internal(e.to_string())),
    }
}

/// Checks the request's customer key against the object: returns the object's data key for
/// SSE-C objects, `None` for plain ones, or the error S3 gives for each mismatch.
pub(crate) fn open_object_key(
    customer: Option<&CustomerKey>,
    record: &ObjectRecord,
    bucket: &str,
    key: &str,
) -> Result<Option<DataKey>, CoreError> {
    match (&record.encryption, customer) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(CoreError::SseNotEncrypted),
        (Some(_), None) => Err(CoreError::SseKeyRequired),
        (Some(enc), Some(customer)) => open_sealed(customer, enc, bucket, key).map(Some),
    }
}

/// Seals an existing data key under a new customer key (key rotation), keeping its binding.
pub(crate) fn reseal(
    customer: &CustomerKey,
    dek: &DataKey,
    old: &EncryptionRecord,
    bucket: &str,
    key: &str,
) -> Result<EncryptionRecord, CoreError> {
    let binding = KeyBinding {
        bucket,
        key,
        id: &old.binding_id,
    };
    let sealed = coffer_sse::seal_data_key(customer, dek, &binding)
        .map_err(|e| CoreError::Internal(e.to_string()))?;
    Ok(EncryptionRecord {
        algorithm: old.algorithm.clone(),
        binding_id: old.binding_id.clone(),
        sealed_key: encode_sealed(&sealed),
    })
}
