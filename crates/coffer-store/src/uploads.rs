//! Multipart uploads in the metadata store: the upload record, its parts, and the one
//! transaction that turns them into an object at Complete.

use std::ops::Bound;

use redb::{ReadableDatabase, ReadableTable};

use crate::meta::{BUCKETS, PARTS, UPLOADS, object_key};
use crate::records::{decode, encode};
use crate::{MetaStore, ObjectRecord, PartRecord, StoreError, UploadRecord};

fn upload_key(bucket: &str, key: &str, upload_id: &str) -> Vec<u8> {
    let mut k = object_key(bucket, key);
    k.push(0);
    k.extend_from_slice(upload_id.as_bytes());
    k
}

fn part_key(upload_id: &str, part_number: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(upload_id.len() + 5);
    k.extend_from_slice(upload_id.as_bytes());
    k.push(0);
    k.extend_from_slice(&part_number.to_be_bytes());
    k
}

/// What Complete leaves for the caller to clean up.
#[derive(Debug, Default)]
pub struct CompletedUpload {
    /// The committed object and the versions it displaced.
    pub write: crate::WriteOutcome,
    /// Blobs of uploaded parts that the completed object does not use.
    pub unused_blobs: Vec<String>,
}

impl MetaStore {
    pub fn create_upload(&self, bucket: &str, record: &UploadRecord) -> Result<(), StoreError> {
        let (bucket, k, value) = (
            bucket.to_owned(),
            upload_key(bucket, &record.key, &record.upload_id),
            encode(record)?,
        );
        self.write(move |txn| {
            if txn.open_table(BUCKETS)?.get(bucket.as_str())?.is_none() {
                return Err(StoreError::NoSuchBucket);
            }
            let mut uploads = txn.open_table(UPLOADS)?;
            uploads.insert(k.as_slice(), value.as_slice())?;
            Ok(())
        })
    }

