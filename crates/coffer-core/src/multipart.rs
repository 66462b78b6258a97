//! Multipart uploads. The SSE-C data key is made and sealed at Create, bound to the upload id,
//! so Complete only checks the key (it must carry it) and nothing is re-sealed; each part attempt is its own chunk
//! stream under a fresh salt, so a re-uploaded part never reuses a (key, nonce) pair.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use coffer_sse::{CustomerKey, StreamEncryptor, StreamSalt};
use coffer_store::{BlobId, ObjectRecord, PartRecord, Segment, UploadRecord};
use md5::Digest as _;

use crate::object_write::{decode_md5, random_etag, remove_blobs};
use crate::{
    BoxError, ByteStream, ChecksumAlgorithm, Coffer, CoreError, ExpectedChecksum, ObjectMetadata,
    new_version_id, now_ms,
};

pub const MAX_PART_NUMBER: u32 = 10_000;
/// Every part but the last must be at least this big.
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;

pub struct CreateUpload {
    pub bucket: String,
    pub key: String,
    pub owner: String,
    pub metadata: ObjectMetadata,
    pub checksum_algorithm: Option<ChecksumAlgorithm>,
    /// `FULL_OBJECT` (CRC algorithms only) or `COMPOSITE` (the default).
    pub full_object_checksum: bool,
    pub encryption: crate::Encryption,
}

pub struct UploadPart {
    pub bucket: String,
    pub key: String,
    pub upload_id: String,
    pub part_number: u32,
    pub expected_len: Option<u64>,
    pub content_md5: Option<String>,
    pub checksum: ExpectedChecksum,
    pub customer_key: Option<CustomerKey>,
}

#[derive(Debug, Clone)]
pub struct PartOutcome {
    pub etag: String,
    pub checksum: Option<(ChecksumAlgorithm, String)>,
    /// The upload's SSE-S3/KMS encryption, echoed on every part as S3 does.
    pub server_side: Option<crate::ServerSide>,
}

#[derive(Debug, Clone)]
pub struct CompletePart {
    pub part_number: u32,
    pub etag: String,
}

#[derive(Debug, Clone)]
pub struct CompleteOutcome {
    pub etag: String,
    pub version_id: Option<String>,
    pub size: u64,
    pub checksum: Option<(ChecksumAlgorithm, String, bool)>,
    pub encrypted: bool,
    /// The object's SSE-S3/KMS encryption, for the response headers.
    pub server_side: Option<crate::ServerSide>,
}

#[derive(Debug, Clone, Default)]
pub struct ListUploadsParams {
    pub prefix: String,
    pub delimiter: Option<String>,
    pub key_marker: String,
    pub upload_id_marker: String,
    pub max_uploads: usize,
}

#[derive(Debug, Clone, Default)]
pub struct UploadsPage {
    pub uploads: Vec<UploadRecord>,
    pub common_prefixes: Vec<String>,
    pub is_truncated: bool,
    pub next_key_marker: Option<String>,
    pub next_upload_id_marker: Option<String>,
}

fn new_upload_id() -> Result<String, CoreError> {
    let mut b = [0u8; 24];
    aws_lc_rs::rand::fill(&mut b).map_err(|_| CoreError::Internal("CSPRNG failure".into()))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
}

const CHECKSUM_TYPE_FULL_OBJECT: &str = "FULL_OBJECT";

impl Coffer {
    pub async fn create_multipart_upload(&self, req: CreateUpload) -> Result<String, CoreError> {
        if self.store().meta().bucket(&req.bucket)?.is_none() {
            return Err(CoreError::NoSuchBucket);
        }
        if req.full_object_checksum
            && !matches!(
                req.checksum_algorithm,
                Some(
                    ChecksumAlgorithm::Crc32
                        | ChecksumAlgorithm::Crc32c
                        | ChecksumAlgorithm::Crc64Nvme
                )
            )
        {
            return Err(CoreError::InvalidRequest(
                "The FULL_OBJECT checksum type needs a CRC checksum algorithm.".into(),
            ));
        }
        let upload_id = new_upload_id()?;
        let encryption = crate::encryption::seal_new_data_key(
            self.server_keys(),
            &req.encryption,
            &req.bucket,
            &req.key,
            &upload_id,
        )?
        .map(|(_, record)| record);
        drop(req.encryption);
        let checksum_algorithm = req.checksum_algorithm.map(|a| {
            if req.full_object_checksum {
                format!("{}:{CHECKSUM_TYPE_FULL_OBJECT}", a.as_str())
            } else {
                a.as_str().to_owned()
            }
        });
        let record = UploadRecord {
            upload_id: upload_id.clone(),
            key: req.key,
            owner: req.owner,
            initiated_ms: now_ms(),
            content_type: req.metadata.content_type,
            content_encoding: req.metadata.content_encoding,
            content_disposition: req.metadata.content_disposition,
            content_language: req.metadata.content_language,
            cache_control: req.metadata.cache_control,
            expires: req.metadata.expires,
            user_metadata: req.metadata.user,
            checksum_algorithm,
            encryption,
            acl: req.metadata.acl,
            tags: req.metadata.tags,
        };
        let bucket = req.bucket;
        self.blocking(move |s| Ok(s.meta().create_upload(&bucket, &record)?))
            .await?;
        Ok(upload_id)
    }

