//! PutBucketCors, GetBucketCors, DeleteBucketCors. Who may call them is the access hook's
//! decision (`s3:PutBucketCORS` / `s3:GetBucketCORS`: the owner, or whom a policy allows).

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use crate::CofferS3;
use crate::cors;

impl CofferS3 {
    pub(crate) async fn op_put_bucket_cors(
        &self,
        req: S3Request<PutBucketCorsInput>,
    ) -> S3Result<S3Response<PutBucketCorsOutput>> {
        let too_big = req
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|len| len > cors::MAX_DOCUMENT_BYTES);
        if too_big {
            return Err(s3_error!(
                MaxMessageLengthExceeded,
                "The CORS configuration is limited to 64 KB."
            ));
        }
        let input = req.input;
        self.coffer
            .bucket(&input.bucket)
            .map_err(|e| self.map_err(e))?;
        let rules = cors::validate(input.cors_configuration)?;
        self.coffer
            .set_bucket_cors(&input.bucket, Some(rules))
            .await
            .map_err(|e| self.map_err(e))?;
        Ok(S3Response::new(PutBucketCorsOutput::default()))
    }

    pub(crate) async fn op_get_bucket_cors(
        &self,
        req: S3Request<GetBucketCorsInput>,
    ) -> S3Result<S3Response<GetBucketCorsOutput>> {
        let rules = self
            .coffer
            .bucket(&req.input.bucket)
            .map_err(|e| self.map_err(e))?
            .cors
            .ok_or_else(|| {
                s3_error!(
                    NoSuchCORSConfiguration,
                    "The CORS configuration does not exist"
                )
            })?;
        Ok(S3Response::new(GetBucketCorsOutput {
            cors_rules: Some(cors::to_dto(rules)),
        }))
    }

    pub(crate) async fn op_delete_bucket_cors(
        &self,
        req: S3Request<DeleteBucketCorsInput>,
    ) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
        self.coffer
            .set_bucket_cors(&req.input.bucket, None)
            .await
            .map_err(|e| self.map_err(e))?;
        Ok(S3Response::with_status(
            DeleteBucketCorsOutput::default(),
            http::StatusCode::NO_CONTENT,
        ))
    }
}
