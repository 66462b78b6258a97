//! Chunked AES-256-GCM object encryption (the STREAM construction).
//!
//! Owns: the on-disk ciphertext layout of an SSE-C object (or of one
//! multipart part), deriving the per-stream key from the data key, and
//! incremental encryption/decryption with range support.
//!
//! Layout: the plaintext is cut into chunks of [`CHUNK_SIZE`] bytes (the last
//! one may be shorter; a 0-byte stream is one empty chunk). Each chunk is
//! stored as ciphertext || 16-byte tag. Chunk `i` uses the nonce
//! `0x00 || i (u64 BE) || 0x00 0x00 || last`, so every chunk is bound to its
//! position and to whether it ends the stream; the key is unique per stream,
//! which binds chunks to their stream.
//!
//! Must never: release plaintext from a chunk whose tag has not verified,
//! decide "last chunk" from the data rather than from the recorded plaintext
//! length, or reuse a (data key, salt, part number) for a second stream.

use std::ops::Range;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::{hkdf, rand};

use crate::envelope::{CryptoError, DataKey};

/// Plaintext bytes per chunk.
pub const CHUNK_SIZE: usize = 64 * 1024;
/// AES-GCM tag length.
pub const TAG_LEN: usize = 16;
/// Stored bytes of a full chunk.
pub const SEALED_CHUNK_SIZE: usize = CHUNK_SIZE + TAG_LEN;

const STREAM_INFO_PREFIX: &[u8] = b"coffer/ssec/stream/v1";

/// Number of chunks of a stream: `max(1, ceil(len / CHUNK_SIZE))`.
pub fn chunk_count(plaintext_len: u64) -> u64 {
    Layout::DEFAULT.chunk_count(plaintext_len)
}

/// Stored length of a stream of `plaintext_len` bytes.
pub fn ciphertext_len(plaintext_len: u64) -> u64 {
    Layout::DEFAULT.ciphertext_len(plaintext_len)
}

/// Per-stream HKDF salt; store it with the object (it is not secret).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StreamSalt(pub [u8; 16]);

impl StreamSalt {
    /// Fresh random salt. Use a new one for every stream written, including
    /// a re-upload of the same part number.
    pub fn random() -> Result<Self, CryptoError> {
        let mut salt = [0u8; 16];
        rand::fill(&mut salt).map_err(|_| CryptoError::Random)?;
        Ok(Self(salt))
    }
}

impl DataKey {
    /// The key for one stream: HKDF-SHA256(ikm = DEK, salt, info =
    /// "coffer/ssec/stream/v1" || part_number (u32 BE)). Use part number 1
    /// for a single-PUT object.
    pub fn stream_key(
        &self,
        part_number: u32,
        salt: &StreamSalt,
    ) -> Result<StreamKey, CryptoError> {
        let part = part_number.to_be_bytes();
        let info: [&[u8]; 2] = [STREAM_INFO_PREFIX, &part];
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &salt.0).extract(self.secret());
        // Expanded straight into the AEAD key: the key bytes never sit in a
        // buffer of ours.
        let okm = prk.expand(&info, &AES_256_GCM)?;
        Ok(StreamKey {
            key: LessSafeKey::new(UnboundKey::from(okm)),
        })
    }
}

/// The AEAD key of one stream. Redacted `Debug`, no `Clone`.
pub struct StreamKey {
    key: LessSafeKey,
}

impl std::fmt::Debug for StreamKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StreamKey(<redacted>)")
    }
}

impl StreamKey {
    /// Seals `buf` (≤ CHUNK_SIZE plaintext) in place and appends the 16-byte tag.
    ///
    /// Refuses chunks the format cannot hold at that position: more than
    /// `CHUNK_SIZE` bytes, a non-last chunk shorter than `CHUNK_SIZE`, or an
    /// empty last chunk after index 0. Reserve `TAG_LEN` spare capacity to
    /// avoid a reallocation.
    pub fn seal_chunk(&self, index: u64, last: bool, buf: &mut Vec<u8>) -> Result<(), CryptoError> {
        Layout::DEFAULT.check_chunk(index, last, buf.len())?;
        self.key
            .seal_in_place_append_tag(chunk_nonce(index, last), Aad::empty(), buf)?;
        Ok(())
    }

