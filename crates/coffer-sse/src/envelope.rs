//! Envelope encryption of the per-object data key (DEK).
//!
//! Owns: generating a random 256-bit DEK per object (or per multipart
//! upload) and sealing it under a key-encryption key (KEK) derived from the
//! customer key, the object's identity and a fresh random salt, so that the
//! record can be stored next to the object.
//!
//! Must never: store anything derived from the customer key without a fresh
//! random salt (no MD5 of the key, no unsalted KDF output) — that would let
//! whoever reads storage test guessed keys offline; keep the DEK or KEK in a
//! buffer that is not wiped; or expose the DEK's bytes outside this crate.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::{hkdf, rand};
use zeroize::Zeroizing;

use crate::customer_key::CustomerKey;
use crate::stream::{CHUNK_SIZE, TAG_LEN};

/// Length of a data key in bytes (AES-256).
pub const DATA_KEY_LEN: usize = 32;
/// The only [`SealedDataKey::format`] this version writes and reads.
pub const SEALED_DATA_KEY_FORMAT: u8 = 1;
/// Length of [`SealedDataKey::sealed`]: encrypted DEK plus GCM tag.
pub const SEALED_DATA_KEY_LEN: usize = DATA_KEY_LEN + TAG_LEN;

const KEK_INFO_PREFIX: &[u8] = b"coffer/ssec/kek/v1";
const DEK_AAD_PREFIX: &[u8] = b"coffer/ssec/dek/v1";

// The chunk size is part of the DEK's AAD as a u32, so it has to fit.
const _: () = assert!(CHUNK_SIZE <= u32::MAX as usize);
#[allow(clippy::cast_possible_truncation)] // checked by the assertion above
const CHUNK_SIZE_U32: u32 = CHUNK_SIZE as u32;

/// A failure inside the crypto library or the system RNG. Carries no detail
/// on purpose: aws-lc reports everything as "unspecified".
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// aws-lc refused the operation.
    #[error("cryptographic operation failed")]
    Unspecified,
    /// The system random number generator failed.
    #[error("system random number generator failed")]
    Random,
    /// A key binding field (bucket, key or id) is longer than `u32::MAX` bytes.
    #[error("key binding field too long")]
    BindingTooLong,
    /// [`crate::stream::StreamKey::seal_chunk`] got a chunk that the stream
    /// format cannot represent at that position (too long, a short chunk that
    /// is not last, or an empty last chunk after index 0).
    #[error("chunk {index} of {len} bytes is not valid in the stream format")]
    InvalidChunk {
        /// Chunk index.
        index: u64,
        /// Plaintext length offered.
        len: usize,
    },
}

impl From<aws_lc_rs::error::Unspecified> for CryptoError {
    fn from(_: aws_lc_rs::error::Unspecified) -> Self {
        Self::Unspecified
    }
}

/// Why a sealed data key could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// The tag did not verify: wrong customer key, a record moved to another
    /// object/version/upload, or a tampered record. Indistinguishable by design.
    #[error("the data key could not be unsealed with the provided customer key")]
    WrongKey,
    /// A record format this version does not know.
    #[error("unsupported sealed data key format {0}")]
    UnsupportedFormat(u8),
}

/// A per-object data key. Wiped on drop; no `Clone`, redacted `Debug`.
pub struct DataKey(Zeroizing<[u8; DATA_KEY_LEN]>);

impl DataKey {
    /// A fresh random data key.
    pub fn generate() -> Result<Self, CryptoError> {
        // Fill in place so the key never exists outside the zeroizing box.
        let mut key = Zeroizing::new([0u8; DATA_KEY_LEN]);
        rand::fill(&mut key[..]).map_err(|_| CryptoError::Random)?;
        Ok(Self(key))
    }

    /// The raw key, for deriving stream keys inside this crate only.
    pub(crate) fn secret(&self) -> &[u8; DATA_KEY_LEN] {
        &self.0
    }

    /// A keyed hash for the ETags of encrypted multipart parts: the same bytes uploaded twice
    /// to one upload get the same ETag (clients that re-send a part rely on it), yet the ETag
    /// says nothing about the plaintext to anyone without the data key, unlike an MD5.
    pub fn part_etag_hasher(&self) -> PartEtagHasher {
        let salt =
            aws_lc_rs::hkdf::Salt::new(aws_lc_rs::hkdf::HKDF_SHA256, b"coffer/ssec/part-etag/v1");
        let prk = salt.extract(&self.0[..]);
        let info: [&[u8]; 1] = [b"etag"];
        // Expanding straight into an HMAC key keeps the derived key out of plain buffers.
        let key = prk
            .expand(&info, aws_lc_rs::hmac::HMAC_SHA256)
            .map(aws_lc_rs::hmac::Key::from)
            .unwrap_or_else(|_| {
                aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &self.0[..])
            });
        PartEtagHasher(aws_lc_rs::hmac::Context::with_key(&key))
    }
}

