//! `${filename}` in a browser POST form. S3 replaces the variable, in every form field, with the
//! name of the uploaded file (what follows the last `/` or `\` of the file part's
//! `Content-Disposition` filename). s3s drops that name when it parses the form, so the form's
//! start (its fields, which precede the file) is read here before s3s routes the request, and
//! rewritten when a field uses the variable. The policy conditions, the authorization and the
//! answer then all see the final key, as on S3. Nothing else about the form is decided here:
//! a form this scan does not understand goes on unchanged, for s3s to judge.

use bytes::Bytes;
use futures::{StreamExt, stream};
use http::{HeaderValue, Method, Request, header};
use http_body::Frame;

/// How much of a form's start is read looking for the file part. S3 caps a form's fields at
/// 20 KB; anything longer goes on unchanged.
const MAX_SCAN_BYTES: usize = 64 * 1024;
const VARIABLE: &[u8] = b"${filename}";

/// The multipart boundary of a POST form upload, if the request is one.
fn form_boundary<B>(req: &Request<B>) -> Option<Vec<u8>> {
    if req.method() != Method::POST {
        return None;
    }
    let ct = req.headers().get(header::CONTENT_TYPE)?.to_str().ok()?;
    let (mime, params) = ct.split_once(';')?;
    if !mime.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.split(';').find_map(|p| {
        let (name, value) = p.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| value.trim().trim_matches('"').as_bytes().to_vec())
            .filter(|b| !b.is_empty())
    })
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

/// The parameters of a `Content-Disposition` value (`form-data; name="key"; filename="a.txt"`),
/// names lower-cased, quotes removed.
fn disposition_params(value: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut i = match value.iter().position(|&b| b == b';') {
        Some(p) => p + 1,
        None => return out,
    };
    while i < value.len() {
        while value
            .get(i)
            .is_some_and(|b| *b == b' ' || *b == b'\t' || *b == b';')
        {
            i += 1;
        }
        let name_start = i;
        while value.get(i).is_some_and(|b| *b != b'=' && *b != b';') {
            i += 1;
        }
        let name = String::from_utf8_lossy(&value[name_start..i])
            .trim()
            .to_ascii_lowercase();
        if value.get(i) != Some(&b'=') {
            continue;
        }
        i += 1;
        let mut v = Vec::new();
        if value.get(i) == Some(&b'"') {
            i += 1;
            // Browsers write `"` as `%22` and never escape with backslashes (the HTML form
            // encoding): a backslash is a Windows path separator here.
            while let Some(&b) = value.get(i) {
                i += 1;
                if b == b'"' {
                    break;
                }
                v.push(b);
            }
        } else {
            while let Some(&b) = value.get(i).filter(|b| **b != b';') {
                v.push(b);
                i += 1;
            }
            v = v.trim_ascii().to_vec();
        }
        if !name.is_empty() {
            out.push((name, v));
        }
    }
    out
}

/// The `Content-Disposition` parameters of one part's header block.
fn part_disposition(headers: &[u8]) -> Vec<(String, Vec<u8>)> {
    headers
        .split(|&b| b == b'\n')
        .find_map(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let colon = line.iter().position(|&b| b == b':')?;
            line[..colon]
                .trim_ascii()
                .eq_ignore_ascii_case(b"content-disposition")
                .then(|| disposition_params(&line[colon + 1..]))
        })
        .unwrap_or_default()
}

#[derive(Debug, PartialEq, Eq)]
enum Scan {
    /// The file part's headers are not in the buffer yet.
    NeedMore,
    /// The form's start, rewritten: some field used `${filename}`.
    Rewritten(Vec<u8>),
    /// Nothing to replace (or not a form this scan understands).
    Unchanged,
}

