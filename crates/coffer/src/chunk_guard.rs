//! A bound on aws-chunked request bodies, in front of s3s's decoder.
//!
//! s3s 0.14.1 buffers each aws-chunked chunk whole, at whatever size the client declares, so a
//! declared 1 GiB chunk costs the server 1 GiB of memory. [`ChunkGuard`] wraps the raw request
//! body, follows the aws-chunked framing as bytes go by, and fails the body as soon as a chunk
//! header declares more than [`MAX_CHUNK_SIZE`] or a header line runs past
//! [`MAX_HEADER_LINE`] without its CRLF. Frames are passed on untouched (the same `Bytes`,
//! no copy); only header bytes are looked at, data bytes are skipped by count, and the state is
//! a few integers whatever the body's size. It never decodes, verifies signatures or reads
//! trailers: s3s still does all of that on the bytes it passes.
//!
//! The guard's framing must never be looser than s3s's, or a client could show the guard small
//! chunks while s3s sees a large one. So it refuses what s3s would read differently: a size of
//! more than 8 hex digits (s3s's `hex_u32` reads only the first 8), a bare LF or CR in a header,
//! and data not followed by CRLF.
//!
//! Its errors reach the handler wrapped by s3s as a body-stream error; their text carries
//! `ChunkTooLarge`, `TrailersTooLarge` or `FormatError`, which `coffer-s3` maps to
//! `InvalidRequest` (400).

use std::pin::Pin;
use std::task::{Context, Poll};

use http::HeaderMap;
use hyper::body::{Body, Bytes, Frame, SizeHint};

/// The largest chunk a client may declare. botocore sends 64 KiB to 1 MiB chunks, the AWS SDKs
/// at most a few MiB.
pub const MAX_CHUNK_SIZE: u64 = 16 * 1024 * 1024;
/// The longest chunk header line (`<hex size>[;extensions]\r\n`). A signed header is 83 bytes.
pub const MAX_HEADER_LINE: usize = 4 * 1024;
/// The most bytes allowed after the final zero-size chunk (trailer lines and the last CRLF);
/// s3s buffers these and applies the same limit itself.
pub const MAX_TRAILER_SECTION: usize = 16 * 1024;
/// s3s parses the size with nom's `hex_u32`, which stops after 8 digits.
const MAX_SIZE_DIGITS: u8 = 8;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Whether a request's body is aws-chunked and so must go through a [`ChunkGuard`].
pub fn is_aws_chunked(headers: &HeaderMap) -> bool {
    let streaming_sha = headers
        .get_all("x-amz-content-sha256")
        .iter()
        .any(|v| v.as_bytes().starts_with(b"STREAMING-"));
    let chunked_encoding = headers
        .get_all(http::header::CONTENT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| coding.trim().eq_ignore_ascii_case("aws-chunked"));
    streaming_sha || chunked_encoding
}

/// Why a [`ChunkGuard`] failed the body.
#[derive(Debug, thiserror::Error)]
pub enum ChunkGuardError {
    #[error("aws-chunked ChunkTooLarge: a chunk declares more than {limit} bytes")]
    ChunkTooLarge { limit: u64 },
    #[error("aws-chunked TrailersTooLarge: more than {limit} bytes after the final chunk")]
    TrailersTooLarge { limit: usize },
    #[error("aws-chunked FormatError: {0}")]
    FormatError(&'static str),
}

/// Where the parser stands in the aws-chunked framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// Inside a chunk header line.
    Header {
        line_len: usize,
        digits: u8,
        size: u64,
        part: HeaderPart,
    },
    /// Inside a chunk's data, with this many bytes to go.
    Data {
        remaining: u64,
    },
    /// After a chunk's data, expecting its CR, then its LF.
    DataCr,
    DataLf,
    /// After the final zero-size chunk's header: trailer lines and the last CRLF.
    Trailers {
        seen: usize,
    },
    /// An error was returned; the body is over.
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HeaderPart {
    Size,
    Extensions,
    /// A CR was seen; only LF may follow.
    Cr,
}

const HEADER_START: Framing = Framing::Header {
    line_len: 0,
    digits: 0,
    size: 0,
    part: HeaderPart::Size,
};

/// Wraps a request body and fails it when its aws-chunked framing would make s3s buffer an
/// unbounded chunk. See the module documentation.
#[derive(Debug)]
pub struct ChunkGuard<B> {
    inner: B,
    framing: Framing,
}

impl<B> ChunkGuard<B> {
    pub fn new(inner: B) -> Self {
        Self {
            inner,
            framing: HEADER_START,
        }
    }

