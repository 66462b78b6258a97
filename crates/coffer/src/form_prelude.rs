//! Browser POST forms: the fields before the `file` part are read here, once (at most 20 KiB,
//! the limit AWS sets), `${filename}` is replaced in them, and they are checked (fields AWS
//! requires, the SigV2 form signature in constant time, SSE fields the policy must cover); all
//! of it on one parse (`coffer_s3::post_form`). The body s3s reads then replays the frames read
//! here (unchanged and in the same chunks, or the rewritten prelude with its Content-Length
//! fixed) and streams the rest. The file's content is never buffered here.

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

/// Reads a form's prelude, replaces `${filename}` in it and checks it. On a refusal the body
/// comes back with the error so the caller can drain what is left.
pub async fn read<B>(
    req: Request<B>,
    boundary: &str,
    guard: &SigV2Guard,
) -> Result<Request<Replay<B>>, (FormError, Replay<B>)>
where
    B: Body<Data = Bytes> + Unpin,
{
    let (mut parts, mut inner) = req.into_parts();
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
            Prelude::Complete(prelude) if prelude.len > MAX_PRELUDE_BYTES => {
                break Some(Err(FormError::prelude_too_large()));
            }
            Prelude::Complete(prelude) => {
                let Some(new) = prelude.substitute_filename(&buf) else {
                    break Some(Ok(prelude.fields));
                };
                // The checks and s3s read the form with the name in it; parsed again, it must
                // still end where the file starts (a name cannot make new parts).
                break Some(match Prelude::parse(&new, boundary.as_bytes()) {
                    Prelude::Complete(again) if again.len == new.len() => {
                        replace_prelude(&mut parts.headers, &mut frames, &buf, prelude.len, new);
                        Ok(again.fields)
                    }
                    _ => Err(FormError::malformed()),
                });
            }
        }
    };
    let body = Replay { frames, inner };
    if let Some(Ok(fields)) = &outcome {
        parts
            .extensions
            .insert(post_form::PostFormFields(fields.clone()));
    }
    let refusal = match outcome {
        Some(Ok(fields)) => post_form::missing_field(&fields)
            .or_else(|| {
                guard
                    .check_form(|name| post_form::field(&fields, name))
                    .map(FormError::from)
            })
            .or_else(|| post_form::invalid_expiration(&fields))
            .or_else(|| post_form::uncovered_sse_fields(&fields)),
        Some(Err(e)) => Some(e),
        None => None,
    };
    match refusal {
        Some(e) => Err((e, body)),
        None => Ok(Request::from_parts(parts, body)),
    }
}

