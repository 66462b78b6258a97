//! Coffer's storage layer: metadata in an embedded transactional store (redb) and object data
//! in immutable blob files.
//!
//! It owns durability and atomicity: a blob is written to `tmp/`, fsynced and renamed into
//! `blobs/` before the metadata transaction that references it commits, or, when it is small,
//! written by that very transaction (`inline.rs`), so a crash at any point leaves either the old
//! object or the new one. Concurrent metadata writes share transactions and fsyncs
//! (`group_commit.rs`); none is acknowledged before its transaction is durable. It knows nothing
//! of HTTP or of encryption: encrypted objects are just blobs plus an opaque sealed-key record.

mod accounts;
mod blobs;
mod error;
mod group_commit;
mod inline;
#[cfg(test)]
mod inline_tests;
mod meta;
mod records;
mod uploads;
mod versions;

pub use accounts::{AccessKeyRecord, AddAccessKeyOutcome, DeleteUserOutcome, UserRecord};
pub use blobs::{BlobId, BlobStore, BlobWriter, GcReport, INLINE_MAX, InlineBlob, StoredBlob};
pub use error::StoreError;
pub use group_commit::CommitStats;
pub use meta::{
    DeleteBucketOutcome, InlineCensus, META_CACHE_BYTES, MetaStore, ObjectEntry, RawObject, Visit,
};
pub use records::{
    BucketRecord, CorsRule, EncryptionRecord, ObjectRecord, PartRecord, Segment, UploadRecord,
};
pub use uploads::CompletedUpload;
pub use versions::{
    ConditionFailure, SharedWriteCondition, VERSIONING_ENABLED, VERSIONING_SUSPENDED,
    WriteCondition, WriteOutcome,
};

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Blob references one GC pass holds in memory (16 bytes each, so 8 MiB): a store with more
/// records is collected in several passes, each over a range of the 256 blob shards, so the
/// GC's memory stays bounded whatever the number of objects.
const GC_IDS_PER_PASS: u64 = 1 << 19;

/// A file made anew at every open: its modification time is the start-up pass's cutoff.
const OPEN_STAMP: &str = "opened.stamp";

/// The whole store: metadata plus blobs, rooted at one data directory.
pub struct Store {
    root: PathBuf,
    meta: MetaStore,
    blobs: BlobStore,
    opened_at: SystemTime,
}

impl Store {
    /// Opens (creating if needed) the store under `root` and removes the temp files of writes an
    /// earlier run left unfinished (before any new write can start one). Blobs an earlier run
    /// renamed into place but never committed are left to [`collect_orphans`](Self::collect_orphans),
    /// which may run while the store serves requests.
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(root)?;
        let blobs = BlobStore::open(root)?;
        let meta = MetaStore::open(&root.join("meta.redb"))?;
        // The cutoff is read off a file made now, not off `now()`: file times come from the
        // kernel's coarse clock, a tick or so behind `now()`, so a blob written just after the
        // open could carry an earlier time than `now()` said. Against the stamp, a blob written
        // since the open is never older, and a crash leftover (written before this process
        // started) always is.
        let stamp = root.join(OPEN_STAMP);
        match std::fs::remove_file(&stamp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        let opened_at = std::fs::File::create(&stamp)?.metadata()?.modified()?;
        let removed_tmp = blobs.clear_tmp()?;
        if removed_tmp > 0 {
            tracing::info!(
                removed_tmp,
                "removed temp files of writes interrupted before the start"
            );
        }
        Ok(Self {
            root: root.to_path_buf(),
            meta,
            blobs,
            opened_at,
        })
    }

    /// [`open`](Self::open), then the whole start-up pass before returning (tests and tools).
    pub fn open_and_recover(root: &Path) -> Result<Self, StoreError> {
        let store = Self::open(root)?;
        store.collect_orphans()?;
        Ok(store)
    }

