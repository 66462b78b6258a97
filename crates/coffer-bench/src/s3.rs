//! The S3 requests the generator sends, path-style, SigV4-signed, over a worker's own connection.
//!
//! Every op checks what it got back (status, length, the fields it needs) and turns anything else into an
//! [`OpError`] keyed by HTTP status and S3 error code. Bodies are counted into a byte meter as they move.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use base64::Engine as _;
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST, RANGE};
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use md5::{Digest as _, Md5};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::body::{self, PayloadBody, ReqBody};
use crate::cli::{Config, PayloadMode};
use crate::stats::Meter;
use crate::transport::Transport;
use coffer_client::sigv4::{EMPTY_SHA256, Payload, Signer};

/// Characters kept as-is in a key path: RFC 3986 unreserved, and `/`.
const PATH: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');
/// Characters kept as-is in a query value: unreserved only (so `+` and `/` are escaped, as SigV4 wants).
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Largest non-data body read (errors, listings, multipart XML).
const SMALL_BODY_LIMIT: usize = 16 << 20;

/// Why an op failed.
#[derive(Debug)]
pub enum OpError {
    /// The server answered with an unexpected status (and maybe an S3 error code).
    Status {
        status: u16,
        code: Option<String>,
        message: Option<String>,
    },
    /// The connection could not be opened.
    Connect(String),
    /// The request or response broke mid-way.
    Transport(String),
    /// A successful status with the wrong body (length, missing field).
    Body(String),
}

impl OpError {
    /// The key under which the error is counted: `"404 NoSuchKey"`, `"500"`, `"transport"`, ...
    pub fn key(&self) -> String {
        match self {
            OpError::Status {
                status,
                code: Some(code),
                ..
            } => format!("{status} {code}"),
            OpError::Status {
                status, code: None, ..
            } => status.to_string(),
            OpError::Connect(_) => "connect".into(),
            OpError::Transport(_) => "transport".into(),
            OpError::Body(_) => "bad-response".into(),
        }
    }

    pub fn detail(&self) -> String {
        match self {
            OpError::Status {
                status,
                code,
                message,
            } => format!(
                "HTTP {status}{}{}",
                code.as_deref().map(|c| format!(" {c}")).unwrap_or_default(),
                message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            ),
            OpError::Connect(m) | OpError::Transport(m) | OpError::Body(m) => m.clone(),
        }
    }

    /// After these, the connection is in an unknown state and is replaced.
    pub fn breaks_connection(&self) -> bool {
        matches!(
            self,
            OpError::Connect(_) | OpError::Transport(_) | OpError::Body(_)
        )
    }
}

/// A worker's connection, opened lazily and replaced after a transport error.
#[derive(Default)]
pub struct Conn(Option<SendRequest<ReqBody>>);

impl Conn {
    pub fn reset(&mut self) {
        self.0 = None;
    }
}

/// The three SSE-C request headers, built once.
struct SsecHeaders([(HeaderName, HeaderValue); 3]);

impl SsecHeaders {
    fn new(key: &[u8; 32]) -> Result<SsecHeaders, String> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let value = |s: String| HeaderValue::from_str(&s).map_err(|e| e.to_string());
        Ok(SsecHeaders([
            (
                HeaderName::from_static("x-amz-server-side-encryption-customer-algorithm"),
                HeaderValue::from_static("AES256"),
            ),
            (
                HeaderName::from_static("x-amz-server-side-encryption-customer-key"),
                value(b64.encode(key))?,
            ),
            (
                HeaderName::from_static("x-amz-server-side-encryption-customer-key-md5"),
                value(b64.encode(Md5::digest(key)))?,
            ),
        ]))
    }
}

/// Whether a request carries the SSE-C headers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ssec {
    With,
    Without,
}

/// One request to sign and send.
struct Req<'a> {
    method: Method,
    path_and_query: &'a str,
    headers: &'a [(HeaderName, HeaderValue)],
    ssec: Ssec,
    body: ReqBody,
    /// Hex SHA-256 of the body, or None for `UNSIGNED-PAYLOAD`.
    payload_hash: Option<&'a str>,
}

