//! The glue between object records and encryption: sealing a fresh data key for a new object
//! and opening a stored one. With SSE-C the wrapping key is the customer's (checked by the
//! unseal itself); with SSE-S3 and SSE-KMS it is derived from the server's master key. The
//! cipher itself lives in `coffer-sse`.

use aws_lc_rs::hkdf;
use coffer_sse::{CustomerKey, DataKey, KeyBinding, OpenError, SSE_C_ALGORITHM, SealedDataKey};
use coffer_store::{EncryptionRecord, ObjectRecord};
use zeroize::Zeroizing;

use crate::CoreError;

const SEALED_KEY_LEN: usize = 1 + 32 + 12 + 48;
pub(crate) const SCHEME_SSE_C: &str = "SSE-C";
const SCHEME_SSE_S3: &str = "SSE-S3";
const SCHEME_SSE_KMS: &str = "SSE-KMS";

/// Server-side encryption with keys the server manages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerSide {
    /// `x-amz-server-side-encryption: AES256`.
    S3,
    /// `aws:kms` with a key id.
    Kms(String),
}

/// How a new object (or upload) is to be encrypted.
pub enum Encryption {
    None,
    Customer(CustomerKey),
    Server(ServerSide),
}

impl Encryption {
    pub fn from_parts(customer: Option<CustomerKey>, server: Option<ServerSide>) -> Self {
        match (customer, server) {
            (Some(c), _) => Self::Customer(c),
            (None, Some(s)) => Self::Server(s),
            (None, None) => Self::None,
        }
    }
}

/// The server's master key, from which the wrapping keys of SSE-S3 and each SSE-KMS key id
/// are derived (HKDF-SHA256). Only these derived keys ever wrap data keys.
pub struct ServerKeys {
    master: Zeroizing<[u8; 32]>,
}

struct Len32;
impl hkdf::KeyType for Len32 {
    fn len(&self) -> usize {
        32
    }
}

impl ServerKeys {
    pub fn new(master: [u8; 32]) -> Self {
        Self {
            master: Zeroizing::new(master),
        }
    }

    fn wrapping_key(&self, side: &ServerSide) -> Result<CustomerKey, CoreError> {
        let info: Vec<u8> = match side {
            ServerSide::S3 => b"coffer/sse-s3/v1".to_vec(),
            ServerSide::Kms(id) => [b"coffer/sse-kms/v1/".as_slice(), id.as_bytes()].concat(),
        };
        let prk =
            hkdf::Salt::new(hkdf::HKDF_SHA256, b"coffer/server-keys").extract(&self.master[..]);
        let info_parts = [info.as_slice()];
        let okm = prk
            .expand(&info_parts, Len32)
            .map_err(|_| CoreError::Internal("key derivation failed".into()))?;
        let mut raw = Zeroizing::new([0u8; 32]);
        okm.fill(&mut raw[..])
            .map_err(|_| CoreError::Internal("key derivation failed".into()))?;
        Ok(CustomerKey::from_server_key(*raw))
    }
}

fn server_side_of(enc: &EncryptionRecord) -> Option<ServerSide> {
    match enc.scheme.as_str() {
        SCHEME_SSE_S3 => Some(ServerSide::S3),
        SCHEME_SSE_KMS => Some(ServerSide::Kms(enc.kms_key_id.clone().unwrap_or_default())),
        _ => None,
    }
}

/// The server-side encryption of a record, for response headers.
pub fn record_server_side(enc: Option<&EncryptionRecord>) -> Option<ServerSide> {
    enc.and_then(server_side_of)
}

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

fn seal_with(
    wrapping: &CustomerKey,
    dek: &DataKey,
    bucket: &str,
    key: &str,
    binding_id: &str,
    scheme: &str,
    kms_key_id: Option<String>,
) -> Result<EncryptionRecord, CoreError> {
    let binding = KeyBinding {
        bucket,
        key,
        id: binding_id,
    };
    let sealed = coffer_sse::seal_data_key(wrapping, dek, &binding)
        .map_err(|e| CoreError::Internal(e.to_string()))?;
    Ok(EncryptionRecord {
        algorithm: SSE_C_ALGORITHM.to_owned(),
        scheme: scheme.to_owned(),
        kms_key_id,
        binding_id: binding_id.to_owned(),
        sealed_key: encode_sealed(&sealed),
    })
}