/// See [`DataKey::part_etag_hasher`].
pub struct PartEtagHasher(aws_lc_rs::hmac::Context);

impl PartEtagHasher {
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// 32 hex characters, the shape of an MD5 ETag.
    pub fn finish_hex(self) -> String {
        let tag = self.0.sign();
        tag.as_ref()
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

impl std::fmt::Debug for PartEtagHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PartEtagHasher")
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

/// A data key sealed under a customer key; safe to persist.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SealedDataKey {
    /// Record format, [`SEALED_DATA_KEY_FORMAT`].
    pub format: u8,
    /// HKDF salt for the KEK; fresh random bytes on every seal.
    pub kdf_salt: [u8; 32],
    /// AES-GCM nonce.
    pub nonce: [u8; NONCE_LEN],
    /// Encrypted DEK (32 bytes) followed by the 16-byte tag.
    pub sealed: Vec<u8>,
}

/// What a sealed data key is bound to. Opening with any other binding fails,
/// so a record cannot be replayed onto another object, version or upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyBinding<'a> {
    /// Bucket name.
    pub bucket: &'a str,
    /// Object key.
    pub key: &'a str,
    /// Version id, or the multipart upload id while the upload is in progress.
    pub id: &'a str,
}

/// Seals `dek` under a KEK derived from `customer`, a fresh salt and `binding`.
pub fn seal_data_key(
    customer: &CustomerKey,
    dek: &DataKey,
    binding: &KeyBinding<'_>,
) -> Result<SealedDataKey, CryptoError> {
    let mut kdf_salt = [0u8; 32];
    rand::fill(&mut kdf_salt).map_err(|_| CryptoError::Random)?;
    // The KEK is already unique per seal thanks to the fresh salt; a random
    // nonce on top costs nothing and keeps the scheme safe even if a salt
    // ever repeated.
    let mut nonce = [0u8; NONCE_LEN];
    rand::fill(&mut nonce).map_err(|_| CryptoError::Random)?;

    let kek = derive_kek(customer, &kdf_salt, binding)?;

    // Capacity for ciphertext + tag up front: appending the tag must not
    // reallocate and leave an un-wiped copy of the DEK behind. If sealing
    // fails, the buffer (still holding the DEK) is wiped on drop.
    let mut buf = Zeroizing::new(Vec::with_capacity(SEALED_DATA_KEY_LEN));
    buf.extend_from_slice(dek.secret());
    kek.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(dek_aad(SEALED_DATA_KEY_FORMAT)),
        &mut *buf,
    )?;
    // Now ciphertext only; take it out of the wrapper without copying.
    let sealed = std::mem::take(&mut *buf);

    Ok(SealedDataKey {
        format: SEALED_DATA_KEY_FORMAT,
        kdf_salt,
        nonce,
        sealed,
    })
}

/// Opens a sealed data key. Any mismatch — customer key, binding, or a
/// single changed bit of the record — gives [`OpenError::WrongKey`].
pub fn open_data_key(
    customer: &CustomerKey,
    sealed: &SealedDataKey,
    binding: &KeyBinding<'_>,
) -> Result<DataKey, OpenError> {
    if sealed.format != SEALED_DATA_KEY_FORMAT {
        return Err(OpenError::UnsupportedFormat(sealed.format));
    }
    if sealed.sealed.len() != SEALED_DATA_KEY_LEN {
        return Err(OpenError::WrongKey);
    }
    // A binding that cannot be length-prefixed could never have been sealed.
    let kek = derive_kek(customer, &sealed.kdf_salt, binding).map_err(|_| OpenError::WrongKey)?;

    let mut buf = Zeroizing::new([0u8; SEALED_DATA_KEY_LEN]);
    buf.copy_from_slice(&sealed.sealed);
    let plain = kek
        .open_in_place(
            Nonce::assume_unique_for_key(sealed.nonce),
            Aad::from(dek_aad(sealed.format)),
            &mut buf[..],
        )
        .map_err(|_| OpenError::WrongKey)?;

    let mut dek = Zeroizing::new([0u8; DATA_KEY_LEN]);
    if plain.len() != DATA_KEY_LEN {
        return Err(OpenError::WrongKey);
    }
    dek.copy_from_slice(plain);
    Ok(DataKey(dek))
}