impl<'a> Req<'a> {
    /// A bodiless request without SSE-C headers.
    fn new(method: Method, path_and_query: &'a str) -> Req<'a> {
        Req {
            method,
            path_and_query,
            headers: &[],
            ssec: Ssec::Without,
            body: ReqBody::Empty,
            payload_hash: Some(EMPTY_SHA256),
        }
    }

    fn headers(mut self, headers: &'a [(HeaderName, HeaderValue)]) -> Req<'a> {
        self.headers = headers;
        self
    }

    /// With the SSE-C headers (when the run has a key).
    fn ssec(mut self) -> Req<'a> {
        self.ssec = Ssec::With;
        self
    }

    fn body(mut self, body: ReqBody, payload_hash: Option<&'a str>) -> Req<'a> {
        self.body = body;
        self.payload_hash = payload_hash;
        self
    }
}

/// The S3 client every worker shares.
pub struct S3 {
    transport: Transport,
    signer: Signer,
    bucket: String,
    prefix: String,
    objects: u64,
    size: u64,
    part_size: u64,
    range_size: u64,
    list_max_keys: u32,
    list_prefix: String,
    list_start_after: Option<String>,
    list_delimiter: Option<String>,
    list_min_keys: u32,
    payload_mode: PayloadMode,
    ssec: Option<SsecHeaders>,
    /// The random bytes every PUT sends (slices of it for parts).
    data: Bytes,
    /// `Some(run nonce)` to tag each body.
    tag_nonce: Option<u32>,
    next_request: AtomicU64,
}

/// Fill a buffer with random bytes (incompressible, so no server can shortcut the work).
fn random_bytes(len: usize) -> Result<Bytes, String> {
    let mut buf = vec![0u8; len];
    for chunk in buf.chunks_mut(1 << 20) {
        aws_lc_rs::rand::fill(chunk).map_err(|_| "the system random generator failed")?;
    }
    Ok(Bytes::from(buf))
}

fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    // On failure the nonce is 0: tags stay unique within the run, which is what matters most.
    let _ = aws_lc_rs::rand::fill(&mut b);
    u32::from_le_bytes(b)
}

/// Text of `<Tag>...</Tag>` in a small XML document.
pub fn xml_field<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let len = xml[start..].find(&close)?;
    Some(&xml[start..start + len])
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn hex_sha256(data: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data).as_ref())
}

impl S3 {
    pub fn new(cfg: &Config, transport: Transport) -> Result<S3, String> {
        let len = usize::try_from(cfg.size).map_err(|_| "--size does not fit in memory")?;
        Ok(S3 {
            transport,
            signer: Signer::new(&cfg.access_key, &cfg.secret_key, &cfg.region),
            bucket: cfg.bucket.clone(),
            prefix: cfg.prefix.clone(),
            objects: cfg.objects,
            size: cfg.size,
            part_size: cfg.part_size,
            range_size: cfg.range_size,
            list_max_keys: cfg.list_max_keys,
            list_prefix: cfg.list_prefix.clone(),
            list_start_after: cfg.list_start_after.clone(),
            list_delimiter: cfg.list_delimiter.clone(),
            list_min_keys: cfg.list_min_keys,
            payload_mode: cfg.payload,
            ssec: cfg.ssec_key.as_ref().map(SsecHeaders::new).transpose()?,
            data: random_bytes(len)?,
            tag_nonce: cfg.tag_bodies.then(random_u32),
            next_request: AtomicU64::new(0),
        })
    }

    fn key_path(&self, index: u64) -> String {
        let key = format!("{}{:08}", self.prefix, index % self.objects);
        format!(
            "/{}/{}",
            utf8_percent_encode(&self.bucket, PATH),
            utf8_percent_encode(&key, PATH)
        )
    }

    fn bucket_path(&self) -> String {
        format!("/{}", utf8_percent_encode(&self.bucket, PATH))
    }

    /// Open the worker's connection now (so handshakes happen before the clock starts).
    pub async fn connect(&self, conn: &mut Conn) -> Result<(), OpError> {
        if conn.0.as_ref().is_none_or(SendRequest::is_closed) {
            conn.0 = Some(self.transport.connect().await.map_err(OpError::Connect)?);
        }
        Ok(())
    }

