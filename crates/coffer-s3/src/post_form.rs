//! Browser POST forms before the file: the fields that precede the `file` part (the
//! "prelude"), `${filename}` in those fields, and the answers AWS gives for fields that are
//! missing. The binary reads the prelude once (`form_prelude.rs`) and hands these functions
//! the bytes; `post_object.rs` takes the fields from there. The file itself is never read here.
//!
//! The grammar is the one s3s 0.14.1 reads forms with (an optional empty line, `--boundary`,
//! parts of at most two headers with a `form-data; name="..."` Content-Disposition, until the
//! part named `file`), so forms that uploaded before Coffer read them itself still do.

use http::StatusCode;

/// AWS: "The form data and boundaries (excluding the contents of the file) cannot exceed 20 KB."
pub const MAX_PRELUDE_BYTES: usize = 20 * 1024;

/// An S3 error for a form, with an `ArgumentName` where AWS gives one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub argument_name: Option<&'static str>,
}

impl FormError {
    pub fn xml(&self) -> String {
        let mut s = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{}</Code><Message>{}</Message>",
            self.code,
            xml_escape(&self.message)
        );
        if let Some(name) = self.argument_name {
            s.push_str(&format!(
                "<ArgumentName>{name}</ArgumentName><ArgumentValue></ArgumentValue>"
            ));
        }
        s.push_str("</Error>");
        s
    }

    fn missing(name: &'static str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "InvalidArgument",
            message: format!(
                "Bucket POST must contain a field named '{name}'.  If it is specified, please check the order of the fields."
            ),
            argument_name: Some(name),
        }
    }

    pub fn prelude_too_large() -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "MaxPostPreDataLengthExceededError",
            message: "Your POST request fields preceding the upload file were too large.".into(),
            argument_name: None,
        }
    }

    pub fn malformed() -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "MalformedPOSTRequest",
            message: "The body of your POST request is not well-formed multipart/form-data.".into(),
            argument_name: None,
        }
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The boundary of a `multipart/form-data` request: one Content-Type header (UTF-8) that
/// parses as `multipart/form-data` with a boundary (what s3s takes for a form, too).
pub fn form_boundary(headers: &http::HeaderMap) -> Option<String> {
    let mut values = headers
        .get_all(http::header::CONTENT_TYPE)
        .iter()
        .filter_map(|v| std::str::from_utf8(v.as_bytes()).ok());
    let value = values.next()?;
    if values.next().is_some() || value.is_empty() {
        return None;
    }
    let mime: mime::Mime = value.parse().ok()?;
    if mime.type_() != mime::MULTIPART || mime.subtype() != mime::FORM_DATA {
        return None;
    }
    Some(mime.get_param(mime::BOUNDARY)?.as_str().to_owned())
}

/// What the bytes received so far say about the prelude.
#[derive(Debug, PartialEq, Eq)]
pub enum Prelude {
    /// More bytes are needed.
    Incomplete,
    /// Not a well-formed form.
    Malformed,
    /// The fields before `file`, and where the file's content starts.
    Complete(FormPrelude),
}

/// A form's fields before the `file` part.
#[derive(Debug, PartialEq, Eq)]
pub struct FormPrelude {
    /// Every field before `file`, names lowercased, in form order.
    pub fields: Vec<(String, String)>,
    /// Where the file's content starts: the length of the prelude in bytes.
    pub len: usize,
    /// The file part's `filename`, if it has one.
    file_name: Option<String>,
}

/// The variable S3 replaces with the uploaded file's name in every form field.
const FILENAME_VARIABLE: &str = "${filename}";

impl Prelude {
    /// Parses the prelude from the start of the body.
    pub fn parse(buf: &[u8], boundary: &[u8]) -> Self {
        let mut delimiter = Vec::with_capacity(boundary.len() + 2);
        delimiter.extend_from_slice(b"--");
        delimiter.extend_from_slice(boundary);
        let mut lines = CrlfLines(buf);
        match lines.next_line() {
            None => return Self::Incomplete,
            Some(b"") => match lines.next_line() {
                None => return Self::Incomplete,
                Some(l) if l != delimiter.as_slice() => return Self::Malformed,
                Some(_) => {}
            },
            Some(l) if l != delimiter.as_slice() => return Self::Malformed,
            Some(_) => {}
        }
        let mut fields = Vec::new();
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 2];
            let (idx, parsed) = match httparse::parse_headers(lines.0, &mut headers) {
                Ok(httparse::Status::Complete(ans)) => ans,
                Ok(httparse::Status::Partial) => return Self::Incomplete,
                Err(_) => return Self::Malformed,
            };
            lines.0 = &lines.0[idx..];
            let mut disposition = None;
            let mut content_type = None;
            for h in parsed {
                if h.name.eq_ignore_ascii_case("Content-Disposition") {
                    disposition = Some(h.value);
                } else if h.name.eq_ignore_ascii_case("Content-Type") {
                    content_type = Some(h.value);
                }
            }
            let Some(disposition) = disposition else {
                return Self::Malformed;
            };
            let Some((name, file_name)) = parse_disposition(disposition) else {
                return Self::Malformed;
            };
            if name.eq_ignore_ascii_case("file") {
                if content_type.is_some_and(|t| std::str::from_utf8(t).is_err()) {
                    return Self::Malformed;
                }
                return Self::Complete(FormPrelude {
                    fields,
                    len: buf.len() - lines.0.len(),
                    file_name: file_name.map(str::to_owned),
                });
            }
            let Some(value) = lines.split_to(&delimiter) else {
                return Self::Incomplete;
            };
            let value = &value[..value.len().saturating_sub(2)];
            let Ok(value) = std::str::from_utf8(value) else {
                return Self::Malformed;
            };
            fields.push((name.to_ascii_lowercase(), value.to_owned()));
        }
    }
}

