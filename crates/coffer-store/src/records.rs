//! Stored record types. Every record is encoded as one format byte followed by MessagePack
//! with named fields, so fields can be added (with `#[serde(default)]`) without breaking
//! data dirs written by older binaries, and a newer format is refused instead of misread.

use serde::{Deserialize, Serialize};

use crate::StoreError;

const FORMAT_V1: u8 = 1;

pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    let mut out = vec![FORMAT_V1];
    rmp_serde::encode::write_named(&mut out, value)
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(out)
}

pub(crate) fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&FORMAT_V1, rest)) => {
            rmp_serde::from_slice(rest).map_err(|e| StoreError::Corrupt(e.to_string()))
        }
        Some((&other, _)) => Err(StoreError::UnknownFormat(other)),
        None => Err(StoreError::Corrupt("empty record".into())),
    }
}

/// Decodes a record that borrows from `bytes` (e.g. only the fields a scan needs).
pub(crate) fn decode_borrowed<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&FORMAT_V1, rest)) => {
            rmp_serde::from_slice(rest).map_err(|e| StoreError::Corrupt(e.to_string()))
        }
        Some((&other, _)) => Err(StoreError::UnknownFormat(other)),
        None => Err(StoreError::Corrupt("empty record".into())),
    }
}

/// The blob a segment or part record names, and where it lives, and nothing else of it.
#[derive(Deserialize)]
pub(crate) struct BlobRef<'a> {
    #[serde(borrow)]
    pub(crate) blob: &'a str,
    #[serde(default)]
    pub(crate) inline: bool,
}

/// The blobs an object record names, and nothing else of it.
#[derive(Deserialize)]
pub(crate) struct SegmentRefs<'a> {
    #[serde(borrow, default)]
    pub(crate) segments: Vec<BlobRef<'a>>,
}

/// Whether an object record is a delete marker, and nothing else of it.
#[derive(Deserialize)]
pub(crate) struct DeleteMarkerFlag {
    #[serde(default)]
    pub(crate) delete_marker: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BucketRecord {
    /// The user name of the owner.
    pub owner: String,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_ms: i64,
    pub region: String,
    /// "Enabled" or "Suspended"; absent for buckets that never had versioning.
    #[serde(default)]
    pub versioning: Option<String>,
    /// The bucket policy document (JSON), as the owner last put it.
    #[serde(default)]
    pub policy: Option<String>,
    /// The canned ACL ("private", "public-read", ...); absent means private.
    #[serde(default)]
    pub acl: Option<String>,
    /// The CORS rules, in the order the owner put them; absent when the bucket has none.
    #[serde(default)]
    pub cors: Option<Vec<CorsRule>>,
}

/// One rule of a bucket's CORS configuration, as validated and put by its owner.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CorsRule {
    #[serde(default)]
    pub id: Option<String>,
    pub allowed_origins: Vec<String>,
    pub allowed_methods: Vec<String>,
    #[serde(default)]
    pub allowed_headers: Vec<String>,
    #[serde(default)]
    pub expose_headers: Vec<String>,
    #[serde(default)]
    pub max_age_seconds: Option<i32>,
}

/// One stored object version (today: the current version of a key).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ObjectRecord {
    /// Unique per write; binds sealed keys to this version.
    pub version_id: String,
    /// Plaintext size in bytes.
    pub size: u64,
    /// ETag without quotes.
    pub etag: String,
    pub last_modified_ms: i64,
    #[serde(default)]
    pub content_type: Option<String>,
    #[serde(default)]
    pub content_encoding: Option<String>,
    #[serde(default)]
    pub content_disposition: Option<String>,
    #[serde(default)]
    pub content_language: Option<String>,
    #[serde(default)]
    pub cache_control: Option<String>,
    #[serde(default)]
    pub expires: Option<String>,
    #[serde(default)]
    pub user_metadata: Vec<(String, String)>,
    /// (algorithm name as S3 spells it, base64 value).
    #[serde(default)]
    pub checksum: Option<(String, String)>,
    /// The data, in order. A single PUT has one segment; a multipart object one per part.
    pub segments: Vec<Segment>,
    #[serde(default)]
    pub encryption: Option<EncryptionRecord>,
    /// A delete marker: no data, hides older versions.
    #[serde(default)]
    pub delete_marker: bool,
    /// The version clients call "null" (written while versioning was off or suspended).
    #[serde(default)]
    pub null_version: bool,
    /// The multipart upload this object was completed from (so a repeated Complete of the
    /// same upload can answer as the first one did).
    #[serde(default)]
    pub upload_id: Option<String>,
    /// The object's canned ACL; absent means private.
    #[serde(default)]
    pub acl: Option<String>,
    /// Object tags (key, value), in the order they were given.
    #[serde(default)]
    pub tags: Vec<(String, String)>,
}

impl ObjectRecord {
    /// The version id clients see.
    pub fn exposed_version_id(&self) -> &str {
        if self.null_version {
            "null"
        } else {
            &self.version_id
        }
    }
}

fn sse_c_scheme() -> String {
    "SSE-C".to_owned()
}

/// A run of object bytes stored in one blob.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Segment {
    pub blob: String,
    pub part_number: u32,
    /// Plaintext length of this segment.
    pub size: u64,
    /// Per-stream salt of the SSE-C chunk cipher (absent for plain segments).
    #[serde(default)]
    pub stream_salt: Option<[u8; 16]>,
    #[serde(default)]
    pub etag: String,
    /// The part's own checksum (algorithm, base64 value), when its upload sent one: shown by
    /// GetObjectAttributes. Absent for single-PUT objects (their checksum is the record's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<(String, String)>,
    /// The blob's bytes are in the metadata store (`inline_blobs`), not in a file. Written
    /// only when true, so records of file-backed objects encode as they always did.
    #[serde(default, skip_serializing_if = "is_false")]
    pub inline: bool,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_false(b: &bool) -> bool {
    !*b
}

