//! Virtual-hosted-style addressing: only `<bucket>.<configured domain>` names a bucket; any
//! other Host (an IP, `localhost:9443`, ...) is path-style.

use s3s::S3Result;
use s3s::host::{S3Host, VirtualHost};

pub struct CofferHost {
    domain: Option<String>,
}

impl CofferHost {
    pub fn new(domain: Option<String>) -> Self {
        Self {
            domain: domain.map(|d| d.trim_end_matches('.').to_ascii_lowercase()),
        }
    }

    /// The bucket a Host header names, if it is virtual-hosted style.
    pub fn bucket_of<'a>(&self, host: &'a str) -> Option<&'a str> {
        let domain = self.domain.as_deref()?;
        let name = strip_port(host);
        let bucket = name.strip_suffix(domain)?.strip_suffix('.')?;
        (!bucket.is_empty()).then_some(bucket)
    }
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        // [v6]:port
        return host
            .split_once(']')
            .map_or(host, |(h, _)| &host[..=h.len()]);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

impl S3Host for CofferHost {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<VirtualHost<'a>> {
        let name = strip_port(host);
        match self.bucket_of(host) {
            Some(bucket) => Ok(VirtualHost::new(&name[bucket.len() + 1..]).with_bucket(bucket)),
            None => Ok(VirtualHost::new(name)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_subdomains_of_the_configured_domain_name_buckets() {
        let h = CofferHost::new(Some("s3.example.com".into()));
        assert_eq!(h.bucket_of("photos.s3.example.com"), Some("photos"));
        assert_eq!(h.bucket_of("photos.s3.example.com:9443"), Some("photos"));
        assert_eq!(
            h.bucket_of("my.dotted.bucket.s3.example.com"),
            Some("my.dotted.bucket")
        );
        assert_eq!(h.bucket_of("s3.example.com"), None);
        assert_eq!(h.bucket_of("127.0.0.1:9443"), None);
        assert_eq!(h.bucket_of("evil-s3.example.com"), None);
        assert_eq!(
            CofferHost::new(None).bucket_of("photos.s3.example.com"),
            None
        );
        assert_eq!(strip_port("[::1]:9443"), "[::1]");
    }
}
