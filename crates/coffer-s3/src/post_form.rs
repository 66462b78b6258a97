//! Browser POST forms before s3s parses them: the fields that precede the `file` part (the
//! "prelude"), `${filename}` in those fields, the answers AWS gives for fields that are missing,
//! and AWS's wording for the policy errors s3s reports in its own words.
//!
//! The prelude is parsed with the same grammar and the same chunk-by-chunk reparsing s3s 0.14.1
//! uses (`http/multipart.rs`), so both see the same fields: the SigV2 check made here is then
//! about exactly the signature s3s would compare. The file itself is never read here. The
//! binary reads the prelude once (`form_prelude.rs`) and hands these functions the bytes.

use std::ops::Range;

use http::StatusCode;

use crate::prefilter::Refusal;

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

impl From<Refusal> for FormError {
    fn from(r: Refusal) -> Self {
        Self {
            status: r.status,
            code: r.code,
            message: r.message.into(),
            argument_name: None,
        }
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The boundary of a `multipart/form-data` request, when s3s would treat it as a form: one
/// Content-Type header (UTF-8) that parses as `multipart/form-data` with a boundary.
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
    /// Not a form s3s would accept.
    Malformed,
    /// The fields before `file`, and where the file's content starts.
    Complete(FormPrelude),
}

/// A form's fields before the `file` part, as s3s will read them.
#[derive(Debug, PartialEq, Eq)]
pub struct FormPrelude {
    /// Every field before `file`, names lowercased, in form order.
    pub fields: Vec<(String, String)>,
    /// Where the file's content starts: the length of the prelude in bytes.
    pub len: usize,
    /// Where each field's value lies in the prelude, in the order of `fields`.
    values: Vec<Range<usize>>,
    /// The file part's `filename`, if it has one.
    file_name: Option<String>,
}

/// The fields of a browser POST form, as checked, put in the request's extensions for the
/// PUT path: s3s reads only `x-amz-*` spellings, while S3 forms name the canned ACL `acl` and
/// the tags `tagging` (an XML Tagging document).
#[derive(Debug, Clone)]
pub struct PostFormFields(pub Vec<(String, String)>);

impl PostFormFields {
    /// The form's canned ACL (`acl`).
    pub fn acl(&self) -> Option<&str> {
        field(&self.0, "acl")
    }

    /// The form's tags (`tagging`, an XML Tagging document); `None` without the field.
    pub fn tags(&self) -> Option<Result<Vec<(String, String)>, s3s::S3Error>> {
        let xml = field(&self.0, "tagging")?;
        let mut d = s3s::xml::Deserializer::new(xml.as_bytes());
        Some(
            <s3s::dto::Tagging as s3s::xml::Deserialize>::deserialize(&mut d)
                .map_err(|_| {
                    s3s::s3_error!(
                        MalformedXML,
                        "The tagging field is not a valid Tagging document."
                    )
                })
                .and_then(|t| crate::tagging_ops::tag_pairs(&t)),
        )
    }
}

/// The variable S3 replaces with the uploaded file's name in every form field.
const FILENAME_VARIABLE: &str = "${filename}";

impl Prelude {
    /// Parses the prelude from the start of the body (s3s's grammar: an optional empty line,
    /// `--boundary`, then parts of at most two headers each, with a `form-data; name="..."`
    /// Content-Disposition, until the part named `file`).
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
        let mut values = Vec::new();
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
                return Self::Incomplete;
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
                    values,
                    file_name: file_name.map(str::to_owned),
                });
            }
            let start = buf.len() - lines.0.len();
            let Some(value) = lines.split_to(&delimiter) else {
                return Self::Incomplete;
            };
            let value = &value[..value.len().saturating_sub(2)];
            let Ok(value) = std::str::from_utf8(value) else {
                return Self::Malformed;
            };
            fields.push((name.to_ascii_lowercase(), value.to_owned()));
            values.push(start..start + value.len());
        }
    }
}

