//! Inline blobs: the bytes of small blobs (see [`crate::INLINE_MAX`]) kept in the metadata store,
//! in a table of their own keyed by blob id, so that records stay small and listings never read
//! object data.
//!
//! Inline bytes have exactly one owner, the object version whose segment names them, and they
//! change hands only inside the transactions that change that version:
//! - they are inserted by the transaction that commits the version's record;
//! - they are removed by the transaction that drops the version (overwrite without versioning,
//!   replacement of a null version, delete, delete of that version id).
//!
//! So a crash cannot leave an orphan or a dangling reference, and a GC pass only has to check
//! that this still holds (a count, in the snapshot it reads the records from anyway) and clean
//! up should a bug ever break it.

use std::collections::HashMap;

use redb::{
    ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction,
};

use crate::meta::{BUCKETS, OBJECTS, PARTS, VERSIONS};
use crate::records::{BlobRef, SegmentRefs, decode, decode_borrowed};
use crate::{BucketRecord, InlineBlob, MetaStore, ObjectRecord, StoreError};

/// Key: blob id (32 lowercase hex digits, as in segments). Value: the stored bytes.
pub(crate) const INLINE: TableDefinition<&str, &[u8]> = TableDefinition::new("inline_blobs");

/// Checks that `record` names `blob` as its one inline segment (and nothing else inline):
/// inline bytes without their record, or a record without its bytes, must never be committed.
pub(crate) fn check_owner(
    record: &ObjectRecord,
    blob: Option<&InlineBlob>,
) -> Result<(), StoreError> {
    let mut inline = record.segments.iter().filter(|s| s.inline);
    let consistent = match (inline.next(), inline.next(), blob) {
        (None, _, None) => true,
        (Some(seg), None, Some(blob)) => seg.blob == blob.id.as_str(),
        _ => false,
    };
    if consistent {
        Ok(())
    } else {
        Err(StoreError::Corrupt(
            "an object record and its inline data disagree".into(),
        ))
    }
}

pub(crate) fn insert(txn: &WriteTransaction, blob: &InlineBlob) -> Result<(), StoreError> {
    let mut table = txn.open_table(INLINE)?;
    if table
        .insert(blob.id.as_str(), blob.bytes.as_slice())?
        .is_some()
    {
        return Err(StoreError::Corrupt(format!(
            "inline blob {} written twice",
            blob.id.as_str()
        )));
    }
    Ok(())
}

/// Removes the inline bytes of versions that no longer exist, except any that `kept` (the
/// version written in their place) still names.
pub(crate) fn free_dropped(
    txn: &WriteTransaction,
    dropped: &[ObjectRecord],
    kept: Option<&ObjectRecord>,
) -> Result<(), StoreError> {
    let mut table = None;
    for seg in dropped
        .iter()
        .flat_map(|r| &r.segments)
        .filter(|s| s.inline)
    {
        if kept.is_some_and(|k| k.segments.iter().any(|s| s.blob == seg.blob)) {
            continue;
        }
        if table.is_none() {
            table = Some(txn.open_table(INLINE)?);
        }
        if let Some(t) = table.as_mut() {
            t.remove(seg.blob.as_str())?;
        }
    }
    Ok(())
}

impl MetaStore {
    /// The bytes of an inline blob, `None` if there is no such blob (any more).
    pub fn inline_blob(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(INLINE)?;
        Ok(table.get(id)?.map(|v| v.value().to_vec()))
    }

    /// Replaces the bytes of an existing inline blob: for tests that tamper with stored data.
    #[cfg(any(test, feature = "test-util"))]
    pub fn tamper_inline_blob_for_tests(&self, id: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.write(move |txn| {
            let mut table = txn.open_table(INLINE)?;
            if table.get(id.as_str())?.is_none() {
                return Err(StoreError::Corrupt("no such inline blob".into()));
            }
            table.insert(id.as_str(), bytes.as_slice())?;
            Ok(())
        })
    }

    /// How many inline blobs the store holds.
    pub fn inline_blob_count(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read()?;
        Ok(txn.open_table(INLINE)?.len()?)
    }

