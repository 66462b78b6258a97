//! Users and access keys managed at run time (the admin API), and the sealing of their secrets.
//!
//! A SigV4 verifier needs the secret itself (every signature starts from `HMAC("AWS4" + secret,
//! date)`), so secrets cannot be stored as one-way hashes the way passwords are. They are
//! sealed instead: AES-256-GCM under a key derived from the server's master key, with the
//! access key id as associated data (so a sealed secret cannot be moved to another key id).
//! Whoever holds the data directory but not the master key file learns nothing from them.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hkdf;
use coffer_store::{
    AccessKeyRecord, AddAccessKeyOutcome, DeleteUserOutcome, StoreError, UserRecord,
};
use zeroize::Zeroizing;

use crate::{Coffer, CoreError, now_ms};

/// AWS allows two access keys per IAM user (one in use, one being rotated in).
pub const MAX_ACCESS_KEYS_PER_USER: usize = 2;

const ACCESS_KEY_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const SEAL_FORMAT_V1: u8 = 1;

fn random_string(alphabet: &[u8], len: usize) -> Result<String, CoreError> {
    // Both alphabets have a power-of-two size, so `% len` is unbiased.
    let mut bytes = Zeroizing::new(vec![0u8; len]);
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| CoreError::Internal("CSPRNG failure".into()))?;
    Ok(bytes
        .iter()
        .map(|b| alphabet[usize::from(*b) % alphabet.len()] as char)
        .collect())
}

/// A fresh access key id: `CFR` and 17 base32 characters (20 in all, like AWS's).
pub fn new_access_key_id() -> Result<String, CoreError> {
    Ok(format!("CFR{}", random_string(ACCESS_KEY_ALPHABET, 17)?))
}

/// A fresh 40-character secret access key (240 bits).
pub fn new_secret_key() -> Result<Zeroizing<String>, CoreError> {
    Ok(Zeroizing::new(random_string(SECRET_ALPHABET, 40)?))
}

/// Seals and opens access-key secrets under a key derived from the master key.
pub struct SecretSealer {
    key: LessSafeKey,
}

struct Len32;
impl hkdf::KeyType for Len32 {
    fn len(&self) -> usize {
        32
    }
}

impl SecretSealer {
    pub fn new(master_key: &[u8; 32]) -> Result<Self, CoreError> {
        let failed = || CoreError::Internal("key derivation failed".into());
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"coffer/server-keys").extract(master_key);
        let info = [b"coffer/access-key-secrets/v1".as_slice()];
        let okm = prk.expand(&info, Len32).map_err(|_| failed())?;
        let mut raw = Zeroizing::new([0u8; 32]);
        okm.fill(&mut raw[..]).map_err(|_| failed())?;
        let key = UnboundKey::new(&AES_256_GCM, &raw[..]).map_err(|_| failed())?;
        Ok(Self {
            key: LessSafeKey::new(key),
        })
    }

    /// `format || nonce || AES-256-GCM(secret) || tag`, bound to `access_key`.
    pub fn seal(&self, access_key: &str, secret: &str) -> Result<Vec<u8>, CoreError> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce)
            .map_err(|_| CoreError::Internal("CSPRNG failure".into()))?;
        let mut buf = Zeroizing::new(secret.as_bytes().to_vec());
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(access_key.as_bytes()),
                &mut buf,
            )
            .map_err(|_| CoreError::Internal("sealing failed".into()))?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + buf.len() + tag.as_ref().len());
        out.push(SEAL_FORMAT_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Opens what `seal` produced for the same access key under the same master key.
    pub fn open(&self, access_key: &str, sealed: &[u8]) -> Result<Zeroizing<String>, CoreError> {
        let bad = || {
            CoreError::Internal(format!(
                "the secret of access key {access_key} does not open: wrong master key or corrupt record"
            ))
        };
        let (format, rest) = sealed.split_first().ok_or_else(bad)?;
        if *format != SEAL_FORMAT_V1 || rest.len() < NONCE_LEN {
            return Err(bad());
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| bad())?;
        let mut buf = Zeroizing::new(ciphertext.to_vec());
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(access_key.as_bytes()), &mut buf)
            .map_err(|_| bad())?;
        let text = std::str::from_utf8(plain).map_err(|_| bad())?;
        Ok(Zeroizing::new(text.to_owned()))
    }
}

