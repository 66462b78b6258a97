//! Bucket versioning state and ListObjectVersions.

use coffer_store::{ObjectRecord, VERSIONING_ENABLED, VERSIONING_SUSPENDED};

use crate::{Coffer, CoreError};

#[derive(Debug, Clone, Default)]
pub struct ListVersionsParams {
    pub prefix: String,
    pub delimiter: Option<String>,
    pub key_marker: String,
    pub version_id_marker: Option<String>,
    pub max_keys: usize,
}

#[derive(Debug, Clone)]
pub struct VersionEntry {
    pub key: String,
    pub record: ObjectRecord,
    pub is_latest: bool,
}

#[derive(Debug, Clone, Default)]
pub struct VersionsPage {
    pub versions: Vec<VersionEntry>,
    pub common_prefixes: Vec<String>,
    pub is_truncated: bool,
    pub next_key_marker: Option<String>,
    pub next_version_id_marker: Option<String>,
}

impl Coffer {
    /// "Enabled", "Suspended", or `None` for a bucket that never had versioning.
    pub fn bucket_versioning(&self, bucket: &str) -> Result<Option<String>, CoreError> {
        Ok(self
            .store()
            .meta()
            .bucket(bucket)?
            .ok_or(CoreError::NoSuchBucket)?
            .versioning)
    }

    pub async fn set_bucket_versioning(&self, bucket: &str, status: &str) -> Result<(), CoreError> {
        let state = match status {
            s if s == VERSIONING_ENABLED => VERSIONING_ENABLED,
            s if s == VERSIONING_SUSPENDED => VERSIONING_SUSPENDED,
            _ => {
                return Err(CoreError::MalformedXml(
                    "The versioning status must be Enabled or Suspended.".into(),
                ));
            }
        };
        let bucket = bucket.to_owned();
        self.blocking(move |s| Ok(s.meta().set_versioning(&bucket, state)?))
            .await
    }

    pub fn list_object_versions(
        &self,
        bucket: &str,
        params: &ListVersionsParams,
    ) -> Result<VersionsPage, CoreError> {
        let meta = self.store().meta();
        let rec = meta.bucket(bucket)?.ok_or(CoreError::NoSuchBucket)?;
        let mut page = VersionsPage::default();
        if params.max_keys == 0 {
            return Ok(page);
        }
        if rec.versioning.is_none() {
            // Never versioned: every object is its own null version.
            let list = self.list_objects(
                bucket,
                &crate::ListParams {
                    prefix: params.prefix.clone(),
                    delimiter: params.delimiter.clone(),
                    after: Some(params.key_marker.clone()).filter(|k| !k.is_empty()),
                    max_keys: params.max_keys,
                },
            )?;
            page.is_truncated = list.is_truncated;
            page.common_prefixes = list.common_prefixes;
            page.versions = list
                .objects
                .into_iter()
                .map(|e| VersionEntry {
                    key: e.key,
                    record: ObjectRecord {
                        null_version: true,
                        ..e.record
                    },
                    is_latest: true,
                })
                .collect();
            if page.is_truncated {
                page.next_key_marker = list.last;
                page.next_version_id_marker = Some("null".into());
            }
            return Ok(page);
        }
        let delimiter = params.delimiter.as_deref().filter(|d| !d.is_empty());
        let mut after_key = params.key_marker.clone();
        let mut after_version = params
            .version_id_marker
            .clone()
            .filter(|v| !v.is_empty() && !after_key.is_empty());
        let mut count = 0usize;
        let mut current_cache: Option<(String, Option<String>)> = None;
        // Fetch no more than the page needs (plus one, to know whether it is truncated).
        let batch_size = params.max_keys.saturating_add(1).min(1000);
        loop {
            let batch = meta.scan_versions(
                bucket,
                &params.prefix,
                &after_key,
                after_version.as_deref(),
                batch_size,
            )?;
            if batch.is_empty() {
                break;
            }
            let exhausted = batch.len() < batch_size;
            let mut skip_group: Option<String> = None;
            for (key, record) in batch {
                if let Some(cp) = delimiter.and_then(|d| {
                    key.get(params.prefix.len()..)
                        .and_then(|rest| rest.find(d))
                        .map(|i| key[..params.prefix.len() + i + d.len()].to_owned())
                }) {
                    if page.common_prefixes.last() == Some(&cp) {
                        continue;
                    }
                    if count == params.max_keys {
                        page.is_truncated = true;
                        return Ok(page);
                    }
                    count += 1;
                    page.next_key_marker = Some(cp.clone());
                    page.next_version_id_marker = None;
                    page.common_prefixes.push(cp.clone());
                    skip_group = Some(cp);
                    break;
                }
                if count == params.max_keys {
                    page.is_truncated = true;
                    return Ok(page);
                }
                count += 1;
                let current = match &current_cache {
                    Some((k, c)) if *k == key => c.clone(),
                    _ => {
                        let c = meta.current_version_id(bucket, &key)?;
                        current_cache = Some((key.clone(), c.clone()));
                        c
                    }
                };
                let is_latest = current.as_deref() == Some(record.version_id.as_str());
                after_key.clone_from(&key);
                after_version = Some(record.exposed_version_id().to_owned());
                page.next_key_marker = Some(key.clone());
                page.next_version_id_marker = Some(record.exposed_version_id().to_owned());
                page.versions.push(VersionEntry {
                    key,
                    record,
                    is_latest,
                });
            }
            if let Some(cp) = skip_group {
                // Continue after every key under the common prefix.
                let mut past = cp;
                past.push(char::MAX);
                after_key = past;
                after_version = None;
                continue;
            }
            if exhausted {
                break;
            }
        }
        Ok(page)
    }
}
