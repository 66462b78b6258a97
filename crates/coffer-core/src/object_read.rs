//! GetObject and HeadObject: metadata lookup → key check → conditions → range → a blocking
//! reader that reads (and, for SSE-C, verifies and decrypts) only the chunks the range
//! touches and hands buffers to the response through a small bounded channel.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt as _;

use bytes::Bytes;
use coffer_sse::{CustomerKey, DataKey, SEALED_CHUNK_SIZE, StreamDecryptor, StreamSalt};
use coffer_store::{BlobId, ObjectRecord, Segment, Store};

use crate::{ByteStream, Coffer, Conditions, CoreError, RangeSpec};

/// Buffers in flight between the reader thread and the socket.
const READ_AHEAD: usize = 4;
/// Sealed chunks read per system call for SSE-C objects (about 1 MiB).
const SEALED_CHUNKS_PER_READ: usize = 16;
/// Bytes read per system call for plain objects.
const PLAIN_READ: usize = 1 << 20;

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
            // an overwrite or delete stays readable through its open handle.
            let opened = open_segments(self.store(), &record.segments, start, end_exclusive)?;
            Some(stream_segments(opened, data_key))
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
}

/// Streams already opened segments from a blocking thread through a small bounded channel.
fn stream_segments(opened: Vec<OpenSegment>, data_key: Option<DataKey>) -> ByteStream<io::Error> {
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(READ_AHEAD);
    tokio::task::spawn_blocking(move || {
        if let Err(e) = read_segments(opened, data_key.as_ref(), &tx) {
            // The receiver may be gone (client disconnected); nothing more to do then.
            let _ = tx.blocking_send(Err(e));
        }
    });
    Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
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

type Sender = tokio::sync::mpsc::Sender<io::Result<Bytes>>;

/// A segment's open blob and the plaintext range (segment-relative) to read from it.
struct OpenSegment {
    file: File,
    segment: Segment,
    lo: u64,
    hi: u64,
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
            let id = BlobId::parse(&seg.blob)
                .ok_or_else(|| io::Error::other("corrupt blob reference"))?;
            out.push(OpenSegment {
                file: File::open(store.blobs().path_of(&id))?,
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
    tx: &Sender,
) -> io::Result<()> {
    for s in segments {
        match data_key {
            None => read_plain(&s.file, s.lo, s.hi, tx)?,
            Some(dek) => read_sealed(&s.file, dek, &s.segment, s.lo, s.hi, tx)?,
        }
    }
    Ok(())
}

fn send(tx: &Sender, buf: Vec<u8>) -> io::Result<()> {
    tx.blocking_send(Ok(Bytes::from(buf)))
        .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "client went away"))
}

fn read_plain(file: &File, mut pos: u64, end: u64, tx: &Sender) -> io::Result<()> {
    while pos < end {
        let len = usize::try_from((end - pos).min(PLAIN_READ as u64)).unwrap_or(PLAIN_READ);
        let mut buf = vec![0u8; len];
        file.read_exact_at(&mut buf, pos)?;
        pos += len as u64;
        send(tx, buf)?;
    }
    Ok(())
}

fn read_sealed(
    file: &File,
    dek: &DataKey,
    seg: &Segment,
    lo: u64,
    hi: u64,
    tx: &Sender,
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
    let step = (SEALED_CHUNK_SIZE * SEALED_CHUNKS_PER_READ) as u64;
    let mut cipher = vec![0u8; SEALED_CHUNK_SIZE * SEALED_CHUNKS_PER_READ];
    while pos < end {
        let len = usize::try_from((end - pos).min(step)).unwrap_or(0);
        file.read_exact_at(&mut cipher[..len], pos)?;
        pos += len as u64;
        let mut out = Vec::with_capacity(len);
        decryptor
            .push(&cipher[..len], &mut out)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        if !out.is_empty() {
            send(tx, out)?;
        }
    }
    decryptor
        .finish()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
}
