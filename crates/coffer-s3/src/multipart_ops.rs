//! Multipart upload operations.

use coffer_core::{
    ChecksumAlgorithm, CompletePart, CreateUpload, ListUploadsParams, UploadPart, upload_checksum,
};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use crate::CofferS3;
use crate::bucket_ops::owner_of;
use crate::object_ops::{
    body_stream, checksums_of, declared_length, expected_checksum, object_metadata, set_checksum,
    timestamp,
};
use crate::ssec::{echo, take_customer_key};

fn checksum_algorithm_dto(a: ChecksumAlgorithm) -> s3s::dto::ChecksumAlgorithm {
    s3s::dto::ChecksumAlgorithm::from(a.as_str().to_owned())
}

fn checksum_type_dto(full: bool) -> ChecksumType {
    ChecksumType::from_static(if full {
        ChecksumType::FULL_OBJECT
    } else {
        ChecksumType::COMPOSITE
    })
}

impl CofferS3 {
    pub(crate) async fn op_create_multipart_upload(
        &self,
        mut req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        crate::ssec::drop_key_headers(&mut req.headers);
        let user = self.caller(&req)?;
        let input = &mut req.input;
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
        let checksum_algorithm = match &input.checksum_algorithm {
            Some(a) => Some(ChecksumAlgorithm::parse(a.as_str()).ok_or_else(|| {
                s3_error!(
                    InvalidRequest,
                    "Checksum algorithm provided is unsupported."
                )
            })?),
            None => None,
        };
        let full_object_checksum = match input.checksum_type.as_ref().map(ChecksumType::as_str) {
            Some(ChecksumType::FULL_OBJECT) => true,
            Some(ChecksumType::COMPOSITE) => false,
            Some(_) => {
                return Err(s3_error!(
                    InvalidRequest,
                    "Value for x-amz-checksum-type header is invalid."
                ));
            }
            // CRC64NVME is full-object only; the others default to composite, as on AWS.
            None => checksum_algorithm == Some(ChecksumAlgorithm::Crc64Nvme),
        };
        let (sse_algorithm, sse_key_md5) = echo(customer_key.as_ref());
        let metadata = object_metadata(
            input.metadata.take(),
            input.content_type.take(),
            input.content_encoding.take(),
            input.content_disposition.take(),
            input.content_language.take(),
            input.cache_control.take(),
            &req.headers,
        );
        let mut metadata = metadata;
        metadata.acl = acl;
        metadata.tags = crate::object_ops::request_tags(input.tagging.as_deref())
            .map_err(|e| self.map_err(e))?;
        let upload_id = self
            .coffer
            .create_multipart_upload(CreateUpload {
                bucket: input.bucket.clone(),
                key: input.key.clone(),
                owner: user.name,
                metadata,
                checksum_algorithm,
                full_object_checksum,
                encryption: coffer_core::Encryption::from_parts(customer_key, server_side.clone()),
            })
            .await
            .map_err(|e| self.map_err(e))?;
        let (server_side_encryption, ssekms_key_id) =
            crate::ssec::server_side_echo(server_side.as_ref());
        Ok(S3Response::new(CreateMultipartUploadOutput {
            server_side_encryption,
            ssekms_key_id,
            bucket: Some(input.bucket.clone()),
            key: Some(input.key.clone()),
            upload_id: Some(upload_id),
            sse_customer_algorithm: sse_algorithm,
            sse_customer_key_md5: sse_key_md5,
            checksum_algorithm: checksum_algorithm.map(checksum_algorithm_dto),
            checksum_type: checksum_algorithm.map(|_| checksum_type_dto(full_object_checksum)),
            ..Default::default()
        }))
    }

