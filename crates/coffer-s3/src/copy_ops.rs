//! CopyObject and UploadPartCopy.

use coffer_core::{Conditions, CopyObject, CopySource, MetadataDirective, RangeSpec, UploadPart};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use crate::CofferS3;
use crate::object_ops::{object_metadata, set_checksum, timestamp};
use crate::ssec::{echo, take_customer_key};

fn source_of(cs: &s3s::dto::CopySource) -> S3Result<(String, String, Option<String>)> {
    match cs {
        s3s::dto::CopySource::Bucket {
            bucket,
            key,
            version_id,
        } => Ok((
            bucket.to_string(),
            key.to_string(),
            version_id.as_deref().map(str::to_owned),
        )),
        _ => Err(s3_error!(
            NotImplemented,
            "Copy sources other than bucket/key are not supported."
        )),
    }
}

fn seconds(ts: Timestamp) -> i64 {
    time::OffsetDateTime::from(ts).unix_timestamp()
}

fn etag_condition(c: Option<ETagCondition>) -> Option<String> {
    c.map(|c| match c {
        ETagCondition::ETag(e) => format!("\"{}\"", e.value()),
        ETagCondition::Any => "*".to_owned(),
    })
}

/// `bytes=first-last`, the only form `x-amz-copy-source-range` takes.
fn copy_range(v: &str) -> S3Result<RangeSpec> {
    let bad = || {
        s3_error!(
            InvalidArgument,
            "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy"
        )
    };
    let spec = v.trim().strip_prefix("bytes=").ok_or_else(bad)?;
    let (a, b) = spec.split_once('-').ok_or_else(bad)?;
    let first: u64 = a.trim().parse().map_err(|_| bad())?;
    let last: u64 = b.trim().parse().map_err(|_| bad())?;
    if last < first {
        return Err(bad());
    }
    Ok(RangeSpec::Bounded { first, last })
}

impl CofferS3 {
    /// A non-root user may copy only from buckets it owns.
    /// The caller must be allowed to read the copy source (s3:GetObject, or
    /// s3:GetObjectVersion for a version) by owning its bucket, its policy or its ACL.
    fn check_source_access<T>(
        &self,
        req: &S3Request<T>,
        bucket: &str,
        key: &str,
        version: Option<&str>,
    ) -> S3Result<()> {
        let user = self.caller(req)?;
        let info = self.coffer.bucket(bucket).map_err(|e| self.map_err(e))?;
        let action = if version.is_some() {
            "s3:GetObjectVersion"
        } else {
            "s3:GetObject"
        };
        let context = crate::access::policy_context(
            &req.headers,
            &req.uri,
            req.extensions.get::<crate::ConnectionInfo>().copied(),
            Some(&user),
        );
        if crate::access::authorize(
            &self.coffer,
            Some(&user),
            &info,
            Some(key),
            "GetObject",
            action,
            &context,
        ) {
            Ok(())
        } else {
            Err(s3_error!(AccessDenied, "Access Denied"))
        }
    }

    pub(crate) async fn op_copy_object(
        &self,
        mut req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        crate::ssec::drop_key_headers(&mut req.headers);
        let (src_bucket, src_key, src_version) = source_of(&req.input.copy_source)?;
        self.check_source_access(&req, &src_bucket, &src_key, src_version.as_deref())?;
        let input = &mut req.input;
        let customer_key = take_customer_key(
            &mut input.sse_customer_algorithm,
            &mut input.sse_customer_key,
            &mut input.sse_customer_key_md5,
            input.server_side_encryption.is_some(),
        )?;
        let source_key = take_customer_key(
            &mut input.copy_source_sse_customer_algorithm,
            &mut input.copy_source_sse_customer_key,
            &mut input.copy_source_sse_customer_key_md5,
            false,
        )?;
        let server_side = crate::ssec::server_side(
            input.server_side_encryption.as_ref(),
            input.ssekms_key_id.take(),
        )?;
        let acl = crate::acl_ops::canned(input.acl.as_ref().map(ObjectCannedACL::as_str), true)?;
        let metadata = match input
            .metadata_directive
            .as_ref()
            .map(MetadataDirective_::as_str)
        {
            None | Some("COPY") => MetadataDirective::Copy,
            Some("REPLACE") => MetadataDirective::Replace(Box::new(object_metadata(
                input.metadata.take(),
                input.content_type.take(),
                input.content_encoding.take(),
                input.content_disposition.take(),
                input.content_language.take(),
                input.cache_control.take(),
                &req.headers,
            ))),
            Some(_) => return Err(s3_error!(InvalidArgument, "Unknown metadata directive.")),
        };
        let tags = match input
            .tagging_directive
            .as_ref()
            .map(s3s::dto::TaggingDirective::as_str)
        {
            None | Some("COPY") => None,
            Some("REPLACE") => Some(
                crate::object_ops::request_tags(input.tagging.as_deref())
                    .map_err(|e| self.map_err(e))?,
            ),
            Some(_) => return Err(s3_error!(InvalidArgument, "Unknown tagging directive.")),
        };
        let (sse_algorithm, sse_key_md5) = echo(customer_key.as_ref());
        let conditions = Conditions {
            if_match: etag_condition(input.copy_source_if_match.take()),
            if_none_match: etag_condition(input.copy_source_if_none_match.take()),
            if_modified_since: input.copy_source_if_modified_since.take().map(seconds),
            if_unmodified_since: input.copy_source_if_unmodified_since.take().map(seconds),
        };
        let outcome = self
            .coffer
            .copy_object(CopyObject {
                source: CopySource {
                    bucket: src_bucket,
                    key: src_key,
                    customer_key: source_key,
                    conditions,
                    range: None,
                    version_id: src_version,
                },
                bucket: input.bucket.clone(),
                key: input.key.clone(),
                metadata,
                customer_key,
                server_side: server_side.clone(),
                acl,
                tags,
            })
            .await
            .map_err(|e| self.map_err(e))?;
        let mut result = CopyObjectResult {
            e_tag: Some(ETag::Strong(outcome.etag)),
            last_modified: Some(timestamp(outcome.last_modified_ms)),
            ..Default::default()
        };
        if let Some((alg, value)) = outcome.checksum {
            set_checksum!(result, alg, value);
        }
        let (server_side_encryption, ssekms_key_id) =
            crate::ssec::server_side_echo(server_side.as_ref());
        Ok(S3Response::new(CopyObjectOutput {
            server_side_encryption,
            ssekms_key_id,
            copy_object_result: Some(result),
            version_id: outcome.version_id,
            copy_source_version_id: outcome.source_version_id,
            sse_customer_algorithm: sse_algorithm,
            sse_customer_key_md5: sse_key_md5,
            ..Default::default()
        }))
    }

