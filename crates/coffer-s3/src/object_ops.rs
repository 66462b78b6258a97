//! Object operations: put, get, head, delete, delete-many.

use bytes::Bytes;
use coffer_core::{
    ByteStream, ChecksumAlgorithm, Conditions, ExpectedChecksum, ObjectMetadata, PutObject,
    RangeSpec, ReadOptions,
};
use coffer_store::ObjectRecord;
use http::{HeaderMap, HeaderValue};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, TrailingHeaders, s3_error};

use crate::CofferS3;
use crate::ssec::{echo, take_customer_key};

pub(crate) fn timestamp(ms: i64) -> Timestamp {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    Timestamp::from(t)
}

pub(crate) fn body_stream(blob: Option<StreamingBlob>) -> ByteStream<coffer_core::BoxError> {
    match blob {
        Some(blob) => Box::pin(blob),
        None => Box::pin(futures::stream::empty::<Result<Bytes, coffer_core::BoxError>>()),
    }
}

/// An RFC 7231 IMF-fixdate, as `Last-Modified` wants it.
pub(crate) fn http_date(ms: i64) -> String {
    const FORMAT: &[time::format_description::BorrowedFormatItem<'static>] = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let t = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(FORMAT).unwrap_or_default()
}

pub(crate) fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// `aws-chunked` describes the upload, not the object: S3 does not store it.
pub(crate) fn strip_aws_chunked(value: String) -> Option<String> {
    let kept: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty() && !v.eq_ignore_ascii_case("aws-chunked"))
        .collect();
    (!kept.is_empty()).then(|| kept.join(", "))
}

/// The stored metadata of a new object (PutObject, CreateMultipartUpload, CopyObject REPLACE).
pub(crate) fn object_metadata(
    user: Option<Metadata>,
    content_type: Option<String>,
    content_encoding: Option<String>,
    content_disposition: Option<String>,
    content_language: Option<String>,
    cache_control: Option<String>,
    headers: &HeaderMap,
) -> ObjectMetadata {
    let mut user: Vec<(String, String)> = user.unwrap_or_default().into_iter().collect();
    user.sort();
    ObjectMetadata {
        acl: None,
        tags: Vec::new(),
        content_type,
        content_encoding: content_encoding.and_then(strip_aws_chunked),
        content_disposition,
        content_language,
        cache_control,
        expires: header_str(headers, "expires"),
        user,
    }
}

/// The tags of a new object from its `x-amz-tagging` value (the header, or a POST form's
/// field of that name); absent: none.
pub(crate) fn request_tags(
    tagging: Option<&str>,
) -> Result<Vec<(String, String)>, coffer_core::CoreError> {
    tagging.map_or(Ok(Vec::new()), coffer_core::tagging::parse_tagging_header)
}

/// `If-Match` / `If-None-Match` on a write, as raw header lists.
pub(crate) fn write_conditions(headers: &HeaderMap) -> coffer_core::WriteConditions {
    coffer_core::WriteConditions {
        if_match: header_str(headers, "if-match"),
        if_none_match: header_str(headers, "if-none-match"),
    }
}

/// The decoded body length: aws-chunked uploads (every current SDK over HTTPS) send it in
/// `x-amz-decoded-content-length` and often no Content-Length at all.
pub(crate) fn declared_length(
    headers: &HeaderMap,
    content_length: Option<i64>,
) -> S3Result<Option<u64>> {
    let declared = match header_str(headers, "x-amz-decoded-content-length") {
        Some(v) => Some(
            v.trim()
                .parse::<i64>()
                .map_err(|_| s3_error!(InvalidArgument, "Bad x-amz-decoded-content-length."))?,
        ),
        None => content_length,
    };
    match declared {
        Some(n) => Ok(Some(u64::try_from(n).map_err(|_| {
            s3_error!(InvalidArgument, "Content-Length must not be negative.")
        })?)),
        None => Err(s3_error!(
            MissingContentLength,
            "You must provide the Content-Length HTTP header."
        )),
    }
}

fn seconds(ts: Timestamp) -> i64 {
    time::OffsetDateTime::from(ts).unix_timestamp()
}