/// How an SSE-C object's data key is sealed. The store keeps it opaque.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EncryptionRecord {
    /// Always "AES256" today.
    pub algorithm: String,
    /// Who holds the wrapping key: "SSE-C" (the customer), "SSE-S3" or "SSE-KMS" (the server).
    #[serde(default = "sse_c_scheme")]
    pub scheme: String,
    /// The KMS key id for SSE-KMS.
    #[serde(default)]
    pub kms_key_id: Option<String>,
    /// The id the sealed key is bound to (the version id, or the multipart upload id).
    pub binding_id: String,
    /// The sealed data key as encoded by the SSE layer.
    pub sealed_key: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_refuse_newer_formats() {
        let rec = BucketRecord {
            owner: "root".into(),
            created_ms: 42,
            region: "us-east-1".into(),
            versioning: None,
            policy: None,
            acl: None,
            cors: None,
        };
        let bytes = encode(&rec).unwrap();
        assert_eq!(bytes[0], FORMAT_V1);
        assert_eq!(decode::<BucketRecord>(&bytes).unwrap(), rec);
        let mut newer = bytes.clone();
        newer[0] = 9;
        assert!(matches!(
            decode::<BucketRecord>(&newer),
            Err(StoreError::UnknownFormat(9))
        ));
        assert!(decode::<BucketRecord>(&[]).is_err());
    }

    #[test]
    fn segments_say_inline_only_when_they_are() {
        let file = Segment {
            blob: "0123456789abcdef0123456789abcdef".into(),
            part_number: 1,
            size: 5,
            stream_salt: None,
            etag: String::new(),
            checksum: None,
            inline: false,
        };
        // A file-backed segment encodes as before inline blobs existed, so records written
        // by this binary for files read the same in an older one.
        let bytes = encode(&file).unwrap();
        assert!(!bytes.windows(6).any(|w| w == b"inline"));
        assert_eq!(decode::<Segment>(&bytes).unwrap(), file);
        let inline = Segment {
            inline: true,
            ..file
        };
        let bytes = encode(&inline).unwrap();
        assert_eq!(decode::<Segment>(&bytes).unwrap(), inline);
        let refs: BlobRef<'_> = decode_borrowed(&bytes).unwrap();
        assert!(refs.inline);
    }

    #[test]
    fn bucket_records_written_before_cors_still_read() {
        // The bucket record as binaries before CORS wrote it.
        #[derive(Serialize)]
        struct BeforeCors {
            owner: String,
            created_ms: i64,
            region: String,
            versioning: Option<String>,
            policy: Option<String>,
            acl: Option<String>,
        }
        let old = encode(&BeforeCors {
            owner: "alice".into(),
            created_ms: 7,
            region: "us-east-1".into(),
            versioning: Some("Enabled".into()),
            policy: None,
            acl: Some("public-read".into()),
        })
        .unwrap();
        let rec = decode::<BucketRecord>(&old).unwrap();
        assert_eq!(rec.owner, "alice");
        assert_eq!(rec.acl.as_deref(), Some("public-read"));
        assert_eq!(rec.cors, None);

        let with_cors = BucketRecord {
            cors: Some(vec![CorsRule {
                id: Some("r1".into()),
                allowed_origins: vec!["https://*.example.com".into()],
                allowed_methods: vec!["GET".into(), "POST".into()],
                allowed_headers: vec!["*".into()],
                expose_headers: vec!["ETag".into()],
                max_age_seconds: Some(600),
            }]),
            ..rec
        };
        assert_eq!(
            decode::<BucketRecord>(&encode(&with_cors).unwrap()).unwrap(),
            with_cors
        );
    }
}

/// A multipart upload in progress.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct UploadRecord {
    pub upload_id: String,
    pub key: String,
    pub owner: String,
    pub initiated_ms: i64,
    #[serde(default)]
    pub content_type: Option<String>,
    #[serde(default)]
    pub content_encoding: Option<String>,
    #[serde(default)]
    pub content_disposition: Option<String>,
    #[serde(default)]
    pub content_language: Option<String>,
    #[serde(default)]
    pub cache_control: Option<String>,
    #[serde(default)]
    pub expires: Option<String>,
    #[serde(default)]
    pub user_metadata: Vec<(String, String)>,
    /// The checksum algorithm named at creation, as S3 spells it.
    #[serde(default)]
    pub checksum_algorithm: Option<String>,
    /// The canned ACL the object gets at Complete.
    #[serde(default)]
    pub acl: Option<String>,
    /// The tags the object gets at Complete.
    #[serde(default)]
    pub tags: Vec<(String, String)>,
    /// The data key, sealed at creation and bound to the upload id.
    #[serde(default)]
    pub encryption: Option<EncryptionRecord>,
}

/// One uploaded part of a multipart upload.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PartRecord {
    pub part_number: u32,
    pub size: u64,
    pub etag: String,
    pub blob: String,
    pub last_modified_ms: i64,
    #[serde(default)]
    pub stream_salt: Option<[u8; 16]>,
    /// (algorithm, base64 value) when the client sent one.
    #[serde(default)]
    pub checksum: Option<(String, String)>,
}