    pub(crate) async fn op_upload_part_copy(
        &self,
        mut req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        crate::ssec::drop_key_headers(&mut req.headers);
        let (src_bucket, src_key, src_version) = source_of(&req.input.copy_source)?;
        self.check_source_access(&req, &src_bucket, &src_key, src_version.as_deref())?;
        let input = &mut req.input;
        let customer_key = take_customer_key(
            &mut input.sse_customer_algorithm,
            &mut input.sse_customer_key,
            &mut input.sse_customer_key_md5,
            false,
        )?;
        let source_key = take_customer_key(
            &mut input.copy_source_sse_customer_algorithm,
            &mut input.copy_source_sse_customer_key,
            &mut input.copy_source_sse_customer_key_md5,
            false,
        )?;
        let part_number = u32::try_from(input.part_number).map_err(|_| {
            s3_error!(
                InvalidArgument,
                "Part number must be an integer between 1 and 10000, inclusive"
            )
        })?;
        let range = match input.copy_source_range.as_deref() {
            Some(v) => Some(copy_range(v)?),
            None => None,
        };
        let (sse_algorithm, sse_key_md5) = echo(customer_key.as_ref());
        let conditions = Conditions {
            if_match: etag_condition(input.copy_source_if_match.take()),
            if_none_match: etag_condition(input.copy_source_if_none_match.take()),
            if_modified_since: input.copy_source_if_modified_since.take().map(seconds),
            if_unmodified_since: input.copy_source_if_unmodified_since.take().map(seconds),
        };
        let (outcome, last_modified_ms, source_version_id) = self
            .coffer
            .upload_part_copy(
                CopySource {
                    bucket: src_bucket,
                    key: src_key,
                    customer_key: source_key,
                    conditions,
                    range,
                    version_id: src_version,
                },
                UploadPart {
                    bucket: input.bucket.clone(),
                    key: input.key.clone(),
                    upload_id: input.upload_id.clone(),
                    part_number,
                    expected_len: None,
                    content_md5: None,
                    checksum: coffer_core::ExpectedChecksum::None,
                    customer_key,
                },
            )
            .await
            .map_err(|e| self.map_err(e))?;
        let mut result = CopyPartResult {
            e_tag: Some(ETag::Strong(outcome.etag)),
            last_modified: Some(timestamp(last_modified_ms)),
            ..Default::default()
        };
        if let Some((alg, value)) = outcome.checksum {
            set_checksum!(result, alg, value);
        }
        let (server_side_encryption, ssekms_key_id) =
            crate::ssec::server_side_echo(outcome.server_side.as_ref());
        Ok(S3Response::new(UploadPartCopyOutput {
            copy_part_result: Some(result),
            server_side_encryption,
            ssekms_key_id,
            copy_source_version_id: source_version_id,
            sse_customer_algorithm: sse_algorithm,
            sse_customer_key_md5: sse_key_md5,
            ..Default::default()
        }))
    }
}

use s3s::dto::MetadataDirective as MetadataDirective_;
