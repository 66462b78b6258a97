//! PutObject: body stream → hashes → (SSE-C chunk cipher) → temp blob → fsync → metadata commit.
//!
//! Hashing, encryption and file writes run on one blocking thread per upload, fed through a
//! small bounded channel, so the reactor threads only move bytes off the socket and memory
//! stays bounded whatever the object size.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use coffer_sse::{StreamEncryptor, StreamSalt};
use coffer_store::{BlobId, EncryptionRecord, ObjectRecord, Segment, Store};
use futures::StreamExt as _;
use md5::Digest as _;

use crate::WriteConditions;
use crate::{
    BoxError, ByteStream, ChecksumAlgorithm, ChecksumHasher, Coffer, CoreError, new_version_id,
    now_ms,
};

/// How many body buffers may wait for the writer thread.
const PIPELINE_DEPTH: usize = 16;
/// Bytes gathered before one `write` system call.
const WRITE_BATCH: usize = 1 << 20;

#[derive(Debug, Clone, Default)]
pub struct ObjectMetadata {
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub content_disposition: Option<String>,
    pub content_language: Option<String>,
    pub cache_control: Option<String>,
    pub expires: Option<String>,
    pub user: Vec<(String, String)>,
    /// The canned ACL (`x-amz-acl`), when not private.
    pub acl: Option<String>,
    /// Object tags (`x-amz-tagging`), validated.
    pub tags: Vec<(String, String)>,
}

/// The checksum the client asked for, if any, and where its expected value comes from.
pub enum ExpectedChecksum {
    None,
    /// Given in a header before the body.
    Value(ChecksumAlgorithm, String),
    /// Sent as a trailer after the body; the closure reads it once the body has ended.
    Trailer(
        ChecksumAlgorithm,
        Box<dyn FnOnce() -> Option<String> + Send>,
    ),
    /// Named by the client without a value: compute and store it.
    Compute(ChecksumAlgorithm),
}

pub struct PutObject {
    pub bucket: String,
    pub key: String,
    /// The decoded body length the client declared, when it did.
    pub expected_len: Option<u64>,
    /// Base64 `Content-MD5`, verified on the plaintext.
    pub content_md5: Option<String>,
    pub checksum: ExpectedChecksum,
    pub metadata: ObjectMetadata,
    pub encryption: crate::Encryption,
    pub conditions: WriteConditions,
}

#[derive(Debug, Clone)]
pub struct PutOutcome {
    pub etag: String,
    pub last_modified_ms: i64,
    /// The version id to show, when the bucket has versioning.
    pub version_id: Option<String>,
    pub size: u64,
    pub checksum: Option<(ChecksumAlgorithm, String)>,
}

/// What the writer thread hands back once the body has ended.
pub(crate) struct WrittenBlob {
    pub(crate) writer: coffer_store::BlobWriter,
    pub(crate) plaintext_len: u64,
    pub(crate) md5: Option<[u8; 16]>,
    /// The keyed ETag of an encrypted multipart part (see `DataKey::part_etag_hasher`).
    pub(crate) keyed_etag: Option<String>,
    checksum: Option<String>,
}

/// How a body is encrypted on its way to disk.
pub(crate) struct Sealing {
    pub(crate) encryptor: StreamEncryptor,
    /// For multipart parts: the keyed ETag, computed in the same pass.
    pub(crate) etag: Option<coffer_sse::PartEtagHasher>,
}