    pub fn upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<Option<UploadRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(UPLOADS)?;
        match table.get(upload_key(bucket, key, upload_id).as_slice())? {
            Some(v) => Ok(Some(decode(v.value())?)),
            None => Ok(None),
        }
    }

    /// Records a part; returns the part it replaced (same number), whose blob is now unused.
    pub fn put_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part: &PartRecord,
    ) -> Result<Option<PartRecord>, StoreError> {
        let (ukey, pkey, value) = (
            upload_key(bucket, key, upload_id),
            part_key(upload_id, part.part_number),
            encode(part)?,
        );
        self.write(move |txn| {
            if txn.open_table(UPLOADS)?.get(ukey.as_slice())?.is_none() {
                return Err(StoreError::NoSuchUpload);
            }
            let mut parts = txn.open_table(PARTS)?;
            let old = parts.insert(pkey.as_slice(), value.as_slice())?;
            match old {
                Some(v) => Ok(Some(decode::<PartRecord>(v.value())?)),
                None => Ok(None),
            }
        })
    }

    /// Parts of an upload with numbers above `after`, at most `limit`, in order.
    pub fn parts(
        &self,
        upload_id: &str,
        after: u32,
        limit: usize,
    ) -> Result<Vec<PartRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(PARTS)?;
        let lower = part_key(upload_id, after);
        let upper = part_key(upload_id, u32::MAX);
        let mut out = Vec::new();
        for item in table.range((
            Bound::Excluded(lower.as_slice()),
            Bound::Included(upper.as_slice()),
        ))? {
            if out.len() >= limit {
                break;
            }
            let (_, v) = item?;
            out.push(decode(v.value())?);
        }
        Ok(out)
    }

    /// Removes an upload and its parts; returns the parts' blobs.
    pub fn abort_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<Vec<String>, StoreError> {
        let (ukey, upload_id) = (upload_key(bucket, key, upload_id), upload_id.to_owned());
        self.write(move |txn| {
            let mut uploads = txn.open_table(UPLOADS)?;
            if uploads.remove(ukey.as_slice())?.is_none() {
                return Err(StoreError::NoSuchUpload);
            }
            Ok(remove_parts(txn, &upload_id)?
                .into_iter()
                .map(|p| p.blob)
                .collect())
        })
    }

    /// Atomically replaces the upload and its parts by `object`. `used_parts` are the part
    /// numbers the object is made of; the others' blobs are returned for removal.
    pub fn complete_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        object: &ObjectRecord,
        used_parts: &[u32],
        condition: Option<crate::SharedWriteCondition>,
    ) -> Result<CompletedUpload, StoreError> {
        let (bucket, key, upload_id) = (bucket.to_owned(), key.to_owned(), upload_id.to_owned());
        let (object, used_parts) = (object.clone(), used_parts.to_vec());
        self.write(move |txn| {
            if txn.open_table(BUCKETS)?.get(bucket.as_str())?.is_none() {
                return Err(StoreError::NoSuchBucket);
            }
            let mut uploads = txn.open_table(UPLOADS)?;
            if uploads
                .remove(upload_key(&bucket, &key, &upload_id).as_slice())?
                .is_none()
            {
                return Err(StoreError::NoSuchUpload);
            }
            let unused_blobs = remove_parts(txn, &upload_id)?
                .into_iter()
                .filter(|p| !used_parts.contains(&p.part_number))
                .map(|p| p.blob)
                .collect();
            let write = crate::versions::write_current(
                txn,
                &bucket,
                &key,
                object.clone(),
                None,
                condition.as_deref(),
            )?;
            Ok(CompletedUpload {
                write,
                unused_blobs,
            })
        })
    }

    /// Uploads of `bucket` whose keys start with `prefix`, after (`key`, `upload_id`) markers.
    pub fn scan_uploads(
        &self,
        bucket: &str,
        prefix: &str,
        key_marker: &str,
        upload_id_marker: &str,
        limit: usize,
    ) -> Result<Vec<UploadRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(UPLOADS)?;
        let full_prefix = object_key(bucket, prefix);
        let start = if key_marker.is_empty() {
            Bound::Included(full_prefix.clone())
        } else if upload_id_marker.is_empty() {
            // Everything after every upload of key_marker.
            let mut k = object_key(bucket, key_marker);
            k.push(1);
            Bound::Included(k)
        } else {
            Bound::Excluded(upload_key(bucket, key_marker, upload_id_marker))
        };
        let start = crate::meta::clamp_to_prefix(start, &full_prefix);
        let range = crate::meta::open_range(&start);
        let mut out = Vec::new();
        for item in table.range(range)? {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item?;
            if !k.value().starts_with(&full_prefix) {
                break;
            }
            out.push(decode(v.value())?);
        }
        Ok(out)
    }

    /// Every upload initiated before `before_ms` (for expiring abandoned uploads).
    pub fn stale_uploads(&self, before_ms: i64) -> Result<Vec<(String, UploadRecord)>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(UPLOADS)?;
        let mut out = Vec::new();
        for item in table.iter()? {
            let (k, v) = item?;
            let record: UploadRecord = decode(v.value())?;
            if record.initiated_ms < before_ms {
                let bucket_end = k.value().iter().position(|b| *b == 0).unwrap_or(0);
                let bucket = String::from_utf8_lossy(&k.value()[..bucket_end]).into_owned();
                out.push((bucket, record));
            }
        }
        Ok(out)
    }
}