    /// Advances the framing over `bytes`; on error the state becomes `Failed`.
    fn inspect(&mut self, bytes: &[u8]) -> Result<(), ChunkGuardError> {
        match advance(self.framing, bytes) {
            Ok(next) => {
                self.framing = next;
                Ok(())
            }
            Err(e) => {
                self.framing = Framing::Failed;
                Err(e)
            }
        }
    }
}

/// The framing state after `bytes`, touching each header byte once and skipping data by count.
fn advance(mut state: Framing, bytes: &[u8]) -> Result<Framing, ChunkGuardError> {
    use ChunkGuardError::FormatError;
    let mut i = 0;
    while i < bytes.len() {
        match &mut state {
            Framing::Data { remaining } => {
                let available = (bytes.len() - i) as u64;
                let skip = available.min(*remaining);
                // `skip` <= `available`, which came from a usize.
                i += usize::try_from(skip).unwrap_or(usize::MAX);
                *remaining -= skip;
                if *remaining == 0 {
                    state = Framing::DataCr;
                }
            }
            Framing::DataCr => {
                if bytes[i] != b'\r' {
                    return Err(FormatError("chunk data not followed by CRLF"));
                }
                state = Framing::DataLf;
                i += 1;
            }
            Framing::DataLf => {
                if bytes[i] != b'\n' {
                    return Err(FormatError("chunk data not followed by CRLF"));
                }
                state = HEADER_START;
                i += 1;
            }
            Framing::Trailers { seen } => {
                *seen = seen.saturating_add(bytes.len() - i);
                if *seen > MAX_TRAILER_SECTION {
                    return Err(ChunkGuardError::TrailersTooLarge {
                        limit: MAX_TRAILER_SECTION,
                    });
                }
                i = bytes.len();
            }
            Framing::Failed => return Err(FormatError("body read after an error")),
            Framing::Header {
                line_len,
                digits,
                size,
                part,
            } => {
                let b = bytes[i];
                i += 1;
                *line_len += 1;
                if *line_len > MAX_HEADER_LINE {
                    return Err(FormatError("chunk header line too long"));
                }
                match *part {
                    HeaderPart::Size => match b {
                        b';' | b'\r' if *digits == 0 => {
                            return Err(FormatError("chunk header without a size"));
                        }
                        b';' => *part = HeaderPart::Extensions,
                        b'\r' => *part = HeaderPart::Cr,
                        _ => {
                            let digit = (b as char)
                                .to_digit(16)
                                .ok_or(FormatError("chunk size is not hexadecimal"))?;
                            *digits += 1;
                            *size = *size * 16 + u64::from(digit);
                            // Checked before the digit count, so a huge size is named as such.
                            if *size > MAX_CHUNK_SIZE {
                                return Err(ChunkGuardError::ChunkTooLarge {
                                    limit: MAX_CHUNK_SIZE,
                                });
                            }
                            if *digits > MAX_SIZE_DIGITS {
                                return Err(FormatError("chunk size has more than 8 digits"));
                            }
                        }
                    },
                    HeaderPart::Extensions => match b {
                        b'\r' => *part = HeaderPart::Cr,
                        b'\n' => return Err(FormatError("bare LF in a chunk header")),
                        _ => {}
                    },
                    HeaderPart::Cr => {
                        if b != b'\n' {
                            return Err(FormatError("bare CR in a chunk header"));
                        }
                        state = if *size == 0 {
                            Framing::Trailers { seen: 0 }
                        } else {
                            Framing::Data { remaining: *size }
                        };
                    }
                }
            }
        }
    }
    Ok(state)
}

impl<B> Body for ChunkGuard<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.framing == Framing::Failed {
            return Poll::Ready(None);
        }
        let frame = match std::task::ready!(Pin::new(&mut self.inner).poll_frame(cx)) {
            None => return Poll::Ready(None),
            Some(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
            Some(Ok(frame)) => frame,
        };
        if let Some(data) = frame.data_ref()
            && let Err(e) = self.inspect(data)
        {
            return Poll::Ready(Some(Err(Box::new(e))));
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.framing == Framing::Failed || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::task::Waker;

    use super::*;

    /// A body that yields the given frames, then ends.
    struct Frames(VecDeque<Bytes>);

    impl Body for Frames {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
        }
    }

    /// Drives a guard over `frames`: the bytes passed on, and the error if one came.
    fn run(frames: Vec<Bytes>) -> (Vec<u8>, Option<String>) {
        let mut guard = ChunkGuard::new(Frames(frames.into()));
        let mut cx = Context::from_waker(Waker::noop());
        let mut out = Vec::new();
        loop {
            match Pin::new(&mut guard).poll_frame(&mut cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    out.extend_from_slice(&frame.into_data().expect("data frame"))
                }
                Poll::Ready(Some(Err(e))) => {
                    // The body is over after an error.
                    assert!(matches!(
                        Pin::new(&mut guard).poll_frame(&mut cx),
                        Poll::Ready(None)
                    ));
                    return (out, Some(e.to_string()));
                }
                Poll::Ready(None) => return (out, None),
                Poll::Pending => unreachable!("test bodies are always ready"),
            }
        }
    }

