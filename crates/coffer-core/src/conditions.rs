//! Conditional request headers (RFC 7232 as S3 applies them).

use crate::CoreError;

#[derive(Debug, Clone, Default)]
pub struct Conditions {
    pub if_match: Option<String>,
    pub if_none_match: Option<String>,
    /// Seconds since the Unix epoch (HTTP dates have one-second resolution).
    pub if_modified_since: Option<i64>,
    pub if_unmodified_since: Option<i64>,
}

/// Does an `If-Match`/`If-None-Match` list (`*`, or comma-separated, quoted or not) match?
fn etag_list_matches(list: &str, etag: &str) -> bool {
    list.split(',').map(str::trim).any(|item| {
        let item = item.strip_prefix("W/").unwrap_or(item);
        item == "*" || item.trim_matches('"') == etag
    })
}

impl Conditions {
    pub fn is_empty(&self) -> bool {
        self.if_match.is_none()
            && self.if_none_match.is_none()
            && self.if_modified_since.is_none()
            && self.if_unmodified_since.is_none()
    }

    /// Evaluates the conditions for a read. `If-Match` wins over `If-Unmodified-Since` and
    /// `If-None-Match` over `If-Modified-Since`, as in RFC 7232 section 6.
    pub fn check_read(&self, etag: &str, last_modified_ms: i64) -> Result<(), CoreError> {
        let last_modified = last_modified_ms.div_euclid(1000);
        match (&self.if_match, self.if_unmodified_since) {
            (Some(list), _) if !etag_list_matches(list, etag) => {
                return Err(CoreError::PreconditionFailed);
            }
            (None, Some(since)) if last_modified > since => {
                return Err(CoreError::PreconditionFailed);
            }
            _ => {}
        }
        let not_modified = CoreError::NotModified {
            etag: etag.to_owned(),
            last_modified_ms,
        };
        match (&self.if_none_match, self.if_modified_since) {
            (Some(list), _) if etag_list_matches(list, etag) => Err(not_modified),
            (None, Some(since)) if last_modified <= since => Err(not_modified),
            _ => Ok(()),
        }
    }
}

/// `If-Match` / `If-None-Match` on a write (PutObject, CompleteMultipartUpload): checked
/// against the current version inside the committing transaction.
#[derive(Debug, Clone, Default)]
pub struct WriteConditions {
    pub if_match: Option<String>,
    pub if_none_match: Option<String>,
}

impl WriteConditions {
    pub fn is_empty(&self) -> bool {
        self.if_match.is_none() && self.if_none_match.is_none()
    }

    pub(crate) fn check(
        &self,
        current: Option<&coffer_store::ObjectRecord>,
    ) -> Result<(), coffer_store::ConditionFailure> {
        use coffer_store::ConditionFailure as F;
        if let Some(list) = &self.if_match {
            match current {
                None => return Err(F::NoSuchKey),
                Some(c) if !etag_list_matches(list, &c.etag) => return Err(F::PreconditionFailed),
                Some(_) => {}
            }
        }
        if let (Some(list), Some(c)) = (&self.if_none_match, current)
            && etag_list_matches(list, &c.etag)
        {
            return Err(F::PreconditionFailed);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7232_precedence() {
        let c = |m: Option<&str>, nm: Option<&str>, ms: Option<i64>, us: Option<i64>| Conditions {
            if_match: m.map(str::to_owned),
            if_none_match: nm.map(str::to_owned),
            if_modified_since: ms,
            if_unmodified_since: us,
        };
        let ok = |r: Result<(), CoreError>| r.is_ok();
        assert!(ok(
            c(Some("\"abc\""), None, None, None).check_read("abc", 5000)
        ));
        assert!(ok(
            c(Some("x, \"abc\""), None, None, None).check_read("abc", 5000)
        ));
        assert!(ok(c(Some("*"), None, None, None).check_read("abc", 5000)));
        assert!(matches!(
            c(Some("zzz"), None, None, None).check_read("abc", 5000),
            Err(CoreError::PreconditionFailed)
        ));
        // If-Match true overrides a failing If-Unmodified-Since
        assert!(ok(
            c(Some("abc"), None, None, Some(1)).check_read("abc", 5000)
        ));
        assert!(matches!(
            c(None, None, None, Some(4)).check_read("abc", 5000),
            Err(CoreError::PreconditionFailed)
        ));
        assert!(ok(c(None, None, None, Some(5)).check_read("abc", 5999)));
        assert!(matches!(
            c(None, Some("abc"), None, None).check_read("abc", 5000),
            Err(CoreError::NotModified { .. })
        ));
        // If-None-Match false overrides If-Modified-Since
        assert!(ok(
            c(None, Some("zzz"), Some(10), None).check_read("abc", 5000)
        ));
        assert!(matches!(
            c(None, None, Some(5), None).check_read("abc", 5000),
            Err(CoreError::NotModified { .. })
        ));
        assert!(ok(c(None, None, Some(4), None).check_read("abc", 5000)));
    }
}