/// Makes a fresh data key for a new object version (or upload) and seals it.
pub(crate) fn seal_new_data_key(
    keys: &ServerKeys,
    encryption: &Encryption,
    bucket: &str,
    key: &str,
    binding_id: &str,
) -> Result<Option<(DataKey, EncryptionRecord)>, CoreError> {
    let dek = match encryption {
        Encryption::None => return Ok(None),
        _ => DataKey::generate().map_err(|e| CoreError::Internal(e.to_string()))?,
    };
    let record = match encryption {
        Encryption::None => return Ok(None),
        Encryption::Customer(c) => seal_with(c, &dek, bucket, key, binding_id, SCHEME_SSE_C, None)?,
        Encryption::Server(side) => {
            let wrapping = keys.wrapping_key(side)?;
            let (scheme, id) = match side {
                ServerSide::S3 => (SCHEME_SSE_S3, None),
                ServerSide::Kms(id) => (SCHEME_SSE_KMS, Some(id.clone())),
            };
            seal_with(&wrapping, &dek, bucket, key, binding_id, scheme, id)?
        }
    };
    Ok(Some((dek, record)))
}

fn open_with(
    wrapping: &CustomerKey,
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
    match coffer_sse::open_data_key(wrapping, &sealed, &binding) {
        Ok(dek) => Ok(dek),
        Err(OpenError::WrongKey) => Err(CoreError::SseWrongKey),
        Err(e) => Err(CoreError::Internal(e.to_string())),
    }
}

/// Opens a sealed data key with the customer key (the key check): wrong key → `SseWrongKey`.
pub(crate) fn open_sealed(
    customer: &CustomerKey,
    enc: &EncryptionRecord,
    bucket: &str,
    key: &str,
) -> Result<DataKey, CoreError> {
    open_with(customer, enc, bucket, key)
}

/// Opens the data key of an encrypted record, given what the request carried: the customer
/// key for SSE-C records; nothing for server-managed ones.
pub(crate) fn open_record_key(
    keys: &ServerKeys,
    customer: Option<&CustomerKey>,
    enc: Option<&EncryptionRecord>,
    bucket: &str,
    key: &str,
) -> Result<Option<DataKey>, CoreError> {
    let Some(enc) = enc else {
        return match customer {
            Some(_) => Err(CoreError::SseNotEncrypted),
            None => Ok(None),
        };
    };
    match (server_side_of(enc), customer) {
        (Some(_), Some(_)) => Err(CoreError::SseNotEncrypted),
        (Some(side), None) => open_with(&keys.wrapping_key(&side)?, enc, bucket, key).map(Some),
        (None, None) => Err(CoreError::SseKeyRequired),
        (None, Some(c)) => open_with(c, enc, bucket, key).map(Some),
    }
}

/// Checks the request's customer key against an object: its data key, or the S3 error.
pub(crate) fn open_object_key(
    keys: &ServerKeys,
    customer: Option<&CustomerKey>,
    record: &ObjectRecord,
    bucket: &str,
    key: &str,
) -> Result<Option<DataKey>, CoreError> {
    open_record_key(keys, customer, record.encryption.as_ref(), bucket, key)
}

/// True when the record is SSE-C (the customer holds the key).
pub(crate) fn is_customer_keyed(enc: Option<&EncryptionRecord>) -> bool {
    enc.is_some_and(|e| e.scheme == SCHEME_SSE_C)
}

/// Seals an existing data key under a new customer key (key rotation), keeping its binding.
pub(crate) fn reseal(
    customer: &CustomerKey,
    dek: &DataKey,
    old: &EncryptionRecord,
    bucket: &str,
    key: &str,
) -> Result<EncryptionRecord, CoreError> {
    seal_with(
        customer,
        dek,
        bucket,
        key,
        &old.binding_id,
        SCHEME_SSE_C,
        None,
    )
}