    /// Sign and send one request; the response is returned whatever its status.
    async fn send(&self, conn: &mut Conn, req: Req<'_>) -> Result<Response<Incoming>, OpError> {
        let Req {
            method,
            path_and_query,
            headers: extra,
            ssec,
            body,
            payload_hash,
        } = req;
        let endpoint = self.transport.endpoint();
        let url = format!("{}{}", endpoint.base, path_and_query);
        let ssec_headers: &[(HeaderName, HeaderValue)] = match (ssec, &self.ssec) {
            (Ssec::With, Some(h)) => &h.0,
            _ => &[],
        };
        let mut to_sign: Vec<(&str, &str)> =
            Vec::with_capacity(1 + extra.len() + ssec_headers.len());
        to_sign.push(("host", endpoint.authority.as_str()));
        for (name, value) in extra.iter().chain(ssec_headers) {
            if let Ok(v) = value.to_str() {
                to_sign.push((name.as_str(), v));
            }
        }
        let payload = match payload_hash {
            Some(h) => Payload::Sha256Hex(h),
            None => Payload::Unsigned,
        };
        let signed = self
            .signer
            .sign(method.as_str(), &url, &to_sign, payload, SystemTime::now())
            .map_err(OpError::Transport)?;

        let body_len = http_body::Body::size_hint(&body).exact().unwrap_or(0);
        let mut builder = Request::builder()
            .method(method.clone())
            .uri(path_and_query)
            .header(HOST, endpoint.authority.as_str());
        for (name, value) in extra.iter().chain(ssec_headers) {
            builder = builder.header(name, value);
        }
        for (name, value) in &signed {
            builder = builder.header(*name, value.as_str());
        }
        if body_len > 0 || method == Method::PUT || method == Method::POST {
            builder = builder.header(CONTENT_LENGTH, body_len);
        }
        let request = builder
            .body(body)
            .map_err(|e| OpError::Transport(format!("building {method} {path_and_query}: {e}")))?;

        self.connect(conn).await?;
        let sender = conn
            .0
            .as_mut()
            .ok_or_else(|| OpError::Connect("no connection".into()))?;
        if sender.ready().await.is_err() {
            // The server closed an idle connection: one fresh try.
            conn.reset();
            self.connect(conn).await?;
        }
        let sender = conn
            .0
            .as_mut()
            .ok_or_else(|| OpError::Connect("no connection".into()))?;
        sender
            .send_request(request)
            .await
            .map_err(|e| OpError::Transport(format!("{method} {path_and_query}: {e}")))
    }

    /// A body for `data`, tagged, and its hash when payloads are signed.
    fn payload_body(&self, data: Bytes, meter: &Meter) -> (ReqBody, Option<String>) {
        let tag = self
            .tag_nonce
            .map(|nonce| (nonce, self.next_request.fetch_add(1, Ordering::Relaxed)));
        let body = PayloadBody::new(data, tag, meter.clone());
        let hash = match self.payload_mode {
            PayloadMode::Unsigned => None,
            PayloadMode::Signed => Some(body::sha256_hex(&body)),
        };
        (ReqBody::Payload(body), hash)
    }

    fn small_payload_hash(&self, data: &[u8]) -> Option<String> {
        match self.payload_mode {
            PayloadMode::Unsigned => None,
            PayloadMode::Signed => Some(hex_sha256(data)),
        }
    }

    /// PutObject of object `index`.
    pub async fn put(&self, conn: &mut Conn, index: u64, meter: &Meter) -> Result<(), OpError> {
        let (body, hash) = self.payload_body(self.data.clone(), meter);
        let octets = [(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        )];
        let resp = self
            .send(
                conn,
                Req::new(Method::PUT, &self.key_path(index))
                    .headers(&octets)
                    .ssec()
                    .body(body, hash.as_deref()),
            )
            .await?;
        expect(resp, &[StatusCode::OK]).await.map(drop)
    }

