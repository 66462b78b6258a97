//! Bucket operations.

use coffer_store::{BucketRecord, CorsRule, DeleteBucketOutcome};

use crate::{Coffer, CoreError, now_ms};

#[derive(Debug, Clone)]
pub struct BucketInfo {
    pub name: String,
    pub owner: String,
    pub created_ms: i64,
    pub region: String,
    pub policy: Option<String>,
    pub acl: Option<String>,
    pub cors: Option<Vec<CorsRule>>,
}

impl Coffer {
    /// Creates `name` for `owner`. Re-creating one's own bucket is `BucketAlreadyOwnedByYou`
    /// (AWS answers that outside us-east-1; in us-east-1 it answers 200 — the adapter decides).
    pub async fn create_bucket(
        &self,
        name: &str,
        owner: &str,
        region: &str,
        acl: Option<String>,
    ) -> Result<(), CoreError> {
        let record = BucketRecord {
            owner: owner.to_owned(),
            created_ms: now_ms(),
            region: region.to_owned(),
            versioning: None,
            policy: None,
            acl,
            cors: None,
        };
        let name = name.to_owned();
        let existing = self
            .blocking(move |s| Ok(s.meta().create_bucket(&name, &record)?))
            .await?;
        match existing {
            None => Ok(()),
            Some(rec) if rec.owner == owner => Err(CoreError::BucketAlreadyOwnedByYou),
            Some(_) => Err(CoreError::BucketAlreadyExists),
        }
    }

    pub fn bucket(&self, name: &str) -> Result<BucketInfo, CoreError> {
        let rec = self
            .store()
            .meta()
            .bucket(name)?
            .ok_or(CoreError::NoSuchBucket)?;
        Ok(BucketInfo {
            name: name.to_owned(),
            owner: rec.owner,
            created_ms: rec.created_ms,
            region: rec.region,
            policy: rec.policy,
            acl: rec.acl,
            cors: rec.cors,
        })
    }

    pub fn list_buckets(&self) -> Result<Vec<BucketInfo>, CoreError> {
        Ok(self
            .store()
            .meta()
            .buckets()?
            .into_iter()
            .map(|(name, rec)| BucketInfo {
                name,
                owner: rec.owner,
                created_ms: rec.created_ms,
                region: rec.region,
                policy: rec.policy,
                acl: rec.acl,
                cors: rec.cors,
            })
            .collect())
    }

    pub async fn delete_bucket(&self, name: &str) -> Result<(), CoreError> {
        let name = name.to_owned();
        match self
            .blocking(move |s| {
                let outcome = s.meta().delete_bucket(&name)?;
                if let DeleteBucketOutcome::Deleted { orphaned_blobs } = &outcome {
                    for blob in orphaned_blobs
                        .iter()
                        .filter_map(|b| coffer_store::BlobId::parse(b))
                    {
                        let _ = s.blobs().remove_blocking(&blob);
                    }
                }
                Ok(outcome)
            })
            .await?
        {
            DeleteBucketOutcome::Deleted { .. } => Ok(()),
            DeleteBucketOutcome::NoSuchBucket => Err(CoreError::NoSuchBucket),
            DeleteBucketOutcome::NotEmpty => Err(CoreError::BucketNotEmpty),
        }
    }

    /// The bucket's policy document, if it has one.
    pub fn bucket_policy(&self, bucket: &str) -> Result<Option<String>, CoreError> {
        Ok(self
            .store()
            .meta()
            .bucket(bucket)?
            .ok_or(CoreError::NoSuchBucket)?
            .policy)
    }

    /// Sets (validated by the caller) or, with `None`, deletes the bucket's policy.
    pub async fn set_bucket_policy(
        &self,
        bucket: &str,
        policy: Option<String>,
    ) -> Result<(), CoreError> {
        let bucket = bucket.to_owned();
        self.blocking(move |s| {
            Ok(s.meta()
                .update_bucket(&bucket, move |rec| rec.policy.clone_from(&policy))?)
        })
        .await
    }

    /// Sets (validated by the caller) or, with `None`, deletes the bucket's CORS rules.
    pub async fn set_bucket_cors(
        &self,
        bucket: &str,
        rules: Option<Vec<CorsRule>>,
    ) -> Result<(), CoreError> {
        let bucket = bucket.to_owned();
        self.blocking(move |s| {
            Ok(s.meta()
                .update_bucket(&bucket, move |rec| rec.cors.clone_from(&rules))?)
        })
        .await
    }

    /// Sets the bucket's canned ACL.
    pub async fn set_bucket_acl(&self, bucket: &str, acl: Option<String>) -> Result<(), CoreError> {
        let bucket = bucket.to_owned();
        self.blocking(move |s| {
            Ok(s.meta()
                .update_bucket(&bucket, move |rec| rec.acl.clone_from(&acl))?)
        })
        .await
    }

    /// Sets the canned ACL of a version of an object (`None`: the current one).
    pub async fn set_object_acl(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<String>,
        acl: Option<String>,
    ) -> Result<(), CoreError> {
        self.bucket(bucket)?;
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        self.blocking(move |s| {
            Ok(s.meta().update_object_version(
                &bucket,
                &key,
                version_id.as_deref(),
                move |rec| rec.acl.clone_from(&acl),
            )?)
        })
        .await?
        .map(|_| ())
        .ok_or(CoreError::NoSuchKey)
    }
}
