//! Object writes and deletes under the three versioning states of a bucket, each in one
//! transaction:
//! - never versioned: the `objects` table holds the one (null) version of each key;
//! - Enabled: every write adds a version; deletes add delete markers;
//! - Suspended: writes and deletes replace the key's null version.
//!
//! Buckets that have had versioning keep every version in `versions` (newest first per key)
//! and the current one also in `objects`, so plain listings never look at history.

use std::ops::Bound;
use std::sync::Arc;

use redb::{ReadableDatabase, ReadableTable, WriteTransaction};

use crate::meta::{BUCKETS, OBJECTS, VERSIONS, object_key};
use crate::records::{decode, encode};
use crate::{BucketRecord, InlineBlob, MetaStore, ObjectRecord, StoreError, inline};

pub const VERSIONING_ENABLED: &str = "Enabled";
pub const VERSIONING_SUSPENDED: &str = "Suspended";

/// The key of one version: bucket, 0, key, 0, inverted version id bytes (newest first).
fn version_key(bucket: &str, key: &str, version_id: &str) -> Vec<u8> {
    let mut k = object_key(bucket, key);
    k.push(0);
    k.extend(version_sort_bytes(version_id));
    k
}

fn version_sort_bytes(version_id: &str) -> Vec<u8> {
    match hex::decode(version_id) {
        Ok(raw) => raw.into_iter().map(|b| !b).collect(),
        // Not one of our ids: still unique and stable, sorted after ours.
        Err(_) => version_id.bytes().collect(),
    }
}

fn key_versions_prefix(bucket: &str, key: &str) -> Vec<u8> {
    let mut k = object_key(bucket, key);
    k.push(0);
    k
}

/// Why a conditional write was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionFailure {
    PreconditionFailed,
    NoSuchKey,
}

/// A check of the current version (`None` when there is none) made inside the write's
/// transaction, for `If-Match` / `If-None-Match` on writes.
pub type WriteCondition =
    dyn Fn(Option<&ObjectRecord>) -> Result<(), ConditionFailure> + Send + Sync;

/// A write condition as the store's write methods take it (shared: a write may be replayed).
pub type SharedWriteCondition = Arc<WriteCondition>;

/// What a write or delete left behind.
#[derive(Debug, Default)]
pub struct WriteOutcome {
    /// Versions that no longer exist; their blobs may be removed.
    pub dropped: Vec<ObjectRecord>,
    /// The record as committed (its `null_version` set by the bucket's state).
    pub written: Option<ObjectRecord>,
    /// Whether the bucket has versioning (so version ids are shown to clients).
    pub versioned: bool,
}

fn bucket_record(txn: &WriteTransaction, bucket: &str) -> Result<BucketRecord, StoreError> {
    let table = txn.open_table(BUCKETS)?;
    let v = table.get(bucket)?.ok_or(StoreError::NoSuchBucket)?;
    decode(v.value())
}

/// Finds the null version of a key among its versions.
fn find_null_version(
    txn: &WriteTransaction,
    bucket: &str,
    key: &str,
) -> Result<Option<ObjectRecord>, StoreError> {
    let versions = txn.open_table(VERSIONS)?;
    find_null_in(&versions, bucket, key)
}

/// Version ids sort newest first, and "newest" must mean "committed last": a version id taken
/// when a request started may be older than one committed meanwhile (or share its
/// millisecond). So, inside the committing transaction, the id is raised above the key's
/// newest version if needed. (SSE-C keys stay bound to the id they were sealed with, kept in
/// the encryption record.)
fn commit_ordered_id<T: ReadableTable<&'static [u8], &'static [u8]>>(
    versions: &T,
    bucket: &str,
    key: &str,
    proposed: &str,
) -> Result<String, StoreError> {
    let Ok(mut id) = u128::from_str_radix(proposed, 16) else {
        return Ok(proposed.to_owned());
    };
    let prefix = key_versions_prefix(bucket, key);
    if let Some(item) = versions.range(prefix.as_slice()..)?.next() {
        let (k, v) = item?;
        if k.value().starts_with(&prefix) {
            let newest: ObjectRecord = decode(v.value())?;
            if let Ok(n) = u128::from_str_radix(&newest.version_id, 16)
                && id <= n
            {
                id = n.saturating_add(1);
            }
        }
    }
    Ok(format!("{id:032x}"))
}

