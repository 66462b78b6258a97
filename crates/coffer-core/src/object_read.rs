//! GetObject and HeadObject: metadata lookup → key check → conditions → range → a reader
//! that reads (and, for SSE-C, verifies and decrypts) only the chunks the range touches.
//!
//! The reader reads into pooled buffers and decrypts there, in place; the response sends
//! slices of those same buffers, so a byte is copied only by the kernel (file to buffer) and
//! by TLS. A body of at most one chunk is read on the request's own task; a longer one on a
//! blocking thread that stays up to `READ_AHEAD` reads ahead of the socket, so reading and
//! decrypting the next bytes overlaps sending these.

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use coffer_sse::{
    CHUNK_SIZE, CustomerKey, DataKey, SEALED_CHUNK_SIZE, StreamDecryptor, StreamSalt,
};
use coffer_store::{BlobReader, ObjectRecord, Segment, Store};

use crate::read_buffer::{READ_BUFFER_LEN, ReadBuffer, ReadBufferPool, SEALED_CHUNKS_PER_READ};
use crate::{ByteStream, Coffer, Conditions, CoreError, RangeSpec};

/// Reads queued between the reader thread and the socket.
const READ_AHEAD: usize = 4;
/// Bytes read per system call for plain objects (the plaintext of one SSE-C read).
const PLAIN_READ: usize = CHUNK_SIZE * SEALED_CHUNKS_PER_READ;
/// Bodies of at most this many stored bytes are read (and decrypted) on the request's own
/// task: one small read costs less than the two thread hand-offs of the pipelined path.
const INLINE_READ_MAX: u64 = SEALED_CHUNK_SIZE as u64;

#[derive(Default)]
pub struct ReadOptions {
    pub range: Option<RangeSpec>,
    pub conditions: Conditions,
    pub customer_key: Option<CustomerKey>,
    /// `?partNumber=N`: read only that part (segment) of the object.
    pub part_number: Option<u32>,
    /// `?versionId=`: read that version instead of the current one.
    pub version_id: Option<String>,
}

pub struct ObjectRead {
    pub record: ObjectRecord,
    /// The bucket has versioning, so the version id is shown.
    pub versioned: bool,
    /// The resolved inclusive byte range, when a range was asked for.
    pub range: Option<(u64, u64)>,
    /// Bytes the body will carry (plaintext).
    pub content_length: u64,
    /// Present for GET, absent for HEAD.
    pub body: Option<ByteStream<io::Error>>,
}

