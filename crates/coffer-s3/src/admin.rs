//! The admin API: users and access keys, managed at run time by `coffer admin`.
//!
//! Requests are `POST /` with the action in an `x-coffer-admin-action` header and a small JSON
//! body. They reach this route only after s3s has verified their SigV4 signature like any S3
//! request's; here they must also come from the root user, over TLS, with a signed payload hash
//! (so nothing can alter the body of a captured request). Answers are JSON; refusals are S3
//! error documents with IAM's codes (`NoSuchEntity`, `EntityAlreadyExists`, ...).

use std::sync::Arc;

use coffer_core::Coffer;
use coffer_core::accounts::{AccessKeyInfo, validate_user_name};
use hyper::http::Extensions;
use hyper::{HeaderMap, Method, Uri};
use s3s::route::S3Route;
use s3s::{Body, S3Request, S3Response, S3Result, s3_error};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{ConnectionInfo, S3Settings, User, UserDirectory, UserSource};

pub(crate) const ACTION_HEADER: &str = "x-coffer-admin-action";
const MAX_BODY: usize = 64 * 1024;

pub(crate) struct AdminRoute {
    pub(crate) coffer: Coffer,
    pub(crate) users: Arc<UserDirectory>,
    pub(crate) settings: Arc<S3Settings>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    access_key: Option<String>,
}

fn created(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    const FORMAT: &[time::format_description::BorrowedFormatItem<'static>] =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    t.format(FORMAT).unwrap_or_default()
}

fn required<'a>(value: &'a Option<String>, name: &str) -> S3Result<&'a str> {
    value.as_deref().ok_or_else(|| {
        s3_error!(
            InvalidArgument,
            "this action needs the parameter \"{name}\""
        )
    })
}

fn key_json(k: &AccessKeyInfo, source: UserSource) -> Value {
    json!({
        "access_key": k.access_key,
        "user": k.user,
        "created": created(k.created_ms),
        "source": source.as_str(),
    })
}

impl AdminRoute {
    /// Refuses to change root or a config-file user through the API.
    fn refuse_fixed(&self, name: &str) -> S3Result<()> {
        match self.users.source_of(name) {
            Some(UserSource::Root) => Err(s3_error!(
                InvalidArgument,
                "{name} is the root user; its credentials come from the environment or the data dir"
            )),
            Some(UserSource::Config) => Err(s3_error!(
                InvalidArgument,
                "user {name} is declared in the config file; change it there"
            )),
            _ => Ok(()),
        }
    }

