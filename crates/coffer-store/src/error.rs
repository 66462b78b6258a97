use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("metadata store: {0}")]
    Meta(String),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("corrupt metadata record: {0}")]
    Corrupt(String),
    #[error("record format {0} is newer than this binary understands")]
    UnknownFormat(u8),
    #[error("no such bucket")]
    NoSuchBucket,
    #[error("no such upload")]
    NoSuchUpload,
    #[error("write condition failed: {0:?}")]
    Condition(crate::ConditionFailure),
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Meta(e.to_string())
            }
        }
    )*};
}
from_redb!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);
