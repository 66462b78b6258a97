//! Object tagging: Get/Put/DeleteObjectTagging. Tags also arrive on writes as `x-amz-tagging`
//! (see `object_ops::request_tags`), are counted in GetObject's `x-amz-tagging-count`, and are
//! condition keys of bucket policies (`s3:ExistingObjectTag/<key>`, `s3:RequestObjectTag/<key>`).

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use crate::CofferS3;

/// The (key, value) pairs of a Tagging document; a tag without a key is `InvalidTag`.
pub(crate) fn tag_pairs(tagging: &Tagging) -> S3Result<Vec<(String, String)>> {
    tagging
        .tag_set
        .iter()
        .map(|t| match &t.key {
            Some(k) => Ok((k.clone(), t.value.clone().unwrap_or_default())),
            None => Err(s3_error!(InvalidTag, "A tag must have a Key.")),
        })
        .collect()
}

/// The tags of a Tagging XML document given as text (a browser POST form's `tagging` field).
pub(crate) fn tags_of_document(xml: &str) -> S3Result<Vec<(String, String)>> {
    let mut d = s3s::xml::Deserializer::new(xml.as_bytes());
    let tagging = <Tagging as s3s::xml::Deserialize>::deserialize(&mut d).map_err(|_| {
        s3_error!(
            MalformedXML,
            "The tagging field is not a valid Tagging document."
        )
    })?;
    tag_pairs(&tagging)
}

impl CofferS3 {
    pub(crate) async fn op_get_object_tagging(
        &self,
        req: S3Request<GetObjectTaggingInput>,
    ) -> S3Result<S3Response<GetObjectTaggingOutput>> {
        let input = &req.input;
        let (version_id, tags) = self
            .coffer
            .object_tags(&input.bucket, &input.key, input.version_id.as_deref())
            .map_err(|e| self.map_err(e))?;
        Ok(S3Response::new(GetObjectTaggingOutput {
            tag_set: tags
                .into_iter()
                .map(|(key, value)| Tag {
                    key: Some(key),
                    value: Some(value),
                })
                .collect(),
            version_id,
        }))
    }

    pub(crate) async fn op_put_object_tagging(
        &self,
        req: S3Request<PutObjectTaggingInput>,
    ) -> S3Result<S3Response<PutObjectTaggingOutput>> {
        let input = req.input;
        let tags = tag_pairs(&input.tagging)?;
        let version_id = self
            .coffer
            .set_object_tags(&input.bucket, &input.key, input.version_id, tags)
            .await
            .map_err(|e| self.map_err(e))?;
        Ok(S3Response::new(PutObjectTaggingOutput { version_id }))
    }

    pub(crate) async fn op_delete_object_tagging(
        &self,
        req: S3Request<DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
        let input = req.input;
        let version_id = self
            .coffer
            .set_object_tags(&input.bucket, &input.key, input.version_id, Vec::new())
            .await
            .map_err(|e| self.map_err(e))?;
        let mut resp = S3Response::new(DeleteObjectTaggingOutput { version_id });
        resp.status = Some(http::StatusCode::NO_CONTENT);
        Ok(resp)
    }
}
