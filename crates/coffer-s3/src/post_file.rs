//! The `file` part of a browser POST form, as a stream: the bytes that follow the file part's
//! headers, up to the delimiter that ends the part (`CRLF--boundary`), found across chunk edges.
//! At most one delimiter's length is held back between chunks, so memory stays bounded
//! whatever the file's size; the policy's `content-length-range` is enforced as bytes pass
//! (too large: refused at once) and at the end (too small). Whatever follows the delimiter
//! (the closing `--`, ignored later parts) is left unread, as s3s left it.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use coffer_core::BoxError;
use futures::Stream;
use memchr::memmem;

/// The sizes the file may have (bytes, both inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSizeRange {
    pub min: u64,
    pub max: u64,
}

/// Why the file part could not be read whole. `errors.rs` gives each its S3 answer.
#[derive(Debug, thiserror::Error)]
pub enum FilePartError {
    /// More bytes than the policy's content-length-range allows (or than any object may have).
    #[error("the file exceeds the size the form's policy allows")]
    AboveRange,
    /// Fewer bytes than the policy's content-length-range asks for.
    #[error("the file is below the size the form's policy asks for")]
    BelowRange,
    /// The body ended cleanly, but before the delimiter that closes the file part.
    #[error("the form's body ended inside the file part")]
    Unterminated,
    /// The body itself failed (the client went away, ...).
    #[error("request body: {0}")]
    Body(BoxError),
}

enum State {
    Reading,
    /// The delimiter was found; the minimum size is checked on the next poll.
    Delimited,
    Done,
}

/// The file part's bytes, read from a body positioned just after the part's headers.
pub struct FilePart<S> {
    /// Bytes already read past the headers (by the prelude reader), fed first.
    first: Option<Bytes>,
    body: S,
    /// `CRLF--boundary`.
    finder: memmem::Finder<'static>,
    /// The last bytes seen, when they could be the start of the delimiter; always shorter
    /// than it.
    held: Vec<u8>,
    ready: VecDeque<Bytes>,
    len: u64,
    range: FileSizeRange,
    state: State,
}

impl<S> FilePart<S>
where
    S: Stream<Item = Result<Bytes, BoxError>> + Unpin,
{
    pub fn new(boundary: &str, first: Bytes, body: S, range: FileSizeRange) -> Self {
        let mut delimiter = Vec::with_capacity(boundary.len() + 4);
        delimiter.extend_from_slice(b"\r\n--");
        delimiter.extend_from_slice(boundary.as_bytes());
        Self {
            first: Some(first),
            body,
            finder: memmem::Finder::new(&delimiter).into_owned(),
            held: Vec::new(),
            ready: VecDeque::new(),
            len: 0,
            range,
            state: State::Reading,
        }
    }

    /// Takes in the next chunk of the body: queues the file bytes it completes, and tells
    /// whether the delimiter was found.
    fn feed(&mut self, chunk: Bytes) -> bool {
        // The held tail is rare (the last chunk ended like the delimiter begins) and short:
        // joining it to the next chunk costs a copy only then.
        let data = if self.held.is_empty() {
            chunk
        } else {
            let mut joined = BytesMut::with_capacity(self.held.len() + chunk.len());
            joined.extend_from_slice(&self.held);
            joined.extend_from_slice(&chunk);
            self.held.clear();
            joined.freeze()
        };
        if let Some(at) = self.finder.find(&data) {
            self.push(data.slice(..at));
            return true;
        }
        let keep = delimiter_prefix_at_end(&data, self.finder.needle());
        let pass = data.len() - keep;
        self.held.extend_from_slice(&data[pass..]);
        self.push(data.slice(..pass));
        false
    }

    fn push(&mut self, bytes: Bytes) {
        if !bytes.is_empty() {
            self.ready.push_back(bytes);
        }
    }
}

/// The length of the longest end of `data` that is a proper start of `delimiter` (which begins
/// with CR, the only byte worth trying from).
fn delimiter_prefix_at_end(data: &[u8], delimiter: &[u8]) -> usize {
    let longest = data.len().min(delimiter.len().saturating_sub(1));
    let tail = &data[data.len() - longest..];
    memchr::memchr_iter(b'\r', tail)
        .find(|&i| delimiter.starts_with(&tail[i..]))
        .map_or(0, |i| tail.len() - i)
}