fn read_version(
    txn: &WriteTransaction,
    bucket: &str,
    key: &str,
    version_id: &str,
) -> Result<Option<ObjectRecord>, StoreError> {
    let versions = txn.open_table(VERSIONS)?;
    let guard = versions.get(version_key(bucket, key, version_id).as_slice())?;
    guard.map(|v| decode::<ObjectRecord>(v.value())).transpose()
}

fn find_null_in<T: ReadableTable<&'static [u8], &'static [u8]>>(
    versions: &T,
    bucket: &str,
    key: &str,
) -> Result<Option<ObjectRecord>, StoreError> {
    let prefix = key_versions_prefix(bucket, key);
    for item in versions.range(prefix.as_slice()..)? {
        let (k, v) = item?;
        if !k.value().starts_with(&prefix) {
            break;
        }
        let rec: ObjectRecord = decode(v.value())?;
        if rec.null_version {
            return Ok(Some(rec));
        }
    }
    Ok(None)
}

/// Makes `record` the current version of `bucket/key` under the bucket's versioning state,
/// with `data` (the inline bytes its segment names, if it has them). The inline bytes of the
/// versions this drops go in the same transaction.
pub(crate) fn write_current(
    txn: &WriteTransaction,
    bucket: &str,
    key: &str,
    mut record: ObjectRecord,
    data: Option<&InlineBlob>,
    condition: Option<&WriteCondition>,
) -> Result<WriteOutcome, StoreError> {
    inline::check_owner(&record, data)?;
    let state = bucket_record(txn, bucket)?.versioning;
    let okey = object_key(bucket, key);
    let mut objects = txn.open_table(OBJECTS)?;
    if let Some(check) = condition {
        // Conditional writes are decided inside the transaction that commits them.
        let current = match objects.get(okey.as_slice())? {
            Some(v) => Some(decode::<ObjectRecord>(v.value())?),
            None => None,
        };
        check(current.as_ref().filter(|c| !c.delete_marker)).map_err(StoreError::Condition)?;
    }
    let mut outcome = WriteOutcome::default();
    match state.as_deref() {
        None => {
            record.null_version = false;
            let old = objects.insert(okey.as_slice(), encode(&record)?.as_slice())?;
            if let Some(v) = old {
                outcome.dropped.push(decode(v.value())?);
            }
        }
        Some(s) => {
            outcome.versioned = true;
            record.null_version = s == VERSIONING_SUSPENDED;
            let mut versions = txn.open_table(VERSIONS)?;
            record.version_id = commit_ordered_id(&versions, bucket, key, &record.version_id)?;
            if record.null_version
                && let Some(old_null) = find_null_in(&versions, bucket, key)?
            {
                versions.remove(version_key(bucket, key, &old_null.version_id).as_slice())?;
                outcome.dropped.push(old_null);
            }
            versions.insert(
                version_key(bucket, key, &record.version_id).as_slice(),
                encode(&record)?.as_slice(),
            )?;
            objects.insert(okey.as_slice(), encode(&record)?.as_slice())?;
        }
    }
    drop(objects);
    if let Some(blob) = data {
        inline::insert(txn, blob)?;
    }
    inline::free_dropped(txn, &outcome.dropped, Some(&record))?;
    outcome.written = Some(record);
    Ok(outcome)
}

