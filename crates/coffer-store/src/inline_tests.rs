//! Inline blobs through the store's API: where the writer puts a blob, how it reads back, and
//! that every way a version goes away takes its inline bytes with it in the same transaction.

use std::sync::Arc;
use std::time::Duration;

use crate::{
    BlobReader, BucketRecord, ConditionFailure, INLINE_MAX, ObjectRecord, Segment, Store,
    StoreError, StoredBlob, VERSIONING_ENABLED, VERSIONING_SUSPENDED,
};

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_and_recover(dir.path()).unwrap();
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
    (dir, store)
}

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed))
        .collect()
}

/// Writes `bytes` through a blob writer in pieces of `piece` bytes.
fn write_blob(store: &Store, bytes: &[u8], piece: usize) -> StoredBlob {
    let mut w = store.blobs().writer().unwrap();
    for chunk in bytes.chunks(piece.max(1)) {
        w.write_all_blocking(chunk).unwrap();
    }
    assert_eq!(w.written(), bytes.len() as u64);
    w.commit_blocking().unwrap()
}

fn record(blob: &StoredBlob, size: u64, version: &str) -> ObjectRecord {
    ObjectRecord {
        version_id: version.into(),
        size,
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
            blob: blob.id().as_str().to_owned(),
            part_number: 1,
            size,
            stream_salt: None,
            etag: String::new(),
            checksum: None,
            inline: blob.is_inline(),
        }],
        encryption: None,
        delete_marker: false,
        null_version: false,
        upload_id: None,
        acl: None,
        tags: Vec::new(),
    }
}

/// PUTs `bytes` as `key` (version id `version`) the way the object layer does; returns the
/// record as committed and removes the files of what it replaced.
fn put(store: &Store, key: &str, bytes: &[u8], version: &str) -> ObjectRecord {
    let blob = write_blob(store, bytes, 1000);
    let rec = record(&blob, bytes.len() as u64, version);
    let out = store
        .meta()
        .put_object("b", key, rec, blob.into_inline(), None)
        .unwrap();
    for old in &out.dropped {
        store.remove_dropped_blob_files_blocking(old);
    }
    out.written.unwrap()
}

fn read_all(store: &Store, rec: &ObjectRecord) -> std::io::Result<Vec<u8>> {
    let seg = &rec.segments[0];
    let reader = store.open_blob(seg)?;
    let mut buf = vec![0; usize::try_from(seg.size).unwrap()];
    reader.read_exact_at(&mut buf, 0)?;
    Ok(buf)
}

/// The GC's count of inline references (each version once) against inline blobs.
fn assert_census(store: &Store, want: u64) {
    let census = store.meta().for_each_referenced_blob(|_| {}).unwrap();
    assert_eq!((census.references, census.stored), (want, want));
}

fn tmp_files(dir: &tempfile::TempDir) -> usize {
    std::fs::read_dir(dir.path().join("tmp")).unwrap().count()
}

fn blob_files(dir: &tempfile::TempDir) -> usize {
    std::fs::read_dir(dir.path().join("blobs"))
        .unwrap()
        .map(|d| std::fs::read_dir(d.unwrap().path()).unwrap().count())
        .sum()
}

#[test]
fn the_writer_keeps_blobs_up_to_the_limit_and_spills_larger_ones() {
    let (dir, store) = store();
    for (len, piece) in [
        (0, 1),
        (1, 1),
        (INLINE_MAX, 1000),
        (INLINE_MAX, INLINE_MAX),
        (INLINE_MAX + 1, 1000),
        (INLINE_MAX + 1, INLINE_MAX + 1),
        (3 * INLINE_MAX + 5, 4096),
    ] {
        let bytes = data(len, 7);
        let blob = write_blob(&store, &bytes, piece);
        assert_eq!(blob.is_inline(), len <= INLINE_MAX, "{len} bytes");
        match blob {
            StoredBlob::Inline(b) => assert!(b.bytes == bytes, "{len} bytes"),
            StoredBlob::File(id) => {
                assert!(std::fs::read(store.blobs().path_of(&id)).unwrap() == bytes);
            }
        }
        assert_eq!(tmp_files(&dir), 0, "{len} bytes: a temp file was left");
    }
    // An inline-sized blob never touched the disk; a spilled one that is dropped leaves nothing.
    let mut w = store.blobs().writer().unwrap();
    w.write_all_blocking(&data(100, 1)).unwrap();
    assert_eq!(tmp_files(&dir), 0);
    w.write_all_blocking(&data(INLINE_MAX, 2)).unwrap();
    assert_eq!(tmp_files(&dir), 1, "over the limit: spilled to a temp file");
    drop(w);
    assert_eq!(tmp_files(&dir), 0);
    // Multipart parts are always files, whatever their size.
    let mut w = store.blobs().create_blocking().unwrap();
    w.write_all_blocking(b"tiny").unwrap();
    assert!(!w.commit_blocking().unwrap().is_inline());
}