impl<S> Stream for FilePart<S>
where
    S: Stream<Item = Result<Bytes, BoxError>> + Unpin,
{
    type Item = Result<Bytes, FilePartError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(bytes) = this.ready.pop_front() {
                this.len = this.len.saturating_add(bytes.len() as u64);
                if this.len > this.range.max {
                    this.state = State::Done;
                    this.ready.clear();
                    return Poll::Ready(Some(Err(FilePartError::AboveRange)));
                }
                return Poll::Ready(Some(Ok(bytes)));
            }
            match this.state {
                State::Done => return Poll::Ready(None),
                State::Delimited => {
                    this.state = State::Done;
                    return Poll::Ready(
                        (this.len < this.range.min).then_some(Err(FilePartError::BelowRange)),
                    );
                }
                State::Reading => {}
            }
            let chunk = match this.first.take() {
                Some(first) => first,
                None => match ready!(Pin::new(&mut this.body).poll_next(cx)) {
                    Some(Ok(chunk)) => chunk,
                    Some(Err(e)) => {
                        this.state = State::Done;
                        return Poll::Ready(Some(Err(FilePartError::Body(e))));
                    }
                    None => {
                        this.state = State::Done;
                        return Poll::Ready(Some(Err(FilePartError::Unterminated)));
                    }
                },
            };
            if this.feed(chunk) {
                this.state = State::Delimited;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt as _;

    const ANY_SIZE: FileSizeRange = FileSizeRange {
        min: 0,
        max: u64::MAX,
    };

    /// The file read from `chunks` (the bytes after the file part's headers).
    fn read(chunks: &[&[u8]], range: FileSizeRange) -> Result<Vec<u8>, FilePartError> {
        let mut parts = chunks.iter().map(|c| Bytes::copy_from_slice(c));
        let first = parts.next().unwrap_or_default();
        let rest: Vec<Result<Bytes, BoxError>> = parts.map(Ok).collect();
        let mut file = FilePart::new("B0und", first, futures::stream::iter(rest), range);
        futures::executor::block_on(async {
            let mut out = Vec::new();
            while let Some(item) = file.next().await {
                out.extend_from_slice(&item?);
            }
            Ok(out)
        })
    }

    #[test]
    fn the_delimiter_split_at_every_position_across_two_chunks() {
        let file: &[u8] = b"abc\r\n--B0un\r\r\n-\r\nend";
        let mut body = file.to_vec();
        body.extend_from_slice(b"\r\n--B0und--\r\n");
        for cut in 0..=body.len() {
            let got = read(&[&body[..cut], &body[cut..]], ANY_SIZE).expect("a whole file");
            assert_eq!(got, file, "cut at {cut}");
        }
        // One byte at a time, too.
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(read(&bytes, ANY_SIZE).expect("a whole file"), file);
    }

    #[test]
    fn crlf_edges() {
        // An empty file: the delimiter right after the headers.
        assert_eq!(read(&[b"\r\n--B0und--\r\n"], ANY_SIZE).expect("empty"), b"");
        // A file that is all line ends, or ends in a CR or a CRLF of its own.
        for file in [
            &b"\r\n\r\n"[..],
            b"x\r",
            b"x\r\n",
            b"\r",
            b"\r\n-",
            b"\r\n--B0un",
        ] {
            let mut body = file.to_vec();
            body.extend_from_slice(b"\r\n--B0und--\r\n");
            for cut in 0..=body.len() {
                let got = read(&[&body[..cut], &body[cut..]], ANY_SIZE).expect("a whole file");
                assert_eq!(got, file, "{file:?} cut at {cut}");
            }
        }
    }

    #[test]
    fn the_boundary_without_its_crlf_is_file_content() {
        let file: &[u8] = b"--B0und\r\nstill the file --B0und--\n--B0und";
        let mut body = file.to_vec();
        body.extend_from_slice(b"\r\n--B0und--\r\n");
        assert_eq!(read(&[&body], ANY_SIZE).expect("a whole file"), file);
    }

    #[test]
    fn what_follows_the_delimiter_is_not_read() {
        let got = read(
            &[b"data\r\n--B0und\r\nContent-Disposition: x\r\n\r\nmore"],
            ANY_SIZE,
        );
        assert_eq!(got.expect("a whole file"), b"data");
    }

    #[test]
    fn a_body_that_ends_inside_the_file_is_refused() {
        for body in [&b"partial data"[..], b"data\r\n--B0un", b"data\r\n", b""] {
            for cut in 0..=body.len() {
                let got = read(&[&body[..cut], &body[cut..]], ANY_SIZE);
                assert!(
                    matches!(got, Err(FilePartError::Unterminated)),
                    "{body:?}: {got:?}"
                );
            }
        }
        let failing: Vec<Result<Bytes, BoxError>> = vec![
            Ok(Bytes::from_static(b"more")),
            Err("connection reset".into()),
        ];
        let mut file = FilePart::new(
            "B0und",
            Bytes::from_static(b"data"),
            futures::stream::iter(failing),
            ANY_SIZE,
        );
        let items: Vec<_> = futures::executor::block_on(file.by_ref().collect());
        assert!(matches!(items.last(), Some(Err(FilePartError::Body(_)))));
        assert!(futures::executor::block_on(file.next()).is_none());
    }

    #[test]
    fn the_size_range_is_enforced() {
        let body = |n: usize| {
            let mut b = vec![b'x'; n];
            b.extend_from_slice(b"\r\n--B0und--\r\n");
            b
        };
        let range = FileSizeRange { min: 3, max: 10 };
        for n in 3..=10 {
            assert_eq!(read(&[&body(n)], range).expect("in range").len(), n);
        }
        assert!(matches!(
            read(&[&body(11)], range),
            Err(FilePartError::AboveRange)
        ));
        assert!(matches!(
            read(&[&body(2)], range),
            Err(FilePartError::BelowRange)
        ));
        // Too large is told while the body still flows, before its end arrives.
        let endless = futures::stream::repeat_with(|| Ok(Bytes::from_static(&[7u8; 4096])));
        let mut file = FilePart::new("B0und", Bytes::new(), endless, range);
        let first = futures::executor::block_on(file.next());
        assert!(matches!(first, Some(Err(FilePartError::AboveRange))));
    }
}