pub(crate) fn remove_parts(
    txn: &redb::WriteTransaction,
    upload_id: &str,
) -> Result<Vec<PartRecord>, StoreError> {
    let mut parts = txn.open_table(PARTS)?;
    let lower = part_key(upload_id, 0);
    let upper = part_key(upload_id, u32::MAX);
    let mut removed = Vec::new();
    let keys: Vec<Vec<u8>> = {
        let mut keys = Vec::new();
        for item in parts.range(lower.as_slice()..=upper.as_slice())? {
            let (k, v) = item?;
            removed.push(decode::<PartRecord>(v.value())?);
            keys.push(k.value().to_vec());
        }
        keys
    };
    for k in keys {
        parts.remove(k.as_slice())?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BucketRecord;

    fn upload(id: &str, key: &str) -> UploadRecord {
        UploadRecord {
            upload_id: id.into(),
            key: key.into(),
            owner: "o".into(),
            initiated_ms: 5,
            content_type: None,
            content_encoding: None,
            content_disposition: None,
            content_language: None,
            cache_control: None,
            expires: None,
            user_metadata: vec![],
            checksum_algorithm: None,
            acl: None,
            tags: Vec::new(),
            encryption: None,
        }
    }

    fn part(n: u32, blob: &str) -> PartRecord {
        PartRecord {
            part_number: n,
            size: 1,
            etag: "e".into(),
            blob: blob.into(),
            last_modified_ms: 0,
            stream_salt: None,
            checksum: None,
        }
    }

    #[test]
    fn upload_lifecycle() {
        let dir = tempfile::tempdir().unwrap();
        let meta = MetaStore::open(&dir.path().join("m.redb")).unwrap();
        let b = BucketRecord {
            owner: "o".into(),
            created_ms: 0,
            region: "r".into(),
            versioning: None,
            policy: None,
            acl: None,
            cors: None,
        };
        meta.create_bucket("b", &b).unwrap();
        meta.create_upload("b", &upload("u1", "k")).unwrap();
        meta.create_upload("b", &upload("u2", "k")).unwrap();
        meta.create_upload("b", &upload("u3", "z")).unwrap();
        assert!(matches!(
            meta.put_part("b", "k", "nope", &part(1, "x")),
            Err(StoreError::NoSuchUpload)
        ));
        assert!(
            meta.put_part("b", "k", "u1", &part(1, "a"))
                .unwrap()
                .is_none()
        );
        assert_eq!(
            meta.put_part("b", "k", "u1", &part(1, "b"))
                .unwrap()
                .unwrap()
                .blob,
            "a"
        );
        meta.put_part("b", "k", "u1", &part(2, "c")).unwrap();
        meta.put_part("b", "k", "u1", &part(3, "d")).unwrap();
        let nums: Vec<u32> = meta
            .parts("u1", 0, 100)
            .unwrap()
            .iter()
            .map(|p| p.part_number)
            .collect();
        assert_eq!(nums, [1, 2, 3]);
        assert_eq!(meta.parts("u1", 1, 1).unwrap()[0].part_number, 2);
        assert_eq!(meta.referenced_blobs().unwrap().len(), 3);

        let ids = |v: Vec<UploadRecord>| v.into_iter().map(|u| u.upload_id).collect::<Vec<_>>();
        assert_eq!(
            ids(meta.scan_uploads("b", "", "", "", 10).unwrap()),
            ["u1", "u2", "u3"]
        );
        assert_eq!(
            ids(meta.scan_uploads("b", "", "k", "", 10).unwrap()),
            ["u3"]
        );
        assert_eq!(
            ids(meta.scan_uploads("b", "", "k", "u1", 10).unwrap()),
            ["u2", "u3"]
        );
        assert_eq!(
            ids(meta.scan_uploads("b", "z", "", "", 10).unwrap()),
            ["u3"]
        );

        let object = ObjectRecord {
            version_id: "v".into(),
            size: 2,
            etag: "e-2".into(),
            last_modified_ms: 0,
            content_type: None,
            content_encoding: None,
            content_disposition: None,
            content_language: None,
            cache_control: None,
            expires: None,
            user_metadata: vec![],
            checksum: None,
            segments: vec![],
            encryption: None,
            delete_marker: false,
            null_version: false,
            upload_id: None,
            acl: None,
            tags: Vec::new(),
        };
        let done = meta
            .complete_upload("b", "k", "u1", &object, &[1, 3], None)
            .unwrap();
        assert_eq!(done.unused_blobs, ["c"]);
        assert!(meta.parts("u1", 0, 100).unwrap().is_empty());
        assert!(meta.object("b", "k").unwrap().is_some());
        assert!(matches!(
            meta.complete_upload("b", "k", "u1", &object, &[], None),
            Err(StoreError::NoSuchUpload)
        ));
        assert!(meta.abort_upload("b", "k", "u2").unwrap().is_empty());
        assert_eq!(meta.stale_uploads(10).unwrap().len(), 1);
    }
}