    fn split_at(body: &[u8], at: usize) -> Vec<Bytes> {
        vec![
            Bytes::copy_from_slice(&body[..at]),
            Bytes::copy_from_slice(&body[at..]),
        ]
    }

    fn one_byte_frames(body: &[u8]) -> Vec<Bytes> {
        body.iter().map(|b| Bytes::copy_from_slice(&[*b])).collect()
    }

    fn data(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    const SIG: &str = "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648";

    /// STREAMING-AWS4-HMAC-SHA256-PAYLOAD: signed chunks, a signed zero chunk, a final CRLF.
    /// Data bytes include CR, LF and ';' to show they are never read as framing.
    fn signed_stream() -> Vec<u8> {
        let mut b = Vec::new();
        for (len, seed) in [(0x1000_usize, 1_u8), (17, 13), (1, 10)] {
            b.extend_from_slice(format!("{len:x};chunk-signature={SIG}\r\n").as_bytes());
            b.extend_from_slice(&data(len, seed));
            b.extend_from_slice(b"\r\n");
        }
        b.extend_from_slice(format!("0;chunk-signature={SIG}\r\n\r\n").as_bytes());
        b
    }

    /// STREAMING-UNSIGNED-PAYLOAD-TRAILER as botocore sends it.
    fn unsigned_trailer_stream() -> Vec<u8> {
        let mut b = Vec::new();
        for (len, seed) in [(0x2000_usize, 7_u8), (0xA, b'\r')] {
            b.extend_from_slice(format!("{len:X}\r\n").as_bytes());
            b.extend_from_slice(&data(len, seed));
            b.extend_from_slice(b"\r\n");
        }
        b.extend_from_slice(b"0\r\nx-amz-checksum-crc32:sOO8/Q==\r\n\r\n");
        b
    }

    /// STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER: signed chunks, trailer with its signature.
    fn signed_trailer_stream() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(format!("400;chunk-signature={SIG}\r\n").as_bytes());
        b.extend_from_slice(&data(0x400, 3));
        b.extend_from_slice(format!("\r\n0;chunk-signature={SIG}\r\n").as_bytes());
        b.extend_from_slice(b"x-amz-checksum-crc32c:sOO8/Q==\r\n");
        b.extend_from_slice(format!("x-amz-trailer-signature:{SIG}\r\n\r\n").as_bytes());
        b
    }

    #[test]
    fn valid_streams_pass_through_byte_identical_at_every_split() {
        for body in [
            signed_stream(),
            unsigned_trailer_stream(),
            signed_trailer_stream(),
        ] {
            for at in 0..=body.len() {
                let (out, err) = run(split_at(&body, at));
                assert_eq!(err, None, "split at {at}");
                assert_eq!(out, body, "split at {at}");
            }
            let (out, err) = run(one_byte_frames(&body));
            assert_eq!(err, None);
            assert_eq!(out, body);
            let (out, err) = run(vec![Bytes::copy_from_slice(&body)]);
            assert_eq!(err, None);
            assert_eq!(out, body);
        }
    }