/// Which checksum the client sent (as a header, or announced as a trailer).
pub(crate) fn expected_checksum(
    given: [Option<&String>; 5],
    checksum_algorithm: Option<&s3s::dto::ChecksumAlgorithm>,
    headers: &HeaderMap,
    trailers: Option<TrailingHeaders>,
) -> S3Result<ExpectedChecksum> {
    let given: Vec<(ChecksumAlgorithm, &String)> = ChecksumAlgorithm::ALL
        .into_iter()
        .zip(given)
        .filter_map(|(a, v)| v.map(|v| (a, v)))
        .collect();
    if given.len() > 1 {
        return Err(s3_error!(
            InvalidRequest,
            "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed."
        ));
    }
    if let Some((a, v)) = given.first() {
        return Ok(ExpectedChecksum::Value(*a, (*v).clone()));
    }
    if let Some(trailer) = header_str(headers, "x-amz-trailer") {
        let name = trailer.trim().to_ascii_lowercase();
        let algorithm = ChecksumAlgorithm::from_header_name(&name).ok_or_else(|| {
            s3_error!(
                InvalidRequest,
                "The value specified in the x-amz-trailer header is not supported"
            )
        })?;
        let trailers = trailers.ok_or_else(|| {
            s3_error!(
                InvalidRequest,
                "x-amz-trailer requires an aws-chunked body with trailers."
            )
        })?;
        let read = move || {
            trailers
                .read(|h| {
                    h.get(name.as_str())
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                })
                .flatten()
        };
        return Ok(ExpectedChecksum::Trailer(algorithm, Box::new(read)));
    }
    if let Some(alg) = checksum_algorithm {
        let algorithm = ChecksumAlgorithm::parse(alg.as_str()).ok_or_else(|| {
            s3_error!(
                InvalidRequest,
                "Checksum algorithm provided is unsupported."
            )
        })?;
        // The SDK named an algorithm but sent no value: compute and store it.
        return Ok(ExpectedChecksum::Compute(algorithm));
    }
    Ok(ExpectedChecksum::None)
}

/// Sets the `checksum_*` field of an s3s output (they all name them alike) for `alg`.
macro_rules! set_checksum {
    ($out:expr, $alg:expr, $value:expr) => {{
        let value = Some($value);
        match $alg {
            coffer_core::ChecksumAlgorithm::Crc32 => $out.checksum_crc32 = value,
            coffer_core::ChecksumAlgorithm::Crc32c => $out.checksum_crc32c = value,
            coffer_core::ChecksumAlgorithm::Crc64Nvme => $out.checksum_crc64nvme = value,
            coffer_core::ChecksumAlgorithm::Sha1 => $out.checksum_sha1 = value,
            coffer_core::ChecksumAlgorithm::Sha256 => $out.checksum_sha256 = value,
        }
    }};
}
pub(crate) use set_checksum;

/// The five `checksum_*` values of an s3s input, in `ChecksumAlgorithm::ALL` order.
macro_rules! checksums_of {
    ($input:expr) => {
        [
            $input.checksum_crc32.as_ref(),
            $input.checksum_crc32c.as_ref(),
            $input.checksum_crc64nvme.as_ref(),
            $input.checksum_sha1.as_ref(),
            $input.checksum_sha256.as_ref(),
        ]
    };
}
pub(crate) use checksums_of;

/// The stored whole-object checksum: (algorithm, value, checksum type).
pub(crate) fn stored_checksum(
    record: &ObjectRecord,
) -> Option<(ChecksumAlgorithm, String, &'static str)> {
    let (spec, value) = record.checksum.as_ref()?;
    let (name, kind) = match spec.split_once(':') {
        Some((n, _)) => (n, ChecksumType::FULL_OBJECT),
        None if value.contains('-') => (spec.as_str(), ChecksumType::COMPOSITE),
        None => (spec.as_str(), ChecksumType::FULL_OBJECT),
    };
    Some((ChecksumAlgorithm::parse(name)?, value.clone(), kind))
}

/// `x-amz-mp-parts-count` for multipart objects read with `?partNumber=`.
fn parts_count(record: &ObjectRecord, part_number: Option<u32>) -> Option<i32> {
    (part_number.is_some() && record.etag.contains('-'))
        .then(|| i32::try_from(record.segments.len()).unwrap_or(i32::MAX))
}

/// Headers S3 returns that s3s's output types can't carry as we store them.
fn extra_headers(record: &ObjectRecord) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Some(exp) = record.expires.as_deref()
        && let Ok(v) = HeaderValue::from_str(exp)
    {
        h.insert(http::header::EXPIRES, v);
    }
    h
}