    /// `buf` = ciphertext || tag; verifies the tag and decrypts in place;
    /// returns the plaintext prefix. On failure `buf` holds no plaintext
    /// that may be used.
    pub fn open_chunk<'a>(
        &self,
        index: u64,
        last: bool,
        buf: &'a mut [u8],
    ) -> Result<&'a mut [u8], ChunkError> {
        if buf.len() < TAG_LEN {
            return Err(ChunkError::Truncated);
        }
        if buf.len() > SEALED_CHUNK_SIZE {
            return Err(ChunkError::TooLong);
        }
        self.key
            .open_in_place(chunk_nonce(index, last), Aad::empty(), buf)
            .map_err(|_| ChunkError::Authentication { chunk: index })
    }

    /// Appends `plain` sealed as chunk `index` to `out`, encrypting in
    /// `out`'s own storage (one copy of the plaintext, no temporary buffer).
    fn seal_append(
        &self,
        layout: Layout,
        index: u64,
        last: bool,
        plain: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), CryptoError> {
        layout.check_chunk(index, last, plain.len())?;
        out.reserve(plain.len() + TAG_LEN);
        let start = out.len();
        out.extend_from_slice(plain);
        let sealed = out
            .get_mut(start..)
            .ok_or(CryptoError::Unspecified)
            .and_then(|tail| {
                self.key
                    .seal_in_place_separate_tag(chunk_nonce(index, last), Aad::empty(), tail)
                    .map_err(CryptoError::from)
            });
        match sealed {
            Ok(tag) => {
                out.extend_from_slice(tag.as_ref());
                Ok(())
            }
            Err(e) => {
                // Never leave plaintext in the caller's ciphertext buffer.
                out.truncate(start);
                Err(e)
            }
        }
    }
}

/// Nonce for chunk `index`: `0x00 || index (u64 BE) || 0x00 0x00 || last`.
fn chunk_nonce(index: u64, last: bool) -> Nonce {
    let mut n = [0u8; NONCE_LEN];
    n[1..9].copy_from_slice(&index.to_be_bytes());
    n[11] = u8::from(last);
    Nonce::assume_unique_for_key(n)
}

/// Why decryption failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// A chunk's tag did not verify: wrong key, tampering, reordering,
    /// truncation at a chunk boundary, or a chunk from another stream.
    #[error("chunk {chunk} failed authentication")]
    Authentication {
        /// Index of the failing chunk.
        chunk: u64,
    },
    /// The ciphertext ended before the span (or a chunk) was complete.
    #[error("ciphertext truncated")]
    Truncated,
    /// More ciphertext than the span (or a chunk) can hold.
    #[error("ciphertext longer than expected")]
    TooLong,
}

/// Chunk geometry. Always [`CHUNK_SIZE`] in production; tests use tiny
/// chunks so that every range of multi-chunk objects can be checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    chunk: usize,
}

impl Layout {
    const DEFAULT: Self = Self { chunk: CHUNK_SIZE };

    fn chunk_u64(self) -> u64 {
        self.chunk as u64
    }

    fn chunk_count(self, plaintext_len: u64) -> u64 {
        plaintext_len.div_ceil(self.chunk_u64()).max(1)
    }

    // Saturating arithmetic here and below: lengths come from stored
    // metadata, and absurd values must not panic (they fail later instead).
    fn ciphertext_len(self, plaintext_len: u64) -> u64 {
        plaintext_len.saturating_add(
            self.chunk_count(plaintext_len)
                .saturating_mul(TAG_LEN as u64),
        )
    }

    /// Plaintext bytes in chunk `index` of a stream of `plaintext_len` bytes.
    fn chunk_plain_len(self, plaintext_len: u64, index: u64) -> usize {
        let start = index.saturating_mul(self.chunk_u64());
        // min() with the chunk size makes the cast lossless.
        plaintext_len.saturating_sub(start).min(self.chunk_u64()) as usize
    }

    fn sealed_chunk_u64(self) -> u64 {
        self.chunk_u64() + TAG_LEN as u64
    }

    fn check_chunk(self, index: u64, last: bool, len: usize) -> Result<(), CryptoError> {
        let ok = if last {
            len <= self.chunk && (len > 0 || index == 0)
        } else {
            len == self.chunk
        };
        if ok {
            Ok(())
        } else {
            Err(CryptoError::InvalidChunk { index, len })
        }
    }

    fn full_span(self, plaintext_len: u64) -> CipherSpan {
        CipherSpan {
            first_chunk: 0,
            last_chunk: self.chunk_count(plaintext_len) - 1,
            cipher_offset: 0,
            cipher_len: self.ciphertext_len(plaintext_len),
            skip_front: 0,
            plaintext_len_out: plaintext_len,
        }
    }