    /// Removes inline blobs that no record references. There should never be any (see the
    /// module comment): the check is a count of references against the table's length, in
    /// one snapshot, reading records but not the inline bytes. Only on a mismatch are the
    /// unreferenced ids listed and removed. Returns how many were removed.
    pub fn remove_inline_orphans(&self) -> Result<usize, StoreError> {
        let txn = self.db.begin_read()?;
        let stored = txn.open_table(INLINE)?.len()?;
        if inline_references(&txn, None)? == stored {
            return Ok(0);
        }
        let mut referenced = Vec::new();
        inline_references(&txn, Some(&mut referenced))?;
        referenced.sort_unstable();
        let mut orphans = Vec::new();
        for item in txn.open_table(INLINE)?.iter()? {
            let (k, _) = item?;
            if referenced
                .binary_search_by(|r| r.as_str().cmp(k.value()))
                .is_err()
            {
                orphans.push(k.value().to_owned());
            }
        }
        drop(txn);
        if orphans.is_empty() {
            // References without their bytes: nothing a GC can repair.
            tracing::warn!(
                stored,
                "inline blob references outnumber inline blobs: some objects lost their data"
            );
            return Ok(0);
        }
        let n = orphans.len();
        tracing::warn!(
            orphans = n,
            "removing inline blobs that no record references"
        );
        // Unreferenced in that snapshot means unreferenced for good: a write that makes a record
        // name existing inline bytes (key rotation, a metadata change, versioning turned on)
        // copies the name from a record that already names them.
        self.write(move |txn| {
            let mut table = txn.open_table(INLINE)?;
            for id in &orphans {
                table.remove(id.as_str())?;
            }
            Ok(())
        })?;
        Ok(n)
    }
}

/// Counts the inline segments of every object version, each once (and collects their ids).
fn inline_references(
    txn: &redb::ReadTransaction,
    mut collect: Option<&mut Vec<String>>,
) -> Result<u64, StoreError> {
    let mut n = 0u64;
    visit_references(txn, |blob, inline, owner| {
        if inline && owner {
            n += 1;
            if let Some(ids) = collect.as_deref_mut() {
                ids.push(blob.to_owned());
            }
        }
    })?;
    Ok(n)
}

/// Walks every blob reference of every record (objects, versions, parts) in one snapshot:
/// `visit(blob, inline, owner)`. A bucket that has had versioning keeps every version in
/// VERSIONS and a copy of the current one in OBJECTS; `owner` is true for exactly one of the
/// records of each version (the one in VERSIONS then, else the one in OBJECTS; parts always).
pub(crate) fn visit_references(
    txn: &redb::ReadTransaction,
    mut visit: impl FnMut(&str, bool, bool),
) -> Result<(), StoreError> {
    let mut versioned: HashMap<String, bool> = HashMap::new();
    for item in txn.open_table(BUCKETS)?.iter()? {
        let (k, v) = item?;
        let rec: BucketRecord = decode(v.value())?;
        versioned.insert(k.value().to_owned(), rec.versioning.is_some());
    }
    for item in txn.open_table(VERSIONS)?.iter()? {
        let (_, v) = item?;
        let refs: SegmentRefs<'_> = decode_borrowed(v.value())?;
        for seg in &refs.segments {
            visit(seg.blob, seg.inline, true);
        }
    }
    // OBJECTS is ordered by bucket, so the bucket of the previous key usually answers.
    let mut last: Option<(Vec<u8>, bool)> = None;
    for item in txn.open_table(OBJECTS)?.iter()? {
        let (k, v) = item?;
        let k = k.value();
        let bucket = &k[..k.iter().position(|b| *b == 0).unwrap_or(k.len())];
        let owner = match &last {
            Some((b, owner)) if b.as_slice() == bucket => *owner,
            _ => {
                let name = String::from_utf8_lossy(bucket);
                let owner = !versioned.get(name.as_ref()).copied().unwrap_or(false);
                last = Some((bucket.to_vec(), owner));
                owner
            }
        };
        let refs: SegmentRefs<'_> = decode_borrowed(v.value())?;
        for seg in &refs.segments {
            visit(seg.blob, seg.inline, owner);
        }
    }
    for item in txn.open_table(PARTS)?.iter()? {
        let (_, v) = item?;
        let part: BlobRef<'_> = decode_borrowed(v.value())?;
        visit(part.blob, part.inline, true);
    }
    Ok(())
}