/// KEK = HKDF-SHA256(ikm = customer key, salt, info = prefix || lp(bucket) ||
/// lp(key) || lp(id)), expanded straight into an AES-256-GCM key so the KEK
/// bytes never sit in a buffer of ours. Length prefixes keep the encoding
/// injective ("a"+"bc" differs from "ab"+"c").
fn derive_kek(
    customer: &CustomerKey,
    kdf_salt: &[u8; 32],
    binding: &KeyBinding<'_>,
) -> Result<LessSafeKey, CryptoError> {
    let bucket_len = len_prefix(binding.bucket)?;
    let key_len = len_prefix(binding.key)?;
    let id_len = len_prefix(binding.id)?;
    let info: [&[u8]; 7] = [
        KEK_INFO_PREFIX,
        &bucket_len,
        binding.bucket.as_bytes(),
        &key_len,
        binding.key.as_bytes(),
        &id_len,
        binding.id.as_bytes(),
    ];
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, kdf_salt).extract(customer.secret());
    let okm = prk.expand(&info, &AES_256_GCM)?;
    Ok(LessSafeKey::new(UnboundKey::from(okm)))
}

fn len_prefix(field: &str) -> Result<[u8; 4], CryptoError> {
    u32::try_from(field.len())
        .map(u32::to_be_bytes)
        .map_err(|_| CryptoError::BindingTooLong)
}

/// AAD = prefix || format || chunk size (u32 BE): a record can't be read
/// under a different format version or stream chunk size.
fn dek_aad(format: u8) -> [u8; DEK_AAD_PREFIX.len() + 5] {
    let mut aad = [0u8; DEK_AAD_PREFIX.len() + 5];
    let (prefix, rest) = aad.split_at_mut(DEK_AAD_PREFIX.len());
    prefix.copy_from_slice(DEK_AAD_PREFIX);
    rest[0] = format;
    rest[1..].copy_from_slice(&CHUNK_SIZE_U32.to_be_bytes());
    aad
}

#[cfg(test)]
mod part_etag_tests {
    use super::*;