fn range_spec(r: &Range) -> RangeSpec {
    match *r {
        Range::Int {
            first,
            last: Some(last),
        } => RangeSpec::Bounded { first, last },
        Range::Int { first, last: None } => RangeSpec::From { first },
        Range::Suffix { length } => RangeSpec::Suffix { len: length },
    }
}

fn conditions(
    headers: &HeaderMap,
    modified: Option<Timestamp>,
    unmodified: Option<Timestamp>,
) -> Conditions {
    Conditions {
        if_match: header_str(headers, "if-match"),
        if_none_match: header_str(headers, "if-none-match"),
        if_modified_since: modified.map(seconds),
        if_unmodified_since: unmodified.map(seconds),
    }
}

/// Where the length of a new object's body comes from.
pub(crate) enum BodyLength {
    /// Declared before the body: `x-amz-decoded-content-length` or Content-Length (PUT).
    Declared,
    /// Known when the body ends: a browser POST form's file, which ends at its boundary.
    Delimited,
}

impl CofferS3 {
    pub(crate) async fn op_put_object(
        &self,
        mut req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        crate::ssec::drop_key_headers(&mut req.headers);
        let body = body_stream(req.input.body.take());
        let output = self
            .write_object(
                &mut req.input,
                body,
                &req.headers,
                BodyLength::Declared,
                None,
                req.trailing_headers.clone(),
            )
            .await?;
        Ok(S3Response::new(output))
    }

    /// Writes a new object: PutObject, and a browser POST form's file (whose fields make the
    /// input, with its tags as a Tagging document in `form_tagging`). `headers` are the
    /// request's, with the SSE-C key headers already dropped.
    pub(crate) async fn write_object(
        &self,
        input: &mut PutObjectInput,
        body: ByteStream<coffer_core::BoxError>,
        headers: &HeaderMap,
        length: BodyLength,
        form_tagging: Option<&str>,
        trailers: Option<TrailingHeaders>,
    ) -> S3Result<PutObjectOutput> {
        let customer_key = take_customer_key(
            &mut input.sse_customer_algorithm,
            &mut input.sse_customer_key,
            &mut input.sse_customer_key_md5,
            input.server_side_encryption.is_some(),
        )?;
        let server_side = crate::ssec::server_side(
            input.server_side_encryption.as_ref(),
            input.ssekms_key_id.take(),
        )?;
        let acl = crate::acl_ops::canned(input.acl.as_ref().map(ObjectCannedACL::as_str), true)?;
        let form_tags = form_tagging
            .map(crate::tagging_ops::tags_of_document)
            .transpose()?;
        let expected_len = match length {
            BodyLength::Declared => declared_length(headers, input.content_length)?,
            BodyLength::Delimited => None,
        };
        let checksum = expected_checksum(
            checksums_of!(input),
            input.checksum_algorithm.as_ref(),
            headers,
            trailers,
        )?;
        let mut metadata = object_metadata(
            input.metadata.take(),
            input.content_type.take(),
            input.content_encoding.take(),
            input.content_disposition.take(),
            input.content_language.take(),
            input.cache_control.take(),
            headers,
        );
        let (sse_algorithm, sse_key_md5) = echo(customer_key.as_ref());
        metadata.acl = acl;
        metadata.tags = match form_tags {
            Some(tags) => {
                coffer_core::tagging::validate_tags(&tags).map_err(|e| self.map_err(e))?;
                tags
            }
            None => request_tags(input.tagging.as_deref()).map_err(|e| self.map_err(e))?,
        };
        let put = PutObject {
            bucket: input.bucket.clone(),
            key: input.key.clone(),
            expected_len,
            content_md5: input.content_md5.take(),
            checksum,
            metadata,
            encryption: coffer_core::Encryption::from_parts(customer_key, server_side.clone()),
            conditions: write_conditions(headers),
        };
        let outcome = self
            .coffer
            .put_object(put, body)
            .await
            .map_err(|e| self.map_err(e))?;
        let (server_side_encryption, ssekms_key_id) =
            crate::ssec::server_side_echo(server_side.as_ref());
        let mut output = PutObjectOutput {
            server_side_encryption,
            ssekms_key_id,
            e_tag: Some(ETag::Strong(outcome.etag)),
            version_id: outcome.version_id,
            sse_customer_algorithm: sse_algorithm,
            sse_customer_key_md5: sse_key_md5,
            ..Default::default()
        };
        if let Some((alg, value)) = outcome.checksum {
            set_checksum!(output, alg, value);
            output.checksum_type = Some(ChecksumType::from_static(ChecksumType::FULL_OBJECT));
        }
        Ok(output)
    }