    async fn dispatch(&self, action: &str, p: Params) -> S3Result<Value> {
        let core = |e| crate::errors::to_s3_error(e, &self.settings);
        match action {
            "CreateUser" => {
                let name = required(&p.user, "user")?;
                validate_user_name(name).map_err(core)?;
                if self
                    .users
                    .source_of(name)
                    .is_some_and(|s| s != UserSource::Managed)
                {
                    return Err(crate::errors::to_s3_error(
                        coffer_core::CoreError::Account(
                            coffer_core::accounts::AccountError::EntityAlreadyExists(format!(
                                "User with name {name} already exists."
                            )),
                        ),
                        &self.settings,
                    ));
                }
                let u = self.coffer.create_user(name).await.map_err(core)?;
                Ok(json!({ "user": u.name, "created": created(u.created_ms) }))
            }
            "ListUsers" => {
                let keys = self.coffer.list_access_keys().await.map_err(core)?;
                let mut users: Vec<Value> = self
                    .users
                    .fixed_users()
                    .into_iter()
                    .map(|(name, ak, source)| {
                        json!({ "user": name, "source": source.as_str(), "access_keys": [ak] })
                    })
                    .collect();
                for u in self.coffer.list_users().await.map_err(core)? {
                    let held: Vec<&str> = keys
                        .iter()
                        .filter(|k| k.user == u.name)
                        .map(|k| k.access_key.as_str())
                        .collect();
                    users.push(json!({
                        "user": u.name,
                        "source": UserSource::Managed.as_str(),
                        "created": created(u.created_ms),
                        "access_keys": held,
                    }));
                }
                Ok(json!({ "users": users }))
            }
            "DeleteUser" => {
                let name = required(&p.user, "user")?;
                self.refuse_fixed(name)?;
                let revoked = self.coffer.delete_user(name).await.map_err(core)?;
                for ak in &revoked {
                    self.users.remove_access_key(ak);
                }
                Ok(json!({ "user": name, "revoked_access_keys": revoked }))
            }
            "CreateAccessKey" => {
                let name = required(&p.user, "user")?;
                self.refuse_fixed(name)?;
                let new = self.coffer.create_access_key(name).await.map_err(core)?;
                self.users
                    .add(User::new(
                        new.info.user.clone(),
                        new.info.access_key.clone(),
                        new.secret.as_str(),
                        UserSource::Managed,
                    ))
                    .map_err(|e| s3_error!(InternalError, "{e}"))?;
                let mut out = key_json(&new.info, UserSource::Managed);
                out["secret_key"] = Value::String(new.secret.as_str().to_owned());
                Ok(out)
            }
            "ListAccessKeys" => {
                let mut keys: Vec<Value> = self
                    .users
                    .fixed_users()
                    .into_iter()
                    .filter(|(name, _, _)| p.user.as_deref().is_none_or(|u| u == name))
                    .map(|(name, ak, source)| {
                        json!({ "access_key": ak, "user": name, "source": source.as_str() })
                    })
                    .collect();
                for k in self.coffer.list_access_keys().await.map_err(core)? {
                    if p.user.as_deref().is_none_or(|u| u == k.user) {
                        keys.push(key_json(&k, UserSource::Managed));
                    }
                }
                Ok(json!({ "access_keys": keys }))
            }
            "RevokeAccessKey" => {
                let ak = required(&p.access_key, "access_key")?;
                if let Some(u) = self.users.by_access_key(ak)
                    && u.source != UserSource::Managed
                {
                    self.refuse_fixed(&u.name)?;
                }
                let user = self.coffer.delete_access_key(ak).await.map_err(core)?;
                self.users.remove_access_key(ak);
                Ok(json!({ "access_key": ak, "user": user }))
            }
            other => Err(s3_error!(
                InvalidArgument,
                "unknown admin action {other:?}; known: CreateUser, ListUsers, DeleteUser, CreateAccessKey, ListAccessKeys, RevokeAccessKey"
            )),
        }
    }
}

#[async_trait::async_trait]
impl S3Route for AdminRoute {
    fn is_match(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        _: &mut Extensions,
    ) -> bool {
        method == Method::POST && uri.path() == "/" && headers.contains_key(ACTION_HEADER)
    }

    async fn check_access(&self, req: &mut S3Request<Body>) -> S3Result<()> {
        let secure = req
            .extensions
            .get::<ConnectionInfo>()
            .is_some_and(|c| c.secure);
        if !secure && !self.settings.ssec_allow_plain_http {
            return Err(s3_error!(
                InvalidRequest,
                "The admin API is served over HTTPS only: its answers carry secret keys."
            ));
        }
        let user = match &req.credentials {
            Some(c) => self.users.by_access_key(&c.access_key),
            None => None,
        };
        if !user.is_some_and(|u| u.is_root) {
            return Err(s3_error!(
                AccessDenied,
                "Only the root user may use the admin API."
            ));
        }
        let hashed = req
            .headers
            .get("x-amz-content-sha256")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()));
        if !hashed {
            return Err(s3_error!(
                InvalidRequest,
                "Admin requests must sign their payload: x-amz-content-sha256 must be the body's SHA-256."
            ));
        }
        Ok(())
    }

    async fn call(&self, mut req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        let action = req
            .headers
            .get(ACTION_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = req
            .input
            .store_all_limited(MAX_BODY)
            .await
            .map_err(|e| s3_error!(InvalidRequest, "admin request body: {e}"))?;
        let params: Params = if body.iter().all(u8::is_ascii_whitespace) {
            Params::default()
        } else {
            serde_json::from_slice(&body)
                .map_err(|e| s3_error!(InvalidArgument, "admin request body is not valid: {e}"))?
        };
        let out = self.dispatch(&action, params).await?;
        tracing::info!(action = %action, "admin action done");
        let mut resp = S3Response::new(Body::from(out.to_string()));
        resp.headers.insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("application/json"),
        );
        Ok(resp)
    }
}