/// A user created through the admin API.
#[derive(Debug, Clone)]
pub struct UserInfo {
    pub name: String,
    pub created_ms: i64,
}

/// An access key, without its secret.
#[derive(Debug, Clone)]
pub struct AccessKeyInfo {
    pub access_key: String,
    pub user: String,
    pub created_ms: i64,
}

/// A new access key with its secret: shown once, never stored in clear.
pub struct NewAccessKey {
    pub info: AccessKeyInfo,
    pub secret: Zeroizing<String>,
}

/// An access key with its opened secret, for the authenticator's in-memory directory.
pub struct LoadedAccessKey {
    pub info: AccessKeyInfo,
    pub secret: Zeroizing<String>,
}

/// IAM's rule for user names: 1-64 of letters, digits and `+=,.@_-`.
pub fn validate_user_name(name: &str) -> Result<(), CoreError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(CoreError::Account(AccountError::Validation(format!(
            "invalid user name {name:?}: use 1 to 64 letters, digits and +=,.@_-"
        ))))
    }
}

/// Why an admin operation on users or keys was refused.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("{0}")]
    NoSuchEntity(String),
    #[error("{0}")]
    EntityAlreadyExists(String),
    #[error("{0}")]
    DeleteConflict(String),
    #[error("{0}")]
    LimitExceeded(String),
    #[error("{0}")]
    Validation(String),
}

fn account(e: AccountError) -> CoreError {
    CoreError::Account(e)
}

fn store(e: StoreError) -> CoreError {
    CoreError::Store(e)
}

impl Coffer {
    pub async fn create_user(&self, name: &str) -> Result<UserInfo, CoreError> {
        validate_user_name(name)?;
        let name = name.to_owned();
        self.blocking(move |s| {
            let record = UserRecord {
                created_ms: now_ms(),
            };
            if s.meta().create_user(&name, &record).map_err(store)? {
                Ok(UserInfo {
                    name,
                    created_ms: record.created_ms,
                })
            } else {
                Err(account(AccountError::EntityAlreadyExists(format!(
                    "User with name {name} already exists."
                ))))
            }
        })
        .await
    }

    pub async fn list_users(&self) -> Result<Vec<UserInfo>, CoreError> {
        self.blocking(|s| {
            Ok(s.meta()
                .users()
                .map_err(store)?
                .into_iter()
                .map(|(name, r)| UserInfo {
                    name,
                    created_ms: r.created_ms,
                })
                .collect())
        })
        .await
    }

    /// Deletes a user and its keys; refused while it owns buckets. Returns the revoked key ids.
    pub async fn delete_user(&self, name: &str) -> Result<Vec<String>, CoreError> {
        let name = name.to_owned();
        self.blocking(move |s| match s.meta().delete_user(&name).map_err(store)? {
            DeleteUserOutcome::Deleted { access_keys } => Ok(access_keys),
            DeleteUserOutcome::NoSuchUser => Err(account(AccountError::NoSuchEntity(format!(
                "The user with name {name} cannot be found."
            )))),
            DeleteUserOutcome::OwnsBuckets(buckets) => {
                Err(account(AccountError::DeleteConflict(format!(
                    "Cannot delete user {name}: it owns {} bucket(s) ({}). Delete them first.",
                    buckets.len(),
                    buckets.join(", ")
                ))))
            }
        })
        .await
    }

    /// Creates an access key for `user`; the secret is returned once and stored sealed.
    pub async fn create_access_key(&self, user: &str) -> Result<NewAccessKey, CoreError> {
        let user = user.to_owned();
        let sealer = std::sync::Arc::clone(&self.sealer);
        self.blocking(move |s| {
            // A clash of 85 random bits is all but impossible; retry a few times anyway.
            for _ in 0..4 {
                let access_key = new_access_key_id()?;
                let secret = new_secret_key()?;
                let record = AccessKeyRecord {
                    user: user.clone(),
                    sealed_secret: sealer.seal(&access_key, &secret)?,
                    created_ms: now_ms(),
                };
                let created_ms = record.created_ms;
                match s
                    .meta()
                    .add_access_key(&access_key, &record, MAX_ACCESS_KEYS_PER_USER)
                    .map_err(store)?
                {
                    AddAccessKeyOutcome::Added => {
                        return Ok(NewAccessKey {
                            info: AccessKeyInfo {
                                access_key,
                                user,
                                created_ms,
                            },
                            secret,
                        });
                    }
                    AddAccessKeyOutcome::IdTaken => continue,
                    AddAccessKeyOutcome::NoSuchUser => {
                        return Err(account(AccountError::NoSuchEntity(format!(
                            "The user with name {user} cannot be found."
                        ))));
                    }
                    AddAccessKeyOutcome::LimitReached => {
                        return Err(account(AccountError::LimitExceeded(format!(
                            "Cannot exceed quota for AccessKeysPerUser: {MAX_ACCESS_KEYS_PER_USER}. Revoke one of {user}'s keys first."
                        ))));
                    }
                }
            }
            Err(CoreError::Internal("could not draw a free access key id".into()))
        })
        .await
    }

