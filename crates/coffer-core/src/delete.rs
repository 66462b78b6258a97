//! DeleteObject. Deleting a missing key succeeds, as in S3. In a versioned bucket a delete
//! without a version id adds a delete marker; with one, it removes that version for good.

use coffer_store::ObjectRecord;

use crate::{Coffer, CoreError, new_version_id, now_ms};

#[derive(Debug, Clone, Default)]
pub struct DeleteOutcome {
    /// The version id to report (`x-amz-version-id`), if any.
    pub version_id: Option<String>,
    /// True when a delete marker was created or removed.
    pub delete_marker: bool,
}

fn delete_marker_record() -> Result<ObjectRecord, CoreError> {
    Ok(ObjectRecord {
        version_id: new_version_id()?,
        size: 0,
        etag: String::new(),
        last_modified_ms: now_ms(),
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
        delete_marker: true,
        null_version: false,
        upload_id: None,
        acl: None,
        tags: Vec::new(),
    })
}

impl Coffer {
    pub async fn delete_object(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<DeleteOutcome, CoreError> {
        if self.store().meta().bucket(bucket)?.is_none() {
            return Err(CoreError::NoSuchBucket);
        }
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        match version_id {
            Some(v) => {
                let v = v.to_owned();
                self.blocking(move |store| {
                    let removed = store.meta().delete_version(&bucket, &key, &v)?;
                    let delete_marker = removed.as_ref().is_some_and(|r| r.delete_marker);
                    if let Some(old) = &removed {
                        crate::object_write::remove_blobs(store, old);
                    }
                    Ok(DeleteOutcome {
                        version_id: Some(v),
                        delete_marker,
                    })
                })
                .await
            }
            None => {
                let marker = delete_marker_record()?;
                self.blocking(move |store| {
                    let outcome = store.meta().delete_object(&bucket, &key, Some(marker))?;
                    for old in &outcome.dropped {
                        crate::object_write::remove_blobs(store, old);
                    }
                    Ok(match outcome.written.filter(|_| outcome.versioned) {
                        Some(m) => DeleteOutcome {
                            version_id: Some(m.exposed_version_id().to_owned()),
                            delete_marker: true,
                        },
                        None => DeleteOutcome::default(),
                    })
                })
                .await
            }
        }
    }
}