    #[test]
    fn frames_are_passed_on_without_copying() {
        let body = Bytes::from(unsigned_trailer_stream());
        let mut guard = ChunkGuard::new(Frames(vec![body.clone()].into()));
        let mut cx = Context::from_waker(Waker::noop());
        let Poll::Ready(Some(Ok(frame))) = Pin::new(&mut guard).poll_frame(&mut cx) else {
            panic!("expected a frame");
        };
        assert_eq!(frame.into_data().unwrap().as_ptr(), body.as_ptr());
    }

    #[test]
    fn a_chunk_of_exactly_the_limit_is_allowed() {
        let mut head = b"1000000\r\n".to_vec();
        head.extend_from_slice(&[0u8; 4096]);
        let (out, err) = run(vec![Bytes::from(head.clone())]);
        assert_eq!(err, None);
        assert_eq!(out, head);
    }

    #[test]
    fn an_oversized_declared_chunk_is_refused_within_its_header() {
        let prefix = b"10\r\n0123456789abcdef\r\n".to_vec();
        for header in [
            format!("40000000;chunk-signature={SIG}\r\n"),
            "40000000\r\n".to_owned(),
            "1000001\r\n".to_owned(),
            "ffffffffffffffffffffffff\r\n".to_owned(),
        ] {
            let mut body = prefix.clone();
            body.extend_from_slice(header.as_bytes());
            body.extend_from_slice(&[b'x'; 1 << 16]);
            // Fed one byte at a time, nothing past the header may get through.
            let (out, err) = run(one_byte_frames(&body));
            let err = err.expect("refused");
            assert!(err.contains("ChunkTooLarge"), "{err}");
            assert!(out.len() < prefix.len() + header.len(), "{header}");
        }
    }

    #[test]
    fn a_non_hex_or_missing_size_is_refused() {
        for body in [
            &b"zz\r\nabc"[..],
            b"1g\r\nabc",
            b"\r\nabc",
            b";chunk-signature=00\r\n",
            b"-1\r\n",
            b"000000001\r\nx", // s3s would read 8 digits only
        ] {
            let (_, err) = run(vec![Bytes::copy_from_slice(body)]);
            let err = err.expect("refused");
            assert!(err.contains("FormatError"), "{err}");
        }
    }

    #[test]
    fn a_header_without_crlf_beyond_the_bound_is_refused() {
        let mut body = b"10;".to_vec();
        body.extend_from_slice(&vec![b'a'; 1 << 20]);
        let (out, err) = run(one_byte_frames(&body));
        let err = err.expect("refused");
        assert!(err.contains("FormatError"), "{err}");
        assert!(out.len() <= MAX_HEADER_LINE);
    }

    #[test]
    fn broken_line_ends_are_refused() {
        for body in [
            &b"3\nabc\r\n0\r\n\r\n"[..], // bare LF ends the header
            b"3\rabc\r\n",               // bare CR in the header
            b"3;x=y\nabc\r\n",           // bare LF after an extension
            b"3\r\nabcd\r\n",            // data longer than declared
            b"3\r\nabc\n0\r\n",          // data ends without CR
            b"3\r\nabc\rX",              // CR without LF after data
        ] {
            let (_, err) = run(vec![Bytes::copy_from_slice(body)]);
            let err = err.expect("refused");
            assert!(err.contains("FormatError"), "{err}");
        }
    }

    #[test]
    fn an_oversized_trailer_section_is_refused() {
        let mut body = b"0\r\n".to_vec();
        body.extend_from_slice(&vec![b'a'; MAX_TRAILER_SECTION + 1]);
        let (_, err) = run(split_at(&body, 5));
        assert!(err.expect("refused").contains("TooLarge"));
    }

    #[test]
    fn aws_chunked_requests_are_recognised() {
        let mut h = HeaderMap::new();
        assert!(!is_aws_chunked(&h));
        h.insert("x-amz-content-sha256", "UNSIGNED-PAYLOAD".parse().unwrap());
        assert!(!is_aws_chunked(&h));
        for v in [
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
            "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
        ] {
            h.insert("x-amz-content-sha256", v.parse().unwrap());
            assert!(is_aws_chunked(&h), "{v}");
        }
        let mut h = HeaderMap::new();
        h.insert("content-encoding", "gzip, aws-chunked".parse().unwrap());
        assert!(is_aws_chunked(&h));
        h.insert("content-encoding", "gzip".parse().unwrap());
        assert!(!is_aws_chunked(&h));
    }
}