    /// The start-up pass: deletes blobs no committed record references that were written before
    /// the store was opened (crash leftovers between a blob's rename and its record's commit).
    /// Blobs written since are in-flight writes' and are not touched, so this can run in the
    /// background while requests are served; on a big store it takes seconds.
    pub fn collect_orphans(&self) -> Result<GcReport, StoreError> {
        let report = self.collect_garbage_before(self.opened_at, GC_IDS_PER_PASS)?;
        if report.removed > 0 || report.removed_inline > 0 {
            tracing::info!(
                removed_blobs = report.removed,
                removed_inline_blobs = report.removed_inline,
                "start-up pass removed blobs of writes interrupted before the start"
            );
        }
        Ok(report)
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

    /// Opens the blob that holds a segment's stored bytes, wherever they are. A blob that is
    /// gone (its record was replaced or deleted since it was read) is `NotFound`, inline or not.
    pub fn open_blob(&self, segment: &Segment) -> io::Result<BlobReader> {
        let id = BlobId::parse(&segment.blob)
            .ok_or_else(|| io::Error::other("corrupt blob reference"))?;
        if segment.inline {
            match self.meta.inline_blob(id.as_str()) {
                Ok(Some(bytes)) => Ok(BlobReader::Inline(bytes)),
                Ok(None) => Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    "inline blob no longer exists",
                )),
                Err(e) => Err(io::Error::other(e.to_string())),
            }
        } else {
            Ok(BlobReader::File(File::open(self.blobs.path_of(&id))?))
        }
    }

    /// Removes the blob files of versions the store dropped (their inline bytes, if any, went
    /// with the transaction that dropped them). Best effort: GC collects what this misses.
    pub fn remove_dropped_blob_files_blocking(&self, record: &ObjectRecord) {
        for seg in record.segments.iter().filter(|s| !s.inline) {
            if let Some(id) = BlobId::parse(&seg.blob)
                && let Err(e) = self.blobs.remove_blocking(&id)
            {
                tracing::warn!(blob = %seg.blob, error = %e, "could not remove a replaced blob; GC will retry");
            }
        }
    }

    /// Deletes blob files that no committed record references and that are older than
    /// `min_age` (a blob being written is renamed into place just before its record
    /// commits, so a running server must use a grace period; at start-up nothing is in flight),
    /// and inline blobs that no record references (there should be none: see `inline.rs`).
    pub fn collect_garbage(&self, min_age: Duration) -> Result<GcReport, StoreError> {
        let cutoff = SystemTime::now()
            .checked_sub(min_age)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        self.collect_garbage_before(cutoff, GC_IDS_PER_PASS)
    }

    /// Deletes the unreferenced blobs last modified before `cutoff`. The cutoff is fixed before
    /// any reference is read, so a blob written since can never be taken for garbage.
    fn collect_garbage_before(
        &self,
        cutoff: SystemTime,
        ids_per_pass: u64,
    ) -> Result<GcReport, StoreError> {
        let records = self.meta.blob_record_count()?;
        let passes = records.div_ceil(ids_per_pass.max(1)).clamp(1, 256);
        let mut report = GcReport::default();
        let mut inline_consistent = true;
        for pass in 0..passes {
            let shards = blobs::shard_range(pass, passes);
            let mut ids: Vec<u128> =
                Vec::with_capacity(usize::try_from(records / passes + 64).unwrap_or(0));
            let census = self.meta.for_each_referenced_blob(|blob| {
                if let Some(id) = blobs::id_number(blob)
                    && shards.contains(&blobs::shard_of(id))
                {
                    ids.push(id);
                }
            })?;
            inline_consistent &= census.references == census.stored;
            ids.sort_unstable();
            ids.dedup();
            let referenced = |name: &str| {
                blobs::id_number(name).is_some_and(|id| ids.binary_search(&id).is_ok())
            };
            let r = self
                .blobs
                .remove_unreferenced(shards, &referenced, cutoff)?;
            report.scanned += r.scanned;
            report.removed += r.removed;
        }
        // The scans above counted inline references against inline blobs; only a mismatch
        // (never expected) is worth the listing that finds and removes orphans.
        if !inline_consistent {
            report.removed_inline = self.meta.remove_inline_orphans()?;
        }
        Ok(report)
    }
}