    fn span_for_range(self, plaintext_len: u64, start: u64, end_inclusive: u64) -> CipherSpan {
        if plaintext_len == 0 {
            return self.full_span(0);
        }
        // The caller validates the range; clamp rather than panic if it didn't.
        let end = end_inclusive.min(plaintext_len - 1);
        let start = start.min(end);

        let chunk = self.chunk_u64();
        let first_chunk = start / chunk;
        let last_chunk = end / chunk;
        let cipher_offset = first_chunk.saturating_mul(self.sealed_chunk_u64());
        let cipher_end = if last_chunk + 1 == self.chunk_count(plaintext_len) {
            self.ciphertext_len(plaintext_len)
        } else {
            (last_chunk + 1).saturating_mul(self.sealed_chunk_u64())
        };
        CipherSpan {
            first_chunk,
            last_chunk,
            cipher_offset,
            cipher_len: cipher_end.saturating_sub(cipher_offset),
            // Less than one chunk, so it fits.
            skip_front: (start - first_chunk * chunk) as usize,
            plaintext_len_out: end - start + 1,
        }
    }
}

/// Encrypts a plaintext stream pushed in arbitrary pieces. Holds back up to
/// one chunk so the last chunk can be flagged without knowing the length up
/// front.
///
/// Memory: one chunk of plaintext. Full chunks that are already known not to
/// be last are encrypted directly in `out` (one copy of each byte); only the
/// held-back tail of each push goes through the internal buffer.
pub struct StreamEncryptor {
    key: StreamKey,
    layout: Layout,
    pending: Vec<u8>,
    next_index: u64,
    total: u64,
    // Set when sealing failed half-way through a push: the stream state is
    // then unknown, so every later call fails rather than emit a bad stream.
    failed: bool,
}

impl std::fmt::Debug for StreamEncryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamEncryptor")
            .field("next_index", &self.next_index)
            .field("total", &self.total)
            .finish_non_exhaustive()
    }
}

impl StreamEncryptor {
    /// Starts a stream at chunk 0.
    pub fn new(key: StreamKey) -> Self {
        Self::with_layout(key, Layout::DEFAULT)
    }

    fn with_layout(key: StreamKey, layout: Layout) -> Self {
        Self {
            key,
            layout,
            pending: Vec::new(),
            next_index: 0,
            total: 0,
            failed: false,
        }
    }

    /// Appends sealed chunks (each `SEALED_CHUNK_SIZE` bytes, never the
    /// held-back last one) to `out`.
    /// After an error the encryptor is unusable: every later call fails.
    pub fn push(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), CryptoError> {
        if self.failed {
            return Err(CryptoError::Unspecified);
        }
        let result = self.push_inner(data, out);
        self.failed = result.is_err();
        result
    }

    fn push_inner(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), CryptoError> {
        let chunk = self.layout.chunk;
        let mut data = data;

        // Top up the held-back chunk first.
        let take = (chunk - self.pending.len()).min(data.len());
        if take > 0 {
            if self.pending.capacity() == 0 {
                self.pending.reserve_exact(chunk);
            }
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            self.total = self.total.saturating_add(take as u64);
        }
        if data.is_empty() {
            return Ok(());
        }

        // More data follows, so the (full) held-back chunk is not the last.
        self.key
            .seal_append(self.layout, self.next_index, false, &self.pending, out)?;
        self.pending.clear();
        self.next_index += 1;
        self.total = self.total.saturating_add(data.len() as u64);

        // Full chunks followed by more data: seal straight from `data`.
        while data.len() > chunk {
            let (this, rest) = data.split_at(chunk);
            self.key
                .seal_append(self.layout, self.next_index, false, this, out)?;
            self.next_index += 1;
            data = rest;
        }
        // 1..=chunk bytes: might be the last chunk, hold back.
        self.pending.extend_from_slice(data);
        Ok(())
    }

    /// Seals the held-back final chunk (possibly empty) as last; appends it
    /// to `out`. Returns total plaintext bytes.
    pub fn finish(self, out: &mut Vec<u8>) -> Result<u64, CryptoError> {
        if self.failed {
            return Err(CryptoError::Unspecified);
        }
        self.key
            .seal_append(self.layout, self.next_index, true, &self.pending, out)?;
        Ok(self.total)
    }
}

/// Which ciphertext bytes a plaintext range needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CipherSpan {
    /// First chunk to read.
    pub first_chunk: u64,
    /// Last chunk to read (inclusive).
    pub last_chunk: u64,
    /// Offset of `first_chunk` in the stored stream.
    pub cipher_offset: u64,
    /// Stored bytes to read from `cipher_offset`.
    pub cipher_len: u64,
    /// Plaintext bytes to drop from the front of `first_chunk`.
    pub skip_front: usize,
    /// Plaintext bytes the decryptor will produce.
    pub plaintext_len_out: u64,
}

