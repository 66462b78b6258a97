//! DeleteObject. Deleting a missing key succeeds, as in S3.

use crate::{Coffer, CoreError};

impl Coffer {
    pub async fn delete_object(&self, bucket: &str, key: &str) -> Result<(), CoreError> {
        if self.store().meta().bucket(bucket)?.is_none() {
            return Err(CoreError::NoSuchBucket);
        }
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        self.blocking(move |store| {
            if let Some(old) = store.meta().delete_object(&bucket, &key)? {
                crate::object_write::remove_blobs(store, &old);
            }
            Ok(())
        })
        .await
    }
}