impl Coffer {
    /// The record of the current version (or of `version_id`), for metadata-only operations.
    pub fn object_record(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<ObjectRecord, CoreError> {
        self.bucket(bucket)?;
        let meta = self.store().meta();
        let record = match version_id {
            Some(v) => meta
                .object_version(bucket, key, v)?
                .ok_or(CoreError::NoSuchVersion)?,
            None => meta.object(bucket, key)?.ok_or(CoreError::NoSuchKey)?,
        };
        if record.delete_marker {
            return Err(CoreError::NoSuchKey);
        }
        Ok(record)
    }

    /// Looks up an object and checks the request against it; with `with_body`, also starts
    /// streaming the selected bytes.
    pub fn read_object(
        &self,
        bucket: &str,
        key: &str,
        opts: ReadOptions,
        with_body: bool,
    ) -> Result<ObjectRead, CoreError> {
        // A write that commits between reading the record and opening its blobs unlinks them;
        // reading the (new) record again answers as if the GET had come a moment later.
        let mut attempts = 0;
        loop {
            match self.read_object_once(bucket, key, &opts, with_body) {
                Err(CoreError::Io(e)) if e.kind() == io::ErrorKind::NotFound && attempts < 3 => {
                    attempts += 1
                }
                other => return other,
            }
        }
    }

    fn read_object_once(
        &self,
        bucket: &str,
        key: &str,
        opts: &ReadOptions,
        with_body: bool,
    ) -> Result<ObjectRead, CoreError> {
        let versioned = self
            .store()
            .meta()
            .bucket(bucket)?
            .ok_or(CoreError::NoSuchBucket)?
            .versioning
            .is_some();
        let record = match &opts.version_id {
            Some(v) => {
                let r = self
                    .store()
                    .meta()
                    .object_version(bucket, key, v)?
                    .ok_or(CoreError::NoSuchVersion)?;
                if r.delete_marker {
                    return Err(CoreError::DeleteMarker {
                        version_id: r.exposed_version_id().to_owned(),
                        requested: true,
                        last_modified_ms: r.last_modified_ms,
                    });
                }
                r
            }
            None => {
                let r = self
                    .store()
                    .meta()
                    .object(bucket, key)?
                    .ok_or(CoreError::NoSuchKey)?;
                if r.delete_marker {
                    return Err(CoreError::DeleteMarker {
                        version_id: r.exposed_version_id().to_owned(),
                        requested: false,
                        last_modified_ms: r.last_modified_ms,
                    });
                }
                r
            }
        };
        // Which bytes: a part number the object lacks is an error whatever the key.
        let range = match (opts.part_number, opts.range) {
            (Some(_), Some(_)) => {
                return Err(CoreError::InvalidRequest(
                    "Cannot specify both Range header and partNumber query parameter".into(),
                ));
            }
            (Some(n), None) => part_range(&record, n)?,
            (None, Some(spec)) => Some(spec.resolve(record.size)?),
            (None, None) => None,
        };
        let data_key = crate::encryption::open_object_key(
            self.server_keys(),
            opts.customer_key.as_ref(),
            &record,
            bucket,
            key,
        )?;
        opts.conditions
            .check_read(&record.etag, record.last_modified_ms)?;
        let (start, end_exclusive) = match range {
            Some((s, e)) => (s, e + 1),
            None => (0, record.size),
        };
        let body = if with_body {
            // Open the blobs now, right after the record was read: a blob unlinked later by
            // an overwrite or delete stays readable through its open handle (inline bytes are
            // read here, whole: they are small).
            let opened = open_segments(self.store(), &record.segments, start, end_exclusive)?;
            Some(self.body(opened, data_key)?)
        } else {
            None
        };
        Ok(ObjectRead {
            versioned,
            content_length: end_exclusive - start,
            record,
            range,
            body,
        })
    }

    /// The body of the opened segments: read right here when it is small, else streamed from a
    /// blocking thread. A small body that fails to read or verify fails the request before any
    /// byte is sent.
    fn body(
        &self,
        opened: Vec<OpenSegment>,
        data_key: Option<DataKey>,
    ) -> io::Result<ByteStream<io::Error>> {
        let stored: u64 = opened
            .iter()
            .map(|s| s.stored_len(data_key.is_some()))
            .sum();
        if stored > INLINE_READ_MAX {
            return Ok(stream_segments(
                opened,
                data_key,
                Arc::clone(&self.read_buffers),
            ));
        }
        let mut pieces = Vec::new();
        read_segments(opened, data_key.as_ref(), &Buffers::Exact, &mut |batch| {
            pieces.extend(batch);
            Ok(())
        })?;
        Ok(Box::pin(futures::stream::iter(pieces.into_iter().map(Ok))))
    }
}

/// Streams already opened segments from a blocking thread through a small bounded channel;
/// each item is one read's worth of pieces.
fn stream_segments(
    opened: Vec<OpenSegment>,
    data_key: Option<DataKey>,
    pool: Arc<ReadBufferPool>,
) -> ByteStream<io::Error> {
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Vec<Bytes>>>(READ_AHEAD);
    tokio::task::spawn_blocking(move || {
        let mut send = |batch: Vec<Bytes>| {
            tx.blocking_send(Ok(batch))
                .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "client went away"))
        };
        let read = read_segments(opened, data_key.as_ref(), &Buffers::Pooled(pool), &mut send);
        if let Err(e) = read {
            // The receiver may be gone (client disconnected); nothing more to do then.
            let _ = tx.blocking_send(Err(e));
        }
    });
    let pending = Vec::new().into_iter();
    Box::pin(futures::stream::unfold(
        (rx, pending),
        |(mut rx, mut pending)| async move {
            loop {
                if let Some(piece) = pending.next() {
                    return Some((Ok(piece), (rx, pending)));
                }
                match rx.recv().await? {
                    Ok(batch) => pending = batch.into_iter(),
                    Err(e) => return Some((Err(e), (rx, pending))),
                }
            }
        },
    ))
}

