//! PutBucketVersioning, GetBucketVersioning, ListObjectVersions.

use coffer_core::ListVersionsParams;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use crate::CofferS3;
use crate::bucket_ops::owner_of;
use crate::object_ops::timestamp;

impl CofferS3 {
    pub(crate) async fn op_put_bucket_versioning(
        &self,
        req: S3Request<PutBucketVersioningInput>,
    ) -> S3Result<S3Response<PutBucketVersioningOutput>> {
        let input = req.input;
        if input
            .versioning_configuration
            .mfa_delete
            .as_ref()
            .is_some_and(|m| m.as_str() == MFADelete::ENABLED)
        {
            return Err(s3_error!(NotImplemented, "MFA delete is not supported."));
        }
        let status = input
            .versioning_configuration
            .status
            .as_ref()
            .map(BucketVersioningStatus::as_str)
            .ok_or_else(|| {
                s3_error!(MalformedXML, "The versioning configuration needs a Status.")
            })?;
        self.coffer
            .set_bucket_versioning(&input.bucket, status)
            .await
            .map_err(|e| self.map_err(e))?;
        Ok(S3Response::new(PutBucketVersioningOutput::default()))
    }

    pub(crate) async fn op_get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        let state = self
            .coffer
            .bucket_versioning(&req.input.bucket)
            .map_err(|e| self.map_err(e))?;
        Ok(S3Response::new(GetBucketVersioningOutput {
            status: state.map(BucketVersioningStatus::from),
            ..Default::default()
        }))
    }

    pub(crate) async fn op_list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        let input = req.input;
        let max = crate::list_ops::page_size(input.max_keys, "max-keys")?;
        let owner = self
            .coffer
            .bucket(&input.bucket)
            .map_err(|e| self.map_err(e))?
            .owner;
        let encode = crate::list_ops::wants_url_encoding(input.encoding_type.as_ref())?;
        let enc = |s: String| {
            if encode {
                crate::list_ops::url_encode(&s)
            } else {
                s
            }
        };
        if input
            .version_id_marker
            .as_deref()
            .is_some_and(|v| !v.is_empty())
            && input.key_marker.as_deref().is_none_or(str::is_empty)
        {
            return Err(s3_error!(
                InvalidArgument,
                "A version-id marker cannot be specified without a key marker."
            ));
        }
        let params = ListVersionsParams {
            prefix: input.prefix.clone().unwrap_or_default(),
            delimiter: input.delimiter.clone(),
            key_marker: input.key_marker.clone().unwrap_or_default(),
            version_id_marker: input.version_id_marker.clone(),
            max_keys: usize::try_from(max).unwrap_or(0),
        };
        let page = self
            .coffer
            .list_object_versions(&input.bucket, &params)
            .map_err(|e| self.map_err(e))?;
        let mut versions = Vec::new();
        let mut markers = Vec::new();
        for v in page.versions {
            let version_id = Some(v.record.exposed_version_id().to_owned());
            if v.record.delete_marker {
                markers.push(DeleteMarkerEntry {
                    key: Some(enc(v.key)),
                    version_id,
                    is_latest: Some(v.is_latest),
                    last_modified: Some(timestamp(v.record.last_modified_ms)),
                    owner: Some(owner_of(&owner)),
                });
            } else {
                versions.push(ObjectVersion {
                    key: Some(enc(v.key)),
                    version_id,
                    is_latest: Some(v.is_latest),
                    last_modified: Some(timestamp(v.record.last_modified_ms)),
                    e_tag: Some(ETag::Strong(v.record.etag.clone())),
                    size: i64::try_from(v.record.size).ok(),
                    storage_class: Some(ObjectVersionStorageClass::from_static(
                        ObjectVersionStorageClass::STANDARD,
                    )),
                    owner: Some(owner_of(&owner)),
                    ..Default::default()
                });
            }
        }
        let prefixes = page
            .common_prefixes
            .into_iter()
            .map(|p| CommonPrefix {
                prefix: Some(enc(p)),
            })
            .collect();
        Ok(S3Response::new(ListObjectVersionsOutput {
            name: Some(input.bucket),
            prefix: Some(enc(input.prefix.unwrap_or_default())),
            delimiter: input.delimiter.map(enc),
            key_marker: Some(enc(input.key_marker.unwrap_or_default())),
            version_id_marker: Some(input.version_id_marker.unwrap_or_default()),
            next_key_marker: page.next_key_marker.filter(|_| page.is_truncated).map(enc),
            next_version_id_marker: page.next_version_id_marker.filter(|_| page.is_truncated),
            max_keys: Some(max),
            is_truncated: Some(page.is_truncated),
            versions: Some(versions),
            delete_markers: Some(markers),
            common_prefixes: Some(prefixes),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }
}
