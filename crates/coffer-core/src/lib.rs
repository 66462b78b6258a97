//! Coffer's operations on buckets and objects: create, put, get, list, delete.
//!
//! This crate speaks in domain types (bucket names, keys, records, byte streams) and never in
//! HTTP: the S3 adapter converts requests into these calls and errors back into S3 codes.
//! Encryption is delegated to `coffer-sse`, durability to `coffer-store`.

pub mod accounts;
mod bucket;
pub mod checksum;
mod conditions;
mod copy;
mod delete;
mod encryption;
use encryption::ServerKeys;
pub use encryption::{Encryption, ServerSide, record_server_side};
mod error;
mod list;
mod multipart;
mod object_read;
mod object_write;
mod range;
mod read_buffer;
pub mod tagging;
mod versioning;

pub use bucket::BucketInfo;
pub use checksum::{ChecksumAlgorithm, ChecksumHasher};
pub use conditions::{Conditions, WriteConditions};
pub use copy::{CopyObject, CopyOutcome, CopySource, MetadataDirective};
pub use delete::DeleteOutcome;
pub use error::{BoxError, CoreError};
pub use list::{ListPage, ListParams};
pub use multipart::{
    CompleteOutcome, CompletePart, CreateUpload, ListUploadsParams, MAX_PART_NUMBER, MIN_PART_SIZE,
    PartOutcome, UploadPart, UploadsPage, upload_checksum,
};
pub use object_read::{ObjectRead, ReadOptions};
pub use object_write::{ExpectedChecksum, ObjectMetadata, PutObject, PutOutcome};
pub use range::RangeSpec;
pub use versioning::{ListVersionsParams, VersionEntry, VersionsPage};

pub use coffer_store::{CorsRule, ObjectRecord, PartRecord, Store, UploadRecord};

use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures::Stream;

/// A request or response body: a stream of byte buffers.
pub type ByteStream<E> = Pin<Box<dyn Stream<Item = Result<Bytes, E>> + Send + Sync>>;

/// The object store engine shared by every request.
#[derive(Clone)]
pub struct Coffer {
    store: Arc<Store>,
    keys: Arc<ServerKeys>,
    sealer: Arc<accounts::SecretSealer>,
    read_buffers: Arc<read_buffer::ReadBufferPool>,
}

impl Coffer {
    /// `master_key` is the server's own key for SSE-S3 and SSE-KMS objects.
    pub fn new(store: Store, master_key: [u8; 32]) -> Result<Self, CoreError> {
        Ok(Self {
            store: Arc::new(store),
            sealer: Arc::new(accounts::SecretSealer::new(&master_key)?),
            keys: Arc::new(ServerKeys::new(master_key)),
            read_buffers: read_buffer::ReadBufferPool::new(),
        })
    }

    pub(crate) fn server_keys(&self) -> &ServerKeys {
        &self.keys
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Runs a blocking store call off the async reactor.
    async fn blocking<T, F>(&self, f: F) -> Result<T, CoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, CoreError> + Send + 'static,
    {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| CoreError::Internal(format!("blocking task failed: {e}")))?
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// A fresh version id: 48 bits of milliseconds (so ids sort by time) and 80 random bits.
pub(crate) fn new_version_id() -> Result<String, CoreError> {
    let mut random = [0u8; 10];
    aws_lc_rs::rand::fill(&mut random).map_err(|_| CoreError::Internal("CSPRNG failure".into()))?;
    let ms = u64::try_from(now_ms()).unwrap_or(0) & 0xFFFF_FFFF_FFFF;
    Ok(format!("{ms:012x}{}", hex::encode(random)))
}
