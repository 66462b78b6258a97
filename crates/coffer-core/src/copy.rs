//! CopyObject and UploadPartCopy. The source is read through the normal read path (its key
//! checked, its chunks verified and decrypted) and written through the normal write path
//! (re-encrypted under the target's own fresh data key), so there is one code path for every
//! size and every combination of plain and SSE-C. The one exception is key rotation: an
//! in-place copy of an SSE-C object to a new customer key re-seals the same data key and
//! commits a new record, leaving the ciphertext untouched.

use coffer_sse::CustomerKey;
use futures::StreamExt as _;

use crate::{
    BoxError, ByteStream, ChecksumAlgorithm, Coffer, Conditions, CoreError, ExpectedChecksum,
    ObjectMetadata, ObjectRead, PartOutcome, PutObject, RangeSpec, ReadOptions, UploadPart,
    new_version_id, now_ms,
};

pub struct CopySource {
    pub bucket: String,
    pub key: String,
    pub customer_key: Option<CustomerKey>,
    /// `x-amz-copy-source-if-*`; any failure is 412.
    pub conditions: Conditions,
    /// `x-amz-copy-source-range` (UploadPartCopy only).
    pub range: Option<RangeSpec>,
    /// `?versionId=` in `x-amz-copy-source`.
    pub version_id: Option<String>,
}

pub enum MetadataDirective {
    Copy,
    Replace(Box<ObjectMetadata>),
}

pub struct CopyObject {
    pub source: CopySource,
    pub bucket: String,
    pub key: String,
    pub metadata: MetadataDirective,
    /// The target's SSE-C key.
    pub customer_key: Option<CustomerKey>,
    /// The target's server-side encryption, when not SSE-C.
    pub server_side: Option<crate::ServerSide>,
    /// The target's canned ACL (`x-amz-acl`); copies do not inherit the source's.
    pub acl: Option<String>,
    /// The target's tags: `None` copies the source's (`x-amz-tagging-directive: COPY`),
    /// `Some` replaces them.
    pub tags: Option<Vec<(String, String)>>,
}

#[derive(Debug, Clone)]
pub struct CopyOutcome {
    pub etag: String,
    pub last_modified_ms: i64,
    pub version_id: Option<String>,
    /// The version of the source that was copied, when its bucket has versioning.
    pub source_version_id: Option<String>,
    pub checksum: Option<(ChecksumAlgorithm, String)>,
    /// True when the copy re-sealed the data key in place instead of copying data.
    pub rotated_in_place: bool,
}

fn metadata_of(record: &coffer_store::ObjectRecord) -> ObjectMetadata {
    ObjectMetadata {
        content_type: record.content_type.clone(),
        content_encoding: record.content_encoding.clone(),
        content_disposition: record.content_disposition.clone(),
        content_language: record.content_language.clone(),
        cache_control: record.cache_control.clone(),
        expires: record.expires.clone(),
        user: record.user_metadata.clone(),
        acl: None,
        tags: Vec::new(),
    }
}

fn precondition(e: CoreError) -> CoreError {
    match e {
        CoreError::NotModified { .. } => CoreError::PreconditionFailed,
        other => other,
    }
}

impl Coffer {
    /// Opens the source of a copy: checks its key and conditions and starts streaming it.
    fn open_copy_source(
        &self,
        source: CopySource,
    ) -> Result<(ObjectRead, ByteStream<BoxError>), CoreError> {
        let source_range = source.range;
        let read = self
            .read_object(
                &source.bucket,
                &source.key,
                ReadOptions {
                    range: source.range,
                    conditions: source.conditions,
                    customer_key: source.customer_key,
                    part_number: None,
                    version_id: source.version_id,
                },
                true,
            )
            .map_err(precondition)?;
        let mut read = read;
        // x-amz-copy-source-range must lie within the source (no clamping as for Range).
        if let Some(RangeSpec::Bounded { last, .. }) = source_range
            && read.range.map(|(_, end)| end) != Some(last)
        {
            return Err(CoreError::InvalidRange {
                size: read.record.size,
            });
        }
        let body = read
            .body
            .take()
            .ok_or_else(|| CoreError::Internal("copy source without a body".into()))?;
        let body: ByteStream<BoxError> =
            Box::pin(body.map(|r| r.map_err(|e| Box::new(e) as BoxError)));
        Ok((read, body))
    }