    /// GetObject of object `index`: the whole body is read, counted and checked for length.
    pub async fn get(&self, conn: &mut Conn, index: u64, meter: &Meter) -> Result<(), OpError> {
        let resp = self
            .send(conn, Req::new(Method::GET, &self.key_path(index)).ssec())
            .await?;
        let resp = expect(resp, &[StatusCode::OK]).await?;
        let got = drain(resp, meter).await?;
        if got != self.size {
            return Err(OpError::Body(format!(
                "GET returned {got} bytes, expected {}",
                self.size
            )));
        }
        Ok(())
    }

    /// A ranged GetObject of `range_size` bytes at `random % (size - range_size + 1)`.
    pub async fn range_get(
        &self,
        conn: &mut Conn,
        index: u64,
        random: u64,
        meter: &Meter,
    ) -> Result<(), OpError> {
        let span = self.size - self.range_size + 1;
        let start = random % span;
        let end = start + self.range_size - 1;
        let range = HeaderValue::from_str(&format!("bytes={start}-{end}"))
            .map_err(|e| OpError::Transport(e.to_string()))?;
        let resp = self
            .send(
                conn,
                Req::new(Method::GET, &self.key_path(index))
                    .headers(&[(RANGE, range)])
                    .ssec(),
            )
            .await?;
        let resp = expect(resp, &[StatusCode::PARTIAL_CONTENT]).await?;
        let got = drain(resp, meter).await?;
        if got != self.range_size {
            return Err(OpError::Body(format!(
                "ranged GET returned {got} bytes, expected {}",
                self.range_size
            )));
        }
        Ok(())
    }

    /// HeadObject of object `index`, checking Content-Length.
    pub async fn head(&self, conn: &mut Conn, index: u64) -> Result<(), OpError> {
        let resp = self
            .send(conn, Req::new(Method::HEAD, &self.key_path(index)).ssec())
            .await?;
        let resp = expect(resp, &[StatusCode::OK]).await?;
        let len = resp
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        drain(resp, &Meter::detached()).await?;
        if len != Some(self.size) {
            return Err(OpError::Body(format!(
                "HEAD Content-Length {len:?}, expected {}",
                self.size
            )));
        }
        Ok(())
    }

    /// The path and query of the list op: ListObjectsV2 of one page under the list prefix, with
    /// the delimiter and after the start-after key when there are some.
    fn list_path(&self) -> String {
        let mut pq = format!("{}?", self.bucket_path());
        if let Some(d) = &self.list_delimiter {
            pq.push_str("delimiter=");
            pq.extend(utf8_percent_encode(d, QUERY));
            pq.push('&');
        }
        pq.push_str(&format!(
            "list-type=2&max-keys={}&prefix={}",
            self.list_max_keys,
            utf8_percent_encode(&self.list_prefix, QUERY)
        ));
        if let Some(after) = &self.list_start_after {
            pq.push_str("&start-after=");
            pq.extend(utf8_percent_encode(after, QUERY));
        }
        pq
    }

    /// ListObjectsV2 of one page (see `list_path`), checking it has at least `list_min_keys` keys.
    pub async fn list(&self, conn: &mut Conn, meter: &Meter) -> Result<(), OpError> {
        let pq = self.list_path();
        let resp = self.send(conn, Req::new(Method::GET, &pq)).await?;
        let resp = expect(resp, &[StatusCode::OK]).await?;
        let xml = read_small(resp).await?;
        meter.add(xml.len() as u64);
        let text = String::from_utf8_lossy(&xml);
        if !text.contains("<ListBucketResult") {
            return Err(OpError::Body(
                "list answer is not a ListBucketResult".into(),
            ));
        }
        if self.list_min_keys > 0 {
            let count = xml_field(&text, "KeyCount").and_then(|n| n.trim().parse::<u32>().ok());
            if count.is_none_or(|n| n < self.list_min_keys) {
                return Err(OpError::Body(format!(
                    "list page has KeyCount {count:?}, expected at least {}",
                    self.list_min_keys
                )));
            }
        }
        Ok(())
    }

    /// DeleteObject of object `index` (S3 answers 204 whether it existed or not).
    pub async fn delete(&self, conn: &mut Conn, index: u64) -> Result<(), OpError> {
        let resp = self
            .send(conn, Req::new(Method::DELETE, &self.key_path(index)))
            .await?;
        expect(resp, &[StatusCode::NO_CONTENT, StatusCode::OK])
            .await
            .map(drop)
    }

