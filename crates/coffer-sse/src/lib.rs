//! SSE-C (server-side encryption with customer-provided keys) for Coffer.
//!
//! This crate owns the cryptography of SSE-C and nothing else:
//! - [`customer_key`]: validating the SSE-C request headers into a
//!   [`CustomerKey`];
//! - [`envelope`]: a random per-object [`DataKey`], sealed under the customer
//!   key and bound to bucket/key/version so the sealed record can be stored;
//! - [`stream`]: the chunked AES-256-GCM format of the stored object bytes,
//!   with incremental encryption/decryption and range reads.
//!
//! It performs no I/O, never logs, and never lets key material leave
//! zeroizing buffers or appear in `Debug`/`Display` output. All primitives
//! come from `aws-lc-rs`.

pub mod customer_key;
pub mod envelope;
pub mod stream;

pub use customer_key::{
    CustomerKey, SSE_C_ALGORITHM, SseCustomerHeaders, SseHeaderError, parse_customer_key,
};
pub use envelope::{
    CryptoError, DataKey, KeyBinding, OpenError, PartEtagHasher, SealedDataKey, open_data_key,
    seal_data_key,
};
pub use stream::{
    CHUNK_SIZE, ChunkError, CipherSpan, SEALED_CHUNK_SIZE, StreamDecryptor, StreamEncryptor,
    StreamKey, StreamSalt, TAG_LEN, chunk_count, ciphertext_len, full_span, span_for_range,
};
