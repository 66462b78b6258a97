//! Coffer's storage layer: metadata in an embedded transactional store (redb) and object data
//! in immutable blob files.
//!
//! It owns durability and atomicity: a blob is written to `tmp/`, fsynced and renamed into
//! `blobs/` before the metadata transaction that references it commits, so a crash at any
//! point leaves either the old object or the new one. It knows nothing of HTTP or of
//! encryption: encrypted objects are just blobs plus an opaque sealed-key record.

mod accounts;
mod blobs;
mod error;
mod meta;
mod records;
mod uploads;
mod versions;

pub use accounts::{AccessKeyRecord, AddAccessKeyOutcome, DeleteUserOutcome, UserRecord};
pub use blobs::{BlobId, BlobStore, BlobWriter, GcReport};
pub use error::StoreError;
pub use meta::{DeleteBucketOutcome, MetaStore, ObjectEntry};
pub use records::{
    BucketRecord, CorsRule, EncryptionRecord, ObjectRecord, PartRecord, Segment, UploadRecord,
};
pub use uploads::CompletedUpload;
pub use versions::{
    ConditionFailure, VERSIONING_ENABLED, VERSIONING_SUSPENDED, WriteCondition, WriteOutcome,
};

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The whole store: metadata plus blobs, rooted at one data directory.
pub struct Store {
    root: PathBuf,
    meta: MetaStore,
    blobs: BlobStore,
}

impl Store {
    /// Opens (creating if needed) the store under `root` and runs the start-up clean-up pass:
    /// leftover temp files are removed and blobs no committed record references are deleted.
    pub fn open_and_recover(root: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(root)?;
        let blobs = BlobStore::open(root)?;
        let meta = MetaStore::open(&root.join("meta.redb"))?;
        let store = Self {
            root: root.to_path_buf(),
            meta,
            blobs,
        };
        let removed_tmp = store.blobs.clear_tmp()?;
        let report = store.collect_garbage(Duration::ZERO)?;
        if removed_tmp > 0 || report.removed > 0 {
            tracing::info!(
                removed_tmp,
                removed_blobs = report.removed,
                "start-up pass removed leftovers of interrupted writes"
            );
        }
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn meta(&self) -> &MetaStore {
        &self.meta
    }

    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// Deletes blob files that no committed record references and that are older than
    /// `min_age` (a blob being written is renamed into place just before its record
    /// commits, so a running server must use a grace period; at start-up nothing is in flight).
    pub fn collect_garbage(&self, min_age: Duration) -> Result<GcReport, StoreError> {
        let referenced: HashSet<String> = self.meta.referenced_blobs()?;
        Ok(self.blobs.remove_unreferenced(&referenced, min_age)?)
    }
}
