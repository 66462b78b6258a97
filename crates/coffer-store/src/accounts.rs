//! Users and their access keys. The secrets arrive here already sealed by the caller (under a
//! key derived from the server's master key): the store never sees a secret in clear.

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::meta::{BUCKETS, MetaStore};
use crate::records::{decode, encode};
use crate::{BucketRecord, StoreError};

/// Key: user name.
pub(crate) const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
/// Key: access key id.
pub(crate) const ACCESS_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("access_keys");

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct UserRecord {
    pub created_ms: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessKeyRecord {
    pub user: String,
    /// The secret key sealed by the caller; opaque here.
    pub sealed_secret: Vec<u8>,
    pub created_ms: i64,
}

#[derive(Debug, PartialEq, Eq)]
pub enum DeleteUserOutcome {
    /// Deleted with its access keys (returned, so caches can forget them).
    Deleted {
        access_keys: Vec<String>,
    },
    NoSuchUser,
    /// The user still owns these buckets.
    OwnsBuckets(Vec<String>),
}

#[derive(Debug, PartialEq, Eq)]
pub enum AddAccessKeyOutcome {
    Added,
    NoSuchUser,
    /// The user already has `max_per_user` keys.
    LimitReached,
    /// The access key id is taken (a random collision: the caller draws another).
    IdTaken,
}

impl MetaStore {
    /// Creates the user; false if the name is taken.
    pub fn create_user(&self, name: &str, record: &UserRecord) -> Result<bool, StoreError> {
        let (name, value) = (name.to_owned(), encode(record)?);
        self.write(move |txn| {
            let mut users = txn.open_table(USERS)?;
            if users.get(name.as_str())?.is_some() {
                Ok(false)
            } else {
                users.insert(name.as_str(), value.as_slice())?;
                Ok(true)
            }
        })
    }

    pub fn users(&self) -> Result<Vec<(String, UserRecord)>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(USERS)?;
        let mut out = Vec::new();
        for item in table.iter()? {
            let (k, v) = item?;
            out.push((k.value().to_owned(), decode(v.value())?));
        }
        Ok(out)
    }

    /// Deletes the user and its access keys, unless it owns a bucket (checked in the same
    /// transaction, so a bucket created meanwhile cannot be orphaned).
    pub fn delete_user(&self, name: &str) -> Result<DeleteUserOutcome, StoreError> {
        let name = name.to_owned();
        self.write(move |txn| {
            let name = name.as_str();
            let mut users = txn.open_table(USERS)?;
            let outcome = if users.get(name)?.is_none() {
                DeleteUserOutcome::NoSuchUser
            } else {
                let buckets = txn.open_table(BUCKETS)?;
                let mut owned = Vec::new();
                for item in buckets.iter()? {
                    let (k, v) = item?;
                    if decode::<BucketRecord>(v.value())?.owner == name {
                        owned.push(k.value().to_owned());
                    }
                }
                if owned.is_empty() {
                    users.remove(name)?;
                    let mut keys = txn.open_table(ACCESS_KEYS)?;
                    let mut removed = Vec::new();
                    for item in keys.iter()? {
                        let (k, v) = item?;
                        if decode::<AccessKeyRecord>(v.value())?.user == name {
                            removed.push(k.value().to_owned());
                        }
                    }
                    for k in &removed {
                        keys.remove(k.as_str())?;
                    }
                    DeleteUserOutcome::Deleted {
                        access_keys: removed,
                    }
                } else {
                    DeleteUserOutcome::OwnsBuckets(owned)
                }
            };
            Ok(outcome)
        })
    }

    /// Adds an access key to an existing user that has fewer than `max_per_user` keys.
    pub fn add_access_key(
        &self,
        access_key: &str,
        record: &AccessKeyRecord,
        max_per_user: usize,
    ) -> Result<AddAccessKeyOutcome, StoreError> {
        let (access_key, user, value) =
            (access_key.to_owned(), record.user.clone(), encode(record)?);
        self.write(move |txn| {
            let users = txn.open_table(USERS)?;
            let mut keys = txn.open_table(ACCESS_KEYS)?;
            if users.get(user.as_str())?.is_none() {
                return Ok(AddAccessKeyOutcome::NoSuchUser);
            }
            if keys.get(access_key.as_str())?.is_some() {
                return Ok(AddAccessKeyOutcome::IdTaken);
            }
            let mut held = 0;
            for item in keys.iter()? {
                let (_, v) = item?;
                if decode::<AccessKeyRecord>(v.value())?.user == user {
                    held += 1;
                }
            }
            if held >= max_per_user {
                return Ok(AddAccessKeyOutcome::LimitReached);
            }
            keys.insert(access_key.as_str(), value.as_slice())?;
            Ok(AddAccessKeyOutcome::Added)
        })
    }

    pub fn access_keys(&self) -> Result<Vec<(String, AccessKeyRecord)>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(ACCESS_KEYS)?;
        let mut out = Vec::new();
        for item in table.iter()? {
            let (k, v) = item?;
            out.push((k.value().to_owned(), decode(v.value())?));
        }
        Ok(out)
    }

    /// Removes the access key; returns its record if it existed.
    pub fn delete_access_key(
        &self,
        access_key: &str,
    ) -> Result<Option<AccessKeyRecord>, StoreError> {
        let access_key = access_key.to_owned();
        self.write(move |txn| {
            let mut keys = txn.open_table(ACCESS_KEYS)?;
            match keys.remove(access_key.as_str())? {
                Some(v) => Ok(Some(decode::<AccessKeyRecord>(v.value())?)),
                None => Ok(None),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, MetaStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let meta = MetaStore::open(&dir.path().join("meta.redb")).expect("open");
        (dir, meta)
    }

    fn key_record(user: &str) -> AccessKeyRecord {
        AccessKeyRecord {
            user: user.into(),
            sealed_secret: vec![1, 2, 3],
            created_ms: 5,
        }
    }

    #[test]
    fn users_and_keys_lifecycle() {
        let (_dir, meta) = store();
        assert!(
            meta.create_user("alice", &UserRecord { created_ms: 1 })
                .expect("create")
        );
        assert!(
            !meta
                .create_user("alice", &UserRecord { created_ms: 2 })
                .expect("again")
        );
        assert_eq!(
            meta.add_access_key("AK1", &key_record("bob"), 2)
                .expect("add"),
            AddAccessKeyOutcome::NoSuchUser
        );
        assert_eq!(
            meta.add_access_key("AK1", &key_record("alice"), 2)
                .expect("add"),
            AddAccessKeyOutcome::Added
        );
        assert_eq!(
            meta.add_access_key("AK1", &key_record("alice"), 2)
                .expect("add"),
            AddAccessKeyOutcome::IdTaken
        );
        assert_eq!(
            meta.add_access_key("AK2", &key_record("alice"), 2)
                .expect("add"),
            AddAccessKeyOutcome::Added
        );
        assert_eq!(
            meta.add_access_key("AK3", &key_record("alice"), 2)
                .expect("add"),
            AddAccessKeyOutcome::LimitReached
        );
        assert_eq!(meta.access_keys().expect("keys").len(), 2);
        assert_eq!(
            meta.delete_access_key("AK2").expect("delete"),
            Some(key_record("alice"))
        );
        assert_eq!(meta.delete_access_key("AK2").expect("delete"), None);

        meta.create_bucket(
            "owned",
            &BucketRecord {
                owner: "alice".into(),
                created_ms: 0,
                region: "us-east-1".into(),
                versioning: None,
                policy: None,
                acl: None,
                cors: None,
            },
        )
        .expect("bucket");
        assert_eq!(
            meta.delete_user("alice").expect("delete"),
            DeleteUserOutcome::OwnsBuckets(vec!["owned".into()])
        );
        meta.delete_bucket("owned").expect("delete bucket");
        assert_eq!(
            meta.delete_user("alice").expect("delete"),
            DeleteUserOutcome::Deleted {
                access_keys: vec!["AK1".into()]
            }
        );
        assert!(meta.access_keys().expect("keys").is_empty());
        assert_eq!(
            meta.delete_user("alice").expect("delete"),
            DeleteUserOutcome::NoSuchUser
        );
    }
}
