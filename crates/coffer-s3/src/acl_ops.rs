//! Canned ACLs: `x-amz-acl` on bucket and object writes, Get/Put Bucket/Object ACL. Coffer
//! stores the canned ACL name and grants what it names (see `access.rs`); explicit grant
//! lists other than "owner has FULL_CONTROL" are refused as not implemented, never ignored.

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use crate::CofferS3;
use crate::bucket_ops::owner_of;

const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
const AUTHENTICATED_USERS: &str = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";

/// Validates a canned ACL name: `None` for private (the default), the name otherwise.
pub(crate) fn canned(value: Option<&str>, for_object: bool) -> S3Result<Option<String>> {
    match value {
        None | Some("private") => Ok(None),
        Some(v @ ("public-read" | "public-read-write" | "authenticated-read")) => {
            Ok(Some(v.to_owned()))
        }
        Some(v @ ("bucket-owner-read" | "bucket-owner-full-control" | "aws-exec-read"))
            if for_object =>
        {
            Ok(Some(v.to_owned()))
        }
        Some(v) => Err(s3_error!(
            InvalidArgument,
            "The canned ACL {v} is not valid."
        )),
    }
}

fn group(uri: &str, permission: &'static str) -> Grant {
    Grant {
        grantee: Some(Grantee {
            type_: Type::from_static(Type::GROUP),
            uri: Some(uri.to_owned()),
            display_name: None,
            email_address: None,
            id: None,
        }),
        permission: Some(Permission::from_static(permission)),
    }
}

/// The grants a canned ACL stands for: the group grants, then the owner's FULL_CONTROL (grant
/// order carries no meaning; this is the order ceph/s3-tests compares against).
fn grants(owner: &str, acl: Option<&str>) -> Vec<Grant> {
    let mut g = match acl {
        Some("public-read") => vec![group(ALL_USERS, Permission::READ)],
        Some("public-read-write") => vec![
            group(ALL_USERS, Permission::READ),
            group(ALL_USERS, Permission::WRITE),
        ],
        Some("authenticated-read") => vec![group(AUTHENTICATED_USERS, Permission::READ)],
        _ => Vec::new(),
    };
    g.push(Grant {
        grantee: Some(Grantee {
            type_: Type::from_static(Type::CANONICAL_USER),
            id: Some(owner.to_owned()),
            display_name: Some(owner.to_owned()),
            email_address: None,
            uri: None,
        }),
        permission: Some(Permission::from_static(Permission::FULL_CONTROL)),
    });
    g
}

/// Whether a Put*Acl input carries any `x-amz-grant-*` header.
macro_rules! has_grant_headers {
    ($input:expr) => {
        $input.grant_full_control.is_some()
            || $input.grant_read.is_some()
            || $input.grant_read_acp.is_some()
            || $input.grant_write.is_some()
            || $input.grant_write_acp.is_some()
    };
}

/// The canned ACL a PutBucketAcl/PutObjectAcl request asks for.
fn requested_acl(
    canned_value: Option<&str>,
    policy: Option<&AccessControlPolicy>,
    grant_headers: bool,
    owner: &str,
    for_object: bool,
) -> S3Result<Option<String>> {
    if grant_headers {
        return Err(s3_error!(
            NotImplemented,
            "Only canned ACLs are supported (x-amz-grant-* headers are not)."
        ));
    }
    if let Some(p) = policy {
        let only_owner = p.grants.as_deref().unwrap_or_default().iter().all(|g| {
            g.grantee.as_ref().and_then(|e| e.id.as_deref()) == Some(owner)
                && g.permission.as_ref().map(Permission::as_str) == Some(Permission::FULL_CONTROL)
        });
        return if only_owner {
            Ok(None)
        } else {
            Err(s3_error!(
                NotImplemented,
                "Only canned ACLs (or owner FULL_CONTROL) are supported."
            ))
        };
    }
    canned(canned_value, for_object)
}

impl CofferS3 {
    pub(crate) async fn op_get_bucket_acl(
        &self,
        req: S3Request<GetBucketAclInput>,
    ) -> S3Result<S3Response<GetBucketAclOutput>> {
        let info = self
            .coffer
            .bucket(&req.input.bucket)
            .map_err(|e| self.map_err(e))?;
        Ok(S3Response::new(GetBucketAclOutput {
            grants: Some(grants(&info.owner, info.acl.as_deref())),
            owner: Some(owner_of(&info.owner)),
        }))
    }

    pub(crate) async fn op_put_bucket_acl(
        &self,
        req: S3Request<PutBucketAclInput>,
    ) -> S3Result<S3Response<PutBucketAclOutput>> {
        let input = req.input;
        let info = self
            .coffer
            .bucket(&input.bucket)
            .map_err(|e| self.map_err(e))?;
        let grant_headers = has_grant_headers!(input);
        let acl = requested_acl(
            input.acl.as_ref().map(BucketCannedACL::as_str),
            input.access_control_policy.as_ref(),
            grant_headers,
            &info.owner,
            false,
        )?;
        self.coffer
            .set_bucket_acl(&input.bucket, acl)
            .await
            .map_err(|e| self.map_err(e))?;
        Ok(S3Response::new(PutBucketAclOutput::default()))
    }

    pub(crate) async fn op_get_object_acl(
        &self,
        req: S3Request<GetObjectAclInput>,
    ) -> S3Result<S3Response<GetObjectAclOutput>> {
        let input = req.input;
        let info = self
            .coffer
            .bucket(&input.bucket)
            .map_err(|e| self.map_err(e))?;
        let record = self
            .coffer
            .object_record(&input.bucket, &input.key, input.version_id.as_deref())
            .map_err(|e| self.map_err(e))?;
        Ok(S3Response::new(GetObjectAclOutput {
            grants: Some(grants(&info.owner, record.acl.as_deref())),
            owner: Some(owner_of(&info.owner)),
            ..Default::default()
        }))
    }

    pub(crate) async fn op_put_object_acl(
        &self,
        req: S3Request<PutObjectAclInput>,
    ) -> S3Result<S3Response<PutObjectAclOutput>> {
        let input = req.input;
        let info = self
            .coffer
            .bucket(&input.bucket)
            .map_err(|e| self.map_err(e))?;
        let grant_headers = has_grant_headers!(input);
        let acl = requested_acl(
            input.acl.as_ref().map(ObjectCannedACL::as_str),
            input.access_control_policy.as_ref(),
            grant_headers,
            &info.owner,
            true,
        )?;
        self.coffer
            .set_object_acl(&input.bucket, &input.key, input.version_id.clone(), acl)
            .await
            .map_err(|e| self.map_err(e))?;
        Ok(S3Response::new(PutObjectAclOutput::default()))
    }
}
