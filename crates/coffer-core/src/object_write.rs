//! PutObject: body stream → hashes → (SSE-C chunk cipher) → blob → metadata commit. A blob of
//! at most `coffer_store::INLINE_MAX` stored bytes stays in memory and is committed inside the
//! metadata transaction; a larger one is a temp file, fsynced and renamed before that commit.
//!
//! Hashing, encryption and file writes run on one blocking thread per upload, fed through a
//! small bounded channel, so the reactor threads only move bytes off the socket and memory
//! stays bounded whatever the object size.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use coffer_sse::{StreamEncryptor, StreamSalt};
use coffer_store::{EncryptionRecord, ObjectRecord, Segment, Store, StoredBlob};
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

/// Where a new blob may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BlobPlace {
    /// In the metadata store when its stored bytes end within the inline limit, else a file.
    InlineIfSmall,
    /// Always a file (multipart parts, whose records are not object versions).
    File,
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
                BlobPlace::InlineIfSmall,
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
        let writer = written.writer;

        let last_modified_ms = now_ms();
        let mut record = ObjectRecord {
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
                blob: writer.id().as_str().to_owned(),
                part_number: 1,
                size,
                stream_salt: stream_salt.map(|s| s.0),
                etag: etag.clone(),
                checksum: None,
                // Set once the writer says where the bytes went.
                inline: false,
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
                // A file blob is made durable first; inline bytes go in the record's transaction.
                let stored = writer.commit_blocking()?;
                record.segments[0].inline = stored.is_inline();
                let file = match &stored {
                    StoredBlob::File(id) => Some(id.clone()),
                    StoredBlob::Inline(_) => None,
                };
                let condition: Option<coffer_store::SharedWriteCondition> = if conditions.is_empty()
                {
                    None
                } else {
                    Some(std::sync::Arc::new(move |c: Option<&ObjectRecord>| {
                        conditions.check(c)
                    }))
                };
                match store.meta().put_object(
                    &bucket,
                    &key,
                    record,
                    stored.into_inline(),
                    condition,
                ) {
                    Ok(outcome) => {
                        for old in &outcome.dropped {
                            remove_blobs(store, old);
                        }
                        Ok(outcome)
                    }
                    Err(e) => {
                        // The record never committed: its blob file is ours to remove.
                        if let Some(id) = file {
                            let _ = store.blobs().remove_blocking(&id);
                        }
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

    /// Receives a body into a new blob and checks it against everything the client declared:
    /// length, Content-MD5, and the `x-amz-checksum-*` value (header or trailer).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn receive_body(
        &self,
        body: ByteStream<BoxError>,
        place: BlobPlace,
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
                place,
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

    /// Streams `body` into a new blob. On any error the temp file (if the blob got one) is
    /// removed (the writer's `Drop`).
    ///
    /// A body whose declared length keeps its stored bytes within the inline limit is hashed
    /// (and encrypted) right here, on the request's task: that is a few microseconds of work,
    /// less than the thread hand-offs of the pipeline, and the declared length is enforced, so
    /// such a body can never grow into file I/O on this task. Every other body goes through
    /// the pipeline: a bounded channel to one blocking thread that hashes, encrypts and writes.
    async fn write_blob(
        &self,
        body: ByteStream<BoxError>,
        place: BlobPlace,
        want_md5: bool,
        checksum: Option<ChecksumHasher>,
        sealing: Option<Sealing>,
        expected_len: Option<u64>,
    ) -> Result<WrittenBlob, CoreError> {
        let sealed = sealing.is_some();
        let capacity = expected_len
            .map_or(WRITE_BATCH, |n| {
                usize::try_from(n).map_or(WRITE_BATCH, |n| n.min(WRITE_BATCH))
            })
            .saturating_add(if sealed {
                coffer_sse::SEALED_CHUNK_SIZE
            } else {
                0
            });
        let sink = BodySink::new(want_md5, checksum, sealing, capacity);
        match place {
            BlobPlace::InlineIfSmall => {
                // No I/O until the body outgrows the inline limit.
                let writer = self.store().blobs().writer()?;
                let stored = expected_len.map(|n| {
                    if sealed {
                        coffer_sse::ciphertext_len(n)
                    } else {
                        n
                    }
                });
                if stored.is_some_and(|n| n <= coffer_store::INLINE_MAX as u64) {
                    return self
                        .receive_small_body(body, writer, sink, expected_len)
                        .await;
                }
                self.pipe_body(body, writer, sink, expected_len).await
            }
            BlobPlace::File => {
                let writer = self
                    .blocking(|store| Ok(store.blobs().create_blocking()?))
                    .await?;
                self.pipe_body(body, writer, sink, expected_len).await
            }
        }
    }

    /// Receives a small body on this task (see `write_blob`).
    async fn receive_small_body(
        &self,
        mut body: ByteStream<BoxError>,
        mut writer: coffer_store::BlobWriter,
        mut sink: BodySink,
        expected_len: Option<u64>,
    ) -> Result<WrittenBlob, CoreError> {
        let mut received: u64 = 0;
        while let Some(item) = body.next().await {
            let bytes = item.map_err(CoreError::Body)?;
            received += bytes.len() as u64;
            if expected_len.is_some_and(|n| received > n) {
                return Err(CoreError::IncompleteBody);
            }
            sink.push(&bytes)?;
        }
        let (pending, done) = sink.finish()?;
        if !writer.write_inline(&pending) {
            // Not reached while the length check above holds; if it ever is, the bytes go to a
            // file as any larger body's would, off this task.
            writer = self
                .blocking(move |_| {
                    writer.write_all_blocking(&pending)?;
                    Ok(writer)
                })
                .await?;
        }
        Ok(done.into_written(writer))
    }

    /// Feeds `body` through a bounded channel to a blocking thread that hashes, encrypts and
    /// writes it.
    async fn pipe_body(
        &self,
        mut body: ByteStream<BoxError>,
        writer: coffer_store::BlobWriter,
        sink: BodySink,
        expected_len: Option<u64>,
    ) -> Result<WrittenBlob, CoreError> {
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(PIPELINE_DEPTH);
        let task = tokio::task::spawn_blocking(move || write_pipeline(writer, rx, sink));

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

/// Hashes, encrypts and batches a body's bytes on their way to a blob writer.
struct BodySink {
    md5: Option<md5::Md5>,
    checksum: Option<ChecksumHasher>,
    sealing: Option<Sealing>,
    /// Stored bytes not yet handed to the writer.
    pending: Vec<u8>,
    plaintext_len: u64,
}

/// What a finished body sink knows about the body.
struct BodyDigests {
    plaintext_len: u64,
    md5: Option<[u8; 16]>,
    keyed_etag: Option<String>,
    checksum: Option<String>,
}

impl BodyDigests {
    fn into_written(self, writer: coffer_store::BlobWriter) -> WrittenBlob {
        WrittenBlob {
            writer,
            plaintext_len: self.plaintext_len,
            md5: self.md5,
            keyed_etag: self.keyed_etag,
            checksum: self.checksum,
        }
    }
}

impl BodySink {
    fn new(
        want_md5: bool,
        checksum: Option<ChecksumHasher>,
        sealing: Option<Sealing>,
        capacity: usize,
    ) -> Self {
        Self {
            md5: want_md5.then(md5::Md5::new),
            checksum,
            sealing,
            pending: Vec::with_capacity(capacity),
            plaintext_len: 0,
        }
    }

    fn push(&mut self, bytes: &[u8]) -> Result<(), CoreError> {
        self.plaintext_len += bytes.len() as u64;
        if let Some(h) = self.md5.as_mut() {
            h.update(bytes);
        }
        if let Some(h) = self.checksum.as_mut() {
            h.update(bytes);
        }
        match self.sealing.as_mut() {
            Some(seal) => {
                if let Some(h) = seal.etag.as_mut() {
                    h.update(bytes);
                }
                seal.encryptor
                    .push(bytes, &mut self.pending)
                    .map_err(|e| CoreError::Internal(e.to_string()))?;
            }
            None => self.pending.extend_from_slice(bytes),
        }
        Ok(())
    }

    /// Seals the last chunk; returns the stored bytes still pending and the digests.
    fn finish(mut self) -> Result<(Vec<u8>, BodyDigests), CoreError> {
        let mut keyed_etag = None;
        if let Some(seal) = self.sealing.take() {
            seal.encryptor
                .finish(&mut self.pending)
                .map_err(|e| CoreError::Internal(e.to_string()))?;
            keyed_etag = seal.etag.map(coffer_sse::PartEtagHasher::finish_hex);
        }
        Ok((
            self.pending,
            BodyDigests {
                plaintext_len: self.plaintext_len,
                md5: self.md5.map(|h| h.finalize().into()),
                keyed_etag,
                checksum: self.checksum.map(ChecksumHasher::finalize_base64),
            },
        ))
    }
}

fn write_pipeline(
    mut writer: coffer_store::BlobWriter,
    mut rx: tokio::sync::mpsc::Receiver<Bytes>,
    mut sink: BodySink,
) -> Result<WrittenBlob, CoreError> {
    while let Some(bytes) = rx.blocking_recv() {
        sink.push(&bytes)?;
        if sink.pending.len() >= WRITE_BATCH {
            writer.write_all_blocking(&sink.pending)?;
            sink.pending.clear();
        }
    }
    let (pending, done) = sink.finish()?;
    writer.write_all_blocking(&pending)?;
    Ok(done.into_written(writer))
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

/// Best-effort removal of a replaced or deleted record's blob files; GC catches what this
/// misses. (Its inline bytes, if any, went with the transaction that dropped it.)
pub(crate) fn remove_blobs(store: &Store, record: &ObjectRecord) {
    store.remove_dropped_blob_files_blocking(record);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Encryption, WriteConditions};

    async fn coffer() -> (tempfile::TempDir, Coffer) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_and_recover(dir.path()).unwrap();
        let coffer = Coffer::new(store, [1; 32]).unwrap();
        coffer
            .create_bucket("b", "o", "us-east-1", None)
            .await
            .unwrap();
        (dir, coffer)
    }

    fn request(key: &str, expected_len: Option<u64>, content_md5: Option<&[u8]>) -> PutObject {
        PutObject {
            bucket: "b".into(),
            key: key.into(),
            expected_len,
            content_md5: content_md5.map(|b| BASE64.encode(md5::Md5::digest(b))),
            checksum: ExpectedChecksum::None,
            metadata: ObjectMetadata::default(),
            encryption: Encryption::from_parts(None, None),
            conditions: WriteConditions::default(),
        }
    }

    fn body(pieces: Vec<Result<&'static [u8], &'static str>>) -> ByteStream<BoxError> {
        Box::pin(futures::stream::iter(pieces.into_iter().map(|p| {
            p.map(Bytes::from_static)
                .map_err(|e| Box::new(std::io::Error::other(e)) as BoxError)
        })))
    }

    /// Small bodies are received on the request's task; what they declared is enforced there
    /// exactly as in the pipeline, and a refused body leaves nothing behind.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn small_bodies_are_checked_like_any_other() {
        let (dir, coffer) = coffer().await;
        let put = |key: &'static str, len, md5, pieces| {
            let coffer = coffer.clone();
            async move {
                coffer
                    .put_object(request(key, len, md5), body(pieces))
                    .await
            }
        };
        // More bytes than declared, fewer, a body that fails, a wrong Content-MD5.
        assert!(matches!(
            put("long", Some(4), None, vec![Ok(b"abc"), Ok(b"de")]).await,
            Err(CoreError::IncompleteBody)
        ));
        assert!(matches!(
            put("short", Some(9), None, vec![Ok(b"abc")]).await,
            Err(CoreError::IncompleteBody)
        ));
        assert!(matches!(
            put("broken", Some(9), None, vec![Ok(b"abc"), Err("reset")]).await,
            Err(CoreError::Body(_))
        ));
        assert!(matches!(
            put("md5", Some(3), Some(b"xyz"), vec![Ok(b"abc")]).await,
            Err(CoreError::BadDigest(_))
        ));
        for key in ["long", "short", "broken", "md5"] {
            assert!(coffer.store().meta().object("b", key).unwrap().is_none());
        }
        assert_eq!(coffer.store().meta().inline_blob_count().unwrap(), 0);
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
        // And a good one, in pieces, with and without a declared length.
        let done = put("ok", Some(6), Some(b"abcdef"), vec![Ok(b"abc"), Ok(b"def")])
            .await
            .unwrap();
        assert_eq!(done.etag, hex::encode(md5::Md5::digest(b"abcdef")));
        put("undeclared", None, None, vec![Ok(b"abc"), Ok(b"def")])
            .await
            .unwrap();
        for key in ["ok", "undeclared"] {
            let rec = coffer.store().meta().object("b", key).unwrap().unwrap();
            assert!(rec.segments[0].inline, "{key}");
            assert_eq!(
                coffer
                    .store()
                    .meta()
                    .inline_blob(&rec.segments[0].blob)
                    .unwrap()
                    .unwrap(),
                b"abcdef"
            );
        }
    }
}