/// The span for plaintext bytes `start..=end_inclusive`.
///
/// Requires `start <= end_inclusive < plaintext_len` (the caller validates;
/// out-of-range input is clamped, never a panic). For a 0-byte stream use
/// [`full_span`]`(0)`.
pub fn span_for_range(plaintext_len: u64, start: u64, end_inclusive: u64) -> CipherSpan {
    Layout::DEFAULT.span_for_range(plaintext_len, start, end_inclusive)
}

/// All chunks (for a 0-byte stream: the one empty chunk, `plaintext_len_out` 0).
pub fn full_span(plaintext_len: u64) -> CipherSpan {
    Layout::DEFAULT.full_span(plaintext_len)
}

/// Decrypts the ciphertext of a span, pushed in arbitrary pieces, verifying
/// each chunk's tag before releasing any of its bytes, and trimming to the
/// requested range.
///
/// Two ways in: [`StreamDecryptor::push`] takes ciphertext in arbitrary pieces
/// and appends plaintext to a `Vec` (memory: at most one sealed chunk, only for
/// a chunk split across pushes; whole chunks are copied once into `out` and
/// decrypted there); [`StreamDecryptor::open_in_place`] decrypts whole chunks
/// where they were read, without any copy. After an error, every further
/// call returns that error.
pub struct StreamDecryptor {
    key: StreamKey,
    layout: Layout,
    plaintext_len: u64,
    final_chunk: u64,
    next_index: u64,
    last_index: u64,
    skip_front: usize,
    remaining_out: u64,
    partial: Vec<u8>,
    done: bool,
    failed: Option<ChunkError>,
}

