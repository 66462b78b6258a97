//! ListObjects (v1 and v2) over the ordered metadata keys: prefix, delimiter roll-up into
//! common prefixes, markers, and page limits, without scanning past what a page needs.

use coffer_store::ObjectEntry;

use crate::{Coffer, CoreError};

/// Keys fetched from the store per scan.
const SCAN_BATCH: usize = 1000;

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
        if self.store().meta().bucket(bucket)?.is_none() {
            return Err(CoreError::NoSuchBucket);
        }
        let meta = self.store().meta();
        let delimiter = params.delimiter.as_deref();
        let mut page = ListPage::default();

        // Start after the marker; a marker that is itself a common prefix skips its whole group.
        let (mut from, mut inclusive) = match params.after.as_deref() {
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
        'scan: loop {
            let batch = meta.scan_objects(bucket, &params.prefix, &from, inclusive, SCAN_BATCH)?;
            let exhausted = batch.len() < SCAN_BATCH;
            let mut next_from = None;
            for entry in batch {
                if entry.record.delete_marker {
                    // Deleted in a versioned bucket: not listed, and rolls up into nothing.
                    next_from = Some(entry.key.as_bytes().to_vec());
                    continue;
                }
                let key_cp =
                    common_prefix(&entry.key, &params.prefix, delimiter).map(str::to_owned);
                if count == params.max_keys {
                    page.is_truncated = true;
                    break 'scan;
                }
                count += 1;
                match key_cp {
                    Some(cp) => {
                        // Skip the rest of this group in the store, not here.
                        next_from = Some(past_prefix(&cp));
                        page.last = Some(cp.clone());
                        page.common_prefixes.push(cp);
                        break;
                    }
                    None => {
                        page.last = Some(entry.key.clone());
                        next_from = Some(entry.key.as_bytes().to_vec());
                        page.objects.push(entry);
                    }
                }
            }
            match next_from {
                Some(f) => {
                    inclusive = f.last() == Some(&0xFF);
                    let was_group_skip = inclusive;
                    from = f;
                    if exhausted && !was_group_skip {
                        break;
                    }
                }
                None => break,
            }
        }
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