impl MetaStore {
    /// Commits `record` as the current version of `bucket/key`, and with it `data`, the inline
    /// bytes its segment names (when the blob is inline rather than a file), in one transaction.
    pub fn put_object(
        &self,
        bucket: &str,
        key: &str,
        record: ObjectRecord,
        data: Option<InlineBlob>,
        condition: Option<SharedWriteCondition>,
    ) -> Result<WriteOutcome, StoreError> {
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        self.write(move |txn| {
            write_current(
                txn,
                &bucket,
                &key,
                record.clone(),
                data.as_ref(),
                condition.as_deref(),
            )
        })
    }

    /// Commits many records at once, each exactly as [`put_object`](Self::put_object) would
    /// (same encoding, same versioning rules), in one transaction and one fsync: for bulk loads
    /// such as `coffer dev populate`. Returns the versions the writes replaced (their blobs are
    /// the caller's to remove).
    pub fn put_objects(
        &self,
        bucket: &str,
        objects: impl IntoIterator<Item = (String, ObjectRecord)>,
    ) -> Result<Vec<ObjectRecord>, StoreError> {
        let bucket = bucket.to_owned();
        let objects: Vec<(String, ObjectRecord)> = objects.into_iter().collect();
        self.write(move |txn| {
            let mut dropped = Vec::new();
            for (key, record) in &objects {
                dropped
                    .extend(write_current(txn, &bucket, key, record.clone(), None, None)?.dropped);
            }
            Ok(dropped)
        })
    }

    /// DELETE without a version id: removes the object in an unversioned bucket, or adds
    /// `marker` (a delete marker record) as the new current version in a versioned one.
    pub fn delete_object(
        &self,
        bucket: &str,
        key: &str,
        marker: Option<ObjectRecord>,
    ) -> Result<WriteOutcome, StoreError> {
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        self.write(move |txn| {
            let state = bucket_record(txn, &bucket)?.versioning;
            match (state, marker.clone()) {
                (Some(_), Some(marker)) => write_current(txn, &bucket, &key, marker, None, None),
                _ => {
                    let mut objects = txn.open_table(OBJECTS)?;
                    let old = objects.remove(object_key(&bucket, &key).as_slice())?;
                    let mut outcome = WriteOutcome::default();
                    if let Some(v) = old {
                        outcome.dropped.push(decode(v.value())?);
                    }
                    inline::free_dropped(txn, &outcome.dropped, None)?;
                    Ok(outcome)
                }
            }
        })
    }

