//! Reading the rest of a request body that a handler refused before reading it.
//!
//! When an error answer (wrong key, no such bucket, access denied) goes out before the body
//! was read, dropping the body makes the server close the connection while the client is
//! still sending, and the client then sees a reset instead of the S3 error. This wrapper
//! drains what is left (bounded in bytes and time) in the background so the client reads the
//! answer, the way S3 behaves.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt as _;

/// Drain at most this much of a refused body; beyond it, closing the connection is cheaper.
const MAX_DRAIN_BYTES: u64 = 64 * 1024 * 1024;
const MAX_DRAIN_TIME: Duration = Duration::from_secs(30);

/// For a request sent with `Expect: 100-continue`: whether its body was ever asked for (hyper
/// sends the interim `100 Continue` on the first read). Still unset when the answer goes out,
/// the client was answered instead of invited to send, and the connection must close: the
/// client may not send the body, or send part of it (a chunked terminator), and some clients
/// (botocore) misread the next answer on a connection reused after such an exchange.
#[derive(Clone, Default)]
pub struct ContinueWatch(Arc<AtomicBool>);

impl ContinueWatch {
    /// The watch for a request that expects `100 Continue`, else none.
    pub fn for_request(headers: &http::HeaderMap) -> Option<Self> {
        headers
            .get(http::header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
            .then(Self::default)
    }

    pub fn body_requested(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

pub struct DrainOnDrop<B: Body + Send + Unpin + 'static> {
    inner: Option<B>,
    finished: bool,
    watch: Option<ContinueWatch>,
}

impl<B: Body + Send + Unpin + 'static> DrainOnDrop<B> {
    pub fn new(inner: B, watch: Option<ContinueWatch>) -> Self {
        Self {
            inner: Some(inner),
            finished: false,
            watch,
        }
    }
}

impl<B> Body for DrainOnDrop<B>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        if let Some(w) = &self.watch {
            w.0.store(true, Ordering::Relaxed);
        }
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            self.finished = true;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.as_ref().map(Body::size_hint).unwrap_or_default()
    }
}

impl<B: Body + Send + Unpin + 'static> Drop for DrainOnDrop<B> {
    fn drop(&mut self) {
        let Some(mut body) = self.inner.take() else {
            return;
        };
        if self.finished || body.is_end_stream() {
            return;
        }
        // Never asked for: reading it now would invite the client to send it after its answer.
        if self.watch.as_ref().is_some_and(|w| !w.body_requested()) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let drain = async {
                let mut seen = 0u64;
                while let Some(Ok(frame)) = body.frame().await {
                    if let Some(data) = frame.data_ref() {
                        seen += data.remaining_len();
                        if seen > MAX_DRAIN_BYTES {
                            break;
                        }
                    }
                }
            };
            let _ = tokio::time::timeout(MAX_DRAIN_TIME, drain).await;
        });
    }
}

trait RemainingLen {
    fn remaining_len(&self) -> u64;
}

impl<T: bytes::Buf> RemainingLen for T {
    fn remaining_len(&self) -> u64 {
        self.remaining() as u64
    }
}
