//! Users and their access keys, as the authenticator sees them. The root user may do anything;
//! other users own the buckets they create. Root and the users of the config file are fixed
//! for the life of the process; users made through the admin API come and go at run time.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use s3s::S3Result;
use s3s::auth::{S3Auth, SecretKey};
use zeroize::Zeroizing;

/// Where a user comes from, which decides whether the admin API may change it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum UserSource {
    Root,
    /// Declared in the config file.
    Config,
    /// Created through the admin API (stored, secret sealed).
    Managed,
}

impl UserSource {
    pub fn as_str(self) -> &'static str {
        match self {
            UserSource::Root => "root",
            UserSource::Config => "config",
            UserSource::Managed => "admin",
        }
    }
}

#[derive(Clone)]
pub struct User {
    pub name: String,
    pub access_key: String,
    secret_key: Zeroizing<String>,
    pub is_root: bool,
    pub source: UserSource,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field("access_key", &self.access_key)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl User {
    pub fn new(
        name: impl Into<String>,
        access_key: impl Into<String>,
        secret_key: impl Into<String>,
        source: UserSource,
    ) -> Self {
        Self {
            name: name.into(),
            access_key: access_key.into(),
            secret_key: Zeroizing::new(secret_key.into()),
            is_root: source == UserSource::Root,
            source,
        }
    }

    /// The secret access key, for signature checks made outside s3s (SigV2).
    pub(crate) fn secret_key(&self) -> &str {
        self.secret_key.as_str()
    }
}

/// Access key id -> user. Reads take a shared lock held for one map lookup.
#[derive(Debug, Default)]
pub struct UserDirectory {
    by_access_key: RwLock<HashMap<String, User>>,
}

impl UserDirectory {
    /// Adds a key of a user; refuses a taken access key, and a name already used by a user
    /// of another source (a managed user may hold several keys).
    pub fn add(&self, user: User) -> Result<(), String> {
        let mut map = self
            .by_access_key
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if map.values().any(|u| {
            u.name == user.name
                && !(u.source == UserSource::Managed && user.source == UserSource::Managed)
        }) {
            return Err(format!("duplicate user name {:?}", user.name));
        }
        if map.contains_key(&user.access_key) {
            return Err(format!("duplicate access key for user {:?}", user.name));
        }
        map.insert(user.access_key.clone(), user);
        Ok(())
    }

    pub fn by_access_key(&self, access_key: &str) -> Option<User> {
        self.by_access_key
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(access_key)
            .cloned()
    }

    /// The source of the user that holds keys under `name`, if any does.
    pub fn source_of(&self, name: &str) -> Option<UserSource> {
        self.by_access_key
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .find(|u| u.name == name)
            .map(|u| u.source)
    }

    /// Root's and the config file's users: (name, access key, source).
    pub fn fixed_users(&self) -> Vec<(String, String, UserSource)> {
        let mut out: Vec<_> = self
            .by_access_key
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .filter(|u| u.source != UserSource::Managed)
            .map(|u| (u.name.clone(), u.access_key.clone(), u.source))
            .collect();
        out.sort();
        out
    }

    pub fn remove_access_key(&self, access_key: &str) {
        self.by_access_key
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(access_key);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_across_sources_but_managed_users_hold_several_keys() {
        let dir = UserDirectory::default();
        dir.add(User::new("root", "AK0", "s0", UserSource::Root))
            .expect("root");
        dir.add(User::new("alice", "AK1", "s1", UserSource::Config))
            .expect("config user");
        assert!(
            dir.add(User::new("alice", "AK2", "s2", UserSource::Managed))
                .is_err()
        );
        assert!(
            dir.add(User::new("bob", "AK1", "s2", UserSource::Managed))
                .is_err()
        );
        dir.add(User::new("bob", "AK3", "s3", UserSource::Managed))
            .expect("bob");
        dir.add(User::new("bob", "AK4", "s4", UserSource::Managed))
            .expect("bob's second key");
        assert_eq!(dir.source_of("bob"), Some(UserSource::Managed));
        assert_eq!(dir.by_access_key("AK4").map(|u| u.name), Some("bob".into()));
        dir.remove_access_key("AK4");
        assert!(dir.by_access_key("AK4").is_none());
        assert_eq!(dir.fixed_users().len(), 2);
        assert!(
            format!("{:?}", dir.by_access_key("AK3"))
                .find("s3\"")
                .is_none()
        );
    }
}
