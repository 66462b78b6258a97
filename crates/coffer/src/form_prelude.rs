//! Browser POST forms: the fields before the `file` part are read here (at most 20 KiB, the
//! limit AWS sets), checked (fields AWS requires, the SigV2 form signature in constant time),
//! and handed to s3s again: the body s3s reads replays the frames read here, unchanged and in
//! the same chunks, then streams the rest. The file's content is never buffered here.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use coffer_s3::post_form::{self, FormError, MAX_PRELUDE_BYTES, Prelude};
use coffer_s3::sigv2::SigV2Guard;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt as _;
use hyper::Request;

/// A body that yields frames already read, then the rest of `inner`.
pub struct Replay<B> {
    frames: VecDeque<Frame<Bytes>>,
    inner: B,
}

impl<B> Replay<B> {
    /// Nothing read yet: the body as it is.
    pub fn new(inner: B) -> Self {
        Self {
            frames: VecDeque::new(),
            inner,
        }
    }
}

impl<B> Body for Replay<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        if let Some(frame) = self.frames.pop_front() {
            return Poll::Ready(Some(Ok(frame)));
        }
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let buffered: u64 = self
            .frames
            .iter()
            .filter_map(Frame::data_ref)
            .map(|d| d.len() as u64)
            .sum();
        let inner = self.inner.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower().saturating_add(buffered));
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper.saturating_add(buffered));
        }
        hint
    }
}

/// Reads a form's prelude and checks it. On a refusal the body comes back with the error so
/// the caller can drain what is left.
pub async fn check<B>(
    req: Request<B>,
    boundary: &str,
    guard: &SigV2Guard,
) -> Result<Request<Replay<B>>, (FormError, Replay<B>)>
where
    B: Body<Data = Bytes> + Unpin,
{
    let (parts, mut inner) = req.into_parts();
    let mut frames = VecDeque::new();
    let mut buf: Vec<u8> = Vec::new();
    let outcome = loop {
        match inner.frame().await {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    buf.extend_from_slice(data);
                }
                frames.push_back(frame);
            }
            // An ended or broken body: s3s reads the same bytes and refuses the form itself.
            _ => break None,
        }
        match Prelude::parse(&buf, boundary.as_bytes()) {
            Prelude::Incomplete if buf.len() > MAX_PRELUDE_BYTES => {
                break Some(Err(FormError::prelude_too_large()));
            }
            Prelude::Incomplete => {}
            Prelude::Malformed => break None,
            Prelude::Complete { len, .. } if len > MAX_PRELUDE_BYTES => {
                break Some(Err(FormError::prelude_too_large()));
            }
            Prelude::Complete { fields, .. } => break Some(Ok(fields)),
        }
    };
    let body = Replay { frames, inner };
    let refusal = match outcome {
        Some(Ok(fields)) => post_form::missing_field(&fields)
            .or_else(|| {
                guard
                    .check_form(|name| post_form::field(&fields, name))
                    .map(FormError::from)
            })
            .or_else(|| post_form::uncovered_sse_fields(&fields)),
        Some(Err(e)) => Some(e),
        None => None,
    };
    match refusal {
        Some(e) => Err((e, body)),
        None => Ok(Request::from_parts(parts, body)),
    }
}