/// The inclusive byte range of part `n`. A single-PUT object is one part, so part 1 is the
/// whole object (an empty object has no bytes to range over, so it answers part 1 whole).
fn part_range(record: &ObjectRecord, n: u32) -> Result<Option<(u64, u64)>, CoreError> {
    let mut start = 0u64;
    for (i, seg) in record.segments.iter().enumerate() {
        if u32::try_from(i + 1).ok() == Some(n) {
            return Ok((seg.size > 0).then(|| (start, start + seg.size - 1)));
        }
        start += seg.size;
    }
    Err(CoreError::InvalidPartNumber)
}

/// Takes one read's pieces, in order: into the channel, or into the inline body.
type Emit<'a> = dyn FnMut(Vec<Bytes>) -> io::Result<()> + 'a;

/// Where read buffers come from.
enum Buffers {
    /// A one-off buffer of the exact size (inline reads).
    Exact,
    Pooled(Arc<ReadBufferPool>),
}

impl Buffers {
    fn take(&self, len: usize) -> ReadBuffer {
        match self {
            Self::Exact => ReadBuffer::exact(len),
            Self::Pooled(pool) => pool.take(len),
        }
    }
}

/// A segment's open blob (a file, or inline bytes) and the plaintext range (segment-relative)
/// to read from it.
struct OpenSegment {
    blob: BlobReader,
    segment: Segment,
    lo: u64,
    hi: u64,
}

impl OpenSegment {
    /// Stored bytes the reader will read for this segment.
    fn stored_len(&self, sealed: bool) -> u64 {
        if sealed {
            coffer_sse::span_for_range(self.segment.size, self.lo, self.hi - 1).cipher_len
        } else {
            self.hi - self.lo
        }
    }
}

/// Opens the blobs holding plaintext bytes `start..end` of an object made of `segments`.
fn open_segments(
    store: &Store,
    segments: &[Segment],
    start: u64,
    end: u64,
) -> io::Result<Vec<OpenSegment>> {
    let mut out = Vec::new();
    let mut seg_start = 0u64;
    for seg in segments {
        let seg_end = seg_start + seg.size;
        let (lo, hi) = (start.max(seg_start), end.min(seg_end));
        if lo < hi {
            out.push(OpenSegment {
                blob: store.open_blob(seg)?,
                segment: seg.clone(),
                lo: lo - seg_start,
                hi: hi - seg_start,
            });
        }
        seg_start = seg_end;
        if seg_start >= end {
            break;
        }
    }
    Ok(out)
}

/// Reads (and for SSE-C, verifies and decrypts) the opened segments in order. (The key of an
/// SSE-C object, empty ones included, was already checked by opening its sealed data key.)
fn read_segments(
    segments: Vec<OpenSegment>,
    data_key: Option<&DataKey>,
    buffers: &Buffers,
    emit: &mut Emit<'_>,
) -> io::Result<()> {
    for s in segments {
        match data_key {
            None => read_plain(&s.blob, s.lo, s.hi, buffers, emit)?,
            Some(dek) => read_sealed(&s.blob, dek, &s.segment, s.lo, s.hi, buffers, emit)?,
        }
    }
    Ok(())
}

fn read_plain(
    blob: &BlobReader,
    mut pos: u64,
    end: u64,
    buffers: &Buffers,
    emit: &mut Emit<'_>,
) -> io::Result<()> {
    while pos < end {
        let len = usize::try_from((end - pos).min(PLAIN_READ as u64)).unwrap_or(PLAIN_READ);
        let mut buf = buffers.take(len);
        blob.read_exact_at(buf.filled_mut(), pos)?;
        pos += len as u64;
        emit(vec![buf.freeze()])?;
    }
    Ok(())
}

