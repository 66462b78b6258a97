//! The metadata store: buckets and object records in redb. Each mutation is an operation on a
//! write transaction; concurrent operations share one transaction and one fsync (group commit,
//! `group_commit.rs`), and none is acknowledged before that transaction is durably committed.

#[cfg(test)]
use std::collections::HashSet;
use std::ops::Bound;
use std::path::Path;

use redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
    WriteTransaction,
};

use crate::group_commit::{CommitStats, GroupCommit};

use crate::records::{DeleteMarkerFlag, decode, decode_borrowed, encode};
use crate::{BucketRecord, ObjectRecord, StoreError};

/// Memory redb may use to cache pages of the metadata file (its default is 1 GiB, which a
/// large bucket fills: every page the start-up GC pass reads stays cached). The OS page cache
/// still holds the file; this only bounds the process's own copy.
pub const META_CACHE_BYTES: usize = 16 << 20;

pub(crate) const BUCKETS: TableDefinition<&str, &[u8]> = TableDefinition::new("buckets");
/// Key: bucket name, 0x00, object key. Bucket names never contain 0x00, and the byte order
/// of UTF-8 keys is the order S3 lists them in.
pub(crate) const OBJECTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("objects");
/// Key: bucket, 0x00, object key, 0x00, upload id — so uploads list in key order.
pub(crate) const UPLOADS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("uploads");
/// Key: upload id, 0x00, part number (4 bytes big-endian).
pub(crate) const PARTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("parts");
/// Every version of every key of buckets that have (ever) had versioning on. Key: bucket, 0x00,
/// object key, 0x00, then the version's 16-byte id inverted so the newest version sorts first.
pub(crate) const VERSIONS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("versions");

pub struct MetaStore {
    pub(crate) db: Database,
    pub(crate) commits: GroupCommit,
}

#[derive(Debug, Clone)]
pub struct ObjectEntry {
    pub key: String,
    pub record: ObjectRecord,
}

/// What a [`MetaStore::visit_objects`] visitor wants next.
#[derive(Debug, PartialEq, Eq)]
pub enum Visit {
    /// The next key.
    Next,
    /// Jump to these raw key bytes (inclusive or not), e.g. past a whole common prefix.
    Seek { from: Vec<u8>, inclusive: bool },
    /// Done.
    Stop,
}

/// One object record met by [`MetaStore::visit_objects`], decoded only when asked.
pub struct RawObject<'a>(&'a [u8]);

impl RawObject<'_> {
    pub fn decode(&self) -> Result<ObjectRecord, StoreError> {
        decode(self.0)
    }

    /// Reads only the delete-marker flag.
    pub fn is_delete_marker(&self) -> Result<bool, StoreError> {
        Ok(decode_borrowed::<DeleteMarkerFlag>(self.0)?.delete_marker)
    }
}

/// Inline references and inline blobs counted in one snapshot (equal unless something is wrong).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InlineCensus {
    pub references: u64,
    pub stored: u64,
}

#[derive(Debug, PartialEq, Eq)]
pub enum DeleteBucketOutcome {
    /// Deleted; the blobs of its aborted multipart uploads may now be removed.
    Deleted {
        orphaned_blobs: Vec<String>,
    },
    NoSuchBucket,
    NotEmpty,
}

/// A scan's start, never before the prefix being scanned.
pub(crate) fn clamp_to_prefix(start: Bound<Vec<u8>>, prefix: &[u8]) -> Bound<Vec<u8>> {
    match start {
        Bound::Included(k) | Bound::Excluded(k) if k.as_slice() < prefix => {
            Bound::Included(prefix.to_vec())
        }
        other => other,
    }
}

/// The redb range from `start` to the end of the table.
pub(crate) fn open_range(start: &Bound<Vec<u8>>) -> (Bound<&[u8]>, Bound<&[u8]>) {
    match start {
        Bound::Included(k) => (Bound::Included(k.as_slice()), Bound::Unbounded),
        Bound::Excluded(k) => (Bound::Excluded(k.as_slice()), Bound::Unbounded),
        Bound::Unbounded => (Bound::Unbounded, Bound::Unbounded),
    }
}

pub(crate) fn object_key(bucket: &str, key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(bucket.len() + 1 + key.len());
    k.extend_from_slice(bucket.as_bytes());
    k.push(0);
    k.extend_from_slice(key.as_bytes());
    k
}