/// Looks through the fields at the start of a form for the file part, and rewrites the fields
/// that use `${filename}`.
fn scan(boundary: &[u8], buf: &[u8]) -> Scan {
    let mut delimiter = b"--".to_vec();
    delimiter.extend_from_slice(boundary);
    let mut field_delimiter = b"\r\n".to_vec();
    field_delimiter.extend_from_slice(&delimiter);

    let Some(mut pos) = find(buf, &delimiter, 0) else {
        return Scan::NeedMore;
    };
    let mut fields = Vec::new();
    loop {
        let after = pos + delimiter.len();
        let Some(next_two) = buf.get(after..after + 2) else {
            return Scan::NeedMore;
        };
        if next_two != b"\r\n" {
            // "--": the form ended without a file part (or it is malformed): s3s answers it.
            return Scan::Unchanged;
        }
        let headers_start = after + 2;
        let Some(headers_end) = find(buf, b"\r\n\r\n", headers_start) else {
            return Scan::NeedMore;
        };
        let params = part_disposition(&buf[headers_start..headers_end]);
        let param = |n: &str| {
            params
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.as_slice())
        };
        let value_start = headers_end + 4;
        if param("name").is_some_and(|n| n.eq_ignore_ascii_case(b"file")) {
            let name = param("filename").unwrap_or_default();
            let base = name
                .rsplit(|&b| b == b'/' || b == b'\\')
                .next()
                .unwrap_or_default();
            return rewrite(buf, &fields, base);
        }
        let Some(value_end) = find(buf, &field_delimiter, value_start) else {
            return Scan::NeedMore;
        };
        fields.push(value_start..value_end);
        pos = value_end + 2;
    }
}

/// `buf` with `${filename}` replaced by `name` in the given field values.
fn rewrite(buf: &[u8], fields: &[std::ops::Range<usize>], name: &[u8]) -> Scan {
    let uses_variable = |r: &std::ops::Range<usize>| find(&buf[r.clone()], VARIABLE, 0).is_some();
    if name.is_empty() || !fields.iter().any(uses_variable) {
        return Scan::Unchanged;
    }
    let mut out = Vec::with_capacity(buf.len() + name.len() * 2);
    let mut copied = 0;
    for field in fields {
        out.extend_from_slice(&buf[copied..field.start]);
        let mut i = field.start;
        while let Some(at) = find(&buf[..field.end], VARIABLE, i) {
            out.extend_from_slice(&buf[i..at]);
            out.extend_from_slice(name);
            i = at + VARIABLE.len();
        }
        out.extend_from_slice(&buf[i..field.end]);
        copied = field.end;
    }
    out.extend_from_slice(&buf[copied..]);
    Scan::Rewritten(out)
}

