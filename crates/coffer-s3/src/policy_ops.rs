//! PutBucketPolicy, GetBucketPolicy, DeleteBucketPolicy.

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use crate::CofferS3;

impl CofferS3 {
    pub(crate) async fn op_put_bucket_policy(
        &self,
        req: S3Request<PutBucketPolicyInput>,
    ) -> S3Result<S3Response<PutBucketPolicyOutput>> {
        let input = req.input;
        self.coffer
            .bucket(&input.bucket)
            .map_err(|e| self.map_err(e))?;
        crate::policy::BucketPolicy::parse(&input.policy, &input.bucket)
            .map_err(|e| s3_error!(MalformedPolicy, "{}", e))?;
        self.coffer
            .set_bucket_policy(&input.bucket, Some(input.policy))
            .await
            .map_err(|e| self.map_err(e))?;
        Ok(S3Response::with_status(
            PutBucketPolicyOutput::default(),
            http::StatusCode::NO_CONTENT,
        ))
    }

    pub(crate) async fn op_get_bucket_policy(
        &self,
        req: S3Request<GetBucketPolicyInput>,
    ) -> S3Result<S3Response<GetBucketPolicyOutput>> {
        let policy = self
            .coffer
            .bucket_policy(&req.input.bucket)
            .map_err(|e| self.map_err(e))?
            .ok_or_else(|| s3_error!(NoSuchBucketPolicy, "The bucket policy does not exist"))?;
        Ok(S3Response::new(GetBucketPolicyOutput {
            policy: Some(policy),
        }))
    }

    pub(crate) async fn op_delete_bucket_policy(
        &self,
        req: S3Request<DeleteBucketPolicyInput>,
    ) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
        self.coffer
            .set_bucket_policy(&req.input.bucket, None)
            .await
            .map_err(|e| self.map_err(e))?;
        Ok(S3Response::with_status(
            DeleteBucketPolicyOutput::default(),
            http::StatusCode::NO_CONTENT,
        ))
    }
}