impl FormPrelude {
    /// Replaces `${filename}`, in every field, with the file's base name (what follows the
    /// last `/` or `\` of the file part's `filename`), as S3 does; fields are left alone when
    /// the file has no name.
    pub fn substitute_filename(&mut self) {
        // Browsers write `"` as `%22` and never escape with backslashes (the HTML form
        // encoding): a backslash is a Windows path separator here.
        let Some(base) = self
            .file_name
            .as_deref()
            .and_then(|n| n.rsplit(['/', '\\']).next())
            .filter(|b| !b.is_empty())
        else {
            return;
        };
        for (_, value) in &mut self.fields {
            if value.contains(FILENAME_VARIABLE) {
                *value = value.replace(FILENAME_VARIABLE, base);
            }
        }
    }
}

/// `form-data; name="NAME"` with an optional `; filename="FILE"`, nothing else; both non-empty.
fn parse_disposition(value: &[u8]) -> Option<(&str, Option<&str>)> {
    let rest = value.strip_prefix(b"form-data; name=\"")?;
    let end = rest.iter().position(|&b| b == b'"')?;
    if end == 0 {
        return None;
    }
    let name = std::str::from_utf8(&rest[..end]).ok()?;
    let rest = &rest[end + 1..];
    if rest.is_empty() {
        return Some((name, None));
    }
    let file = rest.strip_prefix(b"; filename=\"")?;
    let end = file.iter().position(|&b| b == b'"')?;
    if end == 0 || end + 1 != file.len() {
        return None;
    }
    Some((name, Some(std::str::from_utf8(&file[..end]).ok()?)))
}

/// Lines ended by CRLF. Bytes not yet ended by one are no line: more may follow.
struct CrlfLines<'a>(&'a [u8]);

impl<'a> CrlfLines<'a> {
    fn next_line(&mut self) -> Option<&'a [u8]> {
        let s = self.0;
        let end = s.windows(2).position(|w| w == b"\r\n")?;
        self.0 = &s[end + 2..];
        Some(&s[..end])
    }

    /// The bytes before the first line equal to `delimiter` (its CRLF included), moving past it.
    fn split_to(&mut self, delimiter: &[u8]) -> Option<&'a [u8]> {
        let mut len = 0usize;
        let mut lines = CrlfLines(self.0);
        loop {
            let line = lines.next_line()?;
            if line == delimiter {
                let ans = &self.0[..len.min(self.0.len())];
                self.0 = lines.0;
                return Some(ans);
            }
            len = len.saturating_add(line.len()).saturating_add(2);
        }
    }
}

