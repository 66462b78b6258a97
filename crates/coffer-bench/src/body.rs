//! Request bodies: slices of one in-memory buffer, handed to hyper as `Bytes` clones (no copy).
//!
//! A tagged body replaces the first 16 bytes of every 256 KiB segment with a tag unique to the run, the request
//! and the segment, so a server that deduplicates blocks (Garage, by content hash) still stores every byte. The
//! tag is a separate small frame; the rest of each segment is a slice of the shared buffer.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use crate::stats::Meter;

/// Segment length: frames are at most this long, and each tagged segment starts with a tag.
pub const SEGMENT: usize = 256 << 10;
const TAG_LEN: usize = 16;

/// A request body.
pub enum ReqBody {
    Empty,
    /// A small body built for this request (e.g. the CompleteMultipartUpload XML).
    Full(Option<Bytes>),
    Payload(PayloadBody),
}

/// A slice of the shared random buffer, sent in segments, counting bytes as hyper takes them.
pub struct PayloadBody {
    data: Bytes,
    pos: usize,
    /// `Some((run nonce, request id))` to tag each segment.
    tag: Option<(u32, u64)>,
    /// Whether the tag of the segment at `pos` was sent already.
    tagged_here: bool,
    meter: Meter,
}

impl PayloadBody {
    pub fn new(data: Bytes, tag: Option<(u32, u64)>, meter: Meter) -> PayloadBody {
        PayloadBody {
            data,
            pos: 0,
            tag,
            tagged_here: false,
            meter,
        }
    }

    fn next_chunk(&mut self) -> Option<Bytes> {
        let len = self.data.len();
        if self.pos >= len {
            return None;
        }
        let segment_end = ((self.pos / SEGMENT) + 1) * SEGMENT;
        let end = segment_end.min(len);
        let at_segment_start = self.pos.is_multiple_of(SEGMENT);
        let chunk = match self.tag {
            Some((nonce, request)) if at_segment_start && !self.tagged_here => {
                let segment = (self.pos / SEGMENT) as u32;
                let mut tag = [0u8; TAG_LEN];
                tag[..8].copy_from_slice(&request.to_le_bytes());
                tag[8..12].copy_from_slice(&nonce.to_le_bytes());
                tag[12..].copy_from_slice(&segment.to_le_bytes());
                let n = TAG_LEN.min(end - self.pos);
                self.tagged_here = true;
                let chunk = Bytes::copy_from_slice(&tag[..n]);
                self.pos += n;
                chunk
            }
            _ => {
                let chunk = self.data.slice(self.pos..end);
                self.pos = end;
                self.tagged_here = false;
                chunk
            }
        };
        self.meter.add(chunk.len() as u64);
        Some(chunk)
    }
}

impl Body for ReqBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let chunk = match self.get_mut() {
            ReqBody::Empty => None,
            ReqBody::Full(data) => data.take().filter(|d| !d.is_empty()),
            ReqBody::Payload(p) => p.next_chunk(),
        };
        Poll::Ready(chunk.map(|c| Ok(Frame::data(c))))
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ReqBody::Empty => true,
            ReqBody::Full(data) => data.as_ref().is_none_or(Bytes::is_empty),
            ReqBody::Payload(p) => p.pos >= p.data.len(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        let remaining = match self {
            ReqBody::Empty => 0,
            ReqBody::Full(data) => data.as_ref().map_or(0, Bytes::len),
            ReqBody::Payload(p) => p.data.len().saturating_sub(p.pos),
        };
        SizeHint::with_exact(remaining as u64)
    }
}

/// Hex SHA-256 of everything a body will send (for `--payload signed`), without sending or counting it.
pub fn sha256_hex(body: &PayloadBody) -> String {
    let mut shadow = PayloadBody::new(body.data.clone(), body.tag, Meter::detached());
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    while let Some(chunk) = shadow.next_chunk() {
        ctx.update(&chunk);
    }
    hex::encode(ctx.finish().as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Everything a body sends, in one buffer.
    fn collect(body: &mut PayloadBody) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(chunk) = body.next_chunk() {
            out.extend_from_slice(&chunk);
        }
        out
    }

    #[test]
    fn hash_covers_the_tags() {
        let body = PayloadBody::new(data(SEGMENT + 100), Some((3, 4)), Meter::detached());
        let mut copy = PayloadBody::new(data(SEGMENT + 100), Some((3, 4)), Meter::detached());
        let bytes = collect(&mut copy);
        let want =
            hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &bytes).as_ref());
        assert_eq!(sha256_hex(&body), want);
        // Hashing neither moves nor counts the body.
        assert_eq!(body.pos, 0);
        assert_eq!(body.meter.own(), 0);
    }

    fn data(n: usize) -> Bytes {
        Bytes::from((0..n).map(|i| (i % 251) as u8).collect::<Vec<u8>>())
    }

    #[test]
    fn untagged_body_is_the_buffer() {
        for n in [0, 1, 4096, SEGMENT, SEGMENT + 1, 3 * SEGMENT + 77] {
            let meter = Meter::detached();
            let mut b = PayloadBody::new(data(n), None, meter.clone());
            assert_eq!(collect(&mut b), data(n).to_vec());
            assert_eq!(meter.own(), n as u64);
        }
    }

    #[test]
    fn tagged_body_keeps_length_and_differs_per_request() {
        for n in [1, 15, 16, 17, 4096, SEGMENT, SEGMENT + 5, 3 * SEGMENT + 77] {
            let a = collect(&mut PayloadBody::new(
                data(n),
                Some((9, 1)),
                Meter::detached(),
            ));
            let b = collect(&mut PayloadBody::new(
                data(n),
                Some((9, 2)),
                Meter::detached(),
            ));
            assert_eq!(a.len(), n);
            assert_eq!(b.len(), n);
            assert_ne!(a, b);
            // Outside the tags, the bytes are the buffer's.
            let d = data(n);
            for (i, byte) in a.iter().enumerate() {
                if i % SEGMENT >= TAG_LEN {
                    assert_eq!(*byte, d[i], "offset {i}");
                }
            }
            // Every segment is tagged differently.
            if n >= 2 * SEGMENT {
                assert_ne!(a[..TAG_LEN], a[SEGMENT..SEGMENT + TAG_LEN]);
            }
        }
    }

    #[test]
    fn size_hint_is_exact() {
        let mut b = ReqBody::Payload(PayloadBody::new(
            data(1000),
            Some((1, 1)),
            Meter::detached(),
        ));
        assert_eq!(b.size_hint().exact(), Some(1000));
        assert!(!b.is_end_stream());
        if let ReqBody::Payload(p) = &mut b {
            collect(p);
        }
        assert!(b.is_end_stream());
        assert_eq!(ReqBody::Empty.size_hint().exact(), Some(0));
        assert_eq!(
            ReqBody::Full(Some(Bytes::from_static(b"abc")))
                .size_hint()
                .exact(),
            Some(3)
        );
    }
}