    /// CreateMultipartUpload, UploadPart for each `part_size` slice in turn, CompleteMultipartUpload; an
    /// upload that fails half-way is aborted (best effort).
    pub async fn multipart_put(
        &self,
        conn: &mut Conn,
        index: u64,
        meter: &Meter,
    ) -> Result<(), OpError> {
        let path = self.key_path(index);
        let octets = [(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        )];
        let resp = self
            .send(
                conn,
                Req::new(Method::POST, &format!("{path}?uploads"))
                    .headers(&octets)
                    .ssec(),
            )
            .await?;
        let resp = expect(resp, &[StatusCode::OK]).await?;
        let xml = read_small(resp).await?;
        let text = String::from_utf8_lossy(&xml);
        let upload_id = xml_field(&text, "UploadId")
            .filter(|id| !id.is_empty())
            .ok_or_else(|| OpError::Body("CreateMultipartUpload answer has no UploadId".into()))?
            .to_owned();
        let upload_q = utf8_percent_encode(&upload_id, QUERY).to_string();
        match self
            .upload_parts_and_complete(conn, &path, &upload_q, meter)
            .await
        {
            Ok(()) => Ok(()),
            Err(e) => {
                if e.breaks_connection() {
                    conn.reset();
                }
                let abort = self
                    .send(
                        conn,
                        Req::new(Method::DELETE, &format!("{path}?uploadId={upload_q}")),
                    )
                    .await;
                if let Ok(resp) = abort {
                    let _ = drain(resp, &Meter::detached()).await;
                }
                Err(e)
            }
        }
    }

    async fn upload_parts_and_complete(
        &self,
        conn: &mut Conn,
        path: &str,
        upload_q: &str,
        meter: &Meter,
    ) -> Result<(), OpError> {
        let parts = self.size.div_ceil(self.part_size).max(1);
        let mut complete = String::from("<CompleteMultipartUpload>");
        for n in 0..parts {
            let start = (n * self.part_size) as usize;
            let end = ((n + 1) * self.part_size).min(self.size) as usize;
            let (body, hash) = self.payload_body(self.data.slice(start..end), meter);
            let part_number = n + 1;
            let resp = self
                .send(
                    conn,
                    Req::new(
                        Method::PUT,
                        &format!("{path}?partNumber={part_number}&uploadId={upload_q}"),
                    )
                    .ssec()
                    .body(body, hash.as_deref()),
                )
                .await?;
            let resp = expect(resp, &[StatusCode::OK]).await?;
            let etag = resp
                .headers()
                .get(http::header::ETAG)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
                .ok_or_else(|| {
                    OpError::Body(format!("UploadPart {part_number} answer has no ETag"))
                })?;
            drain(resp, &Meter::detached()).await?;
            complete.push_str(&format!(
                "<Part><PartNumber>{part_number}</PartNumber><ETag>{}</ETag></Part>",
                xml_escape(&etag)
            ));
        }
        complete.push_str("</CompleteMultipartUpload>");
        let xml = Bytes::from(complete);
        let hash = self.small_payload_hash(&xml);
        let xml_type = [(CONTENT_TYPE, HeaderValue::from_static("application/xml"))];
        let resp = self
            .send(
                conn,
                Req::new(Method::POST, &format!("{path}?uploadId={upload_q}"))
                    .headers(&xml_type)
                    .ssec()
                    .body(ReqBody::Full(Some(xml)), hash.as_deref()),
            )
            .await?;
        let resp = expect(resp, &[StatusCode::OK]).await?;
        // CompleteMultipartUpload may fail after its 200 status line: the error is then in the body.
        let answer = read_small(resp).await?;
        let text = String::from_utf8_lossy(&answer);
        if text.contains("<Error>") {
            return Err(OpError::Status {
                status: 200,
                code: xml_field(&text, "Code").map(str::to_owned),
                message: xml_field(&text, "Message").map(str::to_owned),
            });
        }
        Ok(())
    }

