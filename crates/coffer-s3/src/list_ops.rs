//! ListObjects and ListObjectsV2.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as TOKEN;
use coffer_core::{ListPage, ListParams};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use crate::CofferS3;
use crate::bucket_ops::owner_of;
use crate::object_ops::timestamp;

const MAX_KEYS: i32 = 1000;

/// `encoding-type=url`: percent-encode everything but unreserved characters and `/`, as S3 does.
pub(crate) fn url_encode(s: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~')
        .remove(b'/');
    percent_encoding::utf8_percent_encode(s, SET).to_string()
}

/// A page size parameter (`max-keys`, `max-uploads`, `max-parts`): non-negative, at most 1000.
pub(crate) fn page_size(v: Option<i32>, param: &str) -> S3Result<i32> {
    match v {
        None => Ok(MAX_KEYS),
        Some(n) if n < 0 => Err(s3_error!(
            InvalidArgument,
            "{param} must be a non-negative integer."
        )),
        Some(n) => Ok(n.min(MAX_KEYS)),
    }
}

fn max_keys(v: Option<i32>) -> S3Result<usize> {
    Ok(usize::try_from(page_size(v, "max-keys")?).unwrap_or(0))
}

pub(crate) fn wants_url_encoding(e: Option<&EncodingType>) -> S3Result<bool> {
    match e.map(EncodingType::as_str) {
        None => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("url") => Ok(true),
        Some(_) => Err(s3_error!(
            InvalidArgument,
            "Invalid Encoding Method specified in Request"
        )),
    }
}

struct Rendered {
    contents: Vec<Object>,
    prefixes: Vec<CommonPrefix>,
}

fn render(page: ListPage, encode: bool, owner: Option<&str>) -> Rendered {
    let enc = |s: String| if encode { url_encode(&s) } else { s };
    let contents = page
        .objects
        .into_iter()
        .map(|e| Object {
            key: Some(enc(e.key)),
            e_tag: Some(ETag::Strong(e.record.etag.clone())),
            last_modified: Some(timestamp(e.record.last_modified_ms)),
            size: i64::try_from(e.record.size).ok(),
            storage_class: Some(ObjectStorageClass::from_static(
                ObjectStorageClass::STANDARD,
            )),
            owner: owner.map(owner_of),
            checksum_algorithm: e
                .record
                .checksum
                .as_ref()
                .map(|(a, _)| vec![ChecksumAlgorithm::from(a.clone())]),
            ..Default::default()
        })
        .collect();
    let prefixes = page
        .common_prefixes
        .into_iter()
        .map(|p| CommonPrefix {
            prefix: Some(enc(p)),
        })
        .collect();
    Rendered { contents, prefixes }
}

impl CofferS3 {
    fn bucket_owner(&self, bucket: &str) -> S3Result<String> {
        Ok(self
            .coffer
            .bucket(bucket)
            .map_err(|e| self.map_err(e))?
            .owner)
    }

    pub(crate) async fn op_list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let input = req.input;
        let encode = wants_url_encoding(input.encoding_type.as_ref())?;
        let params = ListParams {
            prefix: input.prefix.clone().unwrap_or_default(),
            delimiter: input.delimiter.clone().filter(|d| !d.is_empty()),
            after: input.marker.clone().filter(|m| !m.is_empty()),
            max_keys: max_keys(input.max_keys)?,
        };
        let owner = self.bucket_owner(&input.bucket)?;
        let page = self
            .coffer
            .list_objects(&input.bucket, &params)
            .map_err(|e| self.map_err(e))?;
        let is_truncated = page.is_truncated;
        let next_marker = if is_truncated {
            page.last.clone()
        } else {
            None
        };
        let r = render(page, encode, Some(&owner));
        let enc = |s: Option<String>| s.map(|s| if encode { url_encode(&s) } else { s });
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(input.bucket),
            // botocore does not URL-decode Prefix in v1 answers, and AWS sends it raw there.
            prefix: Some(input.prefix.unwrap_or_default()),
            marker: Some(enc(input.marker).unwrap_or_default()),
            next_marker: enc(next_marker),
            max_keys: Some(input.max_keys.unwrap_or(MAX_KEYS)),
            delimiter: enc(input.delimiter.filter(|d| !d.is_empty())),
            is_truncated: Some(is_truncated),
            contents: Some(r.contents),
            common_prefixes: Some(r.prefixes),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }

    pub(crate) async fn op_list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let input = req.input;
        let encode = wants_url_encoding(input.encoding_type.as_ref())?;
        let after = match input.continuation_token.as_deref() {
            Some(token) => {
                let raw = TOKEN
                    .decode(token)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| {
                        s3_error!(
                            InvalidArgument,
                            "The continuation token provided is incorrect"
                        )
                    })?;
                Some(raw)
            }
            None => input.start_after.clone().filter(|s| !s.is_empty()),
        };
        let params = ListParams {
            prefix: input.prefix.clone().unwrap_or_default(),
            delimiter: input.delimiter.clone().filter(|d| !d.is_empty()),
            after,
            max_keys: max_keys(input.max_keys)?,
        };
        let owner = if input.fetch_owner.unwrap_or(false) {
            Some(self.bucket_owner(&input.bucket)?)
        } else {
            self.coffer
                .bucket(&input.bucket)
                .map_err(|e| self.map_err(e))?;
            None
        };
        let page = self
            .coffer
            .list_objects(&input.bucket, &params)
            .map_err(|e| self.map_err(e))?;
        let is_truncated = page.is_truncated;
        let next_token = if is_truncated {
            page.last.as_ref().map(|l| TOKEN.encode(l.as_bytes()))
        } else {
            None
        };
        let r = render(page, encode, owner.as_deref());
        let key_count = i32::try_from(r.contents.len() + r.prefixes.len()).unwrap_or(i32::MAX);
        let enc = |s: Option<String>| s.map(|s| if encode { url_encode(&s) } else { s });
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(input.bucket),
            prefix: Some(enc(input.prefix).unwrap_or_default()),
            max_keys: Some(input.max_keys.unwrap_or(MAX_KEYS)),
            key_count: Some(key_count),
            continuation_token: input.continuation_token,
            next_continuation_token: next_token,
            start_after: enc(input.start_after),
            delimiter: enc(input.delimiter.filter(|d| !d.is_empty())),
            is_truncated: Some(is_truncated),
            contents: Some(r.contents),
            common_prefixes: Some(r.prefixes),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encoding_matches_s3() {
        assert_eq!(url_encode("foo+1/bar"), "foo%2B1/bar");
        assert_eq!(url_encode("quux ab/"), "quux%20ab/");
        assert_eq!(url_encode("a~b_c.d-e"), "a~b_c.d-e");
    }
}