/// A blob opened for reading: a file, or inline bytes read from the metadata store.
#[derive(Debug)]
pub enum BlobReader {
    File(File),
    Inline(Vec<u8>),
}

impl BlobReader {
    /// Fills `buf` from offset `pos`, as `FileExt::read_exact_at` does (an end of data before
    /// `buf` is full is `UnexpectedEof`).
    pub fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        match self {
            Self::File(f) => f.read_exact_at(buf, pos),
            Self::Inline(bytes) => {
                let src = usize::try_from(pos)
                    .ok()
                    .and_then(|start| bytes.get(start..start.checked_add(buf.len())?))
                    .ok_or_else(|| {
                        io::Error::new(io::ErrorKind::UnexpectedEof, "read past an inline blob")
                    })?;
                buf.copy_from_slice(src);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(blob: &str) -> ObjectRecord {
        ObjectRecord {
            version_id: "v".into(),
            size: 1,
            etag: "e".into(),
            last_modified_ms: 0,
            content_type: None,
            content_encoding: None,
            content_disposition: None,
            content_language: None,
            cache_control: None,
            expires: None,
            user_metadata: vec![],
            checksum: None,
            segments: vec![Segment {
                blob: blob.into(),
                part_number: 1,
                size: 1,
                stream_salt: None,
                etag: String::new(),
                checksum: None,
                inline: false,
            }],
            encryption: None,
            delete_marker: false,
            null_version: false,
            upload_id: None,
            acl: None,
            tags: Vec::new(),
        }
    }

    #[test]
    fn the_start_up_pass_spares_blobs_written_since_the_open() {
        let dir = tempfile::tempdir().unwrap();
        let before = {
            let store = Store::open(dir.path()).unwrap();
            let w = store.blobs().create_blocking().unwrap();
            // Renamed into place, its record never committed: a crash leftover of an hour ago.
            let id = w.commit_blocking().unwrap().id().clone();
            std::fs::File::options()
                .write(true)
                .open(store.blobs().path_of(&id))
                .unwrap()
                .set_modified(SystemTime::now() - Duration::from_secs(3600))
                .unwrap();
            id
        };
        let store = Store::open(dir.path()).unwrap();
        // In flight right after the open (its time may lag the open's clock by a tick):
        // renamed into place, its record not committed yet.
        let during = store
            .blobs()
            .create_blocking()
            .unwrap()
            .commit_blocking()
            .unwrap()
            .id()
            .clone();
        let report = store.collect_orphans().unwrap();
        assert_eq!((report.scanned, report.removed), (2, 1));
        assert!(!store.blobs().path_of(&before).exists());
        assert!(store.blobs().path_of(&during).exists());
    }

    #[test]
    fn gc_in_passes_keeps_every_referenced_blob() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let bucket = BucketRecord {
            owner: "o".into(),
            created_ms: 0,
            region: "r".into(),
            versioning: None,
            policy: None,
            acl: None,
            cors: None,
        };
        store.meta().create_bucket("b", &bucket).unwrap();
        let blob = || {
            let mut w = store.blobs().create_blocking().unwrap();
            w.write_all_blocking(b"x").unwrap();
            w.commit_blocking().unwrap().id().clone()
        };
        let kept: Vec<BlobId> = (0..40).map(|_| blob()).collect();
        let orphans: Vec<BlobId> = (0..40).map(|_| blob()).collect();
        store
            .meta()
            .put_objects(
                "b",
                kept.iter()
                    .enumerate()
                    .map(|(i, id)| (format!("k{i}"), record(id.as_str()))),
            )
            .unwrap();
        // One reference per pass: 40 passes over 40 shard ranges.
        let report = store
            .collect_garbage_before(SystemTime::now() + Duration::from_secs(1), 1)
            .unwrap();
        assert_eq!((report.scanned, report.removed), (80, 40));
        for id in &kept {
            assert!(store.blobs().path_of(id).exists());
        }
        for id in &orphans {
            assert!(!store.blobs().path_of(id).exists());
        }
    }
}
