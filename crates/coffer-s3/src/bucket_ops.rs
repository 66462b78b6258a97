//! Bucket operations: create, head, delete, list, location.

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use crate::CofferS3;
use crate::object_ops::timestamp;

impl CofferS3 {
    pub(crate) fn caller<T>(&self, req: &S3Request<T>) -> S3Result<crate::User> {
        let creds = req
            .credentials
            .as_ref()
            .ok_or_else(|| s3_error!(AccessDenied))?;
        self.users
            .by_access_key(&creds.access_key)
            .ok_or_else(|| s3_error!(InvalidAccessKeyId))
    }

    pub(crate) fn map_err(&self, e: coffer_core::CoreError) -> s3s::S3Error {
        crate::errors::to_s3_error(e, &self.settings)
    }

    pub(crate) async fn op_create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let user = self.caller(&req)?;
        let input = req.input;
        if reserved_bucket_name(&input.bucket) {
            return Err(s3_error!(
                InvalidBucketName,
                "The specified bucket is not valid: this prefix or suffix is reserved."
            ));
        }
        let acl = crate::acl_ops::canned(input.acl.as_ref().map(BucketCannedACL::as_str), false)?;
        if let Some(constraint) = input
            .create_bucket_configuration
            .as_ref()
            .and_then(|c| c.location_constraint.as_ref())
        {
            let wanted = constraint.as_str();
            let ours = self.settings.region.as_str();
            if !(wanted == ours || (wanted.is_empty() && ours == "us-east-1")) {
                return Err(s3_error!(
                    InvalidLocationConstraint,
                    "The specified location-constraint is not valid for this endpoint ({ours})."
                ));
            }
        }
        match self
            .coffer
            .create_bucket(&input.bucket, &user.name, &self.settings.region, acl)
            .await
        {
            Ok(()) => {}
            // AWS's legacy us-east-1 answer: re-creating your own bucket succeeds and changes nothing.
            Err(coffer_core::CoreError::BucketAlreadyOwnedByYou)
                if self.settings.region == "us-east-1" => {}
            Err(e) => return Err(self.map_err(e)),
        }
        Ok(S3Response::new(CreateBucketOutput {
            location: Some(format!("/{}", input.bucket)),
        }))
    }

    pub(crate) async fn op_head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        let info = self
            .coffer
            .bucket(&req.input.bucket)
            .map_err(|e| self.map_err(e))?;
        Ok(S3Response::new(HeadBucketOutput {
            bucket_region: Some(info.region),
            ..Default::default()
        }))
    }

    pub(crate) async fn op_delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        self.coffer
            .delete_bucket(&req.input.bucket)
            .await
            .map_err(|e| self.map_err(e))?;
        Ok(S3Response::with_status(
            DeleteBucketOutput {},
            http::StatusCode::NO_CONTENT,
        ))
    }

    pub(crate) async fn op_get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        let info = self
            .coffer
            .bucket(&req.input.bucket)
            .map_err(|e| self.map_err(e))?;
        // AWS reports us-east-1 as an empty constraint.
        let location_constraint =
            (info.region != "us-east-1").then(|| BucketLocationConstraint::from(info.region));
        Ok(S3Response::new(GetBucketLocationOutput {
            location_constraint,
        }))
    }

    pub(crate) async fn op_list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let user = self.caller(&req)?;
        let mut buckets: Vec<_> = self
            .coffer
            .list_buckets()
            .map_err(|e| self.map_err(e))?
            .into_iter()
            .filter(|b| user.is_root || b.owner == user.name)
            .collect();
        if let Some(prefix) = &req.input.prefix {
            buckets.retain(|b| b.name.starts_with(prefix.as_str()));
        }
        if let Some(region) = &req.input.bucket_region {
            buckets.retain(|b| &b.region == region);
        }
        // Pagination: the token is the last bucket name of the previous page (names are public
        // to their owner anyway), in the URL-safe base64 S3 clients pass back untouched.
        if let Some(token) = &req.input.continuation_token {
            use base64::Engine as _;
            let after = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(token)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    s3_error!(
                        InvalidArgument,
                        "The continuation token provided is incorrect"
                    )
                })?;
            buckets.retain(|b| b.name > after);
        }
        let max = match req.input.max_buckets {
            None => usize::MAX,
            Some(n) if !(1..=10_000).contains(&n) => {
                return Err(s3_error!(
                    InvalidArgument,
                    "max-buckets must be between 1 and 10000."
                ));
            }
            Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
        };
        let continuation_token = (buckets.len() > max).then(|| {
            use base64::Engine as _;
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(buckets[max - 1].name.as_bytes())
        });
        buckets.truncate(max);
        let buckets = buckets
            .into_iter()
            .map(|b| Bucket {
                name: Some(b.name),
                creation_date: Some(timestamp(b.created_ms)),
                bucket_region: Some(b.region),
            })
            .collect();
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            continuation_token,
            prefix: req.input.prefix.clone(),
            owner: Some(owner_of(&user.name)),
        }))
    }
}

pub(crate) fn owner_of(name: &str) -> Owner {
    Owner {
        display_name: Some(name.to_owned()),
        id: Some(name.to_owned()),
    }
}

/// Prefixes and suffixes AWS reserves for its own names (access point aliases, directory and
/// table buckets, ...), on top of the syntax s3s checks (which already refuses `xn--`).
fn reserved_bucket_name(name: &str) -> bool {
    const PREFIXES: [&str; 3] = ["sthree-", "sthree-configurator", "amzn-s3-demo-"];
    const SUFFIXES: [&str; 5] = ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"];
    PREFIXES.iter().any(|p| name.starts_with(p)) || SUFFIXES.iter().any(|s| name.ends_with(s))
}

#[cfg(test)]
mod reserved_name_tests {
    use super::reserved_bucket_name;

    #[test]
    fn aws_reserved_names_are_refused() {
        for name in [
            "sthree-x",
            "amzn-s3-demo-bucket",
            "x-s3alias",
            "x--ol-s3",
            "x.mrap",
            "x--x-s3",
            "x--table-s3",
        ] {
            assert!(reserved_bucket_name(name), "{name}");
        }
        for name in ["sthree", "my-bucket", "s3alias", "three-x", "x-s3aliasy"] {
            assert!(!reserved_bucket_name(name), "{name}");
        }
    }
}