    pub(crate) async fn op_get_object(
        &self,
        mut req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        crate::ssec::drop_key_headers(&mut req.headers);
        let input = &mut req.input;
        let customer_key = take_customer_key(
            &mut input.sse_customer_algorithm,
            &mut input.sse_customer_key,
            &mut input.sse_customer_key_md5,
            false,
        )?;
        let part_number = match input.part_number {
            Some(n) => Some(
                u32::try_from(n)
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(crate::errors::invalid_part_number)?,
            ),
            None => None,
        };
        let (sse_algorithm, sse_key_md5) = echo(customer_key.as_ref());
        let opts = ReadOptions {
            range: input.range.as_ref().map(range_spec),
            conditions: conditions(
                &req.headers,
                input.if_modified_since.take(),
                input.if_unmodified_since.take(),
            ),
            customer_key,
            part_number,
            version_id: input.version_id.take(),
        };
        let read = self
            .coffer
            .read_object(&input.bucket, &input.key, opts, true)
            .map_err(|e| self.map_err(e))?;
        let record = &read.record;
        let (server_side_encryption, ssekms_key_id) = crate::ssec::server_side_echo(
            coffer_core::record_server_side(record.encryption.as_ref()).as_ref(),
        );
        let mut output = GetObjectOutput {
            server_side_encryption,
            ssekms_key_id,
            version_id: read
                .versioned
                .then(|| record.exposed_version_id().to_owned()),
            accept_ranges: Some("bytes".into()),
            body: read.body.map(StreamingBlob::wrap),
            content_length: i64::try_from(read.content_length).ok(),
            content_range: read
                .range
                .map(|(s, e)| format!("bytes {s}-{e}/{}", record.size)),
            e_tag: Some(ETag::Strong(record.etag.clone())),
            last_modified: Some(timestamp(record.last_modified_ms)),
            metadata: (!record.user_metadata.is_empty())
                .then(|| record.user_metadata.iter().cloned().collect()),
            sse_customer_algorithm: sse_algorithm,
            sse_customer_key_md5: sse_key_md5,
            tag_count: (!record.tags.is_empty())
                .then(|| i32::try_from(record.tags.len()).unwrap_or(i32::MAX)),
            cache_control: input
                .response_cache_control
                .take()
                .or_else(|| record.cache_control.clone()),
            content_disposition: input
                .response_content_disposition
                .take()
                .or_else(|| record.content_disposition.clone()),
            content_encoding: input
                .response_content_encoding
                .take()
                .or_else(|| record.content_encoding.clone()),
            content_language: input
                .response_content_language
                .take()
                .or_else(|| record.content_language.clone()),
            content_type: Some(
                input
                    .response_content_type
                    .take()
                    .or_else(|| record.content_type.clone())
                    .unwrap_or_else(|| "binary/octet-stream".to_owned()),
            ),
            ..Default::default()
        };
        if read.range.is_none()
            && input
                .checksum_mode
                .as_ref()
                .is_some_and(|m| m.as_str() == ChecksumMode::ENABLED)
            && let Some((alg, value, kind)) = stored_checksum(record)
        {
            set_checksum!(output, alg, value);
            output.checksum_type = Some(ChecksumType::from_static(kind));
        }
        output.parts_count = parts_count(record, part_number);
        let mut headers = extra_headers(record);
        if let Some(exp) = input.response_expires.take() {
            let ms = seconds(exp).saturating_mul(1000);
            if let Ok(v) = HeaderValue::from_str(&http_date(ms)) {
                headers.insert(http::header::EXPIRES, v);
            }
        }
        let mut resp = S3Response::with_headers(output, headers);
        if read.range.is_some() {
            resp.status = Some(http::StatusCode::PARTIAL_CONTENT);
        }
        Ok(resp)
    }