    pub async fn list_access_keys(&self) -> Result<Vec<AccessKeyInfo>, CoreError> {
        self.blocking(|s| {
            Ok(s.meta()
                .access_keys()
                .map_err(store)?
                .into_iter()
                .map(|(access_key, r)| AccessKeyInfo {
                    access_key,
                    user: r.user,
                    created_ms: r.created_ms,
                })
                .collect())
        })
        .await
    }

    /// Revokes (deletes) an access key; returns its owner.
    pub async fn delete_access_key(&self, access_key: &str) -> Result<String, CoreError> {
        let access_key = access_key.to_owned();
        self.blocking(
            move |s| match s.meta().delete_access_key(&access_key).map_err(store)? {
                Some(record) => Ok(record.user),
                None => Err(account(AccountError::NoSuchEntity(format!(
                    "The Access Key with id {access_key} cannot be found."
                )))),
            },
        )
        .await
    }

    /// Every stored access key with its secret opened, for the authenticator at start-up.
    pub async fn load_access_keys(&self) -> Result<Vec<LoadedAccessKey>, CoreError> {
        let sealer = std::sync::Arc::clone(&self.sealer);
        self.blocking(move |s| {
            s.meta()
                .access_keys()
                .map_err(store)?
                .into_iter()
                .map(|(access_key, r)| {
                    let secret = sealer.open(&access_key, &r.sealed_secret)?;
                    Ok(LoadedAccessKey {
                        info: AccessKeyInfo {
                            access_key,
                            user: r.user,
                            created_ms: r.created_ms,
                        },
                        secret,
                    })
                })
                .collect()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secret_opens_only_under_its_key_id_and_master_key() {
        let sealer = SecretSealer::new(&[7u8; 32]).expect("sealer");
        let sealed = sealer.seal("AKONE", "the secret").expect("seal");
        assert!(!sealed.windows(10).any(|w| w == b"the secret"));
        assert_eq!(
            sealer.open("AKONE", &sealed).expect("open").as_str(),
            "the secret"
        );
        assert!(
            sealer.open("AKTWO", &sealed).is_err(),
            "bound to the key id"
        );
        let other = SecretSealer::new(&[8u8; 32]).expect("sealer");
        assert!(
            other.open("AKONE", &sealed).is_err(),
            "bound to the master key"
        );
        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(sealer.open("AKONE", &flipped).is_err(), "authenticated");
        assert!(sealer.open("AKONE", &[]).is_err());
        assert!(sealer.open("AKONE", &[1, 2, 3]).is_err());
        // Two seals of one secret differ (fresh nonce).
        assert_ne!(sealed, sealer.seal("AKONE", "the secret").expect("seal"));
    }

    #[test]
    fn generated_ids_and_secrets_have_their_shape() {
        let ak = new_access_key_id().expect("ak");
        assert_eq!(ak.len(), 20);
        assert!(ak.starts_with("CFR"));
        let sk = new_secret_key().expect("sk");
        assert_eq!(sk.len(), 40);
        assert_ne!(*sk, *new_secret_key().expect("sk"));
    }

    #[test]
    fn user_names_follow_iam_rules() {
        for ok in ["alice", "a", "A.b-c_d@e+f=g,h", &"x".repeat(64)] {
            assert!(validate_user_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "has space", "slash/", "é", &"x".repeat(65)] {
            assert!(validate_user_name(bad).is_err(), "{bad}");
        }
    }
}