    /// HeadBucket, then CreateBucket when it is missing. A 409 (created meanwhile, or already ours) is fine.
    pub async fn ensure_bucket(&self, conn: &mut Conn) -> Result<(), String> {
        let path = self.bucket_path();
        let describe = |what: &str, e: OpError| format!("{what} {}: {}", self.bucket, e.detail());
        let resp = self
            .send(conn, Req::new(Method::HEAD, &path))
            .await
            .map_err(|e| describe("HeadBucket", e))?;
        let status = resp.status();
        drain(resp, &Meter::detached())
            .await
            .map_err(|e| describe("HeadBucket", e))?;
        if status.is_success() {
            return Ok(());
        }
        if status != StatusCode::NOT_FOUND {
            return Err(format!("HeadBucket {}: HTTP {status}", self.bucket));
        }
        let resp = self
            .send(conn, Req::new(Method::PUT, &path))
            .await
            .map_err(|e| describe("CreateBucket", e))?;
        match expect(resp, &[StatusCode::OK]).await {
            Ok(resp) => drain(resp, &Meter::detached())
                .await
                .map(drop)
                .map_err(|e| describe("CreateBucket", e)),
            Err(OpError::Status { status: 409, .. }) => Ok(()),
            Err(e) => Err(describe("CreateBucket", e)),
        }
    }
}

/// The response if its status is one of `ok`; otherwise its error code, the body read so the connection stays
/// usable.
async fn expect(
    resp: Response<Incoming>,
    ok: &[StatusCode],
) -> Result<Response<Incoming>, OpError> {
    let status = resp.status();
    if ok.contains(&status) {
        return Ok(resp);
    }
    let body = read_small(resp).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&body);
    Err(OpError::Status {
        status: status.as_u16(),
        code: xml_field(&text, "Code").map(str::to_owned),
        message: xml_field(&text, "Message").map(str::to_owned),
    })
}

/// Read and discard a body, counting its bytes into `meter` as they arrive.
async fn drain(resp: Response<Incoming>, meter: &Meter) -> Result<u64, OpError> {
    let mut body = resp.into_body();
    let mut total = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| OpError::Transport(format!("reading body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            let n = data.len() as u64;
            total += n;
            meter.add(n);
        }
    }
    Ok(total)
}

/// A small body in full (at most 16 MiB).
async fn read_small(resp: Response<Incoming>) -> Result<Bytes, OpError> {
    let limited = http_body_util::Limited::new(resp.into_body(), SMALL_BODY_LIMIT);
    limited
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| OpError::Transport(format!("reading body: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_fields() {
        let xml = "<Error><Code>NoSuchKey</Code><Message>gone &amp; lost</Message></Error>";
        assert_eq!(xml_field(xml, "Code"), Some("NoSuchKey"));
        assert_eq!(xml_field(xml, "Message"), Some("gone &amp; lost"));
        assert_eq!(xml_field(xml, "UploadId"), None);
    }

    #[test]
    fn error_keys() {
        let e = OpError::Status {
            status: 404,
            code: Some("NoSuchKey".into()),
            message: None,
        };
        assert_eq!(e.key(), "404 NoSuchKey");
        assert!(!e.breaks_connection());
        assert_eq!(
            OpError::Status {
                status: 500,
                code: None,
                message: None
            }
            .key(),
            "500"
        );
        assert_eq!(OpError::Transport("x".into()).key(), "transport");
        assert!(OpError::Body("short".into()).breaks_connection());
    }

    #[test]
    fn ssec_headers_carry_key_and_md5() {
        let h = SsecHeaders::new(&[0u8; 32]).unwrap();
        assert_eq!(h.0[1].1, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
        // MD5 of 32 zero bytes.
        assert_eq!(h.0[2].1, "cLyPS3KoaSFGi/joRB3OUQ==");
    }

    #[test]
    fn encodings() {
        assert_eq!(
            utf8_percent_encode("a b/c+d~", PATH).to_string(),
            "a%20b/c%2Bd~"
        );
        assert_eq!(
            utf8_percent_encode("x+y/z=", QUERY).to_string(),
            "x%2By%2Fz%3D"
        );
    }
}
