//! Users and their access keys. The root user may do anything; other users own the buckets
//! they create.

use std::collections::HashMap;

use s3s::S3Result;
use s3s::auth::{S3Auth, SecretKey};
use std::sync::Arc;

#[derive(Clone)]
pub struct User {
    pub name: String,
    pub access_key: String,
    secret_key: String,
    pub is_root: bool,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field("access_key", &self.access_key)
            .field("is_root", &self.is_root)
            .finish_non_exhaustive()
    }
}

impl User {
    pub fn new(
        name: impl Into<String>,
        access_key: impl Into<String>,
        secret_key: impl Into<String>,
        is_root: bool,
    ) -> Self {
        Self {
            name: name.into(),
            access_key: access_key.into(),
            secret_key: secret_key.into(),
            is_root,
        }
    }
}

#[derive(Debug, Default)]
pub struct UserDirectory {
    by_access_key: HashMap<String, User>,
}

impl UserDirectory {
    /// Adds a user; refuses a duplicate access key or user name.
    pub fn add(&mut self, user: User) -> Result<(), String> {
        if self.by_access_key.values().any(|u| u.name == user.name) {
            return Err(format!("duplicate user name {:?}", user.name));
        }
        if self.by_access_key.contains_key(&user.access_key) {
            return Err(format!("duplicate access key for user {:?}", user.name));
        }
        self.by_access_key.insert(user.access_key.clone(), user);
        Ok(())
    }

    pub fn by_access_key(&self, access_key: &str) -> Option<&User> {
        self.by_access_key.get(access_key)
    }
}

pub(crate) struct Auth(pub(crate) Arc<UserDirectory>);

#[async_trait::async_trait]
impl S3Auth for Auth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.0.by_access_key(access_key) {
            Some(user) => Ok(SecretKey::from(user.secret_key.as_str())),
            None => Err(s3s::s3_error!(
                InvalidAccessKeyId,
                "The AWS Access Key Id you provided does not exist in our records."
            )),
        }
    }
}