impl FormPrelude {
    /// The prelude with `${filename}` replaced, in every field, by the file's base name (what
    /// follows the last `/` or `\` of the file part's `filename`), as S3 does; `None` when no
    /// field uses the variable or the file has no name. `prelude` is the bytes this was parsed
    /// from (at least `len` of them); the answer is the new prelude, to parse again.
    pub fn substitute_filename(&self, prelude: &[u8]) -> Option<Vec<u8>> {
        // Browsers write `"` as `%22` and never escape with backslashes (the HTML form
        // encoding): a backslash is a Windows path separator here.
        let base = self.file_name.as_deref()?.rsplit(['/', '\\']).next()?;
        let uses_variable = self
            .fields
            .iter()
            .any(|(_, v)| v.contains(FILENAME_VARIABLE));
        if base.is_empty() || !uses_variable {
            return None;
        }
        let prelude = prelude.get(..self.len)?;
        let mut out = Vec::with_capacity(prelude.len() + base.len() * 2);
        let mut copied = 0;
        for ((_, value), range) in self.fields.iter().zip(&self.values) {
            out.extend_from_slice(prelude.get(copied..range.start)?);
            out.extend_from_slice(value.replace(FILENAME_VARIABLE, base).as_bytes());
            copied = range.end;
        }
        out.extend_from_slice(prelude.get(copied..)?);
        Some(out)
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

/// Lines ended by CRLF; the last, unterminated bytes count as a line (as in s3s).
struct CrlfLines<'a>(&'a [u8]);

impl<'a> CrlfLines<'a> {
    fn next_line(&mut self) -> Option<&'a [u8]> {
        let s = self.0;
        for idx in 1..s.len() {
            if s[idx] == b'\n' && s[idx - 1] == b'\r' {
                self.0 = &s[idx + 1..];
                return Some(&s[..idx - 1]);
            }
        }
        if s.is_empty() {
            None
        } else {
            self.0 = &[];
            Some(s)
        }
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

/// A policy whose `expiration` is not an ISO 8601 UTC date-time (`2026-12-31T12:00:00.000Z`):
/// AWS refuses it as an invalid policy document (s3s would accept other date spellings).
/// A policy that is not base64 JSON is left to s3s, which refuses it.
pub fn invalid_expiration(fields: &[(String, String)]) -> Option<FormError> {
    use base64::Engine as _;
    let policy = field(fields, "policy")?;
    let doc = base64::engine::general_purpose::STANDARD
        .decode(policy.trim())
        .ok()?;
    let doc: serde_json::Value = serde_json::from_slice(&doc).ok()?;
    let expiration = doc.get("expiration")?;
    let valid = expiration.as_str().is_some_and(|e| {
        e.len() >= 20
            && e.as_bytes().get(10) == Some(&b'T')
            && e.ends_with('Z')
            && time::OffsetDateTime::parse(e, &time::format_description::well_known::Rfc3339)
                .is_ok()
    });
    (!valid).then(|| FormError {
        status: StatusCode::BAD_REQUEST,
        code: "InvalidPolicyDocument",
        message: format!(
            "Invalid Policy: Invalid 'expiration' value: '{}'",
            expiration.as_str().unwrap_or_default()
        ),
        argument_name: None,
    })
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

/// AWS's wording for the policy errors s3s reports in its own: an expired policy, a field no
/// condition covers, a condition that failed (403 `AccessDenied` "Invalid according to
/// Policy: ..."). Only for browser POST forms.
pub fn rewrite_error(status: StatusCode, body: &str) -> Option<(StatusCode, String)> {
    let code = between(body, "<Code>", "</Code>")?;
    let message = between(body, "<Message>", "</Message>").map(xml_unescape)?;
    let denied = |detail: String| {
        let e = FormError {
            status: StatusCode::FORBIDDEN,
            code: "AccessDenied",
            message: format!("Invalid according to Policy: {detail}"),
            argument_name: None,
        };
        Some((e.status, e.xml()))
    };
    match (status, code) {
        (StatusCode::FORBIDDEN, "AccessDenied") if message == "Request has expired" => {
            denied("Policy expired.".into())
        }
        (StatusCode::FORBIDDEN, "AccessDenied")
            if message.ends_with("not specified in the policy.") =>
        {
            let name = message.rsplit('"').nth(1)?;
            denied(format!("Extra input fields: {name}"))
        }
        (StatusCode::BAD_REQUEST, "InvalidPolicyDocument") => {
            if let Some(condition) = failed_condition(&message) {
                denied(format!("Policy Condition failed: {condition}"))
            } else if message.contains("does not match") {
                denied("Policy Condition failed".into())
            } else {
                None
            }
        }
        _ => None,
    }
}

/// `["eq", "$field", "value"]` from s3s's "Policy condition 'eq' for field 'F' failed:
/// expected 'V', got '...'" (the value sent is left out: it may be a key).
fn failed_condition(message: &str) -> Option<String> {
    let rest = message.strip_prefix("Policy condition '")?;
    let (op, rest) = rest.split_once("' for field '")?;
    let (field, rest) = rest.split_once("' failed: expected ")?;
    let rest = rest.strip_prefix("prefix ").unwrap_or(rest);
    let expected = rest.strip_prefix('\'')?;
    let expected = &expected[..expected.rfind("', got '")?];
    // A condition on the key field itself would echo the key: name the field only.
    let expected = if field.ends_with("-customer-key") {
        ""
    } else {
        expected
    };
    let json = |s: &str| serde_json::to_string(s).ok();
    Some(format!(
        "[{}, {}, {}]",
        json(op)?,
        json(&format!("${field}"))?,
        json(expected)?
    ))
}

/// The encryption fields of a form that no condition of its policy covers, refused as AWS
/// does ("Extra input fields"). s3s exempts every `x-amz-server-side-encryption*` field from the
/// policy (as MinIO does); AWS exempts none, so a policy must name the SSE-C fields it allows.
/// A policy s3s cannot parse is left for s3s to refuse.
pub fn uncovered_sse_fields(fields: &[(String, String)]) -> Option<FormError> {
    use s3s::post_policy::{PostPolicy, PostPolicyCondition as C};
    let policy = PostPolicy::from_base64(field(fields, "policy")?).ok()?;
    let covered = |name: &str| {
        policy.conditions.iter().any(|c| match c {
            C::Eq { field, .. } | C::StartsWith { field, .. } => field == name,
            C::ContentLengthRange { .. } => false,
        })
    };
    let mut extra: Vec<&str> = fields
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| n.starts_with("x-amz-server-side-encryption") && !covered(n))
        .collect();
    extra.dedup();
    (!extra.is_empty()).then(|| FormError {
        status: StatusCode::FORBIDDEN,
        code: "AccessDenied",
        message: format!(
            "Invalid according to Policy: Extra input fields: {}",
            extra.join(", ")
        ),
        argument_name: None,
    })
}

fn between<'a>(s: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = s.find(open)? + open.len();
    let len = s[start..].find(close)?;
    Some(&s[start..start + len])
}

fn xml_unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
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