/// Replaces `${filename}` in the fields of a POST form upload; any other request is returned
/// as it came. Reads at most the form's fields and the file part's headers ahead of s3s.
pub async fn substitute_filename(req: Request<s3s::Body>) -> Request<s3s::Body> {
    let Some(boundary) = form_boundary(&req) else {
        return req;
    };
    let (mut parts, mut body) = req.into_parts();
    let mut buf: Vec<u8> = Vec::new();
    let mut tail: Option<Result<Bytes, s3s::StdError>> = None;
    let mut ended = false;
    let rewritten = loop {
        match scan(&boundary, &buf) {
            Scan::Rewritten(new) => break Some(new),
            Scan::Unchanged => break None,
            Scan::NeedMore if buf.len() >= MAX_SCAN_BYTES => break None,
            Scan::NeedMore => {}
        }
        match body.next().await {
            Some(Ok(bytes)) => buf.extend_from_slice(&bytes),
            Some(Err(e)) => {
                tail = Some(Err(e));
                ended = true;
                break None;
            }
            None => {
                ended = true;
                break None;
            }
        }
    };
    if let Some(new) = rewritten {
        let length = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if let Some(len) = length {
            let len = len - buf.len().min(len) + new.len();
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        }
        buf = new;
    }
    let head = stream::iter(
        std::iter::once(Ok(Bytes::from(buf)))
            .chain(tail)
            .collect::<Vec<_>>(),
    );
    let rest = if ended {
        stream::empty().left_stream()
    } else {
        body.right_stream()
    };
    let frames = head.chain(rest).map(|r| r.map(Frame::data));
    Request::from_parts(
        parts,
        s3s::Body::http_body(http_body_util::StreamBody::new(frames)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: &[u8] = b"----WebKitFormBoundaryAbC";

    fn form(fields: &[(&str, &str)], file_disposition: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, value) in fields {
            out.extend_from_slice(b"------WebKitFormBoundaryAbC\r\n");
            out.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                    .as_bytes(),
            );
        }
        out.extend_from_slice(b"------WebKitFormBoundaryAbC\r\n");
        out.extend_from_slice(
            format!("Content-Disposition: {file_disposition}\r\nContent-Type: text/plain\r\n\r\n")
                .as_bytes(),
        );
        out.extend_from_slice(b"file bytes\r\n------WebKitFormBoundaryAbC--\r\n");
        out
    }

    #[test]
    fn every_field_gets_the_base_name_of_the_file() {
        let f = form(
            &[
                ("key", "uploads/${filename}"),
                (
                    "Content-Disposition",
                    "attachment; filename=\"${filename}\"",
                ),
                ("policy", "eyJ9"),
            ],
            "form-data; name=\"file\"; filename=\"C:\\photos\\cat; %221%22.jpg\"",
        );
        let Scan::Rewritten(out) = scan(B, &f) else {
            panic!("expected a rewrite");
        };
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("\r\n\r\nuploads/cat; %221%22.jpg\r\n"),
            "{text}"
        );
        assert!(
            text.contains("attachment; filename=\"cat; %221%22.jpg\"\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\n\r\neyJ9\r\n"));
        assert!(text.ends_with("file bytes\r\n------WebKitFormBoundaryAbC--\r\n"));
    }

    #[test]
    fn forms_without_the_variable_or_a_file_name_are_left_alone() {
        let plain = form(
            &[("key", "a.txt")],
            "form-data; name=\"file\"; filename=\"x\"",
        );
        assert_eq!(scan(B, &plain), Scan::Unchanged);
        let nameless = form(&[("key", "u/${filename}")], "form-data; name=\"file\"");
        assert_eq!(scan(B, &nameless), Scan::Unchanged);
        let slash_only = form(
            &[("key", "u/${filename}")],
            "form-data; name=\"file\"; filename=\"dir/\"",
        );
        assert_eq!(scan(B, &slash_only), Scan::Unchanged);
        let no_file = b"------WebKitFormBoundaryAbC\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\n${filename}\r\n------WebKitFormBoundaryAbC--\r\n";
        assert_eq!(scan(B, no_file), Scan::Unchanged);
    }

    #[test]
    fn a_form_cut_anywhere_before_the_file_headers_needs_more() {
        let f = form(
            &[("key", "u/${filename}"), ("acl", "private")],
            "form-data; name=\"file\"; filename=\"n.bin\"",
        );
        let file_headers_end = find(&f, b"text/plain\r\n\r\n", 0).unwrap() + 14;
        for cut in 0..file_headers_end {
            assert_eq!(scan(B, &f[..cut]), Scan::NeedMore, "cut at {cut}");
        }
        let Scan::Rewritten(out) = scan(B, &f[..file_headers_end]) else {
            panic!("expected a rewrite");
        };
        assert!(find(&out, b"\r\n\r\nu/n.bin\r\n", 0).is_some());
    }

    #[test]
    fn only_post_forms_with_a_boundary_are_scanned() {
        let req = |method: Method, ct: &str| {
            Request::builder()
                .method(method)
                .header(header::CONTENT_TYPE, ct)
                .body(())
                .unwrap()
        };
        assert_eq!(
            form_boundary(&req(Method::POST, "multipart/form-data; boundary=\"abc\"")),
            Some(b"abc".to_vec())
        );
        assert_eq!(
            form_boundary(&req(
                Method::POST,
                "Multipart/Form-Data; charset=utf-8; BOUNDARY=x1"
            )),
            Some(b"x1".to_vec())
        );
        assert_eq!(
            form_boundary(&req(Method::PUT, "multipart/form-data; boundary=a")),
            None
        );
        assert_eq!(form_boundary(&req(Method::POST, "application/xml")), None);
        assert_eq!(
            form_boundary(&req(Method::POST, "multipart/form-data")),
            None
        );
    }

    #[tokio::test]
    async fn the_body_is_passed_on_whole_with_its_length_fixed() {
        let f = form(
            &[("key", "in/${filename}")],
            "form-data; name=\"file\"; filename=\"report.pdf\"",
        );
        let chunks: Vec<Result<Bytes, s3s::StdError>> =
            f.chunks(7).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
        let body = s3s::Body::http_body(http_body_util::StreamBody::new(
            stream::iter(chunks).map(|r| r.map(Frame::data)),
        ));
        let req = Request::builder()
            .method(Method::POST)
            .uri("/bucket")
            .header(
                header::CONTENT_TYPE,
                "multipart/form-data; boundary=----WebKitFormBoundaryAbC",
            )
            .header(header::CONTENT_LENGTH, f.len())
            .body(body)
            .unwrap();
        let req = substitute_filename(req).await;
        let len: usize = req.headers()[header::CONTENT_LENGTH]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let mut got = Vec::new();
        let mut body = req.into_body();
        while let Some(chunk) = body.next().await {
            got.extend_from_slice(&chunk.unwrap());
        }
        let want = String::from_utf8(f)
            .unwrap()
            .replace("${filename}", "report.pdf");
        assert_eq!(String::from_utf8(got).unwrap(), want);
        assert_eq!(len, want.len());
    }
}