    pub(crate) async fn op_upload_part(
        &self,
        mut req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        crate::ssec::drop_key_headers(&mut req.headers);
        let input = &mut req.input;
        let customer_key = take_customer_key(
            &mut input.sse_customer_algorithm,
            &mut input.sse_customer_key,
            &mut input.sse_customer_key_md5,
            false,
        )?;
        let part_number = u32::try_from(input.part_number).map_err(|_| {
            s3_error!(
                InvalidArgument,
                "Part number must be an integer between 1 and 10000, inclusive"
            )
        })?;
        let expected_len = declared_length(&req.headers, input.content_length)?;
        let checksum = expected_checksum(
            checksums_of!(input),
            input.checksum_algorithm.as_ref(),
            &req.headers,
            req.trailing_headers.clone(),
        )?;
        let (sse_algorithm, sse_key_md5) = echo(customer_key.as_ref());
        let body = body_stream(input.body.take());
        let outcome = self
            .coffer
            .upload_part(
                UploadPart {
                    bucket: input.bucket.clone(),
                    key: input.key.clone(),
                    upload_id: input.upload_id.clone(),
                    part_number,
                    expected_len,
                    content_md5: input.content_md5.take(),
                    checksum,
                    customer_key,
                },
                body,
            )
            .await
            .map_err(|e| self.map_err(e))?;
        let (server_side_encryption, ssekms_key_id) =
            crate::ssec::server_side_echo(outcome.server_side.as_ref());
        let mut output = UploadPartOutput {
            e_tag: Some(ETag::Strong(outcome.etag)),
            server_side_encryption,
            ssekms_key_id,
            sse_customer_algorithm: sse_algorithm,
            sse_customer_key_md5: sse_key_md5,
            ..Default::default()
        };
        if let Some((alg, value)) = outcome.checksum {
            set_checksum!(output, alg, value);
        }
        Ok(S3Response::new(output))
    }