impl MetaStore {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = redb::Builder::new()
            .set_cache_size(META_CACHE_BYTES)
            .create(path)?;
        let txn = db.begin_write()?;
        txn.open_table(BUCKETS)?;
        txn.open_table(OBJECTS)?;
        txn.open_table(UPLOADS)?;
        txn.open_table(PARTS)?;
        txn.open_table(VERSIONS)?;
        txn.open_table(crate::inline::INLINE)?;
        txn.open_table(crate::accounts::USERS)?;
        txn.open_table(crate::accounts::ACCESS_KEYS)?;
        txn.commit()?;
        Ok(Self {
            db,
            commits: GroupCommit::default(),
        })
    }

    /// Runs `op` in a write transaction, possibly shared with concurrent writers' operations,
    /// and returns its result once the transaction is durably committed. When `op` fails,
    /// nothing it wrote is committed. `op` may run more than once (see `group_commit.rs`), so
    /// it must depend on nothing but the transaction and what it captured.
    pub(crate) fn write<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&WriteTransaction) -> Result<T, StoreError> + Send + 'static,
    {
        self.commits.write(&self.db, op)
    }

    /// How many transactions and operations group commit has committed so far.
    pub fn commit_stats(&self) -> CommitStats {
        self.commits.stats()
    }

    /// Creates the bucket unless it exists; returns the existing record if it does.
    pub fn create_bucket(
        &self,
        name: &str,
        record: &BucketRecord,
    ) -> Result<Option<BucketRecord>, StoreError> {
        let (name, value) = (name.to_owned(), encode(record)?);
        self.write(move |txn| {
            let mut table = txn.open_table(BUCKETS)?;
            let existing = match table.get(name.as_str())? {
                Some(v) => Some(decode::<BucketRecord>(v.value())?),
                None => None,
            };
            if existing.is_none() {
                table.insert(name.as_str(), value.as_slice())?;
            }
            Ok(existing)
        })
    }

    pub fn bucket(&self, name: &str) -> Result<Option<BucketRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(BUCKETS)?;
        match table.get(name)? {
            Some(v) => Ok(Some(decode(v.value())?)),
            None => Ok(None),
        }
    }

    pub fn buckets(&self) -> Result<Vec<(String, BucketRecord)>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(BUCKETS)?;
        let mut out = Vec::new();
        for item in table.iter()? {
            let (k, v) = item?;
            out.push((k.value().to_owned(), decode(v.value())?));
        }
        Ok(out)
    }

    pub fn delete_bucket(&self, name: &str) -> Result<DeleteBucketOutcome, StoreError> {
        let name = name.to_owned();
        self.write(move |txn| {
            let name = name.as_str();
            let mut buckets = txn.open_table(BUCKETS)?;
            let outcome = if buckets.get(name)?.is_none() {
                DeleteBucketOutcome::NoSuchBucket
            } else {
                let objects = txn.open_table(OBJECTS)?;
                let prefix = object_key(name, "");
                let has_object = match objects.range(prefix.as_slice()..)?.next() {
                    Some(item) => item?.0.value().starts_with(&prefix),
                    None => false,
                };
                let versions = txn.open_table(VERSIONS)?;
                let has_version = match versions.range(prefix.as_slice()..)?.next() {
                    Some(item) => item?.0.value().starts_with(&prefix),
                    None => false,
                };
                if has_object || has_version {
                    DeleteBucketOutcome::NotEmpty
                } else {
                    // Unfinished multipart uploads do not keep a bucket alive (as on AWS):
                    // they go with it.
                    let mut uploads = txn.open_table(UPLOADS)?;
                    let mut doomed = Vec::new();
                    for item in uploads.range(prefix.as_slice()..)? {
                        let (k, v) = item?;
                        if !k.value().starts_with(&prefix) {
                            break;
                        }
                        let upload: crate::UploadRecord = decode(v.value())?;
                        doomed.push((k.value().to_vec(), upload.upload_id));
                    }
                    let mut orphaned_blobs = Vec::new();
                    for (k, upload_id) in doomed {
                        uploads.remove(k.as_slice())?;
                        orphaned_blobs.extend(
                            crate::uploads::remove_parts(txn, &upload_id)?
                                .into_iter()
                                .map(|p| p.blob),
                        );
                    }
                    buckets.remove(name)?;
                    DeleteBucketOutcome::Deleted { orphaned_blobs }
                }
            };
            Ok(outcome)
        })
    }

    /// Changes a bucket's record in one transaction (policy, ACL).
    pub fn update_bucket(
        &self,
        bucket: &str,
        change: impl Fn(&mut BucketRecord) + Send + 'static,
    ) -> Result<(), StoreError> {
        let bucket = bucket.to_owned();
        self.write(move |txn| {
            let mut buckets = txn.open_table(BUCKETS)?;
            let mut rec: BucketRecord = match buckets.get(bucket.as_str())? {
                Some(v) => decode(v.value())?,
                None => return Err(StoreError::NoSuchBucket),
            };
            change(&mut rec);
            buckets.insert(bucket.as_str(), encode(&rec)?.as_slice())?;
            Ok(())
        })
    }

    pub fn object(&self, bucket: &str, key: &str) -> Result<Option<ObjectRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(OBJECTS)?;
        match table.get(object_key(bucket, key).as_slice())? {
            Some(v) => Ok(Some(decode(v.value())?)),
            None => Ok(None),
        }
    }

    /// Replaces the object's record only if its current version is still `expected_version`
    /// (compare-and-swap, for metadata-only rewrites such as key rotation). Returns false when
    /// the object changed or vanished in between.
    pub fn replace_object_if(
        &self,
        bucket: &str,
        key: &str,
        expected_version: &str,
        record: &ObjectRecord,
    ) -> Result<bool, StoreError> {
        let (k, expected, value) = (
            object_key(bucket, key),
            expected_version.to_owned(),
            encode(record)?,
        );
        self.write(move |txn| {
            let mut objects = txn.open_table(OBJECTS)?;
            let current = match objects.get(k.as_slice())? {
                Some(v) => Some(decode::<ObjectRecord>(v.value())?),
                None => None,
            };
            if current.is_some_and(|c| c.version_id == expected) {
                objects.insert(k.as_slice(), value.as_slice())?;
                Ok(true)
            } else {
                Ok(false)
            }
        })
    }

    /// Up to `limit` objects of `bucket` whose keys start with `prefix`, in key order, beginning
    /// at the raw key bytes `from` (inclusive or not). `from` is bytes, not a key, so callers can
    /// seek past a whole common prefix with `prefix + 0xFF` (no UTF-8 key contains 0xFF).
    pub fn scan_objects(
        &self,
        bucket: &str,
        prefix: &str,
        from: &[u8],
        inclusive: bool,
        limit: usize,
    ) -> Result<Vec<ObjectEntry>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(OBJECTS)?;
        let bucket_prefix = object_key(bucket, "");
        let full_prefix = object_key(bucket, prefix);
        let mut start = bucket_prefix.clone();
        start.extend_from_slice(from);
        let (lower, effective_inclusive) = if start < full_prefix {
            (full_prefix.clone(), true)
        } else {
            (start, inclusive)
        };
        let lower_bound = if effective_inclusive {
            Bound::Included(lower.as_slice())
        } else {
            Bound::Excluded(lower.as_slice())
        };
        let mut out = Vec::new();
        for item in table.range((lower_bound, Bound::<&[u8]>::Unbounded))? {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item?;
            let k = k.value();
            if !k.starts_with(&full_prefix) {
                break;
            }
            let key = std::str::from_utf8(&k[bucket_prefix.len()..])
                .map_err(|e| StoreError::Corrupt(e.to_string()))?
                .to_owned();
            out.push(ObjectEntry {
                key,
                record: decode(v.value())?,
            });
        }
        Ok(out)
    }

    /// Walks the objects of `bucket` whose keys start with `prefix`, in key order, from the raw
    /// key bytes `from` (inclusive or not), in one read transaction: `visit` sees each key with
    /// its undecoded record and says whether to go on, jump ahead or stop. A jump is one B-tree
    /// seek, so a listing can skip a common prefix of any size without reading its keys.
    pub fn visit_objects(
        &self,
        bucket: &str,
        prefix: &str,
        from: &[u8],
        inclusive: bool,
        mut visit: impl FnMut(&str, RawObject<'_>) -> Result<Visit, StoreError>,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(OBJECTS)?;
        let bucket_prefix = object_key(bucket, "");
        let full_prefix = object_key(bucket, prefix);
        let (mut from, mut inclusive) = (from.to_vec(), inclusive);
        'seek: loop {
            let mut start = bucket_prefix.clone();
            start.extend_from_slice(&from);
            let lower = if start < full_prefix {
                Bound::Included(full_prefix.as_slice())
            } else if inclusive {
                Bound::Included(start.as_slice())
            } else {
                Bound::Excluded(start.as_slice())
            };
            for item in table.range((lower, Bound::<&[u8]>::Unbounded))? {
                let (k, v) = item?;
                let k = k.value();
                if !k.starts_with(&full_prefix) {
                    return Ok(());
                }
                let key = std::str::from_utf8(&k[bucket_prefix.len()..])
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                match visit(key, RawObject(v.value()))? {
                    Visit::Next => {}
                    Visit::Stop => return Ok(()),
                    Visit::Seek {
                        from: f,
                        inclusive: i,
                    } => {
                        (from, inclusive) = (f, i);
                        continue 'seek;
                    }
                }
            }
            return Ok(());
        }
    }

    /// How many records may reference blobs (objects, versions, parts): an estimate of the
    /// references [`for_each_referenced_blob`](Self::for_each_referenced_blob) reports
    /// (multipart objects reference one blob per part).
    pub fn blob_record_count(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read()?;
        Ok(txn.open_table(OBJECTS)?.len()?
            + txn.open_table(VERSIONS)?.len()?
            + txn.open_table(PARTS)?.len()?)
    }

    /// Calls `f` with every blob id a committed record references, from one snapshot. Only the
    /// blob fields are decoded, borrowed: nothing is allocated per record but its segment list.
    /// Also counts, in that snapshot, the inline references (each version once) and the inline
    /// blobs, which should be equal (see `inline.rs`).
    pub fn for_each_referenced_blob(
        &self,
        mut f: impl FnMut(&str),
    ) -> Result<InlineCensus, StoreError> {
        let txn = self.db.begin_read()?;
        let mut census = InlineCensus {
            references: 0,
            stored: txn.open_table(crate::inline::INLINE)?.len()?,
        };
        crate::inline::visit_references(&txn, |blob, inline, owner| {
            f(blob);
            if inline && owner {
                census.references += 1;
            }
        })?;
        Ok(census)
    }

    /// Every blob id a committed record references (tests; the GC uses the scan above).
    #[cfg(test)]
    pub(crate) fn referenced_blobs(&self) -> Result<HashSet<String>, StoreError> {
        let mut set = HashSet::new();
        self.for_each_referenced_blob(|b| {
            set.insert(b.to_owned());
        })?;
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Segment;

    fn object(blob: &str) -> ObjectRecord {
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
    fn bulk_puts_commit_like_single_puts() {
        let dir = tempfile::tempdir().unwrap();
        let meta = MetaStore::open(&dir.path().join("m.redb")).unwrap();
        let rec = BucketRecord {
            owner: "o".into(),
            created_ms: 1,
            region: "r".into(),
            versioning: None,
            policy: None,
            acl: None,
            cors: None,
        };
        assert!(matches!(
            meta.put_objects("b", [("k".to_owned(), object("x"))]),
            Err(StoreError::NoSuchBucket)
        ));
        meta.create_bucket("b", &rec).unwrap();
        meta.put_object("b", "k/1", object("old"), None, None)
            .unwrap();
        let dropped = meta
            .put_objects(
                "b",
                (0..5).map(|i| (format!("k/{i}"), object(&format!("blob{i}")))),
            )
            .unwrap();
        // The overwritten record comes back, as from put_object.
        assert_eq!(dropped.len(), 1);
        assert_eq!(dropped[0].segments[0].blob, "old");
        let listed = meta.scan_objects("b", "k/", b"", true, 100).unwrap();
        assert_eq!(listed.len(), 5);
        assert_eq!(listed[1].key, "k/1");
        assert_eq!(listed[1].record, object("blob1"));
        assert_eq!(meta.object("b", "k/4").unwrap(), Some(object("blob4")));
        // Versioned buckets get version rows, as single puts do.
        meta.set_versioning("b", crate::VERSIONING_ENABLED).unwrap();
        let mut v = object("v2");
        v.version_id = "00000000000000000000000000000001".into();
        meta.put_objects("b", [("k/0".to_owned(), v)]).unwrap();
        assert_eq!(
            meta.scan_versions("b", "k/0", "", None, 10).unwrap().len(),
            2
        );
    }

    #[test]
    fn visits_seek_and_stop() {
        let dir = tempfile::tempdir().unwrap();
        let meta = MetaStore::open(&dir.path().join("m.redb")).unwrap();
        let rec = BucketRecord {
            owner: "o".into(),
            created_ms: 1,
            region: "r".into(),
            versioning: None,
            policy: None,
            acl: None,
            cors: None,
        };
        meta.create_bucket("b", &rec).unwrap();
        meta.create_bucket("b2", &rec).unwrap();
        let mut marker = object("m");
        marker.delete_marker = true;
        meta.put_objects(
            "b",
            ["a/1", "a/2", "a/3", "b", "c/1", "c/2", "d"]
                .into_iter()
                .map(|k| (k.to_owned(), object(k)))
                .chain([("c/3".to_owned(), marker)]),
        )
        .unwrap();
        meta.put_object("b2", "a/0", object("other"), None, None)
            .unwrap();
        // Jump past every group ending in '/', stop at "d".
        let mut seen = Vec::new();
        meta.visit_objects("b", "", b"", true, |key, raw| {
            seen.push((key.to_owned(), raw.is_delete_marker()?));
            if key == "d" {
                return Ok(Visit::Stop);
            }
            Ok(match key.find('/') {
                Some(i) => {
                    let mut past = key.as_bytes()[..=i].to_vec();
                    past.push(0xFF);
                    Visit::Seek {
                        from: past,
                        inclusive: true,
                    }
                }
                None => Visit::Next,
            })
        })
        .unwrap();
        let keys: Vec<&str> = seen.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["a/1", "b", "c/1", "d"]);
        // Under a prefix, after a key, with lazily decoded records.
        let mut seen = Vec::new();
        meta.visit_objects("b", "c/", b"c/1", false, |key, raw| {
            seen.push((key.to_owned(), raw.is_delete_marker()?, raw.decode()?.etag));
            Ok(Visit::Next)
        })
        .unwrap();
        assert_eq!(
            seen,
            [
                ("c/2".to_owned(), false, "e".to_owned()),
                ("c/3".to_owned(), true, "e".to_owned())
            ]
        );
        // A start before the prefix is clamped to it; nothing leaks from bucket "b2".
        let mut n = 0;
        meta.visit_objects("b", "a/", b"", true, |_, _| {
            n += 1;
            Ok(Visit::Next)
        })
        .unwrap();
        assert_eq!(n, 3);
    }

    #[test]
    fn buckets_objects_and_scans() {
        let dir = tempfile::tempdir().unwrap();
        let meta = MetaStore::open(&dir.path().join("m.redb")).unwrap();
        let rec = BucketRecord {
            owner: "o".into(),
            created_ms: 1,
            region: "r".into(),
            versioning: None,
            policy: None,
            acl: None,
            cors: None,
        };
        assert!(meta.create_bucket("b", &rec).unwrap().is_none());
        assert!(meta.create_bucket("b", &rec).unwrap().is_some());
        assert!(matches!(
            meta.put_object("nope", "k", object("x"), None, None),
            Err(StoreError::NoSuchBucket)
        ));
        for k in ["a", "a/1", "a/2", "b", "c/x"] {
            meta.put_object("b", k, object(k), None, None).unwrap();
        }
        // a bucket whose name is a prefix of another must not leak into its scans
        meta.create_bucket("bb", &rec).unwrap();
        meta.put_object("bb", "zzz", object("zzz"), None, None)
            .unwrap();
        let keys = |v: Vec<ObjectEntry>| v.into_iter().map(|e| e.key).collect::<Vec<_>>();
        assert_eq!(
            keys(meta.scan_objects("b", "", b"", true, 100).unwrap()),
            ["a", "a/1", "a/2", "b", "c/x"]
        );
        assert_eq!(
            keys(meta.scan_objects("b", "a/", b"", true, 100).unwrap()),
            ["a/1", "a/2"]
        );
        assert_eq!(
            keys(meta.scan_objects("b", "", b"a/1", false, 2).unwrap()),
            ["a/2", "b"]
        );
        assert_eq!(
            meta.delete_bucket("b").unwrap(),
            DeleteBucketOutcome::NotEmpty
        );
        assert_eq!(meta.referenced_blobs().unwrap().len(), 6);
        for k in ["a", "a/1", "a/2", "b", "c/x"] {
            assert_eq!(meta.delete_object("b", k, None).unwrap().dropped.len(), 1);
        }
        assert_eq!(
            meta.delete_bucket("b").unwrap(),
            DeleteBucketOutcome::Deleted {
                orphaned_blobs: vec![]
            }
        );
        assert_eq!(
            meta.delete_bucket("b").unwrap(),
            DeleteBucketOutcome::NoSuchBucket
        );
    }
}