impl Coffer {
    pub async fn put_object(
        &self,
        req: PutObject,
        body: ByteStream<BoxError>,
    ) -> Result<PutOutcome, CoreError> {
        if self.store().meta().bucket(&req.bucket)?.is_none() {
            return Err(CoreError::NoSuchBucket);
        }
        // Fail early, before the body, when the condition already fails; it is checked again
        // atomically at commit.
        if !req.conditions.is_empty() {
            let current = self.store().meta().object(&req.bucket, &req.key)?;
            req.conditions
                .check(current.as_ref().filter(|c| !c.delete_marker))?;
        }
        let content_md5 = match &req.content_md5 {
            Some(b64) => Some(decode_md5(b64)?),
            None => None,
        };
        let version_id = new_version_id()?;

        // A fresh data key sealed under the customer's (or the server's) key; a customer key is
        // dropped, and wiped, as soon as the data key is sealed.
        let mut encryption: Option<EncryptionRecord> = None;
        let mut stream_salt = None;
        let mut encryptor = None;
        let customer_keyed = matches!(req.encryption, crate::Encryption::Customer(_));
        let sealed = crate::encryption::seal_new_data_key(
            self.server_keys(),
            &req.encryption,
            &req.bucket,
            &req.key,
            &version_id,
        )?;
        drop(req.encryption);
        if let Some((dek, record)) = sealed {
            let salt = StreamSalt::random().map_err(|e| CoreError::Internal(e.to_string()))?;
            let key = dek
                .stream_key(1, &salt)
                .map_err(|e| CoreError::Internal(e.to_string()))?;
            encryptor = Some(Sealing {
                encryptor: StreamEncryptor::new(key),
                etag: None,
            });
            stream_salt = Some(salt);
            encryption = Some(record);
        }

        // Plain objects' ETag is the MD5 of their data; SSE-C ETags are random, so MD5 is only
        // computed for them when the client sent Content-MD5. (Server-side encrypted objects
        // keep the MD5 ETag, as on AWS.)
        let want_md5 = !customer_keyed || content_md5.is_some();
        let (written, checksum) = self
            .receive_body(
                body,
                want_md5,
                content_md5,
                req.checksum,
                encryptor,
                req.expected_len,
            )
            .await?;

        let etag = match (customer_keyed, written.md5) {
            (false, Some(md5)) => hex::encode(md5),
            _ => random_etag()?,
        };
        let size = written.plaintext_len;
        let blob = self
            .blocking(move |_| Ok(written.writer.commit_blocking()?))
            .await?;

        let last_modified_ms = now_ms();
        let record = ObjectRecord {
            version_id: version_id.clone(),
            size,
            etag: etag.clone(),
            last_modified_ms,
            content_type: req.metadata.content_type,
            content_encoding: req.metadata.content_encoding,
            content_disposition: req.metadata.content_disposition,
            content_language: req.metadata.content_language,
            cache_control: req.metadata.cache_control,
            expires: req.metadata.expires,
            user_metadata: req.metadata.user,
            checksum: checksum
                .as_ref()
                .map(|(a, v)| (a.as_str().to_owned(), v.clone())),
            segments: vec![Segment {
                blob: blob.as_str().to_owned(),
                part_number: 1,
                size,
                stream_salt: stream_salt.map(|s| s.0),
                etag: etag.clone(),
                checksum: None,
            }],
            encryption,
            delete_marker: false,
            null_version: false,
            upload_id: None,
            acl: req.metadata.acl,
            tags: req.metadata.tags,
        };
        let (bucket, key, conditions) = (req.bucket, req.key, req.conditions);
        let outcome = self
            .blocking(move |store| {
                let unconditional = conditions.is_empty();
                let check = move |c: Option<&ObjectRecord>| conditions.check(c);
                let condition: Option<&coffer_store::WriteCondition> =
                    if unconditional { None } else { Some(&check) };
                match store.meta().put_object(&bucket, &key, record, condition) {
                    Ok(outcome) => {
                        for old in &outcome.dropped {
                            remove_blobs(store, old);
                        }
                        Ok(outcome)
                    }
                    Err(e) => {
                        // The record never committed: its blob is ours to remove.
                        let _ = store.blobs().remove_blocking(&blob);
                        Err(e.into())
                    }
                }
            })
            .await?;
        // Suspended buckets write the null version and, as on AWS, report no version id.
        let version_id = outcome
            .written
            .as_ref()
            .filter(|r| outcome.versioned && !r.null_version)
            .map(|r| r.version_id.clone());
        Ok(PutOutcome {
            etag,
            last_modified_ms,
            version_id,
            size,
            checksum,
        })
    }

    /// Receives a body into a temp blob and checks it against everything the client declared:
    /// length, Content-MD5, and the `x-amz-checksum-*` value (header or trailer).
    pub(crate) async fn receive_body(
        &self,
        body: ByteStream<BoxError>,
        want_md5: bool,
        content_md5: Option<[u8; 16]>,
        checksum: ExpectedChecksum,
        sealing: Option<Sealing>,
        expected_len: Option<u64>,
    ) -> Result<(WrittenBlob, Option<(ChecksumAlgorithm, String)>), CoreError> {
        let (algorithm, expected_checksum) = match checksum {
            ExpectedChecksum::None => (None, None),
            ExpectedChecksum::Value(a, v) => (Some(a), Some(Ok(v))),
            ExpectedChecksum::Trailer(a, f) => (Some(a), Some(Err(f))),
            ExpectedChecksum::Compute(a) => (Some(a), None),
        };
        let mut written = self
            .write_blob(
                body,
                want_md5,
                algorithm.map(ChecksumHasher::new),
                sealing,
                expected_len,
            )
            .await?;
        if let Some(expected) = expected_len
            && expected != written.plaintext_len
        {
            return Err(CoreError::IncompleteBody);
        }
        if let (Some(expected), Some(actual)) = (content_md5, written.md5)
            && expected != actual
        {
            return Err(CoreError::BadDigest(
                "The Content-MD5 you specified did not match what we received.".into(),
            ));
        }
        let checksum = match (algorithm, written.checksum.take()) {
            (Some(a), Some(actual)) => {
                let expected = match expected_checksum {
                    Some(Ok(v)) => Some(v),
                    Some(Err(read_trailer)) => Some(read_trailer().ok_or_else(|| {
                        CoreError::InvalidArgument(format!(
                            "The trailer {} was declared but not sent.",
                            a.header_name()
                        ))
                    })?),
                    None => None,
                };
                if let Some(expected) = expected
                    && expected.trim() != actual
                {
                    return Err(CoreError::BadDigest(format!(
                        "The {} you specified did not match the calculated checksum.",
                        a.header_name()
                    )));
                }
                Some((a, actual))
            }
            _ => None,
        };
        Ok((written, checksum))
    }