#[test]
fn inline_objects_read_back_whole_and_in_ranges() {
    let (dir, store) = store();
    let bytes = data(INLINE_MAX, 3);
    let rec = put(&store, "k", &bytes, "v1");
    assert!(rec.segments[0].inline);
    assert_eq!(blob_files(&dir), 0, "an inline object made a blob file");
    assert!(read_all(&store, &rec).unwrap() == bytes);
    let reader = store.open_blob(&rec.segments[0]).unwrap();
    assert!(matches!(reader, BlobReader::Inline(_)));
    for (pos, len) in [(0, 1), (1, 100), (INLINE_MAX - 1, 1), (5000, 4096)] {
        let mut buf = vec![0; len];
        reader.read_exact_at(&mut buf, pos as u64).unwrap();
        assert!(buf == bytes[pos..pos + len], "{pos}+{len}");
    }
    let mut past = vec![0; 2];
    let e = reader
        .read_exact_at(&mut past, INLINE_MAX as u64 - 1)
        .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
    let e = reader.read_exact_at(&mut past, u64::MAX).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
    // One above the limit is a file.
    let big = data(INLINE_MAX + 1, 4);
    let rec = put(&store, "big", &big, "v2");
    assert!(!rec.segments[0].inline);
    assert_eq!(blob_files(&dir), 1);
    assert!(read_all(&store, &rec).unwrap() == big);
    assert_eq!(store.meta().inline_blob_count().unwrap(), 1);
}

#[test]
fn overwrite_and_delete_free_inline_bytes_in_the_same_transaction() {
    let (dir, store) = store();
    let meta = store.meta();
    let first = put(&store, "k", b"first", "v1");
    let second = put(&store, "k", b"second", "v2");
    assert_eq!(meta.inline_blob_count().unwrap(), 1);
    let gone = store.open_blob(&first.segments[0]).unwrap_err();
    assert_eq!(gone.kind(), std::io::ErrorKind::NotFound);
    assert_eq!(read_all(&store, &second).unwrap(), b"second");
    // Inline replaced by a file, and back.
    let file = put(&store, "k", &data(INLINE_MAX * 2, 5), "v3");
    assert_eq!(meta.inline_blob_count().unwrap(), 0);
    assert_eq!(blob_files(&dir), 1);
    let again = put(&store, "k", b"small again", "v4");
    assert_eq!(meta.inline_blob_count().unwrap(), 1);
    assert_eq!(blob_files(&dir), 0, "the replaced file was not removed");
    assert!(store.open_blob(&file.segments[0]).is_err());
    // Delete.
    let out = meta.delete_object("b", "k", None).unwrap();
    assert_eq!(out.dropped, vec![again]);
    assert_eq!(meta.inline_blob_count().unwrap(), 0);
    // A conditional write that is refused writes no inline bytes.
    let blob = write_blob(&store, b"refused", 10);
    let rec = record(&blob, 7, "v5");
    let refuse: crate::SharedWriteCondition =
        Arc::new(|_| Err(ConditionFailure::PreconditionFailed));
    assert!(matches!(
        meta.put_object("b", "k", rec, blob.into_inline(), Some(refuse)),
        Err(StoreError::Condition(_))
    ));
    assert_eq!(meta.inline_blob_count().unwrap(), 0);
    assert!(meta.object("b", "k").unwrap().is_none());
}