    /// The body with `${filename}` replaced, if anything was.
    fn substituted(body: &[u8]) -> Option<Vec<u8>> {
        let prelude = complete(body, WEBKIT);
        let mut new = prelude.substitute_filename(body)?;
        new.extend_from_slice(&body[prelude.len..]);
        Some(new)
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
        let out = substituted(&f).expect("a rewrite");
        let text = String::from_utf8(out.clone()).unwrap();
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
        // The new prelude parses to the substituted fields, the file where it was.
        let again = complete(&out, WEBKIT);
        assert_eq!(
            field(&again.fields, "key"),
            Some("uploads/cat; %221%22.jpg")
        );
        assert_eq!(
            field(&again.fields, "x-amz-meta-note"),
            Some("cat; %221%22.jpg\r\nand cat; %221%22.jpg")
        );
        assert!(out[again.len..].starts_with(b"file bytes\r\n"));
        let unix = browser_form(
            &[("key", "${filename}")],
            "form-data; name=\"file\"; filename=\"/home/u/notes.txt\"",
        );
        let out = substituted(&unix).expect("a rewrite");
        assert_eq!(
            field(&complete(&out, WEBKIT).fields, "key"),
            Some("notes.txt")
        );
    }

    #[test]
    fn forms_without_the_variable_or_a_file_name_are_left_alone() {
        let plain = browser_form(
            &[("key", "a.txt")],
            "form-data; name=\"file\"; filename=\"x\"",
        );
        assert_eq!(substituted(&plain), None);
        let nameless = browser_form(&[("key", "u/${filename}")], "form-data; name=\"file\"");
        assert_eq!(substituted(&nameless), None);
        let slash_only = browser_form(
            &[("key", "u/${filename}")],
            "form-data; name=\"file\"; filename=\"dir/\"",
        );
        assert_eq!(substituted(&slash_only), None);
        // No file part: never complete, so nothing is replaced (s3s refuses the form).
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
        let prelude = complete(&f[..file_headers_end], WEBKIT);
        assert_eq!(prelude.len, file_headers_end);
        let out = prelude
            .substitute_filename(&f[..file_headers_end])
            .expect("a rewrite");
        assert!(out.ends_with(b"text/plain\r\n\r\n"));
        assert_eq!(
            field(&complete(&out, WEBKIT).fields, "key"),
            Some("u/n.bin")
        );
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
    fn expiration_must_be_iso8601_utc() {
        use base64::Engine as _;
        let with = |expiration: serde_json::Value| {
            let doc = serde_json::json!({"expiration": expiration, "conditions": []}).to_string();
            fields(&[(
                "policy",
                &base64::engine::general_purpose::STANDARD.encode(doc),
            )])
        };
        for good in ["2030-01-01T00:00:00Z", "2030-01-01T00:00:00.000Z"] {
            assert_eq!(invalid_expiration(&with(good.into())), None, "{good}");
        }
        for bad in [
            serde_json::json!("2030-01-01 00:00:00.123+00:00"),
            serde_json::json!("2030-01-01T00:00:00+01:00"),
            serde_json::json!("tomorrow"),
            serde_json::json!(1893456000),
        ] {
            let e = invalid_expiration(&with(bad.clone())).expect("refused");
            assert_eq!(
                (e.status, e.code),
                (StatusCode::BAD_REQUEST, "InvalidPolicyDocument"),
                "{bad}"
            );
        }
        assert_eq!(
            invalid_expiration(&fields(&[("policy", "not base64!")])),
            None
        );
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

    #[test]
    fn policy_errors_in_aws_words() {
        let err = |status: StatusCode, code: &str, msg: &str| {
            rewrite_error(
                status,
                &format!("<Error><Code>{code}</Code><Message>{msg}</Message></Error>"),
            )
            .map(|(s, b)| {
                (
                    s,
                    between(&b, "<Message>", "</Message>")
                        .unwrap_or_default()
                        .to_owned(),
                )
            })
        };
        assert_eq!(
            err(StatusCode::FORBIDDEN, "AccessDenied", "Request has expired"),
            Some((
                StatusCode::FORBIDDEN,
                "Invalid according to Policy: Policy expired.".into()
            ))
        );
        assert_eq!(
            err(
                StatusCode::FORBIDDEN,
                "AccessDenied",
                "Each form field that you specify in a form must appear in the list of policy conditions. &quot;x-amz-meta-a&quot; not specified in the policy."
            ),
            Some((
                StatusCode::FORBIDDEN,
                "Invalid according to Policy: Extra input fields: x-amz-meta-a".into()
            ))
        );
        assert_eq!(
            err(StatusCode::BAD_REQUEST, "InvalidPolicyDocument",
                "Policy condition &apos;starts-with&apos; for field &apos;key&apos; failed: expected prefix &apos;up/&apos;, got &apos;x&apos;"),
            Some((StatusCode::FORBIDDEN,
                  "Invalid according to Policy: Policy Condition failed: [\"starts-with\", \"$key\", \"up/\"]".into()))
        );
        let (_, m) = err(StatusCode::BAD_REQUEST, "InvalidPolicyDocument",
            "Policy condition 'eq' for field 'x-amz-server-side-encryption-customer-key' failed: expected 'SECRET', got 'OTHER'")
            .unwrap();
        assert!(!m.contains("SECRET") && !m.contains("OTHER"), "{m}");
        assert_eq!(
            err(
                StatusCode::BAD_REQUEST,
                "InvalidPolicyDocument",
                "failed to parse POST policy"
            ),
            None
        );
        assert_eq!(
            err(StatusCode::FORBIDDEN, "AccessDenied", "Access Denied"),
            None
        );
    }
}