impl std::fmt::Debug for StreamDecryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamDecryptor")
            .field("plaintext_len", &self.plaintext_len)
            .field("next_index", &self.next_index)
            .field("last_index", &self.last_index)
            .field("done", &self.done)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl StreamDecryptor {
    /// `plaintext_len` is the stream's recorded length: it alone decides
    /// chunk sizes and which chunk is last. `span` says which chunks will be
    /// pushed (from [`span_for_range`] or [`full_span`]).
    pub fn new(key: StreamKey, plaintext_len: u64, span: CipherSpan) -> Self {
        Self::with_layout(key, plaintext_len, span, Layout::DEFAULT)
    }

    fn with_layout(key: StreamKey, plaintext_len: u64, span: CipherSpan, layout: Layout) -> Self {
        let final_chunk = layout.chunk_count(plaintext_len) - 1;
        // A span from span_for_range is always in bounds; clamp a foreign one
        // instead of panicking.
        let last_index = span.last_chunk.min(final_chunk);
        let first_index = span.first_chunk.min(last_index);
        Self {
            key,
            layout,
            plaintext_len,
            final_chunk,
            next_index: first_index,
            last_index,
            skip_front: span.skip_front,
            remaining_out: span.plaintext_len_out,
            partial: Vec::new(),
            done: false,
            failed: None,
        }
    }

    /// Appends the verified plaintext of every chunk completed by `cipher`
    /// to `out`. On error, `out` is left as it was before the failing chunk.
    pub fn push(&mut self, cipher: &[u8], out: &mut Vec<u8>) -> Result<(), ChunkError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let result = self.push_inner(cipher, out);
        if let Err(e) = result {
            self.failed = Some(e);
            self.partial = Vec::new();
        }
        result
    }

    /// Error if the span's bytes were not all received (truncation).
    pub fn finish(self) -> Result<(), ChunkError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        if self.done {
            Ok(())
        } else {
            Err(ChunkError::Truncated)
        }
    }

    fn current_sealed_len(&self) -> usize {
        self.layout
            .chunk_plain_len(self.plaintext_len, self.next_index)
            + TAG_LEN
    }

    fn push_inner(&mut self, cipher: &[u8], out: &mut Vec<u8>) -> Result<(), ChunkError> {
        let mut cipher = cipher;
        while !cipher.is_empty() {
            if self.done {
                return Err(ChunkError::TooLong);
            }
            let need = self.current_sealed_len();
            if self.partial.is_empty() && cipher.len() >= need {
                // Whole chunk available: no intermediate buffer.
                let (this, rest) = cipher.split_at(need);
                self.open_append(this, out)?;
                cipher = rest;
            } else {
                if self.partial.capacity() < need {
                    self.partial.reserve_exact(need - self.partial.len());
                }
                let take = (need - self.partial.len()).min(cipher.len());
                self.partial.extend_from_slice(&cipher[..take]);
                cipher = &cipher[take..];
                if self.partial.len() == need {
                    let sealed = std::mem::take(&mut self.partial);
                    let opened = self.open_append(&sealed, out);
                    // Keep the allocation for the next straddling chunk.
                    self.partial = sealed;
                    self.partial.clear();
                    opened?;
                }
            }
        }
        Ok(())
    }

    /// Copies one sealed chunk into `out`, opens it there and trims it to the
    /// requested range. On failure `out` is truncated back, so no
    /// unauthenticated byte is ever visible to the caller.
    fn open_append(&mut self, sealed: &[u8], out: &mut Vec<u8>) -> Result<(), ChunkError> {
        let start = out.len();
        out.extend_from_slice(sealed);
        let opened = match out.get_mut(start..) {
            Some(tail) => self.open_current(tail),
            None => Err(ChunkError::Truncated),
        };
        let plain_len = match opened {
            Ok(n) => n,
            Err(e) => {
                out.truncate(start);
                return Err(e);
            }
        };
        let (skip, keep) = self.consume_current(plain_len);
        if skip > 0 && keep > 0 {
            out.copy_within(start + skip..start + skip + keep, start);
        }
        out.truncate(start + keep);
        Ok(())
    }

    /// Verifies and decrypts, in place, the sealed chunks that fill `buf`
    /// exactly (the span's next chunks, in order, each whole), and appends to
    /// `plain` the ranges of `buf` that now hold requested plaintext: one per
    /// chunk that contributes bytes, tags and trimmed bytes left out.
    ///
    /// This is the read path's form of [`Self::push`]: no copy, no buffer of
    /// its own. Every chunk of `buf` is authenticated before this returns
    /// `Ok`. On error `plain` is left as it was and nothing in `buf` may be
    /// used (the chunks before the failing one did verify, but callers drop the
    /// whole buffer); the decryptor then stays failed. A `buf` that ends inside
    /// a chunk is [`ChunkError::Truncated`], one that runs past the span
    /// [`ChunkError::TooLong`]. It must not follow a `push` that left a chunk
    /// incomplete (that, too, is `Truncated`).
    pub fn open_in_place(
        &mut self,
        buf: &mut [u8],
        plain: &mut Vec<Range<usize>>,
    ) -> Result<(), ChunkError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let mark = plain.len();
        let result = self.open_in_place_inner(buf, plain);
        if let Err(e) = result {
            plain.truncate(mark);
            self.failed = Some(e);
            self.partial = Vec::new();
        }
        result
    }

    fn open_in_place_inner(
        &mut self,
        buf: &mut [u8],
        plain: &mut Vec<Range<usize>>,
    ) -> Result<(), ChunkError> {
        if !self.partial.is_empty() {
            return Err(ChunkError::Truncated);
        }
        let mut at = 0;
        while at < buf.len() {
            if self.done {
                return Err(ChunkError::TooLong);
            }
            let end = at + self.current_sealed_len();
            let sealed = buf.get_mut(at..end).ok_or(ChunkError::Truncated)?;
            let plain_len = self.open_current(sealed)?;
            let (skip, keep) = self.consume_current(plain_len);
            if keep > 0 {
                plain.push(at + skip..at + skip + keep);
            }
            at = end;
        }
        Ok(())
    }

    /// Verifies and decrypts the current chunk (`sealed` = its ciphertext ||
    /// tag) in place; returns its plaintext length.
    fn open_current(&self, sealed: &mut [u8]) -> Result<usize, ChunkError> {
        let index = self.next_index;
        let last = index == self.final_chunk;
        self.key
            .key
            .open_in_place(chunk_nonce(index, last), Aad::empty(), sealed)
            .map(|p| p.len())
            .map_err(|_| ChunkError::Authentication { chunk: index })
    }

    /// Moves past the current chunk, whose `plain_len` bytes verified, and
    /// says which of them the range wants: `(skip, keep)` from its start.
    fn consume_current(&mut self, plain_len: usize) -> (usize, usize) {
        let skip = std::mem::take(&mut self.skip_front).min(plain_len);
        // Bounded by plain_len (a usize), so the cast back is lossless.
        let keep = ((plain_len - skip) as u64).min(self.remaining_out) as usize;
        self.remaining_out -= keep as u64;
        if self.next_index >= self.last_index {
            self.done = true;
        } else {
            self.next_index += 1;
        }
        (skip, keep)
    }
}

#[cfg(test)]
mod tests;