    #[test]
    fn part_etags_are_deterministic_per_data_key_only() {
        let k1 = DataKey::generate().unwrap();
        let k2 = DataKey::generate().unwrap();
        let etag = |k: &DataKey, d: &[u8]| {
            let mut h = k.part_etag_hasher();
            h.update(d);
            h.finish_hex()
        };
        assert_eq!(etag(&k1, b"abc"), etag(&k1, b"abc"));
        assert_ne!(etag(&k1, b"abc"), etag(&k1, b"abd"));
        assert_ne!(etag(&k1, b"abc"), etag(&k2, b"abc"));
        assert_eq!(etag(&k1, b"abc").len(), 32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ck(byte: u8) -> CustomerKey {
        CustomerKey::from_raw_for_tests([byte; 32])
    }

    const B: KeyBinding<'static> = KeyBinding {
        bucket: "bucket",
        key: "dir/object.bin",
        id: "v-0001",
    };

    #[test]
    fn round_trip() {
        let customer = ck(1);
        let dek = DataKey::generate().unwrap();
        let sealed = seal_data_key(&customer, &dek, &B).unwrap();
        assert_eq!(sealed.format, SEALED_DATA_KEY_FORMAT);
        assert_eq!(sealed.sealed.len(), SEALED_DATA_KEY_LEN);
        assert_ne!(&sealed.sealed[..DATA_KEY_LEN], &dek.secret()[..]);
        let opened = open_data_key(&customer, &sealed, &B).unwrap();
        assert_eq!(opened.secret(), dek.secret());
    }

    #[test]
    fn generated_keys_differ() {
        let a = DataKey::generate().unwrap();
        let b = DataKey::generate().unwrap();
        assert_ne!(a.secret(), b.secret());
    }

    #[test]
    fn wrong_customer_key() {
        let dek = DataKey::generate().unwrap();
        let sealed = seal_data_key(&ck(1), &dek, &B).unwrap();
        assert_eq!(
            open_data_key(&ck(2), &sealed, &B).unwrap_err(),
            OpenError::WrongKey
        );
        let mut almost = [1u8; 32];
        almost[31] ^= 0x80;
        let almost = CustomerKey::from_raw_for_tests(almost);
        assert_eq!(
            open_data_key(&almost, &sealed, &B).unwrap_err(),
            OpenError::WrongKey
        );
    }

    #[test]
    fn other_binding() {
        let customer = ck(3);
        let dek = DataKey::generate().unwrap();
        let sealed = seal_data_key(&customer, &dek, &B).unwrap();
        let others = [
            KeyBinding {
                bucket: "bucket2",
                ..B
            },
            KeyBinding {
                key: "dir/object.bi",
                ..B
            },
            KeyBinding { id: "v-0002", ..B },
            KeyBinding { id: "", ..B },
            // Same concatenation, different split: length prefixes must tell them apart.
            KeyBinding {
                bucket: "bucketd",
                key: "ir/object.bin",
                ..B
            },
            KeyBinding {
                key: "dir/object.binv-0001",
                id: "",
                ..B
            },
        ];
        for other in others {
            assert_eq!(
                open_data_key(&customer, &sealed, &other).unwrap_err(),
                OpenError::WrongKey,
                "{other:?}"
            );
        }
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        let customer = ck(4);
        let dek = DataKey::generate().unwrap();
        let sealed = seal_data_key(&customer, &dek, &B).unwrap();
        for bit in [0x01u8, 0x80] {
            for i in 0..sealed.kdf_salt.len() {
                let mut t = sealed.clone();
                t.kdf_salt[i] ^= bit;
                assert_eq!(
                    open_data_key(&customer, &t, &B).unwrap_err(),
                    OpenError::WrongKey
                );
            }
            for i in 0..sealed.nonce.len() {
                let mut t = sealed.clone();
                t.nonce[i] ^= bit;
                assert_eq!(
                    open_data_key(&customer, &t, &B).unwrap_err(),
                    OpenError::WrongKey
                );
            }
            for i in 0..sealed.sealed.len() {
                let mut t = sealed.clone();
                t.sealed[i] ^= bit;
                assert_eq!(
                    open_data_key(&customer, &t, &B).unwrap_err(),
                    OpenError::WrongKey
                );
            }
        }
        // Truncated or extended records.
        let mut t = sealed.clone();
        t.sealed.pop();
        assert_eq!(
            open_data_key(&customer, &t, &B).unwrap_err(),
            OpenError::WrongKey
        );
        let mut t = sealed.clone();
        t.sealed.push(0);
        assert_eq!(
            open_data_key(&customer, &t, &B).unwrap_err(),
            OpenError::WrongKey
        );
        let mut t = sealed.clone();
        t.sealed.clear();
        assert_eq!(
            open_data_key(&customer, &t, &B).unwrap_err(),
            OpenError::WrongKey
        );
    }

    #[test]
    fn unknown_format() {
        let customer = ck(5);
        let dek = DataKey::generate().unwrap();
        let mut sealed = seal_data_key(&customer, &dek, &B).unwrap();
        sealed.format = 2;
        assert_eq!(
            open_data_key(&customer, &sealed, &B).unwrap_err(),
            OpenError::UnsupportedFormat(2)
        );
    }

    #[test]
    fn two_seals_differ() {
        let customer = ck(6);
        let dek = DataKey::generate().unwrap();
        let a = seal_data_key(&customer, &dek, &B).unwrap();
        let b = seal_data_key(&customer, &dek, &B).unwrap();
        assert_ne!(a.kdf_salt, b.kdf_salt);
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.sealed, b.sealed);
        assert_eq!(
            open_data_key(&customer, &a, &B).unwrap().secret(),
            dek.secret()
        );
        assert_eq!(
            open_data_key(&customer, &b, &B).unwrap().secret(),
            dek.secret()
        );
    }

    #[test]
    fn rotation_k1_to_k2() {
        let k1 = ck(7);
        let k2 = ck(8);
        let dek = DataKey::generate().unwrap();
        let under_k1 = seal_data_key(&k1, &dek, &B).unwrap();

        // Rotation = open with the old key, seal with the new one.
        let opened = open_data_key(&k1, &under_k1, &B).unwrap();
        let under_k2 = seal_data_key(&k2, &opened, &B).unwrap();

        assert_ne!(under_k1.kdf_salt, under_k2.kdf_salt);
        assert_eq!(
            open_data_key(&k2, &under_k2, &B).unwrap().secret(),
            dek.secret()
        );
        assert_eq!(
            open_data_key(&k1, &under_k2, &B).unwrap_err(),
            OpenError::WrongKey
        );
        assert_eq!(
            open_data_key(&k2, &under_k1, &B).unwrap_err(),
            OpenError::WrongKey
        );
    }

    #[test]
    fn aad_layout() {
        let aad = dek_aad(1);
        assert_eq!(&aad[..18], b"coffer/ssec/dek/v1");
        assert_eq!(aad[18], 1);
        assert_eq!(&aad[19..], &65536u32.to_be_bytes());
    }

    #[test]
    fn debug_is_redacted() {
        let dek = DataKey::generate().unwrap();
        assert_eq!(format!("{dek:?}"), "DataKey(<redacted>)");
        assert_eq!(format!("{dek:#?}"), "DataKey(<redacted>)");
    }
}