    pub fn upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<UploadRecord, CoreError> {
        if self.store().meta().bucket(bucket)?.is_none() {
            return Err(CoreError::NoSuchBucket);
        }
        self.store()
            .meta()
            .upload(bucket, key, upload_id)?
            .ok_or(CoreError::NoSuchUpload)
    }

    pub async fn upload_part(
        &self,
        req: UploadPart,
        body: ByteStream<BoxError>,
    ) -> Result<PartOutcome, CoreError> {
        if req.part_number == 0 || req.part_number > MAX_PART_NUMBER {
            return Err(CoreError::InvalidArgument(
                "Part number must be an integer between 1 and 10000, inclusive".into(),
            ));
        }
        let upload = self.upload(&req.bucket, &req.key, &req.upload_id)?;
        let content_md5 = match &req.content_md5 {
            Some(b64) => Some(decode_md5(b64)?),
            None => None,
        };
        let customer_keyed = crate::encryption::is_customer_keyed(upload.encryption.as_ref());
        let server_side = crate::encryption::record_server_side(upload.encryption.as_ref());
        let (encryptor, salt) = match (&upload.encryption, &req.customer_key) {
            (None, Some(_)) => {
                return Err(CoreError::InvalidRequest(
                    "The multipart upload was not initiated with SSE-C; its parts must not carry SSE-C headers.".into(),
                ));
            }
            (Some(_), None) if customer_keyed => {
                return Err(CoreError::InvalidRequest(
                    "The multipart upload was initiated with SSE-C; every part must carry the same SSE-C key.".into(),
                ));
            }
            (None, None) => (None, None),
            (Some(enc), customer) => {
                let dek = crate::encryption::open_record_key(
                    self.server_keys(),
                    customer.as_ref(),
                    Some(enc),
                    &req.bucket,
                    &req.key,
                )
                .map_err(|e| match e {
                    CoreError::SseWrongKey => CoreError::InvalidRequest(
                        "The SSE-C key of this part does not match the key the multipart upload was initiated with.".into(),
                    ),
                    CoreError::SseNotEncrypted => CoreError::InvalidRequest(
                        "The multipart upload was not initiated with SSE-C; its parts must not carry SSE-C headers.".into(),
                    ),
                    other => other,
                })?
                .ok_or_else(|| CoreError::Internal("encrypted upload without a data key".into()))?;
                let salt = StreamSalt::random().map_err(|e| CoreError::Internal(e.to_string()))?;
                let key = dek
                    .stream_key(req.part_number, &salt)
                    .map_err(|e| CoreError::Internal(e.to_string()))?;
                let sealing = crate::object_write::Sealing {
                    encryptor: StreamEncryptor::new(key),
                    // A re-sent part gets the same ETag; an MD5 would expose the plaintext.
                    etag: customer_keyed.then(|| dek.part_etag_hasher()),
                };
                (Some(sealing), Some(salt))
            }
        };
        drop(req.customer_key);
        let encrypted = customer_keyed;
        // The algorithm named at Create applies to every part even when a part sends none.
        let checksum = match (req.checksum, upload_checksum(&upload)) {
            (ExpectedChecksum::None, Some((alg, _))) => ExpectedChecksum::Compute(alg),
            (c, _) => c,
        };
        let want_md5 = !encrypted || content_md5.is_some();
        let (mut written, checksum) = self
            .receive_body(
                body,
                crate::object_write::BlobPlace::File,
                want_md5,
                content_md5,
                checksum,
                encryptor,
                req.expected_len,
            )
            .await?;
        let etag = match (encrypted, written.md5, written.keyed_etag.take()) {
            (false, Some(md5), _) => hex::encode(md5),
            (true, _, Some(keyed)) => keyed,
            _ => random_etag()?,
        };
        let size = written.plaintext_len;
        let writer = written.writer;
        let blob = match self
            .blocking(move |_| Ok(writer.commit_blocking()?))
            .await?
        {
            coffer_store::StoredBlob::File(id) => id,
            coffer_store::StoredBlob::Inline(_) => {
                return Err(CoreError::Internal(
                    "a part was not written to a file".into(),
                ));
            }
        };
        let part = PartRecord {
            part_number: req.part_number,
            size,
            etag: etag.clone(),
            blob: blob.as_str().to_owned(),
            last_modified_ms: now_ms(),
            stream_salt: salt.map(|s| s.0),
            checksum: checksum
                .as_ref()
                .map(|(a, v)| (a.as_str().to_owned(), v.clone())),
        };
        let (bucket, key, upload_id) = (req.bucket, req.key, req.upload_id);
        self.blocking(
            move |store| match store.meta().put_part(&bucket, &key, &upload_id, &part) {
                Ok(replaced) => {
                    if let Some(old) = replaced.and_then(|p| BlobId::parse(&p.blob)) {
                        let _ = store.blobs().remove_blocking(&old);
                    }
                    Ok(())
                }
                Err(e) => {
                    let _ = store.blobs().remove_blocking(&blob);
                    Err(e.into())
                }
            },
        )
        .await?;
        Ok(PartOutcome {
            etag,
            checksum,
            server_side,
        })
    }