    pub(crate) async fn op_head_object(
        &self,
        mut req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        crate::ssec::drop_key_headers(&mut req.headers);
        let input = &mut req.input;
        let customer_key = take_customer_key(
            &mut input.sse_customer_algorithm,
            &mut input.sse_customer_key,
            &mut input.sse_customer_key_md5,
            false,
        )?;
        let part_number = match input.part_number {
            Some(n) => Some(
                u32::try_from(n)
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(crate::errors::invalid_part_number)?,
            ),
            None => None,
        };
        let (sse_algorithm, sse_key_md5) = echo(customer_key.as_ref());
        let opts = ReadOptions {
            range: input.range.as_ref().map(range_spec),
            conditions: conditions(
                &req.headers,
                input.if_modified_since.take(),
                input.if_unmodified_since.take(),
            ),
            customer_key,
            part_number,
            version_id: input.version_id.take(),
        };
        let read = self
            .coffer
            .read_object(&input.bucket, &input.key, opts, false)
            .map_err(|e| self.map_err(e))?;
        let record = &read.record;
        let (server_side_encryption, ssekms_key_id) = crate::ssec::server_side_echo(
            coffer_core::record_server_side(record.encryption.as_ref()).as_ref(),
        );
        let mut output = HeadObjectOutput {
            server_side_encryption,
            ssekms_key_id,
            version_id: read
                .versioned
                .then(|| record.exposed_version_id().to_owned()),
            accept_ranges: Some("bytes".into()),
            content_length: i64::try_from(read.content_length).ok(),
            content_range: read
                .range
                .map(|(s, e)| format!("bytes {s}-{e}/{}", record.size)),
            e_tag: Some(ETag::Strong(record.etag.clone())),
            last_modified: Some(timestamp(record.last_modified_ms)),
            metadata: (!record.user_metadata.is_empty())
                .then(|| record.user_metadata.iter().cloned().collect()),
            sse_customer_algorithm: sse_algorithm,
            sse_customer_key_md5: sse_key_md5,
            cache_control: record.cache_control.clone(),
            content_disposition: record.content_disposition.clone(),
            content_encoding: record.content_encoding.clone(),
            content_language: record.content_language.clone(),
            content_type: Some(
                record
                    .content_type
                    .clone()
                    .unwrap_or_else(|| "binary/octet-stream".to_owned()),
            ),
            ..Default::default()
        };
        if read.range.is_none()
            && input
                .checksum_mode
                .as_ref()
                .is_some_and(|m| m.as_str() == ChecksumMode::ENABLED)
            && let Some((alg, value, kind)) = stored_checksum(record)
        {
            set_checksum!(output, alg, value);
            output.checksum_type = Some(ChecksumType::from_static(kind));
        }
        output.parts_count = parts_count(record, part_number);
        let mut resp = S3Response::with_headers(output, extra_headers(record));
        if read.range.is_some() {
            resp.status = Some(http::StatusCode::PARTIAL_CONTENT);
        }
        Ok(resp)
    }

    pub(crate) async fn op_delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let outcome = self
            .coffer
            .delete_object(
                &req.input.bucket,
                &req.input.key,
                req.input.version_id.as_deref(),
            )
            .await
            .map_err(|e| self.map_err(e))?;
        Ok(S3Response::with_status(
            DeleteObjectOutput {
                delete_marker: outcome.delete_marker.then_some(true),
                version_id: outcome.version_id,
                ..Default::default()
            },
            http::StatusCode::NO_CONTENT,
        ))
    }

    pub(crate) async fn op_delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let input = req.input;
        if input.delete.objects.len() > 1000 {
            return Err(s3_error!(
                MalformedXML,
                "A delete request may name at most 1000 keys."
            ));
        }
        self.coffer
            .bucket(&input.bucket)
            .map_err(|e| self.map_err(e))?;
        let quiet = input.delete.quiet.unwrap_or(false);
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for obj in input.delete.objects {
            match self
                .coffer
                .delete_object(&input.bucket, &obj.key, obj.version_id.as_deref())
                .await
            {
                Ok(outcome) => {
                    if !quiet {
                        deleted.push(DeletedObject {
                            key: Some(obj.key),
                            version_id: obj.version_id.clone(),
                            delete_marker: outcome.delete_marker.then_some(true),
                            delete_marker_version_id: if outcome.delete_marker {
                                outcome.version_id
                            } else {
                                None
                            },
                        });
                    }
                }
                Err(e) => {
                    let e = self.map_err(e);
                    errors.push(Error {
                        code: Some(e.code().as_str().to_owned()),
                        key: Some(obj.key),
                        message: e.message().map(str::to_owned),
                        version_id: obj.version_id,
                    });
                }
            }
        }
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: Some(deleted),
            errors: (!errors.is_empty()).then_some(errors),
            ..Default::default()
        }))
    }
}