/// The value of a form field as s3s reads it: by lowercase name, the last one sent.
pub fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .rev()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// AWS's answer to a form that lacks a field it needs: no `key`; a policy without all of its
/// signature fields; signature fields without a policy.
pub fn missing_field(fields: &[(String, String)]) -> Option<FormError> {
    let has = |n: &str| field(fields, n).is_some();
    if field(fields, "key").is_none_or(str::is_empty) {
        return Some(FormError::missing("key"));
    }
    const V4: [(&str, &str); 4] = [
        ("x-amz-algorithm", "X-Amz-Algorithm"),
        ("x-amz-credential", "X-Amz-Credential"),
        ("x-amz-date", "X-Amz-Date"),
        ("x-amz-signature", "X-Amz-Signature"),
    ];
    const V2: [(&str, &str); 2] = [
        ("awsaccesskeyid", "AWSAccessKeyId"),
        ("signature", "Signature"),
    ];
    let v4 = V4.iter().any(|(n, _)| has(n));
    let v2 = V2.iter().any(|(n, _)| has(n));
    if !has("policy") {
        return (v4 || v2).then(|| FormError::missing("policy"));
    }
    let required: &[(&str, &'static str)] = if v4 {
        &V4
    } else if v2 {
        &V2
    } else {
        return Some(FormError::missing("Signature"));
    };
    required
        .iter()
        .find(|(n, _)| !has(n))
        .map(|(_, label)| FormError::missing(label))
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: &[u8] = b"XyZ";

    fn form(parts: &[(&str, &str)], file: &str) -> Vec<u8> {
        let mut v = Vec::new();
        for (n, val) in parts {
            v.extend_from_slice(
                format!("--XyZ\r\nContent-Disposition: form-data; name=\"{n}\"\r\n\r\n{val}\r\n")
                    .as_bytes(),
            );
        }
        v.extend_from_slice(
            format!("--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\n{file}\r\n--XyZ--\r\n")
                .as_bytes(),
        );
        v
    }

    #[test]
    fn fields_before_the_file() {
        let body = form(
            &[
                ("key", "a/b"),
                ("Policy", "cG9s"),
                ("x-amz-meta-Multi", "line1\r\nline2"),
            ],
            "DATA",
        );
        let Prelude::Complete(FormPrelude { fields, len, .. }) = Prelude::parse(&body, B) else {
            panic!("{:?}", Prelude::parse(&body, B));
        };
        assert_eq!(
            fields,
            vec![
                ("key".into(), "a/b".into()),
                ("policy".into(), "cG9s".into()),
                ("x-amz-meta-multi".into(), "line1\r\nline2".into())
            ]
        );
        assert!(body[len..].starts_with(b"DATA\r\n--XyZ--"));
        // Every shorter prefix that ends before the file headers are complete is incomplete.
        let file_headers_end = len;
        for cut in [1, 10, 40, file_headers_end - 3] {
            assert!(
                !matches!(Prelude::parse(&body[..cut], B), Prelude::Complete(_)),
                "{cut}"
            );
        }
        // A leading CRLF is allowed, another boundary is not.
        let mut lead = b"\r\n".to_vec();
        lead.extend_from_slice(&body);
        assert!(matches!(Prelude::parse(&lead, B), Prelude::Complete(_)));
        assert_eq!(Prelude::parse(&body, b"other"), Prelude::Malformed);
    }

    #[test]
    fn malformed_dispositions() {
        for bad in [
            "--XyZ\r\nContent-Disposition: form-data; name=\"\"\r\n\r\nv\r\n--XyZ\r\n",
            "--XyZ\r\nContent-Disposition: attachment; name=\"k\"\r\n\r\nv\r\n--XyZ\r\n",
            "--XyZ\r\nContent-Disposition: form-data; name=\"k\"; x=1\r\n\r\nv\r\n--XyZ\r\n",
            "--XyZ\r\nA: 1\r\nB: 2\r\nContent-Disposition: form-data; name=\"k\"\r\n\r\nv\r\n--XyZ\r\n",
            // A part without a name.
            "--XyZ\r\nContent-Type: text/plain\r\n\r\nv\r\n--XyZ\r\n",
        ] {
            assert_eq!(
                Prelude::parse(bad.as_bytes(), B),
                Prelude::Malformed,
                "{bad}"
            );
        }
    }

    const WEBKIT: &[u8] = b"----WebKitFormBoundaryAbC";

    /// A form as a browser sends it, with the file part's Content-Disposition given.
    fn browser_form(fields: &[(&str, &str)], file_disposition: &str) -> Vec<u8> {
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

    fn complete(body: &[u8], boundary: &[u8]) -> FormPrelude {
        match Prelude::parse(body, boundary) {
            Prelude::Complete(p) => p,
            other => panic!("{other:?}"),
        }
    }

    /// The fields of a form, `${filename}` replaced.
    fn substituted(body: &[u8]) -> Vec<(String, String)> {
        let mut prelude = complete(body, WEBKIT);
        prelude.substitute_filename();
        prelude.fields
    }

    #[test]
    fn every_field_gets_the_base_name_of_the_file() {
        let f = browser_form(
            &[
                ("key", "uploads/${filename}"),
                (
                    "Content-Disposition",
                    "attachment; filename=\"${filename}\"",
                ),
                ("x-amz-meta-note", "${filename}\r\nand ${filename}"),
                ("policy", "eyJ9"),
            ],
            "form-data; name=\"file\"; filename=\"C:\\photos\\cat; %221%22.jpg\"",
        );
        let fields = substituted(&f);
        assert_eq!(field(&fields, "key"), Some("uploads/cat; %221%22.jpg"));
        assert_eq!(
            field(&fields, "content-disposition"),
            Some("attachment; filename=\"cat; %221%22.jpg\"")
        );
        assert_eq!(
            field(&fields, "x-amz-meta-note"),
            Some("cat; %221%22.jpg\r\nand cat; %221%22.jpg")
        );
        assert_eq!(field(&fields, "policy"), Some("eyJ9"));
        let unix = browser_form(
            &[("key", "${filename}")],
            "form-data; name=\"file\"; filename=\"/home/u/notes.txt\"",
        );
        assert_eq!(field(&substituted(&unix), "key"), Some("notes.txt"));
        // A name like the boundary is only text in a field.
        let odd = browser_form(
            &[("key", "k/${filename}")],
            "form-data; name=\"file\"; filename=\"----WebKitFormBoundaryAbC\"",
        );
        assert_eq!(
            field(&substituted(&odd), "key"),
            Some("k/----WebKitFormBoundaryAbC")
        );
    }

    #[test]
    fn forms_without_the_variable_or_a_file_name_are_left_alone() {
        let plain = browser_form(
            &[("key", "a.txt")],
            "form-data; name=\"file\"; filename=\"x\"",
        );
        assert_eq!(field(&substituted(&plain), "key"), Some("a.txt"));
        let nameless = browser_form(&[("key", "u/${filename}")], "form-data; name=\"file\"");
        assert_eq!(field(&substituted(&nameless), "key"), Some("u/${filename}"));
        let slash_only = browser_form(
            &[("key", "u/${filename}")],
            "form-data; name=\"file\"; filename=\"dir/\"",
        );
        assert_eq!(
            field(&substituted(&slash_only), "key"),
            Some("u/${filename}")
        );
        // No file part: never complete, so nothing is replaced (the form is refused).
        let no_file = b"------WebKitFormBoundaryAbC\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\n${filename}\r\n------WebKitFormBoundaryAbC--\r\n";
        assert!(!matches!(
            Prelude::parse(no_file, WEBKIT),
            Prelude::Complete(_)
        ));
    }

    #[test]
    fn a_form_cut_anywhere_before_the_file_headers_is_not_complete() {
        let f = browser_form(
            &[("key", "u/${filename}"), ("acl", "private")],
            "form-data; name=\"file\"; filename=\"n.bin\"",
        );
        let file_headers_end = f
            .windows(14)
            .position(|w| w == b"text/plain\r\n\r\n")
            .unwrap()
            + 14;
        for cut in 0..file_headers_end {
            assert!(
                !matches!(Prelude::parse(&f[..cut], WEBKIT), Prelude::Complete(_)),
                "cut at {cut}"
            );
        }
        let mut prelude = complete(&f[..file_headers_end], WEBKIT);
        assert_eq!(prelude.len, file_headers_end);
        prelude.substitute_filename();
        assert_eq!(field(&prelude.fields, "key"), Some("u/n.bin"));
    }

    #[test]
    fn boundaries_of_forms_only() {
        let boundary = |ct: &str| {
            let mut h = http::HeaderMap::new();
            h.insert(http::header::CONTENT_TYPE, ct.parse().unwrap());
            form_boundary(&h)
        };
        assert_eq!(
            boundary("multipart/form-data; boundary=\"abc\""),
            Some("abc".into())
        );
        assert_eq!(
            boundary("Multipart/Form-Data; charset=utf-8; BOUNDARY=x1"),
            Some("x1".into())
        );
        assert_eq!(boundary("application/xml"), None);
        assert_eq!(boundary("multipart/form-data"), None);
        assert_eq!(form_boundary(&http::HeaderMap::new()), None);
    }

    fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| ((*a).into(), (*b).into()))
            .collect()
    }

    #[test]
    fn missing_fields() {
        let missing = |p: &[(&str, &str)]| missing_field(&fields(p)).and_then(|e| e.argument_name);
        assert_eq!(missing(&[("policy", "p")]), Some("key"));
        assert_eq!(missing(&[("key", "")]), Some("key"));
        assert_eq!(missing(&[("key", "k")]), None); // anonymous
        assert_eq!(
            missing(&[("key", "k"), ("x-amz-signature", "s")]),
            Some("policy")
        );
        assert_eq!(missing(&[("key", "k"), ("policy", "p")]), Some("Signature"));
        assert_eq!(
            missing(&[
                ("key", "k"),
                ("policy", "p"),
                ("x-amz-signature", "s"),
                ("x-amz-algorithm", "a"),
                ("x-amz-date", "d")
            ]),
            Some("X-Amz-Credential")
        );
        assert_eq!(
            missing(&[("key", "k"), ("policy", "p"), ("signature", "s")]),
            Some("AWSAccessKeyId")
        );
        assert_eq!(
            missing(&[
                ("key", "k"),
                ("policy", "p"),
                ("signature", "s"),
                ("awsaccesskeyid", "a")
            ]),
            None
        );
        // The last of repeated fields counts, as in s3s.
        assert_eq!(
            field(&fields(&[("key", "a"), ("key", "b")]), "key"),
            Some("b")
        );
    }
}