    pub async fn complete_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: Vec<CompletePart>,
        customer_key: Option<CustomerKey>,
        conditions: crate::WriteConditions,
    ) -> Result<CompleteOutcome, CoreError> {
        let upload = match self.upload(bucket, key, upload_id) {
            Ok(u) => u,
            Err(CoreError::NoSuchUpload) => {
                // A repeated Complete of an upload that already became the current object
                // answers as the first one did (clients retry Completes that timed out).
                if let Some(done) = self.store().meta().object(bucket, key)?
                    && done.upload_id.as_deref() == Some(upload_id)
                {
                    return Ok(CompleteOutcome {
                        etag: done.etag.clone(),
                        version_id: None,
                        size: done.size,
                        checksum: None,
                        encrypted: crate::encryption::is_customer_keyed(done.encryption.as_ref()),
                        server_side: crate::encryption::record_server_side(
                            done.encryption.as_ref(),
                        ),
                    });
                }
                return Err(CoreError::NoSuchUpload);
            }
            Err(e) => return Err(e),
        };
        // Completing an SSE-C upload takes the key: whoever may write to the bucket but does not
        // hold the key cannot assemble (drop, reorder) someone else's encrypted parts into an object.
        if customer_key.is_none()
            && crate::encryption::is_customer_keyed(upload.encryption.as_ref())
        {
            return Err(CoreError::InvalidRequest(
                "The multipart upload was initiated with SSE-C; CompleteMultipartUpload must carry the same SSE-C key.".into(),
            ));
        }
        if customer_key.is_some() {
            match &upload.encryption {
                Some(enc) if crate::encryption::is_customer_keyed(Some(enc)) => {
                    crate::encryption::open_record_key(
                        self.server_keys(),
                        customer_key.as_ref(),
                        Some(enc),
                        bucket,
                        key,
                    )?;
                }
                _ => {
                    return Err(CoreError::InvalidRequest(
                        "The multipart upload was not initiated with SSE-C.".into(),
                    ));
                }
            }
        }
        drop(customer_key);
        if parts.is_empty() {
            return Err(CoreError::MalformedXml(
                "You must specify at least one part".into(),
            ));
        }
        if parts
            .windows(2)
            .any(|w| w[0].part_number > w[1].part_number)
        {
            return Err(CoreError::InvalidPartOrder);
        }
        // A part number listed twice (a part re-sent while the first send was in flight)
        // means the part as last uploaded: keep the last entry of each number.
        let mut parts = parts;
        parts.reverse();
        parts.dedup_by_key(|p| p.part_number);
        parts.reverse();
        let stored = self
            .store()
            .meta()
            .parts(upload_id, 0, MAX_PART_NUMBER as usize + 1)?;
        let mut chosen = Vec::with_capacity(parts.len());
        for (i, p) in parts.iter().enumerate() {
            let part = stored
                .iter()
                .find(|s| s.part_number == p.part_number)
                .filter(|s| s.etag == p.etag.trim().trim_matches('"'))
                .ok_or_else(|| {
                    CoreError::InvalidPart(format!(
                        "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag. (part {})",
                        p.part_number
                    ))
                })?;
            if i + 1 < parts.len() && part.size < MIN_PART_SIZE {
                return Err(CoreError::EntityTooSmall);
            }
            chosen.push(part.clone());
        }

        let mut md5_of_etags = md5::Md5::new();
        for p in &chosen {
            let raw = hex::decode(&p.etag)
                .map_err(|_| CoreError::Internal("corrupt part etag".into()))?;
            md5_of_etags.update(&raw);
        }
        let etag = format!("{}-{}", hex::encode(md5_of_etags.finalize()), chosen.len());
        let checksum = combined_checksum(&upload, &chosen)?;
        let size: u64 = chosen.iter().map(|p| p.size).sum();
        let version_id = new_version_id()?;
        let used: Vec<u32> = chosen.iter().map(|p| p.part_number).collect();
        let encrypted = crate::encryption::is_customer_keyed(upload.encryption.as_ref());
        let server_side = crate::encryption::record_server_side(upload.encryption.as_ref());
        let record = ObjectRecord {
            version_id: version_id.clone(),
            size,
            etag: etag.clone(),
            last_modified_ms: now_ms(),
            content_type: upload.content_type,
            content_encoding: upload.content_encoding,
            content_disposition: upload.content_disposition,
            content_language: upload.content_language,
            cache_control: upload.cache_control,
            expires: upload.expires,
            user_metadata: upload.user_metadata,
            checksum: checksum.as_ref().map(|(a, v, full)| {
                (
                    if *full {
                        format!("{}:{CHECKSUM_TYPE_FULL_OBJECT}", a.as_str())
                    } else {
                        a.as_str().to_owned()
                    },
                    v.clone(),
                )
            }),
            segments: chosen
                .into_iter()
                .map(|p| Segment {
                    blob: p.blob,
                    part_number: p.part_number,
                    size: p.size,
                    stream_salt: p.stream_salt,
                    etag: p.etag,
                    checksum: p.checksum,
                    inline: false,
                })
                .collect(),
            encryption: upload.encryption,
            delete_marker: false,
            null_version: false,
            upload_id: Some(upload_id.to_owned()),
            acl: upload.acl,
            tags: upload.tags,
        };
        let (b, k, u) = (bucket.to_owned(), key.to_owned(), upload_id.to_owned());
        if !conditions.is_empty() {
            let current = self.store().meta().object(bucket, key)?;
            conditions.check(current.as_ref().filter(|c| !c.delete_marker))?;
        }
        let shown_version = self
            .blocking(move |store| {
                let condition: Option<coffer_store::SharedWriteCondition> = if conditions.is_empty()
                {
                    None
                } else {
                    Some(std::sync::Arc::new(move |c: Option<&ObjectRecord>| {
                        conditions.check(c)
                    }))
                };
                let done = store
                    .meta()
                    .complete_upload(&b, &k, &u, &record, &used, condition)?;
                for old in &done.write.dropped {
                    remove_blobs(store, old);
                }
                for blob in done.unused_blobs.iter().filter_map(|b| BlobId::parse(b)) {
                    let _ = store.blobs().remove_blocking(&blob);
                }
                Ok(done
                    .write
                    .written
                    .filter(|r| done.write.versioned && !r.null_version)
                    .map(|r| r.version_id))
            })
            .await?;
        Ok(CompleteOutcome {
            etag,
            version_id: shown_version,
            size,
            checksum,
            encrypted,
            server_side,
        })
    }

    pub async fn abort_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<(), CoreError> {
        self.upload(bucket, key, upload_id)?;
        let (b, k, u) = (bucket.to_owned(), key.to_owned(), upload_id.to_owned());
        self.blocking(move |store| {
            for blob in store
                .meta()
                .abort_upload(&b, &k, &u)?
                .iter()
                .filter_map(|b| BlobId::parse(b))
            {
                let _ = store.blobs().remove_blocking(&blob);
            }
            Ok(())
        })
        .await
    }

    /// Parts after `marker`, at most `max`; the bool says whether more follow.
    pub fn list_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        marker: u32,
        max: usize,
    ) -> Result<(UploadRecord, Vec<PartRecord>, bool), CoreError> {
        let upload = self.upload(bucket, key, upload_id)?;
        let mut parts = self
            .store()
            .meta()
            .parts(upload_id, marker, max.saturating_add(1))?;
        let truncated = parts.len() > max;
        parts.truncate(max);
        Ok((upload, parts, truncated))
    }

    pub fn list_multipart_uploads(
        &self,
        bucket: &str,
        params: &ListUploadsParams,
    ) -> Result<UploadsPage, CoreError> {
        if self.store().meta().bucket(bucket)?.is_none() {
            return Err(CoreError::NoSuchBucket);
        }
        let mut page = UploadsPage::default();
        if params.max_uploads == 0 {
            return Ok(page);
        }
        let delimiter = params.delimiter.as_deref().filter(|d| !d.is_empty());
        let mut key_marker = params.key_marker.clone();
        let mut id_marker = params.upload_id_marker.clone();
        let mut count = 0;
        loop {
            let batch = self.store().meta().scan_uploads(
                bucket,
                &params.prefix,
                &key_marker,
                &id_marker,
                1000,
            )?;
            if batch.is_empty() {
                break;
            }
            let exhausted = batch.len() < 1000;
            for u in batch {
                let cp = delimiter.and_then(|d| {
                    u.key
                        .get(params.prefix.len()..)
                        .and_then(|rest| rest.find(d))
                        .map(|i| u.key[..params.prefix.len() + i + d.len()].to_owned())
                });
                if let Some(cp) = &cp
                    && page.common_prefixes.last() == Some(cp)
                {
                    key_marker.clone_from(&u.key);
                    id_marker.clone_from(&u.upload_id);
                    continue;
                }
                if count == params.max_uploads {
                    page.is_truncated = true;
                    return Ok(page);
                }
                count += 1;
                key_marker.clone_from(&u.key);
                id_marker.clone_from(&u.upload_id);
                page.next_key_marker = Some(u.key.clone());
                match cp {
                    Some(cp) => {
                        page.next_upload_id_marker = None;
                        page.common_prefixes.push(cp);
                    }
                    None => {
                        page.next_upload_id_marker = Some(u.upload_id.clone());
                        page.uploads.push(u);
                    }
                }
            }
            if exhausted {
                break;
            }
        }
        Ok(page)
    }

    /// Aborts uploads initiated more than `max_age_ms` ago; returns how many.
    pub async fn expire_stale_uploads(&self, max_age_ms: i64) -> Result<usize, CoreError> {
        let stale = self
            .store()
            .meta()
            .stale_uploads(now_ms().saturating_sub(max_age_ms))?;
        let n = stale.len();
        for (bucket, upload) in stale {
            match self
                .abort_multipart_upload(&bucket, &upload.key, &upload.upload_id)
                .await
            {
                Ok(()) | Err(CoreError::NoSuchUpload | CoreError::NoSuchBucket) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }
}

/// The checksum algorithm an upload was created with, and whether it is a full-object CRC.
pub fn upload_checksum(upload: &UploadRecord) -> Option<(ChecksumAlgorithm, bool)> {
    let spec = upload.checksum_algorithm.as_deref()?;
    let (name, full) = match spec.split_once(':') {
        Some((n, t)) => (n, t == CHECKSUM_TYPE_FULL_OBJECT),
        None => (spec, false),
    };
    ChecksumAlgorithm::parse(name).map(|a| (a, full))
}

/// The whole-object checksum of a completed upload: a CRC combined over the parts
/// (FULL_OBJECT), or the hash of the parts' checksums with a `-N` suffix (COMPOSITE).
fn combined_checksum(
    upload: &UploadRecord,
    parts: &[PartRecord],
) -> Result<Option<(ChecksumAlgorithm, String, bool)>, CoreError> {
    let Some((alg, full)) = upload_checksum(upload) else {
        return Ok(None);
    };
    let mut raw_parts = Vec::with_capacity(parts.len());
    for p in parts {
        let Some((name, value)) = &p.checksum else {
            return Ok(None);
        };
        if ChecksumAlgorithm::parse(name) != Some(alg) {
            return Ok(None);
        }
        raw_parts.push((
            BASE64
                .decode(value)
                .map_err(|_| CoreError::Internal("corrupt part checksum".into()))?,
            p.size,
        ));
    }
    if full {
        let value = crate::checksum::combine_crcs(alg, &raw_parts)
            .ok_or_else(|| CoreError::Internal("cannot combine part checksums".into()))?;
        return Ok(Some((alg, value, true)));
    }
    let mut hasher = crate::ChecksumHasher::new(alg);
    for (raw, _) in &raw_parts {
        hasher.update(raw);
    }
    Ok(Some((
        alg,
        format!("{}-{}", hasher.finalize_base64(), parts.len()),
        false,
    )))
}