/// Puts `new` in place of the first `old_len` bytes of what was read (`read`, also held in
/// `frames`), as one data frame followed by the rest read so far, and fixes Content-Length.
fn replace_prelude(
    headers: &mut http::HeaderMap,
    frames: &mut VecDeque<Frame<Bytes>>,
    read: &[u8],
    old_len: usize,
    mut new: Vec<u8>,
) {
    if let Some(length) = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        let length = length
            .saturating_sub(old_len as u64)
            .saturating_add(new.len() as u64);
        headers.insert(
            http::header::CONTENT_LENGTH,
            http::HeaderValue::from(length),
        );
    }
    new.extend_from_slice(read.get(old_len..).unwrap_or_default());
    // Only data was read before the file's headers; a trailers frame (a body that ended) stays
    // after it.
    let others: Vec<_> = frames.drain(..).filter(|f| !f.is_data()).collect();
    frames.push_back(Frame::data(Bytes::from(new)));
    frames.extend(others);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use std::sync::Arc;

    use coffer_s3::{User, UserDirectory, UserSource};

    /// A body that yields the given chunks.
    struct Chunks(VecDeque<Bytes>);

    impl Body for Chunks {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
        }
    }

    const SECRET: &str = "form-secret";

    fn guard() -> SigV2Guard {
        let users = Arc::new(UserDirectory::default());
        users
            .add(User::new("root", "AKFORM", SECRET, UserSource::Root))
            .expect("user");
        SigV2Guard::new(users, None, true)
    }

    fn form(fields: &[(&str, &str)], file: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        for (n, val) in fields {
            v.extend_from_slice(
                format!("--B0\r\nContent-Disposition: form-data; name=\"{n}\"\r\n\r\n{val}\r\n")
                    .as_bytes(),
            );
        }
        v.extend_from_slice(
            b"--B0\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\n",
        );
        v.extend_from_slice(file);
        v.extend_from_slice(b"\r\n--B0--\r\n");
        v
    }

    fn request(body: &[u8], chunk: usize) -> Request<Chunks> {
        let chunks = body.chunks(chunk).map(Bytes::copy_from_slice).collect();
        Request::new(Chunks(chunks))
    }

    fn v2_form(signature: &str, file: &[u8]) -> Vec<u8> {
        let policy = "eyJleHBpcmF0aW9uIjoiMjAzMC0wMS0wMVQwMDowMDowMFoiLCJjb25kaXRpb25zIjpbXX0=";
        form(
            &[
                ("key", "k"),
                ("AWSAccessKeyId", "AKFORM"),
                ("policy", policy),
                ("signature", signature),
            ],
            file,
        )
    }

    #[tokio::test]
    async fn replays_every_byte_in_the_same_chunks() {
        let policy = "eyJleHBpcmF0aW9uIjoiMjAzMC0wMS0wMVQwMDowMDowMFoiLCJjb25kaXRpb25zIjpbXX0=";
        let sig = coffer_s3::sigv2::sign(SECRET, policy);
        let file = vec![7u8; 100_000];
        let body = v2_form(&sig, &file);
        for chunk in [1, 7, 64, 4096, body.len()] {
            let req = read(request(&body, chunk), "B0", &guard())
                .await
                .map_err(|(e, _)| e)
                .expect("a good form");
            let mut replay = req.into_body();
            let mut seen = Vec::new();
            while let Some(Ok(frame)) = replay.frame().await {
                let data = frame.into_data().expect("data");
                assert!(data.len() <= chunk);
                seen.extend_from_slice(&data);
            }
            assert_eq!(seen, body, "chunk {chunk}");
        }
    }

    #[tokio::test]
    async fn refuses_before_the_file() {
        let refused = |body: Vec<u8>| async move {
            match read(request(&body, 1000), "B0", &guard()).await {
                Ok(_) => None,
                Err((e, _)) => Some(e.code),
            }
        };
        assert_eq!(
            refused(v2_form("AAAAAAAAAAAAAAAAAAAAAAAAAAA=", b"x")).await,
            Some("SignatureDoesNotMatch")
        );
        assert_eq!(
            refused(form(&[("policy", "p")], b"x")).await,
            Some("InvalidArgument")
        );
        let pad = "p".repeat(MAX_PRELUDE_BYTES);
        assert_eq!(
            refused(form(&[("key", "k"), ("x-ignore-pad", &pad)], b"x")).await,
            Some("MaxPostPreDataLengthExceededError")
        );
        // Malformed or anonymous forms go on to s3s, which answers them.
        assert_eq!(refused(b"garbage".to_vec()).await, None);
        assert_eq!(refused(form(&[("key", "k")], b"x")).await, None);
    }

    fn named_file_form(fields: &[(&str, &str)], file_name: &str, file: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        for (n, val) in fields {
            v.extend_from_slice(
                format!("--B0\r\nContent-Disposition: form-data; name=\"{n}\"\r\n\r\n{val}\r\n")
                    .as_bytes(),
            );
        }
        v.extend_from_slice(
            format!(
                "--B0\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\n\r\n"
            )
            .as_bytes(),
        );
        v.extend_from_slice(file);
        v.extend_from_slice(b"\r\n--B0--\r\n");
        v
    }

    #[tokio::test]
    async fn the_file_name_is_put_in_and_the_length_fixed() {
        let file = vec![9u8; 50_000];
        let body = named_file_form(
            &[
                ("key", "in/${filename}"),
                ("x-amz-meta-from", "${filename}!"),
            ],
            "C:\\docs\\report.pdf",
            &file,
        );
        let want = String::from_utf8_lossy(&body)
            .replace("${filename}", "report.pdf")
            .into_bytes();
        // (A first chunk shorter than the boundary line is not a form to s3s: not from 1.)
        for chunk in [7, 64, 4096, body.len()] {
            let mut req = request(&body, chunk);
            req.headers_mut()
                .insert(http::header::CONTENT_LENGTH, body.len().into());
            let req = read(req, "B0", &guard())
                .await
                .map_err(|(e, _)| e)
                .expect("an anonymous form goes on");
            let length: usize = req.headers()[http::header::CONTENT_LENGTH]
                .to_str()
                .expect("ascii")
                .parse()
                .expect("a number");
            assert_eq!(length, want.len(), "chunk {chunk}");
            let seen = req.into_body().collect().await.expect("body").to_bytes();
            assert_eq!(seen.as_ref(), want.as_slice(), "chunk {chunk}");
        }
    }

    #[tokio::test]
    async fn the_checks_read_the_substituted_form() {
        let refused = |body: Vec<u8>| async move {
            match read(request(&body, 100), "B0", &guard()).await {
                Ok(_) => None,
                Err((e, _)) => Some(e.code),
            }
        };
        // The key is the file's name: present.
        assert_eq!(
            refused(named_file_form(&[("key", "${filename}")], "a.txt", b"x")).await,
            None
        );
        // A file named like the boundary would make a new part of a field: refused, not
        // handed to s3s as a form other than the one checked.
        assert_eq!(
            refused(named_file_form(
                &[("key", "k"), ("x-amz-meta-a", "${filename}")],
                "--B0",
                b"x"
            ))
            .await,
            Some("MalformedPOSTRequest")
        );
    }
}