    /// Streams `body` into a new temp blob on a blocking thread. On any error the temp file
    /// is removed (the writer's `Drop`).
    async fn write_blob(
        &self,
        mut body: ByteStream<BoxError>,
        want_md5: bool,
        checksum: Option<ChecksumHasher>,
        sealing: Option<Sealing>,
        expected_len: Option<u64>,
    ) -> Result<WrittenBlob, CoreError> {
        let writer = self
            .blocking(|store| Ok(store.blobs().create_blocking()?))
            .await?;
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(PIPELINE_DEPTH);
        let task = tokio::task::spawn_blocking(move || {
            write_pipeline(writer, rx, want_md5, checksum, sealing)
        });

        let mut received: u64 = 0;
        let mut body_error = None;
        while let Some(item) = body.next().await {
            match item {
                Ok(bytes) => {
                    received += bytes.len() as u64;
                    if expected_len.is_some_and(|n| received > n) {
                        body_error = Some(CoreError::IncompleteBody);
                        break;
                    }
                    if tx.send(bytes).await.is_err() {
                        break; // the writer failed; its error is reported below
                    }
                }
                Err(e) => {
                    body_error = Some(CoreError::Body(e));
                    break;
                }
            }
        }
        drop(tx);
        let written = task
            .await
            .map_err(|e| CoreError::Internal(format!("writer task failed: {e}")))?;
        match body_error {
            Some(e) => Err(e), // `written` (and its temp file) is dropped here
            None => written,
        }
    }
}

fn write_pipeline(
    mut writer: coffer_store::BlobWriter,
    mut rx: tokio::sync::mpsc::Receiver<Bytes>,
    want_md5: bool,
    mut checksum: Option<ChecksumHasher>,
    mut sealing: Option<Sealing>,
) -> Result<WrittenBlob, CoreError> {
    let mut md5 = want_md5.then(md5::Md5::new);
    let mut pending: Vec<u8> = Vec::with_capacity(WRITE_BATCH + coffer_sse::SEALED_CHUNK_SIZE);
    let mut plaintext_len: u64 = 0;
    while let Some(bytes) = rx.blocking_recv() {
        plaintext_len += bytes.len() as u64;
        if let Some(h) = md5.as_mut() {
            h.update(&bytes);
        }
        if let Some(h) = checksum.as_mut() {
            h.update(&bytes);
        }
        match sealing.as_mut() {
            Some(seal) => {
                if let Some(h) = seal.etag.as_mut() {
                    h.update(&bytes);
                }
                seal.encryptor
                    .push(&bytes, &mut pending)
                    .map_err(|e| CoreError::Internal(e.to_string()))?;
            }
            None => pending.extend_from_slice(&bytes),
        }
        if pending.len() >= WRITE_BATCH {
            writer.write_all_blocking(&pending)?;
            pending.clear();
        }
    }
    let mut keyed_etag = None;
    if let Some(seal) = sealing.take() {
        seal.encryptor
            .finish(&mut pending)
            .map_err(|e| CoreError::Internal(e.to_string()))?;
        keyed_etag = seal.etag.map(coffer_sse::PartEtagHasher::finish_hex);
    }
    writer.write_all_blocking(&pending)?;
    Ok(WrittenBlob {
        writer,
        plaintext_len,
        keyed_etag,
        md5: md5.map(|h| h.finalize().into()),
        checksum: checksum.map(ChecksumHasher::finalize_base64),
    })
}

pub(crate) fn decode_md5(b64: &str) -> Result<[u8; 16], CoreError> {
    BASE64
        .decode(b64.trim())
        .ok()
        .and_then(|v| <[u8; 16]>::try_from(v).ok())
        .ok_or(CoreError::InvalidDigest)
}

pub(crate) fn random_etag() -> Result<String, CoreError> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| CoreError::Internal("CSPRNG failure".into()))?;
    Ok(hex::encode(bytes))
}

/// Best-effort removal of a replaced or deleted record's blobs; GC catches what this misses.
pub(crate) fn remove_blobs(store: &Store, record: &ObjectRecord) {
    for seg in &record.segments {
        if let Some(id) = BlobId::parse(&seg.blob)
            && let Err(e) = store.blobs().remove_blocking(&id)
        {
            tracing::warn!(blob = %seg.blob, error = %e, "could not remove a replaced blob; GC will retry");
        }
    }
}
