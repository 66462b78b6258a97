//! Object tags: the `x-amz-tagging` header and the `?tagging` sub-resource. Tags are mutable
//! metadata of one version, like its canned ACL; they never touch the object's data or keys.

use crate::{Coffer, CoreError};

/// At most this many tags per object.
pub const MAX_TAGS: usize = 10;
const MAX_KEY_CHARS: usize = 128;
const MAX_VALUE_CHARS: usize = 256;

/// Checks a tag set as S3 does: at most 10 tags, keys of 1-128 and values of at most 256
/// characters, unique keys, none in the reserved `aws:` namespace.
pub fn validate_tags(tags: &[(String, String)]) -> Result<(), CoreError> {
    if tags.len() > MAX_TAGS {
        return Err(CoreError::BadRequest(
            "Object tags cannot be greater than 10".into(),
        ));
    }
    for (i, (key, value)) in tags.iter().enumerate() {
        if key.is_empty() {
            return Err(CoreError::InvalidTag(
                "The TagKey you have provided is invalid".into(),
            ));
        }
        if key.chars().count() > MAX_KEY_CHARS {
            return Err(CoreError::InvalidTag(
                "The TagKey you have provided is too long, max 128".into(),
            ));
        }
        if value.chars().count() > MAX_VALUE_CHARS {
            return Err(CoreError::InvalidTag(
                "The TagValue you have provided is too long, max 256".into(),
            ));
        }
        if key.to_ascii_lowercase().starts_with("aws:") {
            return Err(CoreError::InvalidTag(
                "Your TagKey cannot be prefixed with aws:".into(),
            ));
        }
        if tags[..i].iter().any(|(k, _)| k == key) {
            return Err(CoreError::InvalidTag(
                "Cannot provide multiple Tags with the same key".into(),
            ));
        }
    }
    Ok(())
}

/// Parses and validates an `x-amz-tagging` value: URL query encoding, `k1=v1&k2=v2`.
pub fn parse_tagging_header(value: &str) -> Result<Vec<(String, String)>, CoreError> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| CoreError::InvalidArgument("The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query parameters without tag name duplicates.".into()))
    };
    let tags = value
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((decode(k)?, decode(v)?))
        })
        .collect::<Result<Vec<_>, CoreError>>()?;
    validate_tags(&tags)?;
    Ok(tags)
}

impl Coffer {
    /// The tags of a version (`None`: the current one) and the version id clients see.
    pub fn object_tags(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<(Option<String>, Tags), CoreError> {
        let versioned = self.bucket_had_versioning(bucket)?;
        let record = self.object_record(bucket, key, version_id)?;
        Ok((shown_version(versioned, &record), record.tags))
    }

    /// Whether versioning was ever set on `bucket` (only then are version ids shown).
    fn bucket_had_versioning(&self, bucket: &str) -> Result<bool, CoreError> {
        Ok(self
            .store()
            .meta()
            .bucket(bucket)?
            .ok_or(CoreError::NoSuchBucket)?
            .versioning
            .is_some())
    }

    /// Replaces the tags of a version (`None`: the current one); an empty set removes them.
    /// Returns the version id clients see, if any.
    pub async fn set_object_tags(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<String>,
        tags: Vec<(String, String)>,
    ) -> Result<Option<String>, CoreError> {
        validate_tags(&tags)?;
        let versioned = self.bucket_had_versioning(bucket)?;
        let missing = if version_id.is_some() {
            CoreError::NoSuchVersion
        } else {
            CoreError::NoSuchKey
        };
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        self.blocking(move |s| {
            Ok(s.meta().update_object_version(
                &bucket,
                &key,
                version_id.as_deref(),
                move |rec| rec.tags.clone_from(&tags),
            )?)
        })
        .await?
        .map(|rec| shown_version(versioned, &rec))
        .ok_or(missing)
    }
}

/// Object tags, (key, value) in the order given.
pub type Tags = Vec<(String, String)>;

/// The version id a tagging answer shows: none in a bucket that never had versioning (its
/// records' ids are internal), none for the "null" version, as on GetObject.
fn shown_version(versioned: bool, record: &coffer_store::ObjectRecord) -> Option<String> {
    let id = record.exposed_version_id();
    (versioned && id != "null").then(|| id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn parses_the_tagging_header() {
        assert_eq!(
            parse_tagging_header("security=public&a%20b=c%2Bd&empty=&plus=x+y").unwrap(),
            tags(&[
                ("security", "public"),
                ("a b", "c+d"),
                ("empty", ""),
                ("plus", "x y")
            ])
        );
        assert_eq!(parse_tagging_header("").unwrap(), tags(&[]));
    }

    #[test]
    fn refuses_what_s3_refuses() {
        let eleven: Vec<_> = (0..11).map(|i| (format!("k{i}"), "v".to_owned())).collect();
        assert!(matches!(
            validate_tags(&eleven),
            Err(CoreError::BadRequest(_))
        ));
        assert!(validate_tags(&eleven[..10]).is_ok());
        let long_key = "k".repeat(129);
        let long_value = "v".repeat(257);
        for bad in [
            tags(&[("", "v")]),
            tags(&[(&long_key, "v")]),
            tags(&[("k", &long_value)]),
            tags(&[("aws:x", "v")]),
            tags(&[("k", "1"), ("k", "2")]),
        ] {
            assert!(
                matches!(validate_tags(&bad), Err(CoreError::InvalidTag(_))),
                "{bad:?}"
            );
        }
        assert!(validate_tags(&tags(&[(&"k".repeat(128), &"v".repeat(256))])).is_ok());
        assert!(matches!(
            parse_tagging_header("a=%FF"),
            Err(CoreError::InvalidArgument(_))
        ));
    }
}
