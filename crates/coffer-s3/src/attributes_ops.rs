//! GetObjectAttributes: an object's ETag, size, storage class, checksum and parts without its
//! data. An SSE-C object needs its key, checked as on HeadObject (the answer would otherwise
//! confirm facts about data the caller cannot read).

use coffer_core::{ChecksumAlgorithm, Conditions, ReadOptions};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use crate::CofferS3;
use crate::object_ops::{set_checksum, stored_checksum, timestamp};
use crate::ssec::take_customer_key;

/// Parts listed per answer when the request names no `x-amz-max-parts`, as on AWS.
const DEFAULT_MAX_PARTS: i32 = 1000;

impl CofferS3 {
    pub(crate) async fn op_get_object_attributes(
        &self,
        mut req: S3Request<GetObjectAttributesInput>,
    ) -> S3Result<S3Response<GetObjectAttributesOutput>> {
        crate::ssec::drop_key_headers(&mut req.headers);
        let input = &mut req.input;
        let customer_key = take_customer_key(
            &mut input.sse_customer_algorithm,
            &mut input.sse_customer_key,
            &mut input.sse_customer_key_md5,
            false,
        )?;
        // One header, `x-amz-object-attributes: ETag,ObjectSize`, as SDKs send it, or several.
        let requested: Vec<String> = input
            .object_attributes
            .iter()
            .flat_map(|a| a.as_str().split(','))
            .map(|a| a.trim().to_owned())
            .filter(|a| !a.is_empty())
            .collect();
        if let Some(unknown) = requested.iter().find(|a| {
            ![
                ObjectAttributes::ETAG,
                ObjectAttributes::CHECKSUM,
                ObjectAttributes::OBJECT_PARTS,
                ObjectAttributes::STORAGE_CLASS,
                ObjectAttributes::OBJECT_SIZE,
            ]
            .contains(&a.as_str())
        }) {
            return Err(s3_error!(
                InvalidArgument,
                "Invalid attribute name specified: {unknown}"
            ));
        }
        let wanted = |name: &str| requested.iter().any(|a| a == name);
        if requested.is_empty() {
            return Err(s3_error!(
                InvalidArgument,
                "Invalid attribute name specified."
            ));
        }
        let max_parts = input.max_parts.unwrap_or(DEFAULT_MAX_PARTS);
        if max_parts < 0 {
            return Err(s3_error!(
                InvalidArgument,
                "Argument max-parts must be an integer between 0 and 2147483647"
            ));
        }
        let marker = input.part_number_marker.unwrap_or(0);
        if marker < 0 {
            return Err(s3_error!(
                InvalidArgument,
                "Argument part-number-marker must be an integer between 0 and 2147483647"
            ));
        }
        let opts = ReadOptions {
            range: None,
            conditions: Conditions::default(),
            customer_key,
            part_number: None,
            version_id: input.version_id.take(),
        };
        let read = self
            .coffer
            .read_object(&input.bucket, &input.key, opts, false)
            .map_err(|e| self.map_err(e))?;
        let record = &read.record;

        let mut output = GetObjectAttributesOutput {
            last_modified: Some(timestamp(record.last_modified_ms)),
            version_id: read
                .versioned
                .then(|| record.exposed_version_id().to_owned()),
            ..Default::default()
        };
        if wanted(ObjectAttributes::ETAG) {
            output.e_tag = Some(ETag::Strong(record.etag.clone()));
        }
        if wanted(ObjectAttributes::OBJECT_SIZE) {
            output.object_size = i64::try_from(record.size).ok();
        }
        if wanted(ObjectAttributes::STORAGE_CLASS) {
            output.storage_class = Some(StorageClass::from_static(StorageClass::STANDARD));
        }
        if wanted(ObjectAttributes::CHECKSUM)
            && let Some((alg, value, kind)) = stored_checksum(record)
        {
            let mut checksum = Checksum {
                checksum_type: Some(ChecksumType::from_static(kind)),
                ..Default::default()
            };
            set_checksum!(checksum, alg, value);
            output.checksum = Some(checksum);
        }
        // Only an object completed from a multipart upload has parts to show.
        if wanted(ObjectAttributes::OBJECT_PARTS) && record.etag.contains('-') {
            let after = u32::try_from(marker).unwrap_or(u32::MAX);
            let mut listed: Vec<ObjectPart> = Vec::new();
            let mut later = record
                .segments
                .iter()
                .filter(|s| s.part_number > after)
                .peekable();
            while listed.len() < usize::try_from(max_parts).unwrap_or(usize::MAX) {
                let Some(segment) = later.next() else { break };
                let mut part = ObjectPart {
                    part_number: i32::try_from(segment.part_number).ok(),
                    size: i64::try_from(segment.size).ok(),
                    ..Default::default()
                };
                if let Some((name, value)) = &segment.checksum
                    && let Some(alg) = ChecksumAlgorithm::parse(name)
                {
                    set_checksum!(part, alg, value.clone());
                }
                listed.push(part);
            }
            let is_truncated = later.peek().is_some();
            output.object_parts = Some(GetObjectAttributesParts {
                total_parts_count: i32::try_from(record.segments.len()).ok(),
                part_number_marker: Some(marker),
                next_part_number_marker: listed.last().and_then(|p| p.part_number).or(Some(marker)),
                max_parts: Some(max_parts),
                is_truncated: Some(is_truncated),
                parts: Some(listed),
            });
        }
        Ok(S3Response::new(output))
    }
}

/// Whether a GET with this query string is GetObjectAttributes (`?attributes`).
pub fn is_get_object_attributes(query: &str) -> bool {
    query
        .split('&')
        .any(|pair| pair.split('=').next() == Some("attributes"))
}

/// GetObjectAttributes gives the ETag without the quotes every other answer puts around it;
/// s3s serializes it quoted, so the answer's body is rewritten.
pub fn unquote_attributes_etag(xml: &str) -> String {
    xml.replace("<ETag>\"", "<ETag>")
        .replace("\"</ETag>", "</ETag>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_query_is_recognised() {
        assert!(is_get_object_attributes("attributes"));
        assert!(is_get_object_attributes("versionId=x&attributes="));
        assert!(!is_get_object_attributes("attributesx"));
        assert!(!is_get_object_attributes("tagging"));
        assert!(!is_get_object_attributes(""));
    }

    #[test]
    fn etag_loses_its_quotes() {
        let xml = "<GetObjectAttributesResponse><ETag>\"abc-2\"</ETag><ObjectSize>3</ObjectSize></GetObjectAttributesResponse>";
        assert_eq!(
            unquote_attributes_etag(xml),
            "<GetObjectAttributesResponse><ETag>abc-2</ETag><ObjectSize>3</ObjectSize></GetObjectAttributesResponse>"
        );
    }
}