#[test]
fn versions_keep_their_inline_bytes_until_they_are_deleted() {
    let (_dir, store) = store();
    let meta = store.meta();
    let null = put(
        &store,
        "k",
        b"null version",
        "00000000000000000000000000000001",
    );
    meta.set_versioning("b", VERSIONING_ENABLED).unwrap();
    let v2 = put(
        &store,
        "k",
        b"version 2",
        "00000000000000000000000000000002",
    );
    let v3 = put(
        &store,
        "k",
        b"version 3",
        "00000000000000000000000000000003",
    );
    assert_eq!(meta.inline_blob_count().unwrap(), 3);
    // A delete marker hides, frees nothing.
    let marker = ObjectRecord {
        delete_marker: true,
        segments: vec![],
        ..record(
            &write_blob(&store, b"", 1),
            0,
            "00000000000000000000000000000004",
        )
    };
    meta.delete_object("b", "k", Some(marker)).unwrap();
    assert_eq!(meta.inline_blob_count().unwrap(), 3);
    assert_census(&store, 3);
    assert_eq!(
        store
            .collect_garbage(Duration::ZERO)
            .unwrap()
            .removed_inline,
        0
    );
    for (rec, want) in [
        (&null, &b"null version"[..]),
        (&v2, b"version 2"),
        (&v3, b"version 3"),
    ] {
        let stored = meta
            .object_version("b", "k", &rec.version_id)
            .unwrap()
            .unwrap();
        assert_eq!(read_all(&store, &stored).unwrap(), want);
    }
    // Deleting a version frees its bytes, and only its.
    let removed = meta.delete_version("b", "k", &v2.version_id).unwrap();
    assert_eq!(removed.as_ref(), Some(&v2));
    assert_eq!(meta.inline_blob_count().unwrap(), 2);
    assert!(store.open_blob(&v2.segments[0]).is_err());
    assert_eq!(read_all(&store, &v3).unwrap(), b"version 3");
    // Suspended: a new null version replaces the old one, whose bytes go.
    meta.set_versioning("b", VERSIONING_SUSPENDED).unwrap();
    let null2 = put(
        &store,
        "k",
        b"null again",
        "00000000000000000000000000000005",
    );
    assert!(null2.null_version);
    assert_eq!(meta.inline_blob_count().unwrap(), 2);
    assert_census(&store, 2);
    assert!(store.open_blob(&null.segments[0]).is_err());
    meta.delete_version("b", "k", "null").unwrap();
    meta.delete_version("b", "k", &v3.version_id).unwrap();
    assert_eq!(meta.inline_blob_count().unwrap(), 0);
    assert_eq!(
        store
            .collect_garbage(Duration::ZERO)
            .unwrap()
            .removed_inline,
        0
    );
}

#[test]
fn a_record_and_its_inline_bytes_commit_together_or_not_at_all() {
    let (_dir, store) = store();
    let meta = store.meta();
    // A record that says inline, without its bytes.
    let blob = write_blob(&store, b"abc", 3);
    let rec = record(&blob, 3, "v1");
    assert!(matches!(
        meta.put_object("b", "k", rec.clone(), None, None),
        Err(StoreError::Corrupt(_))
    ));
    // Bytes for a record that names a file, or another blob.
    let mut as_file = rec.clone();
    as_file.segments[0].inline = false;
    let inline = blob.into_inline();
    assert!(matches!(
        meta.put_object("b", "k", as_file, inline.clone(), None),
        Err(StoreError::Corrupt(_))
    ));
    let other = write_blob(&store, b"xyz", 3).into_inline();
    assert!(matches!(
        meta.put_object("b", "k", rec.clone(), other, None),
        Err(StoreError::Corrupt(_))
    ));
    assert!(meta.object("b", "k").unwrap().is_none());
    assert_eq!(meta.inline_blob_count().unwrap(), 0);
    meta.put_object("b", "k", rec, inline, None).unwrap();
    assert_eq!(meta.inline_blob_count().unwrap(), 1);
}

#[test]
fn gc_removes_only_unreferenced_inline_blobs() {
    let (_dir, store) = store();
    let kept = put(&store, "k", b"kept", "v1");
    // An orphan, as a bug might leave one.
    let orphan = write_blob(&store, b"orphan", 6).into_inline().unwrap();
    let id = orphan.id.as_str().to_owned();
    store
        .meta()
        .write(move |txn| crate::inline::insert(txn, &orphan))
        .unwrap();
    assert_eq!(store.meta().inline_blob_count().unwrap(), 2);
    let census = store.meta().for_each_referenced_blob(|_| {}).unwrap();
    assert_eq!((census.references, census.stored), (1, 2));
    let report = store.collect_garbage(Duration::from_secs(3600)).unwrap();
    assert_eq!(report.removed_inline, 1);
    assert_eq!(store.meta().inline_blob(&id).unwrap(), None);
    assert_eq!(read_all(&store, &kept).unwrap(), b"kept");
    // A record copied between tables (versioning turned on) is still one reference.
    store
        .meta()
        .set_versioning("b", VERSIONING_ENABLED)
        .unwrap();
    assert_eq!(
        store
            .collect_garbage(Duration::ZERO)
            .unwrap()
            .removed_inline,
        0
    );
    assert_eq!(read_all(&store, &kept).unwrap(), b"kept");
}
