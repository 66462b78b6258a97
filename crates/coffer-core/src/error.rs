use coffer_store::StoreError;
use thiserror::Error;

pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything an operation can fail with. The S3 adapter maps each variant to exactly one
/// S3 error code and status.
#[derive(Debug, Error)]
pub enum CoreError {
    #[error("The specified bucket does not exist")]
    NoSuchBucket,
    #[error(
        "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed."
    )]
    NoSuchUpload,
    #[error("{0}")]
    InvalidPart(String),
    #[error("The requested partnumber is not satisfiable")]
    InvalidPartNumber,
    #[error("The list of parts was not in ascending order. Parts must be ordered by part number.")]
    InvalidPartOrder,
    #[error("Your proposed upload is smaller than the minimum allowed object size.")]
    EntityTooSmall,
    #[error("{0}")]
    MalformedXml(String),
    /// A 400 `InvalidRequest` with its own message.
    #[error("{0}")]
    InvalidRequest(String),
    #[error("The specified key does not exist.")]
    NoSuchKey,
    #[error("The specified version does not exist.")]
    NoSuchVersion,
    /// The current version (`requested` false) or the requested version is a delete marker.
    #[error("The specified method is not allowed against this resource.")]
    DeleteMarker {
        version_id: String,
        requested: bool,
        last_modified_ms: i64,
    },
    #[error("Your previous request to create the named bucket succeeded and you already own it.")]
    BucketAlreadyOwnedByYou,
    #[error("The requested bucket name is not available.")]
    BucketAlreadyExists,
    #[error("The bucket you tried to delete is not empty")]
    BucketNotEmpty,
    #[error("The requested range is not satisfiable")]
    InvalidRange { size: u64 },
    #[error("At least one of the pre-conditions you specified did not hold")]
    PreconditionFailed,
    #[error("Not Modified")]
    NotModified { etag: String, last_modified_ms: i64 },
    #[error("{0}")]
    BadDigest(String),
    #[error("The Content-MD5 you specified is not valid.")]
    InvalidDigest,
    #[error("You did not provide the number of bytes specified by the Content-Length HTTP header.")]
    IncompleteBody,
    #[error("{0}")]
    InvalidArgument(String),
    /// A tag set S3 refuses (`InvalidTag`).
    #[error("{0}")]
    InvalidTag(String),
    /// A request S3 refuses with the generic `BadRequest` code (e.g. more than 10 tags).
    #[error("{0}")]
    BadRequest(String),
    /// The object is SSE-C encrypted and the request carries no key.
    #[error(
        "The object was stored using a form of Server Side Encryption. The correct parameters must be provided to retrieve the object."
    )]
    SseKeyRequired,
    /// The key given does not open this object's data key.
    #[error("The provided encryption key does not match the key used to encrypt the object.")]
    SseWrongKey,
    /// SSE-C headers on an object that is not SSE-C encrypted.
    #[error("The encryption parameters are not applicable to this object.")]
    SseNotEncrypted,
    /// The request body stream failed (client went away, bad chunk signature, ...).
    #[error("request body: {0}")]
    Body(BoxError),
    #[error("storage: {0}")]
    Store(StoreError),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// An admin operation on users or access keys was refused.
    #[error("{0}")]
    Account(crate::accounts::AccountError),
    #[error("internal: {0}")]
    Internal(String),
}

impl From<StoreError> for CoreError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NoSuchBucket => CoreError::NoSuchBucket,
            StoreError::NoSuchUpload => CoreError::NoSuchUpload,
            StoreError::Condition(coffer_store::ConditionFailure::PreconditionFailed) => {
                CoreError::PreconditionFailed
            }
            StoreError::Condition(coffer_store::ConditionFailure::NoSuchKey) => {
                CoreError::NoSuchKey
            }
            other => CoreError::Store(other),
        }
    }
}

impl From<coffer_store::ConditionFailure> for CoreError {
    fn from(e: coffer_store::ConditionFailure) -> Self {
        CoreError::from(StoreError::Condition(e))
    }
}