    pub async fn copy_object(&self, req: CopyObject) -> Result<CopyOutcome, CoreError> {
        if self.store().meta().bucket(&req.bucket)?.is_none() {
            return Err(CoreError::NoSuchBucket);
        }
        let in_place = req.source.bucket == req.bucket
            && req.source.key == req.key
            && req.source.version_id.is_none();
        // Rotation re-seals in place. A versioned bucket keeps the old version, so there the
        // copy writes a new version (with its own data key) through the normal path instead.
        if in_place
            && req.source.customer_key.is_some()
            && req.customer_key.is_some()
            && self.bucket_versioning(&req.bucket)?.is_none()
        {
            return self.rotate_in_place(req).await;
        }
        let source_encrypted = req.source.customer_key.is_some();
        let (read, body) = self.open_copy_source(req.source)?;
        if in_place
            && matches!(req.metadata, MetadataDirective::Copy)
            && !source_encrypted
            && req.customer_key.is_none()
            && req.server_side.is_none()
        {
            return Err(CoreError::InvalidRequest(
                "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.".into(),
            ));
        }
        let source_version_id = read
            .versioned
            .then(|| read.record.exposed_version_id().to_owned());
        let mut metadata = match req.metadata {
            MetadataDirective::Copy => metadata_of(&read.record),
            MetadataDirective::Replace(m) => *m,
        };
        metadata.acl = req.acl;
        metadata.tags = req.tags.unwrap_or_else(|| read.record.tags.clone());
        let checksum = match read
            .record
            .checksum
            .as_ref()
            .and_then(|(a, _)| ChecksumAlgorithm::parse(a.split(':').next().unwrap_or(a)))
        {
            Some(alg) => ExpectedChecksum::Compute(alg),
            None => ExpectedChecksum::None,
        };
        let outcome = self
            .put_object(
                PutObject {
                    bucket: req.bucket,
                    key: req.key,
                    expected_len: Some(read.content_length),
                    content_md5: None,
                    checksum,
                    metadata,
                    encryption: crate::Encryption::from_parts(req.customer_key, req.server_side),
                    conditions: crate::WriteConditions::default(),
                },
                body,
            )
            .await?;
        Ok(CopyOutcome {
            etag: outcome.etag,
            last_modified_ms: outcome.last_modified_ms,
            version_id: outcome.version_id,
            source_version_id,
            checksum: outcome.checksum,
            rotated_in_place: false,
        })
    }

    /// Key rotation: open the data key with the old customer key, seal it under the new one
    /// with a fresh salt, and swap the record in one transaction if nobody replaced the object
    /// in between. A crash leaves the object readable with exactly one of the two keys.
    async fn rotate_in_place(&self, req: CopyObject) -> Result<CopyOutcome, CoreError> {
        let (Some(old_key), Some(new_key)) =
            (req.source.customer_key.as_ref(), req.customer_key.as_ref())
        else {
            return Err(CoreError::Internal("rotation needs both keys".into()));
        };
        let record = self
            .store()
            .meta()
            .object(&req.bucket, &req.key)?
            .ok_or(CoreError::NoSuchKey)?;
        let Some(enc) = record.encryption.clone() else {
            return Err(CoreError::SseNotEncrypted);
        };
        let dek = crate::encryption::open_sealed(old_key, &enc, &req.bucket, &req.key)?;
        req.source
            .conditions
            .check_read(&record.etag, record.last_modified_ms)
            .map_err(precondition)?;
        let resealed = crate::encryption::reseal(new_key, &dek, &enc, &req.bucket, &req.key)?;
        drop(dek);
        let mut updated = record.clone();
        if let Some(tags) = req.tags {
            updated.tags = tags;
        }
        if let MetadataDirective::Replace(m) = req.metadata {
            updated.content_type = m.content_type;
            updated.content_encoding = m.content_encoding;
            updated.content_disposition = m.content_disposition;
            updated.content_language = m.content_language;
            updated.cache_control = m.cache_control;
            updated.expires = m.expires;
            updated.user_metadata = m.user;
        }
        updated.encryption = Some(resealed);
        updated.version_id = new_version_id()?;
        updated.last_modified_ms = now_ms();
        updated.etag = crate::object_write::random_etag()?;
        let (bucket, key, expected) = (req.bucket, req.key, record.version_id);
        let new_record = updated.clone();
        let swapped = self
            .blocking(move |s| {
                Ok(s.meta()
                    .replace_object_if(&bucket, &key, &expected, &new_record)?)
            })
            .await?;
        if !swapped {
            return Err(CoreError::InvalidRequest(
                "The object changed while its key was being rotated; retry the copy.".into(),
            ));
        }
        let checksum = updated.checksum.as_ref().and_then(|(a, v)| {
            ChecksumAlgorithm::parse(a.split(':').next().unwrap_or(a)).map(|a| (a, v.clone()))
        });
        Ok(CopyOutcome {
            etag: updated.etag,
            last_modified_ms: updated.last_modified_ms,
            version_id: None,
            source_version_id: None,
            checksum,
            rotated_in_place: true,
        })
    }

    /// UploadPartCopy: a part whose body is (a range of) another object.
    pub async fn upload_part_copy(
        &self,
        source: CopySource,
        part: UploadPart,
    ) -> Result<(PartOutcome, i64, Option<String>), CoreError> {
        // Check the target upload (and its key) before reading anything from the source.
        self.upload(&part.bucket, &part.key, &part.upload_id)?;
        let (read, body) = self.open_copy_source(source)?;
        let source_version_id = read
            .versioned
            .then(|| read.record.exposed_version_id().to_owned());
        let part = UploadPart {
            expected_len: Some(read.content_length),
            ..part
        };
        let outcome = self.upload_part(part, body).await?;
        Ok((outcome, now_ms(), source_version_id))
    }
}
