//! Browser POST forms: the fields before the `file` part are read here, once (at most 20 KiB,
//! the limit AWS sets), `${filename}` is replaced in them, and the fields AWS requires are
//! checked (`coffer_s3::post_form`). The form then goes to `coffer_s3::BrowserPost` with the
//! body positioned at the file's first byte: the file's content is never buffered here.

use bytes::Bytes;
use coffer_core::BoxError;
use coffer_s3::PostForm;
use coffer_s3::post_form::{self, FormError, MAX_PRELUDE_BYTES, Prelude};
use http_body::Body;
use http_body_util::BodyExt as _;
use hyper::Request;
use zeroize::Zeroizing;

/// Reads a form's prelude, replaces `${filename}` in it and checks its fields. A refused form's
/// body is dropped (the caller's wrapper drains it, so the client reads the answer).
pub async fn read<B>(
    req: Request<B>,
    boundary: &str,
) -> Result<(http::request::Parts, PostForm), FormError>
where
    B: Body<Data = Bytes> + Send + Sync + Unpin + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let (parts, mut body) = req.into_parts();
    // The fields may hold an SSE-C key: wiped when done (room for the usual prelude is taken
    // at once, so growing rarely leaves a copy behind).
    let mut buf = Zeroizing::new(Vec::with_capacity(MAX_PRELUDE_BYTES + 16 * 1024));
    let mut prelude = loop {
        match body.frame().await {
            Some(Ok(frame)) => {
                let Some(data) = frame.data_ref() else {
                    continue;
                };
                buf.extend_from_slice(data);
                // Only a line end can complete the prelude: a client sending it a byte at a
                // time does not make it parsed again at every byte.
                if !data.contains(&b'\n') && buf.len() <= MAX_PRELUDE_BYTES {
                    continue;
                }
            }
            // A body that ended (or broke) before the file part is no form.
            _ => return Err(FormError::malformed()),
        }
        match Prelude::parse(&buf, boundary.as_bytes()) {
            Prelude::Incomplete if buf.len() > MAX_PRELUDE_BYTES => {
                return Err(FormError::prelude_too_large());
            }
            Prelude::Incomplete => {}
            Prelude::Malformed => return Err(FormError::malformed()),
            Prelude::Complete(prelude) if prelude.len > MAX_PRELUDE_BYTES => {
                return Err(FormError::prelude_too_large());
            }
            Prelude::Complete(prelude) => break prelude,
        }
    };
    prelude.substitute_filename();
    if let Some(e) = post_form::missing_field(&prelude.fields) {
        return Err(e);
    }
    let first = Bytes::copy_from_slice(buf.get(prelude.len..).unwrap_or_default());
    let rest = body.map_err(|e| Box::new(e) as BoxError).into_data_stream();
    Ok((
        parts,
        PostForm {
            fields: prelude.fields,
            boundary: boundary.to_owned(),
            first,
            rest: Box::pin(rest),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::convert::Infallible;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use futures::StreamExt as _;
    use http_body::Frame;

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

    fn form(fields: &[(&str, &str)], file_name: &str, file: &[u8]) -> Vec<u8> {
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

    fn request(body: &[u8], chunk: usize) -> Request<Chunks> {
        let chunks = body.chunks(chunk).map(Bytes::copy_from_slice).collect();
        Request::new(Chunks(chunks))
    }

    /// Everything the form hands on after its fields.
    async fn rest_of(form: PostForm) -> Vec<u8> {
        let mut seen = form.first.to_vec();
        let mut rest = form.rest;
        while let Some(Ok(chunk)) = rest.next().await {
            seen.extend_from_slice(&chunk);
        }
        seen
    }

    #[tokio::test]
    async fn hands_on_every_byte_after_the_fields() {
        let file = vec![7u8; 100_000];
        let body = form(&[("key", "in/${filename}")], "C:\\docs\\report.pdf", &file);
        let mut after_fields = file.clone();
        after_fields.extend_from_slice(b"\r\n--B0--\r\n");
        for chunk in [1, 7, 64, 4096, body.len()] {
            let (_, form) = read(request(&body, chunk), "B0")
                .await
                .expect("a good form");
            assert_eq!(
                post_form::field(&form.fields, "key"),
                Some("in/report.pdf"),
                "chunk {chunk}"
            );
            assert_eq!(rest_of(form).await, after_fields, "chunk {chunk}");
        }
    }

    #[tokio::test]
    async fn refuses_before_the_file() {
        let refused = |body: Vec<u8>| async move {
            read(request(&body, 1000), "B0").await.err().map(|e| e.code)
        };
        assert_eq!(
            refused(form(&[("policy", "p")], "f", b"x")).await,
            Some("InvalidArgument")
        );
        let pad = "p".repeat(MAX_PRELUDE_BYTES);
        assert_eq!(
            refused(form(&[("key", "k"), ("x-ignore-pad", &pad)], "f", b"x")).await,
            Some("MaxPostPreDataLengthExceededError")
        );
        assert_eq!(
            refused(b"garbage".to_vec()).await,
            Some("MalformedPOSTRequest")
        );
        // A body that ends before the file part.
        let cut = form(&[("key", "k")], "f", b"x");
        assert_eq!(
            refused(cut[..20].to_vec()).await,
            Some("MalformedPOSTRequest")
        );
        // An anonymous form with a key goes on.
        assert_eq!(refused(form(&[("key", "k")], "f", b"x")).await, None);
    }
}