    pub(crate) async fn op_complete_multipart_upload(
        &self,
        mut req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        crate::ssec::drop_key_headers(&mut req.headers);
        let input = &mut req.input;
        let customer_key = take_customer_key(
            &mut input.sse_customer_algorithm,
            &mut input.sse_customer_key,
            &mut input.sse_customer_key_md5,
            false,
        )?;
        let parts = input
            .multipart_upload
            .take()
            .and_then(|m| m.parts)
            .unwrap_or_default()
            .into_iter()
            .map(|p| {
                let part_number = p
                    .part_number
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| s3_error!(InvalidPart, "Each part needs a part number."))?;
                let etag = p.e_tag.map(ETag::into_value).unwrap_or_default();
                Ok(CompletePart { part_number, etag })
            })
            .collect::<S3Result<Vec<_>>>()?;
        let (sse_algorithm, sse_key_md5) = echo(customer_key.as_ref());
        let outcome = self
            .coffer
            .complete_multipart_upload(
                &input.bucket,
                &input.key,
                &input.upload_id,
                parts,
                customer_key,
                crate::object_ops::write_conditions(&req.headers),
            )
            .await
            .map_err(|e| self.map_err(e))?;
        let (server_side_encryption, ssekms_key_id) =
            crate::ssec::server_side_echo(outcome.server_side.as_ref());
        let mut output = CompleteMultipartUploadOutput {
            server_side_encryption,
            ssekms_key_id,
            bucket: Some(input.bucket.clone()),
            key: Some(input.key.clone()),
            e_tag: Some(ETag::Strong(outcome.etag)),
            version_id: outcome.version_id,
            location: Some(format!("/{}/{}", input.bucket, input.key)),
            ..Default::default()
        };
        if let Some((alg, value, full)) = outcome.checksum {
            set_checksum!(output, alg, value);
            output.checksum_type = Some(checksum_type_dto(full));
        }
        // s3s's output type for Complete has no SSE-C fields: echo them as headers.
        let mut resp = S3Response::new(output);
        let algorithm = sse_algorithm.or_else(|| {
            outcome
                .encrypted
                .then(|| coffer_sse::SSE_C_ALGORITHM.to_owned())
        });
        if let Some(v) = algorithm.and_then(|a| http::HeaderValue::from_str(&a).ok()) {
            resp.headers
                .insert("x-amz-server-side-encryption-customer-algorithm", v);
        }
        if let Some(v) = sse_key_md5.and_then(|m| http::HeaderValue::from_str(&m).ok()) {
            resp.headers
                .insert("x-amz-server-side-encryption-customer-key-md5", v);
        }
        Ok(resp)
    }

    pub(crate) async fn op_abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let input = req.input;
        self.coffer
            .abort_multipart_upload(&input.bucket, &input.key, &input.upload_id)
            .await
            .map_err(|e| self.map_err(e))?;
        Ok(S3Response::with_status(
            AbortMultipartUploadOutput::default(),
            http::StatusCode::NO_CONTENT,
        ))
    }

    pub(crate) async fn op_list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let input = req.input;
        let max = crate::list_ops::page_size(input.max_parts, "max-parts")?;
        let marker = input
            .part_number_marker
            .and_then(|m| u32::try_from(m).ok())
            .unwrap_or(0);
        let (upload, parts, truncated) = self
            .coffer
            .list_parts(
                &input.bucket,
                &input.key,
                &input.upload_id,
                marker,
                usize::try_from(max).unwrap_or(0),
            )
            .map_err(|e| self.map_err(e))?;
        let checksum = upload_checksum(&upload);
        let next_marker = parts
            .last()
            .map(|p| i32::try_from(p.part_number).unwrap_or(i32::MAX));
        let parts = parts
            .into_iter()
            .map(|p| {
                let mut part = Part {
                    part_number: i32::try_from(p.part_number).ok(),
                    e_tag: Some(ETag::Strong(p.etag)),
                    size: i64::try_from(p.size).ok(),
                    last_modified: Some(timestamp(p.last_modified_ms)),
                    ..Default::default()
                };
                if let Some((name, value)) = p.checksum
                    && let Some(alg) = ChecksumAlgorithm::parse(&name)
                {
                    set_checksum!(part, alg, value);
                }
                part
            })
            .collect();
        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(input.upload_id),
            initiator: Some(Initiator {
                display_name: Some(upload.owner.clone()),
                id: Some(upload.owner.clone()),
            }),
            owner: Some(owner_of(&upload.owner)),
            storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
            max_parts: Some(max),
            part_number_marker: input.part_number_marker,
            next_part_number_marker: next_marker,
            is_truncated: Some(truncated),
            parts: Some(parts),
            checksum_algorithm: checksum.map(|(a, _)| checksum_algorithm_dto(a)),
            checksum_type: checksum.map(|(_, full)| checksum_type_dto(full)),
            ..Default::default()
        }))
    }

    pub(crate) async fn op_list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let input = req.input;
        let max = crate::list_ops::page_size(input.max_uploads, "max-uploads")?;
        let params = ListUploadsParams {
            prefix: input.prefix.clone().unwrap_or_default(),
            delimiter: input.delimiter.clone(),
            key_marker: input.key_marker.clone().unwrap_or_default(),
            upload_id_marker: input.upload_id_marker.clone().unwrap_or_default(),
            max_uploads: usize::try_from(max).unwrap_or(0),
        };
        let page = self
            .coffer
            .list_multipart_uploads(&input.bucket, &params)
            .map_err(|e| self.map_err(e))?;
        let encode = crate::list_ops::wants_url_encoding(input.encoding_type.as_ref())?;
        let enc = |s: String| {
            if encode {
                crate::list_ops::url_encode(&s)
            } else {
                s
            }
        };
        let uploads = page
            .uploads
            .into_iter()
            .map(|u| {
                let checksum = upload_checksum(&u);
                MultipartUpload {
                    key: Some(enc(u.key)),
                    upload_id: Some(u.upload_id),
                    initiated: Some(timestamp(u.initiated_ms)),
                    initiator: Some(Initiator {
                        display_name: Some(u.owner.clone()),
                        id: Some(u.owner.clone()),
                    }),
                    owner: Some(owner_of(&u.owner)),
                    storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
                    checksum_algorithm: checksum.map(|(a, _)| checksum_algorithm_dto(a)),
                    checksum_type: checksum.map(|(_, full)| checksum_type_dto(full)),
                }
            })
            .collect();
        let prefixes = page
            .common_prefixes
            .into_iter()
            .map(|p| CommonPrefix {
                prefix: Some(enc(p)),
            })
            .collect();
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(input.bucket),
            prefix: input.prefix.map(enc),
            delimiter: input.delimiter.map(enc),
            key_marker: Some(enc(input.key_marker.unwrap_or_default())),
            upload_id_marker: Some(input.upload_id_marker.unwrap_or_default()),
            next_key_marker: page.next_key_marker.filter(|_| page.is_truncated).map(enc),
            next_upload_id_marker: page.next_upload_id_marker.filter(|_| page.is_truncated),
            max_uploads: Some(max),
            is_truncated: Some(page.is_truncated),
            uploads: Some(uploads),
            common_prefixes: Some(prefixes),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }
}