/// Reads the chunks holding plaintext `lo..hi` of an encrypted segment, a few whole chunks per
/// read, and opens them in place: only bytes whose chunk verified are emitted, and a stream
/// that ends early fails at `finish`.
fn read_sealed(
    blob: &BlobReader,
    dek: &DataKey,
    seg: &Segment,
    lo: u64,
    hi: u64,
    buffers: &Buffers,
    emit: &mut Emit<'_>,
) -> io::Result<()> {
    let salt = StreamSalt(
        seg.stream_salt
            .ok_or_else(|| io::Error::other("encrypted segment without salt"))?,
    );
    let key = dek
        .stream_key(seg.part_number, &salt)
        .map_err(|e| io::Error::other(e.to_string()))?;
    let span = coffer_sse::span_for_range(seg.size, lo, hi - 1);
    let mut decryptor = StreamDecryptor::new(key, seg.size, span);
    let mut pos = span.cipher_offset;
    let end = span.cipher_offset + span.cipher_len;
    let mut ranges = Vec::with_capacity(SEALED_CHUNKS_PER_READ);
    while pos < end {
        // The span starts on a chunk and every chunk but the stream's last is full, so a read
        // of whole sealed chunks (or of the span's rest) always ends on a chunk boundary.
        let len = usize::try_from((end - pos).min(READ_BUFFER_LEN as u64)).unwrap_or(0);
        let mut buf = buffers.take(len);
        blob.read_exact_at(buf.filled_mut(), pos)?;
        pos += len as u64;
        ranges.clear();
        decryptor
            .open_in_place(buf.filled_mut(), &mut ranges)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        if !ranges.is_empty() {
            let bytes = buf.freeze();
            emit(ranges.iter().map(|r| bytes.slice(r.clone())).collect())?;
        }
    }
    decryptor
        .finish()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
}

#[cfg(test)]
mod tests {
    use futures::StreamExt as _;

    use super::*;
    use crate::{Encryption, ExpectedChecksum, ObjectMetadata, PutObject, WriteConditions};

    const KEY: [u8; 32] = [7; 32];

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

