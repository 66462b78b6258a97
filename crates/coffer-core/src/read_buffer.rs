//! Buffers that object bodies are read into and sent from: fixed-size, reused across requests,
//! and handed to the response as `Bytes` without a copy.
//!
//! A fresh buffer of a few hundred KiB costs a zeroing pass (and often page faults) on every
//! read; a reused one costs nothing but the read itself. A buffer goes back to its pool when
//! the last `Bytes` that points into it is dropped, that is once the socket has taken its bytes.
//!
//! Must never: hand out bytes outside the `len` the current read filled (a reused buffer still
//! holds whatever an earlier request read into it).

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use coffer_sse::SEALED_CHUNK_SIZE;

/// Sealed chunks per read of an SSE-C object: small enough that decrypting the next read
/// overlaps sending this one even for a 1 MiB object, large enough to keep syscalls rare.
pub(crate) const SEALED_CHUNKS_PER_READ: usize = 4;
/// Capacity of a pooled buffer: one read of sealed chunks (256 KiB of plaintext and its tags).
pub(crate) const READ_BUFFER_LEN: usize = SEALED_CHUNK_SIZE * SEALED_CHUNKS_PER_READ;
/// Idle buffers a pool keeps (6 MiB): enough for four streams at full read-ahead (about six
/// buffers each). More concurrent streams allocate the rest; keeping them all idle would hold
/// memory the server's RSS bound (64 MiB + 8 MiB per request) counts at every later request.
const MAX_IDLE: usize = 24;

/// Idle read buffers, each `READ_BUFFER_LEN` initialized bytes.
pub(crate) struct ReadBufferPool {
    idle: Mutex<Vec<Vec<u8>>>,
}

impl ReadBufferPool {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            idle: Mutex::new(Vec::new()),
        })
    }

    /// A buffer whose first `len` bytes (at most `READ_BUFFER_LEN`) are to be filled; their
    /// contents are unspecified until then.
    pub(crate) fn take(self: &Arc<Self>, len: usize) -> ReadBuffer {
        let buf = self
            .idle
            .lock()
            .ok()
            .and_then(|mut idle| idle.pop())
            .unwrap_or_else(|| vec![0u8; READ_BUFFER_LEN]);
        ReadBuffer {
            len: len.min(buf.len()),
            buf,
            pool: Some(Arc::clone(self)),
        }
    }

    fn give_back(&self, buf: Vec<u8>) {
        if buf.len() != READ_BUFFER_LEN {
            return;
        }
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < MAX_IDLE
        {
            idle.push(buf);
        }
    }

    #[cfg(test)]
    fn idle_count(&self) -> usize {
        self.idle.lock().map(|i| i.len()).unwrap_or(0)
    }
}

/// One read's buffer: `len` bytes in use. Pooled, or a one-off of exactly `len` bytes.
pub(crate) struct ReadBuffer {
    buf: Vec<u8>,
    len: usize,
    pool: Option<Arc<ReadBufferPool>>,
}

impl ReadBuffer {
    /// A one-off buffer of `len` zeroed bytes, for reads too small to be worth a pooled one.
    pub(crate) fn exact(len: usize) -> Self {
        Self {
            buf: vec![0u8; len],
            len,
            pool: None,
        }
    }

    /// The bytes in use, to read into (and decrypt in place).
    pub(crate) fn filled_mut(&mut self) -> &mut [u8] {
        let len = self.len;
        &mut self.buf[..len]
    }

    /// The bytes in use, shared without a copy; the buffer returns to its pool when the last
    /// `Bytes` sliced from them is dropped.
    pub(crate) fn freeze(self) -> Bytes {
        Bytes::from_owner(self)
    }
}

impl AsRef<[u8]> for ReadBuffer {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for ReadBuffer {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            pool.give_back(std::mem::take(&mut self.buf));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_when_the_last_slice_is_dropped() {
        let pool = ReadBufferPool::new();
        let mut b = pool.take(10);
        b.filled_mut().copy_from_slice(b"0123456789");
        let bytes = b.freeze();
        assert_eq!(&bytes[..], b"0123456789");
        let tail = bytes.slice(6..);
        drop(bytes);
        assert_eq!(pool.idle_count(), 0, "a slice still points into the buffer");
        assert_eq!(&tail[..], b"6789");
        drop(tail);
        assert_eq!(pool.idle_count(), 1);

        // Reused without zeroing, and only `len` bytes are visible.
        let mut again = pool.take(4);
        assert_eq!(pool.idle_count(), 0);
        assert_eq!(again.filled_mut().len(), 4);
        assert_eq!(again.freeze().len(), 4);
        assert_eq!(pool.idle_count(), 1);
    }

    #[test]
    fn lengths_are_capped_and_idle_buffers_bounded() {
        let pool = ReadBufferPool::new();
        let mut big = pool.take(READ_BUFFER_LEN + 1);
        assert_eq!(big.filled_mut().len(), READ_BUFFER_LEN);
        let held: Vec<ReadBuffer> = (0..MAX_IDLE + 3).map(|_| pool.take(1)).collect();
        drop(big);
        drop(held);
        assert_eq!(pool.idle_count(), MAX_IDLE);
        // A one-off buffer never joins a pool.
        let exact = ReadBuffer::exact(3);
        assert_eq!(exact.as_ref(), &[0, 0, 0]);
    }
}