    /// DELETE with a version id: removes that version for good. When it was the current
    /// one, the next newest version (maybe a delete marker) becomes current.
    pub fn delete_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
    ) -> Result<Option<ObjectRecord>, StoreError> {
        let (bucket, key, version_id) = (bucket.to_owned(), key.to_owned(), version_id.to_owned());
        self.write(move |txn| {
            let (bucket, key, version_id) = (bucket.as_str(), key.as_str(), version_id.as_str());
            let state = bucket_record(txn, bucket)?.versioning;
            let okey = object_key(bucket, key);
            let mut objects = txn.open_table(OBJECTS)?;
            let removed = if state.is_none() {
                // Unversioned: only the null version exists.
                let current = match objects.get(okey.as_slice())? {
                    Some(v) => Some(decode::<ObjectRecord>(v.value())?),
                    None => None,
                };
                match current {
                    Some(c) if version_id == "null" || c.version_id == version_id => {
                        objects.remove(okey.as_slice())?;
                        Some(c)
                    }
                    _ => None,
                }
            } else {
                let target = if version_id == "null" {
                    find_null_version(txn, bucket, key)?
                } else {
                    read_version(txn, bucket, key, version_id)?
                };
                match target {
                    None => None,
                    Some(t) => {
                        let mut versions = txn.open_table(VERSIONS)?;
                        versions.remove(version_key(bucket, key, &t.version_id).as_slice())?;
                        let current_id = match objects.get(okey.as_slice())? {
                            Some(v) => Some(decode::<ObjectRecord>(v.value())?.version_id),
                            None => None,
                        };
                        if current_id.as_deref() == Some(t.version_id.as_str()) {
                            let prefix = key_versions_prefix(bucket, key);
                            let next = match versions.range(prefix.as_slice()..)?.next() {
                                Some(item) => {
                                    let (k, v) = item?;
                                    if k.value().starts_with(&prefix) {
                                        Some(v.value().to_vec())
                                    } else {
                                        None
                                    }
                                }
                                None => None,
                            };
                            match next {
                                Some(bytes) => {
                                    objects.insert(okey.as_slice(), bytes.as_slice())?;
                                }
                                None => {
                                    objects.remove(okey.as_slice())?;
                                }
                            }
                        }
                        Some(t)
                    }
                }
            };
            drop(objects);
            inline::free_dropped(txn, removed.as_slice(), None)?;
            Ok(removed)
        })
    }

    /// One version of a key (`"null"` names the null version).
    pub fn object_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
    ) -> Result<Option<ObjectRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let versions = txn.open_table(VERSIONS)?;
        if version_id != "null" {
            if let Some(v) = versions.get(version_key(bucket, key, version_id).as_slice())? {
                return Ok(Some(decode(v.value())?));
            }
        } else {
            let prefix = key_versions_prefix(bucket, key);
            for item in versions.range(prefix.as_slice()..)? {
                let (k, v) = item?;
                if !k.value().starts_with(&prefix) {
                    break;
                }
                let rec: ObjectRecord = decode(v.value())?;
                if rec.null_version {
                    return Ok(Some(rec));
                }
            }
        }
        // Unversioned buckets (and objects written before versioning) live only in `objects`.
        let objects = txn.open_table(OBJECTS)?;
        match objects.get(object_key(bucket, key).as_slice())? {
            Some(v) => {
                let rec: ObjectRecord = decode(v.value())?;
                let matches = if version_id == "null" {
                    rec.null_version || !self.bucket_versioned(bucket)?
                } else {
                    rec.version_id == version_id
                };
                Ok(matches.then_some(rec))
            }
            None => Ok(None),
        }
    }

    fn bucket_versioned(&self, bucket: &str) -> Result<bool, StoreError> {
        Ok(self.bucket(bucket)?.is_some_and(|b| b.versioning.is_some()))
    }

    /// Turns versioning on ("Enabled") or pauses it ("Suspended"). The first time, every
    /// existing object becomes the null version in the version history.
    pub fn set_versioning(&self, bucket: &str, state: &str) -> Result<(), StoreError> {
        let (bucket, state) = (bucket.to_owned(), state.to_owned());
        self.write(move |txn| {
            let bucket = bucket.as_str();
            let mut rec = bucket_record(txn, bucket)?;
            if rec.versioning.is_none() {
                let objects = txn.open_table(OBJECTS)?;
                let mut versions = txn.open_table(VERSIONS)?;
                let prefix = object_key(bucket, "");
                for item in objects.range(prefix.as_slice()..)? {
                    let (k, v) = item?;
                    if !k.value().starts_with(&prefix) {
                        break;
                    }
                    let mut record: ObjectRecord = decode(v.value())?;
                    record.null_version = true;
                    let key = std::str::from_utf8(&k.value()[prefix.len()..])
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                    versions.insert(
                        version_key(bucket, key, &record.version_id).as_slice(),
                        encode(&record)?.as_slice(),
                    )?;
                }
                drop(objects);
                // Rewrite current records with the null flag set.
                let mut objects = txn.open_table(OBJECTS)?;
                let mut updates = Vec::new();
                for item in objects.range(prefix.as_slice()..)? {
                    let (k, v) = item?;
                    if !k.value().starts_with(&prefix) {
                        break;
                    }
                    let mut record: ObjectRecord = decode(v.value())?;
                    record.null_version = true;
                    updates.push((k.value().to_vec(), encode(&record)?));
                }
                for (k, v) in updates {
                    objects.insert(k.as_slice(), v.as_slice())?;
                }
            }
            rec.versioning = Some(state.clone());
            let mut buckets = txn.open_table(BUCKETS)?;
            buckets.insert(bucket, encode(&rec)?.as_slice())?;
            Ok(())
        })
    }

    /// Versions of `bucket` under `prefix` in listing order (key ascending, newest first),
    /// starting after the (`key`, `version_id`) marker, at most `limit`.
    pub fn scan_versions(
        &self,
        bucket: &str,
        prefix: &str,
        after_key: &str,
        after_version: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, ObjectRecord)>, StoreError> {
        let txn = self.db.begin_read()?;
        let versions = txn.open_table(VERSIONS)?;
        let bucket_prefix = object_key(bucket, "");
        let full_prefix = object_key(bucket, prefix);
        let start: Bound<Vec<u8>> = if after_key.is_empty() && after_version.is_none() {
            Bound::Included(full_prefix.clone())
        } else {
            match after_version {
                // After every version of after_key.
                None => {
                    let mut k = key_versions_prefix(bucket, after_key);
                    k.push(0xFF);
                    Bound::Included(k)
                }
                Some(v) => {
                    let id = if v == "null" {
                        self.object_version(bucket, after_key, "null")?
                            .map(|r| r.version_id)
                            .unwrap_or_default()
                    } else {
                        v.to_owned()
                    };
                    Bound::Excluded(version_key(bucket, after_key, &id))
                }
            }
        };
        let start = crate::meta::clamp_to_prefix(start, &full_prefix);
        let range = crate::meta::open_range(&start);
        let mut out = Vec::new();
        for item in versions.range(range)? {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item?;
            let k = k.value();
            if !k.starts_with(&full_prefix) {
                break;
            }
            // bucket \0 key \0 <16 id bytes>: the key is what lies between.
            let rest = &k[bucket_prefix.len()..];
            let key_end = rest.len().saturating_sub(17);
            let key = std::str::from_utf8(&rest[..key_end])
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            out.push((key.to_owned(), decode(v.value())?));
        }
        Ok(out)
    }

    /// Changes the mutable metadata (canned ACL, tags) of one version (`None`: the current one)
    /// in one transaction; `None` if there is no such version or it is a delete marker.
    pub fn update_object_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        change: impl Fn(&mut ObjectRecord) + Send + 'static,
    ) -> Result<Option<ObjectRecord>, StoreError> {
        let Some(target) = (match version_id {
            Some(v) => self.object_version(bucket, key, v)?,
            None => self.object(bucket, key)?,
        }) else {
            return Ok(None);
        };
        if target.delete_marker {
            return Ok(None);
        }
        let mut updated = target.clone();
        change(&mut updated);
        let (okey, vkey) = (
            object_key(bucket, key),
            version_key(bucket, key, &target.version_id),
        );
        let target_version = target.version_id;
        self.write(move |txn| {
            let mut objects = txn.open_table(OBJECTS)?;
            let current = match objects.get(okey.as_slice())? {
                Some(v) => Some(decode::<ObjectRecord>(v.value())?),
                None => None,
            };
            if let Some(mut c) = current
                && c.version_id == target_version
            {
                change(&mut c);
                objects.insert(okey.as_slice(), encode(&c)?.as_slice())?;
            }
            let mut versions = txn.open_table(VERSIONS)?;
            let stored = match versions.get(vkey.as_slice())? {
                Some(v) => Some(decode::<ObjectRecord>(v.value())?),
                None => None,
            };
            if let Some(mut v) = stored {
                change(&mut v);
                versions.insert(vkey.as_slice(), encode(&v)?.as_slice())?;
            }
            Ok(())
        })?;
        Ok(Some(updated))
    }

    /// The current version id of a key (to tell which listed version is the latest).
    pub fn current_version_id(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(self.object(bucket, key)?.map(|r| r.version_id))
    }
}