    fn data(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 9) as u8)
            .collect()
    }

    fn customer(ssec: bool) -> Option<CustomerKey> {
        ssec.then(|| CustomerKey::from_raw_for_tests(KEY))
    }

    async fn put(coffer: &Coffer, key: &str, body: &[u8], ssec: bool) {
        let pieces: Vec<Result<Bytes, crate::BoxError>> = body
            .chunks(100_000)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let put = PutObject {
            bucket: "b".into(),
            key: key.into(),
            expected_len: Some(body.len() as u64),
            content_md5: None,
            checksum: ExpectedChecksum::None,
            metadata: ObjectMetadata::default(),
            encryption: Encryption::from_parts(customer(ssec), None),
            conditions: WriteConditions::default(),
        };
        coffer
            .put_object(put, Box::pin(futures::stream::iter(pieces)))
            .await
            .unwrap();
    }

    /// Reads a body until it ends or fails: (bytes received, the error if any).
    async fn get(
        coffer: &Coffer,
        key: &str,
        range: Option<RangeSpec>,
        ssec: bool,
    ) -> Result<(Vec<u8>, Option<io::Error>), CoreError> {
        let opts = ReadOptions {
            range,
            customer_key: customer(ssec),
            ..Default::default()
        };
        let read = coffer.read_object("b", key, opts, true)?;
        let mut body = read.body.unwrap();
        let mut got = Vec::new();
        while let Some(piece) = body.next().await {
            match piece {
                Ok(b) => got.extend_from_slice(&b),
                Err(e) => return Ok((got, Some(e))),
            }
        }
        assert_eq!(got.len() as u64, read.content_length);
        Ok((got, None))
    }

    fn blob_path(coffer: &Coffer, key: &str) -> std::path::PathBuf {
        let record = coffer.object_record("b", key, None).unwrap();
        assert!(!record.segments[0].inline, "{key} is inline, not a file");
        let id = coffer_store::BlobId::parse(&record.segments[0].blob).unwrap();
        coffer.store().blobs().path_of(&id)
    }

    /// Whether each object's one blob went inline, and whether it should have: stored bytes
    /// (SSE-C: plaintext plus one 16-byte tag per chunk) at most `INLINE_MAX`.
    fn assert_placement(coffer: &Coffer, key: &str, size: usize, ssec: bool) {
        let record = coffer.object_record("b", key, None).unwrap();
        let stored = if ssec {
            coffer_sse::span_for_range(size as u64, 0, (size as u64).max(1) - 1).cipher_len
        } else {
            size as u64
        };
        let want = stored <= coffer_store::INLINE_MAX as u64;
        assert_eq!(
            record.segments[0].inline, want,
            "{key}: {size} bytes ({stored} stored)"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn whole_objects_and_odd_ranges_round_trip() {
        let (_dir, coffer) = coffer().await;
        // Empty; stored in the metadata store (up to INLINE_MAX stored bytes: the SSE-C tag
        // counts); read on the request's task (at most one chunk); and streamed over several reads.
        let max = coffer_store::INLINE_MAX;
        let sizes = [
            0usize,
            1,
            4096,
            max - 16,
            max - 15,
            max,
            max + 1,
            CHUNK_SIZE,
            CHUNK_SIZE + 1,
            9 * CHUNK_SIZE + 777,
        ];
        for ssec in [false, true] {
            for (i, &size) in sizes.iter().enumerate() {
                let key = format!("k{i}-{ssec}");
                let body = data(size, i as u8);
                put(&coffer, &key, &body, ssec).await;
                assert_placement(&coffer, &key, size, ssec);
                let (got, err) = get(&coffer, &key, None, ssec).await.unwrap();
                assert!(err.is_none(), "{key}: {err:?}");
                assert!(got == body, "{key}: whole object differs");
                if size == 0 {
                    continue;
                }
                let last = size - 1;
                let mut points = vec![0, 1, size / 3, size / 2 + 1, last];
                for b in [CHUNK_SIZE, 4 * CHUNK_SIZE, 5 * CHUNK_SIZE] {
                    if b + 1 < size {
                        points.extend([b - 1, b, b + 1]);
                    }
                }
                points.retain(|&p| p <= last);
                for &first in &points {
                    for &end in points.iter().filter(|&&e| e >= first) {
                        let range = RangeSpec::Bounded {
                            first: first as u64,
                            last: end as u64,
                        };
                        let (got, err) = get(&coffer, &key, Some(range), ssec).await.unwrap();
                        assert!(err.is_none(), "{key} {first}-{end}: {err:?}");
                        assert!(got == body[first..=end], "{key}: {first}-{end} differs");
                    }
                }
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_tampered_chunk_stops_the_stream_before_its_bytes() {
        let (_dir, coffer) = coffer().await;
        let body = data(10 * CHUNK_SIZE + 5, 3);
        put(&coffer, "t", &body, true).await;
        let path = blob_path(&coffer, "t");
        let mut raw = std::fs::read(&path).unwrap();
        // Chunk 6 sits in the second read (chunks 4 to 7).
        raw[6 * SEALED_CHUNK_SIZE + 123] ^= 0x10;
        std::fs::write(&path, &raw).unwrap();

        let (got, err) = get(&coffer, "t", None, true).await.unwrap();
        let err = err.expect("a tampered chunk must fail the stream");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        // Only the first read's verified chunks went out: nothing of chunks 4..8.
        assert_eq!(got.len(), SEALED_CHUNKS_PER_READ * CHUNK_SIZE);
        assert!(got == body[..got.len()]);

        // A range that starts past the tampered chunk is served intact.
        let range = RangeSpec::From {
            first: 8 * CHUNK_SIZE as u64 + 3,
        };
        let (got, err) = get(&coffer, "t", Some(range), true).await.unwrap();
        assert!(err.is_none());
        assert!(got == body[8 * CHUNK_SIZE + 3..]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_truncated_blob_never_ends_the_stream_cleanly() {
        let (_dir, coffer) = coffer().await;
        let body = data(6 * CHUNK_SIZE + 100, 5);
        put(&coffer, "t", &body, true).await;
        let path = blob_path(&coffer, "t");
        let raw = std::fs::read(&path).unwrap();
        for cut in [1usize, TAG_LEN_U, 116, SEALED_CHUNK_SIZE + 116] {
            std::fs::write(&path, &raw[..raw.len() - cut]).unwrap();
            let (got, err) = get(&coffer, "t", None, true).await.unwrap();
            assert!(err.is_some(), "cut {cut}: the stream ended cleanly");
            assert!(
                got.len() < body.len() && got == body[..got.len()],
                "cut {cut}"
            );
        }
        // A blob cut exactly after the first read: the reads before verified, then the stream fails.
        std::fs::write(&path, &raw[..SEALED_CHUNKS_PER_READ * SEALED_CHUNK_SIZE]).unwrap();
        let (got, err) = get(&coffer, "t", None, true).await.unwrap();
        assert!(err.is_some());
        assert!(got == body[..SEALED_CHUNKS_PER_READ * CHUNK_SIZE]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_small_tampered_object_fails_before_the_response() {
        let (_dir, coffer) = coffer().await;
        // Inline (in the metadata store), and a file of less than one chunk.
        for (key, size) in [("inline", 4096), ("file", 30_000)] {
            let body = data(size, 9);
            put(&coffer, key, &body, true).await;
            let record = coffer.object_record("b", key, None).unwrap();
            let seg = &record.segments[0];
            assert_eq!(seg.inline, key == "inline");
            if seg.inline {
                let mut raw = coffer
                    .store()
                    .meta()
                    .inline_blob(&seg.blob)
                    .unwrap()
                    .unwrap();
                assert_eq!(raw.len(), size + TAG_LEN_U);
                raw[100] ^= 1;
                coffer
                    .store()
                    .meta()
                    .tamper_inline_blob_for_tests(&seg.blob, raw)
                    .unwrap();
            } else {
                let path = blob_path(&coffer, key);
                let mut raw = std::fs::read(&path).unwrap();
                raw[100] ^= 1;
                std::fs::write(&path, &raw).unwrap();
            }
            match get(&coffer, key, None, true).await {
                Err(CoreError::Io(e)) => assert_eq!(e.kind(), io::ErrorKind::InvalidData),
                other => panic!(
                    "{key}: expected a read error, got {:?}",
                    other.map(|(b, e)| (b.len(), e))
                ),
            }
            // The wrong key is still refused by the key check, before any read.
            let opts = ReadOptions {
                customer_key: Some(CustomerKey::from_raw_for_tests([8; 32])),
                ..Default::default()
            };
            assert!(matches!(
                coffer.read_object("b", key, opts, true),
                Err(CoreError::SseWrongKey)
            ));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn inline_ssec_data_is_ciphertext_and_goes_with_its_object() {
        let (_dir, coffer) = coffer().await;
        let body = b"inline plaintext marker ".repeat(40);
        put(&coffer, "s", &body, true).await;
        let record = coffer.object_record("b", "s", None).unwrap();
        assert!(record.segments[0].inline);
        let raw = coffer
            .store()
            .meta()
            .inline_blob(&record.segments[0].blob)
            .unwrap()
            .unwrap();
        assert_eq!(raw.len(), body.len() + TAG_LEN_U);
        assert!(!raw.windows(16).any(|w| body.windows(16).any(|b| b == w)));
        // Overwritten by a plain object, then deleted: its bytes go each time.
        put(&coffer, "s", b"plain now", false).await;
        assert_eq!(
            coffer
                .store()
                .meta()
                .inline_blob(&record.segments[0].blob)
                .unwrap(),
            None
        );
        assert_eq!(coffer.store().meta().inline_blob_count().unwrap(), 1);
        coffer.delete_object("b", "s", None).await.unwrap();
        assert_eq!(coffer.store().meta().inline_blob_count().unwrap(), 0);
    }

    const TAG_LEN_U: usize = coffer_sse::TAG_LEN;
}
