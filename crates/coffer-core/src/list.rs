//! ListObjects (v1 and v2) over the ordered metadata keys: prefix, delimiter roll-up into
//! common prefixes, markers, and page limits, in one read transaction that reads only what a
//! page needs: the keys it lists (and one more, to tell whether it is truncated), and one seek
//! per common prefix however many keys roll up into it.

use coffer_store::{ObjectEntry, Visit};

use crate::{Coffer, CoreError};

#[derive(Debug, Clone, Default)]
pub struct ListParams {
    pub prefix: String,
    pub delimiter: Option<String>,
    /// List keys strictly after this one (V1 `marker`, V2 `start-after` or continuation).
    pub after: Option<String>,
    pub max_keys: usize,
}

#[derive(Debug, Clone, Default)]
pub struct ListPage {
    pub objects: Vec<ObjectEntry>,
    pub common_prefixes: Vec<String>,
    pub is_truncated: bool,
    /// The last key or common prefix of this page (where the next page starts after).
    pub last: Option<String>,
}

/// The common prefix `key` rolls up into, if any.
fn common_prefix<'a>(key: &'a str, prefix: &str, delimiter: Option<&str>) -> Option<&'a str> {
    let delimiter = delimiter.filter(|d| !d.is_empty())?;
    let rest = key.get(prefix.len()..)?;
    rest.find(delimiter)
        .map(|i| &key[..prefix.len() + i + delimiter.len()])
}

/// The raw seek position just past every key that starts with `p`.
fn past_prefix(p: &str) -> Vec<u8> {
    let mut v = p.as_bytes().to_vec();
    v.push(0xFF);
    v
}

impl Coffer {
    pub fn list_objects(&self, bucket: &str, params: &ListParams) -> Result<ListPage, CoreError> {
        let Some(bucket_record) = self.store().meta().bucket(bucket)? else {
            return Err(CoreError::NoSuchBucket);
        };
        // Only a bucket that has had versioning can hold delete markers.
        let versioned = bucket_record.versioning.is_some();
        let meta = self.store().meta();
        let delimiter = params.delimiter.as_deref();
        let mut page = ListPage::default();

        // Start after the marker; a marker that is itself a common prefix skips its whole group.
        let (from, inclusive) = match params.after.as_deref() {
            Some(after) => match common_prefix(after, &params.prefix, delimiter) {
                Some(cp) if cp == after => (past_prefix(cp), true),
                _ => (after.as_bytes().to_vec(), false),
            },
            None => (Vec::new(), true),
        };
        if params.max_keys == 0 {
            return Ok(page);
        }
        let mut count = 0usize;
        meta.visit_objects(bucket, &params.prefix, &from, inclusive, |key, raw| {
            // Deleted in a versioned bucket: not listed, and rolls up into nothing.
            if versioned && raw.is_delete_marker()? {
                return Ok(Visit::Next);
            }
            if count == params.max_keys {
                page.is_truncated = true;
                return Ok(Visit::Stop);
            }
            count += 1;
            Ok(match common_prefix(key, &params.prefix, delimiter) {
                Some(cp) => {
                    page.last = Some(cp.to_owned());
                    page.common_prefixes.push(cp.to_owned());
                    // The rest of the group is skipped in the store, not read here.
                    Visit::Seek {
                        from: past_prefix(cp),
                        inclusive: true,
                    }
                }
                None => {
                    page.last = Some(key.to_owned());
                    page.objects.push(ObjectEntry {
                        key: key.to_owned(),
                        record: raw.decode()?,
                    });
                    Visit::Next
                }
            })
        })?;
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_prefixes() {
        assert_eq!(common_prefix("a/b/c", "", Some("/")), Some("a/"));
        assert_eq!(common_prefix("a/b/c", "a/", Some("/")), Some("a/b/"));
        assert_eq!(common_prefix("a/b", "a/b", Some("/")), None);
        assert_eq!(common_prefix("abc", "", None), None);
        assert_eq!(common_prefix("foo--bar", "", Some("--")), Some("foo--"));
    }
}
